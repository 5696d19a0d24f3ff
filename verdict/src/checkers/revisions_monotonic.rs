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
    let mut seen = Seen {
        violations: Violations::new(Invariant::RevisionsNeverGoBackwards),
        checked: 0,
        highest: BTreeMap::new(),
        store_floor: vec![0; views.store_ops.len()],
        api_floor: vec![0; views.api_ops.len()],
        streams: BTreeMap::new(),
    };
    for (record_idx, record) in input.history.records.iter().enumerate() {
        let at_ns = record.at_ns;
        match &record.event {
            HistoryEvent::StoreOpInvoked { client, .. } => {
                let op_idx = views.store_ops.invoked_at(record_idx).expect("every invocation opens an operation");
                seen.store_floor[op_idx] = seen.floor_of(client.as_str());
            }
            HistoryEvent::StoreOpReturned { client, op_id, outcome } => {
                let Some(op_idx) = views.store_ops.returned_at(record_idx) else { continue };
                seen.store_op_returned(at_ns, op_idx, client.as_str(), *op_id, outcome);
            }
            HistoryEvent::ApiInvoked { client, .. } => {
                let request_idx = views.api_ops.invoked_at(record_idx).expect("every invocation opens a request");
                seen.api_floor[request_idx] = seen.floor_of(client.as_str());
            }
            HistoryEvent::ApiReturned { client, request_id, outcome } => {
                let Some(request_idx) = views.api_ops.returned_at(record_idx) else { continue };
                let verb = views.api_ops[request_idx].invocation.verb;
                seen.api_returned(at_ns, request_idx, verb, client.as_str(), *request_id, outcome);
            }
            HistoryEvent::WatchDelivered { client, resource, namespace, resource_version, .. } => {
                seen.watch_delivered(at_ns, client.as_str(), *resource, namespace, *resource_version);
            }
            _ => {}
        }
    }
    let summary = format!("{checked} answers checked against their client's earlier revisions", checked = seen.checked);
    seen.violations.into_verdict(seen.checked, summary)
}

/// The revisions each client has been answered with so far, and each operation's floor:
/// the revision its answer must not go below.
struct Seen<'h> {
    violations: Violations,
    checked: usize,
    /// The highest revision each client has been answered with.
    highest: BTreeMap<&'h str, Revision>,
    /// Per operation, by its index in the views: its client's highest revision when it began.
    store_floor: Vec<Revision>,
    api_floor: Vec<Revision>,
    /// The last resourceVersion of each watch stream (client, resource, namespace).
    streams: BTreeMap<(&'h str, Resource, &'h str), Revision>,
}

impl<'h> Seen<'h> {
    /// The floor of an operation `client` begins now.
    fn floor_of(&self, client: &str) -> Revision {
        self.highest.get(client).copied().unwrap_or(0)
    }

    /// `client` was answered with `revision`: its highest revision seen moves up to it.
    fn saw(&mut self, client: &'h str, revision: Revision) {
        let entry = self.highest.entry(client).or_insert(0);
        *entry = (*entry).max(revision);
    }

    fn store_op_returned(&mut self, at_ns: u64, op_idx: usize, client: &'h str, op_id: u64, outcome: &StoreOpOutcome) {
        let floor = self.store_floor[op_idx];
        let Some((revision, new)) = answered_revision(outcome) else { return };
        self.checked += 1;
        if revision < floor || (new && revision == floor && floor > 0) {
            self.violations.push(
                Some(at_ns),
                format!(
                    "store op {client}#{op_id} answered at revision {revision}, not above revision {floor} \
                     the client had seen before it began"
                ),
            );
        }
        self.saw(client, revision);
    }

    fn api_returned(
        &mut self,
        at_ns: u64,
        request_idx: usize,
        verb: Verb,
        client: &'h str,
        request_id: u64,
        outcome: &ApiOutcome,
    ) {
        let floor = self.api_floor[request_idx];
        let ApiOutcome::Ok { resource_version } = outcome else { return };
        if !is_write(verb) {
            return;
        }
        self.checked += 1;
        // Every write makes a new revision.
        if *resource_version <= floor && floor > 0 {
            self.violations.push(
                Some(at_ns),
                format!(
                    "{client}'s {verb:?} request {request_id} answered resourceVersion {resource_version}, \
                     not above {floor} the client had seen before it began"
                ),
            );
        }
        self.saw(client, *resource_version);
    }

    /// Each watch stream is one sequence of long polls: its resourceVersion never decreases.
    fn watch_delivered(
        &mut self,
        at_ns: u64,
        client: &'h str,
        resource: Resource,
        namespace: &'h str,
        resource_version: Revision,
    ) {
        self.checked += 1;
        let last = self.streams.entry((client, resource, namespace)).or_insert(0);
        if resource_version < *last {
            self.violations.push(
                Some(at_ns),
                format!(
                    "{client}'s watch of {resource:?} in '{namespace}' went from resourceVersion {last} \
                     back to {resource_version}"
                ),
            );
        }
        *last = (*last).max(resource_version);
        self.saw(client, resource_version);
    }
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
