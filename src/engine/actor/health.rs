//! Keeping the connection alive and measuring it: the heartbeat and its timeout, `probe()`,
//! and the socket's counters.

use super::*;

impl Actor {
    /// The heartbeat timer fired: either the pending heartbeat's timeout or the next heartbeat.
    pub(super) fn heartbeat(&mut self) {
        self.heartbeat_timer = None;
        if self.conn.is_none() {
            return;
        }
        let now = Instant::now();
        if let Some(sent) = self.heartbeat_sent {
            if !self.heard_since_heartbeat && now >= sent + self.config().heartbeat_timeout() {
                // Nothing at all arrived since the unanswered heartbeat went out: the server
                // (or the path to it) is silent, the connection dead. A server that keeps
                // sending is alive, its reply merely queued behind frames not read yet: a new
                // heartbeat replaces the pending one when it is due.
                self.connection_lost(DisconnectReason::HeartbeatTimeout);
                return;
            }
        }
        if self.next_heartbeat_at.is_some_and(|due| now < due) {
            return self.arm_heartbeat(); // that was the timeout check
        }
        self.send_heartbeat(now);
        self.reclaim();
    }

    /// Once per heartbeat, never per message: tables a burst left far larger than what they
    /// hold give the memory back (see `engine::reclaim`).
    fn reclaim(&mut self) {
        self.awaiting.reclaim();
        self.pushes.reclaim();
        self.timers.reclaim();
        self.shared.cmd.reclaim();
        if let Some(conn) = self.conn.as_mut() {
            conn.reclaim();
        }
    }

    fn send_heartbeat(&mut self, now: Instant) {
        let r = self.take_ref();
        self.heartbeat_pending = NonZeroU64::new(r);
        self.heartbeat_sent = Some(now);
        self.heard_since_heartbeat = false;
        let (topic, event) = (protocol::PHOENIX_TOPIC, protocol::HEARTBEAT);
        send_text(&mut self.conn, None, Some(r), topic, event, "{}");
        self.next_heartbeat_at = Some(now + self.config().heartbeat_interval);
        self.arm_heartbeat();
    }

    /// Arms the heartbeat timer at the next heartbeat, or earlier at the pending one's timeout.
    pub(super) fn arm_heartbeat(&mut self) {
        let Some(mut at) = self.next_heartbeat_at else {
            return;
        };
        if let Some(sent) = self.heartbeat_sent {
            // A timeout already passed with the server heard from: wait for the next beat.
            let timeout = sent + self.config().heartbeat_timeout();
            if timeout > Instant::now() {
                at = at.min(timeout);
            }
        }
        self.timers.cancel(self.heartbeat_timer.take());
        self.heartbeat_timer = Some(self.timers.arm(at, Timer::Heartbeat));
    }

    /// The pending heartbeat was answered: its round trip is recorded and reported to probes.
    pub(super) fn heartbeat_answered(&mut self) {
        self.heartbeat_pending = None;
        let Some(sent) = self.heartbeat_sent.take() else {
            return;
        };
        let rtt = Instant::now() - sent;
        self.counters.rtt(rtt);
        self.arm_heartbeat();
        for on_done in std::mem::take(&mut self.probes) {
            call_user(|| on_done(Ok(rtt)));
        }
    }

    /// `probe()`: a heartbeat now (unless one is already awaited: its answer serves).
    pub(super) fn probe(&mut self, on_done: OnProbe) {
        if self.conn.is_none() {
            return call_user(|| on_done(Err(Status::Disconnected)));
        }
        self.probes.push(on_done);
        if self.heartbeat_pending.is_none() {
            self.send_heartbeat(Instant::now());
        }
    }

    /// The connection is gone: probes waiting for it fail with `status`.
    pub(super) fn fail_probes(&mut self, status: Status) {
        for on_done in std::mem::take(&mut self.probes) {
            call_user(|| on_done(Err(status)));
        }
    }

    pub(super) fn stop_heartbeat(&mut self) {
        self.timers.cancel(self.heartbeat_timer.take());
        self.heartbeat_pending = None;
        self.heartbeat_sent = None;
        self.next_heartbeat_at = None;
    }

    pub(super) fn metrics(&self) -> SocketMetrics {
        let mut m = self.counters.m;
        let sent = self.counters.sent_before;
        let open = self.conn.as_ref().map(|c| c.sent).unwrap_or_default();
        m.frames_out = sent.frames + open.frames;
        m.bytes_out = sent.bytes + open.bytes;
        let buffered = self
            .pushes
            .values()
            .filter(|p| p.sent_ref.is_none())
            .count();
        m.pushes_buffered = buffered as u64;
        m.pushes_in_flight = (self.pushes.len() - buffered) as u64;
        m
    }
}
