//! The one Tokio runtime every socket of the process shares, the "library thread" marker, and
//! how user callbacks run on it.
//!
//! Callbacks run on the runtime's worker threads, inside the socket's task. A callback that
//! blocks holds its worker; the runtime's other workers (at least two) take over the other
//! sockets' tasks. A socket whose callbacks prove slow (a batch of its events took longer than
//! [`SLOW_BATCH`]) has its next callbacks run through `block_in_place`, which hands the
//! worker's other tasks to a fresh thread for the duration of each callback, so even many slow
//! sockets at once cannot starve the fast ones; a quick batch ends that. It costs a thread
//! hand-off per callback, and only slow sockets pay it.

use std::cell::Cell;
use std::sync::LazyLock;
use tokio::runtime::{Handle, Runtime};

/// This thread's marks, in one thread-local: in a shared library every thread-local access is
/// a call (`__tls_get_addr`), and the receive path reads these for every message.
struct ThreadMarks {
    /// Non-zero on runtime worker threads and while user callbacks run (a count: callbacks nest).
    library: Cell<u32>,
    /// A socket whose callbacks are slow handles an event.
    isolate: Cell<bool>,
    /// A socket's task is handling a batch of events on this thread.
    in_batch: Cell<bool>,
}

thread_local! {
    static MARKS: ThreadMarks = const {
        ThreadMarks {
            library: Cell::new(0),
            isolate: Cell::new(false),
            in_batch: Cell::new(false),
        }
    };
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let workers = std::env::var("PHX_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .clamp(2, 4)
        });
    new_runtime(workers).expect("libphx: cannot start the Tokio runtime")
});

/// A runtime configured as the shared one, with `workers` worker threads (the shared one has
/// `PHX_WORKER_THREADS`, or the number of cores clamped to 2..=4: two at least, so one blocked
/// callback never stops every socket).
pub fn new_runtime(workers: usize) -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("phx-worker")
        .on_thread_start(|| MARKS.with(|m| m.library.set(m.library.get() + 1)))
        .enable_all()
        .build()
}

/// A batch of one socket's events that took longer than this marks its callbacks slow.
pub(crate) const SLOW_BATCH: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs a user callback with the thread marked as running user code (as [`CallbackGuard`]
/// does): through `block_in_place` for a slow socket (see the module documentation), directly
/// otherwise. One thread-local access for both.
pub(crate) fn run_callback(f: impl FnOnce()) {
    MARKS.with(|m| {
        let _mark = LibraryMark::enter(&m.library);
        if m.isolate.get() {
            tokio::task::block_in_place(f);
        } else {
            f();
        }
    });
}

/// The shared runtime (started on first use, never dropped).
pub fn shared() -> &'static Handle {
    RUNTIME.handle()
}

/// True on a runtime worker thread or inside a user callback: blocking there could deadlock.
pub fn on_library_thread() -> bool {
    MARKS.with(|m| m.library.get() > 0)
}

/// Marks the current thread as running user code for the guard's lifetime.
pub(crate) struct CallbackGuard(());

impl CallbackGuard {
    pub(crate) fn enter() -> Self {
        MARKS.with(|m| m.library.set(m.library.get() + 1));
        CallbackGuard(())
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        MARKS.with(|m| m.library.set(m.library.get() - 1));
    }
}

/// [`CallbackGuard`] for code that already holds this thread's marks.
struct LibraryMark<'a>(&'a Cell<u32>);

impl<'a> LibraryMark<'a> {
    fn enter(library: &'a Cell<u32>) -> Self {
        library.set(library.get() + 1);
        LibraryMark(library)
    }
}

impl Drop for LibraryMark<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

// ---- notifications deferred to the end of a batch ---------------------------------------------

/// Something that wants to be told once when the socket task running on this thread ends its
/// batch of events (the C event queue: one wake-up of its consumer per batch, not per event).
pub(crate) trait BatchEnd: Send + Sync {
    fn batch_end(&self);
}

thread_local! {
    /// What asked to be told at the end of the batch (apart from [`MARKS`]: it needs a
    /// destructor, which would add a check to every access of the marks).
    static AT_BATCH_END: std::cell::RefCell<Vec<std::sync::Arc<dyn BatchEnd>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The socket's task starts (or goes on with) a batch of events on this thread; `isolated`:
/// the callbacks it runs are a slow socket's (see the module documentation).
pub(crate) fn begin_batch(isolated: bool) {
    MARKS.with(|m| {
        m.in_batch.set(true);
        m.isolate.set(isolated);
    });
}

/// The socket's task is about to yield (its inputs are idle, or its budget is spent): tells
/// everything deferred meanwhile. Tasks move between threads only when they yield, so
/// nothing deferred on this thread belongs to another task.
pub(crate) fn end_batch() {
    MARKS.with(|m| m.in_batch.set(false));
    // Each is taken out before it runs: what it calls may defer again (it is then told at
    // once, the batch being over).
    while let Some(item) = AT_BATCH_END.with(|l| l.borrow_mut().pop()) {
        item.batch_end();
    }
}

/// Defers a notification to the end of the current batch; false (the caller notifies now)
/// outside a socket task's batch. `make` is called only when deferring.
pub(crate) fn defer_to_batch_end(make: impl FnOnce() -> std::sync::Arc<dyn BatchEnd>) -> bool {
    if !MARKS.with(|m| m.in_batch.get()) {
        return false;
    }
    AT_BATCH_END.with(|l| l.borrow_mut().push(make()));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mark that makes blocking calls refuse covers a callback, nested ones included, and
    /// is lifted when it returns or panics.
    #[test]
    fn run_callback_marks_the_thread_while_user_code_runs() {
        assert!(!on_library_thread());
        run_callback(|| {
            assert!(on_library_thread());
            run_callback(|| assert!(on_library_thread()));
            assert!(on_library_thread(), "still inside the outer callback");
        });
        assert!(!on_library_thread());
        let panicked = std::panic::catch_unwind(|| run_callback(|| panic!("user code")));
        assert!(panicked.is_err());
        assert!(!on_library_thread(), "lifted by the unwind");
    }

    /// `begin_batch` sets both marks (the isolation flag as given); `end_batch` ends the
    /// batch, after which nothing is deferred.
    #[test]
    fn begin_batch_sets_the_batch_and_isolation_marks() {
        begin_batch(true);
        assert!(MARKS.with(|m| m.in_batch.get() && m.isolate.get()));
        begin_batch(false);
        assert!(MARKS.with(|m| m.in_batch.get() && !m.isolate.get()));
        end_batch();
        assert!(!MARKS.with(|m| m.in_batch.get()));
        assert!(!defer_to_batch_end(|| unreachable!("outside a batch")));
    }
}
