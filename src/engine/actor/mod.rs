//! The socket's task: sole owner of the connection, the channels, the replies awaited, the push
//! buffers and the timers. See the module documentation of `engine` for why.
//!
//! - `mod.rs`: the actor's state, its event loop and command dispatch, and reporting to handlers.
//! - `lifecycle.rs`: opening, losing and re-opening the connection; heartbeat; timers.
//! - `joins.rs`, `pushes.rs`, `closing.rs`: the channel operations and their completions.
//! - `inbound.rs`: frames from the server: routing, stale filtering, replies, messages.
//! - `outbound.rs`: encoding frames into the write queue.

mod closing;
mod fast_map;
mod health;
mod inbound;
mod joins;
mod lifecycle;
mod outbound;
mod pushes;
mod seq_map;

use fast_map::FastMap;
use outbound::{send_binary, send_push_text, send_text};
use seq_map::SeqMap;

use super::connection::{self, Conn, Connector, Ws};
use super::handle::{lock, ChannelShared, SocketShared};
use super::jitter::Jitter;
use super::metrics::{Counters, SocketMetrics};
use super::presence::{PresenceTracker, PRESENCE_DIFF, PRESENCE_STATE};
use super::reclaim::Shrink;
use super::runtime;
use super::timers::{Timer, TimerKey, Timers};
use super::types::*;
use super::{Completion, Config};
use crate::protocol::{self, Frame, PHX_CLOSE, PHX_ERROR, PHX_JOIN, PHX_LEAVE};
use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroU64;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What handles ask of the actor.
pub(crate) enum Command {
    Connect,
    /// Disconnect; the channels listed were closed by the call.
    Disconnect(Vec<u64>),
    SetSocketHandler(Option<Arc<dyn SocketHandler>>),
    AddChannel(Arc<ChannelShared>),
    /// The last handle of this channel was dropped: release it if it was never joined.
    Release(u64),
    SetChannelHandler(u64, Option<Arc<dyn ChannelHandler>>),
    Join {
        channel: u64,
        payload: Body,
        deadline: Instant,
        on_reply: OnReply,
    },
    Push {
        channel: u64,
        event: Arc<str>,
        payload: Body,
        deadline: Instant,
        on_reply: Completion,
    },
    Leave {
        channel: u64,
        deadline: Instant,
        on_reply: OnReply,
    },
    Stats(tokio::sync::oneshot::Sender<EngineStats>),
    /// Stop: complete everything with `Closed`, release handlers, then signal the sender.
    Shutdown(Option<Ack>),
    /// The socket's counters, answered at once.
    Metrics(tokio::sync::oneshot::Sender<SocketMetrics>),
    /// Send a heartbeat now and report its round trip.
    Probe(OnProbe),
}

/// Tells a waiter the socket's task has stopped.
pub(crate) enum Ack {
    Blocking(std::sync::mpsc::Sender<()>),
    Async(tokio::sync::oneshot::Sender<()>),
}

impl Ack {
    fn send(self) {
        match self {
            Ack::Blocking(tx) => drop(tx.send(())),
            Ack::Async(tx) => drop(tx.send(())),
        }
    }
}

/// A push, from `push()` until it completes.
struct PushOp {
    channel: u64,
    event: Arc<str>,
    payload: Body,
    on_reply: Completion,
    timer: TimerKey,
    /// Set once sent: the ref its reply will carry.
    sent_ref: Option<NonZeroU64>,
    /// Its frame's position in the connection's write queue, once sent.
    queued_at: Option<QueuedAt>,
}

/// A frame's position in the write queue, plus one (so an `Option` of it takes no more room:
/// a push's state is moved whole between its tables).
#[derive(Clone, Copy)]
struct QueuedAt(NonZeroU64);

impl QueuedAt {
    fn new(position: u64) -> Option<Self> {
        NonZeroU64::new(position.wrapping_add(1)).map(QueuedAt)
    }

    fn position(self) -> u64 {
        self.0.get() - 1
    }
}

/// What a ref awaiting a reply belongs to.
#[derive(Clone, Copy)]
enum Awaiting {
    Join(u64),
    Push(u64),
    Leave(u64),
}

/// The actor's view of one channel.
struct Chan {
    shared: Arc<ChannelShared>,
    state: ChannelState,
    handler: Option<Arc<dyn ChannelHandler>>,
    join_payload: Body,
    /// The join_ref of the current attempt (set when its `phx_join` is sent, cleared when the
    /// attempt fails or the channel closes), and its text for comparing with frames.
    join_ref: Option<u64>,
    join_ref_text: String,
    /// The topic as a JSON string, escaped once for every push frame.
    topic_json: Box<str>,
    /// The event name of the last JSON push and the part of its frame between ref and
    /// payload (`protocol::write_push_middle`), kept for the pushes that repeat the name.
    push_event: Option<Arc<str>>,
    push_middle: String,
    join_timer: Option<TimerKey>,
    /// The user's `join()` completion, until the first attempt completes.
    join_completion: Option<OnReply>,
    /// Push operation ids waiting for the join, in order (so sorted: ids only grow). A push
    /// that times out leaves it at once.
    buffer: VecDeque<u64>,
    rejoin_attempts: u32,
    rejoin_timer: Option<TimerKey>,
    leave: Option<(OnReply, TimerKey)>,
    /// The presence list, folded from `presence_state` and `presence_diff`.
    presence: PresenceTracker,
    /// A join attempt of this instance succeeded once: a later rejoin may have missed messages.
    was_joined: bool,
}

impl Chan {
    /// Makes `push_middle` the part of a JSON push frame of `event` between its ref and its
    /// payload.
    fn prepare_push(&mut self, event: &Arc<str>) {
        let same = self
            .push_event
            .as_ref()
            .is_some_and(|e| Arc::ptr_eq(e, event) || **e == **event);
        if !same {
            self.push_middle.clear();
            protocol::write_push_middle(&mut self.push_middle, &self.topic_json, event);
            self.push_event = Some(event.clone());
        }
    }
}

/// How an operation ended: the status and, when the server answered, its reply.
#[derive(Clone, Copy)]
struct Outcome<'a> {
    status: Status,
    reply: Option<ReplyRef<'a>>,
}

impl<'a> Outcome<'a> {
    /// The server's answer: `Ok` for status `"ok"`, `ReplyError` for any other.
    fn replied(reply: ReplyRef<'a>) -> Self {
        let status = if reply.status == "ok" {
            Status::Ok
        } else {
            Status::ReplyError
        };
        Outcome {
            status,
            reply: Some(reply),
        }
    }
}

impl Outcome<'static> {
    fn of(status: Status) -> Self {
        Outcome {
            status,
            reply: None,
        }
    }
}

enum Event {
    Command(Command),
    Frame(WsMessage),
    ConnLost(DisconnectReason),
    Opened(Result<Box<Ws>, DisconnectReason>),
    TimerDue,
}

/// Events handled at most between two writes of the queued frames: the whole fairness budget,
/// so under a steady inflow frames leave once per batch (when the task yields) rather than
/// twice, and otherwise as soon as the inputs are drained.
const WRITE_BATCH: u32 = FAIRNESS_BUDGET;

/// Events handled in one poll of the task before it yields: a socket that always has input
/// (a flood, a slow handler) still lets the runtime drive timers and I/O and run the other
/// sockets' tasks on this worker.
const FAIRNESS_BUDGET: u32 = 128;

/// Under load, due timers are looked for every this many events (a clock read each time).
const CLOCK_EVERY: u32 = 8;

type Opening = Pin<Box<dyn Future<Output = Result<Box<Ws>, DisconnectReason>> + Send>>;

struct Actor {
    shared: Arc<SocketShared>,
    connector: Arc<dyn Connector>,
    handler: Option<Arc<dyn SocketHandler>>,
    state: SocketState,
    /// The user wants a connection (between `connect()` and `disconnect()`).
    wanted: bool,
    conn: Option<Conn>,
    opening: Option<Opening>,
    /// Reason from a close frame, reported when the stream then ends (boxed: rare, and the
    /// task's size counts for every socket).
    close_reason: Option<Box<DisconnectReason>>,
    reconnect_attempts: u32,
    reconnect_timer: Option<TimerKey>,
    heartbeat_timer: Option<TimerKey>,
    heartbeat_pending: Option<NonZeroU64>,
    /// A frame arrived since the pending heartbeat was sent: the server is not silent.
    heard_since_heartbeat: bool,
    next_ref: u64,
    /// Decimal text of the refs pushes carry.
    ref_text: itoa::Buffer,
    /// Boxed: a table of a few 320-byte entries would hold room for several in every socket.
    channels: FastMap<u64, Box<Chan>>,
    /// Channel ids per topic (more than one only while an old instance is still leaving).
    by_topic: FastMap<Box<str>, Vec<u64>>,
    /// Keyed by ref.
    awaiting: SeqMap<Awaiting>,
    /// Keyed by operation id.
    pushes: SeqMap<PushOp>,
    next_op: u64,
    timers: Timers,
    sleep: Pin<Box<Sleep>>,
    /// Alternates which input is polled first, so neither commands nor frames starve.
    frames_first: bool,
    /// Events handled since queued frames were last written.
    unwritten: u32,
    /// Events left before the task yields to the runtime (see [`FAIRNESS_BUDGET`]).
    budget: u32,
    /// When the current batch of events began (real time: what other sockets wait).
    batch_started: std::time::Instant,
    /// This socket's last batch was slow: its callbacks run through `block_in_place`.
    isolated: bool,
    /// The runtime can move a worker's tasks away (multi-threaded); false on a
    /// current-thread runtime, where `block_in_place` is not available.
    can_isolate: bool,
    /// `Stats` requests, answered when the task is next idle.
    stats_wanted: Vec<tokio::sync::oneshot::Sender<EngineStats>>,
    stopped: bool,
    counters: Counters,
    jitter: Jitter,
    /// When the pending heartbeat was sent (its round trip is measured from there).
    heartbeat_sent: Option<Instant>,
    /// When the next heartbeat is due (the heartbeat timer may fire earlier, for the timeout).
    next_heartbeat_at: Option<Instant>,
    /// `probe()` calls waiting for the pending heartbeat's reply.
    probes: Vec<OnProbe>,
    /// Consecutive refused upgrades since a connection last opened.
    refusals: u32,
}

/// Runs a socket until it is shut down.
pub(crate) fn run(
    shared: Arc<SocketShared>,
    connector: Arc<dyn Connector>,
) -> impl Future<Output = ()> + Send {
    // An argument of the task's future, so dropped with it even if it never ran (and after
    // the actor's state otherwise): if the runtime drops the task before a shutdown, later
    // sends fail (and drop their completions) instead of queueing for nobody.
    run_actor(CloseOnDrop(shared), connector)
}

async fn run_actor(close: CloseOnDrop, connector: Arc<dyn Connector>) {
    let shared = close.0.clone();
    let jitter = Jitter::new(shared.config.jitter_seed);
    let mut actor = Actor {
        shared,
        connector,
        handler: None,
        state: SocketState::Disconnected,
        wanted: false,
        conn: None,
        opening: None,
        close_reason: None,
        reconnect_attempts: 0,
        reconnect_timer: None,
        heartbeat_timer: None,
        heartbeat_pending: None,
        heard_since_heartbeat: false,
        next_ref: 0,
        ref_text: itoa::Buffer::new(),
        channels: FastMap::default(),
        by_topic: FastMap::default(),
        awaiting: SeqMap::default(),
        pushes: SeqMap::default(),
        next_op: 0,
        timers: Timers::default(),
        sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
        frames_first: false,
        unwritten: 0,
        budget: FAIRNESS_BUDGET,
        stats_wanted: Vec::new(),
        batch_started: std::time::Instant::now(),
        isolated: false,
        can_isolate: tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread,
        stopped: false,
        counters: Counters::default(),
        jitter,
        heartbeat_sent: None,
        next_heartbeat_at: None,
        probes: Vec::new(),
        refusals: 0,
    };
    while !actor.stopped {
        let event = std::future::poll_fn(|cx| {
            let polled = actor.poll_event(cx);
            if polled.is_pending() {
                runtime::end_batch();
            }
            polled
        })
        .await;
        runtime::begin_batch(actor.isolated);
        // A panic here is a libphx bug; keep it from killing the task silently mid-state.
        let handled = catch_unwind(AssertUnwindSafe(|| actor.handle(event)));
        if handled.is_err() {
            actor.log(LogLevel::Error, "internal error: event handler panicked");
        }
    }
    runtime::end_batch();
}

impl Actor {
    fn config(&self) -> &Config {
        &self.shared.config
    }

    // ---- the event loop -------------------------------------------------------------------

    /// The next event. Frames queued while handling events are written when the inputs are
    /// idle (or every `WRITE_BATCH` events under a steady inflow), so a burst of pushes or
    /// replies leaves in one write instead of one system call each.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if self.unwritten >= WRITE_BATCH {
            if let Err(reason) = self.poll_write(cx) {
                return Poll::Ready(Event::ConnLost(reason));
            }
        }
        if self.budget == FAIRNESS_BUDGET {
            self.batch_started = std::time::Instant::now();
        }
        if self.budget == 0 {
            self.end_batch();
            if let Err(reason) = self.poll_write(cx) {
                return Poll::Ready(Event::ConnLost(reason));
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Poll::Ready(ev) = self.poll_input(cx) {
            self.unwritten += 1;
            self.budget -= 1;
            return Poll::Ready(ev);
        }
        self.end_batch();
        if let Err(reason) = self.poll_write(cx) {
            return Poll::Ready(Event::ConnLost(reason));
        }
        if !self.stats_wanted.is_empty() {
            let stats = self.stats();
            for tx in self.stats_wanted.drain(..) {
                let _ = tx.send(stats);
            }
        }
        Poll::Pending
    }

    /// A batch of events ends (the task yields or goes idle): one that took long enough to
    /// starve other sockets marks this socket's callbacks slow (see `runtime`); a quick one
    /// (under a quarter of that) clears the mark, so a passing stall (the thread preempted,
    /// one slow callback) costs nothing for long.
    fn end_batch(&mut self) {
        if self.budget < FAIRNESS_BUDGET && self.can_isolate {
            let took = self.batch_started.elapsed();
            if took > runtime::SLOW_BATCH {
                self.isolated = true;
            } else if took < runtime::SLOW_BATCH / 4 {
                self.isolated = false;
            }
        }
        self.budget = FAIRNESS_BUDGET;
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), DisconnectReason> {
        self.unwritten = 0;
        match &mut self.conn {
            Some(conn) => conn.poll_write(cx).map_err(connection::reason_of),
            None => Ok(()),
        }
    }

    /// Due timers come first, whatever the load: a timeout or heartbeat is never held back
    /// by frames or commands that keep arriving. The clock is read every [`CLOCK_EVERY`]
    /// events under load; the Tokio timer is armed only when the inputs are idle.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if self.budget % CLOCK_EVERY == 0 {
            if let Some(deadline) = self.timers.next_deadline() {
                if deadline <= Instant::now() {
                    return Poll::Ready(Event::TimerDue);
                }
            }
        }
        self.frames_first = !self.frames_first;
        if self.frames_first {
            if let Poll::Ready(ev) = self.poll_frame(cx) {
                return Poll::Ready(ev);
            }
        }
        match self.shared.cmd.poll_recv(cx) {
            Poll::Ready(Some(cmd)) => return Poll::Ready(Event::Command(cmd)),
            // Every handle is gone without a shutdown (cannot happen through the API).
            Poll::Ready(None) => return Poll::Ready(Event::Command(Command::Shutdown(None))),
            Poll::Pending => {}
        }
        if !self.frames_first {
            if let Poll::Ready(ev) = self.poll_frame(cx) {
                return Poll::Ready(ev);
            }
        }
        if let Some(opening) = &mut self.opening {
            if let Poll::Ready(result) = opening.as_mut().poll(cx) {
                self.opening = None;
                return Poll::Ready(Event::Opened(result));
            }
        }
        if let Some(deadline) = self.timers.next_deadline() {
            if self.sleep.deadline() != deadline {
                self.sleep.as_mut().reset(deadline);
            }
            if self.sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::TimerDue);
            }
        }
        Poll::Pending
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        let Some(conn) = &mut self.conn else {
            return Poll::Pending;
        };
        match conn.poll_read(cx) {
            Poll::Ready(Some(Ok(msg))) => Poll::Ready(Event::Frame(msg)),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Event::ConnLost(connection::reason_of(e))),
            Poll::Ready(None) => Poll::Ready(Event::ConnLost(
                self.close_reason
                    .take()
                    .map_or_else(|| DisconnectReason::Io("connection closed".into()), |r| *r),
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Command(cmd) => self.command(cmd),
            Event::Frame(msg) => self.frame(msg),
            Event::ConnLost(reason) => self.connection_lost(reason),
            Event::Opened(Ok(ws)) => self.opened(ws),
            Event::Opened(Err(reason)) => self.attempt_failed(reason),
            Event::TimerDue => {
                let now = Instant::now();
                while let Some(timer) = self.timers.pop_due(now) {
                    self.timer(timer);
                }
            }
        }
    }

    // ---- commands ---------------------------------------------------------------------------

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Connect => {
                self.shared.socket_command_taken();
                if self.state == SocketState::Disconnected {
                    self.wanted = true;
                    self.set_state(SocketState::Connecting, None);
                    self.start_opening();
                }
            }
            Command::Disconnect(closed) => {
                self.shared.socket_command_taken();
                for id in closed {
                    self.user_command_taken(id);
                }
                self.disconnect();
            }
            Command::SetSocketHandler(h) => self.handler = h,
            Command::AddChannel(shared) => self.add_channel(shared),
            Command::Release(id) => self.release_unused(id),
            Command::SetChannelHandler(id, h) => {
                if let Some(ch) = self.channels.get_mut(&id) {
                    ch.handler = h;
                }
            }
            Command::Join {
                channel,
                payload,
                deadline,
                on_reply,
            } => {
                self.user_command_taken(channel);
                self.join(channel, payload, deadline, on_reply)
            }
            Command::Push {
                channel,
                event,
                payload,
                deadline,
                on_reply,
            } => self.push(channel, event, payload, deadline, on_reply),
            Command::Leave {
                channel,
                deadline,
                on_reply,
            } => {
                self.user_command_taken(channel);
                self.leave(channel, deadline, on_reply)
            }
            // Answered once the task is idle, so the figures are those of a settled socket.
            Command::Stats(tx) => self.stats_wanted.push(tx),
            Command::Metrics(tx) => drop(tx.send(self.metrics())),
            Command::Probe(on_done) => self.probe(on_done),
            Command::Shutdown(ack) => {
                // Release the handlers first: nothing but completions runs from here on.
                self.handler = None;
                for ch in self.channels.values_mut() {
                    ch.handler = None;
                }
                self.disconnect();
                self.channels.clear();
                self.by_topic.clear();
                self.stopped = true;
                // Operations queued behind the shutdown still complete exactly once.
                for cmd in self.shared.cmd.close() {
                    match cmd {
                        Command::Join { on_reply, .. } | Command::Leave { on_reply, .. } => {
                            complete(on_reply, Outcome::of(Status::Closed))
                        }
                        Command::Push { on_reply, .. } => {
                            complete(on_reply, Outcome::of(Status::Closed))
                        }
                        Command::Shutdown(Some(other)) => other.send(),
                        Command::Probe(on_done) => call_user(|| on_done(Err(Status::Closed))),
                        _ => {}
                    }
                }
                if let Some(ack) = ack {
                    ack.send();
                }
            }
        }
    }

    fn add_channel(&mut self, shared: Arc<ChannelShared>) {
        let id = shared.id;
        let mut topic_json = String::new();
        protocol::write_json_string(&mut topic_json, &shared.topic);
        self.by_topic
            .entry(shared.topic.clone())
            .or_default()
            .push(id);
        self.channels.insert(
            id,
            Box::new(Chan {
                shared,
                state: ChannelState::Closed,
                handler: None,
                join_payload: Body::Json("{}".into()),
                join_ref: None,
                join_ref_text: String::new(),
                topic_json: topic_json.into(),
                push_event: None,
                push_middle: String::new(),
                join_timer: None,
                join_completion: None,
                buffer: VecDeque::new(),
                rejoin_attempts: 0,
                rejoin_timer: None,
                leave: None,
                presence: PresenceTracker::default(),
                was_joined: false,
            }),
        );
    }

    /// The handle decided channel `id`'s state for a command now taken up.
    fn user_command_taken(&mut self, id: u64) {
        if let Some(ch) = self.channels.get(&id) {
            self.shared.channel_command_taken(&ch.shared);
        }
    }

    /// Drops a never-joined channel whose handles are all gone.
    fn release_unused(&mut self, id: u64) {
        let unused = self.channels.get(&id).is_some_and(|ch| {
            ch.state == ChannelState::Closed
                && ch.join_completion.is_none()
                && self.shared.release_unused(&ch.shared)
        });
        if unused {
            self.retire(id);
        }
    }

    // ---- reporting --------------------------------------------------------------------------

    fn set_state(&mut self, state: SocketState, reason: Option<&DisconnectReason>) {
        if self.state == state {
            return;
        }
        self.state = state;
        self.shared.publish_socket(state);
        if let Some(h) = self.handler.clone() {
            call_user(|| h.on_state(state, reason));
        }
    }

    fn set_channel_state(&mut self, id: u64, state: ChannelState) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        if ch.state == state {
            return;
        }
        ch.state = state;
        self.shared.publish_channel(&ch.shared, state);
        if let Some(h) = ch.handler.clone() {
            call_user(|| h.on_state(state));
        }
    }

    fn notify_rejoin(&mut self, id: u64, outcome: Outcome<'_>) {
        if let Some(h) = self.channels.get(&id).and_then(|c| c.handler.clone()) {
            call_user(|| h.on_rejoin(outcome.status, outcome.reply));
        }
    }

    fn notify_rejoined(&mut self, id: u64, reply: ReplyRef<'_>, missed: bool) {
        if let Some(h) = self.channels.get(&id).and_then(|c| c.handler.clone()) {
            call_user(|| h.on_rejoined(reply, missed));
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.log_to("phx::socket", level, message);
    }

    /// A log line from part `target` of the engine, if the configured level lets it through.
    fn log_to(&self, target: &str, level: LogLevel, message: &str) {
        if level > self.config().log_level {
            return;
        }
        if let Some(h) = self.handler.clone() {
            call_user(|| h.on_log_record(level, target, message));
        }
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            channels: self.channels.len(),
            pending_replies: self.awaiting.len(),
            buffered_pushes: self
                .pushes
                .values()
                .filter(|p| p.sent_ref.is_none())
                .count(),
            operation_timers: self.timers.operation_timers(),
            outbox: self.conn.as_ref().map_or(0, Conn::queued),
            buffer_slots: self.channels.values().map(|c| c.buffer.len()).sum(),
            held_presence_diffs: self.channels.values().map(|c| c.presence.held_back()).sum(),
            cached_channels: 0,
            outbox_bytes: self.conn.as_ref().map_or(0, Conn::queued_bytes),
            table_capacity: self.shared.cmd.capacity()
                + self.awaiting.capacity()
                + self.pushes.capacity()
                + self.timers.capacity()
                + self.conn.as_ref().map_or(0, Conn::capacity),
        }
    }
}

/// Closes the command queue when the socket's task ends, however it ends.
struct CloseOnDrop(Arc<SocketShared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // Dropped here, outside the queue's lock: a completion's drop may call the library.
        drop(self.0.cmd.close());
    }
}

/// Calls user code: marked as a library thread (so blocking calls refuse), panics contained.
fn call_user(f: impl FnOnce()) {
    runtime::run_callback(|| {
        let _ = catch_unwind(AssertUnwindSafe(f));
    });
}

fn complete(on_reply: impl Into<Completion>, outcome: Outcome<'_>) {
    let on_reply = on_reply.into();
    call_user(|| on_reply.call(outcome.status, outcome.reply));
}
