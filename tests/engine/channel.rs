//! Channels: cache, join, push, leave, buffering, rejoin, stale filtering. Paused clock.

use crate::support::*;
use phx::engine::*;
use serde_json::json as v;

#[tokio::test(start_paused = true)]
async fn channel_cache_returns_the_same_instance_until_closed() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let a = socket.channel("room:lobby");
    let b = socket.channel("room:lobby");
    assert!(a.same_as(&b), "same instance before join");
    join_ok(&a).await;
    assert!(
        socket.channel("room:lobby").same_as(&a),
        "same instance while joined"
    );
    assert!(!socket.channel("room:other").same_as(&a));
    let (cb, rx) = op();
    a.leave(None, cb).unwrap();
    assert_eq!(done(rx).await.status, Status::Ok);
    assert_eq!(a.state(), ChannelState::Closed);
    let c = socket.channel("room:lobby");
    assert!(!c.same_as(&a), "a fresh instance after close");
    join_ok(&c).await;
}

#[tokio::test(start_paused = true)]
async fn one_join_per_instance() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    join_ok(&ch).await;
    let (cb, rx) = op();
    assert_eq!(ch.join(json("{}"), None, cb), Err(Status::StateError));
    assert!(
        rx.await.is_err(),
        "a call that fails at once never fires its completion"
    );
    assert_eq!(world.frames_with_event("phx_join").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn join_ok_carries_the_response_and_uses_the_payload() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    let (cb, rx) = op();
    ch.join(json(r#"{"echo":"hi"}"#), None, cb).unwrap();
    let d = done(rx).await;
    assert_eq!(d.status, Status::Ok);
    assert_eq!(d.reply.as_ref().unwrap().0, "ok");
    assert_eq!(d.response(), v!({"joined": "room:lobby", "echo": "hi"}));
    assert_eq!(ch.state(), ChannelState::Joined);
}

#[tokio::test(start_paused = true)]
async fn join_error_closes_the_channel_with_the_servers_response() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    for (topic, reason) in [
        ("room:private", "unauthorized"),
        ("room:crash", "join crashed"),
        ("nochannel:1", "unmatched topic"),
    ] {
        let (ch, mut events) = channel(&socket, topic);
        let (cb, rx) = op();
        ch.join(json("{}"), None, cb).unwrap();
        let d = done(rx).await;
        assert_eq!(d.status, Status::ReplyError, "{topic}");
        assert_eq!(d.reply.as_ref().unwrap().0, "error");
        assert_eq!(d.response(), v!({"reason": reason}));
        events.channel(ChannelState::Closed).await;
        assert_eq!(ch.state(), ChannelState::Closed);
        assert!(
            !socket.channel(topic).same_as(&ch),
            "fresh instance to try again"
        );
    }
    tokio::time::sleep(secs(30)).await;
    assert_eq!(
        world.frames_with_event("phx_join").len(),
        3,
        "no rejoin after a refusal"
    );
    // The three fresh instances were never joined and their handles are gone: released.
    assert_settled(&socket, 0).await;
}

#[tokio::test(start_paused = true)]
async fn join_times_out_after_10s_leaves_that_join_and_rejoins() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    world.controls().set_silence(true);
    let (ch, mut events) = channel(&socket, "room:lobby");
    let (cb, rx) = op();
    let start = tokio::time::Instant::now();
    ch.join(json("{}"), None, cb).unwrap();
    let buffered = push(&ch, "echo", r#"{"n":1}"#);
    let d = done(rx).await;
    assert_eq!((d.status, d.at - start), (Status::Timeout, secs(10)));
    assert_eq!(ch.state(), ChannelState::Errored);
    let p = done(buffered).await;
    assert_eq!(
        p.status,
        Status::Timeout,
        "pushes buffered for the attempt fail with it"
    );
    world.controls().set_silence(false);
    // phx_leave for the timed-out join_ref, so no orphan stays joined on the server.
    let joins = world.frames_with_event("phx_join");
    let leaves = world.frames_with_event("phx_leave");
    assert_eq!(leaves.len(), 1);
    assert_eq!(
        leaves[0][0], joins[0][0],
        "leave names the timed-out join_ref"
    );
    // Rejoined after the first rejoin delay (1 s), with a fresh join_ref.
    let (_, status) = events.rejoin().await;
    assert_eq!(status, Status::Ok);
    let joins = world.frames_with_event("phx_join");
    assert_eq!(joins.len(), 2);
    assert_ne!(
        joins[0][0], joins[1][0],
        "every join attempt gets a fresh join_ref"
    );
    assert_eq!(ch.state(), ChannelState::Joined);
    assert!(matches!(
        done(push(&ch, "echo", "{}")).await.status,
        Status::Ok
    ));
}

#[tokio::test(start_paused = true)]
async fn slow_join_with_short_timeout_ignores_the_late_reply_and_close() {
    // room:slow answers after 3 s; with a 1 s timeout the client leaves that join. The server
    // then sends the late join reply and, after our phx_leave, a phx_close for the old
    // join_ref: both are stale and must not close the channel that rejoins.
    //
    // This is the transcript's "join slow, then leave and rejoin pipelined behind it": the
    // client's frames are the captured ones, and a real server answers in that order (no reply
    // to the leave, the rejoin's reply at +6 s, then the old join_ref's phx_close).
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:slow");
    let (cb, rx) = op();
    let start = tokio::time::Instant::now();
    ch.join(json("{}"), Some(secs(1)), cb).unwrap();
    let d = done(rx).await;
    assert_eq!((d.status, d.at - start), (Status::Timeout, secs(1)));
    let (at, status) = events.rejoin().await;
    assert_eq!((status, at - start), (Status::Ok, secs(6)));
    assert_eq!(ch.state(), ChannelState::Joined);
    assert_eq!(
        world.frames(),
        [
            r#"["1","1","room:slow","phx_join",{}]"#,
            r#"["1","2","room:slow","phx_leave",{}]"#,
            r#"["3","3","room:slow","phx_join",{}]"#,
        ],
        "the transcript's client frames"
    );
    tokio::time::sleep(secs(5)).await;
    assert_eq!(ch.state(), ChannelState::Joined, "stale phx_close ignored");
    assert_eq!(world.controls().stats().joined.get("room:slow"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn join_before_connect_is_sent_on_connect() {
    let world = World::new().await;
    let (socket, mut sevents) = world.socket_with(world.config());
    let (ch, mut events) = channel(&socket, "room:lobby");
    let (cb, rx) = op();
    ch.join(json("{}"), None, cb).unwrap();
    let pushed = push(&ch, "echo", r#"{"early":true}"#);
    events.channel(ChannelState::Joining).await;
    assert!(world.attempts().is_empty());
    socket.connect();
    sevents.socket(SocketState::Connected).await;
    assert_eq!(done(rx).await.status, Status::Ok);
    assert_eq!(done(pushed).await.response(), v!({"early": true}));
}

#[tokio::test(start_paused = true)]
async fn join_completes_disconnected_when_the_socket_drops_first() {
    let world = World::new().await;
    let (socket, mut sevents) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:slow");
    let (cb, rx) = op();
    ch.join(json("{}"), None, cb).unwrap();
    let buffered = push(&ch, "echo", "{}");
    tokio::time::sleep(ms(100)).await;
    world.controls().drop_all();
    let d = done(rx).await;
    assert_eq!(d.status, Status::Disconnected);
    assert_eq!(done(buffered).await.status, Status::Disconnected);
    events.channel(ChannelState::Errored).await;
    sevents.socket(SocketState::Connected).await;
    let (_, status) = events.rejoin().await;
    assert_eq!(status, Status::Ok);
}

#[tokio::test(start_paused = true)]
async fn push_results_ok_error_timeout() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    join_ok(&ch).await;
    let d = done(push(&ch, "echo", r#"{"hello":"world","u":"ü€"}"#)).await;
    assert_eq!(
        (d.status, d.response()),
        (Status::Ok, v!({"hello":"world","u":"ü€"}))
    );
    let d = done(push(&ch, "fail", "{}")).await;
    assert_eq!(
        (d.status, d.reply.as_ref().unwrap().0.as_str()),
        (Status::ReplyError, "error")
    );
    assert_eq!(d.response(), v!({"reason": "nope"}));
    let start = tokio::time::Instant::now();
    let d = done(push(&ch, "noreply", "{}")).await;
    assert_eq!((d.status, d.at - start), (Status::Timeout, secs(10)));
    let d = done(push_timeout(&ch, "noreply", "{}", ms(250))).await;
    assert_eq!(
        (d.status, d.at - start - secs(10)),
        (Status::Timeout, ms(250))
    );
    assert_settled(&socket, 1).await;
}

/// Pushes share the last push's event name when it repeats: alternating and repeated names
/// must each reach the wire as given.
#[tokio::test(start_paused = true)]
async fn alternating_and_repeated_event_names_are_sent_as_given() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    join_ok(&ch).await;
    let names = ["echo", "fail", "fail", "echo", "echo", "fail", "echo"];
    for (i, name) in names.iter().enumerate() {
        let d = done(push(&ch, name, &format!(r#"{{"i":{i}}}"#))).await;
        let want = if *name == "echo" {
            Status::Ok
        } else {
            Status::ReplyError
        };
        assert_eq!(d.status, want, "push {i} ({name})");
    }
    let sent = |event: &str| -> Vec<i64> {
        world
            .frames_with_event(event)
            .iter()
            .map(|f| f[4]["i"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(sent("echo"), vec![0, 3, 4, 6]);
    assert_eq!(sent("fail"), vec![1, 2, 5]);
    assert_settled(&socket, 1).await;
}

#[tokio::test(start_paused = true)]
async fn push_state_errors_are_immediate_and_send_nothing() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    let (cb, rx) = op();
    assert_eq!(
        ch.push("echo", json("{}"), None, cb),
        Err(Status::StateError),
        "before join"
    );
    assert!(rx.await.is_err());
    join_ok(&ch).await;
    let (cb, leave) = op();
    ch.leave(None, cb).unwrap();
    // Leaving: the state is published before leave() returns? Not necessarily; the engine
    // checks again on its side, so either way the push fails with a state error.
    let (cb, rx) = op();
    match ch.push("echo", json("{}"), None, cb) {
        Err(Status::StateError) => assert!(rx.await.is_err()),
        Ok(()) => assert_eq!(done(rx).await.status, Status::StateError),
        other => panic!("{other:?}"),
    }
    assert_eq!(done(leave).await.status, Status::Ok);
    let (cb, rx) = op();
    assert_eq!(
        ch.push("echo", json("{}"), None, cb),
        Err(Status::StateError),
        "closed"
    );
    assert!(rx.await.is_err());
    assert_eq!(world.frames_with_event("echo").len(), 0);
}

#[tokio::test(start_paused = true)]
async fn invalid_arguments_are_refused() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    let (cb, _) = op();
    assert_eq!(
        ch.join(json("{not json"), None, cb),
        Err(Status::InvalidArgument)
    );
    join_ok(&ch).await;
    let (cb, _) = op();
    assert_eq!(
        ch.push("echo", json("{\"a\":"), None, cb),
        Err(Status::InvalidArgument)
    );
    let (cb, _) = op();
    let long = "e".repeat(256);
    assert_eq!(
        ch.push(&long, Body::Binary(vec![1]), None, cb),
        Err(Status::InvalidArgument)
    );
    let (cb, rx) = op();
    ch.push(&"e".repeat(255), Body::Binary(vec![1]), None, cb)
        .unwrap();
    assert_eq!(done(rx).await.status, Status::Ok, "255 bytes is fine");
}

#[tokio::test(start_paused = true)]
async fn pushes_buffered_while_joining_are_sent_in_order_after_the_join() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:slow");
    let (cb, joined) = op();
    ch.join(json("{}"), None, cb).unwrap();
    let rxs: Vec<_> = (0..5)
        .map(|i| push(&ch, "echo", &format!(r#"{{"i":{i}}}"#)))
        .collect();
    assert_eq!(done(joined).await.status, Status::Ok);
    for (i, rx) in rxs.into_iter().enumerate() {
        assert_eq!(done(rx).await.response(), v!({"i": i}));
    }
    let echoes = world.frames_with_event("echo");
    let order: Vec<i64> = echoes.iter().map(|f| f[4]["i"].as_i64().unwrap()).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn buffered_push_timeout_counts_from_the_call_and_is_never_sent() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:slow"); // join answered after 3 s
    let (cb, joined) = op();
    let start = tokio::time::Instant::now();
    ch.join(json("{}"), None, cb).unwrap();
    let short = push_timeout(&ch, "echo", r#"{"short":true}"#, secs(2));
    let long = push_timeout(&ch, "echo", r#"{"long":true}"#, secs(5));
    let d = done(short).await;
    assert_eq!((d.status, d.at - start), (Status::Timeout, secs(2)));
    assert_eq!(done(joined).await.status, Status::Ok);
    assert_eq!(done(long).await.status, Status::Ok);
    let echoes = world.frames_with_event("echo");
    assert_eq!(
        echoes.len(),
        1,
        "the expired push was never sent: {echoes:?}"
    );
    assert_eq!(echoes[0][4], v!({"long": true}));
}

#[tokio::test(start_paused = true)]
async fn push_in_flight_when_socket_drops_completes_disconnected_and_is_not_retried() {
    let world = World::new().await;
    let (socket, mut sevents) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let rx = push(&ch, "noreply", "{}");
    tokio::time::sleep(ms(10)).await;
    world.controls().drop_all();
    let d = done(rx).await;
    assert_eq!(d.status, Status::Disconnected);
    events.channel(ChannelState::Errored).await;
    // A push made while errored waits for the rejoin.
    let later = push(&ch, "echo", r#"{"after":"drop"}"#);
    sevents.socket(SocketState::Connected).await;
    events.channel(ChannelState::Joined).await;
    assert_eq!(done(later).await.response(), v!({"after": "drop"}));
    assert_eq!(
        world.frames_with_event("noreply").len(),
        1,
        "sent once, never retried"
    );
}

#[tokio::test(start_paused = true)]
async fn leave_sends_phx_leave_and_closes() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let (cb, rx) = op();
    ch.leave(None, cb).unwrap();
    events.channel(ChannelState::Leaving).await;
    let d = done(rx).await;
    assert_eq!(d.status, Status::Ok);
    events.channel(ChannelState::Closed).await;
    assert_eq!(world.frames_with_event("phx_leave").len(), 1);
    assert_eq!(world.controls().stats().joined.get("room:lobby"), None);
    assert_settled(&socket, 0).await;
}

#[tokio::test(start_paused = true)]
async fn leave_gives_up_after_5s_and_closes_anyway() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:lobby");
    join_ok(&ch).await;
    world.controls().set_silence(true);
    let start = tokio::time::Instant::now();
    let (cb, rx) = op();
    ch.leave(None, cb).unwrap();
    let d = done(rx).await;
    assert_eq!((d.status, d.at - start), (Status::Timeout, secs(5)));
    assert_eq!(ch.state(), ChannelState::Closed);
}

#[tokio::test(start_paused = true)]
async fn leave_while_joining_fails_the_join_and_buffered_pushes() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let ch = socket.channel("room:slow");
    let (cb, joined) = op();
    ch.join(json("{}"), None, cb).unwrap();
    let buffered = push(&ch, "echo", "{}");
    let (cb, left) = op();
    ch.leave(None, cb).unwrap();
    assert_eq!(done(joined).await.status, Status::LeftBeforeJoin);
    assert_eq!(done(buffered).await.status, Status::Closed);
    assert_eq!(done(left).await.status, Status::Ok);
    assert_eq!(ch.state(), ChannelState::Closed);
    assert_eq!(world.frames_with_event("echo").len(), 0);
    assert_settled(&socket, 0).await;
}

#[tokio::test(start_paused = true)]
async fn disconnect_fails_pending_and_buffered_at_once() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (a, mut aev) = channel(&socket, "room:lobby");
    join_ok(&a).await;
    let in_flight = push(&a, "noreply", "{}");
    let b = socket.channel("room:slow");
    let (cb, joining) = op();
    b.join(json("{}"), None, cb).unwrap();
    let buffered = push(&b, "echo", "{}");
    tokio::time::sleep(ms(10)).await;
    let start = tokio::time::Instant::now();
    socket.disconnect();
    for rx in [in_flight, joining, buffered] {
        let d = done(rx).await;
        assert_eq!(
            (d.status, d.at),
            (Status::Closed, start),
            "at once, not after a timeout"
        );
    }
    aev.channel(ChannelState::Closed).await;
    assert_eq!(b.state(), ChannelState::Closed);
    let (cb, rx) = op();
    assert_eq!(
        a.push("echo", json("{}"), None, cb),
        Err(Status::StateError)
    );
    drop(rx);
    assert!(!socket.channel("room:lobby").same_as(&a));
    // The fresh room:lobby instance was never joined and its handle is gone: released.
    assert_settled(&socket, 0).await;
}

#[tokio::test(start_paused = true)]
async fn phx_error_errors_the_channel_fails_in_flight_and_rejoins_after_1s() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    let (cb, joined) = op();
    ch.join(json(r#"{"echo":"again"}"#), None, cb).unwrap();
    assert_eq!(done(joined).await.status, Status::Ok);
    let in_flight = push(&ch, "noreply", "{}");
    let crash = push(&ch, "crash", "{}");
    assert_eq!(done(in_flight).await.status, Status::ChannelErrored);
    assert_eq!(done(crash).await.status, Status::ChannelErrored);
    let errored = events.channel(ChannelState::Errored).await;
    let (rejoined, status) = events.rejoin().await;
    assert_eq!(status, Status::Ok);
    assert_eq!(rejoined - errored, secs(1));
    let joins = world.frames_with_event("phx_join");
    assert_eq!(joins.len(), 2);
    assert_eq!(
        joins[1][4],
        v!({"echo": "again"}),
        "a rejoin uses the join payload"
    );
    assert_eq!(done(push(&ch, "echo", "{}")).await.status, Status::Ok);
}

#[tokio::test(start_paused = true)]
async fn rejoin_schedule_is_1_2_5_10_seconds() {
    let world = World::new().await;
    let mut config = world.config();
    config.heartbeat_interval = secs(3600);
    config.default_timeout = secs(1);
    let (socket, _events) = world.connected_with(config).await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    // The server crashes the channel; from then on it answers nothing (the socket stays up).
    assert_eq!(
        done(push(&ch, "crash", "{}")).await.status,
        Status::ChannelErrored
    );
    world.controls().set_silence(true);
    let errored = events.channel(ChannelState::Errored).await;
    // Each rejoin attempt times out after 1 s; the next starts after 1, 2, 5, 10, 10 s.
    let mut starts = Vec::new();
    while starts.len() < 5 {
        let (at, ev) = events.next().await;
        if ev == Ev::Channel(ChannelState::Joining) {
            starts.push(at);
        }
    }
    let mut prev_end = errored;
    let mut gaps = Vec::new();
    for s in &starts {
        gaps.push((*s - prev_end).as_millis() as u64);
        prev_end = *s + secs(1);
    }
    assert_eq!(gaps, vec![1000, 2000, 5000, 10000, 10000]);
}

#[tokio::test(start_paused = true)]
async fn phx_close_closes_without_rejoin() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:stopper");
    join_ok(&ch).await;
    let stop = push(&ch, "stop", "{}");
    events.channel(ChannelState::Closed).await;
    assert_eq!(done(stop).await.status, Status::Closed);
    let (ch2, mut events2) = channel(&socket, "room:stopper2");
    join_ok(&ch2).await;
    let d = done(push(&ch2, "stop_reply", "{}")).await;
    assert_eq!((d.status, d.response()), (Status::Ok, v!({"bye": true})));
    events2.channel(ChannelState::Closed).await;
    tokio::time::sleep(secs(30)).await;
    assert_eq!(
        world.frames_with_event("phx_join").len(),
        2,
        "no rejoin after phx_close"
    );
    assert_settled(&socket, 0).await;
}

#[tokio::test(start_paused = true)]
async fn messages_are_app_events_in_order_with_all_fields() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    assert_eq!(
        done(push(&ch, "push_me", r#"{"x":1}"#)).await.status,
        Status::Ok
    );
    assert_eq!(
        done(push(&ch, "new_msg", r#"{"body":"hi"}"#)).await.status,
        Status::Ok
    );
    let msgs = events.messages(2).await;
    let jr = world.frames_with_event("phx_join")[0][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        msgs,
        vec![
            Ev::Message {
                join_ref: Some(jr),
                ref_: None,
                topic: "room:lobby".into(),
                event: "pushed".into(),
                payload: Owned::Json(r#"{"x":1}"#.into())
            },
            Ev::Message {
                join_ref: None,
                ref_: None,
                topic: "room:lobby".into(),
                event: "new_msg".into(),
                payload: Owned::Json(r#"{"body":"hi"}"#.into())
            },
        ]
    );
    // Control events (replies, phx_close) are never messages.
    let (cb, rx) = op();
    ch.leave(None, cb).unwrap();
    done(rx).await;
    let rest = events.drain();
    assert!(
        !rest.iter().any(|e| matches!(e, Ev::Message { .. })),
        "{rest:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn flood_of_10000_arrives_complete_and_in_order() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let d = done(push(&ch, "flood", r#"{"n":10000}"#)).await;
    assert_eq!(d.response(), v!({"sent": 10000}));
    let msgs = events.messages(10000).await;
    for (i, m) in msgs.iter().enumerate() {
        let Ev::Message { event, payload, .. } = m else {
            unreachable!()
        };
        assert_eq!(event, "flood_msg");
        assert_eq!(payload.value(), v!({"i": i + 1}));
    }
}

#[tokio::test(start_paused = true)]
async fn binary_payloads_both_ways() {
    let world = World::new().await;
    let (socket, _events) = world.connected().await;
    let (ch, mut events) = channel(&socket, "room:lobby");
    join_ok(&ch).await;
    let bytes = vec![0u8, 1, 2, 0xff, 0xfe, b'\n'];
    let (cb, rx) = op();
    ch.push("echo", Body::Binary(bytes.clone()), None, cb)
        .unwrap();
    let d = done(rx).await;
    assert_eq!(d.status, Status::Ok);
    assert_eq!(d.reply, Some(("ok".into(), Owned::Binary(bytes.clone()))));
    let (cb, rx) = op();
    ch.push("push_me", Body::Binary(vec![0xde, 0xad]), None, cb)
        .unwrap();
    done(rx).await;
    let (cb, rx) = op();
    ch.push("new_msg", Body::Binary(vec![0xbe, 0xef]), None, cb)
        .unwrap();
    done(rx).await;
    let msgs = events.messages(2).await;
    let payloads: Vec<(String, Owned)> = msgs
        .into_iter()
        .map(|m| match m {
            Ev::Message { event, payload, .. } => (event, payload),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        payloads,
        vec![
            ("pushed".into(), Owned::Binary(vec![0xde, 0xad])),
            ("new_msg".into(), Owned::Binary(vec![0xbe, 0xef])),
        ]
    );
    let (cb, rx) = op();
    ch.push("echo", Body::Binary(Vec::new()), None, cb).unwrap();
    assert_eq!(
        done(rx).await.reply,
        Some(("ok".into(), Owned::Binary(vec![])))
    );
}
