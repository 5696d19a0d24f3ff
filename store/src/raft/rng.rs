//! A tiny deterministic PRNG (SplitMix64) for randomized election timeouts. Seeded by the
//! driver from the simulator's seed, so a run is reproducible; no `rand`, no entropy.

#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `low..high`; `high > low`. The modulo bias is irrelevant for timeouts.
    pub(crate) fn in_range(&mut self, low: u64, high: u64) -> u64 {
        debug_assert!(high > low);
        low + self.next_u64() % (high - low)
    }
}
