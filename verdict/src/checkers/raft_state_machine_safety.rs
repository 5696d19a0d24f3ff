//! [`Invariant::RaftStateMachineSafety`] (docs/design.md §4.2; Raft paper §5.4.3,
//! Figure 3): every member applies the same entry at the same index, in index order, with
//! no gaps, and ends up at the same store revision after it.
//!
//! What the history shows: an `Applied` record for each committed entry that carries a
//! proposal, and an `AppliedEmpty` one for each leader no-op and configuration entry
//! (proposal id 0, no events). A lost committed no-op is as much a violation as a lost
//! write: Raft's Figure 8 loses whatever the old leader's entry was, and in a run it is
//! often the no-op of a leader that died before replicating it. A member skips the indexes
//! a snapshot covers: one the leader sent (`SnapshotInstalled`) or its own, recovered at a
//! start (`SnapshotRecovered`). So the checker proves:
//! - agreement: for each index, every application (by any member, in any incarnation)
//!   carries the same term, proposal id, outcome, event count and resulting revision;
//! - order: within one incarnation of a member (between two `MemberStarted`), indexes
//!   strictly increase, and the revision moves by exactly 1 per entry that wrote events
//!   and stays put otherwise (etcd: a request that writes nothing leaves the revision);
//! - no gaps: an incarnation that applied up to index M applied every proposal index
//!   <= M that any member applied (an entry skipped by one member is a gap), except those
//!   a snapshot it installed or recovered covered;
//! - snapshots: a snapshot moves a member forward (its index is past every index the
//!   incarnation applied), and it stands at the revision every member reached at its index.
//! - replay: a restarted member rebuilds its state by re-applying its log after the latest
//!   snapshot it recovered (from index 1 without one), and what it re-applies at an index
//!   equals what it applied there before the restart.
//!
//! Cost: O(n log n) in the number of `Applied` records.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use store::api::{MemberId, Revision};

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::HistoryEvent;

/// What applying one index did, as compared across members and restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Application {
    term: u64,
    proposal_id: u64,
    revision: Revision,
    succeeded: bool,
    n_events: usize,
}

impl std::fmt::Display for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "proposal {} of term {} ({}, {} events, revision {})",
            self.proposal_id,
            self.term,
            if self.succeeded { "succeeded" } else { "failed" },
            self.n_events,
            self.revision
        )
    }
}

/// One run of a member's process, from its `MemberStarted` to the next.
#[derive(Default)]
struct Incarnation {
    member: MemberId,
    /// (index, revision, at_ns) of each application, in history order.
    applied: Vec<(u64, Revision, u64)>,
    /// (position in `applied`, index): from that application on, the member's state holds
    /// every index up to `index` through a snapshot (installed or recovered).
    snapshots: Vec<(usize, u64)>,
    /// The index and revision the member's state stands at: its last application or
    /// snapshot.
    position: Option<(u64, Revision)>,
    /// Set once indexes went backwards; the gap check is skipped (already a violation).
    out_of_order: bool,
}

/// A snapshot a member installed or recovered, checked against the applications at its
/// index once the whole history is read.
struct SnapshotClaim {
    member: MemberId,
    index: u64,
    revision: Revision,
    at_ns: u64,
}

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut reading = Reading::new();
    for (at_ns, event) in input.history.events() {
        match event {
            HistoryEvent::MemberStarted { member, .. } => reading.member_started(*member),
            HistoryEvent::SnapshotInstalled { member, index, revision }
            | HistoryEvent::SnapshotRecovered { member, index, revision } => {
                reading.snapshot_taken(SnapshotClaim { member: *member, index: *index, revision: *revision, at_ns })
            }
            _ => {
                if let Some((member, index, application)) = application_of(event) {
                    reading.applied(at_ns, member, index, application);
                }
            }
        }
    }
    reading.finish()
}

/// The member, index and application an `Applied` or `AppliedEmpty` record reports.
fn application_of(event: &HistoryEvent) -> Option<(MemberId, u64, Application)> {
    match event {
        HistoryEvent::Applied { member, index, term, proposal_id, revision, succeeded, n_events, .. } => Some((
            *member,
            *index,
            Application {
                term: *term,
                proposal_id: *proposal_id,
                revision: *revision,
                succeeded: *succeeded,
                n_events: *n_events,
            },
        )),
        HistoryEvent::AppliedEmpty { member, index, term, revision } => Some((
            *member,
            *index,
            Application { term: *term, proposal_id: 0, revision: *revision, succeeded: true, n_events: 0 },
        )),
        _ => None,
    }
}

/// What the checker has read of the history so far, in one pass.
struct Reading {
    violations: Violations,
    /// index -> the first application seen anywhere, and by whom.
    first_by_index: BTreeMap<u64, (MemberId, Application)>,
    /// (member, index) -> that member's first application of the index, across restarts.
    first_by_member: BTreeMap<(MemberId, u64), Application>,
    incarnations: Vec<Incarnation>,
    /// member -> position of its current incarnation in `incarnations`.
    current: BTreeMap<MemberId, usize>,
    n_applications: usize,
    n_restarts: usize,
    snapshots: Vec<SnapshotClaim>,
}

impl Reading {
    fn new() -> Self {
        Reading {
            violations: Violations::new(Invariant::RaftStateMachineSafety),
            first_by_index: BTreeMap::new(),
            first_by_member: BTreeMap::new(),
            incarnations: Vec::new(),
            current: BTreeMap::new(),
            n_applications: 0,
            n_restarts: 0,
            snapshots: Vec::new(),
        }
    }

    /// A new incarnation of `member` begins.
    fn member_started(&mut self, member: MemberId) {
        if self.current.contains_key(&member) {
            self.n_restarts += 1;
        }
        self.current.insert(member, self.incarnations.len());
        self.incarnations.push(Incarnation { member, ..Incarnation::default() });
    }

    /// The position of `member`'s current incarnation, begun here if the history has no
    /// `MemberStarted` for it (a history that starts mid-run, or a hand-made one).
    fn incarnation_idx(&mut self, member: MemberId) -> usize {
        let incarnations = &mut self.incarnations;
        *self.current.entry(member).or_insert_with(|| {
            incarnations.push(Incarnation { member, ..Incarnation::default() });
            incarnations.len() - 1
        })
    }

    /// A member's state jumps to a snapshot: it must move forward.
    fn snapshot_taken(&mut self, claim: SnapshotClaim) {
        let incarnation_idx = self.incarnation_idx(claim.member);
        let incarnation = &mut self.incarnations[incarnation_idx];
        let SnapshotClaim { member, index, revision, at_ns } = claim;
        if let Some((previous_index, _)) = incarnation.position {
            if index <= previous_index {
                incarnation.out_of_order = true;
                self.violations.push(
                    Some(at_ns),
                    format!(
                        "{member} took a snapshot of index {index} after reaching index \
                         {previous_index}: a snapshot must move a member forward"
                    ),
                );
            }
        }
        incarnation.snapshots.push((incarnation.applied.len(), index));
        incarnation.position = Some((index, revision));
        self.snapshots.push(claim);
    }

    fn applied(&mut self, at_ns: u64, member: MemberId, index: u64, application: Application) {
        self.n_applications += 1;
        self.check_order(at_ns, member, index, application);
        self.check_agreement(at_ns, member, index, application);
    }

    /// Order within an incarnation: indexes increase, and the revision moves by one per
    /// entry that wrote events.
    fn check_order(&mut self, at_ns: u64, member: MemberId, index: u64, application: Application) {
        let incarnation_idx = self.incarnation_idx(member);
        let incarnation = &mut self.incarnations[incarnation_idx];
        if let Some((previous_index, previous_revision)) = incarnation.position {
            if index <= previous_index {
                incarnation.out_of_order = true;
                self.violations.push(
                    Some(at_ns),
                    format!(
                        "{member} applied index {index} after index {previous_index}: \
                         entries must apply in increasing index order, once per start"
                    ),
                );
            } else {
                let expected = previous_revision + Revision::from(application.n_events > 0);
                if application.revision != expected {
                    self.violations.push(
                        Some(at_ns),
                        format!(
                            "{member}'s revision went from {previous_revision} (index \
                             {previous_index}) to {} at index {index}, which wrote {} events: \
                             expected {expected}",
                            application.revision, application.n_events
                        ),
                    );
                }
            }
        }
        incarnation.applied.push((index, application.revision, at_ns));
        incarnation.position = Some((index, application.revision));
    }

    /// Agreement: a member replays what it applied before a restart, and every member
    /// applies the same entry at an index.
    fn check_agreement(&mut self, at_ns: u64, member: MemberId, index: u64, application: Application) {
        // One map lookup each (`entry`), rather than a `get` and then an `insert`.
        match self.first_by_member.entry((member, index)) {
            Entry::Occupied(before) if *before.get() != application => {
                self.violations.push(
                    Some(at_ns),
                    format!(
                        "{member} re-applied index {index} after a restart as \
                         {application}, but had applied {} there before",
                        before.get()
                    ),
                );
                return;
            }
            Entry::Occupied(_) => {}
            Entry::Vacant(vacant) => {
                vacant.insert(application);
            }
        }
        match self.first_by_index.entry(index) {
            Entry::Occupied(first) if first.get().1 != application => {
                let (other, theirs) = first.get();
                self.violations.push(
                    Some(at_ns),
                    format!(
                        "{member} applied {application} at index {index}, but {other} \
                         applied {theirs} there"
                    ),
                )
            }
            Entry::Occupied(_) => {}
            Entry::Vacant(vacant) => {
                vacant.insert((member, application));
            }
        }
    }

    /// Once the history is read: snapshots stand where the members' applications put
    /// their index, and no incarnation skipped an index.
    fn finish(mut self) -> Verdict {
        for claim in &self.snapshots {
            if let Some((other, theirs)) = self.first_by_index.get(&claim.index) {
                if theirs.revision != claim.revision {
                    self.violations.push(
                        Some(claim.at_ns),
                        format!(
                            "{} took a snapshot of index {} at revision {}, but {other} \
                             applied {theirs} there",
                            claim.member, claim.index, claim.revision
                        ),
                    );
                }
            }
        }
        let proposal_indexes: Vec<u64> = self.first_by_index.keys().copied().collect();
        for incarnation in &self.incarnations {
            if !incarnation.out_of_order {
                check_no_gap(incarnation, &proposal_indexes, &self.first_by_index, &mut self.violations);
            }
        }
        let n_members = self.incarnations.iter().map(|i| i.member).collect::<std::collections::BTreeSet<_>>().len();
        let (n_applications, n_restarts) = (self.n_applications, self.n_restarts);
        self.violations.into_verdict(
            n_applications,
            format!(
                "{n_applications} applications of {} distinct entries by {n_members} members, \
                 {n_restarts} restarts",
                self.first_by_index.len()
            ),
        )
    }
}

/// An incarnation's applied indexes (strictly increasing, a subset of `proposal_indexes`)
/// must include every proposal index up to the last one it applied, but those a snapshot
/// it took before covered.
fn check_no_gap(
    incarnation: &Incarnation,
    proposal_indexes: &[u64],
    first_by_index: &BTreeMap<u64, (MemberId, Application)>,
    violations: &mut Violations,
) {
    let Some(&(last_index, _, _)) = incarnation.applied.last() else {
        return;
    };
    let n_expected = proposal_indexes.partition_point(|&i| i <= last_index);
    if incarnation.snapshots.is_empty() && n_expected == incarnation.applied.len() {
        return;
    }
    // Walk the proposal indexes and the incarnation's applications together; before each
    // application, the snapshots taken before it cover every index up to `covered`.
    let (mut next, mut covered, mut snapshots) = (0usize, 0u64, incarnation.snapshots.iter().peekable());
    for &index in &proposal_indexes[..n_expected] {
        while let Some(&&(position, snapshot_index)) = snapshots.peek() {
            if position > next {
                break;
            }
            covered = covered.max(snapshot_index);
            snapshots.next();
        }
        match incarnation.applied.get(next) {
            Some(&(applied_index, _, _)) if applied_index == index => next += 1,
            _ if index <= covered => {}
            applied => {
                let (other, theirs) = first_by_index[&index];
                let (next_index, next_at_ns) =
                    applied.map(|&(i, _, at_ns)| (i, Some(at_ns))).unwrap_or((last_index, None));
                let snapshot =
                    if covered > 0 { format!(" (its snapshots cover up to {covered})") } else { String::new() };
                violations.push(
                    next_at_ns,
                    format!(
                        "{} skipped index {index} ({other} applied {theirs} there) \
                         and went on to apply index {next_index}{snapshot}",
                        incarnation.member
                    ),
                );
                return;
            }
        }
    }
}
