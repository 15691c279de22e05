//! Giving back table capacity after a burst. A `HashMap` or `VecDeque` keeps the capacity of
//! its largest moment forever, so one burst (pushes piling up behind a half-open connection,
//! a write queue behind a slow reader) would hold its peak memory for the socket's whole life.
//! The socket's task calls [`Shrink::reclaim`] once per heartbeat, never per message: a table is
//! shrunk when it has room for more than four times what it holds (and more than twice the
//! floor), to twice that, so a table near its steady need is never reallocated and a
//! shrunk one does not shrink again until it grows.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Entries a table keeps room for however empty it is: small enough to cost little per
/// socket, large enough that steady traffic never reallocates.
pub(crate) const FLOOR: usize = 32;

/// The capacity to shrink to, if a table holding `len` with room for `capacity` should shrink.
fn target(len: usize, capacity: usize) -> Option<usize> {
    let want = (len * 2).max(FLOOR);
    (capacity > want * 2).then_some(want)
}

/// A table whose spare capacity can be given back.
pub(crate) trait Shrink {
    /// Shrinks the table if it is far larger than what it holds (see the module docs).
    fn reclaim(&mut self);
}

impl<K: Eq + Hash, V, S: BuildHasher> Shrink for HashMap<K, V, S> {
    fn reclaim(&mut self) {
        if let Some(want) = target(self.len(), self.capacity()) {
            self.shrink_to(want);
        }
    }
}

impl<T> Shrink for VecDeque<T> {
    fn reclaim(&mut self) {
        if let Some(want) = target(self.len(), self.capacity()) {
            self.shrink_to(want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_table_gives_its_burst_capacity_back_and_a_steady_one_keeps_it() {
        let mut m: HashMap<u64, [u8; 64]> = HashMap::new();
        m.extend((0..10_000).map(|i| (i, [0; 64])));
        m.retain(|k, _| *k < 10);
        assert!(m.capacity() >= 10_000);
        m.reclaim();
        assert!(m.capacity() <= 4 * FLOOR, "{}", m.capacity());
        assert_eq!(m.len(), 10);
        // Near its need: untouched (no reallocation at each check).
        let before = m.capacity();
        m.reclaim();
        assert_eq!(m.capacity(), before);

        let mut q: VecDeque<u64> = (0..5_000).collect();
        q.drain(..4_900);
        q.reclaim();
        assert!(
            q.capacity() >= 100 && q.capacity() <= 400,
            "{}",
            q.capacity()
        );
        assert!(q.iter().copied().eq(4_900..5_000));
        let before = q.capacity();
        q.reclaim();
        assert_eq!(q.capacity(), before);
    }

    #[test]
    fn only_far_larger_tables_shrink() {
        assert_eq!(target(0, 2 * FLOOR), None);
        assert_eq!(target(0, 2 * FLOOR + 1), Some(FLOOR));
        assert_eq!(target(100, 400), None);
        assert_eq!(target(100, 401), Some(200));
    }
}
