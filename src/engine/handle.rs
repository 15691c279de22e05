//! The handles callers hold: [`Socket`] and [`Channel`].
//!
//! The socket's task owns the connection, the channels and every timer; handles send it
//! commands. What a call decides for the user (the socket's and the channels' states, the
//! channel cache, whether a join, push or leave is allowed) is decided here, synchronously,
//! under one lock per socket ([`Control`]), and the command is sent under the same lock, so:
//!
//! - a call's effect is visible when it returns: `state()`, `channel(topic)` and the checks of
//!   the next call see it, on any thread (read-your-writes);
//! - a call that fails, fails here with its status and never also completes;
//! - commands reach the task in the order their decisions were made.
//!
//! The task publishes the transitions only it can know (connected, joined, errored, closed by
//! the server). A transition is not published while a user command that decided a later state
//! of the same object is still on its way to the task, so a published user decision is never
//! overwritten by an older event ([`SocketShared::publish_socket`],
//! [`SocketShared::publish_channel`]).

use super::actor::{self, Ack, Command};
use super::commands::CommandQueue;
use super::connection::{Connector, TcpConnector};
use super::metrics::SocketMetrics;
use super::presence::PresenceList;
use super::runtime;
use super::types::*;
use super::url::{endpoint, Endpoint};
use super::{Completion, Config};
use crate::protocol::{is_valid_json, MAX_BINARY_FIELD};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// State shared between a socket's handles and its task.
pub(crate) struct SocketShared {
    pub(crate) cmd: CommandQueue<Command>,
    pub(crate) state: AtomicU8,
    pub(crate) last_reason: Mutex<Option<DisconnectReason>>,
    control: Mutex<Control>,
    /// Signalled when a state is published (only while someone waits).
    changed: Condvar,
    next_channel_id: AtomicU64,
    pub(crate) endpoint: Endpoint,
    pub(crate) config: Config,
    shut_down: AtomicBool,
}

/// What user calls decide synchronously; guarded by [`SocketShared`]'s lock.
#[derive(Default)]
pub(crate) struct Control {
    /// The channel cache: topic → the instance `channel(topic)` returns (removed once closed).
    topics: HashMap<Box<str>, Arc<ChannelShared>>,
    /// Every instance the task still tracks (what `disconnect()` closes).
    live: HashMap<u64, Arc<ChannelShared>>,
    /// Socket commands (connect, disconnect) sent and not yet taken up by the task.
    socket_pending: u32,
    /// Threads blocked in [`Socket::connect_wait`].
    waiters: usize,
    /// Instances joined and not yet closed (what [`Config::max_channels`] bounds).
    joined: usize,
}

/// State shared between a channel's handles and its socket's task.
pub(crate) struct ChannelShared {
    pub(crate) id: u64,
    pub(crate) topic: Box<str>,
    pub(crate) state: AtomicU8,
    /// `join()` was called on this instance (one join per instance).
    pub(crate) join_called: AtomicBool,
    /// `leave()` was called on this instance: pushes, joins and leaves fail from then on.
    pub(crate) leave_called: AtomicBool,
    /// The instance is closed for good: the cache hands out a fresh one.
    pub(crate) retired: AtomicBool,
    /// User commands that decided this channel's state, sent and not yet taken up by the
    /// task (changed under the socket's lock only).
    pending: AtomicU32,
    /// [`Channel`] handles alive; an unjoined instance without handles is released.
    handles: AtomicUsize,
    /// The presence list as of the last presence frame folded (published by the task).
    pub(crate) presence: Mutex<Arc<PresenceList>>,
    /// The event name of the last push, shared by the pushes that repeat it (most do), so a
    /// push allocates nothing for its event.
    last_event: Mutex<Option<Arc<str>>>,
}

impl SocketShared {
    fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    fn notify(&self, control: &Control) {
        if control.waiters > 0 {
            self.changed.notify_all();
        }
    }

    fn set_published(&self, control: &Control, state: SocketState) {
        self.state.store(state as u8, Ordering::Release);
        self.notify(control);
    }

    // ---- called by the socket's task --------------------------------------------------------

    /// The task takes up a connect or disconnect command.
    pub(crate) fn socket_command_taken(&self) {
        let mut c = self.control();
        c.socket_pending = c.socket_pending.saturating_sub(1);
    }

    /// The task takes up a user command about channel `ch` (join, leave, disconnect).
    pub(crate) fn channel_command_taken(&self, ch: &ChannelShared) {
        let _c = self.control();
        let n = ch.pending.load(Ordering::Relaxed);
        ch.pending.store(n.saturating_sub(1), Ordering::Relaxed);
    }

    /// Publishes the task's socket state unless a user command still on its way decided a
    /// later one.
    pub(crate) fn publish_socket(&self, state: SocketState) {
        let c = self.control();
        if c.socket_pending == 0 {
            self.set_published(&c, state);
        }
    }

    /// Publishes the task's state of channel `ch`: `closed` always (it is final, and the
    /// instance leaves the cache), any other state only if `ch` is not closed and no user
    /// command about it is still on its way.
    pub(crate) fn publish_channel(&self, ch: &ChannelShared, state: ChannelState) {
        let mut c = self.control();
        if state == ChannelState::Closed {
            retire(&mut c, ch);
            ch.publish_state(state);
        } else if ch.pending.load(Ordering::Relaxed) == 0 && !ch.retired.load(Ordering::Relaxed) {
            ch.publish_state(state);
        }
    }

    /// Releases an unjoined instance whose last handle is gone. True if it was released (the
    /// task then drops it); false if a handle was taken meanwhile or it was joined.
    pub(crate) fn release_unused(&self, ch: &ChannelShared) -> bool {
        let mut c = self.control();
        if ch.handles.load(Ordering::Acquire) > 0 || ch.join_called.load(Ordering::Acquire) {
            return false;
        }
        retire(&mut c, ch);
        true
    }

    /// Instances the cache and the live table still hold (for tests and diagnostics).
    pub(crate) fn tracked_channels(&self) -> usize {
        self.control().live.len()
    }
}

/// Takes a closed instance out of the cache and the live table.
fn retire(c: &mut Control, ch: &ChannelShared) {
    if !ch.retired.swap(true, Ordering::AcqRel) && ch.join_called.load(Ordering::Acquire) {
        c.joined -= 1;
    }
    if c.topics.get(&ch.topic).is_some_and(|t| t.id == ch.id) {
        c.topics.remove(&ch.topic);
    }
    c.live.remove(&ch.id);
}

impl ChannelShared {
    /// `event` as a shared name: the last push's if it is the same, else a new one (also when
    /// another thread is pushing on this channel at this instant: nobody waits here).
    fn event_name(&self, event: &str) -> Arc<str> {
        let Ok(mut last) = self.last_event.try_lock() else {
            return event.into();
        };
        match &*last {
            Some(name) if **name == *event => name.clone(),
            _ => {
                let name: Arc<str> = event.into();
                *last = Some(name.clone());
                name
            }
        }
    }

    pub(crate) fn publish_state(&self, s: ChannelState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Decides a state for the user: published now, and the task's older transitions are held
    /// back until it takes up the command (sent by the caller under the same lock).
    fn decide(&self, state: ChannelState) {
        self.pending
            .store(self.pending.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        self.publish_state(state);
    }
}

/// A Phoenix socket: one WebSocket connection and its channels, driven by one task.
///
/// Cloning gives another handle to the same socket. Dropping the last handle shuts the socket
/// down without waiting; call [`Socket::shutdown`] to wait for it. Every method may be called
/// from any thread, concurrently, and from inside handlers.
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
            self.0.notify(&self.0.control());
            let _ = self.0.cmd.send(Command::Shutdown(None));
        }
    }
}

/// A channel (one topic) of a socket. Cloning gives another handle to the same channel
/// instance. An instance that was never joined is released when its last handle is dropped.
pub struct Channel {
    shared: Arc<ChannelShared>,
    socket: Arc<SocketShared>,
}

impl Clone for Channel {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::AcqRel);
        Channel {
            shared: self.shared.clone(),
            socket: self.socket.clone(),
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1
            && !self.shared.join_called.load(Ordering::Acquire)
        {
            let _ = self.socket.cmd.send(Command::Release(self.shared.id));
        }
    }
}

/// Why [`Socket::connect_wait`] returned without a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// Not connected in time; the socket keeps trying.
    Timeout,
    /// `disconnect()` was called, the socket gave up reconnecting
    /// ([`Config::max_refusals`]), or it shut down, while waiting.
    Closed,
}

impl Socket {
    /// Creates a socket whose task runs on `runtime`, connecting with [`TcpConnector`] (TCP, and
    /// TLS for `wss://`). The URL must be `ws://` or `wss://`, and the TLS settings valid
    /// (see [`TcpConnector::from_config`]); nothing connects until
    /// [`Socket::connect`].
    pub fn new(config: Config, runtime: &tokio::runtime::Handle) -> Result<Socket, &'static str> {
        let connector = TcpConnector::from_config(&config)?;
        Self::create(config, Arc::new(connector), runtime)
    }

    /// Creates a socket on the process-wide shared runtime.
    pub fn new_shared(config: Config) -> Result<Socket, &'static str> {
        Self::new(config, runtime::shared())
    }

    /// Creates a socket that opens its byte streams through `connector` (tests use in-memory
    /// streams to run client and server on one paused clock). The configuration is checked as
    /// by [`Socket::new`], TLS settings included, though only a [`TcpConnector`] uses them.
    pub fn with_connector(
        config: Config,
        connector: Arc<dyn Connector>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Socket, &'static str> {
        TcpConnector::from_config(&config)?;
        Self::create(config, connector, runtime)
    }

    fn create(
        config: Config,
        connector: Arc<dyn Connector>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Socket, &'static str> {
        let endpoint = endpoint(&config.url, &config.params)?;
        super::auth::check_headers(&config.headers)?;
        let runtime = runtime.clone();
        let shared = Arc::new_cyclic(|me: &std::sync::Weak<SocketShared>| SocketShared {
            // The task is spawned by the first command (see `commands`); the sender holds
            // the socket, so it is alive then.
            cmd: CommandQueue::starting({
                let me = me.clone();
                move || {
                    if let Some(shared) = me.upgrade() {
                        runtime.spawn(actor::run(shared, connector));
                    }
                }
            }),
            state: AtomicU8::new(SocketState::Disconnected as u8),
            last_reason: Mutex::new(None),
            control: Mutex::new(Control::default()),
            changed: Condvar::new(),
            next_channel_id: AtomicU64::new(1),
            endpoint,
            config,
            shut_down: AtomicBool::new(false),
        });
        Ok(Socket {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        })
    }

    /// Opens the connection. Idempotent: does nothing unless the socket is disconnected. When
    /// it returns, the state is no longer `Disconnected`.
    pub fn connect(&self) {
        let mut c = self.shared.control();
        self.connect_locked(&mut c);
    }

    fn connect_locked(&self, c: &mut Control) {
        if self.state() == SocketState::Disconnected && !self.is_shut_down() {
            c.socket_pending += 1;
            self.shared.set_published(c, SocketState::Connecting);
            let _ = self.shared.cmd.send(Command::Connect);
        }
    }

    /// Connects (as [`Socket::connect`]) and blocks the calling thread until the socket is
    /// connected: `Ok` at once if it already is. Never call it on a library thread or inside
    /// an async context (it blocks the thread).
    pub fn connect_wait(&self, timeout: Duration) -> Result<(), WaitError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut c = self.shared.control();
        self.connect_locked(&mut c);
        loop {
            if self.is_shut_down() {
                return Err(WaitError::Closed);
            }
            match self.state() {
                SocketState::Connected => return Ok(()),
                // Only a `disconnect()` made after ours publishes this.
                SocketState::Disconnected => return Err(WaitError::Closed),
                _ => {}
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(WaitError::Timeout);
            }
            c.waiters += 1;
            c = self
                .shared
                .changed
                .wait_timeout(c, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            c.waiters -= 1;
        }
    }

    /// Closes the connection (code 1000) and stops reconnecting. Every channel that was joined
    /// becomes closed and every pending or buffered operation completes with
    /// [`Status::Closed`] at once. When it returns, the state is `Disconnected`, those channels
    /// are `Closed` and `channel(topic)` hands out fresh instances.
    pub fn disconnect(&self) {
        let mut c = self.shared.control();
        let closing: Vec<Arc<ChannelShared>> = c
            .live
            .values()
            .filter(|ch| ch.join_called.load(Ordering::Acquire))
            .cloned()
            .collect();
        for ch in &closing {
            retire(&mut c, ch);
            ch.decide(ChannelState::Closed);
        }
        let closing = closing.iter().map(|ch| ch.id).collect();
        c.socket_pending += 1;
        *lock(&self.shared.last_reason) = Some(DisconnectReason::ClientClosed);
        self.shared.set_published(&c, SocketState::Disconnected);
        let _ = self.shared.cmd.send(Command::Disconnect(closing));
    }

    /// The current state.
    pub fn state(&self) -> SocketState {
        SocketState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// Why the last connection ended or the last attempt failed, if any has.
    pub fn last_reason(&self) -> Option<DisconnectReason> {
        lock(&self.shared.last_reason).clone()
    }

    /// The socket's configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
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

    /// The channel for `topic`: the same instance while it is not closed, a fresh one after
    /// that (after a refused join, a completed `leave()`, `disconnect()` or the server's
    /// `phx_close`).
    pub fn channel(&self, topic: &str) -> Channel {
        let mut c = self.shared.control();
        let ch = match c.topics.get(topic) {
            Some(ch) => ch.clone(),
            None => {
                let ch = Arc::new(ChannelShared {
                    id: self.shared.next_channel_id.fetch_add(1, Ordering::Relaxed),
                    topic: topic.into(),
                    state: AtomicU8::new(ChannelState::Closed as u8),
                    join_called: AtomicBool::new(false),
                    leave_called: AtomicBool::new(false),
                    retired: AtomicBool::new(false),
                    pending: AtomicU32::new(0),
                    handles: AtomicUsize::new(0),
                    presence: Mutex::new(Arc::default()),
                    last_event: Mutex::new(None),
                });
                c.topics.insert(topic.into(), ch.clone());
                c.live.insert(ch.id, ch.clone());
                // Sent under the lock: no command about this instance can overtake it.
                let _ = self.shared.cmd.send(Command::AddChannel(ch.clone()));
                ch
            }
        };
        // Counted under the lock, so releasing an unused instance cannot race with it.
        ch.handles.fetch_add(1, Ordering::AcqRel);
        drop(c);
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
        let mut stats = rx.await.unwrap_or_default();
        stats.cached_channels = self.shared.tracked_channels();
        stats
    }

    /// The socket's statistics (round trips, connects, disconnect reasons, traffic, pushes).
    /// The socket's task answers at once, between two events.
    pub async fn metrics(&self) -> SocketMetrics {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.shared.cmd.send(Command::Metrics(tx)).is_err() {
            return SocketMetrics::default();
        }
        rx.await.unwrap_or_default()
    }

    /// [`Socket::metrics`], blocking the calling thread until the socket's task answers. Never
    /// call it on a library thread or inside an async context. `None` once the socket is shut
    /// down.
    pub fn metrics_blocking(&self) -> Option<SocketMetrics> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.cmd.send(Command::Metrics(tx)).ok()?;
        rx.blocking_recv().ok()
    }

    /// Sends a heartbeat at once (for an app back from the background or after a network
    /// change) and reports its round trip to `on_done`, or why there is none (see [`OnProbe`]).
    /// If a heartbeat is already awaited, its answer serves. The regular heartbeat schedule
    /// restarts from the probe. `Err(Status::Closed)` (and `on_done` is not called) once the
    /// socket is shut down.
    pub fn probe(&self, on_done: OnProbe) -> Result<(), Status> {
        if self.is_shut_down() {
            return Err(Status::Closed);
        }
        self.shared
            .cmd
            .send(Command::Probe(on_done))
            .map_err(|_| Status::Closed)
    }

    /// Threads blocked in [`Socket::connect_wait`] (for tests and diagnostics).
    #[doc(hidden)]
    pub fn blocked_waiters(&self) -> usize {
        self.shared.control().waiters
    }

    /// Channel instances the handles' cache tracks (for tests and diagnostics).
    #[doc(hidden)]
    pub fn tracked_channels(&self) -> usize {
        self.shared.tracked_channels()
    }

    fn is_shut_down(&self) -> bool {
        self.shared.shut_down.load(Ordering::Acquire)
    }

    /// Marks the socket shut down and wakes blocked waiters; false if it already was.
    fn begin_shutdown(&self) -> bool {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.shared.notify(&self.shared.control());
        true
    }

    /// Shuts the socket down: closes the connection, completes every pending operation with
    /// [`Status::Closed`] and releases every handler. Outside library threads it waits until
    /// that is done, so no callback of this socket runs after it returns; on a library thread
    /// (inside a callback) or inside an async context, where waiting could deadlock, it only
    /// starts it (use [`Socket::shutdown_async`] there).
    pub fn shutdown(&self) {
        if !self.begin_shutdown() {
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

    /// [`Socket::shutdown`] for async code: resolves once the socket's task has stopped.
    pub async fn shutdown_async(&self) {
        if !self.begin_shutdown() {
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

    /// Identifies the channel instance within its socket (instances of one topic differ).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The channel's state.
    pub fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.shared.state.load(Ordering::Acquire))
    }

    /// The channel's presence list: `presence_state` and `presence_diff` folded as
    /// Phoenix.Presence sends them (phoenix.js's `Presence.list`). A snapshot: later frames
    /// make new ones. Updated before the handler's `on_presence` and `on_presence_sync` calls
    /// for the frame, so those see the list they report. Empty until the first
    /// `presence_state`; kept as it was after the channel closes.
    pub fn presence(&self) -> Arc<PresenceList> {
        lock(&self.shared.presence).clone()
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
    /// [`ChannelHandler::on_rejoin`]. Fails at once, dropping `on_reply` uncalled, with
    /// `StateError` for a second join or a join after `leave()` or on a closed instance, and
    /// with `InvalidArgument` for invalid JSON, and with `TooManyChannels` when the socket
    /// already has [`Config::max_channels`] channels joined or joining (this one stays
    /// unjoined and may join later). When it returns `Ok` the state is `Joining`.
    pub fn join(
        &self,
        payload: Body,
        timeout: Option<Duration>,
        on_reply: OnReply,
    ) -> Result<(), Status> {
        validate(&payload, &self.shared.topic, "phx_join")?;
        self.check_open()?;
        let deadline = Instant::now() + timeout.unwrap_or(self.socket.config.default_timeout);
        let mut c = self.socket.control();
        let ch = &self.shared;
        if ch.join_called.load(Ordering::Acquire)
            || ch.leave_called.load(Ordering::Acquire)
            || ch.retired.load(Ordering::Acquire)
        {
            return Err(self.refused());
        }
        if c.joined >= self.socket.config.max_channels {
            return Err(Status::TooManyChannels);
        }
        c.joined += 1;
        ch.join_called.store(true, Ordering::Release);
        ch.decide(ChannelState::Joining);
        self.send(Command::Join {
            channel: self.shared.id,
            payload,
            deadline,
            on_reply,
        })
    }

    /// Pushes `event` with `payload`. Sent at once when joined, buffered while joining or
    /// errored. The timeout counts from this call. Fails at once (and drops `on_reply`
    /// uncalled) with `StateError` before `join()`, after `leave()` or on a closed channel,
    /// and with `InvalidArgument` on invalid JSON or a binary field over 255 bytes. A push
    /// accepted while another thread closes the channel completes with `Closed`.
    pub fn push(
        &self,
        event: &str,
        payload: Body,
        timeout: Option<Duration>,
        on_reply: OnReply,
    ) -> Result<(), Status> {
        self.push_with(event, payload, timeout, Completion::Boxed(on_reply))
    }

    /// [`Channel::push`] with any completion: one refused at once is disarmed (it never
    /// fires).
    pub(crate) fn push_with(
        &self,
        event: &str,
        payload: Body,
        timeout: Option<Duration>,
        on_reply: Completion,
    ) -> Result<(), Status> {
        self.try_push(event, payload, timeout, on_reply)
            .map_err(|(status, on_reply)| {
                on_reply.disarm();
                status
            })
    }

    fn try_push(
        &self,
        event: &str,
        payload: Body,
        timeout: Option<Duration>,
        on_reply: Completion,
    ) -> Result<(), (Status, Completion)> {
        if let Err(status) = validate(&payload, &self.shared.topic, event).and(self.check_open()) {
            return Err((status, on_reply));
        }
        // Lock-free: these flags only ever go from false to true, each before the call that
        // set it returned.
        if !self.shared.join_called.load(Ordering::Acquire)
            || self.shared.leave_called.load(Ordering::Acquire)
            || self.shared.retired.load(Ordering::Acquire)
        {
            return Err((self.refused(), on_reply));
        }
        let deadline = Instant::now() + timeout.unwrap_or(self.socket.config.default_timeout);
        let sent = self.socket.cmd.send(Command::Push {
            channel: self.shared.id,
            event: self.shared.event_name(event),
            payload,
            deadline,
            on_reply,
        });
        sent.map_err(|refused| match refused {
            Command::Push { on_reply, .. } => (Status::Closed, on_reply),
            _ => unreachable!("the command sent"),
        })
    }

    /// Leaves the channel: sends `phx_leave` and waits for the reply at most `timeout`
    /// (default: the configured leave timeout); the channel is closed either way. A join
    /// still pending completes with `LeftBeforeJoin`, buffered pushes with `Closed`. A second
    /// `leave()` fails at once with `StateError`. When it returns `Ok` the state is `Leaving`,
    /// or `Closed` for a channel that was never joined (nothing to tell the server) or that
    /// is closed already.
    pub fn leave(&self, timeout: Option<Duration>, on_reply: OnReply) -> Result<(), Status> {
        self.check_open()?;
        let deadline = Instant::now() + timeout.unwrap_or(self.socket.config.leave_timeout);
        let mut c = self.socket.control();
        let ch = &self.shared;
        if ch.leave_called.swap(true, Ordering::AcqRel) {
            return Err(Status::StateError);
        }
        if !ch.join_called.load(Ordering::Acquire) || ch.retired.load(Ordering::Acquire) {
            retire(&mut c, ch);
        } else {
            ch.decide(ChannelState::Leaving);
        }
        self.send(Command::Leave {
            channel: self.shared.id,
            deadline,
            on_reply,
        })
    }

    fn send(&self, cmd: Command) -> Result<(), Status> {
        self.socket.cmd.send(cmd).map_err(|_| Status::Closed)
    }

    /// `Closed` once the socket is shutting down (which closes every channel).
    fn check_open(&self) -> Result<(), Status> {
        if self.socket.shut_down.load(Ordering::Acquire) {
            return Err(Status::Closed);
        }
        Ok(())
    }

    /// The status of a call the channel's state refuses: `Closed` if the socket was shut down
    /// since [`check_open`](Self::check_open) (its task then retires every channel), else
    /// `StateError`.
    fn refused(&self) -> Status {
        self.check_open().err().unwrap_or(Status::StateError)
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
