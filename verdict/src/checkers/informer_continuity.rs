//! [`Invariant::InformerContinuity`] (docs/design.md §4.20): every watch a component makes
//! resumes from a resourceVersion the apiserver gave it, a list's or a previous watch
//! answer's, for the same resource and namespace.
//!
//! client-go's reflector (`ListAndWatch`) lists, then watches from the list's
//! resourceVersion, and after each watch answer from the last resourceVersion it saw. When
//! the watch is answered 410 Gone ("too old resource version", the revision compacted or
//! out of the watch cache's window) it must list again: the events between its position and
//! the oldest revision still served are gone, and only a fresh list tells it which objects
//! were deleted or changed meanwhile. An informer that resumes from any other revision
//! (the compacted one, a guess, another resource's) has a cache that silently misses those
//! changes, and the controllers reading it act on objects that no longer exist.
//!
//! What the history shows: the component's lists (`ApiInvoked` with verb list, and the
//! resourceVersion of the `ApiReturned` that answered it, as the history's `ApiOps` pair
//! them) and every watch answer it received
//! (`WatchDelivered`: from `since`, complete up to `resource_version`). Watches answered 410
//! deliver nothing and leave no record. The check is per client, resource and namespace:
//! each answer's `since` must be a resourceVersion an earlier list or answer of that stream
//! ended at. It reads the whole history, across restores: after a restore every watcher is
//! answered 410 and relists (etcd's `--mark-compacted`), and a resume point learned before
//! it stays a point the client was given.
//!
//! Cost: O(n log n) in the number of lists and watch answers.

use std::collections::{BTreeMap, BTreeSet};

use api::{Resource, Verb};

use super::{CheckInput, Invariant, Verdict, Views, Violations};
use crate::history::{ApiOutcome, HistoryEvent};
use crate::views::ApiInvocation;

/// One watch stream: who watches which resource in which namespace ("" for all).
type Stream<'a> = (&'a str, Resource, &'a str);

pub(super) fn check(input: &CheckInput, views: &Views) -> Verdict {
    let mut violations = Violations::new(Invariant::InformerContinuity);
    // The resourceVersions each stream was given, by a list or a watch answer.
    let mut given: BTreeMap<Stream<'_>, BTreeSet<i64>> = BTreeMap::new();
    let (mut n_answers, mut n_lists) = (0usize, 0usize);
    for (record_idx, record) in input.history.records.iter().enumerate() {
        let at_ns = record.at_ns;
        match &record.event {
            HistoryEvent::ApiReturned { outcome: ApiOutcome::Ok { resource_version }, .. } => {
                let Some(request) = views.api_ops.returned_at(record_idx).map(|op_idx| &views.api_ops[op_idx]) else {
                    continue;
                };
                let ApiInvocation { verb: Verb::List, resource, namespace, .. } = request.invocation else { continue };
                n_lists += 1;
                given.entry((request.client, resource, namespace)).or_default().insert(*resource_version);
            }
            HistoryEvent::WatchDelivered { client, resource, namespace, since, resource_version, .. } => {
                n_answers += 1;
                let points = given.entry((client.as_str(), *resource, namespace.as_str())).or_default();
                if !points.contains(since) {
                    let scope = if namespace.is_empty() { "all namespaces".to_string() } else { namespace.clone() };
                    let last = match points.range(..*since).next_back() {
                        Some(before) => format!("the closest below it was {before}"),
                        None => "none below it".to_string(),
                    };
                    violations.push(
                        Some(at_ns),
                        format!(
                            "{client} watched {resource} in {scope} from resourceVersion {since}, which no \
                             list or watch answer of that stream gave it ({last}): after 410 Gone an \
                             informer must relist, not resume elsewhere"
                        ),
                    );
                }
                points.insert(*resource_version);
            }
            _ => {}
        }
    }
    violations.into_verdict(
        n_answers,
        format!("{n_answers} watch answers resumed from a resourceVersion their client was given ({n_lists} lists)"),
    )
}
