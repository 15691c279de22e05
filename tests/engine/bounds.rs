//! Every resource the engine holds for a peer is bounded, and reaching a bound is reported with
//! its own status or reason: the write queue, the push buffers, the channels, inbound frames
//! and the connection attempt.

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use phx::engine::*;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A server that stops reading: pushes fill the write queue up to its bound in bytes and the
/// ones past it complete at once with `WriteQueueFull`; a join and heartbeats are still queued;
/// once the server reads again every accepted push and the join complete `Ok` on the same
/// connection.
#[tokio::test(start_paused = true)]
async fn pushes_past_the_write_queue_bound_are_refused_and_control_frames_still_go() {
    let world = World::new().await;
    let mut config = world.config();
    config.max_write_queue_bytes = 64 << 10;
    config.heartbeat_interval = secs(20);
    let (socket, mut events) = world.connected_with(config).await;
    let (ch, _) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    world.controls().set_stop_reading(true);
    let pad = "x".repeat(1024);
    let pushes: Vec<_> = (0..1000)
        .map(|i| {
            let payload = format!(r#"{{"i":{i},"pad":"{pad}"}}"#);
            push_timeout(&ch, "echo", &payload, secs(60))
        })
        .collect();
    let stats = socket.stats().await;
    assert!(
        stats.outbox_bytes <= 64 << 10 && stats.outbox > 10,
        "the queue fills up to its bound and no further: {stats:?}"
    );
    // Control frames are not refused: a join, and the heartbeat due meanwhile.
    let other = socket.channel("room:other");
    let (cb, join_rx) = op();
    other.join(json("{}"), Some(secs(60)), cb).unwrap();
    tokio::time::sleep(secs(21)).await;
    world.controls().set_stop_reading(false);
    let mut refused = 0;
    let mut last_ok = None;
    for (i, rx) in pushes.into_iter().enumerate() {
        let d = done(rx).await;
        match d.status {
            Status::Ok => {
                assert_eq!(d.response()["i"], i);
                last_ok = Some(i);
            }
            Status::WriteQueueFull => refused += 1,
            other => panic!("push {i}: {other:?}"),
        }
    }
    assert!(last_ok.is_some() && refused > 0, "{last_ok:?} {refused}");
    assert_eq!(done(join_rx).await.status, Status::Ok);
    assert!(!world.frames_with_event("heartbeat").is_empty());
    assert_eq!(socket.stats().await.outbox_bytes, 0);
    assert!(
        !events
            .drain()
            .iter()
            .any(|e| matches!(e, Ev::Socket(SocketState::Reconnecting, _))),
        "the same connection throughout"
    );
    // Room again: pushes are accepted.
    assert_eq!(done(push(&ch, "echo", "{}")).await.status, Status::Ok);
}

/// A channel buffers at most `max_buffered_pushes` pushes while it joins; the ones past it
/// complete at once with `BufferFull`, the others are sent once joined.
#[tokio::test(start_paused = true)]
async fn pushes_buffered_while_joining_are_bounded_per_channel() {
    let world = World::new().await;
    let mut config = world.config();
    config.max_buffered_pushes = 3;
    let (socket, _events) = world.connected_with(config).await;
    let ch = socket.channel("room:slow");
    let (cb, join_rx) = op();
    ch.join(json("{}"), None, cb).unwrap();
    let pushes: Vec<_> = (0..5)
        .map(|i| push(&ch, "echo", &format!(r#"{{"i":{i}}}"#)))
        .collect();
    let started = tokio::time::Instant::now();
    let mut statuses = Vec::new();
    for rx in pushes {
        statuses.push(done(rx).await);
    }
    assert_eq!(done(join_rx).await.status, Status::Ok);
    let got: Vec<Status> = statuses.iter().map(|d| d.status).collect();
    use Status::*;
    assert_eq!(got, [Ok, Ok, Ok, BufferFull, BufferFull]);
    assert!(
        statuses[3].at == started && statuses[4].at == started,
        "refused at once, not after the join"
    );
    assert_eq!(world.frames_with_event("echo").len(), 3);
}

/// The socket joins at most `max_channels` channels at once: the next `join()` fails at once
/// with `TooManyChannels`, leaves the channel unjoined and sends nothing; once a channel
/// closes, it joins.
#[tokio::test(start_paused = true)]
async fn joins_past_the_channel_limit_fail_at_once() {
    let world = World::new().await;
    let mut config = world.config();
    config.max_channels = 2;
    let (socket, _events) = world.connected_with(config).await;
    let a = socket.channel("room:a");
    let b = socket.channel("room:b");
    join_ok(&a).await;
    join_ok(&b).await;
    let c = socket.channel("room:c");
    let (cb, _rx) = op();
    assert_eq!(c.join(json("{}"), None, cb), Err(Status::TooManyChannels));
    assert_eq!(c.state(), ChannelState::Closed);
    // An unjoined channel does not count, nor does one that left.
    let (cb, rx) = op();
    a.leave(None, cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Ok);
    join_ok(&c).await;
    assert_eq!(world.frames_with_event("phx_join").len(), 3);
    // A refused join does not count either.
    let (cb, rx) = op();
    b.leave(None, cb).unwrap();
    done(rx).await;
    let private = socket.channel("room:private");
    let (cb, rx) = op();
    private.join(json("{}"), None, cb).unwrap();
    assert_eq!(done(rx).await.status, Status::ReplyError);
    join_ok(&socket.channel("room:d")).await;
}

/// On the wire: the client answers an oversize frame with a close frame, code 1009 (the
/// reason and the reconnection: `faults::oversize_frame_from_the_server_drops_the_connection_with_a_clear_reason`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_is_answered_with_close_code_1009() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::new(format!("ws://127.0.0.1:{port}/socket/websocket"));
    config.max_frame_size = 1024;
    config.reconnect_schedule = vec![secs(60)];
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    socket.connect();
    let (tcp, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    ws.send(WsMessage::Text("x".repeat(2048).into()))
        .await
        .unwrap();
    let close = loop {
        match ws.next().await {
            Some(Ok(WsMessage::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Size));
    socket.shutdown_async().await;
}

/// A server that accepts TCP and never answers the upgrade: each attempt fails after the
/// connect timeout with reason `ConnectTimeout`, and the next attempt follows the reconnect
/// schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_never_answered_times_out_and_the_socket_retries() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = Config::new(format!("ws://127.0.0.1:{port}/socket/websocket"));
    config.connect_timeout = ms(200);
    config.reconnect_schedule = vec![ms(50)];
    let socket = Socket::new(config, &tokio::runtime::Handle::current()).unwrap();
    let (rec, mut events) = recorder();
    socket.set_handler(Some(rec));
    socket.connect();
    let (first, _) = listener.accept().await.unwrap();
    let (_, reason) = events.reconnecting().await;
    assert_eq!(reason, Some(DisconnectReason::ConnectTimeout));
    assert_eq!(socket.last_reason(), Some(DisconnectReason::ConnectTimeout));
    // The next attempt comes, and times out the same way.
    let (second, _) = listener.accept().await.unwrap();
    events
        .until(|e| matches!(e, Ev::Log(_, m) if m.contains("connect timeout")))
        .await;
    drop((first, second));
    socket.shutdown_async().await;
}

/// A burst grows the operation tables (pending replies, pushes, their timeouts, the write
/// queue) to thousands of entries; once it has drained, the next heartbeat gives that room
/// back, so a long-running socket does not keep the memory of its largest burst.
#[tokio::test(start_paused = true)]
async fn tables_give_back_their_burst_capacity_at_the_next_heartbeat() {
    let world = World::new().await;
    let mut config = world.config();
    config.heartbeat_interval = secs(20);
    let (socket, _events) = world.connected_with(config).await;
    let (ch, _) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let steady = socket.stats().await.table_capacity;
    // The server stops reading: every push waits in the write queue and for its reply.
    world.controls().set_stop_reading(true);
    let pushes: Vec<_> = (0..4000)
        .map(|i| push_timeout(&ch, "echo", &format!(r#"{{"i":{i}}}"#), secs(60)))
        .collect();
    world.controls().set_stop_reading(false);
    for rx in pushes {
        assert_eq!(done(rx).await.status, Status::Ok);
    }
    let burst = socket.stats().await.table_capacity;
    assert!(burst >= 4 * 4000, "the burst grew every table: {burst}");
    tokio::time::sleep(secs(21)).await; // one heartbeat
    assert!(!world.frames_with_event("heartbeat").is_empty());
    let after = socket.stats().await;
    assert!(
        after.table_capacity <= steady.max(512),
        "room for {} entries kept after the burst (steady {steady}): {after:?}",
        after.table_capacity
    );
    assert_settled(&socket, 1).await;
    // Steady traffic still works on the shrunk tables.
    assert_eq!(done(push(&ch, "echo", "{}")).await.status, Status::Ok);
}
