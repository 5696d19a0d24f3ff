//! The nemesis: executes a [`FaultPlan`](crate::FaultPlan) against a [`World`] in
//! simulated time.
//!
//! The nemesis knows nothing about the system under test: the world (built by `sim`)
//! translates "kill store-2", "clog apiserver-0 → store-1" into madsim and `SimDisk`
//! calls. Every action is recorded in the world's history so a failure's report shows what
//! the nemesis did and when.
//!
//! It is a sans-IO core and a thin driver, as `store`'s Raft is:
//! - `core.rs`: [`Nemesis`], a pure state machine. Inputs: "the next step is due"
//!   ([`Nemesis::step`]), "a member reached its failpoint" ([`Nemesis::failpoint_reached`],
//!   or queued until the next heal), "the safety phase ended" ([`Nemesis::heal_all`]), and
//!   a read-only [`View`] of the world. Output: the [`Call`]s to make on the world, in order, history lines
//!   included ([`Nemesis::take_calls`]). It draws no random number: a plan holds every
//!   choice (see [`crate::plan`]);
//! - `failpoints.rs`: the core's `crash-at-failpoint` and `leader-chase` handling;
//! - `schedule.rs`: the plan as one timeline of steps;
//! - `holds.rs`: what overlapping faults share (a clogged link, a paused node, a crashed
//!   process: one hold count; network conditions and clock skews by event);
//! - `targets.rs`: targets resolved when applied, and the links each network fault cuts;
//! - `calls.rs`: the calls and their history lines;
//! - `driver.rs`: [`run`], which feeds the core madsim's time and the failpoints members
//!   report, and makes its calls ([`perform`]).
//!
//! Steps due at the same instant run in a fixed order that does not depend on the
//! scheduler: heals first (a crashed process restarts before another crash is applied),
//! then applies in plan order, then disarms and heals of zero-length faults. A heal sees
//! every failpoint reached before it.

mod calls;
mod core;
mod driver;
mod failpoints;
mod holds;
mod schedule;
mod targets;

use std::sync::Arc;

pub use self::calls::{Call, Reached, Reported};
pub use self::core::Nemesis;
pub use self::driver::{perform, run};
pub use self::targets::{bridge, majorities_ring, Grudge};
use crate::plan::{BitFlip, Failpoint, Slot, Target, Tear};

/// A node as the world names it, e.g. `"store-1"`, `"apiserver-0"`, `"kubelet-2"`.
pub type NodeRef = String;

/// What the nemesis core reads of the world when it decides (raft-rs's `Storage` is the
/// same kind of input): facts at the current instant. Reading changes nothing.
pub trait View {
    /// Slots of all store members (crashed ones included): the plan's `store-N`.
    fn store_members(&self) -> Vec<Slot>;
    /// The slot of the current Raft leader, if the world knows one.
    fn store_leader(&self) -> Option<Slot>;
    /// The node a target runs on; `None` if it does not exist or cannot be resolved.
    fn node_of(&self, target: &Target) -> Option<NodeRef>;
    /// Every node of the cluster.
    fn all_nodes(&self) -> Vec<NodeRef>;
}

/// The simulated world as the nemesis acts on it: one method per [`Call`]. Object-safe
/// and synchronous: every call takes effect immediately in simulated time. Store members
/// are named by slot.
pub trait World: View {
    /// Kill a process (all its tasks and connections).
    fn kill(&self, node: &NodeRef);
    /// Restart a killed process from its persistent state.
    fn restart(&self, node: &NodeRef);
    /// Stop a process's tasks from running until `resume`.
    fn pause(&self, node: &NodeRef);
    fn resume(&self, node: &NodeRef);
    /// Kill a store member and lose its unsynced writes; with `tear`, keep that part of
    /// the last unsynced write.
    fn crash_store_member(&self, slot: Slot, tear: Option<Tear>);
    fn restart_store_member(&self, slot: Slot);
    /// Flip bits of one byte of the member's synced WAL where `flip` says; returns what
    /// was corrupted, or `None` if the member has no synced WAL to corrupt.
    fn corrupt_store_record(&self, slot: Slot, flip: BitFlip) -> Option<String>;
    /// Drop every message `from → to` until `unclog`.
    fn clog(&self, from: &NodeRef, to: &NodeRef);
    fn unclog(&self, from: &NodeRef, to: &NodeRef);
    /// Drop each message with probability `rate`, everywhere.
    fn set_packet_loss(&self, rate: f64);
    /// Send latency drawn from `min_ms..=max_ms`, everywhere.
    fn set_latency_ms(&self, min_ms: u64, max_ms: u64);
    /// Back to the scenario's normal loss and latency.
    fn reset_network_conditions(&self);
    fn set_clock_skew(&self, node: &NodeRef, offset_ms: i64, drift_ms_per_s: i64);
    fn reset_clock(&self, node: &NodeRef);
    /// Arms `failpoint` on a store member that exists: the next time the member reaches
    /// it, the member halts (sends and applies nothing more) and calls `on_reached`,
    /// once; the nemesis then crashes it. `passes`: how many times the member passes the
    /// point unharmed first.
    fn arm_failpoint(&self, slot: Slot, failpoint: Failpoint, passes: u32, on_reached: Box<dyn FnOnce() + Send>);
    /// Disarms it, if it is still armed (not reached).
    fn disarm_failpoint(&self, slot: Slot, failpoint: Failpoint);
    /// Appends a line to the run's history.
    fn record(&self, description: String);
    /// Operator `snapshot save` against the member in `slot`; the world keeps the backup off-cluster.
    /// Returns what was started or taken, or why it could not be (member unknown).
    fn take_backup(&self, slot: Slot) -> Result<String, Refused>;
    /// Flips bits of one byte of the most recent stored backup where `flip` says; `None`
    /// if no backup is stored.
    fn corrupt_backup(&self, flip: BitFlip) -> Option<String>;
    /// Wipes the disk of the member in `slot` and kills it (nothing of it survives, not even its identity).
    fn lose_disk(&self, slot: Slot);
    /// The operator replaces a member whose disk was lost: remove it from the cluster, add
    /// a new identity with an empty disk on a new address, start it. Targets naming
    /// the slot reach the replacement afterwards.
    fn replace_member(&self, slot: Slot) -> Result<String, Refused>;
    /// The operator's restore after a majority or total disk loss (see
    /// `Fault::DiskLossMajority`). `Err` when no stored backup verifies: the run's
    /// cluster state is lost (`total-loss`).
    fn restore_from_backup(&self) -> Result<String, Refused>;
}

/// Why the world did not carry out what the nemesis asked of it; the history line of the
/// call says so (`operator: replace store-2 failed: the operator is busy: ...`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The slot holds no member.
    #[error("no store slot {}", .0.number())]
    NoSuchSlot(Slot),
    /// The operator's queue of requests is full.
    #[error("the operator is busy: {waiting} commands are waiting")]
    OperatorBusy { waiting: usize },
    /// The operator's node no longer takes requests.
    #[error("the operator's node is gone")]
    OperatorGone,
    /// No stored backup verifies: the cluster state is lost.
    #[error("no good backup")]
    NoGoodBackup,
    /// A corruption found nothing to corrupt (no synced WAL, no stored backup).
    #[error("nothing to corrupt")]
    NothingToCorrupt,
}

/// The shared handle `run` takes.
pub type SharedWorld = Arc<dyn World + Send + Sync>;
