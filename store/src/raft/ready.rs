//! What the core hands back to its driver, and the observable state it reports.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::entry::{Entry, HardState, NodeId, SnapshotMeta};
use super::message::Message;

/// A batch of work for the driver, drained by [`super::Raft::ready`].
///
/// # Contract (the driver must follow it, in this order)
/// 0. If `snapshot` is Some (a snapshot from the leader was installed), persist it and
///    load it into the state machine first: it replaces the whole log up to its index, and
///    `entries` (if any) follow it.
/// 1. Persist `hard_state` (if Some) and `entries` durably (fsync). If `entries[0].index`
///    is at or below the last durable index, first truncate the durable log from there:
///    the leader of a newer term replaced that suffix.
/// 2. Only then send `messages`. The core emits a vote grant or an append acknowledgement
///    in the same Ready as the state change that justifies it (the recorded vote, the
///    appended entries), so step 1 makes every promise it sends durable. Sending first
///    would let a crash break a promise: a double vote, or a lost acknowledged entry.
/// 3. Apply `committed_entries` in order, then report progress with
///    [`super::Raft::advance_applied`]. They may include entries from this Ready's
///    `entries`, which step 1 made durable.
/// 4. Serve each read in `read_states` once the applied index reaches its `index`.
///
/// A leader counts its own log as storing an entry as soon as the entry is handed out in
/// `entries` (before it is durable): the commit this may produce is only acted upon (sent
/// to followers, applied) after step 1, by which time the entry is durable (Raft thesis
/// §10.2.1 allows the leader to write its log in parallel with replication).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ready {
    /// Some when the leader, role or term changed since the last `ready()`.
    pub soft_state: Option<SoftState>,
    /// Some when it changed since the last `ready()`: must be persisted (fsynced).
    pub hard_state: Option<HardState>,
    /// To append to the durable log (truncating it first from `entries[0].index`).
    pub entries: Vec<Entry>,
    /// To send only after `hard_state` and `entries` are durable.
    pub messages: Vec<Message>,
    /// To apply in order, after persisting.
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// A snapshot received from the leader and installed in the log: to persist and to
    /// load into the state machine before anything else in this Ready.
    pub snapshot: Option<(SnapshotMeta, Bytes)>,
}

/// Volatile state worth reporting: who leads, in which role and term this node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftState {
    pub leader: Option<NodeId>,
    pub role: Role,
    pub term: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Follower,
    /// Asking for pre-votes (thesis §9.6), term not yet bumped.
    PreCandidate,
    Candidate,
    Leader,
}

/// A linearizable read with this context may be served once the applied index is at
/// least `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadState {
    pub request_ctx: u64,
    pub index: u64,
}

/// The durable state a node restarts from: what the driver persisted from `Ready`s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoredState {
    pub hard_state: HardState,
    /// Contiguous, starting right after the snapshot (or at index 1); may be empty.
    pub entries: Vec<Entry>,
    pub snapshot: Option<SnapshotMeta>,
    /// The snapshot's state-machine data, which the core sends to followers that need it.
    pub snapshot_data: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub term: u64,
    pub role: Role,
    pub leader: Option<NodeId>,
    pub commit: u64,
    pub last_index: u64,
    pub applied: u64,
    /// The last index the log was compacted to (0: never).
    pub snapshot_index: u64,
}
