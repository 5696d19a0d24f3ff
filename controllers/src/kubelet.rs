//! The kubelet of one worker node: registers its Node, heartbeats through its Lease in
//! `kube-node-lease`, watches the pods bound to it, "starts" each after a simulated delay
//! and reports it Running, and stops pods that were deleted, replaced (same name, new
//! uid), or are unknown to the apiserver after a relist (for example after a restore
//! from backup: docs/design.md §4 invariant 7).
//!
//! The set of running pods lives in a [`KubeletState`] owned by the caller, so the
//! simulator decides what survives a kubelet restart (a real kubelet restart leaves the
//! containers running; a machine crash does not).
//!
//! [`plan_pod_sync`] is the pure core (desired pods vs. running pods); [`run`] drives it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{
    ApiClient, ApiError, Clock, Lease, LeaseSpec, Node, NodeStatus, Object, ObjectMeta, Pod, PodPhase, Resource,
};
use madsim::rand::Rng;

use crate::driver::TaskGroup;
use crate::events::EventRecorder;
use crate::informer::{key_of, split_key, Informer, InformerConfig, InformerEvent};
use crate::node_lifecycle::NODE_LEASE_NAMESPACE;
use crate::notify::Notify;
use crate::observer::ControllerObserver;
use crate::replicaset::is_active;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeletConfig {
    pub node_name: String,
    /// CPU capacity registered in the Node's status, in millicores.
    pub cpu_capacity_millis: u32,
    /// Heartbeat: lease renewal interval (Kubernetes: 10 s).
    pub node_lease_renew_interval_ms: u64,
    /// The heartbeat lease's duration (Kubernetes `nodeLeaseDurationSeconds`: 40).
    pub node_lease_duration_seconds: u32,
    /// A pod's containers start this long after the pod is seen, drawn uniformly from
    /// [min, max] with the simulator's rng (default 1-3 s).
    pub pod_start_delay_min_ms: u64,
    pub pod_start_delay_max_ms: u64,
    /// The sync loop runs at least this often even without events (housekeeping, 1 s).
    pub sync_period_ms: u64,
    /// Attempts of one status write on resourceVersion conflicts before waiting for the
    /// next sync.
    pub max_status_attempts: u32,
    pub informer: InformerConfig,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            node_name: "worker-1".into(),
            cpu_capacity_millis: 4_000,
            node_lease_renew_interval_ms: 10_000,
            node_lease_duration_seconds: 40,
            pod_start_delay_min_ms: 1_000,
            pod_start_delay_max_ms: 3_000,
            sync_period_ms: 1_000,
            max_status_attempts: 3,
            informer: InformerConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Simulated ms (unskewed) at which the containers started.
    pub started_at_ms: u64,
}

/// The containers a kubelet runs, keyed by pod key. Owned by the simulator, passed in.
#[derive(Debug, Default)]
pub struct KubeletState {
    running: Mutex<BTreeMap<String, RunningPod>>,
}

impl KubeletState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn running_pods(&self) -> BTreeMap<String, RunningPod> {
        self.running.lock().expect("kubelet state").clone()
    }

    /// Kills every container (what a machine crash does), without telling the observer.
    pub fn clear(&self) {
        self.running.lock().expect("kubelet state").clear();
    }

    fn insert(&self, key: String, pod: RunningPod) {
        self.running.lock().expect("kubelet state").insert(key, pod);
    }

    fn remove(&self, key: &str) -> Option<RunningPod> {
        self.running.lock().expect("kubelet state").remove(key)
    }
}

// Short-lived values, a handful per sync, moved once: boxing the pod would only add an
// allocation (the pod grew past clippy's bound with `metadata.finalizers`).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeletAction {
    /// Begin starting the pod's containers (they run after the start delay).
    Start { key: String, uid: String },
    /// Stop a running pod.
    Stop { key: String, uid: String, reason: String },
    /// Write status.phase = Running for a running pod the apiserver does not show Running.
    ReportRunning(Pod),
}

/// The pure core. `desired` are the pods bound to this node as the synced informer shows
/// them; `running` the running containers; `starting` the pods being started (key → uid).
pub fn plan_pod_sync(
    node_name: &str,
    desired: &BTreeMap<String, Pod>,
    running: &BTreeMap<String, RunningPod>,
    starting: &BTreeMap<String, String>,
) -> Vec<KubeletAction> {
    let wanted =
        |key: &str| desired.get(key).filter(|p| p.spec.node_name.as_deref() == Some(node_name) && is_active(p));
    let mut actions = Vec::new();
    for (key, pod) in running {
        let stop_reason = match desired.get(key.as_str()) {
            None => {
                coverage::reached!("controllers.kubelet.stopped-deleted-or-unknown-pod");
                Some("deleted or unknown to the apiserver")
            }
            Some(p) if p.metadata.uid != pod.uid => Some("replaced by a pod with a new uid"),
            Some(p) if p.spec.node_name.as_deref() != Some(node_name) => Some("not bound here"),
            Some(p) if !is_active(p) => Some("terminating or finished"),
            Some(p) => {
                if p.status.phase != PodPhase::Running {
                    actions.push(KubeletAction::ReportRunning(p.clone()));
                }
                None
            }
        };
        if let Some(reason) = stop_reason {
            actions.push(KubeletAction::Stop { key: key.clone(), uid: pod.uid.clone(), reason: reason.into() });
        }
    }
    for key in desired.keys() {
        let Some(pod) = wanted(key) else { continue };
        let uid = &pod.metadata.uid;
        let is_running = running.get(key).is_some_and(|r| &r.uid == uid);
        let is_starting = starting.get(key) == Some(uid);
        if !is_running && !is_starting {
            actions.push(KubeletAction::Start { key: key.clone(), uid: uid.clone() });
        }
    }
    actions
}

/// The kubelet's entry point. Runs until the node is killed.
pub async fn run(
    config: KubeletConfig,
    client: ApiClient,
    clock: Clock,
    state: Arc<KubeletState>,
    observer: Option<Arc<dyn ControllerObserver>>,
) {
    assert!(config.pod_start_delay_min_ms <= config.pod_start_delay_max_ms, "kubelet pod start delay: min above max");
    let events = EventRecorder::start(client.clone(), clock.clone(), "kubelet");
    let kubelet = Arc::new(Kubelet { config, client, clock, state, observer, events, wake: Notify::new() });
    kubelet.register().await;
    let node_name = kubelet.config.node_name.clone();
    let filter =
        Arc::new(move |o: &Object| o.as_pod().is_some_and(|p| p.spec.node_name.as_deref() == Some(node_name.as_str())));
    let pods = Informer::new(Resource::Pods, "", kubelet.config.informer.clone())
        .with_filter(filter)
        .with_observer(&kubelet.config.node_name, kubelet.observer.clone());
    let k = kubelet.clone();
    pods.subscribe(Box::new(move |_: &InformerEvent| k.wake.notify()));

    let mut tasks = TaskGroup::new();
    let k = kubelet.clone();
    tasks.spawn(async move { k.heartbeat_loop().await });
    let (p, client) = (pods.clone(), kubelet.client.clone());
    tasks.spawn(async move { p.run(client).await });
    kubelet.sync_loop(&pods).await;
}

struct Kubelet {
    config: KubeletConfig,
    client: ApiClient,
    clock: Clock,
    state: Arc<KubeletState>,
    observer: Option<Arc<dyn ControllerObserver>>,
    /// Records `Pulling` when a pod's containers begin to start and `Started` when they
    /// are up, as the kubelet does for each container.
    events: EventRecorder,
    wake: Notify,
}

impl Kubelet {
    fn node_object(&self) -> Node {
        Node {
            metadata: ObjectMeta::named("", &self.config.node_name),
            spec: Default::default(),
            status: NodeStatus {
                ready: true,
                cpu_capacity_millis: self.config.cpu_capacity_millis,
                last_heartbeat_ms: self.clock.now_ms(),
            },
        }
    }

    /// Creates the Node (or marks an existing one Ready), retrying with bounded backoff
    /// until the apiserver accepts it.
    async fn register(&self) {
        let mut backoff_ms = 100;
        loop {
            match self.ensure_node().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::debug!("kubelet {} registration failed: {e}", self.config.node_name)
                }
            }
            madsim::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(5_000);
        }
        if let Some(o) = &self.observer {
            o.kubelet_registered(&self.config.node_name);
        }
    }

    /// Makes sure the Node exists, is Ready and shows this kubelet's capacity.
    async fn ensure_node(&self) -> Result<(), ApiError> {
        let current = match self.client.get(Resource::Nodes, "", &self.config.node_name).await {
            Ok(object) => object.into_node(),
            Err(ApiError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        match current {
            None => match self.client.create(Object::Node(self.node_object()), None).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e),
            },
            Some(node) if node.status.ready && node.status.cpu_capacity_millis == self.config.cpu_capacity_millis => {
                Ok(())
            }
            Some(mut node) => {
                node.status = self.node_object().status;
                self.client.update_status(Object::Node(node), None).await.map(drop)
            }
        }
    }

    async fn renew_lease(&self) -> Result<(), ApiError> {
        let name = &self.config.node_name;
        let now_ms = self.clock.now_ms();
        match self.client.get(Resource::Leases, NODE_LEASE_NAMESPACE, name).await {
            Ok(object) => {
                let mut lease = object.into_lease().ok_or_else(|| ApiError::Internal {
                    reason: "lease read answered with another kind of object".into(),
                })?;
                lease.spec.holder_identity = Some(name.clone());
                lease.spec.lease_duration_seconds = self.config.node_lease_duration_seconds;
                lease.spec.renew_time_ms = Some(now_ms);
                self.client.update(Object::Lease(lease), None).await.map(drop)
            }
            Err(ApiError::NotFound { .. }) => {
                let lease = Lease {
                    metadata: ObjectMeta::named(NODE_LEASE_NAMESPACE, name),
                    spec: LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: self.config.node_lease_duration_seconds,
                        acquire_time_ms: Some(now_ms),
                        renew_time_ms: Some(now_ms),
                        lease_transitions: 0,
                    },
                };
                self.client.create(Object::Lease(lease), None).await.map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// Renews the heartbeat lease every interval (sooner after a failure) and puts the
    /// Node back to Ready if the node lifecycle controller marked it NotReady.
    async fn heartbeat_loop(&self) {
        loop {
            let renewed = self.renew_lease().await;
            if let Err(e) = &renewed {
                tracing::debug!("kubelet {} lease renewal failed: {e}", self.config.node_name);
            }
            if let Err(e) = self.ensure_node().await {
                tracing::debug!("kubelet {} node status failed: {e}", self.config.node_name);
            }
            let wait_ms = match renewed {
                Ok(()) => self.config.node_lease_renew_interval_ms,
                Err(_) => self.config.node_lease_renew_interval_ms.min(1_000),
            };
            madsim::time::sleep(Duration::from_millis(wait_ms)).await;
        }
    }

    async fn sync_loop(&self, pods: &Informer) {
        // key → (uid, simulated ms at which its containers are up)
        let mut starting: BTreeMap<String, (String, u64)> = BTreeMap::new();
        loop {
            if pods.has_synced() {
                self.sync_once(pods, &mut starting).await;
            }
            let now_ms = Clock::sim_now_ms();
            let next_start_ms = starting.values().map(|(_, due)| *due).min();
            let wait_ms = next_start_ms
                .map_or(self.config.sync_period_ms, |due| due.saturating_sub(now_ms))
                .clamp(1, self.config.sync_period_ms);
            let _ = simtime::timeout(Duration::from_millis(wait_ms), self.wake.notified()).await;
        }
    }

    async fn sync_once(&self, pods: &Informer, starting: &mut BTreeMap<String, (String, u64)>) {
        let desired: BTreeMap<String, Pod> = pods
            .list()
            .into_iter()
            .filter_map(|object| {
                let key = key_of(&object);
                object.into_pod().map(|pod| (key, pod))
            })
            .collect();
        // Containers whose start delay has passed are up, if the pod is still wanted.
        let now_ms = Clock::sim_now_ms();
        let due: Vec<String> =
            starting.iter().filter(|(_, (_, due_ms))| *due_ms <= now_ms).map(|(k, _)| k.clone()).collect();
        for key in due {
            let (uid, _) = starting.remove(&key).expect("due key present");
            let still_wanted = desired.get(&key).is_some_and(|p| {
                p.metadata.uid == uid
                    && p.spec.node_name.as_deref() == Some(self.config.node_name.as_str())
                    && is_active(p)
            });
            if still_wanted {
                self.started(&key, &uid, now_ms);
                if let Some(pod) = desired.get(&key) {
                    for container in &pod.spec.containers {
                        let message = format!("Started container {}", container.name);
                        self.events.normal(&Object::Pod(pod.clone()), "Started", message);
                    }
                }
            }
        }
        let starting_uids: BTreeMap<String, String> =
            starting.iter().map(|(k, (uid, _))| (k.clone(), uid.clone())).collect();
        let actions = plan_pod_sync(&self.config.node_name, &desired, &self.state.running_pods(), &starting_uids);
        for action in actions {
            match action {
                KubeletAction::Start { key, uid } => {
                    if let Some(pod) = desired.get(&key) {
                        for container in &pod.spec.containers {
                            let message = format!("Pulling image {:?}", container.image);
                            self.events.normal(&Object::Pod(pod.clone()), "Pulling", message);
                        }
                    }
                    let delay_ms = madsim::rand::thread_rng()
                        .gen_range(self.config.pod_start_delay_min_ms..=self.config.pod_start_delay_max_ms);
                    starting.insert(key, (uid, now_ms + delay_ms));
                }
                KubeletAction::Stop { key, uid, reason } => self.stopped(&key, &uid, &reason),
                KubeletAction::ReportRunning(pod) => {
                    if let Err(e) = self.report_running(pod).await {
                        tracing::debug!("kubelet {} status write failed: {e}", self.config.node_name);
                    }
                }
            }
        }
        // Pods that stopped being wanted while starting are simply never started.
        starting.retain(|key, (uid, _)| desired.get(key).is_some_and(|p| &p.metadata.uid == uid && is_active(p)));
    }

    fn started(&self, key: &str, uid: &str, now_ms: u64) {
        let (namespace, name) = split_key(key);
        tracing::debug!("kubelet {} started pod {key}", self.config.node_name);
        self.state.insert(
            key.to_string(),
            RunningPod { namespace: namespace.into(), name: name.into(), uid: uid.into(), started_at_ms: now_ms },
        );
        if let Some(o) = &self.observer {
            o.pod_started(&self.config.node_name, namespace, name, uid);
        }
    }

    fn stopped(&self, key: &str, uid: &str, reason: &str) {
        let removed = self.state.remove(key);
        debug_assert!(removed.is_some(), "stopping pod {key} that is not running");
        let (namespace, name) = split_key(key);
        tracing::debug!("kubelet {} stopped pod {key}: {reason}", self.config.node_name);
        if let Some(o) = &self.observer {
            o.pod_stopped(&self.config.node_name, namespace, name, uid, reason);
        }
    }

    /// Writes status.phase = Running with the read resourceVersion; on a conflict reads
    /// the pod again and retries, a bounded number of times.
    async fn report_running(&self, mut pod: Pod) -> Result<(), ApiError> {
        let uid = pod.metadata.uid.clone();
        let mut attempt = 1;
        loop {
            pod.status.phase = PodPhase::Running;
            pod.status.start_time_ms.get_or_insert(self.clock.now_ms());
            let namespace = pod.metadata.namespace.clone();
            let name = pod.metadata.name.clone();
            match self.client.update_status(Object::Pod(pod), None).await {
                Ok(_) => return Ok(()),
                Err(ApiError::Conflict { .. }) if attempt < self.config.max_status_attempts => {
                    attempt += 1;
                    let fresh = self.client.get(Resource::Pods, &namespace, &name).await?;
                    match fresh.into_pod() {
                        Some(p) if p.metadata.uid == uid && p.status.phase != PodPhase::Running => pod = p,
                        _ => return Ok(()),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str, node: Option<&str>, phase: PodPhase) -> (String, Pod) {
        let mut p = Pod { metadata: ObjectMeta::named("default", name), ..Pod::default() };
        p.metadata.uid = uid.into();
        p.spec.node_name = node.map(str::to_string);
        p.status.phase = phase;
        (format!("default/{name}"), p)
    }

    fn running(name: &str, uid: &str) -> (String, RunningPod) {
        (
            format!("default/{name}"),
            RunningPod { namespace: "default".into(), name: name.into(), uid: uid.into(), started_at_ms: 0 },
        )
    }

    #[test]
    fn starts_new_pods_once_and_reports_running_ones() {
        let desired: BTreeMap<String, Pod> = [
            pod("a", "u-a", Some("n1"), PodPhase::Pending),
            pod("b", "u-b", Some("n1"), PodPhase::Pending),
            pod("c", "u-c", Some("n1"), PodPhase::Running),
        ]
        .into();
        let running_pods: BTreeMap<String, RunningPod> = [running("a", "u-a"), running("c", "u-c")].into();
        let starting: BTreeMap<String, String> = BTreeMap::new();
        let actions = plan_pod_sync("n1", &desired, &running_pods, &starting);
        assert_eq!(actions.len(), 2);
        assert!(matches!(&actions[0], KubeletAction::ReportRunning(p) if p.metadata.name == "a"));
        assert_eq!(actions[1], KubeletAction::Start { key: "default/b".into(), uid: "u-b".into() });
        let starting: BTreeMap<String, String> = [("default/b".to_string(), "u-b".to_string())].into();
        let actions = plan_pod_sync("n1", &desired, &running_pods, &starting);
        assert_eq!(actions.len(), 1, "b is already starting: {actions:?}");
    }

    #[test]
    fn stops_deleted_replaced_and_unknown_pods() {
        let desired: BTreeMap<String, Pod> = [pod("b", "u-b2", Some("n1"), PodPhase::Pending)].into();
        let running_pods: BTreeMap<String, RunningPod> = [running("a", "u-a"), running("b", "u-b1")].into();
        let actions = plan_pod_sync("n1", &desired, &running_pods, &BTreeMap::new());
        let stops: Vec<(&str, &str)> = actions
            .iter()
            .filter_map(|a| match a {
                KubeletAction::Stop { key, uid, .. } => Some((key.as_str(), uid.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(stops, vec![("default/a", "u-a"), ("default/b", "u-b1")]);
        assert!(actions.contains(&KubeletAction::Start { key: "default/b".into(), uid: "u-b2".into() }));
    }
}
