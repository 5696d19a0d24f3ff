//! Plan format version 1 and its upgrade to version 2.
//!
//! Version 1 left five choices to the nemesis, which drew them from the simulation's
//! random stream while it applied the plan: how much of a torn write survives
//! (`crash-store-member` and `power-loss` with `"tear": true`), which byte of the WAL a
//! `corrupt-record` flips, which byte of the latest backup a `snapshot-corruption` flips,
//! and which majority a `disk-loss-majority` wipes. Version 2 writes them in the plan.
//!
//! A version 1 plan still loads: [`PlanV1::upgrade`] makes those choices the same fixed
//! way every time, with no random number: a tear keeps half of the torn write, a
//! corruption flips the lowest bit of the middle byte of the file, and a majority is the
//! lowest-numbered members (`store-1` to `store-(n/2 + 1)`), so a v1 plan always upgrades
//! to the same v2 plan for a given store size (the majority, and the members a power loss
//! tears, depend on it). A run of an upgraded plan is therefore not the run version 1
//! gave for the same seed: the simulation no longer spends random numbers on these
//! choices, and the choices themselves differ. What the plan does (which faults, when, to
//! whom) is unchanged.
//!
//! The upgrade also drops the two clock skews version 2 refuses as no-ops: one aimed at
//! a store member (no store member reads a clock; version 1 recorded the skew and changed
//! nothing) and one of no offset and no drift. The latter did change something in one
//! case, when it overlapped another skew of the same node (it reset the node to the true
//! time while it was the last one applied); no generated plan ever held one.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fault::Fault;
use super::fault::{BitFlip, Tear, PPM};
use super::target::{Slot, Target, Topology};
use super::{FaultEvent, FaultPlan, PLAN_VERSION};

/// The format version this module reads.
pub const VERSION: u32 = 1;

/// A version 1 plan, as read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanV1 {
    pub version: u32,
    pub safety_phase_ms: u64,
    pub liveness_phase_ms: u64,
    pub events: Vec<EventV1>,
}

/// A version 1 event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventV1 {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub fault: FaultV1,
}

/// A version 1 fault: one of the kinds whose JSON changed, or any other kind, which reads
/// as its version 2 self.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultV1 {
    Changed(ChangedV1),
    Same(Fault),
}

/// The version 1 form of the kinds version 2 completed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChangedV1 {
    CrashStoreMember { member: Target, tear: bool },
    PowerLoss { tear: bool },
    CorruptRecord { member: Target },
    DiskLossMajority,
    SnapshotCorruption,
}

const CHANGED_KINDS: [&str; 5] =
    ["crash-store-member", "power-loss", "corrupt-record", "disk-loss-majority", "snapshot-corruption"];

impl<'de> Deserialize<'de> for FaultV1 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let changed =
            value.get("kind").and_then(serde_json::Value::as_str).is_some_and(|kind| CHANGED_KINDS.contains(&kind));
        if changed {
            serde_json::from_value(value).map(FaultV1::Changed).map_err(D::Error::custom)
        } else {
            serde_json::from_value(value).map(FaultV1::Same).map_err(D::Error::custom)
        }
    }
}

impl Serialize for FaultV1 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FaultV1::Changed(fault) => fault.serialize(serializer),
            FaultV1::Same(fault) => fault.serialize(serializer),
        }
    }
}

impl PlanV1 {
    /// The version 2 plan this plan runs as on `topology` (see the module doc).
    pub fn upgrade(&self, topology: &Topology) -> FaultPlan {
        let events = self
            .events
            .iter()
            .filter_map(|event| {
                let fault = match &event.fault {
                    FaultV1::Changed(changed) => upgrade_changed(changed, topology),
                    FaultV1::Same(Fault::ClockSkew { target, .. }) if target.is_store() => return None,
                    FaultV1::Same(Fault::ClockSkew { offset_ms: 0, drift_ms_per_s: 0, .. }) => return None,
                    FaultV1::Same(fault) => fault.clone(),
                };
                Some(FaultEvent { at_ms: event.at_ms, duration_ms: event.duration_ms, fault })
            })
            .collect();
        FaultPlan {
            version: PLAN_VERSION,
            safety_phase_ms: self.safety_phase_ms,
            liveness_phase_ms: self.liveness_phase_ms,
            events,
            workload: Vec::new(),
        }
    }
}

fn upgrade_changed(fault: &ChangedV1, topology: &Topology) -> Fault {
    match fault {
        ChangedV1::CrashStoreMember { member, tear } => {
            Fault::CrashStoreMember { member: member.clone(), tear: tear.then_some(HALF_KEPT) }
        }
        ChangedV1::PowerLoss { tear: false } => Fault::PowerLoss { tears: Default::default() },
        ChangedV1::PowerLoss { tear: true } => Fault::PowerLoss {
            tears: (1..=topology.store_members).map(|member| (Target::StoreMember(Slot(member)), HALF_KEPT)).collect(),
        },
        ChangedV1::CorruptRecord { member } => Fault::CorruptRecord { member: member.clone(), flip: MIDDLE_BIT_FLIP },
        ChangedV1::DiskLossMajority => Fault::DiskLossMajority { members: lowest_majority(topology) },
        ChangedV1::SnapshotCorruption => Fault::SnapshotCorruption { flip: MIDDLE_BIT_FLIP },
    }
}

/// A version 1 tear: half of the torn write is kept.
const HALF_KEPT: Tear = Tear { kept_ppm: PPM / 2 };

/// A version 1 corruption: the lowest bit of the middle byte flips.
const MIDDLE_BIT_FLIP: BitFlip = BitFlip { offset_ppm: PPM / 2, xor_mask: 1 };

/// A version 1 majority: store-1 to store-(n/2 + 1).
fn lowest_majority(topology: &Topology) -> Vec<Target> {
    (1..=topology.store_members / 2 + 1)
        .take(topology.store_members as usize)
        .map(|n| Target::StoreMember(Slot(n)))
        .collect()
}
