//! Owned delivery through a socket: enabling the event queue ([`super::queue`]), its
//! readiness descriptor, taking and freeing events.

use super::callbacks::{phx_free_fn, phx_wake_fn, WakeRegistration};
use super::handles::socket_arg;
use super::queue::{phx_event_t, EventBox, EventQueue, Next};
use super::status::phx_status_t;
use super::util::{box_from_raw, guard, guard_or, out_ptr, write_out, FfiResult};
use crate::engine::runtime;
use std::ffi::{c_int, c_void};

// ---- exported functions ---------------------------------------------------------------------------

/// Turns on owned delivery for socket `s`: from now on its state changes, and every channel's
/// messages, state changes and rejoin results, are also queued as `phx_event_t`s (in addition
/// to any callbacks registered), and `*_tagged` operations complete into the queue.
///
/// - `capacity` (> 0): how many events the queue holds. When it is full, messages and state
///   events are dropped and counted, and a `PHX_EVENT_OVERFLOW` event carrying the count is
///   queued as soon as there is room. `PHX_EVENT_REPLY` events are never dropped (they may
///   exceed the capacity).
/// - `wake` (nullable): called with `user_data` on a library thread, with no lock held, each
///   time an event is added. It must not block; it may call any libphx function.
/// - `free_user_data` (nullable): called exactly once with `user_data` after the last call of
///   `wake`, when the socket is freed.
///
/// Ownership: on `PHX_OK` the socket owns `user_data` (released through `free_user_data`);
/// on any error nothing is consumed. Returns `PHX_ERR_INVALID_ARGUMENT` for a NULL socket or a
/// zero capacity, `PHX_ERR_STATE` if events are already enabled. Any thread, concurrently (one
/// call enables the queue, the others get `PHX_ERR_STATE`).
#[no_mangle]
pub unsafe extern "C" fn phx_socket_events_enable(
    s: *mut super::handles::phx_socket_t,
    capacity: usize,
    wake: phx_wake_fn,
    user_data: *mut c_void,
    free_user_data: phx_free_fn,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        if capacity == 0 {
            return Err(phx_status_t::PHX_ERR_INVALID_ARGUMENT);
        }
        let registration = WakeRegistration::new(wake, user_data, free_user_data);
        let queue = EventQueue::new(capacity, Some(registration));
        if let Err(queue) = s.core.events.set(queue) {
            if let Some(registration) = queue.take_wake() {
                registration.disarm();
            }
            return Err(phx_status_t::PHX_ERR_STATE);
        }
        Ok(())
    })
}

/// Writes to `*out_fd` a file descriptor that is readable while socket `s` has events queued
/// (use it with poll/epoll/select; never read from or write to it). It is owned by the socket:
/// do not close it; it is valid until `phx_socket_free(s)`.
///
/// Returns `PHX_ERR_STATE` before `phx_socket_events_enable` (or where the platform has no
/// such descriptor), `PHX_ERR_INVALID_ARGUMENT` for NULL arguments. `*out_fd` is written only
/// on `PHX_OK`. Any thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_event_fd(
    s: *mut super::handles::phx_socket_t,
    out_fd: *mut c_int,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        let out = out_ptr(out_fd)?;
        let fd = s.core.queue()?.fd().ok_or(phx_status_t::PHX_ERR_STATE)?;
        write_out(out, fd);
        Ok(())
    })
}

/// Takes the oldest queued event of socket `s`, waiting up to `timeout_ms` milliseconds for
/// one (0: do not wait; `UINT64_MAX`: about forever).
///
/// On `PHX_OK` writes `*out`: the caller owns the event and frees it with `phx_event_free`
/// (it stays valid after the socket is freed). Returns `PHX_ERR_AGAIN` when no event arrived in
/// time, `PHX_ERR_CLOSED` if the socket is freed meanwhile, `PHX_ERR_STATE` before
/// `phx_socket_events_enable`, `PHX_ERR_WRONG_THREAD` when called with a non-zero timeout on a
/// library thread (inside a callback), `PHX_ERR_INVALID_ARGUMENT` for NULL arguments. `*out` is
/// written only on `PHX_OK`. Any thread, concurrently (each event goes to one caller).
#[no_mangle]
pub unsafe extern "C" fn phx_socket_next_event(
    s: *mut super::handles::phx_socket_t,
    timeout_ms: u64,
    out: *mut *mut phx_event_t,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        let out = out_ptr(out)?;
        let queue = s.core.queue()?;
        if timeout_ms > 0 && runtime::on_library_thread() {
            return Err(phx_status_t::PHX_ERR_WRONG_THREAD);
        }
        take(&queue, timeout_ms, out)
    })
}

/// Takes the oldest queued event of socket `s` without waiting: `phx_socket_next_event` with
/// a timeout of 0, allowed on every thread (callbacks included). `PHX_ERR_AGAIN` when the
/// queue is empty. On `PHX_OK` the caller owns `*out` and frees it with `phx_event_free`;
/// `*out` is written only on `PHX_OK`.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_try_event(
    s: *mut super::handles::phx_socket_t,
    out: *mut *mut phx_event_t,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        let out = out_ptr(out)?;
        let queue = s.core.queue()?;
        take(&queue, 0, out)
    })
}

unsafe fn take(queue: &EventQueue, timeout_ms: u64, out: *mut *mut phx_event_t) -> FfiResult {
    match queue.next(timeout_ms) {
        Next::Event(ev) => {
            write_out(out, Box::into_raw(ev).cast::<phx_event_t>());
            Ok(())
        }
        Next::Empty => Err(phx_status_t::PHX_ERR_AGAIN),
        Next::Closed => Err(phx_status_t::PHX_ERR_CLOSED),
    }
}

/// Frees an event returned by `phx_socket_next_event` or `phx_socket_try_event`, and
/// everything it points to. NULL is a no-op. Any thread, once per event.
#[no_mangle]
pub unsafe extern "C" fn phx_event_free(e: *mut phx_event_t) {
    guard_or((), || {
        // `phx_event_t` is the first field of the `EventBox` it was allocated as.
        drop(box_from_raw(e.cast::<EventBox>()));
    })
}
