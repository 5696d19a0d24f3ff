//! A test cluster: one apiserver over an in-memory store, with a token per component, and
//! the small helpers the tests read through.

#![allow(dead_code)] // each test file uses a different subset

use std::sync::{Arc, Mutex};

use api::{
    ApiError, ApiRequest, ApiResult, Clock, Container, Credential, Deployment, DeploymentSpec, Labels, Lease,
    LeaseSpec, Object, ObjectMeta, Operation, Pod, PodSpec, PodTemplateSpec, Verb, WatchEvent,
};
use apiserver::{ApiServer, ApiServerConfig, ApiServerObserver, BackgroundTasks, InMemoryBackend, UserInfo};

pub const ADMIN: &str = "admin";
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
pub const SCHEDULER: &str = "system:kube-scheduler";
pub const KUBELET_1: &str = "system:node:worker-1";
pub const KUBELET_2: &str = "system:node:worker-2";

/// Every component's token is "token-<user>".
pub fn token_of(user: &str) -> String {
    format!("token-{user}")
}

pub fn config(name: &str, addr: &str) -> ApiServerConfig {
    let mut config = ApiServerConfig::new(name, addr.parse().expect("socket address"));
    for user in [
        UserInfo::admin(),
        UserInfo::controller_manager(),
        UserInfo::scheduler(),
        UserInfo::node("worker-1"),
        UserInfo::node("worker-2"),
    ] {
        config.tokens.insert(token_of(&user.name), user);
    }
    config
}

pub fn credential(user: &str) -> Credential {
    Credential { user: user.into(), token: token_of(user) }
}

/// The store writes the apiserver reported: (user, verb, key, revision).
#[derive(Default)]
pub struct RecordedWrites(pub Mutex<Vec<(String, Verb, String, i64)>>);

impl ApiServerObserver for RecordedWrites {
    fn store_write(&self, _apiserver: &str, user: &str, verb: Verb, key: &str, revision: i64) {
        self.0.lock().unwrap().push((user.into(), verb, key.into(), revision));
    }
}

pub struct Cluster {
    pub server: ApiServer<InMemoryBackend>,
    pub store: InMemoryBackend,
    pub writes: Arc<RecordedWrites>,
    _background: BackgroundTasks,
}

impl Cluster {
    /// An apiserver with the system namespaces and the bootstrap RBAC policy created, its
    /// watch cache running and its RBAC authorizer ready.
    pub async fn start(configure: impl FnOnce(&mut ApiServerConfig)) -> Self {
        let mut config = config("apiserver-0", "10.0.0.1:6443");
        configure(&mut config);
        let store = InMemoryBackend::new();
        let writes = Arc::new(RecordedWrites::default());
        let server =
            ApiServer::new(config, store.clone(), Clock::new(), Some(writes.clone() as Arc<dyn ApiServerObserver>));
        server.ensure_system_namespaces().await.expect("system namespaces");
        let background = server.start_background_tasks();
        server.wait_rbac_ready().await;
        Self { server, store, writes, _background: background }
    }

    pub async fn call(&self, user: &str, operation: Operation) -> ApiResult {
        self.server.handle(ApiRequest { credential: credential(user), request_id: 1, operation }).await
    }

    pub async fn object(&self, user: &str, operation: Operation) -> Result<Object, ApiError> {
        match self.call(user, operation).await? {
            api::ApiResponse::Object(o) => Ok(o),
            other => panic!("expected an object, got {other:?}"),
        }
    }

    pub async fn create(&self, user: &str, object: impl Into<Object>) -> Result<Object, ApiError> {
        let op = Operation::Create { object: object.into(), fence: None };
        self.object(user, op).await
    }

    pub async fn update(&self, user: &str, object: impl Into<Object>) -> Result<Object, ApiError> {
        let op = Operation::Update { object: object.into(), fence: None };
        self.object(user, op).await
    }

    pub async fn update_status(&self, user: &str, object: impl Into<Object>) -> Result<Object, ApiError> {
        let op = Operation::UpdateStatus { object: object.into(), fence: None };
        self.object(user, op).await
    }

    pub async fn bind(&self, user: &str, ns: &str, pod: &str, node: &str) -> Result<Object, ApiError> {
        let op = Operation::Bind { namespace: ns.into(), pod: pod.into(), node: node.into(), fence: None };
        self.object(user, op).await
    }

    pub async fn get(&self, resource: api::Resource, ns: &str, name: &str) -> Result<Object, ApiError> {
        let op = Operation::Get { resource, namespace: ns.into(), name: name.into() };
        self.object(ADMIN, op).await
    }

    pub fn revision(&self) -> i64 {
        self.store.current_revision()
    }
}

/// Renders a result as "ok" or the error's text ("409 Conflict: ...") and checks that it
/// starts with `expect`.
#[track_caller]
pub fn check<T: std::fmt::Debug>(result: &Result<T, ApiError>, expect: &str) {
    let actual = match result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    assert!(actual.starts_with(expect), "expected {expect:?}, got {actual:?} ({result:?})");
}

pub fn labels(app: &str) -> Labels {
    [("app".to_string(), app.to_string())].into()
}

pub fn pod_spec() -> PodSpec {
    PodSpec {
        node_name: None,
        containers: vec![Container { name: "nginx".into(), image: "nginx:1.25".into(), cpu_millis: 100 }],
    }
}

pub fn pod(ns: &str, name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta { labels: labels("nginx"), ..ObjectMeta::named(ns, name) },
        spec: pod_spec(),
        ..Pod::default()
    }
}

pub fn deployment(ns: &str, name: &str, replicas: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta::named(ns, name),
        spec: DeploymentSpec {
            replicas,
            selector: labels("nginx"),
            template: PodTemplateSpec { labels: labels("nginx"), spec: pod_spec() },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

pub fn lease(ns: &str, name: &str, holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta::named(ns, name),
        spec: LeaseSpec { holder_identity: Some(holder.into()), lease_duration_seconds: 15, ..LeaseSpec::default() },
    }
}

/// "Added web-1@5" per watch event (kind, name, resourceVersion), checking that each
/// event's object carries the event's resourceVersion.
pub fn render(events: &[WatchEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            assert_eq!(e.object.metadata().resource_version, e.resource_version);
            format!("{:?} {}@{}", e.kind, e.object.metadata().name, e.resource_version)
        })
        .collect()
}

/// Runs a test body in a fresh deterministic simulation.
pub fn simulate<F: std::future::Future>(body: F) -> F::Output {
    madsim::runtime::Runtime::new().block_on(body)
}
