//! The fault controls of docs/testserver.md, through the Rust handle and the HTTP endpoints,
//! over real TCP where the transport matters (drop, close, restart, stop reading) and in memory
//! on a paused clock where time matters (delay, refuse, idle timeout).

mod common;

use common::*;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use phx_testserver::{Config, LogFrame, TestServer};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const JOIN: &str = r#"["1","1","room:lobby","phx_join",{}]"#;
const JOINED: &str =
    r#"["1","1","room:lobby","phx_reply",{"response":{"joined":"room:lobby"},"status":"ok"}]"#;

fn hb(r: &str) -> String {
    format!(r#"[null,"{r}","phoenix","heartbeat",{{}}]"#)
}

fn hb_reply(r: &str) -> String {
    format!(r#"[null,"{r}","phoenix","phx_reply",{{"response":{{}},"status":"ok"}}]"#)
}

fn echo(r: &str, payload: &str) -> String {
    format!(r#"["1","{r}","room:lobby","echo",{payload}]"#)
}

fn echo_reply(r: &str, payload: &str) -> String {
    format!(r#"["1","{r}","room:lobby","phx_reply",{{"response":{payload},"status":"ok"}}]"#)
}

async fn tcp_client(server: &TestServer, query: &str) -> WebSocketStream<TcpStream> {
    let io = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    upgrade(io, query).await
}

async fn joined_tcp(server: &TestServer) -> WebSocketStream<TcpStream> {
    let mut ws = tcp_client(server, "vsn=2.0.0&token=t").await;
    assert_eq!(roundtrip(&mut ws, JOIN).await, JOINED);
    ws
}

async fn joined_mem(server: &TestServer) -> WebSocketStream<tokio::io::DuplexStream> {
    let (io, _) = server.connect_in_memory();
    let mut ws = upgrade(io, "vsn=2.0.0&token=t").await;
    assert_eq!(roundtrip(&mut ws, JOIN).await, JOINED);
    ws
}

/// `METHOD /control/<name>?<query>` over a fresh TCP connection: (status, body).
async fn control(server: &TestServer, method: &str, name_and_query: &str) -> (u16, String) {
    let mut io = TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let resp = request(&mut io, method, &format!("/control/{name_and_query}"), &[]).await;
    (
        resp.status,
        String::from_utf8(resp.body).expect("utf-8 body"),
    )
}

const OK: (u16, &str) = (200, r#"{"ok":true}"#);

/// The stream ends (EOF or reset) without a close frame.
async fn assert_dropped<S>(ws: &mut WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(None) | Ok(Some(Err(_))) => {}
        Ok(Some(Ok(m))) => panic!("expected the connection to drop, got {m:?}"),
        Err(_) => panic!("the connection was not dropped"),
    }
}

#[tokio::test]
async fn drop_closes_tcp_without_a_close_frame() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut a = joined_tcp(&server).await;
    let mut b = joined_tcp(&server).await;
    assert_eq!(server.controls().stats().connections, 2);
    server.controls().drop_all();
    assert_dropped(&mut a).await;
    assert_dropped(&mut b).await;

    // the same over HTTP; the server still accepts and serves new connections
    let mut c = joined_tcp(&server).await;
    let (status, body) = control(&server, "POST", "drop").await;
    assert_eq!((status, body.as_str()), OK);
    assert_dropped(&mut c).await;
    let s = server.controls().stats();
    assert_eq!((s.connections, s.accepted), (0, 3));
    assert_eq!(s.joins["room:lobby"], 3);
    assert!(s.joined.is_empty(), "{s:?}");
}

#[tokio::test]
async fn close_sends_the_code_with_an_empty_reason() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut a = joined_tcp(&server).await;
    server.controls().close_all(4001);
    match a.next().await {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 4001);
            assert_eq!(f.reason.as_str(), "");
        }
        other => panic!("expected close 4001, got {other:?}"),
    }
    assert!(
        a.next().await.is_none(),
        "the stream ends after the closing handshake"
    );

    let mut b = joined_tcp(&server).await;
    let (status, body) = control(&server, "GET", "close?code=1012").await;
    assert_eq!((status, body.as_str()), OK);
    assert_eq!(next_close(&mut b).await, 1012);

    assert_eq!(control(&server, "POST", "close?code=nope").await.0, 400);
    assert_eq!(control(&server, "POST", "close").await.0, 400);
    assert_eq!(control(&server, "POST", "close?code=1006").await.0, 400);
    assert_eq!(control(&server, "POST", "nope").await.0, 404);
}

#[tokio::test(start_paused = true)]
async fn blackhole_drops_heartbeat_replies_only() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut ws = joined_mem(&server).await;
    server.controls().set_blackhole(true);
    send_text(&mut ws, &hb("2")).await;
    // The echo is answered; the heartbeat sent before it never is.
    assert_eq!(
        roundtrip(&mut ws, &echo("3", r#"{"a":1}"#)).await,
        echo_reply("3", r#"{"a":1}"#)
    );
    assert_eq!(
        server.controls().log().len(),
        3,
        "the heartbeat was received"
    );
    let (status, body) = control(&server, "POST", "blackhole?on=0").await;
    assert_eq!((status, body.as_str()), OK);
    assert_eq!(roundtrip(&mut ws, &hb("4")).await, hb_reply("4"));
    assert_eq!(control(&server, "POST", "blackhole?on=1").await.1, OK.1);
    send_text(&mut ws, &hb("5")).await;
    assert_eq!(
        roundtrip(&mut ws, &echo("5", "[]")).await,
        echo_reply("5", "[]")
    );
    server.controls().reset();
    assert_eq!(roundtrip(&mut ws, &hb("6")).await, hb_reply("6"));
    assert_eq!(control(&server, "POST", "blackhole?on=maybe").await.0, 400);
}

#[tokio::test(start_paused = true)]
async fn silence_reads_and_discards_everything() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut ws = joined_mem(&server).await;
    server.controls().clear_log();
    server.controls().set_silence(true);
    send_text(&mut ws, &echo("2", r#"{"s":1}"#)).await;
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    // a new connection upgrades, but its frames are not answered either
    let (io, _) = server.connect_in_memory();
    let mut fresh = upgrade(io, "vsn=2.0.0").await;
    send_text(&mut fresh, &hb("1")).await;
    send_text(&mut ws, &hb("3")).await;
    // wait until the server has read both connections' last frames
    let logged = |log: &[phx_testserver::LogEntry], f: &str| {
        log.iter().any(|e| e.frame == LogFrame::Text(f.into()))
    };
    let mut spins = 0;
    loop {
        let log = server.controls().log();
        if logged(&log, &hb("3")) && logged(&log, &hb("1")) {
            assert!(logged(&log, &echo("2", r#"{"s":1}"#)));
            break;
        }
        spins += 1;
        assert!(spins < 100_000, "the server never read the frames: {log:?}");
        tokio::task::yield_now().await;
    }
    server.controls().set_silence(false);
    // Nothing of the above was answered (no echo reply, no pong, no heartbeat reply):
    // the first frame now is the reply to this heartbeat.
    assert_eq!(roundtrip(&mut ws, &hb("4")).await, hb_reply("4"));
    assert_eq!(roundtrip(&mut fresh, &hb("2")).await, hb_reply("2"));
    assert_eq!(
        roundtrip(&mut ws, &echo("5", "{}")).await,
        echo_reply("5", "{}")
    );
    assert_eq!(control(&server, "GET", "silence?on=1").await.1, OK.1);
    assert_eq!(control(&server, "GET", "reset").await.1, OK.1);
    assert_eq!(roundtrip(&mut ws, &hb("6")).await, hb_reply("6"));
}

#[tokio::test(start_paused = true)]
async fn delay_holds_every_frame_back_in_order() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut ws = joined_mem(&server).await;
    server.controls().set_delay(Duration::from_millis(400));
    let t0 = Instant::now();
    assert_eq!(
        roundtrip(&mut ws, &echo("2", "{}")).await,
        echo_reply("2", "{}")
    );
    assert_eq!(t0.elapsed(), Duration::from_millis(400));
    let t1 = Instant::now();
    send_text(&mut ws, r#"["1","3","room:lobby","flood",{"n":3}]"#).await;
    for i in 1..=3 {
        assert_eq!(
            next_text(&mut ws).await,
            format!(r#"["1",null,"room:lobby","flood_msg",{{"i":{i}}}]"#)
        );
    }
    assert_eq!(
        next_text(&mut ws).await,
        r#"["1","3","room:lobby","phx_reply",{"response":{"sent":3},"status":"ok"}]"#
    );
    assert_eq!(t1.elapsed(), Duration::from_millis(400));
    // a frame sent while others are still delayed keeps its place
    send_text(&mut ws, &echo("4", "1")).await;
    server.controls().set_delay(Duration::ZERO);
    send_text(&mut ws, &echo("5", "2")).await;
    assert_eq!(next_text(&mut ws).await, echo_reply("4", "1"));
    assert_eq!(next_text(&mut ws).await, echo_reply("5", "2"));
    let t2 = Instant::now();
    assert_eq!(roundtrip(&mut ws, &hb("6")).await, hb_reply("6"));
    assert_eq!(t2.elapsed(), Duration::ZERO);
    assert_eq!(control(&server, "POST", "delay?ms=250").await.1, OK.1);
    let t3 = Instant::now();
    assert_eq!(roundtrip(&mut ws, &hb("7")).await, hb_reply("7"));
    assert_eq!(t3.elapsed(), Duration::from_millis(250));
    assert_eq!(control(&server, "POST", "delay?ms=x").await.0, 400);
}

async fn upgrade_status(server: &TestServer) -> u16 {
    let (mut io, _) = server.connect_in_memory();
    request(
        &mut io,
        "GET",
        "/socket/websocket?vsn=2.0.0",
        &upgrade_headers(&[]),
    )
    .await
    .status
}

#[tokio::test(start_paused = true)]
async fn refuse_answers_upgrades_with_the_status() {
    let server = TestServer::start(Config::default()).await.unwrap();
    server
        .controls()
        .refuse(503, Some(Duration::from_millis(300)));
    let t0 = Instant::now();
    assert_eq!(upgrade_status(&server).await, 503);
    tokio::time::sleep_until(t0 + Duration::from_millis(299)).await;
    assert_eq!(upgrade_status(&server).await, 503);
    tokio::time::sleep_until(t0 + Duration::from_millis(300)).await;
    assert_eq!(upgrade_status(&server).await, 101);

    server.controls().refuse(429, None);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(upgrade_status(&server).await, 429);
    server.controls().reset();
    assert_eq!(upgrade_status(&server).await, 101);

    assert_eq!(control(&server, "POST", "refuse?status=503").await.1, OK.1);
    assert_eq!(upgrade_status(&server).await, 503);
    assert_eq!(control(&server, "POST", "reset").await.1, OK.1);
    assert_eq!(
        control(&server, "POST", "refuse?status=503&ms=100").await.1,
        OK.1
    );
    assert_eq!(upgrade_status(&server).await, 503);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(upgrade_status(&server).await, 101);
    assert_eq!(control(&server, "POST", "refuse").await.0, 400);
    assert_eq!(control(&server, "POST", "refuse?status=abc").await.0, 400);
    assert_eq!(server.controls().stats().accepted, 3);
}

#[tokio::test(start_paused = true)]
async fn refuse_can_send_retry_after() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let refused = |server: &TestServer| {
        let (mut io, _) = server.connect_in_memory();
        async move {
            let headers = upgrade_headers(&[]);
            request(&mut io, "GET", "/socket/websocket?vsn=2.0.0", &headers).await
        }
    };
    server.controls().refuse_with(429, None, Some(30));
    let resp = refused(&server).await;
    assert_eq!((resp.status, resp.header("retry-after")), (429, Some("30")));
    server.controls().refuse(503, None);
    let resp = refused(&server).await;
    assert_eq!((resp.status, resp.header("retry-after")), (503, None));
    let query = "refuse?status=503&retry_after=5";
    assert_eq!(control(&server, "POST", query).await.1, OK.1);
    let resp = refused(&server).await;
    assert_eq!((resp.status, resp.header("retry-after")), (503, Some("5")));
    let bad = "refuse?status=503&retry_after=soon";
    assert_eq!(control(&server, "POST", bad).await.0, 400);
}

/// Upgrades with `Sec-WebSocket-Protocol: protocols` on a server with or without `auth_token`.
async fn upgrade_with_protocols(auth_token: bool, protocols: &str) -> common::Response {
    let server = TestServer::start(Config {
        auth_token,
        ..Config::default()
    })
    .await
    .unwrap();
    let (mut io, _) = server.connect_in_memory();
    let headers = upgrade_headers(&[("sec-websocket-protocol", protocols)]);
    request(&mut io, "GET", "/socket/websocket?vsn=2.0.0", &headers).await
}

#[tokio::test]
async fn auth_token_subprotocols_as_phoenix_1_8_checks_them() {
    // `auth_token: true`: `phoenix` selected, the token's entry taken out first.
    let token = "phoenix, base64url.bearer.phx.MTIzNA";
    let resp = upgrade_with_protocols(true, token).await;
    assert_eq!(resp.status, 101);
    assert_eq!(resp.header("sec-websocket-protocol"), Some("phoenix"));
    // The token alone leaves no subprotocol to select: upgraded without one.
    let resp = upgrade_with_protocols(true, "base64url.bearer.phx.MTIzNA").await;
    assert_eq!(
        (resp.status, resp.header("sec-websocket-protocol")),
        (101, None)
    );
    // Anything but `phoenix` left: 403 (Transport.check_subprotocols).
    let resp = upgrade_with_protocols(true, "mqtt, base64url.bearer.phx.MTIzNA").await;
    assert_eq!(resp.status, 403);
    // Undecodable token (URL-safe alphabet, `-`): Base.decode64! raises, HTTP 500.
    let resp = upgrade_with_protocols(true, "phoenix, base64url.bearer.phx.a-b").await;
    assert_eq!(resp.status, 500);
    // The token `bad` is refused by connect/3.
    let resp = upgrade_with_protocols(true, "phoenix, base64url.bearer.phx.YmFk").await;
    assert_eq!(resp.status, 403);
    // Without the option (Phoenix 1.7's transcripts): nothing selected, nothing checked.
    let resp = upgrade_with_protocols(false, token).await;
    assert_eq!(
        (resp.status, resp.header("sec-websocket-protocol")),
        (101, None)
    );
}

#[tokio::test]
async fn connect_info_answers_what_connect_was_given() {
    let server = TestServer::start(Config {
        auth_token: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let (mut io, _) = server.connect_in_memory();
    let headers = upgrade_headers(&[
        (
            "sec-websocket-protocol",
            "phoenix, base64url.bearer.phx.MTIzNA",
        ),
        ("x-api-key", "k"),
        ("authorization", "Bearer z"),
    ]);
    let resp = request(
        &mut io,
        "GET",
        "/socket/websocket?vsn=2.0.0&token=t",
        &headers,
    )
    .await;
    assert_eq!(resp.status, 101);
    let mut ws = WebSocketStream::from_partially_read(
        io,
        resp.rest,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let join = r#"["1","1","connect_info","phx_join",{}]"#;
    let reply = roundtrip(&mut ws, join).await;
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        v[4]["response"],
        serde_json::json!({
            "auth_token": "1234",
            "params": {"token": "t", "vsn": "2.0.0"},
            "x_headers": {"x-api-key": "k"},
        })
    );
}

#[tokio::test]
async fn restart_drops_everything_and_listens_again_on_the_same_port() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let addr = server.local_addr();
    let mut ws = joined_tcp(&server).await;
    assert_eq!(server.controls().stats().joins["room:lobby"], 1);
    let controls = server.controls();
    let restart = tokio::spawn(async move { controls.restart(Duration::from_millis(300)).await });
    assert_dropped(&mut ws).await;
    // the listener was closed before the connections were dropped
    let err = TcpStream::connect(addr)
        .await
        .expect_err("nothing listens while down");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    restart.await.unwrap().expect("listening again");
    let mut ws = joined_tcp(&server).await;
    assert_eq!(
        roundtrip(&mut ws, &echo("2", "true")).await,
        echo_reply("2", "true")
    );
    let s = server.controls().stats();
    assert_eq!(
        (s.accepted, s.connections, s.joins["room:lobby"]),
        (1, 1, 1),
        "state starts over"
    );

    // over HTTP: answered once down, listening again after down_ms
    let (status, body) = control(&server, "POST", "restart?down_ms=200").await;
    assert_eq!((status, body.as_str()), OK);
    assert_dropped(&mut ws).await;
    assert!(TcpStream::connect(addr).await.is_err());
    server.controls().listening().await;
    let mut ws = joined_tcp(&server).await;
    assert_eq!(roundtrip(&mut ws, &hb("2")).await, hb_reply("2"));
    assert_eq!(
        control(&server, "POST", "restart?down_ms=soon").await.0,
        400
    );
}

#[tokio::test]
async fn stats_and_log_over_http() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let stats = || async {
        serde_json::from_str::<serde_json::Value>(&control(&server, "GET", "stats").await.1)
            .unwrap()
    };
    assert_eq!(
        control(&server, "GET", "stats").await,
        (
            200,
            r#"{"connections":0,"accepted":0,"joins":{},"leaves":{},"joined":{}}"#.to_string()
        )
    );
    let mut a = joined_tcp(&server).await;
    let mut b = tcp_client(&server, "vsn=2.0.0&token=b").await;
    assert_eq!(roundtrip(&mut b, JOIN).await, JOINED);
    send_text(&mut b, r#"["9","2","room:nochannel","phx_leave",{}]"#).await;
    assert_eq!(
        next_text(&mut b).await,
        r#"["9","2","room:nochannel","phx_reply",{"response":{},"status":"ok"}]"#
    );
    let bin = [
        0u8, 1, 1, 10, 4, b'1', b'3', b'r', b'o', b'o', b'm', b':', b'l', b'o', b'b', b'b', b'y',
        b'e', b'c', b'h', b'o', 0xff,
    ];
    b.send(Message::binary(bin.to_vec())).await.unwrap();
    assert!(matches!(b.next().await, Some(Ok(Message::Binary(_)))));
    let s = stats().await;
    assert_eq!(
        s,
        serde_json::json!({"connections":2,"accepted":2,"joins":{"room:lobby":2},"leaves":{"room:nochannel":1},"joined":{"room:lobby":2}})
    );

    let log: serde_json::Value =
        serde_json::from_str(&control(&server, "GET", "log").await.1).unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4);
    let (ca, cb) = (
        log[0]["conn"].as_u64().unwrap(),
        log[1]["conn"].as_u64().unwrap(),
    );
    assert_ne!(ca, cb);
    assert_eq!(log[0], serde_json::json!({"conn": ca, "frame": JOIN}));
    assert_eq!(
        log[3],
        serde_json::json!({"conn": cb, "binary": "0001010a043133726f6f6d3a6c6f6262796563686fff"})
    );
    assert_eq!(control(&server, "POST", "log?clear=1").await.1, OK.1);
    assert_eq!(control(&server, "GET", "log").await.1, "[]");

    send_text(&mut a, r#"["1","3","room:lobby","phx_leave",{}]"#).await;
    assert_eq!(
        next_text(&mut a).await,
        r#"["1","3","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#
    );
    assert_eq!(
        next_text(&mut a).await,
        r#"["1","1","room:lobby","phx_close",{}]"#
    );
    let s = server.controls().stats();
    assert_eq!((s.leaves["room:lobby"], s.joined["room:lobby"]), (1, 1));
    assert_eq!(
        server.controls().log()[0].frame,
        LogFrame::Text(r#"["1","3","room:lobby","phx_leave",{}]"#.into())
    );
    close(&mut a, 1000).await;
    assert_eq!(next_close(&mut a).await, 1000);
    assert!(a.next().await.is_none());
    close(&mut b, 1000).await;
    assert_eq!(next_close(&mut b).await, 1000);
    assert!(b.next().await.is_none());
    let s = server.controls().stats();
    assert_eq!((s.connections, s.accepted), (0, 2));
    assert!(s.joined.is_empty());
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_is_configurable_and_reset_by_any_frame() {
    let server = TestServer::start(Config {
        idle_timeout: Duration::from_millis(400),
        ..Config::default()
    })
    .await
    .unwrap();
    let (io, _) = server.connect_in_memory();
    let mut ws = upgrade(io, "vsn=2.0.0").await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::Ping(b"x".to_vec().into())).await.unwrap();
    assert!(matches!(
        next_within(&mut ws, 10).await,
        Some(Message::Pong(_))
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(roundtrip(&mut ws, &hb("1")).await, hb_reply("1"));
    assert_eq!(next_close(&mut ws).await, 1002);
    assert_eq!(t0.elapsed(), Duration::from_millis(1000));
}

#[tokio::test]
async fn the_binary_prints_its_url_and_exits_on_stdin_eof() {
    let args = [
        "--port",
        "0",
        "--exit-on-stdin-eof",
        "--idle-timeout-ms",
        "60000",
    ]
    .map(std::ffi::OsStr::new);
    let (mut child, addr, mut lines) = spawn_binary(&args, "ws").await;
    let mut io = TcpStream::connect(&addr).await.unwrap();
    let resp = request(&mut io, "GET", "/control/stats", &[]).await;
    assert_eq!(resp.status, 200);
    let mut io = TcpStream::connect(addr).await.unwrap();
    let mut ws = upgrade(&mut io, "vsn=2.0.0").await;
    assert_eq!(roundtrip(&mut ws, &hb("1")).await, hb_reply("1"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.shutdown().await.unwrap();
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        lines.next_line().await.unwrap(),
        None,
        "nothing else on stdout"
    );
}

/// An echo of about 64 KiB, and its reply.
fn big_echo(r: usize) -> String {
    echo(
        &r.to_string(),
        &format!(r#"{{"pad":"{}"}}"#, "x".repeat(64 * 1024)),
    )
}

fn big_echo_reply(r: usize) -> String {
    echo_reply(
        &r.to_string(),
        &format!(r#"{{"pad":"{}"}}"#, "x".repeat(64 * 1024)),
    )
}

async fn next_split_text(stream: &mut SplitStream<WebSocketStream<TcpStream>>) -> String {
    match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.as_str().to_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

#[tokio::test]
async fn stop_reading_leaves_frames_in_the_kernel_while_the_server_keeps_sending() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let a = joined_tcp(&server).await;
    let a_conn = server.controls().log()[0].conn;
    let mut b = tcp_client(&server, "vsn=2.0.0&token=b").await;
    assert_eq!(roundtrip(&mut b, JOIN).await, JOINED);
    server.controls().clear_log();
    let on = format!("stop_reading?on=1&conn={a_conn}");
    assert_eq!(control(&server, "POST", &on).await.1, OK.1);

    // A writes until a write stops completing: the server's receive buffer and A's send buffer
    // are full. The timeout only proves that the last write does not complete.
    let (mut sink, mut stream) = a.split();
    let mut sent = 0;
    loop {
        sent += 1;
        assert!(
            sent <= 2000,
            "128 MiB written: the server reads what A sends"
        );
        let send = sink.send(Message::text(big_echo(sent)));
        match tokio::time::timeout(Duration::from_millis(500), send).await {
            Ok(done) => done.expect("send"),
            Err(_) => break,
        }
    }
    assert!(sent > 2, "the kernel took only {sent} frames");
    assert!(server.controls().log().is_empty(), "the server read A");
    // Proof of absence again: the write queued in A is still stuck.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sink.flush())
            .await
            .is_err(),
        "A's write completed while the server was not reading"
    );

    // The server keeps writing to A: a broadcast from B arrives.
    let body = r#"{"body":"while A is unread"}"#;
    let bcast = format!(r#"[null,null,"room:lobby","new_msg",{body}]"#);
    send_text(
        &mut b,
        &format!(r#"["1","2","room:lobby","new_msg",{body}]"#),
    )
    .await;
    assert_eq!(next_text(&mut b).await, bcast);
    assert_eq!(next_text(&mut b).await, echo_reply("2", "{}"));
    assert_eq!(next_split_text(&mut stream).await, bcast);
    assert_eq!(server.controls().log().len(), 1, "only B's frame was read");

    // Reading resumes: every frame A wrote is handled, in order.
    let off = format!("stop_reading?on=0&conn={a_conn}");
    assert_eq!(control(&server, "POST", &off).await.1, OK.1);
    let replies = async {
        for r in 1..=sent {
            let reply = next_split_text(&mut stream).await;
            assert!(
                reply == big_echo_reply(r),
                "reply {r} of {sent} is not the echo of {r}"
            );
        }
    };
    let (flushed, ()) = tokio::join!(sink.flush(), replies);
    flushed.expect("A's queued writes complete");
    let logged: Vec<LogFrame> = server
        .controls()
        .log()
        .into_iter()
        .filter(|e| e.conn == a_conn)
        .map(|e| e.frame)
        .collect();
    let written: Vec<LogFrame> = (1..=sent).map(|r| LogFrame::Text(big_echo(r))).collect();
    assert!(
        logged == written,
        "A's {sent} frames were not read in order"
    );

    assert_eq!(control(&server, "POST", "stop_reading?on=2").await.0, 400);
    assert_eq!(
        control(&server, "POST", "stop_reading?on=1&conn=a").await.0,
        400
    );
}

/// Yields until the server has logged `frame` (it reads as soon as it gets to run).
async fn until_logged(server: &TestServer, frame: &str) {
    let logged = || {
        server
            .controls()
            .log()
            .iter()
            .any(|e| e.frame == LogFrame::Text(frame.into()))
    };
    let mut spins = 0;
    while !logged() {
        spins += 1;
        assert!(spins < 100_000, "the server never read {frame}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn stop_reading_suspends_the_idle_timeout_and_still_sends_what_was_due() {
    let server = TestServer::start(Config {
        idle_timeout: Duration::from_millis(400),
        ..Config::default()
    })
    .await
    .unwrap();
    let (io, _) = server.connect_in_memory();
    let mut ws = upgrade(io, "vsn=2.0.0").await;
    let slow = r#"["1","1","room:slow","phx_join",{}]"#;
    send_text(&mut ws, slow).await;
    until_logged(&server, slow).await;
    let t0 = Instant::now();
    server.controls().set_stop_reading(true);

    // The join under way is answered when it is done.
    assert_eq!(
        next_text(&mut ws).await,
        r#"["1","1","room:slow","phx_reply",{"response":{},"status":"ok"}]"#
    );
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    // A new connection is upgraded, but neither its frames nor the old one's are read; and
    // although the idle timeout passes many times over, nobody is closed. The timeout only
    // proves that nothing comes.
    let (io, _) = server.connect_in_memory();
    let mut fresh = upgrade(io, "vsn=2.0.0").await;
    send_text(&mut fresh, &hb("1")).await;
    send_text(&mut ws, &hb("2")).await;
    send_text(&mut ws, &hb("3")).await;
    let quiet = Duration::from_secs(10);
    let (a, b) = tokio::join!(
        tokio::time::timeout(quiet, ws.next()),
        tokio::time::timeout(quiet, fresh.next())
    );
    assert!(a.is_err() && b.is_err(), "a frame came: {a:?} {b:?}");
    assert_eq!(server.controls().log().len(), 1, "only the join was read");

    // `reset` resumes reading: the waiting frames are handled in order, and the idle timeout
    // starts over.
    assert_eq!(control(&server, "POST", "reset").await.1, OK.1);
    let t1 = Instant::now();
    assert_eq!(next_text(&mut ws).await, hb_reply("2"));
    assert_eq!(next_text(&mut ws).await, hb_reply("3"));
    assert_eq!(next_text(&mut fresh).await, hb_reply("1"));
    assert_eq!(next_close(&mut ws).await, 1002);
    assert_eq!(next_close(&mut fresh).await, 1002);
    assert_eq!(t1.elapsed(), Duration::from_millis(400));
}
