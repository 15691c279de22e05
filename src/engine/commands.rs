//! The queue of commands from a socket's handles to its task.
//!
//! A `Mutex<VecDeque>` with the task's waker beside it, instead of Tokio's unbounded channel:
//!
//! - it costs nothing until the first commands queue up, and the ring they leave is given back
//!   once per heartbeat ([`CommandQueue::reclaim`]) when empty (Tokio's channel holds a block
//!   of 32 commands per socket for good, about 2.8 KB);
//! - a sender wakes the task only when the task went idle on an empty queue: commands sent
//!   while the task is queued or running, or behind other commands, wake nothing;
//! - the task is spawned by the first send ([`CommandQueue::starting`]), not when the socket is
//!   made: a caller that makes a socket and then connects and joins hands the runtime one task
//!   with its first commands queued, instead of a task to poll and then a wake-up per command;
//! - the order is the order of the senders' lock acquisitions, so commands sent under the
//!   socket's lock keep the order their decisions were made in (see `handle`).
//!
//! Nothing user-supplied is dropped or run under the queue's lock: a refused command is handed
//! back to its sender, and [`CommandQueue::close`] returns what was still queued.
//!
//! Under `--cfg phx_loom` the lock is loom's, and `model::` checks that no wake-up is lost.

use super::reclaim::Shrink;
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

#[cfg(phx_loom)]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(phx_loom))]
use std::sync::{Mutex, MutexGuard};

/// A multi-producer, single-consumer queue whose consumer is a task.
pub(crate) struct CommandQueue<T> {
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    items: VecDeque<T>,
    /// The task's waker, registered when it found the queue empty; taken by the next send.
    waker: Option<Waker>,
    closed: bool,
    /// Spawns the task: run by the first send.
    start: Option<Start>,
}

type Start = Box<dyn FnOnce() + Send>;

/// Commands the ring first has room for.
const FIRST_RING: usize = 3;

impl<T> Default for CommandQueue<T> {
    fn default() -> Self {
        CommandQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                waker: None,
                closed: false,
                start: None,
            }),
        }
    }
}

impl<T> CommandQueue<T> {
    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A queue whose first send calls `start` (which spawns the task that receives).
    pub(crate) fn starting(start: impl FnOnce() + Send + 'static) -> Self {
        let q = Self::default();
        q.lock().start = Some(Box::new(start));
        q
    }

    /// Queues `item`; `Err(item)` once the queue is closed (the task has stopped).
    pub(crate) fn send(&self, item: T) -> Result<(), T> {
        let mut inner = self.lock();
        if let Some(start) = inner.start.take() {
            // Outside the lock; before queueing, so a task that cannot run (its runtime is
            // gone) has closed the queue and the item is refused, not dropped unheard.
            drop(inner);
            start();
            inner = self.lock();
        }
        if inner.closed {
            return Err(item);
        }
        if inner.items.capacity() == 0 {
            // Room for a socket's set-up (connect, a channel, its join), not the ring's
            // default four: every socket holds it until the next heartbeat.
            inner.items.reserve_exact(FIRST_RING);
        }
        inner.items.push_back(item);
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The next command, or `Pending` with the task registered to be woken by the next send.
    /// `Ready(None)` once closed and drained.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut inner = self.lock();
        if let Some(item) = inner.items.pop_front() {
            return Poll::Ready(Some(item));
        }
        if inner.closed {
            return Poll::Ready(None);
        }
        match &mut inner.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Refuses every later send and hands back what was queued (for the caller to complete or
    /// drop outside the lock).
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.waker = None;
        std::mem::take(&mut inner.items)
    }

    /// Gives the ring back if empty, or its spare room after a burst (see `reclaim`). Called
    /// once per heartbeat, never per command: steady traffic keeps its ring.
    pub(crate) fn reclaim(&self) {
        let mut inner = self.lock();
        if inner.items.is_empty() {
            inner.items = VecDeque::new();
        } else {
            inner.items.reclaim();
        }
    }

    /// Room for this many commands is held (the socket's statistics).
    pub(crate) fn capacity(&self) -> usize {
        self.lock().items.capacity()
    }
}

#[cfg(all(test, not(phx_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<T>(q: &CommandQueue<T>, w: &Arc<CountingWaker>) -> Poll<Option<T>> {
        let waker = Waker::from(w.clone());
        q.poll_recv(&mut Context::from_waker(&waker))
    }

    #[test]
    fn costs_nothing_until_used_and_gives_a_burst_back_when_reclaimed() {
        let q = CommandQueue::default();
        assert_eq!(q.capacity(), 0, "no allocation before the first command");
        let w = Arc::new(CountingWaker::default());
        for i in 0..1000 {
            q.send(i).unwrap();
        }
        let cap = q.capacity();
        assert!(cap >= 1000);
        for i in 0..990 {
            assert_eq!(poll(&q, &w), Poll::Ready(Some(i)), "in order");
        }
        assert_eq!(q.capacity(), cap, "draining alone reallocates nothing");
        q.reclaim();
        assert!(
            q.capacity() < 100,
            "spare room given back: {}",
            q.capacity()
        );
        for i in 990..1000 {
            assert_eq!(
                poll(&q, &w),
                Poll::Ready(Some(i)),
                "nothing lost by shrinking"
            );
        }
        q.reclaim();
        assert_eq!(q.capacity(), 0, "an empty queue holds nothing");
    }

    #[test]
    fn only_a_send_to_an_idle_task_wakes_it() {
        let q = CommandQueue::default();
        let w = Arc::new(CountingWaker::default());
        assert_eq!(poll(&q, &w), Poll::Pending);
        q.send(1).unwrap();
        assert_eq!(w.0.load(Ordering::SeqCst), 1, "the idle task is woken");
        q.send(2).unwrap();
        q.send(3).unwrap();
        assert_eq!(
            w.0.load(Ordering::SeqCst),
            1,
            "sends to a task already woken wake nothing"
        );
        assert_eq!(poll(&q, &w), Poll::Ready(Some(1)));
        q.send(4).unwrap();
        assert_eq!(w.0.load(Ordering::SeqCst), 1, "nor do sends while it runs");
        for i in 2..=4 {
            assert_eq!(poll(&q, &w), Poll::Ready(Some(i)));
        }
        assert_eq!(poll(&q, &w), Poll::Pending);
        q.send(5).unwrap();
        assert_eq!(w.0.load(Ordering::SeqCst), 2, "idle again: woken again");
    }

    #[test]
    fn the_first_send_starts_the_task_once() {
        let started = Arc::new(AtomicUsize::new(0));
        let q = {
            let started = started.clone();
            CommandQueue::starting(move || {
                started.fetch_add(1, Ordering::SeqCst);
            })
        };
        assert_eq!(
            started.load(Ordering::SeqCst),
            0,
            "nothing before a command"
        );
        q.send(1).unwrap();
        q.send(2).unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 1);
        let w = Arc::new(CountingWaker::default());
        assert_eq!(poll(&q, &w), Poll::Ready(Some(1)));
        assert_eq!(poll(&q, &w), Poll::Ready(Some(2)));
    }

    #[test]
    fn close_refuses_later_sends_and_hands_back_the_queued() {
        let q = CommandQueue::default();
        let w = Arc::new(CountingWaker::default());
        q.send(1).unwrap();
        q.send(2).unwrap();
        assert_eq!(q.close(), [1, 2]);
        assert_eq!(q.send(3), Err(3), "refused, and handed back");
        assert_eq!(poll(&q, &w), Poll::Ready(None));
    }

    /// Real threads: several senders, a task on a runtime receiving; every command arrives
    /// once, each sender's in its order, and the task never sleeps through a send.
    #[test]
    fn threads_sending_to_a_task_lose_nothing_and_keep_each_senders_order() {
        const SENDERS: usize = 4;
        const EACH: usize = 20_000;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let q = Arc::new(CommandQueue::default());
        let receiver = {
            let q = q.clone();
            rt.spawn(async move {
                let mut next = [0usize; SENDERS];
                for _ in 0..SENDERS * EACH {
                    let (sender, i) = std::future::poll_fn(|cx| q.poll_recv(cx))
                        .await
                        .expect("open");
                    assert_eq!(i, next[sender], "sender {sender}'s order");
                    next[sender] += 1;
                }
                next
            })
        };
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        q.send((s, i)).unwrap();
                        if i % 1000 == 0 {
                            // Let the task drain and go idle now and then.
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let next = rt.block_on(receiver).unwrap();
        assert_eq!(next, [EACH; SENDERS]);
    }
}

/// Model check (loom): whatever the interleaving of two senders and the task, every command
/// is received and the task is never left asleep on a non-empty queue (loom reports a
/// deadlock if a wake-up is lost).
#[cfg(all(test, phx_loom))]
mod model {
    use super::*;
    use loom::sync::Arc;

    /// Wakes the receiving loom thread (parked while its `poll_recv` is pending).
    struct Unpark(loom::thread::Thread);

    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }

    /// The task's side: poll, and park until woken while pending.
    fn block_on<R>(mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>) -> R {
        let waker = Waker::from(std::sync::Arc::new(Unpark(loom::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            match poll(&mut cx) {
                Poll::Ready(r) => return r,
                Poll::Pending => loom::thread::park(),
            }
        }
    }

    #[test]
    fn no_wake_up_is_lost() {
        loom::model(|| {
            let q = Arc::new(CommandQueue::default());
            let senders: Vec<_> = (0..2)
                .map(|s| {
                    let q = q.clone();
                    loom::thread::spawn(move || q.send(s).unwrap())
                })
                .collect();
            let mut got = Vec::new();
            while got.len() < 2 {
                let item = block_on(|cx| q.poll_recv(cx));
                got.push(item.expect("open"));
            }
            got.sort();
            assert_eq!(got, [0, 1]);
            for s in senders {
                s.join().unwrap();
            }
        });
    }

    #[test]
    fn close_races_a_send_without_losing_it() {
        loom::model(|| {
            let q = Arc::new(CommandQueue::default());
            let sender = {
                let q = q.clone();
                loom::thread::spawn(move || q.send(1).is_ok())
            };
            let first = block_on(|cx| {
                // The task takes one command or, if none came yet, closes.
                match q.poll_recv(cx) {
                    Poll::Ready(item) => Poll::Ready(item.map(|i| vec![i])),
                    Poll::Pending => Poll::Ready(Some(q.close().into_iter().collect())),
                }
            });
            let accepted = sender.join().unwrap();
            let mut seen = first.unwrap_or_default();
            seen.extend(q.close());
            // Accepted means the task sees it; refused means it never does.
            assert_eq!(seen == [1], accepted);
        });
    }
}
