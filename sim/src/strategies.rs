//! proptest strategies for whole runs: a workload for `deploy-nginx` and a fault plan that
//! fits the scenario's topology (`faults::strategies`), so property tests can say "for any
//! plan of up to K faults and any workload, every invariant holds" and get back a small
//! counterexample when it does not.
//!
//! Shrinking goes toward fewer, shorter, later, milder faults (see `faults::strategies`)
//! and toward the smallest workload (one replica, not scaled).

use std::collections::BTreeSet;

use faults::strategies::plan_strategy;
use faults::{FaultKind, FaultPlan};
use proptest::prelude::*;

use crate::runner::{Faults, RunOptions};
use crate::scenario::deploy_nginx::Workload;
use crate::scenario::Scenario;

/// The largest deployment a workload asks for: more pods than kubelets, so that scheduling
/// spreads and stacks them.
pub const MAX_REPLICAS: i32 = 6;

/// A create with 1..=4 replicas, then a scale up by 0..=2 (scaling down is not part of the
/// scenario's flow).
pub fn workload_strategy() -> BoxedStrategy<Workload> {
    (1i32..=4, 0i32..=2)
        .prop_map(|(initial_replicas, added)| Workload {
            initial_replicas,
            scaled_replicas: (initial_replicas + added).min(MAX_REPLICAS),
        })
        .boxed()
}

/// Plans of up to `max_events` faults of `menu` that fit `scenario`'s topology.
pub fn scenario_plan_strategy(
    scenario: Scenario,
    menu: BTreeSet<FaultKind>,
    max_events: usize,
) -> BoxedStrategy<FaultPlan> {
    let topology = RunOptions::new(0, scenario).topology();
    plan_strategy(topology, menu, max_events)
}

/// Run options of `seed` on `deploy-nginx` with a drawn workload and a drawn plan of up to
/// `max_events` faults of any kind.
pub fn deploy_nginx_run_strategy(seed: u64, max_events: usize) -> BoxedStrategy<RunOptions> {
    (workload_strategy(), scenario_plan_strategy(Scenario::DeployNginx, FaultKind::all(), max_events))
        .prop_map(move |(workload, plan)| {
            let mut options = RunOptions::new(seed, Scenario::DeployNginx);
            options.cluster.workload = workload;
            options.faults = Faults::Plan(plan);
            options
        })
        .boxed()
}
