//! The in-memory Raft log: the entries after an offset (the snapshot's last index, or 0),
//! which of them the driver has been handed to persist, the commit index and how far
//! committed entries have been handed out for applying.
//!
//! The offset makes log compaction a matter of moving `offset_index`/`offset_term` forward
//! and dropping a prefix of `entries`; every lookup already goes through it.

use super::entry::{Entry, SnapshotMeta};
use super::errors::RaftError;

#[derive(Clone, Debug)]
pub(crate) struct RaftLog {
    /// Index and term of the entry just before `entries[0]`: 0/0 for a log that starts at
    /// index 1, the snapshot's last index/term once a prefix has been compacted away.
    offset_index: u64,
    offset_term: u64,
    /// Entries `offset_index + 1 ..= last_index()`, contiguous.
    entries: Vec<Entry>,
    /// Entries up to this index have been handed to the driver in `Ready::entries` (and so
    /// are durable before anything that depends on them leaves the node). Entries above it
    /// are "unstable".
    stable_index: u64,
    /// Highest index known to be committed (Raft's commitIndex).
    commit_index: u64,
    /// Highest index handed out in `Ready::committed_entries`.
    emitted_index: u64,
    /// Highest index the driver reported as applied.
    applied_index: u64,
}

impl RaftLog {
    /// Rebuilds the log from durable state, validating it (restored state is input, so a
    /// malformed one is an error rather than a panic).
    pub(crate) fn restore(
        snapshot: Option<&SnapshotMeta>,
        entries: Vec<Entry>,
        commit_index: u64,
    ) -> Result<RaftLog, RaftError> {
        let (offset_index, offset_term) = snapshot.map_or((0, 0), |s| (s.index, s.term));
        let mut previous = (offset_index, offset_term);
        for entry in &entries {
            if entry.index != previous.0 + 1 {
                return Err(RaftError::NonContiguousLog { previous: previous.0, found: entry.index });
            }
            if entry.term < previous.1 {
                return Err(RaftError::TermsDecrease { index: entry.index });
            }
            previous = (entry.index, entry.term);
        }
        let last_index = previous.0;
        if commit_index > last_index {
            return Err(RaftError::CommitBeyondLastIndex { commit: commit_index, last_index });
        }
        // The snapshot's state is committed by definition, whatever the hard state says.
        let commit_index = commit_index.max(offset_index);
        Ok(RaftLog {
            offset_index,
            offset_term,
            entries,
            stable_index: last_index,
            commit_index,
            // The driver rebuilds its state machine from the snapshot and re-applies the
            // committed suffix of the log after a restart.
            emitted_index: offset_index,
            applied_index: offset_index,
        })
    }

    pub(crate) fn first_index(&self) -> u64 {
        self.offset_index + 1
    }

    pub(crate) fn last_index(&self) -> u64 {
        self.offset_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.offset_term, |e| e.term)
    }

    pub(crate) fn commit_index(&self) -> u64 {
        self.commit_index
    }

    pub(crate) fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// The term of the entry at `index`, or None if it is compacted or beyond the log.
    pub(crate) fn term(&self, index: u64) -> Option<u64> {
        if index == self.offset_index {
            return Some(self.offset_term);
        }
        self.entry(index).map(|e| e.term)
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.offset_index {
            return None;
        }
        self.entries.get((index - self.offset_index - 1) as usize)
    }

    pub(crate) fn matches(&self, index: u64, term: u64) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours if its last term is
    /// higher, or equal with a last index at least ours.
    pub(crate) fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// Entries `low..high` (clamped to the log), cloned for a message.
    pub(crate) fn slice(&self, low: u64, high: u64) -> Vec<Entry> {
        let low = low.max(self.first_index());
        let high = high.min(self.last_index() + 1);
        if low >= high {
            return Vec::new();
        }
        let start = (low - self.offset_index - 1) as usize;
        let end = (high - self.offset_index - 1) as usize;
        self.entries[start..end].to_vec()
    }

    /// Appends entries that directly follow the last one (the leader's own proposals).
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "leader log append must be contiguous");
        assert!(entry.term >= self.last_term(), "log terms must not decrease");
        self.entries.push(entry);
    }

    /// The index of the first of `entries` that is not already in the log with the same
    /// term (a conflict or a new entry), or None if all of them are already present.
    pub(crate) fn find_conflict(&self, entries: &[Entry]) -> Option<u64> {
        entries.iter().find(|e| !self.matches(e.index, e.term)).map(|e| e.index)
    }

    /// Replaces the log from `entries[0].index` on with `entries` (a follower adopting the
    /// leader's log, §5.3). Truncated entries that had been handed out as stable become
    /// unstable again, so the next Ready tells the driver to truncate its durable log.
    pub(crate) fn truncate_and_append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(first.index > self.offset_index, "cannot rewrite a compacted entry");
        assert!(first.index <= self.last_index() + 1, "appended entries must not leave a gap");
        self.entries.truncate((first.index - self.offset_index - 1) as usize);
        self.stable_index = self.stable_index.min(first.index - 1);
        for entry in entries {
            assert!(entry.term >= self.last_term(), "log terms must not decrease");
            self.entries.push(entry.clone());
        }
    }

    /// For a rejected append at `index`: the first index of the term our log has at
    /// `index`, so the leader can skip the whole conflicting term at once (§5.3's
    /// optimization). Never earlier than our first index.
    pub(crate) fn first_index_of_term_at(&self, index: u64) -> (u64, u64) {
        let term = self.term(index).unwrap_or(self.offset_term);
        let mut first = index;
        while first > self.first_index() && self.term(first - 1) == Some(term) {
            first -= 1;
        }
        (term, first)
    }

    /// The largest index at or below `index` whose term is at most `term` (etcd's
    /// `findConflictByTerm`), used by the leader to place a rejected follower's next index.
    pub(crate) fn last_index_with_term_at_most(&self, index: u64, term: u64) -> (u64, u64) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(t) if t <= term => return (index, t),
                Some(_) if index > self.offset_index => index -= 1,
                _ => return (self.offset_index, self.offset_term),
            }
        }
    }

    /// Raises the commit index; it never decreases and never passes the last index.
    pub(crate) fn commit_to(&mut self, index: u64) -> bool {
        if index <= self.commit_index {
            return false;
        }
        assert!(index <= self.last_index(), "commit index {index} beyond last index {}", self.last_index());
        self.commit_index = index;
        true
    }

    pub(crate) fn has_unstable(&self) -> bool {
        self.stable_index < self.last_index()
    }

    pub(crate) fn has_unemitted_committed(&self) -> bool {
        self.emitted_index < self.commit_index
    }

    /// Hands out the entries the driver has not yet been asked to persist.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        let entries = self.slice(self.stable_index + 1, self.last_index() + 1);
        self.stable_index = self.last_index();
        entries
    }

    /// Hands out committed entries not yet handed out. They may include entries from the
    /// same Ready's `entries`: the driver persists those before applying.
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        let entries = self.slice(self.emitted_index + 1, self.commit_index + 1);
        self.emitted_index = self.commit_index;
        entries
    }

    pub(crate) fn set_applied(&mut self, index: u64) {
        assert!(
            index <= self.emitted_index,
            "applied index {index} beyond the committed entries handed out ({})",
            self.emitted_index
        );
        self.applied_index = self.applied_index.max(index);
    }

    pub(crate) fn offset_index(&self) -> u64 {
        self.offset_index
    }

    /// Committed configuration entries in `low..=high`.
    pub(crate) fn conf_entries(&self, low: u64, high: u64) -> Vec<Entry> {
        let low = low.max(self.first_index());
        let high = high.min(self.last_index());
        (low..=high)
            .filter_map(|index| self.entry(index))
            .filter(|e| e.kind == super::entry::EntryKind::ConfChange)
            .cloned()
            .collect()
    }

    /// Drops the entries up to `index` (which the driver has applied and snapshotted): the
    /// log then starts after it (§7).
    pub(crate) fn compact(&mut self, index: u64) -> Result<(), RaftError> {
        if index <= self.offset_index || index > self.applied_index {
            return Err(RaftError::CompactionOutOfRange {
                index,
                snapshot_index: self.offset_index,
                applied_index: self.applied_index,
            });
        }
        let term = self.term(index).expect("an applied entry above the offset is in the log");
        self.entries.drain(..(index - self.offset_index) as usize);
        self.offset_index = index;
        self.offset_term = term;
        Ok(())
    }

    /// Replaces the whole log with a snapshot from the leader (§7: the follower's log does
    /// not hold the snapshot's last entry, so every entry it has is discarded). Everything
    /// the snapshot covers counts as committed, applied and durable (the driver persists
    /// and loads the snapshot before anything else in the same Ready).
    pub(crate) fn install_snapshot(&mut self, meta: &SnapshotMeta) {
        assert!(meta.index > self.commit_index, "a snapshot below the commit index is never installed");
        self.offset_index = meta.index;
        self.offset_term = meta.term;
        self.entries.clear();
        self.stable_index = meta.index;
        self.commit_index = meta.index;
        self.emitted_index = meta.index;
        self.applied_index = meta.index;
    }
}
