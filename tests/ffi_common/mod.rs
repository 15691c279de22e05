//! Shared helpers of the `ffi_*` tests: they call the exported `extern "C"` functions
//! directly, as a C program would, against an in-process phx-testserver.

#![allow(dead_code)]

use phx::ffi::*;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

pub const OK: phx_status_t = phx_status_t::PHX_OK;
pub const INVALID: phx_status_t = phx_status_t::PHX_ERR_INVALID_ARGUMENT;

/// The runtime the test servers run on (the client uses libphx's own runtime).
static SERVER_RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
});

/// A running test server.
pub struct Server {
    server: Option<phx_testserver::TestServer>,
    pub url: String,
}

impl Server {
    pub fn start() -> Server {
        let server = SERVER_RUNTIME
            .block_on(phx_testserver::TestServer::start(
                phx_testserver::Config::default(),
            ))
            .expect("test server starts");
        let url = server.url();
        Server {
            server: Some(server),
            url,
        }
    }

    /// A server speaking `wss://` with a fresh self-signed certificate.
    pub fn start_tls() -> Server {
        let config = phx_testserver::Config {
            tls: true,
            ..phx_testserver::Config::default()
        };
        let server = SERVER_RUNTIME
            .block_on(phx_testserver::TestServer::start(config))
            .expect("TLS test server starts");
        let url = server.url();
        Server {
            server: Some(server),
            url,
        }
    }

    /// The TLS server's certificate (PEM).
    pub fn cert_pem(&self) -> String {
        let server = self.server.as_ref().unwrap();
        server.cert_pem().expect("a TLS server").to_owned()
    }

    /// Runs `f` with the server's controls, inside the server's runtime.
    pub fn control<R>(&self, f: impl FnOnce(&phx_testserver::Controls) -> R) -> R {
        let _enter = SERVER_RUNTIME.enter();
        f(&self.server.as_ref().unwrap().controls())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _enter = SERVER_RUNTIME.enter();
        drop(self.server.take());
    }
}

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

pub unsafe fn text<'a>(p: *const c_char) -> &'a str {
    assert!(!p.is_null());
    CStr::from_ptr(p).to_str().unwrap()
}

pub unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        return &[];
    }
    std::slice::from_raw_parts(p, len)
}

/// Creates a socket for `url` with short timeouts suited to tests.
pub fn socket(url: &str) -> *mut phx_socket_t {
    unsafe {
        let opts = phx_options_new();
        assert!(!opts.is_null());
        let delays = [50u64, 100];
        assert_eq!(
            phx_options_set_reconnect_schedule_ms(opts, delays.as_ptr(), 2),
            OK
        );
        assert_eq!(
            phx_options_set_rejoin_schedule_ms(opts, delays.as_ptr(), 2),
            OK
        );
        assert_eq!(phx_options_set_connect_timeout_ms(opts, 2000), OK);
        let mut s = std::ptr::null_mut();
        assert_eq!(phx_socket_new(c(url).as_ptr(), opts, &mut s), OK);
        phx_options_free(opts);
        assert!(!s.is_null());
        s
    }
}

/// A connected socket.
pub fn connected(url: &str) -> *mut phx_socket_t {
    let s = socket(url);
    assert_eq!(unsafe { phx_socket_connect_wait(s, 5000) }, OK);
    s
}

pub fn channel(s: *mut phx_socket_t, topic: &str) -> *mut phx_channel_t {
    let mut ch = std::ptr::null_mut();
    assert_eq!(
        unsafe { phx_socket_channel(s, c(topic).as_ptr(), &mut ch) },
        OK
    );
    assert!(!ch.is_null());
    ch
}

/// A channel of a connected socket, joined.
pub fn joined(s: *mut phx_socket_t, topic: &str) -> *mut phx_channel_t {
    let ch = channel(s, topic);
    assert_eq!(
        unsafe { phx_channel_join_wait(ch, std::ptr::null(), 5000, std::ptr::null_mut()) },
        OK
    );
    ch
}

/// Polls `cond` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- a recorder usable as user_data ------------------------------------------------------------

/// What a callback saw, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    SocketState(u32, Option<(u32, u32, String)>),
    Log(u32, String),
    Message {
        topic: String,
        event: String,
        join_ref: Option<String>,
        ref_: Option<String>,
        kind: u32,
        payload: Vec<u8>,
    },
    ChannelState(u32),
    Rejoin(u32, Option<(String, Vec<u8>)>),
    Reply(u32, Option<(String, u32, Vec<u8>)>),
    Wake,
    /// A blocking call made from inside a callback returned this.
    Blocking(phx_status_t),
}

/// Records callbacks; handed to C as `Arc::into_raw`, released by `free_user_data`.
#[derive(Default)]
pub struct Recorder {
    pub seen: Mutex<Vec<Seen>>,
    changed: Condvar,
    pub frees: AtomicUsize,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    /// A `user_data` pointer holding one reference (released by [`free_recorder`]).
    pub fn user_data(self: &Arc<Self>) -> *mut c_void {
        Arc::into_raw(self.clone()) as *mut c_void
    }

    pub fn push(&self, s: Seen) {
        self.seen.lock().unwrap().push(s);
        self.changed.notify_all();
    }

    pub fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self, f: impl Fn(&Seen) -> bool) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| f(s)).count()
    }

    /// Waits until some recorded item satisfies `f`.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&Seen) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen.lock().unwrap();
        loop {
            if seen.iter().any(&f) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            seen = self.changed.wait_timeout(seen, deadline - now).unwrap().0;
        }
    }
}

unsafe fn rec<'a>(user_data: *mut c_void) -> &'a Recorder {
    &*(user_data as *const Recorder)
}

unsafe fn reply_of(reply: *const phx_reply_t) -> Option<(String, u32, Vec<u8>)> {
    reply.as_ref().map(|r| {
        let status = text(r.status);
        assert_eq!(status.len(), r.status_len);
        (
            status.to_owned(),
            r.payload_kind,
            bytes(r.payload, r.payload_len).to_vec(),
        )
    })
}

pub unsafe extern "C" fn free_recorder(user_data: *mut c_void) {
    let r = Arc::from_raw(user_data as *const Recorder);
    r.frees.fetch_add(1, Ordering::SeqCst);
}

pub unsafe extern "C" fn on_socket_state(ud: *mut c_void, state: u32, reason: *const phx_reason_t) {
    let reason = reason.as_ref().map(|r| {
        let t = text(r.text.as_ptr());
        assert_eq!(t.len(), r.text_len);
        (r.kind, r.code, t.to_owned())
    });
    rec(ud).push(Seen::SocketState(state, reason));
}

pub unsafe extern "C" fn on_log(ud: *mut c_void, level: u32, message: *const c_char) {
    rec(ud).push(Seen::Log(level, text(message).to_owned()));
}

pub unsafe extern "C" fn on_message(ud: *mut c_void, m: *const phx_message_t) {
    let m = &*m;
    let opt = |p: *const c_char, len: usize| {
        if p.is_null() {
            assert_eq!(len, 0);
            None
        } else {
            let t = text(p);
            assert_eq!(t.len(), len);
            Some(t.to_owned())
        }
    };
    let topic = text(m.topic);
    let event = text(m.event);
    assert_eq!(topic.len(), m.topic_len);
    assert_eq!(event.len(), m.event_len);
    rec(ud).push(Seen::Message {
        topic: topic.to_owned(),
        event: event.to_owned(),
        join_ref: opt(m.join_ref, m.join_ref_len),
        ref_: opt(m.r#ref, m.ref_len),
        kind: m.payload_kind,
        payload: bytes(m.payload, m.payload_len).to_vec(),
    });
}

pub unsafe extern "C" fn on_channel_state(ud: *mut c_void, state: u32) {
    rec(ud).push(Seen::ChannelState(state));
}

pub unsafe extern "C" fn on_rejoin(ud: *mut c_void, status: u32, reply: *const phx_reply_t) {
    let r = reply_of(reply).map(|(s, _, p)| (s, p));
    rec(ud).push(Seen::Rejoin(status, r));
}

/// A `phx_reply_cb` that records into a `Recorder` whose reference it consumes.
pub unsafe extern "C" fn on_reply_once(ud: *mut c_void, status: u32, reply: *const phx_reply_t) {
    let r = Arc::from_raw(ud as *const Recorder);
    r.push(Seen::Reply(status, reply_of(reply)));
}

pub unsafe extern "C" fn on_wake(ud: *mut c_void) {
    rec(ud).push(Seen::Wake);
}

pub fn socket_handler() -> phx_socket_handler_t {
    phx_socket_handler_t {
        on_state: Some(on_socket_state),
        on_log: Some(on_log),
    }
}

pub fn channel_handler() -> phx_channel_handler_t {
    phx_channel_handler_t {
        on_message: Some(on_message),
        on_state: Some(on_channel_state),
        on_rejoin: Some(on_rejoin),
    }
}

/// Installs a recording socket handler.
pub fn record_socket(s: *mut phx_socket_t) -> Arc<Recorder> {
    let r = Recorder::new();
    let h = socket_handler();
    assert_eq!(
        unsafe { phx_socket_set_handler(s, &h, r.user_data(), Some(free_recorder)) },
        OK
    );
    r
}

/// Installs a recording channel handler.
pub fn record_channel(ch: *mut phx_channel_t) -> Arc<Recorder> {
    let r = Recorder::new();
    let h = channel_handler();
    assert_eq!(
        unsafe { phx_channel_set_handler(ch, &h, r.user_data(), Some(free_recorder)) },
        OK
    );
    r
}

// ---- events ---------------------------------------------------------------------------------------

/// An owned copy of a `phx_event_t`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub kind: u32,
    pub status: u32,
    pub state: u32,
    pub tag: u64,
    pub dropped: u64,
    pub channel_id: u64,
    pub topic: Option<String>,
    pub event: Option<String>,
    pub reply_status: Option<String>,
    pub payload_kind: u32,
    pub payload: Option<Vec<u8>>,
    pub reason_kind: Option<u32>,
}

/// Copies and frees an event.
pub unsafe fn take_event(e: *mut phx_event_t) -> Ev {
    let r = &*e;
    // Strings are NUL-terminated and their lengths given; NULL strings have length 0.
    let s = |p: *const c_char, len: usize| {
        if p.is_null() {
            assert_eq!(len, 0, "a NULL string has length 0");
            return None;
        }
        let t = text(p).to_owned();
        assert_eq!(t.len(), len, "the length excludes the NUL");
        Some(t)
    };
    let _ = (s(r.join_ref, r.join_ref_len), s(r.r#ref, r.ref_len));
    // The payload is not NUL-terminated: only its `payload_len` bytes are read (ASan and
    // valgrind check that).
    let payload = (!r.payload.is_null()).then(|| bytes(r.payload, r.payload_len).to_vec());
    let ev = Ev {
        kind: r.kind,
        status: r.status,
        state: r.state,
        tag: r.tag,
        dropped: r.dropped,
        channel_id: r.channel_id,
        topic: s(r.topic, r.topic_len),
        event: s(r.event, r.event_len),
        reply_status: s(r.reply_status, r.reply_status_len),
        payload_kind: r.payload_kind,
        payload,
        // Only socket state events carry a reason.
        reason_kind: if r.kind == phx_event_kind_t::PHX_EVENT_SOCKET_STATE as u32 {
            assert!(!r.reason.is_null(), "a state event without a reason");
            Some((*r.reason).kind)
        } else {
            assert!(r.reason.is_null(), "only state events carry a reason");
            None
        },
    };
    phx_event_free(e);
    ev
}

/// Takes events until `f` matches one (returned) or `timeout` passes; the others are collected.
pub fn next_matching(
    s: *mut phx_socket_t,
    timeout: Duration,
    others: &mut Vec<Ev>,
    f: impl Fn(&Ev) -> bool,
) -> Option<Ev> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let mut e = std::ptr::null_mut();
        match unsafe { phx_socket_next_event(s, left.as_millis() as u64 + 1, &mut e) } {
            phx_status_t::PHX_OK => {
                let ev = unsafe { take_event(e) };
                if f(&ev) {
                    return Some(ev);
                }
                others.push(ev);
            }
            phx_status_t::PHX_ERR_AGAIN => return None,
            other => panic!("next_event: {other:?}"),
        }
    }
}

/// True if `fd` is readable right now.
pub fn readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLIN != 0
}
