//! Blocking conveniences: start an operation and wait for its completion on the calling
//! thread (a Mutex/Condvar oneshot). Refused on library threads, where waiting could
//! deadlock the socket the caller is waiting for.

#![allow(non_camel_case_types)]

use super::callbacks::CompletionSink;
use super::channel::{join_op, leave_op, push_op};
use super::handles::{live, phx_channel_t};
use super::status::phx_status_t;
use super::types::payload_parts;
use super::util::{
    box_from_raw, c_str, guard, guard_or, lock, opt_c_str, write_out, FfiResult, StrPack,
};
use crate::engine::runtime;
use crate::engine::{Body, ReplyRef, Status};
use std::ffi::c_char;
use std::sync::{Arc, Condvar, Mutex};

/// A server reply obtained by a blocking call, owned by the caller and freed with
/// `phx_response_free`. `status` is NUL-terminated UTF-8 (`"ok"`, `"error"`, ...), its length
/// beside it. The payload (the server's response) is NOT NUL-terminated, as no payload handed
/// to C is: use `payload_len`.
#[repr(C)]
pub struct phx_response_t {
    pub status: *const c_char,
    pub status_len: usize,
    /// A `PHX_PAYLOAD_*` value.
    pub payload_kind: u32,
    pub payload: *const u8,
    pub payload_len: usize,
}

/// The allocation behind a `phx_response_t *`: the public part first, then its storage.
#[repr(C)]
struct ResponseBox {
    response: phx_response_t,
    storage: Vec<u8>,
}

// SAFETY: the raw pointers point into `storage`, owned by the same box.
unsafe impl Send for ResponseBox {}

impl ResponseBox {
    fn new(reply: &ReplyRef<'_>) -> Box<Self> {
        let (payload_kind, payload) = payload_parts(&reply.response);
        let mut storage = Vec::with_capacity(reply.status.len() + 1 + payload.len());
        let mut pack = StrPack::new(&mut storage);
        let status = pack.push(reply.status.as_bytes());
        let body = pack.push_bytes(payload);
        let buf = pack.finish();
        let response = phx_response_t {
            status: status.ptr(buf),
            status_len: status.len(),
            payload_kind,
            payload: body.bytes_ptr(buf),
            payload_len: body.len(),
        };
        // The heap buffer does not move when the Vec does, so the pointers stay valid.
        Box::new(ResponseBox { response, storage })
    }
}

/// One operation's outcome, handed from the completing library thread to the waiter.
struct Oneshot {
    slot: Mutex<Option<(Status, Option<Box<ResponseBox>>)>>,
    done: Condvar,
}

impl Oneshot {
    fn new() -> Arc<Self> {
        Arc::new(Oneshot {
            slot: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    fn wait(&self) -> (Status, Option<Box<ResponseBox>>) {
        let mut slot = lock(&self.slot);
        loop {
            if let Some(outcome) = slot.take() {
                return outcome;
            }
            slot = self.done.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl CompletionSink for Arc<Oneshot> {
    fn complete(&self, status: Status, reply: Option<&ReplyRef<'_>>) {
        let response = reply.map(ResponseBox::new);
        *lock(&self.slot) = Some((status, response));
        self.done.notify_all();
    }
}

/// Runs `start` with a oneshot completion and waits for it.
fn run_and_wait(
    start: impl FnOnce(Arc<Oneshot>) -> FfiResult,
) -> FfiResult<(Status, Option<Box<ResponseBox>>)> {
    if runtime::on_library_thread() {
        return Err(phx_status_t::PHX_ERR_WRONG_THREAD);
    }
    let slot = Oneshot::new();
    start(slot.clone())?;
    Ok(slot.wait())
}

/// Turns an outcome into the function's status, handing the response to the caller.
unsafe fn deliver(
    (status, response): (Status, Option<Box<ResponseBox>>),
    out_response: *mut *mut phx_response_t,
) -> FfiResult {
    let status = phx_status_t::from(status);
    if let (Some(response), false) = (response, out_response.is_null()) {
        write_out(
            out_response,
            Box::into_raw(response).cast::<phx_response_t>(),
        );
    }
    match status {
        phx_status_t::PHX_OK => Ok(()),
        other => Err(other),
    }
}

/// Joins channel `c` (as `phx_channel_join`) and blocks until the first attempt completes;
/// returns its status (`PHX_OK`, `PHX_ERR_REPLY`, `PHX_ERR_TIMEOUT`, ...).
///
/// - `payload_json`: NULL means `{}`; borrowed for the call.
/// - `timeout_ms`: 0 for the socket's default (10 s).
/// - `out_response` (nullable): receives the server's response, owned by the caller and freed
///   with `phx_response_free`, on the two statuses that carry one, `PHX_OK` and
///   `PHX_ERR_REPLY` (the rule of every out-parameter); NULL: the response is discarded.
///
/// Returns `PHX_ERR_WRONG_THREAD` on a library thread (inside a callback), and the errors of
/// `phx_channel_join` for a join that cannot start. Any thread but library threads.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_join_wait(
    c: *mut phx_channel_t,
    payload_json: *const c_char,
    timeout_ms: u64,
    out_response: *mut *mut phx_response_t,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let payload = opt_c_str(payload_json)?;
        let outcome = run_and_wait(|target| join_op(c, payload, timeout_ms, target))?;
        deliver(outcome, out_response)
    })
}

/// Pushes `event` with a JSON payload on channel `c` (as `phx_channel_push`) and blocks until
/// it completes; returns its status. `out_response` as for `phx_channel_join_wait`.
/// Returns `PHX_ERR_WRONG_THREAD` on a library thread. Any thread but library threads.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_push_wait(
    c: *mut phx_channel_t,
    event: *const c_char,
    payload_json: *const c_char,
    timeout_ms: u64,
    out_response: *mut *mut phx_response_t,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let event = c_str(event)?;
        let payload = c_str(payload_json)?;
        let outcome = run_and_wait(|target| {
            push_op(c, event, Body::Json(payload.to_owned()), timeout_ms, target)
        })?;
        deliver(outcome, out_response)
    })
}

/// Leaves channel `c` (as `phx_channel_leave`) and blocks until the leave completes; returns
/// its status. Returns `PHX_ERR_WRONG_THREAD` on a library thread. Any thread but library
/// threads.
#[no_mangle]
pub unsafe extern "C" fn phx_channel_leave_wait(
    c: *mut phx_channel_t,
    timeout_ms: u64,
) -> phx_status_t {
    guard(|| {
        let c = live(c)?;
        let outcome = run_and_wait(|target| leave_op(c, timeout_ms, target))?;
        deliver(outcome, std::ptr::null_mut())
    })
}

/// Frees a response returned by a `*_wait` function, and everything it points to. NULL is a
/// no-op. Any thread.
#[no_mangle]
pub unsafe extern "C" fn phx_response_free(r: *mut phx_response_t) {
    guard_or((), || {
        // `phx_response_t` is the first field of the `ResponseBox` it was allocated as.
        drop(box_from_raw(r.cast::<ResponseBox>()));
    })
}
