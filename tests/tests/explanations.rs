//! A failing seed's explanation names what caused its violation (issue 21's "why it
//! failed"): for the first seed that catches each of these planted bugs in a default
//! campaign (`kubesim campaign --seeds 0..1000 --bug NAME`), the paragraph `kubesim run`
//! prints names the fault or event a reader needs, not only the symptom.

use sim::bugs::PlantedBug;
use sim::runner::{run_seed_with_history, Faults, RunOptions};
use sim::scenario::Scenario;

/// The explanations of `seed` with `bug` planted, under the default swarm of faults.
fn explained(bug: PlantedBug, seed: u64) -> String {
    let mut options = RunOptions {
        faults: Faults::Swarm(faults::FaultKind::all()),
        // The pinned seeds are of deploy-nginx's own flow, without the generated workload.
        workload: Default::default(),
        ..RunOptions::new(seed, Scenario::DeployNginx)
    };
    bug.plant(&mut options);
    let (report, history) = run_seed_with_history(&options);
    assert!(!report.outcome.broken().is_empty(), "{bug} seed {seed} no longer fails: {:?}", report.outcome);
    kubesim::explain::explain(&report, &history).into_iter().map(|e| e.text).collect::<Vec<_>>().join("\n")
}

#[track_caller]
fn assert_names(text: &str, cause: &str) {
    assert!(text.contains(cause), "the explanation does not name {cause:?}:\n{text}");
}

#[test]
fn a_watch_that_missed_a_change_names_the_cache_answer_from_below_its_window() {
    let text = explained(PlantedBug::WatchCacheServesEvicted, 1);
    assert_names(&text, "out of its watch cache, which had already evicted every revision up to");
}

#[test]
fn a_stale_read_names_the_follower_that_served_it() {
    let text = explained(PlantedBug::FollowerReadsWithoutReadIndex, 2);
    assert_names(&text, "a Follower in term");
    assert_names(&text, "'s read at revision");
}

#[test]
fn a_lost_namespace_names_the_compactions_that_had_to_keep_it() {
    let text = explained(PlantedBug::CompactionDropsKeptVersion, 3);
    assert_names(&text, "which must keep /registry/namespaces/default's latest version");
}

#[test]
fn too_many_pods_names_the_creates_a_stale_informer_cache_allowed() {
    let text = explained(PlantedBug::ReplicasetNoExpectations, 4);
    assert_names(&text, "not its own writes");
}

#[test]
fn a_watch_resumed_from_nowhere_names_the_410_before_it() {
    let text = explained(PlantedBug::InformerSkipsRelist, 1);
    assert_names(&text, "was answered 410 Gone");
}
