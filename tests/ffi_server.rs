//! The C surface against phx-testserver: blocking calls, callbacks, owned events, tagged
//! replies, re-entrancy and what phx_socket_free guarantees.

mod ffi_common;

use ffi_common::*;
use phx::ffi::*;
use std::ffi::c_void;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T: Duration = Duration::from_secs(5);
const JSON: u32 = phx_payload_kind_t::PHX_PAYLOAD_JSON as u32;
const BINARY: u32 = phx_payload_kind_t::PHX_PAYLOAD_BINARY as u32;
const CONNECTED: u32 = phx_socket_state_t::PHX_SOCKET_CONNECTED as u32;
const JOINED: u32 = phx_channel_state_t::PHX_CHANNEL_JOINED as u32;

unsafe fn response(r: *mut phx_response_t) -> (String, u32, Vec<u8>) {
    let x = &*r;
    let status = text(x.status).to_owned();
    assert_eq!(status.len(), x.status_len);
    let out = (
        status,
        x.payload_kind,
        bytes(x.payload, x.payload_len).to_vec(),
    );
    phx_response_free(r);
    out
}

fn json(v: &[u8]) -> serde_json::Value {
    serde_json::from_slice(v).unwrap()
}

#[test]
fn blocking_join_push_leave() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        let mut state = 9;
        assert_eq!(phx_socket_state(s, &mut state), OK);
        assert_eq!(state, CONNECTED);
        assert_eq!(phx_socket_connect_wait(s, 0), OK, "already connected");

        let ch = channel(s, "room:lobby");
        let mut r = null_mut();
        assert_eq!(
            phx_channel_join_wait(ch, c(r#"{"echo":5}"#).as_ptr(), 0, &mut r),
            OK
        );
        let (status, kind, body) = response(r);
        assert_eq!((status.as_str(), kind), ("ok", JSON));
        assert_eq!(
            json(&body),
            serde_json::json!({"joined": "room:lobby", "echo": 5})
        );
        assert_eq!(phx_channel_state(ch, &mut state), OK);
        assert_eq!(state, JOINED);

        let mut r = null_mut();
        let payload = c(r#"{"a":[1,2,{"b":"c"}]}"#);
        assert_eq!(
            phx_channel_push_wait(ch, c("echo").as_ptr(), payload.as_ptr(), 0, &mut r),
            OK
        );
        let (_, _, body) = response(r);
        assert_eq!(body, payload.as_bytes());

        // A reply error carries the server's response.
        let mut r = null_mut();
        let st = phx_channel_push_wait(ch, c("fail").as_ptr(), c("{}").as_ptr(), 0, &mut r);
        assert_eq!(st, phx_status_t::PHX_ERR_REPLY);
        let (status, _, body) = response(r);
        assert_eq!(status, "error");
        assert_eq!(json(&body), serde_json::json!({"reason": "nope"}));

        // No reply: timeout; the response is not written.
        let mut r = null_mut();
        let st = phx_channel_push_wait(ch, c("noreply").as_ptr(), c("{}").as_ptr(), 100, &mut r);
        assert_eq!(st, phx_status_t::PHX_ERR_TIMEOUT);
        assert!(r.is_null());
        // Without an out pointer the response is discarded.
        assert_eq!(
            phx_channel_push_wait(ch, c("echo").as_ptr(), c("{}").as_ptr(), 0, null_mut()),
            OK
        );

        assert_eq!(phx_channel_leave_wait(ch, 0), OK);
        assert_eq!(phx_channel_state(ch, &mut state), OK);
        assert_eq!(state, phx_channel_state_t::PHX_CHANNEL_CLOSED as u32);
        // A second join on this instance is a state error; a fresh handle joins again.
        assert_eq!(
            phx_channel_join_wait(ch, null(), 0, null_mut()),
            phx_status_t::PHX_ERR_STATE
        );
        let fresh = channel(s, "room:lobby");
        assert_ne!(fresh, ch);
        assert_eq!(phx_channel_join_wait(fresh, null(), 0, null_mut()), OK);

        // A refused join.
        let private = channel(s, "room:private");
        let mut r = null_mut();
        assert_eq!(
            phx_channel_join_wait(private, null(), 0, &mut r),
            phx_status_t::PHX_ERR_REPLY
        );
        let (status, _, body) = response(r);
        assert_eq!(status, "error");
        assert_eq!(json(&body), serde_json::json!({"reason": "unauthorized"}));

        phx_channel_free(private);
        phx_channel_free(fresh);
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

#[test]
fn callbacks_receive_messages_replies_and_states() {
    let server = Server::start();
    unsafe {
        let s = socket(&server.url);
        let srec = record_socket(s);
        assert_eq!(phx_socket_connect(s), OK);
        assert!(srec.wait_for(
            T,
            |x| matches!(x, Seen::SocketState(st, _) if *st == CONNECTED)
        ));

        let ch = channel(s, "room:cb");
        let crec = record_channel(ch);
        let reply = Recorder::new();
        assert_eq!(
            phx_channel_join(ch, null(), 0, Some(on_reply_once), reply.user_data()),
            OK
        );
        assert!(reply.wait_for(
            T,
            |x| matches!(x, Seen::Reply(0, Some((s, k, _))) if s == "ok" && *k == JSON)
        ));
        assert!(crec.wait_for(T, |x| *x == Seen::ChannelState(JOINED)));

        // A broadcast reaches on_message with every field.
        let reply = Recorder::new();
        let payload = c(r#"{"body":"hi"}"#);
        assert_eq!(
            phx_channel_push(
                ch,
                c("new_msg").as_ptr(),
                payload.as_ptr(),
                0,
                Some(on_reply_once),
                reply.user_data()
            ),
            OK
        );
        assert!(reply.wait_for(T, |x| matches!(x, Seen::Reply(0, _))));
        assert!(crec.wait_for(
            T,
            |x| matches!(x, Seen::Message { event, .. } if event == "new_msg")
        ));
        let msg = crec
            .snapshot()
            .into_iter()
            .find(|x| matches!(x, Seen::Message { .. }))
            .unwrap();
        let Seen::Message {
            topic,
            join_ref,
            ref_,
            kind,
            payload: body,
            ..
        } = msg
        else {
            unreachable!()
        };
        assert_eq!(topic, "room:cb");
        assert_eq!((join_ref, ref_), (None, None), "a broadcast has no refs");
        assert_eq!(kind, JSON);
        assert_eq!(body, payload.as_bytes());

        // A server push carries join_ref.
        assert_eq!(
            phx_channel_push(
                ch,
                c("push_me").as_ptr(),
                c(r#"{"x":1}"#).as_ptr(),
                0,
                None,
                null_mut()
            ),
            OK
        );
        assert!(crec.wait_for(
            T,
            |x| matches!(x, Seen::Message { event, join_ref: Some(_), .. } if event == "pushed")
        ));

        // Binary: a binary reply and a binary server push.
        let data: Vec<u8> = (0..=255u8).chain([0, 0, 7]).collect();
        let reply = Recorder::new();
        assert_eq!(
            phx_channel_push_binary(
                ch,
                c("echo").as_ptr(),
                data.as_ptr(),
                data.len(),
                0,
                Some(on_reply_once),
                reply.user_data()
            ),
            OK
        );
        assert!(
            reply.wait_for(
                T,
                |x| matches!(x, Seen::Reply(0, Some((_, k, b))) if *k == BINARY && *b == data)
            ),
            "{:?}",
            reply.snapshot()
        );
        let (ev, d) = (c("push_me"), data.as_ptr());
        assert_eq!(
            phx_channel_push_binary(ch, ev.as_ptr(), d, data.len(), 0, None, null_mut()),
            OK
        );
        assert!(crec.wait_for(T, |x| matches!(x, Seen::Message { kind, payload, .. } if *kind == BINARY && *payload == data)));

        // A reply error through the callback carries the response.
        let reply = Recorder::new();
        assert_eq!(
            phx_channel_push(
                ch,
                c("fail").as_ptr(),
                c("{}").as_ptr(),
                0,
                Some(on_reply_once),
                reply.user_data()
            ),
            OK
        );
        let err = phx_status_t::PHX_ERR_REPLY as u32;
        assert!(reply.wait_for(
            T,
            |x| matches!(x, Seen::Reply(s, Some((st, _, _))) if *s == err && st == "error")
        ));

        // The server closing the connection: reconnecting with the close code, then rejoin.
        server.control(|c| c.close_all(4001));
        assert!(srec.wait_for(T, |x| matches!(x,
            Seen::SocketState(st, Some((k, 4001, _)))
                if *st == phx_socket_state_t::PHX_SOCKET_RECONNECTING as u32
                && *k == phx_reason_kind_t::PHX_REASON_CLOSE_FRAME as u32)));
        assert!(crec.wait_for(
            T,
            |x| matches!(x, Seen::Rejoin(0, Some((s, _))) if s == "ok")
        ));
        let mut reason = std::mem::zeroed::<phx_reason_t>();
        assert_eq!(phx_socket_last_reason(s, &mut reason), OK);
        assert_eq!(
            (reason.kind, reason.code),
            (phx_reason_kind_t::PHX_REASON_CLOSE_FRAME as u32, 4001)
        );
        // The engine's log lines reach on_log.
        let warn = phx_log_level_t::PHX_LOG_WARN as u32;
        assert!(srec.wait_for(
            T,
            |x| matches!(x, Seen::Log(l, m) if *l == warn && m.contains("4001"))
        ));

        phx_channel_free(ch);
        phx_socket_free(s);
        assert_eq!(srec.frees.load(Ordering::SeqCst), 1);
        assert_eq!(crec.frees.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn refused_upgrade_reports_the_http_status() {
    let server = Server::start();
    unsafe {
        let opts = phx_options_new();
        assert_eq!(
            phx_options_set_params_json(opts, c(r#"{"token":"bad"}"#).as_ptr()),
            OK
        );
        let mut s = null_mut();
        assert_eq!(phx_socket_new(c(&server.url).as_ptr(), opts, &mut s), OK);
        phx_options_free(opts);
        assert_eq!(
            phx_socket_connect_wait(s, 300),
            phx_status_t::PHX_ERR_TIMEOUT
        );
        let mut reason = std::mem::zeroed::<phx_reason_t>();
        assert_eq!(phx_socket_last_reason(s, &mut reason), OK);
        assert_eq!(
            (reason.kind, reason.code),
            (phx_reason_kind_t::PHX_REASON_HTTP_STATUS as u32, 403)
        );
        assert!(text(reason.text.as_ptr()).contains("403"));
        phx_socket_free(s);
    }
}

#[test]
fn events_tagged_replies_overflow_and_fd() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        let wake = Recorder::new();
        assert_eq!(
            phx_socket_events_enable(s, 8, Some(on_wake), wake.user_data(), Some(free_recorder)),
            OK
        );
        let mut fd = -1;
        assert_eq!(phx_socket_event_fd(s, &mut fd), OK);
        assert!(!readable(fd));

        let ch = channel(s, "room:events");
        assert_eq!(
            phx_channel_join_tagged(ch, c(r#"{"echo":"x"}"#).as_ptr(), 0, 42),
            OK
        );
        let mut others = Vec::new();
        let reply = next_matching(s, T, &mut others, |e| {
            e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32
        })
        .expect("the join's reply");
        assert_eq!(reply.tag, 42);
        assert_eq!(reply.status, 0);
        assert_eq!(reply.topic.as_deref(), Some("room:events"));
        assert_eq!(reply.reply_status.as_deref(), Some("ok"));
        assert_eq!(
            json(reply.payload.as_ref().unwrap()),
            serde_json::json!({"echo": "x"})
        );
        assert!(others.iter().any(
            |e| e.kind == phx_event_kind_t::PHX_EVENT_CHANNEL_STATE as u32
                && e.state == JOINED
                && e.topic.as_deref() == Some("room:events")
        ));
        // Joining and joined, and the reply: woken once per batch of the socket task, not per event.
        assert!(wake.count(|x| *x == Seen::Wake) >= 1);

        // Drain, then the fd is not readable.
        let mut e = null_mut();
        while phx_socket_try_event(s, &mut e) == OK {
            take_event(e);
        }
        assert!(!readable(fd));

        // A flood overflows the queue of 8: the loss is reported; the tagged reply is kept.
        assert_eq!(
            phx_channel_push_tagged(ch, c("flood").as_ptr(), c(r#"{"n":50}"#).as_ptr(), 0, 7),
            OK
        );
        assert!(wait_until(T, || readable(fd)));
        // The server answers in order: once this echo's reply has run its callback, the flood
        // and the tagged reply before it have been queued (or dropped).
        let marker = Recorder::new();
        let ud = Arc::into_raw(marker.clone()) as *mut c_void;
        let st = phx_channel_push(
            ch,
            c("echo").as_ptr(),
            c("{}").as_ptr(),
            0,
            Some(on_reply_once),
            ud,
        );
        assert_eq!(st, OK);
        assert!(wait_until(T, || marker
            .count(|x| matches!(x, Seen::Reply(..)))
            == 1));
        let mut got = Vec::new();
        let mut e = null_mut();
        while phx_socket_try_event(s, &mut e) == OK {
            got.push(take_event(e));
        }
        assert!(!readable(fd));
        let messages = got
            .iter()
            .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_MESSAGE as u32)
            .count();
        let overflow: Vec<&Ev> = got
            .iter()
            .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_OVERFLOW as u32)
            .collect();
        let replies: Vec<&Ev> = got
            .iter()
            .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32)
            .collect();
        assert_eq!(replies.len(), 1, "{got:?}");
        assert_eq!(replies[0].tag, 7);
        assert_eq!(
            json(replies[0].payload.as_ref().unwrap()),
            serde_json::json!({"sent": 50})
        );
        assert_eq!(overflow.len(), 1, "{got:?}");
        assert_eq!(messages as u64 + overflow[0].dropped, 50, "{got:?}");
        // Messages keep their order and fields.
        let first = got
            .iter()
            .find(|e| e.kind == phx_event_kind_t::PHX_EVENT_MESSAGE as u32)
            .unwrap();
        assert_eq!(first.event.as_deref(), Some("flood_msg"));
        assert_eq!(
            json(first.payload.as_ref().unwrap()),
            serde_json::json!({"i": 1})
        );

        // Room again: new events are queued.
        assert_eq!(
            phx_channel_push_binary_tagged(ch, c("echo").as_ptr(), [9u8, 8].as_ptr(), 2, 0, 8),
            OK
        );
        let reply = next_matching(s, T, &mut Vec::new(), |e| {
            e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32
        })
        .unwrap();
        assert_eq!((reply.tag, reply.payload_kind), (8, BINARY));
        assert_eq!(reply.payload.as_deref(), Some(&[9u8, 8][..]));

        // A tagged error and a tagged leave.
        assert_eq!(
            phx_channel_push_tagged(ch, c("fail").as_ptr(), c("{}").as_ptr(), 0, 9),
            OK
        );
        let reply = next_matching(s, T, &mut Vec::new(), |e| {
            e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32
        })
        .unwrap();
        assert_eq!(
            (reply.tag, reply.status),
            (9, phx_status_t::PHX_ERR_REPLY as u32)
        );
        assert_eq!(reply.reply_status.as_deref(), Some("error"));
        assert_eq!(phx_channel_leave_tagged(ch, 0, 10), OK);
        let reply = next_matching(s, T, &mut Vec::new(), |e| {
            e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32
        })
        .unwrap();
        assert_eq!((reply.tag, reply.status), (10, 0));

        phx_channel_free(ch);
        phx_socket_free(s);
        assert_eq!(wake.frees.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn replies_are_never_dropped() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        assert_eq!(phx_socket_events_enable(s, 1, None, null_mut(), None), OK);
        let ch = channel(s, "echo:many");
        assert_eq!(phx_channel_join_tagged(ch, null(), 0, 0), OK);
        for tag in 1..=20 {
            assert_eq!(
                phx_channel_push_tagged(ch, c("e").as_ptr(), c("{}").as_ptr(), 0, tag),
                OK
            );
        }
        let mut tags = Vec::new();
        let mut others = Vec::new();
        while tags.len() < 21 {
            let ev = next_matching(s, T, &mut others, |e| {
                e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32
            })
            .expect("every reply arrives");
            assert_eq!(ev.status, 0);
            tags.push(ev.tag);
        }
        assert_eq!(tags, (0..=20).collect::<Vec<u64>>());
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

/// Tagged pushes still pending when their channel closes complete exactly once each, with
/// `PHX_ERR_CLOSED`, into the queue, although no handle of the channel is left.
#[test]
fn pending_tagged_pushes_complete_once_after_their_handle_is_freed() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        assert_eq!(phx_socket_events_enable(s, 256, None, null_mut(), None), OK);
        let ch = joined(s, "room:pending");
        let id = phx_channel_id(ch);
        for tag in 1..=10 {
            assert_eq!(
                phx_channel_push_tagged(ch, c("noreply").as_ptr(), c("{}").as_ptr(), 60_000, tag),
                OK
            );
        }
        assert_eq!(phx_channel_leave_tagged(ch, 0, 100), OK);
        phx_channel_free(ch);
        let mut others = Vec::new();
        let closed = next_matching(s, T, &mut others, |e| {
            e.kind == phx_event_kind_t::PHX_EVENT_CHANNEL_STATE as u32
                && e.state == phx_channel_state_t::PHX_CHANNEL_CLOSED as u32
        });
        assert!(closed.is_some(), "the channel closes");
        // The leave's own reply may come after the close: wait for it, then for a probe sent
        // after it, so that any late second completion would be queued before the probe's.
        if !others.iter().any(|e| e.kind == REPLY && e.tag == 100) {
            let leave = next_matching(s, T, &mut others, |e| e.kind == REPLY && e.tag == 100);
            others.extend(leave);
        }
        assert_eq!(phx_socket_probe_tagged(s, 999), OK);
        let probe = next_matching(s, T, &mut others, |e| {
            e.kind == phx_event_kind_t::PHX_EVENT_PROBE as u32
        });
        assert!(probe.is_some());
        let mut replies: Vec<(u64, u32)> = others
            .iter()
            .filter(|e| e.kind == REPLY && e.tag != 100)
            .map(|e| {
                assert_eq!(e.channel_id, id);
                assert_eq!(e.topic.as_deref(), Some("room:pending"));
                (e.tag, e.status)
            })
            .collect();
        replies.sort();
        let closed = phx_status_t::PHX_ERR_CLOSED as u32;
        assert_eq!(replies, (1..=10).map(|t| (t, closed)).collect::<Vec<_>>());
        phx_socket_free(s);
    }
}

const REPLY: u32 = phx_event_kind_t::PHX_EVENT_REPLY as u32;

// ---- re-entrancy -------------------------------------------------------------------------------

struct Ctx {
    socket: Mutex<usize>,
    channel: Mutex<usize>,
    results: Mutex<Vec<(&'static str, phx_status_t)>>,
    calls: AtomicUsize,
    freed: AtomicUsize,
}

unsafe extern "C" fn free_ctx(ud: *mut c_void) {
    let ctx = Arc::from_raw(ud as *const Ctx);
    ctx.freed.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn blocking_inside_state(ud: *mut c_void, state: u32, _r: *const phx_reason_t) {
    let ctx = &*(ud as *const Ctx);
    ctx.calls.fetch_add(1, Ordering::SeqCst);
    if state != CONNECTED {
        return;
    }
    let s = *ctx.socket.lock().unwrap() as *mut phx_socket_t;
    let ch = *ctx.channel.lock().unwrap() as *mut phx_channel_t;
    let mut res = ctx.results.lock().unwrap();
    res.push(("connect_wait", phx_socket_connect_wait(s, 100)));
    res.push((
        "join_wait",
        phx_channel_join_wait(ch, null(), 100, null_mut()),
    ));
    res.push((
        "push_wait",
        phx_channel_push_wait(ch, c("e").as_ptr(), c("{}").as_ptr(), 100, null_mut()),
    ));
    res.push(("leave_wait", phx_channel_leave_wait(ch, 100)));
    let mut e = null_mut();
    res.push(("next_event", phx_socket_next_event(s, 100, &mut e)));
    // Non-blocking calls work inside callbacks.
    res.push(("try_event", phx_socket_try_event(s, &mut e)));
    res.push(("join", phx_channel_join(ch, null(), 0, None, null_mut())));
}

#[test]
fn blocking_calls_inside_callbacks_return_wrong_thread() {
    let server = Server::start();
    unsafe {
        let s = socket(&server.url);
        assert_eq!(phx_socket_events_enable(s, 64, None, null_mut(), None), OK);
        let ch = channel(s, "room:reentrant");
        let ctx = Arc::new(Ctx {
            socket: Mutex::new(s as usize),
            channel: Mutex::new(ch as usize),
            results: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            freed: AtomicUsize::new(0),
        });
        let h = phx_socket_handler_t {
            on_state: Some(blocking_inside_state),
            on_log: None,
        };
        assert_eq!(
            phx_socket_set_handler(
                s,
                &h,
                Arc::into_raw(ctx.clone()) as *mut c_void,
                Some(free_ctx)
            ),
            OK
        );
        assert_eq!(phx_socket_connect(s), OK);
        assert!(wait_until(T, || ctx.results.lock().unwrap().len() == 7));
        let wrong = phx_status_t::PHX_ERR_WRONG_THREAD;
        let results = ctx.results.lock().unwrap().clone();
        assert_eq!(
            results,
            vec![
                ("connect_wait", wrong),
                ("join_wait", wrong),
                ("push_wait", wrong),
                ("leave_wait", wrong),
                ("next_event", wrong),
                ("try_event", OK),
                ("join", OK),
            ]
        );
        // The join started from the callback completes.
        let mut st = 0;
        assert!(wait_until(T, || {
            phx_channel_state(ch, &mut st);
            st == JOINED
        }));
        phx_channel_free(ch);
        phx_socket_free(s);
        assert_eq!(ctx.freed.load(Ordering::SeqCst), 1);
    }
}

/// Frees the socket from inside its own state callback.
unsafe extern "C" fn free_inside_state(ud: *mut c_void, state: u32, _r: *const phx_reason_t) {
    let ctx = &*(ud as *const Ctx);
    ctx.calls.fetch_add(1, Ordering::SeqCst);
    if state == CONNECTED {
        let mut s = ctx.socket.lock().unwrap();
        if *s != 0 {
            phx_socket_free(*s as *mut phx_socket_t);
            *s = 0;
            ctx.results.lock().unwrap().push(("freed", OK));
        }
    }
}

#[test]
fn socket_free_inside_its_own_state_callback() {
    let server = Server::start();
    unsafe {
        let s = socket(&server.url);
        let ch = channel(s, "room:x");
        assert_eq!(phx_channel_join(ch, null(), 0, None, null_mut()), OK);
        let crec = record_channel(ch);
        let pending = Recorder::new();
        assert_eq!(
            phx_channel_push(
                ch,
                c("noreply").as_ptr(),
                c("{}").as_ptr(),
                0,
                Some(on_reply_once),
                pending.user_data()
            ),
            OK
        );
        let ctx = Arc::new(Ctx {
            socket: Mutex::new(s as usize),
            channel: Mutex::new(0),
            results: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            freed: AtomicUsize::new(0),
        });
        let h = phx_socket_handler_t {
            on_state: Some(free_inside_state),
            on_log: None,
        };
        assert_eq!(
            phx_socket_set_handler(
                s,
                &h,
                Arc::into_raw(ctx.clone()) as *mut c_void,
                Some(free_ctx)
            ),
            OK
        );
        assert_eq!(phx_socket_connect(s), OK);
        assert!(wait_until(T, || !ctx.results.lock().unwrap().is_empty()));
        // Right after the callback returned: handlers released, the pending push closed.
        assert!(wait_until(T, || ctx.freed.load(Ordering::SeqCst) == 1));
        assert!(wait_until(T, || crec.frees.load(Ordering::SeqCst) == 1));
        let closed = phx_status_t::PHX_ERR_CLOSED as u32;
        assert!(pending.wait_for(T, |x| *x == Seen::Reply(closed, None)));
        let calls = ctx.calls.load(Ordering::SeqCst);
        let channel_calls = crec.snapshot().len();
        // An absence (no late callback, no second completion) has no event to await: it can
        // only be shown by watching for a while.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(ctx.calls.load(Ordering::SeqCst), calls);
        assert_eq!(crec.snapshot().len(), channel_calls);
        assert_eq!(ctx.freed.load(Ordering::SeqCst), 1);
        assert_eq!(pending.count(|_| true), 1, "completed exactly once");
        // The channel handle is still valid.
        assert_eq!(
            phx_channel_push(ch, c("e").as_ptr(), c("{}").as_ptr(), 0, None, null_mut()),
            phx_status_t::PHX_ERR_CLOSED
        );
        phx_channel_free(ch);
    }
}

#[test]
fn no_callback_runs_after_socket_free_returns() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        let srec = record_socket(s);
        let wake = Recorder::new();
        assert_eq!(
            phx_socket_events_enable(s, 4, Some(on_wake), wake.user_data(), Some(free_recorder)),
            OK
        );
        let ch = joined(s, "room:busy");
        let crec = record_channel(ch);
        let pending = Recorder::new();
        assert_eq!(
            phx_channel_push(
                ch,
                c("noreply").as_ptr(),
                c("{}").as_ptr(),
                0,
                Some(on_reply_once),
                pending.user_data()
            ),
            OK
        );
        // Keep messages flowing while the socket is freed.
        for _ in 0..20 {
            assert_eq!(
                phx_channel_push(
                    ch,
                    c("flood").as_ptr(),
                    c(r#"{"n":200}"#).as_ptr(),
                    0,
                    None,
                    null_mut()
                ),
                OK
            );
        }
        assert!(crec.wait_for(T, |x| matches!(x, Seen::Message { .. })));
        phx_socket_free(s);
        // Everything was released and completed before phx_socket_free returned.
        assert_eq!(srec.frees.load(Ordering::SeqCst), 1);
        assert_eq!(crec.frees.load(Ordering::SeqCst), 1);
        assert_eq!(wake.frees.load(Ordering::SeqCst), 1);
        let closed = phx_status_t::PHX_ERR_CLOSED as u32;
        assert_eq!(pending.snapshot(), vec![Seen::Reply(closed, None)]);
        let counts = (
            srec.snapshot().len(),
            crec.snapshot().len(),
            wake.snapshot().len(),
        );
        // No callback after free: an absence, shown only by watching for a while.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            counts,
            (
                srec.snapshot().len(),
                crec.snapshot().len(),
                wake.snapshot().len()
            )
        );
        for r in [&srec, &crec, &wake, &pending] {
            assert_eq!(Arc::strong_count(r), 1);
        }
        phx_channel_free(ch);
    }
}

#[test]
fn disconnect_fails_pending_operations_at_once() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        let ch = joined(s, "room:pending");
        let pending = Recorder::new();
        assert_eq!(
            phx_channel_push(
                ch,
                c("noreply").as_ptr(),
                c("{}").as_ptr(),
                60_000,
                Some(on_reply_once),
                pending.user_data()
            ),
            OK
        );
        assert_eq!(phx_socket_disconnect(s), OK);
        let closed = phx_status_t::PHX_ERR_CLOSED as u32;
        assert!(pending.wait_for(Duration::from_secs(1), |x| *x == Seen::Reply(closed, None)));
        let mut state = 9;
        assert!(wait_until(T, || {
            assert_eq!(phx_socket_state(s, &mut state), OK);
            state == phx_socket_state_t::PHX_SOCKET_DISCONNECTED as u32
        }));
        let mut reason = std::mem::zeroed::<phx_reason_t>();
        assert_eq!(phx_socket_last_reason(s, &mut reason), OK);
        assert_eq!(
            reason.kind,
            phx_reason_kind_t::PHX_REASON_CLIENT_CLOSED as u32
        );
        // It connects again.
        assert_eq!(phx_socket_connect_wait(s, 5000), OK);
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

static COMPLETIONS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_completion(ud: *mut c_void, _status: u32, _r: *const phx_reply_t) {
    let n = &*(ud as *const AtomicUsize);
    n.fetch_add(1, Ordering::SeqCst);
    COMPLETIONS.fetch_add(1, Ordering::SeqCst);
}

/// Operations racing with phx_socket_free: every one accepted (`PHX_OK`) completes exactly
/// once, every one refused never does.
#[test]
fn operations_racing_with_socket_free_complete_exactly_once() {
    let server = Server::start();
    for round in 0..20 {
        unsafe {
            let s = connected(&server.url);
            let ch = joined(s, "echo:race");
            let addr = ch as usize;
            let pusher = std::thread::spawn(move || {
                let ch = addr as *mut phx_channel_t;
                let mut counters = Vec::new();
                loop {
                    let n = Box::into_raw(Box::new(AtomicUsize::new(0)));
                    let st = phx_channel_push(
                        ch,
                        c("e").as_ptr(),
                        c("{}").as_ptr(),
                        0,
                        Some(count_completion),
                        n as *mut c_void,
                    );
                    counters.push((st, n as usize));
                    if st == phx_status_t::PHX_ERR_CLOSED {
                        return counters;
                    }
                    assert_eq!(st, OK);
                }
            });
            // Not synchronisation: a varying head start, so the free lands at a different
            // point of the push stream each round.
            std::thread::sleep(Duration::from_millis(5 + round % 7));
            phx_socket_free(s);
            let counters = pusher.join().unwrap();
            // Completions of operations accepted just before the free may still be on their
            // way (they race with it); each arrives exactly once.
            let counters: Vec<(phx_status_t, Box<AtomicUsize>)> = counters
                .into_iter()
                .map(|(st, n)| (st, Box::from_raw(n as *mut AtomicUsize)))
                .collect();
            let expected = counters.iter().filter(|(st, _)| *st == OK).count();
            let total = || {
                counters
                    .iter()
                    .map(|(_, n)| n.load(Ordering::SeqCst))
                    .sum::<usize>()
            };
            assert!(wait_until(T, || total() >= expected), "round {round}");
            // A second completion would come after the first: watch a while (an absence).
            std::thread::sleep(Duration::from_millis(20));
            for (st, n) in &counters {
                let times = n.load(Ordering::SeqCst);
                assert_eq!(
                    times,
                    usize::from(*st == OK),
                    "round {round}: {st:?} completed {times} times"
                );
            }
            phx_channel_free(ch);
        }
    }
}

#[cfg(feature = "tls")]
#[test]
fn wss_with_a_private_ca_set_through_the_options() {
    let server = Server::start_tls();
    assert!(server.url.starts_with("wss://"));
    unsafe {
        let opts = phx_options_new();
        assert_eq!(phx_options_set_ca_pem(opts, std::ptr::null()), INVALID);
        assert_eq!(
            phx_options_set_ca_pem(opts, c("not a certificate").as_ptr()),
            INVALID
        );
        let pem = c(&server.cert_pem());
        assert_eq!(phx_options_set_ca_pem(opts, pem.as_ptr()), OK);
        let url = c(&server.url);
        let mut s = null_mut();
        assert_eq!(phx_socket_new(url.as_ptr(), opts, &mut s), OK);
        phx_options_free(opts);
        assert_eq!(phx_socket_connect_wait(s, 5000), OK);
        let ch = channel(s, "room:lobby");
        assert_eq!(
            phx_channel_join_wait(ch, std::ptr::null(), 0, null_mut()),
            OK
        );
        let mut r = null_mut();
        let payload = c(r#"{"over":"tls"}"#);
        let st = phx_channel_push_wait(ch, c("echo").as_ptr(), payload.as_ptr(), 0, &mut r);
        assert_eq!(st, OK);
        let (_, _, body) = response(r);
        assert_eq!(body, payload.as_bytes());
        phx_channel_free(ch);
        phx_socket_free(s);

        // Without the CA the certificate is refused and the reason says so.
        let mut s = null_mut();
        assert_eq!(phx_socket_new(url.as_ptr(), std::ptr::null(), &mut s), OK);
        assert_ne!(phx_socket_connect_wait(s, 300), OK);
        let mut reason = std::mem::zeroed::<phx_reason_t>();
        assert_eq!(phx_socket_last_reason(s, &mut reason), OK);
        let text = std::ffi::CStr::from_ptr(reason.text.as_ptr())
            .to_string_lossy()
            .into_owned();
        assert!(text.contains("certificate"), "{text}");
        phx_socket_free(s);
    }
}

const STATE: phx_status_t = phx_status_t::PHX_ERR_STATE;

unsafe fn channel_state_of(ch: *mut phx_channel_t) -> u32 {
    let mut st = 99;
    assert_eq!(phx_channel_state(ch, &mut st), OK);
    st
}

unsafe fn socket_state_of(s: *mut phx_socket_t) -> u32 {
    let mut st = 99;
    assert_eq!(phx_socket_state(s, &mut st), OK);
    st
}

/// The seed's recipe after an intentional disconnect, from C: every effect is visible when
/// `phx_socket_disconnect` returns, and `phx_socket_connect_wait` right after it connects.
#[test]
fn disconnect_takes_effect_before_it_returns() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        for round in 0..20 {
            let ch = joined(s, "room:lobby");
            let rec = Recorder::new();
            assert_eq!(phx_socket_disconnect(s), OK);
            let disconnected = phx_socket_state_t::PHX_SOCKET_DISCONNECTED as u32;
            assert_eq!(socket_state_of(s), disconnected, "round {round}");
            let closed = phx_channel_state_t::PHX_CHANNEL_CLOSED as u32;
            assert_eq!(channel_state_of(ch), closed, "round {round}");
            let st = phx_channel_push(
                ch,
                c("echo").as_ptr(),
                c("{}").as_ptr(),
                0,
                Some(on_reply_once),
                rec.user_data(),
            );
            assert_eq!(st, STATE, "round {round}: push() fails at once");
            drop(Arc::from_raw(Arc::as_ptr(&rec))); // the reference the refused call kept
            let fresh = channel(s, "room:lobby");
            assert_ne!(fresh, ch, "round {round}: a fresh instance");
            assert_ne!(phx_channel_id(fresh), phx_channel_id(ch));
            assert_eq!(phx_socket_connect_wait(s, 5000), OK, "round {round}");
            assert_eq!(
                phx_channel_join_wait(fresh, null(), 5000, null_mut()),
                OK,
                "round {round}"
            );
            assert_eq!(phx_channel_leave_wait(fresh, 5000), OK);
            assert!(rec.snapshot().is_empty(), "a refused push never completes");
            phx_channel_free(ch);
            phx_channel_free(fresh);
        }
        phx_socket_free(s);
    }
}

/// A call that fails returns its status and never also completes: a second leave, a join
/// after a leave, on joined and never-joined channels, in every form.
#[test]
fn failing_calls_never_complete() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        assert_eq!(phx_socket_events_enable(s, 64, None, null_mut(), None), OK);
        let completions = Recorder::new();
        let cb = || (Some(on_reply_once as _), completions.user_data());
        let refused = |st: phx_status_t, ud: *mut c_void| {
            assert_eq!(st, STATE);
            drop(Arc::from_raw(ud as *const Recorder));
        };

        let never = channel(s, "room:never");
        let (f, ud) = cb();
        assert_eq!(phx_channel_leave(never, 0, f, ud), OK);
        let (f, ud) = cb();
        refused(phx_channel_leave(never, 0, f, ud), ud);
        let (f, ud) = cb();
        refused(phx_channel_join(never, null(), 0, f, ud), ud);
        assert_eq!(phx_channel_join_tagged(never, null(), 0, 7), STATE);
        assert_eq!(phx_channel_leave_tagged(never, 0, 8), STATE);
        let (ev, json) = (c("echo"), c("{}"));
        assert_eq!(
            phx_channel_push_tagged(never, ev.as_ptr(), json.as_ptr(), 0, 11),
            STATE
        );
        assert_eq!(
            phx_channel_push_binary_tagged(never, ev.as_ptr(), null(), 0, 0, 12),
            STATE
        );
        assert_eq!(phx_channel_join_wait(never, null(), 0, null_mut()), STATE);
        assert_eq!(phx_channel_leave_wait(never, 0), STATE);

        let ch = joined(s, "room:lobby");
        let (f, ud) = cb();
        assert_eq!(phx_channel_leave(ch, 0, f, ud), OK);
        let leaving = phx_channel_state_t::PHX_CHANNEL_LEAVING as u32;
        assert_eq!(channel_state_of(ch), leaving);
        let (f, ud) = cb();
        refused(phx_channel_leave(ch, 0, f, ud), ud);
        let (f, ud) = cb();
        refused(
            phx_channel_push(ch, c("echo").as_ptr(), c("{}").as_ptr(), 0, f, ud),
            ud,
        );
        assert_eq!(phx_channel_leave_tagged(ch, 0, 9), STATE);
        assert_eq!(
            phx_channel_push_tagged(ch, ev.as_ptr(), json.as_ptr(), 0, 13),
            STATE
        );
        assert_eq!(
            phx_channel_push_binary_tagged(ch, ev.as_ptr(), null(), 0, 0, 14),
            STATE
        );

        // Exactly the two accepted leaves complete, and no tagged reply is queued.
        assert!(wait_until(T, || completions.count(|_| true) == 2));
        assert!(completions
            .snapshot()
            .iter()
            .all(|x| *x == Seen::Reply(OK as u32, None) || matches!(x, Seen::Reply(0, Some(_)))));
        let mut others = Vec::new();
        let closed = next_matching(s, T, &mut others, |e| {
            e.kind == phx_event_kind_t::PHX_EVENT_CHANNEL_STATE as u32
                && e.state == phx_channel_state_t::PHX_CHANNEL_CLOSED as u32
                && e.channel_id == phx_channel_id(ch)
        });
        assert!(closed.is_some(), "the left channel closes");
        assert!(
            others
                .iter()
                .all(|e| e.kind != phx_event_kind_t::PHX_EVENT_REPLY as u32),
            "no tagged reply for a refused call: {others:?}"
        );
        phx_channel_free(never);
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

/// Events and tagged replies name the channel instance: the events of an old instance that
/// closed and of the fresh instance of the same topic that joined next are told apart.
#[test]
fn events_name_the_channel_instance() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        assert_eq!(phx_socket_events_enable(s, 256, None, null_mut(), None), OK);
        let old = joined(s, "room:lobby");
        let old_id = phx_channel_id(old);
        assert_ne!(old_id, 0);
        assert_eq!(phx_channel_id(null()), 0);
        assert_eq!(phx_channel_leave_tagged(old, 0, 1), OK);
        let mut seen = Vec::new();
        let is_reply = |e: &Ev| e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32;
        let left = next_matching(s, T, &mut seen, is_reply).expect("the leave completes");
        assert_eq!((left.tag, left.channel_id), (1, old_id));
        let fresh = channel(s, "room:lobby");
        let fresh_id = phx_channel_id(fresh);
        assert_ne!(fresh_id, old_id, "a new instance, a new id");
        assert_eq!(phx_channel_join_tagged(fresh, null(), 0, 2), OK);
        let joined = next_matching(s, T, &mut seen, is_reply).expect("the join completes");
        assert_eq!((joined.tag, joined.channel_id), (2, fresh_id));
        let states = |id: u64| -> Vec<u32> {
            seen.iter()
                .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_CHANNEL_STATE as u32)
                .filter(|e| e.channel_id == id)
                .map(|e| e.state)
                .collect()
        };
        use phx_channel_state_t::*;
        assert_eq!(
            states(old_id),
            [
                PHX_CHANNEL_JOINING,
                PHX_CHANNEL_JOINED,
                PHX_CHANNEL_LEAVING,
                PHX_CHANNEL_CLOSED
            ]
            .map(|s| s as u32)
        );
        assert_eq!(
            states(fresh_id),
            [PHX_CHANNEL_JOINING as u32, PHX_CHANNEL_JOINED as u32]
        );
        phx_channel_free(old);
        phx_channel_free(fresh);
        phx_socket_free(s);
    }
}

/// Handles of channels never joined release them: touching 1000 topics leaves nothing behind.
#[test]
fn freed_unjoined_channels_are_released() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        let kept = joined(s, "room:kept");
        for i in 0..1000 {
            let a = channel(s, &format!("room:t{i}"));
            let b = channel(s, &format!("room:t{i}"));
            assert_eq!(a, b);
            phx_channel_free(a);
            phx_channel_free(b);
        }
        assert!(wait_until(T, || phx::ffi::testing::tracked_channels(s) == (1, 1)));
        // A joined channel stays without handles, callbacks and all, and a new handle to it is
        // the same instance.
        let id = phx_channel_id(kept);
        phx_channel_free(kept);
        let again = channel(s, "room:kept");
        assert_eq!(phx_channel_id(again), id);
        assert_eq!(
            channel_state_of(again),
            phx_channel_state_t::PHX_CHANNEL_JOINED as u32
        );
        phx_channel_free(again);
        phx_socket_free(s);
    }
}

#[test]
fn presence_snapshots_from_c() {
    let server = Server::start();
    unsafe {
        let s = connected(&format!("{}?token=alice", server.url));
        let ch = joined(s, "presence:room1");
        let mut len = 0usize;
        assert!(wait_until(T, || {
            let mut p = null_mut();
            assert_eq!(phx_channel_presence(ch, &mut p), OK);
            assert_eq!(phx_presence_len(p, &mut len), OK);
            phx_presence_free(p);
            len == 1
        }));
        let mut p = null_mut();
        assert_eq!(phx_channel_presence(ch, &mut p), OK);
        let (mut key, mut key_len, mut metas, mut metas_len) = (null(), 0usize, null(), 0usize);
        assert_eq!(
            phx_presence_entry(p, 0, &mut key, &mut key_len, &mut metas, &mut metas_len),
            OK
        );
        assert_eq!(std::ffi::CStr::from_ptr(key).to_str().unwrap(), "alice");
        assert_eq!(key_len, 5);
        let metas = json(std::slice::from_raw_parts(metas, metas_len));
        assert_eq!(metas[0]["device"], "default");
        assert_eq!(
            phx_presence_entry(p, 1, &mut key, &mut key_len, &mut null(), &mut metas_len),
            phx_status_t::PHX_ERR_INVALID_ARGUMENT
        );
        let (mut text, mut text_len) = (null(), 0usize);
        assert_eq!(phx_presence_json(p, &mut text, &mut text_len), OK);
        let all = json(std::slice::from_raw_parts(text, text_len));
        assert_eq!(all["alice"]["metas"][0]["device"], "default");
        assert_eq!(
            phx_presence_len(null(), &mut len),
            phx_status_t::PHX_ERR_INVALID_ARGUMENT
        );
        phx_presence_free(p);
        phx_presence_free(null_mut());
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

/// The TLS options of the C surface: argument checks, a CA file, the root source, a client
/// identity, and the development-only mode without verification (which reaches the engine: it
/// connects to a server whose certificate nothing trusts).
#[cfg(feature = "tls")]
#[test]
fn tls_options_reach_the_socket() {
    let server = Server::start_tls();
    let url = c(&server.url);
    unsafe {
        let opts = phx_options_new();
        assert_eq!(phx_options_set_tls_roots(opts, 3), INVALID);
        assert_eq!(phx_options_set_tls_roots(null_mut(), 0), INVALID);
        assert_eq!(phx_options_set_ca_file(opts, null()), INVALID);
        assert_eq!(phx_options_set_ca_file(opts, c("").as_ptr()), INVALID);
        assert_eq!(
            phx_options_set_tls_insecure_skip_verify(null_mut(), 1),
            INVALID
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert, key) = (c(&cert.pem()), c(&key.serialize_pem()));
        assert_eq!(
            phx_options_set_client_cert_pem(opts, cert.as_ptr(), null()),
            INVALID
        );
        assert_eq!(
            phx_options_set_client_cert_pem(opts, cert.as_ptr(), c("not a key").as_ptr()),
            INVALID
        );
        assert_eq!(
            phx_options_set_client_cert_pem(opts, key.as_ptr(), key.as_ptr()),
            INVALID
        );
        assert_eq!(
            phx_options_set_client_cert_pem(opts, cert.as_ptr(), key.as_ptr()),
            OK
        );

        // Only configured roots and none configured: refused at creation.
        assert_eq!(phx_options_set_tls_roots(opts, 2), OK);
        let mut s = null_mut();
        assert_eq!(phx_socket_new(url.as_ptr(), opts, &mut s), INVALID);
        // A CA file that does not exist: refused at creation.
        assert_eq!(
            phx_options_set_ca_file(opts, c("/nonexistent/ca.pem").as_ptr()),
            OK
        );
        assert_eq!(phx_socket_new(url.as_ptr(), opts, &mut s), INVALID);
        // The server's certificate in a file: connects.
        let file = std::env::temp_dir().join(format!("phx-ffi-ca-{}.pem", std::process::id()));
        std::fs::write(&file, server.cert_pem()).unwrap();
        assert_eq!(
            phx_options_set_ca_file(opts, c(file.to_str().unwrap()).as_ptr()),
            OK
        );
        assert_eq!(phx_socket_new(url.as_ptr(), opts, &mut s), OK);
        phx_options_free(opts);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(phx_socket_connect_wait(s, 5000), OK);
        phx_socket_free(s);

        // Nothing trusts the server's certificate, but verification is off: connects.
        let opts = phx_options_new();
        assert_eq!(phx_options_set_tls_roots(opts, 1), OK);
        assert_eq!(phx_options_set_tls_insecure_skip_verify(opts, 1), OK);
        let mut s = null_mut();
        assert_eq!(phx_socket_new(url.as_ptr(), opts, &mut s), OK);
        phx_options_free(opts);
        assert_eq!(phx_socket_connect_wait(s, 5000), OK);
        phx_socket_free(s);
    }
}

/// Takes every queued event with `phx_socket_next_events`, `max` at a time, until `done`
/// says enough; checks each batch's count and ownership.
unsafe fn take_batches(
    s: *mut phx_socket_t,
    max: usize,
    mut done: impl FnMut(&[Ev]) -> bool,
) -> (Vec<Ev>, usize) {
    let mut got = Vec::new();
    let mut calls = 0;
    let mut buf = vec![null_mut(); max + 1];
    let sentinel = std::ptr::dangling_mut::<phx_event_t>();
    buf[max] = sentinel;
    while !done(&got) {
        let mut n = usize::MAX;
        let st = phx_socket_next_events(s, buf.as_mut_ptr(), max, 5000, &mut n);
        assert_eq!(st, OK, "an event within 5 s");
        assert!((1..=max).contains(&n), "{n}");
        assert_eq!(buf[max], sentinel, "nothing written past max");
        calls += 1;
        for &e in &buf[..n] {
            got.push(take_event(e));
        }
    }
    (got, calls)
}

/// The batched take hands out events in order, at most `max` per call, each owned by the
/// caller; the wake callback runs at most once per event (once per batch of the socket's
/// task); its errors write 0 events.
#[test]
fn events_are_taken_in_batches() {
    let server = Server::start();
    unsafe {
        let s = connected(&server.url);
        let mut n = 7usize;
        let mut buf = [null_mut(); 4];
        assert_eq!(
            phx_socket_next_events(s, buf.as_mut_ptr(), 4, 0, &mut n),
            phx_status_t::PHX_ERR_STATE
        );
        assert_eq!(n, 0);
        let wake = Recorder::new();
        assert_eq!(
            phx_socket_events_enable(
                s,
                4096,
                Some(on_wake),
                wake.user_data(),
                Some(free_recorder)
            ),
            OK
        );
        assert_eq!(
            phx_socket_next_events(s, buf.as_mut_ptr(), 0, 0, &mut n),
            INVALID
        );
        assert_eq!(phx_socket_next_events(s, null_mut(), 4, 0, &mut n), INVALID);
        assert_eq!(
            phx_socket_next_events(s, buf.as_mut_ptr(), 4, 0, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_socket_next_events(s, buf.as_mut_ptr(), 4, 0, &mut n),
            phx_status_t::PHX_ERR_AGAIN
        );
        assert_eq!(n, 0);

        let ch = channel(s, "room:batches");
        assert_eq!(phx_channel_join_tagged(ch, null(), 0, 1), OK);
        assert_eq!(
            phx_channel_push_tagged(ch, c("flood").as_ptr(), c(r#"{"n":1000}"#).as_ptr(), 0, 2),
            OK
        );
        let (got, calls) = take_batches(s, 64, |got| {
            got.iter()
                .any(|e| e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32 && e.tag == 2)
        });
        let messages: Vec<serde_json::Value> = got
            .iter()
            .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_MESSAGE as u32)
            .map(|e| json(e.payload.as_ref().unwrap())["i"].clone())
            .collect();
        assert_eq!(
            messages,
            (1..=1000).collect::<Vec<u64>>(),
            "in order, none lost"
        );
        assert!(calls <= got.len());
        let wakes = wake.count(|x| *x == Seen::Wake);
        assert!(wakes >= 1 && wakes <= got.len(), "{wakes} wakes");
        // `phx_events_free` frees a batch.
        assert_eq!(
            phx_channel_push_tagged(ch, c("flood").as_ptr(), c(r#"{"n":3}"#).as_ptr(), 0, 3),
            OK
        );
        let mut seen = 0;
        while seen < 4 {
            let mut n = 0;
            assert_eq!(
                phx_socket_next_events(s, buf.as_mut_ptr(), 4, 5000, &mut n),
                OK
            );
            seen += n;
            phx_events_free(buf.as_ptr(), n);
        }
        phx_events_free(null(), 0);
        phx_channel_free(ch);
        phx_socket_free(s);
        assert_eq!(wake.frees.load(Ordering::SeqCst), 1);
    }
}

/// The event queue is bounded in bytes too: a consumer that does not take events holds at
/// most about `max_event_queue_bytes`; the rest is dropped and reported by one overflow event
/// with the count, and the tagged reply is kept.
#[test]
fn the_event_queue_is_bounded_in_bytes() {
    let server = Server::start();
    unsafe {
        let o = phx_options_new();
        assert_eq!(phx_options_set_max_event_queue_bytes(o, 16 << 10), OK);
        let mut s = null_mut();
        assert_eq!(phx_socket_new(c(&server.url).as_ptr(), o, &mut s), OK);
        phx_options_free(o);
        assert_eq!(phx_socket_connect_wait(s, 5000), OK);
        assert_eq!(
            phx_socket_events_enable(s, 100_000, None, null_mut(), None),
            OK
        );
        let ch = channel(s, "echo:bytes");
        assert_eq!(phx_channel_join_tagged(ch, null(), 0, 1), OK);
        // 20 replies of 4 KiB each: never dropped, whatever the bound.
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
        for tag in 2..22 {
            assert_eq!(
                phx_channel_push_tagged(ch, c("e").as_ptr(), c(&big).as_ptr(), 0, tag),
                OK
            );
        }
        let flood = joined(s, "room:bytes");
        assert_eq!(
            phx_channel_push_tagged(
                flood,
                c("flood").as_ptr(),
                c(r#"{"n":500}"#).as_ptr(),
                0,
                22
            ),
            OK
        );
        let (got, _) = take_batches(s, 32, |got| {
            got.iter()
                .any(|e| e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32 && e.tag == 22)
        });
        let tags: Vec<u64> = got
            .iter()
            .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_REPLY as u32)
            .map(|e| e.tag)
            .collect();
        assert_eq!(tags, (1..=22).collect::<Vec<u64>>());
        let messages = got
            .iter()
            .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_MESSAGE as u32)
            .count() as u64;
        let dropped: u64 = got
            .iter()
            .filter(|e| e.kind == phx_event_kind_t::PHX_EVENT_OVERFLOW as u32)
            .map(|e| e.dropped)
            .sum();
        assert!(
            dropped > 0,
            "a 16 KiB queue cannot hold 500 messages and 80 KiB of replies"
        );
        // Every message is delivered or counted (state events dropped are counted too).
        assert!(
            messages < 500 && messages + dropped >= 500,
            "{messages} {dropped}"
        );
        phx_channel_free(flood);
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}
