//! The deployment controller's rollout strategies, pure: a deployment with an explicit
//! `spec.strategy` and the ReplicaSets it owns (as the controller's informer had them) in,
//! the writes to make out, each scale write with the view of every ReplicaSet it was
//! decided on (what the `rollout-bound` checker judges it against). Follows Kubernetes'
//! `pkg/controller/deployment`: `rolling.go` (`rolloutRolling`, `reconcileNewReplicaSet`,
//! `reconcileOldReplicaSets`, `cleanupUnhealthyReplicas`,
//! `scaleDownOldReplicaSetsForRollingUpdate`), `recreate.go` (`rolloutRecreate`),
//! `sync.go` (`getNewReplicaSet`'s revision, `cleanupDeployment`) and
//! `util/deployment_util.go` (`NewRSNewReplicas`, `ResolveFenceposts`, `MaxSurge`,
//! `MaxUnavailable`).
//!
//! Availability: a ReplicaSet's `availableReplicas` is its `readyReplicas` (kubesim's
//! readiness is a pod's Running phase, and with `minReadySeconds` 0 Kubernetes' available
//! is ready). Where Kubernetes sums `status.availableReplicas`, this counts at most
//! `spec.replicas` per ReplicaSet (a status not yet updated after a scale-down would
//! otherwise count pods being deleted as available), and a new ReplicaSet's unavailable
//! pods are never negative: the same arithmetic, never more optimistic than the cache.
//!
//! Simplifications (documented in docs/design.md §4.16): no proportional scaling of a
//! deployment resized mid-rollout (the rolling update itself brings the ReplicaSets to the
//! new size within its budget); no `minReadySeconds`, `paused`, progress deadline or
//! conditions; the deployment itself carries no revision annotation; a write that changes
//! a ReplicaSet ends the sync (the next one starts from the informer's copy, which has the
//! new resourceVersion), where Kubernetes goes on with the object the write returned.

use std::collections::BTreeMap;

use api::{
    Deployment, DeploymentStrategy, IntOrPercent, PodTemplateSpec, ReplicaSet, RollingUpdateDeployment,
    REVISION_ANNOTATION,
};

/// A deployment's strategy, its budget resolved against its replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolvedStrategy {
    Recreate,
    RollingUpdate {
        /// Kubernetes `MaxSurge`: pods above `replicas` the rollout may ask for.
        max_surge: i32,
        /// Kubernetes `MaxUnavailable`: pods below `replicas` it may take away from
        /// the available ones.
        max_unavailable: i32,
    },
}

/// Kubernetes' default rolling-update budget (apps/v1 `SetDefaults_Deployment`).
pub const DEFAULT_BUDGET: IntOrPercent = IntOrPercent::Percent(25);
/// Kubernetes' default `revisionHistoryLimit` (apps/v1).
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;

/// The strategy of a deployment that names one; `None` for one that does not (it rolls
/// out as kubesim always did, see `deployment::reconcile_deployment`).
pub fn resolve(deployment: &Deployment) -> Option<ResolvedStrategy> {
    let replicas = deployment.spec.replicas;
    Some(match deployment.spec.strategy.as_ref()? {
        DeploymentStrategy::Recreate => ResolvedStrategy::Recreate,
        DeploymentStrategy::RollingUpdate(rolling) => {
            let (max_surge, max_unavailable) = resolve_fenceposts(rolling, replicas);
            // Kubernetes `MaxUnavailable`: 0 for no replicas, never more than replicas.
            let max_unavailable = if replicas == 0 { 0 } else { max_unavailable.min(replicas) };
            ResolvedStrategy::RollingUpdate { max_surge, max_unavailable }
        }
    })
}

/// Kubernetes `ResolveFenceposts`: the surge rounds up, the unavailable rounds down; both
/// resolving to zero (only rounding can do it, validation refuses two zeros) makes the
/// unavailable 1, "on the theory that surge might not work due to quota".
pub fn resolve_fenceposts(rolling: &RollingUpdateDeployment, replicas: i32) -> (i32, i32) {
    let surge = rolling.max_surge.unwrap_or(DEFAULT_BUDGET).scaled(replicas, true);
    let unavailable = rolling.max_unavailable.unwrap_or(DEFAULT_BUDGET).scaled(replicas, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// A ReplicaSet's revision (its [`REVISION_ANNOTATION`]; 0 without one).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata.annotations.get(REVISION_ANNOTATION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// One ReplicaSet as the controller saw it when it decided a write.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObservedReplicaSet {
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas` (kubesim: `readyReplicas`).
    pub available: i32,
    /// `status.replicas`: the pods the ReplicaSet controller last counted.
    pub pods: i32,
}

impl ObservedReplicaSet {
    pub fn of(rs: &ReplicaSet) -> Self {
        ObservedReplicaSet {
            name: rs.metadata.name.clone(),
            replicas: rs.spec.replicas,
            available: available(rs),
            pods: rs.status.replicas,
        }
    }
}

/// A ReplicaSet's `availableReplicas` (see the module doc).
fn available(rs: &ReplicaSet) -> i32 {
    rs.status.ready_replicas
}

/// One scale of a ReplicaSet (or its create, from 0) the rollout asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutWrite {
    /// The ReplicaSet as cached, with the new `spec.replicas` (a new one: as to create).
    pub replica_set: ReplicaSet,
    pub create: bool,
    pub from: i32,
    /// Every ReplicaSet of the deployment as the controller saw it when it decided this
    /// write: its informer's copies, with the writes it decided before in the same sync.
    pub observed: Vec<ObservedReplicaSet>,
}

/// What a rollout asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutAction {
    Scale(RolloutWrite),
    /// Update the ReplicaSet (read resourceVersion kept) with its revision annotation.
    Annotate(ReplicaSet),
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit` (name, uid).
    Delete(String, String),
}

/// Planted bugs of the rollout (sim/src/bugs.rs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RolloutBugs {
    /// PLANTED BUG `rollout-ignores-max-surge`: the new ReplicaSet is made (or scaled)
    /// straight to `replicas`, whatever the old ones still hold.
    pub ignore_max_surge: bool,
}

/// The rollout of `deployment` (which names a strategy) from `owned`, its ReplicaSets;
/// `desired` is the ReplicaSet its template should run (`deployment::new_replica_set`).
pub fn reconcile_rollout(
    deployment: &Deployment,
    desired: &ReplicaSet,
    owned: &[ReplicaSet],
    bugs: RolloutBugs,
) -> Vec<RolloutAction> {
    let Some(strategy) = resolve(deployment) else { return Vec::new() };
    let mut view = View::new(owned, &desired.metadata.name);
    let new_revision = view.old().map(revision).max().unwrap_or(0) + 1;
    // `getNewReplicaSet`: the new ReplicaSet's revision is one above every old one's
    // (after a rollback, the old ReplicaSet that becomes new again is renumbered).
    if let Some(new) = view.new_rs() {
        if revision(new) < new_revision {
            let mut annotated = new.clone();
            annotated.metadata.annotations.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
            return vec![RolloutAction::Annotate(annotated)];
        }
    }
    let mut desired = desired.clone();
    desired.metadata.annotations.insert(REVISION_ANNOTATION.into(), new_revision.to_string());
    let replicas = deployment.spec.replicas;
    let writes = match strategy {
        ResolvedStrategy::Recreate => recreate(&mut view, desired, replicas),
        ResolvedStrategy::RollingUpdate { max_surge, max_unavailable } => {
            rolling(&mut view, desired, replicas, max_surge, max_unavailable, bugs)
        }
    };
    if !writes.is_empty() {
        return writes.into_iter().map(RolloutAction::Scale).collect();
    }
    cleanup_history(deployment, &view)
}

/// The controller's view of the deployment's ReplicaSets during one sync: the informer's
/// copies, oldest first (Kubernetes `ReplicaSetsByCreationTimestamp`, then by name), with
/// the scales decided so far applied.
struct View {
    replica_sets: Vec<ReplicaSet>,
    /// The informer's `spec.replicas` of each, before this sync's decisions.
    cached: BTreeMap<String, i32>,
    new_name: String,
}

impl View {
    fn new(owned: &[ReplicaSet], new_name: &str) -> Self {
        let mut replica_sets = owned.to_vec();
        replica_sets.sort_by(|a, b| {
            (a.metadata.creation_timestamp_ms, &a.metadata.name)
                .cmp(&(b.metadata.creation_timestamp_ms, &b.metadata.name))
        });
        let cached = replica_sets.iter().map(|rs| (rs.metadata.name.clone(), rs.spec.replicas)).collect();
        View { replica_sets, cached, new_name: new_name.to_string() }
    }

    fn new_rs(&self) -> Option<&ReplicaSet> {
        self.replica_sets.iter().find(|rs| rs.metadata.name == self.new_name)
    }

    fn old(&self) -> impl Iterator<Item = &ReplicaSet> {
        self.replica_sets.iter().filter(|rs| rs.metadata.name != self.new_name)
    }

    fn observed(&self) -> Vec<ObservedReplicaSet> {
        self.replica_sets.iter().map(ObservedReplicaSet::of).collect()
    }

    /// Kubernetes `GetReplicaCountForReplicaSets`: the pods every ReplicaSet is asked for.
    fn total_replicas(&self) -> i32 {
        self.replica_sets.iter().map(|rs| rs.spec.replicas).sum()
    }

    /// Sets the `idx`th ReplicaSet's replicas to `to`, recording the write (decided on the
    /// view before it).
    fn scale(&mut self, idx: usize, to: i32, writes: &mut Vec<RolloutWrite>) {
        let observed = self.observed();
        let rs = &mut self.replica_sets[idx];
        let from = rs.spec.replicas;
        rs.spec.replicas = to;
        writes.push(RolloutWrite { replica_set: rs.clone(), create: false, from, observed });
    }

    /// Adds the new ReplicaSet with `replicas`, recording its create.
    fn create(&mut self, mut desired: ReplicaSet, replicas: i32, writes: &mut Vec<RolloutWrite>) {
        let observed = self.observed();
        desired.spec.replicas = replicas;
        writes.push(RolloutWrite { replica_set: desired.clone(), create: true, from: 0, observed });
        self.replica_sets.push(desired);
    }

    fn index_of(&self, name: &str) -> usize {
        self.replica_sets.iter().position(|rs| rs.metadata.name == name).expect("a ReplicaSet of the view")
    }
}

/// Kubernetes `rolloutRecreate`: scale every old ReplicaSet to zero; once they are at
/// zero and their pods gone (`oldPodsRunning`; here: every old ReplicaSet's status, for
/// its current generation, counts no pod), make or scale the new one to `replicas`.
fn recreate(view: &mut View, desired: ReplicaSet, replicas: i32) -> Vec<RolloutWrite> {
    let mut writes = Vec::new();
    let active_old: Vec<String> =
        view.old().filter(|rs| rs.spec.replicas > 0).map(|rs| rs.metadata.name.clone()).collect();
    for name in active_old {
        let idx = view.index_of(&name);
        view.scale(idx, 0, &mut writes);
    }
    if !writes.is_empty() {
        return writes;
    }
    let old_pods_running =
        view.old().any(|rs| rs.status.replicas > 0 || rs.status.observed_generation < rs.metadata.generation);
    if old_pods_running {
        return writes;
    }
    match view.new_rs().map(|rs| rs.spec.replicas) {
        None => view.create(desired, replicas, &mut writes),
        Some(current) if current != replicas => {
            let idx = view.index_of(&view.new_name.clone());
            view.scale(idx, replicas, &mut writes);
        }
        Some(_) => {}
    }
    writes
}

/// Kubernetes `rolloutRolling`: `reconcileNewReplicaSet`, and when it scaled nothing,
/// `reconcileOldReplicaSets`.
fn rolling(
    view: &mut View,
    desired: ReplicaSet,
    replicas: i32,
    max_surge: i32,
    max_unavailable: i32,
    bugs: RolloutBugs,
) -> Vec<RolloutWrite> {
    let mut writes = Vec::new();
    let new_replicas = |view: &View, current: i32| {
        if bugs.ignore_max_surge {
            // PLANTED BUG rollout-ignores-max-surge: no surge budget at all.
            return replicas;
        }
        new_rs_new_replicas(view.total_replicas(), current, replicas, max_surge)
    };
    // reconcileNewReplicaSet (a new ReplicaSet is created as `getNewReplicaSet` does,
    // with `NewRSNewReplicas` of the others).
    let Some(current) = view.new_rs().map(|rs| rs.spec.replicas) else {
        let to = new_replicas(view, 0);
        view.create(desired, to, &mut writes);
        return writes;
    };
    let new_idx = view.index_of(&view.new_name.clone());
    if current > replicas {
        view.scale(new_idx, replicas, &mut writes);
        return writes;
    }
    if current < replicas {
        let to = new_replicas(view, current);
        if to != current {
            view.scale(new_idx, to, &mut writes);
            return writes;
        }
    }
    reconcile_old_replica_sets(view, replicas, max_unavailable, &mut writes);
    writes
}

/// Kubernetes `NewRSNewReplicas` for a rolling update: the new ReplicaSet grows by what
/// the surge leaves above every ReplicaSet's replicas, and never beyond `replicas`.
pub fn new_rs_new_replicas(total_replicas: i32, new_current: i32, replicas: i32, max_surge: i32) -> i32 {
    let max_total = replicas + max_surge;
    if total_replicas >= max_total {
        return new_current;
    }
    new_current + (max_total - total_replicas).min(replicas - new_current)
}

/// Kubernetes `reconcileOldReplicaSets`: old ReplicaSets scaled down as far as keeping
/// `replicas - maxUnavailable` available allows, unhealthy replicas first
/// (`cleanupUnhealthyReplicas`), then healthy ones
/// (`scaleDownOldReplicaSetsForRollingUpdate`), oldest ReplicaSet first. Both phases
/// decide on the view; a ReplicaSet both touch gets one write, with its final replicas.
fn reconcile_old_replica_sets(view: &mut View, replicas: i32, max_unavailable: i32, writes: &mut Vec<RolloutWrite>) {
    let old_pods: i32 = view.old().map(|rs| rs.spec.replicas).sum();
    if old_pods == 0 {
        return;
    }
    let Some(new) = view.new_rs() else { return };
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.spec.replicas - available(new).min(new.spec.replicas);
    let max_scaled_down = view.total_replicas() - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    let mut decided = view.replica_sets.clone();
    let is_old = |rs: &ReplicaSet| rs.metadata.name != view.new_name;
    // cleanupUnhealthyReplicas: only pods the cache shows unavailable.
    let mut cleaned = 0;
    for rs in decided.iter_mut().filter(|rs| is_old(rs)) {
        if rs.spec.replicas == 0 {
            continue;
        }
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = rs.spec.replicas - available(rs);
        if unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        rs.spec.replicas -= down;
        cleaned += down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate: available ones, down to minAvailable.
    let available_now: i32 = decided.iter().map(|rs| available(rs).min(rs.spec.replicas)).sum();
    if available_now > min_available {
        let budget = available_now - min_available;
        let mut scaled = 0;
        for rs in decided.iter_mut().filter(|rs| is_old(rs)) {
            if scaled >= budget {
                break;
            }
            if rs.spec.replicas == 0 {
                continue;
            }
            let down = rs.spec.replicas.min(budget - scaled);
            rs.spec.replicas -= down;
            scaled += down;
        }
    }
    for (idx, rs) in decided.iter().enumerate() {
        if rs.spec.replicas != view.replica_sets[idx].spec.replicas {
            view.scale(idx, rs.spec.replicas, writes);
        }
    }
}

/// Kubernetes `cleanupDeployment`, once the rollout is complete (`DeploymentComplete`:
/// the new ReplicaSet holds every replica, all available, the old ones none): the old
/// ReplicaSets beyond `revisionHistoryLimit`, lowest revision first, are deleted, but
/// only one at zero replicas whose status, for its current generation, counts no pod.
fn cleanup_history(deployment: &Deployment, view: &View) -> Vec<RolloutAction> {
    let replicas = deployment.spec.replicas;
    let complete = view.new_rs().is_some_and(|new| {
        new.spec.replicas == replicas && available(new) == replicas && new.status.replicas == replicas
    }) && view.old().all(|rs| rs.spec.replicas == 0 && rs.status.replicas == 0);
    if !complete {
        return Vec::new();
    }
    let limit = deployment.spec.revision_history_limit.unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT);
    let mut cleanable: Vec<&ReplicaSet> = view.old().filter(|rs| !rs.metadata.is_being_deleted()).collect();
    let excess = cleanable.len() as i64 - i64::from(limit);
    if excess <= 0 {
        return Vec::new();
    }
    cleanable.sort_by_key(|rs| (revision(rs), rs.metadata.name.clone()));
    cleanable
        .into_iter()
        .take(excess as usize)
        .filter(|rs| {
            rs.status.replicas == 0
                && rs.spec.replicas == 0
                && rs.metadata.generation <= rs.status.observed_generation
                && view.cached.get(&rs.metadata.name) == Some(&0)
        })
        .map(|rs| RolloutAction::Delete(rs.metadata.name.clone(), rs.metadata.uid.clone()))
        .collect()
}

/// `kubectl rollout undo --to-revision=N`: the template of the deployment's ReplicaSet of
/// revision `to_revision` (among `owned`), without its `pod-template-hash` label, for the
/// user to write into the deployment (Kubernetes removed the rollback subresource;
/// kubectl copies the template client-side). `None` when no ReplicaSet has that revision.
pub fn rollback_template(owned: &[ReplicaSet], to_revision: i64) -> Option<PodTemplateSpec> {
    let rs = owned.iter().find(|rs| revision(rs) == to_revision)?;
    let mut template = rs.spec.template.clone();
    template.labels.remove(crate::deployment::POD_TEMPLATE_HASH_LABEL);
    Some(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::new_replica_set;
    use api::{Container, Labels, ObjectMeta, PodSpec};

    fn labels() -> Labels {
        [("app".to_string(), "web".to_string())].into()
    }

    fn web(replicas: i32, image: &str, strategy: DeploymentStrategy) -> Deployment {
        let mut d = Deployment { metadata: ObjectMeta::named("default", "web"), ..Deployment::default() };
        d.metadata.uid = "uid-web".into();
        d.spec.replicas = replicas;
        d.spec.selector = labels();
        d.spec.template = PodTemplateSpec {
            labels: labels(),
            spec: PodSpec {
                node_name: None,
                containers: vec![Container { name: "web".into(), image: image.into(), cpu_millis: 100 }],
            },
        };
        d.spec.strategy = Some(strategy);
        d
    }

    fn rolling(surge: IntOrPercent, unavailable: IntOrPercent) -> DeploymentStrategy {
        DeploymentStrategy::RollingUpdate(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        })
    }

    /// A ReplicaSet of `d`'s template at `replicas`, `available` of them available, of
    /// `revision`, created at `created_ms`.
    fn rs_of(d: &Deployment, replicas: i32, available: i32, revision: i64, created_ms: u64) -> ReplicaSet {
        let mut rs = new_replica_set(d);
        rs.metadata.uid = format!("uid-{}", rs.metadata.name);
        rs.metadata.creation_timestamp_ms = created_ms;
        rs.metadata.generation = 1;
        rs.metadata.annotations.insert(REVISION_ANNOTATION.into(), revision.to_string());
        rs.spec.replicas = replicas;
        rs.status.replicas = replicas;
        rs.status.ready_replicas = available;
        rs.status.observed_generation = 1;
        rs
    }

    /// The scales asked for, as `(name suffix: "old"/"new"/.., from, to)`.
    fn scales(actions: &[RolloutAction], names: &[(&ReplicaSet, &str)]) -> Vec<(String, i32, i32)> {
        actions
            .iter()
            .map(|a| match a {
                RolloutAction::Scale(w) => {
                    let name = names
                        .iter()
                        .find(|(rs, _)| rs.metadata.name == w.replica_set.metadata.name)
                        .map_or("?", |(_, n)| n);
                    (name.to_string(), w.from, w.replica_set.spec.replicas)
                }
                other => panic!("expected scales, got {other:?}"),
            })
            .collect()
    }

    /// Kubernetes `TestResolveFenceposts` and `GetScaledValueFromIntOrPercent`: surge rounds
    /// up, unavailable down; both zero after rounding makes the unavailable 1.
    #[test]
    fn fenceposts_round_as_kubernetes_does() {
        use IntOrPercent::{Int, Percent};
        let fence = |s, u, replicas| {
            resolve_fenceposts(&RollingUpdateDeployment { max_surge: Some(s), max_unavailable: Some(u) }, replicas)
        };
        assert_eq!(fence(Percent(25), Percent(25), 5), (2, 1));
        assert_eq!(fence(Percent(25), Percent(25), 10), (3, 2));
        assert_eq!(fence(Int(1), Int(1), 5), (1, 1));
        assert_eq!(fence(Percent(0), Percent(10), 5), (0, 1), "both 0 after rounding");
        assert_eq!(fence(Percent(100), Percent(0), 3), (3, 0));
        assert_eq!(
            resolve_fenceposts(&RollingUpdateDeployment::default(), 4),
            (1, 1),
            "unset: Kubernetes' 25%/25% default"
        );
        // MaxUnavailable never above replicas, 0 for no replicas.
        let d = web(2, "a", rolling(Int(1), Int(5)));
        assert_eq!(resolve(&d), Some(ResolvedStrategy::RollingUpdate { max_surge: 1, max_unavailable: 2 }));
        let d = web(0, "a", rolling(Int(1), Int(5)));
        assert_eq!(resolve(&d), Some(ResolvedStrategy::RollingUpdate { max_surge: 1, max_unavailable: 0 }));
    }

    /// A rolling update of 5 replicas, maxSurge 1, maxUnavailable 1, step by step as
    /// Kubernetes' `rolloutRolling` makes it.
    #[test]
    fn a_rolling_update_surges_then_retires_within_budget() {
        let strategy = rolling(IntOrPercent::Int(1), IntOrPercent::Int(1));
        let v1 = web(5, "nginx:1", strategy.clone());
        let v2 = web(5, "nginx:2", strategy);
        let old = rs_of(&v1, 5, 5, 1, 1);
        let desired = new_replica_set(&v2);
        // The new ReplicaSet is created at 1 (5 + 1 surge - 5), with revision 2.
        let actions = reconcile_rollout(&v2, &desired, std::slice::from_ref(&old), RolloutBugs::default());
        match &actions[..] {
            [RolloutAction::Scale(w)] => {
                assert!(w.create);
                assert_eq!((w.from, w.replica_set.spec.replicas), (0, 1));
                assert_eq!(revision(&w.replica_set), 2);
                assert_eq!(w.observed, vec![ObservedReplicaSet::of(&old)]);
            }
            other => panic!("{other:?}"),
        }
        // New at 1, not available: the old one may lose 1 (5 + 1 - 4 - 1 unavailable = 1).
        let new = rs_of(&v2, 1, 0, 2, 2);
        let names = [(&old, "old"), (&new, "new")];
        let actions = reconcile_rollout(&v2, &desired, &[old.clone(), new.clone()], RolloutBugs::default());
        assert_eq!(scales(&actions, &names), vec![("old".into(), 5, 4)]);
        // Old at 4: the new one may grow to 2.
        let old4 = rs_of(&v1, 4, 4, 1, 1);
        let actions = reconcile_rollout(&v2, &desired, &[old4.clone(), new.clone()], RolloutBugs::default());
        assert_eq!(scales(&actions, &[(&old4, "old"), (&new, "new")]), vec![("new".into(), 1, 2)]);
        // Total at 6 and nothing new available: nothing moves.
        let new2 = rs_of(&v2, 2, 0, 2, 2);
        let actions = reconcile_rollout(&v2, &desired, &[old4.clone(), new2], RolloutBugs::default());
        assert!(actions.is_empty(), "{actions:?}");
        // With the planted bug the new ReplicaSet goes straight to 5.
        let bug = RolloutBugs { ignore_max_surge: true };
        let actions = reconcile_rollout(&v2, &desired, std::slice::from_ref(&old), bug);
        assert!(matches!(&actions[..], [RolloutAction::Scale(w)] if w.replica_set.spec.replicas == 5));
    }

    /// `cleanupUnhealthyReplicas` first takes the unavailable pods of old ReplicaSets, then
    /// `scaleDownOldReplicaSetsForRollingUpdate` the available ones down to minAvailable;
    /// one ReplicaSet both touch gets one write.
    #[test]
    fn old_replica_sets_lose_unhealthy_pods_first() {
        let strategy = rolling(IntOrPercent::Int(1), IntOrPercent::Int(1));
        let v1 = web(5, "nginx:1", strategy.clone());
        let v2 = web(5, "nginx:2", strategy.clone());
        let v3 = web(5, "nginx:3", strategy);
        let oldest = rs_of(&v1, 3, 1, 1, 1); // 2 unavailable
        let older = rs_of(&v2, 2, 2, 2, 2);
        let new = rs_of(&v3, 1, 1, 3, 3);
        let desired = new_replica_set(&v3);
        let names = [(&oldest, "oldest"), (&older, "older"), (&new, "new")];
        // Total 6 = 5 + 1: no surge left. maxScaledDown = 6 - 4 - 0 = 2: the 2 unhealthy of
        // oldest go; available then 1 + 2 + 1 = 4 = minAvailable: nothing more.
        let actions =
            reconcile_rollout(&v3, &desired, &[oldest.clone(), older.clone(), new.clone()], Default::default());
        assert_eq!(scales(&actions, &names), vec![("oldest".into(), 3, 1)]);
        // Every old pod available: 1 + 2 + 1 = 4 ... with new fully available at 2, total 6,
        // available 6 - minAvailable 4 = 2: oldest first.
        let oldest = rs_of(&v1, 2, 2, 1, 1);
        let new = rs_of(&v3, 2, 2, 3, 3);
        let actions = reconcile_rollout(&v3, &desired, &[oldest.clone(), older.clone(), new], Default::default());
        assert_eq!(scales(&actions, &names), vec![("oldest".into(), 2, 0)]);
        match &actions[0] {
            RolloutAction::Scale(w) => assert_eq!(w.observed.len(), 3),
            other => panic!("{other:?}"),
        }
    }

    /// Kubernetes `rolloutRecreate`: old ReplicaSets to zero, then (their pods gone) the
    /// new one at full size.
    #[test]
    fn recreate_waits_for_the_old_pods() {
        let v1 = web(3, "nginx:1", DeploymentStrategy::Recreate);
        let v2 = web(3, "nginx:2", DeploymentStrategy::Recreate);
        let desired = new_replica_set(&v2);
        let old = rs_of(&v1, 3, 3, 1, 1);
        let actions = reconcile_rollout(&v2, &desired, std::slice::from_ref(&old), Default::default());
        assert_eq!(scales(&actions, &[(&old, "old")]), vec![("old".into(), 3, 0)]);
        // At zero, but its status still counts pods: wait.
        let mut draining = rs_of(&v1, 0, 0, 1, 1);
        draining.status.replicas = 2;
        assert!(reconcile_rollout(&v2, &desired, &[draining.clone()], Default::default()).is_empty());
        // Its status not yet for the scaled generation: wait too.
        draining.status.replicas = 0;
        draining.metadata.generation = 2;
        assert!(reconcile_rollout(&v2, &desired, &[draining.clone()], Default::default()).is_empty());
        draining.status.observed_generation = 2;
        let actions = reconcile_rollout(&v2, &desired, &[draining], Default::default());
        assert!(matches!(&actions[..], [RolloutAction::Scale(w)] if w.create && w.replica_set.spec.replicas == 3));
    }

    /// `getNewReplicaSet` renumbers an old ReplicaSet that becomes new again (a rollback);
    /// `cleanupDeployment` deletes the lowest revisions beyond the limit, once complete.
    #[test]
    fn revisions_rollback_and_history_limit() {
        let strategy = rolling(IntOrPercent::Int(1), IntOrPercent::Int(1));
        let v1 = web(2, "nginx:1", strategy.clone());
        let v2 = web(2, "nginx:2", strategy.clone());
        let v3 = web(2, "nginx:3", strategy);
        let r1 = rs_of(&v1, 0, 0, 1, 1);
        let r2 = rs_of(&v2, 0, 0, 2, 2);
        let r3 = rs_of(&v3, 2, 2, 3, 3);
        // kubectl rollout undo --to-revision=1: the template of revision 1, without its hash.
        let owned = [r1.clone(), r2.clone(), r3.clone()];
        let template = rollback_template(&owned, 1).expect("revision 1");
        assert_eq!(template, v1.spec.template);
        assert_eq!(rollback_template(&owned, 7), None);
        let mut back = v3.clone();
        back.spec.template = template;
        let desired = new_replica_set(&back);
        assert_eq!(desired.metadata.name, r1.metadata.name);
        let actions = reconcile_rollout(&back, &desired, &owned, Default::default());
        match &actions[..] {
            [RolloutAction::Annotate(rs)] => {
                assert_eq!(rs.metadata.name, r1.metadata.name);
                assert_eq!(revision(rs), 4);
            }
            other => panic!("{other:?}"),
        }
        // Complete at revision 3 with a limit of 1: revision 1 (the lowest) goes.
        let mut limited = v3.clone();
        limited.spec.revision_history_limit = Some(1);
        let desired = new_replica_set(&limited);
        let actions = reconcile_rollout(&limited, &desired, &owned, Default::default());
        assert_eq!(actions, vec![RolloutAction::Delete(r1.metadata.name.clone(), r1.metadata.uid.clone())]);
        // Not while the rollout is not complete.
        let mut r3_unready = r3.clone();
        r3_unready.status.ready_replicas = 1;
        let actions = reconcile_rollout(&limited, &desired, &[r1, r2, r3_unready], Default::default());
        assert!(actions.is_empty(), "{actions:?}");
    }
}
