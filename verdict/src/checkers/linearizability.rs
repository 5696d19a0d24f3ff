//! [`Invariant::Linearizability`] (docs/design.md §4.9) of the store's client operations,
//! checked through revisions instead of a search over interleavings (etcd's robustness
//! tests' fast path; Jepsen's "realtime + revision" check for etcd).
//!
//! The store orders all writes by revision, and each read and each failed compare answers
//! with the revision it saw. So the history is linearizable iff there is a state per
//! revision such that:
//! 1. writes that took effect have distinct revisions (one request, one revision);
//! 2. every read at revision R of a key equals that key's state at R: absent if no write
//!    to the key has a revision <= R; otherwise the value of the write W with the highest
//!    such revision, reported with `mod_revision == rev(W)`; a value from a write that
//!    definitely failed, or that no operation wrote, is never seen;
//! 3. real time is respected: an operation's revision is >= the revision of every
//!    operation that completed before it was invoked, and a write's is strictly greater
//!    (it comes after everything that operation saw or wrote);
//! 4. a compare-and-put that succeeded at r found the key at `expected_mod_revision` (the
//!    key's previous write is at exactly that revision, or there is none when 0 was
//!    expected); one whose compare failed at r found the key elsewhere.
//!
//! Writes whose outcome is unknown (timed out, or never returned) may or may not have
//! taken effect. One whose value a read observed did, at the reported `mod_revision`
//! (inferred); the others are assumed not to have, except that a succeeded
//! compare-and-put expecting a revision no known write has proves some unacknowledged
//! write to the key took effect there (a "phantom" write, with no known value), and a
//! failed compare is excused when such a write could have landed in between. Excuses only
//! ever make the check more lenient: it reports nothing a linearizable store could do.
//!
//! Assumes every write to the keys it sees is in the history and values written are unique
//! per operation (the workloads guarantee both; a duplicate value is reported).
//!
//! Cost: O(n log n) in the number of operations: hash lookups by value and key, one sort
//! of each key's writes, binary searches, and one sweep in history order.

use std::collections::HashMap;

use store::api::Revision;

use super::{Invariant, Verdict, Views, Violations};
use crate::history::{StoreOpKind, StoreOpOutcome};
use crate::views::{MalformedKind, StoreOp, StoreOps};

/// What an operation did, as far as its outcome tells.
#[derive(Clone, Copy, Debug)]
enum Class<'h> {
    /// A put, or a compare-and-put whose compare held, committed at this revision.
    AcknowledgedWrite(Revision),
    /// A write whose outcome is unknown or that never returned.
    MaybeWrite,
    /// A write that definitely did not take effect.
    FailedWrite,
    /// A compare-and-put whose compare failed: a read of the key's mod_revision at this
    /// revision.
    CompareFailed(Revision),
    Read {
        revision: Revision,
        value: Option<&'h str>,
        mod_revision: Revision,
    },
    /// A read that failed or never returned: it constrains nothing.
    NoEffect,
    /// The outcome does not fit the operation; reported at parse time.
    Malformed,
}

/// An operation as the history's view pairs it, with what this checker learns of it.
struct Op<'h> {
    operation: &'h StoreOp<'h>,
    class: Class<'h>,
    /// For writes: the revision they took effect at, acknowledged or inferred from a read.
    write_revision: Option<Revision>,
    /// The read that inferred `write_revision` of a `MaybeWrite`.
    inferred_by: Option<usize>,
    /// Set when a read's observation was already reported as unexplainable.
    reported: bool,
}

impl<'h> Op<'h> {
    fn kind(&self) -> &'h StoreOpKind {
        self.operation.invocation
    }

    /// The record position of the invocation.
    fn invoked_idx(&self) -> usize {
        self.operation.invoked.record_idx
    }

    /// The record position of the return; past every record for an operation that never
    /// returned.
    fn returned_idx(&self) -> usize {
        self.operation.returned.map_or(usize::MAX, |returned| returned.at.record_idx)
    }

    fn key(&self) -> &'h str {
        match self.kind() {
            StoreOpKind::Put { key, .. } | StoreOpKind::Get { key } | StoreOpKind::CompareAndPut { key, .. } => key,
        }
    }

    fn written_value(&self) -> Option<&'h str> {
        match self.kind() {
            StoreOpKind::Put { value, .. } | StoreOpKind::CompareAndPut { value, .. } => Some(value),
            StoreOpKind::Get { .. } => None,
        }
    }

    /// The revision this operation observed or wrote, if known.
    fn revision(&self) -> Option<Revision> {
        match self.class {
            Class::CompareFailed(revision) | Class::Read { revision, .. } => Some(revision),
            _ => self.write_revision,
        }
    }

    /// Simulated time of the record that best shows this operation's effect.
    fn at_ns(&self) -> u64 {
        self.operation.returned.map_or(self.operation.invoked, |returned| returned.at).at_ns
    }

    fn label(&self) -> String {
        let what = match self.kind() {
            StoreOpKind::Put { key, value } => format!("put {key}={value}"),
            StoreOpKind::Get { key } => format!("get {key}"),
            StoreOpKind::CompareAndPut { key, expected_mod_revision, value } => {
                format!("compare-and-put {key}={value} if mod_revision=={expected_mod_revision}")
            }
        };
        format!("op {}#{} ({what})", self.operation.client, self.operation.id)
    }
}

/// Who wrote a key at a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Op(usize),
    /// An unacknowledged write whose existence the compare-and-put `.0` proved.
    Phantom(usize),
}

/// The writes known to have taken effect: per key in revision order, and all revisions.
struct KnownWrites<'h> {
    by_key: HashMap<&'h str, Vec<(Revision, Writer)>>,
    /// revision -> (key, writer), for every known write.
    by_revision: HashMap<Revision, (&'h str, Writer)>,
    /// Sorted revisions of every known write.
    revisions: Vec<Revision>,
    /// Per key, the earliest invocation (record position) of a write whose outcome is
    /// unknown and which no read observed: the candidates for excusing a compare.
    unobserved_maybe_write: HashMap<&'h str, usize>,
}

impl<'h> KnownWrites<'h> {
    /// The latest write to `key` with a revision <= `revision`.
    fn latest_at(&self, key: &str, revision: Revision) -> Option<(Revision, Writer)> {
        let writes = self.by_key.get(key)?;
        let n = writes.partition_point(|(r, _)| *r <= revision);
        n.checked_sub(1).map(|i| writes[i])
    }

    /// Whether some unacknowledged, unobserved write to `key` invoked before `before_pos`
    /// could have taken effect at a revision in `(after, upto]` that no known write holds.
    fn could_hide_a_write(&self, key: &str, before_pos: usize, after: Revision, upto: Revision) -> bool {
        let candidate = self.unobserved_maybe_write.get(key).is_some_and(|&pos| pos < before_pos);
        let lo = self.revisions.partition_point(|r| *r <= after);
        let hi = self.revisions.partition_point(|r| *r <= upto);
        let n_free = ((upto - after).max(0) as usize).saturating_sub(hi - lo);
        candidate && n_free > 0
    }
}

pub(super) fn check(views: &Views) -> Verdict {
    let mut violations = Violations::new(Invariant::Linearizability);
    let mut ops = parse_ops(&views.store_ops, &mut violations);
    infer_from_reads(&mut ops, &mut violations);
    let mut writes = known_writes(&ops, &mut violations);
    let n_phantoms = check_succeeded_compares(&ops, &mut writes, &mut violations);
    check_reads(&ops, &writes, &mut violations);
    check_real_time(&ops, &mut violations);

    let count = |f: fn(&Class) -> bool| ops.iter().filter(|op| f(&op.class)).count();
    let n_acknowledged = count(|c| matches!(c, Class::AcknowledgedWrite(_)));
    let n_reads = count(|c| matches!(c, Class::Read { .. } | Class::CompareFailed(_)));
    let n_maybe = count(|c| matches!(c, Class::MaybeWrite));
    let n_inferred = ops.iter().filter(|op| op.inferred_by.is_some()).count();
    violations.into_verdict(
        ops.len(),
        format!(
            "{} operations: {n_acknowledged} acknowledged writes, {n_reads} reads and failed \
             compares, {n_maybe} writes with unknown outcome ({n_inferred} seen by reads, \
             {n_phantoms} more proven by compares)",
            ops.len()
        ),
    )
}

fn classify<'h>(kind: &StoreOpKind, outcome: Option<&'h StoreOpOutcome>) -> Option<Class<'h>> {
    let is_write = !matches!(kind, StoreOpKind::Get { .. });
    let class = match (outcome, is_write) {
        (None | Some(StoreOpOutcome::Unknown { .. }), true) => Class::MaybeWrite,
        (None | Some(StoreOpOutcome::Unknown { .. } | StoreOpOutcome::Failed { .. }), false) => Class::NoEffect,
        (Some(StoreOpOutcome::Failed { .. }), true) => Class::FailedWrite,
        (Some(StoreOpOutcome::Written { revision, succeeded: true }), true) => Class::AcknowledgedWrite(*revision),
        (Some(StoreOpOutcome::Written { revision, succeeded: false }), true)
            if matches!(kind, StoreOpKind::CompareAndPut { .. }) =>
        {
            Class::CompareFailed(*revision)
        }
        (Some(StoreOpOutcome::Read { revision, value, mod_revision, .. }), false) => {
            Class::Read { revision: *revision, value: value.as_deref(), mod_revision: *mod_revision }
        }
        _ => return None,
    };
    Some(class)
}

/// The history's operations in invocation order, classified by their outcomes; reports
/// the records the pairing could not place and the outcomes an operation cannot have.
fn parse_ops<'h>(store_ops: &'h StoreOps<'h>, violations: &mut Violations) -> Vec<Op<'h>> {
    for malformed in store_ops.malformed() {
        let (client, op_id) = (malformed.client, malformed.id);
        let what = match malformed.kind {
            MalformedKind::InvokedTwice => "invoked twice",
            MalformedKind::ReturnedTwice => "returned twice",
            MalformedKind::NeverInvoked => "returned, never invoked",
        };
        violations.push(Some(malformed.at.at_ns), format!("malformed history: op {client}#{op_id} {what}"));
    }
    let mut ops: Vec<Op<'h>> = Vec::with_capacity(store_ops.len());
    for operation in store_ops {
        let outcome = operation.returned.map(|returned| returned.outcome);
        let mut op = Op { operation, class: Class::NoEffect, write_revision: None, inferred_by: None, reported: false };
        match classify(operation.invocation, outcome) {
            Some(class) => op.class = class,
            None => {
                op.class = Class::Malformed;
                violations.push(
                    Some(op.at_ns()),
                    format!("{} ended with an outcome it cannot have: {outcome:?}", op.label()),
                );
            }
        }
        if let Class::AcknowledgedWrite(revision) = op.class {
            op.write_revision = Some(revision);
        }
        ops.push(op);
    }
    ops
}

/// Checks each read's value against the write that wrote it, and infers the revision of
/// unknown-outcome writes from the reads that saw their values.
fn infer_from_reads(ops: &mut [Op], violations: &mut Violations) {
    let mut writer_of_value: HashMap<&str, usize> = HashMap::new();
    for (idx, op) in ops.iter().enumerate() {
        let Some(value) = op.written_value() else {
            continue;
        };
        if let Some(other) = writer_of_value.insert(value, idx) {
            violations.push(
                Some(op.operation.invoked.at_ns),
                format!(
                    "history precondition broken: value '{value}' is written by both {} and \
                     {}, so reads of it cannot be attributed",
                    ops[other].label(),
                    op.label()
                ),
            );
        }
    }
    for read_idx in 0..ops.len() {
        let Class::Read { revision, value: Some(value), mod_revision } = ops[read_idx].class else {
            continue;
        };
        let problem = match writer_of_value.get(value) {
            None => Some("no recorded operation wrote that value".to_string()),
            Some(&writer) => explain_observed_write(ops, read_idx, writer, revision, mod_revision),
        };
        if let Some(problem) = problem {
            let read = &mut ops[read_idx];
            read.reported = true;
            violations.push(
                Some(read.at_ns()),
                format!(
                    "{} read at revision {revision} saw '{value}' with mod_revision \
                     {mod_revision}, but {problem}",
                    read.label()
                ),
            );
        }
    }
}

/// Whether write `writer` can explain a read of its value at `mod_revision`; infers the
/// revision of an unknown-outcome write. Returns the problem, if any.
fn explain_observed_write(
    ops: &mut [Op],
    read_idx: usize,
    writer: usize,
    revision: Revision,
    mod_revision: Revision,
) -> Option<String> {
    let w = &ops[writer];
    if w.key() != ops[read_idx].key() {
        return Some(format!("that value was written to another key by {}", w.label()));
    }
    if mod_revision > revision || mod_revision <= 0 {
        return Some("a key's mod_revision lies in (0, read revision]".to_string());
    }
    match w.class {
        Class::FailedWrite => Some(format!("{} failed, so it never took effect", w.label())),
        Class::CompareFailed(at) => {
            Some(format!("{} failed its compare at revision {at}, so it wrote nothing", w.label()))
        }
        Class::AcknowledgedWrite(at) if at != mod_revision => {
            Some(format!("{} was acknowledged at revision {at}", w.label()))
        }
        Class::AcknowledgedWrite(_) => None,
        Class::MaybeWrite => match (w.write_revision, w.inferred_by) {
            (Some(at), Some(by)) if at != mod_revision => {
                Some(format!("{} (outcome unknown) was seen at mod_revision {at} by {}", w.label(), ops[by].label()))
            }
            (Some(_), _) => None,
            (None, _) => {
                let w = &mut ops[writer];
                w.write_revision = Some(mod_revision);
                w.inferred_by = Some(read_idx);
                None
            }
        },
        Class::Read { .. } | Class::NoEffect | Class::Malformed => {
            unreachable!("only writes have written values")
        }
    }
}

/// Indexes the writes known to have taken effect; reports two at one revision.
fn known_writes<'h>(ops: &[Op<'h>], violations: &mut Violations) -> KnownWrites<'h> {
    let mut writes = KnownWrites {
        by_key: HashMap::new(),
        by_revision: HashMap::new(),
        revisions: Vec::new(),
        unobserved_maybe_write: HashMap::new(),
    };
    for (idx, op) in ops.iter().enumerate() {
        let Some(revision) = op.write_revision else {
            if matches!(op.class, Class::MaybeWrite) {
                let earliest = writes.unobserved_maybe_write.entry(op.key()).or_insert(usize::MAX);
                *earliest = (*earliest).min(op.invoked_idx());
            }
            continue;
        };
        match writes.by_revision.get(&revision) {
            Some(&(_, Writer::Op(other))) => violations.push(
                Some(op.at_ns()),
                format!(
                    "{} and {} both took effect at revision {revision}; every write has its \
                     own revision",
                    ops[other].label(),
                    op.label()
                ),
            ),
            _ => {
                writes.by_revision.insert(revision, (op.key(), Writer::Op(idx)));
                writes.revisions.push(revision);
            }
        }
        writes.by_key.entry(op.key()).or_default().push((revision, Writer::Op(idx)));
    }
    for key_writes in writes.by_key.values_mut() {
        key_writes.sort_unstable_by_key(|(revision, _)| *revision);
    }
    writes.revisions.sort_unstable();
    writes
}

/// Property 4 for compare-and-puts that took effect. Returns the number of phantom writes
/// (unacknowledged writes a compare proved) added to `writes`.
fn check_succeeded_compares<'h>(ops: &[Op<'h>], writes: &mut KnownWrites<'h>, violations: &mut Violations) -> usize {
    let mut phantoms: Vec<(Revision, usize)> = Vec::new();
    for (idx, op) in ops.iter().enumerate() {
        let (StoreOpKind::CompareAndPut { key, expected_mod_revision: expected, .. }, Some(revision)) =
            (op.kind(), op.write_revision)
        else {
            continue;
        };
        let previous = writes.latest_at(key, revision - 1);
        let previous_revision = previous.map_or(0, |(r, _)| r);
        if *expected == previous_revision {
            continue;
        }
        let found = match previous {
            Some((r, writer)) => format!("its previous write is {} at revision {r}", describe(ops, writer)),
            None => "no earlier write to it is known".to_string(),
        };
        let before_pos = op.returned_idx();
        let problem = if *expected < previous_revision || *expected >= revision {
            Some(found)
        } else if let Some(&(other_key, writer)) = writes.by_revision.get(expected) {
            Some(format!("revision {expected} belongs to {} on key {other_key}", describe(ops, writer)))
        } else if writes.could_hide_a_write(key, before_pos, expected - 1, *expected) {
            phantoms.push((*expected, idx));
            None
        } else {
            Some(format!("{found}, and no unacknowledged write could have landed at {expected}"))
        };
        if let Some(problem) = problem {
            violations.push(
                Some(op.at_ns()),
                format!(
                    "{} took effect at revision {revision}, so {key} must have had \
                     mod_revision {expected}; but {problem}",
                    op.label()
                ),
            );
        }
    }
    let n_phantoms = phantoms.len();
    for (revision, cas_idx) in phantoms {
        let key = ops[cas_idx].key();
        match writes.by_revision.get(&revision) {
            // Two compares proved the same write.
            Some(&(other_key, _)) if other_key == key => continue,
            Some(&(other_key, writer)) => {
                violations.push(
                    Some(ops[cas_idx].at_ns()),
                    format!(
                        "{} proves a write to {key} at revision {revision}, but {} proves                          one to {other_key} there",
                        ops[cas_idx].label(),
                        describe(ops, writer)
                    ),
                );
                continue;
            }
            None => {}
        }
        writes.by_key.entry(key).or_default().push((revision, Writer::Phantom(cas_idx)));
        writes.by_revision.insert(revision, (key, Writer::Phantom(cas_idx)));
        writes.revisions.push(revision);
    }
    for key_writes in writes.by_key.values_mut() {
        key_writes.sort_unstable_by_key(|(revision, _)| *revision);
    }
    writes.revisions.sort_unstable();
    n_phantoms
}

fn describe(ops: &[Op], writer: Writer) -> String {
    match writer {
        Writer::Op(idx) => ops[idx].label(),
        Writer::Phantom(cas_idx) => format!("an unacknowledged write (proven by {})", ops[cas_idx].label()),
    }
}

/// Property 2 for reads, and property 4 for compares that failed.
fn check_reads(ops: &[Op], writes: &KnownWrites, violations: &mut Violations) {
    for op in ops {
        let key = op.key();
        let problem = match op.class {
            Class::Read { .. } if op.reported => None,
            Class::Read { revision, value: None, .. } => writes.latest_at(key, revision).map(|(r, writer)| {
                format!(
                    "{} read {key} at revision {revision} as absent, but {} wrote it at \
                     revision {r}",
                    op.label(),
                    describe(ops, writer)
                )
            }),
            Class::Read { revision, value: Some(value), mod_revision } => match writes.latest_at(key, revision) {
                Some((r, writer)) if r > mod_revision => Some(format!(
                    "stale read: {} read {key} at revision {revision} and saw '{value}' from \
                     revision {mod_revision}, but {} wrote it at revision {r}",
                    op.label(),
                    describe(ops, writer)
                )),
                _ => None,
            },
            Class::CompareFailed(revision) => {
                let StoreOpKind::CompareAndPut { expected_mod_revision: expected, .. } = op.kind() else {
                    unreachable!("only compare-and-puts fail a compare")
                };
                let latest = writes.latest_at(key, revision);
                let actual = latest.map_or(0, |(r, _)| r);
                let before_pos = op.returned_idx();
                (actual == *expected && !writes.could_hide_a_write(key, before_pos, actual, revision)).then(|| {
                    let by = latest.map_or("nobody (absent)".to_string(), |(_, w)| describe(ops, w));
                    format!(
                        "{} failed its compare at revision {revision}, but {key}'s \
                         mod_revision there was {actual} as expected (written by {by})",
                        op.label()
                    )
                })
            }
            _ => None,
        };
        if let Some(problem) = problem {
            violations.push(Some(op.at_ns()), problem);
        }
    }
}

/// Property 3: one sweep in history order. `floor` is the highest revision of any
/// operation that completed so far (with its op); an operation must not go below the
/// floor at its invocation, and a write must go above it.
fn check_real_time(ops: &[Op], violations: &mut Violations) {
    let mut events: Vec<(usize, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (idx, op) in ops.iter().enumerate() {
        events.push((op.invoked_idx(), false, idx));
        if let Some(returned) = op.operation.returned {
            events.push((returned.at.record_idx, true, idx));
        }
    }
    events.sort_unstable();
    let mut floor: Option<(Revision, usize)> = None;
    let mut floor_at_invoke: Vec<Option<(Revision, usize)>> = vec![None; ops.len()];
    for (_, is_return, idx) in events {
        if !is_return {
            floor_at_invoke[idx] = floor;
            continue;
        }
        // Only a returned operation with a known revision completes; an inferred write
        // returned with an unknown outcome and may have applied after its return.
        let completed = match ops[idx].class {
            Class::AcknowledgedWrite(r) | Class::CompareFailed(r) => Some(r),
            Class::Read { revision, .. } => Some(revision),
            _ => None,
        };
        if let Some(revision) = completed {
            if floor.is_none_or(|(f, _)| revision > f) {
                floor = Some((revision, idx));
            }
        }
    }
    for (idx, op) in ops.iter().enumerate() {
        let (Some(revision), Some((floor_revision, witness))) = (op.revision(), floor_at_invoke[idx]) else {
            continue;
        };
        let is_write = op.write_revision.is_some();
        let ok = if is_write { revision > floor_revision } else { revision >= floor_revision };
        if !ok {
            let what = if is_write { "took effect" } else { "was served" };
            violations.push(
                Some(op.at_ns()),
                format!(
                    "real-time order: {} {what} at revision {revision}, but {} had already \
                     completed at revision {floor_revision} before it was invoked",
                    op.label(),
                    ops[witness].label()
                ),
            );
        }
    }
}
