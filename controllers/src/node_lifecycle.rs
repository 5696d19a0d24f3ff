//! The node lifecycle controller: marks a node NotReady when its kubelet's heartbeat
//! Lease (`kube-node-lease/<node>`) has not been renewed for the grace period, and evicts
//! (deletes) the pods bound to a node that has been NotReady for the eviction timeout.
//!
//! As in Kubernetes (`nodeHealthData.probeTimestamp`), the controller does not compare
//! the lease's renew time (the kubelet's clock) with its own; it notes *when it observed*
//! the renew time change, by its own node's [`Clock`]. A controller that has just become
//! leader therefore gives every node a full grace period. Time is read through the Clock,
//! so drift on the controller's node still bends these timings.
//!
//! [`NodeLifecycle::monitor`] is the pure core; the driver calls it every monitor period.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{ApiClient, ApiError, Clock, Lease, Node, Object, Pod, Resource};

use crate::driver::{wait_for_cache_sync, SyncError, TaskGroup};
use crate::events::EventRecorder;
use crate::informer::Informer;
use crate::leader_election::LeaderHandle;
use crate::replicaset::is_active;

/// Where kubelets keep their heartbeat leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLifecycleConfig {
    /// How often node health is checked (Kubernetes `--node-monitor-period`: 5 s).
    pub node_monitor_period_ms: u64,
    /// Heartbeat silence after which a node is NotReady (`--node-monitor-grace-period`: 40 s).
    pub node_monitor_grace_period_ms: u64,
    /// NotReady time after which its pods are evicted (`--pod-eviction-timeout`: 5 min).
    pub pod_eviction_timeout_ms: u64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            node_monitor_period_ms: 5_000,
            node_monitor_grace_period_ms: 40_000,
            pod_eviction_timeout_ms: 5 * 60 * 1_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeLifecycleAction {
    /// Write the node's status with `ready = false`.
    MarkNotReady(Node),
    /// Delete this pod (bound to a node NotReady for too long).
    EvictPod(Pod),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeHealth {
    /// Our clock when we last saw the heartbeat change (or first saw the node).
    probe_ms: u64,
    last_renew_time_ms: Option<u64>,
    /// Our clock when we first saw the node NotReady.
    not_ready_since_ms: Option<u64>,
}

/// The pure core: node health as observed so far.
#[derive(Clone, Debug)]
pub struct NodeLifecycle {
    config: NodeLifecycleConfig,
    health: BTreeMap<String, NodeHealth>,
}

impl NodeLifecycle {
    pub fn new(config: NodeLifecycleConfig) -> Self {
        Self { config, health: BTreeMap::new() }
    }

    /// One monitor pass at `now_ms` (this node's clock). `leases` are the heartbeat
    /// leases (`kube-node-lease`, named after their node).
    pub fn monitor(&mut self, nodes: &[Node], leases: &[Lease], pods: &[Pod], now_ms: u64) -> Vec<NodeLifecycleAction> {
        let renew_times: BTreeMap<&str, Option<u64>> =
            leases.iter().map(|l| (l.metadata.name.as_str(), l.spec.renew_time_ms)).collect();
        self.health.retain(|name, _| nodes.iter().any(|n| &n.metadata.name == name));
        let mut actions = Vec::new();
        for node in nodes {
            let name = node.metadata.name.as_str();
            let renew_time_ms = renew_times.get(name).copied().flatten();
            let health = self.health.entry(name.to_string()).or_insert(NodeHealth {
                probe_ms: now_ms,
                last_renew_time_ms: renew_time_ms,
                not_ready_since_ms: None,
            });
            if health.last_renew_time_ms != renew_time_ms {
                health.last_renew_time_ms = renew_time_ms;
                health.probe_ms = now_ms;
            }
            if node.status.ready {
                health.not_ready_since_ms = None;
                if now_ms.saturating_sub(health.probe_ms) > self.config.node_monitor_grace_period_ms {
                    let mut not_ready = node.clone();
                    not_ready.status.ready = false;
                    health.not_ready_since_ms = Some(now_ms);
                    actions.push(NodeLifecycleAction::MarkNotReady(not_ready));
                }
                continue;
            }
            let since_ms = *health.not_ready_since_ms.get_or_insert(now_ms);
            if now_ms.saturating_sub(since_ms) >= self.config.pod_eviction_timeout_ms {
                actions.extend(
                    pods.iter()
                        .filter(|p| p.spec.node_name.as_deref() == Some(name) && is_active(p))
                        .map(|p| NodeLifecycleAction::EvictPod(p.clone())),
                );
            }
        }
        actions
    }
}

/// The controller's driver for one leadership term.
pub struct NodeLifecycleController {
    pub config: NodeLifecycleConfig,
    pub client: ApiClient,
    pub clock: Clock,
    pub leader: LeaderHandle,
    pub nodes: Informer,
    /// Leases of namespace `kube-node-lease`.
    pub node_leases: Informer,
    pub pods: Informer,
    /// Records `NodeNotReady` on a node and `TaintManagerEviction` on an evicted pod
    /// (source `node-controller`), as Kubernetes' node lifecycle controller does.
    pub events: EventRecorder,
}

impl NodeLifecycleController {
    pub fn start(self, tasks: &mut TaskGroup) {
        let core = Arc::new(Mutex::new(NodeLifecycle::new(self.config.clone())));
        tasks.spawn(async move {
            wait_for_cache_sync(&[&self.nodes, &self.node_leases, &self.pods]).await;
            loop {
                if let Err(e) = self.monitor_once(&core).await {
                    tracing::debug!("node lifecycle pass failed: {e}");
                }
                madsim::time::sleep(Duration::from_millis(self.config.node_monitor_period_ms)).await;
            }
        });
    }

    async fn monitor_once(&self, core: &Mutex<NodeLifecycle>) -> Result<(), SyncError> {
        let nodes: Vec<Node> = self.nodes.list().into_iter().filter_map(Object::into_node).collect();
        let leases: Vec<Lease> = self.node_leases.list().into_iter().filter_map(Object::into_lease).collect();
        let pods: Vec<Pod> = self.pods.list().into_iter().filter_map(Object::into_pod).collect();
        let actions = core.lock().expect("node lifecycle").monitor(&nodes, &leases, &pods, self.clock.now_ms());
        for action in actions {
            let fence = self.leader.write_fence()?;
            let result = match action {
                NodeLifecycleAction::MarkNotReady(node) => {
                    tracing::info!("node {} NotReady: heartbeat lease silent", node.metadata.name);
                    coverage::reached!("controllers.node-lifecycle.marked-not-ready");
                    let name = node.metadata.name.clone();
                    let result = self.client.update_status(Object::Node(node), fence).await;
                    if let Ok(node) = &result {
                        self.events.normal(node, "NodeNotReady", format!("Node {name} status is now: NodeNotReady"));
                    }
                    result
                }
                NodeLifecycleAction::EvictPod(pod) => {
                    coverage::reached!("controllers.node-lifecycle.pod-evicted");
                    tracing::info!(
                        "evicting pod {}/{} from NotReady node {:?}",
                        pod.metadata.namespace,
                        pod.metadata.name,
                        pod.spec.node_name
                    );
                    let result = self
                        .client
                        .delete(Resource::Pods, &pod.metadata.namespace, &pod.metadata.name, None, fence)
                        .await;
                    if result.is_ok() {
                        let message =
                            format!("Marking for deletion Pod {}/{}", pod.metadata.namespace, pod.metadata.name);
                        self.events.normal(&Object::Pod(pod), "TaintManagerEviction", message);
                    }
                    result
                }
            };
            match result {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                // A stale node status or a racing writer: the next pass sees the news.
                Err(e) => tracing::debug!("node lifecycle write failed: {e}"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::ObjectMeta;

    fn node(name: &str, ready: bool) -> Node {
        let mut n = Node { metadata: ObjectMeta::named("", name), ..Node::default() };
        n.status.ready = ready;
        n
    }

    fn lease(name: &str, renew_ms: u64) -> Lease {
        let mut l = Lease { metadata: ObjectMeta::named(NODE_LEASE_NAMESPACE, name), ..Lease::default() };
        l.spec.renew_time_ms = Some(renew_ms);
        l
    }

    fn bound_pod(name: &str, node: &str) -> Pod {
        let mut p = Pod { metadata: ObjectMeta::named("default", name), ..Pod::default() };
        p.spec.node_name = Some(node.into());
        p
    }

    const GRACE_MS: u64 = 40_000;
    const EVICTION_MS: u64 = 300_000;

    #[test]
    fn silent_heartbeat_marks_not_ready_only_after_the_grace_period() {
        let mut nl = NodeLifecycle::new(NodeLifecycleConfig::default());
        let nodes = [node("n1", true), node("n2", true)];
        assert!(nl.monitor(&nodes, &[lease("n1", 0), lease("n2", 0)], &[], 1_000).is_empty());
        // n2 keeps renewing; n1 goes silent after its renewal at 0.
        let leases = [lease("n1", 0), lease("n2", 40_000)];
        assert!(nl.monitor(&nodes, &leases, &[], 1_000 + GRACE_MS).is_empty());
        let actions = nl.monitor(&nodes, &leases, &[], 1_001 + GRACE_MS);
        assert_eq!(actions.len(), 1);
        assert!(matches!(&actions[0], NodeLifecycleAction::MarkNotReady(n)
            if n.metadata.name == "n1" && !n.status.ready));
    }

    #[test]
    fn pods_are_evicted_after_the_eviction_timeout_of_not_ready() {
        let mut nl = NodeLifecycle::new(NodeLifecycleConfig::default());
        let pods = [bound_pod("a", "n1"), bound_pod("b", "n2")];
        let nodes = [node("n1", false), node("n2", true)];
        // n2's kubelet keeps renewing; n1's node is NotReady.
        let leases_at = |t: u64| [lease("n1", 0), lease("n2", t)];
        assert!(nl.monitor(&nodes, &leases_at(10_000), &pods, 10_000).is_empty());
        let just_before = 10_000 + EVICTION_MS - 1;
        assert!(nl.monitor(&nodes, &leases_at(just_before), &pods, just_before).is_empty());
        let at = 10_000 + EVICTION_MS;
        let actions = nl.monitor(&nodes, &leases_at(at), &pods, at);
        assert_eq!(actions.len(), 1);
        assert!(matches!(&actions[0], NodeLifecycleAction::EvictPod(p) if p.metadata.name == "a"));
    }

    #[test]
    fn a_recovered_node_restarts_the_eviction_clock() {
        let mut nl = NodeLifecycle::new(NodeLifecycleConfig::default());
        let pods = [bound_pod("a", "n1")];
        let leases = [lease("n1", 0)];
        nl.monitor(&[node("n1", false)], &leases, &pods, 0);
        nl.monitor(&[node("n1", true)], &[lease("n1", 5)], &pods, 200_000);
        assert!(nl.monitor(&[node("n1", false)], &[lease("n1", 5)], &pods, 210_000).is_empty());
        assert!(nl.monitor(&[node("n1", false)], &[lease("n1", 5)], &pods, 400_000).is_empty());
        assert_eq!(nl.monitor(&[node("n1", false)], &[lease("n1", 5)], &pods, 510_000).len(), 1);
    }

    #[test]
    fn a_new_leader_gives_every_node_a_full_grace_period() {
        // The lease was last renewed long ago by the kubelet's clock, but this controller
        // has only just started observing.
        let mut nl = NodeLifecycle::new(NodeLifecycleConfig::default());
        let nodes = [node("n1", true)];
        assert!(nl.monitor(&nodes, &[lease("n1", 0)], &[], 500_000).is_empty());
        assert!(nl.monitor(&nodes, &[lease("n1", 0)], &[], 540_000).is_empty());
        assert_eq!(nl.monitor(&nodes, &[lease("n1", 0)], &[], 540_001).len(), 1);
    }
}
