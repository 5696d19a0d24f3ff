//! Kubernetes-level planted bugs are caught by the invariant `kubesim bugs` names, on a
//! small fixed seed range found by a release campaign (`kubesim campaign --seeds 0..1000
//! --bug NAME`), and the same seeds pass without the bug. Each test is the one-line
//! answer to "does this checker fire on the bug it exists for, and only then?".

use std::collections::BTreeSet;
use std::ops::Range;

use faults::FaultPlan;
use sim::bugs::PlantedBug;
use sim::runner::{run_seed, Faults, RunOptions};
use sim::scenario::Scenario;

/// The failing checks' names of each seed, with `bug` planted (or none).
fn failures(bug: Option<PlantedBug>, seeds: Range<u64>, faults: &Faults) -> Vec<(u64, BTreeSet<String>)> {
    seeds
        .map(|seed| {
            let mut options = RunOptions { faults: faults.clone(), ..RunOptions::new(seed, Scenario::DeployNginx) };
            if let Some(bug) = bug {
                bug.plant(&mut options);
            }
            let report = run_seed(&options);
            (seed, report.failures().map(|c| c.name.clone()).collect())
        })
        .collect()
}

/// Some seed of `seeds` fails exactly `bug`'s invariant with the bug planted, and every
/// seed passes without it.
#[track_caller]
fn assert_caught_only_by_its_invariant(bug: PlantedBug, seeds: Range<u64>, faults: Faults) {
    let expected = BTreeSet::from([bug.caught_by().to_string()]);
    let with_bug = failures(Some(bug), seeds.clone(), &faults);
    assert!(
        with_bug.iter().any(|(_, failed)| *failed == expected),
        "{bug}: no seed of {seeds:?} failed exactly {expected:?}: {with_bug:?}"
    );
    let without_bug = failures(None, seeds.clone(), &faults);
    assert!(without_bug.iter().all(|(_, failed)| failed.is_empty()), "without {bug}: {without_bug:?}");
}

/// Some seed of `seeds` fails `bug`'s invariant (perhaps beside others) with the bug
/// planted, and every seed passes without it.
#[track_caller]
fn assert_caught_by_its_invariant(bug: PlantedBug, seeds: Range<u64>, faults: Faults) {
    let invariant = bug.caught_by().to_string();
    let with_bug = failures(Some(bug), seeds.clone(), &faults);
    assert!(
        with_bug.iter().any(|(_, failed)| failed.contains(&invariant)),
        "{bug}: no seed of {seeds:?} failed {invariant}: {with_bug:?}"
    );
    let without_bug = failures(None, seeds.clone(), &faults);
    assert!(without_bug.iter().all(|(_, failed)| failed.is_empty()), "without {bug}: {without_bug:?}");
}

fn swarm() -> Faults {
    Faults::Swarm(faults::FaultKind::all())
}

#[test]
fn apiserver_ack_before_commit_is_caught_by_no_acknowledged_write_lost() {
    // Campaign 0..1000: 950 seeds caught, the first 0, never by this invariant alone: the
    // answers carry guessed revisions, so revisions-never-go-backwards, convergence or
    // controller-single-leader fail beside it (the other seeds, 1 among them, stop at the
    // leader elector's assertion that a lease's resourceVersion never goes back).
    assert_caught_by_its_invariant(PlantedBug::ApiserverAckBeforeCommit, 0..1, swarm());
}

#[test]
fn controller_writes_store_is_caught_by_store_single_writer() {
    // Campaign 0..1000: 982 seeds caught, all by store-single-writer alone, first 0.
    assert_caught_only_by_its_invariant(PlantedBug::ControllerWritesStore, 0..3, swarm());
}

#[test]
fn watch_cache_serving_evicted_revisions_is_caught_by_watch_guarantees() {
    // Campaign 0..1000: 28 seeds caught by watch-guarantees, the first 16, each on a small
    // `watch_cache_capacity` knob whose window overflowed while an informer's watch was
    // behind it; in 16 the informer, never told to relist, also missed a pod and the
    // replica count went wrong (convergence).
    assert_caught_by_its_invariant(PlantedBug::WatchCacheServesEvicted, 16..17, swarm());
}

#[test]
fn lease_expiry_ignoring_promotion_is_caught_by_lease_expiry() {
    assert_caught_only_by_its_invariant(PlantedBug::LeaseExpiryIgnoresPromotion, 6..7, swarm());
}

#[test]
fn informer_skipping_the_relist_is_caught_by_informer_continuity() {
    // Campaign 0..1000: 277 seeds caught by informer-continuity, the first 1 (alone), each
    // on a short `compaction_interval_ms` or a small `watch_cache_capacity` knob that made
    // a watch meet 410 Gone; convergence noticed only 30 of them (a missed pod or node).
    assert_caught_only_by_its_invariant(PlantedBug::InformerSkipsRelist, 1..2, swarm());
}

#[test]
fn replicaset_no_expectations_is_caught_by_convergence() {
    // Campaign 0..1000: 32 seeds caught by the replica-count checker alone (a stale
    // informer cache during the scale-up), first 16.
    assert_caught_only_by_its_invariant(PlantedBug::ReplicasetNoExpectations, 16..17, swarm());
}

/// The standby controller-manager's clock jumps 20 s ahead just before the scale-up, so
/// it judges the lease expired (renewed < 2 s ago, duration 15 s) and takes it over while
/// the leader, renewing on time by its own clock, still leads for up to one retry period.
/// A pause cannot do this: one longer than the renew deadline is noticed by the elector
/// before the controllers run again. The swarm generator's clock offsets reach ±30 s for
/// this reason (see the swarm test below).
const STANDBY_CLOCK_JUMP_PLAN: &str = r#"{
  "version": 2, "safety_phase_ms": 30000, "liveness_phase_ms": 30000,
  "events": [{"at_ms": 14000, "duration_ms": 8000,
    "fault": {"kind": "clock-skew", "target": "controller-manager-0", "offset_ms": 20000, "drift_ms_per_s": 0}}]
}"#;

#[test]
fn controller_fencing_off_is_caught_by_controller_single_leader() {
    // Seeds 0..60 with this plan: 16 caught, 10 by this invariant alone and all 60 passing
    // with fencing on (first 0); others also over-create pods (two ReplicaSet controllers
    // at once break convergence too).
    let plan = FaultPlan::from_json(STANDBY_CLOCK_JUMP_PLAN).expect("plan parses");
    assert_caught_only_by_its_invariant(PlantedBug::ControllerFencingOff, 0..1, Faults::Plan(plan));
}

#[test]
fn controller_fencing_off_is_caught_by_the_default_swarm_campaign() {
    // Campaign 0..1000 with all fault kinds: 4 seeds caught, each by this invariant alone
    // (88, 228, 511, 713), through a generated clock skew past the lease duration that
    // lands while the controllers have writes to make.
    assert_caught_only_by_its_invariant(PlantedBug::ControllerFencingOff, 88..89, swarm());
}
