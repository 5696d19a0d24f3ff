//! Property tests over whole runs: for any small fault plan and any workload on the default
//! scenario, every invariant holds; and when a planted bug makes a run fail, proptest's
//! counterexample shrinks to a small plan.
//!
//! Runs are whole simulations (about 0.2 s each in the test profile on a 2-core machine:
//! 40 cases take about 8 s), so case counts stay small and the RNG seed is fixed: CI
//! explores the same cases every time, and the campaign (`ci/test`) is where breadth
//! comes from. A failure is persisted to
//! `tests/proptest-regressions/` (commit it: proptest replays it first from then on).

use std::collections::BTreeSet;

use faults::FaultKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner};
use sim::bugs::PlantedBug;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;
use sim::strategies::{deploy_nginx_run_strategy, run_plan_strategy};

/// Cases per property: each is a full simulated run.
const CASES: u32 = 40;
/// Shrinking stops after this many steps (each a run).
const MAX_SHRINK_ITERS: u32 = 48;

fn config(persistence_file: &'static str) -> Config {
    Config {
        cases: CASES,
        max_shrink_iters: MAX_SHRINK_ITERS,
        rng_seed: RngSeed::Fixed(0x6b75_6265),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(persistence_file))),
        ..Config::default()
    }
}

/// The violated invariants of a run, with its report for the failure message.
fn violations(options: &RunOptions) -> (BTreeSet<String>, String) {
    let report = run_seed(options);
    (report.outcome.broken().iter().map(|property| property.name().to_string()).collect(), report.render())
}

proptest! {
    #![proptest_config(config("proptest-regressions/properties.txt"))]

    /// docs/design.md §4: a correct system keeps every invariant under any survivable plan.
    /// Each plan is drawn for its seed's own topology (3 or 5 store members).
    #[test]
    fn any_plan_of_up_to_four_faults_and_any_workload_keeps_every_invariant(
        options in deploy_nginx_run_strategy(0..1_000_000, 4),
    ) {
        let Faults::Plan(plan) = &options.faults else { unreachable!("the strategy draws a plan") };
        prop_assert!(plan.validate(&options.topology()).is_ok(), "{}", plan.to_json_pretty());
        let (violated, report) = violations(&options);
        prop_assert!(violated.is_empty(), "violated {violated:?}:\n{report}");
    }
}

/// The must-fire half: with reads served by followers without ReadIndex, proptest finds a
/// plan under which seed 3 breaks linearizability, and shrinks it to at most two faults.
/// The failing case is persisted, so later runs start from it.
#[test]
fn a_planted_bug_counterexample_shrinks_to_a_small_plan() {
    // Up to 32 plans: it stops at the first that fails (about one in three does).
    let mut runner =
        TestRunner::new(Config { cases: 32, ..config("proptest-regressions/planted_bug_counterexample.txt") });
    let bug = PlantedBug::FollowerReadsWithoutReadIndex;
    let mut seed_3 = RunOptions::new(3, Scenario::DeployNginx);
    bug.plant(&mut seed_3);
    // Drawn for seed 3's own topology.
    let strategy = run_plan_strategy(&seed_3, FaultKind::all(), 6);
    let outcome = runner.run(&strategy, |plan| {
        plan.validate(&seed_3.topology()).expect("a strategy's plan fits its run");
        let mut options = seed_3.clone();
        options.faults = Faults::Plan(plan);
        let (violated, _) = violations(&options);
        if violated.contains(bug.caught_by().name()) {
            return Err(TestCaseError::fail(format!("violated {violated:?}")));
        }
        Ok(())
    });
    match outcome {
        Err(TestError::Fail(reason, minimal)) => {
            assert!(
                minimal.events.len() <= 2,
                "shrunk to {} events ({reason}):\n{}",
                minimal.events.len(),
                minimal.to_json_pretty()
            );
        }
        other => panic!("{bug} was never caught by {} in 32 plans: {other:?}", bug.caught_by()),
    }
}
