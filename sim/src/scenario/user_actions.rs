//! The generated workload's users (issue 20 §4; the actions are [`faults::actions`]): the
//! users a plan's `workload` names act on the cluster beside deploy-nginx's own user,
//! while the nemesis works, and an admin then brings the cluster to what they last asked
//! for and waits until it is at rest there (docs/design.md §4.18).
//!
//! **Users.** Each user named in the workload has a client node of its own, talking to one
//! apiserver (user `i`, in name order, to apiserver `i mod n`), and plays its actions in
//! time order: each at its `at_ms` from the start of the safety phase, or when its
//! previous one finished. An action is what `kubectl` does: a create retried on
//! retryable errors (AlreadyExists ends it: an earlier attempt went through, or another
//! user was first); a change is a read-modify-write under the resourceVersion read,
//! retried on 409 Conflict as client-go's `RetryOnConflict` does; a delete carries its
//! propagation policy. A deployment deleted with `--cascade=orphan` leaves its ReplicaSets
//! to the user, who deletes them at once (`kubectl delete rs -l app=NAME`), as one does
//! after orphaning on purpose. A drain cordons the node and evicts (deletes) every pod
//! bound to it. A grant creates the RoleBinding `edit-<user>` of the Role `editor` (get
//! and update ConfigMaps and Secrets, created with the namespace), a revoke deletes it;
//! when the workload grants or revokes, every user's read-modify-writes go out under its
//! own name through a second client, RBAC decides them (403 Forbidden is noted as "no
//! grant"), and the apiservers record every decision for the permissions checker (with
//! `--faults disks`, a restore that brings a revoked grant back is a security window).
//! A user that finds its object missing (never created, deleted by another
//! user, or rolled back by a restore) notes it and goes on; one whose retries outlast the
//! safety phase gives the action up. Every action is noted in the history, so the
//! timeline shows it beside the faults.
//!
//! **Intent.** What the users last asked for is the fold of their actions in time order
//! (`Intent::of`): a create makes an object exist (unless it does), a scale or an image
//! change or a rollback changes an existing deployment, a delete removes it, a grant or a
//! revoke decides whether the user's RoleBinding should exist. A rollback
//! goes to the previous revision's image, and that template becomes the newest revision
//! (Kubernetes renumbers it), so two rollbacks in a row return. Nodes end uncordoned:
//! the maintenance is over.
//!
//! **At rest.** Once the safety phase is over, the admin applies the intent as `kubectl
//! apply` of a GitOps repository would: creates what is missing, corrects what differs,
//! deletes what should not exist (and orphaned ReplicaSets), uncordons every node; a
//! restore may have taken the cluster anywhere earlier. It waits until every intended
//! deployment has exactly its replicas Running, of its current template, no other pod or
//! ReplicaSet is left in the namespace, older ReplicaSets are at zero, the ConfigMaps,
//! Secrets, Services and grants' RoleBindings are exactly the intended ones and every
//! node is Ready and
//! schedulable, and has stayed so for 5 s: recorded (`Awaited`, `Looked`)
//! for the convergence checker, within the liveness phase. The garbage-collection
//! invariant's at-rest half is judged on that state, and no-lost-update on every update
//! of the run (the workload turns on `UpdatePrecondition` records).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use api::rbac::{PolicyRule, Role, RoleBinding, RoleRef, RoleRefKind, Subject};
use api::{
    ApiClient, ApiError, ConfigMap, Container, DeleteOptions, Deployment, DeploymentSpec, DeploymentStrategy,
    IntOrPercent, Labels, Object, ObjectMeta, PodPhase, PodSpec, PodTemplateSpec, PropagationPolicy, ReplicaSet,
    Resource, RollingUpdateDeployment, Secret, Service, ServicePort, ServiceSpec,
};
use controllers::deployment::{pod_template_hash, POD_TEMPLATE_HASH_LABEL};
use faults::actions::{Action, Cascade, ObjectKind, Strategy, UserAction, EDITOR_ROLE, GRANT_PREFIX, NAMESPACE};
use faults::FaultPlan;
use madsim::task::JoinHandle;
use madsim::time::Instant;

use crate::control_plane::{kubelet_name, ControlPlane, ControlPlaneOptions, ServicesOptions};
use crate::history::HistoryEvent;
use crate::recorder::Recorder;
use crate::report::Check;

/// Pause between a user's retries, and between the admin's looks.
const POLL: Duration = Duration::from_millis(500);
/// client-go's `retry.DefaultRetry` allows 5 steps; a little more, as users contend.
const MAX_CONFLICT_RETRIES: u32 = 10;
/// The namespaces whose pods a drain evicts: the workload's and deploy-nginx's.
const DRAINED_NAMESPACES: [&str; 2] = [NAMESPACE, super::deploy_nginx::NAMESPACE];

/// What the workload needs of the cluster: the garbage collector (deletes with each
/// propagation policy) and Services (ClusterIPs, Endpoints); with grants and revokes, the
/// users known to the apiservers and every RBAC decision recorded (for permissions).
/// Applied only when the plan has a workload, so that runs without one store and hash
/// what they always did.
pub(crate) fn configure(options: &mut ControlPlaneOptions, plan: &FaultPlan) {
    options.garbage_collection = true;
    options.services.get_or_insert_with(ServicesOptions::default);
    if uses_permissions(plan) {
        options.record_authorizations = true;
        for user in plan.workload.iter().map(|a| a.user.as_str()).collect::<BTreeSet<_>>() {
            if !options.users.iter().any(|u| u.name == user) {
                options.users.push(apiserver::UserInfo::new(user, &["system:authenticated"]));
            }
        }
    }
}

/// Whether the workload grants or revokes: then users read-modify-write under their own
/// names, as RBAC allows.
fn uses_permissions(plan: &FaultPlan) -> bool {
    plan.workload.iter().any(|a| a.action.group() == faults::actions::ActionGroup::Permissions)
}

/// Starts the workload's users and its admin; the handle yields the admin's report once
/// the cluster is at rest at the intent (or the liveness phase ran out). `None` when the
/// plan has no workload. Called from the simulation's supervisor, as the scenario starts.
pub(crate) async fn start(
    plane: &ControlPlane,
    recorder: &Recorder,
    plan: &FaultPlan,
) -> Option<JoinHandle<Vec<Check>>> {
    if plan.workload.is_empty() {
        return None;
    }
    let start = Instant::now();
    let end_of_safety = start + Duration::from_millis(plan.safety_phase_ms);
    let liveness = Duration::from_millis(plan.liveness_phase_ms);
    let names: BTreeSet<&str> = plan.workload.iter().map(|a| a.user.as_str()).collect();
    let mut users = Vec::new();
    for (idx, name) in names.into_iter().enumerate() {
        let server: SocketAddr = plane.apiserver_addrs[idx % plane.apiserver_addrs.len()];
        let ip = crate::addresses::client(USER_HOSTS + idx as u8);
        let (node, client) = plane.client_of("admin", name, ip, vec![server], recorder).await;
        // With grants in play, the user's read-modify-writes go out under its own name.
        let own = if uses_permissions(plan) {
            let ip = crate::addresses::client(OWN_HOSTS + idx as u8);
            Some(plane.client_of(name, &format!("{name}-self"), ip, vec![server], recorder).await.1)
        } else {
            None
        };
        let actions: Vec<UserAction> = plan.workload.iter().filter(|a| a.user == name).cloned().collect();
        let recorder = recorder.clone();
        users.push(node.spawn(async move {
            let clients = Clients { admin: &client, own: own.as_ref().unwrap_or(&client) };
            play(clients, &recorder, &actions, start, end_of_safety).await
        }));
    }
    let (admin_node, admin) =
        plane.client_as("admin", "workload-admin", crate::addresses::client(ADMIN_HOST), recorder).await;
    let intent = Intent::of(&plan.workload);
    let n_kubelets = plane.kubelets.len() as u32;
    let recorder = recorder.clone();
    Some(admin_node.spawn(async move {
        ensure_namespace(&admin, end_of_safety).await;
        for user in users {
            user.await.expect("a workload user");
        }
        sleep_until(end_of_safety).await;
        wait_until_at_rest(&admin, &recorder, &intent, n_kubelets, liveness).await
    }))
}

/// The client hosts of the workload's users (`USER_HOSTS + i`, at most
/// [`faults::actions::MAX_USERS`] of them), of their own-name clients, and of its admin.
const USER_HOSTS: u8 = 20;
const OWN_HOSTS: u8 = 30;
const ADMIN_HOST: u8 = 19;

/// A user's clients: as the namespace's admin (every action but read-modify-write), and
/// under its own name (read-modify-write, when grants are in play; else the same client).
#[derive(Clone, Copy)]
struct Clients<'c> {
    admin: &'c ApiClient,
    own: &'c ApiClient,
}

async fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        madsim::time::sleep(deadline - now).await;
    }
}

/// Creates the workload's namespace and the editor Role, retrying until both exist or
/// `deadline`.
async fn ensure_namespace(admin: &ApiClient, deadline: Instant) {
    let namespace = api::Namespace { metadata: ObjectMeta::named("", NAMESPACE) };
    for object in [Object::Namespace(namespace), Object::Role(editor_role())] {
        while Instant::now() < deadline {
            match admin.create(object.clone(), None).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => break,
                Err(_) => madsim::time::sleep(POLL).await,
            }
        }
    }
}

/// The Role a grant binds: get and update the namespace's ConfigMaps and Secrets.
fn editor_role() -> Role {
    Role {
        metadata: ObjectMeta::named(NAMESPACE, EDITOR_ROLE),
        rules: vec![PolicyRule::new(&["get", "update"], &[""], &["configmaps", "secrets"])],
    }
}

/// `who`'s grant: a RoleBinding `edit-<who>` of the editor Role.
fn grant(who: &str) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta::named(NAMESPACE, format!("{GRANT_PREFIX}{who}")),
        subjects: vec![Subject::user(who)],
        role_ref: RoleRef { kind: RoleRefKind::Role, name: EDITOR_ROLE.to_string() },
    }
}

/// One user's actions, in order, each at its time or after the previous one.
async fn play(clients: Clients<'_>, recorder: &Recorder, actions: &[UserAction], start: Instant, deadline: Instant) {
    for action in actions {
        sleep_until(start + Duration::from_millis(action.at_ms)).await;
        let said = format!("{}: {}", action.user, action.action);
        if Instant::now() >= deadline {
            recorder.note(format!("{said}: not started before the safety phase ended"));
            continue;
        }
        recorder.note(said.clone());
        match perform(clients, recorder, &action.action, deadline).await {
            Ok(Done::Done) => {}
            Ok(Done::Nothing(why)) => recorder.note(format!("{said}: {why}")),
            Err(e) => recorder.note(format!("{said}: gave up at the end of the safety phase ({e})")),
        }
    }
}

/// How an action ended, when the API did not refuse it for good.
enum Done {
    Done,
    /// The user found nothing to do (the object missing, or already there).
    Nothing(String),
}

/// Whether a user retries after `error`.
fn retryable(error: &ApiError) -> bool {
    error.is_retryable() || matches!(error, ApiError::Conflict { .. })
}

/// Runs `attempt` until it succeeds, fails for good, or `deadline` passes.
async fn retrying<T, F, Fut>(deadline: Instant, mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    loop {
        match attempt().await {
            Err(e) if retryable(&e) && Instant::now() + POLL < deadline => madsim::time::sleep(POLL).await,
            other => return other,
        }
    }
}

async fn perform(
    clients: Clients<'_>,
    recorder: &Recorder,
    action: &Action,
    deadline: Instant,
) -> Result<Done, ApiError> {
    let client = clients.admin;
    match action {
        Action::CreateDeployment { name, replicas, image, strategy } => {
            let object = deployment(name, *replicas as i32, image, *strategy);
            record_desired(recorder, name, *replicas as i32);
            create(client, Object::Deployment(object), deadline).await
        }
        Action::Scale { name, replicas } => {
            let replicas = *replicas as i32;
            change_deployment(client, recorder, name, deadline, |d, _| {
                d.spec.replicas = replicas;
                Ok(())
            })
            .await
        }
        Action::SetImage { name, image } => {
            change_deployment(client, recorder, name, deadline, |d, _| {
                d.spec.template = template(name, image);
                Ok(())
            })
            .await
        }
        Action::RollBack { name } => {
            change_deployment(client, recorder, name, deadline, |d, owned| {
                let current = pod_template_hash(&d.spec.template);
                let revision_of = |hash: &str| {
                    owned
                        .iter()
                        .find(|rs| {
                            rs.spec.template.labels.get(POD_TEMPLATE_HASH_LABEL).map(String::as_str) == Some(hash)
                        })
                        .map(controllers::rollout::revision)
                };
                let now = revision_of(&current).unwrap_or(i64::MAX);
                let previous = owned
                    .iter()
                    .map(controllers::rollout::revision)
                    .filter(|r| *r < now && *r > 0)
                    .max()
                    .ok_or_else(|| "no previous revision to roll back to".to_string())?;
                d.spec.template = controllers::rollout::rollback_template(owned, previous)
                    .ok_or_else(|| format!("no ReplicaSet of revision {previous}"))?;
                Ok(())
            })
            .await
        }
        Action::DeleteDeployment { name, cascade } => {
            let policy = match cascade {
                Cascade::Background => PropagationPolicy::Background,
                Cascade::Foreground => PropagationPolicy::Foreground,
                Cascade::Orphan => PropagationPolicy::Orphan,
            };
            let done = delete(client, Resource::Deployments, name, policy, deadline).await?;
            if *cascade == Cascade::Orphan {
                delete_orphans(client, Some(name), deadline).await;
            }
            Ok(done)
        }
        Action::Create { kind, name } => create(client, new_object(*kind, name), deadline).await,
        Action::ReadModifyWrite { kind, name } => match read_modify_write(clients.own, *kind, name, deadline).await {
            Err(ApiError::Forbidden { .. }) => Ok(Done::Nothing("forbidden: no grant".into())),
            other => other,
        },
        Action::Grant { who } => create(client, Object::RoleBinding(grant(who)), deadline).await,
        Action::Revoke { who } => {
            delete(
                client,
                Resource::RoleBindings,
                &format!("{GRANT_PREFIX}{who}"),
                PropagationPolicy::Background,
                deadline,
            )
            .await
        }
        Action::Delete { kind, name } => {
            delete(client, resource_of(*kind), name, PropagationPolicy::Background, deadline).await
        }
        Action::Cordon { node } => set_unschedulable(client, &kubelet_name(*node), true, deadline).await,
        Action::Uncordon { node } => set_unschedulable(client, &kubelet_name(*node), false, deadline).await,
        Action::Drain { node } => {
            let node = kubelet_name(*node);
            set_unschedulable(client, &node, true, deadline).await?;
            let mut evicted = 0;
            for namespace in DRAINED_NAMESPACES {
                let (pods, _) = retrying(deadline, || client.list(Resource::Pods, namespace)).await?;
                for pod in pods.iter().filter_map(Object::as_pod) {
                    if pod.spec.node_name.as_deref() == Some(node.as_str()) && !pod.metadata.is_being_deleted() {
                        let name = &pod.metadata.name;
                        let result = retrying(deadline, || {
                            client.delete_with(Resource::Pods, namespace, name, None, DeleteOptions::default(), None)
                        })
                        .await;
                        match result {
                            Ok(_) => evicted += 1,
                            Err(ApiError::NotFound { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            Ok(if evicted == 0 { Done::Nothing("no pods to evict".into()) } else { Done::Done })
        }
    }
}

fn resource_of(kind: ObjectKind) -> Resource {
    match kind {
        ObjectKind::ConfigMap => Resource::ConfigMaps,
        ObjectKind::Secret => Resource::Secrets,
        ObjectKind::Service => Resource::Services,
    }
}

fn labels(name: &str) -> Labels {
    [("app".to_string(), name.to_string())].into()
}

fn template(name: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        labels: labels(name),
        spec: PodSpec {
            node_name: None,
            containers: vec![Container { name: name.into(), image: image.into(), cpu_millis: 100 }],
        },
    }
}

fn strategy_of(strategy: Strategy) -> DeploymentStrategy {
    match strategy {
        Strategy::RollingUpdate => DeploymentStrategy::RollingUpdate(RollingUpdateDeployment {
            max_surge: Some(IntOrPercent::Percent(25)),
            max_unavailable: Some(IntOrPercent::Percent(25)),
        }),
        Strategy::Recreate => DeploymentStrategy::Recreate,
    }
}

fn deployment(name: &str, replicas: i32, image: &str, strategy: Strategy) -> Deployment {
    let mut metadata = ObjectMeta::named(NAMESPACE, name);
    metadata.labels = labels(name);
    Deployment {
        metadata,
        spec: DeploymentSpec {
            replicas,
            selector: labels(name),
            template: template(name, image),
            strategy: Some(strategy_of(strategy)),
            revision_history_limit: None,
        },
        status: Default::default(),
    }
}

fn new_object(kind: ObjectKind, name: &str) -> Object {
    let metadata = ObjectMeta::named(NAMESPACE, name);
    let data: BTreeMap<String, String> = [("counter".to_string(), "0".to_string())].into();
    match kind {
        ObjectKind::ConfigMap => Object::ConfigMap(ConfigMap { metadata, data }),
        ObjectKind::Secret => Object::Secret(Secret { metadata, data }),
        ObjectKind::Service => Object::Service(Service {
            metadata,
            spec: ServiceSpec {
                selector: labels(name),
                cluster_ip: String::new(),
                ports: vec![ServicePort { name: "http".into(), port: 80, target_port: 8080 }],
            },
        }),
    }
}

/// What the user asks of a deployment, as evidence for the convergence checker's safety
/// half (recorded before the request goes out).
fn record_desired(recorder: &Recorder, name: &str, replicas: i32) {
    recorder.record(HistoryEvent::DesiredReplicas {
        namespace: NAMESPACE.to_string(),
        deployment: name.to_string(),
        replicas,
    });
}

/// Updates `object` under the resourceVersion it carries, retrying what a user retries
/// until `deadline`, but not a 409 Conflict: that needs a fresh read. `Ok(true)` written,
/// `Ok(false)` a conflict (the caller reads again, as client-go's `RetryOnConflict`).
async fn update_or_conflict(client: &ApiClient, object: Object, deadline: Instant) -> Result<bool, ApiError> {
    retrying(deadline, || async {
        match client.update(object.clone(), None).await {
            Err(ApiError::Conflict { .. }) => Ok(false),
            other => other.map(|_| true),
        }
    })
    .await
}

async fn create(client: &ApiClient, object: Object, deadline: Instant) -> Result<Done, ApiError> {
    // NotFound: the namespace is not there yet (the admin is creating it, or a restore
    // took it).
    let result = retrying(deadline, || async {
        match client.create(object.clone(), None).await {
            Err(ApiError::NotFound { .. }) => Err(ApiError::Unavailable { reason: "namespace not found".into() }),
            other => other,
        }
    })
    .await;
    match result {
        Ok(_) => Ok(Done::Done),
        Err(ApiError::AlreadyExists { .. }) => Ok(Done::Nothing("already exists".into())),
        Err(e) => Err(e),
    }
}

async fn delete(
    client: &ApiClient,
    resource: Resource,
    name: &str,
    policy: PropagationPolicy,
    deadline: Instant,
) -> Result<Done, ApiError> {
    let options = DeleteOptions::propagation(policy);
    match retrying(deadline, || client.delete_with(resource, NAMESPACE, name, None, options.clone(), None)).await {
        Ok(_) => Ok(Done::Done),
        Err(ApiError::NotFound { .. }) => Ok(Done::Nothing("not found".into())),
        Err(e) => Err(e),
    }
}

/// Reads deployment `name` and the ReplicaSets it owns, changes it with `change`, and
/// writes it back under the resourceVersion read, recording the replicas read and asked
/// for; retried on conflict. A missing deployment is nothing to do.
async fn change_deployment(
    client: &ApiClient,
    recorder: &Recorder,
    name: &str,
    deadline: Instant,
    change: impl Fn(&mut Deployment, &[ReplicaSet]) -> Result<(), String>,
) -> Result<Done, ApiError> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let read = match retrying(deadline, || client.get(Resource::Deployments, NAMESPACE, name)).await {
            Ok(object) => object.into_deployment().expect("a deployment"),
            Err(ApiError::NotFound { .. }) => return Ok(Done::Nothing("not found".into())),
            Err(e) => return Err(e),
        };
        if read.metadata.is_being_deleted() {
            return Ok(Done::Nothing("being deleted".into()));
        }
        let (replica_sets, _) = retrying(deadline, || client.list(Resource::ReplicaSets, NAMESPACE)).await?;
        let owned: Vec<ReplicaSet> = replica_sets
            .into_iter()
            .filter_map(Object::into_replica_set)
            .filter(|rs| controllers::deployment::is_owned_by(rs, &read))
            .collect();
        let mut changed = read.clone();
        if let Err(why) = change(&mut changed, &owned) {
            return Ok(Done::Nothing(why));
        }
        // The read deployment asks for its own replicas (after a restore, a restored
        // deployment's, which no earlier record of this cluster epoch shows).
        record_desired(recorder, name, read.spec.replicas);
        if changed.spec.replicas != read.spec.replicas {
            record_desired(recorder, name, changed.spec.replicas);
        }
        match update_or_conflict(client, Object::Deployment(changed), deadline).await {
            Ok(true) => return Ok(Done::Done),
            Ok(false) => continue,
            Err(ApiError::NotFound { .. }) => return Ok(Done::Nothing("not found".into())),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Conflict { reason: format!("{MAX_CONFLICT_RETRIES} conflicts in a row") })
}

/// client-go's `RetryOnConflict` around get, change, update: adds one to the object's
/// `counter`.
async fn read_modify_write(
    client: &ApiClient,
    kind: ObjectKind,
    name: &str,
    deadline: Instant,
) -> Result<Done, ApiError> {
    let resource = resource_of(kind);
    for _ in 0..MAX_CONFLICT_RETRIES {
        let object = match retrying(deadline, || client.get(resource, NAMESPACE, name)).await {
            Ok(object) => object,
            Err(ApiError::NotFound { .. }) => return Ok(Done::Nothing("not found".into())),
            Err(e) => return Err(e),
        };
        let changed = match object {
            Object::ConfigMap(mut c) => {
                bump(&mut c.data);
                Object::ConfigMap(c)
            }
            Object::Secret(mut s) => {
                bump(&mut s.data);
                Object::Secret(s)
            }
            other => return Ok(Done::Nothing(format!("a {:?} has no data to change", other.resource()))),
        };
        match update_or_conflict(client, changed, deadline).await {
            Ok(true) => return Ok(Done::Done),
            Ok(false) => continue,
            Err(ApiError::NotFound { .. }) => return Ok(Done::Nothing("not found".into())),
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Conflict { reason: format!("{MAX_CONFLICT_RETRIES} conflicts in a row") })
}

fn bump(data: &mut BTreeMap<String, String>) {
    let counter = data.get("counter").and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
    data.insert("counter".into(), (counter + 1).to_string());
}

/// `kubectl cordon` / `uncordon`: the node's `spec.unschedulable`, read-modify-write.
async fn set_unschedulable(
    client: &ApiClient,
    node: &str,
    unschedulable: bool,
    deadline: Instant,
) -> Result<Done, ApiError> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let mut read = match retrying(deadline, || client.get(Resource::Nodes, "", node)).await {
            Ok(object) => object.into_node().expect("a node"),
            Err(ApiError::NotFound { .. }) => return Ok(Done::Nothing("no such node".into())),
            Err(e) => return Err(e),
        };
        if read.spec.unschedulable == unschedulable {
            return Ok(Done::Nothing(if unschedulable { "already cordoned" } else { "not cordoned" }.into()));
        }
        read.spec.unschedulable = unschedulable;
        match update_or_conflict(client, Object::Node(read), deadline).await {
            Ok(true) => return Ok(Done::Done),
            Ok(false) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::Conflict { reason: format!("{MAX_CONFLICT_RETRIES} conflicts in a row") })
}

/// Deletes the ReplicaSets of the namespace that no controller owns (of deployment
/// `name`'s, by their name, or all), with their pods. Best effort.
async fn delete_orphans(client: &ApiClient, name: Option<&str>, deadline: Instant) {
    let Ok((replica_sets, _)) = retrying(deadline, || client.list(Resource::ReplicaSets, NAMESPACE)).await else {
        return;
    };
    for rs in replica_sets.iter().filter_map(Object::as_replica_set) {
        let of_name = name.is_none_or(|n| rs.metadata.name.strip_prefix(n).is_some_and(|r| r.starts_with('-')));
        if of_name && rs.metadata.controller_owner().is_none() && !rs.metadata.is_being_deleted() {
            let options = DeleteOptions::propagation(PropagationPolicy::Background);
            let _ = retrying(deadline, || {
                client.delete_with(Resource::ReplicaSets, NAMESPACE, &rs.metadata.name, None, options.clone(), None)
            })
            .await;
        }
    }
}

/// What one deployment should be at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DeploymentIntent {
    replicas: i32,
    strategy: Strategy,
    /// Its templates' images in revision order, the current one last.
    images: Vec<String>,
}

impl DeploymentIntent {
    fn image(&self) -> &str {
        self.images.last().expect("a deployment has an image")
    }

    fn spec(&self, name: &str) -> DeploymentSpec {
        deployment(name, self.replicas, self.image(), self.strategy).spec
    }

    /// A new revision with `image` (an old template rolled out again gets a new revision
    /// number, as Kubernetes renumbers it).
    fn roll_out(&mut self, image: String) {
        self.images.retain(|i| *i != image);
        self.images.push(image);
    }
}

/// What the users last asked for: the fold of their actions in time order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Intent {
    deployments: BTreeMap<String, DeploymentIntent>,
    /// ConfigMaps, Secrets and Services, and whether each should exist.
    objects: BTreeMap<(ObjectKind, String), bool>,
    /// Users and whether each should hold its grant.
    grants: BTreeMap<String, bool>,
}

impl Intent {
    pub(crate) fn of(workload: &[UserAction]) -> Intent {
        let mut by_time: Vec<&UserAction> = workload.iter().collect();
        by_time.sort_by_key(|a| a.at_ms);
        let mut intent = Intent::default();
        for action in by_time {
            match &action.action {
                Action::CreateDeployment { name, replicas, image, strategy } => {
                    intent.deployments.entry(name.clone()).or_insert_with(|| DeploymentIntent {
                        replicas: *replicas as i32,
                        strategy: *strategy,
                        images: vec![image.clone()],
                    });
                }
                Action::Scale { name, replicas } => {
                    if let Some(d) = intent.deployments.get_mut(name) {
                        d.replicas = *replicas as i32;
                    }
                }
                Action::SetImage { name, image } => {
                    if let Some(d) = intent.deployments.get_mut(name) {
                        if d.image() != image {
                            d.roll_out(image.clone());
                        }
                    }
                }
                Action::RollBack { name } => {
                    if let Some(d) = intent.deployments.get_mut(name) {
                        if d.images.len() >= 2 {
                            let previous = d.images[d.images.len() - 2].clone();
                            d.roll_out(previous);
                        }
                    }
                }
                Action::DeleteDeployment { name, .. } => {
                    intent.deployments.remove(name);
                }
                Action::Create { kind, name } => {
                    intent.objects.insert((*kind, name.clone()), true);
                }
                Action::Delete { kind, name } => {
                    intent.objects.insert((*kind, name.clone()), false);
                }
                Action::Grant { who } => {
                    intent.grants.insert(who.clone(), true);
                }
                Action::Revoke { who } => {
                    intent.grants.insert(who.clone(), false);
                }
                Action::ReadModifyWrite { .. }
                | Action::Cordon { .. }
                | Action::Drain { .. }
                | Action::Uncordon { .. } => {}
            }
        }
        intent
    }

    /// The RoleBindings the grants should leave.
    fn bindings(&self) -> BTreeSet<String> {
        self.grants.iter().filter(|(_, held)| **held).map(|(who, _)| format!("{GRANT_PREFIX}{who}")).collect()
    }

    fn wanted(&self, kind: ObjectKind) -> BTreeSet<&str> {
        self.objects.iter().filter(|((k, _), present)| *k == kind && **present).map(|((_, n), _)| n.as_str()).collect()
    }
}

/// Brings the cluster to the intent (`kubectl apply` of it), best effort: one pass.
async fn apply(admin: &ApiClient, recorder: &Recorder, intent: &Intent, n_kubelets: u32, deadline: Instant) {
    // The namespace, if the safety phase never let it be made, or a restore took it.
    if let Err(ApiError::NotFound { .. }) = admin.get(Resource::Namespaces, "", NAMESPACE).await {
        recorder.note(format!("workload-admin: kubectl create namespace {NAMESPACE}: it was missing"));
        let namespace = api::Namespace { metadata: ObjectMeta::named("", NAMESPACE) };
        let _ = admin.create(Object::Namespace(namespace), None).await;
    }
    for node in 0..n_kubelets {
        let _ = set_unschedulable(admin, &kubelet_name(node), false, deadline).await;
    }
    let Ok((deployments, _)) = admin.list(Resource::Deployments, NAMESPACE).await else { return };
    let deployments: BTreeMap<String, Deployment> =
        deployments.into_iter().filter_map(Object::into_deployment).map(|d| (d.metadata.name.clone(), d)).collect();
    for (name, want) in &intent.deployments {
        let spec = want.spec(name);
        match deployments.get(name) {
            None => {
                recorder.note(format!("workload-admin: kubectl apply deployment {name}: it was missing"));
                record_desired(recorder, name, want.replicas);
                let _ = admin
                    .create(Object::Deployment(deployment(name, want.replicas, want.image(), want.strategy)), None)
                    .await;
            }
            // Being deleted (a foreground delete still collecting): created again once gone.
            Some(d) if d.metadata.is_being_deleted() => {}
            Some(d) if d.spec != spec => {
                recorder.note(format!("workload-admin: kubectl apply deployment {name}"));
                record_desired(recorder, name, d.spec.replicas);
                record_desired(recorder, name, want.replicas);
                let mut changed = d.clone();
                changed.spec = spec;
                let _ = admin.update(Object::Deployment(changed), None).await;
            }
            Some(_) => {}
        }
    }
    for (name, d) in &deployments {
        if !intent.deployments.contains_key(name) && !d.metadata.is_being_deleted() {
            recorder.note(format!("workload-admin: kubectl delete deployment {name}: not asked for"));
            let _ =
                admin.delete_with(Resource::Deployments, NAMESPACE, name, None, DeleteOptions::default(), None).await;
        }
    }
    delete_orphans(admin, None, deadline).await;
    if let Err(ApiError::NotFound { .. }) = admin.get(Resource::Roles, NAMESPACE, EDITOR_ROLE).await {
        let _ = admin.create(Object::Role(editor_role()), None).await;
    }
    if let Ok((items, _)) = admin.list(Resource::RoleBindings, NAMESPACE).await {
        let have: BTreeSet<String> = items.iter().map(|o| o.metadata().name.clone()).collect();
        let wanted = intent.bindings();
        for name in wanted.difference(&have) {
            recorder.note(format!("workload-admin: kubectl apply rolebinding {name}: it was missing"));
            let who = name.trim_start_matches(GRANT_PREFIX);
            let _ = admin.create(Object::RoleBinding(grant(who)), None).await;
        }
        for name in have.difference(&wanted) {
            recorder.note(format!("workload-admin: kubectl delete rolebinding {name}: not asked for"));
            let _ = admin.delete(Resource::RoleBindings, NAMESPACE, name, None, None).await;
        }
    }
    for kind in [ObjectKind::ConfigMap, ObjectKind::Secret, ObjectKind::Service] {
        let Ok((items, _)) = admin.list(resource_of(kind), NAMESPACE).await else { continue };
        let have: BTreeSet<String> = items.iter().map(|o| o.metadata().name.clone()).collect();
        let wanted = intent.wanted(kind);
        for name in wanted.iter().filter(|n| !have.contains(**n)) {
            recorder.note(format!("workload-admin: kubectl apply {} {name}: it was missing", kind.name()));
            let _ = admin.create(new_object(kind, name), None).await;
        }
        for name in have.iter().filter(|n| !wanted.contains(n.as_str())) {
            recorder.note(format!("workload-admin: kubectl delete {} {name}: not asked for", kind.name()));
            let _ = admin.delete(resource_of(kind), NAMESPACE, name, None, None).await;
        }
    }
}

/// Whether the cluster is at the intent and settled: `Ok(Ok(summary))`, `Ok(Err(what is
/// not yet))`, or `Err` when the admin could not look.
async fn look(admin: &ApiClient, intent: &Intent) -> Result<Result<String, String>, ApiError> {
    let mut unsettled = Vec::new();
    let (nodes, _) = admin.list(Resource::Nodes, "").await?;
    for node in nodes.iter().filter_map(Object::as_node) {
        if !node.status.ready {
            unsettled.push(format!("node {} NotReady", node.metadata.name));
        }
        if node.spec.unschedulable {
            unsettled.push(format!("node {} cordoned", node.metadata.name));
        }
    }
    let (deployments, _) = admin.list(Resource::Deployments, NAMESPACE).await?;
    let (replica_sets, _) = admin.list(Resource::ReplicaSets, NAMESPACE).await?;
    let (pods, _) = admin.list(Resource::Pods, NAMESPACE).await?;
    let deployments: BTreeMap<&str, &Deployment> =
        deployments.iter().filter_map(Object::as_deployment).map(|d| (d.metadata.name.as_str(), d)).collect();
    let have: BTreeSet<&str> = deployments.keys().copied().collect();
    let want: BTreeSet<&str> = intent.deployments.keys().map(String::as_str).collect();
    if have != want {
        unsettled.push(format!("deployments {have:?}, asked for {want:?}"));
    }
    let mut n_pods = 0;
    for (name, intended) in &intent.deployments {
        let Some(d) = deployments.get(name.as_str()) else { continue };
        if d.spec != intended.spec(name) {
            unsettled.push(format!("deployment {name} differs from what was asked"));
            continue;
        }
        let hash = pod_template_hash(&d.spec.template);
        let ours: Vec<&api::Pod> = pods
            .iter()
            .filter_map(Object::as_pod)
            .filter(|p| api::selector_matches(&d.spec.selector, &p.metadata.labels))
            .collect();
        let running_current = ours
            .iter()
            .filter(|p| p.status.phase == PodPhase::Running)
            .filter(|p| p.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) == Some(&hash))
            .count() as i32;
        if ours.len() as i32 != intended.replicas || running_current != intended.replicas {
            unsettled.push(format!(
                "{name}: {} pods, {running_current} Running of the current template, for {} replicas",
                ours.len(),
                intended.replicas
            ));
        }
        n_pods += ours.len();
    }
    let all_pods = pods.iter().filter_map(Object::as_pod).count();
    if all_pods != n_pods {
        unsettled.push(format!("{} pods of no deployment asked for", all_pods - n_pods));
    }
    for rs in replica_sets.iter().filter_map(Object::as_replica_set) {
        let owner = rs
            .metadata
            .controller_owner()
            .and_then(|o| deployments.get(o.name.as_str()).filter(|d| d.metadata.uid == o.uid));
        match owner {
            None => unsettled.push(format!("ReplicaSet {} has no live owner", rs.metadata.name)),
            Some(d) => {
                let current =
                    rs.spec.template.labels.get(POD_TEMPLATE_HASH_LABEL) == Some(&pod_template_hash(&d.spec.template));
                if !current && rs.spec.replicas != 0 {
                    unsettled.push(format!("old ReplicaSet {} at {} replicas", rs.metadata.name, rs.spec.replicas));
                }
            }
        }
    }
    for kind in [ObjectKind::ConfigMap, ObjectKind::Secret, ObjectKind::Service] {
        let (items, _) = admin.list(resource_of(kind), NAMESPACE).await?;
        let have: BTreeSet<&str> = items.iter().map(|o| o.metadata().name.as_str()).collect();
        let wanted = intent.wanted(kind);
        if have != wanted {
            unsettled.push(format!("{}s {have:?}, asked for {wanted:?}", kind.name()));
        }
    }
    let (bindings, _) = admin.list(Resource::RoleBindings, NAMESPACE).await?;
    let have: BTreeSet<String> = bindings.iter().map(|o| o.metadata().name.clone()).collect();
    if have != intent.bindings() {
        unsettled.push(format!("rolebindings {have:?}, asked for {:?}", intent.bindings()));
    }
    if unsettled.is_empty() {
        let objects = intent.objects.values().filter(|present| **present).count();
        Ok(Ok(format!("{} deployments with {n_pods} pods Running, {objects} other objects as asked", want.len())))
    } else {
        Ok(Err(unsettled.join("; ")))
    }
}

/// Applies the intent and waits until the cluster has stayed at it for
/// [`super::AT_REST_AFTER`], within `patience`, recording what the admin waits for and
/// sees; then looks once more at rest.
async fn wait_until_at_rest(
    admin: &ApiClient,
    recorder: &Recorder,
    intent: &Intent,
    n_kubelets: u32,
    patience: Duration,
) -> Vec<Check> {
    let deadline = Instant::now() + patience;
    let settling = super::Settling {
        goal: format!("the workload's namespace {NAMESPACE} as its users asked, within {}s", patience.as_secs()),
        last_look: "at rest: the workload's namespace as asked",
        subject: "workload ",
        patience,
    };
    super::settle(recorder, settling, || apply(admin, recorder, intent, n_kubelets, deadline), || look(admin, intent))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(at_ms: u64, action: Action) -> UserAction {
        UserAction { at_ms, user: "alice".into(), action }
    }

    #[test]
    fn the_intent_is_the_fold_of_the_actions_in_time_order() {
        let workload = vec![
            at(
                0,
                Action::CreateDeployment {
                    name: "web".into(),
                    replicas: 2,
                    image: "a".into(),
                    strategy: Strategy::RollingUpdate,
                },
            ),
            at(30, Action::RollBack { name: "web".into() }),
            at(10, Action::SetImage { name: "web".into(), image: "b".into() }),
            at(20, Action::Scale { name: "web".into(), replicas: 4 }),
            at(40, Action::Scale { name: "api".into(), replicas: 4 }),
            at(50, Action::Create { kind: ObjectKind::ConfigMap, name: "flags".into() }),
            at(60, Action::Create { kind: ObjectKind::Secret, name: "tls".into() }),
            at(70, Action::Delete { kind: ObjectKind::Secret, name: "tls".into() }),
        ];
        let intent = Intent::of(&workload);
        let web = &intent.deployments["web"];
        assert_eq!((web.replicas, web.image()), (4, "a"));
        assert_eq!(web.images, ["b", "a"], "a rollback makes the old template the newest revision");
        assert!(!intent.deployments.contains_key("api"), "a scale of a missing deployment creates nothing");
        assert_eq!(intent.wanted(ObjectKind::ConfigMap), BTreeSet::from(["flags"]));
        assert!(intent.wanted(ObjectKind::Secret).is_empty());
        let mut deleted = workload.clone();
        deleted.push(at(80, Action::DeleteDeployment { name: "web".into(), cascade: Cascade::Orphan }));
        assert!(Intent::of(&deleted).deployments.is_empty());
    }
}
