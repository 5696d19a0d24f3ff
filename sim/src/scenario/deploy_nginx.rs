//! `deploy-nginx`, the default scenario: `kubectl create deployment nginx-deployment
//! --replicas=3`, played out by the whole control plane (3 store members, apiservers, 2
//! controller-manager replicas, a scheduler, 3 kubelets), then `kubectl scale
//! --replicas=5`.
//!
//! Its timeline is the five stages of docs/design.md §1 as the apiserver wrote them to the
//! store: which key, at which revision, on whose behalf.

use std::time::Duration;

use api::{
    ApiClient, ApiError, Container, Deployment, DeploymentSpec, Labels, Object, ObjectMeta, Pod, PodPhase, PodSpec,
    PodTemplateSpec, Resource, Verb,
};

use crate::control_plane::{ControlPlane, ControlPlaneOptions};
use crate::history::HistoryEvent;
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::workload::Workload;
use crate::world::SimWorld;
use faults::{Fault, FaultPlan};

pub const NAMESPACE: &str = "default";
pub const DEPLOYMENT: &str = "nginx-deployment";
/// How long each rollout may take to reach its Running pods (the convergence bound).
pub const CONVERGENCE_BOUND: Duration = Duration::from_secs(30);

pub fn nginx_deployment(replicas: i32) -> Deployment {
    let labels: Labels = [("app".to_string(), "nginx".to_string())].into();
    let mut metadata = ObjectMeta::named(NAMESPACE, DEPLOYMENT);
    metadata.labels = labels.clone();
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas,
            selector: labels.clone(),
            template: PodTemplateSpec {
                labels,
                spec: PodSpec {
                    node_name: None,
                    containers: vec![Container { name: "nginx".into(), image: "nginx:1.14.2".into(), cpu_millis: 100 }],
                },
            },
            ..DeploymentSpec::default()
        },
        status: Default::default(),
    }
}

/// Without a plan: the plain flow with its 30 s bounds. With one: the same user actions
/// while the nemesis works through the safety phase, then convergence within the
/// liveness phase after every fault healed.
pub async fn run(
    recorder: Recorder,
    nodes: &SeedNodes,
    mut options: ControlPlaneOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    let traffic_ms = plan.as_ref().map_or(20_000, |p| p.safety_phase_ms);
    options.store_traffic_until.get_or_insert(Duration::from_millis(traffic_ms));
    let workload = options.workload;
    let generated = plan.as_ref().is_some_and(|p| !p.workload.is_empty());
    if generated {
        super::user_actions::configure(&mut options, plan.as_ref().expect("generated"));
        recorder.record_update_preconditions();
    }
    let plane = ControlPlane::start(&options, &recorder, nodes);
    let (kubectl_node, kubectl) = plane.kubectl(&recorder).await;
    let checks = match plan {
        None => {
            let recorder = recorder.clone();
            kubectl_node.spawn(async move { user_workload(&kubectl, &recorder, workload).await }).await
        }
        Some(plan) => {
            let world = SimWorld::for_control_plane(&plane, &recorder);
            let users = super::user_actions::start(&plane, &recorder, &plan).await;
            let workload = kubectl_node.spawn({
                let (recorder, plan) = (recorder.clone(), plan.clone());
                async move { user_workload_under_faults(&kubectl, &recorder, &plan, workload, users).await }
            });
            faults::run(&plan, world).await;
            workload.await
        }
    }
    .expect("kubectl workload");
    let store_endpoints = plane.store.endpoints().lock().expect("endpoints lock").clone();
    ScenarioOutcome { timeline: timeline(&recorder), checks, stats: Default::default(), store_endpoints }
}

/// What the user does and sees: create, wait, scale, wait, look.
async fn user_workload(kubectl: &ApiClient, recorder: &Recorder, workload: Workload) -> Vec<Check> {
    let Workload { initial_replicas, scaled_replicas } = workload;
    let typed_at = madsim::time::Instant::now();
    recorder.note(format!("kubectl create deployment {DEPLOYMENT} --replicas={initial_replicas}"));
    record_desired(recorder, initial_replicas);
    if let Err(e) = create_with_retries(kubectl, nginx_deployment(initial_replicas), CONVERGENCE_BOUND).await {
        super::gave_up(recorder, "kubectl create", &e);
        return Vec::new();
    }
    wait_for_running(kubectl, initial_replicas, typed_at, CONVERGENCE_BOUND, recorder).await;

    let typed_at = madsim::time::Instant::now();
    recorder.note(format!("kubectl scale deployment {DEPLOYMENT} --replicas={scaled_replicas}"));
    record_desired(recorder, scaled_replicas);
    if let Err(e) = scale(kubectl, scaled_replicas, CONVERGENCE_BOUND).await {
        super::gave_up(recorder, "kubectl scale", &e);
        return Vec::new();
    }
    wait_for_running(kubectl, scaled_replicas, typed_at, CONVERGENCE_BOUND, recorder).await;
    wait_until_at_rest(kubectl, CONVERGENCE_BOUND, recorder).await;
    at_rest(kubectl, scaled_replicas, recorder).await
}

/// The same user, while faults happen: create at once, scale halfway through the safety
/// phase (both retried as a user would), then demand convergence once faults healed. The
/// generated workload's `users` (if the plan has one) act meanwhile; their namespace is
/// brought to rest before this user judges its own.
async fn user_workload_under_faults(
    kubectl: &ApiClient,
    recorder: &Recorder,
    plan: &FaultPlan,
    workload: Workload,
    users: Option<madsim::task::JoinHandle<Vec<Check>>>,
) -> Vec<Check> {
    let Workload { initial_replicas, scaled_replicas } = workload;
    let start = madsim::time::Instant::now();
    let safety = Duration::from_millis(plan.safety_phase_ms);
    let liveness = Duration::from_millis(plan.liveness_phase_ms);
    recorder.note(format!("kubectl create deployment {DEPLOYMENT} --replicas={initial_replicas}"));
    record_desired(recorder, initial_replicas);
    let created = create_with_retries(kubectl, nginx_deployment(initial_replicas), safety + liveness).await;
    sleep_until(start + safety / 2).await;
    recorder.note(format!("kubectl scale deployment {DEPLOYMENT} --replicas={scaled_replicas}"));
    record_desired(recorder, scaled_replicas);
    let scaled = scale(kubectl, scaled_replicas, safety + liveness).await;
    sleep_until(start + safety).await;
    // A restore (after a majority or total disk loss, or a quorum lost to single disk
    // losses) may roll the store back to before the deployment existed.
    let may_restore = plan.events.iter().any(|event| {
        matches!(event.fault, Fault::DiskLoss { .. } | Fault::DiskLossMajority { .. } | Fault::DiskLossAll)
    });
    let missing = |result: &Result<(), ApiError>| matches!(result, Err(ApiError::NotFound { .. }));
    let (created, scaled) =
        if may_restore && (missing(&created) || missing(&scaled)) { (Ok(()), Ok(())) } else { (created, scaled) };
    if let Err(e) = created.and(scaled) {
        super::gave_up(recorder, "kubectl create and scale", &e);
        return Vec::new();
    }
    let healed_at = madsim::time::Instant::now();
    if may_restore {
        // After a restore the store may predate the deployment or its scale: the user
        // applies the manifest again, as anyone restoring a cluster from backup re-applies
        // what the backup missed (kubectl apply; a GitOps controller does it unasked).
        wait_for_running_reapplying(kubectl, scaled_replicas, healed_at, liveness, recorder).await;
        // The operator may still be recovering once the faults healed, and a restore it
        // finishes now rolls the store back again (disk-loss seed 4807: a second restore
        // 3 s after the heal, to a backup from before the scale-up). As after any restore,
        // the user re-applies and the cluster must converge again, within the same bound,
        // before it is judged at rest.
        for _ in 0..MAX_LATE_RESTORES {
            let restores = restores_so_far(recorder);
            madsim::time::sleep(AT_REST_AFTER).await;
            if restores_so_far(recorder) == restores {
                break;
            }
            recorder.note("the operator restored after the faults healed: converging again");
            let restored_at = madsim::time::Instant::now();
            wait_for_running_reapplying(kubectl, scaled_replicas, restored_at, liveness, recorder).await;
        }
    } else {
        wait_for_running(kubectl, scaled_replicas, healed_at, liveness, recorder).await;
    }
    let mut checks = match users {
        Some(users) => users.await.expect("the generated workload"),
        None => Vec::new(),
    };
    wait_until_at_rest(kubectl, liveness, recorder).await;
    checks.extend(at_rest(kubectl, scaled_replicas, recorder).await);
    checks
}

/// How long the cluster must stay still (the same pods on the same nodes in the same
/// phases, every node Ready) before it is judged at rest.
const AT_REST_AFTER: Duration = Duration::from_secs(5);
/// How often the user looks (`kubectl get nodes,pods`) while waiting for the cluster to
/// come to rest.
const AT_REST_POLL: Duration = Duration::from_secs(1);
/// Restores after the heal that the user waits out (the operator restores at most once
/// per quorum loss, and nothing is lost after the heal).
const MAX_LATE_RESTORES: usize = 3;

/// How many restores the operator has finished so far.
fn restores_so_far(recorder: &Recorder) -> usize {
    recorder.with_records(|records| records.iter().filter(|r| matches!(r.event, HistoryEvent::Restored { .. })).count())
}

/// What the user asks for, as evidence for the convergence checker (recorded before the
/// request goes out, so the checker's "most ever desired" is never behind the cluster).
fn record_desired(recorder: &Recorder, replicas: i32) {
    recorder.record(HistoryEvent::DesiredReplicas {
        namespace: NAMESPACE.to_string(),
        deployment: DEPLOYMENT.to_string(),
        replicas,
    });
}

async fn sleep_until(deadline: madsim::time::Instant) {
    let now = madsim::time::Instant::now();
    if deadline > now {
        madsim::time::sleep(deadline - now).await;
    }
}

/// What the user sees when looking whether the cluster is still: the pods (name, node,
/// phase) and the nodes that are not Ready; `None` when either list failed.
#[derive(Debug, PartialEq, Eq)]
struct Stillness {
    pods: std::collections::BTreeSet<(String, Option<String>, PodPhase)>,
    not_ready_nodes: Vec<String>,
}

async fn look(kubectl: &ApiClient) -> Option<Stillness> {
    let (nodes, _) = kubectl.list(Resource::Nodes, "").await.ok()?;
    let (pods, _) = kubectl.list(Resource::Pods, NAMESPACE).await.ok()?;
    let not_ready_nodes =
        nodes.into_iter().filter_map(Object::into_node).filter(|n| !n.status.ready).map(|n| n.metadata.name).collect();
    let pods = pods
        .into_iter()
        .filter_map(Object::into_pod)
        .map(|p| (p.metadata.name, p.spec.node_name, p.status.phase))
        .collect();
    Some(Stillness { pods, not_ready_nodes })
}

/// Waits, after convergence, until the cluster is at rest: every node Ready and the pods
/// unchanged for [`AT_REST_AFTER`]. Reaching the desired Running pods once is not rest: a
/// node the node lifecycle controller marked NotReady during the faults (its informer
/// behind the store while the apiserver's watch cache waited out dead members) still has
/// its pods evicted after `--pod-eviction-timeout`, unless its kubelet's next heartbeat
/// puts it back to Ready first, and the ReplicaSet controller then replaces them (seed
/// 492 of the default campaign: an eviction 45 ms before a fixed 5 s pause ended, judged
/// as "4 pods for 5 replicas"). Judging in the middle of that would be a false alarm.
///
/// Bound: `patience`, the same time the rollout itself was given to converge (the
/// liveness phase under faults, [`CONVERGENCE_BOUND`] without). A cluster that has not
/// come to rest by then is judged as it stands, and the timeline says so: every transient
/// the faults left has had as long as convergence was allowed, and a controller that
/// churns pods forever must not hide behind the wait.
async fn wait_until_at_rest(kubectl: &ApiClient, patience: Duration, recorder: &Recorder) {
    let start = madsim::time::Instant::now();
    let mut seen = None;
    let mut still_since = start;
    let mut changed = false;
    loop {
        let now = madsim::time::Instant::now();
        let looked = look(kubectl).await;
        let restless = looked.as_ref().is_none_or(|s| !s.not_ready_nodes.is_empty());
        if restless || looked != seen {
            changed |= seen.is_some() || restless;
            still_since = now;
            seen = looked;
        } else if now - still_since >= AT_REST_AFTER {
            if changed {
                let waited = (now - start).as_secs_f64();
                recorder.note(format!(
                    "at rest after {waited:.1}s (nodes Ready, pods unchanged for {}s)",
                    AT_REST_AFTER.as_secs()
                ));
            }
            return;
        }
        if now - start >= patience {
            let why = match &seen {
                None => "the pods or nodes could not be listed".to_string(),
                Some(s) if !s.not_ready_nodes.is_empty() => format!("NotReady: {}", s.not_ready_nodes.join(", ")),
                Some(_) => "pods still changing".to_string(),
            };
            recorder.note(format!("not at rest after {}s ({why}): judged as it stands", patience.as_secs()));
            return;
        }
        madsim::time::sleep(AT_REST_POLL).await;
    }
}

/// At rest (once [`wait_until_at_rest`] returns) the user looks once more: the convergence
/// checker wants exactly the desired pods, no extras. Returns the final state for the report.
async fn at_rest(kubectl: &ApiClient, scaled_replicas: i32, recorder: &Recorder) -> Vec<Check> {
    let mut awaiting = super::Awaiting::begin(recorder, "at rest", scaled_replicas as u64, true, None);
    let began = madsim::time::Instant::now();
    // A failed list is not "0 pods": say why the cluster could not be read at rest.
    let pods = match kubectl.list(Resource::Pods, NAMESPACE).await {
        Ok((items, _)) => items.into_iter().filter_map(Object::into_pod).collect::<Vec<Pod>>(),
        Err(e) => {
            awaiting.looked(began, None, format!("listing pods failed: {e}"));
            return Vec::new();
        }
    };
    awaiting.looked(began, Some(pods.len() as u64), format!("{} pods", pods.len()));
    let mut checks = vec![Check::info("final state:")];
    for pod in &pods {
        checks.push(Check::info(format!(
            "  pod {:<34} node {:<10} {:?}",
            pod.metadata.name,
            pod.spec.node_name.as_deref().unwrap_or("-"),
            pod.status.phase
        )));
    }
    checks
}

/// Creates the deployment as a user would: retrying transient errors until `patience`
/// runs out. AlreadyExists means an earlier attempt whose answer was lost went through.
pub async fn create_with_retries(
    kubectl: &ApiClient,
    deployment: Deployment,
    patience: Duration,
) -> Result<(), ApiError> {
    let mut last = None;
    let start = madsim::time::Instant::now();
    while start.elapsed() < patience {
        match kubectl.create(Object::Deployment(deployment.clone()), None).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => return Ok(()),
            Err(e) if e.is_retryable() || matches!(e, ApiError::NotFound { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
        // The apiserver may still be bootstrapping its namespaces.
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or(ApiError::Timeout { reason: "no attempt fitted in the time allowed".into() }))
}

pub async fn scale(kubectl: &ApiClient, replicas: i32, patience: Duration) -> Result<(), ApiError> {
    let mut last = None;
    let start = madsim::time::Instant::now();
    while start.elapsed() < patience {
        let result = async {
            let object = kubectl.get(Resource::Deployments, NAMESPACE, DEPLOYMENT).await?;
            let mut deployment = object.into_deployment().expect("a deployment");
            deployment.spec.replicas = replicas;
            kubectl.update(Object::Deployment(deployment), None).await
        }
        .await;
        match result {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() || matches!(e, ApiError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
        madsim::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or(ApiError::Timeout { reason: "no attempt fitted in the time allowed".into() }))
}

pub async fn list_pods(kubectl: &ApiClient) -> Vec<Pod> {
    match kubectl.list(Resource::Pods, NAMESPACE).await {
        Ok((items, _)) => items.into_iter().filter_map(Object::into_pod).collect(),
        Err(_) => Vec::new(),
    }
}

/// [`wait_for_running`], re-applying the deployment with `replicas` whenever the cluster
/// does not have it as asked (created if missing, scaled if its replicas differ).
pub async fn wait_for_running_reapplying(
    kubectl: &ApiClient,
    replicas: i32,
    start: madsim::time::Instant,
    bound: Duration,
    recorder: &Recorder,
) -> bool {
    poll_running(kubectl, replicas, start, bound, recorder, true).await
}

/// What `kubectl apply` of the deployment with `replicas` does when the cluster lost it or
/// its scale (a restore from an older backup).
async fn reapply_deployment(kubectl: &ApiClient, replicas: i32, recorder: &Recorder) {
    match kubectl.get(Resource::Deployments, NAMESPACE, DEPLOYMENT).await {
        Err(ApiError::NotFound { .. }) => {
            recorder.note(format!("kubectl apply deployment {DEPLOYMENT} --replicas={replicas}: it was missing"));
            let _ = kubectl.create(Object::Deployment(nginx_deployment(replicas)), None).await;
        }
        Ok(object) => {
            if let Some(mut deployment) = object.into_deployment() {
                if deployment.spec.replicas != replicas {
                    recorder.note(format!("kubectl apply deployment {DEPLOYMENT} --replicas={replicas}"));
                    deployment.spec.replicas = replicas;
                    let _ = kubectl.update(Object::Deployment(deployment), None).await;
                }
            }
        }
        Err(_) => {}
    }
}

/// Polls until `replicas` pods of the deployment are Running or the bound, counted from
/// `start` (when the user typed the command), runs out; the history records the wait and
/// what each look saw, for the convergence checker. Returns whether the user saw the pods
/// Running in time.
pub async fn wait_for_running(
    kubectl: &ApiClient,
    replicas: i32,
    start: madsim::time::Instant,
    bound: Duration,
    recorder: &Recorder,
) -> bool {
    poll_running(kubectl, replicas, start, bound, recorder, false).await
}

async fn poll_running(
    kubectl: &ApiClient,
    replicas: i32,
    start: madsim::time::Instant,
    bound: Duration,
    recorder: &Recorder,
    reapply: bool,
) -> bool {
    let goal = format!("{replicas} pods Running within {}s", bound.as_secs());
    let mut awaiting = super::Awaiting::begin(recorder, goal, replicas as u64, false, Some(start + bound));
    while start.elapsed() <= bound {
        if reapply {
            reapply_deployment(kubectl, replicas, recorder).await;
        }
        let began = madsim::time::Instant::now();
        let pods = list_pods(kubectl).await;
        let running = pods.iter().filter(|p| p.status.phase == PodPhase::Running).count();
        awaiting.looked(began, Some(running as u64), format!("{running} Running"));
        if running as i32 >= replicas {
            recorder.note(format!("{running} pods Running"));
            return true;
        }
        madsim::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// The store writes of the deployment's flow, labelled with the stage they belong to.
fn timeline(recorder: &Recorder) -> Vec<String> {
    // Read in place: a snapshot would copy the whole history.
    recorder.with_records(timeline_of)
}

fn timeline_of(records: &[crate::history::Record]) -> Vec<String> {
    let mut started_pods = std::collections::BTreeSet::new();
    let mut lines = Vec::new();
    let deployment_key = Resource::Deployments.key(NAMESPACE, DEPLOYMENT);
    let rs_prefix = format!("{}{DEPLOYMENT}-", Resource::ReplicaSets.namespace_prefix(NAMESPACE));
    let pod_prefix = format!("{}{DEPLOYMENT}-", Resource::Pods.namespace_prefix(NAMESPACE));
    for (at_ns, event) in records.iter().map(|record| (record.at_ns, &record.event)) {
        if let Some(text) = super::control_plane_line(event) {
            lines.push(super::timeline_entry(at_ns, &text));
            continue;
        }
        let text = match event {
            HistoryEvent::StoreWrite { user, verb, key, revision, .. } => {
                let stage = if *key == deployment_key {
                    match verb {
                        Verb::Create => "1 deployment created",
                        Verb::Update => "  deployment scaled",
                        _ => continue,
                    }
                } else if key.starts_with(&rs_prefix) {
                    match verb {
                        Verb::Create => "2 replicaset created",
                        Verb::Update => "  replicaset scaled",
                        _ => continue,
                    }
                } else if key.starts_with(&pod_prefix) {
                    match verb {
                        Verb::Create => "3 pod created (Pending)",
                        Verb::Bind => "4 pod scheduled",
                        Verb::UpdateStatus if user.starts_with("system:node:") && started_pods.insert(key.clone()) => {
                            "5 pod running"
                        }
                        Verb::Delete => "  pod deleted",
                        _ => continue,
                    }
                } else {
                    continue;
                };
                format!("{stage:<24} {key:<62} rev {revision:<5} by {user}")
            }
            _ => continue,
        };
        lines.push(super::timeline_entry(at_ns, &text));
    }
    lines
}
