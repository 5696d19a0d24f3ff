//! Shared evidence for the Kubernetes-level checkers: API writes the apiserver
//! acknowledged (an `ApiInvoked` write paired with its `ApiReturned` Ok), and the
//! apiserver's own record of each store write (`StoreWrite`), both by revision.
//!
//! Cost: O(n log n) in records (a map of pending requests by (client, request id)).

use std::collections::BTreeMap;

use api::{Resource, Verb};
use store::api::Revision;

use crate::history::{ApiOutcome, History, HistoryEvent};

/// An API write some client was told committed.
#[derive(Clone, Debug)]
pub(crate) struct AcknowledgedApiWrite<'h> {
    /// The node that sent it (controller-manager-1, kubelet-2, kubectl).
    pub client: &'h str,
    pub request_id: u64,
    pub verb: Verb,
    pub resource: Resource,
    pub namespace: &'h str,
    pub name: &'h str,
    /// The resourceVersion the answer carried: the commit's revision.
    pub revision: Revision,
    /// When the answer was recorded.
    pub at_ns: u64,
}

impl AcknowledgedApiWrite<'_> {
    pub fn key(&self) -> String {
        self.resource.key(self.namespace, self.name)
    }

    /// "pods/default/x", for messages.
    pub fn object(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.resource.plural(), self.name)
        } else {
            format!("{}/{}/{}", self.resource.plural(), self.namespace, self.name)
        }
    }
}

/// Every acknowledged API write, in the order the answers were recorded.
pub(crate) fn acknowledged_api_writes(history: &History) -> Vec<AcknowledgedApiWrite<'_>> {
    let mut pending: BTreeMap<(&str, u64), (Verb, Resource, &str, &str)> = BTreeMap::new();
    let mut acknowledged = Vec::new();
    for (at_ns, event) in history.events() {
        match event {
            HistoryEvent::ApiInvoked { client, request_id, verb, resource, namespace, name } if verb.is_write() => {
                pending.insert((client, *request_id), (*verb, *resource, namespace, name));
            }
            HistoryEvent::ApiReturned { client, request_id, outcome } => {
                let Some((verb, resource, namespace, name)) = pending.remove(&(client.as_str(), *request_id)) else {
                    continue;
                };
                if let ApiOutcome::Ok { resource_version } = outcome {
                    acknowledged.push(AcknowledgedApiWrite {
                        client,
                        request_id: *request_id,
                        verb,
                        resource,
                        namespace,
                        name,
                        revision: *resource_version,
                        at_ns,
                    });
                }
            }
            _ => {}
        }
    }
    acknowledged
}

/// One store write an apiserver committed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CommittedStoreWrite<'h> {
    pub user: &'h str,
    pub verb: Verb,
    pub key: &'h str,
    pub revision: Revision,
    pub at_ns: u64,
}

/// Every `StoreWrite`, sorted by revision (records arrive in the order the apiservers
/// learnt of their commits, which several apiservers may interleave out of revision order).
pub(crate) fn store_writes_by_revision(history: &History) -> Vec<CommittedStoreWrite<'_>> {
    let mut writes: Vec<CommittedStoreWrite> = history
        .events()
        .filter_map(|(at_ns, event)| match event {
            HistoryEvent::StoreWrite { user, verb, key, revision, .. } => {
                Some(CommittedStoreWrite { user, verb: *verb, key, revision: *revision, at_ns })
            }
            _ => None,
        })
        .collect();
    writes.sort_by_key(|w| w.revision);
    writes
}
