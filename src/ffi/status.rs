//! `phx_status_t`: what every fallible function returns and every completion reports.

use super::util::guard_or;
use crate::engine::Status;
use std::ffi::c_char;

/// The result of a libphx function, and the outcome of a join, push or leave.
///
/// Values are stable and never renumbered. Completion callbacks receive the same values as a
/// `uint32_t`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum phx_status_t {
    /// Success; for a completion: the server replied `ok`.
    PHX_OK = 0,
    /// The server replied with another status; the reply carries that status and the
    /// server's response.
    PHX_ERR_REPLY = 1,
    /// No reply within the timeout.
    PHX_ERR_TIMEOUT = 2,
    /// The socket dropped while the operation was in flight.
    PHX_ERR_DISCONNECTED = 3,
    /// The channel crashed on the server (`phx_error`) while the push was in flight.
    PHX_ERR_CHANNEL_ERRORED = 4,
    /// The channel or socket was closed with the operation pending or buffered, or the
    /// object's socket has been freed.
    PHX_ERR_CLOSED = 5,
    /// `leave()` was called while the join was pending.
    PHX_ERR_LEFT_BEFORE_JOIN = 6,
    /// Wrong state: second join, push before join, push on a closed or leaving channel,
    /// an event function before `phx_socket_events_enable`, a second enable.
    PHX_ERR_STATE = 7,
    /// NULL pointer, invalid UTF-8, invalid JSON, binary field over 255 bytes, bad URL,
    /// bad option value.
    PHX_ERR_INVALID_ARGUMENT = 8,
    /// A blocking call made on a library thread (inside a callback), where it would deadlock.
    PHX_ERR_WRONG_THREAD = 9,
    /// No event available (non-blocking poll, or the wait timed out).
    PHX_ERR_AGAIN = 10,
    /// A libphx bug was caught (a panic); the object is still safe to free.
    PHX_ERR_INTERNAL = 11,
    /// A push refused because the connection's write queue is full (the server is not
    /// reading); nothing was sent. See `phx_options_set_max_write_queue_bytes`.
    PHX_ERR_QUEUE_FULL = 12,
    /// A push refused because its channel already buffers the most pushes allowed while it
    /// joins; nothing was sent. See `phx_options_set_max_buffered_pushes`.
    PHX_ERR_BUFFER_FULL = 13,
    /// A join refused because the socket already has the most channels allowed joined or
    /// joining. See `phx_options_set_max_channels`.
    PHX_ERR_TOO_MANY_CHANNELS = 14,
}

/// Every value, indexed by value.
const ALL: [phx_status_t; 15] = {
    use phx_status_t::*;
    [
        PHX_OK,
        PHX_ERR_REPLY,
        PHX_ERR_TIMEOUT,
        PHX_ERR_DISCONNECTED,
        PHX_ERR_CHANNEL_ERRORED,
        PHX_ERR_CLOSED,
        PHX_ERR_LEFT_BEFORE_JOIN,
        PHX_ERR_STATE,
        PHX_ERR_INVALID_ARGUMENT,
        PHX_ERR_WRONG_THREAD,
        PHX_ERR_AGAIN,
        PHX_ERR_INTERNAL,
        PHX_ERR_QUEUE_FULL,
        PHX_ERR_BUFFER_FULL,
        PHX_ERR_TOO_MANY_CHANNELS,
    ]
};

impl phx_status_t {
    /// The static, NUL-terminated description of this status.
    fn text(self) -> &'static str {
        match self {
            Self::PHX_OK => "ok\0",
            Self::PHX_ERR_REPLY => "the server replied with an error status\0",
            Self::PHX_ERR_TIMEOUT => "timed out\0",
            Self::PHX_ERR_DISCONNECTED => "the socket disconnected\0",
            Self::PHX_ERR_CHANNEL_ERRORED => "the channel crashed on the server\0",
            Self::PHX_ERR_CLOSED => "closed\0",
            Self::PHX_ERR_LEFT_BEFORE_JOIN => "left before the join completed\0",
            Self::PHX_ERR_STATE => "not allowed in the current state\0",
            Self::PHX_ERR_INVALID_ARGUMENT => "invalid argument\0",
            Self::PHX_ERR_WRONG_THREAD => "blocking call on a library thread\0",
            Self::PHX_ERR_AGAIN => "no event available\0",
            Self::PHX_ERR_INTERNAL => "internal error\0",
            Self::PHX_ERR_QUEUE_FULL => "the write queue is full\0",
            Self::PHX_ERR_BUFFER_FULL => "the channel's push buffer is full\0",
            Self::PHX_ERR_TOO_MANY_CHANNELS => "too many channels on the socket\0",
        }
    }
}

impl From<Status> for phx_status_t {
    fn from(s: Status) -> Self {
        match s {
            Status::Ok => Self::PHX_OK,
            Status::ReplyError => Self::PHX_ERR_REPLY,
            Status::Timeout => Self::PHX_ERR_TIMEOUT,
            Status::Disconnected => Self::PHX_ERR_DISCONNECTED,
            Status::ChannelErrored => Self::PHX_ERR_CHANNEL_ERRORED,
            Status::Closed => Self::PHX_ERR_CLOSED,
            Status::LeftBeforeJoin => Self::PHX_ERR_LEFT_BEFORE_JOIN,
            Status::StateError => Self::PHX_ERR_STATE,
            Status::InvalidArgument => Self::PHX_ERR_INVALID_ARGUMENT,
            Status::WriteQueueFull => Self::PHX_ERR_QUEUE_FULL,
            Status::BufferFull => Self::PHX_ERR_BUFFER_FULL,
            Status::TooManyChannels => Self::PHX_ERR_TOO_MANY_CHANNELS,
        }
    }
}

/// A short English description of a status value.
///
/// Takes any `uint32_t` (unknown values give "unknown status"). Returns static text: never NULL,
/// never to be freed, valid for the life of the process. Any thread.
#[no_mangle]
pub extern "C" fn phx_status_str(status: u32) -> *const c_char {
    const UNKNOWN: &str = "unknown status\0";
    guard_or(UNKNOWN.as_ptr().cast(), || {
        let text = ALL.get(status as usize).map_or(UNKNOWN, |s| s.text());
        text.as_ptr().cast()
    })
}
