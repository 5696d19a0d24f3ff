//! A seed is a promise: the same seed replays the same run, in a fresh runtime, bit for
//! bit (same trace hash); different seeds explore different runs.

use sim::runner::{run_seed, RunOptions};
use sim::scenario::Scenario;

#[test]
fn store_smoke_same_seed_same_trace_hash_different_seeds_differ() {
    let first = run_seed(&RunOptions::new(7, Scenario::StoreSmoke));
    let again = run_seed(&RunOptions::new(7, Scenario::StoreSmoke));
    assert!(first.passed(), "{}", first.render());
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first, again, "the whole report replays, not just the hash");
    let other = run_seed(&RunOptions::new(8, Scenario::StoreSmoke));
    assert_ne!(first.trace_hash, other.trace_hash);
}
