//! The deployment controller: keeps one ReplicaSet per pod template, named
//! `<deployment>-<pod-template-hash>`, scaled to the deployment's replicas, scales the
//! ReplicaSets of older templates to zero, and reports status.
//!
//! The hash is deterministic (FNV-1a 32 of the template's canonical JSON, safe-encoded as
//! Kubernetes' `rand.SafeEncodeString(fmt.Sprint(fnv32a))`), so the ReplicaSet create is
//! idempotent: AlreadyExists means an earlier attempt (or an earlier leader) made it.
//!
//! A deployment that names a `spec.strategy` rolls out by it ([`crate::rollout`]:
//! RollingUpdate within maxSurge/maxUnavailable, or Recreate; revision annotations and
//! `revisionHistoryLimit`), and every scale write it makes is reported to the observer
//! with the ReplicaSets as the controller saw them (the `rollout-bound` checker's
//! evidence). One that does not rolls out as kubesim always did, so that the scenarios
//! written before strategies existed do and store exactly what they did (docs/design.md
//! §4.16).
//!
//! Orphaned ReplicaSets (left by a delete with `propagationPolicy: Orphan`) whose labels a
//! deployment selects are adopted, as Kubernetes' `ClaimReplicaSets` does.
//!
//! Simplifications (documented, deliberate): without a strategy, rollouts are
//! Recreate-like without waiting (old ReplicaSets go to zero at once, no surge/unavailable
//! budget); no hash collision handling
//! (`collisionCount`); deleted deployments leave their ReplicaSets to a garbage collector
//! kubesim does not run.

use std::collections::BTreeMap;
use std::sync::Arc;

use api::{
    ApiClient, ApiError, DeleteOptions, Deployment, Object, ObjectMeta, OwnerReference, PodTemplateSpec, ReplicaSet,
    ReplicaSetSpec, ReplicaSetStatus, Resource,
};

use crate::driver::{retry_unless_not_leader, SyncError, TaskGroup};
use crate::events::EventRecorder;
use crate::informer::Informer;
use crate::leader_election::LeaderHandle;
use crate::observer::{ControllerObserver, RolloutScale};
use crate::rollout::{reconcile_rollout, RolloutAction, RolloutBugs};
use crate::runtime::{Action, Context, Controller, ControllerConfig};
use crate::workqueue::WorkQueueConfig;

/// The label (and selector term) that ties a ReplicaSet and its pods to one template.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentControllerConfig {
    /// Every deployment is re-synced this often (kube-controller-manager's
    /// `--min-resync-period` is 12 h; kubesim's runs are minutes long, so 30 s).
    pub resync_period_ms: u64,
    pub workqueue: WorkQueueConfig,
    /// Whether the ReplicaSets' owner references carry `blockOwnerDeletion: true` (see
    /// `ReplicaSetConfig::block_owner_deletion`: Kubernetes always sets it; kubesim only
    /// with the garbage collector, so that other scenarios' stored objects stay as they were).
    pub block_owner_deletion: bool,
    /// Planted bugs of the rollout strategies (off by default).
    pub rollout_bugs: RolloutBugs,
}

impl Default for DeploymentControllerConfig {
    fn default() -> Self {
        Self {
            resync_period_ms: 30_000,
            workqueue: WorkQueueConfig::default(),
            block_owner_deletion: false,
            rollout_bugs: RolloutBugs::default(),
        }
    }
}

/// FNV-1a, 32 bits (Kubernetes hashes pod templates with fnv32a).
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Kubernetes' `rand.SafeEncodeString`: maps each byte onto consonants and digits that
/// cannot spell words.
pub fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes().map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char).collect()
}

/// The pod-template-hash of a template: stable across runs and processes, because the
/// template's JSON is canonical (struct fields in declaration order, labels in a BTreeMap).
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let canonical = serde_json::to_vec(template).expect("a pod template always serializes");
    safe_encode(&fnv1a_32(&canonical).to_string())
}

pub fn replica_set_name(deployment_name: &str, hash: &str) -> String {
    format!("{deployment_name}-{hash}")
}

/// Whether `rs` is controlled by `deployment` (controller owner reference with its uid).
pub fn is_owned_by(rs: &ReplicaSet, deployment: &Deployment) -> bool {
    rs.metadata.controller_owner().is_some_and(|o| {
        o.kind == "Deployment" && o.uid == deployment.metadata.uid && o.name == deployment.metadata.name
    })
}

/// Whether `deployment` adopts `rs`: a ReplicaSet of its namespace that no controller
/// owns, not being deleted, whose labels its selector matches, while it is not being
/// deleted itself (Kubernetes' `ControllerRefManager.ClaimObject`).
pub fn is_adoptable_by(rs: &ReplicaSet, deployment: &Deployment) -> bool {
    rs.metadata.namespace == deployment.metadata.namespace
        && rs.metadata.controller_owner().is_none()
        && !rs.metadata.is_being_deleted()
        && !deployment.metadata.is_being_deleted()
        && !deployment.spec.selector.is_empty()
        && api::selector_matches(&deployment.spec.selector, &rs.metadata.labels)
}

/// The controller reference a deployment puts on the ReplicaSets it owns.
fn controller_reference(deployment: &Deployment, block_owner_deletion: bool) -> OwnerReference {
    OwnerReference {
        kind: "Deployment".into(),
        name: deployment.metadata.name.clone(),
        uid: deployment.metadata.uid.clone(),
        controller: true,
        block_owner_deletion,
    }
}

/// The ReplicaSet the deployment's current template should run.
pub fn new_replica_set(deployment: &Deployment) -> ReplicaSet {
    let hash = pod_template_hash(&deployment.spec.template);
    let mut template = deployment.spec.template.clone();
    template.labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let mut selector = deployment.spec.selector.clone();
    selector.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let mut metadata =
        ObjectMeta::named(&deployment.metadata.namespace, replica_set_name(&deployment.metadata.name, &hash));
    metadata.labels = template.labels.clone();
    metadata.owner_references = vec![controller_reference(deployment, false)];
    ReplicaSet {
        metadata,
        spec: ReplicaSetSpec { replicas: deployment.spec.replicas, selector, template },
        status: ReplicaSetStatus::default(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeploymentAction {
    CreateReplicaSet(ReplicaSet),
    /// Update the ReplicaSet (read resourceVersion kept) with new `spec.replicas`.
    ScaleReplicaSet(ReplicaSet),
    /// Write the deployment's status subresource.
    UpdateStatus(Deployment),
    /// What the deployment's strategy asks for (only a deployment that names one).
    Rollout(RolloutAction),
}

/// The pure reconcile: the deployment and the ReplicaSets it owns in, writes out. A
/// deployment marked for deletion only has its status kept (Kubernetes `syncDeployment`:
/// `if d.DeletionTimestamp != nil { return dc.syncStatusOnly(...) }`), so that the
/// ReplicaSets the garbage collector deletes in the foreground are not made again.
pub fn reconcile_deployment(deployment: &Deployment, owned: &[ReplicaSet]) -> Vec<DeploymentAction> {
    reconcile_deployment_with(deployment, owned, RolloutBugs::default())
}

/// [`reconcile_deployment`] with the rollout's planted bugs.
pub fn reconcile_deployment_with(
    deployment: &Deployment,
    owned: &[ReplicaSet],
    bugs: RolloutBugs,
) -> Vec<DeploymentAction> {
    let desired = new_replica_set(deployment);
    let mut actions = Vec::new();
    let current = owned.iter().find(|rs| rs.metadata.name == desired.metadata.name);
    let deleting = deployment.metadata.is_being_deleted();
    let by_strategy = deployment.spec.strategy.is_some();
    if by_strategy && !deleting {
        actions.extend(reconcile_rollout(deployment, &desired, owned, bugs).into_iter().map(DeploymentAction::Rollout));
    }
    match current {
        _ if deleting || by_strategy => {}
        None => actions.push(DeploymentAction::CreateReplicaSet(desired.clone())),
        Some(rs) if rs.spec.replicas != deployment.spec.replicas => {
            let mut scaled = rs.clone();
            scaled.spec.replicas = deployment.spec.replicas;
            actions.push(DeploymentAction::ScaleReplicaSet(scaled));
        }
        Some(_) => {}
    }
    for old in owned.iter().filter(|_| !deleting && !by_strategy) {
        if old.metadata.name != desired.metadata.name && old.spec.replicas != 0 {
            let mut scaled = old.clone();
            scaled.spec.replicas = 0;
            actions.push(DeploymentAction::ScaleReplicaSet(scaled));
        }
    }
    let mut status = deployment.status.clone();
    status.replicas = owned.iter().map(|rs| rs.status.replicas).sum();
    status.ready_replicas = owned.iter().map(|rs| rs.status.ready_replicas).sum();
    status.available_replicas = status.ready_replicas;
    status.updated_replicas = current.map_or(0, |rs| rs.status.replicas);
    status.observed_generation = deployment.metadata.generation;
    if status != deployment.status {
        let mut updated = deployment.clone();
        updated.status = status;
        actions.push(DeploymentAction::UpdateStatus(updated));
    }
    actions
}

/// The controller's driver for one leadership term, on the controller runtime
/// ([`crate::runtime`]) with the controller-manager's shared informers and leadership.
pub struct DeploymentController {
    pub config: DeploymentControllerConfig,
    pub client: ApiClient,
    /// Records `ScalingReplicaSet` events (source `deployment-controller`).
    pub events: EventRecorder,
    pub leader: LeaderHandle,
    pub deployments: Informer,
    pub replica_sets: Informer,
    /// Hears each rollout scale write, with the ReplicaSets it was decided on.
    pub observer: Option<Arc<dyn ControllerObserver>>,
    /// The controller-manager instance's identity (as in its leader election).
    pub identity: String,
}

impl DeploymentController {
    /// Subscribes to the informers and spawns the worker and resync into `tasks`. The
    /// informers must be started by the caller (they are shared).
    pub fn start(self, tasks: &mut TaskGroup) {
        let config = ControllerConfig {
            workqueue: self.config.workqueue.clone(),
            resync_period_ms: Some(self.config.resync_period_ms),
            ..ControllerConfig::default()
        };
        let informers = BTreeMap::from([
            (Resource::Deployments, self.deployments.clone()),
            (Resource::ReplicaSets, self.replica_sets.clone()),
        ]);
        Controller::new(Resource::Deployments, "")
            .owns(Resource::ReplicaSets)
            .with_config(config)
            .start(
                tasks,
                &self.client,
                Some(self.leader),
                &informers,
                Arc::new(Term {
                    events: self.events,
                    block_owner_deletion: self.config.block_owner_deletion,
                    rollout_bugs: self.config.rollout_bugs,
                    observer: self.observer,
                    identity: self.identity,
                }),
                sync,
                retry_unless_not_leader,
            )
            .expect("the deployment controller is given the informers it names, one worker and a work queue with room");
    }
}

/// What every sync of a term shares.
struct Term {
    /// Records `ScalingReplicaSet` events.
    events: EventRecorder,
    block_owner_deletion: bool,
    rollout_bugs: RolloutBugs,
    observer: Option<Arc<dyn ControllerObserver>>,
    identity: String,
}

/// One deployment as cached: its ReplicaSets from the cache into [`reconcile_deployment`],
/// and its actions carried out under the term's fence.
async fn sync(object: Arc<Object>, ctx: Arc<Context<Term>>) -> Result<Action, SyncError> {
    let Some(deployment) = object.as_deployment() else {
        return Ok(Action::AwaitChange);
    };
    // Kubernetes' `ClaimReplicaSets` (`ControllerRefManager`): an orphan whose labels the
    // deployment selects is adopted, unless the deployment is being deleted. An orphan
    // exists only after a delete with `propagationPolicy: Orphan` (the garbage collector
    // removed its reference), so runs without one never get here. Without adoption, a
    // deployment created again under the name would find its ReplicaSet's name taken
    // (AlreadyExists) and own nothing until someone deleted the orphan.
    // One pass over the cache: the ReplicaSets the deployment owns, and the orphans it adopts.
    let (owned, orphans): (Vec<ReplicaSet>, Vec<ReplicaSet>) =
        ctx.cache(Resource::ReplicaSets).with_objects(|objects| {
            objects
                .filter_map(Object::as_replica_set)
                .filter(|rs| is_owned_by(rs, deployment) || is_adoptable_by(rs, deployment))
                .cloned()
                .partition(|rs| is_owned_by(rs, deployment))
        });
    if !orphans.is_empty() {
        let fence = ctx.write_fence()?;
        for mut rs in orphans {
            rs.metadata.owner_references.push(controller_reference(deployment, ctx.data().block_owner_deletion));
            match ctx.client().update(Object::ReplicaSet(rs), fence.clone()).await {
                // Taken or gone meanwhile: the next sync sees it as it is.
                Ok(_) | Err(ApiError::Conflict { .. } | ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The adopted ReplicaSets' update events bring the deployment back.
        return Ok(Action::AwaitChange);
    }
    let client = ctx.client();
    for action in reconcile_deployment_with(deployment, &owned, ctx.data().rollout_bugs) {
        let fence = ctx.write_fence()?;
        let result = match action {
            DeploymentAction::CreateReplicaSet(mut rs) => {
                for owner in &mut rs.metadata.owner_references {
                    owner.block_owner_deletion = ctx.data().block_owner_deletion;
                }
                let (name, replicas) = (rs.metadata.name.clone(), rs.spec.replicas);
                match client.create(Object::ReplicaSet(rs), fence).await {
                    // Deterministic name: an earlier attempt already created it.
                    Err(ApiError::AlreadyExists { .. }) => Ok(()),
                    other => other.map(|_| scaled(&ctx.data().events, &object, &name, 0, replicas)),
                }
            }
            DeploymentAction::ScaleReplicaSet(rs) => {
                let (name, replicas) = (rs.metadata.name.clone(), rs.spec.replicas);
                let before = owned.iter().find(|o| o.metadata.name == name).map_or(0, |o| o.spec.replicas);
                client
                    .update(Object::ReplicaSet(rs), fence)
                    .await
                    .map(|_| scaled(&ctx.data().events, &object, &name, before, replicas))
            }
            DeploymentAction::UpdateStatus(d) => client.update_status(Object::Deployment(d), fence).await.map(drop),
            DeploymentAction::Rollout(RolloutAction::Scale(write)) => {
                let data = ctx.data();
                if let (Some(observer), Some(strategy)) = (&data.observer, crate::rollout::resolve(deployment)) {
                    observer.rollout_scaled(&RolloutScale {
                        controller: data.identity.clone(),
                        namespace: deployment.metadata.namespace.clone(),
                        deployment: deployment.metadata.name.clone(),
                        strategy,
                        replicas: deployment.spec.replicas,
                        replica_set: write.replica_set.metadata.name.clone(),
                        from: write.from,
                        to: write.replica_set.spec.replicas,
                        observed: write.observed.clone(),
                    });
                }
                let (name, from, to) =
                    (write.replica_set.metadata.name.clone(), write.from, write.replica_set.spec.replicas);
                let mut rs = write.replica_set;
                if write.create {
                    for owner in &mut rs.metadata.owner_references {
                        owner.block_owner_deletion = data.block_owner_deletion;
                    }
                    match client.create(Object::ReplicaSet(rs), fence).await {
                        Err(ApiError::AlreadyExists { .. }) => Ok(()),
                        other => other.map(|_| scaled(&data.events, &object, &name, from, to)),
                    }
                } else {
                    client
                        .update(Object::ReplicaSet(rs), fence)
                        .await
                        .map(|_| scaled(&data.events, &object, &name, from, to))
                }
            }
            DeploymentAction::Rollout(RolloutAction::Annotate(rs)) => {
                client.update(Object::ReplicaSet(rs), fence).await.map(drop)
            }
            DeploymentAction::Rollout(RolloutAction::Delete(name, uid)) => {
                let options = DeleteOptions { propagation_policy: None, uid_precondition: Some(uid) };
                match client
                    .delete_with(Resource::ReplicaSets, &deployment.metadata.namespace, &name, None, options, fence)
                    .await
                {
                    // Another object under the name now: not ours to delete.
                    Err(ApiError::Conflict { .. }) => Ok(()),
                    other => other.map(drop),
                }
            }
        };
        match result {
            Ok(()) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::AwaitChange)
}

/// The deployment controller's `ScalingReplicaSet` event about `deployment`.
fn scaled(events: &EventRecorder, deployment: &Object, replica_set: &str, from: i32, to: i32) {
    let direction = if to >= from { "up" } else { "down" };
    events.normal(
        deployment,
        "ScalingReplicaSet",
        format!("Scaled {direction} replica set {replica_set} from {from} to {to}"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{Container, Labels, PodSpec};

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn nginx(replicas: i32, image: &str) -> Deployment {
        let mut d = Deployment { metadata: ObjectMeta::named("default", "nginx-deployment"), ..Deployment::default() };
        d.metadata.uid = "uid-d".into();
        d.metadata.generation = 1;
        d.spec.replicas = replicas;
        d.spec.selector = labels(&[("app", "nginx")]);
        d.spec.template = PodTemplateSpec {
            labels: labels(&[("app", "nginx")]),
            spec: PodSpec {
                node_name: None,
                containers: vec![Container { name: "nginx".into(), image: image.into(), cpu_millis: 100 }],
            },
        };
        d
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn replica_set_name_and_hash_are_stable_and_follow_the_template() {
        let d = nginx(3, "nginx:1.14.2");
        let rs = new_replica_set(&d);
        let hash = pod_template_hash(&d.spec.template);
        // Pinned: a change here changes every ReplicaSet name in saved runs.
        assert_eq!(hash, "6c645f5d57");
        assert_eq!(rs.metadata.name, format!("nginx-deployment-{hash}"));
        assert_eq!(new_replica_set(&nginx(5, "nginx:1.14.2")).metadata.name, rs.metadata.name);
        assert_ne!(
            new_replica_set(&nginx(3, "nginx:1.16.1")).metadata.name,
            rs.metadata.name,
            "a new template gets a new ReplicaSet"
        );
        let expected = labels(&[("app", "nginx"), (POD_TEMPLATE_HASH_LABEL, &hash)]);
        assert_eq!(rs.metadata.labels, expected);
        assert_eq!(rs.spec.selector, expected);
        assert_eq!(rs.spec.template.labels, expected);
        assert_eq!(rs.spec.replicas, 3);
        let owner = rs.metadata.controller_owner().expect("controller owner");
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Deployment", "uid-d"));
    }

    #[test]
    fn creates_then_scales_then_retires_old_template() {
        let d = nginx(3, "nginx:1.14.2");
        let actions = reconcile_deployment(&d, &[]);
        assert!(matches!(&actions[0], DeploymentAction::CreateReplicaSet(rs) if rs.spec.replicas == 3));

        let mut rs = new_replica_set(&d);
        rs.status.replicas = 3;
        rs.status.ready_replicas = 2;
        let scaled_up = nginx(5, "nginx:1.14.2");
        let actions = reconcile_deployment(&scaled_up, std::slice::from_ref(&rs));
        assert!(matches!(&actions[0], DeploymentAction::ScaleReplicaSet(s) if s.spec.replicas == 5));
        match &actions[1] {
            DeploymentAction::UpdateStatus(d) => {
                assert_eq!(d.status.replicas, 3);
                assert_eq!(d.status.ready_replicas, 2);
                assert_eq!(d.status.observed_generation, 1);
            }
            other => panic!("expected status update, got {other:?}"),
        }

        let new_template = nginx(3, "nginx:1.16.1");
        let actions = reconcile_deployment(&new_template, std::slice::from_ref(&rs));
        assert!(matches!(&actions[0], DeploymentAction::CreateReplicaSet(_)));
        assert!(matches!(&actions[1], DeploymentAction::ScaleReplicaSet(s)
            if s.metadata.name == rs.metadata.name && s.spec.replicas == 0));
    }

    #[test]
    fn converged_deployment_needs_no_writes() {
        let mut d = nginx(3, "nginx:1.14.2");
        let mut rs = new_replica_set(&d);
        rs.status.replicas = 3;
        rs.status.ready_replicas = 3;
        d.status.replicas = 3;
        d.status.ready_replicas = 3;
        d.status.available_replicas = 3;
        d.status.updated_replicas = 3;
        d.status.observed_generation = 1;
        assert!(reconcile_deployment(&d, &[rs]).is_empty());
    }
}
