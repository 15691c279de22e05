//! Frames from the server: routing by topic and join_ref, stale filtering, replies, messages.

use super::*;
use crate::protocol::Payload;

/// Log target of the lines about frames the server sent.
const PROTOCOL: &str = "phx::protocol";

impl Actor {
    // ---- incoming frames --------------------------------------------------------------------

    pub(super) fn frame(&mut self, msg: WsMessage) {
        self.heard_since_heartbeat = true;
        self.counters.received(&msg);
        match msg {
            WsMessage::Text(text) => match protocol::decode_text_once(text.as_str()) {
                Ok(decoded) => self.dispatch_decoded(&decoded.frame, decoded.reply.as_ref()),
                Err(e) => self.log_to(
                    PROTOCOL,
                    LogLevel::Warn,
                    &format!("dropped undecodable frame: {e}"),
                ),
            },
            WsMessage::Binary(bytes) => match protocol::decode_binary_server(&bytes) {
                Ok(frame) => self.dispatch(&frame),
                Err(e) => self.log_to(
                    PROTOCOL,
                    LogLevel::Warn,
                    &format!("dropped undecodable frame: {e}"),
                ),
            },
            WsMessage::Close(frame) => {
                self.close_reason = Some(Box::new(match frame {
                    Some(f) => DisconnectReason::CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.to_string(),
                    },
                    None => DisconnectReason::CloseFrame {
                        code: 1005,
                        reason: String::new(),
                    },
                }));
            }
            _ => {}
        }
    }

    pub(super) fn dispatch(&mut self, frame: &Frame<'_>) {
        let reply = frame.reply().map(Result::ok);
        self.dispatch_decoded(frame, reply.as_ref())
    }

    /// Routes a frame whose reply (for a `phx_reply`) was decoded with it: `Some(None)` is a
    /// malformed reply. Taken by reference: a decoded frame is about 200 bytes.
    #[inline]
    pub(super) fn dispatch_decoded(
        &mut self,
        frame: &Frame<'_>,
        reply: Option<&Option<protocol::Reply<'_>>>,
    ) {
        if let Some(reply) = reply {
            let Some(reply) = reply else {
                return self.log(LogLevel::Warn, "dropped malformed reply");
            };
            let reply = ReplyRef {
                status: &reply.status,
                response: reply.response,
            };
            return self.reply(frame, reply);
        }
        match frame.event.as_ref() {
            PHX_CLOSE | PHX_ERROR | PHX_JOIN | PHX_LEAVE => self.control(frame),
            _ => self.deliver(frame),
        }
    }

    /// A control event other than a reply, for the channel it is routed to.
    #[inline(never)]
    fn control(&mut self, frame: &Frame<'_>) {
        let Some(id) = self.route(frame.topic.as_ref(), frame.join_ref.as_deref()) else {
            return self.dropped_for_no_channel(frame);
        };
        match frame.event.as_ref() {
            PHX_CLOSE if frame.join_ref.is_some() => {
                self.close_channel(id, Outcome::of(Status::Closed))
            }
            PHX_ERROR if frame.join_ref.is_some() => self.channel_crashed(id),
            _ => {}
        }
    }

    /// The channel a non-reply frame is for: the one whose current join_ref it carries, or for
    /// a frame without join_ref (a broadcast) the topic's active channel.
    pub(super) fn route(&self, topic: &str, join_ref: Option<&str>) -> Option<u64> {
        self.route_to(topic, join_ref).map(|(id, _)| id)
    }

    /// [`Self::route`], with the channel itself.
    #[inline]
    fn route_to(&self, topic: &str, join_ref: Option<&str>) -> Option<(u64, &Chan)> {
        let ids = self.by_topic.get(topic)?;
        ids.iter().find_map(|&id| {
            let ch = self.channels.get(&id)?;
            let ours = match join_ref {
                Some(jr) => ch.join_ref.is_some() && ch.join_ref_text == jr,
                None => matches!(ch.state, ChannelState::Joined | ChannelState::Joining),
            };
            ours.then_some((id, &**ch))
        })
    }

    /// A frame routed nowhere: stale, or for a topic we have no channel for.
    #[cold]
    fn dropped_for_no_channel(&self, frame: &Frame<'_>) {
        self.log_dropped(format_args!(
            "{} on {}: no channel for it",
            frame.event, frame.topic
        ));
    }

    pub(super) fn reply(&mut self, frame: &Frame<'_>, reply: ReplyRef<'_>) {
        let Some(r) = frame.ref_.as_deref().and_then(|r| r.parse::<u64>().ok()) else {
            return;
        };
        if frame.topic == protocol::PHOENIX_TOPIC
            && self.heartbeat_pending.is_some_and(|p| p.get() == r)
        {
            return self.heartbeat_answered();
        }
        let Some(&what) = self.awaiting.get(&r) else {
            // A reply nobody waits for (timed out, stale, or a ref never used).
            return self.log_dropped(format_args!("reply for unknown ref {r} on {}", frame.topic));
        };
        let channel = match what {
            Awaiting::Join(c) | Awaiting::Leave(c) => c,
            Awaiting::Push(op) => self.pushes.get(&op).map_or(0, |p| p.channel),
        };
        let Some(ch) = self.channels.get(&channel) else {
            return;
        };
        // A reply is ours only for the topic the ref was sent on, and (stale filtering) only
        // for the join cycle it carries.
        if frame.topic.as_ref() != &*ch.shared.topic {
            return;
        }
        if frame
            .join_ref
            .as_deref()
            .is_some_and(|jr| jr != ch.join_ref_text)
        {
            return;
        }
        self.awaiting.remove(&r);
        match what {
            Awaiting::Join(id) => self.join_replied(id, reply),
            Awaiting::Push(op) => self.finish_push(op, Outcome::replied(reply)),
            Awaiting::Leave(id) => self.finish_leave(id, Outcome::replied(reply)),
        }
    }

    /// `phx_error`: the server-side channel died. Pushes in flight fail, a rejoin follows.
    pub(super) fn channel_crashed(&mut self, id: u64) {
        let state = self.channels.get(&id).map(|c| c.state);
        match state {
            Some(ChannelState::Joined) => {
                self.fail_in_flight(id, Outcome::of(Status::ChannelErrored));
                self.clear_join_ref(id);
                self.set_channel_state(id, ChannelState::Errored);
                self.schedule_rejoin(id);
            }
            Some(ChannelState::Joining) => {
                self.fail_in_flight(id, Outcome::of(Status::ChannelErrored));
                self.attempt_failed_for(id, Outcome::of(Status::ChannelErrored), false);
            }
            Some(ChannelState::Leaving) => self.finish_leave(id, Outcome::of(Status::Ok)),
            _ => {}
        }
    }

    /// An application message (or a presence event) for the channel it is routed to: one
    /// lookup by topic and one by id, the handler called through the table's reference.
    #[inline]
    fn deliver(&mut self, frame: &Frame<'_>) {
        let Some((id, ch)) = self.route_to(frame.topic.as_ref(), frame.join_ref.as_deref()) else {
            return self.dropped_for_no_channel(frame);
        };
        // Nothing is delivered once leave() was called or the channel failed.
        if !matches!(ch.state, ChannelState::Joined | ChannelState::Joining) {
            return;
        }
        let event = frame.event.as_ref();
        if let Some(handler) = ch.handler.as_deref() {
            let message = Message {
                join_ref: frame.join_ref.as_deref(),
                ref_: frame.ref_.as_deref(),
                topic: frame.topic.as_ref(),
                event,
                payload: frame.payload,
            };
            call_user(|| handler.on_message(&message));
        }
        // The list is kept whether or not a handler listens (`Channel::presence`).
        if matches!(event, PRESENCE_STATE | PRESENCE_DIFF) {
            if let Payload::Json(json) = frame.payload {
                self.fold_presence(id, event == PRESENCE_STATE, json);
            }
        }
    }

    /// Folds a `presence_state` or `presence_diff` into the channel's list, publishes the
    /// list, then reports the changes and the sync.
    fn fold_presence(&mut self, id: u64, state: bool, json: &str) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let cycle = ch.join_ref;
        let changes = if state {
            ch.presence.state(cycle, json)
        } else {
            ch.presence.diff(cycle, json)
        };
        let Some(changes) = changes else {
            return;
        };
        *lock(&ch.shared.presence) = ch.presence.snapshot();
        let Some(handler) = ch.handler.clone() else {
            return;
        };
        for change in &changes {
            call_user(|| handler.on_presence(change));
        }
        call_user(|| handler.on_presence_sync());
    }

    /// A debug line for a frame dropped as not ours; formatted only when someone listens.
    fn log_dropped(&self, what: std::fmt::Arguments<'_>) {
        if self.handler.is_some() {
            self.log(LogLevel::Debug, &format!("dropped {what}"));
        }
    }
}
