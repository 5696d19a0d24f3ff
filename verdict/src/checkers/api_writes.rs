//! Shared evidence for the Kubernetes-level checkers: API writes the apiserver
//! acknowledged (an `ApiInvoked` write answered by an `ApiReturned` Ok, as the history's
//! [`ApiOps`] pair them), and the apiserver's own record of each store write
//! (`StoreWrite`), both by revision.
//!
//! Cost: O(n) in API requests, O(n log n) in store writes (sorted by revision).

use api::{Resource, Verb};
use store::api::Revision;

use crate::history::{ApiOutcome, History, HistoryEvent};
use crate::views::ApiOps;

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
pub(crate) fn acknowledged_api_writes<'h>(api_ops: &ApiOps<'h>) -> Vec<AcknowledgedApiWrite<'h>> {
    api_ops
        .in_return_order()
        .filter(|request| request.invocation.verb.is_write())
        .filter_map(|request| {
            let returned = request.returned.as_ref()?;
            let ApiOutcome::Ok { resource_version } = returned.outcome else { return None };
            Some(AcknowledgedApiWrite {
                client: request.client,
                request_id: request.id,
                verb: request.invocation.verb,
                resource: request.invocation.resource,
                namespace: request.invocation.namespace,
                name: request.invocation.name,
                revision: *resource_version,
                at_ns: returned.at.at_ns,
            })
        })
        .collect()
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
