//! [`Invariant::PodBoundOnce`] (docs/design.md §1 and §4.12): a pod's `spec.nodeName` is
//! set at most once, and no pod runs on two kubelets at once.
//!
//! Kubernetes' binding subresource (`pkg/registry/core/pod/storage` `assignPod`) refuses
//! to bind a pod whose `spec.nodeName` is already set (409 Conflict), and an update may
//! never change it; a kubelet runs only pods bound to its own node. So:
//! - per pod life (a key from its Create to its Delete; a pod deleted and created again
//!   under the same name is a new object with a new uid), at most one Bind store write
//!   committed, ordered by revision;
//! - per pod uid, a kubelet starts its containers only while no other kubelet runs them
//!   (a `PodStarted` on node B while node A's `PodStarted` has no `PodStopped` yet).
//!
//! A kubelet starting the same uid again on its own node (after a kubelet restart) is
//! not a second node and is allowed.
//!
//! Cost: O(n log n) (store writes sorted by revision, maps by key and by uid).

use std::collections::BTreeMap;

use api::Verb;
use store::api::Revision;

use super::api_writes::store_writes_by_revision;
use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::HistoryEvent;

const POD_PREFIX: &str = "/registry/pods/";

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::PodBoundOnce);
    let n_binds = check_bound_once(input, &mut violations);
    let n_starts = check_one_kubelet(input, &mut violations);
    violations
        .into_verdict(n_binds + n_starts, format!("{n_binds} committed bindings, {n_starts} pod starts on kubelets"))
}

/// At most one committed Bind per pod life; returns the number of Binds examined.
fn check_bound_once(input: &CheckInput, violations: &mut Violations) -> usize {
    // Pod key -> the revision of the Bind of its current life, if bound.
    let mut bound_at: BTreeMap<&str, Option<Revision>> = BTreeMap::new();
    let mut n_binds = 0;
    for write in store_writes_by_revision(input.history) {
        if !write.key.starts_with(POD_PREFIX) {
            continue;
        }
        match write.verb {
            Verb::Create => {
                bound_at.insert(write.key, None);
            }
            Verb::Delete => {
                bound_at.remove(write.key);
            }
            Verb::Bind => {
                n_binds += 1;
                let life = bound_at.entry(write.key).or_default();
                if let Some(first) = *life {
                    violations.push(
                        Some(write.at_ns),
                        format!(
                            "{} was bound at revision {first} and bound again at revision {} (by {}) \
                             without being deleted in between",
                            write.key, write.revision, write.user
                        ),
                    );
                } else {
                    *life = Some(write.revision);
                }
            }
            _ => {}
        }
    }
    n_binds
}

/// No uid runs on two kubelets at once; returns the number of starts examined.
fn check_one_kubelet(input: &CheckInput, violations: &mut Violations) -> usize {
    // uid -> node -> when its kubelet started it (and has not stopped it since).
    let mut running: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    let mut n_starts = 0;
    for (at_ns, event) in input.history.events() {
        match event {
            HistoryEvent::PodStarted { node, namespace, name, uid } => {
                n_starts += 1;
                let nodes = running.entry(uid).or_default();
                for (other, started_ns) in nodes.iter().filter(|(other, _)| **other != node.as_str()) {
                    violations.push(
                        Some(at_ns),
                        format!(
                            "pod {namespace}/{name} (uid {uid}) started on {node} while still running on {other} \
                             (started there at {:.6}s)",
                            *started_ns as f64 / 1e9
                        ),
                    );
                }
                nodes.entry(node.as_str()).or_insert(at_ns);
            }
            HistoryEvent::PodStopped { node, uid, .. } => {
                if let Some(nodes) = running.get_mut(uid.as_str()) {
                    nodes.remove(node.as_str());
                }
            }
            _ => {}
        }
    }
    n_starts
}
