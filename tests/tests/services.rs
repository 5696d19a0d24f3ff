//! The `services` scenario: the planted bug `service-ips-unconditional-put` is caught by
//! service-ips-unique on pinned seeds, and the same seeds pass without it, under the
//! default swarm and under the `disks` menu (restores among them).
//!
//! Release campaigns at the commit that added them (`kubesim campaign --scenario services
//! --seeds 0..1000 [--faults disks] [--bug service-ips-unconditional-put]`): with the bug,
//! 736 of 1000 caught, all by service-ips-unique alone (the first, seed 1); without it,
//! every seed of 0..1000 passes, and 0..1000 of `--faults disks` pass but for 72 total
//! losses (in 0..300, 206 seeds restore the store from a backup).

use std::collections::BTreeSet;

use sim::bugs::PlantedBug;
use sim::report::RunReport;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;

fn run(seed: u64, faults: Faults, bug: Option<PlantedBug>) -> RunReport {
    let mut options = RunOptions { faults, ..RunOptions::new(seed, Scenario::Services) };
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

#[test]
fn service_ips_unconditional_put_is_caught_by_service_ips_unique() {
    let bug = PlantedBug::ServiceIpsUnconditionalPut;
    let with_bug = run(1, swarm(), Some(bug));
    assert_eq!(broken(&with_bug), BTreeSet::from([bug.caught_by().to_string()]), "{}", with_bug.render());
    let without = run(1, swarm(), None);
    assert!(without.passed(), "{}", without.render());
}

/// Seed 0 of the disks menu restores the store from a backup: the bitmap comes back with
/// the Services it was written beside, and the invariant holds across the restore; with
/// the bug the same seed hands an IP out twice.
#[test]
fn service_ips_stay_unique_across_a_restore() {
    let report = run(0, disks(), None);
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.stats.get("restores"), Some(&1), "the seed restores: {:?}", report.stats);
    let with_bug = run(0, disks(), Some(PlantedBug::ServiceIpsUnconditionalPut));
    assert!(broken(&with_bug).contains("service-ips-unique"), "{}", with_bug.render());
}

/// Without faults the users exhaust and reuse the /28, and the cluster comes to rest with
/// every Service's Endpoints equal to its Ready pods (judged by convergence).
#[test]
fn services_without_faults_converge_with_endpoints_of_ready_pods() {
    let report = run(2, Faults::None, None);
    assert!(report.passed(), "{}", report.render());
    let convergence = report.checks.iter().find(|c| c.name == "convergence").expect("a convergence verdict");
    assert!(convergence.detail.contains("awaited goals met"), "{}", convergence.detail);
    assert!(
        report.timeline.iter().any(|line| line.contains("Endpoints equal their 3 Ready pods")),
        "{:?}",
        report.timeline
    );
    let ips = report.timeline.iter().filter(|line| line.contains(" holds ")).count();
    assert!(ips > 14, "more Services than the /28 holds came and went: {ips}");
}
