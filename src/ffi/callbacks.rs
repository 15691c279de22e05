//! Callback registrations and operation completions: the bottom layer of the C surface above
//! the plain types (it knows no handle, queue or waiter).
//!
//! A registration holds the caller's function pointers, `user_data` and `free_user_data`;
//! its `Drop` calls `free_user_data` exactly once, so it is released by whoever drops the
//! last reference, after the last call. A completion is where one join, push or leave reports,
//! any [`CompletionSink`]: a C callback ([`CallbackSink`], here), a blocking waiter or the
//! socket's event queue (each in its own module). [`submit`] makes sure it reports exactly
//! once even when the engine discards an operation it had accepted. Pushes, the per-message
//! operation, skip it: their C callback or event-queue completion rides in the engine's
//! allocation-free `RawCompletion` (a function and two words), which has the same
//! exactly-once rule.

#![allow(non_camel_case_types)]

use super::status::phx_status_t;
use super::sync::{Arc, AtomicU8};
use super::types::{
    channel_state, log_level, phx_message_t, phx_reason_t, phx_reply_t, socket_state, with_c_text,
    with_message, with_reply,
};
use super::util::{contain, FfiResult, UserData};
use crate::engine::runtime;
use crate::engine::{
    ChannelState, Completion, DisconnectReason, LogLevel, Message, OnReply, RawCompletion,
    ReplyRef, SocketState, Status,
};
use std::ffi::{c_char, c_void};
use std::sync::atomic::Ordering;

/// Releases a registration's `user_data`; called exactly once, after the last call that
/// receives that `user_data`.
pub type phx_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Completion of a join, push or leave: called exactly once, on a library thread, unless the
/// call that started the operation returned an error. `status` is a `PHX_*` status value;
/// `reply` (borrowed for the duration of the call) is non-NULL for `PHX_ERR_REPLY` and for
/// `PHX_OK` answered by the server (a leave that had nothing to tell the server completes
/// `PHX_OK` with `reply` NULL), NULL for every other status.
pub type phx_reply_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, status: u32, reply: *const phx_reply_t)>;

/// Data-less wake-up of the event queue: "an event was added". Called on a library thread,
/// with no lock held; it should only signal the consumer (which then calls
/// `phx_socket_try_event` until `PHX_ERR_AGAIN`).
pub type phx_wake_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A socket's callbacks. Any member may be NULL (that event is not reported). The struct is
/// copied by `phx_socket_set_handler`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct phx_socket_handler_t {
    /// The state changed (a `PHX_SOCKET_*` value). `reason` (borrowed for the call) is set
    /// when the socket becomes `PHX_SOCKET_RECONNECTING` or `PHX_SOCKET_DISCONNECTED` for a
    /// known reason, NULL otherwise.
    pub on_state: Option<
        unsafe extern "C" fn(user_data: *mut c_void, state: u32, reason: *const phx_reason_t),
    >,
    /// A log line: `level` is a `PHX_LOG_*` value, `message` NUL-terminated UTF-8 borrowed
    /// for the call.
    pub on_log:
        Option<unsafe extern "C" fn(user_data: *mut c_void, level: u32, message: *const c_char)>,
}

/// A channel's callbacks. Any member may be NULL. The struct is copied by
/// `phx_channel_set_handler`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct phx_channel_handler_t {
    /// An application message, in arrival order (control events are never delivered).
    pub on_message: Option<unsafe extern "C" fn(user_data: *mut c_void, msg: *const phx_message_t)>,
    /// The channel's state changed (a `PHX_CHANNEL_*` value).
    pub on_state: Option<unsafe extern "C" fn(user_data: *mut c_void, state: u32)>,
    /// An automatic rejoin (after a reconnect, `phx_error` or a join timeout) completed;
    /// `status` and `reply` as for `phx_reply_cb`.
    pub on_rejoin: Option<
        unsafe extern "C" fn(user_data: *mut c_void, status: u32, reply: *const phx_reply_t),
    >,
}

/// A socket's callbacks, extended form (`phx_socket_set_handler_ex`): the members of
/// `phx_socket_handler_t` and those added since. Set `size` to
/// `sizeof(phx_socket_handler_ex_t)`: a library built before a member was added ignores it,
/// and members beyond `size` count as NULL, so old and new programs and libraries mix.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct phx_socket_handler_ex_t {
    /// `sizeof(phx_socket_handler_ex_t)` as the caller was compiled.
    pub size: usize,
    /// As in `phx_socket_handler_t`.
    pub on_state: Option<
        unsafe extern "C" fn(user_data: *mut c_void, state: u32, reason: *const phx_reason_t),
    >,
    /// As in `phx_socket_handler_t` (not called for a line `on_log_record` receives).
    pub on_log:
        Option<unsafe extern "C" fn(user_data: *mut c_void, level: u32, message: *const c_char)>,
    /// A log line with its target: `level` a `PHX_LOG_*` value, `target` the part of libphx it
    /// comes from (`"phx::socket"`, `"phx::protocol"`, ...), `message` the text; both
    /// NUL-terminated UTF-8 borrowed for the call. When set, `on_log` is not called. Lines
    /// above the level set by `phx_options_set_log_level` are not reported.
    pub on_log_record: Option<
        unsafe extern "C" fn(
            user_data: *mut c_void,
            level: u32,
            target: *const c_char,
            message: *const c_char,
        ),
    >,
}

/// One change to a channel's presence list (`on_presence`). Every pointer is borrowed for the
/// duration of the callback only; strings are NUL-terminated UTF-8 with their lengths (NUL
/// excluded). Metas are JSON arrays of the metas' objects (each with its `phx_ref`).
#[repr(C)]
pub struct phx_presence_change_t {
    /// `PHX_PRESENCE_JOIN` or `PHX_PRESENCE_LEAVE`.
    pub kind: u32,
    /// The presence key (a user id, say).
    pub key: *const c_char,
    pub key_len: usize,
    /// The key's metas: for a join, before the join (NULL, length 0, when the key was absent,
    /// as phoenix.js's `onJoin` gets `undefined`); for a leave, after it (`[]` when the key is
    /// gone).
    pub current: *const c_char,
    pub current_len: usize,
    /// The metas that joined (`PHX_PRESENCE_JOIN`) or left (`PHX_PRESENCE_LEAVE`).
    pub metas: *const c_char,
    pub metas_len: usize,
}

/// `phx_presence_change_t.kind`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum phx_presence_kind_t {
    PHX_PRESENCE_JOIN = 1,
    PHX_PRESENCE_LEAVE = 2,
}

/// A channel's callbacks, extended form (`phx_channel_set_handler_ex`): the members of
/// `phx_channel_handler_t` and those added since. Set `size` to
/// `sizeof(phx_channel_handler_ex_t)` (see `phx_socket_handler_ex_t`). Any member may be NULL.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct phx_channel_handler_ex_t {
    /// `sizeof(phx_channel_handler_ex_t)` as the caller was compiled.
    pub size: usize,
    /// As in `phx_channel_handler_t`.
    pub on_message: Option<unsafe extern "C" fn(user_data: *mut c_void, msg: *const phx_message_t)>,
    /// As in `phx_channel_handler_t`.
    pub on_state: Option<unsafe extern "C" fn(user_data: *mut c_void, state: u32)>,
    /// As in `phx_channel_handler_t`.
    pub on_rejoin: Option<
        unsafe extern "C" fn(user_data: *mut c_void, status: u32, reply: *const phx_reply_t),
    >,
    /// Metas joined or left a key of the presence list, in the order phoenix.js's
    /// `onJoin`/`onLeave` report them, after the list (`phx_channel_presence`) was updated for
    /// the whole frame.
    pub on_presence:
        Option<unsafe extern "C" fn(user_data: *mut c_void, change: *const phx_presence_change_t)>,
    /// A `presence_state` or `presence_diff` was folded into the list (after its
    /// `on_presence` calls), as phoenix.js's `onSync`.
    pub on_presence_sync: Option<unsafe extern "C" fn(user_data: *mut c_void)>,
    /// An automatic rejoin succeeded (right after `on_rejoin` with `PHX_OK`): `reply` is the
    /// server's join reply (borrowed for the call); `missed` is true when the channel had
    /// been joined before, so messages sent meanwhile were lost: resynchronise.
    pub on_rejoined: Option<
        unsafe extern "C" fn(user_data: *mut c_void, reply: *const phx_reply_t, missed: bool),
    >,
}

impl From<phx_socket_handler_t> for phx_socket_handler_ex_t {
    fn from(h: phx_socket_handler_t) -> Self {
        phx_socket_handler_ex_t {
            size: std::mem::size_of::<Self>(),
            on_state: h.on_state,
            on_log: h.on_log,
            on_log_record: None,
        }
    }
}

impl From<phx_channel_handler_t> for phx_channel_handler_ex_t {
    fn from(h: phx_channel_handler_t) -> Self {
        phx_channel_handler_ex_t {
            size: std::mem::size_of::<Self>(),
            on_message: h.on_message,
            on_state: h.on_state,
            on_rejoin: h.on_rejoin,
            on_presence: None,
            on_presence_sync: None,
            on_rejoined: None,
        }
    }
}

/// Reads a caller's optional sized struct (first member `size_t size`): `None` for NULL, else
/// the members within `size` with the rest zeroed (NULL callbacks).
/// `PHX_ERR_INVALID_ARGUMENT` for a `size` too small to hold `size` itself.
///
/// # Safety
/// `p` is NULL or points to at least `size` readable bytes; `T` is a `repr(C)` struct of a
/// `usize` then nullable function pointers (all-zero is a valid value).
pub(crate) unsafe fn read_sized<T: Copy>(p: *const T) -> FfiResult<Option<T>> {
    if p.is_null() {
        return Ok(None);
    }
    let size = std::ptr::read_unaligned(p.cast::<usize>());
    if size < std::mem::size_of::<usize>() {
        return Err(phx_status_t::PHX_ERR_INVALID_ARGUMENT);
    }
    let mut out = std::mem::MaybeUninit::<T>::zeroed();
    let n = size.min(std::mem::size_of::<T>());
    std::ptr::copy_nonoverlapping(p.cast::<u8>(), out.as_mut_ptr().cast::<u8>(), n);
    Ok(Some(out.assume_init()))
}

/// The caller's callbacks of one kind plus `user_data`; dropping the last reference calls
/// `free_user_data`.
pub(crate) struct Registration<H> {
    pub(crate) callbacks: H,
    pub(crate) user_data: UserData,
    free: phx_free_fn,
}

impl<H> Registration<H> {
    pub(crate) fn new(callbacks: H, user_data: *mut c_void, free: phx_free_fn) -> Self {
        Registration {
            callbacks,
            user_data: UserData(user_data),
            free,
        }
    }

    /// Drops the registration without calling `free_user_data` (ownership stays with the
    /// caller, for a call that fails).
    pub(crate) fn disarm(mut self) {
        self.free = None;
    }
}

impl<H> Drop for Registration<H> {
    fn drop(&mut self) {
        if let Some(free) = self.free.take() {
            let user_data = self.user_data.0;
            // SAFETY: the caller's function, with its own pointer, called exactly once.
            contain(|| unsafe { free(user_data) });
        }
    }
}

pub(crate) type SocketRegistration = Registration<phx_socket_handler_ex_t>;
pub(crate) type ChannelRegistration = Registration<phx_channel_handler_ex_t>;
pub(crate) type WakeRegistration = Registration<phx_wake_fn>;

impl SocketRegistration {
    pub(crate) fn on_state(&self, state: SocketState, reason: Option<&DisconnectReason>) {
        if let Some(f) = self.callbacks.on_state {
            let reason = reason.map(|r| phx_reason_t::from_engine(Some(r)));
            let ptr = reason
                .as_ref()
                .map_or(std::ptr::null(), |r| r as *const phx_reason_t);
            // SAFETY: the caller's callback; `ptr` lives until it returns.
            unsafe { f(self.user_data.0, socket_state(state), ptr) }
        }
    }

    pub(crate) fn on_log(&self, level: LogLevel, target: &str, message: &str) {
        if let Some(f) = self.callbacks.on_log_record {
            // A log line allocates already; the target is a short static name.
            let target = std::ffi::CString::new(target).unwrap_or_default();
            // SAFETY: the caller's callback; both texts live until the call returns.
            return with_c_text(message, |m| unsafe {
                f(self.user_data.0, log_level(level), target.as_ptr(), m)
            });
        }
        if let Some(f) = self.callbacks.on_log {
            // SAFETY: as above; the text lives until the call returns.
            with_c_text(message, |text| unsafe {
                f(self.user_data.0, log_level(level), text)
            })
        }
    }
}

impl ChannelRegistration {
    pub(crate) fn on_message(&self, message: &Message<'_>) {
        if let Some(f) = self.callbacks.on_message {
            // SAFETY: the message view lives until the call returns.
            with_message(message, |m| unsafe { f(self.user_data.0, m) })
        }
    }

    pub(crate) fn on_state(&self, state: ChannelState) {
        if let Some(f) = self.callbacks.on_state {
            // SAFETY: the caller's callback.
            unsafe { f(self.user_data.0, channel_state(state)) }
        }
    }

    pub(crate) fn on_rejoin(&self, status: Status, reply: Option<ReplyRef<'_>>) {
        if let Some(f) = self.callbacks.on_rejoin {
            let code = super::status::phx_status_t::from(status) as u32;
            // SAFETY: the reply view lives until the call returns.
            with_reply(reply.as_ref(), |r| unsafe { f(self.user_data.0, code, r) })
        }
    }
}

impl ChannelRegistration {
    pub(crate) fn on_presence(&self, change: &crate::engine::PresenceChange) {
        if let Some(f) = self.callbacks.on_presence {
            // SAFETY: the caller's callback; the view borrows `change` until it returns.
            with_presence_change(change, |c| unsafe { f(self.user_data.0, c) })
        }
    }

    pub(crate) fn on_presence_sync(&self) {
        if let Some(f) = self.callbacks.on_presence_sync {
            // SAFETY: the caller's callback.
            unsafe { f(self.user_data.0) }
        }
    }

    pub(crate) fn on_rejoined(&self, reply: &ReplyRef<'_>, missed: bool) {
        if let Some(f) = self.callbacks.on_rejoined {
            // SAFETY: the reply view lives until the call returns.
            with_reply(Some(reply), |r| unsafe { f(self.user_data.0, r, missed) })
        }
    }
}

/// The parts of a presence change: kind, key, current metas (if any), joined/left metas.
pub(crate) fn presence_parts(c: &crate::engine::PresenceChange) -> (u32, &str, Option<&str>, &str) {
    use crate::engine::PresenceChange::*;
    match c {
        Join {
            key,
            current,
            joined,
        } => (
            phx_presence_kind_t::PHX_PRESENCE_JOIN as u32,
            key,
            current.as_deref(),
            joined,
        ),
        Leave { key, current, left } => (
            phx_presence_kind_t::PHX_PRESENCE_LEAVE as u32,
            key,
            Some(current.as_str()),
            left,
        ),
    }
}

fn with_presence_change<R>(
    c: &crate::engine::PresenceChange,
    f: impl FnOnce(*const phx_presence_change_t) -> R,
) -> R {
    let (kind, key, current, metas) = presence_parts(c);
    // NUL-terminated copies: the change's strings are not.
    let key_c = std::ffi::CString::new(key).unwrap_or_default();
    let current_c = current.map(|c| std::ffi::CString::new(c).unwrap_or_default());
    let metas_c = std::ffi::CString::new(metas).unwrap_or_default();
    let view = phx_presence_change_t {
        kind,
        key: key_c.as_ptr(),
        key_len: key.len(),
        current: current_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        current_len: current.map_or(0, str::len),
        metas: metas_c.as_ptr(),
        metas_len: metas.len(),
    };
    f(&view)
}

impl WakeRegistration {
    pub(crate) fn wake(&self) {
        if let Some(f) = self.callbacks {
            // SAFETY: the caller's callback.
            unsafe { f(self.user_data.0) }
        }
    }
}

// ---- completions ------------------------------------------------------------------------------

/// Where one operation reports its outcome.
pub(crate) trait CompletionSink: Clone + Send + Sync + 'static {
    fn complete(&self, status: Status, reply: Option<&ReplyRef<'_>>);
}

/// A C completion callback and its `user_data` (nothing at all when the caller gave NULL).
#[derive(Clone, Copy)]
pub(crate) struct CallbackSink(pub(crate) phx_reply_cb, pub(crate) UserData);

impl CompletionSink for CallbackSink {
    fn complete(&self, status: Status, reply: Option<&ReplyRef<'_>>) {
        if let CallbackSink(Some(f), user_data) = *self {
            let code = super::status::phx_status_t::from(status) as u32;
            // SAFETY: the caller's callback; the reply view lives until it returns.
            with_reply(reply, |r| unsafe { f(user_data.0, code, r) })
        }
    }
}

/// A C completion callback as an engine completion that costs no allocation (neither a boxed
/// closure nor the hand-off state of [`submit`]): the engine fires it exactly once if it
/// accepts the operation (with `Closed` if it discards it uncalled), never if the call that
/// started the operation fails.
pub(crate) fn callback_completion(CallbackSink(cb, user_data): CallbackSink) -> Completion {
    let f = cb.map_or(std::ptr::null(), |f| f as *const ());
    let ctx = [f, user_data.0.cast_const().cast::<()>()];
    // SAFETY: the C API's contract: `cb` may be called with `user_data` once, on a library
    // thread, at any time until then (`fire_callback` casts the pointers back).
    Completion::Raw(unsafe { RawCompletion::new(fire_callback, ctx) })
}

fn fire_callback(ctx: [*const (); 2], status: Status, reply: Option<ReplyRef<'_>>) {
    if ctx[0].is_null() {
        return;
    }
    type ReplyFn = unsafe extern "C" fn(*mut c_void, u32, *const phx_reply_t);
    // SAFETY: `ctx[0]` is the non-NULL `phx_reply_cb` that `callback_completion` stored.
    let f = unsafe { std::mem::transmute::<*const (), ReplyFn>(ctx[0]) };
    CallbackSink(Some(f), UserData(ctx[1].cast_mut().cast())).complete(status, reply.as_ref());
}

const SUBMITTING: u8 = 0;
const SUBMITTED: u8 = 1;
const DROPPED_WHILE_SUBMITTING: u8 = 2;

/// The completion handed to the engine. Fires exactly once: through the engine's call, or,
/// if the engine drops it uncalled after accepting the operation, with `PHX_ERR_CLOSED`.
struct Pending<S: CompletionSink> {
    target: Option<S>,
    sync: Arc<AtomicU8>,
}

impl<S: CompletionSink> Pending<S> {
    fn fire(mut self, status: Status, reply: Option<ReplyRef<'_>>) {
        if let Some(target) = self.target.take() {
            target.complete(status, reply.as_ref());
        }
    }
}

impl<S: CompletionSink> Drop for Pending<S> {
    fn drop(&mut self) {
        let Some(target) = self.target.take() else {
            return;
        };
        let dropped_early = self.sync.compare_exchange(
            SUBMITTING,
            DROPPED_WHILE_SUBMITTING,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if dropped_early.is_err() {
            // Accepted, then discarded uncalled (commands still queued when a socket task
            // stops): the operation was closed.
            contain(|| target.complete(Status::Closed, None));
        }
    }
}

/// Starts an operation whose outcome goes to `target`. `op` hands the engine its `OnReply`.
///
/// If `op` fails, the completion never fires (the engine drops it uncalled). If it succeeds,
/// the completion fires exactly once, even if the engine discards the operation.
pub(crate) fn submit<S: CompletionSink>(
    target: S,
    op: impl FnOnce(OnReply) -> Result<(), Status>,
) -> Result<(), Status> {
    let sync = Arc::new(AtomicU8::new(SUBMITTING));
    let backup = target.clone();
    let pending = Pending {
        target: Some(target),
        sync: sync.clone(),
    };
    let result = op(Box::new(move |status, reply| pending.fire(status, reply)));
    if result.is_ok()
        && sync
            .compare_exchange(SUBMITTING, SUBMITTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        // Accepted but already discarded uncalled: report it from a library thread, as
        // every completion is.
        runtime::shared().spawn(async move {
            contain(|| backup.complete(Status::Closed, None));
        });
    }
    result
}

/// Model check (loom) of the hand-off between `submit` and an engine that drops an accepted
/// operation's completion uncalled on another thread: exactly one report, whatever the
/// interleaving.
#[cfg(all(test, phx_loom))]
mod model {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Clone)]
    struct Count(Arc<std::sync::atomic::AtomicUsize>);

    impl CompletionSink for Count {
        fn complete(&self, _status: Status, _reply: Option<&ReplyRef<'_>>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_completion_dropped_during_submission_reports_once() {
        loom::model(|| {
            let count = Count(Arc::new(AtomicUsize::new(0)));
            let sync = Arc::new(AtomicU8::new(SUBMITTING));
            let pending = Pending {
                target: Some(count.clone()),
                sync: sync.clone(),
            };
            // The engine drops the completion on its own thread, racing with the end of
            // `submit` (the spawned report of `submit` is modelled by counting directly).
            let engine = loom::thread::spawn(move || drop(pending));
            let late = sync
                .compare_exchange(SUBMITTING, SUBMITTED, Ordering::AcqRel, Ordering::Acquire)
                .is_err();
            if late {
                count.complete(Status::Closed, None);
            }
            engine.join().unwrap();
            assert_eq!(count.0.load(Ordering::SeqCst), 1);
        });
    }
}
