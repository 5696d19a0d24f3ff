//! The durable vocabulary of Raft: log entries, hard state and snapshot metadata. These are
//! what the WAL persists, so they are shared by `raft` (which produces them) and `wal`
//! (which stores them) and change only with a WAL format change.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Identity of a Raft peer: the number inside the store's `MemberId`, kept a bare `u64`
/// in the sans-IO core as raft-rs keeps its ids (the member server converts at the boundary).
pub type NodeId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// Application data (an encoded store mutation), or empty: the no-op a new leader
    /// appends in its term (Raft §5.4.2 / §8).
    Normal,
    /// A membership change: the data is an encoded [`ConfChangeEntry`].
    ConfChange,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub kind: EntryKind,
    pub data: Bytes,
}

/// Raft's persistent state (Figure 2: currentTerm, votedFor) plus the commit index, which
/// etcd also persists so that a restarted member need not wait to relearn it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
    pub commit: u64,
}

/// Describes the state a snapshot replaces the log prefix with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index and term of the last entry the snapshot covers.
    pub index: u64,
    pub term: u64,
    /// Voting members as of `index`.
    pub voters: Vec<NodeId>,
}

/// A single-server membership change (Raft thesis §4.1: one server added or removed at a
/// time, so any majority of the old configuration overlaps any majority of the new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChange {
    AddVoter(NodeId),
    RemoveVoter(NodeId),
}

impl ConfChange {
    pub fn node(&self) -> NodeId {
        match *self {
            ConfChange::AddVoter(id) | ConfChange::RemoveVoter(id) => id,
        }
    }
}

/// The data of a `ConfChange` entry. Like the thesis' configuration entries it carries the
/// whole configuration that results (`voters`), so a node replaying the log from any
/// starting configuration (a member that joined with an empty disk) ends up with exactly
/// the leader's. `context` is opaque to Raft (the member puts the new member's address
/// there, as etcd puts its attributes in `ConfChange.Context`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfChangeEntry {
    pub change: ConfChange,
    pub voters: Vec<NodeId>,
    pub context: Bytes,
}

impl ConfChangeEntry {
    pub fn encode(&self) -> Bytes {
        Bytes::from(bincode::serialize(self).expect("a conf change always serializes"))
    }

    pub fn decode(data: &[u8]) -> Option<ConfChangeEntry> {
        bincode::deserialize(data).ok()
    }
}
