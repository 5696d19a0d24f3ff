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
//! A restored cluster starts from the backup's keyspace, not from nothing. So that the
//! linearizability checker can explain a read of a restored value, each new epoch opens
//! with the writes that produced its restored keys: for every restored key, the write of
//! an earlier epoch whose key and value (by hash) match, replayed as acknowledged at the
//! key's restored mod revision (before any operation of the new epoch).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use super::{Verdict, MAX_VIOLATIONS_PER_INVARIANT};
use crate::history::{History, HistoryEvent, KeyState, Record, StoreOpKind, StoreOpOutcome};

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
/// client's write produced (see the module documentation).
fn restored_writes(
    keyspace: &[KeyState],
    writes: &BTreeMap<(String, u64), (String, StoreOpKind)>,
    at_ns: u64,
) -> Vec<Record> {
    let by_content: BTreeMap<(&str, u64), &str> = writes
        .values()
        .filter_map(|(_, op)| {
            let (key, value) = written(op)?;
            Some(((key, xxhash_rust::xxh3::xxh3_64(value.as_bytes())), value))
        })
        .collect();
    let client = format!("{RESTORED_CLIENT_PREFIX}{at_ns}");
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

/// The history cut at each restore. One element, the history itself uncopied, when there
/// was no restore.
pub(crate) fn split(history: &History) -> Vec<Cow<'_, History>> {
    if !history.records.iter().any(|record| matches!(record.event, HistoryEvent::Restored { .. })) {
        return vec![Cow::Borrowed(history)];
    }
    let mut epochs = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    let mut store_ops: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut api_requests = BTreeSet::new();
    // Before the first restore nothing is dropped: a return never invoked there is a
    // malformed history, for the checkers to report.
    let mut restored = false;
    // Every client write invoked so far, by (client, op id).
    let mut writes: BTreeMap<(String, u64), (String, StoreOpKind)> = BTreeMap::new();
    // (The restored epoch's opening puts are not added: the originals stay known.)
    for record in &history.records {
        match &record.event {
            HistoryEvent::Restored { keyspace, .. } => {
                epochs.push(std::mem::take(&mut current));
                store_ops.clear();
                api_requests.clear();
                restored = true;
                current = restored_writes(keyspace, &writes, record.at_ns);
                for opening in &current {
                    if let HistoryEvent::StoreOpInvoked { client, op_id, .. } = &opening.event {
                        store_ops.insert((client.clone(), *op_id));
                    }
                }
                continue;
            }
            HistoryEvent::StoreOpInvoked { client, op_id, op } => {
                store_ops.insert((client.clone(), *op_id));
                if written(op).is_some() {
                    writes.insert((client.clone(), *op_id), (client.clone(), op.clone()));
                }
            }
            HistoryEvent::StoreOpReturned { client, op_id, .. }
                if restored && !store_ops.contains(&(client.clone(), *op_id)) =>
            {
                continue;
            }
            HistoryEvent::ApiInvoked { client, request_id, .. } => {
                api_requests.insert((client.as_str(), *request_id));
            }
            HistoryEvent::ApiReturned { client, request_id, .. }
                if restored && !api_requests.contains(&(client.as_str(), *request_id)) =>
            {
                continue;
            }
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
        debug_assert_eq!(verdict.invariant, merged.invariant);
        merged.checked += verdict.checked;
        merged.summary.push_str(&format!("; epoch {}: {}", epoch + 1, verdict.summary));
        merged.n_violations_omitted += verdict.n_violations_omitted;
        for violation in verdict.violations {
            if merged.violations.len() < MAX_VIOLATIONS_PER_INVARIANT {
                merged.violations.push(violation);
            } else {
                merged.n_violations_omitted += 1;
            }
        }
    }
    merged
}
