//! [`Invariant::RevisionsNeverGoBackwards`] (docs/design.md §4.5): no client observes a
//! revision lower than one it observed before, across restores too.
//!
//! Revisions observed are the ones that stand for "the store now": a store operation's
//! answer revision (write or linearizable read), an API write's new resourceVersion
//! (create, update, status update, bind) and a watch answer's resourceVersion. An object's
//! resourceVersion on a get is its last modification, legitimately old, and is not one.
//! Concurrency is respected: an operation must answer at a revision at least as high as
//! every answer its client had received before it began (operations in flight together
//! may answer in either order); each watch stream (client, resource, namespace) is one
//! sequence of long polls, so its resourceVersion never decreases.
//!
//! etcd's `snapshot restore --bump-revision --mark-compacted` exists for this: a restore
//! that reuses revisions makes Kubernetes clients compare resourceVersions that mean
//! different states (kubernetes/kubernetes#109541).
//!
//! Operations are paired as the history's views pair them (`crate::views`).
//!
//! Cost: O(n log n) in records.

use std::collections::BTreeMap;

use api::{Resource, Verb};
use store::api::Revision;

use super::{CheckInput, Invariant, Verdict, Views, Violations};
use crate::history::{ApiOutcome, HistoryEvent, StoreOpOutcome};

pub(super) fn check(input: &CheckInput, views: &Views) -> Verdict {
    let mut violations = Violations::new(Invariant::RevisionsNeverGoBackwards);
    let mut checked = 0;
    // The highest revision each client has been answered with.
    let mut highest: BTreeMap<&str, Revision> = BTreeMap::new();
    // Per operation, by its index in the views: its client's highest revision when it began.
    let mut store_floor: Vec<Revision> = vec![0; views.store_ops.len()];
    let mut api_floor: Vec<Revision> = vec![0; views.api_ops.len()];
    let mut streams: BTreeMap<(&str, Resource, &str), Revision> = BTreeMap::new();
    for (record_idx, record) in input.history.records.iter().enumerate() {
        match &record.event {
            HistoryEvent::StoreOpInvoked { client, .. } => {
                let op_idx = views.store_ops.invoked_at(record_idx).expect("every invocation opens an operation");
                store_floor[op_idx] = highest.get(client.as_str()).copied().unwrap_or(0);
            }
            HistoryEvent::StoreOpReturned { client, op_id, outcome } => {
                let Some(op_idx) = views.store_ops.returned_at(record_idx) else { continue };
                let floor = store_floor[op_idx];
                let Some((revision, new)) = answered_revision(outcome) else { continue };
                checked += 1;
                if revision < floor || (new && revision == floor && floor > 0) {
                    violations.push(
                        Some(record.at_ns),
                        format!(
                            "store op {client}#{op_id} answered at revision {revision}, not above revision {floor} \
                             the client had seen before it began"
                        ),
                    );
                }
                saw(&mut highest, client, revision);
            }
            HistoryEvent::ApiInvoked { client, .. } => {
                let request_idx = views.api_ops.invoked_at(record_idx).expect("every invocation opens a request");
                api_floor[request_idx] = highest.get(client.as_str()).copied().unwrap_or(0);
            }
            HistoryEvent::ApiReturned { client, request_id, outcome } => {
                let Some(request_idx) = views.api_ops.returned_at(record_idx) else { continue };
                let (floor, verb) = (api_floor[request_idx], views.api_ops[request_idx].invocation.verb);
                let ApiOutcome::Ok { resource_version } = outcome else { continue };
                if !is_write(verb) {
                    continue;
                }
                checked += 1;
                // Every write makes a new revision.
                if *resource_version <= floor && floor > 0 {
                    violations.push(
                        Some(record.at_ns),
                        format!(
                            "{client}'s {verb:?} request {request_id} answered resourceVersion {resource_version}, \
                             not above {floor} the client had seen before it began"
                        ),
                    );
                }
                saw(&mut highest, client, *resource_version);
            }
            HistoryEvent::WatchDelivered { client, resource, namespace, resource_version, .. } => {
                checked += 1;
                let last = streams.entry((client, *resource, namespace)).or_insert(0);
                if *resource_version < *last {
                    violations.push(
                        Some(record.at_ns),
                        format!(
                            "{client}'s watch of {resource:?} in '{namespace}' went from resourceVersion {last} \
                             back to {resource_version}"
                        ),
                    );
                }
                *last = (*last).max(*resource_version);
                saw(&mut highest, client, *resource_version);
            }
            _ => {}
        }
    }
    let summary = format!("{checked} answers checked against their client's earlier revisions");
    violations.into_verdict(checked, summary)
}

/// The revision a store operation was answered at, and whether the answer made it (a
/// successful write makes a new revision, so it must be above everything the client saw;
/// a read or a failed compare may answer at the same revision). `None`: the answer
/// carries no revision.
fn answered_revision(outcome: &StoreOpOutcome) -> Option<(Revision, bool)> {
    match outcome {
        StoreOpOutcome::Written { revision, succeeded } => Some((*revision, *succeeded)),
        StoreOpOutcome::Read { revision, .. } => Some((*revision, false)),
        StoreOpOutcome::Failed { .. } | StoreOpOutcome::Unknown { .. } => None,
    }
}

/// Whether an API verb writes, and so makes a new revision.
fn is_write(verb: Verb) -> bool {
    matches!(verb, Verb::Create | Verb::Update | Verb::UpdateStatus | Verb::Bind)
}

/// `client` was answered with `revision`: its highest revision seen moves up to it.
fn saw<'a>(highest: &mut BTreeMap<&'a str, Revision>, client: &'a str, revision: Revision) {
    let entry = highest.entry(client).or_insert(0);
    *entry = (*entry).max(revision);
}
