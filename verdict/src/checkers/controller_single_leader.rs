//! [`Invariant::ControllerSingleLeader`] (docs/design.md §4.3): for each leader-elected
//! component (kube-controller-manager, kube-scheduler), the writes the apiserver accepted
//! come from one leader epoch at a time.
//!
//! client-go's `leaderelection` hands out epochs through a Lease: a candidate becomes
//! leader by writing the lease (a compare-and-swap on its resourceVersion), so epochs are
//! totally ordered by the lease revision each acquisition committed at
//! (`LeaderAcquired.lease_resource_version`). A write that committed at revision r belongs
//! to the epoch of the latest acquisition with lease revision < r; it must come from that
//! epoch's holder. Kubernetes does not fence, so a leader paused past the lease duration
//! resumes still believing it leads and writes beside its successor; kubesim's fence (the
//! apiserver compares the lease in the write's own transaction) makes that write fail.
//!
//! Evidence: each acknowledged API write (`ApiInvoked` + `ApiReturned` Ok, whose
//! resourceVersion is the commit revision) by a node that ever acquired the component's
//! lease. The lease writes themselves are the election (arbitrated by the lease's own
//! compare-and-swap) and are left out, and so are Events: they report what happened rather
//! than change cluster state, and client-go's event broadcaster belongs to the process,
//! not to a term, so a deposed leader's queued Events may land after its successor took
//! over. Writes whose answer was lost are not attributable
//! to a node and are not examined. Kubelets are not leader-elected and are skipped.
//!
//! Cost: O(n log n) (epochs sorted by lease revision, a binary search per write).

use std::collections::BTreeMap;

use api::Resource;

use super::api_writes::acknowledged_api_writes;
use super::{CheckInput, Invariant, Verdict, Views, Violations};
use crate::history::HistoryEvent;

/// One leadership epoch: `identity` acquired `component`'s lease at `lease_revision`.
#[derive(Clone, Debug)]
struct Epoch<'h> {
    component: &'h str,
    identity: &'h str,
    lease_revision: i64,
}

pub(super) fn check(input: &CheckInput, views: &Views) -> Verdict {
    let mut violations = Violations::new(Invariant::ControllerSingleLeader);
    // component -> epochs sorted by lease revision; identity -> its component.
    let mut epochs: BTreeMap<&str, Vec<Epoch>> = BTreeMap::new();
    let mut component_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (_, event) in input.history.events() {
        if let HistoryEvent::LeaderAcquired { component, identity, lease_resource_version, .. } = event {
            epochs.entry(component).or_default().push(Epoch {
                component,
                identity,
                lease_revision: *lease_resource_version,
            });
            component_of.insert(identity, component);
        }
    }
    for component_epochs in epochs.values_mut() {
        component_epochs.sort_by_key(|e| e.lease_revision);
    }
    let mut n_writes = 0usize;
    for write in acknowledged_api_writes(&views.api_ops) {
        let Some(component) = component_of.get(write.client) else {
            continue;
        };
        if matches!(write.resource, Resource::Leases | Resource::Events) {
            continue;
        }
        n_writes += 1;
        let component_epochs = &epochs[component];
        let n_before = component_epochs.partition_point(|e| e.lease_revision < write.revision);
        let holder = n_before.checked_sub(1).map(|idx| &component_epochs[idx]);
        match holder {
            Some(epoch) if epoch.identity == write.client => {}
            Some(epoch) => violations.push(
                Some(write.at_ns),
                format!(
                    "{} wrote {} ({:?}) at revision {} while {} held the {} lease since revision {}",
                    write.client,
                    write.object(),
                    write.verb,
                    write.revision,
                    epoch.identity,
                    epoch.component,
                    epoch.lease_revision
                ),
            ),
            None => violations.push(
                Some(write.at_ns),
                format!(
                    "{} wrote {} ({:?}) at revision {}, before anyone acquired the {component} lease",
                    write.client,
                    write.object(),
                    write.verb,
                    write.revision
                ),
            ),
        }
    }
    let n_epochs: usize = epochs.values().map(Vec::len).sum();
    violations.into_verdict(
        n_writes,
        format!(
            "{n_writes} writes by leader-elected components against {n_epochs} leader epochs of {} components",
            epochs.len()
        ),
    )
}
