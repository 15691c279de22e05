//! Hostile servers: scripted WebSocket peers (in memory, on the paused clock, unless real TCP
//! is the point) that send what no Phoenix server sends. The client stays correct, bounded
//! and responsive, and says what happened.

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use phx::engine::*;
use serde_json::{json as v, Value};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::WebSocketStream;

/// Hands the server end of every connection attempt to the test.
struct Scripted {
    tx: mpsc::UnboundedSender<DuplexStream>,
}

impl Connector for Scripted {
    fn connect(&self, _endpoint: &Endpoint) -> IoFuture {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let _ = self.tx.send(server);
        Box::pin(async move { Ok(Box::new(client) as BoxIo) })
    }
}

type Peer = WebSocketStream<DuplexStream>;

struct Hostile {
    socket: Socket,
    events: Events,
    conns: mpsc::UnboundedReceiver<DuplexStream>,
}

impl Hostile {
    fn new(mut config: Config) -> Hostile {
        config.url = "ws://hostile.test/socket/websocket".into();
        let (tx, conns) = mpsc::unbounded_channel();
        let socket = Socket::with_connector(
            config,
            Arc::new(Scripted { tx }),
            &tokio::runtime::Handle::current(),
        )
        .unwrap();
        let (rec, events) = recorder();
        socket.set_handler(Some(rec));
        socket.connect();
        Hostile {
            socket,
            events,
            conns,
        }
    }

    fn default() -> Hostile {
        Self::new(Config::new("ws://unused"))
    }

    /// The next connection, upgraded.
    async fn accept(&mut self) -> Peer {
        let io = self.conns.recv().await.expect("a connection attempt");
        tokio_tungstenite::accept_async(io).await.expect("upgrade")
    }

    /// The next connection as raw bytes (the upgrade request unread).
    async fn accept_raw(&mut self) -> DuplexStream {
        self.conns.recv().await.expect("a connection attempt")
    }
}

/// The next frame the client sent, parsed; heartbeats are answered and skipped.
async fn recv(peer: &mut Peer) -> Value {
    loop {
        let msg = peer
            .next()
            .await
            .expect("client frame")
            .expect("valid frame");
        let Ws::Text(t) = msg else { continue };
        let f: Value = serde_json::from_str(t.as_str()).unwrap();
        if f[2] == "phoenix" {
            send(
                peer,
                v!([null, f[1], "phoenix", "phx_reply", {"status": "ok", "response": {}}]),
            )
            .await;
            continue;
        }
        return f;
    }
}

async fn send(peer: &mut Peer, frame: Value) {
    peer.send(Ws::text(frame.to_string())).await.expect("send");
}

async fn send_raw(peer: &mut Peer, text: &str) {
    peer.send(Ws::text(text.to_owned())).await.expect("send");
}

fn ok_reply(f: &Value, response: Value) -> Value {
    v!([f[0], f[1], f[2], "phx_reply", {"status": "ok", "response": response}])
}

/// Joins `topic` against the scripted peer; returns the channel, its events and the join frame.
async fn joined(h: &Hostile, peer: &mut Peer, topic: &str) -> (Channel, Events, Value) {
    let (ch, events) = channel(&h.socket, topic);
    let (cb, rx) = op();
    ch.join(json("{}"), None, cb).unwrap();
    let f = recv(peer).await;
    assert_eq!(f[3], "phx_join");
    send(peer, ok_reply(&f, v!({}))).await;
    assert_eq!(done(rx).await.status, Status::Ok);
    (ch, events, f)
}

/// A push answered by the peer proves the connection still works.
async fn round_trip(peer: &mut Peer, ch: &Channel) {
    let rx = push(ch, "echo", r#"{"still":"here"}"#);
    let f = recv(peer).await;
    send(peer, ok_reply(&f, f[4].clone())).await;
    let d = done(rx).await;
    assert_eq!(
        (d.status, d.response()),
        (Status::Ok, v!({"still": "here"}))
    );
}

fn debug_lines(events: &mut Events) -> Vec<String> {
    events
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Log(LogLevel::Debug, m) if m.starts_with("dropped") => Some(m),
            _ => None,
        })
        .collect()
}

fn warnings(events: &mut Events) -> Vec<String> {
    events
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Log(LogLevel::Warn, m) => Some(m),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn replies_for_unknown_refs_and_second_replies_are_ignored() {
    let mut h = Hostile::default();
    let mut peer = h.accept().await;
    let (ch, _ev, join) = joined(&h, &mut peer, "room:a").await;
    // A reply for a ref never used, on our topic and join_ref.
    send(
        &mut peer,
        ok_reply(&v!([join[0], "4242", "room:a"]), v!({"x": 1})),
    )
    .await;
    // Two replies for one push: the first completes it, the second is dropped.
    let rx = push(&ch, "echo", "{}");
    let f = recv(&mut peer).await;
    send(&mut peer, ok_reply(&f, v!({"n": 1}))).await;
    send(&mut peer, ok_reply(&f, v!({"n": 2}))).await;
    let d = done(rx).await;
    assert_eq!((d.status, d.response()), (Status::Ok, v!({"n": 1})));
    round_trip(&mut peer, &ch).await;
    let dropped = debug_lines(&mut h.events);
    assert_eq!(
        dropped,
        [
            "dropped reply for unknown ref 4242 on room:a",
            &format!(
                "dropped reply for unknown ref {} on room:a",
                f[1].as_str().unwrap()
            )
        ],
        "each stray reply is reported"
    );
    assert_settled(&h.socket, 1).await;
    assert_eq!(h.socket.state(), SocketState::Connected);
}

#[tokio::test(start_paused = true)]
async fn malformed_replies_are_reported_and_the_push_times_out() {
    let mut h = Hostile::default();
    let mut peer = h.accept().await;
    let (ch, _ev, _) = joined(&h, &mut peer, "room:a").await;
    let no_status = push_timeout(&ch, "echo", "{}", secs(2));
    let f = recv(&mut peer).await;
    send(
        &mut peer,
        v!([f[0], f[1], f[2], "phx_reply", {"response": {}}]),
    )
    .await;
    let not_object = push_timeout(&ch, "echo", "{}", secs(2));
    let g = recv(&mut peer).await;
    send(&mut peer, v!([g[0], g[1], g[2], "phx_reply", "ok"])).await;
    round_trip(&mut peer, &ch).await;
    assert_eq!(done(no_status).await.status, Status::Timeout);
    assert_eq!(done(not_object).await.status, Status::Timeout);
    let warned = warnings(&mut h.events);
    assert_eq!(
        warned
            .iter()
            .filter(|m| m.contains("malformed reply"))
            .count(),
        2,
        "{warned:?}"
    );
    assert_settled(&h.socket, 1).await;
}

#[tokio::test(start_paused = true)]
async fn frames_that_are_not_json_or_not_for_us_are_dropped_with_a_reason() {
    let mut h = Hostile::default();
    let mut peer = h.accept().await;
    let (ch, mut chev, _) = joined(&h, &mut peer, "room:a").await;
    send_raw(&mut peer, "this is not json").await;
    send_raw(&mut peer, r#"[null,null,"room:a","evt",{"unterminated"#).await;
    // A broadcast and a push for topics we never joined.
    send(
        &mut peer,
        v!([null, null, "room:never", "new_msg", {"a": 1}]),
    )
    .await;
    send(
        &mut peer,
        v!(["77", null, "room:never", "pushed", {"a": 2}]),
    )
    .await;
    round_trip(&mut peer, &ch).await;
    let all = h.events.drain();
    let debug: Vec<_> = all
        .iter()
        .filter_map(|e| match e {
            Ev::Log(LogLevel::Debug, m) if m.starts_with("dropped") => Some(m.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        debug,
        [
            "dropped new_msg on room:never: no channel for it",
            "dropped pushed on room:never: no channel for it"
        ]
    );
    let warned: Vec<_> = all
        .iter()
        .filter_map(|e| match e {
            Ev::Log(LogLevel::Warn, m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        warned
            .iter()
            .filter(|m| m.starts_with("dropped undecodable frame"))
            .count(),
        2,
        "{warned:?}"
    );
    assert!(
        !chev.drain().iter().any(|e| matches!(e, Ev::Message { .. })),
        "nothing delivered"
    );
    assert_eq!(h.socket.state(), SocketState::Connected);
    assert_settled(&h.socket, 1).await;
}

/// A server that floods 100,000 messages and never reads what we send: every message arrives,
/// in order; the socket's calls return at once meanwhile; once the server reads again the
/// pushes queued meanwhile go out.
#[tokio::test(start_paused = true)]
async fn a_flood_from_a_server_that_never_reads_stays_responsive() {
    let mut h = Hostile::default();
    let mut peer = h.accept().await;
    let (ch, mut chev, join) = joined(&h, &mut peer, "room:a").await;
    let (mut sink, mut stream) = peer.split();
    let jr = join[0].clone();
    let flood = tokio::spawn(async move {
        for i in 0..100_000u32 {
            let f = v!([jr, null, "room:a", "flood_msg", {"i": i}]);
            sink.send(Ws::text(f.to_string())).await.unwrap();
        }
        sink
    });
    // Our pushes meanwhile: accepted at once, nothing read by the server.
    let pushes: Vec<_> = (0..50)
        .map(|i| push(&ch, "echo", &format!(r#"{{"i":{i}}}"#)))
        .collect();
    let mut expect = 0u32;
    while expect < 100_000 {
        let (_, ev) = chev.next().await;
        if let Ev::Message { event, payload, .. } = ev {
            assert_eq!(event, "flood_msg");
            assert_eq!(payload.value()["i"], expect);
            expect += 1;
        }
    }
    let mut sink = flood.await.unwrap();
    assert_eq!(h.socket.state(), SocketState::Connected);
    // The server reads again: each push arrives once, in order, and completes.
    for i in 0..50 {
        let f = loop {
            let Ws::Text(t) = stream.next().await.unwrap().unwrap() else {
                continue;
            };
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            if f[2] == "phoenix" {
                let r = v!([null, f[1], "phoenix", "phx_reply", {"status":"ok","response":{}}]);
                sink.send(Ws::text(r.to_string())).await.unwrap();
                continue;
            }
            break f;
        };
        assert_eq!(f[4]["i"], i);
        sink.send(Ws::text(ok_reply(&f, f[4].clone()).to_string()))
            .await
            .unwrap();
    }
    for (i, rx) in pushes.into_iter().enumerate() {
        let d = done(rx).await;
        assert_eq!((d.status, d.response()["i"].clone()), (Status::Ok, v!(i)));
    }
    assert_settled(&h.socket, 1).await;
}

/// A text frame whose fragments never end: cut at the frame size limit, the connection
/// closes with a clear reason, and the client reconnects.
#[tokio::test(start_paused = true)]
async fn a_never_ending_fragmented_frame_is_cut_at_the_size_limit() {
    let mut config = Config::new("ws://unused");
    config.max_frame_size = 64 * 1024;
    let mut h = Hostile::new(config);
    let mut peer = h.accept().await;
    let (ch, mut chev, _) = joined(&h, &mut peer, "room:a").await;
    let first = Frame::message(
        b"[null,null,\"room:a\",\"x\",\"".to_vec(),
        OpCode::Data(Data::Text),
        false,
    );
    peer.send(Ws::Frame(first)).await.unwrap();
    let endless = tokio::spawn(async move {
        loop {
            let header = FrameHeader {
                is_final: false,
                opcode: OpCode::Data(Data::Continue),
                ..FrameHeader::default()
            };
            let frame = Frame::from_payload(header, vec![b'a'; 4096].into());
            if peer.send(Ws::Frame(frame)).await.is_err() {
                return; // the client hung up
            }
        }
    });
    let (_, reason) = h.events.reconnecting().await;
    match reason {
        Some(DisconnectReason::FrameTooLarge(text)) => assert!(text.contains("too long"), "{text}"),
        other => panic!("{other:?}"),
    }
    endless.await.unwrap();
    // A well-behaved server next time: the channel rejoins.
    let mut peer = h.accept().await;
    let f = recv(&mut peer).await;
    assert_eq!(
        (f[2].as_str(), f[3].as_str()),
        (Some("room:a"), Some("phx_join"))
    );
    send(&mut peer, ok_reply(&f, v!({}))).await;
    assert_eq!(chev.rejoin().await.1, Status::Ok);
    round_trip(&mut peer, &ch).await;
}

/// A ping flood from a server that never reads: the client stays connected and keeps working,
/// and its pongs do not pile up without bound (each answers the latest ping).
#[tokio::test(start_paused = true)]
async fn a_ping_flood_does_not_disturb_the_client() {
    let mut h = Hostile::default();
    let mut peer = h.accept().await;
    let (ch, _chev, _) = joined(&h, &mut peer, "room:a").await;
    for i in 0..100_000u32 {
        peer.send(Ws::Ping(i.to_be_bytes().to_vec().into()))
            .await
            .unwrap();
    }
    let stats = h.socket.stats().await;
    assert!(
        stats.outbox < 16,
        "pongs are not queued as frames: {stats:?}"
    );
    round_trip(&mut peer, &ch).await;
    assert_eq!(h.socket.state(), SocketState::Connected);
    assert_settled(&h.socket, 1).await;
}

/// A 101 answer whose headers are garbage: the attempt fails with a clear reason, the client
/// tries again on its schedule, and a good server afterwards gets it connected.
#[tokio::test(start_paused = true)]
async fn a_101_with_garbage_headers_fails_the_attempt_with_a_reason() {
    let mut h = Hostile::default();
    for answer in [
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: not-the-key\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\u{1}\u{2}garbage without a colon\r\n\r\n",
    ] {
        let mut raw = h.accept_raw().await;
        let mut buf = vec![0u8; 4096];
        let n = raw.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"GET /socket/websocket"));
        raw.write_all(answer.as_bytes()).await.unwrap();
        h.events
            .until(|e| matches!(e, Ev::Log(_, m) if m.starts_with("connection attempt failed")))
            .await;
    }
    match h.socket.last_reason() {
        Some(DisconnectReason::Protocol(text)) => assert!(!text.is_empty()),
        other => panic!("a protocol reason, got {other:?}"),
    }
    let mut peer = h.accept().await;
    h.events.socket(SocketState::Connected).await;
    let (ch, _, _) = joined(&h, &mut peer, "room:a").await;
    round_trip(&mut peer, &ch).await;
}

/// A TLS server that accepts TCP and never answers the ClientHello: the attempt ends at the
/// connect timeout with that reason, and the next attempt follows the schedule.
#[cfg(feature = "tls")]
#[tokio::test]
async fn a_stalled_tls_handshake_ends_at_the_connect_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1];
            // The ClientHello arrives; nothing is ever answered.
            let _ = s.read(&mut buf).await;
            let _ = seen_tx.send(buf[0]);
            held.push(s);
        }
    });
    let mut config = Config::new(format!("wss://127.0.0.1:{}/socket/websocket", addr.port()));
    config.connect_timeout = ms(300);
    config.reconnect_schedule = millis(&[50]);
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    assert_eq!(
        seen.recv().await,
        Some(0x16),
        "a TLS handshake record was sent"
    );
    events.failed_attempts(2).await;
    assert_eq!(socket.last_reason(), Some(DisconnectReason::ConnectTimeout));
    assert_eq!(socket.state(), SocketState::Reconnecting);
    socket.disconnect();
}
