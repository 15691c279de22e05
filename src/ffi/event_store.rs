//! Where queued events live: written one after another into shared blocks, so that queueing an
//! event allocates nothing in the steady state, while each event is still freed on its own,
//! in any order and on any thread, as `phx_event_free` promises.
//!
//! A block counts its references: one per event written into it and not yet freed, plus one
//! while a producer ([`Blocks`]) may still write into it. The last reference frees it. A
//! producer keeps two blocks: when the current one is full it starts over in whichever of the
//! two has no event left alive, and allocates a new block only when the consumer still holds
//! events of both. An event too large to share a block gets one of its own.

use super::queue::phx_event_t;
use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

/// The size of a shared block. An idle queue keeps at most two.
pub(crate) const BLOCK_SIZE: usize = 8 * 1024;
/// Events larger than this get a block of their own, so a shared block wastes at most this
/// much at its end.
const LARGE: usize = BLOCK_SIZE / 4;
/// Alignment of blocks and of every event in them (`phx_event_t` and `phx_reason_t` need 8).
const ALIGN: usize = 16;

/// The start of every block.
#[repr(C)]
struct Header {
    refs: AtomicUsize,
    /// The allocation's size, to free it.
    size: usize,
}

/// Where events start in a block.
const DATA: usize = round_up(std::mem::size_of::<Header>());

const fn round_up(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// A block (its header).
#[derive(Clone, Copy)]
pub(crate) struct Block(NonNull<Header>);

impl Block {
    /// A new block of `size` bytes with one reference.
    fn new(size: usize) -> Block {
        let layout = Layout::from_size_align(size, ALIGN).expect("block layout");
        // SAFETY: `size` > 0 (it holds at least the header).
        let p = unsafe { alloc(layout) }.cast::<Header>();
        let Some(p) = NonNull::new(p) else {
            handle_alloc_error(layout)
        };
        // SAFETY: fresh allocation, aligned for the header.
        unsafe {
            p.as_ptr().write(Header {
                refs: AtomicUsize::new(1),
                size,
            })
        };
        Block(p)
    }

    fn refs(&self) -> &AtomicUsize {
        // SAFETY: the header lives as long as any reference to the block.
        unsafe { &self.0.as_ref().refs }
    }

    fn at(self, offset: usize) -> NonNull<u8> {
        // SAFETY: callers stay inside the block.
        unsafe { NonNull::new_unchecked(self.0.as_ptr().cast::<u8>().add(offset)) }
    }

    /// Drops one reference; the last one frees the block.
    ///
    /// # Safety
    /// The caller owns the reference it drops, and uses nothing in the block afterwards.
    unsafe fn release(self) {
        if self.refs().fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Everything done by the other references' owners happens before the block is freed.
        fence(Ordering::Acquire);
        let size = self.0.as_ref().size;
        dealloc(
            self.0.as_ptr().cast(),
            Layout::from_size_align_unchecked(size, ALIGN),
        );
    }

    /// No event of this block is alive: only its producer's reference is left.
    fn unused(&self) -> bool {
        // Acquire: the freed events' last reads happen before the block is written again.
        self.refs().load(Ordering::Acquire) == 1
    }
}

/// What a `phx_event_t *` points to: the public part first, then what freeing it needs.
#[repr(C)]
pub(crate) struct EventBox {
    pub(crate) ev: phx_event_t,
    block: Block,
    /// What it counts for in the queue's bound in bytes: its size in its block.
    pub(crate) cost: usize,
}

/// The bytes an event takes in a block, given the bytes of what it points to.
pub(crate) fn event_size(extra: usize) -> usize {
    round_up(std::mem::size_of::<EventBox>() + extra)
}

/// A producer's blocks (owned by one queue, used under its lock).
pub(crate) struct Blocks {
    /// The block being written, and how much of it is used.
    cur: Option<Block>,
    used: usize,
    /// The block written before it (its events may still be alive).
    prev: Option<Block>,
}

// SAFETY: the blocks are reference-counted allocations with no thread affinity.
unsafe impl Send for Blocks {}

impl Blocks {
    pub(crate) const fn new() -> Self {
        Blocks {
            cur: None,
            used: 0,
            prev: None,
        }
    }

    /// Writes an event: `size` bytes (from [`event_size`]) starting with an `EventBox` whose
    /// `ev` `fill` writes (its first argument), handed the memory after the `EventBox` for
    /// what the event points to (its second). The event holds one reference to its block.
    pub(crate) fn write(
        &mut self,
        size: usize,
        fill: impl FnOnce(*mut phx_event_t, *mut u8),
    ) -> OwnedEvent {
        let (block, offset) = if size > LARGE {
            (Block::new(DATA + size), DATA)
        } else {
            if self.cur.is_none() || self.used + size > BLOCK_SIZE {
                self.next_block();
            }
            let block = self.cur.expect("a current block");
            block.refs().fetch_add(1, Ordering::Relaxed);
            let offset = self.used;
            self.used += size;
            (block, offset)
        };
        let at = block.at(offset).cast::<EventBox>();
        // SAFETY: `size` bytes from `at` are ours, aligned for an `EventBox`, and hold it and
        // what follows it.
        unsafe {
            let p = at.as_ptr();
            std::ptr::addr_of_mut!((*p).block).write(block);
            std::ptr::addr_of_mut!((*p).cost).write(size);
            fill(std::ptr::addr_of_mut!((*p).ev), p.add(1).cast::<u8>());
        }
        OwnedEvent(at)
    }

    /// Makes room for a new event: starts over in the current or the previous block if none
    /// of its events is alive, else in a new block.
    fn next_block(&mut self) {
        self.used = DATA;
        if self.cur.is_some_and(|b| b.unused()) {
            return;
        }
        if self.prev.is_some_and(|b| b.unused()) {
            std::mem::swap(&mut self.cur, &mut self.prev);
            return;
        }
        if let Some(prev) = self.prev.take() {
            // SAFETY: the producer's reference, not used again.
            unsafe { prev.release() };
        }
        self.prev = self.cur.replace(Block::new(BLOCK_SIZE));
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        for b in [self.cur.take(), self.prev.take()].into_iter().flatten() {
            // SAFETY: the producer's references, not used again.
            unsafe { b.release() };
        }
    }
}

/// One event and its reference to its block; dropping it frees the event.
pub(crate) struct OwnedEvent(NonNull<EventBox>);

// SAFETY: an event's memory is its own until freed; its block's count is atomic.
unsafe impl Send for OwnedEvent {}

impl OwnedEvent {
    /// Hands the event to C, to come back through [`OwnedEvent::from_raw`].
    pub(crate) fn into_raw(self) -> *mut phx_event_t {
        let p = self.0.as_ptr().cast::<phx_event_t>();
        std::mem::forget(self);
        p
    }

    /// Takes back an event handed to C; NULL gives `None`.
    ///
    /// # Safety
    /// `p` is NULL or came from [`OwnedEvent::into_raw`] and is not used again.
    pub(crate) unsafe fn from_raw(p: *mut phx_event_t) -> Option<Self> {
        // `phx_event_t` is the first field of its `EventBox`.
        NonNull::new(p.cast::<EventBox>()).map(OwnedEvent)
    }
}

impl std::ops::Deref for OwnedEvent {
    type Target = EventBox;
    fn deref(&self) -> &EventBox {
        // SAFETY: alive until this value is dropped or handed to C.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for OwnedEvent {
    fn drop(&mut self) {
        // SAFETY: this event's reference, dropped once; the event is not read afterwards.
        unsafe { self.0.as_ref().block.release() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(ev: *mut phx_event_t, _: *mut u8) {
        // SAFETY: every field of `phx_event_t` is an integer or a raw pointer: zero is valid.
        unsafe { ev.write(std::mem::zeroed()) }
    }

    fn tagged(tag: u64) -> impl FnOnce(*mut phx_event_t, *mut u8) {
        move |ev, p| {
            blank(ev, p);
            // SAFETY: just written.
            unsafe { (*ev).tag = tag };
        }
    }

    fn refs(b: Option<Block>) -> usize {
        b.map_or(0, |b| b.refs().load(Ordering::Relaxed))
    }

    /// Events share blocks; a block is written again only once every event in it is freed,
    /// and a new one is allocated only when both of the producer's blocks hold live events.
    #[test]
    fn blocks_are_reused_only_when_their_events_are_freed() {
        let mut blocks = Blocks::new();
        let size = event_size(100);
        let per_block = (BLOCK_SIZE - DATA) / size;
        let first: Vec<_> = (0..per_block as u64)
            .map(|i| blocks.write(size, tagged(i)))
            .collect();
        let a = blocks.cur.map(|b| b.0);
        assert_eq!(refs(blocks.cur), per_block + 1);
        // The first block is full and its events alive: a second block.
        let held = blocks.write(size, tagged(1000));
        assert_ne!(blocks.cur.map(|b| b.0), a);
        assert_eq!(blocks.prev.map(|b| b.0), a);
        // Its events are untouched by later writes.
        for (i, e) in first.iter().enumerate() {
            assert_eq!(e.ev.tag, i as u64);
        }
        drop(first);
        assert_eq!(refs(blocks.prev), 1);
        // Once the second fills, the first (all freed) is written again: no third block.
        let second: Vec<_> = (1..per_block).map(|_| blocks.write(size, blank)).collect();
        let b = blocks.cur.map(|b| b.0);
        let again = blocks.write(size, tagged(7));
        assert_eq!(blocks.cur.map(|b| b.0), a);
        assert_eq!(blocks.prev.map(|b| b.0), b);
        assert_eq!(again.ev.tag, 7);
        assert_eq!(held.ev.tag, 1000, "an event held across reuse stays intact");
        drop(second);
        drop(blocks);
        // The producer's references are gone; the events still alive keep their blocks.
        assert_eq!(held.ev.tag, 1000);
        assert_eq!(again.ev.tag, 7);
    }

    /// A large event gets a block of its own, freed with it.
    #[test]
    fn a_large_event_has_its_own_block() {
        let mut blocks = Blocks::new();
        let small = blocks.write(event_size(10), tagged(1));
        let big = blocks.write(event_size(LARGE), tagged(2));
        assert_eq!(big.block.refs().load(Ordering::Relaxed), 1);
        assert_ne!(big.block.0, small.block.0);
        assert_eq!(refs(blocks.cur), 2);
        assert_eq!(big.cost, event_size(LARGE));
        drop(big);
        assert_eq!(small.ev.tag, 1);
    }

    /// Events freed on other threads, in any order, after the producer is gone.
    #[test]
    fn events_are_freed_on_any_thread_in_any_order() {
        let mut blocks = Blocks::new();
        let events: Vec<_> = (0..1000u64)
            .map(|i| blocks.write(event_size(200), tagged(i)))
            .collect();
        drop(blocks);
        let (even, odd): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| e.ev.tag % 2 == 0);
        let t = std::thread::spawn(move || even.into_iter().rev().for_each(drop));
        for e in odd {
            assert_eq!(e.ev.tag % 2, 1);
        }
        t.join().unwrap();
    }
}
