//! The generated workload: what the users of a seed do to the cluster while the nemesis
//! works, as data saved with the fault plan ([`FaultPlan::workload`](crate::FaultPlan)).
//!
//! Swarm testing applies to users as it does to faults (Groce et al., ISSTA 2012): each
//! seed draws its own users (one to three), its own number of actions and, from the menu
//! (`kubesim campaign --workload GROUPS`), its own mix of them, so some seeds hammer one
//! deployment with rollouts and rollbacks while others drain nodes under a ConfigMap
//! read-modify-write race. The actions are those a cluster's users and operators issue
//! every day, each named by the `kubectl` command it stands for:
//!
//! | group | actions |
//! |---|---|
//! | `deployments` | create (RollingUpdate or Recreate), `scale` (to 0 too), `set image` (a rollout), `rollout undo`, `delete --cascade=background\|foreground\|orphan` |
//! | `config` | create, read-modify-write (get, change, update under the resourceVersion read, retried on 409 Conflict), delete, of ConfigMaps and Secrets |
//! | `services` | create (the apiserver allocates a ClusterIP), delete |
//! | `nodes` | `cordon`, `drain` (cordon, then evict the node's pods), `uncordon` |
//!
//! Like a plan, the workload is a pure function of the seed ([`generate_workload`], from
//! the seed's own `workload` stream, so drawing it moves no fault), saved in the plan's
//! JSON so that `kubesim run --plan`, `kubesim shrink` (which removes actions as it removes
//! faults) and the corpus replay exactly what ran, and validated with the plan
//! ([`validate_action`]). Every action acts on objects of [`NAMESPACE`] (the documented
//! deploy-nginx flow keeps `default` to itself) and on the worker nodes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::plan::Topology;

/// The namespace every generated action works in; the users create it first.
pub const NAMESPACE: &str = "apps";

/// A plan with more actions than this is refused.
pub const MAX_ACTIONS: usize = 1_000;

/// The most replicas an action may ask of a deployment: the workload shares three
/// kubelets with deploy-nginx, and three deployments of this many fit on one of them.
pub const MAX_REPLICAS: u32 = 8;

/// The longest name of a user or an object an action may use (Kubernetes allows 253 for
/// most kinds; kubesim's pod names append two suffixes to a deployment's).
pub const MAX_NAME_LEN: usize = 40;

/// The users a seed draws from: at most three act at once, each on its own apiserver
/// where there are several.
pub const USERS: [&str; 3] = ["alice", "bob", "carol"];
/// The most distinct users a plan's workload may name (each gets a client node).
pub const MAX_USERS: usize = 8;

/// The deployments, ConfigMaps, Secrets and Services generated actions name: few, so that
/// users' actions collide on the same objects (a scale racing a rollout, two
/// read-modify-writes of one ConfigMap, a delete racing a create).
pub const DEPLOYMENTS: [&str; 3] = ["web", "api", "batch"];
pub const CONFIG_MAPS: [&str; 2] = ["settings", "flags"];
pub const SECRETS: [&str; 2] = ["token", "tls"];
pub const SERVICES: [&str; 2] = ["web", "api"];
/// The Role a grant binds a user to (get and update ConfigMaps and Secrets), and the prefix
/// of the RoleBinding's name (`edit-<user>`).
pub const EDITOR_ROLE: &str = "editor";
pub const GRANT_PREFIX: &str = "edit-";
/// The images a rollout switches between.
pub const IMAGES: [&str; 3] = ["nginx:1.14.2", "nginx:1.16.1", "nginx:1.25.3"];

/// A family of actions, named in kebab-case on the command line (`--workload GROUPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionGroup {
    Deployments,
    Config,
    Services,
    Nodes,
    Permissions,
}

impl ActionGroup {
    /// Every group: the `all` workload menu.
    pub const ALL: [ActionGroup; 5] = [
        ActionGroup::Deployments,
        ActionGroup::Config,
        ActionGroup::Services,
        ActionGroup::Nodes,
        ActionGroup::Permissions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ActionGroup::Deployments => "deployments",
            ActionGroup::Config => "config",
            ActionGroup::Services => "services",
            ActionGroup::Nodes => "nodes",
            ActionGroup::Permissions => "permissions",
        }
    }

    /// One line saying what the group's actions do.
    pub fn about(self) -> &'static str {
        match self {
            ActionGroup::Deployments => {
                "create, scale, set image (rollout), rollout undo, delete with each propagation policy"
            }
            ActionGroup::Config => "create, read-modify-write and delete ConfigMaps and Secrets",
            ActionGroup::Services => "create and delete Services (ClusterIPs allocated by the apiserver)",
            ActionGroup::Nodes => "cordon, drain and uncordon worker nodes",
            ActionGroup::Permissions => {
                "grant and revoke a user's RoleBinding to edit the namespace's ConfigMaps and Secrets; with it, \
                 users read-modify-write them under their own names, every RBAC decision judged by permissions"
            }
        }
    }
}

impl fmt::Display for ActionGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A workload menu that names no group.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown workload '{0}' (known: none, all, or a comma-separated list of {known})",
    known = ActionGroup::ALL.map(ActionGroup::name).join(", ")
)]
pub struct UnknownWorkload(pub String);

impl FromStr for ActionGroup {
    type Err = UnknownWorkload;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActionGroup::ALL.into_iter().find(|g| g.name() == s).ok_or_else(|| UnknownWorkload(s.to_string()))
    }
}

/// Reads a `--workload` value: `none` (no generated actions), `all`, or a comma-separated
/// list of groups.
///
/// ```
/// use faults::actions::{parse_menu, ActionGroup};
/// assert!(parse_menu("none").unwrap().is_empty());
/// assert_eq!(parse_menu("all").unwrap().len(), ActionGroup::ALL.len());
/// assert_eq!(parse_menu("nodes,config").unwrap().len(), 2);
/// assert!(parse_menu("pods").unwrap_err().to_string().contains("deployments, config"));
/// ```
pub fn parse_menu(value: &str) -> Result<BTreeSet<ActionGroup>, UnknownWorkload> {
    match value.trim() {
        "none" => Ok(BTreeSet::new()),
        "all" => Ok(ActionGroup::ALL.into_iter().collect()),
        list => list.split(',').map(|g| g.trim().parse()).collect(),
    }
}

/// The name `menu` is written as (the inverse of [`parse_menu`]).
pub fn menu_name(menu: &BTreeSet<ActionGroup>) -> String {
    if menu.is_empty() {
        "none".into()
    } else if menu.len() == ActionGroup::ALL.len() {
        "all".into()
    } else {
        menu.iter().map(|g| g.name()).collect::<Vec<_>>().join(",")
    }
}

/// How a deployment replaces its pods when its template changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// maxSurge 25%, maxUnavailable 25% (Kubernetes' defaults).
    RollingUpdate,
    Recreate,
}

/// `kubectl delete --cascade=...`: what becomes of a deleted deployment's ReplicaSets and
/// pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cascade {
    Background,
    Foreground,
    /// The ReplicaSets stay, their owner reference removed; the user deletes them later.
    Orphan,
}

/// The kinds of the simple objects the `config` and `services` actions write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectKind {
    ConfigMap,
    Secret,
    Service,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "configmap",
            ObjectKind::Secret => "secret",
            ObjectKind::Service => "service",
        }
    }
}

/// One thing a user does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// `kubectl create deployment NAME --replicas=N --image=IMAGE`, with a strategy.
    CreateDeployment { name: String, replicas: u32, image: String, strategy: Strategy },
    /// `kubectl scale deployment NAME --replicas=N`.
    Scale { name: String, replicas: u32 },
    /// `kubectl set image deployment/NAME *=IMAGE`: a rollout.
    SetImage { name: String, image: String },
    /// `kubectl rollout undo deployment/NAME`: back to the previous revision's template.
    RollBack { name: String },
    /// `kubectl delete deployment NAME --cascade=...`.
    DeleteDeployment { name: String, cascade: Cascade },
    /// `kubectl create configmap|secret|service NAME`.
    Create { kind: ObjectKind, name: String },
    /// Get, change, update under the resourceVersion read; retried on 409 Conflict
    /// (client-go's `RetryOnConflict`). ConfigMaps and Secrets only.
    ReadModifyWrite { kind: ObjectKind, name: String },
    /// `kubectl delete configmap|secret|service NAME`.
    Delete { kind: ObjectKind, name: String },
    /// `kubectl cordon NODE` (node by its index among the kubelets).
    Cordon { node: u32 },
    /// `kubectl drain NODE`: cordon, then evict every pod bound to it.
    Drain { node: u32 },
    /// `kubectl uncordon NODE`.
    Uncordon { node: u32 },
    /// `kubectl create rolebinding edit-WHO --role=editor --user=WHO`: WHO may now
    /// read-modify-write the namespace's ConfigMaps and Secrets.
    Grant { who: String },
    /// `kubectl delete rolebinding edit-WHO`.
    Revoke { who: String },
}

impl Action {
    /// The group the action belongs to.
    pub fn group(&self) -> ActionGroup {
        match self {
            Action::CreateDeployment { .. }
            | Action::Scale { .. }
            | Action::SetImage { .. }
            | Action::RollBack { .. }
            | Action::DeleteDeployment { .. } => ActionGroup::Deployments,
            Action::Create { kind: ObjectKind::Service, .. } | Action::Delete { kind: ObjectKind::Service, .. } => {
                ActionGroup::Services
            }
            Action::Create { .. } | Action::ReadModifyWrite { .. } | Action::Delete { .. } => ActionGroup::Config,
            Action::Cordon { .. } | Action::Drain { .. } | Action::Uncordon { .. } => ActionGroup::Nodes,
            Action::Grant { .. } | Action::Revoke { .. } => ActionGroup::Permissions,
        }
    }
}

impl fmt::Display for Action {
    /// The `kubectl` command the action stands for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cascade = |c: &Cascade| match c {
            Cascade::Background => "background",
            Cascade::Foreground => "foreground",
            Cascade::Orphan => "orphan",
        };
        match self {
            Action::CreateDeployment { name, replicas, image, strategy } => {
                let strategy = match strategy {
                    Strategy::RollingUpdate => "RollingUpdate",
                    Strategy::Recreate => "Recreate",
                };
                write!(f, "kubectl create deployment {name} --replicas={replicas} --image={image} ({strategy})")
            }
            Action::Scale { name, replicas } => write!(f, "kubectl scale deployment {name} --replicas={replicas}"),
            Action::SetImage { name, image } => write!(f, "kubectl set image deployment/{name} *={image}"),
            Action::RollBack { name } => write!(f, "kubectl rollout undo deployment/{name}"),
            Action::DeleteDeployment { name, cascade: c } => {
                write!(f, "kubectl delete deployment {name} --cascade={}", cascade(c))
            }
            Action::Create { kind, name } => write!(f, "kubectl create {} {name}", kind.name()),
            Action::ReadModifyWrite { kind, name } => write!(f, "read-modify-write {} {name}", kind.name()),
            Action::Delete { kind, name } => write!(f, "kubectl delete {} {name}", kind.name()),
            Action::Cordon { node } => write!(f, "kubectl cordon kubelet-{node}"),
            Action::Drain { node } => write!(f, "kubectl drain kubelet-{node}"),
            Action::Uncordon { node } => write!(f, "kubectl uncordon kubelet-{node}"),
            Action::Grant { who } => {
                write!(f, "kubectl create rolebinding {GRANT_PREFIX}{who} --role={EDITOR_ROLE} --user={who}")
            }
            Action::Revoke { who } => write!(f, "kubectl delete rolebinding {GRANT_PREFIX}{who}"),
        }
    }
}

/// One action of one user, at a time of the safety phase.
///
/// Unknown fields are refused by [`Action`], which sees every field but `at_ms` and `user`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAction {
    /// When the user starts it, in ms from the start of the safety phase. A user acts in
    /// order, so an action starts at this time or when the user's previous one finished.
    pub at_ms: u64,
    pub user: String,
    #[serde(flatten)]
    pub action: Action,
}

/// What is wrong with one action of a plan's workload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAction {
    #[error("at_ms {at_ms} is not within the safety phase ({safety_phase_ms} ms)")]
    AfterSafetyPhase { at_ms: u64, safety_phase_ms: u64 },
    #[error("{field} '{value}' is not a name: 1 to {MAX_NAME_LEN} of a-z, 0-9 and '-', starting and ending with a letter or digit")]
    BadName { field: &'static str, value: String },
    #[error("replicas {0} out of range (at most {MAX_REPLICAS})")]
    Replicas(u32),
    #[error("image '{0}' is not an image name (1 to 100 characters, no spaces)")]
    Image(String),
    #[error("node {node} is not a kubelet (topology has {kubelets})")]
    Node { node: u32, kubelets: u32 },
    #[error("read-modify-write of a {0}: only ConfigMaps and Secrets carry data to change")]
    NothingToModify(&'static str),
}

/// Whether `name` is a DNS-1123 label kubesim accepts.
fn is_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Checks one action against the plan's safety phase and topology.
pub fn validate_action(action: &UserAction, safety_phase_ms: u64, topology: &Topology) -> Result<(), InvalidAction> {
    if action.at_ms >= safety_phase_ms.max(1) {
        return Err(InvalidAction::AfterSafetyPhase { at_ms: action.at_ms, safety_phase_ms });
    }
    let name = |field: &'static str, value: &str| {
        if is_name(value) {
            Ok(())
        } else {
            Err(InvalidAction::BadName { field, value: value.to_string() })
        }
    };
    name("user", &action.user)?;
    let replicas =
        |replicas: u32| if replicas > MAX_REPLICAS { Err(InvalidAction::Replicas(replicas)) } else { Ok(()) };
    let image = |image: &str| {
        if image.is_empty() || image.len() > 100 || image.contains(char::is_whitespace) {
            Err(InvalidAction::Image(image.to_string()))
        } else {
            Ok(())
        }
    };
    let node = |node: u32| {
        if node >= topology.kubelets {
            Err(InvalidAction::Node { node, kubelets: topology.kubelets })
        } else {
            Ok(())
        }
    };
    match &action.action {
        Action::CreateDeployment { name: n, replicas: r, image: i, .. } => {
            name("name", n)?;
            replicas(*r)?;
            image(i)
        }
        Action::Scale { name: n, replicas: r } => {
            name("name", n)?;
            replicas(*r)
        }
        Action::SetImage { name: n, image: i } => {
            name("name", n)?;
            image(i)
        }
        Action::RollBack { name: n } | Action::DeleteDeployment { name: n, .. } => name("name", n),
        Action::ReadModifyWrite { kind: ObjectKind::Service, .. } => {
            Err(InvalidAction::NothingToModify(ObjectKind::Service.name()))
        }
        Action::Create { name: n, .. } | Action::ReadModifyWrite { name: n, .. } | Action::Delete { name: n, .. } => {
            name("name", n)
        }
        Action::Cordon { node: k } | Action::Drain { node: k } | Action::Uncordon { node: k } => node(*k),
        Action::Grant { who } | Action::Revoke { who } => name("who", who),
    }
}

/// The fewest and most actions a seed draws.
const MIN_ACTIONS: usize = 4;
const MAX_GENERATED_ACTIONS: usize = 24;
/// Actions start in the first nine tenths of the safety phase.
const ACTION_WINDOW_TENTHS: u64 = 9;
/// A drained node is uncordoned this long after the drain (2 to 10 s).
const DRAIN_FOR_MS: std::ops::RangeInclusive<u64> = 2_000..=10_000;

/// Draws the workload of `seed` from `menu`: deterministic from its arguments alone, from
/// the seed's `workload` stream. Every action validates against `topology` and
/// `safety_phase_ms`; an empty menu, or a menu whose only group the topology cannot serve
/// (nodes without kubelets), draws nothing. Sorted by time.
///
/// ```
/// use faults::actions::{generate_workload, ActionGroup};
/// use faults::Topology;
/// let topology = Topology { store_members: 3, apiservers: 1, controller_managers: 2, schedulers: 1, kubelets: 3 };
/// let menu = ActionGroup::ALL.into_iter().collect();
/// let actions = generate_workload(7, &topology, &menu, 30_000);
/// assert!(!actions.is_empty());
/// assert_eq!(actions, generate_workload(7, &topology, &menu, 30_000));
/// ```
pub fn generate_workload(
    seed: u64,
    topology: &Topology,
    menu: &BTreeSet<ActionGroup>,
    safety_phase_ms: u64,
) -> Vec<UserAction> {
    let groups: Vec<ActionGroup> =
        menu.iter().copied().filter(|g| *g != ActionGroup::Nodes || topology.kubelets > 0).collect();
    let window_ms = safety_phase_ms * ACTION_WINDOW_TENTHS / 10;
    if groups.is_empty() || window_ms == 0 {
        return Vec::new();
    }
    let mut rng = crate::SeedStreams::derive(seed).workload;
    let n_users = rng.gen_range(1..=USERS.len());
    let n_actions = rng.gen_range(MIN_ACTIONS..=MAX_GENERATED_ACTIONS);
    let mut times: Vec<u64> = (0..n_actions).map(|_| rng.gen_range(0..window_ms)).collect();
    times.sort_unstable();
    // Drawn in time order, with what the earlier draws made exist, so that most changes
    // and deletes find their object (a few still miss it, as users do).
    let mut made = Made::default();
    let mut actions = Vec::new();
    for at_ms in times {
        let user = USERS[rng.gen_range(0..n_users)].to_string();
        let group = *groups.choose(&mut rng).expect("groups is not empty");
        let action = generate_action(&mut rng, group, topology, &mut made, n_users);
        if let Action::Drain { node } = action {
            let uncordon_at = (at_ms + rng.gen_range(DRAIN_FOR_MS)).min(safety_phase_ms - 1);
            actions.push(UserAction { at_ms: uncordon_at, user: user.clone(), action: Action::Uncordon { node } });
        }
        actions.push(UserAction { at_ms, user, action });
    }
    // Stable: a drain and its uncordon keep their order when they fall on one ms.
    actions.sort_by_key(|a| a.at_ms);
    actions
}

/// The objects the actions drawn so far create and do not delete.
#[derive(Default)]
struct Made {
    deployments: Vec<String>,
    objects: Vec<(ObjectKind, String)>,
    granted: Vec<String>,
}

fn pick<R: Rng>(rng: &mut R, names: &[&str]) -> String {
    names.choose(rng).expect("a name").to_string()
}

/// A name of the pool: most of the time (4 in 5) one that `made` holds, if any.
fn pick_made<R: Rng>(rng: &mut R, names: &[&str], made: &[String]) -> String {
    match made.choose(rng) {
        Some(name) if rng.gen_bool(0.8) => name.clone(),
        _ => pick(rng, names),
    }
}

fn generate_action<R: Rng>(
    rng: &mut R,
    group: ActionGroup,
    topology: &Topology,
    made: &mut Made,
    n_users: usize,
) -> Action {
    match group {
        ActionGroup::Deployments => {
            // Creates while fewer than two exist, mostly changes after.
            let create = rng.gen_range(0..10) < if made.deployments.len() < 2 { 7 } else { 1 };
            if create {
                let name = pick(rng, &DEPLOYMENTS);
                if !made.deployments.contains(&name) {
                    made.deployments.push(name.clone());
                }
                return Action::CreateDeployment {
                    name,
                    replicas: rng.gen_range(1..=4),
                    image: pick(rng, &IMAGES),
                    strategy: if rng.gen_bool(0.75) { Strategy::RollingUpdate } else { Strategy::Recreate },
                };
            }
            let name = pick_made(rng, &DEPLOYMENTS, &made.deployments);
            match rng.gen_range(0..10) {
                0..=2 => Action::Scale { name, replicas: rng.gen_range(0..=5) },
                3..=5 => Action::SetImage { name, image: pick(rng, &IMAGES) },
                6 | 7 => Action::RollBack { name },
                _ => {
                    made.deployments.retain(|n| *n != name);
                    let cascade =
                        *[Cascade::Background, Cascade::Foreground, Cascade::Orphan].choose(rng).expect("a cascade");
                    Action::DeleteDeployment { name, cascade }
                }
            }
        }
        ActionGroup::Config | ActionGroup::Services => {
            let (kind, pool): (ObjectKind, &[&str]) = match group {
                ActionGroup::Services => (ObjectKind::Service, &SERVICES),
                _ if rng.gen_bool(0.6) => (ObjectKind::ConfigMap, &CONFIG_MAPS),
                _ => (ObjectKind::Secret, &SECRETS),
            };
            let of_kind: Vec<String> =
                made.objects.iter().filter(|(k, _)| *k == kind).map(|(_, n)| n.clone()).collect();
            let create = of_kind.is_empty() || rng.gen_range(0..10) < 2;
            if create {
                let name = pick(rng, pool);
                if !of_kind.contains(&name) {
                    made.objects.push((kind, name.clone()));
                }
                return Action::Create { kind, name };
            }
            let name = pick_made(rng, pool, &of_kind);
            let delete = if kind == ObjectKind::Service { rng.gen_bool(0.5) } else { rng.gen_range(0..10) < 2 };
            if delete {
                made.objects.retain(|(k, n)| !(*k == kind && *n == name));
                Action::Delete { kind, name }
            } else if kind == ObjectKind::Service {
                // A Service has no data to change: another create (AlreadyExists, or the
                // other name).
                let name = pick(rng, pool);
                if !of_kind.contains(&name) {
                    made.objects.push((kind, name.clone()));
                }
                Action::Create { kind, name }
            } else {
                Action::ReadModifyWrite { kind, name }
            }
        }
        ActionGroup::Permissions => {
            let who = USERS[rng.gen_range(0..n_users)].to_string();
            if made.granted.contains(&who) && rng.gen_bool(0.6) {
                made.granted.retain(|w| *w != who);
                Action::Revoke { who }
            } else {
                if !made.granted.contains(&who) {
                    made.granted.push(who.clone());
                }
                Action::Grant { who }
            }
        }
        ActionGroup::Nodes => {
            let node = rng.gen_range(0..topology.kubelets);
            if rng.gen_bool(0.3) {
                Action::Cordon { node }
            } else {
                Action::Drain { node }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology { store_members: 3, apiservers: 3, controller_managers: 2, schedulers: 1, kubelets: 3 }
    }

    #[test]
    fn generated_workloads_validate_are_sorted_and_draw_only_the_menu() {
        let menus: [BTreeSet<_>; 2] =
            [ActionGroup::ALL.into_iter().collect(), [ActionGroup::Config, ActionGroup::Nodes].into_iter().collect()];
        for (seed, menu) in (0..400).zip(menus.iter().cycle()) {
            let actions = generate_workload(seed, &topology(), menu, 30_000);
            assert!(actions.len() >= MIN_ACTIONS, "seed {seed}");
            assert!(actions.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
            for action in &actions {
                validate_action(action, 30_000, &topology()).unwrap();
                assert!(menu.contains(&action.action.group()), "{action:?}");
            }
        }
        assert!(generate_workload(1, &topology(), &BTreeSet::new(), 30_000).is_empty());
    }

    #[test]
    fn every_drain_is_followed_by_its_uncordon() {
        let menu = [ActionGroup::Nodes].into_iter().collect();
        let actions = generate_workload(3, &topology(), &menu, 30_000);
        for (idx, a) in actions.iter().enumerate() {
            if let Action::Drain { node } = a.action {
                assert!(actions[idx..].iter().any(|b| b.user == a.user && b.action == Action::Uncordon { node }));
            }
        }
    }

    #[test]
    fn actions_read_and_write_as_json_and_bad_ones_are_named() {
        let action = UserAction {
            at_ms: 5,
            user: "alice".into(),
            action: Action::DeleteDeployment { name: "web".into(), cascade: Cascade::Orphan },
        };
        let json = serde_json::to_string(&action).unwrap();
        assert_eq!(json, r#"{"at_ms":5,"user":"alice","action":"delete-deployment","name":"web","cascade":"orphan"}"#);
        assert_eq!(serde_json::from_str::<UserAction>(&json).unwrap(), action);
        let typo = json.replace("cascade", "cascde");
        let error = serde_json::from_str::<UserAction>(&typo).unwrap_err().to_string();
        assert!(error.contains("cascde"), "{error}");
        let bad =
            |action: Action| validate_action(&UserAction { at_ms: 0, user: "bob".into(), action }, 1000, &topology());
        assert_eq!(bad(Action::Scale { name: "web".into(), replicas: 99 }), Err(InvalidAction::Replicas(99)));
        assert_eq!(bad(Action::Drain { node: 3 }), Err(InvalidAction::Node { node: 3, kubelets: 3 }));
        assert!(matches!(bad(Action::RollBack { name: "Web".into() }), Err(InvalidAction::BadName { .. })));
        assert_eq!(
            bad(Action::ReadModifyWrite { kind: ObjectKind::Service, name: "web".into() }),
            Err(InvalidAction::NothingToModify("service"))
        );
        let late = UserAction { at_ms: 1000, user: "bob".into(), action: Action::Cordon { node: 0 } };
        assert!(validate_action(&late, 1000, &topology()).is_err());
    }
}
