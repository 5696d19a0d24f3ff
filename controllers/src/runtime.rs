//! A controller runtime for users' own controllers, in the shape of kube-rs'
//! `kube::runtime::Controller`: name the primary resource, the children it owns and any
//! other resource it watches, give a reconcile function and an error policy, and
//! [`Controller::run`] keeps informers, a work queue and (optionally) leader election going
//! for it inside the simulation.
//!
//! What a user gets, and how it maps onto the crate's own pieces:
//! - one [`Informer`] per resource the controller names; every event of the primary
//!   enqueues that object, every event of an owned child enqueues the owner its controller
//!   owner reference names ([`api::ObjectMeta::controller_owner`]), every event of a watched
//!   resource enqueues what the user's mapping returns;
//! - a [`SharedWorkQueue`] of keys: one key is reconciled by one worker at a time, a key
//!   added while it is being reconciled is reconciled once more afterwards, and failures
//!   back off exponentially ([`WorkQueueConfig`]);
//! - reconcile is called with the primary object as the informer's cache holds it; a key
//!   whose object is no longer in the cache (deleted) is dropped without a call, like
//!   kube-rs without finalizers;
//! - what the reconcile returns ([`Action`]) decides when it is called again for that
//!   object, and on an error the user's error policy decides;
//! - with [`Controller::with_leader_election`], the controller reconciles only while it
//!   leads the lease; each leadership term starts fresh informers, queue and workers (a
//!   [`TaskGroup`], as the controller-manager does) and losing leadership aborts them all.
//!   Every write must carry [`Context::write_fence`], which the apiserver checks against
//!   the lease in the same store transaction: a deposed leader's write is refused with
//!   `Fenced` even before it notices it was deposed;
//! - [`Controller::start`] instead runs a controller inside a larger component's term, on
//!   informers it shares with the component's other controllers: the deployment and
//!   replicaset controllers run so in the controller-manager, the scheduler in its own
//!   leadership term;
//! - with [`Controller::filter`], only the primary objects a predicate accepts are
//!   reconciled (the scheduler's unbound pods).
//!
//! Determinism: the runtime draws no random number but through `madsim::rand` (leader
//! election's jitter), reads time only from madsim (the work queue) and the node's
//! [`Clock`] (leases), and keeps its informers in a `BTreeMap`. A user's reconcile must
//! keep the same habits for the seed to replay.
//!
//! # Example
//!
//! An operator for a custom `Database` that runs one pod per replica (`<name>-0` the
//! primary), each owned by the database, so that a deleted pod brings the database back
//! to its reconcile:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use api::{ApiClient, ApiError, CustomObject, CustomResource, CustomResourceDefinition, Object, ObjectMeta, Pod};
//! use controllers::driver::SyncError;
//! use controllers::runtime::{owner_reference, Action, Context, Controller, ObjectRef};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct DatabaseSpec {
//!     replicas: u32,
//! }
//!
//! struct Database;
//! impl CustomResource for Database {
//!     const DEFINITION: &'static CustomResourceDefinition =
//!         &CustomResourceDefinition::namespaced("example.com", "v1", "Database", "databases");
//!     type Spec = DatabaseSpec;
//!     type Status = ();
//! }
//!
//! async fn reconcile(object: Arc<Object>, ctx: Arc<Context<()>>) -> Result<Action, SyncError> {
//!     let db = CustomObject::<Database>::from_object((*object).clone())
//!         .map_err(|e| SyncError::Retry(e.to_string()))?;
//!     let namespace = &db.metadata.namespace;
//!     let running = ctx.owned(api::Resource::Pods, &object);
//!     for replica_idx in 0..db.spec.replicas {
//!         let name = format!("{}-{replica_idx}", db.metadata.name);
//!         if running.iter().any(|pod| pod.metadata().name == name) {
//!             continue;
//!         }
//!         let mut pod = Pod { metadata: ObjectMeta::named(namespace, &name), ..Pod::default() };
//!         pod.metadata.owner_references = vec![owner_reference(&object)];
//!         match ctx.client().create(Object::Pod(pod), ctx.write_fence()?).await {
//!             Ok(_) | Err(ApiError::AlreadyExists { .. }) => {}
//!             Err(e) => return Err(e.into()),
//!         }
//!     }
//!     Ok(Action::AwaitChange)
//! }
//!
//! fn error_policy(_: &ObjectRef, _: &SyncError, _: &Context<()>) -> Action {
//!     Action::Backoff
//! }
//!
//! async fn run_operator(client: ApiClient) {
//!     let result = Controller::for_custom::<Database>("default")
//!         .owns(api::Resource::Pods)
//!         .run(client, (), reconcile, error_policy)
//!         .await;
//!     // `run` returns only when its configuration is invalid.
//!     if let Err(e) = result {
//!         tracing::error!("database operator: {e}");
//!     }
//! }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::{ApiClient, Clock, CustomResource, LeaseFence, Object, OwnerReference, Resource};

use crate::driver::{run_resync, wait_for_cache_sync, TaskGroup};
use crate::informer::{key_of, object_key, split_key, Informer, InformerConfig, InformerEvent};
use crate::leader_election::{run_while_leader, LeaderElectionConfig, LeaderHandle, NotLeader};
use crate::observer::ControllerObserver;
use crate::workqueue::{SharedWorkQueue, WorkQueueConfig};

/// What a reconcile (or, after an error, the error policy) asks for next, for the object
/// it was called with (kube-rs' `Action`). A change to a watched object enqueues it again
/// whatever the action said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long on the simulator's clock (and sooner if something
    /// changes): for state the controller polls, such as a timeout it enforces. Clears the
    /// object's backoff.
    Requeue(Duration),
    /// Reconcile again after the work queue's exponential backoff for this object
    /// ([`WorkQueueConfig`]: `base_delay_ms`, doubling, capped at `max_delay_ms`); after
    /// `max_retries` in a row the object waits for its next change or resync. What an error
    /// policy usually answers. (An addition to kube-rs, whose `Action` has no backoff: here
    /// the work queue keeps the count, so a policy needs no state of its own.)
    Backoff,
    /// Reconcile again only when a watched object changes (or at the next resync). Clears
    /// the object's backoff.
    AwaitChange,
}

/// A primary object, by namespace and name (`namespace` empty for a cluster-scoped kind):
/// what the work queue holds and what a watch mapping returns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    /// The object `name` in `namespace` (empty for a cluster-scoped kind).
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }

    /// The reference to `object`.
    pub fn from_object(object: &Object) -> Self {
        let meta = object.metadata();
        Self::new(&meta.namespace, &meta.name)
    }

    /// The work queue's and the informer cache's key (`namespace/name`, or `name`).
    fn key(&self) -> String {
        object_key(&self.namespace, &self.name)
    }

    fn from_key(key: &str) -> Self {
        let (namespace, name) = split_key(key);
        Self::new(namespace, name)
    }
}

impl Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// The controller owner reference a child created by a controller should carry, naming
/// `owner` (its kind, name and uid) with `controller: true`: what [`Controller::owns`]
/// follows back from the child, and what [`Context::owned`] matches.
pub fn owner_reference(owner: &Object) -> OwnerReference {
    let meta = owner.metadata();
    OwnerReference {
        kind: owner.resource().kind().to_string(),
        name: meta.name.clone(),
        uid: meta.uid.clone(),
        controller: true,
        block_owner_deletion: false,
    }
}

/// Maps an object of a watched resource to the primary objects to reconcile.
pub type WatchMapping = Arc<dyn Fn(&Object) -> Vec<ObjectRef> + Send + Sync>;

/// Which primary objects a controller reconciles ([`Controller::filter`]).
pub type ObjectFilter = Arc<dyn Fn(&Object) -> bool + Send + Sync>;

/// How a [`Controller`] runs: its work queue, its informers, resync and workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Backoff of [`Action::Backoff`], and the bound on waiting keys.
    pub workqueue: WorkQueueConfig,
    /// Every informer's watch wait and error backoff.
    pub informer: InformerConfig,
    /// Every primary object in the cache is enqueued this often (client-go's resync); `None`
    /// (the default, as kube-rs) reconciles only on changes and requeues.
    pub resync_period_ms: Option<u64>,
    /// How many objects are reconciled concurrently (never one object twice at once); at
    /// most [`MAX_WORKERS`].
    pub workers: usize,
}

/// Bound on [`ControllerConfig::workers`].
pub const MAX_WORKERS: usize = 64;

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            workqueue: WorkQueueConfig::default(),
            informer: InformerConfig::default(),
            resync_period_ms: None,
            workers: 1,
        }
    }
}

/// Why a [`Controller`] cannot run: its configuration is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("a controller runs 1 to {MAX_WORKERS} workers, not {workers}")]
    Workers { workers: usize },
    #[error("a controller's work queue needs room for one key (max_len 0)")]
    EmptyWorkQueue,
    #[error(
        "leader election needs retry_period_ms > 0 and renew_deadline_ms < lease_duration_ms \
         (got {retry_period_ms} ms, {renew_deadline_ms} ms, {lease_duration_ms} ms)"
    )]
    LeaderElectionTimings { retry_period_ms: u64, renew_deadline_ms: u64, lease_duration_ms: u64 },
    #[error("the controller watches {resource}, but no informer of it was given")]
    MissingInformer { resource: Resource },
}

/// What each reconcile is handed: the client (with the controller's own credentials), the
/// write fence of the current leadership term, read access to every watched resource's
/// informer cache, and the user's own data. One per leadership term (one for the life of a
/// controller without leader election).
pub struct Context<T> {
    client: ApiClient,
    leader: Option<LeaderHandle>,
    caches: BTreeMap<Resource, Informer>,
    data: Arc<T>,
}

impl<T> Context<T> {
    /// The client the controller was run with.
    pub fn client(&self) -> &ApiClient {
        &self.client
    }

    /// What every write must carry (`ApiClient::create(object, ctx.write_fence()?)`):
    /// `Ok(None)` without leader election or with fencing off; the current term's lease
    /// fence while leading; `Err(NotLeader)` once leadership is lost, so that a deposed
    /// leader writes nothing rather than write unfenced. The fence moves with every renewal,
    /// so read it just before each write.
    pub fn write_fence(&self) -> Result<Option<LeaseFence>, NotLeader> {
        match &self.leader {
            None => Ok(None),
            Some(leader) => leader.write_fence(),
        }
    }

    /// The informer of `resource`, one the controller was told to watch (its primary, an
    /// owned or a watched resource): `ctx.cache(Resource::Pods).list()`, `.get(key)`.
    ///
    /// # Panics
    ///
    /// When the controller does not watch `resource`, a mistake in the controller's code
    /// (as indexing a map with a missing key); [`Context::try_cache`] does not panic.
    pub fn cache(&self, resource: Resource) -> &Informer {
        self.try_cache(resource).unwrap_or_else(|| {
            let watched: Vec<String> = self.caches.keys().map(Resource::to_string).collect();
            panic!("this controller does not watch {resource}; it watches {watched:?}")
        })
    }

    /// The informer of `resource`, or `None` when the controller does not watch it.
    pub fn try_cache(&self, resource: Resource) -> Option<&Informer> {
        self.caches.get(&resource)
    }

    /// The cached objects of `child` whose controller owner reference names `owner` (kind,
    /// name and uid), in key order.
    ///
    /// # Panics
    ///
    /// As [`Context::cache`], when the controller does not watch `child`.
    pub fn owned(&self, child: Resource, owner: &Object) -> Vec<Object> {
        let wanted = owner_reference(owner);
        let owner_namespace = &owner.metadata().namespace;
        self.cache(child).with_objects(|objects| {
            objects
                .filter(|o| owner_namespace.is_empty() || o.metadata().namespace == *owner_namespace)
                .filter(|o| o.metadata().controller_owner() == Some(&wanted))
                .cloned()
                .collect()
        })
    }

    /// The user's data, as given to [`Controller::run`] (shared by every term).
    pub fn data(&self) -> &T {
        &self.data
    }
}

/// A user's controller: what it reconciles, what it watches, and how it runs (kube-rs'
/// `Controller`). Build it, then [`Controller::run`] it on a simulated node; see the
/// [module documentation](self).
pub struct Controller {
    primary: Resource,
    namespace: String,
    owns: Vec<Resource>,
    watches: Vec<(Resource, WatchMapping)>,
    filter: Option<ObjectFilter>,
    config: ControllerConfig,
    leader_election: Option<LeaderElectionConfig>,
    clock: Clock,
    observer: Option<Arc<dyn ControllerObserver>>,
}

impl Controller {
    /// A controller of `primary` objects in `namespace` (empty: every namespace; a
    /// cluster-scoped kind is always watched cluster-wide).
    pub fn new(primary: Resource, namespace: &str) -> Self {
        Self {
            primary,
            namespace: namespace.to_string(),
            owns: Vec::new(),
            watches: Vec::new(),
            filter: None,
            config: ControllerConfig::default(),
            leader_election: None,
            clock: Clock::new(),
            observer: None,
        }
    }

    /// A controller of the custom kind `K` (the apiserver must serve `K::DEFINITION`).
    /// Reconcile reads each object with `CustomObject::<K>::from_object`.
    pub fn for_custom<K: CustomResource>(namespace: &str) -> Self {
        Self::new(K::resource(), namespace)
    }

    /// Also watches `child`: each event of a child whose controller owner reference names
    /// the primary's kind enqueues that owner (as the child is now, or was last for a
    /// deletion: kube-rs' `owns`). Children live in the primary's namespace, as owner
    /// references require.
    pub fn owns(mut self, child: Resource) -> Self {
        self.owns.push(child);
        self
    }

    /// Also watches `other`: each event of one of its objects enqueues the primary objects
    /// `map` returns for it (as it is now, or was last for a deletion).
    pub fn watches(mut self, other: Resource, map: impl Fn(&Object) -> Vec<ObjectRef> + Send + Sync + 'static) -> Self {
        self.watches.push((other, Arc::new(map)));
        self
    }

    /// Reconciles only the primary objects `accept` is true for, as they are now (kube-rs
    /// filters its trigger stream so; the scheduler reconciles only unbound pods):
    /// - an event of the primary enqueues its object only if `accept` takes the object as
    ///   the event leaves it; a deletion leaves none and enqueues nothing (its key would
    ///   be dropped without a call anyway);
    /// - the resync enqueues only accepted objects of the cache;
    /// - a worker drops a key whose cached object is no longer accepted, as a deleted one.
    ///
    /// Owned and watched resources' events still enqueue what they name; the worker then
    /// applies the filter. `accept` runs inside informer callbacks: keep it a cheap,
    /// pure test of the object.
    ///
    /// ```
    /// use controllers::runtime::Controller;
    ///
    /// let unbound_pods = Controller::new(api::Resource::Pods, "")
    ///     .filter(|pod| pod.as_pod().is_some_and(|pod| pod.spec.node_name.is_none()));
    /// ```
    pub fn filter(mut self, accept: impl Fn(&Object) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(accept));
        self
    }

    /// Whether the controller reconciles `object` of its primary resource
    /// ([`Controller::filter`]; every object without a filter).
    pub fn accepts(&self, object: &Object) -> bool {
        self.filter.as_ref().is_none_or(|accept| accept(object))
    }

    /// Replaces the default [`ControllerConfig`].
    pub fn with_config(mut self, config: ControllerConfig) -> Self {
        self.config = config;
        self
    }

    /// Reconciles only while leading the lease `config` names, as `config.identity`
    /// (unique among the controller's replicas); writes carry the lease fence when
    /// `config.fencing` is on. The lease's expiry is judged on the node's clock
    /// ([`Controller::with_clock`]).
    pub fn with_leader_election(mut self, config: LeaderElectionConfig) -> Self {
        self.leader_election = Some(config);
        self
    }

    /// The node's clock, as the simulator skews it (default: an unskewed clock). Only
    /// leader election reads it.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Reports leadership changes (the component is the lease's name) and the informers'
    /// relists to `observer`, as the built-in components do to the history recorder.
    pub fn with_observer(mut self, observer: Arc<dyn ControllerObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    fn validate(&self) -> Result<(), ControllerError> {
        let workers = self.config.workers;
        if workers == 0 || workers > MAX_WORKERS {
            return Err(ControllerError::Workers { workers });
        }
        if self.config.workqueue.max_len == 0 {
            return Err(ControllerError::EmptyWorkQueue);
        }
        if let Some(election) = &self.leader_election {
            if election.retry_period_ms == 0 || election.renew_deadline_ms >= election.lease_duration_ms {
                return Err(ControllerError::LeaderElectionTimings {
                    retry_period_ms: election.retry_period_ms,
                    renew_deadline_ms: election.renew_deadline_ms,
                    lease_duration_ms: election.lease_duration_ms,
                });
            }
        }
        Ok(())
    }

    /// Runs the controller until its node is killed: informers, work queue, workers and,
    /// if configured, leader election. `reconcile` is called with the primary object as
    /// cached and this term's [`Context`]; it answers what to do next ([`Action`]) or an
    /// error, for which `error_policy` answers instead.
    ///
    /// Returns only when the configuration is invalid, before anything starts.
    pub async fn run<T, E, R, Fut, P>(
        self,
        client: ApiClient,
        data: T,
        reconcile: R,
        error_policy: P,
    ) -> Result<Infallible, ControllerError>
    where
        T: Send + Sync + 'static,
        E: Display + Send + 'static,
        R: Fn(Arc<Object>, Arc<Context<T>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(&ObjectRef, &E, &Context<T>) -> Action + Send + Sync + 'static,
    {
        self.validate()?;
        let data = Arc::new(data);
        let reconciler = Arc::new(Reconciler { reconcile, error_policy });
        match self.leader_election.clone() {
            None => {
                let _term = self.start_term(&client, None, &data, &reconciler);
                std::future::pending::<()>().await;
            }
            Some(election) => {
                let component = election.lease_name.clone();
                let (clock, observer) = (self.clock.clone(), self.observer.clone());
                run_while_leader(election, &component, client.clone(), clock, observer, |leader| {
                    self.start_term(&client, Some(leader), &data, &reconciler)
                })
                .await;
            }
        }
        unreachable!("a controller's term loop runs forever")
    }

    /// Starts the controller inside a larger component's leadership term instead of
    /// running it alone: it subscribes to `informers`, which must hold one informer of each
    /// resource it names and which must not have run yet: the caller starts them after this
    /// returns, or spawns them just before (a spawned task runs only once the caller
    /// yields), so that several controllers share one informer per resource, as
    /// kube-controller-manager's do, and none misses an event. It spawns its resync and
    /// workers into `tasks`. `leader` is the component's (`None`
    /// without leader election); the controller's own leader election setting is not used.
    /// What [`Controller::run`] does at the start of each term, but for the informers.
    #[allow(clippy::too_many_arguments)] // run's arguments, plus the term's three pieces
    pub fn start<T, E, R, Fut, P>(
        &self,
        tasks: &mut TaskGroup,
        client: &ApiClient,
        leader: Option<LeaderHandle>,
        informers: &BTreeMap<Resource, Informer>,
        data: Arc<T>,
        reconcile: R,
        error_policy: P,
    ) -> Result<(), ControllerError>
    where
        T: Send + Sync + 'static,
        E: Display + Send + 'static,
        R: Fn(Arc<Object>, Arc<Context<T>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(&ObjectRef, &E, &Context<T>) -> Action + Send + Sync + 'static,
    {
        self.validate()?;
        let caches = self.given_informers(informers)?;
        let reconciler = Arc::new(Reconciler { reconcile, error_policy });
        self.start_workers(tasks, client, leader, caches, &data, &reconciler);
        Ok(())
    }

    /// The informers of the resources the controller names, from those given to `start`.
    fn given_informers(
        &self,
        informers: &BTreeMap<Resource, Informer>,
    ) -> Result<BTreeMap<Resource, Informer>, ControllerError> {
        self.resources()
            .map(|resource| match informers.get(&resource) {
                Some(informer) => Ok((resource, informer.clone())),
                None => Err(ControllerError::MissingInformer { resource }),
            })
            .collect()
    }

    /// Every resource the controller names: primary, owned, watched (repeats included).
    fn resources(&self) -> impl Iterator<Item = Resource> + '_ {
        std::iter::once(self.primary).chain(self.owns.iter().copied()).chain(self.watches.iter().map(|(r, _)| *r))
    }

    /// The informer of each resource the controller names, once each, keyed by resource.
    fn informers(&self) -> BTreeMap<Resource, Informer> {
        let who = self.leader_election.as_ref().map_or("controller", |e| e.identity.as_str());
        self.resources()
            .map(|resource| {
                let namespace = if resource.namespaced() { self.namespace.as_str() } else { "" };
                let informer = Informer::new(resource, namespace, self.config.informer.clone())
                    .with_observer(who, self.observer.clone());
                (resource, informer)
            })
            .collect()
    }

    /// One term of [`Controller::run`]: its informers, queue, resync and workers, all in
    /// the returned group.
    fn start_term<T, E, R, Fut, P>(
        &self,
        client: &ApiClient,
        leader: Option<LeaderHandle>,
        data: &Arc<T>,
        reconciler: &Arc<Reconciler<R, P>>,
    ) -> TaskGroup
    where
        T: Send + Sync + 'static,
        E: Display + Send + 'static,
        R: Fn(Arc<Object>, Arc<Context<T>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(&ObjectRef, &E, &Context<T>) -> Action + Send + Sync + 'static,
    {
        let mut tasks = TaskGroup::new();
        let caches = self.informers();
        self.start_workers(&mut tasks, client, leader, caches.clone(), data, reconciler);
        for informer in caches.into_values() {
            let client = client.clone();
            tasks.spawn(async move { informer.run(client).await });
        }
        tasks
    }

    /// Subscribes to `caches` (not started yet) and spawns the resync and the workers.
    fn start_workers<T, E, R, Fut, P>(
        &self,
        tasks: &mut TaskGroup,
        client: &ApiClient,
        leader: Option<LeaderHandle>,
        caches: BTreeMap<Resource, Informer>,
        data: &Arc<T>,
        reconciler: &Arc<Reconciler<R, P>>,
    ) where
        T: Send + Sync + 'static,
        E: Display + Send + 'static,
        R: Fn(Arc<Object>, Arc<Context<T>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(&ObjectRef, &E, &Context<T>) -> Action + Send + Sync + 'static,
    {
        let queue = SharedWorkQueue::new(self.config.workqueue.clone());
        // Subscribe before the informers start, so that no event is missed. The handlers
        // hold the queue only, never the context: the term must not hold itself.
        self.subscribe(&caches, &queue);
        let primary = caches[&self.primary].clone();
        if let Some(period_ms) = self.config.resync_period_ms {
            let (queue, primary, filter) = (queue.clone(), primary.clone(), self.filter.clone());
            tasks.spawn(async move {
                run_resync(queue, period_ms, move || {
                    let cache = primary.cache();
                    let accepted =
                        cache.objects().iter().filter(|(_, o)| filter.as_ref().is_none_or(|accept| accept(o)));
                    accepted.map(|(key, _)| key.clone()).collect()
                })
                .await
            });
        }
        let context = Arc::new(Context { client: client.clone(), leader, caches, data: data.clone() });
        for _ in 0..self.config.workers {
            let worker = Worker {
                queue: queue.clone(),
                primary: primary.clone(),
                filter: self.filter.clone(),
                context: context.clone(),
            };
            let reconciler = reconciler.clone();
            tasks.spawn(async move {
                wait_for_cache_sync(&worker.context.caches.values().collect::<Vec<_>>()).await;
                worker.run(&reconciler).await
            });
        }
    }

    /// Connects each informer's events to the queue: the primary's own keys, owned
    /// children's controller owners, watched objects' mapped keys.
    fn subscribe(&self, caches: &BTreeMap<Resource, Informer>, queue: &SharedWorkQueue) {
        let (q, filter) = (queue.clone(), self.filter.clone());
        caches[&self.primary].subscribe(Box::new(move |event: &InformerEvent| match &filter {
            None => q.add(&key_of(event.object())),
            Some(accept) => {
                if !matches!(event, InformerEvent::Deleted(_)) && accept(event.object()) {
                    q.add(&key_of(event.object()));
                }
            }
        }));
        let (primary_kind, primary_namespaced) = (self.primary.kind(), self.primary.namespaced());
        for child in &self.owns {
            let q = queue.clone();
            caches[child].subscribe(Box::new(move |event: &InformerEvent| {
                let meta = event.object().metadata();
                if let Some(owner) = meta.controller_owner().filter(|o| o.kind == primary_kind) {
                    let namespace = if primary_namespaced { meta.namespace.as_str() } else { "" };
                    q.add(&object_key(namespace, &owner.name));
                }
            }));
        }
        for (other, map) in &self.watches {
            let (q, map) = (queue.clone(), map.clone());
            caches[other].subscribe(Box::new(move |event: &InformerEvent| {
                for primary in map(event.object()) {
                    q.add(&primary.key());
                }
            }));
        }
    }
}

/// The user's two functions, shared by every worker of every term.
struct Reconciler<R, P> {
    reconcile: R,
    error_policy: P,
}

/// One worker of a term: takes keys from the queue and reconciles their objects.
struct Worker<T> {
    queue: SharedWorkQueue,
    primary: Informer,
    filter: Option<ObjectFilter>,
    context: Arc<Context<T>>,
}

impl<T> Worker<T> {
    async fn run<E, R, Fut, P>(&self, reconciler: &Reconciler<R, P>)
    where
        E: Display,
        R: Fn(Arc<Object>, Arc<Context<T>>) -> Fut,
        Fut: Future<Output = Result<Action, E>>,
        P: Fn(&ObjectRef, &E, &Context<T>) -> Action,
    {
        loop {
            let key = self.queue.next().await;
            // Leadership lost: the term's tasks are about to be aborted; reconcile nothing.
            let leading = self.context.leader.as_ref().is_none_or(LeaderHandle::is_leader);
            // Deleted from the cache (or filtered out): nothing to reconcile (kube-rs without
            // finalizers).
            let object = if leading { self.primary.get(&key) } else { None };
            let object = object.filter(|o| self.filter.as_ref().is_none_or(|accept| accept(o)));
            if let Some(object) = object {
                let action = match (reconciler.reconcile)(Arc::new(object), self.context.clone()).await {
                    Ok(action) => action,
                    Err(error) => {
                        let object_ref = ObjectRef::from_key(&key);
                        tracing::debug!("reconcile {object_ref} failed: {error}");
                        (reconciler.error_policy)(&object_ref, &error, &self.context)
                    }
                };
                self.follow(&key, action);
            } else {
                self.queue.forget(&key);
            }
            self.queue.done(&key);
        }
    }

    /// Carries out what a reconcile (or the error policy) asked for `key`.
    fn follow(&self, key: &str, action: Action) {
        match action {
            Action::Requeue(delay) => {
                self.queue.forget(key);
                self.queue.add_after(key, delay);
            }
            Action::Backoff => self.queue.add_rate_limited(key),
            Action::AwaitChange => self.queue.forget(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{ObjectMeta, Pod};

    #[test]
    fn object_refs_round_trip_through_queue_keys() {
        for object_ref in [ObjectRef::new("default", "orders"), ObjectRef::new("", "worker-1")] {
            assert_eq!(ObjectRef::from_key(&object_ref.key()), object_ref);
        }
        assert_eq!(ObjectRef::new("default", "orders").to_string(), "default/orders");
    }

    #[test]
    fn an_owner_reference_names_kind_name_and_uid_as_controller() {
        let mut pod = Pod { metadata: ObjectMeta::named("default", "orders-0"), ..Pod::default() };
        pod.metadata.uid = "uid-7".into();
        let reference = owner_reference(&Object::Pod(pod));
        assert_eq!(
            reference,
            OwnerReference {
                kind: "Pod".into(),
                name: "orders-0".into(),
                uid: "uid-7".into(),
                controller: true,
                block_owner_deletion: false
            }
        );
    }

    #[test]
    fn a_controller_started_in_a_term_must_be_given_an_informer_of_each_resource_it_names() {
        let controller = Controller::new(Resource::Deployments, "")
            .owns(Resource::ReplicaSets)
            .watches(Resource::Pods, |_| Vec::new());
        let informer = |resource| (resource, Informer::new(resource, "", InformerConfig::default()));
        let mut given = BTreeMap::from([informer(Resource::Deployments), informer(Resource::ReplicaSets)]);
        assert_eq!(
            controller.given_informers(&given).err(),
            Some(ControllerError::MissingInformer { resource: Resource::Pods })
        );
        given.extend([informer(Resource::Pods), informer(Resource::Nodes)]);
        let taken: Vec<Resource> = controller.given_informers(&given).unwrap().into_keys().collect();
        assert_eq!(taken, [Resource::Pods, Resource::ReplicaSets, Resource::Deployments], "only those it names");
    }

    #[test]
    fn a_filter_decides_which_primary_objects_are_reconciled() {
        let pod = |node: Option<&str>| {
            let mut pod = Pod { metadata: ObjectMeta::named("default", "orders-0"), ..Pod::default() };
            pod.spec.node_name = node.map(str::to_string);
            Object::Pod(pod)
        };
        let everything = Controller::new(Resource::Pods, "");
        assert!(everything.accepts(&pod(None)) && everything.accepts(&pod(Some("n1"))));
        let unbound = everything.filter(|o| o.as_pod().is_some_and(|p| p.spec.node_name.is_none()));
        assert!(unbound.accepts(&pod(None)));
        assert!(!unbound.accepts(&pod(Some("n1"))));
    }

    #[test]
    fn invalid_configurations_are_errors_not_panics() {
        let controller = |config| Controller::new(Resource::ConfigMaps, "default").with_config(config);
        let workers = |workers| ControllerConfig { workers, ..ControllerConfig::default() };
        assert_eq!(controller(workers(0)).validate(), Err(ControllerError::Workers { workers: 0 }));
        assert_eq!(controller(workers(MAX_WORKERS + 1)).validate(), Err(ControllerError::Workers { workers: 65 }));
        assert_eq!(controller(workers(MAX_WORKERS)).validate(), Ok(()));
        let mut empty = ControllerConfig::default();
        empty.workqueue.max_len = 0;
        assert_eq!(controller(empty).validate(), Err(ControllerError::EmptyWorkQueue));
        let election = LeaderElectionConfig { renew_deadline_ms: 15_000, ..LeaderElectionConfig::default() };
        assert!(matches!(
            controller(ControllerConfig::default()).with_leader_election(election).validate(),
            Err(ControllerError::LeaderElectionTimings { .. })
        ));
    }
}
