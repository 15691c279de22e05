//! Socket behaviour the transcripts imply but do not show frame by frame: the answer to a
//! client's close, `disconnect_me` for every socket of the same id, V1 pushes and errors,
//! Jason's re-encoding of echoed payloads, when a leave is answered with frames waiting behind
//! it.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use phx_testserver::{Config, TestServer};
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<DuplexStream>;

async fn connect(server: &TestServer, query: &str) -> Ws {
    let (io, _) = server.connect_in_memory();
    upgrade(io, query).await
}

async fn lobby(server: &TestServer, token: &str) -> Ws {
    let mut ws = connect(server, &format!("vsn=2.0.0&token={token}")).await;
    assert_eq!(
        roundtrip(&mut ws, r#"["1","1","room:lobby","phx_join",{}]"#).await,
        r#"["1","1","room:lobby","phx_reply",{"response":{"joined":"room:lobby"},"status":"ok"}]"#
    );
    ws
}

#[tokio::test(start_paused = true)]
async fn a_client_close_is_answered_with_its_code_and_no_reason() {
    let server = TestServer::start(Config::default()).await.unwrap();
    for code in [1000u16, 4000] {
        let mut ws = lobby(&server, "c").await;
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "heartbeat timeout".into(),
        };
        ws.send(Message::Close(Some(frame))).await.unwrap();
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), code);
                assert_eq!(f.reason.as_str(), "");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        assert!(
            ws.next().await.is_none(),
            "the server closes the connection"
        );
    }
    assert_eq!(server.controls().stats().connections, 0);
}

#[tokio::test(start_paused = true)]
async fn disconnect_me_closes_every_socket_with_the_same_id() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut v1 = lobby(&server, "victim").await;
    let mut v2 = lobby(&server, "victim").await;
    let mut other = lobby(&server, "other").await;
    assert_eq!(
        roundtrip(&mut v1, r#"["1","2","room:lobby","disconnect_me",{}]"#).await,
        r#"["1","2","room:lobby","phx_reply",{"response":{"disconnecting":true},"status":"ok"}]"#
    );
    assert_eq!(next_close(&mut v1).await, 1000);
    assert_eq!(next_close(&mut v2).await, 1000);
    assert_eq!(
        roundtrip(&mut other, r#"[null,"3","phoenix","heartbeat",{}]"#).await,
        r#"[null,"3","phoenix","phx_reply",{"response":{},"status":"ok"}]"#
    );
}

#[tokio::test(start_paused = true)]
async fn v1_sockets_get_json_objects_for_every_frame() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut ws = connect(&server, "token=v1").await;
    let mut v2 = lobby(&server, "v2").await;
    assert_eq!(
        roundtrip(&mut ws, r#"{"topic":"room:lobby","event":"phx_join","payload":{"echo":[1]},"ref":"1","join_ref":"1"}"#).await,
        r#"{"event":"phx_reply","payload":{"response":{"echo":[1],"joined":"room:lobby"},"status":"ok"},"ref":"1","topic":"room:lobby"}"#
    );
    send_text(
        &mut ws,
        r#"{"topic":"room:lobby","event":"push_me","payload":{"x":1},"ref":"2"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"pushed","payload":{"x":1},"ref":null,"topic":"room:lobby"}"#
    );
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"phx_reply","payload":{"response":{},"status":"ok"},"ref":"2","topic":"room:lobby"}"#
    );
    // a broadcast from a V2 socket reaches the V1 socket as an object
    assert_eq!(
        roundtrip(&mut v2, r#"["1","2","room:lobby","new_msg",{"b":2}]"#).await,
        r#"[null,null,"room:lobby","new_msg",{"b":2}]"#
    );
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"new_msg","payload":{"b":2},"ref":null,"topic":"room:lobby"}"#
    );
    send_text(
        &mut ws,
        r#"{"topic":"room:lobby","event":"crash","payload":{},"ref":"3"}"#,
    )
    .await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"event":"phx_error","payload":{},"ref":"1","topic":"room:lobby"}"#
    );
    // an array is not a V1 message: the socket crashes
    send_text(&mut ws, r#"[null,"4","phoenix","heartbeat",{}]"#).await;
    assert_eq!(next_close(&mut ws).await, 1011);
}

#[tokio::test(start_paused = true)]
async fn echoed_payloads_are_reencoded_as_jason_does() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut ws = lobby(&server, "j").await;
    let cases = [
        (
            r#"{"b":1e3,"a":-0,"c":0.0001,"d":12345678901234567890123}"#,
            r#"{"a":0,"b":1.0e3,"c":1.0e-4,"d":12345678901234567890123}"#,
        ),
        (
            r#"{"k":"\u00e9\/\u001f\n","k":"dup"}"#,
            r#"{"k":"é/\u001F\n"}"#,
        ),
        (r#"[ 1 , 2.50 ,true,null ]"#, r#"[1,2.5,true,null]"#),
    ];
    for (i, (payload, response)) in cases.iter().enumerate() {
        let r = i + 2;
        assert_eq!(
            roundtrip(
                &mut ws,
                &format!(r#"["1","{r}","room:lobby","echo",{payload}]"#)
            )
            .await,
            format!(
                r#"["1","{r}","room:lobby","phx_reply",{{"response":{response},"status":"ok"}}]"#
            )
        );
    }
    // unknown events crash the room channel (no handle_in clause)
    send_text(&mut ws, r#"["1","9","room:lobby","unknown_event",{}]"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"["1","1","room:lobby","phx_error",{}]"#
    );
    // a lone surrogate is not JSON for Jason: the socket crashes
    send_text(
        &mut ws,
        r#"[null,"10","phoenix","heartbeat",{"s":"\ud800"}]"#,
    )
    .await;
    assert_eq!(next_close(&mut ws).await, 1011);
}

const LEAVE: &str = r#"["1","2","room:lobby","phx_leave",{}]"#;
const LEFT: &str = r#"["1","2","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#;
const CLOSED: &str = r#"["1","1","room:lobby","phx_close",{}]"#;

fn hb(r: &str) -> String {
    format!(r#"[null,"{r}","phoenix","heartbeat",{{}}]"#)
}

fn hb_reply(r: &str) -> String {
    format!(r#"[null,"{r}","phoenix","phx_reply",{{"response":{{}},"status":"ok"}}]"#)
}

/// Writes `frames` in one go, so that all of them wait together when the server reads the first.
async fn pipeline(ws: &mut Ws, frames: &[&str]) {
    for f in frames {
        ws.feed(Message::text(*f)).await.expect("feed");
    }
    ws.flush().await.expect("flush");
}

#[tokio::test(start_paused = true)]
async fn a_leave_is_answered_after_the_frames_waiting_behind_it() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut ws = lobby(&server, "l").await;
    // The socket answers the heartbeat itself; the channel answers the leave after it.
    pipeline(&mut ws, &[LEAVE, &hb("3")]).await;
    assert_eq!(next_text(&mut ws).await, hb_reply("3"));
    assert_eq!(next_text(&mut ws).await, LEFT);
    assert_eq!(next_text(&mut ws).await, CLOSED);
    assert_eq!(server.controls().stats().joined.get("room:lobby"), None);

    // What reaches the channel behind its leave is lost: no reply, not even `unmatched topic`.
    let mut ws = lobby(&server, "l").await;
    pipeline(
        &mut ws,
        &[LEAVE, r#"["1","3","room:lobby","echo",{}]"#, &hb("4")],
    )
    .await;
    assert_eq!(next_text(&mut ws).await, hb_reply("4"));
    assert_eq!(next_text(&mut ws).await, LEFT);
    assert_eq!(next_text(&mut ws).await, CLOSED);
    // once it has closed, the topic is simply not joined
    assert_eq!(
        roundtrip(&mut ws, r#"["1","5","room:lobby","echo",{}]"#).await,
        r#"[null,"5","room:lobby","phx_reply",{"response":{"reason":"unmatched topic"},"status":"error"}]"#
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejoin_waiting_behind_a_leave_kills_the_channel_before_it_answers() {
    let server = TestServer::start(Config::default()).await.unwrap();
    let mut ws = lobby(&server, "r").await;
    pipeline(&mut ws, &[LEAVE, r#"["3","3","room:lobby","phx_join",{}]"#]).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"["3","3","room:lobby","phx_reply",{"response":{"joined":"room:lobby"},"status":"ok"}]"#
    );
    assert_eq!(next_text(&mut ws).await, CLOSED);
    // The leave's reply never comes: the next frame answers this heartbeat.
    assert_eq!(roundtrip(&mut ws, &hb("4")).await, hb_reply("4"));
    assert_eq!(
        roundtrip(&mut ws, r#"["3","5","room:lobby","echo",{"n":5}]"#).await,
        r#"["3","5","room:lobby","phx_reply",{"response":{"n":5},"status":"ok"}]"#
    );
    assert_eq!(server.controls().stats().joined["room:lobby"], 1);

    // A rejoin sent once the leave was answered is an ordinary join.
    assert_eq!(
        roundtrip(&mut ws, r#"["3","6","room:lobby","phx_leave",{}]"#).await,
        r#"["3","6","room:lobby","phx_reply",{"response":{},"status":"ok"}]"#
    );
    assert_eq!(
        next_text(&mut ws).await,
        r#"["3","3","room:lobby","phx_close",{}]"#
    );
    assert_eq!(
        roundtrip(&mut ws, r#"["7","7","room:lobby","phx_join",{}]"#).await,
        r#"["7","7","room:lobby","phx_reply",{"response":{"joined":"room:lobby"},"status":"ok"}]"#
    );
    assert_eq!(roundtrip(&mut ws, &hb("8")).await, hb_reply("8"));
}
