//! Owned delivery through a socket: enabling the event queue ([`super::queue`]), its
//! readiness descriptor, taking and freeing events.

use super::callbacks::{phx_free_fn, phx_wake_fn, WakeRegistration};
use super::event_store::OwnedEvent;
use super::handles::{phx_socket_t, socket_arg};
use super::queue::{phx_event_t, EventQueue, Next};
use super::status::phx_status_t;
use super::util::{guard, guard_or, out_ptr, write_out, FfiResult};
use crate::engine::runtime;
use std::ffi::{c_int, c_void};

// ---- exported functions ---------------------------------------------------------------------------

/// Turns on owned delivery for socket `s`: from now on its state changes, and every channel's
/// messages, state changes and rejoin results, are also queued as `phx_event_t`s (in addition
/// to any callbacks registered), and `*_tagged` operations complete into the queue.
///
/// - `capacity` (> 0): how many events the queue holds; it also holds at most the bytes set
///   by `phx_options_set_max_event_queue_bytes` (32 MiB by default). When either is reached,
///   messages and state events are dropped and counted, and a `PHX_EVENT_OVERFLOW` event
///   carrying the count is queued as soon as there is room. `PHX_EVENT_REPLY` events are
///   never dropped (they may exceed both bounds).
/// - `wake` (nullable): called with `user_data` on a library thread, with no lock held, when
///   events were added: once per batch of events the socket's task produces (a burst of
///   messages read together wakes the consumer once), not once per event. It must not block;
///   it may call any libphx function. Take everything queued on each call
///   (`phx_socket_next_events` with timeout 0 until `PHX_ERR_AGAIN`).
///
/// The readiness descriptor (`phx_socket_event_fd`), blocked `phx_socket_next_event(s)`
/// callers and `wake` are all told at the end of such a batch: one descriptor write and one
/// wake-up per batch.
/// - `free_user_data` (nullable): called exactly once with `user_data` after the last call of
///   `wake`, when the socket is freed.
///
/// Memory: events are written one after another into shared blocks of 8 KiB (an event larger
/// than 2 KiB gets a block of its own), which are reused once every event in them is freed, so
/// queueing an event allocates nothing in the steady state. Each event is still freed on its
/// own, but a block is returned only when its last event is freed: an event kept for long keeps
/// up to 8 KiB allocated. A socket whose events are all freed keeps at most two blocks.
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
        let max_bytes = s.socket.config().max_event_queue_bytes;
        let queue = EventQueue::new(capacity, max_bytes, Some(registration));
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
/// The descriptor is made by the first call (readable at once if events are already queued),
/// so a socket whose consumer never asks for it holds none and pays no system call per batch.
///
/// Returns `PHX_ERR_STATE` before `phx_socket_events_enable` (or where the platform has no
/// such descriptor, or it cannot be made), `PHX_ERR_INVALID_ARGUMENT` for NULL arguments. `*out_fd` is written only
/// on `PHX_OK`. Any thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_event_fd(
    s: *mut super::handles::phx_socket_t,
    out_fd: *mut c_int,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        let out = out_ptr(out_fd)?;
        let fd = queue_of(&s)?.fd().ok_or(phx_status_t::PHX_ERR_STATE)?;
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
        let queue = queue_of(&s)?;
        if timeout_ms > 0 && runtime::on_library_thread() {
            return Err(phx_status_t::PHX_ERR_WRONG_THREAD);
        }
        take(queue, timeout_ms, out)
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
        let queue = queue_of(&s)?;
        take(queue, 0, out)
    })
}

/// Takes up to `max` of the oldest queued events of socket `s` at once, waiting up to
/// `timeout_ms` milliseconds for the first (0: do not wait; `UINT64_MAX`: about forever) and
/// never for more: one lock and at most one descriptor update for the whole batch.
///
/// `events` (borrowed for the call) has room for `max` (> 0) pointers. On `PHX_OK`,
/// `events[0 .. *out_n]` hold `*out_n >= 1` events, oldest first, each owned by the caller
/// exactly as one from `phx_socket_next_event`: free each with `phx_event_free` (or all with
/// `phx_events_free`), in any order, on any thread; they stay valid after the socket is freed.
/// The rest of `events` is not written. `*out_n` is 0 on every other return:
/// `PHX_ERR_AGAIN` when no event arrived in time, `PHX_ERR_CLOSED` if the socket is freed
/// meanwhile, `PHX_ERR_STATE` before `phx_socket_events_enable`, `PHX_ERR_WRONG_THREAD` for a
/// non-zero timeout on a library thread (inside a callback), `PHX_ERR_INVALID_ARGUMENT` for
/// NULL arguments or `max == 0` (then `*out_n` is written if `out_n` is not NULL). Any thread,
/// concurrently (each event goes to one caller).
///
/// With a wake callback (say, Dart's `NativeCallable.listener`, or a loop's own wake-up): on
/// each wake-up, call it with timeout 0 until it returns `PHX_ERR_AGAIN`.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_next_events(
    s: *mut super::handles::phx_socket_t,
    events: *mut *mut phx_event_t,
    max: usize,
    timeout_ms: u64,
    out_n: *mut usize,
) -> phx_status_t {
    guard(|| {
        let n = out_ptr(out_n)?;
        write_out(n, 0);
        let s = socket_arg(s)?;
        if events.is_null() || max == 0 {
            return Err(phx_status_t::PHX_ERR_INVALID_ARGUMENT);
        }
        let queue = queue_of(&s)?;
        if timeout_ms > 0 && runtime::on_library_thread() {
            return Err(phx_status_t::PHX_ERR_WRONG_THREAD);
        }
        let mut taken = 0;
        let next = queue.next_batch(timeout_ms, max, |ev| {
            // SAFETY: the caller gave room for `max` pointers; at most `max` are taken.
            events.add(taken).write(ev.into_raw());
            taken += 1;
        });
        write_out(n, taken);
        match next {
            _ if taken > 0 => Ok(()),
            Next::Closed => Err(phx_status_t::PHX_ERR_CLOSED),
            _ => Err(phx_status_t::PHX_ERR_AGAIN),
        }
    })
}

/// Frees `n` events taken by `phx_socket_next_events` (or the single-event functions):
/// `events[0 .. n]`, each as `phx_event_free` (NULL entries are skipped). `events` itself is
/// the caller's and is not freed; NULL with `n == 0` is a no-op. Any thread, once per event.
#[no_mangle]
pub unsafe extern "C" fn phx_events_free(events: *const *mut phx_event_t, n: usize) {
    guard_or((), || {
        if events.is_null() {
            return;
        }
        for i in 0..n {
            drop(OwnedEvent::from_raw(*events.add(i)));
        }
    })
}

/// The socket's queue, borrowed (the caller holds a reference to the socket, which owns it).
fn queue_of(s: &phx_socket_t) -> FfiResult<&EventQueue> {
    s.core
        .events
        .get()
        .map(|q| &**q)
        .ok_or(phx_status_t::PHX_ERR_STATE)
}

unsafe fn take(queue: &EventQueue, timeout_ms: u64, out: *mut *mut phx_event_t) -> FfiResult {
    match queue.next(timeout_ms) {
        Next::Event(ev) => {
            write_out(out, ev.into_raw());
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
        drop(OwnedEvent::from_raw(e));
    })
}
