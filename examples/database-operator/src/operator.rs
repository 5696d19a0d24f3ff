//! The `Database` operator, on kubesim's controller runtime (kube-rs' shape): it reconciles
//! each `Database` into one primary pod and `members - 1` replica pods, all owned by the
//! database, and writes which pod is the primary into the database's status.
//!
//! Two variants, one switch ([`Variant`]):
//! - **correct**: the primary pod has a fixed name, `<db>-primary`. The apiserver refuses a
//!   second create of that name (409 AlreadyExists), whatever the operator's cache says,
//!   so no stale cache, no second operator replica and no retried request can make a
//!   second primary. A primary that does not start is waited for (the scheduler and the
//!   kubelet will get to it; after a node is lost, node-lifecycle evicts the pod and the
//!   operator creates it again under the same name).
//! - **buggy** ("make before break"): the primary's name is generated
//!   (`<db>-primary-<random>`, as `generateName` does), and a primary that is not Running
//!   within [`FAILOVER_AFTER`] of its creation is replaced by creating a new primary
//!   *before* deleting the old one, to shorten the outage. For that moment two primaries
//!   exist; under faults the old one may stay for long (the delete fails, the operator
//!   crashes in between), and a stale cache may not show the first primary at all. The
//!   `database-single-primary` invariant ([`crate::invariant`]) catches it.

use std::sync::Arc;
use std::time::Duration;

use kubesim::api::{
    ApiClient, ApiError, Clock, Container, CustomObject, CustomResource, Object, ObjectMeta, Pod, PodPhase, PodSpec,
    Resource,
};
use kubesim::controllers::driver::SyncError;
use kubesim::controllers::leader_election::LeaderElectionConfig;
use kubesim::controllers::runtime::{owner_reference, Action, Context, Controller, ObjectRef};

use crate::resource::{Database, DatabaseStatus};

/// The operator's user, as its service account would authenticate.
pub const USER: &str = "system:serviceaccount:default:database-operator";
/// The namespace it manages databases in (and keeps its leader-election lease in).
pub const NAMESPACE: &str = "default";
/// Its leader-election lease (`default/database-operator`).
pub const LEASE: &str = "database-operator";
/// How long the buggy variant lets a primary stay not Running before it fails over.
pub const FAILOVER_AFTER: Duration = Duration::from_secs(5);
/// How often a database is looked at again without a change (the operator polls its
/// pods' phases into the status).
pub const RESYNC: Duration = Duration::from_secs(10);

/// Which operator runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Correct,
    /// Make-before-break failover with generated primary names: see the module doc.
    Buggy,
}

/// What every reconcile of one operator replica shares.
struct Operator {
    variant: Variant,
    /// The replica's machine clock (skewed by the nemesis), for the buggy failover's age.
    clock: Clock,
}

/// Runs one replica of the operator until its machine stops: leader election on
/// `default/database-operator`, then the controller on databases owning pods.
pub async fn run(variant: Variant, identity: String, client: ApiClient, clock: Clock) {
    let election = LeaderElectionConfig::for_lease(NAMESPACE, LEASE, &identity);
    let result = Controller::for_custom::<Database>(NAMESPACE)
        .owns(Resource::Pods)
        .with_leader_election(election)
        .with_clock(clock.clone())
        .run(client, Operator { variant, clock }, reconcile, error_policy)
        .await;
    let Err(e) = result;
    panic!("the database operator's configuration is invalid: {e}");
}

fn error_policy(_: &ObjectRef, _: &SyncError, _: &Context<Operator>) -> Action {
    Action::Backoff
}

fn pod_name(object: &Object) -> &str {
    &object.metadata().name
}

fn is_running(object: &Object) -> bool {
    matches!(object, Object::Pod(pod) if pod.status.phase == PodPhase::Running)
}

/// A member pod of `db`, owned by it (the owner reference is what brings a change of the
/// pod back to the database's reconcile).
fn member_pod(db: &Object, name: &str, role: &str) -> Object {
    let mut metadata = ObjectMeta::named(NAMESPACE, name);
    metadata.labels = [("app".to_string(), db.metadata().name.clone()), ("role".to_string(), role.to_string())].into();
    metadata.owner_references = vec![owner_reference(db)];
    let container = Container { name: "postgres".into(), image: "postgres:16".into(), cpu_millis: 100 };
    Object::Pod(Pod { metadata, spec: PodSpec { node_name: None, containers: vec![container] }, ..Pod::default() })
}

async fn create(ctx: &Context<Operator>, pod: Object) -> Result<(), SyncError> {
    match ctx.client().create(pod, ctx.write_fence()?).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn delete(ctx: &Context<Operator>, name: &str) -> Result<(), SyncError> {
    match ctx.client().delete(Resource::Pods, NAMESPACE, name, None, ctx.write_fence()?).await {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(object: Arc<Object>, ctx: Arc<Context<Operator>>) -> Result<Action, SyncError> {
    let db = CustomObject::<Database>::from_object((*object).clone()).map_err(|e| SyncError::Retry(e.to_string()))?;
    let name = db.metadata.name.clone();
    let pods = ctx.owned(Resource::Pods, &object);
    let primary = match ctx.data().variant {
        Variant::Correct => ensure_primary(&ctx, &object, &name, &pods).await?,
        Variant::Buggy => ensure_primary_make_before_break(&ctx, &object, &name, &pods).await?,
    };
    let replicas = db.spec.members.max(1) - 1;
    let replica_name = |idx: u32| format!("{name}-replica-{idx}");
    for idx in 0..replicas {
        if !pods.iter().any(|pod| pod_name(pod) == replica_name(idx)) {
            create(&ctx, member_pod(&object, &replica_name(idx), "replica")).await?;
        }
    }
    // Replicas beyond the asked-for count (after a scale down), highest first.
    let replica_prefix = format!("{name}-replica-");
    let mut extra: Vec<&str> = pods
        .iter()
        .map(pod_name)
        .filter(|pod| {
            pod.strip_prefix(&replica_prefix).and_then(|idx| idx.parse::<u32>().ok()).is_some_and(|i| i >= replicas)
        })
        .collect();
    extra.sort_unstable_by(|a, b| b.cmp(a));
    for pod in extra {
        delete(&ctx, pod).await?;
    }
    let status =
        DatabaseStatus { primary: Some(primary), running: pods.iter().filter(|pod| is_running(pod)).count() as u32 };
    if status != db.status {
        let mut updated = db.clone();
        updated.status = status;
        let updated = updated.to_object().map_err(|e| SyncError::Retry(e.to_string()))?;
        match ctx.client().update_status(updated, ctx.write_fence()?).await {
            // A conflict: the database changed since the cache saw it; its change
            // enqueues it again.
            Ok(_) | Err(ApiError::Conflict { .. }) | Err(ApiError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::Requeue(RESYNC))
}

/// The correct primary: one fixed name, created if the cache does not show it (the
/// apiserver refuses a duplicate).
async fn ensure_primary(
    ctx: &Context<Operator>,
    db: &Object,
    name: &str,
    pods: &[Object],
) -> Result<String, SyncError> {
    let primary = format!("{name}-primary");
    if !pods.iter().any(|pod| pod_name(pod) == primary) {
        create(ctx, member_pod(db, &primary, "primary")).await?;
    }
    Ok(primary)
}

/// BUGGY: generated primary names, and a primary not Running after [`FAILOVER_AFTER`]
/// replaced by creating its successor before deleting it.
async fn ensure_primary_make_before_break(
    ctx: &Context<Operator>,
    db: &Object,
    name: &str,
    pods: &[Object],
) -> Result<String, SyncError> {
    let prefix = format!("{name}-primary-");
    let new_name = || format!("{prefix}{:05x}", kubesim::madsim::rand::random::<u32>() & 0xf_ffff);
    let current = pods.iter().find(|pod| pod_name(pod).starts_with(&prefix));
    let Some(current) = current else {
        let primary = new_name();
        create(ctx, member_pod(db, &primary, "primary")).await?;
        return Ok(primary);
    };
    let age_ms = ctx.data().clock.now_ms().saturating_sub(current.metadata().creation_timestamp_ms);
    if is_running(current) || age_ms < FAILOVER_AFTER.as_millis() as u64 {
        return Ok(pod_name(current).to_string());
    }
    let successor = new_name();
    create(ctx, member_pod(db, &successor, "primary")).await?;
    delete(ctx, pod_name(current)).await?;
    Ok(successor)
}

/// The operator's RBAC objects, as its manifest would declare them: a Role in
/// [`NAMESPACE`] allowing exactly what the operator does, and the RoleBinding granting it
/// to [`USER`].
pub fn rbac_objects() -> Vec<Object> {
    use kubesim::api::rbac::{PolicyRule, Role};
    let group = Database::DEFINITION.group;
    let role = Role {
        metadata: ObjectMeta::named(NAMESPACE, "database-operator"),
        rules: vec![
            PolicyRule::new(&["get", "list", "watch"], &[group], &["databases"]),
            PolicyRule::new(&["update"], &[group], &["databases/status"]),
            PolicyRule::new(&["get", "list", "watch", "create", "delete"], &[""], &["pods"]),
            PolicyRule::new(&["get", "list", "watch", "create", "update"], &["coordination.k8s.io"], &["leases"]),
        ],
    };
    vec![Object::Role(role), Object::RoleBinding(role_binding())]
}

/// The RoleBinding that grants the operator its Role.
pub fn role_binding() -> kubesim::api::rbac::RoleBinding {
    use kubesim::api::rbac::{RoleBinding, RoleRef, RoleRefKind, Subject};
    RoleBinding {
        metadata: ObjectMeta::named(NAMESPACE, "database-operator"),
        subjects: vec![Subject::user(USER)],
        role_ref: RoleRef { kind: RoleRefKind::Role, name: "database-operator".into() },
    }
}
