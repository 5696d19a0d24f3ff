//! RBAC as stored objects, through the apiserver: the operator's user is denied (403)
//! until the RoleBinding of its Role exists, allowed once it does, and denied again after
//! the binding is deleted — each decision the apiserver's, from its own watch of the RBAC
//! objects.

use std::sync::Mutex;
use std::time::Duration;

use database_operator::operator::{rbac_objects, NAMESPACE, USER};
use database_operator::resource::Database;
use kubesim::api::{ApiClient, ApiError, CustomResource, Resource};
use kubesim::apiserver::UserInfo;
use kubesim::futures::future::BoxFuture;
use kubesim::madsim::time::sleep;
use kubesim::sim::control_plane::ControlPlaneOptions;
use kubesim::sim::runner::{run_seed, RunOptions};
use kubesim::sim::scenario::custom::Session;
use kubesim::sim::scenario::{CustomScenario, Scenario};

/// What the probe saw, in order.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The operator's user, with no operator running: only the probe's requests.
struct RbacProbe;

impl CustomScenario for RbacProbe {
    fn name(&self) -> &'static str {
        "database-rbac-probe"
    }
    fn about(&self) -> &'static str {
        "the database operator's user before, with and after its RoleBinding"
    }
    fn configure(&self, cluster: &mut ControlPlaneOptions) {
        cluster.custom_resources.push(Database::DEFINITION);
        cluster.users.push(UserInfo::new(USER, &["system:serviceaccounts"]));
    }
    fn workload(&self, session: Session) -> BoxFuture<'static, ()> {
        Box::pin(probe(session))
    }
}

fn see(what: &str) {
    SEEN.lock().unwrap().push(what.to_string());
}

/// "allowed", "denied", or the error that was neither.
async fn try_list(client: &ApiClient) -> String {
    match client.list(Database::resource(), NAMESPACE).await {
        Ok(_) => "allowed".into(),
        Err(ApiError::Forbidden { .. }) => "denied".into(),
        Err(other) => format!("error: {other}"),
    }
}

/// Lists until the answer is `wanted` (the authorizer follows the RBAC objects through its
/// watch, so a change takes effect shortly after it commits); gives up after 30 s.
async fn until(client: &ApiClient, wanted: &str) -> String {
    let mut answer = try_list(client).await;
    for _ in 0..60 {
        if answer == wanted {
            break;
        }
        sleep(Duration::from_millis(500)).await;
        answer = try_list(client).await;
    }
    answer
}

async fn probe(session: Session) {
    let kubectl = &session.kubectl;
    let operator = session.client_as(USER).await;
    // The apiserver answers 503 until its RBAC cache has synced: wait for a decision.
    see(&until(&operator, "denied").await);
    let [role, binding] = <[_; 2]>::try_from(rbac_objects()).expect("a Role and a RoleBinding");
    kubectl.create(role, None).await.expect("create the Role");
    sleep(Duration::from_secs(2)).await;
    see(&try_list(&operator).await);
    kubectl.create(binding, None).await.expect("create the RoleBinding");
    see(&until(&operator, "allowed").await);
    kubectl
        .delete(Resource::RoleBindings, NAMESPACE, "database-operator", None, None)
        .await
        .expect("delete the binding");
    see(&until(&operator, "denied").await);
}

#[test]
fn the_operator_is_denied_until_bound_and_after_unbinding() {
    kubesim::sim::scenario::register(RbacProbe).expect("register the probe");
    let scenario: Scenario = "database-rbac-probe".parse().expect("registered");
    let report = run_seed(&RunOptions::without_faults(0, scenario));
    assert!(report.passed(), "{}", report.render());
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen, ["denied", "denied", "allowed", "denied"], "before, with the Role alone, bound, unbound");
}
