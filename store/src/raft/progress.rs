//! The leader's view of each voter's replication: match/next indices, probe vs. pipelined
//! replication, and a bounded window of unacknowledged appends. The set of voters lives
//! here, as a set, so membership changes only need to change it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::entry::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationMode {
    /// The leader does not know where the follower's log matches: one append at a time,
    /// waiting for its answer (or a heartbeat answer) before the next.
    Probe,
    /// The follower's log matches up to `match_index`: appends are pipelined, bounded by
    /// the inflight window.
    Replicate,
    /// The follower needs entries the leader compacted away: a snapshot at
    /// `pending_snapshot` was sent; nothing more until it is acknowledged or times out.
    Snapshot,
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: u64,
    pub(crate) next_index: u64,
    pub(crate) mode: ReplicationMode,
    /// In probe mode: an append is outstanding.
    probe_sent: bool,
    /// Last indices of appends sent in replicate mode and not yet acknowledged.
    inflight: VecDeque<u64>,
    max_inflight: usize,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// In snapshot mode: the index of the snapshot sent, and leader ticks since.
    pending_snapshot: u64,
    snapshot_elapsed_ticks: u64,
}

impl Progress {
    fn new(next_index: u64, max_inflight: usize) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            mode: ReplicationMode::Probe,
            probe_sent: false,
            inflight: VecDeque::with_capacity(max_inflight.min(64)),
            max_inflight,
            recent_active: false,
            pending_snapshot: 0,
            snapshot_elapsed_ticks: 0,
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        match self.mode {
            ReplicationMode::Probe => self.probe_sent,
            ReplicationMode::Replicate => self.inflight.len() >= self.max_inflight,
            ReplicationMode::Snapshot => true,
        }
    }

    /// Records an append just sent whose last entry is `last_index`.
    pub(crate) fn sent_append(&mut self, last_index: Option<u64>) {
        match self.mode {
            ReplicationMode::Probe => self.probe_sent = true,
            ReplicationMode::Snapshot => {}
            ReplicationMode::Replicate => {
                if let Some(last) = last_index {
                    debug_assert!(self.inflight.len() < self.max_inflight);
                    self.next_index = last + 1;
                    self.inflight.push_back(last);
                }
            }
        }
    }

    /// An acknowledgement that the follower matches up to `index`. Returns whether it
    /// carried news (a stale, reordered acknowledgement does not).
    pub(crate) fn maybe_update(&mut self, index: u64) -> bool {
        let updated = index > self.match_index;
        if updated {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// A rejection of the append after `rejected`; `hint_next` is where the hint says to
    /// probe. Returns false for a stale rejection.
    pub(crate) fn maybe_decrease_to(&mut self, rejected: u64, hint_next: u64) -> bool {
        // A rejection at or below the match index is stale (or, after a follower lost
        // data it had acknowledged, unrepairable by probing).
        if rejected <= self.match_index || self.mode == ReplicationMode::Snapshot {
            return false;
        }
        if self.mode == ReplicationMode::Probe && self.next_index != rejected + 1 {
            return false;
        }
        // Never below what is known to match, never above the rejected probe.
        self.next_index = hint_next.min(rejected).max(self.match_index + 1);
        self.become_probe();
        true
    }

    pub(crate) fn become_probe(&mut self) {
        self.mode = ReplicationMode::Probe;
        self.next_index = self.next_index.max(self.match_index + 1);
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// A snapshot at `index` was just sent.
    pub(crate) fn become_snapshot(&mut self, index: u64) {
        self.mode = ReplicationMode::Snapshot;
        self.pending_snapshot = index;
        self.snapshot_elapsed_ticks = 0;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// Whether an acknowledgement up to the match index ends snapshot mode: the follower
    /// has installed the snapshot (or otherwise holds everything it covers).
    pub(crate) fn snapshot_done(&self) -> bool {
        self.mode == ReplicationMode::Snapshot && self.match_index >= self.pending_snapshot
    }

    /// One leader tick in snapshot mode; after `timeout_ticks` without an acknowledgement
    /// the snapshot is presumed lost and probing starts over (which sends it again). etcd
    /// leaves this to the driver's `ReportSnapshot`; here the core bounds the wait itself.
    pub(crate) fn tick_snapshot(&mut self, timeout_ticks: u64) {
        if self.mode != ReplicationMode::Snapshot {
            return;
        }
        self.snapshot_elapsed_ticks += 1;
        if self.snapshot_elapsed_ticks >= timeout_ticks {
            self.become_probe();
        }
    }

    pub(crate) fn become_replicate(&mut self) {
        self.mode = ReplicationMode::Replicate;
        self.next_index = self.match_index + 1;
        self.probe_sent = false;
        self.inflight.clear();
    }

    /// A heartbeat answer proves the follower is reachable: resume a paused probe, and let
    /// one more append through a full window (the acknowledgements may have been lost).
    pub(crate) fn resume(&mut self) {
        self.probe_sent = false;
        if self.inflight.len() >= self.max_inflight {
            self.inflight.pop_front();
        }
    }
}

/// The voters and, on a leader, their replication progress.
#[derive(Clone, Debug)]
pub(crate) struct ProgressTracker {
    voters: BTreeSet<NodeId>,
    progress: BTreeMap<NodeId, Progress>,
    max_inflight: usize,
}

impl ProgressTracker {
    pub(crate) fn new(voters: impl IntoIterator<Item = NodeId>, max_inflight: usize) -> Self {
        // Empty for a node that joins an existing cluster until it learns the configuration.
        let voters: BTreeSet<NodeId> = voters.into_iter().collect();
        ProgressTracker { voters, progress: BTreeMap::new(), max_inflight }
    }

    pub(crate) fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    pub(crate) fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Adopts a new configuration. On a leader (which tracks progress), a new voter starts
    /// probing at `next_index`, and a removed one's progress is dropped.
    pub(crate) fn set_voters(&mut self, voters: impl IntoIterator<Item = NodeId>, next_index: u64) {
        self.voters = voters.into_iter().collect();
        if self.progress.is_empty() {
            return;
        }
        let max_inflight = self.max_inflight;
        self.progress.retain(|id, _| self.voters.contains(id));
        for &id in &self.voters {
            self.progress.entry(id).or_insert_with(|| Progress::new(next_index, max_inflight));
        }
    }

    /// Drops all progress (the node is no longer a leader).
    pub(crate) fn clear_progress(&mut self) {
        self.progress.clear();
    }

    pub(crate) fn tick_snapshots(&mut self, timeout_ticks: u64) {
        for progress in self.progress.values_mut() {
            progress.tick_snapshot(timeout_ticks);
        }
    }

    /// Resets every voter's progress for a new leader whose log ends at `last_index`.
    pub(crate) fn reset(&mut self, last_index: u64) {
        let max_inflight = self.max_inflight;
        self.progress = self.voters.iter().map(|&id| (id, Progress::new(last_index + 1, max_inflight))).collect();
    }

    pub(crate) fn get_mut(&mut self, id: NodeId) -> Option<&mut Progress> {
        self.progress.get_mut(&id)
    }

    pub(crate) fn get(&self, id: NodeId) -> Option<&Progress> {
        self.progress.get(&id)
    }

    /// The highest index stored on a quorum of voters.
    pub(crate) fn quorum_match_index(&self) -> u64 {
        let mut matched: Vec<u64> =
            self.voters.iter().map(|id| self.progress.get(id).map_or(0, |p| p.match_index)).collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        matched.get(self.quorum() - 1).copied().unwrap_or(0)
    }

    /// Whether a quorum (counting `self_id`) was active since the last call; clears the
    /// activity marks for the next round (check-quorum, thesis §6.2).
    pub(crate) fn quorum_recently_active(&mut self, self_id: NodeId) -> bool {
        let mut n_active = 0;
        for (&id, progress) in self.progress.iter_mut() {
            if id == self_id || progress.recent_active {
                n_active += 1;
            }
            progress.recent_active = false;
        }
        n_active >= self.quorum()
    }

    /// Counts votes: Some(true) when a quorum granted, Some(false) when a quorum rejected.
    pub(crate) fn tally(&self, votes: &BTreeMap<NodeId, bool>) -> Option<bool> {
        let granted = self.voters.iter().filter(|id| votes.get(id) == Some(&true)).count();
        let rejected = self.voters.iter().filter(|id| votes.get(id) == Some(&false)).count();
        if granted >= self.quorum() {
            Some(true)
        } else if rejected >= self.quorum() {
            Some(false)
        } else {
            None
        }
    }
}
