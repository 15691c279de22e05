//! A table for keys the actor hands out in increasing order and mostly retires in that order
//! (push operation ids, refs awaiting a reply): a window of slots indexed by key, so an
//! insert, a lookup or a remove costs an index instead of a hash. A key far behind the rest
//! (an operation that outlives thousands started after it) moves to a hash map, so one such
//! key never holds the window open; so does a key inserted behind the window.

use super::fast_map::FastMap;
use crate::engine::reclaim::{Shrink, FLOOR};

/// Empty slots a window keeps before it moves its oldest keys out (see `compact`).
const MAX_HOLES: usize = 64;

/// A key inserted this far past the window's end restarts the window (no long run of empty
/// slots).
const MAX_GAP: u64 = 64;

pub(super) struct SeqMap<V> {
    /// The key of `window[0]`.
    base: u64,
    window: Ring<V>,
    /// Empty slots in `window`.
    holes: usize,
    /// Keys not in the window.
    map: FastMap<u64, V>,
}

impl<V> Default for SeqMap<V> {
    fn default() -> Self {
        SeqMap {
            base: 0,
            window: Ring::default(),
            holes: 0,
            map: FastMap::default(),
        }
    }
}

impl<V> SeqMap<V> {
    #[inline]
    fn slot(&self, key: u64) -> Option<usize> {
        let i = key.checked_sub(self.base)?;
        (i < self.window.len as u64).then_some(i as usize)
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.window.len - self.holes + self.map.len()
    }

    /// Entries the table has room for.
    pub(super) fn capacity(&self) -> usize {
        self.window.capacity() + self.map.capacity()
    }

    #[inline]
    pub(super) fn get(&self, key: &u64) -> Option<&V> {
        if let Some(v) = self.slot(*key).and_then(|i| self.window.get(i).as_ref()) {
            return Some(v);
        }
        if self.map.is_empty() {
            return None;
        }
        self.map.get(key)
    }

    #[inline]
    pub(super) fn get_mut(&mut self, key: &u64) -> Option<&mut V> {
        if let Some(i) = self.slot(*key) {
            if self.window.get(i).is_some() {
                return self.window.get_mut(i).as_mut();
            }
        }
        if self.map.is_empty() {
            return None;
        }
        self.map.get_mut(key)
    }

    /// Inserts `value` under `key`, which must not be in the table.
    #[inline]
    pub(super) fn insert(&mut self, key: u64, value: V) {
        debug_assert!(self.get(&key).is_none(), "key {key} inserted twice");
        let mut end = self.base + self.window.len as u64;
        if key > end + MAX_GAP || self.window.len == 0 {
            // Far ahead (or nothing before it): the window restarts here, its entries move to
            // the map (each at most once).
            self.evict_all();
            self.base = key;
            end = key;
        }
        if key >= end && key - end <= MAX_GAP {
            for _ in end..key {
                self.window.push_back(None);
                self.holes += 1;
            }
            self.window.push_back(Some(value));
        } else if let Some(i) = self.slot(key).filter(|&i| self.window.get(i).is_none()) {
            *self.window.get_mut(i) = Some(value);
            self.holes -= 1;
        } else {
            self.map.insert(key, value);
        }
    }

    #[inline]
    pub(super) fn remove(&mut self, key: &u64) -> Option<V> {
        if let Some(i) = self.slot(*key) {
            if let Some(v) = self.window.get_mut(i).take() {
                self.holes += 1;
                if i == 0 {
                    self.trim();
                }
                if self.holes > MAX_HOLES {
                    self.compact();
                }
                return Some(v);
            }
        }
        if self.map.is_empty() {
            return None;
        }
        self.map.remove(key)
    }

    fn evict_all(&mut self) {
        while let Some(slot) = self.window.pop_front() {
            if let Some(v) = slot {
                self.map.insert(self.base, v);
            }
            self.base += 1;
        }
        self.holes = 0;
    }

    /// Drops empty slots from the window's front.
    #[inline]
    fn trim(&mut self) {
        while self.window.len > 0 && self.window.get(0).is_none() {
            self.window.skip_front();
            self.base += 1;
            self.holes -= 1;
        }
    }

    /// Keeps empty slots from outnumbering the entries: the oldest entries (what holds the
    /// window open) move to the map until they do not. Each entry moves at most once.
    fn compact(&mut self) {
        if self.holes <= MAX_HOLES || self.holes * 2 <= self.window.len {
            return;
        }
        while self.holes * 2 > self.window.len {
            match self.window.pop_front() {
                Some(Some(v)) => {
                    self.map.insert(self.base, v);
                }
                Some(None) => self.holes -= 1,
                None => break,
            }
            self.base += 1;
        }
        self.trim();
    }

    /// Entries in key order for the window, then the map's in no order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        let base = self.base;
        let window = (0..self.window.len).map(|i| self.window.get(i)).enumerate();
        window
            .filter_map(move |(i, v)| v.as_ref().map(|v| (base + i as u64, v)))
            .chain(self.map.iter().map(|(k, v)| (*k, v)))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    /// Keeps the entries for which `keep` returns true.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&u64, &mut V) -> bool) {
        let base = self.base;
        for i in 0..self.window.len {
            let slot = self.window.get_mut(i);
            if slot.as_mut().is_some_and(|v| !keep(&(base + i as u64), v)) {
                *slot = None;
                self.holes += 1;
            }
        }
        self.map.retain(|k, v| keep(k, v));
        self.trim();
        self.compact();
    }

    /// Removes and returns every entry (the window's in key order).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = (u64, V)> {
        let mut all: Vec<(u64, V)> = Vec::with_capacity(self.len());
        while let Some(slot) = self.window.pop_front() {
            if let Some(v) = slot {
                all.push((self.base, v));
            }
            self.base += 1;
        }
        all.extend(self.map.drain());
        self.holes = 0;
        all.into_iter()
    }
}

impl<V> Shrink for SeqMap<V> {
    fn reclaim(&mut self) {
        self.window.reclaim();
        self.map.reclaim();
    }
}

/// A ring of slots (`VecDeque` moves a whole slot to drop an empty one from the front; this
/// only steps its head).
struct Ring<V> {
    /// Empty or a power of two long.
    buf: Vec<Option<V>>,
    head: usize,
    len: usize,
}

impl<V> Default for Ring<V> {
    fn default() -> Self {
        Ring {
            buf: Vec::new(),
            head: 0,
            len: 0,
        }
    }
}

impl<V> Ring<V> {
    #[inline]
    fn index(&self, i: usize) -> usize {
        (self.head + i) & (self.buf.len() - 1)
    }

    #[inline]
    fn get(&self, i: usize) -> &Option<V> {
        &self.buf[self.index(i)]
    }

    #[inline]
    fn get_mut(&mut self, i: usize) -> &mut Option<V> {
        let i = self.index(i);
        &mut self.buf[i]
    }

    #[inline]
    fn push_back(&mut self, slot: Option<V>) {
        if self.len == self.buf.len() {
            self.resize((self.len * 2).max(4));
        }
        *self.get_mut(self.len) = slot;
        self.len += 1;
    }

    /// Drops the front slot, which is empty.
    #[inline]
    fn skip_front(&mut self) {
        debug_assert!(self.get(0).is_none());
        self.head = self.index(1);
        self.len -= 1;
    }

    fn pop_front(&mut self) -> Option<Option<V>> {
        if self.len == 0 {
            return None;
        }
        let slot = self.get_mut(0).take();
        self.head = self.index(1);
        self.len -= 1;
        Some(slot)
    }

    /// Moves the slots to a ring of `capacity` (a power of two, at least `len`).
    fn resize(&mut self, capacity: usize) {
        let mut buf = Vec::with_capacity(capacity);
        for i in 0..self.len {
            buf.push(self.get_mut(i).take());
        }
        buf.resize_with(capacity, || None);
        self.buf = buf;
        self.head = 0;
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }
}

impl<V> Shrink for Ring<V> {
    fn reclaim(&mut self) {
        let want = (self.len * 2).max(FLOOR).next_power_of_two();
        if self.buf.len() > want * 2 {
            self.resize(want);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table against a `BTreeMap` oracle, under in-order, out-of-order and long-lived
    /// keys, with the window's bound checked throughout.
    #[test]
    fn behaves_as_a_map_whatever_the_order() {
        use std::collections::BTreeMap;
        let mut m: SeqMap<u64> = SeqMap::default();
        let mut oracle = BTreeMap::new();
        let mut next = 1u64;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..200_000u64 {
            match rand() % 10 {
                // New keys, sometimes skipping some (refs used by heartbeats), rarely far.
                0..=3 => {
                    next += match rand() % 50 {
                        0 => 1000,
                        1..=5 => 3,
                        _ => 1,
                    };
                    m.insert(next, step);
                    oracle.insert(next, step);
                }
                // Mostly the oldest, sometimes any.
                4..=7 => {
                    let key = if rand() % 8 == 0 {
                        oracle.keys().nth((rand() % 8) as usize).copied()
                    } else {
                        oracle.keys().next().copied()
                    };
                    if let Some(k) = key.filter(|k| *k != 5) {
                        assert_eq!(m.remove(&k), oracle.remove(&k));
                    }
                }
                8 => {
                    let k = rand() % (next + 2);
                    assert_eq!(m.get(&k), oracle.get(&k));
                    if let Some(v) = m.get_mut(&k) {
                        *v += 1;
                        *oracle.get_mut(&k).unwrap() += 1;
                    }
                }
                _ => assert_eq!(m.remove(&(next + 1)), None),
            }
            assert_eq!(m.len(), oracle.len());
            assert!(m.holes <= MAX_HOLES.max(m.window.len / 2), "{step}");
        }
        let mut all: Vec<(u64, u64)> = m.iter().map(|(k, v)| (k, *v)).collect();
        all.sort_unstable();
        assert!(all.into_iter().eq(oracle.iter().map(|(k, v)| (*k, *v))));
        m.retain(|k, _| k % 2 == 0);
        oracle.retain(|k, _| k % 2 == 0);
        let mut drained: Vec<(u64, u64)> = m.drain().collect();
        drained.sort_unstable();
        assert!(drained.into_iter().eq(oracle.into_iter()));
        assert_eq!(m.len(), 0);
        m.insert(3, 3);
        assert_eq!((m.get(&3), m.len()), (Some(&3), 1));
    }

    /// One key that never leaves does not hold thousands of empty slots behind it.
    #[test]
    fn a_long_lived_key_moves_out_of_the_window() {
        let mut m: SeqMap<u32> = SeqMap::default();
        m.insert(1, 1);
        for k in 2..10_000 {
            m.insert(k, 0);
            m.remove(&k);
        }
        assert!(m.window.len <= 2 * MAX_HOLES, "{}", m.window.len);
        assert_eq!((m.get(&1), m.len()), (Some(&1), 1));
        assert_eq!(m.remove(&1), Some(1));
        assert_eq!(m.len(), 0);
    }

    /// The room a burst took is given back at the next reclaim; what is left stays.
    #[test]
    fn a_burst_gives_its_room_back() {
        let mut m: SeqMap<u64> = SeqMap::default();
        for k in 0..5000 {
            m.insert(k, k);
        }
        for k in 0..4990 {
            assert_eq!(m.remove(&k), Some(k));
        }
        assert!(m.capacity() >= 5000);
        m.reclaim();
        assert!(m.capacity() <= 4 * FLOOR, "{}", m.capacity());
        assert!((4990..5000).all(|k| m.get(&k) == Some(&k)));
        m.reclaim();
        assert!((4990..5000).all(|k| m.remove(&k) == Some(k)));
    }
}
