//! The C surface of presence callbacks and events, rejoin awareness, statistics, probes, log
//! records and the policy options, against phx-testserver.

mod ffi_common;

use ffi_common::*;
use phx::ffi::*;
use std::ffi::{c_char, c_void};
use std::ptr::{null, null_mut};
use std::sync::Mutex;
use std::time::Duration;

const T: Duration = Duration::from_secs(5);

/// An owned copy of the fields this file's events use.
#[derive(Debug, Clone)]
struct E {
    kind: u32,
    status: u32,
    tag: u64,
    topic: Option<String>,
    key: Option<String>,
    metas: Option<serde_json::Value>,
    payload: Option<serde_json::Value>,
    missed: u32,
    rtt_us: u64,
}

unsafe fn opt(p: *const c_char, len: usize) -> Option<String> {
    (!p.is_null()).then(|| {
        let t = text(p).to_owned();
        assert_eq!(t.len(), len);
        t
    })
}

unsafe fn next(s: *mut phx_socket_t, kinds: &[phx_event_kind_t]) -> E {
    let deadline = std::time::Instant::now() + T;
    loop {
        assert!(std::time::Instant::now() < deadline, "no {kinds:?} event");
        let mut e = null_mut();
        match phx_socket_next_event(s, 100, &mut e) {
            phx_status_t::PHX_OK => {}
            phx_status_t::PHX_ERR_AGAIN => continue,
            other => panic!("{other:?}"),
        }
        let r = &*e;
        let json = |p: *const u8, len: usize| {
            (!p.is_null()).then(|| serde_json::from_slice(bytes(p, len)).unwrap())
        };
        let ev = E {
            kind: r.kind,
            status: r.status,
            tag: r.tag,
            topic: opt(r.topic, r.topic_len),
            key: opt(r.key, r.key_len),
            metas: opt(r.metas, r.metas_len).map(|m| serde_json::from_str(&m).unwrap()),
            payload: json(r.payload, r.payload_len),
            missed: r.missed,
            rtt_us: r.rtt_us,
        };
        phx_event_free(e);
        if kinds.iter().any(|k| *k as u32 == ev.kind) {
            return ev;
        }
    }
}

fn enable(s: *mut phx_socket_t) {
    assert_eq!(
        unsafe { phx_socket_events_enable(s, 1024, None, null_mut(), None) },
        phx_status_t::PHX_OK
    );
}

fn devices(metas: &serde_json::Value) -> Vec<String> {
    metas
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["device"].as_str().unwrap().to_owned())
        .collect()
}

use phx_event_kind_t::*;

#[test]
fn presence_events_follow_the_transcript_steps() {
    let server = Server::start();
    unsafe {
        // (a) alice joins: one join of herself, then a sync.
        let a = connected(&format!("{}?token=alice", server.url));
        enable(a);
        let ach = joined(a, "presence:room1");
        let ev = next(a, &[PHX_EVENT_PRESENCE_JOIN]);
        assert_eq!(ev.key.as_deref(), Some("alice"));
        assert_eq!(ev.topic.as_deref(), Some("presence:room1"));
        assert!(ev.payload.is_none(), "alice was absent before");
        assert_eq!(devices(ev.metas.as_ref().unwrap()), ["default"]);
        next(a, &[PHX_EVENT_PRESENCE_SYNC]);

        // (b) bob joins with device laptop: alice sees his join.
        let b = connected(&format!("{}?token=bob", server.url));
        let bch = channel(b, "presence:room1");
        let payload = c(r#"{"device":"laptop"}"#);
        assert_eq!(
            phx_channel_join_wait(bch, payload.as_ptr(), 5000, null_mut()),
            phx_status_t::PHX_OK
        );
        let ev = next(a, &[PHX_EVENT_PRESENCE_JOIN, PHX_EVENT_PRESENCE_LEAVE]);
        assert_eq!(
            (ev.kind, ev.key.as_deref()),
            (PHX_EVENT_PRESENCE_JOIN as u32, Some("bob"))
        );
        assert_eq!(devices(ev.metas.as_ref().unwrap()), ["laptop"]);
        next(a, &[PHX_EVENT_PRESENCE_SYNC]);

        // (d) bob updates: his new meta joins (current: the old one), the old one leaves.
        assert_eq!(
            phx_channel_push_wait(
                bch,
                c("update").as_ptr(),
                c(r#"{"device":"desktop"}"#).as_ptr(),
                5000,
                null_mut()
            ),
            phx_status_t::PHX_OK
        );
        let join = next(a, &[PHX_EVENT_PRESENCE_JOIN, PHX_EVENT_PRESENCE_LEAVE]);
        assert_eq!(join.kind, PHX_EVENT_PRESENCE_JOIN as u32);
        assert_eq!(devices(join.metas.as_ref().unwrap()), ["desktop"]);
        assert_eq!(devices(join.payload.as_ref().unwrap()), ["laptop"]);
        let leave = next(a, &[PHX_EVENT_PRESENCE_JOIN, PHX_EVENT_PRESENCE_LEAVE]);
        assert_eq!(leave.kind, PHX_EVENT_PRESENCE_LEAVE as u32);
        assert_eq!(devices(leave.metas.as_ref().unwrap()), ["laptop"]);
        assert_eq!(devices(leave.payload.as_ref().unwrap()), ["desktop"]);
        next(a, &[PHX_EVENT_PRESENCE_SYNC]);

        // (f) bob's socket goes: he leaves, current [] (the key is gone).
        phx_channel_free(bch);
        phx_socket_free(b);
        let ev = next(a, &[PHX_EVENT_PRESENCE_LEAVE]);
        assert_eq!(ev.key.as_deref(), Some("bob"));
        assert_eq!(ev.payload, Some(serde_json::json!([])));
        phx_channel_free(ach);
        phx_socket_free(a);
    }
}

/// kind, key, current metas, joined/left metas.
type Change = (u32, String, Option<String>, String);

#[derive(Default)]
struct Seen {
    presence: Mutex<Vec<Change>>,
    syncs: Mutex<usize>,
    rejoined: Mutex<Vec<(String, bool)>>,
    logs: Mutex<Vec<(u32, String, String)>>,
}

unsafe extern "C" fn on_presence(ud: *mut c_void, ch: *const phx_presence_change_t) {
    let seen = &*(ud as *const Seen);
    let ch = &*ch;
    seen.presence.lock().unwrap().push((
        ch.kind,
        opt(ch.key, ch.key_len).unwrap(),
        opt(ch.current, ch.current_len),
        opt(ch.metas, ch.metas_len).unwrap(),
    ));
}

unsafe extern "C" fn on_sync(ud: *mut c_void) {
    *(*(ud as *const Seen)).syncs.lock().unwrap() += 1;
}

unsafe extern "C" fn on_rejoined(ud: *mut c_void, reply: *const phx_reply_t, missed: bool) {
    let r = &*reply;
    let body = String::from_utf8(bytes(r.payload, r.payload_len).to_vec()).unwrap();
    (*(ud as *const Seen))
        .rejoined
        .lock()
        .unwrap()
        .push((body, missed));
}

unsafe extern "C" fn on_log_record(
    ud: *mut c_void,
    level: u32,
    target: *const c_char,
    message: *const c_char,
) {
    (*(ud as *const Seen)).logs.lock().unwrap().push((
        level,
        text(target).to_owned(),
        text(message).to_owned(),
    ));
}

fn channel_ex() -> phx_channel_handler_ex_t {
    phx_channel_handler_ex_t {
        size: std::mem::size_of::<phx_channel_handler_ex_t>(),
        on_message: None,
        on_state: None,
        on_rejoin: None,
        on_presence: Some(on_presence),
        on_presence_sync: Some(on_sync),
        on_rejoined: Some(on_rejoined),
    }
}

#[test]
fn presence_and_rejoin_callbacks_and_the_rejoined_event() {
    let server = Server::start();
    let seen: &'static Seen = Box::leak(Box::default());
    let ud = seen as *const Seen as *mut c_void;
    unsafe {
        let s = connected(&format!("{}?token=alice", server.url));
        enable(s);
        let ch = channel(s, "presence:room1");
        assert_eq!(
            phx_channel_set_handler_ex(ch, &channel_ex(), ud, None),
            phx_status_t::PHX_OK
        );
        assert_eq!(
            phx_channel_join_wait(ch, null(), 5000, null_mut()),
            phx_status_t::PHX_OK
        );
        assert!(wait_until(T, || *seen.syncs.lock().unwrap() == 1));
        let p = seen.presence.lock().unwrap().clone();
        assert_eq!(p[0].0, phx_presence_kind_t::PHX_PRESENCE_JOIN as u32);
        assert_eq!((p[0].1.as_str(), p[0].2.as_deref()), ("alice", None));

        // The connection drops: the rejoin reports the join response, messages maybe missed.
        server.control(|c| c.drop_all());
        let ev = next(s, &[PHX_EVENT_REJOINED]);
        assert_eq!((ev.status, ev.missed), (phx_status_t::PHX_OK as u32, 1));
        assert!(ev.payload.is_some());
        assert!(wait_until(T, || seen.rejoined.lock().unwrap().len() == 1));
        assert!(seen.rejoined.lock().unwrap()[0].1);

        // A size too small is refused and consumes nothing.
        let mut bad = channel_ex();
        bad.size = 0;
        assert_eq!(
            phx_channel_set_handler_ex(ch, &bad, ud, None),
            phx_status_t::PHX_ERR_INVALID_ARGUMENT
        );
        // A caller compiled with only the first members: the rest count as NULL.
        let mut old = channel_ex();
        old.size = std::mem::offset_of!(phx_channel_handler_ex_t, on_presence);
        assert_eq!(
            phx_channel_set_handler_ex(ch, &old, ud, None),
            phx_status_t::PHX_OK
        );
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

unsafe fn stats(s: *mut phx_socket_t) -> phx_socket_stats_t {
    let mut st: phx_socket_stats_t = std::mem::zeroed();
    st.size = std::mem::size_of::<phx_socket_stats_t>();
    assert_eq!(phx_socket_stats(s, &mut st), phx_status_t::PHX_OK);
    assert_eq!(st.size, std::mem::size_of::<phx_socket_stats_t>());
    st
}

unsafe extern "C" fn probed(ud: *mut c_void, status: u32, rtt_us: u64) {
    let out = &*(ud as *const Mutex<Option<(u32, u64)>>);
    *out.lock().unwrap() = Some((status, rtt_us));
}

#[test]
fn statistics_probes_and_log_records() {
    let server = Server::start();
    let seen: &'static Seen = Box::leak(Box::default());
    unsafe {
        let s = connected(&server.url);
        enable(s);
        let st = stats(s);
        assert_eq!((st.connects, st.reconnects, st.frames_out), (1, 0, 0));
        let ch = joined(s, "room:lobby");
        let st = stats(s);
        assert_eq!((st.frames_out, st.frames_in), (1, 1));
        assert!(
            st.bytes_out > 10 && st.events_queued >= 2,
            "state events queued"
        );

        // A probe by callback, then one into the queue.
        let out: &'static Mutex<Option<(u32, u64)>> = Box::leak(Box::default());
        let ud = out as *const _ as *mut c_void;
        assert_eq!(phx_socket_probe(s, Some(probed), ud), phx_status_t::PHX_OK);
        assert!(wait_until(T, || out.lock().unwrap().is_some()));
        let (status, rtt) = out.lock().unwrap().unwrap();
        assert_eq!(status, phx_status_t::PHX_OK as u32);
        assert!(rtt > 0);
        assert_eq!(phx_socket_probe_tagged(s, 77), phx_status_t::PHX_OK);
        let ev = next(s, &[PHX_EVENT_PROBE]);
        assert_eq!((ev.tag, ev.status), (77, phx_status_t::PHX_OK as u32));
        assert!(ev.rtt_us > 0);
        let st = stats(s);
        assert!(st.rtt_last_us > 0 && st.rtt_smoothed_us > 0);

        // An old caller's smaller struct: only what fits is written.
        let mut small: phx_socket_stats_t = std::mem::zeroed();
        small.size = std::mem::offset_of!(phx_socket_stats_t, connects);
        small.reconnects = 999;
        assert_eq!(phx_socket_stats(s, &mut small), phx_status_t::PHX_OK);
        assert_eq!(small.reconnects, 999, "beyond size: untouched");
        assert!(small.rtt_last_us > 0);
        small.size = 0;
        assert_eq!(
            phx_socket_stats(s, &mut small),
            phx_status_t::PHX_ERR_INVALID_ARGUMENT
        );

        // A drop: counted by reason; log records carry a target.
        let h = phx_socket_handler_ex_t {
            size: std::mem::size_of::<phx_socket_handler_ex_t>(),
            on_state: None,
            on_log: None,
            on_log_record: Some(on_log_record),
        };
        let ud = seen as *const Seen as *mut c_void;
        assert_eq!(
            phx_socket_set_handler_ex(s, &h, ud, None),
            phx_status_t::PHX_OK
        );
        server.control(|c| c.drop_all());
        assert!(wait_until(T, || stats(s).reconnects == 1));
        let st = stats(s);
        assert_eq!(st.disconnects[phx_reason_kind_t::PHX_REASON_IO as usize], 1);
        let logs = seen.logs.lock().unwrap().clone();
        assert!(logs
            .iter()
            .any(|(l, t, m)| *l == phx_log_level_t::PHX_LOG_WARN as u32
                && t == "phx::socket"
                && m.starts_with("connection lost")));
        phx_channel_free(ch);
        phx_socket_free(s);
    }
}

#[test]
fn policy_options_are_checked() {
    unsafe {
        let o = phx_options_new();
        let bad = phx_status_t::PHX_ERR_INVALID_ARGUMENT;
        assert_eq!(phx_options_set_jitter(o, 0.5, 0.2), phx_status_t::PHX_OK);
        assert_eq!(phx_options_set_jitter(o, 1.5, 0.0), bad);
        assert_eq!(phx_options_set_jitter(o, f64::NAN, 0.0), bad);
        assert_eq!(phx_options_set_jitter_seed(o, 1), phx_status_t::PHX_OK);
        assert_eq!(phx_options_set_heartbeat_timeout_ms(o, 0), bad);
        assert_eq!(
            phx_options_set_heartbeat_timeout_ms(o, 500),
            phx_status_t::PHX_OK
        );
        assert_eq!(phx_options_set_log_level(o, 9), bad);
        assert_eq!(phx_options_set_log_level(o, 2), phx_status_t::PHX_OK);
        let codes = [4001u16, 4002];
        assert_eq!(
            phx_options_set_stop_close_codes(o, codes.as_ptr(), 2),
            phx_status_t::PHX_OK
        );
        assert_eq!(phx_options_set_stop_close_codes(o, null(), 2), bad);
        assert_eq!(phx_options_set_jitter(null_mut(), 0.0, 0.0), bad);
        phx_options_free(o);
    }
}

#[test]
fn a_listed_close_code_leaves_the_socket_disconnected() {
    let server = Server::start();
    unsafe {
        let o = phx_options_new();
        let codes = [4001u16];
        assert_eq!(
            phx_options_set_stop_close_codes(o, codes.as_ptr(), 1),
            phx_status_t::PHX_OK
        );
        let mut s = null_mut();
        assert_eq!(
            phx_socket_new(c(&server.url).as_ptr(), o, &mut s),
            phx_status_t::PHX_OK
        );
        phx_options_free(o);
        assert_eq!(phx_socket_connect_wait(s, 5000), phx_status_t::PHX_OK);
        server.control(|c| c.close_all(4001));
        let mut state = 9;
        assert!(wait_until(T, || {
            phx_socket_state(s, &mut state);
            state == phx_socket_state_t::PHX_SOCKET_DISCONNECTED as u32
        }));
        let mut reason = phx_reason_t_zero();
        assert_eq!(phx_socket_last_reason(s, &mut reason), phx_status_t::PHX_OK);
        assert_eq!(
            (reason.kind, reason.code),
            (phx_reason_kind_t::PHX_REASON_CLOSE_FRAME as u32, 4001)
        );
        phx_socket_free(s);
    }
}

fn phx_reason_t_zero() -> phx_reason_t {
    // SAFETY: a plain C value; all-zero is valid.
    unsafe { std::mem::zeroed() }
}
