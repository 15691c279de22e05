//! `phx_socket_t`: one engine socket plus the state the C surface keeps for it.
//!
//! The engine calls one handler per socket; ours ([`SocketHub`]) is installed at creation and
//! never replaced. It signals `phx_socket_connect_wait` callers, feeds the event queue, and
//! calls the caller's registration, which `phx_socket_set_handler` swaps under a mutex that is
//! never held while user code runs (the registration is cloned out first).

use super::callbacks::{phx_free_fn, phx_socket_handler_t, SocketRegistration};
use super::channel::phx_channel_t;
use super::events::EventQueue;
use super::options::phx_options_t;
use super::status::phx_status_t;
use super::types::{phx_reason_t, socket_state};
use super::util::{
    box_from_raw, box_into_raw, c_str, guard, guard_or, handle_ref, lock, millis, out_ptr,
    write_out,
};
use crate::engine::runtime;
use crate::engine::{Config, DisconnectReason, LogLevel, Socket, SocketHandler, SocketState};
use std::collections::HashMap;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A Phoenix socket (opaque). Created by `phx_socket_new`, freed by `phx_socket_free`.
pub struct phx_socket_t {
    pub(crate) socket: Socket,
    pub(crate) core: Arc<SocketCore>,
}

/// What the socket's handler, its channels and its waiters share.
pub(crate) struct SocketCore {
    /// Set by `phx_socket_free`: no handler callback runs any more, channel operations
    /// return `PHX_ERR_CLOSED`, waiters return.
    pub(crate) closed: AtomicBool,
    /// The caller's socket callbacks.
    pub(crate) user: Mutex<Option<Arc<SocketRegistration>>>,
    /// The owned event queue, once enabled.
    pub(crate) events: OnceLock<Arc<EventQueue>>,
    /// The last state reported by the engine and a count of changes, for connect waiters.
    watch: Mutex<(u64, SocketState)>,
    watch_changed: Condvar,
    /// The channel handles handed out, one per live engine channel instance.
    pub(crate) channels: Mutex<HashMap<Box<str>, Arc<phx_channel_t>>>,
    connect_timeout: Duration,
}

impl SocketCore {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The engine-side handler of a socket.
struct SocketHub(Arc<SocketCore>);

impl SocketHandler for SocketHub {
    fn on_state(&self, state: SocketState, reason: Option<&DisconnectReason>) {
        let core = &self.0;
        {
            let mut watch = lock(&core.watch);
            watch.0 += 1;
            watch.1 = state;
        }
        core.watch_changed.notify_all();
        if core.is_closed() {
            return;
        }
        if let Some(queue) = core.events.get() {
            queue.push_socket_state(state, reason);
        }
        let user = lock(&core.user).clone();
        if let Some(user) = user {
            user.on_state(state, reason);
        }
    }

    fn on_log(&self, level: LogLevel, message: &str) {
        let core = &self.0;
        if core.is_closed() {
            return;
        }
        let user = lock(&core.user).clone();
        if let Some(user) = user {
            user.on_log(level, message);
        }
    }
}

/// Creates a socket for `url` (`ws://` or `wss://`, e.g. `ws://host:4000/socket/websocket`;
/// `vsn=2.0.0` and the options' params are appended). Nothing connects until
/// `phx_socket_connect`.
///
/// - `url`: NUL-terminated UTF-8, borrowed for the call.
/// - `opts`: NULL for the defaults; otherwise copied (the caller keeps and frees it).
/// - `out`: on `PHX_OK`, receives the new socket, owned by the caller and freed with
///   `phx_socket_free`. Written only on `PHX_OK`.
///
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL `url`/`out`, invalid UTF-8, or a URL that does
/// not parse or is not `ws`/`wss`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_new(
    url: *const c_char,
    opts: *const phx_options_t,
    out: *mut *mut phx_socket_t,
) -> phx_status_t {
    guard(|| {
        let out = out_ptr(out)?;
        let url = c_str(url)?;
        let mut config = Config::new(url);
        if let Some(opts) = opts.as_ref() {
            opts.apply(&mut config);
        }
        let connect_timeout = config.connect_timeout;
        let socket =
            Socket::new_shared(config).map_err(|_| phx_status_t::PHX_ERR_INVALID_ARGUMENT)?;
        let core = Arc::new(SocketCore {
            closed: AtomicBool::new(false),
            user: Mutex::new(None),
            events: OnceLock::new(),
            watch: Mutex::new((0, socket.state())),
            watch_changed: Condvar::new(),
            channels: Mutex::new(HashMap::new()),
            connect_timeout,
        });
        socket.set_handler(Some(Arc::new(SocketHub(core.clone()))));
        write_out(out, box_into_raw(phx_socket_t { socket, core }));
        Ok(())
    })
}

/// Starts connecting socket `s` (asynchronous; progress is reported through `on_state` and
/// `PHX_EVENT_SOCKET_STATE`). Idempotent: does nothing unless the socket is disconnected.
/// Once connected, lost connections are re-established on the reconnect schedule until
/// `phx_socket_disconnect`. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread,
/// callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_connect(s: *mut phx_socket_t) -> phx_status_t {
    guard(|| {
        handle_ref(s)?.socket.connect();
        Ok(())
    })
}

/// Connects socket `s` (as `phx_socket_connect`) and blocks until it is connected.
///
/// `timeout_ms`: how long to wait; 0 means the socket's connect timeout
/// (`phx_options_set_connect_timeout_ms`, 10 s by default). Returns `PHX_OK` once connected
/// (at once if it already is), `PHX_ERR_TIMEOUT` if it is not connected in time (the socket
/// keeps trying in the background), `PHX_ERR_CLOSED` if it is disconnected
/// (`phx_socket_disconnect` from another thread) or freed meanwhile, `PHX_ERR_WRONG_THREAD` on
/// a library thread (inside a callback), `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread but
/// library threads.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_connect_wait(
    s: *mut phx_socket_t,
    timeout_ms: u64,
) -> phx_status_t {
    guard(|| {
        let s = handle_ref(s)?;
        if runtime::on_library_thread() {
            return Err(phx_status_t::PHX_ERR_WRONG_THREAD);
        }
        if s.socket.state() == SocketState::Connected {
            return Ok(());
        }
        let core = s.core.clone();
        let timeout = if timeout_ms == 0 {
            core.connect_timeout
        } else {
            millis(timeout_ms)
        };
        let deadline = Instant::now() + timeout;
        let mut watch = lock(&core.watch);
        let start = watch.0;
        s.socket.connect();
        loop {
            if core.is_closed() {
                return Err(phx_status_t::PHX_ERR_CLOSED);
            }
            match watch.1 {
                SocketState::Connected => return Ok(()),
                SocketState::Disconnected if watch.0 != start => {
                    return Err(phx_status_t::PHX_ERR_CLOSED)
                }
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(phx_status_t::PHX_ERR_TIMEOUT);
            }
            watch = core
                .watch_changed
                .wait_timeout(watch, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    })
}

/// Disconnects socket `s`: closes the connection (code 1000) and stops reconnecting. Every
/// channel becomes closed and every pending or buffered operation completes with
/// `PHX_ERR_CLOSED` at once. The socket can connect again later. Returns
/// `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_disconnect(s: *mut phx_socket_t) -> phx_status_t {
    guard(|| {
        handle_ref(s)?.socket.disconnect();
        Ok(())
    })
}

/// Writes the current state of socket `s` (a `PHX_SOCKET_*` value) to `*out_state`.
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL arguments; `*out_state` is written only on
/// `PHX_OK`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_state(
    s: *const phx_socket_t,
    out_state: *mut u32,
) -> phx_status_t {
    guard(|| {
        let s = handle_ref(s)?;
        let out = out_ptr(out_state)?;
        write_out(out, socket_state(s.socket.state()));
        Ok(())
    })
}

/// Writes why the last connection of socket `s` ended or the last attempt failed to `*out`
/// (kind `PHX_REASON_NONE` if none has yet). `phx_reason_t` is a plain value: its text is
/// copied into `out->text` (NUL-terminated, cut to fit `PHX_REASON_TEXT_CAP`), so nothing is
/// borrowed from the socket and nothing needs freeing. Returns `PHX_ERR_INVALID_ARGUMENT` for
/// NULL arguments; `*out` is written only on `PHX_OK`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_last_reason(
    s: *const phx_socket_t,
    out: *mut phx_reason_t,
) -> phx_status_t {
    guard(|| {
        let s = handle_ref(s)?;
        let out = out_ptr(out)?;
        let reason = s.socket.last_reason();
        write_out(out, phx_reason_t::from_engine(reason.as_ref()));
        Ok(())
    })
}

/// Installs the callbacks of socket `s`, replacing any installed before (`h` NULL: removes
/// them; `user_data` and `free_user_data` are then ignored).
///
/// - `h`: copied; borrowed for the call only.
/// - `user_data`: passed first to every callback.
/// - `free_user_data` (nullable): called exactly once with `user_data`, after the last call of
///   these callbacks: when they are replaced or removed, or when the socket is freed.
///
/// Callbacks run on libphx's threads, one at a time per socket, never while an internal lock
/// is held; they may call any libphx function (blocking ones return `PHX_ERR_WRONG_THREAD`).
/// A call already under way when the handler is replaced finishes first; `free_user_data` of
/// the old registration runs after it.
///
/// Ownership: on `PHX_OK` the socket owns `user_data` (released through `free_user_data`); on
/// an error nothing is consumed. Returns `PHX_ERR_INVALID_ARGUMENT` for a NULL socket. Any
/// thread, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_set_handler(
    s: *mut phx_socket_t,
    h: *const phx_socket_handler_t,
    user_data: *mut c_void,
    free_user_data: phx_free_fn,
) -> phx_status_t {
    guard(|| {
        let s = handle_ref(s)?;
        let registration = h
            .as_ref()
            .map(|h| Arc::new(SocketRegistration::new(*h, user_data, free_user_data)));
        let old = std::mem::replace(&mut *lock(&s.core.user), registration);
        drop(old);
        Ok(())
    })
}

/// Frees socket `s`: closes its connection, completes every pending operation with
/// `PHX_ERR_CLOSED`, releases every handler (each `free_user_data` is called) and frees the
/// event queue with the events still in it (events already taken stay valid). NULL is a
/// no-op. `s` must not be used afterwards; channel handles of this socket stay valid (their
/// operations return `PHX_ERR_CLOSED`) until freed with `phx_channel_free`.
///
/// Called outside a callback, it waits until that is done: once it returns, no callback of
/// this socket runs again. Called inside a callback (of this socket or another), it does not
/// wait: no handler callback of this socket is called any more, and pending operations
/// complete and handlers are released right after the current callback returns. Any thread.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_free(s: *mut phx_socket_t) {
    guard_or((), || {
        let Some(s) = box_from_raw(s) else {
            return;
        };
        let core = s.core.clone();
        core.closed.store(true, Ordering::Release);
        drop(lock(&core.watch));
        core.watch_changed.notify_all();
        if let Some(queue) = core.events.get() {
            queue.close();
        }
        s.socket.shutdown();
        let user = lock(&core.user).take();
        drop(user);
        let channels = std::mem::take(&mut *lock(&core.channels));
        drop(channels);
        drop(s);
    })
}
