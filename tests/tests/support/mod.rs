//! Helpers shared by the planted-bug test files: run a seed of the default scenario with a
//! planted bug, and check that the bug's invariant catches it on pinned seeds that pass
//! without it.

use std::ops::Range;

use sim::bugs::PlantedBug;
use sim::report::RunReport;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;

/// Seed `seed` of deploy-nginx with `faults` (None: the default swarm menu) and `bug`.
pub fn run(seed: u64, faults: Option<&Faults>, bug: Option<PlantedBug>) -> RunReport {
    // Without the generated workload: the seeds these tests pin come from sweeps of
    // deploy-nginx's own flow (the workload's own sweep is in tests/tests/workload.rs).
    let mut options = RunOptions { workload: Default::default(), ..RunOptions::new(seed, Scenario::DeployNginx) };
    if let Some(faults) = faults {
        options.faults = faults.clone();
    }
    if let Some(bug) = bug {
        bug.plant(&mut options);
    }
    run_seed(&options)
}

/// What the run broke, by name.
fn failed_checks(report: &RunReport) -> Vec<String> {
    report.outcome.broken().iter().map(|property| property.name().to_string()).collect()
}

/// Asserts that `bug` is caught by its invariant in at least one seed of `seeds`, and that
/// every seed of `seeds` passes with no bug planted.
#[track_caller]
pub fn check(bug: PlantedBug, seeds: Range<u64>, faults: Option<&Faults>) {
    let invariant = bug.caught_by();
    let mut outcomes = Vec::new();
    let mut caught = 0;
    for seed in seeds.clone() {
        let failed = failed_checks(&run(seed, faults, Some(bug)));
        if failed.iter().any(|name| name == invariant.name()) {
            caught += 1;
        }
        outcomes.push(format!("seed {seed}: failed {failed:?}"));
    }
    assert!(caught >= 1, "{bug} not caught by {invariant} in seeds {seeds:?}:\n{}", outcomes.join("\n"));
    for seed in seeds {
        let report = run(seed, faults, None);
        assert!(report.passed(), "seed {seed} fails with no bug planted:\n{}", report.render());
    }
}
