//! Test support: an in-memory connector into the test server, recorders that turn callbacks
//! into awaitable events, and owned copies of borrowed replies.

use phx::engine::*;
use phx::protocol::Payload;
use phx_testserver::{Controls, LogFrame, TestServer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A payload copied out of a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owned {
    Json(String),
    Binary(Vec<u8>),
}

impl Owned {
    pub fn of(p: Payload<'_>) -> Self {
        match p {
            Payload::Json(j) => Owned::Json(j.to_owned()),
            Payload::Binary(b) => Owned::Binary(b.to_vec()),
        }
    }

    /// The JSON text parsed, for comparing regardless of key order.
    pub fn value(&self) -> serde_json::Value {
        match self {
            Owned::Json(j) => serde_json::from_str(j).expect("valid JSON"),
            Owned::Binary(b) => panic!("expected JSON, got bytes {b:?}"),
        }
    }
}

/// How an operation completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub status: Status,
    pub reply: Option<(String, Owned)>,
    /// When the completion ran (on the test's clock).
    pub at: Instant,
}

impl Done {
    pub fn response(&self) -> serde_json::Value {
        self.reply.as_ref().expect("a reply").1.value()
    }
}

/// A completion callback and the receiver its result arrives on.
pub fn op() -> (OnReply, oneshot::Receiver<Done>) {
    let (tx, rx) = oneshot::channel();
    let cb: OnReply = Box::new(move |status, reply| {
        let reply = reply.map(|r| (r.status.to_owned(), Owned::of(r.response)));
        let _ = tx.send(Done {
            status,
            reply,
            at: Instant::now(),
        });
    });
    (cb, rx)
}

/// Awaits a completion, failing the test if it was dropped uncalled.
pub async fn done(rx: oneshot::Receiver<Done>) -> Done {
    rx.await
        .expect("the completion was dropped without being called")
}

pub fn json(s: &str) -> Body {
    Body::Json(s.to_owned())
}

/// Everything a socket or channel handler reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    Socket(SocketState, Option<DisconnectReason>),
    Channel(ChannelState),
    Message {
        join_ref: Option<String>,
        ref_: Option<String>,
        topic: String,
        event: String,
        payload: Owned,
    },
    Rejoin(Status, Option<(String, Owned)>),
    Log(LogLevel, String),
    Presence(PresenceChange),
    PresenceSync,
    /// A successful rejoin: the join response and whether messages may have been missed.
    Rejoined(Owned, bool),
}

/// Records events into a channel the test awaits.
pub struct Recorder {
    tx: mpsc::UnboundedSender<(Instant, Ev)>,
}

pub struct Events {
    rx: mpsc::UnboundedReceiver<(Instant, Ev)>,
}

pub fn recorder() -> (Arc<Recorder>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(Recorder { tx }), Events { rx })
}

impl Recorder {
    fn send(&self, ev: Ev) {
        let _ = self.tx.send((Instant::now(), ev));
    }
}

impl SocketHandler for Recorder {
    fn on_state(&self, state: SocketState, reason: Option<&DisconnectReason>) {
        self.send(Ev::Socket(state, reason.cloned()));
    }
    fn on_log(&self, level: LogLevel, message: &str) {
        self.send(Ev::Log(level, message.to_owned()));
    }
}

impl ChannelHandler for Recorder {
    fn on_message(&self, m: &Message<'_>) {
        self.send(Ev::Message {
            join_ref: m.join_ref.map(str::to_owned),
            ref_: m.ref_.map(str::to_owned),
            topic: m.topic.to_owned(),
            event: m.event.to_owned(),
            payload: Owned::of(m.payload),
        });
    }
    fn on_state(&self, state: ChannelState) {
        self.send(Ev::Channel(state));
    }
    fn on_rejoin(&self, status: Status, reply: Option<ReplyRef<'_>>) {
        let reply = reply.map(|r| (r.status.to_owned(), Owned::of(r.response)));
        self.send(Ev::Rejoin(status, reply));
    }
    fn on_presence(&self, change: &PresenceChange) {
        self.send(Ev::Presence(change.clone()));
    }
    fn on_presence_sync(&self) {
        self.send(Ev::PresenceSync);
    }
    fn on_rejoined(&self, response: ReplyRef<'_>, missed: bool) {
        self.send(Ev::Rejoined(Owned::of(response.response), missed));
    }
}

impl Events {
    /// The next event, with the time it happened. Fails if none comes within 120 s of the
    /// test's clock (instant on a paused clock once everything is idle).
    pub async fn next(&mut self) -> (Instant, Ev) {
        tokio::time::timeout(Duration::from_secs(120), self.rx.recv())
            .await
            .expect("no event within 120 s")
            .expect("recorder dropped")
    }

    /// Skips events until one matches `pred`; returns it with its time.
    pub async fn until(&mut self, mut pred: impl FnMut(&Ev) -> bool) -> (Instant, Ev) {
        loop {
            let (at, ev) = self.next().await;
            if pred(&ev) {
                return (at, ev);
            }
        }
    }

    /// Waits for the socket to reach `state`.
    pub async fn socket(&mut self, state: SocketState) -> Instant {
        self.until(|e| matches!(e, Ev::Socket(s, _) if *s == state))
            .await
            .0
    }

    /// Waits for the socket to start reconnecting; returns when, and the reason it reported.
    pub async fn reconnecting(&mut self) -> (Instant, Option<DisconnectReason>) {
        loop {
            if let (at, Ev::Socket(SocketState::Reconnecting, reason)) = self.next().await {
                return (at, reason);
            }
        }
    }

    /// Waits for the next automatic rejoin to complete; returns when, and its status.
    pub async fn rejoin(&mut self) -> (Instant, Status) {
        loop {
            if let (at, Ev::Rejoin(status, _)) = self.next().await {
                return (at, status);
            }
        }
    }

    /// Waits for the channel to reach `state`.
    pub async fn channel(&mut self, state: ChannelState) -> Instant {
        self.until(|e| matches!(e, Ev::Channel(s) if *s == state))
            .await
            .0
    }

    /// Waits until `n` connection attempts have failed (each is logged).
    pub async fn failed_attempts(&mut self, n: usize) {
        for _ in 0..n {
            self.until(
                |e| matches!(e, Ev::Log(_, m) if m.starts_with("connection attempt failed")),
            )
            .await;
        }
    }

    /// Events already recorded, without waiting.
    pub fn drain(&mut self) -> Vec<Ev> {
        let mut out = Vec::new();
        while let Ok((_, ev)) = self.rx.try_recv() {
            out.push(ev);
        }
        out
    }

    /// Collects the next `n` messages (other events skipped).
    pub async fn messages(&mut self, n: usize) -> Vec<Ev> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let (_, ev) = self.next().await;
            if matches!(ev, Ev::Message { .. }) {
                out.push(ev);
            }
        }
        out
    }
}

/// Opens in-memory streams into a test server and records when each attempt was made.
pub struct MemConnector {
    server: Arc<TestServer>,
    pub attempts: Mutex<Vec<Instant>>,
}

impl Connector for MemConnector {
    fn connect(&self, _endpoint: &Endpoint) -> IoFuture {
        self.attempts.lock().unwrap().push(Instant::now());
        let (io, _task) = self.server.connect_in_memory();
        Box::pin(async move { Ok(Box::new(io) as BoxIo) })
    }
}

/// A test server and client sockets on the current (usually paused) runtime, connected through
/// memory.
pub struct World {
    pub server: Arc<TestServer>,
    pub connector: Arc<MemConnector>,
}

impl World {
    pub async fn new() -> World {
        Self::with_server(phx_testserver::Config::default()).await
    }

    /// A world whose server is started with `config`.
    pub async fn with_server(config: phx_testserver::Config) -> World {
        let server = Arc::new(TestServer::start(config).await.expect("test server starts"));
        let connector = Arc::new(MemConnector {
            server: server.clone(),
            attempts: Mutex::new(Vec::new()),
        });
        World { server, connector }
    }

    pub fn controls(&self) -> Controls {
        self.server.controls()
    }

    pub fn config(&self) -> Config {
        let mut config = Config::new(self.server.url());
        config.params.push(("token".into(), "tester".into()));
        config
    }

    /// A socket with `config`, its events recorded.
    pub fn socket_with(&self, config: Config) -> (Socket, Events) {
        let socket = Socket::with_connector(
            config,
            self.connector.clone(),
            &tokio::runtime::Handle::current(),
        )
        .expect("valid config");
        let (rec, events) = recorder();
        socket.set_handler(Some(rec));
        (socket, events)
    }

    /// A connected socket with the default configuration.
    pub async fn connected(&self) -> (Socket, Events) {
        self.connected_with(self.config()).await
    }

    pub async fn connected_with(&self, config: Config) -> (Socket, Events) {
        let (socket, mut events) = self.socket_with(config);
        socket.connect();
        events.socket(SocketState::Connected).await;
        (socket, events)
    }

    /// Times of the connection attempts so far.
    pub fn attempts(&self) -> Vec<Instant> {
        self.connector.attempts.lock().unwrap().clone()
    }

    /// Text frames the server received so far, in order.
    pub fn frames(&self) -> Vec<String> {
        self.controls()
            .log()
            .into_iter()
            .filter_map(|e| match e.frame {
                LogFrame::Text(t) => Some(t),
                LogFrame::Binary(_) => None,
            })
            .collect()
    }

    /// Frames the server received with this event, parsed.
    pub fn frames_with_event(&self, event: &str) -> Vec<serde_json::Value> {
        self.frames()
            .iter()
            .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok())
            .filter(|v| v[3] == event)
            .collect()
    }
}

/// A channel with its events recorded.
pub fn channel(socket: &Socket, topic: &str) -> (Channel, Events) {
    let ch = socket.channel(topic);
    let (rec, events) = recorder();
    ch.set_handler(Some(rec));
    (ch, events)
}

/// Joins and asserts the join succeeded.
pub async fn join_ok(ch: &Channel) -> Done {
    let (cb, rx) = op();
    ch.join(json("{}"), None, cb).expect("join accepted");
    let d = done(rx).await;
    assert_eq!(d.status, Status::Ok, "join of {} failed: {d:?}", ch.topic());
    d
}

/// Pushes and returns the receiver of its completion.
pub fn push(ch: &Channel, event: &str, payload: &str) -> oneshot::Receiver<Done> {
    let (cb, rx) = op();
    ch.push(event, json(payload), None, cb)
        .expect("push accepted");
    rx
}

/// Pushes with a timeout.
pub fn push_timeout(
    ch: &Channel,
    event: &str,
    payload: &str,
    timeout: Duration,
) -> oneshot::Receiver<Done> {
    let (cb, rx) = op();
    ch.push(event, json(payload), Some(timeout), cb)
        .expect("push accepted");
    rx
}

/// Waits until the engine's tables are empty but for `channels` tracked channels.
pub async fn assert_settled(socket: &Socket, channels: usize) {
    let stats = socket.stats().await;
    assert_eq!(
        stats,
        EngineStats {
            channels,
            cached_channels: channels,
            // Room in the tables is not work held in them.
            table_capacity: stats.table_capacity,
            ..EngineStats::default()
        },
        "engine tables not empty"
    );
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}
