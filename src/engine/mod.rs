//! The socket and channel engine.
//!
//! # Design: one actor per socket
//!
//! Each socket is one Tokio task (the *actor*, [`actor`]) that alone owns the connection, the
//! channels, the pending replies, the push buffers and every timer. Callers hold thin handles
//! ([`Socket`], [`Channel`]) that send commands over an unbounded queue ([`commands`], which
//! also spawns the task on the first command) and read a few values
//! the actor publishes through atomics (socket and channel state, the channel cache).
//!
//! Why an actor rather than a lock-protected state machine: user callbacks are invoked by the
//! actor with no lock held, so a callback may call anything, including freeing the socket whose
//! callback is running; ordering is total per socket (messages, replies and state changes reach
//! the user in the order the wire and the timers produced them); and a thousand sockets cost a
//! thousand small tasks on one shared runtime, not a thousand threads.
//!
//! Inside the actor one `poll_fn` loop multiplexes the socket's inputs: commands, frames read,
//! the write queue, the pending connection attempt and a single `Sleep` armed at the earliest of
//! the socket's timers ([`timers`]). Writes are queued and flushed as the stream accepts them,
//! so a slow peer never stops reading. Incoming payloads are delivered borrowed from the frame
//! they arrived in; nothing is parsed beyond the envelope.

mod actor;
mod auth;
mod commands;
mod completion;
mod config;
mod connection;
mod frames;
mod handle;
mod jitter;
mod metrics;
mod presence;
mod reclaim;
pub mod runtime;
mod timers;
#[cfg(feature = "tls")]
mod tls;
mod types;
mod url;

pub(crate) use auth::check_headers;
pub use auth::{
    auth_subprotocol, ConnectProvider, Credentials, ProvideReply, Provider, AUTH_TOKEN_PREFIX,
    PHOENIX_SUBPROTOCOL,
};
pub(crate) use completion::{Completion, RawCompletion};
pub use config::{millis, Config, TlsRoots};
pub use connection::{AsyncIo, BoxIo, Connector, IoFuture, TcpConnector};
pub use handle::{Channel, Socket, WaitError};
pub use metrics::{SocketMetrics, REASON_KINDS};
pub use presence::{PresenceChange, PresenceList, PRESENCE_DIFF, PRESENCE_STATE};
pub use types::*;
pub use url::{endpoint, Endpoint};
