//! `rollout`: a deployment rolled out, rolled back, switched to Recreate and scaled down
//! while the nemesis works (docs/design.md §4.16). The deployment `web` has [`REPLICAS`]
//! replicas, a RollingUpdate strategy of maxSurge 25% (2 of 5, rounded up) and
//! maxUnavailable 1, and `revisionHistoryLimit` [`HISTORY_LIMIT`]. Its user, spacing the
//! steps through the safety phase, each after the previous rollout finished (as `kubectl
//! rollout status` would wait) or its time ran out:
//! 1. creates it with image `nginx:1.14.2` (revision 1);
//! 2. sets the image to `nginx:1.16.1` (revision 2), then to `nginx:1.17.0` (revision 3);
//! 3. rolls back to revision 1 (`kubectl rollout undo --to-revision=1`: the template of
//!    the ReplicaSet of revision 1, copied into the deployment client-side,
//!    [`controllers::rollout::rollback_template`]);
//! 4. switches to Recreate and sets the image to `nginx:1.18.0` (one write);
//! 5. scales to [`SCALED_DOWN`].
//!
//! Every change is a read-modify-write of the deployment retried on conflict. Once the
//! faults healed, the user waits until the deployment is rolled out at rest: exactly
//! [`SCALED_DOWN`] pods, all Running and of the last template, every older ReplicaSet at
//! zero, no more of them than the history limit keeps — re-applying that last spec if a
//! restore took the deployment back to an older one. It records what it awaits and sees
//! (`Awaited`, `Looked`) for the convergence checker; rollout-bound judges every scale the
//! controller wrote, from the history.

use std::time::Duration;

use api::{
    ApiClient, ApiError, Container, Deployment, DeploymentSpec, DeploymentStrategy, IntOrPercent, Labels, Object,
    ObjectMeta, PodPhase, PodSpec, PodTemplateSpec, ReplicaSet, Resource, RollingUpdateDeployment,
};
use controllers::deployment::{pod_template_hash, POD_TEMPLATE_HASH_LABEL};

use crate::control_plane::{ControlPlane, ControlPlaneOptions};
use crate::history::{HistoryEvent, RolloutStrategyRecord};
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::world::SimWorld;
use faults::FaultPlan;

pub const NAMESPACE: &str = "default";
pub const DEPLOYMENT: &str = "web";
pub const REPLICAS: i32 = 5;
/// The replicas of the last step.
pub const SCALED_DOWN: i32 = 2;
pub const HISTORY_LIMIT: i32 = 2;
/// The images of revisions 1, 2 and 3, and of the Recreate rollout.
const IMAGES: [&str; 4] = ["nginx:1.14.2", "nginx:1.16.1", "nginx:1.17.0", "nginx:1.18.0"];
/// The safety and liveness phases without a fault plan.
const PLAIN_SAFETY: Duration = Duration::from_secs(40);
const PLAIN_LIVENESS: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

fn labels() -> Labels {
    [("app".to_string(), DEPLOYMENT.to_string())].into()
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        labels: labels(),
        spec: PodSpec {
            node_name: None,
            containers: vec![Container { name: "web".into(), image: image.into(), cpu_millis: 100 }],
        },
    }
}

fn rolling_update() -> DeploymentStrategy {
    DeploymentStrategy::RollingUpdate(RollingUpdateDeployment {
        max_surge: Some(IntOrPercent::Percent(25)),
        max_unavailable: Some(IntOrPercent::Int(1)),
    })
}

fn web() -> Deployment {
    let mut metadata = ObjectMeta::named(NAMESPACE, DEPLOYMENT);
    metadata.labels = labels();
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: REPLICAS,
            selector: labels(),
            template: template(IMAGES[0]),
            strategy: Some(rolling_update()),
            revision_history_limit: Some(HISTORY_LIMIT),
        },
        status: Default::default(),
    }
}

/// The spec the user last asked for, what at-rest is judged against (and re-applied after
/// a restore).
fn final_spec() -> DeploymentSpec {
    DeploymentSpec {
        replicas: SCALED_DOWN,
        template: template(IMAGES[3]),
        strategy: Some(DeploymentStrategy::Recreate),
        ..web().spec
    }
}

/// Runs the scenario: the control plane, the user, and with a `plan` the nemesis through
/// the safety phase.
pub async fn run(
    recorder: Recorder,
    nodes: &SeedNodes,
    options: ControlPlaneOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    let plane = ControlPlane::start(&options, &recorder, nodes);
    let (kubectl_node, kubectl) = plane.kubectl(&recorder).await;
    let phases = plan.as_ref().map_or((PLAIN_SAFETY, PLAIN_LIVENESS), |p| {
        (Duration::from_millis(p.safety_phase_ms), Duration::from_millis(p.liveness_phase_ms))
    });
    let user = kubectl_node.spawn({
        let recorder = recorder.clone();
        async move { user_workload(&kubectl, &recorder, phases.0, phases.1).await }
    });
    if let Some(plan) = plan {
        faults::run(&plan, SimWorld::for_control_plane(&plane, &recorder)).await;
    }
    let checks = user.await.expect("kubectl workload");
    let store_endpoints = plane.store.endpoints().lock().expect("endpoints lock").clone();
    ScenarioOutcome { timeline: recorder.with_records(timeline_of), checks, stats: Default::default(), store_endpoints }
}

/// One step of the user: what it notes, and how it changes the deployment.
enum Step {
    Image(&'static str),
    Rollback(i64),
    RecreateWith(&'static str),
    Scale(i32),
}

async fn user_workload(kubectl: &ApiClient, recorder: &Recorder, safety: Duration, liveness: Duration) -> Vec<Check> {
    let start = madsim::time::Instant::now();
    let patience = safety + liveness;
    recorder.note(format!(
        "kubectl create deployment {DEPLOYMENT} --replicas={REPLICAS} --image={} (RollingUpdate maxSurge 25%, \
         maxUnavailable 1, revisionHistoryLimit {HISTORY_LIMIT})",
        IMAGES[0]
    ));
    record_desired(recorder, REPLICAS);
    if let Err(e) = create(kubectl, patience).await {
        super::gave_up(recorder, &format!("kubectl create deployment {DEPLOYMENT}"), &e);
        return Vec::new();
    }
    let steps = [
        Step::Image(IMAGES[1]),
        Step::Image(IMAGES[2]),
        Step::Rollback(1),
        Step::RecreateWith(IMAGES[3]),
        Step::Scale(SCALED_DOWN),
    ];
    let n_steps = steps.len() as u32;
    for (idx, step) in steps.into_iter().enumerate() {
        let due = start + safety * (idx as u32 + 1) / (n_steps + 1);
        // As `kubectl rollout status` would: wait for the rollout before the next step,
        // at most until the step's time.
        wait_for_rollout(kubectl, due).await;
        sleep_until(due).await;
        let note = match &step {
            Step::Image(image) => format!("kubectl set image deployment/{DEPLOYMENT} web={image}"),
            Step::Rollback(revision) => {
                format!("kubectl rollout undo deployment/{DEPLOYMENT} --to-revision={revision}")
            }
            Step::RecreateWith(image) => {
                format!("kubectl patch deployment/{DEPLOYMENT}: strategy Recreate, image {image}")
            }
            Step::Scale(replicas) => format!("kubectl scale deployment/{DEPLOYMENT} --replicas={replicas}"),
        };
        recorder.note(note.clone());
        let result = match step {
            Step::Image(image) => {
                modify(kubectl, recorder, patience, |d, _| {
                    d.spec.template = template(image);
                    Ok(())
                })
                .await
            }
            Step::Rollback(revision) => {
                modify(kubectl, recorder, patience, |d, owned| {
                    d.spec.template = controllers::rollout::rollback_template(owned, revision)
                        .ok_or_else(|| format!("no ReplicaSet of revision {revision}"))?;
                    Ok(())
                })
                .await
            }
            Step::RecreateWith(image) => {
                modify(kubectl, recorder, patience, |d, _| {
                    d.spec.strategy = Some(DeploymentStrategy::Recreate);
                    d.spec.template = template(image);
                    Ok(())
                })
                .await
            }
            Step::Scale(replicas) => {
                modify(kubectl, recorder, patience, |d, _| {
                    d.spec.replicas = replicas;
                    Ok(())
                })
                .await
            }
        };
        match result {
            Ok(()) => {}
            // The rollback found no ReplicaSet of its revision (a restore from a backup
            // older than the rollouts): the user goes on, and the end state is judged
            // against the last spec anyway.
            Err(Refused::User(why)) => recorder.note(format!("{note}: {why}")),
            Err(Refused::Api(e)) => {
                super::gave_up(recorder, &note, &e);
                return Vec::new();
            }
        }
    }
    sleep_until(start + safety).await;
    wait_until_at_rest(kubectl, recorder, liveness).await
}

/// What the user asks for, as evidence for the convergence checker's safety half.
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

/// Creates `web`, retrying what a user would retry; AlreadyExists is an earlier attempt.
async fn create(kubectl: &ApiClient, patience: Duration) -> Result<(), ApiError> {
    let start = madsim::time::Instant::now();
    let mut last = None;
    while start.elapsed() < patience {
        match kubectl.create(Object::Deployment(web()), None).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => return Ok(()),
            // NotFound: the namespace is not there yet (the cluster is starting).
            Err(e) if e.is_retryable() || matches!(e, ApiError::NotFound { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
        madsim::time::sleep(POLL).await;
    }
    Err(last.unwrap_or(ApiError::Timeout { reason: "no attempt fitted in the time allowed".into() }))
}

/// Why a change was not made.
enum Refused {
    /// The user's own precondition (no ReplicaSet of the revision to roll back to).
    User(String),
    Api(ApiError),
}

/// Reads `web` and its ReplicaSets, changes it with `change`, writes it back (under the
/// resourceVersion read, recording the replicas it asks for), retrying conflicts and
/// retryable errors; a deployment a restore lost is created again first.
async fn modify(
    kubectl: &ApiClient,
    recorder: &Recorder,
    patience: Duration,
    change: impl Fn(&mut Deployment, &[ReplicaSet]) -> Result<(), String>,
) -> Result<(), Refused> {
    let start = madsim::time::Instant::now();
    let mut last = None;
    while start.elapsed() < patience {
        let result = async {
            let deployment = match kubectl.get(Resource::Deployments, NAMESPACE, DEPLOYMENT).await {
                Ok(object) => object.into_deployment().expect("a deployment"),
                Err(ApiError::NotFound { .. }) => {
                    record_desired(recorder, REPLICAS);
                    let _ = kubectl.create(Object::Deployment(web()), None).await;
                    return Err(Refused::Api(ApiError::NotFound {
                        resource: Resource::Deployments,
                        namespace: NAMESPACE.into(),
                        name: DEPLOYMENT.into(),
                    }));
                }
                Err(e) => return Err(Refused::Api(e)),
            };
            let owned = owned_replica_sets(kubectl, &deployment).await.map_err(Refused::Api)?;
            let mut changed = deployment.clone();
            change(&mut changed, &owned).map_err(Refused::User)?;
            // Every write asks for the replicas it carries, and the read showed the
            // deployment asking for its own: after a restore, the restored deployment's,
            // which no earlier record of this cluster epoch shows.
            record_desired(recorder, deployment.spec.replicas);
            if changed.spec.replicas != deployment.spec.replicas {
                record_desired(recorder, changed.spec.replicas);
            }
            kubectl.update(Object::Deployment(changed), None).await.map(drop).map_err(Refused::Api)
        }
        .await;
        match result {
            Ok(()) => return Ok(()),
            Err(Refused::Api(e))
                if e.is_retryable() || matches!(e, ApiError::Conflict { .. } | ApiError::NotFound { .. }) =>
            {
                last = Some(e)
            }
            Err(refused) => return Err(refused),
        }
        madsim::time::sleep(POLL).await;
    }
    Err(Refused::Api(last.unwrap_or(ApiError::Timeout { reason: "no attempt fitted in the time allowed".into() })))
}

/// The ReplicaSets `deployment` controls, as a quorum list shows them.
async fn owned_replica_sets(kubectl: &ApiClient, deployment: &Deployment) -> Result<Vec<ReplicaSet>, ApiError> {
    let (items, _) = kubectl.list(Resource::ReplicaSets, NAMESPACE).await?;
    Ok(items
        .into_iter()
        .filter_map(Object::into_replica_set)
        .filter(|rs| controllers::deployment::is_owned_by(rs, deployment))
        .collect())
}

/// Waits until the deployment's current template has all its replicas Running and no
/// older ReplicaSet holds replicas, or until `deadline`.
async fn wait_for_rollout(kubectl: &ApiClient, deadline: madsim::time::Instant) {
    while madsim::time::Instant::now() < deadline {
        if let Ok(Ok(_)) = look(kubectl, None).await {
            return;
        }
        madsim::time::sleep(POLL).await;
    }
}

/// Whether the deployment is rolled out: `Ok(Ok(summary))`, `Ok(Err(what is not yet))`,
/// or `Err` when the user could not look. With `want`, the deployment must also have that
/// spec (template, replicas, strategy), and the history be within its limit.
async fn look(kubectl: &ApiClient, want: Option<&DeploymentSpec>) -> Result<Result<String, String>, ApiError> {
    let deployment = match kubectl.get(Resource::Deployments, NAMESPACE, DEPLOYMENT).await {
        Ok(object) => object.into_deployment().expect("a deployment"),
        Err(ApiError::NotFound { .. }) => return Ok(Err(format!("no deployment {DEPLOYMENT}"))),
        Err(e) => return Err(e),
    };
    if let Some(want) = want {
        let spec = &deployment.spec;
        if spec.template != want.template || spec.replicas != want.replicas || spec.strategy != want.strategy {
            return Ok(Err("the deployment does not have the last spec asked for".to_string()));
        }
    }
    let owned = owned_replica_sets(kubectl, &deployment).await?;
    let (pods, _) = kubectl.list(Resource::Pods, NAMESPACE).await?;
    let (nodes, _) = kubectl.list(Resource::Nodes, "").await?;
    if let Some(node) = nodes.iter().filter_map(Object::as_node).find(|n| !n.status.ready) {
        return Ok(Err(format!("node {} is NotReady", node.metadata.name)));
    }
    let hash = pod_template_hash(&deployment.spec.template);
    let replicas = deployment.spec.replicas;
    let pods: Vec<&api::Pod> = pods
        .iter()
        .filter_map(Object::as_pod)
        .filter(|p| api::selector_matches(&deployment.spec.selector, &p.metadata.labels))
        .collect();
    let current =
        pods.iter().filter(|p| p.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) == Some(&hash)).collect::<Vec<_>>();
    let running = current.iter().filter(|p| p.status.phase == PodPhase::Running).count() as i32;
    let mut unsettled = Vec::new();
    if pods.len() as i32 != replicas || running != replicas {
        unsettled
            .push(format!("{} pods, {running} Running of the current template, for {replicas} replicas", pods.len()));
    }
    for rs in &owned {
        let is_current = rs.spec.template.labels.get(POD_TEMPLATE_HASH_LABEL) == Some(&hash);
        if !is_current && rs.spec.replicas != 0 {
            unsettled.push(format!("old ReplicaSet {} at {} replicas", rs.metadata.name, rs.spec.replicas));
        }
    }
    let limit = deployment.spec.revision_history_limit.unwrap_or(controllers::rollout::DEFAULT_REVISION_HISTORY_LIMIT);
    let n_old = owned.len().saturating_sub(1) as i32;
    if want.is_some() && n_old > limit {
        unsettled.push(format!("{n_old} old ReplicaSets kept, the limit is {limit}"));
    }
    if unsettled.is_empty() {
        Ok(Ok(format!("{running} pods Running of template {hash}, {n_old} old ReplicaSets at zero")))
    } else {
        Ok(Err(unsettled.join("; ")))
    }
}

/// Re-applies the last spec if the deployment lost it (a restore), as `kubectl apply`.
async fn reapply(kubectl: &ApiClient, recorder: &Recorder, want: &DeploymentSpec) {
    match kubectl.get(Resource::Deployments, NAMESPACE, DEPLOYMENT).await {
        Ok(object) => {
            let mut deployment = object.into_deployment().expect("a deployment");
            let spec = &deployment.spec;
            if spec.template != want.template || spec.replicas != want.replicas || spec.strategy != want.strategy {
                deployment.spec = want.clone();
                record_desired(recorder, want.replicas);
                let _ = kubectl.update(Object::Deployment(deployment), None).await;
            }
        }
        Err(ApiError::NotFound { .. }) => {
            let deployment = Deployment { spec: want.clone(), ..web() };
            record_desired(recorder, want.replicas);
            let _ = kubectl.create(Object::Deployment(deployment), None).await;
        }
        Err(_) => {}
    }
}

/// Waits until the deployment is rolled out with the last spec and has stayed so for
/// [`super::AT_REST_AFTER`], within `patience`, re-applying that spec, recording what it
/// waits for and sees; then looks once more at rest.
async fn wait_until_at_rest(kubectl: &ApiClient, recorder: &Recorder, patience: Duration) -> Vec<Check> {
    let want = final_spec();
    let goal =
        format!("{DEPLOYMENT} rolled out to {SCALED_DOWN} pods of its last template within {}s", patience.as_secs());
    let settling = super::Settling { goal, last_look: "at rest: rolled out to the last spec", subject: "", patience };
    super::settle(recorder, settling, || reapply(kubectl, recorder, &want), || look(kubectl, Some(&want))).await
}

/// The user's notes, the faults and recoveries, and every scale the deployment
/// controller's rollout wrote, with what it had seen.
fn timeline_of(records: &[crate::history::Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|record| {
            let text = match &record.event {
                HistoryEvent::RolloutScaled {
                    controller, strategy, replicas, replica_set, from, to, observed, ..
                } => {
                    let strategy = match strategy {
                        RolloutStrategyRecord::Recreate => "Recreate".to_string(),
                        RolloutStrategyRecord::RollingUpdate { max_surge, max_unavailable } => {
                            format!("RollingUpdate +{max_surge}/-{max_unavailable}")
                        }
                    };
                    let seen = observed
                        .iter()
                        .map(|rs| format!("{}={}/{}", rs.name.trim_start_matches("web-"), rs.available, rs.replicas))
                        .collect::<Vec<_>>()
                        .join(" ");
                    format!(
                        "rollout  {replica_set} {from}->{to} of {replicas} ({strategy}) by {controller}, saw [{seen}]"
                    )
                }
                event => super::control_plane_line(event)?,
            };
            Some(super::timeline_entry(record.at_ns, &text))
        })
        .collect()
}
