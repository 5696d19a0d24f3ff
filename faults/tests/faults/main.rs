//! The `faults` crate's tests, as one binary (one link instead of five).

mod generate;
mod kinds;
mod nemesis;
mod plan;
mod strategies;

use faults::Topology;

/// The topology most tests use: 3 store members, 2 apiservers, 2 controller-managers,
/// 1 scheduler, 3 kubelets.
pub fn small_topology() -> Topology {
    Topology { store_members: 3, apiservers: 2, controller_managers: 2, schedulers: 1, kubelets: 3 }
}
