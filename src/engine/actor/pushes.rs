//! Pushes: sending, buffering while joining, and completing them.

use super::*;

impl Actor {
    pub(super) fn push(
        &mut self,
        id: u64,
        event: Arc<str>,
        payload: Body,
        deadline: Instant,
        on_reply: Completion,
    ) {
        // The handle checked the channel's state; one closed since (by another thread, or by
        // the server) closes the push too.
        let Some(ch) = self.channels.get(&id) else {
            return complete(on_reply, Outcome::of(Status::Closed));
        };
        match ch.state {
            ChannelState::Joined | ChannelState::Joining | ChannelState::Errored => {}
            _ => return complete(on_reply, Outcome::of(Status::Closed)),
        }
        if deadline <= Instant::now() {
            return complete(on_reply, Outcome::of(Status::Timeout));
        }
        let sends_now = ch.state == ChannelState::Joined && self.conn.is_some();
        if !sends_now && ch.buffer.len() >= self.config().max_buffered_pushes {
            return complete(on_reply, Outcome::of(Status::BufferFull));
        }
        self.next_op += 1;
        let op_id = self.next_op;
        let timer = self.timers.arm(deadline, Timer::PushTimeout(op_id));
        self.pushes.insert(
            op_id,
            PushOp {
                channel: id,
                event,
                payload,
                on_reply,
                timer,
                sent_ref: None,
                queued_at: None,
            },
        );
        if sends_now {
            self.send_push(op_id);
        } else if let Some(ch) = self.channels.get_mut(&id) {
            ch.buffer.push_back(op_id);
        }
    }

    // ---- pushes -----------------------------------------------------------------------------

    pub(super) fn send_push(&mut self, op_id: u64) {
        let Some(op) = self.pushes.get_mut(&op_id) else {
            return;
        };
        let Some(ch) = self.channels.get_mut(&op.channel) else {
            return;
        };
        // A frame that would take the write queue past its bound (a peer that does not read)
        // is refused rather than queued.
        let limit = self.shared.config.max_write_queue_bytes;
        if (self.conn.as_ref()).is_some_and(|c| c.queued_bytes() + frame_bound(op, ch) > limit) {
            return self.finish_push(op_id, Outcome::of(Status::WriteQueueFull));
        }
        self.next_ref += 1;
        let r = self.next_ref;
        op.sent_ref = NonZeroU64::new(r);
        self.awaiting.insert(r, Awaiting::Push(op_id));
        // The payload goes on the wire now; the operation keeps only its completion.
        let payload = std::mem::replace(&mut op.payload, Body::Json(String::new()));
        op.queued_at = match &payload {
            Body::Json(json) => {
                ch.prepare_push(&op.event);
                let ref_ = self.ref_text.format(r);
                let (jr, middle) = (&ch.join_ref_text, &ch.push_middle);
                send_push_text(&mut self.conn, jr, ref_, middle, json).and_then(QueuedAt::new)
            }
            Body::Binary(b) => {
                let (jr, topic) = (Some(ch.join_ref_text.as_str()), &ch.shared.topic);
                send_binary(&mut self.conn, jr, r, topic, &op.event, b).and_then(QueuedAt::new)
            }
        };
    }

    /// A push ran out of time: it leaves its buffer, or the write queue if it is still
    /// there, and completes with `Timeout`.
    pub(super) fn push_timed_out(&mut self, op_id: u64) {
        let Some(p) = self.pushes.get(&op_id) else {
            return;
        };
        match p.sent_ref {
            Some(r) => {
                self.awaiting.remove(&r.get());
                if let (Some(conn), Some(at)) = (&mut self.conn, p.queued_at) {
                    conn.withdraw(at.position());
                }
            }
            None => {
                if let Some(buffer) = self.channels.get_mut(&p.channel).map(|c| &mut c.buffer) {
                    if let Ok(i) = buffer.binary_search(&op_id) {
                        buffer.remove(i);
                    }
                }
            }
        }
        self.finish_push(op_id, Outcome::of(Status::Timeout));
    }

    pub(super) fn flush_buffer(&mut self, id: u64) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let buffered = std::mem::take(&mut ch.buffer);
        for op in buffered {
            self.send_push(op);
        }
    }

    pub(super) fn fail_buffered(&mut self, id: u64, failure: Outcome<'_>) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let buffered = std::mem::take(&mut ch.buffer);
        for op in buffered {
            self.finish_push(op, failure);
        }
    }

    /// Fails the pushes of channel `id` that are on the wire.
    pub(super) fn fail_in_flight(&mut self, id: u64, failure: Outcome<'_>) {
        let refs: Vec<(u64, u64)> = self
            .awaiting
            .iter()
            .filter_map(|(r, a)| match *a {
                Awaiting::Push(op) if self.pushes.get(&op).is_some_and(|p| p.channel == id) => {
                    Some((r, op))
                }
                _ => None,
            })
            .collect();
        for (r, op) in refs {
            self.awaiting.remove(&r);
            self.finish_push(op, failure);
        }
    }

    pub(super) fn finish_push(&mut self, op_id: u64, outcome: Outcome<'_>) {
        if let Some(op) = self.pushes.remove(&op_id) {
            self.timers.cancel(Some(op.timer));
            complete(op.on_reply, outcome);
        }
    }
}

/// At least the size of the frame `op` encodes to: JSON escaping makes a byte at most six,
/// and the refs and framing take under 64 bytes.
fn frame_bound(op: &PushOp, ch: &Chan) -> usize {
    let payload = match &op.payload {
        Body::Json(j) => j.len(),
        Body::Binary(b) => b.len(),
    };
    payload + 6 * (ch.shared.topic.len() + op.event.len() + ch.join_ref_text.len()) + 64
}
