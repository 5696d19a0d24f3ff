//! `FaultPlan`: the data a seed's nemesis executes. Plans are JSON so that people can read,
//! write, save and replay them (`kubesim run --plan FILE`, the CI corpus, `kubesim shrink`);
//! field names are part of that contract and must stay stable.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The only plan format version this crate reads and writes.
pub const PLAN_VERSION: u32 = 1;

/// A plan with more events than this is refused: a bound on everything, so that a hand-made
/// or corrupted plan file cannot make the nemesis run away.
pub const MAX_EVENTS: usize = 10_000;

/// The longest safety phase a plan may ask for. Every fault of a plan starts and heals
/// within it, and a seed's simulated time (and the history it records) grows with it; ten
/// minutes is twenty times the generated plans' 30 s, and bounded, so that a mistyped plan
/// (`1e9`) is refused instead of running for days.
pub const MAX_SAFETY_PHASE_MS: u64 = 600_000;

/// The longest liveness phase a plan may ask for: as long as the longest safety phase.
pub const MAX_LIVENESS_PHASE_MS: u64 = 600_000;

/// The shortest liveness phase: the time the cluster has, once every fault healed, to
/// converge before it is judged. With less, a correct cluster fails (a new Raft leader
/// alone takes an election timeout) or passes having been given no time at all; either way
/// the plan says nothing about the system.
pub const MIN_LIVENESS_PHASE_MS: u64 = 1_000;

/// The largest plan file read: a plan of [`MAX_EVENTS`] events is well under a megabyte.
pub const MAX_PLAN_FILE_BYTES: u64 = 16 << 20;

/// Latency spikes above one minute are not "latency", they are a partition.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// Clock offsets beyond an hour stop being a skew between nodes and become a different
/// machine's clock; leases are seconds long, so an hour already breaks every lease.
pub const MAX_CLOCK_OFFSET_MS: i64 = 3_600_000;

/// A drift of 1000 ms per second would stop (or double) a node's clock; keep time moving
/// forward so that a skewed clock is still a clock.
pub const MAX_CLOCK_DRIFT_MS_PER_S: i64 = 999;

/// The shape of the simulated cluster a plan is checked against. Component indices are
/// 0-based except store members, which are 1-based like Raft/etcd member ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub store_members: u64,
    pub apiservers: u32,
    pub controller_managers: u32,
    pub schedulers: u32,
    pub kubelets: u32,
}

impl Topology {
    /// The largest number of store members that may be down at once while a majority
    /// remains: `(n - 1) / 2` (1 of 3, 2 of 5; 0 for a single member).
    pub fn store_minority(&self) -> u64 {
        self.store_members.saturating_sub(1) / 2
    }

    /// Whether `target` names a component of this topology (`StoreLeader` exists when
    /// there is at least one store member).
    pub fn contains(&self, target: &Target) -> bool {
        match *target {
            Target::StoreMember(member) => member >= 1 && member <= self.store_members,
            Target::StoreLeader => self.store_members >= 1,
            Target::ApiServer(idx) => idx < self.apiservers,
            Target::ControllerManager(idx) => idx < self.controller_managers,
            Target::Scheduler => self.schedulers >= 1,
            Target::Kubelet(idx) => idx < self.kubelets,
        }
    }

    fn describe_absence(&self, target: &Target) -> String {
        let plural = |n: u64, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        let has = match target {
            Target::StoreMember(_) | Target::StoreLeader => {
                let members = plural(self.store_members, "store member");
                if self.store_members == 0 {
                    members
                } else {
                    format!("{members}, numbered 1..={}", self.store_members)
                }
            }
            Target::ApiServer(_) => plural(self.apiservers.into(), "apiserver"),
            Target::ControllerManager(_) => plural(self.controller_managers.into(), "controller-manager"),
            Target::Scheduler => plural(self.schedulers.into(), "scheduler"),
            Target::Kubelet(_) => plural(self.kubelets.into(), "kubelet"),
        };
        format!("target {target} does not exist (topology has {has})")
    }
}

/// The longest a member crashed at a failpoint stays down before it restarts.
pub const MAX_FAILPOINT_RESTART_MS: u64 = 10_000;
/// The most passes a `crash-at-failpoint` may let by before it fires.
pub const MAX_FAILPOINT_PASSES: u32 = 1_000;
/// The most steps one `leader-chase` holds.
pub const MAX_CHASE_STEPS: usize = 32;

/// One kill of a `leader-chase`: whichever member first reaches `failpoint` (after
/// `passes` passes of its own) dies there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaseStep {
    pub failpoint: Failpoint,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub passes: u32,
}

/// A point in a store member's ready loop where `crash-at-failpoint` kills it, after
/// etcd's gofail failpoints in `etcdserver/raft.go` that its robustness tests set to
/// `panic` before restarting the member (the store's `server::failpoint` documents
/// each). In JSON: `"raft-before-save"`, `"raft-after-save"`,
/// `"raft-before-leader-send"`, `"raft-after-vote"`, `"raft-leader-after-apply"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failpoint {
    /// etcd `raftBeforeSave`: a Ready was taken from Raft, nothing of it written.
    RaftBeforeSave,
    /// etcd `raftAfterSave`: the Ready is fsynced, none of its messages sent.
    RaftAfterSave,
    /// etcd `raftBeforeLeaderSend`: a leader's Ready is fsynced, its appends unsent, so
    /// its newest entries live on its own disk only.
    RaftBeforeLeaderSend,
    /// Right after a Ready granting a vote was fsynced and sent: the candidate has the
    /// vote, the voter dies, and must come back still bound by it (Raft §5.2).
    RaftAfterVote,
    /// Right after a leader applied what a Ready committed, before it sends that Ready's
    /// messages: no follower has heard the new commit index. Armed on a new leader it
    /// fires at the first commit of its term (Raft's Figure 8 (c) when the leader counts
    /// old-term replicas).
    RaftLeaderAfterApply,
}

impl Failpoint {
    pub const ALL: [Failpoint; 5] = [
        Failpoint::RaftBeforeSave,
        Failpoint::RaftAfterSave,
        Failpoint::RaftBeforeLeaderSend,
        Failpoint::RaftAfterVote,
        Failpoint::RaftLeaderAfterApply,
    ];

    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::RaftBeforeSave => "raft-before-save",
            Failpoint::RaftAfterSave => "raft-after-save",
            Failpoint::RaftBeforeLeaderSend => "raft-before-leader-send",
            Failpoint::RaftAfterVote => "raft-after-vote",
            Failpoint::RaftLeaderAfterApply => "raft-leader-after-apply",
        }
    }
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component a fault is aimed at. In JSON a target is one string that reads like the
/// node's name: `"store-1"`, `"store-leader"`, `"apiserver-0"`, `"controller-manager-1"`,
/// `"scheduler"`, `"kubelet-2"`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// A store member by its 1-based member id.
    StoreMember(u64),
    /// Whichever store member is the Raft leader when the fault is applied (the nemesis
    /// asks the world at apply time, the way Jepsen's `partition-leader` nemesis does).
    StoreLeader,
    /// An apiserver by its 0-based index.
    ApiServer(u32),
    /// A kube-controller-manager replica by its 0-based index.
    ControllerManager(u32),
    /// The scheduler; the world resolves it (to its only replica, or the active one).
    Scheduler,
    /// A node's kubelet by its 0-based index.
    Kubelet(u32),
}

impl Target {
    /// Whether the target is a store member (concrete or the leader).
    pub fn is_store(&self) -> bool {
        matches!(self, Target::StoreMember(_) | Target::StoreLeader)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::StoreMember(member) => write!(f, "store-{member}"),
            Target::StoreLeader => write!(f, "store-leader"),
            Target::ApiServer(idx) => write!(f, "apiserver-{idx}"),
            Target::ControllerManager(idx) => write!(f, "controller-manager-{idx}"),
            Target::Scheduler => write!(f, "scheduler"),
            Target::Kubelet(idx) => write!(f, "kubelet-{idx}"),
        }
    }
}

/// The target string could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown target {0:?} (expected store-N, store-leader, apiserver-N, \
     controller-manager-N, scheduler or kubelet-N)"
)]
pub struct TargetParseError(pub String);

impl FromStr for Target {
    type Err = TargetParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || TargetParseError(text.to_string());
        match text {
            "store-leader" => return Ok(Target::StoreLeader),
            "scheduler" => return Ok(Target::Scheduler),
            _ => {}
        }
        // Longest prefix first: "controller-manager-" must not be read as something else.
        let (prefix, number) = text.rsplit_once('-').ok_or_else(error)?;
        // Reject "+1", " 1" and friends that `parse` would otherwise accept or trim.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        match prefix {
            "store" => number.parse().map(Target::StoreMember).map_err(|_| error()),
            "apiserver" => number.parse().map(Target::ApiServer).map_err(|_| error()),
            "controller-manager" => number.parse().map(Target::ControllerManager).map_err(|_| error()),
            "kubelet" => number.parse().map(Target::Kubelet).map_err(|_| error()),
            _ => Err(error()),
        }
    }
}

impl TryFrom<String> for Target {
    type Error = TargetParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Target> for String {
    fn from(target: Target) -> String {
        target.to_string()
    }
}

/// One fault. Each variant says what real-world failure it reproduces; the nemesis
/// (`nemesis.rs`) says how it is applied and healed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// A network partition with concrete sides (Jepsen `partition-random-halves`,
    /// `partition-random-node`; etcd robustness `blackhole` between members): nodes in
    /// different groups cannot exchange messages in either direction; nodes not listed in
    /// any group stay connected to everyone. `store-leader` may appear in a group: it is
    /// resolved when applied and then taken out of any other group that names it, so
    /// `[["store-leader"], ["store-1", "store-2", "store-3"]]` cuts the leader off from
    /// its peers while clients can still reach it (the stale-leader scenario).
    Partition { groups: Vec<Vec<Target>> },
    /// Cuts the current Raft leader off from every other node (Jepsen `partition-leader`
    /// / etcd robustness "blackhole the leader"): it must step down by check-quorum and
    /// must not serve linearizable reads from its stale state meanwhile.
    IsolateStoreLeader,
    /// Cuts one apiserver off from every other node (a kube-apiserver on a node whose
    /// NIC or top-of-rack switch failed): its clients fail over, its watches must resume
    /// elsewhere without losing or reordering events.
    #[serde(rename = "isolate-apiserver")]
    IsolateApiServer { apiserver: u32 },
    /// Jepsen's `partition-majorities-ring` over the store members: every member sees a
    /// majority (itself included) but no two members see the same majority, so several
    /// members believe they can win elections at once. See `nemesis::majorities_ring`.
    MajoritiesRing,
    /// Jepsen's `bridge` over the store members: two halves that can talk only through
    /// one bridge member, which sees everyone. See `nemesis::bridge`.
    Bridge,
    /// An asymmetric link failure (a one-way firewall rule, a half-broken NIC; Jepsen
    /// `partition` with a one-sided grudge): messages `from → to` are dropped, `to → from`
    /// still pass. Raft must not be fooled by receiving but never being heard.
    OneWay { from: Target, to: Target },
    /// Random loss of `rate` of all messages, everywhere (lossy network, etcd robustness
    /// `DropPeerNetwork`-style flakiness); `0 < rate <= 0.5` so that progress is possible.
    PacketLoss { rate: f64 },
    /// Every message's latency drawn from `min_ms..=max_ms` (a congested or
    /// cross-region link, Jepsen `slow` / `tc netem delay`): timeouts fire, requests
    /// retry and arrive late, elections and lease renewals race.
    LatencySpike { min_ms: u64, max_ms: u64 },
    /// One link between `a` and `b` clogged in both directions (madsim `clog_link`,
    /// FoundationDB's clogged connections): the rest of the network is fine.
    ClogLink { a: Target, b: Target },
    /// Kill the process and restart it when the fault heals (Jepsen `kill`, a OOM kill,
    /// `kubectl delete pod`). A store member crashed this way also loses every write it
    /// had not fsynced, as a power loss would.
    Crash { target: Target },
    /// Power loss on a store member's machine (etcd robustness `kill` with unsynced data
    /// lost, ALICE / "Files are hard" torn writes): the member is killed, loses every
    /// write not yet fsynced and, if `tear`, keeps a torn prefix of the last unsynced
    /// write. It restarts when the fault heals and must recover from its WAL.
    CrashStoreMember { member: Target, tear: bool },
    /// Power loss of the whole store at once (a datacenter or rack power cut, every VM of
    /// the cluster on one failed host; Jepsen's `kill` of all nodes with LazyFS losing
    /// unsynced writes, etcd robustness's "kill all members"): every store member is
    /// killed at the same instant, loses every write not yet fsynced and, if `tear`, keeps
    /// a torn prefix of its last unsynced write. They all restart when the fault heals.
    /// Unlike a minority crash this leaves no member holding anything in memory, so it is
    /// the fault that tells an fsynced acknowledgement from one that only reached a page
    /// cache: a correct store loses no acknowledged write, only availability.
    PowerLoss { tear: bool },
    /// Crash a store member when its ready loop next reaches `failpoint`, and restart it
    /// `restart_after_ms` later (0: at once), as etcd's robustness tests do with gofail
    /// failpoints (`raftBeforeSave=panic`, `raftAfterSave=panic`,
    /// `raftBeforeLeaderSend=panic`; a member is then restarted right away). The point is
    /// armed from `at_ms` until `restart_after_ms` before the event heals (so that the
    /// member is back by then); if the member never reaches it, nothing happens. The
    /// crash loses nothing synced: at these points the disk holds exactly what the
    /// member fsynced. Unlike a crash at a random instant, it lands in the middle of the
    /// persistence pipeline: a vote granted then forgotten, a leader's entries on its own
    /// disk only. `store-leader` is resolved when the point is armed. With `passes` > 0
    /// the member passes the point that many times unharmed first (gofail's
    /// `N*off->panic`): `raft-before-leader-send` after 2 passes kills a new leader at its
    /// third Ready with messages, when its probes have just found what a follower lacks.
    CrashAtFailpoint {
        member: Target,
        failpoint: Failpoint,
        restart_after_ms: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        passes: u32,
    },
    /// Rolling kills of whoever leads (Jepsen's leader-targeted `kill` nemesis run as a
    /// chain, etcd robustness's `raftBeforeLeaderSend` panics with the member restarted
    /// once the next one fell): step by step, every store member but the last victim is
    /// armed at the step's failpoint; the first to reach it is crashed there, the
    /// previous victim restarts in the same instant, and the next step is armed. So at
    /// most one member is down at a time, and each kill lands in the state the previous
    /// one left: the next leader dies at its first send or its first commit, whoever it
    /// is, which pre-timed crashes of named members reach only by luck. The chain of
    /// `raft-before-leader-send`, `raft-before-leader-send`, `raft-leader-after-apply`
    /// is Raft's Figure 8: S1 dies with entries on its disk only, S5 wins without them
    /// and dies with its own entry at their index, S1 wins back and commits, S5 returns.
    /// The last victim stays down until the fault heals, when any step not yet reached
    /// is disarmed.
    LeaderChase { steps: Vec<ChaseStep> },
    /// Stop-the-world pause of a process until the fault heals (a long GC pause, a VM
    /// migration, `SIGSTOP`; Jepsen `hammer-time`): the process wakes up with stale
    /// leases and leadership it no longer holds and must notice before acting.
    Pause { target: Target },
    /// Flip bits in one fsynced WAL record of a store member (bit rot, a misdirected
    /// write; the disk corruption TigerBeetle and "Protocol-Aware Recovery" test for),
    /// then crash and restart the member when the fault heals. Recovery must detect the
    /// corruption by checksum and the member must refuse to start: it may never serve or
    /// vote from corrupt data. It stays down afterwards.
    CorruptRecord { member: Target },
    /// A node's clock runs `offset_ms` off the true time and gains `drift_ms_per_s`
    /// every second (NTP failure, VM clock drift; Jepsen `clock` nemesis). Leases and
    /// leader election read this clock; a skewed lease holder must not act on a lease
    /// that has already expired elsewhere. Store members read no wall clock (Raft counts
    /// its own ticks), so a skew aimed at one changes nothing; generated plans never aim
    /// one there.
    ClockSkew { target: Target, offset_ms: i64, drift_ms_per_s: i64 },
    /// Operator action, not a fault: `etcdctl snapshot save` against `member` (a
    /// consistent copy of the keyspace at the member's applied revision R, with its
    /// checksum), kept off-cluster by the world; the latest good backups are retained
    /// (etcd's disaster-recovery guide: "regularly back up the keyspace"). A backup that
    /// fails (member down, no quorum) is recorded as failed and changes nothing.
    Backup { member: Target },
    /// The disk of one store member is lost (a failed SSD, a replaced VM; etcd's "member
    /// disk failure"): its data is wiped and the member killed. When the fault heals the
    /// operator replaces it as etcd's runtime-reconfiguration guide says: `member remove`
    /// the dead member, `member add` a new identity on a new address, and start it with
    /// an empty data dir and `--initial-cluster-state existing`, so that it catches up
    /// from the leader (by snapshot when the log was compacted). The apiserver's store
    /// client follows the new endpoint list. Until then the member counts as down.
    DiskLoss { member: Target },
    /// A majority of the store members lose their disks at the same instant (chosen at
    /// apply time with the simulation's randomness): quorum is gone for good. When the
    /// fault heals the operator follows etcd's disaster-recovery procedure: stop the
    /// apiservers, restore every member from the latest backup whose checksum verifies
    /// (`etcdutl snapshot restore` with new cluster and member ids, `--bump-revision`
    /// and `--mark-compacted`, as Kubernetes' etcd restore docs require so that
    /// revisions never go backwards for watchers), start the members and the apiservers
    /// on the new endpoints. Writes acknowledged after the backup's revision are the
    /// expected data-loss window.
    DiskLossMajority,
    /// Every store member loses its disk at once. Healed by the same restore as
    /// `disk-loss-majority`; with no good backup the run ends as `total-loss` ("if etcd
    /// data is lost and no backup exists, the cluster state is lost"): an expected
    /// outcome, reported with the number of acknowledged objects lost.
    DiskLossAll,
    /// Bit rot in the off-cluster backup store: bytes of the most recent backup flipped.
    /// A restore must detect it by checksum (`etcdutl snapshot restore` verifies the
    /// snapshot's hash unless `--skip-hash-check`) and refuse it with a clear error; the
    /// operator then falls back to the next older good backup.
    SnapshotCorruption,
}

impl Fault {
    /// Targets named by the fault (store members of ring/bridge partitions are implicit).
    pub fn targets(&self) -> Vec<&Target> {
        match self {
            Fault::Partition { groups } => groups.iter().flatten().collect(),
            Fault::IsolateStoreLeader
            | Fault::IsolateApiServer { .. }
            | Fault::MajoritiesRing
            | Fault::Bridge
            | Fault::PacketLoss { .. }
            | Fault::LatencySpike { .. } => Vec::new(),
            Fault::OneWay { from, to } => vec![from, to],
            Fault::ClogLink { a, b } => vec![a, b],
            Fault::Crash { target } | Fault::Pause { target } => vec![target],
            Fault::CrashStoreMember { member, .. }
            | Fault::CorruptRecord { member }
            | Fault::CrashAtFailpoint { member, .. } => {
                vec![member]
            }
            Fault::PowerLoss { .. } | Fault::LeaderChase { .. } => Vec::new(),
            Fault::ClockSkew { target, .. } => vec![target],
            Fault::Backup { member } | Fault::DiskLoss { member } => vec![member],
            Fault::DiskLossMajority | Fault::DiskLossAll | Fault::SnapshotCorruption => Vec::new(),
        }
    }
}

/// One fault in time: it starts at `at_ms` and heals at `at_ms + duration_ms`, both
/// relative to the start of the safety phase. Every fault heals by the end of the safety
/// phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultEvent {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub fault: Fault,
}

impl FaultEvent {
    /// When the fault heals (saturating: validation rejects overflowing plans).
    pub fn heal_at_ms(&self) -> u64 {
        self.at_ms.saturating_add(self.duration_ms)
    }
}

/// A seed's complete fault schedule: faults during the safety phase, none during the
/// liveness phase (where the cluster must converge).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPlan {
    pub version: u32,
    pub safety_phase_ms: u64,
    pub liveness_phase_ms: u64,
    pub events: Vec<FaultEvent>,
}

/// Why a plan cannot be read or used. Every message names what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read fault plan {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fault plan is not valid JSON for a plan: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported fault plan version {found} (this kubesim reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("fault plan {path} is larger than {max} bytes; a plan of the most events allowed is far smaller")]
    TooLarge { path: String, max: u64 },
    #[error("fault plan has {count} events; at most {max} are allowed")]
    TooManyEvents { count: usize, max: usize },
    /// A phase's length is outside its bounds.
    #[error("{field} {value} out of range ({min} to {max})")]
    PhaseOutOfRange { field: &'static str, value: u64, min: u64, max: u64 },
    #[error(
        "event {event}: ends at {ends_at_ms} ms, after the safety phase \
         ({safety_phase_ms} ms); every fault must heal before the liveness phase"
    )]
    EndsAfterSafetyPhase { event: usize, ends_at_ms: u128, safety_phase_ms: u64 },
    /// The event at index `event` (0-based, as in the JSON `events` array) is invalid.
    #[error("event {event}: {reason}")]
    InvalidEvent { event: usize, reason: String },
    /// The plan is valid but not survivable by a correct system (see
    /// `FaultPlan::check_survivable`).
    #[error("plan is not survivable: {0}")]
    NotSurvivable(String),
}

impl FaultPlan {
    /// An empty plan (no faults) with the given phases.
    pub fn empty(safety_phase_ms: u64, liveness_phase_ms: u64) -> Self {
        FaultPlan { version: PLAN_VERSION, safety_phase_ms, liveness_phase_ms, events: Vec::new() }
    }

    /// Reads a plan from JSON. It checks the version but not the topology: call
    /// [`FaultPlan::validate`] before running it.
    pub fn from_json(json: &str) -> Result<Self, PlanError> {
        // Read the version first so that a plan from a future kubesim says so, rather than
        // failing on whatever field it added.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        if let Ok(VersionOnly { version }) = serde_json::from_str::<VersionOnly>(json) {
            if version != PLAN_VERSION {
                return Err(PlanError::UnsupportedVersion { found: version, supported: PLAN_VERSION });
            }
        }
        let plan: FaultPlan = serde_json::from_str(json)?;
        Ok(plan)
    }

    /// Reads a plan from a JSON file of at most [`MAX_PLAN_FILE_BYTES`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PlanError> {
        use std::io::Read;
        let path = path.as_ref();
        let io_error = |source| PlanError::Io { path: path.display().to_string(), source };
        let mut json = String::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_PLAN_FILE_BYTES + 1).read_to_string(&mut json))
            .map_err(io_error)?;
        if json.len() as u64 > MAX_PLAN_FILE_BYTES {
            return Err(PlanError::TooLarge { path: path.display().to_string(), max: MAX_PLAN_FILE_BYTES });
        }
        Self::from_json(&json)
    }

    /// The plan as indented JSON, the form saved to files and shown to people.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).expect("a FaultPlan always serializes")
    }

    /// Checks that the plan can be run against `topology`: supported version, bounded
    /// size, phases within their bounds, every target exists, every parameter in range and
    /// every fault healed before the safety phase ends. Reports the first problem found.
    pub fn validate(&self, topology: &Topology) -> Result<(), PlanError> {
        if self.version != PLAN_VERSION {
            return Err(PlanError::UnsupportedVersion { found: self.version, supported: PLAN_VERSION });
        }
        if self.safety_phase_ms > MAX_SAFETY_PHASE_MS {
            return Err(PlanError::PhaseOutOfRange {
                field: "safety_phase_ms",
                value: self.safety_phase_ms,
                min: 0,
                max: MAX_SAFETY_PHASE_MS,
            });
        }
        if !(MIN_LIVENESS_PHASE_MS..=MAX_LIVENESS_PHASE_MS).contains(&self.liveness_phase_ms) {
            return Err(PlanError::PhaseOutOfRange {
                field: "liveness_phase_ms",
                value: self.liveness_phase_ms,
                min: MIN_LIVENESS_PHASE_MS,
                max: MAX_LIVENESS_PHASE_MS,
            });
        }
        if self.events.len() > MAX_EVENTS {
            return Err(PlanError::TooManyEvents { count: self.events.len(), max: MAX_EVENTS });
        }
        for (event_idx, event) in self.events.iter().enumerate() {
            let ends_at_ms = u128::from(event.at_ms) + u128::from(event.duration_ms);
            if ends_at_ms > u128::from(self.safety_phase_ms) {
                return Err(PlanError::EndsAfterSafetyPhase {
                    event: event_idx,
                    ends_at_ms,
                    safety_phase_ms: self.safety_phase_ms,
                });
            }
            validate_fault(&event.fault, topology)
                .map_err(|reason| PlanError::InvalidEvent { event: event_idx, reason })?;
            if let Fault::CrashAtFailpoint { restart_after_ms, .. } = event.fault {
                if restart_after_ms > event.duration_ms {
                    return Err(PlanError::InvalidEvent {
                        event: event_idx,
                        reason: format!(
                            "crash-at-failpoint restart_after_ms {restart_after_ms} is longer than the \
                             event ({} ms); the member must be back when the event heals",
                            event.duration_ms
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks the limits within which a correct system must survive the plan, which the
    /// generators respect and hand-written plans may knowingly exceed:
    /// - at no instant are more than a minority of store members down, counting crashed
    ///   members (`crash`, `crash-store-member`, and `crash-at-failpoint` with a restart
    ///   delay over its whole event, since it may fire at any point of it; one restarted
    ///   at once is never down; `store-leader` counts as one more member; a
    ///   `leader-chase` holds one member down over its whole event)
    ///   and, from the moment it heals, the member whose record was corrupted (it must
    ///   refuse to start, so it stays down);
    /// - at most one `corrupt-record` per plan;
    /// - at most one crash or pause of a given target at a time;
    /// - a `power-loss` takes every store member down at once, which a correct store
    ///   survives (an acknowledged write is fsynced on a majority, so it outlives the loss
    ///   of everything unsynced; only availability is lost), but it overlaps no other
    ///   crash or pause of a store member, so that each member is down for one reason
    ///   at a time. It is not counted against the minority above;
    /// - at most one `power-loss` per plan: each outage of the whole store pushes every
    ///   client's and controller's retry backoff further out, and after several in a row
    ///   the cluster no longer reconverges within the liveness bound although nothing was
    ///   lost (a whole-cluster outage is rare in production too);
    /// - a `disk-loss` holds its member down from the loss until the operator's
    ///   replacement (the heal), counted against the minority above;
    /// - at most one `disk-loss-majority` or `disk-loss-all` per plan (one restore per
    ///   run), and it overlaps no other store process fault, disk loss or power loss, so
    ///   that the restore starts from a store that is down for one reason only.
    pub fn check_survivable(&self, topology: &Topology) -> Result<(), PlanError> {
        let corruptions = self.events.iter().filter(|event| matches!(event.fault, Fault::CorruptRecord { .. })).count();
        if corruptions > 1 {
            return Err(PlanError::NotSurvivable(format!(
                "{corruptions} corrupt-record events; at most one store member may be corrupted"
            )));
        }
        let power_losses = self.events.iter().filter(|event| matches!(event.fault, Fault::PowerLoss { .. })).count();
        if power_losses > 1 {
            return Err(PlanError::NotSurvivable(format!(
                "{power_losses} power-loss events; at most one whole-store outage per plan"
            )));
        }
        let store_losses: Vec<&FaultEvent> = self
            .events
            .iter()
            .filter(|event| matches!(event.fault, Fault::DiskLossMajority | Fault::DiskLossAll))
            .collect();
        if store_losses.len() > 1 {
            return Err(PlanError::NotSurvivable(format!(
                "{} disk-loss-majority/disk-loss-all events; at most one restore per plan",
                store_losses.len()
            )));
        }
        for loss in &store_losses {
            let (start, end) = process_interval(loss);
            for other in &self.events {
                let store_down = match &other.fault {
                    Fault::Crash { target } | Fault::Pause { target } => target.is_store(),
                    Fault::CrashStoreMember { .. }
                    | Fault::PowerLoss { .. }
                    | Fault::DiskLoss { .. }
                    | Fault::LeaderChase { .. } => true,
                    _ => false,
                };
                let (other_start, other_end) = process_interval(other);
                if store_down && start < other_end && other_start < end {
                    return Err(PlanError::NotSurvivable(format!(
                        "{} at {start} ms overlaps a {} of the store at {other_start} ms",
                        kind_name(&loss.fault),
                        kind_name(&other.fault)
                    )));
                }
            }
        }
        let minority = topology.store_minority();
        // Down intervals [start, end) of store members; a corrupted member never returns.
        let down: Vec<(u64, u64)> = self
            .events
            .iter()
            .filter_map(|event| match &event.fault {
                Fault::Crash { target } if target.is_store() => Some(process_interval(event)),
                Fault::CrashStoreMember { .. } | Fault::DiskLoss { .. } | Fault::LeaderChase { .. } => {
                    Some(process_interval(event))
                }
                fault if holds_down_at_failpoint(fault) => Some(process_interval(event)),
                Fault::CorruptRecord { .. } => Some((event.heal_at_ms(), u64::MAX)),
                _ => None,
            })
            .collect();
        for &(start, _) in &down {
            let concurrent =
                down.iter().filter(|&&(other_start, other_end)| other_start <= start && start < other_end).count()
                    as u64;
            if concurrent > minority {
                return Err(PlanError::NotSurvivable(format!(
                    "at {start} ms {concurrent} store members are down; at most {minority} of \
                     {} may be",
                    topology.store_members
                )));
            }
        }
        for event in &self.events {
            if !matches!(event.fault, Fault::PowerLoss { .. }) {
                continue;
            }
            let (start, end) = process_interval(event);
            for other in &self.events {
                let store_process_fault = match &other.fault {
                    Fault::Crash { target } | Fault::Pause { target } => target.is_store(),
                    Fault::CrashStoreMember { .. } | Fault::DiskLoss { .. } | Fault::LeaderChase { .. } => true,
                    fault => holds_down_at_failpoint(fault),
                };
                let (other_start, other_end) = process_interval(other);
                if store_process_fault && start < other_end && other_start < end {
                    return Err(PlanError::NotSurvivable(format!(
                        "power-loss at {start} ms overlaps a {} of the store at {other_start} ms",
                        kind_name(&other.fault)
                    )));
                }
            }
        }
        let process_faults: Vec<(&Target, (u64, u64))> = self
            .events
            .iter()
            .filter_map(|event| match &event.fault {
                Fault::Crash { target } | Fault::Pause { target } => Some((target, process_interval(event))),
                Fault::CrashStoreMember { member, .. } | Fault::DiskLoss { member } => {
                    Some((member, process_interval(event)))
                }
                Fault::CrashAtFailpoint { member, .. } if holds_down_at_failpoint(&event.fault) => {
                    Some((member, process_interval(event)))
                }
                _ => None,
            })
            .collect();
        for (idx, (target, (start, end))) in process_faults.iter().enumerate() {
            for (other_target, (other_start, other_end)) in &process_faults[idx + 1..] {
                if target == other_target && start < other_end && other_start < end {
                    return Err(PlanError::NotSurvivable(format!(
                        "{target} is crashed or paused by two overlapping events"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Whether `fault` is a crash at a failpoint that keeps its member down for a while. One
/// restarted at once (`restart_after_ms: 0`, as etcd's robustness tests restart a member
/// whose failpoint panicked) is down for no time at all, and only fires while its member
/// runs, so it neither counts against the minority nor clashes with other faults of its
/// member; several members may be armed at once.
fn holds_down_at_failpoint(fault: &Fault) -> bool {
    matches!(fault, Fault::CrashAtFailpoint { restart_after_ms, .. } if *restart_after_ms > 0)
}

/// The time a process fault holds its target down; a zero-length crash still happens, so
/// it counts for one millisecond.
fn process_interval(event: &FaultEvent) -> (u64, u64) {
    (event.at_ms, event.at_ms.saturating_add(event.duration_ms.max(1)))
}

fn validate_fault(fault: &Fault, topology: &Topology) -> Result<(), String> {
    for target in fault.targets() {
        if !topology.contains(target) {
            return Err(topology.describe_absence(target));
        }
    }
    match fault {
        Fault::Partition { groups } => validate_groups(groups),
        Fault::IsolateStoreLeader => Ok(()),
        Fault::IsolateApiServer { apiserver } => {
            let target = Target::ApiServer(*apiserver);
            if topology.contains(&target) {
                Ok(())
            } else {
                Err(topology.describe_absence(&target))
            }
        }
        Fault::MajoritiesRing | Fault::Bridge if topology.store_members < 3 => Err(format!(
            "{} needs at least 3 store members (topology has {})",
            kind_name(fault),
            topology.store_members
        )),
        Fault::MajoritiesRing | Fault::Bridge => Ok(()),
        Fault::OneWay { from, to } if from == to => Err(format!("one-way from {from} to itself")),
        Fault::ClogLink { a, b } if a == b => Err(format!("clog-link from {a} to itself")),
        Fault::OneWay { .. } | Fault::ClogLink { .. } => Ok(()),
        Fault::PacketLoss { rate } => {
            // Written as a positive range check so that NaN is rejected too.
            if *rate > 0.0 && *rate <= 0.5 {
                Ok(())
            } else {
                Err(format!("packet loss rate {rate} out of range (must be > 0 and <= 0.5)"))
            }
        }
        Fault::LatencySpike { min_ms, max_ms } => {
            if min_ms > max_ms {
                Err(format!("latency range min_ms {min_ms} is above max_ms {max_ms}"))
            } else if *max_ms > MAX_LATENCY_MS {
                Err(format!("latency max_ms {max_ms} out of range (at most {MAX_LATENCY_MS})"))
            } else {
                Ok(())
            }
        }
        Fault::Crash { .. } | Fault::Pause { .. } => Ok(()),
        Fault::CrashStoreMember { member, .. } | Fault::CorruptRecord { member } if !member.is_store() => {
            Err(format!("{} needs a store member target (store-N or store-leader), got {member}", kind_name(fault)))
        }
        Fault::CrashStoreMember { .. } | Fault::CorruptRecord { .. } => Ok(()),
        Fault::CrashAtFailpoint { member, .. } if !member.is_store() => {
            Err(format!("crash-at-failpoint needs a store member target (store-N or store-leader), got {member}"))
        }
        Fault::CrashAtFailpoint { restart_after_ms, .. } if *restart_after_ms > MAX_FAILPOINT_RESTART_MS => {
            Err(format!(
                "crash-at-failpoint restart_after_ms {restart_after_ms} out of range (at most \
                 {MAX_FAILPOINT_RESTART_MS})"
            ))
        }
        Fault::CrashAtFailpoint { passes, .. } if *passes > MAX_FAILPOINT_PASSES => {
            Err(format!("crash-at-failpoint passes {passes} out of range (at most {MAX_FAILPOINT_PASSES})"))
        }
        Fault::CrashAtFailpoint { .. } => Ok(()),
        Fault::LeaderChase { .. } if topology.store_members < 2 => {
            Err(format!("leader-chase needs at least 2 store members (topology has {})", topology.store_members))
        }
        Fault::LeaderChase { steps } if steps.is_empty() || steps.len() > MAX_CHASE_STEPS => {
            Err(format!("leader-chase has {} steps; it needs 1 to {MAX_CHASE_STEPS}", steps.len()))
        }
        Fault::LeaderChase { steps } => match steps.iter().position(|step| step.passes > MAX_FAILPOINT_PASSES) {
            Some(idx) => Err(format!(
                "leader-chase step {idx} passes {} out of range (at most {MAX_FAILPOINT_PASSES})",
                steps[idx].passes
            )),
            None => Ok(()),
        },
        Fault::PowerLoss { .. } if topology.store_members == 0 => {
            Err("power-loss needs a store (topology has 0 store members)".to_string())
        }
        Fault::PowerLoss { .. } => Ok(()),
        Fault::Backup { member } | Fault::DiskLoss { member } if !member.is_store() => {
            Err(format!("{} needs a store member target (store-N or store-leader), got {member}", kind_name(fault)))
        }
        Fault::Backup { .. } | Fault::DiskLoss { .. } => Ok(()),
        Fault::DiskLossMajority | Fault::DiskLossAll if topology.store_members == 0 => {
            Err(format!("{} needs a store (topology has 0 store members)", kind_name(fault)))
        }
        Fault::DiskLossMajority | Fault::DiskLossAll | Fault::SnapshotCorruption => Ok(()),
        Fault::ClockSkew { offset_ms, drift_ms_per_s, .. } => {
            if offset_ms.unsigned_abs() > MAX_CLOCK_OFFSET_MS.unsigned_abs() {
                Err(format!("clock offset_ms {offset_ms} out of range (at most ±{MAX_CLOCK_OFFSET_MS})"))
            } else if drift_ms_per_s.unsigned_abs() > MAX_CLOCK_DRIFT_MS_PER_S.unsigned_abs() {
                Err(format!(
                    "clock drift_ms_per_s {drift_ms_per_s} out of range \
                     (at most ±{MAX_CLOCK_DRIFT_MS_PER_S})"
                ))
            } else {
                Ok(())
            }
        }
    }
}

fn validate_groups(groups: &[Vec<Target>]) -> Result<(), String> {
    if groups.len() < 2 {
        return Err(format!("partition needs at least 2 groups, got {}", groups.len()));
    }
    let mut seen = BTreeSet::new();
    for (group_idx, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(format!("partition group {group_idx} is empty"));
        }
        for target in group {
            if !seen.insert(target) {
                return Err(format!("partition names {target} more than once"));
            }
        }
    }
    Ok(())
}

/// The JSON `kind` of a fault, for messages.
pub(crate) fn kind_name(fault: &Fault) -> &'static str {
    match fault {
        Fault::Partition { .. } => "partition",
        Fault::IsolateStoreLeader => "isolate-store-leader",
        Fault::IsolateApiServer { .. } => "isolate-apiserver",
        Fault::MajoritiesRing => "majorities-ring",
        Fault::Bridge => "bridge",
        Fault::OneWay { .. } => "one-way",
        Fault::PacketLoss { .. } => "packet-loss",
        Fault::LatencySpike { .. } => "latency-spike",
        Fault::ClogLink { .. } => "clog-link",
        Fault::Crash { .. } => "crash",
        Fault::CrashStoreMember { .. } => "crash-store-member",
        Fault::PowerLoss { .. } => "power-loss",
        Fault::Pause { .. } => "pause",
        Fault::CorruptRecord { .. } => "corrupt-record",
        Fault::CrashAtFailpoint { .. } => "crash-at-failpoint",
        Fault::LeaderChase { .. } => "leader-chase",
        Fault::ClockSkew { .. } => "clock-skew",
        Fault::Backup { .. } => "backup",
        Fault::DiskLoss { .. } => "disk-loss",
        Fault::DiskLossMajority => "disk-loss-majority",
        Fault::DiskLossAll => "disk-loss-all",
        Fault::SnapshotCorruption => "snapshot-corruption",
    }
}

/// serde: leave a zero `passes` out of plan files.
fn is_zero(n: &u32) -> bool {
    *n == 0
}
