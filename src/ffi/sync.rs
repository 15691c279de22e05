//! The synchronisation primitives of the C surface's cross-thread protocols (the event queue's
//! waiters, the completion hand-off): std's, or loom's in a model-checking build
//! (`RUSTFLAGS="--cfg phx_loom"`, run by `scripts/model-check.sh`), so the same code is checked.

#[cfg(phx_loom)]
pub(crate) use loom::sync::{atomic::AtomicU8, Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(phx_loom))]
pub(crate) use std::sync::{atomic::AtomicU8, Arc, Condvar, Mutex, MutexGuard};

/// Locks a mutex whose data stays consistent even if a holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
