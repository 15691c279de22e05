//! `phx_socket_t`'s entry points: creation, connecting, states, handlers, freeing. The handle
//! itself and what it shares with its channels are in `handles`.

use super::callbacks::{
    phx_free_fn, phx_socket_handler_ex_t, phx_socket_handler_t, read_sized, SocketRegistration,
};
use super::handles::{phx_socket_t, socket_arg, SocketCore, SocketHub};
use super::options::phx_options_t;
use super::status::phx_status_t;
use super::types::{phx_reason_t, socket_state};
use super::util::{
    arc_from_raw, arc_into_raw, c_str, guard, guard_or, lock, millis, out_ptr, write_out,
};
use crate::engine::runtime;
use crate::engine::{Config, Socket, WaitError};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

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
/// not parse or is not `ws`/`wss`. Any thread, concurrently (`opts` only read).
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
        let socket =
            Socket::new_shared(config).map_err(|_| phx_status_t::PHX_ERR_INVALID_ARGUMENT)?;
        let core = SocketCore::new();
        socket.set_handler(Some(Arc::new(SocketHub(core.clone()))));
        let provider = std::sync::Mutex::new(opts.as_ref().and_then(|o| o.provider_keep()));
        let handle = phx_socket_t {
            socket,
            core,
            provider,
        };
        write_out(out, arc_into_raw(Arc::new(handle)));
        Ok(())
    })
}

/// Starts connecting socket `s` (asynchronous; progress is reported through `on_state` and
/// `PHX_EVENT_SOCKET_STATE`). Idempotent: does nothing unless the socket is disconnected; when
/// it returns, the state is `PHX_SOCKET_CONNECTING` (or a later one). Once connected, lost
/// connections are re-established on the reconnect schedule until `phx_socket_disconnect`.
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread, concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_connect(s: *mut phx_socket_t) -> phx_status_t {
    guard(|| {
        socket_arg(s)?.socket.connect();
        Ok(())
    })
}

/// Connects socket `s` (as `phx_socket_connect`) and blocks until it is connected.
///
/// `timeout_ms`: how long to wait; 0 means the socket's connect timeout
/// (`phx_options_set_connect_timeout_ms`, 10 s by default). Returns `PHX_OK` once connected
/// (at once if it already is), `PHX_ERR_TIMEOUT` if it is not connected in time (the socket
/// keeps trying in the background), `PHX_ERR_CLOSED` if `phx_socket_disconnect` is called (on
/// another thread) after this call began, if the socket stops reconnecting meanwhile
/// (`phx_options_set_max_refusals`), or if the socket is freed meanwhile (the call keeps
/// what it uses alive; see `phx_socket_free`), `PHX_ERR_WRONG_THREAD` on a library thread
/// (inside a callback), `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread but library threads,
/// concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_connect_wait(
    s: *mut phx_socket_t,
    timeout_ms: u64,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        if runtime::on_library_thread() {
            return Err(phx_status_t::PHX_ERR_WRONG_THREAD);
        }
        if s.core.is_closed() {
            return Err(phx_status_t::PHX_ERR_CLOSED);
        }
        let timeout = if timeout_ms == 0 {
            s.socket.config().connect_timeout
        } else {
            millis(timeout_ms)
        };
        s.socket.connect_wait(timeout).map_err(|e| match e {
            WaitError::Timeout => phx_status_t::PHX_ERR_TIMEOUT,
            WaitError::Closed => phx_status_t::PHX_ERR_CLOSED,
        })
    })
}

/// Disconnects socket `s`: closes the connection (code 1000) and stops reconnecting. Every
/// channel that was joined becomes closed and every pending or buffered operation completes
/// with `PHX_ERR_CLOSED` at once. When it returns, the state is `PHX_SOCKET_DISCONNECTED`,
/// those channels are `PHX_CHANNEL_CLOSED` (pushes on them fail with `PHX_ERR_STATE`) and
/// `phx_socket_channel` returns fresh instances for their topics. The socket can connect
/// again later. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread, concurrently,
/// callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_disconnect(s: *mut phx_socket_t) -> phx_status_t {
    guard(|| {
        socket_arg(s)?.socket.disconnect();
        Ok(())
    })
}

/// Writes the current state of socket `s` (a `PHX_SOCKET_*` value) to `*out_state`: what the
/// last `phx_socket_connect`/`phx_socket_disconnect` of any thread decided, or what the
/// connection did since. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL arguments; `*out_state`
/// is written only on `PHX_OK`. Any thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_state(
    s: *const phx_socket_t,
    out_state: *mut u32,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        let out = out_ptr(out_state)?;
        write_out(out, socket_state(s.socket.state()));
        Ok(())
    })
}

/// Writes why the last connection of socket `s` ended or the last attempt failed to `*out`
/// (kind `PHX_REASON_NONE` if none has yet). `phx_reason_t` is a plain value: its text is
/// copied into `out->text` (NUL-terminated, cut to fit `PHX_REASON_TEXT_CAP`), so nothing is
/// borrowed from the socket and nothing needs freeing. Returns `PHX_ERR_INVALID_ARGUMENT` for
/// NULL arguments; `*out` is written only on `PHX_OK`. Any thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_last_reason(
    s: *const phx_socket_t,
    out: *mut phx_reason_t,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
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
/// is held; they may call any libphx function, `phx_socket_free` included (blocking ones
/// return `PHX_ERR_WRONG_THREAD`). They run on the runtime's worker threads, which serve many
/// sockets: a callback should return within microseconds and hand longer work to a thread of
/// its own (see "Threads" at the top of this header). A call already under way when the
/// handler is replaced finishes first; `free_user_data` of the old registration runs after it.
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
        let h = h.as_ref().map(|h| phx_socket_handler_ex_t::from(*h));
        install(s, h, user_data, free_user_data)
    })
}

/// `phx_socket_set_handler` with the extended callbacks (`on_log_record`): same rules,
/// ownership and threads. `h->size` must be set (see `phx_socket_handler_ex_t`);
/// `PHX_ERR_INVALID_ARGUMENT` if it is smaller than a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_set_handler_ex(
    s: *mut phx_socket_t,
    h: *const phx_socket_handler_ex_t,
    user_data: *mut c_void,
    free_user_data: phx_free_fn,
) -> phx_status_t {
    guard(|| install(s, read_sized(h)?, user_data, free_user_data))
}

unsafe fn install(
    s: *mut phx_socket_t,
    h: Option<phx_socket_handler_ex_t>,
    user_data: *mut c_void,
    free_user_data: phx_free_fn,
) -> super::util::FfiResult {
    let s = socket_arg(s)?;
    let registration = h.map(|h| Arc::new(SocketRegistration::new(h, user_data, free_user_data)));
    let old = std::mem::replace(&mut *lock(&s.core.user), registration);
    drop(old);
    Ok(())
}

/// Frees socket `s`: closes its connection, completes every pending operation with
/// `PHX_ERR_CLOSED`, releases every handler (each `free_user_data` is called) and frees the
/// event queue with the events still in it (events already taken stay valid). NULL is a
/// no-op. Channel handles of this socket stay valid (their operations return
/// `PHX_ERR_CLOSED`) until freed with `phx_channel_free`. `*_tagged` operations still pending
/// complete with `PHX_ERR_CLOSED` into the queue being freed, so no event reports them: treat
/// every tag not yet answered as `PHX_ERR_CLOSED`.
///
/// Calls on `s` already in progress on other threads when it begins (a blocking
/// `phx_socket_connect_wait` or `phx_socket_next_event` above all) keep what they use alive
/// and return `PHX_ERR_CLOSED`; starting a new call on `s` once `phx_socket_free(s)` has begun
/// is the caller's error (as using any freed pointer is).
///
/// Called outside a callback, it waits until the socket's task has stopped: once it returns,
/// no callback of this socket runs again. Called inside a callback (of this socket or
/// another), it does not wait: no handler callback of this socket starts any more, and pending
/// operations complete and handlers are released right after the current callback returns.
/// Any thread, once per socket.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_free(s: *mut phx_socket_t) {
    guard_or((), || {
        let Some(s) = arc_from_raw(s.cast_const()) else {
            return;
        };
        s.core.close();
        s.socket.shutdown();
        s.core.release();
        // The task has stopped: no provider call is under way or to come.
        drop(lock(&s.provider).take());
        drop(s);
    })
}
