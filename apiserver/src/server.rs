//! The apiserver on a simulated node: every request goes authentication -> authorization
//! -> admission -> registry (or the watch cache), each in its own task; beside them run the
//! watch cache's store watch, the compactor and the system-namespace bootstrap.

use std::sync::Arc;
use std::time::Duration;

use api::{ApiError, ApiRequest, ApiResponse, ApiResult, Clock, Operation, Verb};
use madsim::net::Endpoint;
use madsim::task::JoinHandle;
use store::api::{KeyRange, RangeRequest, Revision, StoreError};

use crate::authz::{self, Attributes, Decision};
use crate::backend::Backend;
use crate::config::{ApiServerConfig, UserInfo};
use crate::registry::Registry;
use crate::watch_cache::{WatchCache, REGISTRY_PREFIX};

/// Sees every store write the apiserver makes. The simulator builds its stage timeline
/// and single-writer evidence from it; it must not steer the run.
pub trait ApiServerObserver: Send + Sync {
    /// Called after each successful (committed) store write: which apiserver wrote `key`
    /// at `revision`, on behalf of which user, for which verb.
    fn store_write(&self, apiserver: &str, user: &str, verb: Verb, key: &str, revision: i64);
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
}

impl<B: Backend> ApiServer<B> {
    pub fn new(
        config: ApiServerConfig,
        backend: B,
        clock: Clock,
        observer: Option<Arc<dyn ApiServerObserver>>,
    ) -> Self {
        let registry = Registry::new(backend.clone(), clock, &config.name, observer, config.planted_bugs);
        let watch_cache = WatchCache::new(config.watch_cache_capacity);
        Self { inner: Arc::new(Inner { config, backend, registry, watch_cache }) }
    }

    pub fn config(&self) -> &ApiServerConfig {
        &self.inner.config
    }

    /// The revision up to which the watch cache has every event.
    pub fn watch_cache_revision(&self) -> Revision {
        self.inner.watch_cache.synced_revision()
    }

    /// Spawns the background loops on the current node: the watch cache's store watch,
    /// the compactor (unless its interval is zero), and the system-namespace bootstrap.
    /// Dropping the returned guard stops them.
    pub fn start_background_tasks(&self) -> BackgroundTasks {
        let mut tasks = vec![madsim::task::spawn(self.inner.watch_cache.clone().run(self.inner.backend.clone()))];
        let interval = self.inner.config.compaction_interval;
        if !interval.is_zero() {
            tasks.push(madsim::task::spawn(run_compactor(self.inner.backend.clone(), interval)));
        }
        let server = self.clone();
        tasks.push(madsim::task::spawn(async move {
            while let Err(e) = server.ensure_system_namespaces().await {
                tracing::debug!("creating the system namespaces failed, will retry: {e}");
                madsim::time::sleep(BOOTSTRAP_RETRY_DELAY).await;
            }
        }));
        BackgroundTasks(tasks)
    }

    /// Creates `default`, `kube-system`, `kube-public` and `kube-node-lease` unless they
    /// exist (written as user `system:apiserver`).
    pub async fn ensure_system_namespaces(&self) -> Result<(), ApiError> {
        let user = UserInfo::new(APISERVER_USER, &[authz::GROUP_MASTERS]);
        let registry = self.inner.registry.without_bugs();
        for namespace in SYSTEM_NAMESPACES {
            registry.ensure_namespace(&user, namespace).await?;
        }
        Ok(())
    }

    /// Handles one request: authenticate, authorize, then admission and the registry (or
    /// the watch cache for a watch).
    pub async fn handle(&self, request: ApiRequest) -> ApiResult {
        let ApiRequest { credential, request_id, operation } = request;
        let user = authz::authenticate(&self.inner.config.tokens, &credential)?;
        let decision = authz::authorize(&user, &attributes(&operation))?;
        let result = self.dispatch(&user, &decision, operation).await;
        if let Err(e) = &result {
            tracing::debug!(user = %user.name, request_id, "request failed: {e}");
        }
        result
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
            Operation::Delete { resource, namespace, name, precondition, fence } => {
                registry.delete(user, decision, resource, &namespace, &name, precondition, fence).await.map(object)
            }
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
async fn run_compactor<B: Backend>(backend: B, interval: Duration) {
    let mut previous: Option<Revision> = None;
    loop {
        madsim::time::sleep(interval).await;
        if let Some(revision) = previous {
            match backend.compact(revision).await {
                Ok(_) => tracing::debug!(revision, "compacted"),
                Err(StoreError::Compacted { .. }) => {}
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

/// Runs an apiserver on the current simulated node: binds `config.listen_addr`, answers
/// `ApiRequest`s (each in its own task), runs the watch cache, the compactor and the
/// namespace bootstrap. Never returns unless binding fails.
pub async fn serve<B: Backend>(
    config: ApiServerConfig,
    backend: B,
    clock: Clock,
    observer: Option<Arc<dyn ApiServerObserver>>,
) -> std::io::Result<()> {
    let endpoint = Endpoint::bind(config.listen_addr).await?;
    tracing::info!(name = %config.name, addr = %config.listen_addr, "apiserver listening");
    let server = ApiServer::new(config, backend, clock, observer);
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
