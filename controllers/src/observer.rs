//! What the controllers tell the simulator's history recorder, beyond the API requests
//! that [`api::ApiObserver`] already sees: leadership changes and which pods each kubelet
//! actually runs (invariants 3, 7, 12 and 13 need them). An observer must not steer the run.

use api::ResourceVersion;

use crate::rollout::{ObservedReplicaSet, ResolvedStrategy};

/// A scale write the deployment controller's rollout is about to make (sent after this
/// is reported): ReplicaSet `replica_set` of deployment `namespace/deployment` from
/// `from` to `to` replicas (a create is from 0), with the deployment's `replicas` and
/// resolved strategy, and every ReplicaSet of the deployment as the controller's informer
/// (and its earlier writes of the same sync) had them when it decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutScale {
    /// The controller-manager instance that decided it.
    pub controller: String,
    pub namespace: String,
    pub deployment: String,
    pub strategy: ResolvedStrategy,
    pub replicas: i32,
    pub replica_set: String,
    pub from: i32,
    pub to: i32,
    pub observed: Vec<ObservedReplicaSet>,
}

/// Every method has a no-op default, so a recorder implements only what it needs.
pub trait ControllerObserver: Send + Sync {
    /// `component` ("kube-controller-manager", "kube-scheduler") became leader as
    /// `identity` in epoch `transitions` (the lease's lease_transitions), with the lease at
    /// `lease_rv` (its first fencing token).
    fn leader_acquired(&self, component: &str, identity: &str, transitions: u32, lease_rv: ResourceVersion) {
        let _ = (component, identity, transitions, lease_rv);
    }

    /// `identity` stopped leading `component` (renew deadline passed or lease taken).
    fn leader_lost(&self, component: &str, identity: &str) {
        let _ = (component, identity);
    }

    /// The kubelet of `node` started the pod's containers.
    fn pod_started(&self, node: &str, namespace: &str, name: &str, uid: &str) {
        let _ = (node, namespace, name, uid);
    }

    /// The kubelet of `node` stopped the pod (`reason`: deleted, rebound, unknown after
    /// relist, ...).
    fn pod_stopped(&self, node: &str, namespace: &str, name: &str, uid: &str, reason: &str) {
        let _ = (node, namespace, name, uid, reason);
    }

    /// The kubelet of `node` registered (or re-registered) its Node object.
    fn kubelet_registered(&self, node: &str) {
        let _ = node;
    }

    /// An informer of `who` (a kubelet's node, a controller-manager's or scheduler's
    /// identity) relisted `resource` after its watch was answered 410 Gone (compaction, or
    /// a restored store: etcd's `--mark-compacted`), getting `n_objects` at `resource_version`.
    /// The deployment controller is about to write a rollout's scale ([`RolloutScale`]).
    fn rollout_scaled(&self, scale: &RolloutScale) {
        let _ = scale;
    }

    fn relisted(&self, who: &str, resource: &str, resource_version: ResourceVersion, n_objects: usize) {
        let _ = (who, resource, resource_version, n_objects);
    }
}
