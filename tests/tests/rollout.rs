//! The `rollout` scenario: the planted bug `rollout-ignores-max-surge` is caught by
//! rollout-bound on pinned seeds, and the same seeds pass without it, under the default
//! swarm; without faults the deployment rolls out, back and down to rest.
//!
//! Release campaigns at the commit that added them (`kubesim campaign --scenario rollout
//! --seeds 0..1000 [--faults disks] [--bug rollout-ignores-max-surge]`): without the bug,
//! every seed of 0..1000 passes, and every seed of 0..1000 of `--faults disks` (71 of
//! them total losses, counted as passed); with the bug, 760 of 1000 caught by
//! rollout-bound (the first, seed 1; the others rolled out before the first ReplicaSet
//! was made, or while it was empty), and 805 of 1000 with `--faults disks` (the first,
//! seed 0).

use std::collections::BTreeSet;

use sim::bugs::PlantedBug;
use sim::report::RunReport;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;

fn run(seed: u64, faults: Faults, bug: Option<PlantedBug>) -> RunReport {
    let mut options = RunOptions { faults, ..RunOptions::new(seed, Scenario::Rollout) };
    if let Some(bug) = bug {
        bug.plant(&mut options);
    }
    run_seed(&options)
}

fn broken(report: &RunReport) -> BTreeSet<String> {
    report.outcome.broken().iter().map(|property| property.name().to_string()).collect()
}

fn swarm() -> Faults {
    Faults::Swarm(faults::FaultKind::all())
}

#[test]
fn rollout_ignores_max_surge_is_caught_by_rollout_bound() {
    let bug = PlantedBug::RolloutIgnoresMaxSurge;
    for seed in [1, 10] {
        let with_bug = run(seed, swarm(), Some(bug));
        assert_eq!(broken(&with_bug), BTreeSet::from([bug.caught_by().to_string()]), "{}", with_bug.render());
        let without = run(seed, swarm(), None);
        assert!(without.passed(), "{}", without.render());
    }
}

/// Without faults: every step rolls out (the timeline shows the controller's scales of
/// each strategy), the rollback renumbers revision 1, the history limit deletes the
/// oldest ReplicaSet, and the deployment comes to rest at 2 pods of its last template.
#[test]
fn rollout_without_faults_rolls_out_back_and_down() {
    let report = run(3, Faults::None, None);
    assert!(report.passed(), "{}", report.render());
    let rollout = report.checks.iter().find(|c| c.name == "rollout-bound").expect("a rollout-bound verdict");
    assert!(!rollout.detail.contains("vacuous"), "judged some scales: {}", rollout.detail);
    let timeline = report.timeline.join("\n");
    for wanted in ["(RollingUpdate +2/-1)", "(Recreate)", "rollout undo", "at rest after"] {
        assert!(timeline.contains(wanted), "{wanted:?} not in the timeline:\n{timeline}");
    }
}
