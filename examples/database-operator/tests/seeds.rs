//! The example's seeds from `cargo test -p database-operator`: the correct operator holds
//! its invariant under the default faults; the buggy one is caught by it within 200 seeds,
//! and the seed that catches it replays with the same trace hash in a fresh run.
//! `KUBESIM_TEST_SEED` / `KUBESIM_TEST_NUM` change the seeds without editing this file.

use database_operator::invariant::SINGLE_PRIMARY;
use database_operator::DatabaseScenario;
use kubesim::sim::runner::{run_seed, RunOptions};
use kubesim::sim::scenario::Scenario;
use kubesim::testing::Seeds;
use kubesim::verdict::checkers::Invariant;

#[test]
fn the_correct_operator_never_has_two_primaries() {
    Seeds::of(DatabaseScenario::correct()).range(0..16).check();
}

#[test]
fn the_buggy_operator_is_caught_by_its_invariant_and_replays() {
    let caught = Seeds::of(DatabaseScenario::buggy()).range(0..200).first_caught_by(Invariant::Custom(SINGLE_PRIMARY));
    assert!(caught.repro.contains("--scenario database-buggy"), "{}", caught.repro);
    // The repro line's run: the same seed of the same scenario, in a fresh runtime.
    let scenario: Scenario = "database-buggy".parse().expect("registered by Seeds::of");
    let replay = run_seed(&RunOptions::new(caught.seed, scenario));
    assert_eq!(replay.trace_hash, caught.trace_hash, "seed {} must replay exactly", caught.seed);
    assert_eq!(replay.outcome, caught.outcome);
}
