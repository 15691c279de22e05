//! The handles callers hold: [`Socket`] and [`Channel`]. They never touch engine state directly:
//! every operation is a command to the socket's task; the few values read synchronously
//! (states, the channel cache) are published by that task through atomics.

use super::actor::{self, Ack, Command};
use super::connection::{Connector, TcpConnector};
use super::runtime;
use super::types::*;
use super::url::{endpoint, Endpoint};
use super::Config;
use crate::protocol::{is_valid_json, MAX_BINARY_FIELD};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// State shared between a socket's handles and its task.
pub(crate) struct SocketShared {
    pub(crate) cmd: UnboundedSender<Command>,
    pub(crate) state: AtomicU8,
    pub(crate) last_reason: Mutex<Option<DisconnectReason>>,
    /// The channel cache: topic → the channel `channel(topic)` returns while it is not retired.
    pub(crate) topics: Mutex<HashMap<Box<str>, Arc<ChannelShared>>>,
    next_channel_id: AtomicU64,
    pub(crate) endpoint: Endpoint,
    pub(crate) config: Config,
    shut_down: AtomicBool,
}

/// State shared between a channel's handles and its socket's task.
pub(crate) struct ChannelShared {
    pub(crate) id: u64,
    pub(crate) topic: Box<str>,
    pub(crate) state: AtomicU8,
    /// `join()` was called on this instance (one join per instance).
    pub(crate) join_called: AtomicBool,
    /// `leave()` was called on this instance: pushes fail from then on.
    pub(crate) leave_called: AtomicBool,
    /// The channel reached `closed` after a join or leave: the cache hands out a fresh one.
    pub(crate) retired: AtomicBool,
}

impl ChannelShared {
    pub(crate) fn publish_state(&self, s: ChannelState) {
        self.state.store(s as u8, Ordering::Release);
    }
}

/// A Phoenix socket: one WebSocket connection and its channels, driven by one task.
///
/// Cloning gives another handle to the same socket. Dropping the last handle shuts the socket
/// down without waiting; call [`Socket::shutdown`] to wait for it.
#[derive(Clone)]
pub struct Socket {
    shared: Arc<SocketShared>,
    _owner: Arc<Owner>,
}

/// Shuts the socket's task down when the last `Socket` handle goes.
struct Owner(Arc<SocketShared>);

impl Drop for Owner {
    fn drop(&mut self) {
        if !self.0.shut_down.swap(true, Ordering::AcqRel) {
            let _ = self.0.cmd.send(Command::Shutdown(None));
        }
    }
}

/// A channel (one topic) of a socket. Cloning gives another handle to the same channel.
#[derive(Clone)]
pub struct Channel {
    shared: Arc<ChannelShared>,
    socket: Arc<SocketShared>,
}

impl Socket {
    /// Creates a socket whose task runs on `runtime`, connecting with [`TcpConnector`] (TCP, and
    /// TLS for `wss://`). The URL must be `ws://` or `wss://`, and
    /// [`Config::extra_root_certs_pem`] empty or valid PEM; nothing connects until
    /// [`Socket::connect`].
    pub fn new(config: Config, runtime: &tokio::runtime::Handle) -> Result<Socket, &'static str> {
        let connector = TcpConnector::with_extra_roots(&config.extra_root_certs_pem)?;
        Self::create(config, Arc::new(connector), runtime)
    }

    /// Creates a socket on the process-wide shared runtime.
    pub fn new_shared(config: Config) -> Result<Socket, &'static str> {
        Self::new(config, runtime::shared())
    }

    /// Creates a socket that opens its byte streams through `connector` (tests use in-memory
    /// streams to run client and server on one paused clock). The configuration is checked as
    /// by [`Socket::new`], extra root certificates included, though only a [`TcpConnector`]
    /// uses them.
    pub fn with_connector(
        config: Config,
        connector: Arc<dyn Connector>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Socket, &'static str> {
        TcpConnector::with_extra_roots(&config.extra_root_certs_pem)?;
        Self::create(config, connector, runtime)
    }

    fn create(
        config: Config,
        connector: Arc<dyn Connector>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Socket, &'static str> {
        let endpoint = endpoint(&config.url, &config.params)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(SocketShared {
            cmd: tx,
            state: AtomicU8::new(SocketState::Disconnected as u8),
            last_reason: Mutex::new(None),
            topics: Mutex::new(HashMap::new()),
            next_channel_id: AtomicU64::new(1),
            endpoint,
            config,
            shut_down: AtomicBool::new(false),
        });
        runtime.spawn(actor::run(shared.clone(), rx, connector));
        Ok(Socket {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        })
    }

    /// Opens the connection. Idempotent: does nothing unless the socket is disconnected.
    pub fn connect(&self) {
        let _ = self.shared.cmd.send(Command::Connect);
    }

    /// Closes the connection (code 1000) and stops reconnecting. Every channel becomes closed
    /// and every pending or buffered operation completes with [`Status::Closed`] at once.
    pub fn disconnect(&self) {
        let _ = self.shared.cmd.send(Command::Disconnect);
    }

    /// The current state, as last published by the socket's task.
    pub fn state(&self) -> SocketState {
        SocketState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// Why the last connection ended or the last attempt failed, if any has.
    pub fn last_reason(&self) -> Option<DisconnectReason> {
        lock(&self.shared.last_reason).clone()
    }

    /// The full URL the socket connects to (`vsn` and params included).
    pub fn endpoint_url(&self) -> &str {
        &self.shared.endpoint.url
    }

    /// Installs (or with `None` removes) the socket's event handler. The previous handler is
    /// dropped by the socket's task after its last call.
    pub fn set_handler(&self, handler: Option<Arc<dyn SocketHandler>>) {
        let _ = self.shared.cmd.send(Command::SetSocketHandler(handler));
    }

    /// The channel for `topic`: the same one while it is not closed after a join or leave,
    /// a fresh one after that.
    pub fn channel(&self, topic: &str) -> Channel {
        let mut topics = lock(&self.shared.topics);
        if let Some(ch) = topics.get(topic) {
            if !ch.retired.load(Ordering::Acquire) {
                return Channel {
                    shared: ch.clone(),
                    socket: self.shared.clone(),
                };
            }
        }
        let ch = Arc::new(ChannelShared {
            id: self.shared.next_channel_id.fetch_add(1, Ordering::Relaxed),
            topic: topic.into(),
            state: AtomicU8::new(ChannelState::Closed as u8),
            join_called: AtomicBool::new(false),
            leave_called: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        });
        topics.insert(topic.into(), ch.clone());
        drop(topics);
        let _ = self.shared.cmd.send(Command::AddChannel(ch.clone()));
        Channel {
            shared: ch,
            socket: self.shared.clone(),
        }
    }

    /// Counts of the engine's internal tables (for tests and diagnostics).
    pub async fn stats(&self) -> EngineStats {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.shared.cmd.send(Command::Stats(tx)).is_err() {
            return EngineStats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Shuts the socket down: closes the connection, completes every pending operation with
    /// [`Status::Closed`] and releases every handler. Outside library threads it waits until
    /// that is done, so no callback of this socket runs after it returns; on a library thread
    /// (inside a callback) or inside an async context, where waiting could deadlock, it only
    /// starts it (use [`Socket::shutdown_async`] there).
    pub fn shutdown(&self) {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        if runtime::on_library_thread() || tokio::runtime::Handle::try_current().is_ok() {
            let _ = self.shared.cmd.send(Command::Shutdown(None));
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        if self
            .shared
            .cmd
            .send(Command::Shutdown(Some(Ack::Blocking(tx))))
            .is_ok()
        {
            let _ = rx.recv();
        }
    }
}

impl Socket {
    /// [`Socket::shutdown`] for async code: resolves once the socket's task has stopped.
    pub async fn shutdown_async(&self) {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self
            .shared
            .cmd
            .send(Command::Shutdown(Some(Ack::Async(tx))))
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

impl Channel {
    /// The channel's topic.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// The channel's state, as last published by the socket's task.
    pub fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// True if both handles are the same channel instance.
    pub fn same_as(&self, other: &Channel) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Installs (or removes) the channel's handler; same rules as [`Socket::set_handler`].
    pub fn set_handler(&self, handler: Option<Arc<dyn ChannelHandler>>) {
        let _ = self.send(Command::SetChannelHandler(self.shared.id, handler));
    }

    /// Joins the topic with `payload` (JSON). `on_reply` gets the first attempt's result;
    /// automatic rejoins (which use the socket's default timeout) report through
    /// [`ChannelHandler::on_rejoin`]. A second join on the
    /// same instance fails with `StateError` and `on_reply` is dropped uncalled.
    pub fn join(
        &self,
        payload: Body,
        timeout: Option<Duration>,
        on_reply: OnReply,
    ) -> Result<(), Status> {
        validate(&payload, &self.shared.topic, "phx_join")?;
        if self.shared.join_called.swap(true, Ordering::AcqRel) {
            return Err(Status::StateError);
        }
        let deadline = Instant::now() + timeout.unwrap_or(self.socket.config.default_timeout);
        self.send(Command::Join {
            channel: self.shared.id,
            payload,
            deadline,
            on_reply,
        })
    }

    /// Pushes `event` with `payload`. Sent at once when joined, buffered while joining or
    /// errored. The timeout counts from this call. Fails at once (and drops `on_reply`
    /// uncalled) with `StateError` before `join()` or on a closed or leaving channel, and with
    /// `InvalidArgument` on invalid JSON or a binary field over 255 bytes.
    pub fn push(
        &self,
        event: &str,
        payload: Body,
        timeout: Option<Duration>,
        on_reply: OnReply,
    ) -> Result<(), Status> {
        validate(&payload, &self.shared.topic, event)?;
        // The task re-checks the state; these are the cases decidable here without a race.
        if !self.shared.join_called.load(Ordering::Acquire)
            || self.shared.leave_called.load(Ordering::Acquire)
            || self.shared.retired.load(Ordering::Acquire)
        {
            return Err(Status::StateError);
        }
        let deadline = Instant::now() + timeout.unwrap_or(self.socket.config.default_timeout);
        self.send(Command::Push {
            channel: self.shared.id,
            event: event.into(),
            payload,
            deadline,
            on_reply,
        })
    }

    /// Leaves the channel: sends `phx_leave` and waits for the reply at most `timeout`
    /// (default: the configured leave timeout); the channel is closed either way. A join
    /// still pending completes with `LeftBeforeJoin`, buffered pushes with `Closed`.
    pub fn leave(&self, timeout: Option<Duration>, on_reply: OnReply) -> Result<(), Status> {
        self.shared.leave_called.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout.unwrap_or(self.socket.config.leave_timeout);
        self.send(Command::Leave {
            channel: self.shared.id,
            deadline,
            on_reply,
        })
    }

    fn send(&self, cmd: Command) -> Result<(), Status> {
        self.socket.cmd.send(cmd).map_err(|_| Status::Closed)
    }
}

fn validate(payload: &Body, topic: &str, event: &str) -> Result<(), Status> {
    match payload {
        Body::Json(text) if !is_valid_json(text) => Err(Status::InvalidArgument),
        Body::Binary(_) if topic.len() > MAX_BINARY_FIELD || event.len() > MAX_BINARY_FIELD => {
            Err(Status::InvalidArgument)
        }
        _ => Ok(()),
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
