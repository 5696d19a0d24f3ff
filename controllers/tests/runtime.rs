//! The public controller runtime (`controllers::runtime`) end to end: a user's controllers
//! against the fake apiserver of `support/`, on madsim nodes. Each test checks one promise
//! of the runtime's documentation: which events reach a reconcile, what each `Action`
//! does, what a filter keeps out, and that with leader election only the leader reconciles and a deposed leader's
//! writes are fenced out.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{
    ApiClient, ApiError, ClientConfig, Clock, ConfigMap, Credential, CustomObject, CustomResource,
    CustomResourceDefinition, Object, ObjectMeta, Operation, Pod, Resource, ResourceVersion,
};
use controllers::driver::SyncError;
use controllers::leader_election::LeaderElectionConfig;
use controllers::observer::ControllerObserver;
use controllers::runtime::{owner_reference, Action, Context, Controller, ControllerConfig, ObjectRef};
use controllers::workqueue::WorkQueueConfig;
use serde::{Deserialize, Serialize};
use support::FakeApiServer;

const APISERVER: &str = "10.0.0.1:6443";

fn start_apiserver(server: &Arc<FakeApiServer>) {
    let addr: SocketAddr = APISERVER.parse().unwrap();
    let node = madsim::runtime::Handle::current().create_node().name("apiserver").ip(addr.ip()).build();
    node.spawn(server.clone().serve(addr));
}

async fn client(user: &str) -> ApiClient {
    let credential = Credential { user: user.into(), token: format!("token-{user}") };
    ApiClient::connect(vec![APISERVER.parse().unwrap()], credential, ClientConfig::default(), None)
        .await
        .expect("connect")
}

/// Runs `run` on a new simulated node `name` at `ip`.
fn start_node<F>(name: &str, ip: &str, run: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let node = madsim::runtime::Handle::current().create_node().name(name).ip(ip.parse::<IpAddr>().unwrap()).build();
    node.spawn(async move { run().await });
}

fn kubectl(server: &FakeApiServer, operation: Operation) -> Object {
    match server.apply(operation).expect("kubectl") {
        api::ApiResponse::Object(object) => object,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Relabels a stored object (a change its informers see).
fn relabel(server: &FakeApiServer, resource: Resource, namespace: &str, name: &str, value: &str) {
    let mut object = kubectl(server, Operation::Get { resource, namespace: namespace.into(), name: name.into() });
    object.metadata_mut().labels.insert("touched".into(), value.into());
    kubectl(server, Operation::Update { object, fence: None });
}

// --- An operator of a custom kind that owns pods ------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct DatabaseSpec {
    replicas: u32,
}

struct Database;
impl CustomResource for Database {
    const DEFINITION: &'static CustomResourceDefinition =
        &CustomResourceDefinition::namespaced("example.com", "v1", "Database", "databases");
    type Spec = DatabaseSpec;
    type Status = ();
}

/// Every reconcile of the database operator: which database, and how many of its pods the
/// pod cache held.
#[derive(Default)]
struct DatabaseCalls {
    calls: Mutex<Vec<(String, usize)>>,
}

impl DatabaseCalls {
    fn of(&self, name: &str) -> Vec<usize> {
        self.calls.lock().unwrap().iter().filter(|(n, _)| n == name).map(|(_, n_pods)| *n_pods).collect()
    }
}

/// One pod per replica, `<database>-<idx>`, each owned by the database.
async fn reconcile_database(object: Arc<Object>, ctx: Arc<Context<Arc<DatabaseCalls>>>) -> Result<Action, SyncError> {
    let db = CustomObject::<Database>::from_object((*object).clone()).map_err(|e| SyncError::Retry(e.to_string()))?;
    let pods = ctx.owned(Resource::Pods, &object);
    ctx.data().calls.lock().unwrap().push((db.metadata.name.clone(), pods.len()));
    for replica_idx in 0..db.spec.replicas {
        let name = format!("{}-{replica_idx}", db.metadata.name);
        if pods.iter().any(|pod| pod.metadata().name == name) {
            continue;
        }
        let mut pod = Pod { metadata: ObjectMeta::named(&db.metadata.namespace, &name), ..Pod::default() };
        pod.metadata.owner_references = vec![owner_reference(&object)];
        match ctx.client().create(Object::Pod(pod), ctx.write_fence()?).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::AwaitChange)
}

fn create_database(server: &FakeApiServer, name: &str, replicas: u32) {
    let db = CustomObject::<Database>::new(ObjectMeta::named("default", name), DatabaseSpec { replicas });
    kubectl(server, Operation::Create { object: db.to_object().unwrap(), fence: None });
}

#[madsim::test]
async fn reconcile_runs_for_each_primary_and_again_when_an_owned_child_changes() {
    let server = FakeApiServer::new();
    start_apiserver(&server);
    create_database(&server, "orders", 2);
    create_database(&server, "users", 1);
    let calls = Arc::new(DatabaseCalls::default());
    let data = calls.clone();
    start_node("operator", "10.0.1.1", move || async move {
        let result = Controller::for_custom::<Database>("default")
            .owns(Resource::Pods)
            .run(client("database-operator").await, data, reconcile_database, |_: &ObjectRef, _: &SyncError, _: &_| {
                Action::Backoff
            })
            .await;
        panic!("the operator stopped: {result:?}");
    });
    madsim::time::sleep(Duration::from_secs(5)).await;

    // Each database reconciled once with no pods, which created them; each pod's Added
    // event reconciled its owner again, until the cache held every pod it owns.
    let pods: Vec<String> = server.objects(Resource::Pods).iter().map(|p| p.metadata().name.clone()).collect();
    assert_eq!(pods, ["orders-0", "orders-1", "users-0"]);
    let (orders, users) = (calls.of("orders"), calls.of("users"));
    assert_eq!(orders.first(), Some(&0), "{orders:?}");
    assert_eq!(orders.last(), Some(&2), "{orders:?}");
    assert_eq!(users, [0, 1], "one reconcile before and one after its pod appeared");
    for pod in server.objects(Resource::Pods) {
        let owner = pod.metadata().controller_owner().expect("a controller owner").clone();
        assert_eq!(owner.kind, "Database");
        assert!(pod.metadata().name.starts_with(&owner.name), "{pod:?}");
    }

    // A change to an owned pod reconciles its owner, and only its owner.
    let n_orders = orders.len();
    relabel(&server, Resource::Pods, "default", "users-0", "1");
    madsim::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls.of("users"), [0, 1, 1]);
    assert_eq!(calls.of("orders").len(), n_orders);

    // A deleted database is not reconciled, even when a pod it owned changes.
    kubectl(
        &server,
        Operation::Delete {
            resource: Database::resource(),
            namespace: "default".into(),
            name: "orders".into(),
            precondition: None,
            options: Default::default(),
            fence: None,
        },
    );
    madsim::time::sleep(Duration::from_secs(1)).await;
    relabel(&server, Resource::Pods, "default", "orders-0", "1");
    madsim::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(calls.of("orders").len(), n_orders);
}

// --- Requeue and the error policy ---------------------------------------------------------

/// The simulated times of each call, by object name, and what the error policy was told.
#[derive(Default)]
struct Timeline {
    reconciled_ms: Mutex<BTreeMap<String, Vec<u64>>>,
    policy_saw: Mutex<Vec<(ObjectRef, String)>>,
}

impl Timeline {
    fn gaps_ms(&self, name: &str) -> Vec<u64> {
        let times = self.reconciled_ms.lock().unwrap().get(name).cloned().unwrap_or_default();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// `poll` asks to be called again in 10 s; `broken` always fails.
async fn reconcile_timed(object: Arc<Object>, ctx: Arc<Context<Arc<Timeline>>>) -> Result<Action, String> {
    let name = object.metadata().name.clone();
    ctx.data().reconciled_ms.lock().unwrap().entry(name.clone()).or_default().push(Clock::sim_now_ms());
    match name.as_str() {
        "poll" => Ok(Action::Requeue(Duration::from_secs(10))),
        _ => Err(format!("{name} is broken")),
    }
}

/// Whether each gap is the expected one, give or take the few ms a worker takes to wake.
fn gaps_match(gaps_ms: &[u64], expected_ms: &[u64]) -> bool {
    gaps_ms.len() == expected_ms.len()
        && gaps_ms.iter().zip(expected_ms).all(|(gap, want)| (*want..*want + 20).contains(gap))
}

#[madsim::test]
async fn requeue_calls_again_after_its_delay_and_errors_follow_the_error_policy_with_backoff() {
    let server = FakeApiServer::new();
    start_apiserver(&server);
    for name in ["poll", "broken"] {
        let object =
            Object::ConfigMap(ConfigMap { metadata: ObjectMeta::named("default", name), ..ConfigMap::default() });
        kubectl(&server, Operation::Create { object, fence: None });
    }
    let timeline = Arc::new(Timeline::default());
    let data = timeline.clone();
    let config = ControllerConfig {
        workqueue: WorkQueueConfig {
            base_delay_ms: 100,
            max_delay_ms: 800,
            max_retries: 5,
            ..WorkQueueConfig::default()
        },
        ..ControllerConfig::default()
    };
    start_node("operator", "10.0.1.1", move || async move {
        let error_policy = |object: &ObjectRef, error: &String, ctx: &Context<Arc<Timeline>>| {
            ctx.data().policy_saw.lock().unwrap().push((object.clone(), error.clone()));
            Action::Backoff
        };
        let result = Controller::new(Resource::ConfigMaps, "default")
            .with_config(config)
            .run(client("timed-operator").await, data, reconcile_timed, error_policy)
            .await;
        panic!("the operator stopped: {result:?}");
    });
    madsim::time::sleep(Duration::from_secs(45)).await;

    // Requeue(10 s): called again every 10 s and no sooner, with nothing changing.
    let poll_gaps = timeline.gaps_ms("poll");
    assert!(gaps_match(&poll_gaps, &[10_000; 4]), "{poll_gaps:?}");
    // Backoff: 100, 200, 400, 800 (the cap), 800 ms, then given up after five retries.
    let broken_gaps = timeline.gaps_ms("broken");
    assert!(gaps_match(&broken_gaps, &[100, 200, 400, 800, 800]), "{broken_gaps:?}");
    let policy_saw = timeline.policy_saw.lock().unwrap().clone();
    assert_eq!(policy_saw, vec![(ObjectRef::new("default", "broken"), "broken is broken".to_string()); 6]);

    // A change brings a given-up object back, its backoff started afresh.
    relabel(&server, Resource::ConfigMaps, "default", "broken", "1");
    madsim::time::sleep(Duration::from_secs(5)).await;
    let broken_gaps = timeline.gaps_ms("broken");
    assert!(gaps_match(&broken_gaps[6..], &[100, 200, 400, 800, 800]), "{broken_gaps:?}");
}

// --- A filter on the primary resource ------------------------------------------------------

/// Records the name of every object reconciled.
async fn reconcile_recorded(
    object: Arc<Object>,
    ctx: Arc<Context<Arc<Mutex<Vec<String>>>>>,
) -> Result<Action, SyncError> {
    ctx.data().lock().unwrap().push(object.metadata().name.clone());
    Ok(Action::AwaitChange)
}

#[madsim::test]
async fn a_filter_keeps_rejected_primary_objects_out_of_events_resyncs_and_reconciles() {
    let server = FakeApiServer::new();
    start_apiserver(&server);
    for name in ["kept", "skipped"] {
        let object =
            Object::ConfigMap(ConfigMap { metadata: ObjectMeta::named("default", name), ..ConfigMap::default() });
        kubectl(&server, Operation::Create { object, fence: None });
    }
    relabel(&server, Resource::ConfigMaps, "default", "skipped", "skip");
    let reconciled = Arc::new(Mutex::new(Vec::new()));
    let data = reconciled.clone();
    let config = ControllerConfig { resync_period_ms: Some(1_000), ..ControllerConfig::default() };
    start_node("operator", "10.0.1.1", move || async move {
        let result = Controller::new(Resource::ConfigMaps, "default")
            .filter(|o| o.metadata().labels.get("touched").map(String::as_str) != Some("skip"))
            .with_config(config)
            .run(client("filtered-operator").await, data, reconcile_recorded, |_: &ObjectRef, _: &SyncError, _: &_| {
                Action::Backoff
            })
            .await;
        panic!("the operator stopped: {result:?}");
    });
    let calls_of = |name: &str| reconciled.lock().unwrap().iter().filter(|n| *n == name).count();

    // Neither its Added event nor three resyncs reconcile the rejected object.
    madsim::time::sleep(Duration::from_millis(3_500)).await;
    assert!(calls_of("kept") >= 3, "{:?}", reconciled.lock().unwrap());
    assert_eq!(calls_of("skipped"), 0);

    // A change that makes it accepted reconciles it at once (before the next resync).
    relabel(&server, Resource::ConfigMaps, "default", "skipped", "yes");
    madsim::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(calls_of("skipped"), 1);

    // A change that makes the other rejected stops its reconciles, resyncs included.
    relabel(&server, Resource::ConfigMaps, "default", "kept", "skip");
    madsim::time::sleep(Duration::from_millis(100)).await;
    let n_kept = calls_of("kept");
    madsim::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(calls_of("kept"), n_kept);
    assert!(calls_of("skipped") >= 3, "{:?}", reconciled.lock().unwrap());
}

// --- Leader election and the fence --------------------------------------------------------

const LEASE: &str = "counter-operator";

/// Who reconciled, when, with which fence, and what became of the write.
#[derive(Default)]
struct Writes {
    attempts: Mutex<Vec<Attempt>>,
    leaders: Mutex<Vec<String>>,
}

#[derive(Clone, Debug)]
struct Attempt {
    identity: String,
    /// When the reconcile read its fence, before the write (a paused node reads nothing).
    at_ms: u64,
    fence_rv: Option<ResourceVersion>,
    result: Result<(), ApiError>,
}

impl ControllerObserver for Writes {
    fn leader_acquired(&self, component: &str, identity: &str, _: u32, _: ResourceVersion) {
        assert_eq!(component, LEASE);
        self.leaders.lock().unwrap().push(identity.into());
    }
}

/// Writes `counter-status` (who wrote it last) for the primary `counter`, every second.
async fn reconcile_counter(object: Arc<Object>, ctx: Arc<Context<(String, Arc<Writes>)>>) -> Result<Action, SyncError> {
    if object.metadata().name != "counter" {
        return Ok(Action::AwaitChange);
    }
    let (identity, writes) = ctx.data();
    let fence = ctx.write_fence()?;
    let at_ms = Clock::sim_now_ms();
    let fence_rv = fence.as_ref().map(|f| {
        assert_eq!((f.namespace.as_str(), f.name.as_str()), ("default", LEASE));
        f.resource_version
    });
    let mut status = ConfigMap { metadata: ObjectMeta::named("default", "counter-status"), ..ConfigMap::default() };
    status.data.insert("writer".into(), identity.clone());
    let result = match ctx.cache(Resource::ConfigMaps).get("default/counter-status") {
        Some(current) => {
            status.metadata.resource_version = current.metadata().resource_version;
            ctx.client().update(Object::ConfigMap(status), fence).await
        }
        None => ctx.client().create(Object::ConfigMap(status), fence).await,
    };
    let result = result.map(drop);
    writes.attempts.lock().unwrap().push(Attempt {
        identity: identity.clone(),
        at_ms,
        fence_rv,
        result: result.clone(),
    });
    result?;
    Ok(Action::Requeue(Duration::from_secs(1)))
}

fn start_counter_operator(identity: &str, ip: &str, writes: &Arc<Writes>) {
    let (identity, writes) = (identity.to_string(), writes.clone());
    start_node(&identity.clone(), ip, move || async move {
        let election = LeaderElectionConfig::for_lease("default", LEASE, &identity);
        let observer = writes.clone() as Arc<dyn ControllerObserver>;
        let result = Controller::new(Resource::ConfigMaps, "default")
            .with_leader_election(election)
            .with_observer(observer)
            .run(client("counter-operator").await, (identity, writes), reconcile_counter, |_: &_, _: &_, _: &_| {
                Action::Backoff
            })
            .await;
        panic!("the operator stopped: {result:?}");
    });
}

/// A leader's write succeeds, or is fenced because a renewal of its own lease moved the
/// lease's resourceVersion between reading the fence and the write landing (the spurious
/// fencing `leader_election` documents; the next attempt carries the new fence).
fn ok_or_renewal_race(attempt: &Attempt) -> bool {
    match &attempt.result {
        Ok(()) => true,
        Err(ApiError::Fenced { resource_version, .. }) => Some(*resource_version) == attempt.fence_rv,
        Err(_) => false,
    }
}

#[madsim::test]
async fn only_the_leader_reconciles_and_a_deposed_leaders_writes_are_fenced_out() {
    let server = FakeApiServer::new();
    start_apiserver(&server);
    let counter =
        Object::ConfigMap(ConfigMap { metadata: ObjectMeta::named("default", "counter"), ..ConfigMap::default() });
    kubectl(&server, Operation::Create { object: counter, fence: None });
    let writes = Arc::new(Writes::default());
    start_counter_operator("op-1", "10.0.1.1", &writes);
    start_counter_operator("op-2", "10.0.1.2", &writes);
    madsim::time::sleep(Duration::from_secs(10)).await;

    let leaders = writes.leaders.lock().unwrap().clone();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let first = leaders[0].clone();
    let attempts = writes.attempts.lock().unwrap().clone();
    assert!(attempts.iter().all(|a| a.identity == first && a.fence_rv.is_some()), "{attempts:?}");
    assert!(attempts.iter().filter(|a| a.result.is_ok()).count() >= 5, "the leader writes every second: {attempts:?}");
    assert!(attempts.iter().all(ok_or_renewal_race), "{attempts:?}");

    // Paused past its lease, the leader is replaced; on waking it still believes it leads
    // until its renew deadline, and reconciles with its old term's fence: refused.
    let handle = madsim::runtime::Handle::current();
    let paused_at_ms = Clock::sim_now_ms();
    handle.pause(first.as_str());
    madsim::time::sleep(Duration::from_secs(25)).await;
    let leaders = writes.leaders.lock().unwrap().clone();
    assert_eq!(leaders.len(), 2, "{leaders:?}");
    let second = leaders[1].clone();
    assert_ne!(second, first);
    handle.resume(first.as_str());
    madsim::time::sleep(Duration::from_secs(25)).await;

    let attempts = writes.attempts.lock().unwrap().clone();
    let after_pause: Vec<&Attempt> = attempts.iter().filter(|a| a.at_ms > paused_at_ms).collect();
    let (deposed, successor): (Vec<&Attempt>, Vec<&Attempt>) = after_pause.iter().partition(|a| a.identity == first);
    assert!(!deposed.is_empty(), "the deposed leader reconciled after waking: {attempts:?}");
    assert!(
        deposed.iter().all(|a| matches!(a.result, Err(ApiError::Fenced { .. }))),
        "every write of the deposed leader is fenced out: {deposed:?}"
    );
    assert!(successor.iter().all(|a| ok_or_renewal_race(a)), "{successor:?}");
    assert!(successor.iter().any(|a| a.result.is_ok()), "{successor:?}");
    assert!(server.state().n_fenced_writes >= deposed.len() as u64);
    let status = kubectl(
        &server,
        Operation::Get { resource: Resource::ConfigMaps, namespace: "default".into(), name: "counter-status".into() },
    );
    assert_eq!(status.into_config_map().unwrap().data["writer"], second);
    // Its renew deadline passed, the deposed leader stopped: the last ten seconds were the
    // successor's alone.
    let last_ms = Clock::sim_now_ms() - 10_000;
    assert!(attempts.iter().filter(|a| a.at_ms > last_ms).all(|a| a.identity == second), "{attempts:?}");
}
