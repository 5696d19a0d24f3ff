//! Scenarios: a cluster shape plus a workload, each a function from a seed's runtime to a
//! [`ScenarioOutcome`](crate::report::ScenarioOutcome): kubesim's own two, and the ones a
//! user registers ([`custom`]).

pub mod custom;
pub mod deploy_nginx;
pub mod garbage_collection;
pub mod permissions;
pub mod read_modify_write;
pub mod rollout;
pub mod services;
pub mod store_smoke;
pub mod user_actions;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use custom::{register, CustomScenario};

/// Which scenario a seed runs. Written as its name ([`Scenario::name`]) on the command
/// line, in cases and in results.
#[derive(Clone)]
pub enum Scenario {
    /// The default: the whole control plane runs `kubectl create deployment
    /// nginx-deployment --replicas=3`, then scales it to 5.
    DeployNginx,
    /// Three store members, a client workload, one leader crash.
    StoreSmoke,
    /// The control plane with its garbage collector on: deployments deleted with each
    /// propagation policy, one re-created under its name, a user's finalizer
    /// ([`garbage_collection`]).
    GarbageCollection,
    /// Services: three apiservers, users creating and deleting Services concurrently,
    /// a deployment whose pods back them ([`services`]).
    Services,
    /// Read-modify-write: three apiservers, users incrementing shared ConfigMaps with
    /// resourceVersion preconditions and retrying on conflict ([`read_modify_write`]).
    ReadModifyWrite,
    /// Rollouts: a deployment's RollingUpdate rolled out twice, rolled back, switched to
    /// Recreate and scaled down ([`rollout`]).
    Rollout,
    /// Permissions: a user's RoleBinding granted, revoked and granted again while it works,
    /// every RBAC decision recorded ([`permissions`]).
    Permissions,
    /// A scenario a user registered ([`custom::register`]).
    Custom(Arc<dyn CustomScenario>),
}

impl PartialEq for Scenario {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Scenario {}

impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Scenario {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Scenario {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The timeline line every control-plane scenario shows for `event`, if it is one of
/// theirs: the user's notes (`--`), the nemesis's faults (`!!`) and the operator's backups,
/// replacements and restores and the relists they cause (`**`).
pub(crate) fn control_plane_line(event: &crate::history::HistoryEvent) -> Option<String> {
    use crate::history::HistoryEvent;
    match event {
        HistoryEvent::Note { text } => Some(format!("--  {text}")),
        HistoryEvent::Fault { description } => Some(format!("!!  fault: {description}")),
        HistoryEvent::BackupTaken { .. }
        | HistoryEvent::BackupFailed { .. }
        | HistoryEvent::BackupCorrupted { .. }
        | HistoryEvent::DiskLost { .. }
        | HistoryEvent::MemberReplaced { .. }
        | HistoryEvent::RestoreRefused { .. }
        | HistoryEvent::Restored { .. }
        | HistoryEvent::TotalLoss { .. }
        | HistoryEvent::Relisted { .. } => crate::history::describe_recovery(event).map(|text| format!("**  {text}")),
        _ => None,
    }
}

/// A user waiting for the cluster to reach a goal, as the history records it for the
/// convergence checker (`HistoryEvent::Awaited`, then a `Looked` per look that saw
/// something new): the scenario records what it waits for and what it sees; the checker
/// judges whether the goal was met in time.
pub(crate) struct Awaiting<'r> {
    recorder: &'r crate::recorder::Recorder,
    goal: String,
    /// What the previous look saw, so that only changes are recorded.
    last: Option<(Option<u64>, String)>,
}

impl<'r> Awaiting<'r> {
    /// Records that the user now waits for `goal`: `want` items (at least, or exactly),
    /// seen by a look that begins by `deadline` (`None`: the next look decides).
    pub(crate) fn begin(
        recorder: &'r crate::recorder::Recorder,
        goal: impl Into<String>,
        want: u64,
        exactly: bool,
        deadline: Option<madsim::time::Instant>,
    ) -> Self {
        let goal = goal.into();
        let deadline_ns = deadline.map(sim_ns);
        recorder.record(crate::history::HistoryEvent::Awaited { goal: goal.clone(), want, exactly, deadline_ns });
        Awaiting { recorder, goal, last: None }
    }

    /// What a look that began at `began` saw: `have` items (`None`: it could not look),
    /// in words.
    pub(crate) fn looked(&mut self, began: madsim::time::Instant, have: Option<u64>, seen: String) {
        if self.last.as_ref().is_some_and(|(h, s)| *h == have && *s == seen) {
            return;
        }
        self.recorder.record(crate::history::HistoryEvent::Looked {
            goal: self.goal.clone(),
            have,
            seen: seen.clone(),
            began_ns: sim_ns(began),
        });
        self.last = Some((have, seen));
    }
}

/// How long a scenario's end state must hold before it is judged at rest, and how often
/// its user looks meanwhile.
pub(crate) const AT_REST_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
pub(crate) const AT_REST_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// What [`settle`] waits for: the goal recorded for the wait (`Awaited`, judged by the
/// convergence checker), the goal of the last look, and what its notes and check name
/// before "at rest" (`""`, `"workload "`).
pub(crate) struct Settling {
    pub goal: String,
    pub last_look: &'static str,
    pub subject: &'static str,
    pub patience: std::time::Duration,
}

/// A scenario's end: `apply` what the user asked for (a `kubectl apply`, which a restore
/// may have undone), then `look` whether the cluster is there (`Ok(Ok(summary))`,
/// `Ok(Err(what is not yet))`, `Err` when it could not look), every [`AT_REST_POLL`],
/// until it has stayed there for [`AT_REST_AFTER`] or `patience` ran out, recording each
/// look; then one last look, recorded as the at-rest judgement, and a check saying what it
/// saw.
pub(crate) async fn settle<A, AF, L, LF>(
    recorder: &crate::recorder::Recorder,
    settling: Settling,
    mut apply: A,
    mut look: L,
) -> Vec<crate::report::Check>
where
    A: FnMut() -> AF,
    AF: std::future::Future<Output = ()>,
    L: FnMut() -> LF,
    LF: std::future::Future<Output = Result<Result<String, String>, api::ApiError>>,
{
    let Settling { goal, last_look, subject, patience } = settling;
    let start = madsim::time::Instant::now();
    let mut awaiting = Awaiting::begin(recorder, goal, 1, false, Some(start + patience));
    let mut good_since: Option<madsim::time::Instant> = None;
    loop {
        apply().await;
        let began = madsim::time::Instant::now();
        match look().await {
            Ok(Ok(summary)) => {
                awaiting.looked(began, Some(1), summary.clone());
                let since = *good_since.get_or_insert(began);
                if began - since >= AT_REST_AFTER {
                    recorder.note(format!("{subject}at rest after {:.1}s: {summary}", (began - start).as_secs_f64()));
                    break;
                }
            }
            Ok(Err(why)) => {
                awaiting.looked(began, Some(0), why);
                good_since = None;
            }
            Err(e) => {
                awaiting.looked(began, None, format!("looking failed: {e}"));
                good_since = None;
            }
        }
        if began - start >= patience {
            recorder.note(format!("{subject}not at rest after {}s: judged as it stands", patience.as_secs()));
            break;
        }
        madsim::time::sleep(AT_REST_POLL).await;
    }
    let mut at_rest = Awaiting::begin(recorder, last_look, 1, true, None);
    let began = madsim::time::Instant::now();
    let (have, seen) = match look().await {
        Ok(Ok(summary)) => (Some(1), summary),
        Ok(Err(why)) => (Some(0), why),
        Err(e) => (None, format!("looking failed: {e}")),
    };
    at_rest.looked(began, have, seen.clone());
    vec![crate::report::Check::info(format!("{subject}at rest: {seen}"))]
}

/// `instant` as the history counts time: simulated ns since the run began.
fn sim_ns(instant: madsim::time::Instant) -> u64 {
    let now = madsim::time::Instant::now();
    let now_ns = crate::recorder::Recorder::now_ns();
    if instant >= now {
        now_ns + (instant - now).as_nanos() as u64
    } else {
        now_ns.saturating_sub((now - instant).as_nanos() as u64)
    }
}

/// A user gave up on `request` after retrying it for as long as it would: recorded for
/// the convergence checker.
pub(crate) fn gave_up(recorder: &crate::recorder::Recorder, request: &str, error: &api::ApiError) {
    recorder.record(crate::history::HistoryEvent::GaveUp { request: request.to_string(), error: error.to_string() });
}

/// A timeline line: its simulated time, then its text.
pub(crate) fn timeline_entry(at_ns: u64, text: &str) -> String {
    format!("{:>8.3}s  {text}", at_ns as f64 / 1e9)
}

/// A scenario was asked to run faults it cannot judge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{scenario} does not support the fault kind {kind}: {reason}; use --scenario deploy-nginx or leave {kind} out")]
pub struct UnsupportedFault {
    pub scenario: &'static str,
    pub kind: faults::FaultKind,
    pub reason: &'static str,
}

impl Scenario {
    /// kubesim's own scenarios.
    pub const BUILT_IN: [Scenario; 7] = [
        Scenario::DeployNginx,
        Scenario::StoreSmoke,
        Scenario::GarbageCollection,
        Scenario::Services,
        Scenario::ReadModifyWrite,
        Scenario::Rollout,
        Scenario::Permissions,
    ];

    /// Every scenario this process knows: the built-ins, then the registered ones by name.
    pub fn all() -> Vec<Scenario> {
        let mut all = Scenario::BUILT_IN.to_vec();
        all.extend(custom::registered().into_iter().map(Scenario::Custom));
        all
    }

    /// Shapes the cluster as the scenario needs it, before its fault plan is drawn (so
    /// that the plan can target every component the scenario runs).
    pub fn configure(&self, cluster: &mut crate::control_plane::ControlPlaneOptions) {
        match self {
            Scenario::Services => services::configure(cluster),
            Scenario::ReadModifyWrite => read_modify_write::configure(cluster),
            Scenario::Permissions => permissions::configure(cluster),
            _ => {}
        }
    }

    /// The scenario's own checkers (a user's), judged after the built-in ones.
    pub fn checkers(&self) -> Vec<Arc<dyn verdict::checkers::Checker>> {
        match self {
            Scenario::Custom(custom) => custom.checkers(),
            _ => Vec::new(),
        }
    }

    /// Whether the scenario can run and judge faults of `kind`, and why not. store-smoke
    /// checks its members against the addresses they started with and its acknowledged
    /// writes against the one store they went to: it follows no member replacement and no
    /// restore, so the kinds that wipe disks (and the snapshot corruption that only
    /// matters to a restore) would be reported as violations of the store when they are
    /// the scenario's own blind spot. deploy-nginx follows the operator through both.
    /// garbage-collection refuses them too: its user deletes and re-creates objects once,
    /// and does not re-apply after a restore rolls the store back to before that.
    pub fn supports(&self, kind: faults::FaultKind) -> Result<(), UnsupportedFault> {
        let refused = |reason| Err(UnsupportedFault { scenario: self.name(), kind, reason });
        match self {
            Scenario::StoreSmoke if kind.loses_disks() => {
                refused("it does not follow the operator's member replacements and restores")
            }
            Scenario::GarbageCollection if kind.loses_disks() => {
                refused("its user does not re-apply what a restore from an older backup rolls back")
            }
            Scenario::Custom(custom) => custom.supports(kind).or_else(refused),
            _ => Ok(()),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::DeployNginx => "deploy-nginx",
            Scenario::StoreSmoke => "store-smoke",
            Scenario::GarbageCollection => "garbage-collection",
            Scenario::Services => "services",
            Scenario::ReadModifyWrite => "read-modify-write",
            Scenario::Rollout => "rollout",
            Scenario::Permissions => "permissions",
            Scenario::Custom(custom) => custom.name(),
        }
    }

    /// One line saying what the scenario runs.
    pub fn about(&self) -> &'static str {
        match self {
            Scenario::DeployNginx => "the whole control plane creates a 3-replica deployment, then scales it to 5",
            Scenario::StoreSmoke => "the store alone: three members, a client workload, one leader crash",
            Scenario::GarbageCollection => {
                "the garbage collector on: deployments deleted in the background (and re-created), foreground and orphan, a user's finalizer"
            }
            Scenario::Services => {
                "three apiservers; users create and delete Services concurrently, a deployment backs them"
            }
            Scenario::ReadModifyWrite => {
                "three apiservers; users increment shared ConfigMaps by get-modify-update, retrying on 409 Conflict"
            }
            Scenario::Rollout => {
                "a RollingUpdate deployment rolled out twice, rolled back, switched to Recreate, scaled down"
            }
            Scenario::Permissions => {
                "three apiservers; a user's RoleBinding granted, revoked and granted again while it works on ConfigMaps"
            }
            Scenario::Custom(custom) => custom.about(),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario name that names no scenario.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario '{0}' (known: {known})", known = Scenario::all().iter().map(Scenario::name).collect::<Vec<_>>().join(", "))]
pub struct UnknownScenario(pub String);

impl FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::BUILT_IN
            .into_iter()
            .find(|sc| sc.name() == s)
            .or_else(|| custom::lookup(s).map(Scenario::Custom))
            .ok_or_else(|| UnknownScenario(s.to_string()))
    }
}
