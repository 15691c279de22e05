//! The C surface's argument checking and the cases that need no server: NULL everywhere,
//! invalid UTF-8 and JSON, oversize binary fields, option values, status texts, handler
//! registrations, the event queue's empty-state behaviour, and handles outliving their socket.

mod ffi_common;

use ffi_common::*;
use phx::ffi::*;
use std::ffi::{c_char, c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const STATE: phx_status_t = phx_status_t::PHX_ERR_STATE;
const CLOSED: phx_status_t = phx_status_t::PHX_ERR_CLOSED;
const AGAIN: phx_status_t = phx_status_t::PHX_ERR_AGAIN;

/// Nobody listens here: connection attempts fail at once.
const DEAD_URL: &str = "ws://127.0.0.1:1/socket/websocket";

#[test]
fn null_to_every_function() {
    unsafe {
        let s = socket(DEAD_URL);
        let ch = channel(s, "room:lobby");
        let opts = phx_options_new();
        let topic = c("room:lobby");
        let ev = c("echo");
        let json = c("{}");
        let mut u32_out = 0u32;
        let mut fd_out = 0i32;
        let mut reason = std::mem::zeroed::<phx_reason_t>();

        // Options.
        assert_eq!(
            phx_options_set_params_json(null_mut(), json.as_ptr()),
            INVALID
        );
        assert_eq!(phx_options_set_params_json(opts, null()), INVALID);
        assert_eq!(phx_options_set_heartbeat_ms(null_mut(), 1), INVALID);
        assert_eq!(
            phx_options_set_reconnect_schedule_ms(null_mut(), [1u64].as_ptr(), 1),
            INVALID
        );
        assert_eq!(
            phx_options_set_reconnect_schedule_ms(opts, null(), 1),
            INVALID
        );
        assert_eq!(
            phx_options_set_rejoin_schedule_ms(null_mut(), [1u64].as_ptr(), 1),
            INVALID
        );
        assert_eq!(phx_options_set_rejoin_schedule_ms(opts, null(), 3), INVALID);
        assert_eq!(phx_options_set_timeout_ms(null_mut(), 1), INVALID);
        assert_eq!(phx_options_set_leave_timeout_ms(null_mut(), 1), INVALID);
        assert_eq!(phx_options_set_connect_timeout_ms(null_mut(), 1), INVALID);

        // Sockets.
        let mut out_s = null_mut();
        assert_eq!(phx_socket_new(null(), null(), &mut out_s), INVALID);
        assert_eq!(
            phx_socket_new(c(DEAD_URL).as_ptr(), null(), null_mut()),
            INVALID
        );
        assert!(out_s.is_null(), "outputs are written only on PHX_OK");
        assert_eq!(phx_socket_connect(null_mut()), INVALID);
        assert_eq!(phx_socket_connect_wait(null_mut(), 1), INVALID);
        assert_eq!(phx_socket_disconnect(null_mut()), INVALID);
        assert_eq!(phx_socket_state(null(), &mut u32_out), INVALID);
        assert_eq!(phx_socket_state(s, null_mut()), INVALID);
        assert_eq!(phx_socket_last_reason(null(), &mut reason), INVALID);
        assert_eq!(phx_socket_last_reason(s, null_mut()), INVALID);
        assert_eq!(
            phx_socket_set_handler(null_mut(), null(), null_mut(), None),
            INVALID
        );
        let mut out_c = null_mut();
        assert_eq!(
            phx_socket_channel(null_mut(), topic.as_ptr(), &mut out_c),
            INVALID
        );
        assert_eq!(phx_socket_channel(s, null(), &mut out_c), INVALID);
        assert_eq!(phx_socket_channel(s, topic.as_ptr(), null_mut()), INVALID);
        assert!(out_c.is_null());

        // Channels.
        assert_eq!(phx_channel_state(null(), &mut u32_out), INVALID);
        assert_eq!(phx_channel_state(ch, null_mut()), INVALID);
        assert_eq!(
            phx_channel_set_handler(null_mut(), null(), null_mut(), None),
            INVALID
        );
        assert_eq!(
            phx_channel_join(null_mut(), json.as_ptr(), 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push(null_mut(), ev.as_ptr(), json.as_ptr(), 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push(ch, null(), json.as_ptr(), 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push(ch, ev.as_ptr(), null(), 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_binary(null_mut(), ev.as_ptr(), null(), 0, 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_binary(ch, null(), null(), 0, 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_binary(ch, ev.as_ptr(), null(), 3, 0, None, null_mut()),
            INVALID
        );
        assert_eq!(phx_channel_leave(null_mut(), 0, None, null_mut()), INVALID);

        // Blocking.
        assert_eq!(
            phx_channel_join_wait(null_mut(), null(), 0, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_wait(null_mut(), ev.as_ptr(), json.as_ptr(), 0, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_wait(ch, null(), json.as_ptr(), 0, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_wait(ch, ev.as_ptr(), null(), 0, null_mut()),
            INVALID
        );
        assert_eq!(phx_channel_leave_wait(null_mut(), 0), INVALID);

        // Events.
        assert_eq!(
            phx_socket_events_enable(null_mut(), 8, None, null_mut(), None),
            INVALID
        );
        assert_eq!(phx_socket_event_fd(null_mut(), &mut fd_out), INVALID);
        let mut e = null_mut();
        assert_eq!(phx_socket_next_event(null_mut(), 0, &mut e), INVALID);
        assert_eq!(phx_socket_try_event(null_mut(), &mut e), INVALID);
        assert_eq!(phx_socket_events_enable(s, 8, None, null_mut(), None), OK);
        assert_eq!(phx_socket_event_fd(s, null_mut()), INVALID);
        assert_eq!(phx_socket_next_event(s, 0, null_mut()), INVALID);
        assert_eq!(phx_socket_try_event(s, null_mut()), INVALID);
        assert_eq!(phx_channel_join_tagged(null_mut(), null(), 0, 1), INVALID);
        assert_eq!(
            phx_channel_push_tagged(null_mut(), ev.as_ptr(), json.as_ptr(), 0, 1),
            INVALID
        );
        assert_eq!(
            phx_channel_push_tagged(ch, null(), json.as_ptr(), 0, 1),
            INVALID
        );
        assert_eq!(
            phx_channel_push_tagged(ch, ev.as_ptr(), null(), 0, 1),
            INVALID
        );
        assert_eq!(
            phx_channel_push_binary_tagged(null_mut(), ev.as_ptr(), null(), 0, 0, 1),
            INVALID
        );
        assert_eq!(
            phx_channel_push_binary_tagged(ch, ev.as_ptr(), null(), 1, 0, 1),
            INVALID
        );
        assert_eq!(phx_channel_leave_tagged(null_mut(), 0, 1), INVALID);
        assert!(e.is_null());

        // Frees accept NULL.
        phx_options_free(null_mut());
        phx_socket_free(null_mut());
        phx_channel_free(null_mut());
        phx_event_free(null_mut());
        phx_response_free(null_mut());

        // Nothing was consumed or changed by the failures.
        assert_eq!(phx_channel_state(ch, &mut u32_out), OK);
        assert_eq!(u32_out, phx_channel_state_t::PHX_CHANNEL_CLOSED as u32);
        phx_options_free(opts);
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

#[test]
fn invalid_utf8_is_an_invalid_argument() {
    let bad: &[u8] = b"room:\xff\xfe\0";
    let bad = bad.as_ptr() as *const c_char;
    unsafe {
        let mut s = null_mut();
        assert_eq!(phx_socket_new(bad, null(), &mut s), INVALID);
        let opts = phx_options_new();
        assert_eq!(phx_options_set_params_json(opts, bad), INVALID);
        phx_options_free(opts);

        let s = socket(DEAD_URL);
        let mut ch = null_mut();
        assert_eq!(phx_socket_channel(s, bad, &mut ch), INVALID);
        let ch = channel(s, "room:lobby");
        assert_eq!(phx_channel_join(ch, bad, 0, None, null_mut()), INVALID);
        assert_eq!(
            phx_channel_push(ch, bad, c("{}").as_ptr(), 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push(ch, c("e").as_ptr(), bad, 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_binary(ch, bad, null(), 0, 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_wait(ch, bad, c("{}").as_ptr(), 0, null_mut()),
            INVALID
        );
        // A join that failed on its arguments was not started: joining still works.
        let mut state = 9;
        assert_eq!(phx_channel_state(ch, &mut state), OK);
        assert_eq!(state, phx_channel_state_t::PHX_CHANNEL_CLOSED as u32);
        assert_eq!(phx_channel_join(ch, null(), 0, None, null_mut()), OK);
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

#[test]
fn invalid_json_is_an_invalid_argument() {
    unsafe {
        let opts = phx_options_new();
        for bad in [
            "",
            "{",
            "[1]",
            "\"x\"",
            "{\"a\":null}",
            "{\"a\":[1]}",
            "{\"a\":{}}",
        ] {
            assert_eq!(
                phx_options_set_params_json(opts, c(bad).as_ptr()),
                INVALID,
                "{bad}"
            );
        }
        assert_eq!(
            phx_options_set_params_json(opts, c(r#"{"token":"t","n":1,"b":true}"#).as_ptr()),
            OK
        );
        phx_options_free(opts);

        let s = socket(DEAD_URL);
        let ch = channel(s, "room:lobby");
        assert_eq!(
            phx_channel_join(ch, c("{nope").as_ptr(), 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_join_wait(ch, c("{nope").as_ptr(), 0, null_mut()),
            INVALID
        );
        assert_eq!(phx_socket_events_enable(s, 4, None, null_mut(), None), OK);
        assert_eq!(
            phx_channel_join_tagged(ch, c("{nope").as_ptr(), 0, 7),
            INVALID
        );
        assert_eq!(
            phx_channel_join(ch, c(r#"{"ok":1}"#).as_ptr(), 0, None, null_mut()),
            OK
        );
        assert_eq!(
            phx_channel_push(ch, c("e").as_ptr(), c("{,}").as_ptr(), 0, None, null_mut()),
            INVALID
        );
        assert_eq!(
            phx_channel_push_tagged(ch, c("e").as_ptr(), c("nul").as_ptr(), 0, 1),
            INVALID
        );
        assert_eq!(
            phx_channel_push_wait(ch, c("e").as_ptr(), c("[").as_ptr(), 0, null_mut()),
            INVALID
        );
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

#[test]
fn binary_fields_over_255_bytes_are_invalid() {
    unsafe {
        let s = socket(DEAD_URL);
        let ch = channel(s, "room:lobby");
        assert_eq!(phx_channel_join(ch, null(), 0, None, null_mut()), OK);
        let long = c(&"e".repeat(256));
        let fits = c(&"e".repeat(255));
        let data = [1u8, 2, 3];
        assert_eq!(
            phx_channel_push_binary(ch, long.as_ptr(), data.as_ptr(), 3, 0, None, null_mut()),
            INVALID
        );
        assert_eq!(phx_socket_events_enable(s, 4, None, null_mut(), None), OK);
        assert_eq!(
            phx_channel_push_binary_tagged(ch, long.as_ptr(), data.as_ptr(), 3, 0, 1),
            INVALID
        );
        assert_eq!(
            phx_channel_push_binary(ch, fits.as_ptr(), data.as_ptr(), 3, 0, None, null_mut()),
            OK
        );
        // (NULL, 0) is an empty payload.
        assert_eq!(
            phx_channel_push_binary(ch, fits.as_ptr(), null(), 0, 0, None, null_mut()),
            OK
        );
        // A topic over 255 bytes cannot carry binary pushes either.
        let long_topic = channel(s, &format!("room:{}", "t".repeat(260)));
        assert_eq!(
            phx_channel_join(long_topic, null(), 0, None, null_mut()),
            OK
        );
        assert_eq!(
            phx_channel_push_binary(
                long_topic,
                c("e").as_ptr(),
                data.as_ptr(),
                3,
                0,
                None,
                null_mut()
            ),
            INVALID
        );
        // JSON pushes have no such limit.
        assert_eq!(
            phx_channel_push(
                long_topic,
                long.as_ptr(),
                c("{}").as_ptr(),
                0,
                None,
                null_mut()
            ),
            OK
        );
        phx_channel_free(long_topic);
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

#[test]
fn status_str_for_every_value() {
    let mut texts = std::collections::HashSet::new();
    for v in 0..=14u32 {
        let t = unsafe { CStr::from_ptr(phx_status_str(v)) }
            .to_str()
            .unwrap();
        assert!(!t.is_empty() && t != "unknown status", "{v}");
        assert!(texts.insert(t), "duplicate text for {v}");
    }
    assert_eq!(
        unsafe { CStr::from_ptr(phx_status_str(11)) }
            .to_str()
            .unwrap(),
        "internal error"
    );
    assert_eq!(
        unsafe { CStr::from_ptr(phx_status_str(0)) }
            .to_str()
            .unwrap(),
        "ok"
    );
    for v in [15, 100, u32::MAX] {
        let t = unsafe { CStr::from_ptr(phx_status_str(v)) }
            .to_str()
            .unwrap();
        assert_eq!(t, "unknown status");
    }
    // The values are the documented ones.
    use phx_status_t::*;
    let expected = [
        (PHX_OK, 0),
        (PHX_ERR_REPLY, 1),
        (PHX_ERR_TIMEOUT, 2),
        (PHX_ERR_DISCONNECTED, 3),
        (PHX_ERR_CHANNEL_ERRORED, 4),
        (PHX_ERR_CLOSED, 5),
        (PHX_ERR_LEFT_BEFORE_JOIN, 6),
        (PHX_ERR_STATE, 7),
        (PHX_ERR_INVALID_ARGUMENT, 8),
        (PHX_ERR_WRONG_THREAD, 9),
        (PHX_ERR_AGAIN, 10),
        (PHX_ERR_INTERNAL, 11),
        (PHX_ERR_QUEUE_FULL, 12),
        (PHX_ERR_BUFFER_FULL, 13),
        (PHX_ERR_TOO_MANY_CHANNELS, 14),
    ];
    for (s, v) in expected {
        assert_eq!(s as u32, v);
    }
}

#[test]
fn option_values_are_checked() {
    unsafe {
        let o = phx_options_new();
        assert_eq!(phx_options_set_heartbeat_ms(o, 0), INVALID);
        assert_eq!(phx_options_set_timeout_ms(o, 0), INVALID);
        assert_eq!(phx_options_set_leave_timeout_ms(o, 0), INVALID);
        assert_eq!(phx_options_set_connect_timeout_ms(o, 0), INVALID);
        assert_eq!(phx_options_set_reconnect_schedule_ms(o, null(), 0), INVALID);
        assert_eq!(phx_options_set_rejoin_schedule_ms(o, null(), 0), INVALID);
        assert_eq!(phx_options_set_max_frame_size(o, 0), INVALID);
        assert_eq!(phx_options_set_max_write_queue_bytes(o, 0), INVALID);
        assert_eq!(phx_options_set_max_buffered_pushes(o, 0), INVALID);
        assert_eq!(phx_options_set_max_channels(o, 0), INVALID);
        assert_eq!(phx_options_set_max_event_queue_bytes(o, 0), INVALID);
        assert_eq!(phx_options_set_max_channels(null_mut(), 1), INVALID);
        assert_eq!(phx_options_set_heartbeat_ms(o, u64::MAX), OK, "clamped");
        assert_eq!(phx_options_set_timeout_ms(o, u64::MAX), OK);
        assert_eq!(
            phx_options_set_reconnect_schedule_ms(o, [0u64, u64::MAX].as_ptr(), 2),
            OK
        );
        let mut s = null_mut();
        assert_eq!(phx_socket_new(c(DEAD_URL).as_ptr(), o, &mut s), OK);
        phx_options_free(o); // copied: the socket does not need it
                             // A huge default timeout must not overflow a deadline.
        let ch = channel(s, "room:lobby");
        assert_eq!(phx_channel_join(ch, null(), 0, None, null_mut()), OK);
        assert_eq!(
            phx_channel_push(
                ch,
                c("e").as_ptr(),
                c("{}").as_ptr(),
                u64::MAX,
                None,
                null_mut()
            ),
            OK
        );
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

#[test]
fn bad_urls_are_invalid() {
    for url in [
        "",
        "http://localhost/socket",
        "not a url",
        "ws://",
        "tcp://x:1",
    ] {
        let mut s = null_mut();
        assert_eq!(
            unsafe { phx_socket_new(c(url).as_ptr(), null(), &mut s) },
            INVALID,
            "{url}"
        );
        assert!(s.is_null());
    }
}

#[test]
fn free_user_data_is_called_exactly_once() {
    unsafe {
        let s = socket(DEAD_URL);
        let h = socket_handler();
        let first = Recorder::new();
        let second = Recorder::new();
        assert_eq!(
            phx_socket_set_handler(s, &h, first.user_data(), Some(free_recorder)),
            OK
        );
        assert_eq!(first.frees.load(Ordering::SeqCst), 0);
        // Replacing releases the old registration.
        assert_eq!(
            phx_socket_set_handler(s, &h, second.user_data(), Some(free_recorder)),
            OK
        );
        assert!(wait_until(Duration::from_secs(2), || first
            .frees
            .load(Ordering::SeqCst)
            == 1));
        // Removing releases the current one; user_data is ignored with a NULL handler.
        assert_eq!(
            phx_socket_set_handler(
                s,
                null(),
                std::ptr::dangling_mut::<c_void>(),
                Some(free_recorder)
            ),
            OK
        );
        assert!(wait_until(Duration::from_secs(2), || second
            .frees
            .load(Ordering::SeqCst)
            == 1));

        // Freeing the socket releases the socket handler, every channel handler and the wake
        // registration, before phx_socket_free returns.
        let third = Recorder::new();
        assert_eq!(
            phx_socket_set_handler(s, &h, third.user_data(), Some(free_recorder)),
            OK
        );
        let ch = channel(s, "room:a");
        let ch_rec = record_channel(ch);
        let ch2 = channel(s, "room:b");
        let ch2_rec = record_channel(ch2);
        // Replacing a channel handler releases the old one.
        let ch2_next = record_channel(ch2);
        let wake = Recorder::new();
        assert_eq!(
            phx_socket_events_enable(s, 4, Some(on_wake), wake.user_data(), Some(free_recorder)),
            OK
        );
        // A second enable fails and consumes nothing.
        let unused = Recorder::new();
        assert_eq!(
            phx_socket_events_enable(s, 4, Some(on_wake), unused.user_data(), Some(free_recorder)),
            STATE
        );
        assert_eq!(unused.frees.load(Ordering::SeqCst), 0);
        free_recorder(unused.user_data()); // the reference the failed call did not take
        free_recorder(unused.user_data());
        assert_eq!(unused.frees.load(Ordering::SeqCst), 2);

        phx_socket_free(s);
        for r in [&first, &second, &third, &ch_rec, &ch2_rec, &ch2_next, &wake] {
            assert_eq!(r.frees.load(Ordering::SeqCst), 1);
            assert_eq!(
                std::sync::Arc::strong_count(r),
                1,
                "every reference was released"
            );
        }
        // Setting a handler on a channel of a freed socket fails and consumes nothing.
        let late = Recorder::new();
        let ch_h = channel_handler();
        assert_eq!(
            phx_channel_set_handler(ch, &ch_h, late.user_data(), Some(free_recorder)),
            CLOSED
        );
        assert_eq!(late.frees.load(Ordering::SeqCst), 0);
        free_recorder(late.user_data());
        free_recorder(late.user_data());
        phx_channel_free(ch);
        phx_channel_free(ch2);
        for r in [&first, &second, &third, &ch_rec, &ch2_rec, &ch2_next, &wake] {
            assert!(wait_until(Duration::from_secs(5), || r
                .frees
                .load(Ordering::SeqCst)
                >= 1));
            assert_eq!(r.frees.load(Ordering::SeqCst), 1);
        }
    }
}

#[test]
fn event_queue_when_empty() {
    unsafe {
        let s = socket(DEAD_URL);
        let mut e = null_mut();
        let mut fd = -1;
        assert_eq!(phx_socket_next_event(s, 0, &mut e), STATE);
        assert_eq!(phx_socket_try_event(s, &mut e), STATE);
        assert_eq!(phx_socket_event_fd(s, &mut fd), STATE);
        let ch = channel(s, "room:lobby");
        assert_eq!(
            phx_channel_join_tagged(ch, null(), 0, 1),
            STATE,
            "tagged needs events"
        );
        assert_eq!(
            phx_socket_events_enable(s, 0, None, null_mut(), None),
            INVALID
        );
        assert_eq!(phx_socket_events_enable(s, 16, None, null_mut(), None), OK);
        assert_eq!(
            phx_socket_events_enable(s, 16, None, null_mut(), None),
            STATE
        );
        assert_eq!(phx_socket_event_fd(s, &mut fd), OK);
        assert!(fd >= 0);
        assert!(!readable(fd));
        assert_eq!(phx_socket_try_event(s, &mut e), AGAIN);
        let start = Instant::now();
        assert_eq!(phx_socket_next_event(s, 60, &mut e), AGAIN);
        assert!(start.elapsed() >= Duration::from_millis(60));
        assert!(e.is_null());
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

/// Waits until `n` threads are blocked in a wait of socket `s`.
fn until_blocked(s: *mut phx_socket_t, n: usize) {
    let ok = wait_until(Duration::from_secs(5), || unsafe {
        phx::ffi::testing::blocked_waiters(s) == n
    });
    assert!(ok, "{n} waiter(s) never blocked");
}

/// Calls blocked in `phx_socket_next_event` and `phx_socket_connect_wait` when the socket is
/// freed return `PHX_ERR_CLOSED` (they hold what they use: run under ASan and valgrind by
/// the C suite's `free_while_waiting` too).
#[test]
fn blocked_calls_return_closed_when_the_socket_is_freed() {
    unsafe {
        for round in 0..20 {
            // Nothing happens on this socket: its queue stays empty.
            let quiet = socket(DEAD_URL);
            assert_eq!(
                phx_socket_events_enable(quiet, 4, None, null_mut(), None),
                OK
            );
            let addr = quiet as usize;
            let next = std::thread::spawn(move || {
                let mut e = null_mut();
                let st = phx_socket_next_event(addr as *mut phx_socket_t, u64::MAX, &mut e);
                (st, e.is_null())
            });
            let connecting = socket(DEAD_URL);
            let addr = connecting as usize;
            let connect = std::thread::spawn(move || {
                phx_socket_connect_wait(addr as *mut phx_socket_t, 60_000)
            });
            until_blocked(quiet, 1);
            until_blocked(connecting, 1);
            phx_socket_free(quiet);
            phx_socket_free(connecting);
            assert_eq!(next.join().unwrap(), (CLOSED, true), "round {round}");
            assert_eq!(connect.join().unwrap(), CLOSED, "round {round}");
        }
    }
}

#[test]
fn socket_events_and_overflow_without_a_server() {
    unsafe {
        let s = socket(DEAD_URL);
        assert_eq!(phx_socket_events_enable(s, 2, None, null_mut(), None), OK);
        let mut fd = -1;
        assert_eq!(phx_socket_event_fd(s, &mut fd), OK);
        let states = record_socket(s);
        // connecting, (reconnecting,) disconnected, three times: more than the queue holds.
        for _ in 0..3 {
            assert_eq!(phx_socket_connect(s), OK);
            assert_eq!(phx_socket_disconnect(s), OK);
        }
        // The socket callbacks run after the queue took (or dropped) each event.
        let disconnected = Seen::SocketState(
            phx_socket_state_t::PHX_SOCKET_DISCONNECTED as u32,
            Some((
                phx_reason_kind_t::PHX_REASON_CLIENT_CLOSED as u32,
                0,
                "closed by client".into(),
            )),
        );
        assert!(wait_until(Duration::from_secs(2), || {
            states.count(|e| *e == disconnected) == 3
        }));
        assert!(readable(fd));
        let mut got = Vec::new();
        loop {
            let mut e = null_mut();
            match phx_socket_try_event(s, &mut e) {
                phx_status_t::PHX_OK => got.push(take_event(e)),
                phx_status_t::PHX_ERR_AGAIN => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(!readable(fd), "drained: not readable");
        let kinds: Vec<u32> = got.iter().map(|e| e.kind).collect();
        let state = phx_event_kind_t::PHX_EVENT_SOCKET_STATE as u32;
        let overflow = phx_event_kind_t::PHX_EVENT_OVERFLOW as u32;
        assert_eq!(&kinds[..2], &[state, state], "{got:?}");
        assert_eq!(
            got[0].state,
            phx_socket_state_t::PHX_SOCKET_CONNECTING as u32
        );
        assert_eq!(kinds[2], overflow, "{got:?}");
        assert!(got[2].dropped >= 1);
        phx_socket_free(s);
    }
}

#[test]
fn channel_handles_outlive_their_socket() {
    unsafe {
        let s = socket(DEAD_URL);
        let a = channel(s, "room:lobby");
        let b = channel(s, "room:lobby");
        assert_eq!(a, b, "the same channel is the same handle");
        let other = channel(s, "room:other");
        assert_ne!(a, other);
        phx_channel_free(b);
        assert_eq!(phx_channel_join(a, null(), 0, None, null_mut()), OK);
        phx_socket_free(s);
        let mut st = 9;
        assert_eq!(phx_channel_state(a, &mut st), OK);
        assert_eq!(st, phx_channel_state_t::PHX_CHANNEL_CLOSED as u32);
        assert_eq!(
            phx_channel_push(a, c("e").as_ptr(), c("{}").as_ptr(), 0, None, null_mut()),
            CLOSED
        );
        assert_eq!(phx_channel_join(other, null(), 0, None, null_mut()), CLOSED);
        assert_eq!(phx_channel_leave(a, 0, None, null_mut()), CLOSED);
        assert_eq!(phx_channel_leave_wait(a, 0), CLOSED);
        assert_eq!(phx_channel_join_tagged(other, null(), 0, 1), CLOSED);
        phx_channel_free(a);
        phx_channel_free(other);
    }
}

#[test]
fn connect_wait_times_out_and_reports_the_reason() {
    unsafe {
        let s = socket(DEAD_URL);
        let mut reason = std::mem::zeroed::<phx_reason_t>();
        assert_eq!(phx_socket_last_reason(s, &mut reason), OK);
        assert_eq!(reason.kind, phx_reason_kind_t::PHX_REASON_NONE as u32);
        assert_eq!(reason.text_len, 0);
        let start = Instant::now();
        assert_eq!(
            phx_socket_connect_wait(s, 150),
            phx_status_t::PHX_ERR_TIMEOUT
        );
        assert!(start.elapsed() >= Duration::from_millis(150));
        let mut state = 9;
        assert_eq!(phx_socket_state(s, &mut state), OK);
        assert_eq!(state, phx_socket_state_t::PHX_SOCKET_RECONNECTING as u32);
        assert_eq!(phx_socket_last_reason(s, &mut reason), OK);
        assert_eq!(
            reason.kind,
            phx_reason_kind_t::PHX_REASON_IO as u32,
            "{}",
            text(reason.text.as_ptr())
        );
        assert_eq!(text(reason.text.as_ptr()).len(), reason.text_len);
        assert!(reason.text_len > 0);
        // A disconnect from another thread, made while the wait is under way, ends it with
        // PHX_ERR_CLOSED.
        let addr = s as usize;
        let waiter =
            std::thread::spawn(move || phx_socket_connect_wait(addr as *mut phx_socket_t, 5000));
        until_blocked(s, 1);
        assert_eq!(phx_socket_disconnect(s), OK);
        assert_eq!(waiter.join().unwrap(), CLOSED);
        phx_socket_free(s);
    }
}

/// The bounds set through the options reach the socket: with a limit of two channels the
/// third join fails at once with `PHX_ERR_TOO_MANY_CHANNELS` (the socket need not be
/// connected: a joining channel counts), and succeeds once the others are closed.
#[test]
fn the_channel_limit_is_set_through_the_options() {
    unsafe {
        let o = phx_options_new();
        assert_eq!(phx_options_set_max_channels(o, 2), OK);
        assert_eq!(phx_options_set_max_frame_size(o, 1 << 20), OK);
        assert_eq!(phx_options_set_max_write_queue_bytes(o, 1 << 20), OK);
        assert_eq!(phx_options_set_max_buffered_pushes(o, 8), OK);
        assert_eq!(phx_options_set_max_event_queue_bytes(o, 1 << 20), OK);
        let mut s = null_mut();
        assert_eq!(phx_socket_new(c(DEAD_URL).as_ptr(), o, &mut s), OK);
        phx_options_free(o);
        let chs: Vec<_> = ["room:a", "room:b", "room:c"]
            .iter()
            .map(|t| channel(s, t))
            .collect();
        assert_eq!(phx_channel_join(chs[0], null(), 0, None, null_mut()), OK);
        assert_eq!(phx_channel_join(chs[1], null(), 0, None, null_mut()), OK);
        assert_eq!(
            phx_channel_join(chs[2], null(), 0, None, null_mut()),
            phx_status_t::PHX_ERR_TOO_MANY_CHANNELS
        );
        // `disconnect` closes the joined channels before it returns: they no longer count.
        assert_eq!(phx_socket_disconnect(s), OK);
        assert_eq!(phx_channel_join(chs[2], null(), 0, None, null_mut()), OK);
        for ch in chs {
            phx_channel_free(ch);
        }
        phx_socket_free(s);
    }
}
