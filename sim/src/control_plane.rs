//! The whole simulated control plane: store members, apiservers, controller-managers, the
//! scheduler, kubelets, and the user's kubectl, each a madsim node with its own clock and
//! credential.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use api::{ApiClient, ApiObserver, ClientConfig, Clock, Credential};
use apiserver::{ApiServerBugs, ApiServerConfig, ApiServerObserver, Termination, UserInfo};
use controllers::controller_manager::ControllerManagerConfig;
use controllers::garbage_collector::{GarbageCollectorConfig, GARBAGE_COLLECTOR_USER};
use controllers::kubelet::{KubeletConfig, KubeletState};
use controllers::observer::ControllerObserver;
use controllers::scheduler::SchedulerConfig;
use madsim::runtime::{Handle, NodeHandle};
use store::api::Principal;
use store::client::{StoreClient, StoreClientConfig};

use crate::addresses;
use crate::cluster::StoreCluster;
use crate::membership::{follow_endpoints, StoreOptions};
use crate::nodes::SeedNodes;
use crate::operator::ApiServerProcess;
use crate::recorder::{ObjectMetadataRecorder, Recorder};
use crate::store_traffic;
use crate::workload::{Shape, Workload, INITIAL_REPLICAS};

/// The cluster's shape and the switches scenarios and planted bugs turn.
#[derive(Clone, Debug)]
pub struct ControlPlaneOptions {
    pub store: StoreOptions,
    pub n_apiservers: u32,
    pub n_controller_managers: u32,
    pub n_kubelets: u32,
    /// kubesim's lease fencing of controller writes (Kubernetes has none).
    pub fencing: bool,
    pub apiserver_bugs: ApiServerBugs,
    pub replicaset_no_expectations: bool,
    /// Planted bug `informer-skips-relist` in every component's informers (see
    /// `InformerConfig::planted_bug_skip_relist`).
    pub informer_skips_relist: bool,
    /// Planted bug `controller-writes-store`: see `rogue_store_writer`.
    pub controller_writes_store: bool,
    /// Runs the garbage collector in the controller-manager (under its own identity,
    /// `system:serviceaccount:kube-system:generic-garbage-collector`), has the deployment
    /// and replicaset controllers set `blockOwnerDeletion` on the owner references they
    /// write, as Kubernetes' do, and records each object write's metadata in the history
    /// (`HistoryEvent::ObjectWritten`) for the garbage-collection checker.
    ///
    /// Off by default, and off in `deploy-nginx` and `store-smoke` for now, so that their
    /// trace hashes do not move (the stored pods and ReplicaSets, the collector's requests
    /// and the new records would all change them); on in the `garbage-collection`
    /// scenario. A later change turns it on everywhere, together with a generated workload
    /// that deletes things.
    pub garbage_collection: bool,
    /// Planted bug `gc-owner-by-name` (see `GarbageCollectorConfig::planted_bug_owner_by_name`).
    pub gc_owner_by_name: bool,
    /// Planted bug `rollout-ignores-max-surge` (see
    /// `controllers::rollout::RolloutBugs::ignore_max_surge`).
    pub rollout_ignores_max_surge: bool,
    /// Until this simulated time, apiserver-0's node also runs etcd-robustness-style
    /// store traffic (see `crate::store_traffic::spawn`). `None`: off.
    pub store_traffic_until: Option<std::time::Duration>,
    /// What the user does in `deploy-nginx` (other scenarios ignore it).
    pub workload: Workload,
    /// The apiserver's and the controllers' knobs.
    pub tuning: ControlPlaneTuning,
    /// Custom kinds every apiserver serves (a user's scenario adds them).
    pub custom_resources: Vec<&'static api::CustomResourceDefinition>,
    /// Users every apiserver authenticates besides the components (each by the token
    /// `token:NAME`); what they may do is what the stored RBAC objects grant them.
    pub users: Vec<UserInfo>,
    /// A user's controllers: replica `r` of each runs on worker machine `kubelet-r`
    /// (see [`Operator`]).
    pub operators: Vec<Operator>,
    /// Services: `Some` runs the apiservers' ClusterIP repair loop, the endpoints
    /// controller's bootstrap role and the endpoints controller (in the `services`
    /// scenario). `None` (the default, and deploy-nginx's and store-smoke's): none of it
    /// runs, and the apiservers write nothing for Services unless one is created, so
    /// those scenarios' trace hashes are what they were before Services existed.
    pub services: Option<ServicesOptions>,
    /// Every apiserver records each request its RBAC authorizer decides, with the
    /// revisions its RBAC cache had synced to (`HistoryEvent::Authorized`), and the
    /// recorder each committed RBAC object (`HistoryEvent::RbacObjectCommitted`): the
    /// permissions checker's evidence. Off by default (on in the `permissions` scenario),
    /// so that other runs' histories and trace hashes do not move.
    pub record_authorizations: bool,
}

/// How the control plane runs Services (see [`ControlPlaneOptions::services`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicesOptions {
    /// The apiservers' `--service-cluster-ip-range`.
    pub cluster_ip_range: apiserver::service_ips::ServiceIpRange,
    /// How often each apiserver's ClusterIP repair loop runs (kube-apiserver: 3 minutes).
    /// Its leak grace is three rounds, so it must be longer than a third of any pause a
    /// plan can hold (a paused apiserver's create in flight is not a leak).
    pub repair_interval_ms: u64,
}

impl Default for ServicesOptions {
    fn default() -> Self {
        Self { cluster_ip_range: apiserver::service_ips::ServiceIpRange::DEFAULT, repair_interval_ms: 30_000 }
    }
}

/// The apiserver's and the controllers' knobs (see [`crate::knobs::Knobs`] for what each
/// one is, its Kubernetes default and the values a seed draws). The default is each
/// component's own default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlaneTuning {
    pub compaction_interval_ms: u64,
    pub watch_cache_capacity: usize,
    pub watch_max_events_per_response: usize,
    pub api_request_timeout_ms: u64,
    pub leader_lease_duration_ms: u64,
    pub leader_renew_deadline_ms: u64,
    pub leader_retry_period_ms: u64,
    pub resync_period_ms: u64,
    pub node_monitor_grace_period_ms: u64,
    pub pod_eviction_timeout_ms: u64,
    pub event_ttl_ms: u64,
}

impl Default for ControlPlaneTuning {
    fn default() -> Self {
        let apiserver = ApiServerConfig::new("apiserver", addresses::apiserver(0));
        let controller_manager = ControllerManagerConfig::default();
        let election = &controller_manager.leader_election;
        Self {
            compaction_interval_ms: apiserver.compaction_interval.as_millis() as u64,
            watch_cache_capacity: apiserver.watch_cache_capacity,
            watch_max_events_per_response: apiserver.watch_max_events_per_response,
            api_request_timeout_ms: ClientConfig::default().request_timeout.as_millis() as u64,
            leader_lease_duration_ms: election.lease_duration_ms,
            leader_renew_deadline_ms: election.renew_deadline_ms,
            leader_retry_period_ms: election.retry_period_ms,
            resync_period_ms: controller_manager.replica_set.resync_period_ms,
            node_monitor_grace_period_ms: controller_manager.node_lifecycle.node_monitor_grace_period_ms,
            pod_eviction_timeout_ms: controller_manager.node_lifecycle.pod_eviction_timeout_ms,
            event_ttl_ms: apiserver.event_ttl.as_millis() as u64,
        }
    }
}

impl ControlPlaneTuning {
    /// The API client configuration of every component (kubectl keeps the default).
    fn client_config(&self) -> ClientConfig {
        ClientConfig {
            request_timeout: std::time::Duration::from_millis(self.api_request_timeout_ms),
            ..ClientConfig::default()
        }
    }

    /// Sets the leader-election timings of a controller-manager or scheduler.
    fn set_leader_election(&self, election: &mut controllers::leader_election::LeaderElectionConfig) {
        election.lease_duration_ms = self.leader_lease_duration_ms;
        election.renew_deadline_ms = self.leader_renew_deadline_ms;
        election.retry_period_ms = self.leader_retry_period_ms;
    }
}

impl ControlPlaneOptions {
    /// Sets what `shape` fixes (kubelets, replicas, store members); what it leaves
    /// `None` keeps its current value.
    pub fn reshape(&mut self, shape: &Shape) {
        if let Some(kubelets) = shape.kubelets {
            self.n_kubelets = kubelets;
        }
        if let Some(replicas) = shape.replicas {
            self.workload = Workload { initial_replicas: replicas.min(INITIAL_REPLICAS), scaled_replicas: replicas };
        }
        if let Some(members) = shape.store_members {
            self.store.n_members = members;
        }
    }
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            store: StoreOptions { n_members: 3, ..StoreOptions::default() },
            n_apiservers: 1,
            n_controller_managers: 2,
            n_kubelets: 3,
            fencing: true,
            apiserver_bugs: ApiServerBugs::default(),
            replicaset_no_expectations: false,
            informer_skips_relist: false,
            controller_writes_store: false,
            garbage_collection: false,
            gc_owner_by_name: false,
            rollout_ignores_max_surge: false,
            store_traffic_until: None,
            workload: Default::default(),
            tuning: ControlPlaneTuning::default(),
            custom_resources: Vec::new(),
            users: Vec::new(),
            operators: Vec::new(),
            services: None,
            record_authorizations: false,
        }
    }
}

/// One simulated process other than a store member.
pub struct Component {
    /// Node name, e.g. `apiserver-0`, `kubelet-2` (also the kubelet's Kubernetes node name).
    pub name: String,
    pub node: NodeHandle,
    /// The node's wall clock; the nemesis skews it.
    pub clock: Clock,
}

pub struct ControlPlane {
    pub store: StoreCluster,
    pub apiservers: Vec<Component>,
    pub controller_managers: Vec<Component>,
    pub scheduler: Component,
    pub kubelets: Vec<(Component, Arc<KubeletState>)>,
    pub apiserver_addrs: Vec<SocketAddr>,
    /// The seed's nodes, where the clients [`ControlPlane::client_as`] creates are registered.
    nodes: SeedNodes,
}

/// Each component's bearer token is derived from its user name.
fn token_for(user: &str) -> String {
    format!("token:{user}")
}

pub(crate) fn credential(user: &str) -> Credential {
    Credential { user: user.to_string(), token: token_for(user) }
}

pub fn kubelet_name(idx: u32) -> String {
    format!("kubelet-{idx}")
}

impl ControlPlane {
    /// Creates and starts every node, registered in `nodes`. Must be called from the
    /// simulation's supervisor.
    pub fn start(options: &ControlPlaneOptions, recorder: &Recorder, nodes: &SeedNodes) -> Self {
        if options.record_authorizations {
            recorder.record_rbac_objects();
        }
        let store = StoreCluster::start(&options.store, recorder, nodes);
        let apiserver_addrs: Vec<SocketAddr> = (0..options.n_apiservers).map(addresses::apiserver).collect();
        let mut users = vec![UserInfo::admin(), UserInfo::controller_manager(), UserInfo::scheduler()];
        if options.garbage_collection {
            users.push(UserInfo::new(GARBAGE_COLLECTOR_USER, &[]));
        }
        users.extend((0..options.n_kubelets).map(|i| UserInfo::node(&kubelet_name(i))));
        users.extend(options.users.iter().cloned());
        users.extend(options.operators.iter().map(|operator| operator.user.clone()));

        let (apiservers, terminations): (Vec<Component>, Vec<Termination>) = (0..options.n_apiservers)
            .map(|i| start_apiserver(i, options, &store, &apiserver_addrs, &users, recorder, nodes))
            .unzip();
        let controller_managers: Vec<Component> = (0..options.n_controller_managers)
            .map(|i| start_controller_manager(i, options, &store, &apiserver_addrs, recorder, nodes))
            .collect();
        let scheduler = start_scheduler(options, &apiserver_addrs, recorder, nodes);
        let kubelets =
            (0..options.n_kubelets).map(|i| start_kubelet(i, options, &apiserver_addrs, recorder, nodes)).collect();
        let controllers = controller_managers.iter().chain(std::iter::once(&scheduler)).map(|c| c.node.id()).collect();
        let apiserver_processes = apiservers
            .iter()
            .zip(terminations)
            .map(|(c, termination)| ApiServerProcess { node: c.node.id(), termination });
        store.set_control_plane(apiserver_processes.collect(), controllers);
        Self { store, apiservers, controller_managers, scheduler, kubelets, apiserver_addrs, nodes: nodes.clone() }
    }

    /// A client for the user `admin` (kubectl) on a new node.
    pub async fn kubectl(&self, recorder: &Recorder) -> (NodeHandle, ApiClient) {
        self.client_as("admin", "kubectl", addresses::KUBECTL, recorder).await
    }

    /// A client with `user`'s credential on a new node `node_name` at `ip` (a client
    /// address of the plan, [`addresses::client`]).
    pub async fn client_as(
        &self,
        user: &str,
        node_name: &str,
        ip: IpAddr,
        recorder: &Recorder,
    ) -> (NodeHandle, ApiClient) {
        self.client_of(user, node_name, ip, self.apiserver_addrs.clone(), recorder).await
    }

    /// As [`ControlPlane::client_as`], talking only to `servers` (one apiserver, say).
    pub async fn client_of(
        &self,
        user: &str,
        node_name: &str,
        ip: IpAddr,
        servers: Vec<SocketAddr>,
        recorder: &Recorder,
    ) -> (NodeHandle, ApiClient) {
        let node = self.nodes.build(Handle::current().create_node().name(node_name).ip(ip));
        let (observer, credential) = (api_observer(node_name, recorder), credential(user));
        let client = node
            .spawn(async move { ApiClient::connect(servers, credential, ClientConfig::default(), observer).await })
            .await
            .expect("client node")
            .expect("bind client endpoint");
        (node, client)
    }
}

/// Records a node's API calls under the node's name (several nodes may share a user, as
/// the two controller-managers do).
struct NodeApiObserver {
    node: String,
    recorder: Recorder,
}

impl ApiObserver for NodeApiObserver {
    fn invoked(&self, _client: &str, request: &api::ApiRequest) {
        self.recorder.invoked(&self.node, request);
    }
    fn returned(&self, _client: &str, request: &api::ApiRequest, result: &api::ApiResult) {
        self.recorder.returned(&self.node, request, result);
    }
}

pub(crate) fn api_observer(node: &str, recorder: &Recorder) -> Option<Arc<dyn ApiObserver>> {
    Some(Arc::new(NodeApiObserver { node: node.to_string(), recorder: recorder.clone() }))
}

fn controller_observer(recorder: &Recorder) -> Option<Arc<dyn ControllerObserver>> {
    Some(Arc::new(recorder.clone()))
}

fn start_apiserver(
    idx: u32,
    options: &ControlPlaneOptions,
    store: &StoreCluster,
    addrs: &[SocketAddr],
    users: &[UserInfo],
    recorder: &Recorder,
    nodes: &SeedNodes,
) -> (Component, Termination) {
    let name = format!("apiserver-{idx}");
    let mut config = ApiServerConfig::new(name.clone(), addrs[idx as usize]);
    for user in users {
        config = config.with_token(token_for(&user.name), user.clone());
    }
    for definition in &options.custom_resources {
        config = config
            .with_custom_resource(definition)
            .unwrap_or_else(|e| panic!("the scenario's custom resource {definition}: {e}"));
    }
    config.planted_bugs = options.apiserver_bugs;
    config.garbage_collector_role = options.garbage_collection;
    config.record_authorizations = options.record_authorizations;
    config.compaction_interval = std::time::Duration::from_millis(options.tuning.compaction_interval_ms);
    config.watch_cache_capacity = options.tuning.watch_cache_capacity;
    config.event_ttl = std::time::Duration::from_millis(options.tuning.event_ttl_ms);
    config.watch_max_events_per_response = options.tuning.watch_max_events_per_response;
    if let Some(services) = &options.services {
        config.services = apiserver::ServicesConfig {
            cluster_ip_range: services.cluster_ip_range,
            enabled: true,
            repair_interval: std::time::Duration::from_millis(services.repair_interval_ms),
        };
    }
    if idx != 0 {
        // One compactor per cluster is enough (kube-apiserver runs one per instance, but
        // they race harmlessly; kubesim keeps the history simpler).
        config.compaction_interval = std::time::Duration::ZERO;
    }
    let clock = Clock::new();
    let endpoints = store.endpoints();
    let observer: Arc<dyn ApiServerObserver> = if options.garbage_collection {
        Arc::new(ObjectMetadataRecorder(recorder.clone()))
    } else {
        Arc::new(recorder.clone())
    };
    let node_clock = clock.clone();
    let termination = Termination::new();
    let node_termination = termination.clone();
    let traffic = options
        .store_traffic_until
        .filter(|_| idx == 0)
        .map(|until| (until, recorder.clone(), Arc::new(std::sync::atomic::AtomicU64::new(0))));
    let node =
        nodes.build(Handle::current().create_node().name(name.clone()).ip(addrs[idx as usize].ip()).init(move || {
            let (config, endpoints, clock, observer, termination) =
                (config.clone(), endpoints.clone(), node_clock.clone(), observer.clone(), node_termination.clone());
            let traffic = traffic.clone();
            async move {
                // The members as of this (re)start: a restarted apiserver is pointed at the
                // restored cluster's endpoints.
                let members = endpoints.lock().expect("endpoints lock").clone();
                if members.is_empty() {
                    // Total loss: no store to serve from.
                    return;
                }
                if let Some((until, recorder, incarnations)) = traffic {
                    let incarnation = incarnations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    store_traffic::spawn(&config.name, endpoints.clone(), until, recorder, incarnation);
                }
                let principal = Principal::apiserver(config.name.clone());
                let backend = StoreClient::connect(members, principal, StoreClientConfig::default())
                    .await
                    .expect("bind the apiserver's store client");
                follow_endpoints(backend.clone(), endpoints);
                if let Err(e) = apiserver::serve(config, backend, clock, Some(observer), termination).await {
                    tracing::error!(error = %e, "apiserver failed to start");
                }
            }
        }));
    (Component { name, node, clock }, termination)
}

/// PLANTED BUG (`controller-writes-store`): the controller-manager got hold of the
/// apiserver's store credential and writes objects straight to the store, bypassing
/// authorization, admission and the watch cache. The store's ACL cannot tell (the
/// principal is the apiserver's); the single-writer checker sees the write come from a
/// controller-manager's address.
async fn rogue_store_writer(members: BTreeMap<store::api::MemberId, SocketAddr>) {
    let principal = Principal::apiserver("apiserver-0");
    let Ok(client) = StoreClient::connect(members, principal, StoreClientConfig::default()).await else {
        return;
    };
    for n in 0u64.. {
        madsim::time::sleep(std::time::Duration::from_secs(10)).await;
        let put = store::api::PutRequest {
            key: format!("/registry/configmaps/kube-system/controller-shortcut-{n}"),
            value: bytes::Bytes::from_static(b"{}"),
            prev_kv: false,
        };
        let _ = client.put(put).await;
    }
}

fn start_controller_manager(
    idx: u32,
    options: &ControlPlaneOptions,
    store: &StoreCluster,
    servers: &[SocketAddr],
    recorder: &Recorder,
    nodes: &SeedNodes,
) -> Component {
    let name = format!("controller-manager-{idx}");
    let mut config = ControllerManagerConfig::default();
    config.leader_election.identity = name.clone();
    config.leader_election.fencing = options.fencing;
    config.replica_set.planted_bug_no_expectations = options.replicaset_no_expectations;
    config.informer.planted_bug_skip_relist = options.informer_skips_relist;
    config.deployment.rollout_bugs.ignore_max_surge = options.rollout_ignores_max_surge;
    let tuning = &options.tuning;
    tuning.set_leader_election(&mut config.leader_election);
    config.replica_set.resync_period_ms = tuning.resync_period_ms;
    config.deployment.resync_period_ms = tuning.resync_period_ms;
    config.node_lifecycle.node_monitor_grace_period_ms = tuning.node_monitor_grace_period_ms;
    config.node_lifecycle.pod_eviction_timeout_ms = tuning.pod_eviction_timeout_ms;
    if options.garbage_collection {
        config.garbage_collector = Some(GarbageCollectorConfig {
            resync_period_ms: tuning.resync_period_ms,
            planted_bug_owner_by_name: options.gc_owner_by_name,
            ..GarbageCollectorConfig::default()
        });
        config.deployment.block_owner_deletion = true;
        config.replica_set.block_owner_deletion = true;
    }
    let with_gc = options.garbage_collection;
    config.endpoints.enabled = options.services.is_some();
    config.endpoints.resync_period_ms = tuning.resync_period_ms;
    let client_config = tuning.client_config();
    let clock = Clock::new();
    let (servers, node_clock) = (servers.to_vec(), clock.clone());
    let (api_obs, ctl_obs) = (api_observer(&name, recorder), controller_observer(recorder));
    let rogue_members = options.controller_writes_store.then(|| store.addresses());
    let node = nodes.build(
        Handle::current().create_node().name(name.clone()).ip(addresses::controller_manager(idx)).init(move || {
            let (config, servers, clock, api_obs, ctl_obs) =
                (config.clone(), servers.clone(), node_clock.clone(), api_obs.clone(), ctl_obs.clone());
            let (rogue_members, client_config) = (rogue_members.clone(), client_config.clone());
            async move {
                if let Some(members) = rogue_members {
                    madsim::task::spawn(rogue_store_writer(members));
                }
                let gc_client = match with_gc {
                    true => Some(
                        ApiClient::connect(
                            servers.clone(),
                            credential(GARBAGE_COLLECTOR_USER),
                            client_config.clone(),
                            api_obs.clone(),
                        )
                        .await
                        .expect("bind the garbage collector's client"),
                    ),
                    false => None,
                };
                let client =
                    ApiClient::connect(servers, credential("system:kube-controller-manager"), client_config, api_obs)
                        .await
                        .expect("bind the controller-manager's client");
                controllers::controller_manager::run_with_garbage_collector(config, client, gc_client, clock, ctl_obs)
                    .await;
            }
        }),
    );
    Component { name, node, clock }
}

fn start_scheduler(
    options: &ControlPlaneOptions,
    servers: &[SocketAddr],
    recorder: &Recorder,
    nodes: &SeedNodes,
) -> Component {
    let name = "scheduler-0".to_string();
    let tuning = &options.tuning;
    let mut config = SchedulerConfig::default();
    config.leader_election.identity = name.clone();
    config.informer.planted_bug_skip_relist = options.informer_skips_relist;
    tuning.set_leader_election(&mut config.leader_election);
    let client_config = tuning.client_config();
    let clock = Clock::new();
    let (servers, node_clock) = (servers.to_vec(), clock.clone());
    let (api_obs, ctl_obs) = (api_observer(&name, recorder), controller_observer(recorder));
    let node =
        nodes.build(Handle::current().create_node().name(name.clone()).ip(addresses::SCHEDULER).init(move || {
            let (config, servers, clock, api_obs, ctl_obs) =
                (config.clone(), servers.clone(), node_clock.clone(), api_obs.clone(), ctl_obs.clone());
            let client_config = client_config.clone();
            async move {
                let client = ApiClient::connect(servers, credential("system:kube-scheduler"), client_config, api_obs)
                    .await
                    .expect("bind the scheduler's client");
                controllers::scheduler::run(config, client, clock, ctl_obs).await;
            }
        }));
    Component { name, node, clock }
}

fn start_kubelet(
    idx: u32,
    options: &ControlPlaneOptions,
    servers: &[SocketAddr],
    recorder: &Recorder,
    nodes: &SeedNodes,
) -> (Component, Arc<KubeletState>) {
    let name = kubelet_name(idx);
    let mut config = KubeletConfig { node_name: name.clone(), ..KubeletConfig::default() };
    config.informer.planted_bug_skip_relist = options.informer_skips_relist;
    let client_config = options.tuning.client_config();
    let clock = Clock::new();
    // Running containers outlive a kubelet restart, as on a real machine; a machine crash
    // is modelled by clearing this state.
    let state = Arc::new(KubeletState::default());
    let user = format!("system:node:{name}");
    let operators = operator_replicas_on(idx, options, client_config.clone(), recorder);
    let (servers, node_clock, node_state) = (servers.to_vec(), clock.clone(), state.clone());
    let (api_obs, ctl_obs) = (api_observer(&name, recorder), controller_observer(recorder));
    let node =
        nodes.build(Handle::current().create_node().name(name.clone()).ip(addresses::kubelet(idx)).init(move || {
            let (config, servers, clock, state, api_obs, ctl_obs, user) = (
                config.clone(),
                servers.clone(),
                node_clock.clone(),
                node_state.clone(),
                api_obs.clone(),
                ctl_obs.clone(),
                user.clone(),
            );
            let (client_config, operators) = (client_config.clone(), operators.clone());
            async move {
                for operator in operators {
                    operator.start(servers.clone(), clock.clone());
                }
                let client = ApiClient::connect(servers, credential(&user), client_config, api_obs)
                    .await
                    .expect("bind the kubelet's client");
                controllers::kubelet::run(config, client, clock, state, ctl_obs).await;
            }
        }));
    (Component { name, node, clock }, state)
}

/// A user's controller, run as `replicas` processes with its own credential.
#[derive(Clone)]
pub struct Operator {
    /// The operator's name; replica `r` is the process `NAME-r` (its client's name in the
    /// history and its leader-election identity).
    pub name: &'static str,
    /// Who it authenticates as. It may do exactly what the RBAC objects bound to this user
    /// or its groups grant (the workload creates them, as `kubectl apply` of the
    /// operator's manifest would).
    pub user: UserInfo,
    /// How many replicas run (at most one per worker machine; leader election is the
    /// operator's business, as with kube-rs).
    pub replicas: u32,
    /// The replica's main: called at the replica's start and again after every restart of
    /// its machine.
    pub run: Arc<dyn Fn(OperatorProcess) -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator").field("name", &self.name).field("replicas", &self.replicas).finish()
    }
}

/// What one operator replica starts with.
pub struct OperatorProcess {
    /// `NAME-r`: unique per replica (a leader-election identity).
    pub identity: String,
    /// Connected to the apiservers with the operator's credential.
    pub client: ApiClient,
    /// The machine's wall clock (the nemesis skews it); leader election reads it.
    pub clock: Clock,
}

/// One replica of a user's operator, on the machine of the kubelet it shares.
#[derive(Clone)]
struct OperatorReplica {
    identity: String,
    user: String,
    run: Arc<dyn Fn(OperatorProcess) -> futures::future::BoxFuture<'static, ()> + Send + Sync>,
    client_config: ClientConfig,
    observer: Option<Arc<dyn ApiObserver>>,
}

impl OperatorReplica {
    /// Starts the replica as a task of the machine's current incarnation (a restart of
    /// the machine starts it again).
    fn start(self, servers: Vec<SocketAddr>, clock: Clock) {
        madsim::task::spawn(async move {
            let Ok(client) =
                ApiClient::connect(servers, credential(&self.user), self.client_config, self.observer).await
            else {
                panic!("bind the client of {}", self.identity);
            };
            let process = OperatorProcess { identity: self.identity, client, clock };
            (self.run)(process).await;
        });
    }
}

/// The operator replicas worker machine `idx` runs: replica `idx` of each operator with
/// more than `idx` replicas.
fn operator_replicas_on(
    idx: u32,
    options: &ControlPlaneOptions,
    client_config: ClientConfig,
    recorder: &Recorder,
) -> Vec<OperatorReplica> {
    options
        .operators
        .iter()
        .filter(|operator| idx < operator.replicas)
        .map(|operator| {
            let identity = format!("{}-{idx}", operator.name);
            OperatorReplica {
                observer: api_observer(&identity, recorder),
                identity,
                user: operator.user.name.clone(),
                run: operator.run.clone(),
                client_config: client_config.clone(),
            }
        })
        .collect()
}
