//! Linearizable reads without writing the log (Raft thesis §6.4, "ReadIndex"): the leader
//! records its commit index as the read's index, then confirms it is still the leader by
//! a heartbeat round answered by a quorum. Only a leader that has committed an entry in
//! its own term knows that its commit index is at least every previously committed entry,
//! so requests arriving before that wait.
//!
//! Rounds are numbered by the leader (`seq`), not by the clients' contexts, so contexts
//! from different clients can never be confused. A quorum acknowledging round `s` confirms
//! every request registered at or before `s`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::entry::NodeId;

/// A read awaiting leadership confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReadRequest {
    pub(crate) requester: NodeId,
    pub(crate) request_ctx: u64,
    pub(crate) index: u64,
    seq: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct ReadOnly {
    /// The latest round number handed out in this leadership (0: none yet).
    latest_seq: u64,
    /// Requests registered with a read index, in round order.
    pending: VecDeque<ReadRequest>,
    /// Requests that arrived before this leader committed an entry of its term.
    waiting_for_commit: VecDeque<(NodeId, u64)>,
    /// The highest round each peer has acknowledged.
    acked_seq: BTreeMap<NodeId, u64>,
    limit: usize,
}

impl ReadOnly {
    pub(crate) fn new(limit: usize) -> ReadOnly {
        ReadOnly {
            latest_seq: 0,
            pending: VecDeque::new(),
            waiting_for_commit: VecDeque::new(),
            acked_seq: BTreeMap::new(),
            limit,
        }
    }

    /// Drops everything: requests do not survive a change of leadership (clients retry).
    pub(crate) fn reset(&mut self) {
        *self = ReadOnly::new(self.limit);
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn is_full(&self) -> bool {
        self.pending.len() + self.waiting_for_commit.len() >= self.limit
    }

    pub(crate) fn latest_seq(&self) -> u64 {
        self.latest_seq
    }

    pub(crate) fn wait_for_commit(&mut self, requester: NodeId, request_ctx: u64) {
        debug_assert!(!self.is_full());
        self.waiting_for_commit.push_back((requester, request_ctx));
    }

    pub(crate) fn take_waiting(&mut self) -> Vec<(NodeId, u64)> {
        self.waiting_for_commit.drain(..).collect()
    }

    /// Registers a read at `index` in a new round and returns the round number.
    pub(crate) fn add(&mut self, requester: NodeId, request_ctx: u64, index: u64) -> u64 {
        debug_assert!(self.pending.len() < self.limit);
        debug_assert!(self.pending.back().is_none_or(|r| r.index <= index));
        self.latest_seq += 1;
        let seq = self.latest_seq;
        self.pending.push_back(ReadRequest { requester, request_ctx, index, seq });
        seq
    }

    pub(crate) fn ack(&mut self, from: NodeId, seq: u64) {
        if seq == 0 || seq > self.latest_seq {
            return; // no round, or a round of an earlier leadership
        }
        let acked = self.acked_seq.entry(from).or_insert(0);
        *acked = (*acked).max(seq);
    }

    /// Releases the requests whose round a quorum of `voters` (the leader `self_id`
    /// acknowledging every round) has confirmed.
    pub(crate) fn release(&mut self, voters: &BTreeSet<NodeId>, self_id: NodeId, quorum: usize) -> Vec<ReadRequest> {
        if self.pending.is_empty() {
            // Most calls come with a heartbeat acknowledgement and find nothing waiting.
            return Vec::new();
        }
        let mut acked: Vec<u64> = voters
            .iter()
            .map(|&id| if id == self_id { self.latest_seq } else { self.acked_seq.get(&id).copied().unwrap_or(0) })
            .collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed_seq = acked[quorum - 1];
        let mut released = Vec::new();
        while self.pending.front().is_some_and(|r| r.seq <= confirmed_seq) {
            released.extend(self.pending.pop_front());
        }
        released
    }
}

impl super::node::Raft {
    /// A read on the leader, from itself or forwarded by `requester`.
    pub(super) fn leader_read_index(
        &mut self,
        requester: NodeId,
        request_ctx: u64,
    ) -> Result<(), super::errors::ProposeError> {
        if self.read_only.is_full() {
            return Err(super::errors::ProposeError::TooManyPendingReads { limit: self.read_only.limit() });
        }
        if !self.committed_in_current_term() {
            self.read_only.wait_for_commit(requester, request_ctx);
            return Ok(());
        }
        self.read_only.add(requester, request_ctx, self.log.commit_index());
        self.release_confirmed_reads(); // a single-voter group confirms on its own
        self.broadcast_heartbeat();
        Ok(())
    }

    /// The leader just committed its first entry of the term: the reads that waited for it
    /// start their confirmation round.
    pub(super) fn start_waiting_reads(&mut self) {
        let waiting = self.read_only.take_waiting();
        if waiting.is_empty() {
            return;
        }
        let commit_index = self.log.commit_index();
        for (requester, request_ctx) in waiting {
            self.read_only.add(requester, request_ctx, commit_index);
        }
        self.release_confirmed_reads();
        self.broadcast_heartbeat();
    }

    pub(super) fn release_confirmed_reads(&mut self) {
        let quorum = self.tracker.quorum();
        let released = self.read_only.release(self.tracker.voters(), self.id, quorum);
        for request in released {
            if request.requester == self.id {
                let read_state = super::ready::ReadState { request_ctx: request.request_ctx, index: request.index };
                self.read_states.push(read_state);
            } else {
                let body = super::message::MessageBody::ReadIndexResponse {
                    request_ctx: request.request_ctx,
                    index: request.index,
                };
                self.send(request.requester, body);
            }
        }
    }
}
