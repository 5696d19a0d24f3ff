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

use std::collections::BTreeSet;

use super::{Verdict, MAX_VIOLATIONS_PER_INVARIANT};
use crate::history::{History, HistoryEvent, Record};

/// The history cut at each restore. One element when there was no restore.
pub(crate) fn split(history: &History) -> Vec<History> {
    let mut epochs = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    let mut store_ops = BTreeSet::new();
    let mut api_requests = BTreeSet::new();
    // Before the first restore nothing is dropped: a return never invoked there is a
    // malformed history, for the checkers to report.
    let mut restored = false;
    for record in &history.records {
        match &record.event {
            HistoryEvent::Restored { .. } => {
                epochs.push(std::mem::take(&mut current));
                store_ops.clear();
                api_requests.clear();
                restored = true;
            }
            HistoryEvent::StoreOpInvoked { client, op_id, .. } => {
                store_ops.insert((client.as_str(), *op_id));
            }
            HistoryEvent::StoreOpReturned { client, op_id, .. }
                if restored && !store_ops.contains(&(client.as_str(), *op_id)) =>
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
        .map(|records| History { records, trace_hash: history.trace_hash, overflowed: history.overflowed })
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
