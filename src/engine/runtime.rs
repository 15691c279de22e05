//! The one Tokio runtime every socket of the process shares, and the "library thread" marker.

use std::cell::Cell;
use std::sync::LazyLock;
use tokio::runtime::{Handle, Runtime};

thread_local! {
    /// Set on runtime worker threads and while user callbacks run.
    static LIBRARY_THREAD: Cell<u32> = const { Cell::new(0) };
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let workers = std::env::var("PHX_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .min(4)
        });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("phx-worker")
        .on_thread_start(|| LIBRARY_THREAD.with(|c| c.set(c.get() + 1)))
        .enable_all()
        .build()
        .expect("libphx: cannot start the Tokio runtime")
});

/// The shared runtime (started on first use, never dropped).
pub fn shared() -> &'static Handle {
    RUNTIME.handle()
}

/// True on a runtime worker thread or inside a user callback: blocking there could deadlock.
pub fn on_library_thread() -> bool {
    LIBRARY_THREAD.with(|c| c.get() > 0)
}

/// Marks the current thread as running user code for the guard's lifetime.
pub(crate) struct CallbackGuard(());

impl CallbackGuard {
    pub(crate) fn enter() -> Self {
        LIBRARY_THREAD.with(|c| c.set(c.get() + 1));
        CallbackGuard(())
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        LIBRARY_THREAD.with(|c| c.set(c.get() - 1));
    }
}
