//! proptest strategies for fault plans, for property tests that shrink a failing run to a
//! small plan. Every plan they produce validates against its topology and passes
//! [`FaultPlan::check_survivable`].
//!
//! Shrinking goes toward fewer events, shorter faults, later starts, and within a fault
//! toward earlier targets (store members first) and milder parameters.

use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::{BoxedStrategy, Union};

use crate::generate::{
    component_targets, concrete_targets, feasible_kinds, GenerateOptions, MAX_DURATION_MS, MIN_DURATION_MS,
};
use crate::kinds::FaultKind;
use crate::plan::{
    BitFlip, ChaseStep, Failpoint, Fault, FaultEvent, FaultPlan, Slot, Target, Tear, Topology, PLAN_VERSION, PPM,
};

/// Resolution of start times: a start is `phase_slack * k / START_STEPS` before the
/// latest possible start.
const START_STEPS: u64 = 10_000;

/// Plans of up to `max_events` faults of the `menu` kinds, with the default phases.
pub fn plan_strategy(topology: Topology, menu: BTreeSet<FaultKind>, max_events: usize) -> BoxedStrategy<FaultPlan> {
    let options = GenerateOptions { max_events, ..GenerateOptions::default() };
    plan_strategy_with_options(topology, menu, options)
}

/// Plans of up to `options.max_events` faults of the `menu` kinds, with the phases of
/// `options`. Events that would make the plan unsurvivable are dropped, so shrinking the
/// event list never produces an invalid plan.
pub fn plan_strategy_with_options(
    topology: Topology,
    menu: BTreeSet<FaultKind>,
    options: GenerateOptions,
) -> BoxedStrategy<FaultPlan> {
    let empty = FaultPlan {
        version: PLAN_VERSION,
        safety_phase_ms: options.safety_phase_ms,
        liveness_phase_ms: options.liveness_phase_ms,
        events: Vec::new(),
        workload: Vec::new(),
    };
    let kinds = feasible_kinds(&topology, &menu);
    if kinds.is_empty() || options.max_events == 0 || options.safety_phase_ms == 0 {
        return Just(empty).boxed();
    }
    let event = event_strategy(topology, kinds, options.safety_phase_ms);
    proptest::collection::vec(event, 0..=options.max_events)
        .prop_map(move |events| {
            let mut plan = empty.clone();
            for event in events {
                plan.events.push(event);
                if plan.check_survivable(&topology).is_err() {
                    plan.events.pop();
                }
            }
            plan.events.sort_by_key(|event| event.at_ms);
            plan
        })
        .boxed()
}

/// One event of one of `kinds`, healed by the end of the safety phase.
pub fn event_strategy(topology: Topology, kinds: Vec<FaultKind>, safety_phase_ms: u64) -> BoxedStrategy<FaultEvent> {
    let shortest_ms = MIN_DURATION_MS.min(safety_phase_ms);
    let longest_ms = MAX_DURATION_MS.min(safety_phase_ms);
    select(kinds)
        .prop_flat_map(move |kind| (fault_strategy(topology, kind), shortest_ms..=longest_ms, 0..=START_STEPS))
        .prop_map(move |(fault, duration_ms, earlier_by)| {
            let latest_start_ms = safety_phase_ms - duration_ms;
            // Multiply in u128: a phase of u64::MAX ms must not overflow.
            let slack_ms = (u128::from(latest_start_ms) * u128::from(earlier_by) / u128::from(START_STEPS)) as u64;
            FaultEvent { at_ms: latest_start_ms - slack_ms, duration_ms, fault }
        })
        .boxed()
}

/// One fault of `kind` that fits `topology` (the kind must be feasible for it, see
/// [`feasible_kinds`]).
pub fn fault_strategy(topology: Topology, kind: FaultKind) -> BoxedStrategy<Fault> {
    match kind {
        FaultKind::Partition => partition_strategy(topology),
        FaultKind::PacketLoss => {
            (1u32..=50).prop_map(|percent| Fault::PacketLoss { rate: f64::from(percent) / 100.0 }).boxed()
        }
        FaultKind::Latency => (0u64..=50, 10u64..=2_000)
            .prop_map(|(min_ms, spread_ms)| Fault::LatencySpike { min_ms, max_ms: min_ms + spread_ms })
            .boxed(),
        FaultKind::Clog => two_targets(topology).prop_map(|(a, b)| Fault::ClogLink { a, b }).boxed(),
        FaultKind::Crash => {
            target_strategy(topology, topology.store_minority() >= 1).prop_map(|target| Fault::Crash { target }).boxed()
        }
        FaultKind::Pause => target_strategy(topology, true).prop_map(|target| Fault::Pause { target }).boxed(),
        FaultKind::DiskCrash => (store_target(topology), tear_strategy())
            .prop_map(|(member, tear)| Fault::CrashStoreMember { member, tear: Some(tear) })
            .boxed(),
        // No tears, or one for every member (the plan's rule for a power loss).
        FaultKind::PowerLoss => {
            let members: Vec<Target> = (1..=topology.store_members).map(|n| Target::StoreMember(Slot(n))).collect();
            let n_members = members.len();
            let torn = proptest::collection::vec(tear_strategy(), n_members)
                .prop_map(move |tears| Fault::PowerLoss { tears: members.iter().cloned().zip(tears).collect() });
            prop_oneof![Just(Fault::PowerLoss { tears: Default::default() }), torn].boxed()
        }
        FaultKind::Corruption => (store_target(topology), flip_strategy())
            .prop_map(|(member, flip)| Fault::CorruptRecord { member, flip })
            .boxed(),
        // A restart delay no longer than the shortest event, so that every event holds it.
        // A leader chase of up to 4 kills, on a store that has someone to chase.
        FaultKind::Failpoint => {
            let crash = (store_target(topology), select(Failpoint::ALL.to_vec()), 0..=MIN_DURATION_MS, 0..=4u32)
                .prop_map(|(member, failpoint, restart_after_ms, passes)| Fault::CrashAtFailpoint {
                    member,
                    failpoint,
                    restart_after_ms,
                    passes,
                })
                .boxed();
            if topology.store_members < 2 {
                return crash;
            }
            let leader_points = vec![Failpoint::RaftBeforeLeaderSend, Failpoint::RaftLeaderAfterApply];
            let step =
                (select(leader_points), 0..=2u32).prop_map(|(failpoint, passes)| ChaseStep { failpoint, passes });
            let chase = proptest::collection::vec(step, 1..=4).prop_map(|steps| Fault::LeaderChase { steps }).boxed();
            prop_oneof![crash, chase].boxed()
        }
        FaultKind::Backup => store_target(topology).prop_map(|member| Fault::Backup { member }).boxed(),
        FaultKind::DiskLoss => store_target(topology).prop_map(|member| Fault::DiskLoss { member }).boxed(),
        FaultKind::DiskLossMajority => {
            let members: Vec<Target> = (1..=topology.store_members).map(|n| Target::StoreMember(Slot(n))).collect();
            let majority = members.len() / 2 + 1;
            subsequence(members, majority).prop_map(|members| Fault::DiskLossMajority { members }).boxed()
        }
        FaultKind::DiskLossAll => Just(Fault::DiskLossAll).boxed(),
        FaultKind::SnapshotCorruption => flip_strategy().prop_map(|flip| Fault::SnapshotCorruption { flip }).boxed(),
        FaultKind::Clock => (select(component_targets(&topology)), -10_000i64..=10_000, -100i64..=100)
            .prop_filter("a skew of no offset and no drift changes nothing", |(_, offset_ms, drift_ms_per_s)| {
                *offset_ms != 0 || *drift_ms_per_s != 0
            })
            .prop_map(|(target, offset_ms, drift_ms_per_s)| Fault::ClockSkew { target, offset_ms, drift_ms_per_s })
            .boxed(),
    }
}

/// Any tear; shrinks toward keeping nothing of the write.
fn tear_strategy() -> BoxedStrategy<Tear> {
    (0..=PPM).prop_map(|kept_ppm| Tear { kept_ppm }).boxed()
}

/// Any byte, any non-empty set of bits; shrinks toward the first byte and its lowest bit.
fn flip_strategy() -> BoxedStrategy<BitFlip> {
    (0..PPM, 1..=u8::MAX).prop_map(|(offset_ppm, xor_mask)| BitFlip { offset_ppm, xor_mask }).boxed()
}

/// A target biased toward the store (as the swarm generator is): 3 in 7 a concrete
/// member, 1 in 7 the leader, 2 in 7 another component, 1 in 7 the controller-manager
/// leader (when there are controller-managers).
pub fn target_strategy(topology: Topology, allow_store: bool) -> BoxedStrategy<Target> {
    let members: Vec<Target> = (1..=topology.store_members).map(|n| Target::StoreMember(Slot(n))).collect();
    let others = component_targets(&topology);
    let mut options: Vec<(u32, BoxedStrategy<Target>)> = Vec::new();
    if allow_store && !members.is_empty() {
        options.push((3, select(members).boxed()));
        options.push((1, Just(Target::StoreLeader).boxed()));
    }
    if !others.is_empty() {
        options.push((2, select(others).boxed()));
    }
    if topology.controller_managers >= 1 {
        options.push((1, Just(Target::ControllerManagerLeader).boxed()));
    }
    assert!(!options.is_empty(), "topology has no target");
    Union::new_weighted(options).boxed()
}

fn store_target(topology: Topology) -> BoxedStrategy<Target> {
    prop_oneof![
        3 => (1..=topology.store_members).prop_map(|n| Target::StoreMember(Slot(n))),
        1 => Just(Target::StoreLeader),
    ]
    .boxed()
}

fn two_targets(topology: Topology) -> BoxedStrategy<(Target, Target)> {
    (target_strategy(topology, true), target_strategy(topology, true))
        .prop_filter("a link needs two different ends", |(a, b)| a != b)
        .boxed()
}

/// Partition shapes, as in the swarm generator: a split of the store, a split of
/// everything, the leader cut off or cut from its peers, one apiserver isolated,
/// majorities-ring, bridge, one-way.
fn partition_strategy(topology: Topology) -> BoxedStrategy<Fault> {
    let store: Vec<Target> = (1..=topology.store_members).map(|n| Target::StoreMember(Slot(n))).collect();
    let everything = concrete_targets(&topology);
    let mut shapes: Vec<(u32, BoxedStrategy<Fault>)> = vec![
        (2, split_strategy(everything)),
        (1, two_targets(topology).prop_map(|(from, to)| Fault::OneWay { from, to }).boxed()),
    ];
    if store.len() >= 2 {
        shapes.push((3, split_strategy(store.clone())));
        shapes.push((1, Just(Fault::IsolateStoreLeader).boxed()));
        shapes.push((1, Just(Fault::Partition { groups: vec![vec![Target::StoreLeader], store] }).boxed()));
    }
    if topology.store_members >= 3 {
        shapes.push((1, Just(Fault::MajoritiesRing).boxed()));
        shapes.push((1, Just(Fault::Bridge).boxed()));
    }
    if topology.apiservers >= 1 {
        shapes.push((1, (0..topology.apiservers).prop_map(|apiserver| Fault::IsolateApiServer { apiserver }).boxed()));
    }
    Union::new_weighted(shapes).boxed()
}

/// Two groups: a non-empty proper subset of `targets` and the rest.
fn split_strategy(targets: Vec<Target>) -> BoxedStrategy<Fault> {
    let n = targets.len();
    debug_assert!(n >= 2);
    subsequence(targets.clone(), 1..n)
        .prop_map(move |side| {
            let rest = targets.iter().filter(|target| !side.contains(target)).cloned().collect();
            Fault::Partition { groups: vec![side, rest] }
        })
        .boxed()
}
