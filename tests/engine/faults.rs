//! Server faults seen through channels: restart on the same port, heartbeat blackhole, delay.

use crate::support::*;
use phx::engine::*;
use serde_json::json as v;

#[tokio::test(start_paused = true)]
async fn server_restart_rejoins_every_channel_once_and_flushes_buffers_in_order() {
    let world = World::new().await;
    let (socket, mut sevents) = world.connected().await;
    let topics = ["room:r1", "room:r2", "room:r3"];
    let mut chans = Vec::new();
    for t in topics {
        let (ch, events) = channel(&socket, t);
        join_ok(&ch).await;
        chans.push((ch, events));
    }
    let controls = world.controls();
    let restart = tokio::spawn(async move { controls.restart(secs(3)).await });
    for (_, events) in &mut chans {
        events.channel(ChannelState::Errored).await;
    }
    // Pushes made while the server is down wait for the rejoin, then go out in order.
    let buffered: Vec<_> = (0..4)
        .map(|i| push(&chans[0].0, "echo", &format!(r#"{{"i":{i}}}"#)))
        .collect();
    restart.await.unwrap().expect("server listens again");
    sevents.socket(SocketState::Connected).await;
    for (i, rx) in buffered.into_iter().enumerate() {
        let d = done(rx).await;
        assert_eq!((d.status, d.response()), (Status::Ok, v!({ "i": i })));
    }
    for (ch, events) in &mut chans {
        let (_, status) = events.rejoin().await;
        assert_eq!(status, Status::Ok);
        assert_eq!(ch.state(), ChannelState::Joined);
    }
    tokio::time::sleep(secs(30)).await;
    // The restarted server counts from zero: exactly one join per channel, none doubled.
    let stats = world.controls().stats();
    for t in topics {
        assert_eq!(
            stats.joins.get(t),
            Some(&1),
            "{t} joined once after the restart"
        );
        assert_eq!(stats.joined.get(t), Some(&1));
    }
    let order: Vec<i64> = world
        .frames_with_event("echo")
        .iter()
        .map(|f| f[4]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(order, vec![0, 1, 2, 3]);
    assert_settled(&socket, 3).await;
}

#[tokio::test(start_paused = true)]
async fn heartbeat_blackhole_reconnects_then_rejoins() {
    let world = World::new().await;
    let (socket, mut sevents) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    world.controls().set_blackhole(true);
    let (_, reason) = sevents.reconnecting().await;
    assert_eq!(reason, Some(DisconnectReason::HeartbeatTimeout));
    events.channel(ChannelState::Errored).await;
    world.controls().set_blackhole(false);
    let (_, status) = events.rejoin().await;
    assert_eq!(status, Status::Ok);
    assert_eq!(done(push(&ch, "echo", "{}")).await.status, Status::Ok);
    assert_eq!(
        world.controls().stats().connections,
        1,
        "the dead connection was closed"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_server_within_timeouts_still_works() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    world.controls().set_delay(secs(4));
    let ch = socket.channel("room:lobby");
    let start = tokio::time::Instant::now();
    let d = join_ok(&ch).await;
    assert_eq!(d.at - start, secs(4));
    let d = done(push(&ch, "echo", r#"{"slow":true}"#)).await;
    assert_eq!((d.status, d.response()), (Status::Ok, v!({"slow": true})));
    // Past the push timeout: timeout, and the late reply is ignored.
    world.controls().set_delay(secs(11));
    let d = done(push(&ch, "echo", "{}")).await;
    assert_eq!(d.status, Status::Timeout);
    tokio::time::sleep(secs(5)).await;
    world.controls().set_delay(ms(0));
    assert_eq!(done(push(&ch, "echo", "{}")).await.status, Status::Ok);
    assert_settled(&socket, 1).await;
}

#[tokio::test(start_paused = true)]
async fn oversize_frame_from_the_server_drops_the_connection_with_a_clear_reason() {
    let world = World::new().await;
    let mut config = world.config();
    config.max_frame_size = 1024;
    let (socket, mut sevents) = world.connected_with(config).await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    // The echo of a 2 KiB payload comes back larger than the client accepts.
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(2048));
    let d = done(push(&ch, "echo", &big)).await;
    assert_eq!(d.status, Status::Disconnected);
    let (_, reason) = sevents.reconnecting().await;
    match &reason {
        Some(DisconnectReason::FrameTooLarge(text)) => {
            assert!(text.contains("too long") && text.contains("1024"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(socket.last_reason(), reason);
    // Nothing else is lost: the channel rejoins and small frames flow again.
    let (_, status) = events.rejoin().await;
    assert_eq!(status, Status::Ok);
    assert_eq!(done(push(&ch, "echo", "{}")).await.status, Status::Ok);
}

/// A server that stops reading our frames while it keeps sending: pushes back up in the write
/// queue without blocking the socket's task, the server's frames still arrive, and once it
/// reads again every push completes, in order, on the same connection.
#[tokio::test(start_paused = true)]
async fn a_server_that_stops_reading_backs_pushes_up_and_loses_nothing() {
    let world = World::new().await;
    let (socket, mut events) = world.connected().await; // connection 1
    let (ch, mut chev) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let (other, _other_events) = world.connected().await; // connection 2
    let peer = other.channel("room:lobby");
    join_ok(&peer).await;
    world.controls().set_stop_reading_for(1, true);
    let pad = "x".repeat(1024);
    let pushes: Vec<_> = (0..500)
        .map(|i| push(&ch, "echo", &format!(r#"{{"i":{i},"pad":"{pad}"}}"#)))
        .collect();
    let stats = socket.stats().await;
    assert!(
        stats.outbox > 100,
        "the write queue holds what the peer does not read: {stats:?}"
    );
    drop(push(&peer, "new_msg", r#"{"body":"still here"}"#));
    chev.until(|e| matches!(e, Ev::Message { event, .. } if event == "new_msg"))
        .await;
    world.controls().set_stop_reading_for(1, false);
    for (i, rx) in pushes.into_iter().enumerate() {
        let d = done(rx).await;
        assert_eq!(d.status, Status::Ok, "push {i}");
        assert_eq!(d.response()["i"], i);
    }
    assert_eq!(socket.stats().await.outbox, 0);
    assert!(
        !events
            .drain()
            .iter()
            .any(|e| matches!(e, Ev::Socket(SocketState::Reconnecting, _))),
        "the same connection throughout"
    );
}
