//! `kubesim shrink`'s search, on hand-made oracles (which faults "cause" the failure is
//! known, so the minimal plan is too) and on a real seed with a planted bug.

use std::cell::Cell;

use faults::{Fault, FaultEvent, FaultPlan, Slot, Target, Tear, Topology};
use kubesim::shrink::{milder_faults, minimize, shrink_seed, ShrinkError};
use sim::bugs::PlantedBug;
use sim::runner::{Faults, RunOptions};
use sim::scenario::Scenario;

fn topology() -> Topology {
    Topology { store_members: 3, apiservers: 1, controller_managers: 2, schedulers: 1, kubelets: 3 }
}

fn event(at_ms: u64, duration_ms: u64, fault: Fault) -> FaultEvent {
    FaultEvent { at_ms, duration_ms, fault }
}

/// Eight faults, of which the oracles below blame two.
fn busy_plan() -> FaultPlan {
    let mut plan = FaultPlan::empty(30_000, 30_000);
    plan.events = vec![
        event(1_000, 4_000, Fault::Pause { target: Target::Scheduler }),
        event(2_000, 8_000, Fault::Crash { target: Target::StoreMember(Slot(2)) }),
        event(3_000, 2_000, Fault::LatencySpike { min_ms: 20, max_ms: 900 }),
        event(4_000, 6_000, Fault::PacketLoss { rate: 0.4 }),
        event(5_000, 3_000, Fault::IsolateStoreLeader),
        event(6_000, 1_000, Fault::Pause { target: Target::Kubelet(1) }),
        event(
            7_000,
            5_000,
            Fault::ClockSkew { target: Target::ControllerManager(0), offset_ms: 9_000, drift_ms_per_s: 40 },
        ),
        event(8_000, 2_000, Fault::Crash { target: Target::ApiServer(0) }),
    ];
    plan.validate(&topology()).unwrap();
    plan
}

/// The failure needs store-2 down for at least 1 s and packet loss of at least 10 %.
fn needs_crash_and_loss(plan: &FaultPlan) -> bool {
    let crash = plan
        .events
        .iter()
        .any(|e| matches!(e.fault, Fault::Crash { target: Target::StoreMember(Slot(2)) }) && e.duration_ms >= 1_000);
    let loss = plan.events.iter().any(|e| matches!(e.fault, Fault::PacketLoss { rate } if rate >= 0.1));
    crash && loss
}

#[test]
fn shrinking_keeps_exactly_the_faults_the_failure_needs_shortened_later_and_milder() {
    let runs = Cell::new(0);
    let mut steps = Vec::new();
    let minimized = minimize(
        &busy_plan(),
        &topology(),
        500,
        |plan| {
            runs.set(runs.get() + 1);
            needs_crash_and_loss(plan)
        },
        &mut |step| steps.push(step.clone()),
    );
    assert!(!minimized.budget_exhausted, "{minimized:#?}");
    assert_eq!(minimized.runs, runs.get(), "every oracle call is counted");
    assert_eq!(minimized.steps, steps, "every step was reported as it happened");
    let plan = &minimized.plan;
    assert!(needs_crash_and_loss(plan));
    assert_eq!(plan.events.len(), 2, "{plan:#?}");
    let crash = plan.events.iter().find(|e| matches!(e.fault, Fault::Crash { .. })).unwrap();
    assert!((1_000..2_000).contains(&crash.duration_ms), "crash shortened by halves: {crash:?}");
    assert_eq!(crash.at_ms, 30_000 - crash.duration_ms, "started as late as possible");
    let loss = plan.events.iter().find(|e| matches!(e.fault, Fault::PacketLoss { .. })).unwrap();
    assert_eq!(loss.duration_ms, 500, "the shortest duration");
    assert_eq!(loss.at_ms, 29_500);
    let Fault::PacketLoss { rate } = loss.fault else { unreachable!() };
    assert!((0.1..0.2).contains(&rate), "rate lowered by halves while it still fails: {rate}");
}

#[test]
fn shrinking_a_failure_that_needs_no_fault_ends_with_an_empty_plan() {
    let minimized = minimize(&busy_plan(), &topology(), 100, |_| true, &mut |_| {});
    assert!(minimized.plan.events.is_empty());
    assert_eq!(minimized.runs, 1, "the empty plan is tried first: {minimized:#?}");
}

#[test]
fn shrinking_stops_at_the_run_bound_and_says_so() {
    let minimized = minimize(&busy_plan(), &topology(), 3, needs_crash_and_loss, &mut |_| {});
    assert_eq!(minimized.runs, 3);
    assert!(minimized.budget_exhausted);
    assert!(needs_crash_and_loss(&minimized.plan), "whatever it kept still fails");
}

#[test]
fn shrinking_never_tries_an_unsurvivable_candidate_of_a_survivable_plan() {
    // Two store crashes that do not overlap: moving either later could make them overlap
    // (two of three members down), which a correct store need not survive.
    let mut plan = FaultPlan::empty(30_000, 30_000);
    plan.events = vec![
        event(1_000, 5_000, Fault::Crash { target: Target::StoreMember(Slot(1)) }),
        event(20_000, 5_000, Fault::Crash { target: Target::StoreMember(Slot(2)) }),
    ];
    plan.check_survivable(&topology()).unwrap();
    let both = |plan: &FaultPlan| {
        assert!(plan.check_survivable(&topology()).is_ok(), "tried an unsurvivable plan: {plan:#?}");
        plan.events.len() == 2
    };
    let minimized = minimize(&plan, &topology(), 200, both, &mut |_| {});
    assert_eq!(minimized.plan.events.len(), 2);
}

#[test]
fn milder_faults_are_milder() {
    assert_eq!(milder_faults(&Fault::PacketLoss { rate: 0.4 }), vec![Fault::PacketLoss { rate: 0.2 }]);
    assert!(milder_faults(&Fault::PacketLoss { rate: 0.01 }).is_empty());
    let torn =
        Fault::PowerLoss { tears: (1..=3).map(|m| (Target::StoreMember(Slot(m)), Tear { kept_ppm: 10 })).collect() };
    assert_eq!(milder_faults(&torn), vec![Fault::PowerLoss { tears: Default::default() }]);
    let tear = Some(Tear { kept_ppm: 10 });
    assert_eq!(
        milder_faults(&Fault::CrashStoreMember { member: Target::StoreLeader, tear }),
        vec![Fault::CrashStoreMember { member: Target::StoreLeader, tear: None }]
    );
    assert!(milder_faults(&Fault::IsolateStoreLeader).is_empty());
    let skew = Fault::ClockSkew { target: Target::Scheduler, offset_ms: -8_000, drift_ms_per_s: 5 };
    assert_eq!(
        milder_faults(&skew),
        vec![
            Fault::ClockSkew { target: Target::Scheduler, offset_ms: -8_000, drift_ms_per_s: 0 },
            Fault::ClockSkew { target: Target::Scheduler, offset_ms: -4_000, drift_ms_per_s: 5 },
        ]
    );
}

/// A real seed: controller-writes-store is caught on seed 0 of the default campaign; its
/// generated plan shrinks to a smaller one, replayed with the same seed, that still
/// violates store-single-writer.
#[test]
fn a_planted_bug_seed_shrinks_to_fewer_faults_still_violating_its_invariant() {
    let bug = PlantedBug::ControllerWritesStore;
    let mut options = RunOptions::new(0, Scenario::DeployNginx);
    bug.plant(&mut options);
    let original = options.plan().unwrap();
    let outcome = shrink_seed(
        &options,
        None,
        &[bug.caught_by().into()],
        40,
        std::time::Duration::from_secs(600),
        &mut |_, _, _| {},
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(outcome.invariant, bug.caught_by().into());
    assert!(outcome.minimized.plan.events.len() < original.events.len(), "{:#?}", outcome.minimized);
    // Replaying the shrunk plan with the seed reproduces the violation.
    let replay = sim::runner::run_seed(&RunOptions { faults: Faults::Plan(outcome.minimized.plan.clone()), ..options });
    assert!(replay.outcome.broken().contains(&bug.caught_by().into()), "{}", replay.render());
}

#[test]
fn a_passing_seed_has_nothing_to_shrink() {
    let options = RunOptions::without_faults(1, Scenario::DeployNginx);
    let error =
        shrink_seed(&options, None, &[], 10, std::time::Duration::from_secs(600), &mut |_, _, _| {}, &mut |_| {})
            .unwrap_err();
    assert!(matches!(error, ShrinkError::Passes { seed: 1 }), "{error}");
    assert_eq!(error.to_string(), "seed 1 passes every invariant: nothing to shrink");
}

/// The workload's actions are shrunk as the faults are: what is left is the one action
/// the (hand-made) failure needs, beside the one fault it needs.
#[test]
fn shrinking_drops_the_workload_actions_the_failure_does_not_need() {
    use faults::actions::{Action, ObjectKind, UserAction};
    let mut plan = busy_plan();
    let action = |at_ms: u64, user: &str, action: Action| UserAction { at_ms, user: user.into(), action };
    plan.workload = vec![
        action(500, "alice", Action::Create { kind: ObjectKind::ConfigMap, name: "settings".into() }),
        action(900, "bob", Action::Cordon { node: 1 }),
        action(1_500, "alice", Action::ReadModifyWrite { kind: ObjectKind::ConfigMap, name: "settings".into() }),
        action(2_500, "carol", Action::Drain { node: 2 }),
        action(3_500, "bob", Action::Uncordon { node: 1 }),
        action(4_500, "alice", Action::Delete { kind: ObjectKind::ConfigMap, name: "settings".into() }),
    ];
    plan.validate(&topology()).unwrap();
    let needs_drain_and_crash = |plan: &FaultPlan| {
        let drain = plan.workload.iter().any(|a| a.action == Action::Drain { node: 2 });
        let crash =
            plan.events.iter().any(|e| matches!(e.fault, Fault::Crash { target: Target::StoreMember(Slot(2)) }));
        drain && crash
    };
    let mut steps = Vec::new();
    let minimized = minimize(&plan, &topology(), 500, needs_drain_and_crash, &mut |step| steps.push(step.clone()));
    assert_eq!(minimized.plan.workload.len(), 1, "{:?}", minimized.plan.workload);
    assert_eq!(minimized.plan.workload[0].action, Action::Drain { node: 2 });
    assert_eq!(minimized.plan.events.len(), 1);
    assert!(steps.iter().any(|s| s.change.contains("workload actions")), "{steps:?}");
    assert_eq!(steps.last().unwrap().n_actions, 1);
}
