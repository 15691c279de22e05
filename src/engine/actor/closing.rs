//! Leaving and closing channels for good.

use super::*;

impl Actor {
    pub(super) fn leave(&mut self, id: u64, deadline: Instant, on_reply: OnReply) {
        // The handle refused a second leave; what is left is always allowed.
        let Some(ch) = self.channels.get_mut(&id) else {
            // Already closed and released: nothing to do.
            return complete(on_reply, Outcome::of(Status::Ok));
        };
        if ch.state == ChannelState::Closed && ch.join_completion.is_none() {
            // Never joined: nothing to tell the server.
            self.retire(id);
            return complete(on_reply, Outcome::of(Status::Ok));
        }
        // A join still pending fails; buffered pushes fail with the channel closing.
        let first_join = ch.join_completion.take();
        self.timers.cancel(ch.join_timer.take());
        self.timers.cancel(ch.rejoin_timer.take());
        let was_joining = ch.state == ChannelState::Joining;
        if let Some(cb) = first_join {
            complete(cb, Outcome::of(Status::LeftBeforeJoin));
        } else if was_joining {
            self.notify_rejoin(id, Outcome::of(Status::LeftBeforeJoin));
        }
        self.fail_buffered(id, Outcome::of(Status::Closed));
        let Some(ch) = self.channels.get_mut(&id) else {
            return complete(on_reply, Outcome::of(Status::Ok));
        };
        match (ch.join_ref, self.conn.is_some()) {
            (Some(_), true) => {
                let timer = self.timers.arm(deadline, Timer::LeaveTimeout(id));
                ch.leave = Some((on_reply, timer));
                let leave_ref = self.take_ref();
                self.awaiting.insert(leave_ref, Awaiting::Leave(id));
                self.send_control(id, leave_ref, PHX_LEAVE);
                self.set_channel_state(id, ChannelState::Leaving);
            }
            _ => {
                // Not joined on the server (errored, or offline): closed at once, through
                // `leaving` as every leave goes.
                self.set_channel_state(id, ChannelState::Leaving);
                self.close_channel(id, Outcome::of(Status::Closed));
                complete(on_reply, Outcome::of(Status::Ok));
            }
        }
    }

    pub(super) fn disconnect(&mut self) {
        self.disconnect_with(DisconnectReason::ClientClosed);
    }

    /// Closes everything as `disconnect()` does, reporting `reason`.
    pub(super) fn disconnect_with(&mut self, reason: DisconnectReason) {
        self.wanted = false;
        self.opening = None;
        self.timers.cancel(self.reconnect_timer.take());
        self.stop_heartbeat();
        self.fail_probes(Status::Closed);
        if self.state != SocketState::Disconnected {
            self.counters.ended(&reason);
        }
        if let Some(conn) = self.conn.take() {
            self.counters.closed(conn.sent);
            conn.close_in_background(1000, "");
        }
        let ids: Vec<u64> = self.channels.keys().copied().collect();
        for id in ids {
            let joined_once = self
                .channels
                .get(&id)
                .is_some_and(|c| c.shared.join_called.load(Ordering::Acquire));
            if joined_once {
                self.close_channel(id, Outcome::of(Status::Closed));
            }
        }
        self.reconnect_attempts = 0;
        *lock(&self.shared.last_reason) = Some(reason.clone());
        if self.state != SocketState::Disconnected {
            self.set_state(SocketState::Disconnected, Some(&reason));
        }
    }

    // ---- leaving and closing ----------------------------------------------------------------

    pub(super) fn finish_leave(&mut self, id: u64, outcome: Outcome<'_>) {
        let leave = self.channels.get_mut(&id).and_then(|c| c.leave.take());
        self.close_channel(id, Outcome::of(Status::Closed));
        if let Some((cb, timer)) = leave {
            self.timers.cancel(Some(timer));
            complete(cb, outcome);
        }
    }

    /// Closes a channel for good: every operation of it completes with `failure`, it reports
    /// `closed`, and it is released (its handler dropped).
    pub(super) fn close_channel(&mut self, id: u64, failure: Outcome<'_>) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        // Visible before any callback runs: pushes fail at once, `channel()` is fresh.
        self.shared
            .publish_channel(&ch.shared, ChannelState::Closed);
        self.timers.cancel(ch.join_timer.take());
        self.timers.cancel(ch.rejoin_timer.take());
        let first = ch.join_completion.take();
        let leave = ch.leave.take();
        self.clear_join_ref(id);
        self.fail_in_flight(id, failure);
        self.fail_buffered(id, failure);
        if let Some(cb) = first {
            complete(cb, failure);
        }
        if let Some((cb, timer)) = leave {
            self.timers.cancel(Some(timer));
            complete(cb, failure);
        }
        self.awaiting
            .retain(|_, a| !matches!(*a, Awaiting::Leave(c) | Awaiting::Join(c) if c == id));
        self.set_channel_state(id, ChannelState::Closed);
        self.retire(id);
    }

    /// Marks the channel finished for the cache and drops the actor's record of it.
    pub(super) fn retire(&mut self, id: u64) {
        let Some(ch) = self.channels.remove(&id) else {
            return;
        };
        self.shared
            .publish_channel(&ch.shared, ChannelState::Closed);
        let topic = &ch.shared.topic;
        if let Some(ids) = self.by_topic.get_mut(topic) {
            ids.retain(|&c| c != id);
            if ids.is_empty() {
                self.by_topic.remove(topic);
            }
        }
        // `ch` (and its handler) is dropped here, after its last call.
    }
}
