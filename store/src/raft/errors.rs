//! Typed errors of the Raft core: a malformed restored state or configuration
//! ([`RaftError`]) and refused client operations ([`ProposeError`]). Expected operational
//! failures are values, never panics.

use super::entry::NodeId;

/// The node cannot be built from this configuration or durable state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    #[error("invalid config: node {id} is not among the voters {voters:?}")]
    NotAVoter { id: NodeId, voters: Vec<NodeId> },
    #[error("invalid config: {reason}")]
    InvalidConfig { reason: String },
    #[error("restored log is not contiguous: entry {found} follows entry {previous}")]
    NonContiguousLog { previous: u64, found: u64 },
    #[error("restored log terms decrease at index {index}")]
    TermsDecrease { index: u64 },
    #[error("restored entry {index} has term {entry_term}, beyond the hard state's term {hard_state_term}")]
    EntryTermBeyondHardState { index: u64, entry_term: u64, hard_state_term: u64 },
    #[error("restored commit index {commit} is beyond the last log index {last_index}")]
    CommitBeyondLastIndex { commit: u64, last_index: u64 },
    /// Compaction must keep at least the applied index and cannot go backwards.
    #[error(
        "cannot compact the log to index {index}: only above the last snapshot ({snapshot_index}) \
         and up to the applied index ({applied_index})"
    )]
    CompactionOutOfRange { index: u64, snapshot_index: u64, applied_index: u64 },
}

/// A proposal or read the node refuses; the client should retry (elsewhere).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader accepts proposals and serves reads; `leader_hint` is the leader this
    /// node last heard from in its current term, if any.
    #[error("not the leader (leader hint: {leader_hint:?})")]
    NotLeader { leader_hint: Option<NodeId> },
    /// Backpressure: the leader's log already holds this many uncommitted entries.
    #[error("too many uncommitted entries ({n_uncommitted}, limit {limit})")]
    TooManyUncommitted { n_uncommitted: u64, limit: u64 },
    /// Backpressure: this many read-index requests await confirmation already.
    #[error("too many pending read-index requests (limit {limit})")]
    TooManyPendingReads { limit: usize },
    /// One membership change at a time (thesis §4.1), and only once the leader has
    /// committed an entry of its term (the fix to the single-server change bug Ongaro
    /// reported on raft-dev in 2015).
    #[error("a membership change is pending (index {pending_index}, commit {commit_index})")]
    ConfChangePending { pending_index: u64, commit_index: u64 },
    #[error("invalid membership change: {reason}")]
    InvalidConfChange { reason: String },
}
