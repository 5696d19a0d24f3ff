//! `permissions`: a user's permission granted, revoked and granted again while the nemesis
//! works (docs/design.md §4.19). Three apiservers and the usual control plane, every
//! apiserver recording each RBAC decision with the revisions its RBAC cache had synced to
//! (`ControlPlaneOptions::record_authorizations`), the permissions checker's evidence.
//!
//! The admin (`system:masters`) creates the Role [`ROLE`] in [`NAMESPACE`] (get, list,
//! create, update and delete of ConfigMaps) and the ConfigMap [`CONFIG_MAP`], then through
//! the safety phase grants [`USER`] the role (creates the RoleBinding [`BINDING`]), waits
//! a few seconds, revokes it (deletes the binding), waits, grants it again, and so on,
//! re-creating the Role and the ConfigMap whenever a restore lost them. [`USER`] keeps
//! working all along, one client per apiserver: reads the ConfigMap, updates it
//! (read-modify-write), lists ConfigMaps, creates one of its own; a 403 Forbidden is what
//! it expects while revoked, and it simply tries again later.
//!
//! Once the faults healed the admin grants the role a last time and waits until the user
//! may read the ConfigMap within the liveness bound (`Awaited`/`Looked`, judged by the
//! convergence checker): a grant takes effect once every apiserver has seen it.
//!
//! Disk faults are accepted: a restore from a backup taken while the user was granted,
//! after it was revoked, gives the permission back — the security window, which the
//! permissions checker reports (not a violation), until the admin's next revoke.

use std::time::Duration;

use api::rbac::{PolicyRule, Role, RoleBinding, RoleRef, RoleRefKind, Subject};
use api::{ApiClient, ApiError, ConfigMap, Object, ObjectMeta, Resource};
use apiserver::UserInfo;
use madsim::rand::Rng;

use crate::control_plane::{ControlPlane, ControlPlaneOptions};
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;
use crate::report::{Check, ScenarioOutcome};
use crate::world::SimWorld;
use faults::FaultPlan;

pub const NAMESPACE: &str = "default";
/// The user whose permission comes and goes.
pub const USER: &str = "alice";
/// The Role granted to [`USER`].
pub const ROLE: &str = "configmap-editor";
/// The RoleBinding that grants it.
pub const BINDING: &str = "alice-configmap-editor";
/// The ConfigMap [`USER`] reads and updates.
pub const CONFIG_MAP: &str = "alice-notes";
/// The apiservers the scenario runs; [`USER`] has a client on each.
pub const N_APISERVERS: u32 = 3;
/// How long the admin leaves the permission granted, or revoked, before it changes it:
/// drawn between these bounds (ms) each time.
const HOLD_MS: std::ops::Range<u64> = 2_000..6_000;
const PLAIN_SAFETY: Duration = Duration::from_secs(30);
const PLAIN_LIVENESS: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(500);

/// The cluster this scenario needs (applied before the plan is drawn, so that faults can
/// target every apiserver): three apiservers recording their RBAC decisions, and the user.
pub fn configure(cluster: &mut ControlPlaneOptions) {
    cluster.n_apiservers = cluster.n_apiservers.max(N_APISERVERS);
    cluster.record_authorizations = true;
    if !cluster.users.iter().any(|user| user.name == USER) {
        cluster.users.push(UserInfo::new(USER, &["system:authenticated"]));
    }
}

fn role() -> Role {
    Role {
        metadata: ObjectMeta::named(NAMESPACE, ROLE),
        rules: vec![PolicyRule::new(&["get", "list", "create", "update", "delete"], &[""], &["configmaps"])],
    }
}

fn binding() -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta::named(NAMESPACE, BINDING),
        subjects: vec![Subject::user(USER)],
        role_ref: RoleRef { kind: RoleRefKind::Role, name: ROLE.to_string() },
    }
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap { metadata: ObjectMeta::named(NAMESPACE, name), data: [("edits".to_string(), "0".to_string())].into() }
}

pub async fn run(
    recorder: Recorder,
    nodes: &SeedNodes,
    mut options: ControlPlaneOptions,
    plan: Option<FaultPlan>,
) -> ScenarioOutcome {
    configure(&mut options);
    let plane = ControlPlane::start(&options, &recorder, nodes);
    let (kubectl_node, kubectl) = plane.kubectl(&recorder).await;
    let (churn, liveness) = match &plan {
        Some(plan) => (Duration::from_millis(plan.safety_phase_ms), Duration::from_millis(plan.liveness_phase_ms)),
        None => (PLAIN_SAFETY, PLAIN_LIVENESS),
    };
    let mut clients = Vec::new();
    let mut workers = Vec::new();
    for idx in 0..options.n_apiservers {
        let server = plane.apiserver_addrs[idx as usize];
        let name = format!("{USER}-{idx}");
        let ip = crate::addresses::client(10 + idx as u8);
        let (node, client) = plane.client_of(USER, &name, ip, vec![server], &recorder).await;
        workers.push(node.spawn(user_workload(client.clone(), idx, churn)));
        clients.push(client);
    }
    let admin = kubectl_node.spawn({
        let recorder = recorder.clone();
        let user = clients[0].clone();
        async move { admin_workload(&kubectl, &user, &recorder, churn, liveness).await }
    });
    if let Some(plan) = plan {
        faults::run(&plan, SimWorld::for_control_plane(&plane, &recorder)).await;
    }
    for worker in workers {
        worker.await.expect("the user's workload");
    }
    let checks = admin.await.expect("the admin's workload");
    let store_endpoints = plane.store.endpoints().lock().expect("endpoints lock").clone();
    ScenarioOutcome { timeline: timeline(&recorder), checks, stats: Default::default(), store_endpoints }
}

/// The user, through one apiserver: every few hundred milliseconds, one of read, update,
/// list, or create-then-delete a ConfigMap of its own. Every error (403 while revoked, a
/// timeout, a conflict) is shrugged off.
async fn user_workload(client: ApiClient, idx: u32, churn: Duration) {
    let end = madsim::time::Instant::now() + churn;
    let own = format!("{USER}-scratch-{idx}");
    while madsim::time::Instant::now() < end {
        let (pause, action) = {
            let mut rng = madsim::rand::thread_rng();
            (Duration::from_millis(rng.gen_range(100..500)), rng.gen_range(0..4u32))
        };
        madsim::time::sleep(pause).await;
        match action {
            0 => {
                let _ = client.get(Resource::ConfigMaps, NAMESPACE, CONFIG_MAP).await;
            }
            1 => {
                if let Ok(Object::ConfigMap(mut notes)) = client.get(Resource::ConfigMaps, NAMESPACE, CONFIG_MAP).await
                {
                    let edits: u64 = notes.data.get("edits").and_then(|e| e.parse().ok()).unwrap_or(0);
                    notes.data.insert("edits".into(), (edits + 1).to_string());
                    let _ = client.update(Object::ConfigMap(notes), None).await;
                }
            }
            2 => {
                let _ = client.list(Resource::ConfigMaps, NAMESPACE).await;
            }
            _ => match client.create(Object::ConfigMap(config_map(&own)), None).await {
                Ok(_) | Err(ApiError::AlreadyExists { .. }) => {
                    let _ = client.delete(Resource::ConfigMaps, NAMESPACE, &own, None, None).await;
                }
                Err(_) => {}
            },
        }
    }
}

/// `kubectl apply` of the Role and the ConfigMap: created when missing.
async fn reapply(kubectl: &ApiClient) {
    if let Err(ApiError::NotFound { .. }) = kubectl.get(Resource::Roles, NAMESPACE, ROLE).await {
        let _ = kubectl.create(Object::Role(role()), None).await;
    }
    if let Err(ApiError::NotFound { .. }) = kubectl.get(Resource::ConfigMaps, NAMESPACE, CONFIG_MAP).await {
        let _ = kubectl.create(Object::ConfigMap(config_map(CONFIG_MAP)), None).await;
    }
}

/// `kubectl create rolebinding`: done when created or already there.
async fn grant(kubectl: &ApiClient) -> Result<(), ApiError> {
    match kubectl.create(Object::RoleBinding(binding()), None).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `kubectl delete rolebinding`: done when deleted or already gone.
async fn revoke(kubectl: &ApiClient) -> Result<(), ApiError> {
    match kubectl.delete(Resource::RoleBindings, NAMESPACE, BINDING, None, None).await {
        Ok(_) | Err(ApiError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The admin: sets up the Role and the ConfigMap, grants and revokes through the churn,
/// then grants a last time and waits until the user may read.
async fn admin_workload(
    kubectl: &ApiClient,
    user: &ApiClient,
    recorder: &Recorder,
    churn: Duration,
    liveness: Duration,
) -> Vec<Check> {
    let start = madsim::time::Instant::now();
    recorder.note(format!(
        "kubectl create role {ROLE} --verb=get,list,create,update,delete --resource=configmaps -n {NAMESPACE}; \
         {USER} works on ConfigMaps while the binding comes and goes"
    ));
    let (mut granted, mut n_grants, mut n_revokes) = (false, 0u32, 0u32);
    while madsim::time::Instant::now() < start + churn {
        reapply(kubectl).await;
        let done = if granted { revoke(kubectl).await } else { grant(kubectl).await };
        match done {
            Ok(()) => {
                granted = !granted;
                if granted {
                    n_grants += 1;
                    recorder.note(format!("kubectl create rolebinding {BINDING} --role={ROLE} --user={USER}"));
                } else {
                    n_revokes += 1;
                    recorder.note(format!("kubectl delete rolebinding {BINDING}"));
                }
            }
            Err(e) => tracing::debug!("the admin's grant or revoke failed, will retry: {e}"),
        }
        let hold = Duration::from_millis(madsim::rand::thread_rng().gen_range(HOLD_MS));
        madsim::time::sleep(hold).await;
    }
    recorder.note(format!("the admin stopped changing {USER}'s permission ({n_grants} grants, {n_revokes} revokes)"));
    vec![
        Check::info(format!("{n_grants} grants and {n_revokes} revokes of {BINDING}")),
        wait_for_grant(kubectl, user, recorder, liveness).await,
    ]
}

/// Grants the role (again) and waits until the user may read the ConfigMap, within
/// `patience`, recording what it waits for and sees.
async fn wait_for_grant(kubectl: &ApiClient, user: &ApiClient, recorder: &Recorder, patience: Duration) -> Check {
    let start = madsim::time::Instant::now();
    let goal = format!("{USER} may get ConfigMap {NAMESPACE}/{CONFIG_MAP} within {}s", patience.as_secs());
    let mut awaiting = super::Awaiting::begin(recorder, goal, 1, false, Some(start + patience));
    loop {
        reapply(kubectl).await;
        let _ = grant(kubectl).await;
        let began = madsim::time::Instant::now();
        let (have, seen) = match user.get(Resource::ConfigMaps, NAMESPACE, CONFIG_MAP).await {
            Ok(_) => (1, format!("{USER} read {CONFIG_MAP}")),
            Err(ApiError::Forbidden { .. }) => (0, format!("{USER} is forbidden")),
            Err(e) => (0, format!("{USER}'s get failed: {e}")),
        };
        awaiting.looked(began, Some(have), seen.clone());
        if have == 1 {
            recorder.note(format!("{USER} may read again after {:.1}s", (began - start).as_secs_f64()));
            return Check::info(format!("at rest: {seen}"));
        }
        if began - start >= patience {
            recorder.note(format!("{USER} still may not read after {}s", patience.as_secs()));
            return Check::info(format!("not at rest: {seen}"));
        }
        madsim::time::sleep(POLL).await;
    }
}

/// The faults and recoveries and the admin's grants and revokes.
fn timeline(recorder: &Recorder) -> Vec<String> {
    recorder.with_records(|records| {
        records
            .iter()
            .filter_map(|record| {
                let text = super::control_plane_line(&record.event)?;
                Some(super::timeline_entry(record.at_ns, &text))
            })
            .collect()
    })
}
