//! proptest strategies: always valid, survivable plans that shrink toward small ones.

use std::collections::BTreeSet;

use faults::strategies::plan_strategy;
use faults::{Fault, FaultKind, FaultPlan, Slot, Target, Topology};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestError, TestRunner};

use crate::small_topology;

fn five_members() -> Topology {
    Topology { store_members: 5, ..small_topology() }
}

proptest! {
    #[test]
    fn strategy_plans_validate_and_are_survivable(
        plan in plan_strategy(small_topology(), FaultKind::all(), 8)
    ) {
        plan.validate(&small_topology()).unwrap();
        plan.check_survivable(&small_topology()).unwrap();
        prop_assert!(plan.events.len() <= 8);
        prop_assert!(plan.events.iter().all(|e| e.at_ms + e.duration_ms <= plan.safety_phase_ms));
    }

    #[test]
    fn strategy_plans_fit_a_five_member_store(
        plan in plan_strategy(five_members(), FaultKind::all(), 12)
    ) {
        plan.validate(&five_members()).unwrap();
        plan.check_survivable(&five_members()).unwrap();
    }

    #[test]
    fn strategy_plans_use_only_the_menu(
        plan in plan_strategy(
            small_topology(),
            BTreeSet::from([FaultKind::Pause, FaultKind::Latency]),
            6,
        )
    ) {
        for event in &plan.events {
            prop_assert!(matches!(event.fault.kind(), FaultKind::Pause | FaultKind::Latency));
        }
    }
}

/// Finds the minimal plan for which `fails` holds, with a fixed-seed runner.
fn minimal_failing(fails: impl Fn(&FaultPlan) -> bool) -> FaultPlan {
    let mut runner = TestRunner::new_with_rng(
        Config { cases: 512, failure_persistence: None, ..Config::default() },
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = plan_strategy(small_topology(), FaultKind::all(), 8);
    match runner.run(&strategy, |plan| {
        prop_assert!(!fails(&plan));
        Ok(())
    }) {
        Err(TestError::Fail(_, minimal)) => minimal,
        other => panic!("expected a failing plan, got {other:?}"),
    }
}

#[test]
fn plans_shrink_to_one_short_late_fault() {
    let minimal = minimal_failing(|plan| plan.events.iter().any(|event| matches!(event.fault, Fault::Crash { .. })));
    assert_eq!(minimal.events.len(), 1, "{minimal:#?}");
    let event = &minimal.events[0];
    assert_eq!(event.duration_ms, 500, "shortest duration");
    assert_eq!(event.at_ms, 30_000 - 500, "latest start");
    assert_eq!(event.fault, Fault::Crash { target: Target::StoreMember(Slot(1)) });
}

#[test]
fn parameters_shrink_toward_mild_values() {
    let minimal =
        minimal_failing(|plan| plan.events.iter().any(|event| matches!(event.fault, Fault::PacketLoss { .. })));
    assert_eq!(minimal.events.len(), 1, "{minimal:#?}");
    assert_eq!(minimal.events[0].fault, Fault::PacketLoss { rate: 0.01 });
}
