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
//! Cost: O(n log n) in records.

use std::collections::BTreeMap;

use api::{Resource, Verb};
use store::api::Revision;

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{ApiOutcome, HistoryEvent, StoreOpOutcome};

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::RevisionsNeverGoBackwards);
    let mut checked = 0;
    // The highest revision each client has been answered with.
    let mut highest: BTreeMap<&str, Revision> = BTreeMap::new();
    // Per operation in flight: the client's highest revision when it began.
    let mut store_floor: BTreeMap<(&str, u64), Revision> = BTreeMap::new();
    let mut api_floor: BTreeMap<(&str, u64), (Revision, Verb)> = BTreeMap::new();
    let mut streams: BTreeMap<(&str, Resource, &str), Revision> = BTreeMap::new();
    for record in &input.history.records {
        match &record.event {
            HistoryEvent::StoreOpInvoked { client, op_id, .. } => {
                store_floor.insert((client, *op_id), highest.get(client.as_str()).copied().unwrap_or(0));
            }
            HistoryEvent::StoreOpReturned { client, op_id, outcome } => {
                let Some(floor) = store_floor.remove(&(client.as_str(), *op_id)) else { continue };
                // A successful write makes a new revision, so it must be above everything
                // seen; a read or a failed compare may answer at the same revision.
                let (revision, new) = match outcome {
                    StoreOpOutcome::Written { revision, succeeded } => (*revision, *succeeded),
                    StoreOpOutcome::Read { revision, .. } => (*revision, false),
                    StoreOpOutcome::Failed { .. } | StoreOpOutcome::Unknown { .. } => continue,
                };
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
                let entry = highest.entry(client).or_insert(0);
                *entry = (*entry).max(revision);
            }
            HistoryEvent::ApiInvoked { client, request_id, verb, .. } => {
                api_floor.insert((client, *request_id), (highest.get(client.as_str()).copied().unwrap_or(0), *verb));
            }
            HistoryEvent::ApiReturned { client, request_id, outcome } => {
                let Some((floor, verb)) = api_floor.remove(&(client.as_str(), *request_id)) else { continue };
                let ApiOutcome::Ok { resource_version } = outcome else { continue };
                if !matches!(verb, Verb::Create | Verb::Update | Verb::UpdateStatus | Verb::Bind) {
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
                let entry = highest.entry(client).or_insert(0);
                *entry = (*entry).max(*resource_version);
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
                let entry = highest.entry(client).or_insert(0);
                *entry = (*entry).max(*resource_version);
            }
            _ => {}
        }
    }
    let summary = format!("{checked} answers checked against their client's earlier revisions");
    violations.into_verdict(checked, summary)
}
