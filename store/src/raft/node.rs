//! The Raft state machine of one node and its public, sans-IO API: inputs are `tick`,
//! `step`, `propose`, `read_index` and `advance_applied`; outputs come out of `ready`.
//! Election lives in `election.rs`, replication in `replication.rs`, message dispatch in
//! `step.rs`; this file holds the state and the entry points.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::config::Config;
use super::entry::{ConfChange, ConfChangeEntry, EntryKind, HardState, NodeId, SnapshotMeta};
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
    /// The snapshot the log starts after (index 0: none, with the initial configuration),
    /// with its data, sent to followers that need compacted entries.
    pub(super) snapshot_meta: SnapshotMeta,
    pub(super) snapshot_data: Bytes,
    /// A snapshot received from the leader, for the next Ready.
    pub(super) received_snapshot: Option<(SnapshotMeta, Bytes)>,
    /// Index of the last membership change in the leader's log (0: none this term).
    pub(super) pending_conf_index: u64,
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
        let snapshot_meta =
            restored.snapshot.unwrap_or(SnapshotMeta { index: 0, term: 0, voters: config.voters.clone() });
        // The configuration is the snapshot's, changed by every committed configuration
        // entry after it (uncommitted ones take effect when they commit).
        let mut voters = snapshot_meta.voters.clone();
        for entry in log.conf_entries(snapshot_meta.index + 1, log.commit_index()) {
            if let Some(conf) = ConfChangeEntry::decode(&entry.data) {
                voters = conf.voters;
            }
        }
        let tracker = ProgressTracker::new(voters, config.max_inflight_appends);
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
            snapshot_meta,
            snapshot_data: restored.snapshot_data,
            received_snapshot: None,
            pending_conf_index: 0,
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

    /// Proposes a single-server membership change (thesis §4.1); returns the index its
    /// entry will have. It takes effect on every node when the entry commits. Refused while
    /// another change is uncommitted, before the leader has committed an entry of its own
    /// term, and when it would not change the configuration or would leave it empty.
    pub fn propose_conf_change(&mut self, change: ConfChange, context: Bytes) -> Result<u64, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { leader_hint: self.leader });
        }
        let commit_index = self.log.commit_index();
        if self.pending_conf_index > commit_index || !self.committed_in_current_term() {
            let pending_index = self.pending_conf_index.max(self.log.last_index());
            return Err(ProposeError::ConfChangePending { pending_index, commit_index });
        }
        let mut voters = self.tracker.voters().clone();
        let changed = match change {
            ConfChange::AddVoter(id) => voters.insert(id),
            ConfChange::RemoveVoter(id) => voters.remove(&id),
        };
        if !changed {
            return Err(ProposeError::InvalidConfChange {
                reason: format!("{change:?} does not change the voters {:?}", self.tracker.voters()),
            });
        }
        if voters.is_empty() {
            return Err(ProposeError::InvalidConfChange { reason: "cannot remove the last voter".into() });
        }
        let data = ConfChangeEntry { change, voters: voters.into_iter().collect(), context }.encode();
        let index = self.append_entry(EntryKind::ConfChange, data);
        self.pending_conf_index = index;
        self.broadcast_append();
        Ok(index)
    }

    /// Compacts the log up to `index`, which the driver has applied and saved as a
    /// snapshot with `data` (§7). The core keeps the data to send to followers that need
    /// the compacted entries.
    pub fn compact(&mut self, index: u64, data: Bytes) -> Result<SnapshotMeta, RaftError> {
        self.compact_keeping(index, data, 0)
    }

    /// As [`Raft::compact`], but the log keeps the last `keep_entries` entries the snapshot
    /// covers, so that a follower a little behind catches up from the log instead of a
    /// whole snapshot (etcd's `SnapshotCatchUpEntries`, 5 000: it compacts its raft
    /// storage to `snapshot index - SnapshotCatchUpEntries`, not to the snapshot's index).
    pub fn compact_keeping(&mut self, index: u64, data: Bytes, keep_entries: u64) -> Result<SnapshotMeta, RaftError> {
        if index <= self.snapshot_meta.index || index > self.log.applied_index() {
            return Err(RaftError::CompactionOutOfRange {
                index,
                snapshot_index: self.snapshot_meta.index,
                applied_index: self.log.applied_index(),
            });
        }
        let mut voters = self.snapshot_meta.voters.clone();
        for entry in self.log.conf_entries(self.snapshot_meta.index + 1, index) {
            if let Some(conf) = ConfChangeEntry::decode(&entry.data) {
                voters = conf.voters;
            }
        }
        let term = self.log.term(index).unwrap_or(0);
        let log_index = index.saturating_sub(keep_entries);
        if log_index > self.log.offset_index() {
            self.log.compact(log_index)?;
        }
        self.snapshot_meta = SnapshotMeta { index, term, voters };
        self.snapshot_data = data;
        Ok(self.snapshot_meta.clone())
    }

    /// The voters of the committed configuration, in id order.
    pub fn voters(&self) -> Vec<NodeId> {
        self.tracker.voters().iter().copied().collect()
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
            || self.received_snapshot.is_some()
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
            snapshot: self.received_snapshot.take(),
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
            snapshot_index: self.snapshot_meta.index,
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
