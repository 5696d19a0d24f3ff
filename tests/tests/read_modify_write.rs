//! The `read-modify-write` scenario: the planted bug `update-reapplies-on-conflict` is
//! caught by no-lost-update on pinned seeds, and the same seeds pass without it, under the
//! default swarm and under the `disks` menu (restores among them).
//!
//! Release campaigns at the commit that added them (`kubesim campaign --scenario
//! read-modify-write --seeds 0..1000 [--faults disks] [--bug update-reapplies-on-conflict]`):
//! with the bug, 1000 of 1000 caught by no-lost-update (the first, seed 0; in 5 of them
//! controller-single-leader fires too, as the bug lets two candidates take one Lease), and
//! 964 of 1000 under `--faults disks` (34 of the others are total losses); without it,
//! every seed of 0..1000 passes, and 0..1000 of `--faults disks` pass, 73 of them total
//! losses (681 seeds restore the store from a backup).

use std::collections::BTreeSet;

use sim::bugs::PlantedBug;
use sim::report::RunReport;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;

fn run(seed: u64, faults: Faults, bug: Option<PlantedBug>) -> RunReport {
    let mut options = RunOptions { faults, ..RunOptions::new(seed, Scenario::ReadModifyWrite) };
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

fn disks() -> Faults {
    Faults::Swarm(faults::menus::menu("disks").expect("kubesim's disks menu").kinds)
}

/// no-lost-update's line of a report.
fn no_lost_update(report: &RunReport) -> String {
    let check = report.checks.iter().find(|c| c.name == "no-lost-update").expect("a no-lost-update verdict");
    check.detail.clone()
}

#[test]
fn update_reapplies_on_conflict_is_caught_by_no_lost_update() {
    let bug = PlantedBug::UpdateReappliesOnConflict;
    let with_bug = run(1, swarm(), Some(bug));
    assert_eq!(broken(&with_bug), BTreeSet::from([bug.caught_by().to_string()]), "{}", with_bug.render());
    assert!(no_lost_update(&with_bug).contains("instead of a 409 Conflict"), "{}", with_bug.render());
    let without = run(1, swarm(), None);
    assert!(without.passed(), "{}", without.render());
    assert!(no_lost_update(&without).contains("3 counters end to end"), "{}", no_lost_update(&without));
}

/// Seed 2 of the disks menu restores the store twice: the counters are re-created in the
/// last cluster epoch and judged end to end there, and every acknowledged update of every
/// epoch against the version it read; with the bug the same seed loses updates.
#[test]
fn no_lost_update_holds_across_restores() {
    let report = run(2, disks(), None);
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.stats.get("restores"), Some(&2), "the seed restores twice: {:?}", report.stats);
    let with_bug = run(2, disks(), Some(PlantedBug::UpdateReappliesOnConflict));
    assert!(broken(&with_bug).contains("no-lost-update"), "{}", with_bug.render());
}

/// Without faults the users race on the hot ConfigMap (some of their updates conflict and
/// are retried), and at rest every counter holds exactly the acknowledged increments.
#[test]
fn read_modify_write_without_faults_counts_every_increment() {
    let report = run(3, Faults::None, None);
    assert!(report.passed(), "{}", report.render());
    let convergence = report.checks.iter().find(|c| c.name == "convergence").expect("a convergence verdict");
    assert!(convergence.detail.contains("awaited goals met"), "{}", convergence.detail);
    assert!(report.timeline.iter().any(|line| line.contains("counter shared ")), "{:?}", report.timeline);
    assert!(report.coverage.get("apiserver.write.conflict").is_some_and(|n| *n > 0), "{:?}", report.coverage);
}
