//! The Phoenix Channels V2 wire codec. No I/O here: bytes in, typed frames out, and back.
//!
//! Text frames are JSON arrays `[join_ref, ref, topic, event, payload]`. Decoding is one pass
//! (`scan.rs`) that yields the envelope, validates the payload and, for a reply, finds its status
//! and response; the payload is borrowed as raw JSON text (never parsed into a tree and
//! re-serialised), so the hot path allocates nothing beyond what an escaped string needs.
//!
//! Binary frames follow `Phoenix.Socket.V2.JSONSerializer`: a kind byte, one size byte per field,
//! the fields, then the payload (the rest of the frame).

mod binary;
mod error;
mod scan;
mod text;

pub use binary::{
    decode_binary_client, decode_binary_server, encode_binary_broadcast, encode_binary_push,
    encode_binary_reply, encode_binary_server_push, MAX_BINARY_FIELD,
};
pub use error::{DecodeError, EncodeError};
pub use scan::Decoded;
pub use text::{
    decode_reply, decode_reply_reference, decode_text, decode_text_once, decode_text_reference,
    encode_push, encode_text, encode_text_prepared, is_valid_json, is_valid_json_reference,
    push_len, text_len, write_json_string, write_push_middle, TextOut,
};

use std::borrow::Cow;

/// A frame's payload: raw JSON text or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// JSON text, exactly as it stood in the frame.
    Json(&'a str),
    /// The bytes of a binary frame's payload.
    Binary(&'a [u8]),
}

/// One decoded frame, borrowing from the buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub join_ref: Option<Cow<'a, str>>,
    pub ref_: Option<Cow<'a, str>>,
    pub topic: Cow<'a, str>,
    /// The event. A binary reply (kind 1) is reported as `phx_reply`.
    pub event: Cow<'a, str>,
    pub payload: Payload<'a>,
    /// The status of a binary reply (kind 1); `None` for every other frame.
    pub binary_reply_status: Option<&'a str>,
}

/// A `phx_reply`'s status and response, from either a JSON or a binary reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply<'a> {
    pub status: Cow<'a, str>,
    pub response: Payload<'a>,
}

/// Event names Phoenix reserves for channel control; never delivered to the app as messages.
pub const PHX_REPLY: &str = "phx_reply";
pub const PHX_JOIN: &str = "phx_join";
pub const PHX_LEAVE: &str = "phx_leave";
pub const PHX_CLOSE: &str = "phx_close";
pub const PHX_ERROR: &str = "phx_error";
pub const HEARTBEAT: &str = "heartbeat";
pub const PHOENIX_TOPIC: &str = "phoenix";

/// True for the control events that are filtered out of the message stream.
pub fn is_control_event(event: &str) -> bool {
    matches!(
        event,
        PHX_REPLY | PHX_JOIN | PHX_LEAVE | PHX_CLOSE | PHX_ERROR
    )
}

impl<'a> Frame<'a> {
    /// The status and response of a reply frame (JSON or binary); `None` if this is not a reply.
    pub fn reply(&self) -> Option<Result<Reply<'a>, DecodeError>> {
        if let Some(status) = self.binary_reply_status {
            return Some(Ok(Reply {
                status: Cow::Borrowed(status),
                response: self.payload,
            }));
        }
        if self.event != PHX_REPLY {
            return None;
        }
        Some(match self.payload {
            Payload::Json(json) => decode_reply(json),
            Payload::Binary(_) => Err(DecodeError::BadReply),
        })
    }
}
