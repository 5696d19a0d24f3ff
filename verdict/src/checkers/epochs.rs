//! Cluster epochs: a restore (`HistoryEvent::Restored`) starts a new cluster with a new
//! cluster id, new member ids and revisions of its own. Checkers of one cluster's
//! behaviour (Raft safety, linearizability, watch guarantees, durability, the Kubernetes
//! invariants) judge each epoch on its own, so that the expected data-loss window of a
//! restore (writes acknowledged after the backup's revision) is not reported as a lost
//! write or a stale read. The backup checkers judge what crosses the boundary.
//!
//! Scoping is by position in the history: the `Restored` record is the boundary (the
//! operator stopped every member and apiserver of the old cluster before restoring, so no
//! old-cluster event follows it). An operation invoked in one epoch and answered in the
//! next stays in the epoch it was invoked in, unanswered (its outcome is unknown there,
//! which every checker already allows).
//!
//! A restored cluster's deployments ask for replicas some earlier epoch's user asked for:
//! each new epoch opens with every `DesiredReplicas` recorded before it.
//!
//! A restored cluster starts from the backup's keyspace, not from nothing. So that the
//! linearizability checker can explain a read of a restored value, each new epoch opens
//! with the writes that produced its restored keys: for every restored key, the write of
//! an earlier epoch whose key and value (by hash) match, replayed as acknowledged at the
//! key's restored mod revision (before any operation of the new epoch).

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{Verdict, Views};
use crate::history::{History, HistoryEvent, KeyState, NodeName, Record, StoreOpKind, StoreOpOutcome};
use crate::views::{Operations, StoreOp};

/// The client name of a restored epoch's opening puts. They only explain reads of
/// restored values to the linearizability checker; the durability checkers skip them
/// (what a restore keeps is `restore-durability`'s to judge).
pub(crate) const RESTORED_CLIENT_PREFIX: &str = "restore@";

/// The key and value a client write puts.
fn written(op: &StoreOpKind) -> Option<(&str, &str)> {
    match op {
        StoreOpKind::Put { key, value } | StoreOpKind::CompareAndPut { key, value, .. } => {
            Some((key.as_str(), value.as_str()))
        }
        StoreOpKind::Get { .. } => None,
    }
}

/// The invoke/return pairs that open a restored epoch: one per restored key some
/// client's write (`writes`, every store operation invoked before the restore) produced
/// (see the module documentation).
fn restored_writes<'h>(
    keyspace: &[KeyState],
    writes: impl Iterator<Item = &'h StoreOp<'h>>,
    at_ns: u64,
) -> Vec<Record> {
    let by_content: BTreeMap<(&str, u64), &str> = writes
        .filter_map(|op| {
            let (key, value) = written(op.invocation)?;
            Some(((key, xxhash_rust::xxh3::xxh3_64(value.as_bytes())), value))
        })
        .collect();
    let client = NodeName::new(format!("{RESTORED_CLIENT_PREFIX}{at_ns}"));
    // Every invocation before every return: the puts are concurrent, so real-time order
    // asks nothing of their revisions.
    let mut invoked = Vec::new();
    let mut returned = Vec::new();
    for (op_id, state) in keyspace.iter().enumerate() {
        let op_id = op_id as u64;
        let Some(hash) = state.value_hash else { continue };
        let Some(value) = by_content.get(&(state.key.as_str(), hash)) else { continue };
        // A plain put: the restored state is what it wrote, whatever it was conditioned on.
        let op = StoreOpKind::Put { key: state.key.clone(), value: value.to_string() };
        invoked.push(Record { at_ns, event: HistoryEvent::StoreOpInvoked { client: client.clone(), op_id, op } });
        returned.push(Record {
            at_ns,
            event: HistoryEvent::StoreOpReturned {
                client: client.clone(),
                op_id,
                outcome: StoreOpOutcome::Written { revision: state.mod_revision, succeeded: true },
            },
        });
    }
    invoked.extend(returned);
    invoked
}

/// Whether the history holds a restore: without one, it is a single epoch.
pub(crate) fn has_restore(history: &History) -> bool {
    history.records.iter().any(|record| matches!(record.event, HistoryEvent::Restored { .. }))
}

/// The history cut at each restore (`views` are the whole history's). One element, the
/// history itself uncopied, when there was no restore.
pub(crate) fn split<'h>(history: &'h History, views: &Views) -> Vec<Cow<'h, History>> {
    if !has_restore(history) {
        return vec![Cow::Borrowed(history)];
    }
    let mut epochs = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    // The position of the `Restored` record the current epoch began with. None in the
    // first epoch, where no return is dropped: one never invoked there is a malformed
    // history, for the checkers to report.
    let mut began_at: Option<usize> = None;
    // Every `DesiredReplicas` so far: a restored deployment asks for what an ask of an
    // earlier epoch made it ask for, so each epoch opens with them (the convergence
    // checker's ceiling; without them a restored deployment's replicas count as never
    // asked for in the new epoch).
    let mut asked: Vec<HistoryEvent> = Vec::new();
    for (record_idx, record) in history.records.iter().enumerate() {
        match &record.event {
            HistoryEvent::Restored { keyspace, .. } => {
                epochs.push(std::mem::take(&mut current));
                // (The restored epoch's opening puts are not among them: the originals stay known.)
                let writes = views.store_ops.iter().take_while(|op| op.invoked.record_idx < record_idx);
                current = asked.iter().map(|event| Record { at_ns: record.at_ns, event: event.clone() }).collect();
                current.extend(restored_writes(keyspace, writes, record.at_ns));
                began_at = Some(record_idx);
                continue;
            }
            HistoryEvent::DesiredReplicas { .. } => asked.push(record.event.clone()),
            HistoryEvent::StoreOpReturned { .. } if !answers_within(&views.store_ops, record_idx, began_at) => {
                continue;
            }
            HistoryEvent::ApiReturned { .. } if !answers_within(&views.api_ops, record_idx, began_at) => continue,
            _ => {}
        }
        current.push(record.clone());
    }
    epochs.push(current);
    epochs
        .into_iter()
        .map(|records| Cow::Owned(History { records, trace_hash: history.trace_hash, overflowed: history.overflowed }))
        .collect()
}

/// Whether the return at `record_idx` belongs to the epoch that began at `began_at`: it
/// answers an operation invoked in that epoch (always, in the first epoch).
fn answers_within<Invocation, Outcome>(
    ops: &Operations<Invocation, Outcome>,
    record_idx: usize,
    began_at: Option<usize>,
) -> bool {
    let Some(began_at) = began_at else { return true };
    ops.returned_at(record_idx).is_some_and(|op_idx| ops[op_idx].invoked.record_idx > began_at)
}

/// One verdict from the verdicts of one invariant over every epoch: violations in epoch
/// order under the report bound, items checked summed, summaries labelled by epoch.
pub(crate) fn merge(verdicts: Vec<Verdict>) -> Verdict {
    let mut verdicts = verdicts.into_iter();
    let mut merged = verdicts.next().expect("at least one epoch");
    if verdicts.len() == 0 {
        return merged;
    }
    merged.summary = format!("epoch 0: {}", merged.summary);
    for (epoch, verdict) in verdicts.enumerate() {
        let summary = format!("epoch {}: {}", epoch + 1, verdict.summary);
        super::absorb(&mut merged, Verdict { summary, ..verdict });
    }
    merged
}
