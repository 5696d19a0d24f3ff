//! The `permissions` scenario: the planted bug `rbac-cache-ignores-binding-deletes` is
//! caught by the permissions checker on pinned seeds, and the same seeds pass without it,
//! under the default swarm and under the `disks` menu, where restores give a revoked
//! permission back (the security window, reported, not a violation).
//!
//! Release campaigns at the commit that added them (`kubesim campaign --scenario
//! permissions --seeds 0..N [--faults disks] [--bug rbac-cache-ignores-binding-deletes]`):
//! with the bug, 940 of 1000 caught by permissions alone (the first, seed 0) and 896 of 1000
//! under `--faults disks` (50 of the others are total losses); without it, every seed of
//! 0..1000 passes, and 0..1000 of `--faults disks` pass, 69 of them total losses, with 766
//! restores and 120 security windows on 119 seeds (the first, seed 13).

use std::collections::BTreeSet;
use std::ops::Range;

use sim::bugs::PlantedBug;
use sim::report::RunReport;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;

fn run(seed: u64, faults: Faults, bug: Option<PlantedBug>) -> RunReport {
    let mut options = RunOptions { faults, ..RunOptions::new(seed, Scenario::Permissions) };
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

/// The permissions line of a report.
fn permissions(report: &RunReport) -> String {
    let check = report.checks.iter().find(|c| c.name == "permissions").expect("a permissions verdict");
    check.detail.clone()
}

/// Every seed of `seeds` fails exactly permissions with the bug, and passes without it.
#[track_caller]
fn assert_caught_on_every_seed(seeds: Range<u64>, faults: Faults) {
    let bug = PlantedBug::RbacCacheIgnoresBindingDeletes;
    for seed in seeds {
        let with_bug = run(seed, faults.clone(), Some(bug));
        assert_eq!(broken(&with_bug), BTreeSet::from([bug.caught_by().to_string()]), "{}", with_bug.render());
        let detail = permissions(&with_bug);
        assert!(detail.contains("alice") && detail.contains("was deleted at revision"), "seed {seed}: {detail}");
        let without = run(seed, faults.clone(), None);
        assert!(without.passed(), "seed {seed} without the bug: {}", without.render());
        assert!(permissions(&without).contains("RBAC decisions"), "{}", permissions(&without));
    }
}

#[test]
fn rbac_cache_ignoring_binding_deletes_is_caught_by_permissions() {
    assert_caught_on_every_seed(0..3, swarm());
}

#[test]
fn rbac_cache_ignoring_binding_deletes_is_caught_across_restores() {
    assert_caught_on_every_seed(13..14, disks());
}

/// Seed 13 of the disks menu restores a backup taken while alice was granted, after the
/// admin revoked her: the restore gives her the role back until the admin's next revoke.
/// That is the security window, counted and listed, and no violation.
#[test]
fn a_restore_that_gives_a_revoked_permission_back_is_a_security_window() {
    let report = run(13, disks(), None);
    assert!(report.passed(), "{}", report.render());
    assert!(report.stats.get("restores").is_some_and(|n| *n >= 1), "{:?}", report.stats);
    assert_eq!(report.stats.get("security-windows"), Some(&1), "{:?}", report.stats);
    let detail = permissions(&report);
    assert!(
        detail.contains("1 security windows: User alice regained Role default/configmap-editor in default"),
        "{detail}"
    );
    assert!(detail.contains("until revoked at rev"), "{detail}");
}

/// No false alarm over seeds 0..20 of the default menu and of the disks menu (restores
/// and total losses among them), where the security window shows up on some seeds (13,
/// the first, among them).
#[test]
fn permissions_hold_without_the_bug_under_the_default_and_disks_menus() {
    for seed in 0..20 {
        let report = run(seed, swarm(), None);
        assert!(broken(&report).is_empty(), "seed {seed}: {}", report.render());
    }
    let mut with_windows = Vec::new();
    for seed in 0..20 {
        let report = run(seed, disks(), None);
        assert!(broken(&report).is_empty(), "seed {seed} (disks): {}", report.render());
        if report.stats.get("security-windows").is_some_and(|n| *n > 0) {
            with_windows.push(seed);
        }
    }
    assert!(with_windows.contains(&13), "security windows on seeds {with_windows:?}");
}

/// Without faults alice is allowed while granted and forbidden while revoked, every
/// decision is judged, and a last grant takes effect in time.
#[test]
fn permissions_without_faults_judge_every_decision() {
    let report = run(3, Faults::None, None);
    assert!(report.passed(), "{}", report.render());
    let detail = permissions(&report);
    assert!(detail.contains("allowed") && !detail.contains(" 0 denied"), "{detail}");
    let convergence = report.checks.iter().find(|c| c.name == "convergence").expect("a convergence verdict");
    assert!(convergence.detail.contains("1 of 1 awaited goals met"), "{}", convergence.detail);
    assert!(report.timeline.iter().any(|line| line.contains("kubectl delete rolebinding")), "{:?}", report.timeline);
}
