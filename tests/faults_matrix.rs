//! The network fault matrix: every fault of the TCP fault proxy (`phx_testserver::Proxy`)
//! during every phase of a channel's life, over real TCP on the real clock, each cell with its
//! own test server and proxy, all cells at once. After each cell: the socket is connected and
//! every channel joined again; every join, push and leave completed exactly once with a status
//! the client contract allows for what happened; no message arrived twice or after its
//! channel's leave; the engine's tables are empty once everything is left. Prints a table
//! (fault × phase: pass/fail and recovery time) on stderr.
//!
//! Recovery time: from the end of the fault (the moment it was lifted, or applied for a reset)
//! until the socket is connected and every channel joined again.

use phx::engine::*;
use phx::protocol::Payload;
use phx_testserver::{Proxy, TestServer};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, Instant};

const FLOOD: u64 = 10_000;
const PUSHES: usize = 20;
/// The bound for anything that must happen "eventually": generous, for a loaded machine.
const EVENTUALLY: Duration = Duration::from_secs(40);
/// Recovery must fit the schedules (a few hundred ms) plus a 3 s `room:slow` join, with room
/// for a loaded machine.
const RECOVERY_BOUND: Duration = Duration::from_secs(12);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Latency,
    Bandwidth,
    Reset,
    HalfOpen,
    CloseAfter,
    SlowReader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    MidJoin,
    MidPush,
    Flood,
    Rejoin,
    SlowJoin,
}

const FAULTS: [Fault; 6] = [
    Fault::Latency,
    Fault::Bandwidth,
    Fault::Reset,
    Fault::HalfOpen,
    Fault::CloseAfter,
    Fault::SlowReader,
];
const PHASES: [Phase; 6] = [
    Phase::Idle,
    Phase::MidJoin,
    Phase::MidPush,
    Phase::Flood,
    Phase::Rejoin,
    Phase::SlowJoin,
];

/// What a channel reported, in order, with the completions of its leave marked.
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Msg(String, serde_json::Value),
    State(ChannelState),
    Rejoin(Status),
    Left(Status),
}

#[derive(Default)]
struct Trace {
    evs: Mutex<Vec<Ev>>,
}

impl Trace {
    fn push(&self, ev: Ev) {
        self.evs.lock().unwrap().push(ev);
    }
    fn events(&self) -> Vec<Ev> {
        self.evs.lock().unwrap().clone()
    }
    fn has(&self, pred: impl Fn(&Ev) -> bool) -> bool {
        self.evs.lock().unwrap().iter().any(pred)
    }
}

impl ChannelHandler for Trace {
    fn on_message(&self, m: &Message<'_>) {
        let payload = match m.payload {
            Payload::Json(j) => serde_json::from_str(j).unwrap_or(serde_json::Value::Null),
            Payload::Binary(_) => serde_json::Value::Null,
        };
        self.push(Ev::Msg(m.event.to_owned(), payload));
    }
    fn on_state(&self, state: ChannelState) {
        self.push(Ev::State(state));
    }
    fn on_rejoin(&self, status: Status, _reply: Option<ReplyRef<'_>>) {
        self.push(Ev::Rejoin(status));
    }
}

/// Socket states as they are reported.
struct SocketTrace {
    tx: mpsc::UnboundedSender<SocketState>,
    drops: Mutex<u32>,
}

impl SocketHandler for SocketTrace {
    fn on_state(&self, state: SocketState, _reason: Option<&DisconnectReason>) {
        if state == SocketState::Reconnecting {
            *self.drops.lock().unwrap() += 1;
        }
        let _ = self.tx.send(state);
    }
}

/// A completion and the receiver its status arrives on. The callback is `FnOnce`, so it
/// cannot run twice; a dropped receiver end shows one that never ran.
fn op() -> (
    OnReply,
    oneshot::Receiver<(Status, Option<serde_json::Value>)>,
) {
    let (tx, rx) = oneshot::channel();
    let cb: OnReply = Box::new(move |status, reply| {
        let resp = reply.and_then(|r| match r.response {
            Payload::Json(j) => serde_json::from_str(j).ok(),
            Payload::Binary(_) => None,
        });
        let _ = tx.send((status, resp));
    });
    (cb, rx)
}

type Pending = oneshot::Receiver<(Status, Option<serde_json::Value>)>;

async fn completed(what: &str, rx: Pending) -> Result<(Status, Option<serde_json::Value>), String> {
    match timeout(EVENTUALLY, rx).await {
        Err(_) => Err(format!("{what}: no completion")),
        Ok(Err(_)) => Err(format!("{what}: completion dropped without being called")),
        Ok(Ok(r)) => Ok(r),
    }
}

fn json(s: &str) -> Body {
    Body::Json(s.to_owned())
}

/// Polls until `cond` holds (real clock; the engine reports states synchronously).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > EVENTUALLY {
            return Err(format!("{what}: not within {EVENTUALLY:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

struct Cell {
    server: TestServer,
    proxy: Proxy,
    socket: Socket,
    states: mpsc::UnboundedReceiver<SocketState>,
    strace: Arc<SocketTrace>,
}

impl Cell {
    async fn start(phase: Phase) -> Result<Cell, String> {
        let server = TestServer::start(phx_testserver::Config::default())
            .await
            .map_err(|e| e.to_string())?;
        let proxy = Proxy::start(server.local_addr())
            .await
            .map_err(|e| e.to_string())?;
        let mut config = Config::new(proxy.url_for(&server.url()));
        config.params.push(("token".into(), "matrix".into()));
        // `room:slow` holds the server's socket for 3 s, heartbeats included.
        config.heartbeat_interval = Duration::from_millis(match phase {
            Phase::SlowJoin => 5000,
            _ => 1000,
        });
        config.reconnect_schedule = millis(&[20, 50, 100, 200]);
        config.rejoin_schedule = millis(&[20, 50, 100, 200]);
        config.connect_timeout = Duration::from_secs(3);
        let socket =
            Socket::new(config, &tokio::runtime::Handle::current()).map_err(|e| e.to_string())?;
        let (tx, states) = mpsc::unbounded_channel();
        let strace = Arc::new(SocketTrace {
            tx,
            drops: Mutex::new(0),
        });
        socket.set_handler(Some(strace.clone()));
        socket.connect();
        let mut cell = Cell {
            server,
            proxy,
            socket,
            states,
            strace,
        };
        cell.wait_state(SocketState::Connected).await?;
        Ok(cell)
    }

    async fn wait_state(&mut self, want: SocketState) -> Result<(), String> {
        timeout(EVENTUALLY, async {
            while let Some(s) = self.states.recv().await {
                if s == want {
                    return;
                }
            }
        })
        .await
        .map_err(|_| format!("socket never {want:?}"))
    }

    fn drops(&self) -> u32 {
        *self.strace.drops.lock().unwrap()
    }

    fn channel(&self, topic: &str) -> (Channel, Arc<Trace>) {
        let ch = self.socket.channel(topic);
        let trace = Arc::new(Trace::default());
        ch.set_handler(Some(trace.clone()));
        (ch, trace)
    }

    /// Applies the fault and lifts it; returns when it was lifted and, for the faults that
    /// end the connection, how long the client took to notice.
    async fn fault(&mut self, fault: Fault) -> Result<(Instant, Option<Duration>), String> {
        let c = self.proxy.controls();
        let applied = Instant::now();
        let mut detect = None;
        let hold = Duration::from_millis(1500);
        match fault {
            Fault::Latency => {
                c.set_latency(Duration::from_millis(150), Duration::from_millis(100));
                tokio::time::sleep(hold).await;
                c.set_latency(Duration::ZERO, Duration::ZERO);
            }
            Fault::Bandwidth => {
                c.set_bandwidth(Some(16_000));
                tokio::time::sleep(hold).await;
                c.set_bandwidth(None);
            }
            // Lifted at once; the cell goes on once the client has seen the RST.
            Fault::Reset => {
                c.reset_all();
                self.wait_state(SocketState::Reconnecting).await?;
                detect = Some(applied.elapsed());
            }
            // These are seen only by the heartbeat: lifted once the client has given up on
            // the connection (a slow reader would otherwise stall the next upgrade too).
            Fault::HalfOpen => {
                c.set_half_open(true);
                self.wait_state(SocketState::Reconnecting).await?;
                detect = Some(applied.elapsed());
                c.set_half_open(false);
            }
            Fault::CloseAfter => {
                c.close_after(Some(150));
                self.wait_state(SocketState::Reconnecting).await?;
                detect = Some(applied.elapsed());
            }
            Fault::SlowReader => {
                c.set_slow_reader(true);
                self.wait_state(SocketState::Reconnecting).await?;
                detect = Some(applied.elapsed());
                c.set_slow_reader(false);
            }
        }
        Ok((Instant::now(), detect))
    }
}

/// A status the contract allows for an operation in flight during the fault: the server's
/// answer, or `disconnected` when the connection was lost meanwhile.
fn allowed(status: Status, expected: Status, dropped: bool) -> bool {
    status == expected || (dropped && status == Status::Disconnected)
}

/// Recovery time and, where the connection had to be given up, the time to notice.
type CellResult = Result<(Duration, Option<Duration>), String>;

async fn run_cell(fault: Fault, phase: Phase) -> CellResult {
    let mut cell = Cell::start(phase).await?;
    let (lobby, ltrace) = cell.channel("room:lobby");
    let mut joins: Vec<(&str, Pending)> = Vec::new();
    let mut pushes: Vec<(String, Status, Pending)> = Vec::new();
    let mut slow = None;
    if phase != Phase::MidJoin {
        let (cb, rx) = op();
        lobby
            .join(json("{}"), None, cb)
            .map_err(|s| format!("{s:?}"))?;
        let (status, _) = completed("first join", rx).await?;
        if status != Status::Ok {
            return Err(format!("first join: {status:?}"));
        }
    }
    match phase {
        Phase::Idle => {}
        Phase::MidJoin => {
            let (cb, rx) = op();
            lobby
                .join(json("{}"), None, cb)
                .map_err(|s| format!("{s:?}"))?;
            joins.push(("join", rx));
        }
        Phase::MidPush => {
            for i in 0..PUSHES {
                let (cb, rx) = op();
                lobby
                    .push("new_msg", json(&format!(r#"{{"i":{i}}}"#)), None, cb)
                    .map_err(|s| format!("{s:?}"))?;
                pushes.push((format!("push {i}"), Status::Ok, rx));
            }
        }
        Phase::Flood => {
            let (cb, rx) = op();
            lobby
                .push("flood", json(&format!(r#"{{"n":{FLOOD}}}"#)), None, cb)
                .map_err(|s| format!("{s:?}"))?;
            pushes.push(("flood".into(), Status::Ok, rx));
            let t = ltrace.clone();
            eventually("first flood message", || {
                t.has(|e| matches!(e, Ev::Msg(ev, _) if ev == "flood_msg"))
            })
            .await?;
        }
        Phase::Rejoin => {
            let (cb, rx) = op();
            lobby
                .push("crash", json("{}"), None, cb)
                .map_err(|s| format!("{s:?}"))?;
            pushes.push(("crash".into(), Status::ChannelErrored, rx));
            let t = ltrace.clone();
            // The rejoin is under way once the errored channel is joining again.
            eventually("rejoin started", || {
                let evs = t.events();
                let errored = evs
                    .iter()
                    .position(|e| *e == Ev::State(ChannelState::Errored));
                errored.is_some_and(|i| evs[i..].contains(&Ev::State(ChannelState::Joining)))
            })
            .await?;
        }
        Phase::SlowJoin => {
            let (ch, trace) = cell.channel("room:slow");
            let (cb, rx) = op();
            // Longer than the 10 s a 5 s heartbeat takes to notice a half-open connection or a
            // server that stopped reading: with the default 10 s, the join's own timeout (armed
            // a moment before the fault) and the connection loss fire together, and either can
            // win. This cell is about the connection loss.
            ch.join(json("{}"), Some(Duration::from_secs(15)), cb)
                .map_err(|s| format!("{s:?}"))?;
            joins.push(("slow join", rx));
            slow = Some((ch, trace));
        }
    }
    let (lifted, detect) = cell.fault(fault).await?;

    // Recovery: connected, every channel joined.
    {
        let socket = &cell.socket;
        let lobby = &lobby;
        let slow = slow.as_ref().map(|(c, _)| c);
        eventually("recovery", || {
            socket.state() == SocketState::Connected
                && lobby.state() == ChannelState::Joined
                && slow.is_none_or(|c| c.state() == ChannelState::Joined)
        })
        .await?;
    }
    let recovery = lifted.elapsed();
    // The reconnect and rejoin schedules are a few hundred ms; `room:slow` takes 3 s to join.
    if recovery > RECOVERY_BOUND {
        return Err(format!(
            "recovery took {recovery:?}, beyond {RECOVERY_BOUND:?}"
        ));
    }

    // Every operation completed once, with an allowed status.
    let dropped = cell.drops() > 0;
    for (what, rx) in joins {
        let (status, _) = completed(what, rx).await?;
        if !allowed(status, Status::Ok, dropped) {
            return Err(format!("{what}: {status:?} (connection lost: {dropped})"));
        }
    }
    let mut push_ok = Vec::new();
    for (what, expected, rx) in pushes {
        let (status, _) = completed(&what, rx).await?;
        let dropped = cell.drops() > 0;
        if !allowed(status, expected, dropped) {
            return Err(format!("{what}: {status:?} (connection lost: {dropped})"));
        }
        push_ok.push(status == Status::Ok);
    }
    // The connection works: a push round trip.
    let (cb, rx) = op();
    lobby
        .push("echo", json(r#"{"after":true}"#), None, cb)
        .map_err(|s| format!("{s:?}"))?;
    let (status, resp) = completed("echo after recovery", rx).await?;
    if status != Status::Ok || resp != Some(serde_json::json!({"after": true})) {
        return Err(format!("echo after recovery: {status:?} {resp:?}"));
    }

    // Leave every channel: exactly once, ok.
    let mut channels = vec![(lobby, ltrace)];
    channels.extend(slow);
    for (ch, trace) in &channels {
        let (cb, rx) = op();
        let t = trace.clone();
        ch.leave(
            None,
            Box::new(move |status: Status, reply: Option<ReplyRef<'_>>| {
                t.push(Ev::Left(status));
                cb(status, reply)
            }),
        )
        .map_err(|s| format!("{s:?}"))?;
        let (status, _) = completed("leave", rx).await?;
        if status != Status::Ok {
            return Err(format!("leave of {}: {status:?}", ch.topic()));
        }
    }
    // A broadcast after the leave, from another socket straight to the server, then a round
    // trip on our socket: nothing may reach the left channel.
    probe_broadcast(&cell).await?;

    // Messages: none twice, none after the leave; the flood arrived in order, whole when its
    // push succeeded; every successful broadcast push was delivered to us first.
    let evs = channels[0].1.events();
    let left_at = evs
        .iter()
        .position(|e| matches!(e, Ev::Left(_)))
        .ok_or("no leave recorded")?;
    if evs.iter().filter(|e| matches!(e, Ev::Left(_))).count() != 1 {
        return Err("leave completed twice".into());
    }
    if let Some(late) = evs[left_at..].iter().find(|e| matches!(e, Ev::Msg(..))) {
        return Err(format!("message after the leave: {late:?}"));
    }
    let flood: Vec<u64> = msgs(&evs, "flood_msg", "i");
    if flood.iter().enumerate().any(|(k, &i)| i != k as u64 + 1) {
        return Err(format!(
            "flood not in order or doubled ({} messages)",
            flood.len()
        ));
    }
    if phase == Phase::Flood && push_ok[0] && flood.len() as u64 != FLOOD {
        return Err(format!("flood ok but {} messages", flood.len()));
    }
    let mut got = msgs(&evs, "new_msg", "i");
    let n = got.len();
    got.sort_unstable();
    got.dedup();
    if got.len() != n {
        return Err("a broadcast delivered twice".into());
    }
    if phase == Phase::MidPush {
        for (i, ok) in push_ok.iter().enumerate() {
            if *ok && !got.contains(&(i as u64)) {
                return Err(format!("push {i} ok but its broadcast never arrived"));
            }
        }
    }

    // Nothing retained: the channels are closed and released once their handles are gone.
    drop(channels);
    let socket = &cell.socket;
    let start = Instant::now();
    loop {
        let stats = socket.stats().await;
        // Capacity is not content: what a table has room for is not retained work.
        let held = EngineStats {
            table_capacity: 0,
            ..stats
        };
        if held == EngineStats::default() {
            break;
        }
        if start.elapsed() > EVENTUALLY {
            return Err(format!("engine tables not empty: {stats:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cell.socket.disconnect();
    Ok((recovery, detect))
}

fn msgs(evs: &[Ev], event: &str, key: &str) -> Vec<u64> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Msg(ev, p) if ev == event => p[key].as_u64(),
            _ => None,
        })
        .collect()
}

async fn probe_broadcast(cell: &Cell) -> Result<(), String> {
    let mut config = Config::new(cell.server.url());
    config.params.push(("token".into(), "probe".into()));
    let other = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    other.connect();
    let ch = other.channel("room:lobby");
    let (cb, rx) = op();
    ch.join(json("{}"), None, cb).unwrap();
    if completed("probe join", rx).await?.0 != Status::Ok {
        return Err("probe join failed".into());
    }
    let (cb, rx) = op();
    ch.push("new_msg", json(r#"{"i":999999}"#), None, cb)
        .unwrap();
    if completed("probe broadcast", rx).await?.0 != Status::Ok {
        return Err("probe broadcast failed".into());
    }
    other.disconnect();
    // Our own round trip: anything the server sent us before is in by now.
    let (probe, _) = cell.channel("room:probe");
    let (cb, rx) = op();
    probe.join(json("{}"), None, cb).unwrap();
    if completed("probe round trip", rx).await?.0 != Status::Ok {
        return Err("probe round trip failed".into());
    }
    let (cb, rx) = op();
    probe.leave(None, cb).unwrap();
    completed("probe leave", rx).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_in_every_phase_recovers_and_loses_nothing() {
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    // Phase by phase, the six faults of a phase at once.
    for phase in PHASES {
        let cells: Vec<_> = FAULTS
            .iter()
            .map(|&fault| tokio::spawn(run_cell(fault, phase)))
            .collect();
        for (fault, cell) in FAULTS.iter().zip(cells) {
            let r = cell.await.unwrap_or_else(|e| Err(format!("panicked: {e}")));
            results.push((*fault, phase, r));
        }
    }
    let mut out = String::new();
    let titles = [
        "fault matrix: recovery time after the fault ends (connected, every channel joined)",
        "time for the client to give up the connection (heartbeat 1 s; 5 s for SlowJoin)",
    ];
    for (table, title) in titles.iter().enumerate() {
        out.push_str(&format!("\n{title}\n{:<12}", "fault"));
        for p in PHASES {
            out.push_str(&format!("{:>12}", format!("{p:?}")));
        }
        out.push('\n');
        for f in FAULTS {
            out.push_str(&format!("{:<12}", format!("{f:?}")));
            for p in PHASES {
                let (_, _, r) = results
                    .iter()
                    .find(|(rf, rp, _)| *rf == f && *rp == p)
                    .unwrap();
                let cell = match (r, table) {
                    (Err(_), _) => "FAIL".into(),
                    (Ok((rec, _)), 0) => format!("ok {:.2}s", rec.as_secs_f64()),
                    (Ok((_, Some(d))), _) => format!("{:.2}s", d.as_secs_f64()),
                    (Ok((_, None)), _) => "-".into(),
                };
                out.push_str(&format!("{cell:>12}"));
            }
            out.push('\n');
        }
    }
    let failures: Vec<_> = results
        .iter()
        .filter_map(|(f, p, r)| r.as_ref().err().map(|e| format!("{f:?} × {p:?}: {e}")))
        .collect();
    out.push_str(&format!(
        "{} of {} cells passed in {:.1}s\n",
        results.len() - failures.len(),
        results.len(),
        started.elapsed().as_secs_f64()
    ));
    // Written to stderr directly so the table shows in a normal test run.
    let _ = std::io::stderr().write_all(out.as_bytes());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
