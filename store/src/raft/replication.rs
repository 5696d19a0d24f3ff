//! Log replication (§5.3) and the commitment rule (§5.4.2): the leader's appends and
//! heartbeats, the follower's consistency check with a reject hint for fast backtracking,
//! and the leader's bookkeeping of acknowledgements.

use bytes::Bytes;

use super::entry::{ConfChangeEntry, Entry, EntryKind, NodeId, SnapshotMeta};
use super::message::{MessageBody, RejectHint};
use super::node::Raft;
use super::progress::ReplicationMode;

impl Raft {
    /// Appends a new entry of the current term to the leader's own log. The leader counts
    /// it as stored by itself right away (see `Ready` for why that is safe).
    pub(super) fn append_entry(&mut self, kind: EntryKind, data: Bytes) -> u64 {
        let index = self.log.last_index() + 1;
        self.log.append(Entry { term: self.term, index, kind, data });
        if let Some(progress) = self.tracker.get_mut(self.id) {
            progress.maybe_update(index);
        }
        self.maybe_commit();
        index
    }

    pub(super) fn broadcast_append(&mut self) {
        for peer in self.peers() {
            self.send_append(peer, true);
        }
    }

    /// Sends `to` the entries from its next index (at most `max_entries_per_append`), unless
    /// its progress is paused. An empty append (only to carry the commit index, or to
    /// provoke a rejection that restarts probing) is sent only if `allow_empty`.
    pub(super) fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        if self.role != super::ready::Role::Leader {
            return false;
        }
        let Some(progress) = self.tracker.get(to) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let next_index = progress.next_index;
        let prev_log_index = next_index - 1;
        let Some(prev_log_term) = self.log.term(prev_log_index) else {
            // The follower needs entries compacted away (§7).
            return self.send_snapshot(to);
        };
        let max_entries = self.config.max_entries_per_append as u64;
        let entries = self.log.slice(next_index, next_index + max_entries);
        if entries.is_empty() && !allow_empty {
            return false;
        }
        let last_sent = entries.last().map(|e| e.index);
        if !entries.is_empty() && prev_log_index < self.snapshot_meta.index {
            // Entries the snapshot covers, kept after it for slow followers (etcd's
            // `SnapshotCatchUpEntries`): the follower catches up without a snapshot.
            coverage::reached!("store.raft.catch-up-from-kept-entries");
        }
        let commit = self.log.commit_index();
        if let Some(progress) = self.tracker.get_mut(to) {
            progress.sent_append(last_sent);
        }
        self.send(to, MessageBody::Append { prev_log_index, prev_log_term, entries, commit });
        true
    }

    fn send_snapshot(&mut self, to: NodeId) -> bool {
        let meta = self.snapshot_meta.clone();
        assert!(meta.index > 0, "entries are compacted only under a snapshot");
        if let Some(progress) = self.tracker.get_mut(to) {
            progress.become_snapshot(meta.index);
        }
        tracing::info!(id = self.id, to, index = meta.index, "sending a snapshot");
        coverage::reached!("store.raft.snapshot-sent");
        let data = self.snapshot_data.clone();
        self.send(to, MessageBody::Snapshot { meta, data });
        true
    }

    /// Raises the commit index and adopts each newly committed configuration (membership
    /// changes take effect on commit). A leader that committed its own removal steps down
    /// (thesis §4.2.2); one whose quorum shrank may commit more at once.
    pub(super) fn commit_to(&mut self, index: u64) -> bool {
        let previous = self.log.commit_index();
        if !self.log.commit_to(index) {
            return false;
        }
        let conf_entries = self.log.conf_entries(previous + 1, index);
        for entry in &conf_entries {
            self.apply_conf_entry(entry);
        }
        if !conf_entries.is_empty() && self.role == super::ready::Role::Leader {
            if self.maybe_commit() {
                self.broadcast_append();
            }
            self.release_confirmed_reads();
        }
        true
    }

    fn apply_conf_entry(&mut self, entry: &Entry) {
        let Some(conf) = ConfChangeEntry::decode(&entry.data) else {
            tracing::error!(id = self.id, index = entry.index, "undecodable configuration entry; ignored");
            return;
        };
        tracing::info!(id = self.id, index = entry.index, change = ?conf.change, voters = ?conf.voters, "configuration committed");
        let next_index = self.log.last_index() + 1;
        self.tracker.set_voters(conf.voters.iter().copied(), next_index);
        if self.role == super::ready::Role::Leader && !self.tracker.voters().contains(&self.id) {
            tracing::info!(id = self.id, term = self.term, "leader removed from the configuration, stepping down");
            coverage::reached!("store.raft.removed-leader-step-down");
            self.become_follower(self.term, None);
        }
    }

    /// Follower side of InstallSnapshot (§7).
    pub(super) fn handle_snapshot(&mut self, from: NodeId, meta: SnapshotMeta, data: bytes::Bytes) {
        let commit_index = self.log.commit_index();
        if meta.index <= commit_index {
            // Already holds everything it covers.
            self.respond_append(from, commit_index);
            return;
        }
        if self.log.matches(meta.index, meta.term) {
            // The log holds the snapshot's last entry: keep the log, just commit (etcd's
            // fast-forward in `restore`).
            coverage::reached!("store.raft.snapshot-fast-forward");
            self.commit_to(meta.index);
            self.respond_append(from, meta.index);
            return;
        }
        tracing::info!(id = self.id, from, index = meta.index, term = meta.term, "installing a snapshot");
        coverage::reached!("store.raft.snapshot-installed");
        self.log.install_snapshot(&meta);
        self.tracker.set_voters(meta.voters.iter().copied(), meta.index + 1);
        self.snapshot_meta = meta.clone();
        self.snapshot_data = data.clone();
        self.received_snapshot = Some((meta.clone(), data));
        self.respond_append(from, meta.index);
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        let read_seq = self.read_only.latest_seq();
        for peer in self.peers() {
            // Never tell a follower to commit beyond what it is known to store.
            let matched = self.tracker.get(peer).map_or(0, |p| p.match_index);
            let commit = matched.min(self.log.commit_index());
            self.send(peer, MessageBody::Heartbeat { commit, read_seq });
        }
    }

    /// §5.4.2: commit the highest index stored on a quorum, but only if its entry is of the
    /// current term (earlier entries then commit with it, by log matching).
    pub(super) fn maybe_commit(&mut self) -> bool {
        let quorum_index = self.tracker.quorum_match_index();
        if quorum_index <= self.log.commit_index() {
            return false;
        }
        let of_current_term = self.log.term(quorum_index) == Some(self.term);
        if !of_current_term && !self.config.planted_bugs.commit_previous_term_by_counting {
            return false;
        }
        if !of_current_term {
            // PLANTED BUG (`commit_previous_term_by_counting`) at work.
            tracing::debug!(
                id = self.id,
                term = self.term,
                index = quorum_index,
                "committing a previous-term entry by counting"
            );
        }
        self.commit_to(quorum_index);
        if self.committed_in_current_term() {
            self.start_waiting_reads();
        }
        true
    }

    pub(super) fn committed_in_current_term(&self) -> bool {
        self.log.term(self.log.commit_index()) == Some(self.term)
    }

    /// Follower side of AppendEntries (§5.3).
    pub(super) fn handle_append(&mut self, from: NodeId, body: MessageBody) {
        let MessageBody::Append { prev_log_index, prev_log_term, entries, commit } = body else {
            return;
        };
        let contiguous = entries.iter().zip(prev_log_index + 1..).all(|(e, i)| e.index == i);
        if !contiguous {
            tracing::warn!(id = self.id, from, "ignoring an append with non-contiguous entries");
            return;
        }
        assert_ne!(self.role, super::ready::Role::Leader, "a leader never rewrites its own log");
        let commit_index = self.log.commit_index();
        if prev_log_index < commit_index {
            // Everything up to our commit index matches any legitimate leader's log.
            self.respond_append(from, commit_index);
            return;
        }
        if !self.log.matches(prev_log_index, prev_log_term) {
            self.reject_append(from, prev_log_index);
            return;
        }
        let last_new_index = prev_log_index + entries.len() as u64;
        if let Some(conflict) = self.log.find_conflict(&entries) {
            debug_assert!(conflict > commit_index, "checked above: prev_log_index >= commit");
            let start = (conflict - prev_log_index - 1) as usize;
            if conflict <= self.log.last_index() {
                coverage::reached!("store.raft.conflicting-suffix-truncated");
            }
            self.log.truncate_and_append(&entries[start..]);
        }
        self.commit_to(commit.min(last_new_index));
        self.respond_append(from, last_new_index);
    }

    pub(super) fn respond_append(&mut self, to: NodeId, index: u64) {
        self.send(to, MessageBody::AppendResponse { reject: false, index, reject_hint: None });
    }

    fn reject_append(&mut self, to: NodeId, prev_log_index: u64) {
        if prev_log_index <= self.log.commit_index() {
            // The leader's entry at our committed index differs from ours: a committed
            // entry was lost (Leader Completeness, §5.4). Only a planted bug may get here.
            tracing::error!(
                id = self.id,
                leader = to,
                index = prev_log_index,
                "leader log conflicts with a committed entry"
            );
            assert!(
                self.config.planted_bugs.any(),
                "raft safety violated on node {}: leader {to} conflicts with committed entry {prev_log_index}",
                self.id
            );
        }
        let reject_hint = if prev_log_index > self.log.last_index() {
            RejectHint { conflict_term: None, conflict_index: self.log.last_index() + 1 }
        } else {
            let (term, first_index) = self.log.first_index_of_term_at(prev_log_index);
            RejectHint { conflict_term: Some(term), conflict_index: first_index }
        };
        let body = MessageBody::AppendResponse { reject: true, index: prev_log_index, reject_hint: Some(reject_hint) };
        self.send(to, body);
    }

    /// Leader side of an AppendEntries answer.
    pub(super) fn handle_append_response(&mut self, from: NodeId, body: MessageBody) {
        let MessageBody::AppendResponse { reject, index, reject_hint } = body else {
            return;
        };
        let hint_next = self.next_index_from_hint(index, reject_hint);
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.recent_active = true;
        if reject {
            coverage::reached!("store.raft.append-rejected");
            if progress.maybe_decrease_to(index, hint_next) {
                self.send_append(from, true);
            }
            return;
        }
        if index > self.log.last_index() {
            tracing::warn!(id = self.id, from, index, "ignoring an acknowledgement beyond our log");
            return;
        }
        let was_paused = progress.is_paused();
        if progress.maybe_update(index) {
            if progress.mode == ReplicationMode::Probe || progress.snapshot_done() {
                progress.become_replicate();
            }
            if self.maybe_commit() {
                self.broadcast_append();
            } else if was_paused {
                // It was skipped by earlier broadcasts, so it may lack the commit index.
                self.send_append(from, true);
            }
        }
        // Keep the pipeline full (bounded by the inflight window).
        while self.send_append(from, false) {}
    }

    /// Where to probe next after a rejection of the append after `rejected`.
    fn next_index_from_hint(&self, rejected: u64, hint: Option<RejectHint>) -> u64 {
        match hint {
            None => rejected,
            Some(RejectHint { conflict_term: None, conflict_index }) => conflict_index,
            Some(RejectHint { conflict_term: Some(term), conflict_index }) => {
                // If we hold entries of the follower's conflicting term, they match the
                // follower's up to our last one; otherwise skip the follower's whole term.
                let (index, found_term) = self.log.last_index_with_term_at_most(rejected, term);
                if found_term == term {
                    index + 1
                } else {
                    conflict_index
                }
            }
        }
    }

    /// Follower side of a heartbeat: the leader is alive; learn its commit index.
    pub(super) fn handle_heartbeat(&mut self, from: NodeId, commit: u64, read_seq: u64) {
        if commit > self.log.last_index() {
            tracing::warn!(id = self.id, from, commit, "heartbeat commit beyond our log; ignored");
        } else {
            self.commit_to(commit);
        }
        self.send(from, MessageBody::HeartbeatResponse { read_seq });
    }

    pub(super) fn handle_heartbeat_response(&mut self, from: NodeId, read_seq: u64) {
        let last_index = self.log.last_index();
        let Some(progress) = self.tracker.get_mut(from) else {
            return;
        };
        progress.recent_active = true;
        progress.resume();
        if progress.match_index < last_index {
            self.send_append(from, true);
        }
        self.read_only.ack(from, read_seq);
        self.release_confirmed_reads();
    }
}
