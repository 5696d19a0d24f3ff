//! The replicaset controller: creates and deletes pods so that each ReplicaSet has
//! `spec.replicas` active pods, and reports status.
//!
//! Expectations (Kubernetes `ControllerExpectations`): after issuing N creates (or
//! deletes) for a ReplicaSet, the controller does not act on that ReplicaSet again until
//! its pod informer has observed them, or until they expire (5 minutes of this node's
//! clock). Without them a sync that runs before the informer has caught up sees too few
//! pods and creates more (docs/design.md §1).
//!
//! **Deviation, kubernetes/kubernetes#129795.** A pod the controller created can be
//! deleted (a drain's eviction, say) while its informer is relisting after 410 Gone: the
//! new list never holds it, no Added event ever comes, and Kubernetes' controller waits
//! out the 5-minute expiry with the ReplicaSet short of pods (found by the generated
//! workload, seed 732 of `--workload all` when it was first run: a drain during a relist, the deployment stuck at 2 of
//! 5 pods through the whole liveness phase). kubesim does what that issue proposes:
//! each expectation also remembers the highest resourceVersion its creates were answered
//! with, and once every create was answered and the pod informer's resourceVersion has
//! passed that one, the cache holds (or has already dropped) every pod the controller
//! made, so acting on it cannot double-create; the expectation counts as met. Without an
//! unseen create-then-delete this changes nothing: by then every Added event was seen.
//!
//! [`ReplicaSetSync`] is the sans-IO core (ReplicaSet, pods, time in; actions out; pod
//! events update its expectations); [`ReplicaSetController`] runs it on the controller
//! runtime ([`crate::runtime`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use api::{
    ApiClient, ApiError, Clock, Object, ObjectMeta, OwnerReference, Pod, PodPhase, PodStatus, ReplicaSet, Resource,
    ResourceVersion,
};
use madsim::rand::Rng;

use crate::driver::{retry_unless_not_leader, SyncError, TaskGroup};
use crate::events::EventRecorder;
use crate::informer::{key_of, object_key, Informer, InformerEvent};
use crate::leader_election::LeaderHandle;
use crate::runtime::{Action, Context, Controller, ControllerConfig};
use crate::workqueue::WorkQueueConfig;

/// Kubernetes' `SlowStartInitialBatchSize`: the first batch of creates holds one pod.
pub const SLOW_START_INITIAL_BATCH: usize = 1;

/// Kubernetes' `ExpectationsTimeout`: 5 minutes.
pub const EXPECTATIONS_TIMEOUT_MS: u64 = 5 * 60 * 1_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaSetConfig {
    /// Most creates or deletes issued by one sync (Kubernetes' `burstReplicas`: 500).
    pub burst_replicas: usize,
    /// How long unmet expectations block a ReplicaSet (Kubernetes: 5 minutes).
    pub expectations_timeout_ms: u64,
    /// Every ReplicaSet is re-synced this often (30 s; see the deployment controller).
    pub resync_period_ms: u64,
    pub workqueue: WorkQueueConfig,
    /// PLANTED BUG (`kubesim --bug replicaset-no-expectations`), default off. When on, the
    /// controller ignores its expectations and acts on whatever its informer cache shows.
    /// A stale cache (the informer has not yet seen the pods just created) then makes it
    /// create too many pods; kubesim's convergence checker (invariant 13, "no more pods
    /// than desired at rest", and the created-pods count in the history) must catch it.
    pub planted_bug_no_expectations: bool,
    /// Whether the pods' owner references carry `blockOwnerDeletion: true`, as
    /// Kubernetes' `metav1.NewControllerRef` always sets it (a foreground deletion of the
    /// ReplicaSet then waits for its pods). Off by default only so that the stored pods of
    /// the scenarios that run no garbage collector stay byte for byte as they were (their
    /// trace hashes with them); the control plane turns it on with the garbage collector.
    pub block_owner_deletion: bool,
}

impl Default for ReplicaSetConfig {
    fn default() -> Self {
        Self {
            burst_replicas: 500,
            expectations_timeout_ms: EXPECTATIONS_TIMEOUT_MS,
            resync_period_ms: 30_000,
            workqueue: WorkQueueConfig::default(),
            planted_bug_no_expectations: false,
            block_owner_deletion: false,
        }
    }
}

/// Outstanding creates and deletes of one ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Expectation {
    creates_pending: i64,
    /// Keys of pods whose deletion has not been observed yet (Kubernetes tracks deletes
    /// by pod key too: `UIDTrackingControllerExpectations`).
    deletes_pending: BTreeSet<String>,
    set_at_ms: u64,
    /// Creates not yet answered (success or failure).
    creates_unanswered: i64,
    /// The highest resourceVersion a create of this expectation was answered with.
    created_up_to: ResourceVersion,
}

/// ControllerExpectations keyed by ReplicaSet key.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    records: BTreeMap<String, Expectation>,
    timeout_ms: u64,
}

impl Expectations {
    pub fn new(timeout_ms: u64) -> Self {
        Self { records: BTreeMap::new(), timeout_ms }
    }

    /// Whether the controller may act on `rs_key`: nothing outstanding, it expired, or
    /// the pod informer, at `informer_rv`, has passed every create it was waiting for
    /// (see the module's note on kubernetes/kubernetes#129795).
    pub fn satisfied(&self, rs_key: &str, now_ms: u64, informer_rv: ResourceVersion) -> bool {
        match self.records.get(rs_key) {
            None => true,
            Some(e) => {
                let met = e.creates_pending <= 0 && e.deletes_pending.is_empty();
                if met {
                    return true;
                }
                let caught_up = e.deletes_pending.is_empty()
                    && e.creates_unanswered <= 0
                    && e.created_up_to > 0
                    && informer_rv >= e.created_up_to;
                if caught_up {
                    coverage::reached!("controllers.replicaset.expectations-caught-up");
                    return true;
                }
                let expired = now_ms.saturating_sub(e.set_at_ms) > self.timeout_ms;
                if expired {
                    coverage::reached!("controllers.replicaset.expectations-expired");
                }
                expired
            }
        }
    }

    pub fn expect_creations(&mut self, rs_key: &str, n: usize, now_ms: u64) {
        self.records.insert(
            rs_key.to_string(),
            Expectation {
                creates_pending: n as i64,
                creates_unanswered: n as i64,
                set_at_ms: now_ms,
                ..Expectation::default()
            },
        );
    }

    pub fn expect_deletions(&mut self, rs_key: &str, pod_keys: BTreeSet<String>, now_ms: u64) {
        self.records.insert(
            rs_key.to_string(),
            Expectation { deletes_pending: pod_keys, set_at_ms: now_ms, ..Expectation::default() },
        );
    }

    /// A create of `rs_key` was answered: with the created pod's resourceVersion, or
    /// `None` when it failed (or was never sent).
    pub fn create_answered(&mut self, rs_key: &str, resource_version: Option<ResourceVersion>) {
        if let Some(e) = self.records.get_mut(rs_key) {
            e.creates_unanswered -= 1;
            if let Some(rv) = resource_version {
                e.created_up_to = e.created_up_to.max(rv);
            }
        }
    }

    /// A pod of `rs_key` appeared, or a create failed and will never appear.
    pub fn creation_observed(&mut self, rs_key: &str) {
        if let Some(e) = self.records.get_mut(rs_key) {
            e.creates_pending -= 1;
        }
    }

    /// A pod of `rs_key` disappeared, or its delete failed and will never be observed.
    pub fn deletion_observed(&mut self, rs_key: &str, pod_key: &str) {
        if let Some(e) = self.records.get_mut(rs_key) {
            e.deletes_pending.remove(pod_key);
        }
    }

    pub fn forget(&mut self, rs_key: &str) {
        self.records.remove(rs_key);
    }
}

// A handful per sync: boxing the ReplicaSet would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaSetAction {
    /// Create this many pods from the template (names are chosen by the driver).
    CreatePods(usize),
    DeletePods(Vec<Pod>),
    /// Write the ReplicaSet's status subresource.
    UpdateStatus(ReplicaSet),
}

/// Whether `pod` is controlled by `rs`.
pub fn is_owned_by(pod: &Pod, rs: &ReplicaSet) -> bool {
    pod.metadata
        .controller_owner()
        .is_some_and(|o| o.kind == "ReplicaSet" && o.uid == rs.metadata.uid && o.name == rs.metadata.name)
}

/// Kubernetes' `IsPodActive`: not terminating and not finished.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp_ms.is_none() && !matches!(pod.status.phase, PodPhase::Succeeded | PodPhase::Failed)
}

/// The ReplicaSet key of the controller owning `pod`, if a ReplicaSet owns it.
pub fn owner_rs_key(pod: &Pod) -> Option<String> {
    pod.metadata
        .controller_owner()
        .filter(|o| o.kind == "ReplicaSet")
        .map(|o| object_key(&pod.metadata.namespace, &o.name))
}

/// Which pods to delete first when scaling down (Kubernetes' `ActivePods` order, reduced
/// to the fields kubesim has): unscheduled before scheduled, pending before running,
/// newer before older, then by name for determinism.
fn deletion_rank(pod: &Pod) -> (bool, u8, std::cmp::Reverse<u64>, String) {
    let phase_rank = match pod.status.phase {
        PodPhase::Pending => 0,
        PodPhase::Unknown => 1,
        _ => 2,
    };
    (
        pod.spec.node_name.is_some(),
        phase_rank,
        std::cmp::Reverse(pod.metadata.creation_timestamp_ms),
        pod.metadata.name.clone(),
    )
}

/// The pure reconcile of one ReplicaSet: `pods` are the pods of its namespace as the cache
/// shows them; `may_act` is whether expectations allow creates and deletes.
pub fn reconcile_replica_set(
    rs: &ReplicaSet,
    pods: &[Pod],
    may_act: bool,
    burst_replicas: usize,
) -> Vec<ReplicaSetAction> {
    let mut active: Vec<&Pod> = pods.iter().filter(|p| is_owned_by(p, rs) && is_active(p)).collect();
    let desired = rs.spec.replicas.max(0) as usize;
    let mut actions = Vec::new();
    // Kubernetes `syncReplicaSet`: `rsNeedsSync && rs.DeletionTimestamp == nil`; a
    // ReplicaSet marked for deletion (its pods being deleted in the foreground, or
    // orphaned) is no longer scaled, only its status kept.
    if may_act && !rs.metadata.is_being_deleted() {
        if active.len() < desired {
            actions.push(ReplicaSetAction::CreatePods((desired - active.len()).min(burst_replicas)));
        } else if active.len() > desired {
            active.sort_by_key(|p| deletion_rank(p));
            let n_delete = (active.len() - desired).min(burst_replicas);
            actions.push(ReplicaSetAction::DeletePods(active[..n_delete].iter().map(|p| (*p).clone()).collect()));
        }
    }
    let mut status = rs.status.clone();
    status.replicas = active.len() as i32;
    status.ready_replicas = active.iter().filter(|p| p.status.phase == PodPhase::Running).count() as i32;
    status.observed_generation = rs.metadata.generation;
    if status != rs.status {
        let mut updated = rs.clone();
        updated.status = status;
        actions.push(ReplicaSetAction::UpdateStatus(updated));
    }
    actions
}

/// A new pod for `rs` named `<rs-name>-<suffix>`: template labels and spec, an owner
/// reference to the ReplicaSet, Pending and unbound.
pub fn new_pod(rs: &ReplicaSet, suffix: &str) -> Pod {
    let mut metadata = ObjectMeta::named(&rs.metadata.namespace, format!("{}-{suffix}", rs.metadata.name));
    metadata.labels = rs.spec.template.labels.clone();
    metadata.owner_references = vec![OwnerReference {
        kind: "ReplicaSet".into(),
        name: rs.metadata.name.clone(),
        uid: rs.metadata.uid.clone(),
        controller: true,
        block_owner_deletion: false,
    }];
    let mut spec = rs.spec.template.spec.clone();
    spec.node_name = None;
    Pod { metadata, spec, status: PodStatus::default() }
}

/// Kubernetes' generateName suffix: 5 characters from its safe lowercase alphabet,
/// drawn from the simulator's seeded rng.
pub fn random_pod_suffix() -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = madsim::rand::thread_rng();
    (0..5).map(|_| ALPHANUMS[rng.gen_range(0..ALPHANUMS.len())] as char).collect()
}

/// The sizes of the batches `n` creates are sent in: [`SLOW_START_INITIAL_BATCH`], then
/// each batch twice the last, the last one cut to what is left (Kubernetes'
/// `slowStartBatch`): 5 creates go as 1, 2, 2.
pub fn slow_start_batches(n: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut left = n;
    let mut size = SLOW_START_INITIAL_BATCH;
    while left > 0 {
        let batch = size.min(left);
        batches.push(batch);
        left -= batch;
        size *= 2;
    }
    batches
}

/// The sans-IO core: reconcile plus expectations.
#[derive(Clone, Debug)]
pub struct ReplicaSetSync {
    config: ReplicaSetConfig,
    expectations: Expectations,
}

impl ReplicaSetSync {
    pub fn new(config: ReplicaSetConfig) -> Self {
        let expectations = Expectations::new(config.expectations_timeout_ms);
        Self { config, expectations }
    }

    pub fn expectations(&self) -> &Expectations {
        &self.expectations
    }

    /// One sync of `rs` at `now_ms` (this node's clock); records expectations for the
    /// creates and deletes it asks for.
    pub fn sync(&mut self, rs: &ReplicaSet, pods: &[Pod], now_ms: u64) -> Vec<ReplicaSetAction> {
        self.sync_at(rs, pods, now_ms, 0)
    }

    /// [`ReplicaSetSync::sync`] with `pods` from an informer at `informer_rv`.
    pub fn sync_at(
        &mut self,
        rs: &ReplicaSet,
        pods: &[Pod],
        now_ms: u64,
        informer_rv: ResourceVersion,
    ) -> Vec<ReplicaSetAction> {
        let rs_key = object_key(&rs.metadata.namespace, &rs.metadata.name);
        // PLANTED BUG (planted_bug_no_expectations): acting regardless of expectations.
        let may_act =
            self.config.planted_bug_no_expectations || self.expectations.satisfied(&rs_key, now_ms, informer_rv);
        let actions = reconcile_replica_set(rs, pods, may_act, self.config.burst_replicas);
        for action in &actions {
            match action {
                ReplicaSetAction::CreatePods(n) => self.expectations.expect_creations(&rs_key, *n, now_ms),
                ReplicaSetAction::DeletePods(pods) => self.expectations.expect_deletions(
                    &rs_key,
                    pods.iter().map(|p| object_key(&p.metadata.namespace, &p.metadata.name)).collect(),
                    now_ms,
                ),
                ReplicaSetAction::UpdateStatus(_) => {}
            }
        }
        actions
    }

    /// Feeds a pod informer event into the expectations.
    pub fn pod_event(&mut self, event: &InformerEvent) {
        let Some(pod) = event.object().as_pod() else {
            return;
        };
        let Some(rs_key) = owner_rs_key(pod) else {
            return;
        };
        match event {
            InformerEvent::Added(_) => self.expectations.creation_observed(&rs_key),
            InformerEvent::Deleted(_) => self.expectations.deletion_observed(&rs_key, &key_of(event.object())),
            InformerEvent::Modified { .. } => {}
        }
    }

    /// A create was refused or lost: it will never be observed.
    pub fn create_failed(&mut self, rs_key: &str) {
        self.expectations.creation_observed(rs_key);
        self.expectations.create_answered(rs_key, None);
    }

    /// A create succeeded: the pod was written at `resource_version`.
    pub fn create_succeeded(&mut self, rs_key: &str, resource_version: ResourceVersion) {
        self.expectations.create_answered(rs_key, Some(resource_version));
    }

    /// A delete was refused: the pod will not disappear because of it.
    pub fn delete_failed(&mut self, rs_key: &str, pod_key: &str) {
        self.expectations.deletion_observed(rs_key, pod_key);
    }

    pub fn replica_set_deleted(&mut self, rs_key: &str) {
        self.expectations.forget(rs_key);
    }
}

/// The controller's driver for one leadership term, on the controller runtime
/// ([`crate::runtime`]) with the controller-manager's shared informers and leadership.
pub struct ReplicaSetController {
    pub config: ReplicaSetConfig,
    pub client: ApiClient,
    pub clock: Clock,
    pub leader: LeaderHandle,
    pub replica_sets: Informer,
    pub pods: Informer,
    /// Records `SuccessfulCreate`, `FailedCreate` and `SuccessfulDelete` (source
    /// `replicaset-controller`), as Kubernetes' replica set controller does.
    pub events: EventRecorder,
}

/// What every sync of a term shares: the core with its expectations, this node's clock
/// and the event recorder.
struct Term {
    clock: Clock,
    events: EventRecorder,
    core: Arc<Mutex<ReplicaSetSync>>,
    block_owner_deletion: bool,
}

impl ReplicaSetController {
    /// Subscribes to the informers and spawns the worker and resync into `tasks`. The
    /// informers must be started by the caller (they are shared).
    pub fn start(self, tasks: &mut TaskGroup) {
        let core = Arc::new(Mutex::new(ReplicaSetSync::new(self.config.clone())));
        // The expectations hear of each event before the runtime enqueues its ReplicaSet
        // (these handlers are subscribed first), so the sync it causes sees them updated.
        let c = core.clone();
        self.pods.subscribe(Box::new(move |event: &InformerEvent| c.lock().expect("rs core").pod_event(event)));
        let c = core.clone();
        self.replica_sets.subscribe(Box::new(move |event: &InformerEvent| {
            if matches!(event, InformerEvent::Deleted(_)) {
                c.lock().expect("rs core").replica_set_deleted(&key_of(event.object()));
            }
        }));
        let config = ControllerConfig {
            workqueue: self.config.workqueue.clone(),
            resync_period_ms: Some(self.config.resync_period_ms),
            ..ControllerConfig::default()
        };
        let informers = BTreeMap::from([(Resource::ReplicaSets, self.replica_sets), (Resource::Pods, self.pods)]);
        let block_owner_deletion = self.config.block_owner_deletion;
        let term = Term { clock: self.clock, events: self.events, core, block_owner_deletion };
        Controller::new(Resource::ReplicaSets, "")
            .owns(Resource::Pods)
            .with_config(config)
            .start(tasks, &self.client, Some(self.leader), &informers, Arc::new(term), sync, retry_unless_not_leader)
            .expect("the replicaset controller is given the informers it names, one worker and a work queue with room");
    }
}

/// One ReplicaSet as cached: the pods of its namespace from the cache into
/// [`ReplicaSetSync::sync`], and its actions carried out under the term's fence.
async fn sync(object: Arc<Object>, ctx: Arc<Context<Term>>) -> Result<Action, SyncError> {
    let Some(rs) = object.as_replica_set() else {
        return Ok(Action::AwaitChange);
    };
    let rs_key = object_key(&rs.metadata.namespace, &rs.metadata.name);
    let cache = ctx.cache(Resource::Pods);
    // The resourceVersion first: the list below is at least that new.
    let informer_rv = cache.resource_version();
    let pods: Vec<Pod> = cache
        .list()
        .into_iter()
        .filter_map(Object::into_pod)
        .filter(|p| p.metadata.namespace == rs.metadata.namespace)
        .collect();
    let term = ctx.data();
    let actions = term.core.lock().expect("rs core").sync_at(rs, &pods, term.clock.now_ms(), informer_rv);
    let mut first_error = None;
    for action in actions {
        let result = match action {
            ReplicaSetAction::CreatePods(n) => create_pods(&ctx, &rs_key, rs, n).await,
            ReplicaSetAction::DeletePods(pods) => delete_pods(&ctx, rs, &rs_key, pods).await,
            ReplicaSetAction::UpdateStatus(updated) => {
                let fence = ctx.write_fence()?;
                match ctx.client().update_status(Object::ReplicaSet(updated), fence).await {
                    Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        };
        if let Err(e) = result {
            if e == SyncError::NotLeader {
                return Err(e);
            }
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(Action::AwaitChange), Err)
}

/// Issues `n` creates in Kubernetes' slow-start batches (`slowStartBatch` in
/// `pkg/controller/replicaset`): 1 create, then 2 at once, then 4, ..., each batch
/// sent together and awaited together, so a ReplicaSet of many pods is filled quickly
/// while a failing apiserver costs one request rather than `n`. A batch with any
/// failure ends the sync; every failed create and every create not attempted lowers
/// the expectations (it will never be observed). Leadership loss ends it likewise.
async fn create_pods(ctx: &Context<Term>, rs_key: &str, rs: &ReplicaSet, n: usize) -> Result<(), SyncError> {
    let mut attempted = 0;
    let mut outcome = Ok(());
    for batch in slow_start_batches(n) {
        let fence = match ctx.write_fence() {
            Ok(fence) => fence,
            Err(not_leader) => {
                outcome = Err(not_leader.into());
                break;
            }
        };
        let creates: Vec<_> = (0..batch)
            .map(|_| {
                let mut pod = new_pod(rs, &random_pod_suffix());
                pod.metadata.creation_timestamp_ms = ctx.data().clock.now_ms();
                for owner in &mut pod.metadata.owner_references {
                    owner.block_owner_deletion = ctx.data().block_owner_deletion;
                }
                ctx.client().create(Object::Pod(pod), fence.clone())
            })
            .collect();
        attempted += batch;
        let results = futures::future::join_all(creates).await;
        let owner = Object::ReplicaSet(rs.clone());
        for result in &results {
            match result {
                Ok(pod) => ctx.data().events.normal(
                    &owner,
                    "SuccessfulCreate",
                    format!("Created pod: {}", pod.metadata().name),
                ),
                Err(e) => ctx.data().events.warning(&owner, "FailedCreate", format!("Error creating: {e}")),
            }
        }
        {
            let mut core = ctx.data().core.lock().expect("rs core");
            for pod in results.iter().filter_map(|r| r.as_ref().ok()) {
                core.create_succeeded(rs_key, pod.metadata().resource_version);
            }
        }
        let mut failed = results.into_iter().filter_map(Result::err);
        if let Some(first) = failed.next() {
            let mut core = ctx.data().core.lock().expect("rs core");
            for _ in 0..1 + failed.count() {
                core.create_failed(rs_key);
            }
            outcome = Err(SyncError::Api(first));
            break;
        }
    }
    let mut core = ctx.data().core.lock().expect("rs core");
    for _ in attempted..n {
        core.create_failed(rs_key);
    }
    outcome
}

async fn delete_pods(ctx: &Context<Term>, rs: &ReplicaSet, rs_key: &str, pods: Vec<Pod>) -> Result<(), SyncError> {
    let mut first_error = None;
    for pod in &pods {
        let pod_key = object_key(&pod.metadata.namespace, &pod.metadata.name);
        let fence = match ctx.write_fence() {
            Ok(fence) => fence,
            Err(not_leader) => {
                ctx.data().core.lock().expect("rs core").delete_failed(rs_key, &pod_key);
                first_error.get_or_insert(not_leader.into());
                continue;
            }
        };
        let precondition: Option<ResourceVersion> = None;
        match ctx
            .client()
            .delete(Resource::Pods, &pod.metadata.namespace, &pod.metadata.name, precondition, fence)
            .await
        {
            Ok(_) => ctx.data().events.normal(
                &Object::ReplicaSet(rs.clone()),
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod.metadata.name),
            ),
            Err(ApiError::NotFound { .. }) => {}
            Err(e) => {
                ctx.data().core.lock().expect("rs core").delete_failed(rs_key, &pod_key);
                first_error.get_or_insert(SyncError::Api(e));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::Labels;

    fn rs(replicas: i32) -> ReplicaSet {
        let mut rs =
            ReplicaSet { metadata: ObjectMeta::named("default", "nginx-deployment-abc"), ..ReplicaSet::default() };
        rs.metadata.uid = "uid-rs".into();
        rs.metadata.generation = 1;
        rs.spec.replicas = replicas;
        let labels: Labels = [("app".to_string(), "nginx".to_string())].into();
        rs.spec.selector = labels.clone();
        rs.spec.template.labels = labels;
        rs
    }

    fn pod_of(rs: &ReplicaSet, suffix: &str, phase: PodPhase) -> Pod {
        let mut p = new_pod(rs, suffix);
        p.status.phase = phase;
        p
    }

    fn creates(actions: &[ReplicaSetAction]) -> usize {
        actions
            .iter()
            .map(|a| match a {
                ReplicaSetAction::CreatePods(n) => *n,
                _ => 0,
            })
            .sum()
    }

    /// The pod informer has not caught up with the creates of the first sync: the second
    /// sync sees the same empty cache.
    fn stale_cache_scenario(planted_bug: bool) -> (usize, usize) {
        let mut core = ReplicaSetSync::new(ReplicaSetConfig {
            planted_bug_no_expectations: planted_bug,
            ..ReplicaSetConfig::default()
        });
        let rs = rs(3);
        let first = creates(&core.sync(&rs, &[], 1_000));
        let second = creates(&core.sync(&rs, &[], 1_100));
        (first, second)
    }

    #[test]
    fn creates_go_in_doubling_batches() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(5), vec![1, 2, 2]);
        assert_eq!(slow_start_batches(7), vec![1, 2, 4]);
        assert_eq!(slow_start_batches(20), vec![1, 2, 4, 8, 5]);
    }

    #[test]
    fn expectations_suppress_duplicate_creates_from_a_stale_cache() {
        assert_eq!(stale_cache_scenario(false), (3, 0));
    }

    #[test]
    fn planted_bug_over_creates_from_a_stale_cache() {
        assert_eq!(stale_cache_scenario(true), (3, 3));
    }

    #[test]
    fn expectations_are_met_by_observed_pods_or_expire() {
        let rs = rs(3);
        let mut core = ReplicaSetSync::new(ReplicaSetConfig::default());
        assert_eq!(creates(&core.sync(&rs, &[], 0)), 3);
        let pods: Vec<Pod> = ["a", "b"].iter().map(|s| pod_of(&rs, s, PodPhase::Pending)).collect();
        for p in &pods {
            core.pod_event(&InformerEvent::Added(Object::Pod(p.clone())));
        }
        assert!(!core.expectations().satisfied("default/nginx-deployment-abc", 1, 0));
        // Third create failed at the apiserver: it will never be observed.
        core.create_failed("default/nginx-deployment-abc");
        assert_eq!(creates(&core.sync(&rs, &pods, 2)), 1, "acts again once satisfied");

        // Unobserved creates block until the 5-minute expiry of this node's clock.
        assert_eq!(creates(&core.sync(&rs, &pods, 3)), 0);
        assert_eq!(creates(&core.sync(&rs, &pods, 2 + EXPECTATIONS_TIMEOUT_MS)), 0);
        assert_eq!(creates(&core.sync(&rs, &pods, 3 + EXPECTATIONS_TIMEOUT_MS)), 1);
    }

    /// kubernetes/kubernetes#129795: pod "c" was created (rv 12) and deleted while the
    /// informer relisted, so its Added never comes; once the informer is past rv 12 the
    /// cache is complete and the controller acts again, but not before, and not while a
    /// create is unanswered.
    #[test]
    fn expectations_are_met_once_the_informer_passed_every_answered_create() {
        let rs = rs(3);
        let key = "default/nginx-deployment-abc";
        let mut core = ReplicaSetSync::new(ReplicaSetConfig::default());
        assert_eq!(creates(&core.sync_at(&rs, &[], 0, 9)), 3);
        core.create_succeeded(key, 10);
        core.create_succeeded(key, 11);
        let pods: Vec<Pod> = ["a", "b"].iter().map(|s| pod_of(&rs, s, PodPhase::Pending)).collect();
        for p in &pods {
            core.pod_event(&InformerEvent::Added(Object::Pod(p.clone())));
        }
        assert!(!core.expectations().satisfied(key, 1, 20), "the third create is unanswered");
        core.create_succeeded(key, 12);
        assert!(!core.expectations().satisfied(key, 1, 11), "the informer is behind the third create");
        assert_eq!(creates(&core.sync_at(&rs, &pods, 1, 11)), 0);
        assert_eq!(creates(&core.sync_at(&rs, &pods, 2, 13)), 1, "past it: the missing pod is made again");
    }

    #[test]
    fn scale_down_deletes_unscheduled_and_pending_first_and_waits_for_deletions() {
        let rs = rs(1);
        let mut running = pod_of(&rs, "run", PodPhase::Running);
        running.spec.node_name = Some("n1".into());
        let mut bound = pod_of(&rs, "bound", PodPhase::Pending);
        bound.spec.node_name = Some("n2".into());
        let unbound = pod_of(&rs, "new", PodPhase::Pending);
        let pods = vec![running.clone(), bound.clone(), unbound.clone()];
        let mut core = ReplicaSetSync::new(ReplicaSetConfig::default());
        let actions = core.sync(&rs, &pods, 0);
        let ReplicaSetAction::DeletePods(deleted) = &actions[0] else {
            panic!("expected deletes, got {actions:?}");
        };
        let names: Vec<&str> = deleted.iter().map(|p| p.metadata.name.as_str()).collect();
        assert_eq!(names, vec!["nginx-deployment-abc-new", "nginx-deployment-abc-bound"]);
        // Stale cache still shows all three: no second round of deletes.
        assert!(!core.sync(&rs, &pods, 1).iter().any(|a| matches!(a, ReplicaSetAction::DeletePods(_))));
        core.pod_event(&InformerEvent::Deleted(Object::Pod(unbound)));
        core.pod_event(&InformerEvent::Deleted(Object::Pod(bound)));
        assert!(core.expectations().satisfied("default/nginx-deployment-abc", 2, 0));
        assert!(core.sync(&rs, &[running], 2).iter().all(|a| matches!(a, ReplicaSetAction::UpdateStatus(_))));
    }

    #[test]
    fn status_counts_active_and_running_pods_of_this_replica_set_only() {
        let rs = rs(3);
        let mut other = pod_of(&rs, "other", PodPhase::Running);
        other.metadata.owner_references[0].uid = "uid-other".into();
        let mut finished = pod_of(&rs, "done", PodPhase::Succeeded);
        finished.spec.node_name = Some("n1".into());
        let pods = vec![
            pod_of(&rs, "a", PodPhase::Running),
            pod_of(&rs, "b", PodPhase::Pending),
            pod_of(&rs, "c", PodPhase::Running),
            other,
            finished,
        ];
        let actions = reconcile_replica_set(&rs, &pods, true, 500);
        assert_eq!(actions.len(), 1, "3 active pods: nothing to create or delete");
        let ReplicaSetAction::UpdateStatus(updated) = &actions[0] else {
            panic!("expected status update");
        };
        assert_eq!((updated.status.replicas, updated.status.ready_replicas), (3, 2));
        assert_eq!(updated.status.observed_generation, 1);
    }

    #[test]
    fn new_pods_carry_template_labels_and_owner() {
        let rs = rs(1);
        let pod = new_pod(&rs, "x2b4z");
        assert_eq!(pod.metadata.name, "nginx-deployment-abc-x2b4z");
        assert_eq!(pod.metadata.labels, rs.spec.template.labels);
        assert!(is_owned_by(&pod, &rs));
        assert_eq!(pod.spec.node_name, None);
        assert_eq!(pod.status.phase, PodPhase::Pending);
    }
}
