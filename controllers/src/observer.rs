//! What the controllers tell the simulator's history recorder, beyond the API requests
//! that [`api::ApiObserver`] already sees: leadership changes and which pods each kubelet
//! actually runs (invariants 3, 7, 12 and 13 need them). An observer must not steer the run.

use api::ResourceVersion;

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
    fn relisted(&self, who: &str, resource: &str, resource_version: ResourceVersion, n_objects: usize) {
        let _ = (who, resource, resource_version, n_objects);
    }
}
