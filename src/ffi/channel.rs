//! `phx_channel_t`'s entry points: taking and releasing handles, state, handlers, and the
//! channel operations in their callback and tagged forms (the blocking forms are in
//! `blocking`, over the same operations).

use super::callbacks::{
    callback_completion, phx_channel_handler_ex_t, phx_channel_handler_t, phx_free_fn,
    phx_reply_cb, read_sized, submit, CallbackSink, ChannelRegistration, CompletionSink,
};
use super::handles::{live, phx_channel_t, phx_socket_t, socket_arg};
use super::queue::QueueSink;
use super::status::phx_status_t;
use super::types::channel_state;
use super::util::{
    arc_from_raw, arc_into_raw, c_slice, c_str, guard, guard_or, handle_ref, op_timeout, opt_c_str,
    out_ptr, write_out, FfiResult, UserData,
};
use crate::engine::{Body, ChannelState};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

// ---- operations shared by the callback, tagged and blocking forms ----------------------------

pub(crate) fn join_op(
    c: &phx_channel_t,
    payload: Option<&str>,
    timeout_ms: u64,
    target: impl CompletionSink,
) -> FfiResult {
    let body = Body::Json(payload.unwrap_or("{}").to_owned());
    submit(target, |on_reply| {
        c.channel.join(body, op_timeout(timeout_ms), on_reply)
    })
    .map_err(phx_status_t::from)
}

pub(crate) fn push_op(
    c: &phx_channel_t,
    event: &str,
    body: Body,
    timeout_ms: u64,
    target: impl CompletionSink,
) -> FfiResult {
    submit(target, |on_reply| {
        c.channel
            .push(event, body, op_timeout(timeout_ms), on_reply)
    })
    .map_err(phx_status_t::from)
}

/// [`push_op`] completing through a C callback, with no allocation for the completion.
fn push_callback_op(
    c: &phx_channel_t,
    event: &str,
    body: Body,
    timeout_ms: u64,
    sink: CallbackSink,
) -> FfiResult {
    let on_reply = callback_completion(sink);
    c.channel
        .push_with(event, body, op_timeout(timeout_ms), on_reply)
        .map_err(phx_status_t::from)
}

pub(crate) fn leave_op(
    c: &phx_channel_t,
    timeout_ms: u64,
    target: impl CompletionSink,
) -> FfiResult {
    submit(target, |on_reply| {
        c.channel.leave(op_timeout(timeout_ms), on_reply)
    })
    .map_err(phx_status_t::from)
}

// ---- handles ------------------------------------------------------------------------------------

/// Writes to `*out` a handle to the channel of socket `s` for `topic`: the same channel while
/// it is not closed, a fresh one once it is (after a refused join, a completed leave,
/// `phx_socket_disconnect` or the server's `phx_close`), so a refused or left channel can be
/// joined again through a new handle. A channel that was never joined is released when its
/// last handle is freed.
///
/// - `topic`: NUL-terminated UTF-8, borrowed for the call.
/// - `out`: on `PHX_OK`, a new reference owned by the caller, released with
///   `phx_channel_free`. Two calls returning the same channel while the first handle is held
///   return the same pointer (each a reference of its own). The handle stays valid after the
///   socket is freed (its operations then return `PHX_ERR_CLOSED`). Written only on `PHX_OK`.
///
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL arguments or invalid UTF-8, `PHX_ERR_CLOSED`
/// once the socket's free has begun on another thread. Any thread, concurrently, callbacks
/// included.
#[no_mangle]
pub unsafe extern "C" fn phx_socket_channel(
    s: *mut phx_socket_t,
    topic: *const c_char,
    out: *mut *mut phx_channel_t,
) -> phx_status_t {
    guard(|| {
        let s = socket_arg(s)?;
        let out = out_ptr(out)?;
        let topic = c_str(topic)?;
        if s.core.is_closed() {
            return Err(phx_status_t::PHX_ERR_CLOSED);
        }
        let handle = s.core.handle_for(s.socket.channel(topic));
        write_out(out, arc_into_raw(handle));
        Ok(())
    })
}

/// The id of channel instance `c`, unique within its socket and never reused: the
/// `channel_id` of the events and tagged replies that concern it. Two instances of one topic
/// (an old one still leaving, a fresh one joining) have different ids. 0 for NULL. Any
/// thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_id(c: *const phx_channel_t) -> u64 {
    guard_or(0, || handle_ref(c).map_or(0, |c| c.hub.id))
}

/// Releases one reference to a channel handle. NULL is a no-op. Releasing the last reference
/// of a joined channel neither leaves it nor removes its callbacks: they stay until the
/// channel closes or the socket is freed; the last reference of a channel never joined
/// releases it. Any thread, concurrently (each reference is released once), callbacks
/// included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_free(c: *mut phx_channel_t) {
    guard_or((), || drop(arc_from_raw(c.cast_const())))
}

/// Writes the state of channel `c` (a `PHX_CHANNEL_*` value) to `*out_state`; after the
/// socket is freed that is `PHX_CHANNEL_CLOSED`. Returns `PHX_ERR_INVALID_ARGUMENT` for NULL
/// arguments; `*out_state` is written only on `PHX_OK`. Any thread, concurrently.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_state(
    c: *const phx_channel_t,
    out_state: *mut u32,
) -> phx_status_t {
    guard(|| {
        let c = handle_ref(c)?;
        let out = out_ptr(out_state)?;
        let state = if c.core.is_closed() {
            ChannelState::Closed
        } else {
            c.channel.state()
        };
        write_out(out, channel_state(state));
        Ok(())
    })
}

/// Installs the callbacks of channel `c`, replacing any installed before (`h` NULL: removes
/// them; `user_data` and `free_user_data` are then ignored).
///
/// - `h`: copied; borrowed for the call only.
/// - `free_user_data` (nullable): called exactly once with `user_data`, after the last call of
///   these callbacks: when they are replaced or removed, when the channel closes for good
///   (after its `PHX_CHANNEL_CLOSED` state callback), or when the socket is freed.
///
/// Callbacks run on libphx's threads, one at a time per socket, never while an internal lock
/// is held, and may call any libphx function (blocking ones return `PHX_ERR_WRONG_THREAD`).
///
/// Ownership: on `PHX_OK` the channel owns `user_data`; on an error nothing is consumed.
/// Returns `PHX_ERR_INVALID_ARGUMENT` for a NULL channel, `PHX_ERR_CLOSED` if the channel has
/// closed for good or its socket was freed (take a fresh handle with `phx_socket_channel`).
/// Any thread, concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_set_handler(
    c: *mut phx_channel_t,
    h: *const phx_channel_handler_t,
    user_data: *mut c_void,
    free_user_data: phx_free_fn,
) -> phx_status_t {
    guard(|| {
        let h = h.as_ref().map(|h| phx_channel_handler_ex_t::from(*h));
        install(c, h, user_data, free_user_data)
    })
}

/// `phx_channel_set_handler` with the extended callbacks (presence, rejoin awareness): same
/// rules, ownership and threads. `h->size` must be set (see `phx_channel_handler_ex_t`);
/// `PHX_ERR_INVALID_ARGUMENT` if it is smaller than a `size_t`.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_set_handler_ex(
    c: *mut phx_channel_t,
    h: *const phx_channel_handler_ex_t,
    user_data: *mut c_void,
    free_user_data: phx_free_fn,
) -> phx_status_t {
    guard(|| install(c, read_sized(h)?, user_data, free_user_data))
}

unsafe fn install(
    c: *mut phx_channel_t,
    h: Option<phx_channel_handler_ex_t>,
    user_data: *mut c_void,
    free_user_data: phx_free_fn,
) -> FfiResult {
    {
        let c = live(c)?;
        let registration =
            h.map(|h| Arc::new(ChannelRegistration::new(h, user_data, free_user_data)));
        match c.hub.replace(registration) {
            Ok(old) => drop(old),
            Err(refused) => {
                // Nothing is consumed on an error: `user_data` stays the caller's.
                if let Some(r) = refused.and_then(|r| Arc::try_unwrap(r).ok()) {
                    r.disarm();
                }
                return Err(phx_status_t::PHX_ERR_CLOSED);
            }
        }
        Ok(())
    }
}

/// Joins channel `c` (one join per channel instance).
///
/// - `payload_json`: NUL-terminated JSON text, borrowed for the call; NULL means `{}`. The
///   payload is kept for automatic rejoins.
/// - `timeout_ms`: 0 for the socket's default (10 s).
/// - `cb` (nullable) and `user_data`: the completion, called exactly once on a library thread
///   with the result of the first attempt if this function returns `PHX_OK`, never if it
///   returns an error. Later automatic rejoins report through `on_rejoin` / `PHX_EVENT_REJOIN`.
///
/// Ownership: the payload is copied; `user_data` stays the caller's (libphx only hands it to
/// `cb`, so release it there, or after an error return). Nothing is returned to free.
///
/// Returns `PHX_OK` when the join was started (the channel is then `PHX_CHANNEL_JOINING`);
/// `PHX_ERR_INVALID_ARGUMENT` for a NULL channel, invalid UTF-8 or invalid JSON;
/// `PHX_ERR_STATE` for a second join, a join after `phx_channel_leave` or on a closed
/// channel; `PHX_ERR_CLOSED` if the socket was freed. Any thread, concurrently, callbacks
/// included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_join(
    c: *mut phx_channel_t,
    payload_json: *const c_char,
    timeout_ms: u64,
    cb: phx_reply_cb,
    user_data: *mut c_void,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let payload = opt_c_str(payload_json)?;
        join_op(
            c,
            payload,
            timeout_ms,
            CallbackSink(cb, UserData(user_data)),
        )
    })
}

/// Pushes `event` with a JSON payload on channel `c`: sent at once when joined, buffered
/// while joining or errored (sent in order once joined).
///
/// - `event`, `payload_json`: NUL-terminated UTF-8, borrowed for the call (both required,
///   both copied).
/// - `timeout_ms`: 0 for the socket's default (10 s), counted from this call.
/// - `cb` (nullable), `user_data`: the completion, as for `phx_channel_join`.
///
/// Returns `PHX_ERR_INVALID_ARGUMENT` for NULL arguments, invalid UTF-8 or invalid JSON;
/// `PHX_ERR_STATE` before `phx_channel_join` or on a closed or leaving channel;
/// `PHX_ERR_CLOSED` if the socket was freed. Any thread, concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_push(
    c: *mut phx_channel_t,
    event: *const c_char,
    payload_json: *const c_char,
    timeout_ms: u64,
    cb: phx_reply_cb,
    user_data: *mut c_void,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let event = c_str(event)?;
        let body = Body::Json(c_str(payload_json)?.to_owned());
        let target = CallbackSink(cb, UserData(user_data));
        push_callback_op(c, event, body, timeout_ms, target)
    })
}

/// Pushes `event` with a binary payload on channel `c` (a binary frame); like
/// `phx_channel_push` otherwise.
///
/// - `data`, `len`: the bytes, copied; `(NULL, 0)` is an empty payload, `(NULL, len > 0)` an
///   invalid argument.
///
/// Returns `PHX_ERR_INVALID_ARGUMENT` also when the topic or `event` is longer than 255 bytes
/// (the binary frame format's limit). Any thread, concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_push_binary(
    c: *mut phx_channel_t,
    event: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
    cb: phx_reply_cb,
    user_data: *mut c_void,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let event = c_str(event)?;
        let body = Body::Binary(c_slice(data, len)?.to_vec());
        let target = CallbackSink(cb, UserData(user_data));
        push_callback_op(c, event, body, timeout_ms, target)
    })
}

/// Leaves channel `c`: sends `phx_leave` and waits for the reply at most `timeout_ms` (0: the
/// socket's leave timeout, 5 s); the channel is closed either way. A join still pending
/// completes with `PHX_ERR_LEFT_BEFORE_JOIN`, buffered pushes with `PHX_ERR_CLOSED`.
///
/// `cb` (nullable), `user_data`: the completion, as for `phx_channel_join` (`PHX_OK` with a
/// NULL reply when there was nothing to tell the server). When it returns `PHX_OK` the channel
/// is `PHX_CHANNEL_LEAVING`, or `PHX_CHANNEL_CLOSED` if it was never joined or is closed
/// already. Returns `PHX_ERR_STATE` if leave was already called on this channel,
/// `PHX_ERR_CLOSED` if the socket was freed, `PHX_ERR_INVALID_ARGUMENT` for NULL. Any thread,
/// concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_leave(
    c: *mut phx_channel_t,
    timeout_ms: u64,
    cb: phx_reply_cb,
    user_data: *mut c_void,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        leave_op(c, timeout_ms, CallbackSink(cb, UserData(user_data)))
    })
}

// ---- tagged forms ---------------------------------------------------------------------------------

/// The completion that reports into the socket's event queue.
fn tagged(c: &phx_channel_t, tag: u64) -> FfiResult<QueueSink> {
    Ok(QueueSink {
        queue: c.core.queue()?,
        tag,
        channel_id: c.hub.id,
        topic: c.hub.topic.clone(),
    })
}

/// `phx_channel_join` completing into the socket's event queue: the outcome arrives as a
/// `PHX_EVENT_REPLY` carrying `tag` (exactly once if this returns `PHX_OK`, never otherwise).
/// Returns `PHX_ERR_STATE` also when events are not enabled on the socket. Any thread,
/// concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_join_tagged(
    c: *mut phx_channel_t,
    payload_json: *const c_char,
    timeout_ms: u64,
    tag: u64,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let payload = opt_c_str(payload_json)?;
        join_op(c, payload, timeout_ms, tagged(c, tag)?)
    })
}

/// `phx_channel_push` completing into the socket's event queue as a `PHX_EVENT_REPLY`
/// carrying `tag` (see `phx_channel_join_tagged`). Any thread, concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_push_tagged(
    c: *mut phx_channel_t,
    event: *const c_char,
    payload_json: *const c_char,
    timeout_ms: u64,
    tag: u64,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let event = c_str(event)?;
        let body = Body::Json(c_str(payload_json)?.to_owned());
        push_op(c, event, body, timeout_ms, tagged(c, tag)?)
    })
}

/// `phx_channel_push_binary` completing into the socket's event queue as a
/// `PHX_EVENT_REPLY` carrying `tag` (see `phx_channel_join_tagged`). Any thread, concurrently,
/// callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_push_binary_tagged(
    c: *mut phx_channel_t,
    event: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
    tag: u64,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let event = c_str(event)?;
        let body = Body::Binary(c_slice(data, len)?.to_vec());
        push_op(c, event, body, timeout_ms, tagged(c, tag)?)
    })
}

/// `phx_channel_leave` completing into the socket's event queue as a `PHX_EVENT_REPLY`
/// carrying `tag` (see `phx_channel_join_tagged`). Any thread, concurrently, callbacks included.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_leave_tagged(
    c: *mut phx_channel_t,
    timeout_ms: u64,
    tag: u64,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        leave_op(c, timeout_ms, tagged(c, tag)?)
    })
}
