//! RBAC as stored objects, through a served apiserver and `ApiClient`: the four kinds are
//! served like every other resource, the bootstrap policy is written at startup, and the
//! authorizer decides from the apiserver's own watch of them. A user's controller, with
//! its own credentials and no binding, is denied (403) until a RoleBinding grants it a
//! Role, allowed after, and denied again once the binding is deleted (issue 19's
//! acceptance).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use api::rbac::{PolicyRule, Role, RoleBinding, RoleRef, RoleRefKind, Subject};
use api::{ApiClient, ClientConfig, Clock, ConfigMap, Object, ObjectMeta, Resource};
use apiserver::rbac::{RbacPolicy, CLUSTER_ADMIN};
use apiserver::{serve, InMemoryBackend, Termination, UserInfo};
use common::*;
use madsim::runtime::Runtime;

const APISERVER_ADDR: &str = "10.0.0.1:6443";
/// A user's controller: its own identity and token, in no built-in group.
const OPERATOR: &str = "database-operator";

async fn client(user: &str) -> ApiClient {
    let server: SocketAddr = APISERVER_ADDR.parse().unwrap();
    ApiClient::connect(vec![server], credential(user), ClientConfig::default(), None).await.expect("client endpoint")
}

/// Runs `body` on a client node against a served apiserver over an empty store; the
/// user's controller has a token.
fn run<Fut: std::future::Future<Output = ()> + Send + 'static>(body: impl FnOnce() -> Fut + Send + 'static) {
    let runtime = Runtime::new();
    let apiserver_node = runtime.create_node().name("apiserver-0").ip("10.0.0.1".parse().unwrap()).build();
    let client_node = runtime.create_node().name("client").ip("10.0.0.2".parse().unwrap()).build();
    let _server = apiserver_node.spawn(async move {
        let config = config("apiserver-0", APISERVER_ADDR)
            .with_token(token_of(OPERATOR), UserInfo::new(OPERATOR, &["system:authenticated"]));
        serve(config, InMemoryBackend::new(), Clock::new(), None, Termination::new()).await.expect("bind");
    });
    runtime.block_on(client_node.spawn(async move { body().await })).expect("client task");
}

/// Retries `get` until the apiserver is ready (503 before its RBAC cache is) and returns
/// the first other answer.
async fn get_when_ready(client: &ApiClient, namespace: &str, name: &str) -> Result<Object, api::ApiError> {
    for _ in 0..100 {
        match client.get(Resource::ConfigMaps, namespace, name).await {
            Err(api::ApiError::Unavailable { .. }) => madsim::time::sleep(Duration::from_millis(100)).await,
            other => return other,
        }
    }
    panic!("the apiserver never became ready");
}

/// Waits until `client`'s read of the configmap gets an answer of status `status`: the
/// apiserver's RBAC cache follows the store through its watch, a moment after the write.
async fn eventually(client: &ApiClient, status: u16) {
    for _ in 0..100 {
        let code = match client.get(Resource::ConfigMaps, "team-a", "settings").await {
            Ok(_) => 200,
            Err(e) => e.status_code(),
        };
        if code == status {
            return;
        }
        madsim::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never answered {status}");
}

#[test]
fn a_role_binding_grants_a_users_controller_until_it_is_deleted() {
    run(|| async {
        let admin = client(ADMIN).await;
        let operator = client(OPERATOR).await;

        admin.create(namespace("team-a").into(), None).await.unwrap();
        let settings = ConfigMap { metadata: ObjectMeta::named("team-a", "settings"), ..Default::default() };
        admin.create(settings.into(), None).await.unwrap();

        // No binding: 403 (once the apiserver is ready; 503 before).
        check(&get_when_ready(&operator, "team-a", "settings").await, "403 Forbidden");

        // The bootstrap policy is stored, under Kubernetes' keys.
        for object in RbacPolicy::bootstrap().objects() {
            let meta = object.metadata();
            let stored = admin.get(object.resource(), &meta.namespace, &meta.name).await.unwrap();
            assert_eq!(stored.key(), object.key());
            assert!(stored.metadata().resource_version > 0);
        }
        let (bindings, _) = admin.list(Resource::ClusterRoleBindings, "").await.unwrap();
        assert!(bindings.iter().any(|b| b.metadata().name == CLUSTER_ADMIN));

        // A Role alone grants nothing; the RoleBinding does, in its namespace only.
        let role = Role {
            metadata: ObjectMeta::named("team-a", "configmap-reader"),
            rules: vec![PolicyRule::new(&["get", "list", "watch"], &[""], &["configmaps"])],
        };
        admin.create(role.into(), None).await.unwrap();
        let binding = RoleBinding {
            metadata: ObjectMeta::named("team-a", "operator-reads-configmaps"),
            subjects: vec![Subject::user(OPERATOR)],
            role_ref: RoleRef { kind: RoleRefKind::Role, name: "configmap-reader".into() },
        };
        // The user's controller cannot grant itself the role.
        check(&operator.create(binding.clone().into(), None).await, "403 Forbidden");
        let created = admin.create(binding.into(), None).await.unwrap();
        check(&admin.create(created.clone(), None).await, "409 AlreadyExists");
        assert_eq!(created.key(), "/registry/rolebindings/team-a/operator-reads-configmaps");
        eventually(&operator, 200).await;
        check(&operator.get(Resource::ConfigMaps, "default", "other").await, "403 Forbidden");
        let write = ConfigMap { metadata: ObjectMeta::named("team-a", "mine"), ..Default::default() };
        check(&operator.create(write.into(), None).await, "403 Forbidden");

        // A binding's roleRef cannot change (Kubernetes: delete and create it again).
        let mut redirected = created.clone().into_role_binding().unwrap();
        redirected.role_ref.name = CLUSTER_ADMIN.into();
        redirected.role_ref.kind = RoleRefKind::ClusterRole;
        check(&admin.update(redirected.into(), None).await, "422");

        // Deleted: denied again.
        let meta = created.metadata();
        admin.delete(Resource::RoleBindings, &meta.namespace, &meta.name, None, None).await.unwrap();
        eventually(&operator, 403).await;
    });
}

fn namespace(name: &str) -> api::Namespace {
    api::Namespace { metadata: ObjectMeta::named("", name) }
}
