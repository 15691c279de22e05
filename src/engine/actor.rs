//! The socket's task: sole owner of the connection, the channels, the replies awaited, the push
//! buffers and the timers. See the module documentation of `engine` for why.

use super::connection::{self, Conn, Connector, Ws};
use super::handle::{lock, ChannelShared, SocketShared};
use super::runtime::CallbackGuard;
use super::timers::{Timer, TimerKey, Timers};
use super::types::*;
use super::Config;
use crate::protocol::{self, Frame, PHX_CLOSE, PHX_ERROR, PHX_JOIN, PHX_LEAVE};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What handles ask of the actor.
pub(crate) enum Command {
    Connect,
    Disconnect,
    SetSocketHandler(Option<Arc<dyn SocketHandler>>),
    AddChannel(Arc<ChannelShared>),
    SetChannelHandler(u64, Option<Arc<dyn ChannelHandler>>),
    Join {
        channel: u64,
        payload: Body,
        deadline: Instant,
        on_reply: OnReply,
    },
    Push {
        channel: u64,
        event: Box<str>,
        payload: Body,
        deadline: Instant,
        on_reply: OnReply,
    },
    Leave {
        channel: u64,
        deadline: Instant,
        on_reply: OnReply,
    },
    Stats(tokio::sync::oneshot::Sender<EngineStats>),
    /// Stop: complete everything with `Closed`, release handlers, then signal the sender.
    Shutdown(Option<Ack>),
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
    event: Box<str>,
    payload: Body,
    on_reply: OnReply,
    timer: TimerKey,
    /// Set once sent: the ref its reply will carry.
    sent_ref: Option<u64>,
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
    join_timer: Option<TimerKey>,
    /// The user's `join()` completion, until the first attempt completes.
    join_completion: Option<OnReply>,
    /// Push operation ids waiting for the join, in order (ids of expired pushes are skipped).
    buffer: VecDeque<u64>,
    rejoin_attempts: u32,
    rejoin_timer: Option<TimerKey>,
    leave: Option<(OnReply, TimerKey)>,
}

/// Why an operation ended without its own reply, and what to hand its completion.
#[derive(Clone, Copy)]
struct Failure<'a> {
    status: Status,
    reply: Option<ReplyRef<'a>>,
}

impl Failure<'static> {
    fn of(status: Status) -> Self {
        Failure {
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

type Opening = Pin<Box<dyn Future<Output = Result<Box<Ws>, DisconnectReason>> + Send>>;

struct Actor {
    shared: Arc<SocketShared>,
    commands: UnboundedReceiver<Command>,
    connector: Arc<dyn Connector>,
    handler: Option<Arc<dyn SocketHandler>>,
    state: SocketState,
    /// The user wants a connection (between `connect()` and `disconnect()`).
    wanted: bool,
    conn: Option<Conn>,
    opening: Option<Opening>,
    /// Reason from a close frame, reported when the stream then ends.
    close_reason: Option<DisconnectReason>,
    reconnect_attempts: u32,
    reconnect_timer: Option<TimerKey>,
    heartbeat_timer: Option<TimerKey>,
    heartbeat_pending: Option<u64>,
    next_ref: u64,
    channels: HashMap<u64, Chan>,
    /// Channel ids per topic (more than one only while an old instance is still leaving).
    by_topic: HashMap<Box<str>, Vec<u64>>,
    awaiting: HashMap<u64, Awaiting>,
    pushes: HashMap<u64, PushOp>,
    next_op: u64,
    timers: Timers,
    sleep: Pin<Box<Sleep>>,
    /// Alternates which input is polled first, so neither commands nor frames starve.
    frames_first: bool,
    stopped: bool,
}

/// Runs a socket until it is shut down.
pub(crate) async fn run(
    shared: Arc<SocketShared>,
    commands: UnboundedReceiver<Command>,
    connector: Arc<dyn Connector>,
) {
    let mut actor = Actor {
        shared,
        commands,
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
        next_ref: 0,
        channels: HashMap::new(),
        by_topic: HashMap::new(),
        awaiting: HashMap::new(),
        pushes: HashMap::new(),
        next_op: 0,
        timers: Timers::default(),
        sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
        frames_first: false,
        stopped: false,
    };
    while !actor.stopped {
        let event = std::future::poll_fn(|cx| actor.poll_event(cx)).await;
        // A panic here is a libphx bug; keep it from killing the task silently mid-state.
        let handled = catch_unwind(AssertUnwindSafe(|| actor.handle(event)));
        if handled.is_err() {
            actor.log(LogLevel::Error, "internal error: event handler panicked");
        }
    }
}

impl Actor {
    fn config(&self) -> &Config {
        &self.shared.config
    }

    // ---- the event loop -------------------------------------------------------------------

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Some(conn) = &mut self.conn {
            if let Err(e) = conn.poll_write(cx) {
                return Poll::Ready(Event::ConnLost(connection::reason_of(e)));
            }
        }
        self.frames_first = !self.frames_first;
        if self.frames_first {
            if let Poll::Ready(ev) = self.poll_frame(cx) {
                return Poll::Ready(ev);
            }
        }
        match self.commands.poll_recv(cx) {
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
            Poll::Ready(None) => {
                Poll::Ready(Event::ConnLost(self.close_reason.take().unwrap_or_else(
                    || DisconnectReason::Io("connection closed".into()),
                )))
            }
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
                if self.state == SocketState::Disconnected {
                    self.wanted = true;
                    self.set_state(SocketState::Connecting, None);
                    self.start_opening();
                }
            }
            Command::Disconnect => self.disconnect(),
            Command::SetSocketHandler(h) => self.handler = h,
            Command::AddChannel(shared) => self.add_channel(shared),
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
            } => self.join(channel, payload, deadline, on_reply),
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
            } => self.leave(channel, deadline, on_reply),
            Command::Stats(tx) => {
                let _ = tx.send(self.stats());
            }
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
                self.commands.close();
                while let Ok(cmd) = self.commands.try_recv() {
                    match cmd {
                        Command::Join { on_reply, .. }
                        | Command::Push { on_reply, .. }
                        | Command::Leave { on_reply, .. } => {
                            complete(on_reply, Failure::of(Status::Closed))
                        }
                        Command::Shutdown(Some(other)) => other.send(),
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
        self.by_topic
            .entry(shared.topic.clone())
            .or_default()
            .push(id);
        self.channels.insert(
            id,
            Chan {
                shared,
                state: ChannelState::Closed,
                handler: None,
                join_payload: Body::Json("{}".into()),
                join_ref: None,
                join_ref_text: String::new(),
                join_timer: None,
                join_completion: None,
                buffer: VecDeque::new(),
                rejoin_attempts: 0,
                rejoin_timer: None,
                leave: None,
            },
        );
    }

    fn join(&mut self, id: u64, payload: Body, deadline: Instant, on_reply: OnReply) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return complete(on_reply, Failure::of(Status::StateError));
        };
        if ch.state != ChannelState::Closed || ch.join_completion.is_some() {
            return complete(on_reply, Failure::of(Status::StateError));
        }
        ch.join_payload = payload;
        ch.join_completion = Some(on_reply);
        self.begin_attempt(id, deadline);
    }

    fn push(
        &mut self,
        id: u64,
        event: Box<str>,
        payload: Body,
        deadline: Instant,
        on_reply: OnReply,
    ) {
        let state = self.channels.get(&id).map(|c| c.state);
        match state {
            Some(ChannelState::Joined | ChannelState::Joining | ChannelState::Errored) => {}
            _ => return complete(on_reply, Failure::of(Status::StateError)),
        }
        if deadline <= Instant::now() {
            return complete(on_reply, Failure::of(Status::Timeout));
        }
        self.next_op += 1;
        let op_id = self.next_op;
        let timer = self.timers.arm(deadline, Timer::PushTimeout(op_id));
        self.pushes.insert(
            op_id,
            PushOp {
                channel: id,
                event,
                payload,
                on_reply,
                timer,
                sent_ref: None,
            },
        );
        if state == Some(ChannelState::Joined) && self.conn.is_some() {
            self.send_push(op_id);
        } else if let Some(ch) = self.channels.get_mut(&id) {
            ch.buffer.push_back(op_id);
        }
    }

    fn leave(&mut self, id: u64, deadline: Instant, on_reply: OnReply) {
        let Some(ch) = self.channels.get_mut(&id) else {
            // Already closed and released: leaving again is a no-op.
            return complete(on_reply, Failure::of(Status::Ok));
        };
        match ch.state {
            ChannelState::Leaving => return complete(on_reply, Failure::of(Status::StateError)),
            ChannelState::Closed if ch.join_completion.is_none() => {
                // Never joined: nothing to tell the server.
                self.retire(id);
                return complete(on_reply, Failure::of(Status::Ok));
            }
            _ => {}
        }
        // A join still pending fails; buffered pushes fail with the channel closing.
        let first_join = ch.join_completion.take();
        self.timers.cancel(ch.join_timer.take());
        self.timers.cancel(ch.rejoin_timer.take());
        let was_joining = ch.state == ChannelState::Joining;
        if let Some(cb) = first_join {
            complete(cb, Failure::of(Status::LeftBeforeJoin));
        } else if was_joining {
            self.notify_rejoin(id, Failure::of(Status::LeftBeforeJoin));
        }
        self.fail_buffered(id, Failure::of(Status::Closed));
        let Some(ch) = self.channels.get_mut(&id) else {
            return complete(on_reply, Failure::of(Status::Ok));
        };
        match (ch.join_ref, self.conn.is_some()) {
            (Some(_), true) => {
                let timer = self.timers.arm(deadline, Timer::LeaveTimeout(id));
                ch.leave = Some((on_reply, timer));
                let leave_ref = self.take_ref();
                self.awaiting.insert(leave_ref, Awaiting::Leave(id));
                self.send_control(id, leave_ref, PHX_LEAVE);
                self.set_channel_state(id, ChannelState::Leaving);
            }
            _ => {
                // Not joined on the server (errored, or offline): closed at once.
                self.close_channel(id, Failure::of(Status::Closed));
                complete(on_reply, Failure::of(Status::Ok));
            }
        }
    }

    fn disconnect(&mut self) {
        self.wanted = false;
        self.opening = None;
        self.timers.cancel(self.reconnect_timer.take());
        self.stop_heartbeat();
        if let Some(conn) = self.conn.take() {
            conn.close_in_background(1000, "");
        }
        let ids: Vec<u64> = self.channels.keys().copied().collect();
        for id in ids {
            let joined_once = self
                .channels
                .get(&id)
                .is_some_and(|c| c.shared.join_called.load(Ordering::Acquire));
            if joined_once {
                self.close_channel(id, Failure::of(Status::Closed));
            }
        }
        self.reconnect_attempts = 0;
        *lock(&self.shared.last_reason) = Some(DisconnectReason::ClientClosed);
        if self.state != SocketState::Disconnected {
            self.set_state(
                SocketState::Disconnected,
                Some(&DisconnectReason::ClientClosed),
            );
        }
    }

    // ---- connection lifecycle ---------------------------------------------------------------

    fn start_opening(&mut self) {
        let connector = self.connector.clone();
        let shared = self.shared.clone();
        self.opening = Some(Box::pin(async move {
            connection::open(&*connector, &shared.endpoint, &shared.config)
                .await
                .map(Box::new)
        }));
    }

    fn opened(&mut self, ws: Box<Ws>) {
        if !self.wanted {
            return;
        }
        self.conn = Some(Conn::new(*ws));
        self.close_reason = None;
        self.reconnect_attempts = 0;
        self.heartbeat_pending = None;
        let at = Instant::now() + self.config().heartbeat_interval;
        self.heartbeat_timer = Some(self.timers.arm(at, Timer::Heartbeat));
        self.set_state(SocketState::Connected, None);
        // Joins waiting for the connection go out now; errored channels rejoin at once.
        let ids: Vec<u64> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(ch) = self.channels.get_mut(&id) else {
                continue;
            };
            match ch.state {
                ChannelState::Joining if ch.join_ref.is_none() => self.send_join(id),
                ChannelState::Errored => {
                    self.timers.cancel(ch.rejoin_timer.take());
                    let deadline = Instant::now() + self.shared.config.default_timeout;
                    self.begin_attempt(id, deadline);
                }
                _ => {}
            }
        }
    }

    fn attempt_failed(&mut self, reason: DisconnectReason) {
        if !self.wanted {
            return;
        }
        self.log(
            LogLevel::Warn,
            &format!("connection attempt failed: {reason}"),
        );
        *lock(&self.shared.last_reason) = Some(reason.clone());
        self.schedule_reconnect(&reason);
    }

    fn connection_lost(&mut self, reason: DisconnectReason) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if reason == DisconnectReason::HeartbeatTimeout {
            conn.close_in_background(1000, "heartbeat timeout");
        }
        self.log(LogLevel::Warn, &format!("connection lost: {reason}"));
        self.stop_heartbeat();
        *lock(&self.shared.last_reason) = Some(reason.clone());
        // Everything sent on that connection is lost with it.
        let awaiting: Vec<(u64, Awaiting)> = self.awaiting.drain().collect();
        for (_, what) in &awaiting {
            if let Awaiting::Push(op) = *what {
                self.finish_push(op, Failure::of(Status::Disconnected));
            }
        }
        let ids: Vec<u64> = self.channels.keys().copied().collect();
        for id in ids {
            let Some(ch) = self.channels.get(&id) else {
                continue;
            };
            match ch.state {
                ChannelState::Joined => {
                    self.clear_join_ref(id);
                    self.set_channel_state(id, ChannelState::Errored);
                }
                ChannelState::Joining if ch.join_ref.is_some() => {
                    self.attempt_failed_for(id, Failure::of(Status::Disconnected), false);
                }
                ChannelState::Leaving => self.finish_leave(id, Failure::of(Status::Disconnected)),
                ChannelState::Errored => {
                    let timer = self
                        .channels
                        .get_mut(&id)
                        .and_then(|c| c.rejoin_timer.take());
                    self.timers.cancel(timer);
                }
                _ => {}
            }
        }
        if self.wanted {
            self.schedule_reconnect(&reason);
        }
    }

    fn schedule_reconnect(&mut self, reason: &DisconnectReason) {
        let delay =
            Config::schedule_delay(&self.config().reconnect_schedule, self.reconnect_attempts);
        self.reconnect_attempts = self.reconnect_attempts.saturating_add(1);
        let at = Instant::now() + delay;
        self.reconnect_timer = Some(self.timers.arm(at, Timer::Reconnect));
        if self.state != SocketState::Reconnecting {
            self.set_state(SocketState::Reconnecting, Some(reason));
        }
    }

    fn stop_heartbeat(&mut self) {
        self.timers.cancel(self.heartbeat_timer.take());
        self.heartbeat_pending = None;
    }

    // ---- timers -----------------------------------------------------------------------------

    fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Heartbeat => self.heartbeat(),
            Timer::Reconnect => {
                self.reconnect_timer = None;
                if self.wanted && self.conn.is_none() && self.opening.is_none() {
                    self.start_opening();
                }
            }
            Timer::JoinTimeout(id) => {
                if let Some(ch) = self.channels.get_mut(&id) {
                    ch.join_timer = None;
                    if ch.state == ChannelState::Joining {
                        self.attempt_failed_for(id, Failure::of(Status::Timeout), true);
                    }
                }
            }
            Timer::PushTimeout(op) => {
                if let Some(p) = self.pushes.get(&op) {
                    if let Some(r) = p.sent_ref {
                        self.awaiting.remove(&r);
                    }
                    self.finish_push(op, Failure::of(Status::Timeout));
                }
            }
            Timer::LeaveTimeout(id) => {
                if let Some((cb, _)) = self.channels.get_mut(&id).and_then(|c| c.leave.take()) {
                    self.close_channel(id, Failure::of(Status::Closed));
                    complete(cb, Failure::of(Status::Timeout));
                }
            }
            Timer::Rejoin(id) => {
                let Some(ch) = self.channels.get_mut(&id) else {
                    return;
                };
                ch.rejoin_timer = None;
                if ch.state == ChannelState::Errored && self.conn.is_some() {
                    ch.rejoin_attempts = ch.rejoin_attempts.saturating_add(1);
                    let deadline = Instant::now() + self.shared.config.default_timeout;
                    self.begin_attempt(id, deadline);
                }
            }
        }
    }

    fn heartbeat(&mut self) {
        self.heartbeat_timer = None;
        if self.conn.is_none() {
            return;
        }
        if self.heartbeat_pending.is_some() {
            // The previous heartbeat was never answered: the connection is dead.
            self.connection_lost(DisconnectReason::HeartbeatTimeout);
            return;
        }
        let r = self.take_ref();
        self.heartbeat_pending = Some(r);
        let (topic, event) = (protocol::PHOENIX_TOPIC, protocol::HEARTBEAT);
        send_text(&mut self.conn, None, Some(r), topic, event, "{}");
        let at = Instant::now() + self.config().heartbeat_interval;
        self.heartbeat_timer = Some(self.timers.arm(at, Timer::Heartbeat));
    }

    // ---- joins ------------------------------------------------------------------------------

    /// Starts a join attempt: state `joining`, the attempt's timer, and the `phx_join` at once
    /// when connected (otherwise when the connection opens).
    fn begin_attempt(&mut self, id: u64, deadline: Instant) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        self.timers.cancel(ch.join_timer.take());
        ch.join_timer = Some(self.timers.arm(deadline, Timer::JoinTimeout(id)));
        self.set_channel_state(id, ChannelState::Joining);
        if self.conn.is_some() {
            self.send_join(id);
        }
    }

    fn send_join(&mut self, id: u64) {
        let join_ref = self.take_ref();
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        ch.join_ref = Some(join_ref);
        ch.join_ref_text.clear();
        ch.join_ref_text
            .push_str(format_u64(&mut [0; 20], join_ref));
        self.awaiting.insert(join_ref, Awaiting::Join(id));
        let (jr, topic) = (Some(ch.join_ref_text.as_str()), &*ch.shared.topic);
        match &ch.join_payload {
            Body::Json(json) => {
                send_text(&mut self.conn, jr, Some(join_ref), topic, PHX_JOIN, json)
            }
            Body::Binary(b) => send_binary(&mut self.conn, jr, join_ref, topic, PHX_JOIN, b),
        }
    }

    fn join_replied(&mut self, id: u64, reply: ReplyRef<'_>) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        if ch.state != ChannelState::Joining {
            return;
        }
        self.timers.cancel(ch.join_timer.take());
        let first = ch.join_completion.take();
        let outcome = Failure {
            status: if reply.status == "ok" {
                Status::Ok
            } else {
                Status::ReplyError
            },
            reply: Some(reply),
        };
        if outcome.status == Status::Ok {
            ch.rejoin_attempts = 0;
            self.set_channel_state(id, ChannelState::Joined);
            self.flush_buffer(id);
        } else {
            // Closed before anyone hears of the refusal: a push or `channel()` made from the
            // completion sees the final state.
            ch.shared.retired.store(true, Ordering::Release);
            ch.shared.publish_state(ChannelState::Closed);
            self.fail_buffered(id, outcome);
        }
        match first {
            Some(cb) => complete(cb, outcome),
            None => self.notify_rejoin(id, outcome),
        }
        if outcome.status != Status::Ok {
            // Refused: closed for good, so the app can take a fresh instance and try again.
            self.close_channel(id, Failure::of(Status::Closed));
        }
    }

    /// The current join attempt failed (timeout, socket drop): the channel is errored, the
    /// pushes buffered for the attempt fail with its status, and a rejoin follows.
    fn attempt_failed_for(&mut self, id: u64, failure: Failure<'_>, tell_server: bool) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        self.timers.cancel(ch.join_timer.take());
        let first = ch.join_completion.take();
        if let (true, Some(jr)) = (tell_server && self.conn.is_some(), ch.join_ref) {
            // The server may still join us after a timeout: leave that join so no orphan stays.
            self.next_ref += 1;
            let (r, text) = (self.next_ref, ch.join_ref_text.as_str());
            send_text(
                &mut self.conn,
                Some(text),
                Some(r),
                &ch.shared.topic,
                PHX_LEAVE,
                "{}",
            );
            let _ = jr;
        }
        self.clear_join_ref(id);
        self.set_channel_state(id, ChannelState::Errored);
        self.fail_buffered(id, failure);
        match first {
            Some(cb) => complete(cb, failure),
            None => self.notify_rejoin(id, failure),
        }
        self.schedule_rejoin(id);
    }

    fn schedule_rejoin(&mut self, id: u64) {
        if self.conn.is_none() {
            return; // rejoined when the connection opens
        }
        let schedule = &self.shared.config.rejoin_schedule;
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        if ch.state != ChannelState::Errored {
            return;
        }
        let delay = Config::schedule_delay(schedule, ch.rejoin_attempts);
        self.timers.cancel(ch.rejoin_timer.take());
        ch.rejoin_timer = Some(self.timers.arm(Instant::now() + delay, Timer::Rejoin(id)));
    }

    fn clear_join_ref(&mut self, id: u64) {
        if let Some(ch) = self.channels.get_mut(&id) {
            if let Some(r) = ch.join_ref.take() {
                if matches!(self.awaiting.get(&r), Some(Awaiting::Join(_))) {
                    self.awaiting.remove(&r);
                }
            }
            ch.join_ref_text.clear();
        }
    }

    // ---- pushes -----------------------------------------------------------------------------

    fn send_push(&mut self, op_id: u64) {
        let r = self.take_ref();
        let Some(op) = self.pushes.get_mut(&op_id) else {
            return;
        };
        let Some(ch) = self.channels.get(&op.channel) else {
            return;
        };
        op.sent_ref = Some(r);
        self.awaiting.insert(r, Awaiting::Push(op_id));
        // The payload goes on the wire now; the operation keeps only its completion.
        let payload = std::mem::replace(&mut op.payload, Body::Json(String::new()));
        let event = std::mem::take(&mut op.event);
        let jr = Some(ch.join_ref_text.as_str());
        match &payload {
            Body::Json(json) => {
                send_text(&mut self.conn, jr, Some(r), &ch.shared.topic, &event, json)
            }
            Body::Binary(b) => send_binary(&mut self.conn, jr, r, &ch.shared.topic, &event, b),
        }
    }

    fn flush_buffer(&mut self, id: u64) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let buffered = std::mem::take(&mut ch.buffer);
        for op in buffered {
            if self.pushes.contains_key(&op) {
                self.send_push(op);
            }
        }
    }

    fn fail_buffered(&mut self, id: u64, failure: Failure<'_>) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        let buffered = std::mem::take(&mut ch.buffer);
        for op in buffered {
            self.finish_push(op, failure);
        }
    }

    /// Fails the pushes of channel `id` that are on the wire.
    fn fail_in_flight(&mut self, id: u64, failure: Failure<'_>) {
        let refs: Vec<(u64, u64)> = self
            .awaiting
            .iter()
            .filter_map(|(r, a)| match *a {
                Awaiting::Push(op) if self.pushes.get(&op).is_some_and(|p| p.channel == id) => {
                    Some((*r, op))
                }
                _ => None,
            })
            .collect();
        for (r, op) in refs {
            self.awaiting.remove(&r);
            self.finish_push(op, failure);
        }
    }

    fn finish_push(&mut self, op_id: u64, outcome: Failure<'_>) {
        if let Some(op) = self.pushes.remove(&op_id) {
            self.timers.cancel(Some(op.timer));
            complete(op.on_reply, outcome);
        }
    }

    // ---- leaving and closing ----------------------------------------------------------------

    fn finish_leave(&mut self, id: u64, outcome: Failure<'_>) {
        let leave = self.channels.get_mut(&id).and_then(|c| c.leave.take());
        self.close_channel(id, Failure::of(Status::Closed));
        if let Some((cb, timer)) = leave {
            self.timers.cancel(Some(timer));
            complete(cb, outcome);
        }
    }

    /// Closes a channel for good: every operation of it completes with `failure`, it reports
    /// `closed`, and it is released (its handler dropped).
    fn close_channel(&mut self, id: u64, failure: Failure<'_>) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        // Visible before any callback runs: pushes fail at once, `channel()` is fresh.
        ch.shared.retired.store(true, Ordering::Release);
        ch.shared.publish_state(ChannelState::Closed);
        self.timers.cancel(ch.join_timer.take());
        self.timers.cancel(ch.rejoin_timer.take());
        let first = ch.join_completion.take();
        let leave = ch.leave.take();
        self.clear_join_ref(id);
        self.fail_in_flight(id, failure);
        self.fail_buffered(id, failure);
        if let Some(cb) = first {
            complete(cb, failure);
        }
        if let Some((cb, timer)) = leave {
            self.timers.cancel(Some(timer));
            complete(cb, failure);
        }
        self.awaiting
            .retain(|_, a| !matches!(*a, Awaiting::Leave(c) | Awaiting::Join(c) if c == id));
        self.set_channel_state(id, ChannelState::Closed);
        self.retire(id);
    }

    /// Marks the channel finished for the cache and drops the actor's record of it.
    fn retire(&mut self, id: u64) {
        let Some(ch) = self.channels.remove(&id) else {
            return;
        };
        ch.shared.retired.store(true, Ordering::Release);
        let topic = &ch.shared.topic;
        {
            let mut topics = lock(&self.shared.topics);
            if topics.get(topic).is_some_and(|c| c.id == id) {
                topics.remove(topic);
            }
        }
        if let Some(ids) = self.by_topic.get_mut(topic) {
            ids.retain(|&c| c != id);
            if ids.is_empty() {
                self.by_topic.remove(topic);
            }
        }
        // `ch` (and its handler) is dropped here, after its last call.
    }

    // ---- incoming frames --------------------------------------------------------------------

    fn frame(&mut self, msg: WsMessage) {
        match msg {
            WsMessage::Text(text) => match protocol::decode_text(text.as_str()) {
                Ok(frame) => self.dispatch(frame),
                Err(e) => self.log(LogLevel::Warn, &format!("dropped undecodable frame: {e}")),
            },
            WsMessage::Binary(bytes) => match protocol::decode_binary_server(&bytes) {
                Ok(frame) => self.dispatch(frame),
                Err(e) => self.log(LogLevel::Warn, &format!("dropped undecodable frame: {e}")),
            },
            WsMessage::Close(frame) => {
                self.close_reason = Some(match frame {
                    Some(f) => DisconnectReason::CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.to_string(),
                    },
                    None => DisconnectReason::CloseFrame {
                        code: 1005,
                        reason: String::new(),
                    },
                });
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, frame: Frame<'_>) {
        let event = frame.event.as_ref();
        if let Some(reply) = frame.reply() {
            let Ok(reply) = reply else {
                return self.log(LogLevel::Warn, "dropped malformed reply");
            };
            let reply = ReplyRef {
                status: &reply.status,
                response: reply.response,
            };
            return self.reply(&frame, reply);
        }
        let Some(id) = self.route(frame.topic.as_ref(), frame.join_ref.as_deref()) else {
            return; // stale, or a topic we have no channel for
        };
        match event {
            PHX_CLOSE => {
                if frame.join_ref.is_some() {
                    self.close_channel(id, Failure::of(Status::Closed));
                }
            }
            PHX_ERROR => {
                if frame.join_ref.is_some() {
                    self.channel_crashed(id);
                }
            }
            PHX_JOIN | PHX_LEAVE => {}
            _ => self.deliver(id, &frame),
        }
    }

    /// The channel a non-reply frame is for: the one whose current join_ref it carries, or for
    /// a frame without join_ref (a broadcast) the topic's active channel.
    fn route(&self, topic: &str, join_ref: Option<&str>) -> Option<u64> {
        let ids = self.by_topic.get(topic)?;
        ids.iter().copied().find(|id| {
            let ch = &self.channels[id];
            match join_ref {
                Some(jr) => ch.join_ref.is_some() && ch.join_ref_text == jr,
                None => matches!(ch.state, ChannelState::Joined | ChannelState::Joining),
            }
        })
    }

    fn reply(&mut self, frame: &Frame<'_>, reply: ReplyRef<'_>) {
        let Some(r) = frame.ref_.as_deref().and_then(|r| r.parse::<u64>().ok()) else {
            return;
        };
        if frame.topic == protocol::PHOENIX_TOPIC && self.heartbeat_pending == Some(r) {
            self.heartbeat_pending = None;
            return;
        }
        let Some(&what) = self.awaiting.get(&r) else {
            return; // a reply nobody waits for (timed out, or stale)
        };
        let channel = match what {
            Awaiting::Join(c) | Awaiting::Leave(c) => c,
            Awaiting::Push(op) => self.pushes.get(&op).map_or(0, |p| p.channel),
        };
        // Stale filtering: a reply carrying another join cycle's join_ref is not ours.
        let current = self
            .channels
            .get(&channel)
            .map(|c| c.join_ref_text.as_str());
        if let (Some(jr), Some(cur)) = (frame.join_ref.as_deref(), current) {
            if jr != cur {
                return;
            }
        }
        self.awaiting.remove(&r);
        match what {
            Awaiting::Join(id) => self.join_replied(id, reply),
            Awaiting::Push(op) => {
                let status = if reply.status == "ok" {
                    Status::Ok
                } else {
                    Status::ReplyError
                };
                self.finish_push(
                    op,
                    Failure {
                        status,
                        reply: Some(reply),
                    },
                );
            }
            Awaiting::Leave(id) => {
                let status = if reply.status == "ok" {
                    Status::Ok
                } else {
                    Status::ReplyError
                };
                self.finish_leave(
                    id,
                    Failure {
                        status,
                        reply: Some(reply),
                    },
                );
            }
        }
    }

    /// `phx_error`: the server-side channel died. Pushes in flight fail, a rejoin follows.
    fn channel_crashed(&mut self, id: u64) {
        let state = self.channels.get(&id).map(|c| c.state);
        match state {
            Some(ChannelState::Joined) => {
                self.fail_in_flight(id, Failure::of(Status::ChannelErrored));
                self.clear_join_ref(id);
                self.set_channel_state(id, ChannelState::Errored);
                self.schedule_rejoin(id);
            }
            Some(ChannelState::Joining) => {
                self.fail_in_flight(id, Failure::of(Status::ChannelErrored));
                self.attempt_failed_for(id, Failure::of(Status::ChannelErrored), false);
            }
            Some(ChannelState::Leaving) => self.finish_leave(id, Failure::of(Status::Ok)),
            _ => {}
        }
    }

    fn deliver(&mut self, id: u64, frame: &Frame<'_>) {
        let Some(ch) = self.channels.get(&id) else {
            return;
        };
        // Nothing is delivered once leave() was called or the channel failed.
        if !matches!(ch.state, ChannelState::Joined | ChannelState::Joining) {
            return;
        }
        let Some(handler) = ch.handler.clone() else {
            return;
        };
        let message = Message {
            join_ref: frame.join_ref.as_deref(),
            ref_: frame.ref_.as_deref(),
            topic: frame.topic.as_ref(),
            event: frame.event.as_ref(),
            payload: frame.payload,
        };
        call_user(|| handler.on_message(&message));
    }

    // ---- sending ----------------------------------------------------------------------------

    fn take_ref(&mut self) -> u64 {
        self.next_ref += 1;
        self.next_ref
    }

    fn send_control(&mut self, id: u64, r: u64, event: &str) {
        if let Some(ch) = self.channels.get(&id) {
            let jr = Some(ch.join_ref_text.as_str());
            send_text(&mut self.conn, jr, Some(r), &ch.shared.topic, event, "{}");
        }
    }

    // ---- reporting --------------------------------------------------------------------------

    fn set_state(&mut self, state: SocketState, reason: Option<&DisconnectReason>) {
        if self.state == state {
            return;
        }
        self.state = state;
        self.shared.state.store(state as u8, Ordering::Release);
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
        ch.shared.publish_state(state);
        if let Some(h) = ch.handler.clone() {
            call_user(|| h.on_state(state));
        }
    }

    fn notify_rejoin(&mut self, id: u64, outcome: Failure<'_>) {
        if let Some(h) = self.channels.get(&id).and_then(|c| c.handler.clone()) {
            call_user(|| h.on_rejoin(outcome.status, outcome.reply));
        }
    }

    fn log(&self, level: LogLevel, message: &str) {
        if let Some(h) = self.handler.clone() {
            call_user(|| h.on_log(level, message));
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
        }
    }
}

/// Calls user code: marked as a library thread (so blocking calls refuse), panics contained.
fn call_user(f: impl FnOnce()) {
    let _guard = CallbackGuard::enter();
    let _ = catch_unwind(AssertUnwindSafe(f));
}

fn complete(on_reply: OnReply, outcome: Failure<'_>) {
    call_user(|| on_reply(outcome.status, outcome.reply));
}

fn send_text(
    conn: &mut Option<Conn>,
    join_ref: Option<&str>,
    r: Option<u64>,
    topic: &str,
    event: &str,
    payload: &str,
) {
    let Some(conn) = conn else {
        return;
    };
    let mut buf = [0; 20];
    let r = r.map(|r| format_u64(&mut buf, r));
    let mut out = String::new();
    protocol::encode_text(&mut out, join_ref, r, topic, event, payload);
    conn.queue(WsMessage::Text(out.into()));
}

fn send_binary(
    conn: &mut Option<Conn>,
    join_ref: Option<&str>,
    r: u64,
    topic: &str,
    event: &str,
    bytes: &[u8],
) {
    let Some(conn) = conn else {
        return;
    };
    let mut buf = [0; 20];
    let r = format_u64(&mut buf, r);
    let mut out = Vec::new();
    // Field lengths were checked when the operation was made.
    if protocol::encode_binary_push(&mut out, join_ref, Some(r), topic, event, bytes).is_ok() {
        conn.queue(WsMessage::Binary(out.into()));
    }
}

/// Formats `v` in decimal into `buf` without allocating.
fn format_u64(buf: &mut [u8; 20], mut v: u64) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("digits are ASCII")
}
