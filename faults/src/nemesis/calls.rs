//! What the nemesis core hands out: [`Call`]s to make on the world, in order, and the
//! history lines that go with them.

use super::{NodeRef, Refused};
use crate::plan::{BitFlip, Failpoint, Slot, Tear};

/// One call the core asks its driver to make on the [`World`](super::World), in the
/// order given; each is one method of the world. Store members are named by slot (the
/// plan's `store-N`).
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Kill(NodeRef),
    Restart(NodeRef),
    Pause(NodeRef),
    Resume(NodeRef),
    /// Kill a store member and lose its unsynced writes, tearing the last one as `tear` says.
    CrashStoreMember {
        slot: Slot,
        tear: Option<Tear>,
    },
    RestartStoreMember(Slot),
    Clog {
        from: NodeRef,
        to: NodeRef,
    },
    Unclog {
        from: NodeRef,
        to: NodeRef,
    },
    SetPacketLoss(f64),
    SetLatency {
        min_ms: u64,
        max_ms: u64,
    },
    ResetNetworkConditions,
    SetClockSkew {
        node: NodeRef,
        offset_ms: i64,
        drift_ms_per_s: i64,
    },
    ResetClock(NodeRef),
    /// Arm `failpoint` on a store member; when the member reaches it, the world reports
    /// `reached` back to the core ([`Nemesis::failpoint_reached`](super::Nemesis::failpoint_reached)).
    ArmFailpoint {
        slot: Slot,
        failpoint: Failpoint,
        passes: u32,
        reached: Reached,
    },
    DisarmFailpoint {
        slot: Slot,
        failpoint: Failpoint,
    },
    LoseDisk(Slot),
    /// Append `t={at_ms}ms {line}` to the run's history.
    Record {
        at_ms: u64,
        line: String,
    },
    /// A call whose outcome the history reports: make it, then record its line.
    Reported {
        at_ms: u64,
        action: Reported,
    },
}

/// The calls whose outcome the history reports (what was corrupted, which backup was
/// started, why a replacement failed): the world answers with `Ok(what)` or
/// `Err(why)`, and [`Reported::line`] words it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// Flip a byte of the member's synced WAL.
    CorruptStoreRecord { slot: Slot, flip: BitFlip },
    /// Operator `snapshot save` against the member.
    TakeBackup { slot: Slot },
    /// Flip a byte of the most recent stored backup.
    CorruptBackup { flip: BitFlip },
    /// The operator replaces a member whose disk was lost.
    ReplaceMember { slot: Slot },
    /// The operator restores the store from its latest good backup.
    RestoreFromBackup,
}

impl Reported {
    /// The history line for the call's outcome (an `Err` of a corruption means there was
    /// nothing to corrupt).
    pub fn line(&self, outcome: Result<String, Refused>) -> String {
        match (self, outcome) {
            (Reported::CorruptStoreRecord { slot, .. }, Ok(what)) => format!("corrupt-record {slot}: {what}"),
            (Reported::CorruptStoreRecord { slot, .. }, Err(_)) => {
                format!("corrupt-record {slot}: no synced record to corrupt")
            }
            (Reported::TakeBackup { slot }, Ok(what)) => {
                format!("operator: snapshot save from {slot}: {what}")
            }
            (Reported::TakeBackup { slot }, Err(why)) => {
                format!("operator: snapshot save from {slot} failed: {why}")
            }
            (Reported::CorruptBackup { .. }, Ok(what)) => format!("snapshot-corruption: {what}"),
            (Reported::CorruptBackup { .. }, Err(_)) => {
                "snapshot-corruption: no stored backup to corrupt, skipped".into()
            }
            (Reported::ReplaceMember { slot }, Ok(what)) => format!("operator: replace {slot}: {what}"),
            (Reported::ReplaceMember { slot }, Err(why)) => format!("operator: replace {slot} failed: {why}"),
            (Reported::RestoreFromBackup, Ok(what)) => format!("operator: restore: {what}"),
            (Reported::RestoreFromBackup, Err(why)) => format!("operator: restore impossible, total loss: {why}"),
        }
    }
}

/// What a member's armed failpoint reports when the member reaches it: the event that
/// armed it and the member's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reached {
    pub event_idx: usize,
    pub slot: Slot,
}

/// The history line of a record call: its time, then what happened.
pub(crate) fn history_line(at_ms: u64, line: &str) -> String {
    format!("t={at_ms}ms {line}")
}
