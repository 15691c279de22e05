//! Values the engine hands to its users: states, completion statuses, messages, reasons.

use crate::protocol::Payload;
use std::fmt;
use std::time::Duration;

/// The socket's connection state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SocketState {
    /// Not connected and not trying to be (initial state, and after `disconnect()`).
    Disconnected = 0,
    /// The first connection attempt after `connect()` is under way.
    Connecting = 1,
    /// The WebSocket is open.
    Connected = 2,
    /// A connection the client did not close was lost; attempts follow the reconnect schedule.
    Reconnecting = 3,
}

/// A channel's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChannelState {
    Closed = 0,
    Joining = 1,
    Joined = 2,
    Leaving = 3,
    Errored = 4,
}

impl SocketState {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Connecting,
            2 => Self::Connected,
            3 => Self::Reconnecting,
            _ => Self::Disconnected,
        }
    }
}

impl ChannelState {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Joining,
            2 => Self::Joined,
            3 => Self::Leaving,
            4 => Self::Errored,
            _ => Self::Closed,
        }
    }
}

/// How a join, push or leave completed. Every operation completes exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The server replied `ok`; the reply carries its response.
    Ok,
    /// The server replied with another status; the reply carries status and response.
    ReplyError,
    /// No reply within the operation's timeout.
    Timeout,
    /// The connection dropped after the operation was sent and before its reply (or, for a
    /// buffered push, the join attempt it waited for failed that way).
    Disconnected,
    /// The channel crashed on the server (`phx_error`) while the push was in flight.
    ChannelErrored,
    /// The channel was closed (`disconnect()`, server `phx_close`, `leave()`, socket freed)
    /// with the operation pending or buffered.
    Closed,
    /// `leave()` was called while this join was pending.
    LeftBeforeJoin,
    /// The operation is not allowed in the channel's state (second join, push before join,
    /// push on a closed or leaving channel).
    StateError,
    /// An argument was rejected (invalid JSON, a binary field over 255 bytes, ...).
    InvalidArgument,
    /// The push was refused: the connection's write queue already held
    /// [`Config::max_write_queue_bytes`](crate::engine::Config::max_write_queue_bytes) (the
    /// server is not reading). Nothing was sent.
    WriteQueueFull,
    /// The push was refused: its channel already buffered
    /// [`Config::max_buffered_pushes`](crate::engine::Config::max_buffered_pushes) pushes while
    /// joining. Nothing was sent.
    BufferFull,
    /// The join was refused: the socket already has
    /// [`Config::max_channels`](crate::engine::Config::max_channels) joined (or joining)
    /// channels.
    TooManyChannels,
}

/// A reply from the server, borrowed from the frame it arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyRef<'a> {
    /// The server's status string (`"ok"`, `"error"`, ...).
    pub status: &'a str,
    /// The response: JSON text, or bytes for a binary reply.
    pub response: Payload<'a>,
}

/// A message delivered to a channel, borrowed from the frame it arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub join_ref: Option<&'a str>,
    pub ref_: Option<&'a str>,
    pub topic: &'a str,
    pub event: &'a str,
    pub payload: Payload<'a>,
}

/// Why the last connection ended or the last attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server sent a close frame with this code and reason.
    CloseFrame { code: u16, reason: String },
    /// The upgrade was refused with this HTTP status (401 or 403 for a rejected token, 429 when
    /// throttled, 5xx when the server is unavailable), with the `Retry-After` the response
    /// carried (delta-seconds; an HTTP date or a malformed value counts as absent). The next
    /// attempt waits at least that long.
    HttpStatus {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No heartbeat reply arrived before the next heartbeat was due.
    HeartbeatTimeout,
    /// The TCP connection failed or ended without a close frame.
    Io(String),
    /// The connection attempt did not complete within the connect timeout.
    ConnectTimeout,
    /// The server sent something that is not a Phoenix frame, or the WebSocket layer failed.
    Protocol(String),
    /// The client closed it (`disconnect()`).
    ClientClosed,
    /// The socket stopped reconnecting after `refusals` consecutive refused upgrades (see
    /// [`Config::max_refusals`](crate::engine::Config::max_refusals)), the last with HTTP
    /// `status`. Terminal: the socket is `Disconnected` until `connect()` is called again.
    GaveUp { status: u16, refusals: u32 },
    /// The connect provider (see [`ConnectProvider`](crate::engine::ConnectProvider)) failed
    /// or did not answer within its timeout; the attempt counts as failed.
    Provider(String),
    /// The server sent a frame larger than [`Config::max_frame_size`](crate::engine::Config::max_frame_size);
    /// the client closed the connection with code 1009 (message too big).
    FrameTooLarge(String),
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CloseFrame { code, reason } => write!(f, "closed by server: {code} {reason}"),
            Self::HttpStatus {
                status,
                retry_after: None,
            } => write!(f, "upgrade refused: HTTP {status}"),
            Self::HttpStatus {
                status,
                retry_after: Some(d),
            } => write!(
                f,
                "upgrade refused: HTTP {status}, retry after {} s",
                d.as_secs()
            ),
            Self::HeartbeatTimeout => f.write_str("heartbeat timeout"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::ConnectTimeout => f.write_str("connect timeout"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::ClientClosed => f.write_str("closed by client"),
            Self::GaveUp { status, refusals } => write!(
                f,
                "stopped reconnecting after {refusals} refused upgrades (last: HTTP {status})"
            ),
            Self::Provider(e) => write!(f, "connect provider: {e}"),
            Self::FrameTooLarge(e) => write!(f, "frame too large, closed with 1009: {e}"),
        }
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// A body to send: JSON text (validated by the caller of the engine API) or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Json(String),
    Binary(Vec<u8>),
}

/// The completion of a join, push or leave. Called exactly once, on a library thread, with the
/// reply borrowed for the duration of the call (present for `Ok` and `ReplyError`).
pub type OnReply = Box<dyn FnOnce(Status, Option<ReplyRef<'_>>) + Send>;

/// Receives a socket's events. Called on a library thread, one call at a time, never while an
/// internal lock is held; it may call back into the engine (including dropping the socket).
pub trait SocketHandler: Send + Sync {
    /// The state changed. `reason` is set for `Reconnecting` and `Disconnected` when known.
    fn on_state(&self, _state: SocketState, _reason: Option<&DisconnectReason>) {}
    /// A log line from the engine (lines above [`Config::log_level`](crate::engine::Config)
    /// are not reported).
    fn on_log(&self, _level: LogLevel, _message: &str) {}
    /// A log line with its target (`"phx::socket"`, `"phx::protocol"`, ...: the part of the
    /// engine it comes from). The default calls [`SocketHandler::on_log`].
    fn on_log_record(&self, level: LogLevel, _target: &str, message: &str) {
        self.on_log(level, message)
    }
}

/// Receives a channel's events. Same calling rules as [`SocketHandler`].
pub trait ChannelHandler: Send + Sync {
    /// An application message (control events are never delivered), in arrival order.
    fn on_message(&self, _message: &Message<'_>) {}
    /// The channel's state changed.
    fn on_state(&self, _state: ChannelState) {}
    /// An automatic rejoin (after a reconnect, `phx_error` or a join timeout) completed.
    fn on_rejoin(&self, _status: Status, _reply: Option<ReplyRef<'_>>) {}
    /// Metas joined or left a key of the channel's presence list (see
    /// [`Channel::presence`](crate::engine::Channel::presence)), in the order phoenix.js's
    /// `onJoin`/`onLeave` report them. Called after the list was updated for the whole frame.
    fn on_presence(&self, _change: &crate::engine::PresenceChange) {}
    /// A `presence_state` or `presence_diff` was folded into the presence list (after its
    /// [`ChannelHandler::on_presence`] calls), as phoenix.js's `onSync`.
    fn on_presence_sync(&self) {}
    /// An automatic rejoin succeeded (called right after [`ChannelHandler::on_rejoin`] with
    /// `Status::Ok`), with the server's join response. `missed` is true when the channel had
    /// been joined before: messages broadcast while it was not joined were not delivered, so
    /// the app should resynchronise (fetch what changed since the last message it saw).
    fn on_rejoined(&self, _response: ReplyRef<'_>, _missed: bool) {}
}

/// The completion of [`Socket::probe`](crate::engine::Socket::probe): the heartbeat's round
/// trip, or why there is none (`Disconnected`: the connection was down or dropped; `Timeout`:
/// no answer within the heartbeat timeout, the connection is then closed; `Closed`: the socket
/// was disconnected or shut down). Called once, on a library thread.
pub type OnProbe = Box<dyn FnOnce(Result<std::time::Duration, Status>) + Send>;

/// Counts of the engine's internal tables, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Channels the socket still tracks (not yet closed and released).
    pub channels: usize,
    /// Operations sent and waiting for a reply (heartbeats excluded).
    pub pending_replies: usize,
    /// Pushes buffered while their channel joins.
    pub buffered_pushes: usize,
    /// Armed timers, the heartbeat and reconnect timers excluded.
    pub operation_timers: usize,
    /// Frames queued for writing on the current connection.
    pub outbox: usize,
    /// Entries of the channels' push buffers (equal to `buffered_pushes`: a push that
    /// completes leaves its buffer at once).
    pub buffer_slots: usize,
    /// Channel instances the handles' cache still tracks (released instances are not).
    pub cached_channels: usize,
    /// Presence diffs held back until the `presence_state` of their join cycle.
    pub held_presence_diffs: usize,
    /// Bytes of the frames in `outbox` (bounded by `Config::max_write_queue_bytes` for pushes).
    pub outbox_bytes: usize,
    /// Entries the operation tables (commands queued for the task, pending replies, pushes,
    /// push timeouts, write queue) have room for. A burst grows them; at each heartbeat a
    /// table with room for more than four times what it holds shrinks back (an empty command
    /// queue to nothing), so this returns near the steady need.
    pub table_capacity: usize,
}
