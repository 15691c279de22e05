//! Opening, losing and re-opening the connection; the heartbeat; timer dispatch.

use super::*;
use crate::engine::auth;

impl Actor {
    // ---- connection lifecycle ---------------------------------------------------------------

    pub(super) fn start_opening(&mut self) {
        let connector = self.connector.clone();
        let shared = self.shared.clone();
        let from = if shared.config.connect_provider.is_some() {
            " (params from the connect provider)"
        } else {
            ""
        };
        // Never the URL itself: its params may hold tokens.
        let url = shared.endpoint.redacted();
        self.log(LogLevel::Debug, &format!("connecting to {url}{from}"));
        // Asked before every attempt; its answer is awaited by the attempt, not the task.
        let asked = self.shared.config.connect_provider.clone().map(|p| {
            let (reply, answer) = auth::ask();
            call_user(|| p.0.provide(reply));
            answer
        });
        self.opening = Some(Box::pin(async move {
            let config = &shared.config;
            let Some(answer) = asked else {
                let token = config.auth_token.as_deref();
                return connection::open(&*connector, &shared.endpoint, config, token)
                    .await
                    .map(Box::new);
            };
            let credentials = match tokio::time::timeout(config.provider_timeout, answer).await {
                Ok(Ok(c)) => c,
                Ok(Err(why)) => return Err(DisconnectReason::Provider(why)),
                Err(_) => {
                    let ms = config.provider_timeout.as_millis();
                    return Err(DisconnectReason::Provider(format!(
                        "no answer within {ms} ms"
                    )));
                }
            };
            let endpoint = super::super::endpoint(&config.url, &credentials.params)
                .map_err(|e| DisconnectReason::Provider(e.into()))?;
            let token = credentials.auth_token.as_deref();
            connection::open(&*connector, &endpoint, config, token)
                .await
                .map(Box::new)
        }));
    }

    pub(super) fn opened(&mut self, ws: Box<Ws>) {
        if !self.wanted {
            return;
        }
        self.conn = Some(Conn::new(*ws));
        self.close_reason = None;
        self.reconnect_attempts = 0;
        self.refusals = 0;
        self.heartbeat_pending = None;
        self.heard_since_heartbeat = false;
        self.next_heartbeat_at = Some(Instant::now() + self.config().heartbeat_interval);
        self.arm_heartbeat();
        self.counters
            .opened(self.state == SocketState::Reconnecting);
        #[cfg(feature = "tls")]
        if self.shared.endpoint.tls && self.config().tls_insecure_skip_verify {
            self.log(LogLevel::Warn, super::super::tls::INSECURE_WARNING);
        }
        self.set_state(SocketState::Connected, None);
        // Joins waiting for the connection go out now; errored channels rejoin at once.
        let ids: Vec<u64> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(ch) = self.channels.get_mut(&id) else {
                continue;
            };
            // A new connection starts every rejoin schedule over.
            ch.rejoin_attempts = 0;
            match ch.state {
                ChannelState::Joining if ch.join_ref.is_none() => self.send_join(id),
                ChannelState::Errored => {
                    self.timers.cancel(ch.rejoin_timer.take());
                    let deadline = Instant::now() + self.shared.config.default_timeout;
                    self.begin_attempt(id, deadline);
                }
                _ => {}
            }
        }
    }

    pub(super) fn attempt_failed(&mut self, reason: DisconnectReason) {
        if !self.wanted {
            return;
        }
        self.log(
            LogLevel::Warn,
            &format!("connection attempt failed: {reason}"),
        );
        *lock(&self.shared.last_reason) = Some(reason.clone());
        self.counters.ended(&reason);
        if let DisconnectReason::HttpStatus { status, .. } = reason {
            self.refusals = self.refusals.saturating_add(1);
            let max = self.config().max_refusals;
            if max > 0 && self.refusals >= max {
                let refusals = self.refusals;
                return self.give_up(DisconnectReason::GaveUp { status, refusals });
            }
        }
        self.schedule_reconnect(&reason);
    }

    /// Stops reconnecting for good (until the next `connect()`), as `disconnect()` does but
    /// reporting `reason`.
    fn give_up(&mut self, reason: DisconnectReason) {
        self.log(LogLevel::Warn, &format!("{reason}"));
        self.refusals = 0;
        self.disconnect_with(reason);
    }

    pub(super) fn connection_lost(&mut self, reason: DisconnectReason) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        self.counters.closed(conn.sent);
        match reason {
            DisconnectReason::HeartbeatTimeout => {
                conn.close_in_background(1000, "heartbeat timeout")
            }
            // RFC 6455: 1009, a message too big to process.
            DisconnectReason::FrameTooLarge(_) => conn.close_in_background(1009, "frame too large"),
            _ => {}
        }
        self.log(LogLevel::Warn, &format!("connection lost: {reason}"));
        self.counters.ended(&reason);
        self.stop_heartbeat();
        let probe_failure = match reason {
            DisconnectReason::HeartbeatTimeout => Status::Timeout,
            _ => Status::Disconnected,
        };
        self.fail_probes(probe_failure);
        *lock(&self.shared.last_reason) = Some(reason.clone());
        // Everything sent on that connection is lost with it.
        let awaiting: Vec<(u64, Awaiting)> = self.awaiting.drain().collect();
        for (_, what) in &awaiting {
            if let Awaiting::Push(op) = *what {
                self.finish_push(op, Outcome::of(Status::Disconnected));
            }
        }
        let ids: Vec<u64> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(ch) = self.channels.get(&id) else {
                continue;
            };
            match ch.state {
                ChannelState::Joined => {
                    self.clear_join_ref(id);
                    self.set_channel_state(id, ChannelState::Errored);
                }
                ChannelState::Joining if ch.join_ref.is_some() => {
                    self.attempt_failed_for(id, Outcome::of(Status::Disconnected), false);
                }
                ChannelState::Leaving => self.finish_leave(id, Outcome::of(Status::Disconnected)),
                ChannelState::Errored => {
                    let timer = self
                        .channels
                        .get_mut(&id)
                        .and_then(|c| c.rejoin_timer.take());
                    self.timers.cancel(timer);
                }
                _ => {}
            }
        }
        if self.wanted && self.stops_reconnecting(&reason) {
            // A close code the app listed: no reconnect; `connect()` starts over.
            self.wanted = false;
            self.reconnect_attempts = 0;
            self.set_state(SocketState::Disconnected, Some(&reason));
        } else if self.wanted {
            self.schedule_reconnect(&reason);
        }
    }

    fn stops_reconnecting(&self, reason: &DisconnectReason) -> bool {
        matches!(reason, DisconnectReason::CloseFrame { code, .. }
            if self.config().stop_on_close_codes.contains(code))
    }

    pub(super) fn schedule_reconnect(&mut self, reason: &DisconnectReason) {
        let delay =
            Config::schedule_delay(&self.config().reconnect_schedule, self.reconnect_attempts);
        // Jitter shortens the schedule's delay; a server's Retry-After still holds in full.
        let mut delay = self
            .jitter
            .apply(delay, self.shared.config.reconnect_jitter);
        if let DisconnectReason::HttpStatus { retry_after, .. } = reason {
            delay = auth::refusal_delay(delay, *retry_after);
        }
        self.reconnect_attempts = self.reconnect_attempts.saturating_add(1);
        let at = Instant::now() + delay;
        self.reconnect_timer = Some(self.timers.arm(at, Timer::Reconnect));
        if self.state != SocketState::Reconnecting {
            self.set_state(SocketState::Reconnecting, Some(reason));
        }
    }

    // ---- timers -----------------------------------------------------------------------------

    pub(super) fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Heartbeat => self.heartbeat(),
            Timer::Reconnect => {
                self.reconnect_timer = None;
                if self.wanted && self.conn.is_none() && self.opening.is_none() {
                    self.start_opening();
                }
            }
            Timer::JoinTimeout(id) => {
                if let Some(ch) = self.channels.get_mut(&id) {
                    ch.join_timer = None;
                    if ch.state == ChannelState::Joining {
                        self.attempt_failed_for(id, Outcome::of(Status::Timeout), true);
                    }
                }
            }
            Timer::PushTimeout(op) => self.push_timed_out(op),
            Timer::LeaveTimeout(id) => {
                if let Some((cb, _)) = self.channels.get_mut(&id).and_then(|c| c.leave.take()) {
                    self.close_channel(id, Outcome::of(Status::Closed));
                    complete(cb, Outcome::of(Status::Timeout));
                }
            }
            Timer::Rejoin(id) => {
                let Some(ch) = self.channels.get_mut(&id) else {
                    return;
                };
                ch.rejoin_timer = None;
                if ch.state == ChannelState::Errored && self.conn.is_some() {
                    ch.rejoin_attempts = ch.rejoin_attempts.saturating_add(1);
                    let deadline = Instant::now() + self.shared.config.default_timeout;
                    self.begin_attempt(id, deadline);
                }
            }
        }
    }
}
