//! What the user asks of the control plane in `deploy-nginx`: a deployment's replicas at
//! creation and after the scale. It is part of the cluster's options
//! (`ControlPlaneOptions::workload`), so that a corpus case or a property test can draw
//! another; the scenario (`crate::scenario::deploy_nginx`) plays it out.

/// The replicas `kubectl create deployment` asks for in the scenario's documented flow.
pub const INITIAL_REPLICAS: i32 = 3;
/// The replicas `kubectl scale` asks for in the scenario's documented flow.
pub const SCALED_REPLICAS: i32 = 5;

/// What the user asks of the cluster: create the deployment with `initial_replicas`, then
/// scale it to `scaled_replicas`. The default is the scenario's documented flow (3, then
/// 5); property tests draw others (`sim::strategies::workload_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    pub initial_replicas: i32,
    pub scaled_replicas: i32,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { initial_replicas: INITIAL_REPLICAS, scaled_replicas: SCALED_REPLICAS }
    }
}
