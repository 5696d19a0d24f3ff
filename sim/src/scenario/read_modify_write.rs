//! `read-modify-write`: concurrent users updating the same objects with optimistic
//! concurrency (Kubernetes' resourceVersion preconditions), as every controller and most
//! `kubectl edit`s do. Three apiservers and the usual control plane, with a 2-replica
//! deployment `web` so that the kubelets' and controllers' status updates race too. Three
//! users, each talking to its own apiserver, work on the ConfigMaps [`COUNTERS`] through
//! the safety phase. Each change is client-go's `retry.RetryOnConflict` around a get and an
//! update: read the ConfigMap, add one to its `counter`, append the user's name to its
//! `writers`, and update with the resourceVersion read. On 409 Conflict the user reads
//! again and retries, up to [`MAX_CONFLICT_RETRIES`] times. Any other error (a timeout, an
//! apiserver gone) leaves that increment in doubt, and the user moves on. One in
//! `DELETE_ONE_IN` actions on [`SCRATCH`] deletes it instead (with the resourceVersion
//! read as precondition) and creates it again at 0. A user that finds a ConfigMap missing
//! (not yet created, or lost to a restore) creates it at 0.
//!
//! Every Update's and UpdateStatus's resourceVersion is recorded
//! (`Recorder::record_update_preconditions`), so no-lost-update judges every acknowledged
//! update of the run, the users' and the components'. At rest the admin reads each
//! ConfigMap once and records its counter (`HistoryEvent::CounterRead`), the scenario's
//! contract with the checker: every ConfigMap is created at 0 and every Update adds
//! exactly one. The admin also awaits (`Awaited`, `Looked`) `web`'s pods Running and every
//! ConfigMap readable, which the convergence checker judges.
//!
//! Disk faults are accepted: after a restore the users re-create what it rolled back, and
//! no-lost-update judges each cluster epoch on its own.

use std::collections::BTreeMap;
use std::time::Duration;

use api::{
    ApiClient, ApiError, ConfigMap, Container, Deployment, DeploymentSpec, Labels, Object, ObjectMeta, PodPhase,
    PodSpec, PodTemplateSpec, Resource,
};
use madsim::rand::Rng;

use crate::control_plane::{ControlPlane, ControlPlaneOptions};
use crate::history::HistoryEvent;
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::world::SimWorld;
use faults::FaultPlan;

pub const NAMESPACE: &str = "default";
/// The ConfigMaps the users increment. The first is the hot one (half the actions).
pub const COUNTERS: [&str; 3] = ["shared", "shared-b", SCRATCH];
/// The ConfigMap that is also deleted and created again.
pub const SCRATCH: &str = "scratch";
/// The deployment whose pods' status the kubelets and controllers update.
pub const DEPLOYMENT: &str = "web";
pub const REPLICAS: i32 = 2;
/// Users doing read-modify-write at once, user `u` through apiserver `u mod n`.
pub const N_USERS: u32 = 3;
/// The apiservers the scenario runs (several, so that the users' updates race).
pub const N_APISERVERS: u32 = 3;
/// client-go's `retry.DefaultRetry` allows 5 steps; a little more, as contention is high.
pub const MAX_CONFLICT_RETRIES: u32 = 10;
/// One action in this many on [`SCRATCH`] deletes and re-creates it.
const DELETE_ONE_IN: u32 = 6;
/// The most names a ConfigMap's `writers` keeps (its newest), so that it stays small.
const MAX_WRITERS_KEPT: usize = 8;
const CHURN_WITHOUT_FAULTS: Duration = Duration::from_secs(20);
const CONVERGENCE_BOUND: Duration = Duration::from_secs(60);
/// How long the cluster must stay still before it is judged at rest.
const AT_REST_AFTER: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_secs(1);

/// The cluster this scenario needs (applied to its options before the plan is drawn, so
/// that faults can target every apiserver).
pub fn configure(cluster: &mut ControlPlaneOptions) {
    cluster.n_apiservers = cluster.n_apiservers.max(N_APISERVERS);
}

fn web_labels() -> Labels {
    [("app".to_string(), DEPLOYMENT.to_string())].into()
}

fn web_deployment() -> Deployment {
    let mut metadata = ObjectMeta::named(NAMESPACE, DEPLOYMENT);
    metadata.labels = web_labels();
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: REPLICAS,
            selector: web_labels(),
            template: PodTemplateSpec {
                labels: web_labels(),
                spec: PodSpec {
                    node_name: None,
                    containers: vec![Container { name: "web".into(), image: "nginx:1.14.2".into(), cpu_millis: 100 }],
                },
            },
            strategy: None,
            revision_history_limit: None,
        },
        status: Default::default(),
    }
}

/// A counter ConfigMap as it is created: counter 0, no writers.
fn new_counter(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta::named(NAMESPACE, name),
        data: [("counter".to_string(), "0".to_string()), ("writers".to_string(), String::new())].into(),
    }
}

/// A ConfigMap's counter (absent or unreadable: `None`).
pub fn counter_of(config_map: &ConfigMap) -> Option<u64> {
    config_map.data.get("counter")?.parse().ok()
}

/// The modification every user makes: counter + 1, `user` appended to the writers.
fn increment(config_map: &mut ConfigMap, user: &str) {
    let counter = counter_of(config_map).unwrap_or(0) + 1;
    config_map.data.insert("counter".into(), counter.to_string());
    let writers = config_map.data.entry("writers".into()).or_default();
    let mut names: Vec<&str> = writers.split(',').filter(|w| !w.is_empty()).collect();
    names.push(user);
    let kept = names.len().saturating_sub(MAX_WRITERS_KEPT);
    *writers = names[kept..].join(",");
}

pub async fn run(
    recorder: Recorder,
    nodes: &SeedNodes,
    mut options: ControlPlaneOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    configure(&mut options);
    recorder.record_update_preconditions();
    let plane = ControlPlane::start(&options, &recorder, nodes);
    let (kubectl_node, kubectl) = plane.kubectl(&recorder).await;
    let (churn, liveness) = match &plan {
        Some(plan) => (Duration::from_millis(plan.safety_phase_ms), Duration::from_millis(plan.liveness_phase_ms)),
        None => (CHURN_WITHOUT_FAULTS, CONVERGENCE_BOUND),
    };
    let mut users = Vec::new();
    for user in 0..N_USERS {
        let server = plane.apiserver_addrs[(user % options.n_apiservers) as usize];
        let name = format!("user-{user}");
        let ip = crate::addresses::client(10 + user as u8);
        let (node, client) = plane.client_of("admin", &name, ip, vec![server], &recorder).await;
        users.push(node.spawn(read_modify_write(client, name, churn)));
    }
    let admin = kubectl_node.spawn({
        let recorder = recorder.clone();
        async move { admin_workload(&kubectl, &recorder, churn, liveness).await }
    });
    if let Some(plan) = plan {
        faults::run(&plan, SimWorld::for_control_plane(&plane, &recorder)).await;
    }
    for user in users {
        user.await.expect("a user's workload");
    }
    let checks = admin.await.expect("the admin's workload");
    let store_endpoints = plane.store.endpoints().lock().expect("endpoints lock").clone();
    ScenarioOutcome { timeline: timeline(&recorder), checks, stats: Default::default(), store_endpoints }
}

/// One user: for `churn`, every few hundred milliseconds, increments a ConfigMap (the hot
/// one half the time) or, now and then, deletes [`SCRATCH`] and creates it again.
async fn read_modify_write(client: ApiClient, user: String, churn: Duration) {
    let end = madsim::time::Instant::now() + churn;
    while madsim::time::Instant::now() < end {
        let (pause, target, delete) = {
            let mut rng = madsim::rand::thread_rng();
            let pause = Duration::from_millis(rng.gen_range(100..800));
            let target = if rng.gen_bool(0.5) { COUNTERS[0] } else { COUNTERS[rng.gen_range(1..COUNTERS.len())] };
            (pause, target, target == SCRATCH && rng.gen_ratio(1, DELETE_ONE_IN))
        };
        madsim::time::sleep(pause).await;
        if delete {
            delete_and_recreate(&client, SCRATCH).await;
        } else {
            increment_with_retry_on_conflict(&client, target, &user).await;
        }
    }
}

/// client-go's `retry.RetryOnConflict(retry.DefaultRetry, func() { get; modify; update })`:
/// a 409 Conflict means someone else wrote first, so read again and redo the change. Any
/// other error ends the attempt (a timeout leaves the increment in doubt). A missing
/// ConfigMap is created at 0 instead.
async fn increment_with_retry_on_conflict(client: &ApiClient, name: &str, user: &str) {
    for _attempt in 0..MAX_CONFLICT_RETRIES {
        let mut config_map = match client.get(Resource::ConfigMaps, NAMESPACE, name).await {
            Ok(object) => match object.into_config_map() {
                Some(config_map) => config_map,
                None => return,
            },
            Err(ApiError::NotFound { .. }) => {
                let _ = client.create(Object::ConfigMap(new_counter(name)), None).await;
                return;
            }
            Err(_) => return,
        };
        increment(&mut config_map, user);
        match client.update(Object::ConfigMap(config_map), None).await {
            Err(ApiError::Conflict { .. }) => continue,
            Ok(_) | Err(_) => return,
        }
    }
}

/// Deletes `name` on condition it is still the version read, then creates it at 0.
async fn delete_and_recreate(client: &ApiClient, name: &str) {
    let Ok(object) = client.get(Resource::ConfigMaps, NAMESPACE, name).await else { return };
    let read = object.metadata().resource_version;
    match client.delete(Resource::ConfigMaps, NAMESPACE, name, Some(read), None).await {
        Ok(_) | Err(ApiError::NotFound { .. }) => {
            let _ = client.create(Object::ConfigMap(new_counter(name)), None).await;
        }
        Err(_) => {}
    }
}

/// The admin: creates `web` and the ConfigMaps (re-applying them whenever a restore lost
/// them), waits out the churn, then waits for the cluster to come to rest and reads every
/// counter.
async fn admin_workload(kubectl: &ApiClient, recorder: &Recorder, churn: Duration, liveness: Duration) -> Vec<Check> {
    let start = madsim::time::Instant::now();
    recorder.note(format!(
        "kubectl create deployment {DEPLOYMENT} --replicas={REPLICAS}; {N_USERS} users read-modify-write the ConfigMaps {}",
        COUNTERS.join(", ")
    ));
    recorder.record(HistoryEvent::DesiredReplicas {
        namespace: NAMESPACE.to_string(),
        deployment: DEPLOYMENT.to_string(),
        replicas: REPLICAS,
    });
    while madsim::time::Instant::now() < start + churn {
        reapply(kubectl).await;
        madsim::time::sleep(Duration::from_secs(2)).await;
    }
    recorder.note("the users stopped updating");
    let mut checks = wait_until_at_rest(kubectl, recorder, liveness).await;
    checks.push(read_counters(kubectl, recorder).await);
    checks
}

/// `kubectl apply` of `web` and of each ConfigMap: created when missing.
async fn reapply(kubectl: &ApiClient) {
    if let Err(ApiError::NotFound { .. }) = kubectl.get(Resource::Deployments, NAMESPACE, DEPLOYMENT).await {
        let _ = kubectl.create(Object::Deployment(web_deployment()), None).await;
    }
    for name in COUNTERS {
        if let Err(ApiError::NotFound { .. }) = kubectl.get(Resource::ConfigMaps, NAMESPACE, name).await {
            let _ = kubectl.create(Object::ConfigMap(new_counter(name)), None).await;
        }
    }
}

/// What the admin sees: `Ok` with a summary when `web`'s pods run and every ConfigMap
/// holds a counter, `Err` saying what is not so.
async fn look(kubectl: &ApiClient) -> Result<String, String> {
    let (nodes, _) = kubectl.list(Resource::Nodes, "").await.map_err(|e| format!("listing nodes: {e}"))?;
    if let Some(node) = nodes.iter().filter_map(Object::as_node).find(|n| !n.status.ready) {
        return Err(format!("node {} is NotReady", node.metadata.name));
    }
    let (pods, _) = kubectl.list(Resource::Pods, NAMESPACE).await.map_err(|e| format!("listing pods: {e}"))?;
    let running = pods.iter().filter_map(Object::as_pod).filter(|p| p.status.phase == PodPhase::Running).count();
    if running as i32 != REPLICAS || pods.len() as i32 != REPLICAS {
        return Err(format!("{} pods, {running} Running, for {REPLICAS} replicas", pods.len()));
    }
    let (config_maps, _) =
        kubectl.list(Resource::ConfigMaps, NAMESPACE).await.map_err(|e| format!("listing ConfigMaps: {e}"))?;
    let counters: BTreeMap<String, Option<u64>> = config_maps
        .iter()
        .filter_map(Object::as_config_map)
        .map(|c| (c.metadata.name.clone(), counter_of(c)))
        .collect();
    for name in COUNTERS {
        match counters.get(name) {
            None => return Err(format!("ConfigMap {name} is missing")),
            Some(None) => return Err(format!("ConfigMap {name} holds no counter")),
            Some(Some(_)) => {}
        }
    }
    Ok(format!("{running} pods Running, {} ConfigMaps with counters", COUNTERS.len()))
}

/// Polls until the cluster is as it should be and has stayed so for [`AT_REST_AFTER`],
/// within `patience`, recording what it waits for and sees (the convergence checker
/// judges it).
async fn wait_until_at_rest(kubectl: &ApiClient, recorder: &Recorder, patience: Duration) -> Vec<Check> {
    let start = madsim::time::Instant::now();
    let goal = format!("{DEPLOYMENT}'s pods Running and every ConfigMap counting within {}s", patience.as_secs());
    let mut awaiting = super::Awaiting::begin(recorder, goal, 1, false, Some(start + patience));
    let mut good_since: Option<madsim::time::Instant> = None;
    loop {
        reapply(kubectl).await;
        let began = madsim::time::Instant::now();
        match look(kubectl).await {
            Ok(summary) => {
                awaiting.looked(began, Some(1), summary.clone());
                let since = *good_since.get_or_insert(began);
                if began - since >= AT_REST_AFTER {
                    recorder.note(format!("at rest after {:.1}s: {summary}", (began - start).as_secs_f64()));
                    break;
                }
            }
            Err(why) => {
                awaiting.looked(began, Some(0), why);
                good_since = None;
            }
        }
        if began - start >= patience {
            recorder.note(format!("not at rest after {}s: judged as it stands", patience.as_secs()));
            break;
        }
        madsim::time::sleep(POLL).await;
    }
    let mut at_rest = super::Awaiting::begin(recorder, "at rest: pods Running, ConfigMaps counting", 1, true, None);
    let began = madsim::time::Instant::now();
    let looked = look(kubectl).await;
    let (have, seen) = match &looked {
        Ok(summary) => (1, summary.clone()),
        Err(why) => (0, why.clone()),
    };
    at_rest.looked(began, Some(have), seen.clone());
    vec![Check::info(format!("at rest: {seen}"))]
}

/// Reads each ConfigMap once and records its counter for no-lost-update
/// (`HistoryEvent::CounterRead`).
async fn read_counters(kubectl: &ApiClient, recorder: &Recorder) -> Check {
    let mut seen = Vec::new();
    for name in COUNTERS {
        match kubectl.get(Resource::ConfigMaps, NAMESPACE, name).await {
            Ok(Object::ConfigMap(config_map)) => match counter_of(&config_map) {
                Some(counter) => {
                    recorder.record(HistoryEvent::CounterRead {
                        key: Resource::ConfigMaps.key(NAMESPACE, name),
                        revision: config_map.metadata.resource_version,
                        counter,
                    });
                    seen.push(format!("{name}={counter}"));
                }
                None => seen.push(format!("{name} holds no counter")),
            },
            Ok(_) => seen.push(format!("{name} is not a ConfigMap")),
            Err(e) => seen.push(format!("{name} unread ({e})")),
        }
    }
    Check::info(format!("counters at rest: {}", seen.join(", ")))
}

/// The faults and recoveries, the user's notes and the counters read at rest.
fn timeline(recorder: &Recorder) -> Vec<String> {
    recorder.with_records(|records| {
        records
            .iter()
            .filter_map(|record| {
                let text = match &record.event {
                    HistoryEvent::CounterRead { key, revision, counter } => {
                        let name = key.rsplit('/').next().unwrap_or(key);
                        format!("--  counter {name:<10} = {counter:<5} at rev {revision}")
                    }
                    event => super::control_plane_line(event)?,
                };
                Some(super::timeline_entry(record.at_ns, &text))
            })
            .collect()
    })
}
