//! Authentication: the auth token in the subprotocols (Phoenix 1.8), extra upgrade headers,
//! refused upgrades (status, `Retry-After`, giving up), the connect provider, and secrets kept
//! out of the logs.

use crate::support::*;
use phx::engine::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A server whose socket is mounted with `auth_token: true` (Phoenix 1.8).
async fn auth_world() -> World {
    World::with_server(phx_testserver::Config {
        auth_token: true,
        ..phx_testserver::Config::default()
    })
    .await
}

/// Joins `connect_info` and returns what the server's `connect/3` was given.
async fn connect_info(socket: &Socket) -> serde_json::Value {
    let (ch, _events) = channel(socket, "connect_info");
    let info = join_ok(&ch).await.response();
    let (cb, rx) = op();
    ch.leave(None, cb).expect("leave accepted");
    done(rx).await;
    info
}

#[tokio::test(start_paused = true)]
async fn auth_token_reaches_connect_as_phoenix_1_8_reads_it() {
    let world = auth_world().await;
    let mut config = world.config();
    // `+` and `/` in its base64: the standard alphabet, which the server decodes.
    config.auth_token = Some("??>???".into());
    let (socket, _events) = world.connected_with(config).await;
    let info = connect_info(&socket).await;
    assert_eq!(info["auth_token"], "??>???");
    // Not in the URL.
    assert_eq!(
        info["params"],
        serde_json::json!({"vsn": "2.0.0", "token": "tester"})
    );
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejected_auth_token_is_a_refused_upgrade() {
    let world = auth_world().await;
    let mut config = world.config();
    config.auth_token = Some("bad".into());
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    let want = DisconnectReason::HttpStatus {
        status: 403,
        retry_after: None,
    };
    assert_eq!(reason, Some(want));
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn extra_headers_go_on_the_upgrade_request() {
    let world = auth_world().await;
    let mut config = world.config();
    config.headers = vec![
        ("X-Api-Key".into(), "k-123".into()),
        ("Authorization".into(), "Bearer abc".into()),
    ];
    let (socket, _events) = world.connected_with(config).await;
    let info = connect_info(&socket).await;
    assert_eq!(info["x_headers"], serde_json::json!({"x-api-key": "k-123"}));
    socket.shutdown_async().await;

    let mut config = world.config();
    config.headers = vec![("Sec-WebSocket-Protocol".into(), "x".into())];
    let handle = tokio::runtime::Handle::current();
    assert!(Socket::with_connector(config, world.connector.clone(), &handle).is_err());
}

/// A server that upgrades with `protocol` as its `Sec-WebSocket-Protocol` (none: no header).
struct FakeUpgrade {
    protocol: Option<String>,
}

impl Connector for FakeUpgrade {
    fn connect(&self, _endpoint: &Endpoint) -> IoFuture {
        let (client, mut server) = tokio::io::duplex(4096);
        let protocol = self.protocol.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if server.read_exact(&mut byte).await.is_err() {
                    return;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let key = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("sec-websocket-key")
                        .then(|| value.trim().to_owned())
                })
                .unwrap();
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            let protocol = protocol
                .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
                .unwrap_or_default();
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{protocol}\r\n"
            );
            let _ = server.write_all(answer.as_bytes()).await;
            let _ = server.read(&mut [0u8; 64]).await;
        });
        Box::pin(async move { Ok(Box::new(client) as BoxIo) })
    }
}

fn fake_socket(protocol: Option<String>) -> (Socket, Events) {
    let mut config = Config::new("ws://example.invalid/socket/websocket");
    config.auth_token = Some("t".into());
    let connector = Arc::new(FakeUpgrade { protocol });
    let handle = tokio::runtime::Handle::current();
    let socket = Socket::with_connector(config, connector, &handle).unwrap();
    let (rec, events) = recorder();
    socket.set_handler(Some(rec));
    (socket, events)
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_that_does_not_select_phoenix_fails_the_attempt() {
    // No subprotocol, and the token's own entry (offered, so tungstenite alone accepts it).
    for protocol in [None, Some(auth_subprotocol("t"))] {
        let (socket, mut events) = fake_socket(protocol);
        socket.connect();
        let (_, reason) = events.reconnecting().await;
        let Some(DisconnectReason::Protocol(text)) = reason else {
            panic!("{reason:?}");
        };
        assert!(text.contains("`phoenix` subprotocol"), "{text}");
        socket.shutdown_async().await;
    }
    // Selecting `phoenix` is a success.
    let (socket, mut events) = fake_socket(Some("phoenix".into()));
    socket.connect();
    events.socket(SocketState::Connected).await;
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_server_without_auth_token_support_fails_the_attempt() {
    // Phoenix 1.7 (and 1.8 without `auth_token: true`) selects no subprotocol.
    let world = World::new().await;
    let mut config = world.config();
    config.auth_token = Some("t".into());
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    let Some(DisconnectReason::Protocol(text)) = reason else {
        panic!("{reason:?}");
    };
    assert!(text.contains("`phoenix` subprotocol"), "{text}");
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_stretches_the_reconnect_schedule() {
    let world = auth_world().await;
    world.controls().refuse_with(429, None, Some(7));
    let (socket, mut events) = world.socket_with(world.config());
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    let want = DisconnectReason::HttpStatus {
        status: 429,
        retry_after: Some(secs(7)),
    };
    assert_eq!(reason, Some(want.clone()));
    events.failed_attempts(4).await;
    let times = world.attempts();
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    // The schedule is 1, 2, 4, 8 s: each delay is at least the 7 s the server asked for.
    assert_eq!(gaps, [7, 7, 7, 8]);
    assert_eq!(socket.last_reason(), Some(want));
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn consecutive_refusals_stop_reconnecting() {
    let world = auth_world().await;
    world.controls().refuse(401, None);
    let mut config = world.config();
    config.max_refusals = 3;
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    let gave_up = DisconnectReason::GaveUp {
        status: 401,
        refusals: 3,
    };
    let (_, ev) = events
        .until(|e| matches!(e, Ev::Socket(SocketState::Disconnected, _)))
        .await;
    assert_eq!(
        ev,
        Ev::Socket(SocketState::Disconnected, Some(gave_up.clone()))
    );
    assert_eq!(socket.state(), SocketState::Disconnected);
    assert_eq!(socket.last_reason(), Some(gave_up));
    tokio::time::sleep(secs(300)).await;
    assert_eq!(world.attempts().len(), 3, "no attempt after giving up");

    // connect() starts over, with a fresh count.
    world.controls().reset();
    socket.connect();
    events.socket(SocketState::Connected).await;
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn refusals_are_counted_from_the_last_open_connection() {
    let world = auth_world().await;
    let mut config = world.config();
    config.max_refusals = 2;
    let (socket, mut events) = world.connected_with(config).await;
    // One refusal, a connection, then one refusal again: never two in a row.
    for _ in 0..2 {
        world.controls().refuse(503, None);
        world.controls().drop_all();
        events.failed_attempts(1).await;
        world.controls().reset();
        events.socket(SocketState::Connected).await;
    }
    assert_eq!(socket.state(), SocketState::Connected);
    socket.shutdown_async().await;
}

/// A provider that hands out `token-1`, `token-2`, ... and records when it was asked.
fn counting_provider() -> (Provider, Arc<Mutex<Vec<Instant>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let provider = Provider(Arc::new(move |reply: ProvideReply| {
        let mut calls = seen.lock().unwrap();
        calls.push(Instant::now());
        let n = calls.len();
        reply.send(Credentials {
            params: vec![("token".into(), format!("token-{n}"))],
            auth_token: Some(format!("auth-{n}")),
        });
    }));
    (provider, calls)
}

#[tokio::test(start_paused = true)]
async fn the_provider_is_asked_before_every_attempt() {
    let world = auth_world().await;
    let (provider, calls) = counting_provider();
    let mut config = world.config();
    config.connect_provider = Some(provider);
    let (socket, mut events) = world.connected_with(config).await;
    let (ch, mut ch_events) = channel(&socket, "connect_info");
    let first = join_ok(&ch).await.response();
    assert_eq!(first["params"]["token"], "token-1");
    assert_eq!(first["auth_token"], "auth-1");

    // The reconnect after a drop uses fresh credentials; the rejoin's reply shows them.
    world.controls().drop_all();
    events.socket(SocketState::Connected).await;
    let (_, ev) = ch_events.until(|e| matches!(e, Ev::Rejoin(..))).await;
    let Ev::Rejoin(Status::Ok, Some((_, reply))) = ev else {
        panic!("{ev:?}");
    };
    assert_eq!(reply.value()["params"]["token"], "token-2");
    assert_eq!(reply.value()["auth_token"], "auth-2");
    assert_eq!(calls.lock().unwrap().len(), 2);
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_provider_holds_up_only_its_own_socket() {
    let world = auth_world().await;
    let held: Arc<Mutex<Option<ProvideReply>>> = Arc::default();
    let keep = held.clone();
    let mut config = world.config();
    config.connect_provider = Some(Provider(Arc::new(move |reply: ProvideReply| {
        *keep.lock().unwrap() = Some(reply);
    })));
    config.provider_timeout = secs(60);
    let (slow, mut slow_events) = world.socket_with(config);
    slow.connect();
    // Another socket connects while the provider has not answered.
    let (other, _other_events) = world.connected().await;
    assert_eq!(slow.state(), SocketState::Connecting);
    let reply = held.lock().unwrap().take().expect("the provider was asked");
    assert!(reply.is_waiting());
    // Answered later, from another thread.
    std::thread::spawn(move || {
        reply.send(Credentials {
            params: vec![("token".into(), "late".into())],
            auth_token: None,
        })
    })
    .join()
    .unwrap();
    slow_events.socket(SocketState::Connected).await;
    assert_eq!(connect_info(&slow).await["params"]["token"], "late");
    slow.shutdown_async().await;
    other.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_provider_that_never_answers_times_out_into_the_reconnect_schedule() {
    let world = auth_world().await;
    let calls: Arc<Mutex<Vec<(Instant, ProvideReply)>>> = Arc::default();
    let keep = calls.clone();
    let mut config = world.config();
    config.connect_provider = Some(Provider(Arc::new(move |reply: ProvideReply| {
        keep.lock().unwrap().push((Instant::now(), reply));
    })));
    config.provider_timeout = secs(3);
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    assert_eq!(
        reason,
        Some(DisconnectReason::Provider(
            "no answer within 3000 ms".into()
        ))
    );
    events.failed_attempts(2).await;
    {
        let calls = calls.lock().unwrap();
        let gaps: Vec<u64> = calls
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).as_secs())
            .collect();
        // Each attempt waits 3 s for the provider, then 1, 2 s on the schedule.
        assert_eq!(gaps[..2], [4, 5]);
        assert!(
            !calls[0].1.is_waiting(),
            "a timed-out reply is no longer awaited"
        );
    }
    assert!(
        world.attempts().is_empty(),
        "no connection without credentials"
    );
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_fails_the_attempt_with_its_reason() {
    let world = auth_world().await;
    let mut config = world.config();
    config.connect_provider = Some(Provider(Arc::new(|reply: ProvideReply| {
        reply.fail("refresh failed")
    })));
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    assert_eq!(
        reason,
        Some(DisconnectReason::Provider("refresh failed".into()))
    );
    socket.shutdown_async().await;
    // A reply dropped unanswered fails at once too.
    let mut config = world.config();
    config.connect_provider = Some(Provider(Arc::new(drop::<ProvideReply>)));
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    assert!(matches!(reason, Some(DisconnectReason::Provider(_))));
    socket.shutdown_async().await;
}

/// Records every log line and reported reason, and passes everything on.
struct Tee(Arc<Recorder>, Arc<Mutex<Vec<String>>>);

impl SocketHandler for Tee {
    fn on_state(&self, state: SocketState, reason: Option<&DisconnectReason>) {
        if let Some(r) = reason {
            self.1.lock().unwrap().push(r.to_string());
        }
        SocketHandler::on_state(&*self.0, state, reason);
    }
    fn on_log(&self, level: LogLevel, message: &str) {
        self.1.lock().unwrap().push(message.to_owned());
        self.0.on_log(level, message);
    }
}

/// Every log line and reported reason over a socket's whole life (connects, a provider that
/// times out and one that fails, reconnects, refusals, giving up), secrets everywhere.
#[tokio::test(start_paused = true)]
async fn secrets_never_reach_the_logs() {
    const SECRETS: [&str; 6] = [
        "static-param-s3cret",
        "static-auth-s3cret",
        "header-s3cret",
        "provided-param-s3cret",
        "provided-auth-s3cret",
        "url-s3cret",
    ];
    let world = auth_world().await;
    let mut config = Config::new(format!("{}?key=url-s3cret", world.server.url()));
    config.params = vec![("token".into(), "static-param-s3cret".into())];
    config.auth_token = Some("static-auth-s3cret".into());
    config.headers = vec![("X-Secret".into(), "header-s3cret".into())];
    config.provider_timeout = secs(2);
    config.max_refusals = 2;
    // The second attempt times out (its reply kept unanswered), the third fails.
    let asked: Arc<Mutex<(u32, Vec<ProvideReply>)>> = Arc::default();
    config.connect_provider = Some(Provider(Arc::new(move |reply: ProvideReply| {
        let mut asked = asked.lock().unwrap();
        asked.0 += 1;
        match asked.0 {
            2 => asked.1.push(reply),
            3 => reply.fail("could not refresh"),
            _ => reply.send(Credentials {
                params: vec![("token".into(), "provided-param-s3cret".into())],
                auth_token: Some("provided-auth-s3cret".into()),
            }),
        }
    })));
    let handle = tokio::runtime::Handle::current();
    let socket = Socket::with_connector(config, world.connector.clone(), &handle).unwrap();
    let (rec, mut events) = recorder();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    socket.set_handler(Some(Arc::new(Tee(rec, lines.clone()))));
    socket.connect();
    events.socket(SocketState::Connected).await;
    // Drop → the provider times out → it fails → connected again.
    world.controls().drop_all();
    events.socket(SocketState::Connected).await;
    // Then refusals until the socket gives up.
    world.controls().refuse_with(429, None, Some(1));
    world.controls().drop_all();
    events
        .until(|e| matches!(e, Ev::Socket(SocketState::Disconnected, _)))
        .await;
    socket.shutdown_async().await;

    let lines = lines.lock().unwrap().clone();
    let connecting = lines
        .iter()
        .filter(|l| l.starts_with("connecting to "))
        .count();
    assert_eq!(connecting, 6, "every attempt is logged: {lines:#?}");
    for line in &lines {
        for secret in SECRETS {
            assert!(!line.contains(secret), "{secret} in log line {line:?}");
        }
    }
    // What was logged: the attempts (URL redacted), the provider's failures, the refusals.
    let all = lines.join("\n");
    for expected in [
        "?key=***&vsn=2.0.0&token=***",
        "connect provider: no answer within 2000 ms",
        "connect provider: could not refresh",
        "HTTP 429, retry after 1 s",
        "stopped reconnecting after 2 refused upgrades",
    ] {
        assert!(all.contains(expected), "{expected} not in {all}");
    }
}
