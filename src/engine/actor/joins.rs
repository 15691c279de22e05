//! Join attempts: first join, rejoins, their timeouts and failures.

use super::*;

impl Actor {
    pub(super) fn join(&mut self, id: u64, payload: Body, deadline: Instant, on_reply: OnReply) {
        // The handle allowed the join; an instance gone meanwhile was closed by another thread.
        let Some(ch) = self.channels.get_mut(&id) else {
            return complete(on_reply, Outcome::of(Status::Closed));
        };
        if ch.state != ChannelState::Closed || ch.join_completion.is_some() {
            return complete(on_reply, Outcome::of(Status::Closed));
        }
        ch.join_payload = payload;
        ch.join_completion = Some(on_reply);
        self.begin_attempt(id, deadline);
    }

    // ---- joins ------------------------------------------------------------------------------

    /// Starts a join attempt: state `joining`, the attempt's timer, and the `phx_join` at once
    /// when connected (otherwise when the connection opens).
    pub(super) fn begin_attempt(&mut self, id: u64, deadline: Instant) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        self.timers.cancel(ch.join_timer.take());
        ch.join_timer = Some(self.timers.arm(deadline, Timer::JoinTimeout(id)));
        self.set_channel_state(id, ChannelState::Joining);
        if self.conn.is_some() {
            self.send_join(id);
        }
    }

    pub(super) fn send_join(&mut self, id: u64) {
        let join_ref = self.take_ref();
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        ch.join_ref = Some(join_ref);
        ch.join_ref_text.clear();
        ch.join_ref_text
            .push_str(itoa::Buffer::new().format(join_ref));
        self.awaiting.insert(join_ref, Awaiting::Join(id));
        let (jr, topic) = (Some(ch.join_ref_text.as_str()), &*ch.shared.topic);
        match &ch.join_payload {
            Body::Json(json) => {
                send_text(&mut self.conn, jr, Some(join_ref), topic, PHX_JOIN, json)
            }
            Body::Binary(b) => send_binary(&mut self.conn, jr, join_ref, topic, PHX_JOIN, b),
        };
    }

    pub(super) fn join_replied(&mut self, id: u64, reply: ReplyRef<'_>) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        if ch.state != ChannelState::Joining {
            return;
        }
        self.timers.cancel(ch.join_timer.take());
        let first = ch.join_completion.take();
        let outcome = Outcome::replied(reply);
        let missed = ch.was_joined;
        if outcome.status == Status::Ok {
            ch.was_joined = true;
            ch.rejoin_attempts = 0;
            self.set_channel_state(id, ChannelState::Joined);
            self.flush_buffer(id);
        } else {
            // Closed before anyone hears of the refusal: a push or `channel()` made from the
            // completion sees the final state.
            self.shared
                .publish_channel(&ch.shared, ChannelState::Closed);
            self.fail_buffered(id, outcome);
        }
        match first {
            Some(cb) => complete(cb, outcome),
            None => {
                self.notify_rejoin(id, outcome);
                if outcome.status == Status::Ok {
                    self.notify_rejoined(id, reply, missed);
                }
            }
        }
        if outcome.status != Status::Ok {
            // Refused: closed for good, so the app can take a fresh instance and try again.
            self.close_channel(id, Outcome::of(Status::Closed));
        }
    }

    /// The current join attempt failed (timeout, socket drop): the channel is errored, the
    /// pushes buffered for the attempt fail with its status, and a rejoin follows.
    pub(super) fn attempt_failed_for(&mut self, id: u64, failure: Outcome<'_>, tell_server: bool) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        self.timers.cancel(ch.join_timer.take());
        let first = ch.join_completion.take();
        if let (true, Some(jr)) = (tell_server && self.conn.is_some(), ch.join_ref) {
            // The server may still join us after a timeout: leave that join so no orphan stays.
            self.next_ref += 1;
            let (r, text) = (self.next_ref, ch.join_ref_text.as_str());
            send_text(
                &mut self.conn,
                Some(text),
                Some(r),
                &ch.shared.topic,
                PHX_LEAVE,
                "{}",
            );
            let _ = jr;
        }
        self.clear_join_ref(id);
        self.set_channel_state(id, ChannelState::Errored);
        self.fail_buffered(id, failure);
        match first {
            Some(cb) => complete(cb, failure),
            None => self.notify_rejoin(id, failure),
        }
        self.schedule_rejoin(id);
    }

    pub(super) fn schedule_rejoin(&mut self, id: u64) {
        if self.conn.is_none() {
            return; // rejoined when the connection opens
        }
        let schedule = &self.shared.config.rejoin_schedule;
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        if ch.state != ChannelState::Errored {
            return;
        }
        let delay = Config::schedule_delay(schedule, ch.rejoin_attempts);
        let delay = self.jitter.apply(delay, self.shared.config.rejoin_jitter);
        self.timers.cancel(ch.rejoin_timer.take());
        ch.rejoin_timer = Some(self.timers.arm(Instant::now() + delay, Timer::Rejoin(id)));
    }

    pub(super) fn clear_join_ref(&mut self, id: u64) {
        if let Some(ch) = self.channels.get_mut(&id) {
            if let Some(r) = ch.join_ref.take() {
                if matches!(self.awaiting.get(&r), Some(Awaiting::Join(_))) {
                    self.awaiting.remove(&r);
                }
            }
            ch.join_ref_text.clear();
        }
    }
}
