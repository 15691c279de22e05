//! Encoding frames into the connection's write queue.

use super::*;

impl Actor {
    // ---- sending ----------------------------------------------------------------------------

    pub(super) fn take_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    pub(super) fn send_control(&mut self, id: u64, r: u64, event: &str) {
        if let Some(ch) = self.channels.get(&id) {
            let jr = Some(ch.join_ref_text.as_str());
            send_text(&mut self.conn, jr, Some(r), &ch.shared.topic, event, "{}");
        }
    }
}

/// Encodes a text frame into the write queue; returns its position there (`None` without a
/// connection).
pub(super) fn send_text(
    conn: &mut Option<Conn>,
    join_ref: Option<&str>,
    r: Option<u64>,
    topic: &str,
    event: &str,
    payload: &str,
) -> Option<u64> {
    let conn = conn.as_mut()?;
    let mut buf = itoa::Buffer::new();
    let r = r.map(|r| buf.format(r));
    let len = protocol::text_len(join_ref, r, topic, event, payload);
    let frame = conn.frames.text(len, |out| {
        protocol::encode_text(out, join_ref, r, topic, event, payload)
    });
    Some(conn.queue(WsMessage::Text(frame)))
}

/// [`send_text`] for a JSON push: `ref_` in decimal, `middle` as `protocol::write_push_middle`
/// wrote it for the channel's topic and the push's event (see `Chan::push_middle`).
pub(super) fn send_push_text(
    conn: &mut Option<Conn>,
    join_ref: &str,
    ref_: &str,
    middle: &str,
    payload: &str,
) -> Option<u64> {
    let conn = conn.as_mut()?;
    let len = protocol::push_len(join_ref, ref_, middle, payload);
    let frame = conn.frames.text(len, |out| {
        protocol::encode_push(out, join_ref, ref_, middle, payload)
    });
    Some(conn.queue(WsMessage::Text(frame)))
}

/// [`send_text`] for a binary push.
pub(super) fn send_binary(
    conn: &mut Option<Conn>,
    join_ref: Option<&str>,
    r: u64,
    topic: &str,
    event: &str,
    bytes: &[u8],
) -> Option<u64> {
    let conn = conn.as_mut()?;
    let mut buf = itoa::Buffer::new();
    let r = buf.format(r);
    let mut out = Vec::new();
    // Field lengths were checked when the operation was made.
    protocol::encode_binary_push(&mut out, join_ref, Some(r), topic, event, bytes).ok()?;
    Some(conn.queue(WsMessage::Binary(out.into())))
}
