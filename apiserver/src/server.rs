//! The apiserver on a simulated node: every request goes authentication -> authorization
//! -> admission -> registry (or the watch cache), each in its own task; beside them run the
//! watch cache's store watch, the compactor, the RBAC informers that feed the authorizer,
//! and the bootstrap (system namespaces, then the default RBAC policy).
//! [`Termination`] is how the process is asked to shut down gracefully.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use api::{ApiError, ApiRequest, ApiResponse, ApiResult, Clock, ObjectMeta, Operation, Resource, Verb};
use madsim::net::Endpoint;
use madsim::task::JoinHandle;
use store::api::{KeyRange, RangeRequest, Revision, StoreError};

use crate::authz::{self, Attributes, Decision};
use crate::backend::Backend;
use crate::config::{ApiServerConfig, UserInfo};
use crate::rbac::RbacPolicy;
use crate::rbac_cache::{self, RbacCache, SyncedRevisions};
use crate::registry::Registry;
use crate::watch_cache::{WatchCache, REGISTRY_PREFIX};

/// Sees every store write the apiserver makes. The simulator builds its stage timeline
/// and single-writer evidence from it; it must not steer the run.
pub trait ApiServerObserver: Send + Sync {
    /// Called after each successful (committed) store write: which apiserver wrote `key`
    /// at `revision`, on behalf of which user, for which verb.
    fn store_write(&self, apiserver: &str, user: &str, verb: Verb, key: &str, revision: i64);

    /// Called after a committed store write that attached `key` to store lease `lease`
    /// (an Event under its TTL lease), right after its `store_write`.
    fn attached_to_lease(&self, _apiserver: &str, _key: &str, _revision: i64, _lease: i64) {}

    /// Whether the observer wants [`ApiServerObserver::object_written`] (its metadata is
    /// cloned for each write only then).
    fn records_object_metadata(&self) -> bool {
        false
    }

    /// Called after a committed write of an object other than a Lease or an Event, right
    /// after its `store_write`, when [`ApiServerObserver::records_object_metadata`]: the
    /// metadata the write left at `key` (or, `removed`, that of the object it removed).
    /// The garbage-collection checker's evidence of owners, uids and finalizers.
    fn object_written(&self, _apiserver: &str, _key: &str, _revision: i64, _meta: &ObjectMeta, _removed: bool) {}

    /// Called after the apiserver's compactor compacted the store up to `revision`.
    fn compacted(&self, _apiserver: &str, _revision: i64) {}

    /// Called when the watch cache answered a watch of `resource` in `namespace` (all
    /// when empty) from `since` with events although it had already evicted every
    /// revision up to `window_start` (> `since`): the answer silently lacks whatever
    /// changed in between. A correct cache answers such a watch 410 Gone ("too old
    /// resource version"), so only the planted bug `watch-cache-serves-evicted` calls
    /// this; the record is how a failing seed's explanation finds the answer at fault.
    fn watch_served_below_window(
        &self,
        _apiserver: &str,
        _resource: Resource,
        _namespace: &str,
        _since: i64,
        _window_start: i64,
    ) {
    }

    /// Called for every request the RBAC authorizer decided (not `system:masters`, not
    /// the Node authorizer's, not one refused while the cache was not ready), when the
    /// configuration asks for it (`ApiServerConfig::record_authorizations`).
    fn authorized(&self, _apiserver: &str, _decision: &AuthorizationDecision<'_>) {}
}

/// One decision of the RBAC authorizer ([`ApiServerObserver::authorized`]).
#[derive(Clone, Copy, Debug)]
pub struct AuthorizationDecision<'a> {
    pub user: &'a UserInfo,
    pub attributes: &'a Attributes<'a>,
    pub allowed: bool,
    /// The revisions up to which the RBAC cache's informers had applied changes.
    pub synced: SyncedRevisions,
}

/// Namespaces the apiserver creates at start (kube-apiserver's bootstrap controller).
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];
/// The identity the apiserver's own writes are made under.
pub const APISERVER_USER: &str = "system:apiserver";
const BOOTSTRAP_RETRY_DELAY: Duration = Duration::from_secs(1);

/// One apiserver: configuration, store backend and the state its requests share.
#[derive(Clone)]
pub struct ApiServer<B> {
    inner: Arc<Inner<B>>,
}

struct Inner<B> {
    config: ApiServerConfig,
    backend: B,
    registry: Registry<B>,
    watch_cache: WatchCache,
    /// The RBAC objects the authorizer decides from, fed by this apiserver's informers.
    rbac: RbacCache,
    /// Told of the compactor's compactions (the registry has its own copy for writes).
    observer: Option<Arc<dyn ApiServerObserver>>,
    /// Set once graceful shutdown has begun: new requests are refused.
    terminating: AtomicBool,
}

impl<B: Backend> ApiServer<B> {
    pub fn new(
        config: ApiServerConfig,
        backend: B,
        clock: Clock,
        observer: Option<Arc<dyn ApiServerObserver>>,
    ) -> Self {
        let registry = Registry::new(backend.clone(), clock, &config.name, observer.clone(), config.planted_bugs)
            .with_event_ttl(config.event_ttl)
            .with_service_ip_range(config.services.cluster_ip_range);
        let watch_cache = WatchCache::new(config.watch_cache_capacity)
            .with_max_events_per_response(config.watch_max_events_per_response)
            .with_planted_bug_serves_evicted(config.planted_bugs.watch_cache_serves_evicted)
            .with_observer(&config.name, observer.clone())
            .with_custom_resources(config.custom_resources());
        let mut bootstrap = RbacPolicy::bootstrap_for(config.services.enabled);
        if config.garbage_collector_role {
            bootstrap = bootstrap.with_garbage_collector_role();
        }
        let rbac = RbacCache::new(&bootstrap)
            .with_planted_bug_ignores_binding_deletes(config.planted_bugs.rbac_cache_ignores_binding_deletes);
        Self {
            inner: Arc::new(Inner {
                config,
                backend,
                registry,
                watch_cache,
                rbac,
                observer,
                terminating: AtomicBool::new(false),
            }),
        }
    }

    pub fn config(&self) -> &ApiServerConfig {
        &self.inner.config
    }

    /// The registry this apiserver writes the store through (tests drive its Services'
    /// repair loop with it).
    pub fn registry(&self) -> &Registry<B> {
        &self.inner.registry
    }

    /// The revision up to which the watch cache has every event.
    pub fn watch_cache_revision(&self) -> Revision {
        self.inner.watch_cache.synced_revision()
    }

    /// Whether the RBAC authorizer's cache is ready (see [`crate::rbac_cache`]): until it
    /// is, requests that need RBAC are answered 503 Unavailable.
    pub fn is_rbac_ready(&self) -> bool {
        self.inner.rbac.is_ready()
    }

    /// Waits until the RBAC authorizer's cache is ready (the background tasks must run).
    pub async fn wait_rbac_ready(&self) {
        self.inner.rbac.wait_ready().await
    }

    /// Spawns the background loops on the current node: the watch cache's store watch,
    /// the compactor (unless its interval is zero), an informer per RBAC kind, and the
    /// bootstrap (system namespaces, then the default RBAC policy). Dropping the returned
    /// guard stops them.
    pub fn start_background_tasks(&self) -> BackgroundTasks {
        let mut tasks = vec![madsim::task::spawn(self.inner.watch_cache.clone().run(self.inner.backend.clone()))];
        for kind in Resource::RBAC {
            let informer = rbac_cache::run_informer(
                self.inner.rbac.clone(),
                self.inner.registry.clone(),
                self.inner.watch_cache.clone(),
                kind,
            );
            tasks.push(madsim::task::spawn(informer));
        }
        let interval = self.inner.config.compaction_interval;
        if !interval.is_zero() {
            let observer = self.inner.observer.clone();
            let name = self.inner.config.name.clone();
            tasks.push(madsim::task::spawn(run_compactor(self.inner.backend.clone(), interval, name, observer)));
        }
        if self.inner.config.services.enabled {
            let registry = self.inner.registry.clone();
            let interval = self.inner.config.services.repair_interval;
            tasks.push(madsim::task::spawn(crate::service_ip_repair::run(registry, interval)));
        }
        let server = self.clone();
        tasks.push(madsim::task::spawn(async move {
            while let Err(e) = server.ensure_system_namespaces().await {
                tracing::debug!("creating the system namespaces failed, will retry: {e}");
                madsim::time::sleep(BOOTSTRAP_RETRY_DELAY).await;
            }
            // The bootstrap Role and RoleBinding live in kube-system, created just above.
            let registry = server.inner.registry.without_bugs();
            rbac_cache::ensure_bootstrap_policy(&server.inner.rbac, &registry, &apiserver_user()).await;
        }));
        BackgroundTasks(tasks)
    }

    /// Creates `default`, `kube-system`, `kube-public` and `kube-node-lease` unless they
    /// exist (written as user `system:apiserver`).
    pub async fn ensure_system_namespaces(&self) -> Result<(), ApiError> {
        let user = apiserver_user();
        let registry = self.inner.registry.without_bugs();
        for namespace in SYSTEM_NAMESPACES {
            registry.ensure_namespace(&user, namespace).await?;
        }
        Ok(())
    }

    /// Begins graceful shutdown (see [`Termination`]): every watch is closed and every new
    /// request refused, both as 503 Unavailable, which clients retry shortly after.
    /// Requests already past that check run to their end (kube-apiserver drains them too).
    pub fn begin_termination(&self) {
        coverage::reached!("apiserver.termination.graceful");
        self.inner.terminating.store(true, Ordering::Relaxed);
        self.inner.watch_cache.close();
    }

    /// Handles one request: authenticate, authorize, then admission and the registry (or
    /// the watch cache for a watch).
    pub async fn handle(&self, request: ApiRequest) -> ApiResult {
        if self.inner.terminating.load(Ordering::Relaxed) {
            // A terminating kube-apiserver has closed its listener: the connection is
            // refused and the client tries again shortly after, reaching the restarted
            // server (or another one).
            return Err(ApiError::Unavailable { reason: "apiserver is shutting down".into() });
        }
        let ApiRequest { credential, request_id, operation } = request;
        let user = authz::authenticate(&self.inner.config.tokens, &credential)?;
        let attributes = attributes(&operation);
        let decision = if self.inner.config.record_authorizations {
            self.authorize_recorded(&user, &attributes)?
        } else {
            self.inner.rbac.with_policy(|policy| authz::authorize(&user, &attributes, policy))?
        };
        self.inner.config.check_served(operation.resource())?;
        let result = self.dispatch(&user, &decision, operation).await;
        if let Err(e) = &result {
            tracing::debug!(user = %user.name, request_id, "request failed: {e}");
        }
        result
    }

    /// [`authz::authorize`], telling the observer of the decision when RBAC made it.
    fn authorize_recorded(&self, user: &UserInfo, attributes: &Attributes<'_>) -> Result<Decision, ApiError> {
        let (decision, synced, ready) = self
            .inner
            .rbac
            .with_policy_at(|policy, synced| (authz::authorize(user, attributes, policy), synced, policy.is_some()));
        if let (true, Some(observer)) = (ready && authz::decided_by_rbac(user, attributes), &self.inner.observer) {
            let allowed = decision.is_ok();
            let record = AuthorizationDecision { user, attributes, allowed, synced };
            observer.authorized(&self.inner.config.name, &record);
        }
        decision
    }

    async fn dispatch(&self, user: &UserInfo, decision: &Decision, operation: Operation) -> ApiResult {
        let registry = &self.inner.registry;
        let object = ApiResponse::Object;
        match operation {
            Operation::Get { resource, namespace, name } => registry.get(resource, &namespace, &name).await.map(object),
            Operation::List { resource, namespace } => registry.list(resource, &namespace).await,
            Operation::Create { object: o, fence } => registry.create(user, o, fence).await.map(object),
            Operation::Update { object: o, fence } => {
                registry.update(user, decision, o, fence, false).await.map(object)
            }
            Operation::UpdateStatus { object: o, fence } => {
                registry.update(user, decision, o, fence, true).await.map(object)
            }
            Operation::Delete { resource, namespace, name, precondition, options, fence } => registry
                .delete(user, decision, resource, &namespace, &name, precondition, &options, fence)
                .await
                .map(object),
            Operation::Bind { namespace, pod, node, fence } => {
                registry.bind(user, &namespace, &pod, &node, fence).await.map(object)
            }
            Operation::Watch { resource, namespace, since, wait_ms } => {
                let (events, resource_version) =
                    self.inner.watch_cache.watch(resource, &namespace, since, Duration::from_millis(wait_ms)).await?;
                Ok(ApiResponse::Watch { events, resource_version })
            }
        }
    }
}

/// The identity of the apiserver's own writes: a member of `system:masters`
/// (kube-apiserver's loopback client is too).
fn apiserver_user() -> UserInfo {
    UserInfo::new(APISERVER_USER, &[authz::GROUP_MASTERS])
}

/// The authorization attributes of an operation.
fn attributes(operation: &Operation) -> Attributes<'_> {
    let verb = operation.verb();
    let resource = operation.resource();
    let (namespace, name) = match operation {
        Operation::Get { namespace, name, .. } | Operation::Delete { namespace, name, .. } => {
            (namespace.as_str(), name.as_str())
        }
        Operation::List { namespace, .. } | Operation::Watch { namespace, .. } => (namespace.as_str(), ""),
        Operation::Create { object, .. }
        | Operation::Update { object, .. }
        | Operation::UpdateStatus { object, .. } => {
            let meta = object.metadata();
            (meta.namespace.as_str(), meta.name.as_str())
        }
        Operation::Bind { namespace, pod, .. } => (namespace.as_str(), pod.as_str()),
    };
    Attributes { verb, resource, namespace, name }
}

/// kube-apiserver's compactor (`storage/etcd3/compact.go`): every `interval`, compact the
/// store to the revision it saw at the previous interval, so that watchers always have at
/// least one interval of history to resume from.
async fn run_compactor<B: Backend>(
    backend: B,
    interval: Duration,
    name: String,
    observer: Option<Arc<dyn ApiServerObserver>>,
) {
    let mut previous: Option<Revision> = None;
    loop {
        madsim::time::sleep(interval).await;
        if let Some(revision) = previous {
            match backend.compact(revision).await {
                Ok(_) => {
                    coverage::reached!("apiserver.compaction.ran");
                    tracing::debug!(revision, "compacted");
                    if let Some(observer) = &observer {
                        observer.compacted(&name, revision);
                    }
                }
                Err(StoreError::Compacted { .. }) => coverage::reached!("apiserver.compaction.already-compacted"),
                Err(e) => tracing::debug!(revision, "compaction failed: {e}"),
            }
        }
        let mut request = RangeRequest::new(KeyRange::Key(REGISTRY_PREFIX.into()));
        request.count_only = true;
        previous = match backend.range(request).await {
            Ok(response) => Some(response.header.revision),
            Err(e) => {
                tracing::debug!("compactor cannot read the store revision: {e}");
                None
            }
        };
    }
}

/// The apiserver's background loops; dropping it stops them.
pub struct BackgroundTasks(Vec<JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// SIGTERM for an apiserver process: the handle its supervisor keeps (the sim's operator)
/// to ask whichever instance serves now to shut down gracefully before the process is
/// stopped. kube-apiserver on SIGTERM (`genericapiserver`'s graceful termination) stops
/// accepting requests, lets in-flight ones finish, and stops its watch cache, whose
/// `Cacher.Stop` closes every watch; client-go's reflector then watches again from its
/// last resourceVersion against whichever apiserver answers (after a restore, the
/// restarted one, which answers 410 Gone: the client relists before acting any longer on
/// state of the lost cluster). Here every pending and new watch is answered 503
/// Unavailable at once ([`WatchCache::close`] says why not an empty answer), and every
/// new request is refused the same way. Without it a watcher's long poll to the stopped
/// process is never answered and runs into its timeout (`request_timeout` plus the
/// watch's wait, 10 s) while its cache goes on describing the lost cluster.
///
/// Only a deliberate stop goes through here. A crash or a pause stays abrupt: a dead or
/// frozen host closes nothing, and its clients find out only by timing out.
#[derive(Clone, Default)]
pub struct Termination {
    /// Begins graceful shutdown of the instance serving now; `None` when none has started
    /// since the last termination. Holds the instance weakly: a killed node's tasks, and
    /// the server with them, are gone.
    serving: Arc<Mutex<Option<BeginTermination>>>,
}

/// Begins graceful shutdown of one apiserver instance.
type BeginTermination = Box<dyn Fn() + Send + Sync>;

impl Termination {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the serving instance to shut down gracefully (see the type's doc). Returns
    /// whether an instance was serving to be told.
    pub fn terminate(&self) -> bool {
        let begin = self.serving.lock().expect("termination lock").take();
        begin.map(|begin| begin()).is_some()
    }

    fn register<B: Backend>(&self, server: &ApiServer<B>) {
        let server: Weak<Inner<B>> = Arc::downgrade(&server.inner);
        let begin = move || {
            if let Some(inner) = server.upgrade() {
                ApiServer { inner }.begin_termination();
            }
        };
        *self.serving.lock().expect("termination lock") = Some(Box::new(begin));
    }
}

/// Runs an apiserver on the current simulated node: binds `config.listen_addr`, answers
/// `ApiRequest`s (each in its own task), runs the watch cache, the compactor and the
/// namespace bootstrap, and shuts down gracefully when `termination` says so. Never
/// returns unless binding fails.
pub async fn serve<B: Backend>(
    config: ApiServerConfig,
    backend: B,
    clock: Clock,
    observer: Option<Arc<dyn ApiServerObserver>>,
    termination: Termination,
) -> std::io::Result<()> {
    let endpoint = Endpoint::bind(config.listen_addr).await?;
    tracing::info!(name = %config.name, addr = %config.listen_addr, "apiserver listening");
    let server = ApiServer::new(config, backend, clock, observer);
    termination.register(&server);
    let _background = server.start_background_tasks();
    // madsim's RPC layer runs each handler future in its own task, moving it several times
    // on the way into the task. `handle`'s future is several kilobytes (every verb's path
    // is in it); boxed, the moves copy a pointer (these copies were a sixth of a campaign's
    // instructions).
    endpoint.add_rpc_handler(move |request: ApiRequest| {
        let server = server.clone();
        async move { Box::pin(server.handle(request)).await }
    });
    match std::future::pending::<std::convert::Infallible>().await {}
}
