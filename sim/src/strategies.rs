//! proptest strategies for whole runs: a workload for `deploy-nginx` and a fault plan that
//! fits the topology of the run that uses it (`faults::strategies`), so property tests can
//! say "for any plan of up to K faults and any workload, every invariant holds" and get
//! back a small counterexample when it does not.
//!
//! A seed picks its store's size ([`crate::knobs::Knobs::for_seed`]: 3 or 5
//! members), so a plan is drawn for the seed it runs with: one drawn for another seed
//! could name `store-5` on a 3-member store.
//!
//! Shrinking goes toward fewer, shorter, later, milder faults (see `faults::strategies`)
//! and toward the smallest workload (one replica, not scaled).

use std::collections::BTreeSet;
use std::ops::Range;

use faults::strategies::plan_strategy;
use faults::{FaultKind, FaultPlan};
use proptest::prelude::*;

use crate::runner::{Faults, RunOptions};
use crate::scenario::Scenario;
use crate::workload::Workload;

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

/// Plans of up to `max_events` faults of `menu` that fit the topology `options` run on
/// (its scenario, and the store size its seed picks).
pub fn run_plan_strategy(
    options: &RunOptions,
    menu: BTreeSet<FaultKind>,
    max_events: usize,
) -> BoxedStrategy<FaultPlan> {
    plan_strategy(options.topology(), menu, max_events)
}

/// Run options of a seed of `seeds` on `scenario`, with a plan of up to `max_events`
/// faults of `menu` drawn for that seed's topology. Shrinking the seed draws the plan
/// again for the new seed's topology.
pub fn seeded_run_strategy(
    scenario: Scenario,
    seeds: Range<u64>,
    menu: BTreeSet<FaultKind>,
    max_events: usize,
) -> BoxedStrategy<RunOptions> {
    seeds
        .prop_flat_map(move |seed| {
            let options = RunOptions::new(seed, scenario.clone());
            let plan = run_plan_strategy(&options, menu.clone(), max_events);
            (Just(options), plan)
        })
        .prop_map(|(mut options, plan)| {
            options.faults = Faults::Plan(plan);
            options
        })
        .boxed()
}

/// Run options of a seed of `seeds` on `deploy-nginx` with a drawn workload and a plan of
/// up to `max_events` faults of any kind drawn for the seed's topology.
pub fn deploy_nginx_run_strategy(seeds: Range<u64>, max_events: usize) -> BoxedStrategy<RunOptions> {
    (workload_strategy(), seeded_run_strategy(Scenario::DeployNginx, seeds, FaultKind::all(), max_events))
        .prop_map(|(workload, mut options)| {
            options.cluster.workload = workload;
            options
        })
        .boxed()
}
