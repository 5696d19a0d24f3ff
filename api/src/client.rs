//! The client every component uses to reach the apiserver over the simulated network.
//!
//! It knows several apiserver addresses and moves to the next one when a server does not
//! answer or says it is unavailable. Reads are retried; a write whose answer never came
//! back is reported as `Timeout` (outcome unknown), never retried blindly, because a
//! retried update could apply twice.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use madsim::net::Endpoint;

use crate::objects::{Object, Resource, ResourceVersion};
use crate::protocol::{
    ApiError, ApiRequest, ApiResponse, ApiResult, Credential, DeleteOptions, LeaseFence, Operation, WatchEvent,
};

/// Sees every request a client makes and every answer it gets: the history recorder
/// implements it. It must not steer the run.
pub trait ApiObserver: Send + Sync {
    fn invoked(&self, client: &str, request: &ApiRequest);
    fn returned(&self, client: &str, request: &ApiRequest, result: &ApiResult);
}

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// How long to wait for one answer before trying elsewhere (reads) or reporting
    /// Timeout (writes).
    pub request_timeout: Duration,
    /// Bound on attempts for one read before giving up with Unavailable.
    pub max_read_attempts: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(5), max_read_attempts: 6 }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    servers: Vec<SocketAddr>,
    credential: Credential,
    config: ClientConfig,
    preferred: AtomicUsize,
    next_request_id: AtomicU64,
    observer: Option<Arc<dyn ApiObserver>>,
}

impl ApiClient {
    /// Binds a client endpoint on the current simulated node.
    pub async fn connect(
        servers: Vec<SocketAddr>,
        credential: Credential,
        config: ClientConfig,
        observer: Option<Arc<dyn ApiObserver>>,
    ) -> std::io::Result<Self> {
        assert!(!servers.is_empty(), "an ApiClient needs at least one apiserver address");
        let endpoint = Endpoint::bind("0.0.0.0:0").await?;
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                servers,
                credential,
                config,
                preferred: AtomicUsize::new(0),
                // A random prefix per client (from the simulator's seeded RNG): a process that
                // restarts gets a new client, and its request ids must not repeat the old
                // ones, or the history would pair an answer with the wrong request.
                next_request_id: AtomicU64::new((u64::from(madsim::rand::random::<u32>()) << 32) | 1),
                observer,
            }),
        })
    }

    pub fn user(&self) -> &str {
        &self.inner.credential.user
    }

    /// Sends one operation, moving between apiservers as needed (see the module doc).
    pub async fn request(&self, operation: Operation) -> ApiResult {
        let inner = &self.inner;
        let request = ApiRequest {
            credential: inner.credential.clone(),
            request_id: inner.next_request_id.fetch_add(1, Ordering::Relaxed),
            operation,
        };
        if let Some(o) = &inner.observer {
            o.invoked(&inner.credential.user, &request);
        }
        let result = self.send_with_retries(&request).await;
        if let Some(o) = &inner.observer {
            o.returned(&inner.credential.user, &request, &result);
        }
        result
    }

    async fn send_with_retries(&self, request: &ApiRequest) -> ApiResult {
        let inner = &self.inner;
        let is_write = request.operation.verb().is_write();
        let max_attempts = if is_write { inner.servers.len() } else { inner.config.max_read_attempts };
        let mut last_error = ApiError::Unavailable { reason: "no apiserver reachable".into() };
        for attempt in 0..max_attempts {
            let server_idx = inner.preferred.load(Ordering::Relaxed) % inner.servers.len();
            let server = inner.servers[server_idx];
            let timeout = match &request.operation {
                Operation::Watch { wait_ms, .. } => inner.config.request_timeout + Duration::from_millis(*wait_ms),
                _ => inner.config.request_timeout,
            };
            match simtime::call_timeout(&inner.endpoint, server, request.clone(), timeout).await {
                Ok(Err(ApiError::Unavailable { reason })) => {
                    // The server answered and changed nothing: safe to try elsewhere.
                    last_error = ApiError::Unavailable { reason };
                }
                Ok(result) => return result,
                Err(e) if is_write && e.kind() == std::io::ErrorKind::TimedOut => {
                    self.rotate(server_idx);
                    return Err(ApiError::Timeout { reason: format!("no answer from apiserver {server}: {e}") });
                }
                Err(e) => {
                    last_error = ApiError::Unavailable { reason: format!("apiserver {server}: {e}") };
                }
            }
            self.rotate(server_idx);
            // Bounded backoff between attempts: 50ms, 100ms, 200ms ... capped at 1s.
            let backoff_ms = (50u64 << attempt.min(5)).min(1000);
            madsim::time::sleep(Duration::from_millis(backoff_ms)).await;
        }
        Err(last_error)
    }

    fn rotate(&self, from_idx: usize) {
        let _ = self.inner.preferred.compare_exchange(
            from_idx,
            (from_idx + 1) % self.inner.servers.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    pub async fn get(&self, resource: Resource, namespace: &str, name: &str) -> Result<Object, ApiError> {
        let op = Operation::Get { resource, namespace: namespace.into(), name: name.into() };
        expect_object(self.request(op).await?)
    }

    pub async fn list(&self, resource: Resource, namespace: &str) -> Result<(Vec<Object>, ResourceVersion), ApiError> {
        match self.request(Operation::List { resource, namespace: namespace.into() }).await? {
            ApiResponse::List { items, resource_version } => Ok((items, resource_version)),
            other => Err(unexpected(other)),
        }
    }

    pub async fn create(&self, object: Object, fence: Option<LeaseFence>) -> Result<Object, ApiError> {
        expect_object(self.request(Operation::Create { object, fence }).await?)
    }

    pub async fn update(&self, object: Object, fence: Option<LeaseFence>) -> Result<Object, ApiError> {
        expect_object(self.request(Operation::Update { object, fence }).await?)
    }

    pub async fn update_status(&self, object: Object, fence: Option<LeaseFence>) -> Result<Object, ApiError> {
        expect_object(self.request(Operation::UpdateStatus { object, fence }).await?)
    }

    pub async fn delete(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        precondition: Option<ResourceVersion>,
        fence: Option<LeaseFence>,
    ) -> Result<Object, ApiError> {
        self.delete_with(resource, namespace, name, precondition, DeleteOptions::default(), fence).await
    }

    /// [`ApiClient::delete`] with a propagation policy and a UID precondition. The answer
    /// is the object as it was removed, or, when the delete only marked it (it has
    /// finalizers, or the policy added one), the object as marked, with its
    /// `deletionTimestamp` set.
    pub async fn delete_with(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        precondition: Option<ResourceVersion>,
        options: DeleteOptions,
        fence: Option<LeaseFence>,
    ) -> Result<Object, ApiError> {
        let op = Operation::Delete {
            resource,
            namespace: namespace.into(),
            name: name.into(),
            precondition,
            options,
            fence,
        };
        expect_object(self.request(op).await?)
    }

    pub async fn bind(
        &self,
        namespace: &str,
        pod: &str,
        node: &str,
        fence: Option<LeaseFence>,
    ) -> Result<Object, ApiError> {
        let op = Operation::Bind { namespace: namespace.into(), pod: pod.into(), node: node.into(), fence };
        expect_object(self.request(op).await?)
    }

    pub async fn watch(
        &self,
        resource: Resource,
        namespace: &str,
        since: ResourceVersion,
        wait_ms: u64,
    ) -> Result<(Vec<WatchEvent>, ResourceVersion), ApiError> {
        let op = Operation::Watch { resource, namespace: namespace.into(), since, wait_ms };
        match self.request(op).await? {
            ApiResponse::Watch { events, resource_version } => Ok((events, resource_version)),
            other => Err(unexpected(other)),
        }
    }
}

fn expect_object(response: ApiResponse) -> Result<Object, ApiError> {
    match response {
        ApiResponse::Object(o) => Ok(o),
        other => Err(unexpected(other)),
    }
}

fn unexpected(response: ApiResponse) -> ApiError {
    ApiError::Internal { reason: format!("unexpected response shape: {response:?}") }
}
