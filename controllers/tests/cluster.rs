//! End-to-end: controller-manager, scheduler and three kubelets against the fake
//! apiserver of `support/`, on madsim nodes. `kubectl create deployment nginx-deployment
//! --replicas=3` must end with three Running pods on Ready nodes (docs/design.md §1, stages
//! 1-5) within 30 simulated seconds.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{
    ApiClient, ClientConfig, Clock, Container, Credential, Deployment, Labels, Object, ObjectMeta, Operation, PodPhase,
    PodSpec, PodTemplateSpec, Resource, ResourceVersion,
};
use controllers::controller_manager::{self, ControllerManagerConfig};
use controllers::kubelet::{self, KubeletConfig, KubeletState};
use controllers::leader_election::LeaderElectionConfig;
use controllers::observer::ControllerObserver;
use controllers::scheduler::{self, SchedulerConfig};
use support::FakeApiServer;

const APISERVER: &str = "10.0.0.1:6443";

/// Records what the components report, for the assertions.
#[derive(Default)]
struct Recorder {
    leaders: Mutex<Vec<(String, String, u32)>>,
    started: Mutex<Vec<(String, String)>>,
    registered: Mutex<BTreeSet<String>>,
}

impl ControllerObserver for Recorder {
    fn leader_acquired(&self, component: &str, identity: &str, transitions: u32, _: ResourceVersion) {
        self.leaders.lock().unwrap().push((component.into(), identity.into(), transitions));
    }
    fn pod_started(&self, node: &str, _: &str, name: &str, _: &str) {
        self.started.lock().unwrap().push((node.into(), name.into()));
    }
    fn kubelet_registered(&self, node: &str) {
        self.registered.lock().unwrap().insert(node.into());
    }
}

async fn client(user: &str) -> ApiClient {
    let credential = Credential { user: user.into(), token: format!("token-{user}") };
    ApiClient::connect(vec![APISERVER.parse().unwrap()], credential, ClientConfig::default(), None)
        .await
        .expect("connect")
}

fn nginx_deployment(replicas: i32) -> Deployment {
    let labels: Labels = [("app".to_string(), "nginx".to_string())].into();
    let mut d = Deployment { metadata: ObjectMeta::named("default", "nginx-deployment"), ..Deployment::default() };
    d.spec.replicas = replicas;
    d.spec.selector = labels.clone();
    d.spec.template = PodTemplateSpec {
        labels,
        spec: PodSpec {
            node_name: None,
            containers: vec![Container { name: "nginx".into(), image: "nginx:1.14.2".into(), cpu_millis: 100 }],
        },
    };
    d
}

/// Starts the fake apiserver, two controller-managers, a scheduler and three kubelets.
/// Component settings a scenario may shorten.
#[derive(Clone, Default)]
struct ClusterOptions {
    controller_manager: ControllerManagerConfig,
    kubelet: KubeletConfig,
}

fn start_cluster(server: &Arc<FakeApiServer>, recorder: &Arc<Recorder>) -> Vec<Arc<KubeletState>> {
    start_cluster_with(server, recorder, ClusterOptions::default())
}

/// Starts the fake apiserver, controller-managers `cm-1` and `cm-2`, a scheduler and
/// kubelets `worker-1..3`.
fn start_cluster_with(
    server: &Arc<FakeApiServer>,
    recorder: &Arc<Recorder>,
    options: ClusterOptions,
) -> Vec<Arc<KubeletState>> {
    let handle = madsim::runtime::Handle::current();
    let addr: SocketAddr = APISERVER.parse().unwrap();
    let node = handle.create_node().name("apiserver").ip(addr.ip()).build();
    node.spawn(server.clone().serve(addr));

    let observer = || Some(recorder.clone() as Arc<dyn ControllerObserver>);
    for (idx, ip) in ["10.0.1.1", "10.0.1.2"].into_iter().enumerate() {
        let identity = format!("cm-{}", idx + 1);
        let node = handle.create_node().name(&identity).ip(ip.parse::<IpAddr>().unwrap()).build();
        let mut config = options.controller_manager.clone();
        config.leader_election.identity = identity;
        let observer = observer();
        node.spawn(async move {
            let client = client("system:kube-controller-manager").await;
            controller_manager::run(config, client, Clock::new(), observer).await
        });
    }
    let node = handle.create_node().name("scheduler-1").ip("10.0.2.1".parse().unwrap()).build();
    let observer_s = observer();
    node.spawn(async move {
        let config = SchedulerConfig {
            leader_election: LeaderElectionConfig::for_lease("kube-system", "kube-scheduler", "scheduler-1"),
            ..SchedulerConfig::default()
        };
        scheduler::run(config, client("system:kube-scheduler").await, Clock::new(), observer_s).await
    });
    (1..=3)
        .map(|idx| {
            let name = format!("worker-{idx}");
            let state = Arc::new(KubeletState::new());
            let node = handle.create_node().name(&name).ip(format!("10.0.3.{idx}").parse::<IpAddr>().unwrap()).build();
            let (s, observer, options) = (state.clone(), observer(), options.clone());
            node.spawn(async move {
                let config = KubeletConfig { node_name: name.clone(), ..options.kubelet };
                let client = client(&format!("system:node:{name}")).await;
                kubelet::run(config, client, Clock::new(), s, observer).await
            });
            state
        })
        .collect()
}

/// (pod name, node, phase) of every pod, and whether each pod's node is Ready.
fn pods_on_ready_nodes(server: &FakeApiServer) -> Vec<(String, String, PodPhase)> {
    let ready: BTreeSet<String> = server
        .objects(Resource::Nodes)
        .into_iter()
        .filter_map(Object::into_node)
        .filter(|n| n.status.ready)
        .map(|n| n.metadata.name)
        .collect();
    server
        .objects(Resource::Pods)
        .into_iter()
        .filter_map(Object::into_pod)
        .map(|p| {
            let node = p.spec.node_name.clone().unwrap_or_default();
            let phase = if ready.contains(&node) { p.status.phase } else { PodPhase::Unknown };
            (p.metadata.name, node, phase)
        })
        .collect()
}

#[madsim::test]
async fn nginx_deployment_reaches_three_running_pods_on_ready_nodes_within_30s() {
    let server = FakeApiServer::new();
    let recorder = Arc::new(Recorder::default());
    let kubelets = start_cluster(&server, &recorder);
    server
        .apply(Operation::Create { object: Object::Deployment(nginx_deployment(3)), fence: None })
        .expect("kubectl create deployment");

    let mut converged_at_s = None;
    for second in 1..=30 {
        madsim::time::sleep(Duration::from_secs(1)).await;
        let pods = pods_on_ready_nodes(&server);
        if pods.len() == 3 && pods.iter().all(|(_, _, phase)| *phase == PodPhase::Running) {
            converged_at_s = Some(second);
            break;
        }
    }
    let pods = pods_on_ready_nodes(&server);
    assert!(converged_at_s.is_some(), "not converged within 30 s: {pods:?}");
    eprintln!("converged after {converged_at_s:?} s: {pods:?}");

    // Least-allocated scheduling spreads the three equal pods over the three nodes.
    let nodes: BTreeSet<&str> = pods.iter().map(|(_, node, _)| node.as_str()).collect();
    assert_eq!(nodes.len(), 3, "{pods:?}");
    // Stage 2: one ReplicaSet named after the template hash, owning every pod.
    let replica_sets: Vec<String> =
        server.objects(Resource::ReplicaSets).into_iter().map(|o| o.metadata().name.clone()).collect();
    let hash = controllers::deployment::pod_template_hash(&nginx_deployment(3).spec.template);
    assert_eq!(replica_sets, vec![format!("nginx-deployment-{hash}")]);
    assert!(pods.iter().all(|(name, _, _)| name.starts_with(&replica_sets[0])));
    // The kubelets run exactly those pods, and said so.
    let n_running: usize = kubelets.iter().map(|k| k.running_pods().len()).sum();
    assert_eq!(n_running, 3);
    assert_eq!(recorder.started.lock().unwrap().len(), 3);
    assert_eq!(recorder.registered.lock().unwrap().len(), 3);
    // One controller-manager and one scheduler lead; nobody was fenced out.
    let leaders = recorder.leaders.lock().unwrap().clone();
    let components: Vec<&str> = leaders.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(components.iter().filter(|c| **c == controller_manager::COMPONENT).count(), 1, "{leaders:?}");
    assert_eq!(components.iter().filter(|c| **c == scheduler::COMPONENT).count(), 1, "{leaders:?}");

    // At rest, a few seconds later, still exactly three pods (no over-creation).
    madsim::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(server.objects(Resource::Pods).len(), 3);
    let deployment = server.objects(Resource::Deployments).remove(0).into_deployment().unwrap();
    assert_eq!(deployment.status.ready_replicas, 3, "{:?}", deployment.status);
}

async fn create_nginx(server: &FakeApiServer, replicas: i32) {
    server
        .apply(Operation::Create { object: Object::Deployment(nginx_deployment(replicas)), fence: None })
        .expect("kubectl create deployment");
}

/// Waits up to `limit_s` simulated seconds for `n` pods, all Running on Ready nodes.
async fn wait_for_running(server: &FakeApiServer, n: usize, limit_s: u64) -> Vec<(String, String, PodPhase)> {
    for _ in 0..limit_s {
        let pods = pods_on_ready_nodes(server);
        if pods.len() == n && pods.iter().all(|(_, _, phase)| *phase == PodPhase::Running) {
            return pods;
        }
        madsim::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("not {n} Running pods within {limit_s} s: {:?}", pods_on_ready_nodes(server));
}

fn current_leader(recorder: &Recorder, component: &str) -> (String, u32) {
    let leaders = recorder.leaders.lock().unwrap();
    let (_, identity, epoch) = leaders.iter().rev().find(|(c, _, _)| c == component).expect("a leader");
    (identity.clone(), *epoch)
}

#[madsim::test]
async fn controller_manager_failover_after_leader_crash_then_scale_up() {
    let server = FakeApiServer::new();
    let recorder = Arc::new(Recorder::default());
    start_cluster(&server, &recorder);
    create_nginx(&server, 3).await;
    wait_for_running(&server, 3, 30).await;
    let (old_leader, old_epoch) = current_leader(&recorder, controller_manager::COMPONENT);

    madsim::runtime::Handle::current().kill(old_leader.as_str());
    let mut deployment = server.objects(Resource::Deployments).remove(0);
    if let Object::Deployment(d) = &mut deployment {
        d.spec.replicas = 5;
    }
    server.apply(Operation::Update { object: deployment, fence: None }).expect("kubectl scale");

    // The standby takes over once the lease (15 s) expires, then scales up.
    wait_for_running(&server, 5, 40).await;
    let (new_leader, new_epoch) = current_leader(&recorder, controller_manager::COMPONENT);
    assert_ne!(new_leader, old_leader);
    assert_eq!(new_epoch, old_epoch + 1, "a takeover starts a new epoch");
}

#[madsim::test]
async fn silent_kubelet_node_goes_not_ready_and_its_pod_is_replaced_elsewhere() {
    let server = FakeApiServer::new();
    let recorder = Arc::new(Recorder::default());
    let mut options = ClusterOptions::default();
    options.kubelet.node_lease_renew_interval_ms = 1_000;
    options.controller_manager.node_lifecycle.node_monitor_period_ms = 1_000;
    options.controller_manager.node_lifecycle.node_monitor_grace_period_ms = 4_000;
    options.controller_manager.node_lifecycle.pod_eviction_timeout_ms = 5_000;
    start_cluster_with(&server, &recorder, options);
    create_nginx(&server, 3).await;
    let before = wait_for_running(&server, 3, 30).await;

    madsim::runtime::Handle::current().kill("worker-1");
    // Grace (4 s) + eviction (5 s) + monitor periods, then a new pod on another node.
    madsim::time::sleep(Duration::from_secs(15)).await;
    let after = wait_for_running(&server, 3, 20).await;
    assert!(after.iter().all(|(_, node, _)| node != "worker-1"), "{after:?}");
    let worker_1 = server
        .objects(Resource::Nodes)
        .into_iter()
        .filter_map(Object::into_node)
        .find(|n| n.metadata.name == "worker-1")
        .unwrap();
    assert!(!worker_1.status.ready);
    let replaced: Vec<_> = before.iter().filter(|p| !after.contains(p)).collect();
    assert_eq!(replaced.len(), 1, "exactly worker-1's pod was evicted: {replaced:?}");
}

/// A component whose node is killed frees everything it built: every informer, work queue
/// and leadership term. Each holds the observer, so once the killed tasks are dropped no
/// clone of it may remain. A reference cycle (a term holding an informer whose event
/// handler holds the term) kept a scheduler term and its informer caches alive for the
/// rest of the process: about 60 KB per seed of a campaign.
#[madsim::test]
async fn killed_components_free_their_informers_and_terms() {
    let server = FakeApiServer::new();
    let recorder = Arc::new(Recorder::default());
    let _kubelets = start_cluster(&server, &recorder);
    create_nginx(&server, 3).await;
    wait_for_running(&server, 3, 30).await;
    assert!(Arc::strong_count(&recorder) > 1, "the components hold the observer while they run");

    let handle = madsim::runtime::Handle::current();
    for node in ["cm-1", "cm-2", "scheduler-1", "worker-1", "worker-2", "worker-3"] {
        handle.kill(node);
    }
    // A killed node's tasks are dropped when next woken; let every pending timer fire.
    madsim::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(Arc::strong_count(&recorder), 1, "a killed component's state is still alive");
}
