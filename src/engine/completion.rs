//! How a push reports its outcome inside the engine: the caller's boxed closure
//! ([`OnReply`]), or a plain function with two words of context, which costs no allocation
//! (the C API's completion callbacks: function pointer and `user_data`).

use super::types::{OnReply, ReplyRef, Status};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The function of a [`RawCompletion`]: its context, the status, the reply.
pub(crate) type RawCall = fn([*const (); 2], Status, Option<ReplyRef<'_>>);

/// A completion without an allocation. It fires exactly once: when the engine completes the
/// operation, or with [`Status::Closed`] if it is dropped uncalled after being accepted (the
/// socket's task stopped with it still queued). A call that refuses the operation at once
/// [`disarms`](RawCompletion::disarm) it instead.
pub(crate) struct RawCompletion {
    /// [`spent`] once fired or disarmed (no flag: the enum [`Completion`] stays three words).
    call: RawCall,
    ctx: [*const (); 2],
}

/// What a fired or disarmed [`RawCompletion`] calls.
fn spent(_: [*const (); 2], _: Status, _: Option<ReplyRef<'_>>) {}

// SAFETY: `RawCompletion::new`'s contract: `call` may run with `ctx` on any thread.
unsafe impl Send for RawCompletion {}

impl RawCompletion {
    /// # Safety
    /// `call(ctx, ..)` must be sound on any thread, once, at any time until it is called.
    pub(crate) unsafe fn new(call: RawCall, ctx: [*const (); 2]) -> Self {
        RawCompletion { call, ctx }
    }

    fn fire(&mut self, status: Status, reply: Option<ReplyRef<'_>>) {
        std::mem::replace(&mut self.call, spent)(self.ctx, status, reply);
    }

    /// The operation was refused at once: it never completes.
    pub(crate) fn disarm(mut self) {
        self.call = spent;
    }
}

impl Drop for RawCompletion {
    fn drop(&mut self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.fire(Status::Closed, None)));
    }
}

/// A push's completion.
pub(crate) enum Completion {
    Boxed(OnReply),
    Raw(RawCompletion),
}

impl Completion {
    /// Completes the operation (callers contain panics and mark the thread, see `call_user`).
    pub(crate) fn call(self, status: Status, reply: Option<ReplyRef<'_>>) {
        match self {
            Completion::Boxed(f) => f(status, reply),
            Completion::Raw(mut raw) => raw.fire(status, reply),
        }
    }

    /// The operation was refused at once: it never completes.
    pub(crate) fn disarm(self) {
        if let Completion::Raw(raw) = self {
            raw.disarm();
        }
    }
}

impl From<OnReply> for Completion {
    fn from(f: OnReply) -> Self {
        Completion::Boxed(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static CLOSED: AtomicUsize = AtomicUsize::new(0);

    fn count(ctx: [*const (); 2], status: Status, _: Option<ReplyRef<'_>>) {
        assert_eq!(ctx[0] as usize, 7);
        CALLS.fetch_add(1, Ordering::SeqCst);
        if status == Status::Closed {
            CLOSED.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_raw_completion_fires_once_closed_when_dropped_and_never_when_disarmed() {
        let ctx = [7 as *const (), std::ptr::null()];
        // SAFETY: `count` only reads the context's value.
        let make = || Completion::Raw(unsafe { RawCompletion::new(count, ctx) });
        make().call(Status::Ok, None);
        assert_eq!(
            (CALLS.load(Ordering::SeqCst), CLOSED.load(Ordering::SeqCst)),
            (1, 0)
        );
        drop(make());
        assert_eq!(
            (CALLS.load(Ordering::SeqCst), CLOSED.load(Ordering::SeqCst)),
            (2, 1)
        );
        make().disarm();
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
        assert!(std::mem::size_of::<Completion>() <= 24);
    }
}
