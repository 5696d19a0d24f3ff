//! Sans-IO Raft (the paper's §5, plus the thesis' pre-vote, check-quorum and ReadIndex).
//!
//! The core is a deterministic state machine: the driver feeds it ticks, peer messages,
//! proposals and read requests, and drains [`Ready`] batches telling it what to persist,
//! what to send and what to apply. It knows nothing of madsim, disks, networks, threads
//! or wall-clock time; randomness (election timeouts) comes from a seed the driver passes.
//!
//! Log compaction and snapshot transfer follow §7 (the driver hands the core a snapshot of
//! its applied state with [`Raft::compact`]; a leader sends it to a follower that needs
//! compacted entries). Membership changes are single-server (thesis §4.1), one at a time,
//! and take effect when their entry commits (etcd's choice, not the thesis' on-append).
//!
//! Layout: `node.rs` (the [`Raft`] state and entry points), `step.rs` (message dispatch and
//! term rules), `election.rs`, `replication.rs`, `read_only.rs` (ReadIndex), `log.rs`
//! (the log with a compaction offset), `progress.rs` (per-voter replication progress and
//! the voter set), `message.rs`, `ready.rs`, `config.rs`, `errors.rs`, `rng.rs`.
//!
//! Invariants asserted where they are established: the term never decreases; the commit
//! index never decreases and never passes the last index; a leader only appends to its own
//! log; a follower never rewrites a committed entry (unless a planted bug is on, in which
//! case kubesim's checkers, not an assertion, must catch the consequences).

mod config;
mod election;
mod entry;
mod errors;
mod log;
mod message;
mod node;
mod progress;
mod read_only;
mod ready;
mod replication;
mod rng;
mod step;

pub use config::{Config, RaftBugs};
pub use entry::{ConfChange, ConfChangeEntry, Entry, EntryKind, HardState, NodeId, SnapshotMeta};
pub use errors::{ProposeError, RaftError};
pub use message::{Message, MessageBody, RejectHint};
pub use node::Raft;
pub use ready::{ReadState, Ready, RestoredState, Role, SoftState, Status};
