//! Socket lifecycle: states, connect/disconnect, reconnect schedule, heartbeat, reasons.
//! All on a paused clock: client and server share one runtime through in-memory streams.

use crate::support::*;
use phx::engine::*;

#[tokio::test(start_paused = true)]
async fn connect_is_idempotent() {
    let world = World::new().await;
    let (socket, mut events) = world.socket_with(world.config());
    assert_eq!(socket.state(), SocketState::Disconnected);
    socket.connect();
    socket.connect();
    events.socket(SocketState::Connected).await;
    socket.connect();
    tokio::time::sleep(secs(1)).await;
    assert_eq!(
        world.attempts().len(),
        1,
        "one connection however often connect() is called"
    );
    assert_eq!(world.controls().stats().accepted, 1);
    let extra: Vec<Ev> = events.drain();
    assert!(extra.is_empty(), "no further state changes: {extra:?}");
}

#[tokio::test(start_paused = true)]
async fn every_state_change_is_reported_once_in_order() {
    use SocketState::*;
    let world = World::new().await;
    let (socket, mut events) = world.socket_with(world.config());
    let mut seen = Vec::new();
    socket.connect();
    loop {
        let (_, ev) = events.next().await;
        if let Ev::Socket(s, _) = ev {
            seen.push(s);
            match s {
                Connected if seen.len() == 2 => world.controls().drop_all(),
                Connected => socket.disconnect(),
                Disconnected => break,
                _ => {}
            }
        }
    }
    assert_eq!(
        seen,
        vec![Connecting, Connected, Reconnecting, Connected, Disconnected]
    );
}

#[tokio::test(start_paused = true)]
async fn reconnect_delays_follow_the_schedule_and_reset_on_open() {
    let world = World::new().await;
    world.controls().refuse(503, None);
    let (socket, mut events) = world.socket_with(world.config());
    socket.connect();
    // Attempt 1 at once, then 1, 2, 4, 8, 16, 30, 30 s apart.
    let want = [1, 2, 4, 8, 16, 30, 30];
    events.failed_attempts(want.len() + 1).await;
    let times = world.attempts();
    let gaps: Vec<u64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    assert_eq!(gaps[..want.len()], want.map(|s| s * 1000));
    assert_eq!(socket.state(), SocketState::Reconnecting);
    assert_eq!(
        socket.last_reason(),
        Some(DisconnectReason::HttpStatus {
            status: 503,
            retry_after: None
        })
    );

    // Once a connection opens, the counter starts over: the next gap is 1 s again.
    world.controls().reset();
    events.socket(SocketState::Connected).await;
    world.controls().drop_all();
    let lost = events.socket(SocketState::Reconnecting).await;
    events.socket(SocketState::Connected).await;
    let last = *world.attempts().last().unwrap();
    assert_eq!(
        last - lost,
        secs(1),
        "the attempt counter resets once a connection opens"
    );
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn reconnect_after_drop_waits_one_second() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await;
    world.controls().drop_all();
    let lost = events.socket(SocketState::Reconnecting).await;
    let back = events.socket(SocketState::Connected).await;
    assert_eq!(back - lost, secs(1));
    assert!(matches!(
        socket.last_reason(),
        Some(DisconnectReason::Io(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn any_server_close_code_reconnects_and_is_observable() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await;
    world.controls().close_all(4000);
    let (_, reason) = events.reconnecting().await;
    let want = DisconnectReason::CloseFrame {
        code: 4000,
        reason: String::new(),
    };
    assert_eq!(reason, Some(want.clone()));
    assert_eq!(socket.last_reason(), Some(want));
    events.socket(SocketState::Connected).await;
    // A normal close (1000) from the server is not ours either: reconnect.
    world.controls().close_all(1000);
    events.socket(SocketState::Reconnecting).await;
    events.socket(SocketState::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn refused_upgrade_reconnects_with_http_status() {
    let world = World::new().await;
    let mut config = world.config();
    config.params = vec![("token".into(), "bad".into())];
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    let (_, reason) = events.reconnecting().await;
    assert_eq!(
        reason,
        Some(DisconnectReason::HttpStatus {
            status: 403,
            retry_after: None
        })
    );
    // It keeps trying on the schedule.
    events.failed_attempts(2).await;
    assert_eq!(world.attempts().len(), 3);
    assert_eq!(socket.state(), SocketState::Reconnecting);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_is_sent_every_interval_and_answered() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let start = tokio::time::Instant::now();
    tokio::time::sleep(secs(95)).await;
    let beats = world.frames_with_event("heartbeat");
    assert_eq!(beats.len(), 3, "heartbeats at 30, 60, 90 s: {beats:?}");
    for b in &beats {
        assert!(
            b[0].is_null()
                && b[1].is_string()
                && b[2] == "phoenix"
                && b[4] == serde_json::json!({})
        );
    }
    assert_eq!(socket.state(), SocketState::Connected);
    assert!(tokio::time::Instant::now() - start >= secs(95));
}

#[tokio::test(start_paused = true)]
async fn silent_server_is_detected_by_the_second_heartbeat_tick() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await;
    let opened = tokio::time::Instant::now();
    world.controls().set_blackhole(true);
    let (lost, reason) = events.reconnecting().await;
    assert_eq!(lost - opened, secs(60));
    assert_eq!(reason, Some(DisconnectReason::HeartbeatTimeout));
    world.controls().set_blackhole(false);
    events.socket(SocketState::Connected).await;
    assert_eq!(socket.state(), SocketState::Connected);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_state_belongs_to_one_connection() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await;
    world.controls().set_blackhole(true);
    // The heartbeat at 30 s stays unanswered; the connection drops at 45 s for another reason.
    tokio::time::sleep(secs(45)).await;
    world.controls().set_blackhole(false);
    world.controls().drop_all();
    let reopened = events.socket(SocketState::Connected).await;
    // The new connection's first tick must send a heartbeat, not declare it dead.
    tokio::time::sleep(secs(100)).await;
    let drained = events.drain();
    assert!(
        !drained
            .iter()
            .any(|e| matches!(e, Ev::Socket(SocketState::Reconnecting, _))),
        "the old connection's heartbeat leaked into the new one: {drained:?}"
    );
    assert_eq!(socket.state(), SocketState::Connected);
    assert!(tokio::time::Instant::now() - reopened >= secs(100));
}

#[tokio::test(start_paused = true)]
async fn disconnect_closes_with_1000_and_stops_reconnecting() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await;
    socket.disconnect();
    let (_, ev) = events.until(|e| matches!(e, Ev::Socket(..))).await;
    assert_eq!(
        ev,
        Ev::Socket(
            SocketState::Disconnected,
            Some(DisconnectReason::ClientClosed)
        )
    );
    tokio::time::sleep(secs(120)).await;
    assert_eq!(world.attempts().len(), 1, "no reconnect after disconnect()");
    assert_eq!(world.controls().stats().connections, 0);
    // connect() again works.
    socket.connect();
    events.socket(SocketState::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn refs_are_one_decimal_counter_per_socket() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (a, _) = channel(&socket, "room:a");
    let (b, _) = channel(&socket, "room:b");
    join_ok(&a).await;
    join_ok(&b).await;
    done(push(&a, "echo", "{}")).await;
    done(push(&b, "echo", "{}")).await;
    let refs: Vec<u64> = world
        .frames()
        .iter()
        .map(|f| serde_json::from_str::<serde_json::Value>(f).unwrap())
        .map(|v| {
            v[1].as_str()
                .expect("ref is a string")
                .parse::<u64>()
                .expect("decimal")
        })
        .collect();
    assert_eq!(refs, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn invalid_urls_are_refused_at_creation() {
    for url in ["http://localhost/socket", "not a url", "", "ws://"] {
        let r = Socket::new(Config::new(url), &tokio::runtime::Handle::current());
        assert!(r.is_err(), "{url} accepted");
    }
    let ok = Socket::new(
        Config::new("wss://example.com/socket/websocket"),
        &tokio::runtime::Handle::current(),
    );
    assert!(ok.is_ok());
}

#[tokio::test(start_paused = true)]
async fn url_carries_vsn_and_params() {
    let world = World::new().await;
    let mut config = world.config();
    config.params = vec![("token".into(), "a b".into()), ("x".into(), "1".into())];
    let (socket, _) = world.socket_with(config);
    assert!(socket
        .endpoint_url()
        .ends_with("/socket/websocket?vsn=2.0.0&token=a%20b&x=1"));
}

/// A connector whose single stream is served by the test itself.
struct Handoff(std::sync::Mutex<Option<tokio::io::DuplexStream>>);

impl Connector for Handoff {
    fn connect(&self, _endpoint: &Endpoint) -> IoFuture {
        let io = self.0.lock().unwrap().take();
        Box::pin(async move {
            let io = io.ok_or_else(|| std::io::Error::other("no second connection"))?;
            Ok(Box::new(io) as BoxIo)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn disconnect_sends_close_code_1000() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (client, server) = tokio::io::duplex(4096);
    let connector = std::sync::Arc::new(Handoff(std::sync::Mutex::new(Some(client))));
    let socket = Socket::with_connector(
        Config::new("ws://phx.test/socket/websocket"),
        connector,
        &tokio::runtime::Handle::current(),
    )
    .unwrap();
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    let mut ws = tokio_tungstenite::accept_async(server)
        .await
        .expect("upgrade");
    events.socket(SocketState::Connected).await;
    socket.disconnect();
    let close = loop {
        match ws.next().await.expect("a frame").expect("no error") {
            Ws::Close(frame) => break frame.expect("a close code"),
            _ => continue,
        }
    };
    assert_eq!(u16::from(close.code), 1000);
}
