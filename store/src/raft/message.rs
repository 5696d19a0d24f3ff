//! The messages Raft peers exchange. Every message carries the sender's term (for a
//! pre-vote request and a granted pre-vote response, the term the pre-candidate would
//! campaign in), so that any message can make its receiver adopt a newer term (§5.1).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::entry::{Entry, NodeId, SnapshotMeta};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    pub body: MessageBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Thesis §9.6: would you vote for me in `term` (the message term)? Grants change no
    /// state on either side.
    PreVote {
        last_log_index: u64,
        last_log_term: u64,
    },
    PreVoteResponse {
        reject: bool,
    },
    /// §5.2 RequestVote.
    Vote {
        last_log_index: u64,
        last_log_term: u64,
    },
    VoteResponse {
        reject: bool,
    },
    /// §5.3 AppendEntries: `entries` follow the entry `prev_log_index`/`prev_log_term`.
    Append {
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// On success `index` is the follower's last index known to match the leader's log.
    /// On rejection `index` is the rejected `prev_log_index` and `reject_hint` says where
    /// the leader should probe next.
    AppendResponse {
        reject: bool,
        index: u64,
        reject_hint: Option<RejectHint>,
    },
    /// Leadership assertion and commit propagation. `commit` is at most what the leader
    /// knows the follower stores. `read_seq` is the leader's latest read-index round, for
    /// the follower to echo (0: none).
    Heartbeat {
        commit: u64,
        read_seq: u64,
    },
    HeartbeatResponse {
        read_seq: u64,
    },
    /// A follower forwards a client's linearizable read to the leader (thesis §6.4).
    ReadIndex {
        request_ctx: u64,
    },
    /// The leader's answer: serve the read once applied index >= `index`.
    ReadIndexResponse {
        request_ctx: u64,
        index: u64,
    },
    /// §7 InstallSnapshot: the leader's snapshot, for a follower that needs entries the
    /// leader has compacted away. Sent whole (the simulator does not fragment it). The
    /// follower answers with an `AppendResponse` at the snapshot's index.
    Snapshot {
        meta: SnapshotMeta,
        data: Bytes,
    },
}

/// Where a follower's log diverges, so the leader can skip a whole conflicting term per
/// round trip instead of one entry (§5.3, "the protocol can be optimized").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectHint {
    /// The term of the follower's entry at the rejected index; None if the follower's log
    /// is shorter than that index.
    pub conflict_term: Option<u64>,
    /// The first index of `conflict_term` in the follower's log, or the follower's last
    /// index + 1 if `conflict_term` is None.
    pub conflict_index: u64,
}

impl MessageBody {
    pub(crate) fn is_vote_request(&self) -> bool {
        matches!(self, MessageBody::PreVote { .. } | MessageBody::Vote { .. })
    }

    /// Messages only a leader of the message's term sends.
    pub(crate) fn is_from_leader(&self) -> bool {
        matches!(self, MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::Snapshot { .. })
    }
}
