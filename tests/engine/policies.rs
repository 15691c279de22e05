//! Policies and observability: jitter, close codes that stop reconnection, the heartbeat
//! timeout, probes, the socket's statistics, log targets and level, and rejoin awareness.

use crate::support::*;
use phx::engine::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn reconnect_jitter_keeps_each_delay_within_its_bounds() {
    let world = World::new().await;
    world.controls().refuse(503, None);
    let mut config = world.config();
    config.reconnect_schedule = millis(&[1000]);
    config.reconnect_jitter = 0.5;
    config.jitter_seed = Some(42);
    let (socket, mut events) = world.socket_with(config);
    socket.connect();
    events.failed_attempts(41).await;
    let gaps: Vec<Duration> = world.attempts().windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= ms(500) && *g <= ms(1000)),
        "{gaps:?}"
    );
    let distinct: std::collections::HashSet<_> = gaps.iter().collect();
    assert!(distinct.len() > 20, "the delays vary: {gaps:?}");
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn rejoin_jitter_keeps_each_delay_within_its_bounds() {
    let world = World::new().await;
    let mut config = world.config();
    config.rejoin_schedule = millis(&[2000]);
    config.rejoin_jitter = 0.25;
    config.jitter_seed = Some(7);
    // Every attempt times out (room:slow answers after 3 s), so rejoins keep coming.
    config.default_timeout = ms(500);
    let (socket, _events) = world.connected_with(config).await;
    let (ch, mut events) = channel(&socket, "room:slow");
    let (cb, rx) = op();
    ch.join(json("{}"), Some(ms(500)), cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Timeout);
    let mut errored = events.channel(ChannelState::Errored).await;
    for _ in 0..10 {
        let joining = events.channel(ChannelState::Joining).await;
        let gap = joining - errored;
        assert!(gap >= ms(1500) && gap <= ms(2000), "{gap:?}");
        errored = events.channel(ChannelState::Errored).await;
    }
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn without_jitter_the_schedule_is_exact() {
    let world = World::new().await;
    world.controls().refuse(503, None);
    let (socket, mut events) = world.socket_with(world.config());
    socket.connect();
    events.failed_attempts(4).await;
    let gaps: Vec<Duration> = world.attempts().windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [secs(1), secs(2), secs(4)]);
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_listed_close_code_stops_reconnection() {
    let world = World::new().await;
    let mut config = world.config();
    config.stop_on_close_codes = vec![4001];
    let (socket, mut events) = world.connected_with(config).await;
    world.controls().close_all(4001);
    let (_, ev) = events
        .until(|e| {
            matches!(
                e,
                Ev::Socket(SocketState::Disconnected | SocketState::Reconnecting, _)
            )
        })
        .await;
    match ev {
        Ev::Socket(SocketState::Disconnected, Some(DisconnectReason::CloseFrame { code, .. })) => {
            assert_eq!(code, 4001)
        }
        other => panic!("expected disconnected by close code 4001, got {other:?}"),
    }
    tokio::time::sleep(secs(120)).await;
    assert_eq!(world.attempts().len(), 1, "no reconnect attempt");
    assert_eq!(socket.state(), SocketState::Disconnected);
    // connect() starts over.
    socket.connect();
    events.socket(SocketState::Connected).await;
    // A code not listed reconnects as before.
    world.controls().close_all(4002);
    events.socket(SocketState::Reconnecting).await;
    events.socket(SocketState::Connected).await;
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn the_heartbeat_timeout_is_separate_from_the_interval() {
    let world = World::new().await;
    let mut config = world.config();
    config.heartbeat_timeout = Some(secs(5));
    let (socket, mut events) = world.connected_with(config).await;
    let opened = tokio::time::Instant::now();
    world.controls().set_blackhole(true);
    let (lost, reason) = events.reconnecting().await;
    assert_eq!(reason, Some(DisconnectReason::HeartbeatTimeout));
    assert_eq!(
        lost - opened,
        secs(35),
        "heartbeat at 30 s, unanswered 5 s later"
    );
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn by_default_the_heartbeat_timeout_is_the_interval() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await;
    let opened = tokio::time::Instant::now();
    world.controls().set_blackhole(true);
    let (lost, _) = events.reconnecting().await;
    assert_eq!(lost - opened, secs(60));
    socket.shutdown_async().await;
}

fn probe(socket: &Socket) -> tokio::sync::oneshot::Receiver<Result<Duration, Status>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    socket
        .probe(Box::new(move |r| {
            let _ = tx.send(r);
        }))
        .expect("probe accepted");
    rx
}

#[tokio::test(start_paused = true)]
async fn a_probe_sends_a_heartbeat_at_once_and_reports_its_round_trip() {
    let world = World::new().await;
    world.controls().set_delay(ms(40));
    let (socket, _events) = world.connected().await;
    let before = world.frames_with_event("heartbeat").len();
    let sent = tokio::time::Instant::now();
    let rtt = probe(&socket).await.unwrap().expect("answered");
    assert_eq!(world.frames_with_event("heartbeat").len(), before + 1);
    assert!(rtt >= ms(40) && rtt < secs(1), "{rtt:?}");
    assert_eq!(tokio::time::Instant::now() - sent, rtt);
    let m = socket.metrics().await;
    assert_eq!(m.rtt_last, Some(rtt));
    assert_eq!(m.rtt_smoothed, Some(rtt));
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_probe_fails_when_disconnected_or_unanswered() {
    let world = World::new().await;
    let (socket, _) = world.socket_with(world.config());
    assert_eq!(probe(&socket).await.unwrap(), Err(Status::Disconnected));

    let mut config = world.config();
    config.heartbeat_timeout = Some(secs(3));
    let (socket, mut events) = world.connected_with(config).await;
    world.controls().set_blackhole(true);
    let sent = tokio::time::Instant::now();
    assert_eq!(probe(&socket).await.unwrap(), Err(Status::Timeout));
    assert_eq!(tokio::time::Instant::now() - sent, secs(3));
    let (_, reason) = events.reconnecting().await;
    assert_eq!(reason, Some(DisconnectReason::HeartbeatTimeout));
    // Shut down: refused synchronously.
    socket.shutdown_async().await;
    assert_eq!(
        socket.probe(Box::new(|_| panic!("never called"))).err(),
        Some(Status::Closed)
    );
}

#[tokio::test(start_paused = true)]
async fn statistics_count_connects_reasons_traffic_and_pushes() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await;
    let m = socket.metrics().await;
    assert_eq!((m.connects, m.reconnects), (1, 0));
    assert_eq!(m.rtt_last, None);

    let (ch, _) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let m = socket.metrics().await;
    assert_eq!(
        (m.frames_out, m.frames_in),
        (1, 1),
        "phx_join and its reply"
    );
    let join = world.frames_with_event("phx_join")[0].to_string();
    assert_eq!(m.bytes_out, join.len() as u64);
    assert!(m.bytes_in > 0);

    // A push in flight (the server delays replies), then a heartbeat round trip.
    world.controls().set_delay(secs(2));
    let rx = push(&ch, "echo", "{}");
    let m = socket.metrics().await;
    assert_eq!((m.pushes_in_flight, m.pushes_buffered), (1, 0));
    assert_eq!(done(rx).await.status, Status::Ok);
    tokio::time::sleep(secs(29)).await; // the heartbeat goes out 30 s after the connection opened
    tokio::time::sleep(secs(5)).await;
    let m = socket.metrics().await;
    assert_eq!(m.rtt_last, Some(secs(2)));
    assert_eq!(m.pushes_in_flight, 0);
    world.controls().set_delay(Duration::ZERO);

    // Lost twice (a drop, a close frame), reconnected twice.
    world.controls().drop_all();
    events.socket(SocketState::Connected).await;
    world.controls().close_all(4000);
    events.socket(SocketState::Connected).await;
    socket.disconnect();
    let m = socket.metrics().await;
    assert_eq!((m.connects, m.reconnects), (3, 2));
    assert_eq!(m.disconnects[DisconnectReason::Io(String::new()).kind()], 1);
    let close = DisconnectReason::CloseFrame {
        code: 0,
        reason: String::new(),
    };
    assert_eq!(m.disconnects[close.kind()], 1);
    assert_eq!(m.disconnects[DisconnectReason::ClientClosed.kind()], 1);
    assert!(m.frames_out >= 4 && m.bytes_out > m.frames_out);
    socket.shutdown_async().await;
}

#[derive(Default)]
struct Lines(Mutex<Vec<(LogLevel, String, String)>>);

impl SocketHandler for Lines {
    fn on_log_record(&self, level: LogLevel, target: &str, message: &str) {
        self.0
            .lock()
            .unwrap()
            .push((level, target.to_owned(), message.to_owned()));
    }
}

#[tokio::test(start_paused = true)]
async fn log_lines_carry_a_target_and_respect_the_level() {
    for (level, want) in [(LogLevel::Warn, 1), (LogLevel::Error, 0)] {
        let world = World::new().await;
        world.controls().refuse(503, None);
        let mut config = world.config();
        config.log_level = level;
        let (socket, _) = world.socket_with(config);
        let lines = Arc::new(Lines::default());
        socket.set_handler(Some(lines.clone()));
        socket.connect();
        tokio::time::sleep(ms(500)).await;
        let got = lines.0.lock().unwrap().clone();
        assert_eq!(got.len(), want, "{got:?}");
        for (l, target, message) in got {
            assert_eq!((l, target.as_str()), (LogLevel::Warn, "phx::socket"));
            assert!(
                message.starts_with("connection attempt failed"),
                "{message}"
            );
        }
        socket.shutdown_async().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejoin_after_a_lost_connection_reports_its_response_and_missed_messages() {
    let world = World::new().await;
    let (socket, _) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    assert!(
        !events.drain().iter().any(|e| matches!(e, Ev::Rejoined(..))),
        "the first join is not a rejoin"
    );
    world.controls().drop_all();
    let (_, ev) = events.until(|e| matches!(e, Ev::Rejoined(..))).await;
    let Ev::Rejoined(response, missed) = ev else {
        unreachable!()
    };
    assert_eq!(
        response.value(),
        serde_json::json!({"joined": "room:lobby"})
    );
    assert!(
        missed,
        "the channel had been joined: messages may have been missed"
    );
    socket.shutdown_async().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejoin_of_a_channel_never_joined_missed_nothing() {
    let world = World::new().await;
    let (socket, _) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:slow");
    let (cb, rx) = op();
    ch.join(json("{}"), Some(ms(500)), cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Timeout);
    // The next attempt (1 s later) waits for the server's 3 s, within the default 10 s.
    let (_, ev) = events.until(|e| matches!(e, Ev::Rejoined(..))).await;
    assert!(matches!(ev, Ev::Rejoined(_, false)), "{ev:?}");
    socket.shutdown_async().await;
}
