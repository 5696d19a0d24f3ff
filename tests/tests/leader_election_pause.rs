//! A kube-controller-manager woken from a pause longer than its lease, with the elector
//! modelled on client-go's (`controllers::leader_election`): the standby takes the lease
//! over during the pause; on waking, the old leader's renew round finds the lease taken
//! and keeps trying until the round's renew deadline, its controllers acting meanwhile.
//! With kubesim's fence on, those writes are refused, and the old leader stops leading a
//! renew deadline after it woke, not at its first look at the lease.

use faults::FaultPlan;
use sim::history::{ApiOutcome, HistoryEvent};
use sim::knobs::Knobs;
use sim::runner::{run_seed_with_history, Faults, RunOptions};
use sim::scenario::Scenario;

/// The controller-manager leader freezes for 20 s from t=6 s, past its 15 s lease. The
/// safety phase runs on to 45 s so that the run outlasts the woken leader's renew deadline
/// (a run ends soon after its safety phase once the cluster has converged).
const LEADER_PAUSE_PLAN: &str = r#"{
  "version": 2, "safety_phase_ms": 45000, "liveness_phase_ms": 30000,
  "events": [{"at_ms": 6000, "duration_ms": 20000,
    "fault": {"kind": "pause", "target": "controller-manager-leader"}}]
}"#;

const COMPONENT: &str = "kube-controller-manager";

#[test]
fn a_leader_woken_after_a_takeover_acts_until_its_renew_deadline_and_is_fenced() {
    let seed = 0;
    let knobs = Knobs::for_seed(seed);
    assert_eq!(knobs.leader_lease_duration_ms, 15_000, "seed {seed} runs on the default lease");
    let plan = FaultPlan::from_json(LEADER_PAUSE_PLAN).expect("plan parses");
    let options = RunOptions { faults: Faults::Plan(plan), ..RunOptions::new(seed, Scenario::DeployNginx) };
    let (report, history) = run_seed_with_history(&options);
    assert!(report.passed(), "{}", report.render());

    let (resumed_ns, old_leader) = history
        .events()
        .find_map(|(at_ns, event)| match event {
            // "t=26000ms resume controller-manager-1"
            HistoryEvent::Fault { description } => {
                description.split_once(" resume ").map(|(_, node)| (at_ns, node.to_string()))
            }
            _ => None,
        })
        .expect("the paused leader resumes");
    let took_over = history.events().any(|(at_ns, event)| {
        matches!(event, HistoryEvent::LeaderAcquired { component, identity, .. }
            if component == COMPONENT && *identity != old_leader && at_ns < resumed_ns)
    });
    assert!(took_over, "the standby took the lease over during the pause:\n{}", report.render());
    let lost_ns = history
        .events()
        .find_map(|(at_ns, event)| match event {
            HistoryEvent::LeaderLost { component, identity }
                if component == COMPONENT && *identity == old_leader && at_ns > resumed_ns =>
            {
                Some(at_ns)
            }
            _ => None,
        })
        .expect("the old leader stops leading after it wakes");
    // client-go's renew round: the deadline runs from the round's start, on waking.
    let after_ms = (lost_ns - resumed_ns) / 1_000_000;
    assert!(
        after_ms >= knobs.leader_renew_deadline_ms && after_ms < knobs.leader_renew_deadline_ms + 1_000,
        "the old leader stopped leading {after_ms} ms after waking, renew deadline {} ms",
        knobs.leader_renew_deadline_ms
    );
    // Meanwhile its controllers wrote, and the fence refused every one of those writes.
    let fenced = history
        .events()
        .filter(|(at_ns, event)| {
            (resumed_ns..lost_ns).contains(at_ns)
                && matches!(event, HistoryEvent::ApiReturned { client, outcome: ApiOutcome::Error { message, .. }, .. }
                    if *client == old_leader && message.contains("fenced out"))
        })
        .count();
    assert!(fenced >= 1, "no write of the woken leader was fenced:\n{}", report.render());
}
