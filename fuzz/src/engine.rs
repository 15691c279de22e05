//! Drives one socket against a scripted server on a paused clock and checks the client
//! contract's invariants as it goes.
//!
//! The input is a byte string read as a sequence of [`Step`]s (see [`Step::decode`]): client
//! operations (channel, join, push, leave, connect, disconnect, time passing) interleaved with
//! what the server does (replies to any frame the client sent, under the right, an older or a
//! made-up join_ref; pushes, broadcasts, `phx_close`/`phx_error`, raw frames, close frames,
//! dropped connections, refused connection attempts). Checked:
//! - every operation accepted completes exactly once, one refused at once never completes;
//! - a frame under a stale join_ref (older than the topic's latest join the server saw, or one
//!   the client never used) is never delivered as a message, a reply or a rejoin result;
//! - no message reaches a channel after its `leave()`;
//! - once the socket is disconnected and every timeout has run out, no operation, timer,
//!   buffered push or queued frame is left in the engine.
//!
//! Any panic (here or in the engine's task) aborts the process, which libFuzzer reports.

use futures_util::{SinkExt, StreamExt};
use phx::engine::*;
use phx::protocol::{decode_binary_client, decode_text, Payload};
use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Topics the client uses; server frames may also name [`NEVER_JOINED`].
pub const TOPICS: [&str; 3] = ["room:a", "room:b", "room:c"];
const NEVER_JOINED: &str = "room:never";
const EVENTS: [&str; 6] = [
    "new_msg",
    "presence_state",
    "presence_diff",
    "phx_join",
    "phx_leave",
    "phx_reply",
];
const PUSH_EVENTS: [&str; 3] = ["echo", "new_msg", "phx_custom"];
const STATUSES: [&str; 3] = ["ok", "error", "other"];
const TIMEOUTS: [Option<u64>; 4] = [None, Some(1), Some(100), Some(3000)];
const ADVANCES: [u64; 8] = [1, 10, 100, 1000, 5000, 10_000, 30_000, 65_000];
const CLOSE_CODES: [u16; 4] = [1000, 1001, 1011, 4000];

/// Which join_ref a server frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinRef {
    /// The latest join the server saw for the topic (or, for a reply, the join_ref of the frame
    /// replied to).
    Latest,
    /// An earlier join of the topic: stale.
    Older,
    /// One the client never used: stale.
    Bogus,
    /// `null`.
    Null,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Channel(u8),
    Join {
        topic: u8,
        timeout: u8,
    },
    Push {
        topic: u8,
        event: u8,
        timeout: u8,
        binary: bool,
    },
    Leave(u8),
    Connect,
    Disconnect,
    Advance(u8),
    /// A reply to the `back`-th latest frame the client sent on this connection.
    Reply {
        back: u8,
        status: u8,
        join_ref: JoinRef,
        binary: bool,
    },
    /// A push (with a join_ref) or broadcast (`Null`) to a topic (`TOPICS.len()`: never joined).
    Message {
        topic: u8,
        event: u8,
        join_ref: JoinRef,
        binary: bool,
    },
    /// `phx_close` (else `phx_error`) with ref == join_ref.
    Control {
        topic: u8,
        close: bool,
        join_ref: JoinRef,
    },
    Raw {
        text: bool,
        bytes: Vec<u8>,
    },
    CloseFrame(u8),
    Drop,
    Refuse(bool),
}

impl Step {
    const KINDS: u8 = 14;

    /// Reads the steps of `data`; a truncated last step is dropped.
    pub fn decode(mut data: &[u8]) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(step) = Self::next(&mut data) {
            steps.push(step);
        }
        steps
    }

    fn next(data: &mut &[u8]) -> Option<Step> {
        let mut byte = || -> Option<u8> {
            let (&b, rest) = data.split_first()?;
            *data = rest;
            Some(b)
        };
        let join_ref = |b: u8| {
            [
                JoinRef::Latest,
                JoinRef::Older,
                JoinRef::Bogus,
                JoinRef::Null,
            ][b as usize % 4]
        };
        Some(match byte()? % Self::KINDS {
            0 => Step::Channel(byte()?),
            1 => Step::Join {
                topic: byte()?,
                timeout: byte()?,
            },
            2 => Step::Push {
                topic: byte()?,
                event: byte()?,
                timeout: byte()?,
                binary: byte()? & 1 == 1,
            },
            3 => Step::Leave(byte()?),
            4 => Step::Connect,
            5 => Step::Disconnect,
            6 => Step::Advance(byte()?),
            7 => Step::Reply {
                back: byte()?,
                status: byte()?,
                join_ref: join_ref(byte()?),
                binary: byte()? & 1 == 1,
            },
            8 => Step::Message {
                topic: byte()?,
                event: byte()?,
                join_ref: join_ref(byte()?),
                binary: byte()? & 1 == 1,
            },
            9 => Step::Control {
                topic: byte()?,
                close: byte()? & 1 == 1,
                join_ref: join_ref(byte()?),
            },
            10 => {
                let text = byte()? & 1 == 1;
                let len = byte()? as usize;
                let bytes = data.get(..len)?.to_vec();
                *data = &data[len..];
                Step::Raw { text, bytes }
            }
            11 => Step::CloseFrame(byte()?),
            12 => Step::Drop,
            _ => Step::Refuse(byte()? & 1 == 1),
        })
    }

    /// The bytes [`Step::decode`] reads back as this step (raw frames over 255 bytes are cut).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let jr = |j: &JoinRef| *j as u8;
        match self {
            Step::Channel(t) => out.extend([0, *t]),
            Step::Join { topic, timeout } => out.extend([1, *topic, *timeout]),
            Step::Push {
                topic,
                event,
                timeout,
                binary,
            } => out.extend([2, *topic, *event, *timeout, *binary as u8]),
            Step::Leave(t) => out.extend([3, *t]),
            Step::Connect => out.push(4),
            Step::Disconnect => out.push(5),
            Step::Advance(a) => out.extend([6, *a]),
            Step::Reply {
                back,
                status,
                join_ref,
                binary,
            } => out.extend([7, *back, *status, jr(join_ref), *binary as u8]),
            Step::Message {
                topic,
                event,
                join_ref,
                binary,
            } => out.extend([8, *topic, *event, jr(join_ref), *binary as u8]),
            Step::Control {
                topic,
                close,
                join_ref,
            } => out.extend([9, *topic, *close as u8, jr(join_ref)]),
            Step::Raw { text, bytes } => {
                let bytes = &bytes[..bytes.len().min(255)];
                out.extend([10, *text as u8, bytes.len() as u8]);
                out.extend_from_slice(bytes);
            }
            Step::CloseFrame(c) => out.extend([11, *c]),
            Step::Drop => out.push(12),
            Step::Refuse(on) => out.extend([13, *on as u8]),
        }
    }
}

/// A frame the client sent, as the server read it.
struct Sent {
    join_ref: Option<String>,
    ref_: Option<String>,
    topic: String,
}

enum ServerCmd {
    Send(Ws),
    Close(u16),
}

/// What the scripted server knows, shared with its connection tasks.
#[derive(Default)]
struct ServerState {
    /// Frames of the current connection, oldest first.
    sent: Vec<Sent>,
    /// Every join_ref the client sent a `phx_join` with, per topic, in order.
    joins: HashMap<String, Vec<String>>,
    /// The current connection's command queue (`None`: none open, or dropped).
    conn: Option<mpsc::UnboundedSender<ServerCmd>>,
    refuse: bool,
}

/// Violations found by callbacks (checked by the driver, so the run fails with all of them).
#[derive(Default)]
struct Checks {
    /// Payloads (JSON text or bytes) that were sent under a stale join_ref.
    stale: HashSet<Vec<u8>>,
    violations: Vec<String>,
}

type Shared<T> = Arc<Mutex<T>>;

struct ScriptedConnector {
    state: Shared<ServerState>,
}

impl Connector for ScriptedConnector {
    fn connect(&self, _endpoint: &Endpoint) -> IoFuture {
        let mut st = self.state.lock().unwrap();
        if st.refuse {
            return Box::pin(async {
                Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused"))
            });
        }
        let (client, server) = tokio::io::duplex(1 << 16);
        let (tx, rx) = mpsc::unbounded_channel();
        st.sent.clear();
        st.conn = Some(tx);
        tokio::spawn(serve(server, rx, self.state.clone()));
        Box::pin(async move { Ok(Box::new(client) as BoxIo) })
    }
}

/// One server connection: records what the client sends, sends what the driver says.
async fn serve(
    io: tokio::io::DuplexStream,
    mut cmds: mpsc::UnboundedReceiver<ServerCmd>,
    state: Shared<ServerState>,
) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(io).await else {
        return;
    };
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Ws::Text(t))) => record(&state, decode_text(t.as_str()).ok()),
                Some(Ok(Ws::Binary(b))) => record(&state, decode_binary_client(&b).ok()),
                Some(Ok(_)) => {}
                _ => return,
            },
            cmd = cmds.recv() => match cmd {
                Some(ServerCmd::Send(m)) => {
                    if ws.send(m).await.is_err() {
                        return;
                    }
                }
                Some(ServerCmd::Close(code)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: "scripted".into() };
                    let _ = ws.close(Some(frame)).await;
                }
                None => return, // dropped: the connection ends without a close frame
            },
        }
    }
}

fn record(state: &Shared<ServerState>, frame: Option<phx::protocol::Frame<'_>>) {
    let Some(f) = frame else { return };
    let mut st = state.lock().unwrap();
    if f.event == "phx_join" {
        if let Some(jr) = &f.join_ref {
            st.joins
                .entry(f.topic.to_string())
                .or_default()
                .push(jr.to_string());
        }
    }
    st.sent.push(Sent {
        join_ref: f.join_ref.map(|s| s.into_owned()),
        ref_: f.ref_.map(|s| s.into_owned()),
        topic: f.topic.into_owned(),
    });
}

/// A channel instance's handler: messages after `leave()` and stale payloads are violations.
struct Watch {
    checks: Shared<Checks>,
    left: Mutex<bool>,
}

fn bytes_of(p: &Payload<'_>) -> Vec<u8> {
    match p {
        Payload::Json(j) => j.as_bytes().to_vec(),
        Payload::Binary(b) => b.to_vec(),
    }
}

impl Checks {
    fn check_payload(&mut self, what: &str, p: &Payload<'_>) {
        if self.stale.contains(&bytes_of(p)) {
            self.violations
                .push(format!("{what} delivered from a stale join_ref: {p:?}"));
        }
    }
}

impl ChannelHandler for Watch {
    fn on_message(&self, m: &Message<'_>) {
        let mut c = self.checks.lock().unwrap();
        if *self.left.lock().unwrap() {
            c.violations
                .push(format!("message {} on {} after leave", m.event, m.topic));
        }
        c.check_payload("message", &m.payload);
    }
    fn on_state(&self, state: ChannelState) {
        if state == ChannelState::Leaving {
            *self.left.lock().unwrap() = true;
        }
    }
    fn on_rejoin(&self, _status: Status, reply: Option<ReplyRef<'_>>) {
        if let Some(r) = reply {
            self.checks
                .lock()
                .unwrap()
                .check_payload("rejoin reply", &r.response);
        }
    }
}

struct Op {
    what: String,
    accepted: bool,
    count: Arc<AtomicUsize>,
}

struct Driver {
    socket: Socket,
    state: Shared<ServerState>,
    checks: Shared<Checks>,
    channels: HashMap<usize, Channel>,
    ops: Vec<Op>,
    serial: u64,
}

impl Driver {
    fn completion(&mut self, what: String) -> (OnReply, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let (c, checks) = (count.clone(), self.checks.clone());
        let label = what.clone();
        let cb: OnReply = Box::new(move |status, reply| {
            if trace() {
                eprintln!("  {label} -> {status:?} {reply:?}");
            }
            let before = c.fetch_add(1, Ordering::SeqCst);
            let mut checks = checks.lock().unwrap();
            if before != 0 {
                checks.violations.push(format!("{label} completed twice"));
            }
            if let Some(r) = reply {
                checks.check_payload(&label, &r.response);
            }
        });
        (cb, count)
    }

    fn record_op(&mut self, what: String, result: Result<(), Status>, count: Arc<AtomicUsize>) {
        self.ops.push(Op {
            what,
            accepted: result.is_ok(),
            count,
        });
    }

    fn channel(&mut self, t: usize) -> Channel {
        let ch = self.socket.channel(TOPICS[t]);
        let known = self.channels.get(&t).is_some_and(|c| c.same_as(&ch));
        if !known {
            ch.set_handler(Some(Arc::new(Watch {
                checks: self.checks.clone(),
                left: Mutex::new(false),
            })));
            self.channels.insert(t, ch.clone());
        }
        ch
    }

    /// A fresh payload; remembered as stale when sent under a stale join_ref.
    fn payload(&mut self, binary: bool, stale: bool) -> Vec<u8> {
        self.serial += 1;
        let bytes = if binary {
            self.serial.to_be_bytes().to_vec()
        } else {
            format!(r#"{{"n":{}}}"#, self.serial).into_bytes()
        };
        if stale {
            self.checks.lock().unwrap().stale.insert(bytes.clone());
        }
        bytes
    }

    /// The join_ref to send for `topic` (`frame_jr`: the join_ref of the frame replied to), and
    /// whether it is certainly stale.
    fn join_ref(
        &self,
        mode: JoinRef,
        topic: &str,
        frame_jr: Option<&str>,
    ) -> (Option<String>, bool) {
        let st = self.state.lock().unwrap();
        let joins = st.joins.get(topic).map(Vec::as_slice).unwrap_or_default();
        let stale = |jr: &str| joins.last().is_none_or(|latest| latest != jr);
        match mode {
            JoinRef::Latest => {
                let jr = frame_jr
                    .map(str::to_owned)
                    .or_else(|| joins.last().cloned());
                // Only a join_ref the server saw superseded is known to be stale.
                let is_stale = jr
                    .as_deref()
                    .is_some_and(|j| stale(j) && joins.iter().any(|x| x == j));
                (jr, is_stale)
            }
            JoinRef::Older => match joins.len() {
                n if n >= 2 => (Some(joins[n - 2].clone()), true),
                _ => (Some("older".into()), true),
            },
            JoinRef::Bogus => (Some("bogus".into()), true),
            JoinRef::Null => (None, false),
        }
    }

    fn send(&self, msg: Ws) {
        if let Some(tx) = &self.state.lock().unwrap().conn {
            let _ = tx.send(ServerCmd::Send(msg));
        }
    }

    async fn step(&mut self, step: Step) {
        match step {
            Step::Channel(t) => {
                self.channel(t as usize % TOPICS.len());
            }
            Step::Join { topic, timeout } => {
                let ch = self.channel(topic as usize % TOPICS.len());
                let what = format!("join {}", ch.topic());
                let (cb, count) = self.completion(what.clone());
                let r = ch.join(Body::Json("{}".into()), timeout_of(timeout), cb);
                self.record_op(what, r, count);
            }
            Step::Push {
                topic,
                event,
                timeout,
                binary,
            } => {
                let ch = self.channel(topic as usize % TOPICS.len());
                let event = PUSH_EVENTS[event as usize % PUSH_EVENTS.len()];
                let what = format!("push {event} on {}", ch.topic());
                let (cb, count) = self.completion(what.clone());
                let body = if binary {
                    Body::Binary(vec![1, 2, 3])
                } else {
                    Body::Json("{}".into())
                };
                let r = ch.push(event, body, timeout_of(timeout), cb);
                self.record_op(what, r, count);
            }
            Step::Leave(t) => {
                let ch = self.channel(t as usize % TOPICS.len());
                let what = format!("leave {}", ch.topic());
                let (cb, count) = self.completion(what.clone());
                let r = ch.leave(None, cb);
                self.record_op(what, r, count);
            }
            Step::Connect => self.socket.connect(),
            Step::Disconnect => self.socket.disconnect(),
            Step::Advance(a) => {
                tokio::time::sleep(Duration::from_millis(ADVANCES[a as usize % ADVANCES.len()]))
                    .await
            }
            Step::Reply {
                back,
                status,
                join_ref,
                binary,
            } => {
                let target = {
                    let st = self.state.lock().unwrap();
                    let n = st.sent.len();
                    (n > 0).then(|| {
                        let s = &st.sent[n - 1 - (back as usize % n)];
                        (s.join_ref.clone(), s.ref_.clone(), s.topic.clone())
                    })
                };
                let Some((frame_jr, ref_, topic)) = target else {
                    return;
                };
                let (jr, stale) = self.join_ref(join_ref, &topic, frame_jr.as_deref());
                let stale = stale && topic != "phoenix";
                let status = STATUSES[status as usize % STATUSES.len()];
                let payload = self.payload(binary, stale);
                self.send(frame(
                    jr.as_deref(),
                    ref_.as_deref(),
                    &topic,
                    "phx_reply",
                    status,
                    payload,
                    binary,
                ));
            }
            Step::Message {
                topic,
                event,
                join_ref,
                binary,
            } => {
                let topic = topic_of(topic);
                let event = EVENTS[event as usize % EVENTS.len()];
                let (jr, stale) = self.join_ref(join_ref, topic, None);
                let payload = self.payload(binary, stale);
                self.send(frame(
                    jr.as_deref(),
                    None,
                    topic,
                    event,
                    "",
                    payload,
                    binary,
                ));
            }
            Step::Control {
                topic,
                close,
                join_ref,
            } => {
                let topic = topic_of(topic);
                let (jr, _) = self.join_ref(join_ref, topic, None);
                let event = if close { "phx_close" } else { "phx_error" };
                self.send(frame(
                    jr.as_deref(),
                    jr.as_deref(),
                    topic,
                    event,
                    "",
                    b"{}".to_vec(),
                    false,
                ));
            }
            Step::Raw { text, bytes } => self.send(if text {
                Ws::Text(String::from_utf8_lossy(&bytes).into_owned().into())
            } else {
                Ws::Binary(bytes.into())
            }),
            Step::CloseFrame(c) => {
                if let Some(tx) = &self.state.lock().unwrap().conn {
                    let _ = tx.send(ServerCmd::Close(
                        CLOSE_CODES[c as usize % CLOSE_CODES.len()],
                    ));
                }
            }
            Step::Drop => self.state.lock().unwrap().conn = None,
            Step::Refuse(on) => self.state.lock().unwrap().refuse = on,
        }
    }
}

/// `PHX_FUZZ_TRACE=1` prints every step and completion (for reading a crash's input).
fn trace() -> bool {
    static TRACE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("PHX_FUZZ_TRACE").is_some())
}

fn timeout_of(b: u8) -> Option<Duration> {
    TIMEOUTS[b as usize % TIMEOUTS.len()].map(Duration::from_millis)
}

fn topic_of(b: u8) -> &'static str {
    TOPICS
        .get(b as usize % (TOPICS.len() + 1))
        .copied()
        .unwrap_or(NEVER_JOINED)
}

/// A server frame: a reply when `event` is `phx_reply` (with `status`), else a push or, without
/// join_ref, a broadcast; text or binary.
fn frame(
    jr: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    status: &str,
    payload: Vec<u8>,
    binary: bool,
) -> Ws {
    let q = |s: Option<&str>| s.map_or("null".to_owned(), |s| format!("{s:?}"));
    let reply = event == "phx_reply";
    if !binary {
        let payload = String::from_utf8(payload).expect("JSON payload");
        let payload = if reply {
            format!(r#"{{"response":{payload},"status":"{status}"}}"#)
        } else {
            payload
        };
        return Ws::Text(format!("[{},{},{topic:?},{event:?},{payload}]", q(jr), q(ref_)).into());
    }
    let field = |out: &mut Vec<u8>, s: &str| out.extend_from_slice(s.as_bytes());
    let (jr, r) = (jr.unwrap_or(""), ref_.unwrap_or(""));
    let mut out = Vec::new();
    if reply {
        out.extend([
            1,
            jr.len() as u8,
            r.len() as u8,
            topic.len() as u8,
            status.len() as u8,
        ]);
        for f in [jr, r, topic, status] {
            field(&mut out, f);
        }
    } else if jr.is_empty() {
        out.extend([2, topic.len() as u8, event.len() as u8]);
        for f in [topic, event] {
            field(&mut out, f);
        }
    } else {
        out.extend([0, jr.len() as u8, topic.len() as u8, event.len() as u8]);
        for f in [jr, topic, event] {
            field(&mut out, f);
        }
    }
    out.extend(payload);
    Ws::Binary(out.into())
}

/// Runs `steps` on a fresh paused runtime; panics on the first violated invariant.
pub fn run(steps: Vec<Step>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(drive(steps));
}

/// Lets every task run until all wait on the clock (a paused clock then moves 1 ms).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn drive(steps: Vec<Step>) {
    let state: Shared<ServerState> = Arc::default();
    let connector = Arc::new(ScriptedConnector {
        state: state.clone(),
    });
    let mut config = Config::new("ws://fuzz.invalid/socket/websocket");
    config.heartbeat_interval = Duration::from_secs(5);
    config.reconnect_schedule = millis(&[10, 100, 1000]);
    config.rejoin_schedule = millis(&[10, 100, 1000]);
    let socket = Socket::with_connector(config, connector, &tokio::runtime::Handle::current())
        .expect("valid config");
    let mut d = Driver {
        socket,
        state,
        checks: Arc::default(),
        channels: HashMap::new(),
        ops: Vec::new(),
        serial: 0,
    };
    d.socket.connect();
    for step in steps {
        if trace() {
            eprintln!("{step:?}");
        }
        d.step(step).await;
        settle().await;
        let checks = d.checks.lock().unwrap();
        assert!(checks.violations.is_empty(), "{:?}", checks.violations);
    }

    // Every timeout runs out with the socket disconnected.
    d.socket.disconnect();
    tokio::time::sleep(Duration::from_secs(120)).await;
    for op in &d.ops {
        let n = op.count.load(Ordering::SeqCst);
        let expected = usize::from(op.accepted);
        assert_eq!(
            n, expected,
            "{} (accepted: {}) completed {n} times",
            op.what, op.accepted
        );
    }
    let checks = d.checks.lock().unwrap();
    assert!(checks.violations.is_empty(), "{:?}", checks.violations);
    drop(checks);
    let stats = d.socket.stats().await;
    assert_eq!(
        (
            stats.pending_replies,
            stats.buffered_pushes,
            stats.buffer_slots,
            stats.operation_timers,
            stats.outbox
        ),
        (0, 0, 0, 0, 0),
        "engine tables not empty once idle: {stats:?}"
    );
    d.socket.shutdown_async().await;
}
