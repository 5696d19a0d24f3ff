//! The API half of [`Invariant::NoAcknowledgedWriteLost`] (docs/design.md §1 and §4.11): an
//! object write the apiserver acknowledged was committed by the store, at the revision the
//! answer named.
//!
//! Kubernetes' `storage/etcd3/store.go` answers a create, update, delete or binding only
//! after etcd's transaction returned, with the object's resourceVersion set to the
//! transaction's revision. So every API write answered Ok with resourceVersion r must be
//! matched by the apiserver's record of a store write of the same key at revision r
//! (`StoreWrite`, recorded when the transaction returns). An answer with no such store
//! write told the client about a write the store never committed (or committed elsewhere
//! in the revision order): the planted bug `apiserver-ack-before-commit`.
//!
//! The store half (writes the store acknowledged, against the final keyspace) is in
//! `durability.rs`; `durability::check` merges both into one verdict.
//!
//! Cost: O(n log n) (a set of (key, revision) of store writes).

use std::collections::BTreeSet;

use store::api::Revision;

use super::api_writes::{acknowledged_api_writes, store_writes_by_revision};
use super::Violations;
use crate::history::History;
use crate::views::ApiOps;

/// Checks every acknowledged API write of `history` (whose requests `api_ops` pairs)
/// against the store writes; returns how many acknowledged writes it examined.
pub(super) fn check(history: &History, api_ops: &ApiOps, violations: &mut Violations) -> usize {
    let committed: BTreeSet<(&str, Revision)> =
        store_writes_by_revision(history).iter().map(|w| (w.key, w.revision)).collect();
    let acknowledged = acknowledged_api_writes(api_ops);
    for write in &acknowledged {
        let key = write.key();
        if committed.contains(&(key.as_str(), write.revision)) {
            continue;
        }
        let key_range = |from: Revision, to: Revision| committed.range((key.as_str(), from)..=(key.as_str(), to));
        let before = key_range(Revision::MIN, write.revision).next_back().map(|(_, r)| *r);
        let after = key_range(write.revision, Revision::MAX).next().map(|(_, r)| *r);
        let elsewhere = match (before, after) {
            (None, None) => "no apiserver ever committed a write of that key".to_string(),
            (before, after) => format!(
                "the key's nearest committed writes are at revisions {} and {}",
                before.map_or("-".into(), |r| r.to_string()),
                after.map_or("-".into(), |r| r.to_string())
            ),
        };
        violations.push(
            Some(write.at_ns),
            format!(
                "{} was told its {:?} of {} (request {}) committed at revision {}, but no store \
                 write of {key} happened at that revision ({elsewhere})",
                write.client,
                write.verb,
                write.object(),
                write.request_id,
                write.revision
            ),
        );
    }
    acknowledged.len()
}
