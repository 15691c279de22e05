//! Per-socket counters: owned by the socket's task and bumped with plain additions (no atomics
//! on the message path); a copy is handed out on request ([`crate::engine::Socket::metrics`]).

use super::types::DisconnectReason;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How many [`DisconnectReason`] kinds [`SocketMetrics::disconnects`] counts, indexed by
/// [`DisconnectReason::kind`].
pub const REASON_KINDS: usize = 16;

/// A socket's statistics since it was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketMetrics {
    /// Round trip of the last answered heartbeat (or probe); `None` before the first.
    pub rtt_last: Option<Duration>,
    /// Smoothed round trip: `srtt = 7/8 srtt + 1/8 rtt` as TCP smooths it (RFC 6298), the first
    /// sample taken as is.
    pub rtt_smoothed: Option<Duration>,
    /// Connections opened (upgrades that succeeded).
    pub connects: u64,
    /// Connections opened while reconnecting (after a lost connection or failed attempt).
    pub reconnects: u64,
    /// Connections lost and attempts failed, per [`DisconnectReason::kind`] (index 0 unused;
    /// `disconnect()` counts under [`DisconnectReason::ClientClosed`]).
    pub disconnects: [u64; REASON_KINDS],
    /// WebSocket frames and their payload bytes received.
    pub frames_in: u64,
    pub bytes_in: u64,
    /// WebSocket frames and their payload bytes handed to the connection.
    pub frames_out: u64,
    pub bytes_out: u64,
    /// Pushes sent and waiting for their reply.
    pub pushes_in_flight: u64,
    /// Pushes buffered while their channel joins.
    pub pushes_buffered: u64,
}

/// Frames and bytes in one direction.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traffic {
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
}

impl Traffic {
    #[inline]
    pub(crate) fn add(&mut self, msg: &WsMessage) {
        self.frames += 1;
        self.bytes += msg.len() as u64;
    }
}

/// The counters a socket's task keeps.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) m: SocketMetrics,
    /// Traffic out of connections already closed (the open one counts its own).
    pub(crate) sent_before: Traffic,
}

impl Counters {
    pub(crate) fn rtt(&mut self, rtt: Duration) {
        self.m.rtt_last = Some(rtt);
        self.m.rtt_smoothed = Some(match self.m.rtt_smoothed {
            None => rtt,
            Some(s) => (s * 7 + rtt) / 8,
        });
    }

    #[inline]
    pub(crate) fn received(&mut self, msg: &WsMessage) {
        self.m.frames_in += 1;
        self.m.bytes_in += msg.len() as u64;
    }

    pub(crate) fn opened(&mut self, reconnect: bool) {
        self.m.connects += 1;
        self.m.reconnects += u64::from(reconnect);
    }

    pub(crate) fn ended(&mut self, reason: &DisconnectReason) {
        self.m.disconnects[reason.kind()] += 1;
    }

    /// A connection closed: its outbound traffic joins the totals.
    pub(crate) fn closed(&mut self, sent: Traffic) {
        self.sent_before.frames += sent.frames;
        self.sent_before.bytes += sent.bytes;
    }
}

impl DisconnectReason {
    /// A stable index per variant, equal to the C `PHX_REASON_*` value: 1 close frame, 2 HTTP
    /// status, 3 heartbeat timeout, 4 I/O, 5 connect timeout, 6 protocol, 7 client closed,
    /// 8 gave up after refusals, 9 connect provider failed, 10 frame too large.
    pub fn kind(&self) -> usize {
        match self {
            Self::CloseFrame { .. } => 1,
            Self::HttpStatus { .. } => 2,
            Self::HeartbeatTimeout => 3,
            Self::Io(_) => 4,
            Self::ConnectTimeout => 5,
            Self::Protocol(_) => 6,
            Self::ClientClosed => 7,
            Self::GaveUp { .. } => 8,
            Self::Provider(_) => 9,
            Self::FrameTooLarge(_) => 10,
        }
    }
}
