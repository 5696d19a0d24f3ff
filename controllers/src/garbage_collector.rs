//! The garbage collector (Kubernetes `pkg/controller/garbagecollector`): deletes objects
//! whose owners are gone, and carries out the foreground and orphan propagation policies
//! the apiserver marks owners with (`foregroundDeletion` and `orphan` finalizers, see
//! `apiserver::registry::Registry::delete`).
//!
//! - The graph ([`Graph`], `graph_builder.go`): every object of the tracked resources, by
//!   uid, with its owner references, finalizers and deletion mark, and each owner uid's
//!   dependents, kept from the controller-manager's informers. Its events decide what to
//!   look at: a dependent whose owner the graph does not hold (Kubernetes' "virtual"
//!   owner node), the dependents of a deleted owner, an owner newly marked for foreground
//!   or orphan deletion.
//! - An item is judged (`attemptToDeleteItem`) on its *live* state: a quorum GET of the
//!   item, then a GET of each owner by name, whose uid must be the reference's. An owner
//!   is absent when the GET answers 404 or another object (another uid) holds the name;
//!   the informer cache is never trusted for absence, since it may simply not have seen
//!   the owner yet (`isDangling`, with `absentOwnerCache` of owners verified absent: a uid
//!   never comes back). The pure decision is [`decide`] (`classifyReferences` and the
//!   switch after it): with a live owner that is not deleting its dependents in the
//!   foreground the item stays (the references to absent or foreground-deleting owners
//!   are removed); otherwise it is deleted, under a uid precondition, in the foreground
//!   when an owner waits for it and it has dependents of its own, else with the policy
//!   its own finalizers ask for.
//! - An owner marked with `foregroundDeletion` (`processDeletingDependentsItem`) waits for
//!   its dependents whose reference has `blockOwnerDeletion`; once the graph holds none,
//!   the collector removes the finalizer (the apiserver then removes the owner if no
//!   other finalizer is left). An owner marked `orphan` (`orphanDependents`) has the
//!   references to it removed from every dependent the graph holds, then the finalizer.
//!
//! Leader-elected with the rest of the controller-manager, every write fenced. It runs
//! under its own identity, as kube-controller-manager with
//! `--use-service-account-credentials` runs it ([`GARBAGE_COLLECTOR_USER`]), so that the
//! history tells its deletes from the other controllers'.
//!
//! Simplifications (deliberate): one worker; owners are looked up among the tracked
//! resources by kind (a reference to another kind is treated as a live owner, never
//! collected: Kubernetes retries an unresolvable kind); dependents are not "unblocked"
//! when two foreground deletions wait on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use api::{
    ApiClient, ApiError, DeleteOptions, Object, ObjectMeta, OwnerReference, PropagationPolicy, Resource,
    FINALIZER_FOREGROUND_DELETION, FINALIZER_ORPHAN,
};

use crate::driver::{run_resync, run_worker, wait_for_cache_sync, SyncError, TaskGroup};
use crate::informer::{object_key, split_key, Informer, InformerEvent};
use crate::leader_election::LeaderHandle;
use crate::workqueue::{SharedWorkQueue, WorkQueueConfig};

pub use api::GARBAGE_COLLECTOR_USER;

/// Bound on the owner uids remembered as verified absent (Kubernetes' `absentOwnerCache`
/// is an LRU of 500); past it the set starts over (a forgotten uid is only looked up again).
pub const MAX_ABSENT_OWNERS: usize = 4096;

/// How the garbage collector runs, and its planted bug.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GarbageCollectorConfig {
    /// The resources whose objects the collector tracks, as owners and as dependents (a
    /// user's custom kind may be added). An owner reference to a kind not among them is
    /// never judged absent.
    pub resources: Vec<Resource>,
    /// Every tracked object with owner references, or marked for foreground or orphan
    /// deletion, is looked at again this often (the informers' resync).
    pub resync_period_ms: u64,
    pub workqueue: WorkQueueConfig,
    /// PLANTED BUG (`kubesim --bug gc-owner-by-name`), off by default. The collector takes
    /// an owner to be present whenever an object of the reference's kind and name exists,
    /// without comparing its uid with the reference's. After an owner is deleted and a new
    /// one is created under the same name (`kubectl delete` then `kubectl apply`), the old
    /// owner's dependents are never collected: they keep running, owned by nothing that
    /// exists. Kubernetes' `isDangling` compares `ownerReference.UID` with the live
    /// object's uid for this reason. Caught by the garbage-collection invariant (an
    /// object at rest whose owner, by uid, is gone).
    pub planted_bug_owner_by_name: bool,
}

impl Default for GarbageCollectorConfig {
    fn default() -> Self {
        Self {
            resources: vec![
                Resource::Deployments,
                Resource::ReplicaSets,
                Resource::Pods,
                Resource::ConfigMaps,
                Resource::Secrets,
            ],
            resync_period_ms: 30_000,
            workqueue: WorkQueueConfig::default(),
            planted_bug_owner_by_name: false,
        }
    }
}

/// Where an object lives: its resource, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemRef {
    pub resource: Resource,
    /// Empty for a cluster-scoped kind.
    pub namespace: String,
    pub name: String,
}

impl ItemRef {
    fn of(resource: Resource, meta: &ObjectMeta) -> Self {
        Self { resource, namespace: meta.namespace.clone(), name: meta.name.clone() }
    }

    /// The work queue key: `<resource>|<namespace>/<name>`.
    fn queue_key(&self) -> String {
        format!("{}|{}", self.resource, object_key(&self.namespace, &self.name))
    }
}

/// One object as the graph holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct GraphNode {
    item: ItemRef,
    owners: Vec<OwnerReference>,
    finalizers: Vec<String>,
    being_deleted: bool,
}

impl GraphNode {
    /// Kubernetes `isDeletingDependents`: marked for deletion with `foregroundDeletion`.
    fn deleting_dependents(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == FINALIZER_FOREGROUND_DELETION)
    }

    fn orphaning(&self) -> bool {
        self.being_deleted && self.finalizers.iter().any(|f| f == FINALIZER_ORPHAN)
    }
}

/// The owner→dependents graph as the informers showed it (`graph_builder.go`): the sans-IO
/// part of the collector. Each change in says which items to look at.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// By uid.
    nodes: BTreeMap<String, GraphNode>,
    /// Owner uid → the uids of the objects whose references name it.
    dependents: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// An empty graph (a new leadership term's).
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in one informer event of `resource`; returns the items to look at
    /// (`processGraphChanges`).
    pub fn observe(&mut self, resource: Resource, event: &InformerEvent) -> Vec<ItemRef> {
        if let InformerEvent::Modified { old, new } = event {
            if old.metadata().uid != new.metadata().uid {
                // A relist found another object under the name (deleted and created again
                // while the watch was away): the old one is gone, the new one new.
                let mut attend = self.observe(resource, &InformerEvent::Deleted(old.clone()));
                attend.extend(self.observe(resource, &InformerEvent::Added(new.clone())));
                return attend;
            }
        }
        let meta = event.object().metadata();
        let mut attend = Vec::new();
        if let InformerEvent::Deleted(_) = event {
            let Some(node) = self.remove(&meta.uid) else {
                return attend;
            };
            // Its dependents may have lost their last owner; an owner deleting its
            // dependents in the foreground may have lost its last blocking one.
            for dependent in self.dependents.get(&meta.uid).into_iter().flatten() {
                attend.extend(self.nodes.get(dependent).map(|d| d.item.clone()));
            }
            for owner in &node.owners {
                attend.extend(self.nodes.get(&owner.uid).filter(|o| o.being_deleted).map(|o| o.item.clone()));
            }
            return attend;
        }
        let node = GraphNode {
            item: ItemRef::of(resource, meta),
            owners: meta.owner_references.clone(),
            finalizers: meta.finalizers.clone(),
            being_deleted: meta.is_being_deleted(),
        };
        let was = self.remove(&meta.uid);
        let starts_deleting_dependents =
            node.deleting_dependents() && !was.as_ref().is_some_and(|w| w.deleting_dependents());
        if node.orphaning() || node.deleting_dependents() {
            attend.push(node.item.clone());
        }
        if starts_deleting_dependents {
            // Kubernetes `processTransitions`: every dependent is looked at once its owner
            // starts deleting them.
            for dependent in self.dependents.get(&meta.uid).into_iter().flatten() {
                attend.extend(self.nodes.get(dependent).map(|d| d.item.clone()));
            }
        }
        // A dependent of an owner the graph does not hold (a "virtual" owner) or of an
        // owner deleting its dependents is judged against the live owners.
        let needs_judging =
            node.owners.iter().any(|owner| self.nodes.get(&owner.uid).is_none_or(GraphNode::deleting_dependents));
        if needs_judging && !node.being_deleted {
            attend.push(node.item.clone());
        }
        for owner in &node.owners {
            self.dependents.entry(owner.uid.clone()).or_default().insert(meta.uid.clone());
        }
        self.nodes.insert(meta.uid.clone(), node);
        attend
    }

    fn remove(&mut self, uid: &str) -> Option<GraphNode> {
        let node = self.nodes.remove(uid)?;
        for owner in &node.owners {
            if let Some(dependents) = self.dependents.get_mut(&owner.uid) {
                dependents.remove(uid);
                if dependents.is_empty() {
                    self.dependents.remove(&owner.uid);
                }
            }
        }
        Some(node)
    }

    /// The items whose references name `owner_uid`, with the reference to it.
    fn dependents_of(&self, owner_uid: &str) -> Vec<(ItemRef, OwnerReference)> {
        let dependents = self.dependents.get(owner_uid).into_iter().flatten();
        dependents
            .filter_map(|uid| self.nodes.get(uid))
            .filter_map(|node| {
                let reference = node.owners.iter().find(|o| o.uid == owner_uid)?;
                Some((node.item.clone(), reference.clone()))
            })
            .collect()
    }

    /// Whether the graph holds a dependent of `uid`.
    fn has_dependents(&self, uid: &str) -> bool {
        self.dependents.get(uid).is_some_and(|d| !d.is_empty())
    }

    /// Every item worth a periodic look: with owner references, or marked for foreground
    /// or orphan deletion.
    fn items_to_resync(&self) -> Vec<ItemRef> {
        let items = self.nodes.values().filter(|n| !n.owners.is_empty() || n.orphaning() || n.deleting_dependents());
        items.map(|n| n.item.clone()).collect()
    }
}

/// What a live lookup of one owner reference found (`classifyReferences`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// No object of that name, or one with another uid (verified by a live GET).
    Absent,
    /// The owner exists and is not deleting its dependents in the foreground ("solid").
    Present,
    /// The owner exists, marked for deletion with `foregroundDeletion`.
    DeletingDependents,
}

/// What to do with an item that is not itself marked for deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It has a live owner and references nothing else to drop.
    Keep,
    /// It has a live owner: remove the references to these owner uids (absent, or
    /// deleting their dependents in the foreground).
    RemoveOwnerReferences(Vec<String>),
    /// No live owner is left: delete it (under a uid precondition) with this policy.
    Delete(PropagationPolicy),
}

/// Kubernetes `attemptToDeleteItem` after `classifyReferences`: `owners` are the item's
/// references with what a live lookup found; `has_dependents` whether the graph holds
/// dependents of the item.
pub fn decide(meta: &ObjectMeta, owners: &[(OwnerReference, OwnerState)], has_dependents: bool) -> Decision {
    let uids_in = |state: OwnerState| -> Vec<String> {
        owners.iter().filter(|(_, s)| *s == state).map(|(o, _)| o.uid.clone()).collect()
    };
    let (dangling, waiting) = (uids_in(OwnerState::Absent), uids_in(OwnerState::DeletingDependents));
    if owners.iter().any(|(_, state)| *state == OwnerState::Present) {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Keep;
        }
        return Decision::RemoveOwnerReferences(dangling.into_iter().chain(waiting).collect());
    }
    if !waiting.is_empty() && has_dependents {
        return Decision::Delete(PropagationPolicy::Foreground);
    }
    Decision::Delete(if meta.has_finalizer(FINALIZER_ORPHAN) {
        PropagationPolicy::Orphan
    } else if meta.has_finalizer(FINALIZER_FOREGROUND_DELETION) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    })
}

/// The garbage collector for one leadership term of the controller-manager.
pub struct GarbageCollector {
    pub config: GarbageCollectorConfig,
    /// The collector's own client ([`GARBAGE_COLLECTOR_USER`]).
    pub client: ApiClient,
    pub leader: LeaderHandle,
    /// One informer of each resource of `config.resources`, not started yet (the caller
    /// starts them after this subscribed, as for every controller of the term).
    pub informers: BTreeMap<Resource, Informer>,
}

/// What the worker shares with the informer handlers.
struct Shared {
    config: GarbageCollectorConfig,
    client: ApiClient,
    leader: LeaderHandle,
    informers: BTreeMap<Resource, Informer>,
    graph: Mutex<Graph>,
    /// Owner uids verified absent by a live lookup (Kubernetes' `absentOwnerCache`).
    absent_owners: Mutex<BTreeSet<String>>,
    queue: SharedWorkQueue,
}

impl GarbageCollector {
    /// Subscribes to the informers and spawns the worker and resync into `tasks`.
    pub fn start(self, tasks: &mut TaskGroup) {
        let queue = SharedWorkQueue::new(self.config.workqueue.clone());
        let shared = Arc::new(Shared {
            config: self.config,
            client: self.client,
            leader: self.leader,
            informers: self.informers,
            graph: Mutex::new(Graph::new()),
            absent_owners: Mutex::new(BTreeSet::new()),
            queue: queue.clone(),
        });
        for (resource, informer) in &shared.informers {
            // The handler holds the graph through a weak reference: the term's tasks hold
            // the collector, the informers must not hold it back.
            let (resource, weak, queue) = (*resource, Arc::downgrade(&shared), queue.clone());
            informer.subscribe(Box::new(move |event: &InformerEvent| {
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                let attend = shared.graph.lock().expect("gc graph").observe(resource, event);
                for item in attend {
                    queue.add(&item.queue_key());
                }
            }));
        }
        let resync_shared = Arc::downgrade(&shared);
        let period_ms = shared.config.resync_period_ms;
        tasks.spawn(run_resync(queue.clone(), period_ms, move || match resync_shared.upgrade() {
            Some(shared) => {
                let items = shared.graph.lock().expect("gc graph").items_to_resync();
                items.iter().map(ItemRef::queue_key).collect()
            }
            None => Vec::new(),
        }));
        let leader = shared.leader.clone();
        tasks.spawn(async move {
            wait_for_cache_sync(&shared.informers.values().collect::<Vec<_>>()).await;
            run_worker(queue, Some(leader), |key| {
                let shared = shared.clone();
                async move { shared.attend(&key).await }
            })
            .await
        });
    }
}

impl Shared {
    /// The item a queue key names (`None` for a key of an untracked resource).
    fn item_of(&self, key: &str) -> Option<ItemRef> {
        let (resource, object) = key.split_once('|')?;
        let resource = *self.informers.keys().find(|r| r.to_string() == resource)?;
        let (namespace, name) = split_key(object);
        Some(ItemRef { resource, namespace: namespace.to_string(), name: name.to_string() })
    }

    /// The tracked resource of an owner reference's kind.
    fn resource_of_kind(&self, kind: &str) -> Option<Resource> {
        self.informers.keys().copied().find(|r| r.kind() == kind)
    }

    /// Looks at one item as it is now.
    async fn attend(&self, key: &str) -> Result<(), SyncError> {
        let Some(item) = self.item_of(key) else {
            return Ok(());
        };
        let cached = self.informers[&item.resource].get(&object_key(&item.namespace, &item.name));
        let Some(cached) = cached else {
            return Ok(()); // gone: nothing to collect
        };
        let meta = cached.metadata();
        if meta.is_being_deleted() {
            if meta.has_finalizer(FINALIZER_ORPHAN) {
                return self.orphan_dependents(&item, &meta.uid).await;
            }
            if meta.has_finalizer(FINALIZER_FOREGROUND_DELETION) {
                return self.delete_dependents_first(&item, &meta.uid).await;
            }
            return Ok(());
        }
        if meta.owner_references.is_empty() {
            return Ok(());
        }
        self.attempt_to_delete(&item, &meta.uid).await
    }

    /// `attemptToDeleteItem` for an item not marked for deletion.
    async fn attempt_to_delete(&self, item: &ItemRef, cached_uid: &str) -> Result<(), SyncError> {
        let Some(latest) = self.live(item, cached_uid).await? else {
            return Ok(());
        };
        let meta = latest.metadata();
        if meta.is_being_deleted() || meta.owner_references.is_empty() {
            return Ok(());
        }
        let mut owners = Vec::new();
        for reference in &meta.owner_references {
            owners.push((reference.clone(), self.owner_state(reference, &meta.namespace).await?));
        }
        let has_dependents = self.graph.lock().expect("gc graph").has_dependents(&meta.uid);
        match decide(meta, &owners, has_dependents) {
            Decision::Keep => Ok(()),
            Decision::RemoveOwnerReferences(uids) => {
                coverage::reached!("controllers.gc.owner-references-removed");
                let mut updated = latest.clone();
                updated.metadata_mut().owner_references.retain(|o| !uids.contains(&o.uid));
                self.write(self.client.update(updated, self.leader.write_fence()?).await)
            }
            Decision::Delete(policy) => {
                coverage::reached!("controllers.gc.dependent-deleted");
                let options =
                    DeleteOptions { propagation_policy: Some(policy), uid_precondition: Some(meta.uid.clone()) };
                let fence = self.leader.write_fence()?;
                let deleted =
                    self.client.delete_with(item.resource, &item.namespace, &item.name, None, options, fence).await;
                self.write(deleted)
            }
        }
    }

    /// What a live lookup of `reference` finds (`isDangling`): the owner by name, in the
    /// dependent's namespace unless its kind is cluster-scoped, and its uid compared.
    async fn owner_state(&self, reference: &OwnerReference, namespace: &str) -> Result<OwnerState, SyncError> {
        if self.absent_owners.lock().expect("absent owners").contains(&reference.uid) {
            return Ok(OwnerState::Absent);
        }
        let Some(resource) = self.resource_of_kind(&reference.kind) else {
            return Ok(OwnerState::Present);
        };
        let namespace = if resource.namespaced() { namespace } else { "" };
        let owner = match self.client.get(resource, namespace, &reference.name).await {
            Ok(owner) => owner,
            Err(ApiError::NotFound { .. }) => {
                self.owner_absent(&reference.uid);
                return Ok(OwnerState::Absent);
            }
            Err(e) => return Err(e.into()),
        };
        let meta = owner.metadata();
        // PLANTED BUG (`gc-owner-by-name`): the uid comparison is skipped, so a new owner
        // of the same name stands in for the one the reference names.
        if meta.uid != reference.uid && !self.config.planted_bug_owner_by_name {
            coverage::reached!("controllers.gc.owner-replaced-under-same-name");
            self.owner_absent(&reference.uid);
            return Ok(OwnerState::Absent);
        }
        Ok(if meta.is_being_deleted() && meta.has_finalizer(FINALIZER_FOREGROUND_DELETION) {
            OwnerState::DeletingDependents
        } else {
            OwnerState::Present
        })
    }

    fn owner_absent(&self, uid: &str) {
        let mut absent = self.absent_owners.lock().expect("absent owners");
        if absent.len() >= MAX_ABSENT_OWNERS {
            absent.clear();
        }
        absent.insert(uid.to_string());
    }

    /// `processDeletingDependentsItem`: the owner waits for its blocking dependents; once
    /// the graph holds none, its `foregroundDeletion` finalizer is removed.
    async fn delete_dependents_first(&self, owner: &ItemRef, uid: &str) -> Result<(), SyncError> {
        let dependents = self.graph.lock().expect("gc graph").dependents_of(uid);
        let blocking: Vec<&ItemRef> =
            dependents.iter().filter(|(_, r)| r.block_owner_deletion).map(|(i, _)| i).collect();
        if blocking.is_empty() {
            coverage::reached!("controllers.gc.foreground-finalizer-removed");
            return self.remove_finalizer(owner, uid, FINALIZER_FOREGROUND_DELETION).await;
        }
        for dependent in blocking {
            self.queue.add(&dependent.queue_key());
        }
        Ok(())
    }

    /// `orphanDependents`: the references to the owner are removed from each of its
    /// dependents, then its `orphan` finalizer.
    async fn orphan_dependents(&self, owner: &ItemRef, uid: &str) -> Result<(), SyncError> {
        let dependents = self.graph.lock().expect("gc graph").dependents_of(uid);
        for (dependent, _) in dependents {
            let object = match self.client.get(dependent.resource, &dependent.namespace, &dependent.name).await {
                Ok(object) => object,
                Err(ApiError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if !object.metadata().owner_references.iter().any(|o| o.uid == uid) {
                continue;
            }
            coverage::reached!("controllers.gc.dependent-orphaned");
            let mut updated = object;
            updated.metadata_mut().owner_references.retain(|o| o.uid != uid);
            self.write(self.client.update(updated, self.leader.write_fence()?).await)?;
        }
        self.remove_finalizer(owner, uid, FINALIZER_ORPHAN).await
    }

    /// Removes `finalizer` from the live object `item` if it is still the one of `uid`.
    async fn remove_finalizer(&self, item: &ItemRef, uid: &str, finalizer: &str) -> Result<(), SyncError> {
        let Some(latest) = self.live(item, uid).await? else {
            return Ok(());
        };
        if !latest.metadata().has_finalizer(finalizer) {
            return Ok(());
        }
        let mut updated = latest;
        updated.metadata_mut().finalizers.retain(|f| f != finalizer);
        self.write(self.client.update(updated, self.leader.write_fence()?).await)
    }

    /// The item as the apiserver has it now, if it is still the object of `uid`.
    async fn live(&self, item: &ItemRef, uid: &str) -> Result<Option<Object>, SyncError> {
        match self.client.get(item.resource, &item.namespace, &item.name).await {
            Ok(object) if object.metadata().uid == uid => Ok(Some(object)),
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A write's outcome: gone is done; a conflict (changed meanwhile, or a uid
    /// precondition that failed) is looked at again.
    fn write(&self, result: Result<Object, ApiError>) -> Result<(), SyncError> {
        match result {
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: true,
            block_owner_deletion: block,
        }
    }

    fn meta(uid: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        let mut meta = ObjectMeta::named("default", format!("obj-{uid}"));
        meta.uid = uid.into();
        meta.owner_references = owners;
        meta
    }

    #[test]
    fn decide_follows_attempt_to_delete_item() {
        let (a, b) = (owner("a", true), owner("b", true));
        let item = meta("x", vec![a.clone(), b.clone()]);
        use OwnerState::*;
        let check = |states: [OwnerState; 2], has_dependents: bool| {
            decide(&item, &[(a.clone(), states[0]), (b.clone(), states[1])], has_dependents)
        };
        assert_eq!(check([Present, Present], false), Decision::Keep);
        assert_eq!(check([Present, Absent], false), Decision::RemoveOwnerReferences(vec!["b".into()]));
        assert_eq!(check([DeletingDependents, Present], true), Decision::RemoveOwnerReferences(vec!["a".into()]));
        assert_eq!(check([Absent, Absent], true), Decision::Delete(PropagationPolicy::Background));
        assert_eq!(check([Absent, DeletingDependents], true), Decision::Delete(PropagationPolicy::Foreground));
        assert_eq!(check([Absent, DeletingDependents], false), Decision::Delete(PropagationPolicy::Background));
        let mut orphaning = item.clone();
        orphaning.finalizers = vec![FINALIZER_ORPHAN.into()];
        assert_eq!(decide(&orphaning, &[(a.clone(), Absent)], false), Decision::Delete(PropagationPolicy::Orphan));
    }

    fn pod(uid: &str, owners: Vec<OwnerReference>) -> Object {
        Object::Pod(api::Pod { metadata: meta(uid, owners), ..Default::default() })
    }

    fn rs(uid: &str, finalizers: &[&str]) -> Object {
        let mut m = meta(uid, Vec::new());
        m.name = format!("rs-{uid}");
        m.finalizers = finalizers.iter().map(|f| f.to_string()).collect();
        m.deletion_timestamp_ms = (!finalizers.is_empty()).then_some(1);
        Object::ReplicaSet(api::ReplicaSet { metadata: m, ..Default::default() })
    }

    fn names(items: Vec<ItemRef>) -> Vec<String> {
        items.into_iter().map(|i| i.name).collect()
    }

    #[test]
    fn the_graph_says_which_items_to_look_at() {
        let mut graph = Graph::new();
        // A dependent whose owner the graph does not hold is judged (a virtual owner).
        let p = pod("p", vec![owner("r", true)]);
        assert_eq!(names(graph.observe(Resource::Pods, &InformerEvent::Added(p.clone()))), ["obj-p"]);
        // Once the owner is known, changes of the dependent need no judging.
        assert!(graph.observe(Resource::ReplicaSets, &InformerEvent::Added(rs("r", &[]))).is_empty());
        let modified = InformerEvent::Modified { old: p.clone(), new: p.clone() };
        assert!(graph.observe(Resource::Pods, &modified).is_empty());
        // The owner starts deleting its dependents: it and its dependents are looked at.
        let marked = InformerEvent::Modified { old: rs("r", &[]), new: rs("r", &[FINALIZER_FOREGROUND_DELETION]) };
        assert_eq!(names(graph.observe(Resource::ReplicaSets, &marked)), ["rs-r", "obj-p"]);
        assert_eq!(graph.dependents_of("r").len(), 1);
        // The dependent goes: the waiting owner is looked at again.
        assert_eq!(names(graph.observe(Resource::Pods, &InformerEvent::Deleted(p))), ["rs-r"]);
        assert!(!graph.has_dependents("r"));
        // The owner goes: its (new) dependents are looked at.
        let q = pod("q", vec![owner("r", false)]);
        graph.observe(Resource::Pods, &InformerEvent::Added(q));
        let gone = InformerEvent::Deleted(rs("r", &[FINALIZER_FOREGROUND_DELETION]));
        assert_eq!(names(graph.observe(Resource::ReplicaSets, &gone)), ["obj-q"]);
        assert_eq!(names(graph.items_to_resync()), ["obj-q"]);
        // A relist that finds another object under an owner's name: the old owner is gone.
        let (s1, s2) = (rs("s1", &[]), rs("s2", &[]));
        graph.observe(Resource::ReplicaSets, &InformerEvent::Added(s1.clone()));
        graph.observe(Resource::Pods, &InformerEvent::Added(pod("t", vec![owner("s1", false)])));
        let replaced = InformerEvent::Modified { old: s1, new: s2 };
        assert_eq!(names(graph.observe(Resource::ReplicaSets, &replaced)), ["obj-t"]);
        assert_eq!(graph.dependents_of("s1").len(), 1, "t still names s1 until it is collected");
    }
}
