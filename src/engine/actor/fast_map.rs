//! A hash map with a cheap hasher for the actor's own tables. Their keys are ids and refs the
//! actor hands out and topics the application chose, never keys a peer could pick to collide,
//! so SipHash's flooding resistance buys nothing on the per-message lookups.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The multiply-rotate hash of rustc's `FxHasher`.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        // The last 1..7 bytes in one word, without a copy into a buffer (a `memcpy` call for
        // every topic looked up): two overlapping 4-byte reads, or the first, middle and last
        // byte. Equal keys give equal words, which is all a hash needs.
        let rest = chunks.remainder();
        let n = rest.len();
        if n >= 4 {
            let lo = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            let hi = u32::from_le_bytes(rest[n - 4..].try_into().expect("4 bytes"));
            self.add(u64::from(lo) | u64::from(hi) << 32);
        } else if n > 0 {
            let (a, b, c) = (rest[0], rest[n / 2], rest[n - 1]);
            self.add(u64::from(a) | u64::from(b) << 8 | u64::from(c) << 16 | (n as u64) << 24);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinguishes_keys_and_prefixes() {
        let mut m: FastMap<Box<str>, u32> = FastMap::default();
        for (i, k) in ["room:a", "room:b", "room:ab", "", "room:aaaaaaaaa"]
            .iter()
            .enumerate()
        {
            m.insert((*k).into(), i as u32);
        }
        assert_eq!(m.len(), 5);
        assert_eq!(m.get("room:ab"), Some(&2));
        // Every length of the last word's tail (1..7 bytes after full words, and none).
        let keys: Vec<String> = (0..=21)
            .map(|n| "topic:x".repeat(3)[..n].to_owned())
            .collect();
        let mut by_len: FastMap<&str, usize> = FastMap::default();
        by_len.extend(keys.iter().map(|k| (k.as_str(), k.len())));
        assert_eq!(by_len.len(), keys.len());
        assert!(keys.iter().all(|k| by_len[k.as_str()] == k.len()));
        let mut ids: FastMap<u64, u64> = FastMap::default();
        ids.extend((0..1000).map(|i| (i, i * 2)));
        assert!((0..1000).all(|i| ids[&i] == i * 2));
    }
}
