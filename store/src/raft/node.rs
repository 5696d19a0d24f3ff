//! The Raft state machine of one node and its public, sans-IO API: inputs are `tick`,
//! `step`, `propose`, `read_index` and `advance_applied`; outputs come out of `ready`.
//! Election lives in `election.rs`, replication in `replication.rs`, message dispatch in
//! `step.rs`; this file holds the state and the entry points.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::config::Config;
use super::entry::{EntryKind, HardState, NodeId};
use super::errors::{ProposeError, RaftError};
use super::log::RaftLog;
use super::message::{Message, MessageBody};
use super::progress::ProgressTracker;
use super::read_only::ReadOnly;
use super::ready::{ReadState, Ready, RestoredState, Role, SoftState, Status};
use super::rng::SplitMix64;

/// Bound on read-index requests awaiting confirmation on a leader.
const MAX_PENDING_READS: usize = 4096;

#[derive(Clone, Debug)]
pub struct Raft {
    pub(super) id: NodeId,
    pub(super) config: Config,
    /// currentTerm (§5.1); never decreases.
    pub(super) term: u64,
    /// votedFor in `term`.
    pub(super) vote: Option<NodeId>,
    /// The leader of `term` as far as this node knows.
    pub(super) leader: Option<NodeId>,
    pub(super) role: Role,
    pub(super) log: RaftLog,
    pub(super) tracker: ProgressTracker,
    /// Votes (or pre-votes) received in the current campaign.
    pub(super) votes: BTreeMap<NodeId, bool>,
    /// Ticks since the last election-timer reset: since hearing from the leader, granting a
    /// vote, or starting a campaign; on a leader, since the last check-quorum round.
    pub(super) election_elapsed: u64,
    pub(super) heartbeat_elapsed: u64,
    /// In `[election_tick, 2 * election_tick)`, redrawn at each timer reset (§5.2).
    pub(super) randomized_election_timeout: u64,
    pub(super) rng: SplitMix64,
    pub(super) read_only: ReadOnly,
    pub(super) read_states: Vec<ReadState>,
    pub(super) messages: Vec<Message>,
    last_soft_state: SoftState,
    last_hard_state: HardState,
}

impl Raft {
    pub fn new(config: Config, restored: RestoredState, rng_seed: u64) -> Result<Raft, RaftError> {
        config.validate()?;
        let hard_state = restored.hard_state;
        if let Some(entry) = restored.entries.iter().find(|e| e.term > hard_state.term) {
            return Err(RaftError::EntryTermBeyondHardState {
                index: entry.index,
                entry_term: entry.term,
                hard_state_term: hard_state.term,
            });
        }
        let log = RaftLog::restore(restored.snapshot.as_ref(), restored.entries, hard_state.commit)?;
        let tracker = ProgressTracker::new(config.voters.iter().copied(), config.max_inflight_appends);
        let mut raft = Raft {
            id: config.id,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: None,
            role: Role::Follower,
            log,
            tracker,
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: config.election_tick,
            rng: SplitMix64::new(rng_seed),
            read_only: ReadOnly::new(MAX_PENDING_READS),
            read_states: Vec::new(),
            messages: Vec::new(),
            last_soft_state: SoftState { leader: None, role: Role::Follower, term: hard_state.term },
            last_hard_state: hard_state,
            config,
        };
        raft.randomize_election_timeout();
        Ok(raft)
    }

    /// One logical tick of time.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => self.tick_election(),
        }
    }

    /// Proposes `data` for the log; returns the index it will have if committed.
    pub fn propose(&mut self, data: Bytes) -> Result<u64, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        }
        let n_uncommitted = self.log.last_index() - self.log.commit_index();
        let limit = self.config.max_uncommitted_entries();
        if n_uncommitted >= limit {
            return Err(ProposeError::TooManyUncommitted { n_uncommitted, limit });
        }
        let index = self.append_entry(EntryKind::Normal, data);
        self.broadcast_append();
        Ok(index)
    }

    /// Starts a linearizable read (thesis §6.4). A `ReadState` with `request_ctx` appears
    /// in a later `Ready` once the leader has confirmed its leadership.
    pub fn read_index(&mut self, request_ctx: u64) -> Result<(), ProposeError> {
        if self.role == Role::Leader {
            return self.leader_read_index(self.id, request_ctx);
        }
        match self.leader {
            Some(leader) => {
                self.send(leader, MessageBody::ReadIndex { request_ctx });
                Ok(())
            }
            None => Err(ProposeError::NotLeader { leader_hint: None }),
        }
    }

    pub fn has_ready(&self) -> bool {
        self.soft_state() != self.last_soft_state
            || self.hard_state() != self.last_hard_state
            || self.log.has_unstable()
            || !self.messages.is_empty()
            || self.log.has_unemitted_committed()
            || !self.read_states.is_empty()
    }

    /// Drains everything pending; see [`Ready`] for what the driver must do with it.
    pub fn ready(&mut self) -> Ready {
        let soft_state = self.soft_state();
        let hard_state = self.hard_state();
        let ready = Ready {
            soft_state: (soft_state != self.last_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.last_hard_state).then_some(hard_state),
            entries: self.log.take_unstable(),
            messages: std::mem::take(&mut self.messages),
            committed_entries: self.log.take_committed(),
            read_states: std::mem::take(&mut self.read_states),
        };
        self.last_soft_state = soft_state;
        self.last_hard_state = hard_state;
        ready
    }

    /// The driver has applied every committed entry up to `index`.
    pub fn advance_applied(&mut self, index: u64) {
        self.log.set_applied(index);
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            term: self.term,
            role: self.role,
            leader: self.leader,
            commit: self.log.commit_index(),
            last_index: self.log.last_index(),
            applied: self.log.applied_index(),
        }
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub(super) fn soft_state(&self) -> SoftState {
        SoftState { leader: self.leader, role: self.role, term: self.term }
    }

    pub(super) fn hard_state(&self) -> HardState {
        HardState { term: self.term, vote: self.vote, commit: self.log.commit_index() }
    }

    pub(super) fn send(&mut self, to: NodeId, body: MessageBody) {
        let term = self.term;
        self.send_with_term(to, term, body);
    }

    pub(super) fn send_with_term(&mut self, to: NodeId, term: u64, body: MessageBody) {
        debug_assert_ne!(to, self.id, "a node never messages itself");
        self.messages.push(Message { from: self.id, to, term, body });
    }

    /// The other voters, in id order.
    pub(super) fn peers(&self) -> Vec<NodeId> {
        self.tracker.voters().iter().copied().filter(|&id| id != self.id).collect()
    }
}
