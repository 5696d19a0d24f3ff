//! `garbage-collection`: the control plane with its garbage collector on
//! (`ControlPlaneOptions::garbage_collection`), and a user who deletes things with each
//! propagation policy while the nemesis works (Kubernetes' cascading deletion,
//! `kubectl delete --cascade=background|foreground|orphan`).
//!
//! The user, in order:
//! 1. creates three deployments of [`REPLICAS`] pods each, `gc-background`,
//!    `gc-foreground` and `gc-orphan`; a ConfigMap `gc-config` whose owner reference the
//!    user writes by hand, naming `gc-background` (any object may have owners); a
//!    ConfigMap `gc-shared` owned by `gc-background` and by the ConfigMap `gc-kept`, which
//!    stays (so `gc-shared` must stay, with the reference to `gc-background` removed); and
//!    a ConfigMap `gc-held` with a finalizer of the user's own ([`USER_FINALIZER`]);
//! 2. halfway through the safety phase, once every deployment's pods run (or the faults
//!    healed, whichever comes first), deletes `gc-background` in the background and at
//!    once creates it again under the same name with another pod template (`kubectl
//!    delete` then `kubectl apply` of a new version: the old ReplicaSet, its pods and
//!    `gc-config` belong to the old uid and must go, the new ones must stay); deletes
//!    `gc-foreground` in the foreground (it must stay, marked, until its ReplicaSet and
//!    pods are gone); `gc-orphan` with orphan (its ReplicaSet and pods must stay, owned
//!    by nothing); and `gc-held` (it must stay, marked, while its finalizer is there);
//! 3. three quarters through (at least `FINALIZER_HELD_FOR` after the deletes), removes
//!    its finalizer from `gc-held` (which removes it);
//! 4. once the faults healed, waits until the cluster is at rest: nothing marked for
//!    deletion, no owner reference to a uid that is gone, the new `gc-background`'s pods
//!    and those of every ReplicaSet left (the orphaned one, if `gc-orphan` had made it
//!    before its delete) Running, the same objects for [`AT_REST_AFTER`].
//!
//! It judges nothing itself: it records what its user awaited and saw at rest, for the
//! convergence checker (the recreated deployment and every ReplicaSet left run their pods,
//! nothing unsettled), and the `garbage-collection` checker judges the collector's safety
//! and the final state. The disk-wiping fault kinds are refused ([`super::Scenario::supports`]): the
//! user does not re-apply after a restore rolls the store back.

use std::collections::BTreeSet;
use std::time::Duration;

use api::{
    ApiClient, ApiError, ConfigMap, Container, DeleteOptions, Deployment, DeploymentSpec, Labels, Object, ObjectMeta,
    OwnerReference, PodPhase, PodSpec, PodTemplateSpec, PropagationPolicy, Resource,
};

use crate::control_plane::{ControlPlane, ControlPlaneOptions};
use crate::history::HistoryEvent;
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::world::SimWorld;
use faults::FaultPlan;

pub const NAMESPACE: &str = "default";
/// Deleted in the background and created again at once under the same name.
pub const BACKGROUND: &str = "gc-background";
/// Deleted in the foreground.
pub const FOREGROUND: &str = "gc-foreground";
/// Deleted with orphan: its ReplicaSet and pods stay.
pub const ORPHAN: &str = "gc-orphan";
/// A ConfigMap the user made a dependent of the first `gc-background`.
pub const OWNED_CONFIG: &str = "gc-config";
/// A ConfigMap that stays, the second owner of [`SHARED_CONFIG`].
pub const KEPT_CONFIG: &str = "gc-kept";
/// A ConfigMap owned by the first `gc-background` and by [`KEPT_CONFIG`]: once
/// `gc-background` is gone the collector removes the reference to it and keeps the
/// ConfigMap (an object with a live owner is never collected).
pub const SHARED_CONFIG: &str = "gc-shared";
/// A ConfigMap with the user's own finalizer.
pub const HELD_CONFIG: &str = "gc-held";
/// The user's finalizer on [`HELD_CONFIG`].
pub const USER_FINALIZER: &str = "kubesim.io/hold";
pub const REPLICAS: i32 = 2;
/// How long the cluster must stay still before it is judged at rest.
pub const AT_REST_AFTER: Duration = Duration::from_secs(5);
/// The safety and liveness phases without a fault plan.
const PLAIN_SAFETY: Duration = Duration::from_secs(20);
const PLAIN_LIVENESS: Duration = Duration::from_secs(60);
/// How often the user retries a refused request, and looks while waiting for rest.
const POLL: Duration = Duration::from_millis(500);
/// The least time between the delete of `gc-held` and the removal of its finalizer.
const FINALIZER_HELD_FOR: Duration = Duration::from_secs(3);

fn deployment(name: &str, image: &str) -> Deployment {
    let labels: Labels = [("app".to_string(), name.to_string())].into();
    let mut metadata = ObjectMeta::named(NAMESPACE, name);
    metadata.labels = labels.clone();
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas: REPLICAS,
            selector: labels.clone(),
            template: PodTemplateSpec {
                labels,
                spec: PodSpec {
                    node_name: None,
                    containers: vec![Container { name: "app".into(), image: image.into(), cpu_millis: 100 }],
                },
            },
            ..DeploymentSpec::default()
        },
        status: Default::default(),
    }
}

/// Runs the scenario: the control plane with its garbage collector, the user, and with a
/// `plan` the nemesis through the safety phase.
pub async fn run(
    recorder: Recorder,
    nodes: &SeedNodes,
    mut options: ControlPlaneOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    options.garbage_collection = true;
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

async fn user_workload(kubectl: &ApiClient, recorder: &Recorder, safety: Duration, liveness: Duration) -> Vec<Check> {
    let start = madsim::time::Instant::now();
    let patience = safety + liveness;
    let mut gave_up = false;
    recorder.note(format!(
        "kubectl create deployment {BACKGROUND},{FOREGROUND},{ORPHAN} --replicas={REPLICAS}; \
         configmap {OWNED_CONFIG} owned by {BACKGROUND}; configmap {SHARED_CONFIG} owned by {BACKGROUND} and \
         {KEPT_CONFIG}; configmap {HELD_CONFIG} with finalizer {USER_FINALIZER}"
    ));
    let mut background_uid = None;
    for name in [BACKGROUND, FOREGROUND, ORPHAN] {
        // After the collector deletes gc-background's ReplicaSet, the deployment
        // controller may create it again under the same name from a cache that still
        // shows the deleted deployment (Kubernetes' does too; the collector deletes it
        // again) while the first one's pods are still being collected (seed 25): two
        // lives of one name, which the convergence checker counts apart by the pods'
        // owner uids (`ObjectWritten`).
        record_desired(recorder, name);
        match create(kubectl, Object::Deployment(deployment(name, "nginx:1.14.2")), patience).await {
            Ok(created) if name == BACKGROUND => background_uid = Some(created.metadata().uid.clone()),
            Ok(_) => {}
            Err(e) => {
                super::gave_up(recorder, &format!("kubectl create deployment {name}"), &e);
                return Vec::new();
            }
        }
    }
    let background_uid = background_uid.unwrap_or_default();
    let mut owned = ConfigMap { metadata: ObjectMeta::named(NAMESPACE, OWNED_CONFIG), ..ConfigMap::default() };
    owned.metadata.owner_references = vec![OwnerReference {
        kind: "Deployment".into(),
        name: BACKGROUND.into(),
        uid: background_uid.clone(),
        controller: false,
        block_owner_deletion: false,
    }];
    let mut held = ConfigMap { metadata: ObjectMeta::named(NAMESPACE, HELD_CONFIG), ..ConfigMap::default() };
    held.metadata.finalizers = vec![USER_FINALIZER.to_string()];
    for config_map in
        [owned, held, ConfigMap { metadata: ObjectMeta::named(NAMESPACE, KEPT_CONFIG), ..ConfigMap::default() }]
    {
        if let Err(e) = create(kubectl, Object::ConfigMap(config_map), patience).await {
            super::gave_up(recorder, "kubectl create configmap", &e);
            return Vec::new();
        }
    }
    // Two owners: gc-background and gc-kept, which stays.
    let kept_uid = match kubectl.get(Resource::ConfigMaps, NAMESPACE, KEPT_CONFIG).await {
        Ok(kept) => kept.metadata().uid.clone(),
        Err(e) => {
            super::gave_up(recorder, &format!("kubectl get configmap {KEPT_CONFIG}"), &e);
            return Vec::new();
        }
    };
    let mut shared = ConfigMap { metadata: ObjectMeta::named(NAMESPACE, SHARED_CONFIG), ..ConfigMap::default() };
    shared.metadata.owner_references = vec![
        OwnerReference {
            kind: "Deployment".into(),
            name: BACKGROUND.into(),
            uid: background_uid.clone(),
            controller: false,
            block_owner_deletion: false,
        },
        OwnerReference {
            kind: "ConfigMap".into(),
            name: KEPT_CONFIG.into(),
            uid: kept_uid,
            controller: false,
            block_owner_deletion: false,
        },
    ];
    if let Err(e) = create(kubectl, Object::ConfigMap(shared), patience).await {
        super::gave_up(recorder, "kubectl create configmap", &e);
        return Vec::new();
    }

    sleep_until(start + safety / 2).await;
    // As `kubectl rollout status` would: the deletes wait, at most until the faults heal,
    // for every deployment's pods to run, so that each policy has dependents to act on.
    wait_for_rollouts(kubectl, start + safety).await;
    let deleted_at = madsim::time::Instant::now();
    recorder.note(format!(
        "kubectl delete deployment {BACKGROUND} --cascade=background, then kubectl apply {BACKGROUND} with a new template"
    ));
    let deleted = delete(kubectl, Resource::Deployments, BACKGROUND, Some(&background_uid), None, patience).await;
    let recreated = match deleted {
        Ok(()) => create(kubectl, Object::Deployment(deployment(BACKGROUND, "nginx:1.16.1")), patience).await.map(drop),
        Err(e) => Err(e),
    };
    recorder.note(format!("kubectl delete deployment {FOREGROUND} --cascade=foreground"));
    let foreground =
        delete(kubectl, Resource::Deployments, FOREGROUND, None, Some(PropagationPolicy::Foreground), patience).await;
    recorder.note(format!("kubectl delete deployment {ORPHAN} --cascade=orphan"));
    let orphan = delete(kubectl, Resource::Deployments, ORPHAN, None, Some(PropagationPolicy::Orphan), patience).await;
    recorder.note(format!("kubectl delete configmap {HELD_CONFIG}"));
    let marked = delete(kubectl, Resource::ConfigMaps, HELD_CONFIG, None, None, patience).await;

    sleep_until((start + safety * 3 / 4).max(deleted_at + FINALIZER_HELD_FOR)).await;
    recorder.note(format!("kubectl patch configmap {HELD_CONFIG}: remove finalizer {USER_FINALIZER}"));
    let released = remove_user_finalizer(kubectl, patience).await;
    for (what, result) in [
        ("delete and re-create of gc-background", recreated),
        ("foreground delete", foreground),
        ("orphan delete", orphan),
        ("delete of gc-held", marked),
        ("finalizer removal", released),
    ] {
        if let Err(e) = result {
            gave_up = true;
            super::gave_up(recorder, &format!("kubectl's {what}"), &e);
        }
    }
    if gave_up {
        return Vec::new();
    }

    sleep_until(start + safety).await;
    wait_until_at_rest(kubectl, recorder, liveness).await;
    at_rest(kubectl, recorder).await
}

/// Waits until every deployment's pods run, or until `deadline`.
async fn wait_for_rollouts(kubectl: &ApiClient, deadline: madsim::time::Instant) {
    while madsim::time::Instant::now() < deadline {
        if let Ok((pods, _)) = kubectl.list(Resource::Pods, NAMESPACE).await {
            let running = |deployment: &str| {
                let prefix = format!("{deployment}-");
                pods.iter()
                    .filter_map(Object::as_pod)
                    .filter(|p| p.metadata.name.starts_with(&prefix) && p.status.phase == PodPhase::Running)
                    .count() as i32
            };
            if [BACKGROUND, FOREGROUND, ORPHAN].iter().all(|d| running(d) >= REPLICAS) {
                return;
            }
        }
        madsim::time::sleep(POLL).await;
    }
}

/// What the user asks for, as evidence for the convergence checker.
fn record_desired(recorder: &Recorder, deployment: &str) {
    recorder.record(HistoryEvent::DesiredReplicas {
        namespace: NAMESPACE.to_string(),
        deployment: deployment.to_string(),
        replicas: REPLICAS,
    });
}

async fn sleep_until(deadline: madsim::time::Instant) {
    let now = madsim::time::Instant::now();
    if deadline > now {
        madsim::time::sleep(deadline - now).await;
    }
}

/// Creates `object`, retrying what a user would retry; AlreadyExists is an earlier
/// attempt that went through (its object is read back).
async fn create(kubectl: &ApiClient, object: Object, patience: Duration) -> Result<Object, ApiError> {
    let start = madsim::time::Instant::now();
    let mut last = None;
    while start.elapsed() < patience {
        match kubectl.create(object.clone(), None).await {
            Ok(created) => return Ok(created),
            Err(ApiError::AlreadyExists { .. }) => {
                let meta = object.metadata();
                match kubectl.get(object.resource(), &meta.namespace, &meta.name).await {
                    Ok(existing) => return Ok(existing),
                    Err(e) => last = Some(e),
                }
            }
            Err(e) if e.is_retryable() || matches!(e, ApiError::NotFound { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
        madsim::time::sleep(POLL).await;
    }
    Err(last.unwrap_or(ApiError::Timeout { reason: "no attempt fitted in the time allowed".into() }))
}

/// Deletes `name` with `policy` (and, when given, only the object of `uid`), retrying;
/// NotFound or a failed uid precondition means an earlier attempt went through.
async fn delete(
    kubectl: &ApiClient,
    resource: Resource,
    name: &str,
    uid: Option<&str>,
    policy: Option<PropagationPolicy>,
    patience: Duration,
) -> Result<(), ApiError> {
    let options = DeleteOptions { propagation_policy: policy, uid_precondition: uid.map(str::to_string) };
    let start = madsim::time::Instant::now();
    let mut last = None;
    while start.elapsed() < patience {
        match kubectl.delete_with(resource, NAMESPACE, name, None, options.clone(), None).await {
            Ok(_) | Err(ApiError::NotFound { .. }) => return Ok(()),
            Err(ApiError::Conflict { .. }) if uid.is_some() => return Ok(()),
            Err(e) if e.is_retryable() || matches!(e, ApiError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
        madsim::time::sleep(POLL).await;
    }
    Err(last.unwrap_or(ApiError::Timeout { reason: "no attempt fitted in the time allowed".into() }))
}

/// Removes [`USER_FINALIZER`] from `gc-held` (read, modify, write, retried on conflict).
async fn remove_user_finalizer(kubectl: &ApiClient, patience: Duration) -> Result<(), ApiError> {
    let start = madsim::time::Instant::now();
    let mut last = None;
    while start.elapsed() < patience {
        let result = async {
            let mut held = kubectl.get(Resource::ConfigMaps, NAMESPACE, HELD_CONFIG).await?;
            held.metadata_mut().finalizers.retain(|f| f != USER_FINALIZER);
            kubectl.update(held, None).await
        }
        .await;
        match result {
            Ok(_) | Err(ApiError::NotFound { .. }) => return Ok(()),
            Err(e) if e.is_retryable() || matches!(e, ApiError::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
        madsim::time::sleep(POLL).await;
    }
    Err(last.unwrap_or(ApiError::Timeout { reason: "no attempt fitted in the time allowed".into() }))
}

/// What the user sees of the namespace: every object (kind, name, uid, phase of a pod,
/// marked for deletion), and what is not yet as it should be at rest.
#[derive(Debug, PartialEq, Eq)]
struct Look {
    objects: BTreeSet<(String, String, String, Option<PodPhase>, bool)>,
    unsettled: Vec<String>,
}

async fn look(kubectl: &ApiClient) -> Result<Look, ApiError> {
    let mut everything = Vec::new();
    for resource in [Resource::Deployments, Resource::ReplicaSets, Resource::Pods, Resource::ConfigMaps] {
        everything.extend(kubectl.list(resource, NAMESPACE).await?.0);
    }
    let (nodes, _) = kubectl.list(Resource::Nodes, "").await?;
    let uids: BTreeSet<&str> = everything.iter().map(|o| o.metadata().uid.as_str()).collect();
    let mut unsettled = Vec::new();
    for node in nodes.iter().filter_map(Object::as_node).filter(|n| !n.status.ready) {
        unsettled.push(format!("node {} NotReady", node.metadata.name));
    }
    for object in &everything {
        let meta = object.metadata();
        let what = format!("{} {}", object.resource().kind(), meta.name);
        if meta.is_being_deleted() {
            unsettled.push(format!("{what} marked for deletion ({})", meta.finalizers.join(", ")));
        }
        if meta.owner_references.iter().any(|o| !uids.contains(o.uid.as_str())) {
            unsettled.push(format!("{what} names an owner that is gone"));
        }
        if let Some(pod) = object.as_pod() {
            if pod.status.phase != PodPhase::Running {
                unsettled.push(format!("{what} {:?}", pod.status.phase));
            }
        }
    }
    // Pods are named `<replicaset>-<suffix>`, ReplicaSets `<deployment>-<hash>`.
    let running_of = |owner: &str| {
        let prefix = format!("{owner}-");
        everything
            .iter()
            .filter_map(Object::as_pod)
            .filter(|p| p.metadata.name.starts_with(&prefix) && p.status.phase == PodPhase::Running)
            .count() as i32
    };
    if running_of(BACKGROUND) < REPLICAS {
        unsettled.push(format!("{} of {REPLICAS} pods of {BACKGROUND} Running", running_of(BACKGROUND)));
    }
    // Every ReplicaSet left (the orphaned one, if the deployment controller had made it
    // before the orphan delete) runs its pods.
    for rs in everything.iter().filter_map(Object::as_replica_set) {
        if running_of(&rs.metadata.name) < rs.spec.replicas {
            let running = running_of(&rs.metadata.name);
            unsettled
                .push(format!("{running} of {} pods of ReplicaSet {} Running", rs.spec.replicas, rs.metadata.name));
        }
    }
    let objects = everything
        .iter()
        .map(|o| {
            let meta = o.metadata();
            let phase = o.as_pod().map(|p| p.status.phase);
            (o.resource().kind().to_string(), meta.name.clone(), meta.uid.clone(), phase, meta.is_being_deleted())
        })
        .collect();
    Ok(Look { objects, unsettled })
}

/// Waits until the namespace is at rest (nothing unsettled, nothing changing for
/// [`AT_REST_AFTER`]), at most `patience`; a namespace that has not come to rest by then is
/// judged as it stands, and the timeline says so.
async fn wait_until_at_rest(kubectl: &ApiClient, recorder: &Recorder, patience: Duration) {
    let start = madsim::time::Instant::now();
    let mut seen: Option<Look> = None;
    let mut still_since = start;
    loop {
        let now = madsim::time::Instant::now();
        let looked = look(kubectl).await.ok();
        let settled = looked.as_ref().is_some_and(|l| l.unsettled.is_empty());
        if !settled || looked != seen {
            still_since = now;
            seen = looked;
        } else if now - still_since >= AT_REST_AFTER {
            let took = (now - start).as_secs_f64();
            recorder.note(format!("at rest after {took:.1}s"));
            return;
        }
        if now - start >= patience {
            let why = match &seen {
                None => "the namespace could not be listed".to_string(),
                Some(look) if !look.unsettled.is_empty() => look.unsettled.join("; "),
                Some(_) => "objects still changing".to_string(),
            };
            recorder.note(format!("not at rest after {}s ({why}): judged as it stands", patience.as_secs()));
            return;
        }
        madsim::time::sleep(POLL).await;
    }
}

/// At rest the user looks once more: the convergence checker wants nothing unsettled
/// (`gc-background` re-created and every ReplicaSet left running its pods, nothing marked for
/// deletion, no reference to a gone owner). Returns the final state for the report.
async fn at_rest(kubectl: &ApiClient, recorder: &Recorder) -> Vec<Check> {
    let mut awaiting = super::Awaiting::begin(recorder, "at rest", 0, true, None);
    let began = madsim::time::Instant::now();
    match look(kubectl).await {
        Ok(look) => {
            let seen = if look.unsettled.is_empty() {
                "nothing unsettled".to_string()
            } else {
                format!("unsettled: {}", look.unsettled.join("; "))
            };
            awaiting.looked(began, Some(look.unsettled.len() as u64), seen);
            final_state(Some(&look))
        }
        Err(e) => {
            awaiting.looked(began, None, format!("listing the namespace failed: {e}"));
            Vec::new()
        }
    }
}

fn final_state(look: Option<&Look>) -> Vec<Check> {
    let mut checks = vec![Check::info("final state:")];
    for (kind, name, _, phase, marked) in look.into_iter().flat_map(|l| &l.objects) {
        let phase = phase.map_or(String::new(), |p| format!(" {p:?}"));
        let marked = if *marked { " (marked for deletion)" } else { "" };
        checks.push(Check::info(format!("  {kind:<10} {name}{phase}{marked}")));
    }
    checks
}

/// The user's notes, the faults, and every write of the namespace's deployments,
/// ReplicaSets and ConfigMaps, and every pod deletion.
fn timeline_of(records: &[crate::history::Record]) -> Vec<String> {
    let prefixes =
        [Resource::Deployments, Resource::ReplicaSets, Resource::ConfigMaps].map(|r| r.namespace_prefix(NAMESPACE));
    let pods = Resource::Pods.namespace_prefix(NAMESPACE);
    let mut lines = Vec::new();
    for record in records {
        let text = match &record.event {
            event if super::control_plane_line(event).is_some() => super::control_plane_line(event),
            HistoryEvent::StoreWrite { user, verb, key, revision, .. }
                if prefixes.iter().any(|p| key.starts_with(p.as_str()))
                    || (key.starts_with(&pods) && *verb == api::Verb::Delete) =>
            {
                Some(format!("{:<12} {key:<58} rev {revision:<5} by {user}", format!("{verb:?}")))
            }
            _ => None,
        };
        if let Some(text) = text {
            lines.push(super::timeline_entry(record.at_ns, &text));
        }
    }
    lines
}
