//! Timers under load, on a real clock, over real TCP, on the shared multi-threaded runtime:
//! what a paused in-memory world cannot show (starvation, a busy worker). The test server
//! runs on a runtime of its own, so only the client is loaded. A test binary of its own: its
//! tests run at once and load the shared runtime together, which is part of what they show.
//!
//! The assertions compare orders of events (a timeout completes while a flood is still being
//! delivered; heartbeats keep going out while a handler is busy), with wide margins, never
//! tight durations.

use phx::engine::*;
use phx_testserver::{LogFrame, TestServer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn json(s: &str) -> Body {
    Body::Json(s.to_owned())
}

/// A test server on a runtime (and thread) of its own.
struct Remote {
    server: TestServer,
    _rt: tokio::runtime::Runtime,
}

impl Remote {
    fn start() -> Remote {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(TestServer::start(phx_testserver::Config::default()))
            .unwrap();
        Remote { server, _rt: rt }
    }

    fn config(&self, heartbeat: Duration) -> Config {
        let mut config = Config::new(self.server.url());
        config.heartbeat_interval = heartbeat;
        config
    }

    /// Heartbeats the server received so far.
    fn heartbeats(&self) -> usize {
        self.server
            .controls()
            .log()
            .iter()
            .filter(|e| matches!(&e.frame, LogFrame::Text(t) if t.contains("\"heartbeat\"")))
            .count()
    }
}

/// Counts messages; each takes `cost` of the handler's time (a slow application).
struct Slow {
    cost: Duration,
    seen: AtomicUsize,
}

impl ChannelHandler for Slow {
    fn on_message(&self, _m: &Message<'_>) {
        self.seen.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.cost);
    }
}

/// Records socket states with the time they were reached.
struct States(std::sync::Mutex<mpsc::Sender<(SocketState, Instant)>>);

impl SocketHandler for States {
    fn on_state(&self, state: SocketState, _reason: Option<&DisconnectReason>) {
        let _ = self.0.lock().unwrap().send((state, Instant::now()));
    }
}

fn socket_with(config: Config) -> (Socket, mpsc::Receiver<(SocketState, Instant)>) {
    let socket = Socket::new_shared(config).unwrap();
    let (tx, rx) = mpsc::channel();
    socket.set_handler(Some(Arc::new(States(std::sync::Mutex::new(tx)))));
    socket.connect_wait(secs(5)).expect("connects");
    // The handler saw `connecting` and `connected`; the tests watch what comes after.
    while rx.recv_timeout(secs(5)).expect("state events").0 != SocketState::Connected {}
    (socket, rx)
}

fn blocking_op() -> (OnReply, mpsc::Receiver<(Status, Instant)>) {
    let (tx, rx) = mpsc::channel();
    let cb: OnReply = Box::new(move |status, _| {
        let _ = tx.send((status, Instant::now()));
    });
    (cb, rx)
}

/// Asks the server for `n` messages; the receiver gets the push's completion.
fn flood(ch: &Channel, n: usize) -> mpsc::Receiver<(Status, Instant)> {
    let (cb, rx) = blocking_op();
    let payload = json(&format!(r#"{{"n":{n}}}"#));
    ch.push("flood", payload, Some(secs(60)), cb).unwrap();
    rx
}

fn join(ch: &Channel) {
    let (cb, rx) = blocking_op();
    ch.join(json("{}"), None, cb).unwrap();
    assert_eq!(rx.recv_timeout(secs(5)).unwrap().0, Status::Ok);
}

/// During a flood delivered to a handler that takes 1 ms per message, a push's 200 ms timeout
/// fires while the flood is still arriving (not once it is over), and heartbeats keep going out.
#[test]
fn timers_fire_on_time_while_frames_keep_arriving() {
    const N: usize = 3000;
    let remote = Remote::start();
    let (socket, _states) = socket_with(remote.config(ms(100)));
    let ch = socket.channel("room:lobby");
    let slow = Arc::new(Slow {
        cost: ms(1),
        seen: AtomicUsize::new(0),
    });
    ch.set_handler(Some(slow.clone()));
    join(&ch);
    let beats_before = remote.heartbeats();
    let flood = flood(&ch, N);
    let (cb, timed) = blocking_op();
    let pushed_at = Instant::now();
    ch.push("noreply", json("{}"), Some(ms(200)), cb).unwrap();
    let (status, at) = timed.recv_timeout(secs(30)).unwrap();
    let seen_at_timeout = slow.seen.load(Ordering::SeqCst);
    assert_eq!(status, Status::Timeout);
    assert!(
        seen_at_timeout < N / 2,
        "the timeout waited for the flood: {seen_at_timeout} of {N} messages delivered first \
         ({:?} after the push)",
        at - pushed_at
    );
    assert_eq!(flood.recv_timeout(secs(60)).unwrap().0, Status::Ok);
    let beats = remote.heartbeats() - beats_before;
    eprintln!(
        "timeout after {:?} with {seen_at_timeout} of {N} messages delivered; {beats} heartbeats \
         during the flood",
        at - pushed_at
    );
    // The flood takes N ms of handler time: about N / 100 heartbeats are due meanwhile.
    assert!(
        beats >= N / 100 / 3,
        "{beats} heartbeats during a {N} ms flood"
    );
    socket.shutdown();
}

/// A server that floods us is not silent: with its heartbeat replies unanswered (blackhole)
/// but frames arriving, the connection stays up through many heartbeat intervals; once the
/// frames stop, the silence is detected.
#[test]
fn a_flooding_server_is_alive_and_a_silent_one_is_detected() {
    const N: usize = 2000;
    let remote = Remote::start();
    let (socket, states) = socket_with(remote.config(ms(100)));
    let ch = socket.channel("room:lobby");
    ch.set_handler(Some(Arc::new(Slow {
        cost: ms(1),
        seen: AtomicUsize::new(0),
    })));
    join(&ch);
    remote.server.controls().set_blackhole(true);
    let flood = flood(&ch, N);
    let (status, flood_done) = flood.recv_timeout(secs(60)).unwrap();
    assert_eq!(status, Status::Ok, "the connection survived the flood");
    let during: Vec<_> = states.try_iter().collect();
    assert!(
        during.is_empty(),
        "no state change during the flood: {during:?}"
    );
    let (state, lost_at) = states.recv_timeout(secs(10)).expect("silence detected");
    assert_eq!(state, SocketState::Reconnecting);
    assert!(lost_at > flood_done);
    assert_eq!(
        socket.last_reason(),
        Some(DisconnectReason::HeartbeatTimeout)
    );
    socket.shutdown();
}

/// One socket's callback that blocks for 1.5 s does not stop another socket of the same
/// runtime: its heartbeats go out and its pushes complete within their 500 ms timeouts.
#[test]
fn a_blocking_callback_does_not_stall_other_sockets() {
    let remote = Remote::start();
    let (blocked, _s1) = socket_with(remote.config(secs(30)));
    let (other, _s2) = socket_with(remote.config(ms(100)));
    let stuck = blocked.channel("room:stuck");
    stuck.set_handler(Some(Arc::new(Slow {
        cost: ms(1500),
        seen: AtomicUsize::new(0),
    })));
    join(&stuck);
    let ch = other.channel("room:free");
    join(&ch);
    let (cb, _blocker) = blocking_op();
    stuck.push("push_me", json("{}"), None, cb).unwrap();
    let beats_before = remote.heartbeats();
    let start = Instant::now();
    let mut completed = 0;
    while start.elapsed() < ms(1200) {
        let (cb, rx) = blocking_op();
        ch.push("echo", json("{}"), Some(ms(500)), cb).unwrap();
        let (status, _) = rx.recv_timeout(secs(5)).unwrap();
        assert_eq!(
            status,
            Status::Ok,
            "push {completed} while the other socket blocks"
        );
        completed += 1;
    }
    let beats = remote.heartbeats() - beats_before;
    eprintln!("{completed} round trips and {beats} heartbeats while the other socket blocked");
    assert!(completed > 10, "only {completed} round trips in 1.2 s");
    assert!(beats >= 4, "{beats} heartbeats in 1.2 s at 100 ms");
    blocked.shutdown();
    other.shutdown();
}
