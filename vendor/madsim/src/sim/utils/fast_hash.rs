//! kubesim patch: a fast, deterministic hasher for the simulator's hot lookup tables.
//!
//! The network looks up nodes, addresses and sockets several times for every message it
//! sends, and with std's SipHash those lookups cost several percent of a simulation. These
//! tables are only ever looked up, never iterated, so the hasher cannot change behaviour.
//!
//! [`FastState::default`] still constructs (and drops) one std `RandomState`, exactly as the
//! `HashMap::new()` it replaces did: std derives each thread's `RandomState` keys from a
//! counter that every construction advances, so keeping the count keeps the keys of every
//! other `HashMap` on the simulation's thread exactly as they were.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// The multiply-rotate hash of rustc's `FxHasher` (64-bit).
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().unwrap()));
        }
        for &byte in chunks.remainder() {
            self.add(byte as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Builds [`FastHasher`]s; see the module doc for why `default` touches `RandomState`.
#[derive(Clone, Copy)]
pub(crate) struct FastState;

impl Default for FastState {
    fn default() -> Self {
        drop(RandomState::new());
        FastState
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher::default()
    }
}

/// A `HashMap` with [`FastState`]: for tables that are looked up, never iterated.
pub(crate) type FastHashMap<K, V> = std::collections::HashMap<K, V, FastState>;
/// A `HashSet` with [`FastState`]: for sets that are looked up, never iterated.
pub(crate) type FastHashSet<T> = std::collections::HashSet<T, FastState>;
