//! `FaultPlan`: the data a seed's nemesis executes. Plans are JSON so that people can read,
//! write, save and replay them (`kubesim run --plan FILE`, the CI corpus, `kubesim shrink`);
//! field names are part of that contract and must stay stable.
//!
//! A plan (format version 2) holds every choice the nemesis makes: which targets, when,
//! for how long, and the details version 1 left to the simulation's randomness at apply
//! time (torn-write lengths, corrupted bytes, which majority loses its disks). Only
//! `store-leader` is resolved when a fault is applied, from the world as it is then.
//! So replaying a plan runs exactly what it says, and the shrinker edits exactly what
//! runs. [`PlanFile`] reads either version; [`v1`] says how version 1 is upgraded.
//!
//! - [`target`]: what a fault aims at and the topology a plan is checked against;
//! - [`fault`]: the faults and their details;
//! - [`FaultPlan::validate`] (here): whether a plan fits a topology; `survivable`:
//!   whether a correct system must survive it.

pub mod fault;
mod survivable;
pub mod target;
pub mod v1;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub(crate) use fault::kind_name;
pub use fault::{
    BitFlip, ChaseStep, Failpoint, Fault, Tear, MAX_CHASE_STEPS, MAX_FAILPOINT_PASSES, MAX_FAILPOINT_RESTART_MS, PPM,
};
pub use survivable::Unsurvivable;
pub use target::{Slot, Target, TargetParseError, Topology};

/// The plan format version this crate writes (and the only one a [`FaultPlan`] holds);
/// [`PlanFile`] also reads [`v1::VERSION`].
pub const PLAN_VERSION: u32 = 2;

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
    /// What the users do meanwhile: the generated workload's actions, by time
    /// ([`crate::actions`]). Left out of the JSON when empty, so plans saved before it
    /// existed read as they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workload: Vec<crate::actions::UserAction>,
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
    #[error("unsupported fault plan version {found} (this kubesim reads versions {} and {PLAN_VERSION})", v1::VERSION)]
    UnsupportedVersion { found: u32 },
    /// A version 1 plan where only a version 2 plan will do: version 1 is upgraded for
    /// the topology it runs on (see [`PlanFile`]).
    #[error("a version {found} fault plan must be upgraded for a topology before it runs (PlanFile::fit)")]
    NotUpgraded { found: u32 },
    #[error("fault plan {path} is larger than {max} bytes; a plan of the most events allowed is far smaller")]
    TooLarge { path: String, max: u64 },
    #[error("fault plan has {count} events; at most {max} are allowed")]
    TooManyEvents { count: usize, max: usize },
    #[error("fault plan's workload has {count} actions; at most {max} are allowed")]
    TooManyActions { count: usize, max: usize },
    #[error("fault plan's workload names {count} users; at most {max} are allowed")]
    TooManyUsers { count: usize, max: usize },
    /// The workload's action at index `action` (0-based, as in the JSON `workload` array)
    /// is invalid.
    #[error("workload action {action}: {reason}")]
    InvalidAction { action: usize, reason: Box<crate::actions::InvalidAction> },
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
    InvalidEvent { event: usize, reason: InvalidFault },
    /// The plan is valid but not survivable by a correct system (see
    /// `FaultPlan::check_survivable`).
    #[error("plan is not survivable: {0}")]
    NotSurvivable(Box<Unsurvivable>),
}

impl From<Unsurvivable> for PlanError {
    fn from(reason: Unsurvivable) -> Self {
        // Boxed: the limits' details would double the size of every `Result` that carries
        // a `PlanError`.
        PlanError::NotSurvivable(Box::new(reason))
    }
}

/// What is wrong with one event of a plan: a target the topology lacks, or a detail out
/// of its range. Each message names the field and the bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidFault {
    /// A target the run's topology does not have (the message says what it has).
    #[error("{0}")]
    AbsentTarget(String),
    #[error("{kind} needs at least 3 store members (topology has {members})")]
    NeedsThreeMembers { kind: &'static str, members: u64 },
    #[error("{kind} from {target} to itself")]
    LinkToItself { kind: &'static str, target: Target },
    #[error("packet loss rate {0} out of range (must be > 0 and <= 0.5)")]
    PacketLossRate(f64),
    #[error("latency range min_ms {min_ms} is above max_ms {max_ms}")]
    LatencyRangeInverted { min_ms: u64, max_ms: u64 },
    #[error("latency max_ms {0} out of range (at most {MAX_LATENCY_MS})")]
    LatencyTooLong(u64),
    #[error("{kind} needs a store member target (store-N or store-leader), got {target}")]
    NotAStoreMember { kind: &'static str, target: Target },
    #[error("crash-at-failpoint restart_after_ms {0} out of range (at most {MAX_FAILPOINT_RESTART_MS})")]
    RestartDelayTooLong(u64),
    #[error(
        "crash-at-failpoint restart_after_ms {restart_after_ms} is longer than the event ({duration_ms} ms); \
         the member must be back when the event heals"
    )]
    RestartAfterEventEnds { restart_after_ms: u64, duration_ms: u64 },
    #[error("crash-at-failpoint passes {0} out of range (at most {MAX_FAILPOINT_PASSES})")]
    TooManyPasses(u32),
    #[error("leader-chase needs at least 2 store members (topology has {0})")]
    ChaseNeedsTwoMembers(u64),
    #[error("leader-chase has {0} steps; it needs 1 to {MAX_CHASE_STEPS}")]
    ChaseSteps(usize),
    #[error("leader-chase step {step} passes {passes} out of range (at most {MAX_FAILPOINT_PASSES})")]
    ChaseStepPasses { step: usize, passes: u32 },
    #[error("{0} needs a store (topology has 0 store members)")]
    NeedsAStore(&'static str),
    #[error("tear kept_ppm {0} out of range (at most {PPM}, the whole write)")]
    TearKept(u32),
    #[error("flip offset_ppm {0} out of range (below {PPM}, inside the file)")]
    FlipOffset(u32),
    #[error("flip xor_mask 0 flips no bit")]
    FlipNothing,
    #[error("power-loss tears name {0}; name store members (store-N)")]
    TearOfNoMember(Target),
    #[error("power-loss tears name {named} of the {members} store members; name every member or none")]
    TearsOfSomeMembers { named: usize, members: u64 },
    #[error("disk-loss-majority members name {0}; name store members (store-N)")]
    MajorityOfNoMember(Target),
    #[error("disk-loss-majority names a member more than once")]
    MajorityRepeats,
    #[error(
        "disk-loss-majority members are {named} of the {members} store members, not a majority (at least {majority})"
    )]
    NotAMajority { named: usize, members: u64, majority: u64 },
    #[error("clock-skew of {0} with no offset and no drift changes nothing")]
    SkewChangesNothing(Target),
    #[error("clock offset_ms {0} out of range (at most ±{MAX_CLOCK_OFFSET_MS})")]
    ClockOffset(i64),
    #[error("clock drift_ms_per_s {0} out of range (at most ±{MAX_CLOCK_DRIFT_MS_PER_S})")]
    ClockDrift(i64),
    #[error("partition needs at least 2 groups, got {0}")]
    TooFewGroups(usize),
    #[error("partition group {0} is empty")]
    EmptyGroup(usize),
    #[error("partition names {0} more than once")]
    NamedTwice(Target),
}

impl FaultPlan {
    /// An empty plan (no faults) with the given phases.
    pub fn empty(safety_phase_ms: u64, liveness_phase_ms: u64) -> Self {
        FaultPlan {
            version: PLAN_VERSION,
            safety_phase_ms,
            liveness_phase_ms,
            events: Vec::new(),
            workload: Vec::new(),
        }
    }

    /// Reads a version 2 plan from JSON. It checks the version but not the topology: call
    /// [`FaultPlan::validate`] before running it. A plan file of any version is read with
    /// [`PlanFile`].
    pub fn from_json(json: &str) -> Result<Self, PlanError> {
        match PlanFile::from_json(json)? {
            PlanFile::V2(plan) => Ok(plan),
            PlanFile::V1(plan) => Err(PlanError::NotUpgraded { found: plan.version }),
        }
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
            return Err(match self.version {
                v1::VERSION => PlanError::NotUpgraded { found: self.version },
                found => PlanError::UnsupportedVersion { found },
            });
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
                        reason: InvalidFault::RestartAfterEventEnds {
                            restart_after_ms,
                            duration_ms: event.duration_ms,
                        },
                    });
                }
            }
        }
        if self.workload.len() > crate::actions::MAX_ACTIONS {
            return Err(PlanError::TooManyActions { count: self.workload.len(), max: crate::actions::MAX_ACTIONS });
        }
        let users: std::collections::BTreeSet<&str> = self.workload.iter().map(|a| a.user.as_str()).collect();
        if users.len() > crate::actions::MAX_USERS {
            return Err(PlanError::TooManyUsers { count: users.len(), max: crate::actions::MAX_USERS });
        }
        for (action_idx, action) in self.workload.iter().enumerate() {
            crate::actions::validate_action(action, self.safety_phase_ms, topology)
                .map_err(|reason| PlanError::InvalidAction { action: action_idx, reason: Box::new(reason) })?;
        }
        Ok(())
    }
}

/// A plan file as read, in either format version. A version 2 plan runs as written; a
/// version 1 plan is upgraded when it meets the topology it runs on ([`PlanFile::fit`]),
/// since which members form a majority and how many members a power loss tears depend on
/// the store's size ([`v1`]). In JSON it is the plan itself; cases of the CI corpus hold
/// one.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanFile {
    V1(v1::PlanV1),
    V2(FaultPlan),
}

impl PlanFile {
    /// Reads a plan of either version from JSON (the version first, so that a plan from a
    /// future kubesim says so rather than failing on whatever field it added).
    pub fn from_json(json: &str) -> Result<Self, PlanError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        match serde_json::from_str::<VersionOnly>(json) {
            Ok(VersionOnly { version: v1::VERSION }) => Ok(PlanFile::V1(serde_json::from_str(json)?)),
            Ok(VersionOnly { version: PLAN_VERSION }) | Err(_) => Ok(PlanFile::V2(serde_json::from_str(json)?)),
            Ok(VersionOnly { version }) => Err(PlanError::UnsupportedVersion { found: version }),
        }
    }

    /// Reads a plan file of either version, of at most [`MAX_PLAN_FILE_BYTES`] (so that
    /// `/dev/zero` or a huge file is refused instead of filling memory).
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

    /// The format version the file was written in.
    pub fn version(&self) -> u32 {
        match self {
            PlanFile::V1(plan) => plan.version,
            PlanFile::V2(plan) => plan.version,
        }
    }

    /// The plan a run on `topology` executes: a version 1 plan upgraded for it, then
    /// validated against it ([`FaultPlan::validate`]).
    pub fn fit(&self, topology: &Topology) -> Result<FaultPlan, PlanError> {
        let plan = match self {
            PlanFile::V1(plan) => plan.upgrade(topology),
            PlanFile::V2(plan) => plan.clone(),
        };
        plan.validate(topology)?;
        Ok(plan)
    }
}

impl From<FaultPlan> for PlanFile {
    fn from(plan: FaultPlan) -> Self {
        PlanFile::V2(plan)
    }
}

impl Serialize for PlanFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            PlanFile::V1(plan) => plan.serialize(serializer),
            PlanFile::V2(plan) => plan.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for PlanFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let value = serde_json::Value::deserialize(deserializer)?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(version) if version == u64::from(v1::VERSION) => {
                serde_json::from_value(value).map(PlanFile::V1).map_err(D::Error::custom)
            }
            Some(version) if version != u64::from(PLAN_VERSION) => {
                Err(D::Error::custom(PlanError::UnsupportedVersion {
                    found: u32::try_from(version).unwrap_or(u32::MAX),
                }))
            }
            _ => serde_json::from_value(value).map(PlanFile::V2).map_err(D::Error::custom),
        }
    }
}

fn validate_fault(fault: &Fault, topology: &Topology) -> Result<(), InvalidFault> {
    for target in fault.targets() {
        if !topology.contains(target) {
            return Err(InvalidFault::AbsentTarget(topology.describe_absence(target)));
        }
    }
    match fault {
        Fault::Partition { .. }
        | Fault::IsolateStoreLeader
        | Fault::IsolateApiServer { .. }
        | Fault::MajoritiesRing
        | Fault::Bridge
        | Fault::OneWay { .. }
        | Fault::ClogLink { .. }
        | Fault::PacketLoss { .. }
        | Fault::LatencySpike { .. } => validate_network_fault(fault, topology),
        Fault::Crash { .. } | Fault::Pause { .. } => Ok(()),
        Fault::CrashAtFailpoint { .. } | Fault::LeaderChase { .. } => validate_failpoint_fault(fault, topology),
        Fault::CrashStoreMember { .. }
        | Fault::PowerLoss { .. }
        | Fault::CorruptRecord { .. }
        | Fault::Backup { .. }
        | Fault::DiskLoss { .. }
        | Fault::DiskLossMajority { .. }
        | Fault::DiskLossAll
        | Fault::SnapshotCorruption { .. } => validate_store_fault(fault, topology),
        Fault::ClockSkew { target, offset_ms, drift_ms_per_s } => {
            validate_clock_skew(target, *offset_ms, *drift_ms_per_s)
        }
    }
}

/// Partitions, cut links and network conditions.
fn validate_network_fault(fault: &Fault, topology: &Topology) -> Result<(), InvalidFault> {
    match fault {
        Fault::Partition { groups } => validate_groups(groups),
        Fault::IsolateApiServer { apiserver } => {
            let target = Target::ApiServer(*apiserver);
            if topology.contains(&target) {
                Ok(())
            } else {
                Err(InvalidFault::AbsentTarget(topology.describe_absence(&target)))
            }
        }
        Fault::MajoritiesRing | Fault::Bridge if topology.store_members < 3 => {
            Err(InvalidFault::NeedsThreeMembers { kind: kind_name(fault), members: topology.store_members })
        }
        Fault::OneWay { from, to } if from == to => {
            Err(InvalidFault::LinkToItself { kind: kind_name(fault), target: from.clone() })
        }
        Fault::ClogLink { a, b } if a == b => {
            Err(InvalidFault::LinkToItself { kind: kind_name(fault), target: a.clone() })
        }
        Fault::PacketLoss { rate } => {
            // Written as a positive range check so that NaN is rejected too.
            if *rate > 0.0 && *rate <= 0.5 {
                Ok(())
            } else {
                Err(InvalidFault::PacketLossRate(*rate))
            }
        }
        Fault::LatencySpike { min_ms, max_ms } => {
            if min_ms > max_ms {
                Err(InvalidFault::LatencyRangeInverted { min_ms: *min_ms, max_ms: *max_ms })
            } else if *max_ms > MAX_LATENCY_MS {
                Err(InvalidFault::LatencyTooLong(*max_ms))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Crashes at failpoints: a store member, a restart delay and passes in range, a chase
/// with steps and someone to chase.
fn validate_failpoint_fault(fault: &Fault, topology: &Topology) -> Result<(), InvalidFault> {
    match fault {
        Fault::CrashAtFailpoint { member, .. } if !member.is_store() => {
            Err(InvalidFault::NotAStoreMember { kind: kind_name(fault), target: member.clone() })
        }
        Fault::CrashAtFailpoint { restart_after_ms, .. } if *restart_after_ms > MAX_FAILPOINT_RESTART_MS => {
            Err(InvalidFault::RestartDelayTooLong(*restart_after_ms))
        }
        Fault::CrashAtFailpoint { passes, .. } if *passes > MAX_FAILPOINT_PASSES => {
            Err(InvalidFault::TooManyPasses(*passes))
        }
        Fault::LeaderChase { .. } if topology.store_members < 2 => {
            Err(InvalidFault::ChaseNeedsTwoMembers(topology.store_members))
        }
        Fault::LeaderChase { steps } if steps.is_empty() || steps.len() > MAX_CHASE_STEPS => {
            Err(InvalidFault::ChaseSteps(steps.len()))
        }
        Fault::LeaderChase { steps } => match steps.iter().position(|step| step.passes > MAX_FAILPOINT_PASSES) {
            Some(step) => Err(InvalidFault::ChaseStepPasses { step, passes: steps[step].passes }),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Faults of store members and their disks, and the operator's backups: aimed at store
/// members, on a store that exists, with their details in range.
fn validate_store_fault(fault: &Fault, topology: &Topology) -> Result<(), InvalidFault> {
    match fault {
        Fault::CrashStoreMember { member, .. }
        | Fault::CorruptRecord { member, .. }
        | Fault::Backup { member }
        | Fault::DiskLoss { member }
            if !member.is_store() =>
        {
            Err(InvalidFault::NotAStoreMember { kind: kind_name(fault), target: member.clone() })
        }
        Fault::PowerLoss { .. } | Fault::DiskLossMajority { .. } | Fault::DiskLossAll
            if topology.store_members == 0 =>
        {
            Err(InvalidFault::NeedsAStore(kind_name(fault)))
        }
        Fault::CrashStoreMember { tear, .. } => tear.map_or(Ok(()), validate_tear),
        Fault::CorruptRecord { flip, .. } | Fault::SnapshotCorruption { flip } => validate_flip(*flip),
        Fault::PowerLoss { tears } => validate_power_loss_tears(tears, topology),
        Fault::DiskLossMajority { members } => validate_majority(members, topology),
        _ => Ok(()),
    }
}

fn validate_tear(tear: Tear) -> Result<(), InvalidFault> {
    if tear.kept_ppm > PPM {
        return Err(InvalidFault::TearKept(tear.kept_ppm));
    }
    Ok(())
}

fn validate_flip(flip: BitFlip) -> Result<(), InvalidFault> {
    if flip.offset_ppm >= PPM {
        return Err(InvalidFault::FlipOffset(flip.offset_ppm));
    }
    if flip.xor_mask == 0 {
        return Err(InvalidFault::FlipNothing);
    }
    Ok(())
}

/// A power loss tears every member's last write or none: the store's members share the
/// power cut, so the plan says whether it tears, and for each member how much.
fn validate_power_loss_tears(tears: &BTreeMap<Target, Tear>, topology: &Topology) -> Result<(), InvalidFault> {
    if let Some(target) = tears.keys().find(|target| matches!(target, Target::StoreLeader) || !target.is_store()) {
        return Err(InvalidFault::TearOfNoMember(target.clone()));
    }
    if !tears.is_empty() && tears.len() as u64 != topology.store_members {
        return Err(InvalidFault::TearsOfSomeMembers { named: tears.len(), members: topology.store_members });
    }
    tears.values().try_for_each(|tear| validate_tear(*tear))
}

/// The members of a `disk-loss-majority`: concrete, distinct, and more than half the store.
fn validate_majority(members: &[Target], topology: &Topology) -> Result<(), InvalidFault> {
    if let Some(target) = members.iter().find(|target| !matches!(target, Target::StoreMember(_))) {
        return Err(InvalidFault::MajorityOfNoMember(target.clone()));
    }
    let distinct: BTreeSet<&Target> = members.iter().collect();
    if distinct.len() < members.len() {
        return Err(InvalidFault::MajorityRepeats);
    }
    let majority = topology.store_members / 2 + 1;
    if (members.len() as u64) < majority {
        return Err(InvalidFault::NotAMajority { named: members.len(), members: topology.store_members, majority });
    }
    Ok(())
}

/// A skew must change some clock: a skew of no offset and no drift is the true time. A
/// store member's clock is read by its lessor (lease expiry, while it leads); Raft counts
/// ticks of its own timer and is unaffected.
fn validate_clock_skew(target: &Target, offset_ms: i64, drift_ms_per_s: i64) -> Result<(), InvalidFault> {
    if offset_ms == 0 && drift_ms_per_s == 0 {
        return Err(InvalidFault::SkewChangesNothing(target.clone()));
    }
    if offset_ms.unsigned_abs() > MAX_CLOCK_OFFSET_MS.unsigned_abs() {
        return Err(InvalidFault::ClockOffset(offset_ms));
    }
    if drift_ms_per_s.unsigned_abs() > MAX_CLOCK_DRIFT_MS_PER_S.unsigned_abs() {
        return Err(InvalidFault::ClockDrift(drift_ms_per_s));
    }
    Ok(())
}

fn validate_groups(groups: &[Vec<Target>]) -> Result<(), InvalidFault> {
    if groups.len() < 2 {
        return Err(InvalidFault::TooFewGroups(groups.len()));
    }
    let mut seen = BTreeSet::new();
    for (group_idx, group) in groups.iter().enumerate() {
        if group.is_empty() {
            return Err(InvalidFault::EmptyGroup(group_idx));
        }
        for target in group {
            if !seen.insert(target) {
                return Err(InvalidFault::NamedTwice(target.clone()));
            }
        }
    }
    Ok(())
}
