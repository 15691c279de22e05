//! The plain values C reads: the enumerations (as `uint32_t` constants) and the borrowed
//! views handed to callbacks (`phx_message_t`, `phx_reply_t`, `phx_reason_t`).

#![allow(non_camel_case_types)]

use super::util::{with_scratch, StrPack};
use crate::engine::{ChannelState, DisconnectReason, LogLevel, Message, ReplyRef, SocketState};
use crate::protocol::Payload;
use std::ffi::c_char;
use std::fmt::Write as _;

/// A socket's connection state (the `uint32_t state` of socket callbacks and events).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_socket_state_t {
    /// Not connected and not trying to be (initial state, and after `phx_socket_disconnect`).
    PHX_SOCKET_DISCONNECTED = 0,
    /// The first connection attempt after `phx_socket_connect` is under way.
    PHX_SOCKET_CONNECTING = 1,
    /// The WebSocket is open.
    PHX_SOCKET_CONNECTED = 2,
    /// A connection the client did not close was lost; attempts follow the reconnect schedule.
    PHX_SOCKET_RECONNECTING = 3,
}

/// A channel's state (the `uint32_t state` of channel callbacks and events).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_channel_state_t {
    PHX_CHANNEL_CLOSED = 0,
    PHX_CHANNEL_JOINING = 1,
    PHX_CHANNEL_JOINED = 2,
    PHX_CHANNEL_LEAVING = 3,
    PHX_CHANNEL_ERRORED = 4,
}

/// What a payload holds.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_payload_kind_t {
    /// JSON text (UTF-8), exactly as it stood in the frame.
    PHX_PAYLOAD_JSON = 0,
    /// Bytes of a binary frame.
    PHX_PAYLOAD_BINARY = 1,
}

/// Why the last connection ended or the last attempt failed (`phx_reason_t.kind`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_reason_kind_t {
    /// No connection has ended yet.
    PHX_REASON_NONE = 0,
    /// The server sent a close frame; `code` is its close code.
    PHX_REASON_CLOSE_FRAME = 1,
    /// The upgrade was refused; `code` is the HTTP status (401/403 for a rejected token, 429
    /// when throttled, 5xx), `retry_after_ms` its `Retry-After`.
    PHX_REASON_HTTP_STATUS = 2,
    /// No heartbeat reply arrived before the next heartbeat was due.
    PHX_REASON_HEARTBEAT_TIMEOUT = 3,
    /// The TCP connection failed or ended without a close frame.
    PHX_REASON_IO = 4,
    /// A connection attempt did not complete within the connect timeout.
    PHX_REASON_CONNECT_TIMEOUT = 5,
    /// The server sent something that is not a Phoenix frame, or the WebSocket layer failed.
    PHX_REASON_PROTOCOL = 6,
    /// The client closed it (`phx_socket_disconnect`).
    PHX_REASON_CLIENT_CLOSED = 7,
    /// The socket stopped reconnecting after `phx_options_set_max_refusals` consecutive refused
    /// upgrades; `code` is the last HTTP status. Terminal: the socket is
    /// `PHX_SOCKET_DISCONNECTED` until `phx_socket_connect` is called again.
    PHX_REASON_GAVE_UP = 8,
    /// The connect provider (`phx_options_set_connect_provider`) failed the attempt or did not
    /// answer in time.
    PHX_REASON_PROVIDER = 9,
    /// The server sent a frame over the size limit (`phx_options_set_max_frame_size`); the
    /// client closed the connection with `code` 1009 (message too big).
    PHX_REASON_FRAME_TOO_LARGE = 10,
}

/// Severity of a log line (`on_log`'s `level`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_log_level_t {
    PHX_LOG_ERROR = 1,
    PHX_LOG_WARN = 2,
    PHX_LOG_INFO = 3,
    PHX_LOG_DEBUG = 4,
}

/// Where the root certificates that `wss://` servers are checked against come from
/// (`phx_options_set_tls_roots`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_tls_roots_t {
    /// The operating system's trust store (the default): on Linux the distribution's CA
    /// bundle (`SSL_CERT_FILE` / `SSL_CERT_DIR` override where it is read from), the keychain on
    /// macOS, the system store on Windows.
    PHX_TLS_ROOTS_SYSTEM = 0,
    /// Mozilla's root list compiled into the library: for minimal containers without a CA
    /// bundle.
    PHX_TLS_ROOTS_MOZILLA = 1,
    /// Only the roots added by `phx_options_set_ca_pem` / `phx_options_set_ca_file`.
    PHX_TLS_ROOTS_CONFIGURED_ONLY = 2,
}

/// What a `phx_event_t` reports (`phx_event_t.kind`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_event_kind_t {
    /// A `*_tagged` operation completed.
    PHX_EVENT_REPLY = 1,
    /// A channel received an application message.
    PHX_EVENT_MESSAGE = 2,
    /// The socket's state changed.
    PHX_EVENT_SOCKET_STATE = 3,
    /// A channel's state changed.
    PHX_EVENT_CHANNEL_STATE = 4,
    /// An automatic rejoin of a channel completed.
    PHX_EVENT_REJOIN = 5,
    /// Events were dropped because the queue was full; `dropped` tells how many.
    PHX_EVENT_OVERFLOW = 6,
    /// Metas joined a key of a channel's presence list.
    PHX_EVENT_PRESENCE_JOIN = 7,
    /// Metas left a key of a channel's presence list.
    PHX_EVENT_PRESENCE_LEAVE = 8,
    /// A `presence_state` or `presence_diff` was folded into a channel's presence list.
    PHX_EVENT_PRESENCE_SYNC = 9,
    /// An automatic rejoin succeeded; `missed` tells whether messages may have been missed.
    PHX_EVENT_REJOINED = 10,
    /// A `phx_socket_probe_tagged` completed.
    PHX_EVENT_PROBE = 11,
}

/// Capacity of `phx_reason_t.text`, terminating NUL included.
pub const PHX_REASON_TEXT_CAP: usize = 256;

/// Why a connection ended: a plain value, entirely owned by whoever holds it (no pointers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct phx_reason_t {
    /// A `PHX_REASON_*` value.
    pub kind: u32,
    /// The close code (`PHX_REASON_CLOSE_FRAME`) or HTTP status (`PHX_REASON_HTTP_STATUS`);
    /// 0 otherwise.
    pub code: u32,
    /// Length of `text` in bytes (NUL excluded).
    pub text_len: usize,
    /// A human-readable description, NUL-terminated UTF-8, cut at a character boundary to fit
    /// (at most `PHX_REASON_TEXT_CAP - 1` bytes); empty for `PHX_REASON_NONE`. Never holds the
    /// URL's params or the auth token.
    pub text: [c_char; PHX_REASON_TEXT_CAP],
    /// For `PHX_REASON_HTTP_STATUS`: the response's `Retry-After` in milliseconds (given in
    /// seconds by the server; the next attempt waits at least that long); 0 when absent.
    pub retry_after_ms: u64,
}

/// An application message a channel received. Every pointer is borrowed for the duration of
/// the callback only. Strings are NUL-terminated UTF-8 and their lengths (NUL excluded) are
/// given too; the payload is NOT NUL-terminated.
#[repr(C)]
pub struct phx_message_t {
    pub topic: *const c_char,
    pub topic_len: usize,
    pub event: *const c_char,
    pub event_len: usize,
    /// NULL (length 0) when the frame carried none (a broadcast).
    pub join_ref: *const c_char,
    pub join_ref_len: usize,
    /// NULL (length 0) when the frame carried none.
    pub r#ref: *const c_char,
    pub ref_len: usize,
    /// A `PHX_PAYLOAD_*` value.
    pub payload_kind: u32,
    pub payload: *const u8,
    pub payload_len: usize,
}

/// A server reply to a join, push or leave. Every pointer is borrowed for the duration of the
/// callback only. `status` is NUL-terminated UTF-8 (`"ok"`, `"error"`, ...); the payload
/// (the server's response) is NOT NUL-terminated.
#[repr(C)]
pub struct phx_reply_t {
    pub status: *const c_char,
    pub status_len: usize,
    /// A `PHX_PAYLOAD_*` value.
    pub payload_kind: u32,
    pub payload: *const u8,
    pub payload_len: usize,
}

// ---- conversions --------------------------------------------------------------------------------

pub(crate) fn socket_state(s: SocketState) -> u32 {
    use phx_socket_state_t::*;
    (match s {
        SocketState::Disconnected => PHX_SOCKET_DISCONNECTED,
        SocketState::Connecting => PHX_SOCKET_CONNECTING,
        SocketState::Connected => PHX_SOCKET_CONNECTED,
        SocketState::Reconnecting => PHX_SOCKET_RECONNECTING,
    }) as u32
}

pub(crate) fn channel_state(s: ChannelState) -> u32 {
    use phx_channel_state_t::*;
    (match s {
        ChannelState::Closed => PHX_CHANNEL_CLOSED,
        ChannelState::Joining => PHX_CHANNEL_JOINING,
        ChannelState::Joined => PHX_CHANNEL_JOINED,
        ChannelState::Leaving => PHX_CHANNEL_LEAVING,
        ChannelState::Errored => PHX_CHANNEL_ERRORED,
    }) as u32
}

pub(crate) fn log_level(l: LogLevel) -> u32 {
    use phx_log_level_t::*;
    (match l {
        LogLevel::Error => PHX_LOG_ERROR,
        LogLevel::Warn => PHX_LOG_WARN,
        LogLevel::Info => PHX_LOG_INFO,
        LogLevel::Debug => PHX_LOG_DEBUG,
    }) as u32
}

/// `(kind, bytes)` of a payload.
pub(crate) fn payload_parts<'a>(p: &Payload<'a>) -> (u32, &'a [u8]) {
    match *p {
        Payload::Json(text) => (phx_payload_kind_t::PHX_PAYLOAD_JSON as u32, text.as_bytes()),
        Payload::Binary(bytes) => (phx_payload_kind_t::PHX_PAYLOAD_BINARY as u32, bytes),
    }
}

/// Writes into a fixed buffer, cutting at a character boundary when it is full.
struct FixedText<'a> {
    buf: &'a mut [c_char; PHX_REASON_TEXT_CAP],
    len: usize,
}

impl std::fmt::Write for FixedText<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let room = PHX_REASON_TEXT_CAP - 1 - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        for (i, b) in s.as_bytes()[..take].iter().enumerate() {
            self.buf[self.len + i] = *b as c_char;
        }
        self.len += take;
        Ok(())
    }
}

impl phx_reason_t {
    /// The reason for `PHX_REASON_NONE`.
    pub(crate) fn none() -> Self {
        phx_reason_t {
            kind: phx_reason_kind_t::PHX_REASON_NONE as u32,
            code: 0,
            text_len: 0,
            text: [0; PHX_REASON_TEXT_CAP],
            retry_after_ms: 0,
        }
    }

    /// The C view of an engine reason (no allocation).
    pub(crate) fn from_engine(r: Option<&DisconnectReason>) -> Self {
        use phx_reason_kind_t::*;
        let mut out = Self::none();
        let Some(r) = r else {
            return out;
        };
        let (kind, code) = match r {
            DisconnectReason::CloseFrame { code, .. } => (PHX_REASON_CLOSE_FRAME, u32::from(*code)),
            DisconnectReason::HttpStatus { status, .. } => {
                (PHX_REASON_HTTP_STATUS, u32::from(*status))
            }
            DisconnectReason::HeartbeatTimeout => (PHX_REASON_HEARTBEAT_TIMEOUT, 0),
            DisconnectReason::Io(_) => (PHX_REASON_IO, 0),
            DisconnectReason::ConnectTimeout => (PHX_REASON_CONNECT_TIMEOUT, 0),
            DisconnectReason::Protocol(_) => (PHX_REASON_PROTOCOL, 0),
            DisconnectReason::ClientClosed => (PHX_REASON_CLIENT_CLOSED, 0),
            DisconnectReason::GaveUp { status, .. } => (PHX_REASON_GAVE_UP, u32::from(*status)),
            DisconnectReason::Provider(_) => (PHX_REASON_PROVIDER, 0),
            DisconnectReason::FrameTooLarge(_) => (PHX_REASON_FRAME_TOO_LARGE, 1009),
        };
        if let DisconnectReason::HttpStatus {
            retry_after: Some(d),
            ..
        } = r
        {
            out.retry_after_ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        }
        out.kind = kind as u32;
        out.code = code;
        let mut w = FixedText {
            buf: &mut out.text,
            len: 0,
        };
        let _ = write!(w, "{r}");
        out.text_len = w.len;
        out
    }
}

/// Messages whose four strings (with their NULs) fit this many bytes are packed on the stack.
const MESSAGE_INLINE: usize = 192;

/// Calls `f` with a `phx_message_t` viewing `m`; the strings are NUL-terminated copies, on the
/// stack for the usual short topic, event and refs (no thread-local buffer to take and put
/// back per message), else in this thread's scratch buffer (no allocation once it has grown).
pub(crate) fn with_message<R>(m: &Message<'_>, f: impl FnOnce(&phx_message_t) -> R) -> R {
    let opt_len = |s: Option<&str>| s.map_or(0, |s| s.len() + 1);
    let need = m.topic.len() + m.event.len() + 2 + opt_len(m.join_ref) + opt_len(m.ref_);
    if need <= MESSAGE_INLINE {
        let mut buf = [0u8; MESSAGE_INLINE];
        return pack_message(&mut buf, m, f);
    }
    with_scratch(|buf| {
        buf.resize(need, 0);
        pack_message(buf, m, f)
    })
}

/// [`with_message`] with `buf`, zeroed and large enough for the four strings and their NULs.
#[inline(always)]
fn pack_message<R>(buf: &mut [u8], m: &Message<'_>, f: impl FnOnce(&phx_message_t) -> R) -> R {
    // Each string is copied at `at` and followed by the buffer's own zero.
    let mut at = 0;
    let mut put = |s: &str| {
        let start = at;
        buf[start..start + s.len()].copy_from_slice(s.as_bytes());
        at = start + s.len() + 1;
        (start, s.len())
    };
    let topic = put(m.topic);
    let event = put(m.event);
    let join_ref = m.join_ref.map(&mut put);
    let ref_ = m.ref_.map(&mut put);
    let buf: &[u8] = buf;
    let ptr = |(start, _): (usize, usize)| buf[start..].as_ptr().cast::<c_char>();
    let opt = |p: Option<(usize, usize)>| p.map_or((std::ptr::null(), 0), |p| (ptr(p), p.1));
    let (join_ref, join_ref_len) = opt(join_ref);
    let (ref_ptr, ref_len) = opt(ref_);
    let (payload_kind, payload) = payload_parts(&m.payload);
    let msg = phx_message_t {
        topic: ptr(topic),
        topic_len: topic.1,
        event: ptr(event),
        event_len: event.1,
        join_ref,
        join_ref_len,
        r#ref: ref_ptr,
        ref_len,
        payload_kind,
        payload: payload.as_ptr(),
        payload_len: payload.len(),
    };
    f(&msg)
}

/// Calls `f` with a `phx_reply_t` viewing `r` (NULL for `None`), like [`with_message`].
pub(crate) fn with_reply<R>(
    r: Option<&ReplyRef<'_>>,
    f: impl FnOnce(*const phx_reply_t) -> R,
) -> R {
    let Some(r) = r else {
        return f(std::ptr::null());
    };
    with_scratch(|buf| {
        let mut pack = StrPack::new(buf);
        let status = pack.push(r.status.as_bytes());
        let buf = pack.finish();
        let (payload_kind, payload) = payload_parts(&r.response);
        let reply = phx_reply_t {
            status: status.ptr(buf),
            status_len: status.len(),
            payload_kind,
            payload: payload.as_ptr(),
            payload_len: payload.len(),
        };
        f(&reply)
    })
}

/// Calls `f` with `text` NUL-terminated (for log lines).
pub(crate) fn with_c_text<R>(text: &str, f: impl FnOnce(*const c_char) -> R) -> R {
    with_scratch(|buf| {
        let mut pack = StrPack::new(buf);
        let t = pack.push(text.as_bytes());
        let buf = pack.finish();
        f(t.ptr(buf))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// The view's strings: NUL-terminated copies with the given lengths, NULL when absent.
    fn strings(m: &phx_message_t) -> [Option<(String, usize)>; 4] {
        let read = |p: *const c_char, len: usize| {
            // SAFETY: the view's pointers are NULL or NUL-terminated, valid during the call.
            (!p.is_null()).then(|| unsafe { (CStr::from_ptr(p).to_str().unwrap().to_owned(), len) })
        };
        [
            read(m.topic, m.topic_len),
            read(m.event, m.event_len),
            read(m.join_ref, m.join_ref_len),
            read(m.r#ref, m.ref_len),
        ]
    }

    #[test]
    fn message_views_hold_nul_terminated_copies_on_the_stack_or_in_the_scratch_buffer() {
        let long = "t".repeat(MESSAGE_INLINE);
        // Short strings (packed on the stack), exactly a full stack buffer (the other strings
        // and the four NULs take 10 bytes), one byte more and beyond (the scratch buffer).
        for (topic, join_ref) in [
            ("room:1", None),
            ("room:1", Some("12")),
            (&long[..MESSAGE_INLINE - 10], Some("1")),
            (&long[..MESSAGE_INLINE - 9], Some("1")),
            (long.as_str(), Some("1")),
        ] {
            let m = Message {
                join_ref,
                ref_: Some("345"),
                topic,
                event: "ev",
                payload: Payload::Json("{\"a\":1}"),
            };
            let seen = with_message(&m, |v| {
                // SAFETY: the payload view is valid during the call.
                let payload = unsafe { std::slice::from_raw_parts(v.payload, v.payload_len) };
                assert_eq!(payload, b"{\"a\":1}");
                strings(v)
            });
            let own = |s: &str| Some((s.to_owned(), s.len()));
            assert_eq!(
                seen,
                [own(topic), own("ev"), join_ref.and_then(own), own("345")]
            );
        }
    }
}
