//! The scenarios `database` (the correct operator) and `database-buggy`: the control
//! plane serves the `Database` kind, two replicas of the operator run with their own
//! credentials, and the cluster admin applies the operator's RBAC objects, creates a
//! database of 3 members and later scales it to 5, while the nemesis works.

use std::sync::Arc;
use std::time::Duration;

use kubesim::api::{ApiClient, ApiError, CustomObject, CustomResource, Object, ObjectMeta};
use kubesim::apiserver::UserInfo;
use kubesim::futures::future::BoxFuture;
use kubesim::madsim::time::{sleep, sleep_until, Instant};
use kubesim::sim::control_plane::ControlPlaneOptions;
use kubesim::sim::scenario::custom::{Operator, Session};
use kubesim::sim::scenario::CustomScenario;
use kubesim::verdict::checkers::Checker;

use crate::invariant::SinglePrimary;
use crate::operator::{self, Variant, NAMESPACE, USER};
use crate::resource::{Database, DatabaseSpec};

/// The database the workload creates.
pub const DATABASE: &str = "orders";
/// How long a seed without faults runs (with faults: the plan's phases).
pub const WITHOUT_FAULTS: Duration = Duration::from_secs(60);

/// One variant of the operator, as a scenario.
pub struct DatabaseScenario {
    variant: Variant,
}

impl DatabaseScenario {
    /// `database`: the correct operator; every seed must pass.
    pub fn correct() -> Self {
        Self { variant: Variant::Correct }
    }

    /// `database-buggy`: the make-before-break operator; seeds that make it fail over
    /// break `database-single-primary`.
    pub fn buggy() -> Self {
        Self { variant: Variant::Buggy }
    }
}

impl CustomScenario for DatabaseScenario {
    fn name(&self) -> &'static str {
        match self.variant {
            Variant::Correct => "database",
            Variant::Buggy => "database-buggy",
        }
    }

    fn about(&self) -> &'static str {
        match self.variant {
            Variant::Correct => "example operator: a Database custom resource run as one primary pod and replicas",
            Variant::Buggy => "the example operator with a planted bug: make-before-break primary failover",
        }
    }

    fn configure(&self, cluster: &mut ControlPlaneOptions) {
        cluster.custom_resources.push(Database::DEFINITION);
        let variant = self.variant;
        cluster.operators.push(Operator {
            name: "database-operator",
            user: UserInfo::new(USER, &["system:serviceaccounts"]),
            replicas: 2,
            run: Arc::new(move |process| {
                Box::pin(operator::run(variant, process.identity, process.client, process.clock))
            }),
        });
    }

    fn workload(&self, session: Session) -> BoxFuture<'static, ()> {
        Box::pin(workload(session))
    }

    fn checkers(&self) -> Vec<Arc<dyn Checker>> {
        vec![Arc::new(SinglePrimary)]
    }
}

fn database(members: u32) -> Object {
    let db = CustomObject::<Database>::new(ObjectMeta::named(NAMESPACE, DATABASE), DatabaseSpec { members });
    db.to_object().expect("a Database encodes")
}

/// What the cluster admin does.
async fn workload(session: Session) {
    let start = Instant::now();
    let end = start + session.run_for(WITHOUT_FAULTS);
    let kubectl = &session.kubectl;
    session.note("kubectl apply -f database-operator-rbac.yaml");
    for object in operator::rbac_objects() {
        create(kubectl, object, end).await;
    }
    session.note(format!("kubectl create database {DATABASE} --members=3"));
    create(kubectl, database(3), end).await;
    let scale_at = start + session.phases().map_or(WITHOUT_FAULTS / 2, |phases| phases.safety / 2);
    sleep_until(scale_at).await;
    session.note(format!("kubectl scale database {DATABASE} --members=5"));
    scale(kubectl, 5, end).await;
    sleep_until(end).await;
}

/// Creates `object`, retrying as a user would until it exists or `end` passes.
async fn create(kubectl: &ApiClient, object: Object, end: Instant) {
    while Instant::now() < end {
        match kubectl.create(object.clone(), None).await {
            Ok(_) | Err(ApiError::AlreadyExists { .. }) => return,
            Err(_) => sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Sets the database's members (read, modify, update; retried on conflicts and errors).
async fn scale(kubectl: &ApiClient, members: u32, end: Instant) {
    while Instant::now() < end {
        let scaled = match kubectl.get(Database::resource(), NAMESPACE, DATABASE).await {
            Ok(object) => match CustomObject::<Database>::from_object(object) {
                Ok(mut db) => {
                    db.spec.members = members;
                    kubectl.update(db.to_object().expect("a Database encodes"), None).await.map(|_| ())
                }
                Err(e) => panic!("the stored database does not decode: {e}"),
            },
            Err(e) => Err(e),
        };
        if scaled.is_ok() {
            return;
        }
        sleep(Duration::from_secs(1)).await;
    }
}
