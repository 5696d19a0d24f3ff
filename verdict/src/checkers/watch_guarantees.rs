//! [`Invariant::WatchGuarantees`] (docs/design.md §4.10): every watch answer an apiserver
//! gave keeps etcd's watch guarantees, as Kubernetes' watch cache passes them on.
//!
//! etcd (`api/v3rpc` watch semantics; etcd's robustness `validate/watch.go`) promises that
//! a watch delivers events *ordered* by revision, *unique* (no (key, revision) twice),
//! *atomic* (a revision's events together) and *reliable* (no gap unless compacted, which
//! is answered 410 Gone instead of events). A Kubernetes watch answer from `since` that
//! says it is complete up to `resource_version` therefore must:
//! - hold only events of the watched resource (and namespace), with revisions in
//!   `(since, resource_version]`, in non-decreasing revision order, no (key, revision)
//!   twice;
//! - hold every store write of that resource the apiserver committed with a revision in
//!   `(since, resource_version]` (a missing one is a gap), with the key and kind (create:
//!   Added, delete: Deleted, other writes: Modified) the write had.
//!
//! The comparison is sound whenever the history was recorded: revisions are assigned at
//! commit and the watch cache learns them in order, so a cache that answers "complete up
//! to R" has already seen every commit at or below R, whenever its apiserver recorded the
//! `StoreWrite`. An event with no `StoreWrite` at its revision is allowed: a transaction
//! whose answer was lost (unknown outcome) may have committed, and is then only visible
//! through watches.
//!
//! Cost: O(n log n): store writes are indexed by revision and bucketed by watch prefix, and
//! each answer is checked by counting the writes in its range (binary search), walking
//! the range only to name the gap when one exists.

use std::collections::{BTreeMap, BTreeSet};

use api::{Verb, WatchEventKind};
use store::api::Revision;

use super::api_writes::{store_writes_by_revision, CommittedStoreWrite};
use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{HistoryEvent, WatchedEvent};

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::WatchGuarantees);
    let writes = store_writes_by_revision(input.history);
    let by_revision: BTreeMap<Revision, &CommittedStoreWrite> = writes.iter().map(|w| (w.revision, w)).collect();
    // Watch prefix ("/registry/pods/" or "/registry/pods/default/") -> revisions of the
    // store writes under it, sorted.
    let mut by_prefix: BTreeMap<String, Vec<Revision>> = BTreeMap::new();
    for write in &writes {
        for prefix in watch_prefixes(write.key) {
            by_prefix.entry(prefix).or_default().push(write.revision);
        }
    }
    let mut n_answers = 0usize;
    let mut n_events = 0usize;
    for (at_ns, event) in input.history.events() {
        let HistoryEvent::WatchDelivered { client, resource, namespace, since, resource_version, events } = event
        else {
            continue;
        };
        n_answers += 1;
        n_events += events.len();
        let prefix = resource.namespace_prefix(namespace);
        let answer = Answer {
            client: client.as_str(),
            prefix: &prefix,
            since: *since,
            resource_version: *resource_version,
            events,
        };
        let mut report = |message: String| violations.push(Some(at_ns), format!("{}: {message}", answer.describe()));
        check_events(&answer, &by_revision, &mut report);
        let expected = by_prefix.get(&prefix).map_or(&[][..], Vec::as_slice);
        check_complete(&answer, expected, &by_revision, &mut report);
    }
    violations.into_verdict(
        n_answers,
        format!("{n_answers} watch answers with {n_events} events against {} committed store writes", writes.len()),
    )
}

/// One watch answer as recorded.
struct Answer<'a> {
    client: &'a str,
    prefix: &'a str,
    since: i64,
    resource_version: i64,
    events: &'a [WatchedEvent],
}

impl Answer<'_> {
    fn describe(&self) -> String {
        format!(
            "{}'s watch of {} from {} to {}",
            self.client,
            self.prefix.trim_end_matches('/').trim_start_matches("/registry/"),
            self.since,
            self.resource_version
        )
    }

    fn in_range(&self, revision: Revision) -> bool {
        self.since < revision && revision <= self.resource_version
    }
}

/// Ordered, unique, in range, of the watched resource, and agreeing with the store write
/// at each event's revision.
fn check_events(
    answer: &Answer,
    by_revision: &BTreeMap<Revision, &CommittedStoreWrite>,
    report: &mut impl FnMut(String),
) {
    if answer.resource_version < answer.since {
        report(format!("the answer's resourceVersion {} is below the watch's start", answer.resource_version));
    }
    let mut seen: BTreeSet<(&str, Revision)> = BTreeSet::new();
    let mut previous: Option<Revision> = None;
    for event in answer.events {
        let (key, revision) = (event.key.as_str(), event.resource_version);
        if !answer.in_range(revision) {
            report(format!("delivered {key}@{revision}, outside ({}, {}]", answer.since, answer.resource_version));
        }
        if previous.is_some_and(|p| revision < p) {
            report(format!("delivered {key}@{revision} after an event at revision {}", previous.unwrap_or(0)));
        }
        previous = Some(revision);
        if !seen.insert((key, revision)) {
            report(format!("delivered {key}@{revision} twice"));
        }
        if !key.starts_with(answer.prefix) {
            report(format!("delivered {key}@{revision}, which is not under {}", answer.prefix));
        }
        if let Some(write) = by_revision.get(&revision) {
            let kind = expected_kind(write.verb);
            if write.key != key || kind != event.kind {
                report(format!(
                    "delivered {:?} {key}@{revision}, but revision {revision} was {}'s {:?} of {}",
                    event.kind, write.user, write.verb, write.key
                ));
            }
        }
    }
}

/// Reliable: every committed write under the prefix in (since, resource_version] was
/// delivered. `expected` are the revisions of the writes under the prefix, sorted.
fn check_complete(
    answer: &Answer,
    expected: &[Revision],
    by_revision: &BTreeMap<Revision, &CommittedStoreWrite>,
    report: &mut impl FnMut(String),
) {
    let from = expected.partition_point(|r| *r <= answer.since);
    let to = expected.partition_point(|r| *r <= answer.resource_version);
    let n_expected = to.saturating_sub(from);
    let delivered: BTreeSet<(&str, Revision)> = answer
        .events
        .iter()
        .filter(|e| answer.in_range(e.resource_version) && e.key.starts_with(answer.prefix))
        .map(|e| (e.key.as_str(), e.resource_version))
        .collect();
    let n_delivered_writes =
        delivered.iter().filter(|(key, revision)| by_revision.get(revision).is_some_and(|w| w.key == *key)).count();
    if n_delivered_writes == n_expected {
        return;
    }
    for revision in &expected[from..to] {
        let write = by_revision[revision];
        if !delivered.contains(&(write.key, *revision)) {
            report(format!("missed {}@{revision} ({:?} by {})", write.key, write.verb, write.user));
        }
    }
}

/// The kind of watch event a committed write produces (Kubernetes' watch cache: a create
/// is Added, a delete Deleted, every other write Modified).
fn expected_kind(verb: Verb) -> WatchEventKind {
    match verb {
        Verb::Create => WatchEventKind::Added,
        Verb::Delete => WatchEventKind::Deleted,
        _ => WatchEventKind::Modified,
    }
}

/// The watch prefixes a key is visible under: its resource's, and for a namespaced key
/// (`/registry/<plural>/<namespace>/<name>`) also its namespace's. A built-in whose prefix
/// is deeper (Services under `/registry/services/specs/`) is found by its resource.
fn watch_prefixes(key: &str) -> Vec<String> {
    if let Some(resource) =
        api::Resource::from_key(key).filter(|r| matches!(r, api::Resource::Services | api::Resource::Endpoints))
    {
        let prefix = resource.key_prefix();
        return match key[prefix.len()..].split_once('/') {
            Some((namespace, _name)) => vec![prefix.clone(), format!("{prefix}{namespace}/")],
            None => vec![prefix],
        };
    }
    let Some(rest) = key.strip_prefix("/registry/") else {
        return Vec::new();
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [plural, _name] => vec![format!("/registry/{plural}/")],
        [plural, namespace, _name] => {
            vec![format!("/registry/{plural}/"), format!("/registry/{plural}/{namespace}/")]
        }
        _ => Vec::new(),
    }
}
