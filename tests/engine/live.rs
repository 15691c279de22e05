//! The engine over real TCP on a multi-threaded runtime, against the bundled test server or,
//! when `PHX_TEST_URL` is set (e.g. `ws://127.0.0.1:4000/socket/websocket`), against any server
//! running the test application, a real Phoenix one included. Only tests that need no fault
//! control live here.

use crate::support::*;
use phx::engine::*;
use phx_testserver::TestServer;
use serde_json::json as v;

/// Where the live tests connect: `PHX_TEST_URL`, or a test server started for the test.
struct Live {
    url: String,
    _server: Option<TestServer>,
}

impl Live {
    async fn start() -> Live {
        match std::env::var("PHX_TEST_URL") {
            Ok(url) if !url.is_empty() => Live { url, _server: None },
            _ => {
                let server = TestServer::start(phx_testserver::Config::default())
                    .await
                    .expect("test server starts");
                Live {
                    url: server.url(),
                    _server: Some(server),
                }
            }
        }
    }

    fn config(&self, token: &str) -> Config {
        let mut config = Config::new(self.url.clone());
        config.params.push(("token".into(), token.into()));
        config
    }

    async fn connected(&self, token: &str) -> (Socket, Events) {
        let socket =
            Socket::new(self.config(token), &tokio::runtime::Handle::current()).expect("valid URL");
        let (rec, mut events) = recorder();
        socket.set_handler(Some(rec));
        socket.connect();
        events.socket(SocketState::Connected).await;
        (socket, events)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_as_the_test_application_answers() {
    let live = Live::start().await;
    let (socket, _) = live.connected("live-joins").await;
    let ch = socket.channel("room:lobby");
    let (cb, rx) = op();
    ch.join(json(r#"{"echo":{"x":[1,"two"]}}"#), None, cb)
        .unwrap();
    let d = done(rx).await;
    assert_eq!(d.status, Status::Ok);
    assert_eq!(
        d.response(),
        v!({"joined":"room:lobby","echo":{"x":[1,"two"]}})
    );
    for (topic, reason) in [
        ("room:private", "unauthorized"),
        ("room:crash", "join crashed"),
        ("nochannel:live", "unmatched topic"),
    ] {
        let ch = socket.channel(topic);
        let (cb, rx) = op();
        ch.join(json("{}"), None, cb).unwrap();
        let d = done(rx).await;
        assert_eq!(
            (d.status, d.response()),
            (Status::ReplyError, v!({ "reason": reason }))
        );
    }
    let d = join_ok(&socket.channel("echo:live")).await;
    assert_eq!(d.response(), v!({}));
    socket.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_replies_and_messages() {
    let live = Live::start().await;
    let (socket, _) = live.connected("live-push").await;
    let (ch, mut events) = channel(&socket, "room:live-push");
    join_ok(&ch).await;
    let d = done(push(&ch, "echo", r#"{"a":1,"b":[1,2],"c":"ü"}"#)).await;
    assert_eq!(
        (d.status, d.response()),
        (Status::Ok, v!({"a":1,"b":[1,2],"c":"ü"}))
    );
    let d = done(push(&ch, "fail", "{}")).await;
    assert_eq!(
        (d.status, d.response()),
        (Status::ReplyError, v!({"reason":"nope"}))
    );
    let d = done(push_timeout(&ch, "noreply", "{}", ms(300))).await;
    assert_eq!(d.status, Status::Timeout);
    done(push(&ch, "push_me", r#"{"x":1}"#)).await;
    let d = done(push(&ch, "flood", r#"{"n":1000}"#)).await;
    assert_eq!(d.response(), v!({"sent":1000}));
    let msgs = events.messages(1001).await;
    let Ev::Message { event, payload, .. } = &msgs[0] else {
        unreachable!()
    };
    assert_eq!((event.as_str(), payload.value()), ("pushed", v!({"x":1})));
    for (i, m) in msgs[1..].iter().enumerate() {
        let Ev::Message { event, payload, .. } = m else {
            unreachable!()
        };
        assert_eq!(
            (event.as_str(), payload.value()),
            ("flood_msg", v!({ "i": i + 1 }))
        );
    }
    socket.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_reach_every_joined_socket() {
    let live = Live::start().await;
    let (a, _) = live.connected("live-a").await;
    let (b, _) = live.connected("live-b").await;
    let (cha, mut ea) = channel(&a, "room:live-bcast");
    let (chb, mut eb) = channel(&b, "room:live-bcast");
    join_ok(&cha).await;
    join_ok(&chb).await;
    assert_eq!(
        done(push(&cha, "new_msg", r#"{"body":"hello all"}"#))
            .await
            .status,
        Status::Ok
    );
    for events in [&mut ea, &mut eb] {
        let m = events.messages(1).await;
        let Ev::Message {
            join_ref,
            event,
            payload,
            ..
        } = &m[0]
        else {
            unreachable!()
        };
        assert_eq!(join_ref, &None);
        assert_eq!(
            (event.as_str(), payload.value()),
            ("new_msg", v!({"body":"hello all"}))
        );
    }
    a.shutdown_async().await;
    b.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_round_trips() {
    let live = Live::start().await;
    let (socket, _) = live.connected("live-bin").await;
    let (ch, mut events) = channel(&socket, "room:live-bin");
    join_ok(&ch).await;
    let bytes = vec![0, 1, 2, 0xff, 0xfe, 0x0a];
    let (cb, rx) = op();
    ch.push("echo", Body::Binary(bytes.clone()), None, cb)
        .unwrap();
    assert_eq!(
        done(rx).await.reply,
        Some(("ok".into(), Owned::Binary(bytes.clone())))
    );
    let (cb, rx) = op();
    ch.push("push_me", Body::Binary(bytes.clone()), None, cb)
        .unwrap();
    done(rx).await;
    let m = events.messages(1).await;
    let Ev::Message { payload, .. } = &m[0] else {
        unreachable!()
    };
    assert_eq!(payload, &Owned::Binary(bytes));
    socket.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_rejoins_and_stop_closes() {
    let live = Live::start().await;
    let mut config = live.config("live-crash");
    config.rejoin_schedule = millis(&[50]);
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    socket.connect();
    let (ch, mut events) = channel(&socket, "room:live-crash");
    join_ok(&ch).await;
    assert_eq!(
        done(push(&ch, "crash", "{}")).await.status,
        Status::ChannelErrored
    );
    let (_, status) = events.rejoin().await;
    assert_eq!(status, Status::Ok);
    assert_eq!(done(push(&ch, "echo", "{}")).await.status, Status::Ok);
    let d = done(push(&ch, "stop_reply", "{}")).await;
    assert_eq!((d.status, d.response()), (Status::Ok, v!({"bye":true})));
    events.channel(ChannelState::Closed).await;
    socket.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_then_fresh_instance_joins_again() {
    let live = Live::start().await;
    let (socket, _) = live.connected("live-leave").await;
    let ch = socket.channel("room:live-leave");
    join_ok(&ch).await;
    let (cb, rx) = op();
    ch.leave(None, cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Ok);
    let again = socket.channel("room:live-leave");
    assert!(!again.same_as(&ch));
    join_ok(&again).await;
    assert_eq!(
        done(push(&again, "echo", r#"{"n":2}"#)).await.response(),
        v!({"n":2})
    );
    socket.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_forced_disconnect_reconnects_and_rejoins() {
    let live = Live::start().await;
    let mut config = live.config("live-victim");
    config.reconnect_schedule = millis(&[50]);
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    let (rec, mut sevents) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    sevents.socket(SocketState::Connected).await;
    let (ch, mut events) = channel(&socket, "room:live-victim");
    join_ok(&ch).await;
    let d = done(push(&ch, "disconnect_me", "{}")).await;
    assert_eq!(d.response(), v!({"disconnecting":true}));
    let (_, reason) = sevents.reconnecting().await;
    let closed = DisconnectReason::CloseFrame {
        code: 1000,
        reason: String::new(),
    };
    assert_eq!(reason, Some(closed));
    let (_, status) = events.rejoin().await;
    assert_eq!(status, Status::Ok);
    socket.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_is_refused_with_403() {
    let live = Live::start().await;
    let socket = Socket::new(live.config("bad"), &tokio::runtime::Handle::current()).unwrap();
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    assert_eq!(
        reason,
        Some(DisconnectReason::HttpStatus {
            status: 403,
            retry_after: None
        })
    );
    socket.shutdown_async().await;
}

/// Threads of this process, from /proc (Linux).
fn thread_count() -> Option<usize> {
    // Only the shared runtime's threads: other tests in this binary start threads of their own.
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let named = |e: std::fs::DirEntry| std::fs::read_to_string(e.path().join("comm")).ok();
    Some(
        tasks
            .filter_map(Result::ok)
            .filter_map(named)
            .filter(|comm| comm.trim_end() == "phx-worker")
            .count(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_sockets_share_the_runtime_without_a_thread_each() {
    let live = Live::start().await;
    let shared = |token: &str| Socket::new_shared(live.config(token)).expect("valid URL");
    // The shared runtime starts with the first socket; count threads after that.
    let first = shared("scale-0");
    first.connect();
    let before = thread_count();
    let sockets: Vec<Socket> = (1..=300).map(|i| shared(&format!("scale-{i}"))).collect();
    let mut joins = Vec::new();
    for (i, s) in sockets.iter().enumerate() {
        s.connect();
        let (cb, rx) = op();
        s.channel(&format!("room:scale-{i}"))
            .join(json("{}"), None, cb)
            .unwrap();
        joins.push(rx);
    }
    for rx in joins {
        assert_eq!(done(rx).await.status, Status::Ok);
    }
    let after = thread_count();
    if let (Some(before), Some(after)) = (before, after) {
        assert!(
            // A slow batch on a loaded machine may hand a worker to `block_in_place`, which
            // starts a replacement; a thread per socket would add 300.
            after <= before + 8,
            "runtime threads grew from {before} to {after} for 300 sockets"
        );
    }
    for s in sockets.iter().chain([&first]) {
        s.shutdown_async().await;
    }
}
