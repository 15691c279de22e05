//! What a call promises when it returns (its effect is visible; a failing call fails there and
//! never also completes), and what the engine must not keep or do after an operation ended:
//! ids of expired pushes, released channels, frames of pushes that timed out before they were
//! written, the rejoin schedule across connections, replies for another topic.

use crate::support::*;
use phx::engine::*;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

// ---- read your writes ---------------------------------------------------------------------------

/// A multi-threaded runtime and a test server on it, for tests that block their own thread.
fn runtime_and_server() -> (tokio::runtime::Runtime, phx_testserver::TestServer) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(phx_testserver::TestServer::start(
            phx_testserver::Config::default(),
        ))
        .unwrap();
    (rt, server)
}

/// The seed's recipe after an intentional disconnect: a push fails at once, `channel(topic)`
/// gives a fresh instance, and that instance joins once connected again.
#[tokio::test(start_paused = true)]
async fn after_disconnect_returns_push_fails_and_the_cache_is_fresh() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, _chev) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    socket.disconnect();
    // No await in between: all of this is decided by the calls themselves.
    assert_eq!(socket.state(), SocketState::Disconnected);
    assert_eq!(ch.state(), ChannelState::Closed);
    let (cb, rx) = op();
    assert_eq!(
        ch.push("echo", json("{}"), None, cb),
        Err(Status::StateError)
    );
    assert!(rx.await.is_err(), "a refused push never completes");
    let fresh = socket.channel("room:lobby");
    assert!(!fresh.same_as(&ch), "a fresh instance after disconnect");
    socket.connect();
    assert_eq!(socket.state(), SocketState::Connecting);
    assert_eq!(join_ok(&fresh).await.status, Status::Ok);
    assert_eq!(fresh.state(), ChannelState::Joined);
}

/// `connect_wait` right after `disconnect` connects (it used to see the disconnect's own
/// state change and give up).
#[test]
fn connect_wait_right_after_disconnect_connects() {
    let (rt, server) = runtime_and_server();
    let socket = Socket::new(Config::new(server.url()), rt.handle()).unwrap();
    for round in 0..20 {
        assert_eq!(socket.connect_wait(secs(5)), Ok(()), "round {round}");
        socket.disconnect();
        assert_eq!(socket.state(), SocketState::Disconnected);
        assert_eq!(socket.connect_wait(secs(5)), Ok(()), "round {round}");
        assert_eq!(socket.state(), SocketState::Connected);
        socket.disconnect();
    }
    socket.shutdown();
}

/// A second leave, and a join after a leave, fail at once with `StateError` and never complete;
/// `leave()` on a channel never joined completes `Ok` and closes it at once.
#[tokio::test(start_paused = true)]
async fn failing_calls_fail_at_once_and_never_complete() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;

    let never = socket.channel("room:a");
    let (cb, first) = op();
    never
        .leave(None, cb)
        .expect("leaving a never-joined channel is allowed");
    assert_eq!(never.state(), ChannelState::Closed);
    let (cb, second) = op();
    assert_eq!(never.leave(None, cb), Err(Status::StateError));
    let (cb, join) = op();
    assert_eq!(never.join(json("{}"), None, cb), Err(Status::StateError));
    assert_eq!(done(first).await.status, Status::Ok);
    assert!(second.await.is_err() && join.await.is_err());
    assert!(!socket.channel("room:a").same_as(&never), "closed: fresh");

    let (ch, _chev) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let (cb, leave) = op();
    ch.leave(None, cb).unwrap();
    assert_eq!(ch.state(), ChannelState::Leaving);
    let (cb, again) = op();
    assert_eq!(ch.leave(None, cb), Err(Status::StateError));
    let (cb, push) = op();
    assert_eq!(
        ch.push("echo", json("{}"), None, cb),
        Err(Status::StateError)
    );
    assert_eq!(done(leave).await.status, Status::Ok);
    assert!(again.await.is_err() && push.await.is_err());
}

/// A join and a leave are visible in the channel's state when they return, even while the
/// socket's task still has older events to report.
#[tokio::test(start_paused = true)]
async fn join_and_leave_states_are_visible_when_the_calls_return() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    let (cb, joined) = op();
    ch.join(json("{}"), None, cb).unwrap();
    assert_eq!(ch.state(), ChannelState::Joining);
    let (cb, left) = op();
    ch.leave(None, cb).unwrap();
    assert_eq!(ch.state(), ChannelState::Leaving);
    // The join's reply may arrive before the leave is handled: it must not publish `joined`
    // over the leave the user already made.
    assert_eq!(done(joined).await.status, Status::LeftBeforeJoin);
    assert_ne!(ch.state(), ChannelState::Joined);
    done(left).await;
    assert_eq!(ch.state(), ChannelState::Closed);
}

/// `Socket::channel` on one thread and `join` on another: the channel always exists for the
/// socket's task before any command about it arrives.
#[test]
fn channel_and_join_from_two_threads_never_lose_the_channel() {
    let (rt, server) = runtime_and_server();
    let socket = Socket::new(Config::new(server.url()), rt.handle()).unwrap();
    socket.connect_wait(secs(5)).unwrap();
    for round in 0..200 {
        let topic = format!("room:race{round}");
        let (a, b) = (socket.clone(), socket.clone());
        let t = topic.clone();
        let taker = std::thread::spawn(move || a.channel(&t));
        let joiner = std::thread::spawn(move || {
            let ch = b.channel(&topic);
            let (tx, rx) = std::sync::mpsc::channel();
            let cb: OnReply = Box::new(move |status, _| tx.send(status).unwrap());
            ch.join(json("{}"), None, cb).unwrap();
            (ch, rx.recv_timeout(secs(5)).expect("the join completes"))
        });
        let first = taker.join().unwrap();
        let (ch, status) = joiner.join().unwrap();
        assert_eq!(status, Status::Ok, "round {round}");
        assert!(first.same_as(&ch), "one instance per topic");
        // The server allows 100 joined channels per socket.
        let (tx, rx) = std::sync::mpsc::channel();
        let cb: OnReply = Box::new(move |status, _| tx.send(status).unwrap());
        ch.leave(None, cb).unwrap();
        assert_eq!(rx.recv_timeout(secs(5)), Ok(Status::Ok));
    }
    socket.shutdown();
}

// ---- nothing kept after completion ---------------------------------------------------------------

/// Pushes that time out in the buffer of an errored channel leave it: nothing grows with the
/// number of operations that already completed.
#[tokio::test(start_paused = true)]
async fn timed_out_buffered_pushes_leave_the_buffer() {
    let world = World::new().await;
    let mut config = world.config();
    config.max_buffered_pushes = 10_000;
    let (socket, mut events) = world.connected_with(config).await;
    let (ch, mut chev) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    world.controls().refuse(503, None);
    world.controls().drop_all();
    events.reconnecting().await;
    chev.channel(ChannelState::Errored).await;
    let pending: Vec<_> = (0..10_000)
        .map(|_| push_timeout(&ch, "echo", "{}", secs(1)))
        .collect();
    for rx in pending {
        assert_eq!(done(rx).await.status, Status::Timeout);
    }
    let stats = socket.stats().await;
    assert_eq!(
        (stats.buffered_pushes, stats.buffer_slots),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.operation_timers, 0);
}

/// Channels taken for topics never joined are released with their last handle: neither the
/// socket's task nor the handles' cache grows with every topic touched.
#[tokio::test(start_paused = true)]
async fn unused_channels_are_released_with_their_last_handle() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let kept = socket.channel("room:kept");
    for i in 0..1000 {
        let ch = socket.channel(&format!("room:{i}"));
        let twin = ch.clone();
        drop(ch);
        drop(twin);
    }
    let stats = socket.stats().await;
    assert_eq!((stats.channels, stats.cached_channels), (1, 1), "{stats:?}");
    // A handle taken again before the release is handled keeps the instance.
    let again = socket.channel("room:kept");
    drop(kept);
    assert!(socket.channel("room:kept").same_as(&again));
    assert_eq!(join_ok(&again).await.status, Status::Ok);
    drop(again);
    let stats = socket.stats().await;
    assert_eq!(stats.channels, 1, "a joined channel stays without handles");
}

/// A byte stream whose writes stall while its gate is closed (a peer that stops reading).
struct Gated {
    io: tokio::io::DuplexStream,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    closed: AtomicBool,
    waiter: Mutex<Option<Waker>>,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.closed.store(closed, Ordering::SeqCst);
        if let Some(w) = self.waiter.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl AsyncRead for Gated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Gated {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.gate.closed.load(Ordering::SeqCst) {
            *self.gate.waiter.lock().unwrap() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

struct GatedConnector {
    server: Arc<phx_testserver::TestServer>,
    gate: Arc<Gate>,
}

impl Connector for GatedConnector {
    fn connect(&self, _endpoint: &Endpoint) -> IoFuture {
        let (io, _task) = self.server.connect_in_memory();
        let gate = self.gate.clone();
        Box::pin(async move { Ok(Box::new(Gated { io, gate }) as BoxIo) })
    }
}

/// A push that times out while its frame still waits in the write queue (the peer is not
/// reading) is never written, even once the peer reads again.
#[tokio::test(start_paused = true)]
async fn a_push_that_timed_out_in_the_write_queue_is_never_sent() {
    let world = World::new().await;
    let gate = Arc::new(Gate::default());
    let connector = Arc::new(GatedConnector {
        server: world.server.clone(),
        gate: gate.clone(),
    });
    let socket = Socket::with_connector(
        world.config(),
        connector,
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    events.socket(SocketState::Connected).await;
    let ch = socket.channel("room:lobby");
    join_ok(&ch).await;
    gate.set_closed(true);
    // Fills the WebSocket layer's own buffer, so what follows stays in the write queue.
    let big = format!(r#"{{"fill":"{}"}}"#, "x".repeat(64 << 10));
    let first = push_timeout(&ch, "echo", &big, secs(20));
    let late = push_timeout(&ch, "echo", r#"{"late":true}"#, secs(1));
    assert_eq!(done(late).await.status, Status::Timeout);
    assert_eq!(socket.stats().await.outbox, 0, "withdrawn from the queue");
    gate.set_closed(false);
    assert_eq!(done(first).await.status, Status::Ok);
    let echoed = world.frames_with_event("echo");
    assert_eq!(echoed.len(), 1, "only the push still in time was sent");
    assert!(!world.frames().iter().any(|f| f.contains("late")));
}

// ---- schedules ------------------------------------------------------------------------------------

/// Every connection starts the rejoin schedule over: after a reconnect, a failed rejoin is
/// retried after 1 s, not after the delay the previous connection had reached.
#[tokio::test(start_paused = true)]
async fn a_reconnect_restarts_the_rejoin_schedule() {
    let world = World::new().await;
    let mut config = world.config();
    config.default_timeout = secs(1); // rejoins use it; the server's replies come after 2 s
    let (socket, mut events) = world.connected_with(config).await;
    let (ch, mut chev) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    world.controls().set_delay(ms(2000));
    drop(push(&ch, "crash", "{}"));
    chev.channel(ChannelState::Errored).await;
    // Rejoins 1, 2 and 5 s after each failure, each timing out after 1 s: the schedule has
    // reached its 10 s step.
    for _ in 0..3 {
        assert_eq!(chev.rejoin().await.1, Status::Timeout);
    }
    world.controls().drop_all();
    events.reconnecting().await;
    events.socket(SocketState::Connected).await;
    // The reconnect rejoins at once; that attempt times out; the next follows 1 s later.
    let (first_fail, status) = chev.rejoin().await;
    assert_eq!(status, Status::Timeout);
    let (second_fail, status) = chev.rejoin().await;
    assert_eq!(status, Status::Timeout);
    assert_eq!(
        second_fail - first_fail,
        secs(2),
        "1 s delay + 1 s timeout, not the 10 s the old connection had reached"
    );
}

// ---- replies --------------------------------------------------------------------------------------

/// A server whose frames the test writes by hand.
struct Scripted {
    connected: tokio::sync::mpsc::UnboundedSender<tokio::io::DuplexStream>,
}

impl Connector for Scripted {
    fn connect(&self, _endpoint: &Endpoint) -> IoFuture {
        let (client, server) = tokio::io::duplex(64 << 10);
        let _ = self.connected.send(server);
        Box::pin(async move { Ok(Box::new(client) as BoxIo) })
    }
}

/// A reply carrying a pending push's ref but another channel's topic is not that push's reply.
#[tokio::test(start_paused = true)]
async fn a_reply_for_another_topic_does_not_complete_a_push() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let socket = Socket::with_connector(
        Config::new("ws://scripted/socket/websocket"),
        Arc::new(Scripted { connected: tx }),
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    socket.connect();
    let io = rx.recv().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(io).await.unwrap();
    let ch = socket.channel("room:a");
    let (cb, joined) = op();
    ch.join(json("{}"), None, cb).unwrap();
    let frame = |ws_msg: Option<Result<Ws, _>>| -> serde_json::Value {
        serde_json::from_str(ws_msg.unwrap().unwrap().to_text().unwrap()).unwrap()
    };
    let join = frame(ws.next().await);
    let (jr, r) = (join[0].clone(), join[1].clone());
    let reply = |jr: &serde_json::Value, r: &serde_json::Value, topic: &str, body: &str| {
        Ws::Text(
            format!(r#"[{jr},{r},"{topic}","phx_reply",{{"status":"ok","response":{body}}}]"#)
                .into(),
        )
    };
    ws.send(reply(&jr, &r, "room:a", "{}")).await.unwrap();
    assert_eq!(done(joined).await.status, Status::Ok);
    let pushed = push(&ch, "echo", "{}");
    let p = frame(ws.next().await);
    ws.send(reply(&p[0], &p[1], "room:b", r#"{"wrong":true}"#))
        .await
        .unwrap();
    ws.send(reply(&p[0], &p[1], "room:a", r#"{"right":true}"#))
        .await
        .unwrap();
    let d = done(pushed).await;
    assert_eq!(d.response(), serde_json::json!({"right": true}));
    socket.shutdown_async().await;
}

/// A socket whose runtime is gone refuses operations with `Closed` (its task was dropped with
/// the runtime, so nothing could ever complete them), and drops their completions at once
/// rather than keeping them queued for a task that will never run.
#[test]
fn operations_fail_closed_once_the_sockets_runtime_is_gone() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let socket = Socket::new(Config::new("ws://127.0.0.1:9/socket"), rt.handle()).unwrap();
    let ch = socket.channel("room:lobby");
    drop(rt);
    let (cb, rx) = op();
    assert_eq!(ch.join(json("{}"), None, cb), Err(Status::Closed));
    let mut rx = rx;
    assert!(
        matches!(
            rx.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Closed)
        ),
        "the refused join's completion was dropped, uncalled"
    );
}
