//! [`Invariant::NoAcknowledgedWriteLost`] (docs/design.md §4.11): every write the store
//! acknowledged is still explained by the final keyspace.
//!
//! An acknowledged write (key, value, revision) is explained when the key's final entry has
//! `mod_revision > revision` (overwritten later) or `mod_revision == revision` with the
//! write's value. A key that is absent, or whose final `mod_revision` is below the write's
//! revision, lost the write: etcd acknowledges a put only after a quorum fsynced its entry,
//! so no crash of a minority may undo it. The store's final revision must also be at least
//! every acknowledged revision.
//!
//! The workloads never delete yet; once they do (a `StoreOpKind::Delete` acknowledged at
//! revision d), a delete with `d > revision` and no later write explains a key's absence.
//! Without an end state (the store was unavailable at the end) the checker examines
//! nothing and says so (`checked == 0`).
//!
//! The verdict also holds the API half (`api_acknowledged_writes.rs`): every write the
//! apiserver acknowledged was committed by the store at the revision it named.
//!
//! Cost: O(n log n) in operations plus keys (a map of the final keyspace by key).

use std::collections::BTreeMap;

use store::api::{KeyValue, Revision};

use super::{api_acknowledged_writes, CheckInput, Invariant, Verdict, Views, Violations};
use crate::history::{HistoryEvent, StoreOpKind, StoreOpOutcome};
use crate::views::StoreOps;

/// A write the store acknowledged.
struct Acknowledged<'h> {
    client: &'h str,
    op_id: u64,
    key: &'h str,
    value: &'h str,
    revision: Revision,
    at_ns: u64,
}

pub(super) fn check(input: &CheckInput, views: &Views) -> Verdict {
    let mut violations = Violations::new(Invariant::NoAcknowledgedWriteLost);
    // The API half needs no end state: acknowledged API writes against the apiserver's
    // record of committed store writes.
    let n_api_writes = api_acknowledged_writes::check(input.history, &views.api_ops, &mut violations);
    let n_read_back = read_back(input.history, &views.store_ops, &mut violations);
    let api_summary = if n_read_back == 0 {
        format!("{n_api_writes} acknowledged API writes matched to committed store writes")
    } else {
        format!(
            "{n_api_writes} acknowledged API writes matched to committed store writes; \
             {n_read_back} acknowledged store writes read back at their revisions"
        )
    };
    let n_api_writes = n_api_writes + n_read_back;
    let Some(end_state) = input.end_state else {
        return violations.into_verdict(
            n_api_writes,
            format!(
                "{api_summary}; store writes skipped: no end state (the store was unavailable at the end of the run)"
            ),
        );
    };
    // A write acknowledged after the final read began may linearize after it.
    let acknowledged: Vec<Acknowledged> =
        acknowledged_writes(&views.store_ops).filter(|w| w.at_ns <= end_state.read_at_ns).collect();
    let final_keys: BTreeMap<&str, &KeyValue> = end_state.keyspace.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    for write in &acknowledged {
        if let Some(problem) = lost(write, final_keys.get(write.key).copied()) {
            violations.push(
                Some(write.at_ns),
                format!(
                    "op {}#{} wrote {}='{}', acknowledged at revision {}, but {problem} in the \
                     final keyspace (read at revision {})",
                    write.client, write.op_id, write.key, write.value, write.revision, end_state.revision
                ),
            );
        }
    }
    if let Some(latest) = acknowledged.iter().max_by_key(|w| w.revision) {
        if latest.revision > end_state.revision {
            violations.push(
                Some(latest.at_ns),
                format!(
                    "the final keyspace was read at revision {}, below revision {} that op \
                     {}#{} was acknowledged at: the store's revision went backwards",
                    end_state.revision, latest.revision, latest.client, latest.op_id
                ),
            );
        }
    }
    violations.into_verdict(
        acknowledged.len() + n_api_writes,
        format!(
            "{} acknowledged store writes against {} keys at final revision {}; {api_summary}",
            acknowledged.len(),
            end_state.keyspace.len(),
            end_state.revision
        ),
    )
}

/// The read-back half: every acknowledged write that was read back at its own revision
/// ([`HistoryEvent::ReadBack`]) showed its value with that mod revision (an etcd range
/// read at revision R returns the key as of R, so a write acknowledged at R is there
/// unless the history below R was compacted, which the read answers with an error).
/// Returns how many read-backs were judged.
fn read_back(history: &crate::history::History, store_ops: &StoreOps, violations: &mut Violations) -> usize {
    let acknowledged: BTreeMap<(&str, Revision), Acknowledged> =
        acknowledged_writes(store_ops).map(|w| ((w.key, w.revision), w)).collect();
    let mut n = 0;
    for (at_ns, event) in history.events() {
        let HistoryEvent::ReadBack { key, revision, found } = event else { continue };
        let Some(write) = acknowledged.get(&(key.as_str(), *revision)) else { continue };
        n += 1;
        let value_hash = xxhash_rust::xxh3::xxh3_64(write.value.as_bytes());
        let problem = match found {
            Ok(Some(kv)) if kv.mod_revision == *revision && kv.value_hash == Some(value_hash) => continue,
            Ok(Some(kv)) => format!("the store has mod_revision {} and another value there", kv.mod_revision),
            Ok(None) => "the store has no such key there".to_string(),
            Err(e) => format!("the read failed: {e}"),
        };
        violations.push(
            Some(at_ns),
            format!(
                "op {}#{} wrote {}='{}', acknowledged at revision {}, but reading it back at that revision: {problem}",
                write.client, write.op_id, write.key, write.value, write.revision
            ),
        );
    }
    n
}

/// What is wrong with `write` given the key's final entry, if anything.
fn lost(write: &Acknowledged, final_kv: Option<&KeyValue>) -> Option<String> {
    let Some(kv) = final_kv else {
        return Some("the key is absent".into());
    };
    if kv.mod_revision < write.revision {
        return Some(format!(
            "the key's mod_revision is only {} (value '{}')",
            kv.mod_revision,
            String::from_utf8_lossy(&kv.value)
        ));
    }
    if kv.mod_revision == write.revision && kv.value != write.value.as_bytes() {
        return Some(format!("the key holds '{}' at that same mod_revision", String::from_utf8_lossy(&kv.value)));
    }
    None
}

/// Every write whose outcome was an acknowledged success, in return order.
fn acknowledged_writes<'v, 'h>(store_ops: &'v StoreOps<'h>) -> impl Iterator<Item = Acknowledged<'h>> + 'v {
    store_ops.in_return_order().filter_map(|op| {
        let returned = op.returned.as_ref()?;
        let StoreOpOutcome::Written { revision, succeeded: true } = returned.outcome else { return None };
        if op.client.starts_with(crate::checkers::epochs::RESTORED_CLIENT_PREFIX) {
            return None;
        }
        match op.invocation {
            StoreOpKind::Put { key, value } | StoreOpKind::CompareAndPut { key, value, .. } => Some(Acknowledged {
                client: op.client,
                op_id: op.id,
                key,
                value,
                revision: *revision,
                at_ns: returned.at.at_ns,
            }),
            // A malformed pairing; the linearizability checker reports it.
            StoreOpKind::Get { .. } => None,
        }
    })
}
