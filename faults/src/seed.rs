//! One seed, one derivation: every random stream a seed drives comes from
//! [`SeedStreams::derive`], as TigerBeetle's VOPR derives a whole run from one PRNG.
//!
//! A seed feeds five streams, each independent of the others so that a change in how one
//! is consumed (a new knob, a new fault kind) leaves the others' draws as they were:
//! - `knobs`: the cluster's configuration, drawn before the run (`sim::knobs`);
//! - `plan` and `plan_details`: the fault plan ([`crate::generate()`]); details (tear
//!   lengths, corrupted offsets, which majority loses its disks) have their own stream so
//!   that format 2 plans kept format 1's other choices;
//! - `workload`: the users' actions ([`crate::actions::generate_workload`]);
//! - `simulation`: the seed of madsim's runtime, whose RNG every simulated component draws
//!   from (timers' jitter, message latency, pod start delays, request ids).
//!
//! Nothing else may seed a random number generator from a seed: a stream derived anywhere
//! else is a stream the replay of a seed does not promise.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Mixed into the seed for the plan's stream ("kubesim!" in ASCII).
const PLAN_MIX: u64 = 0x6b75_6265_7369_6d21;
/// Mixed into the seed for the plan details' stream ("details!" in ASCII).
const PLAN_DETAILS_MIX: u64 = 0x6465_7461_696c_7321;
/// Mixed into the seed for the knobs' stream ("knobs!!!" in ASCII).
const KNOBS_MIX: u64 = 0x6b6e_6f62_7321_2121;
/// Mixed into the seed for the generated workload's stream ("workload" in ASCII).
const WORKLOAD_MIX: u64 = 0x776f_726b_6c6f_6164;

/// Every random stream of one seed.
pub struct SeedStreams {
    /// The knobs the seed runs on.
    pub knobs: ChaCha8Rng,
    /// The fault plan's choices: kinds, times, durations, targets.
    pub plan: ChaCha8Rng,
    /// The fault plan's details (see the module docs).
    pub plan_details: ChaCha8Rng,
    /// The generated workload's actions ([`crate::actions::generate_workload`]).
    pub workload: ChaCha8Rng,
    /// The simulation runtime's seed: the seed itself, so that `kubesim run --seed N` is
    /// madsim's seed N.
    pub simulation: u64,
}

impl SeedStreams {
    /// The streams of `seed`.
    ///
    /// ```
    /// use rand::Rng;
    /// let (mut a, mut b) = (faults::SeedStreams::derive(7), faults::SeedStreams::derive(7));
    /// assert_eq!(a.plan.gen::<u64>(), b.plan.gen::<u64>());
    /// assert_eq!(a.simulation, 7);
    /// ```
    pub fn derive(seed: u64) -> Self {
        Self {
            knobs: ChaCha8Rng::seed_from_u64(seed ^ KNOBS_MIX),
            plan: ChaCha8Rng::seed_from_u64(seed ^ PLAN_MIX),
            plan_details: ChaCha8Rng::seed_from_u64(seed ^ PLAN_DETAILS_MIX),
            workload: ChaCha8Rng::seed_from_u64(seed ^ WORKLOAD_MIX),
            simulation: seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn the_streams_of_a_seed_are_distinct_and_reproducible() {
        let mut first = SeedStreams::derive(42);
        let mut again = SeedStreams::derive(42);
        let draws = |s: &mut SeedStreams| (s.knobs.gen::<u64>(), s.plan.gen::<u64>(), s.plan_details.gen::<u64>());
        let (a, b) = (draws(&mut first), draws(&mut again));
        assert_eq!(a, b);
        assert!(a.0 != a.1 && a.1 != a.2 && a.0 != a.2, "{a:?}");
        assert_ne!(draws(&mut SeedStreams::derive(43)), a);
    }
}
