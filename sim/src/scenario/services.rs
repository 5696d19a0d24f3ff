//! `services`: Services under concurrent users. Three apiservers, the usual control plane
//! with Services on ([`ControlPlaneOptions::services`]: the ClusterIP repair loops and the
//! endpoints controller run), a 3-replica deployment `web` whose pods back every Service,
//! and three users, each talking to its own apiserver, who create and delete Services
//! (some asking for a given ClusterIP) throughout the safety phase, so that the /28's
//! fourteen IPs are exhausted, released and reused while the nemesis works. Then the
//! cluster must come to rest with every Service's Endpoints equal to the Ready pods its
//! selector matches.
//!
//! What is judged: service-ips-unique (from the history, like every checker) and, as part
//! of convergence, the at-rest state the admin awaits and records (`Awaited`, `Looked`):
//! `web`'s pods Running and every live Service's Endpoints equal to its Ready pods
//! (Kubernetes' endpoints controller's contract), no Endpoints without a Service, reached
//! within the liveness phase and still so at rest. The convergence checker judges it like
//! deploy-nginx's goals.

use std::collections::BTreeMap;
use std::time::Duration;

use api::{
    ApiClient, ApiError, Container, Deployment, DeploymentSpec, Labels, Object, ObjectMeta, PodPhase, PodSpec,
    PodTemplateSpec, Resource, Service, ServicePort, ServiceSpec,
};
use madsim::rand::Rng;

use crate::control_plane::{ControlPlane, ControlPlaneOptions, ServicesOptions};
use crate::history::HistoryEvent;
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::world::SimWorld;
use faults::FaultPlan;

pub const NAMESPACE: &str = "default";
/// The deployment whose pods back every Service.
pub const DEPLOYMENT: &str = "web";
pub const REPLICAS: i32 = 3;
/// Users creating and deleting Services at once, user `u` through apiserver `u mod n`.
pub const N_USERS: u32 = 3;
/// The apiservers the scenario runs (several, so that allocations race).
pub const N_APISERVERS: u32 = 3;
/// Each user keeps at most this many Services: together a little more than the /28 holds.
const MAX_SERVICES_PER_USER: usize = 6;
/// One create in this many asks for a given ClusterIP.
const REQUESTED_IP_ONE_IN: u32 = 4;
/// How long the users churn, and the cluster then has to come to rest, without a plan.
const CHURN_WITHOUT_FAULTS: Duration = Duration::from_secs(20);
const CONVERGENCE_BOUND: Duration = Duration::from_secs(60);
/// How long the cluster must stay still before it is judged at rest.
const AT_REST_AFTER: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_secs(1);

/// The cluster this scenario needs (applied to its options before the plan is drawn, so
/// that faults can target every apiserver).
pub fn configure(cluster: &mut ControlPlaneOptions) {
    cluster.n_apiservers = cluster.n_apiservers.max(N_APISERVERS);
    cluster.services.get_or_insert_with(ServicesOptions::default);
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
            ..DeploymentSpec::default()
        },
        status: Default::default(),
    }
}

fn service(name: &str, cluster_ip: String) -> Service {
    Service {
        metadata: ObjectMeta::named(NAMESPACE, name),
        spec: ServiceSpec {
            selector: web_labels(),
            cluster_ip,
            ports: vec![ServicePort { name: "http".into(), port: 80, target_port: 8080 }],
        },
    }
}

pub async fn run(
    recorder: Recorder,
    nodes: &SeedNodes,
    mut options: ControlPlaneOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    configure(&mut options);
    let range = options.services.as_ref().map(|s| s.cluster_ip_range).expect("configured above");
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
        users.push(node.spawn(churn_services(client, user, range, churn)));
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

/// One user: for `churn`, every few hundred milliseconds, creates a Service (one in
/// [`REQUESTED_IP_ONE_IN`] asking for a random IP of the range) or deletes one of its own.
/// Errors are what users see (the IP taken, the range full, a timeout): the user goes on.
async fn churn_services(client: ApiClient, user: u32, range: apiserver::service_ips::ServiceIpRange, churn: Duration) {
    let end = madsim::time::Instant::now() + churn;
    let mut mine: Vec<String> = Vec::new();
    let mut n_created = 0u32;
    while madsim::time::Instant::now() < end {
        let pause = Duration::from_millis(madsim::rand::thread_rng().gen_range(200..1_500));
        madsim::time::sleep(pause).await;
        let (create, requested) = {
            let mut rng = madsim::rand::thread_rng();
            let create = mine.is_empty() || (mine.len() < MAX_SERVICES_PER_USER && rng.gen_bool(0.6));
            let requested = if rng.gen_ratio(1, REQUESTED_IP_ONE_IN) {
                range.ip(rng.gen_range(0..range.size())).to_string()
            } else {
                String::new()
            };
            (create, requested)
        };
        if create {
            let name = format!("svc-{user}-{n_created}");
            n_created += 1;
            match client.create(Object::Service(service(&name, requested)), None).await {
                // A timeout may have created it: deleting it later tells.
                Ok(_) | Err(ApiError::AlreadyExists { .. } | ApiError::Timeout { .. }) => mine.push(name),
                Err(_) => {}
            }
        } else {
            let victim = madsim::rand::thread_rng().gen_range(0..mine.len());
            let name = mine.swap_remove(victim);
            match client.delete(Resource::Services, NAMESPACE, &name, None, None).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(_) => mine.push(name),
            }
        }
    }
}

/// The admin: creates `web` (re-applying it whenever a restore lost it), waits out the
/// churn, then judges the cluster at rest.
async fn admin_workload(kubectl: &ApiClient, recorder: &Recorder, churn: Duration, liveness: Duration) -> Vec<Check> {
    let start = madsim::time::Instant::now();
    recorder.note(format!("kubectl create deployment {DEPLOYMENT} --replicas={REPLICAS}"));
    recorder.record(HistoryEvent::DesiredReplicas {
        namespace: NAMESPACE.to_string(),
        deployment: DEPLOYMENT.to_string(),
        replicas: REPLICAS,
    });
    while madsim::time::Instant::now() < start + churn {
        reapply_deployment(kubectl).await;
        madsim::time::sleep(Duration::from_secs(2)).await;
    }
    recorder.note("the users stopped creating and deleting Services");
    wait_until_at_rest(kubectl, recorder, liveness).await
}

/// `kubectl apply` of `web`: created when missing (not yet, or lost to a restore).
async fn reapply_deployment(kubectl: &ApiClient) {
    if let Err(ApiError::NotFound { .. }) = kubectl.get(Resource::Deployments, NAMESPACE, DEPLOYMENT).await {
        let _ = kubectl.create(Object::Deployment(web_deployment()), None).await;
    }
}

/// What the admin sees of the Services' state: `Ok` with a summary when it is as it
/// should be at rest, `Err` saying what is not.
async fn look(kubectl: &ApiClient) -> Result<String, String> {
    let list = |resource| async move {
        kubectl.list(resource, NAMESPACE).await.map(|(items, _)| items).map_err(|e| format!("listing {resource}: {e}"))
    };
    let (nodes, _) = kubectl.list(Resource::Nodes, "").await.map_err(|e| format!("listing nodes: {e}"))?;
    if let Some(node) = nodes.iter().filter_map(Object::as_node).find(|n| !n.status.ready) {
        return Err(format!("node {} is NotReady", node.metadata.name));
    }
    let pods = list(Resource::Pods).await?;
    let services = list(Resource::Services).await?;
    let endpoints: BTreeMap<String, api::Endpoints> = list(Resource::Endpoints)
        .await?
        .into_iter()
        .filter_map(Object::into_endpoints)
        .map(|e| (e.metadata.name.clone(), e))
        .collect();
    let running = pods.iter().filter_map(Object::as_pod).filter(|p| p.status.phase == PodPhase::Running).count();
    if running as i32 != REPLICAS || pods.len() as i32 != REPLICAS {
        return Err(format!("{} pods, {running} Running, for {REPLICAS} replicas", pods.len()));
    }
    let services: Vec<Service> = services.into_iter().filter_map(Object::into_service).collect();
    for service in &services {
        let desired = controllers::endpoints::desired_endpoints(service, pods.iter());
        match endpoints.get(&service.metadata.name) {
            None => return Err(format!("service {} has no Endpoints", service.metadata.name)),
            Some(actual) if actual.addresses != desired.addresses || actual.ports != desired.ports => {
                return Err(format!(
                    "service {}'s Endpoints hold {:?}, its Ready pods are {:?}",
                    service.metadata.name, actual.addresses, desired.addresses
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(orphan) = endpoints.keys().find(|name| !services.iter().any(|s| &s.metadata.name == *name)) {
        return Err(format!("Endpoints {orphan} have no Service"));
    }
    Ok(format!("{} Services' Endpoints equal their {running} Ready pods", services.len()))
}

/// Polls until the cluster is as it should be and has stayed so for [`AT_REST_AFTER`],
/// within `patience`, recording what it waits for and sees (the convergence checker
/// judges: the state reached by a look that began within `patience`, then still so at
/// rest).
async fn wait_until_at_rest(kubectl: &ApiClient, recorder: &Recorder, patience: Duration) -> Vec<Check> {
    let start = madsim::time::Instant::now();
    let goal = format!("every Service's Endpoints equal its Ready pods within {}s", patience.as_secs());
    let mut awaiting = super::Awaiting::begin(recorder, goal, 1, false, Some(start + patience));
    let mut good_since: Option<madsim::time::Instant> = None;
    loop {
        reapply_deployment(kubectl).await;
        let began = madsim::time::Instant::now();
        let looked = look(kubectl).await;
        match &looked {
            Ok(summary) => {
                awaiting.looked(began, Some(1), summary.clone());
                let since = *good_since.get_or_insert(began);
                if began - since >= AT_REST_AFTER {
                    recorder.note(format!("at rest after {:.1}s: {summary}", (began - start).as_secs_f64()));
                    break;
                }
            }
            Err(why) => {
                awaiting.looked(began, Some(0), why.clone());
                good_since = None;
            }
        }
        if began - start >= patience {
            recorder.note(format!("not at rest after {}s: judged as it stands", patience.as_secs()));
            break;
        }
        madsim::time::sleep(POLL).await;
    }
    // At rest, one more look decides.
    let mut at_rest = super::Awaiting::begin(recorder, "at rest: Endpoints equal Ready pods", 1, true, None);
    let began = madsim::time::Instant::now();
    match look(kubectl).await {
        Ok(summary) => {
            at_rest.looked(began, Some(1), summary.clone());
            vec![Check::info(format!("at rest: {summary}"))]
        }
        Err(why) => {
            at_rest.looked(began, Some(0), why.clone());
            vec![Check::info(format!("at rest: {why}"))]
        }
    }
}

/// The faults and recoveries, and each Service's ClusterIP as the store committed it.
fn timeline(recorder: &Recorder) -> Vec<String> {
    recorder.with_records(|records| {
        records
            .iter()
            .filter_map(|record| {
                let text = match &record.event {
                    HistoryEvent::ServiceClusterIp { revision, key, cluster_ip, .. } => {
                        let name = key.strip_prefix(verdict::history::SERVICES_KEY_PREFIX).unwrap_or(key);
                        match cluster_ip {
                            Some(ip) => format!("service {name:<24} holds {ip:<12} rev {revision}"),
                            None => format!("service {name:<24} deleted              rev {revision}"),
                        }
                    }
                    event => super::control_plane_line(event)?,
                };
                Some(super::timeline_entry(record.at_ns, &text))
            })
            .collect()
    })
}
