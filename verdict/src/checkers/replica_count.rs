//! The safety half of [`Invariant::Convergence`] (docs/design.md §1 and §4.13): a
//! ReplicaSet never has more live pods than the most replicas its deployment was ever asked
//! for.
//!
//! Kubernetes' ReplicaSet controller (`pkg/controller/replicaset`) creates pods when its
//! informer cache shows fewer than `spec.replicas`; the cache lags the store, so it records
//! *expectations* (creates issued, not yet observed) and does not act again until they are
//! met or expire. Without them a stale cache makes it create the same missing pods twice.
//! Pods of ReplicaSet `<rs>` are named `<rs>-<suffix>`, and a deployment's ReplicaSets are
//! named `<deployment>-<template hash>`. So at every store revision, for each
//! ReplicaSet of a deployment, the pods created and not yet deleted must number at most
//! the largest `replicas` the user asked of that deployment so far (`DesiredReplicas`,
//! recorded before each kubectl create/scale). Comparing with the maximum so far keeps a
//! scale-down's transient surplus (pods not yet deleted) allowed.
//!
//! A create that failed with an unknown outcome (a timeout, a lost answer) is excused:
//! Kubernetes' controller lowers its expectations on any create error (it "will never be
//! observed"), so when such a create did commit, the controller may create a replacement
//! before its informer shows the first one, a transient surplus it then deletes (seed
//! 170 of the default campaign shows it). Live pods whose create was answered with an
//! error are therefore not counted; a stale cache without expectations over-creates with
//! acknowledged creates, which are.
//!
//! Evidence of pods' lives: the apiserver's committed Create and Delete store writes, the
//! Added/Deleted events watches delivered (which also show creates whose answer was
//! lost), and the deletes of the store's own record of each revision (`Committed`),
//! deduplicated by (key, revision). The last is needed for a delete whose answer was lost
//! and that no watch delivered because every watcher relisted past it (found by the
//! generated workload, seed 217 when it was first run: a drain's eviction committed during packet loss, the watch cache's
//! window too small to keep it): without it the pod would live on in the evidence while
//! the controller rightly replaced it.
//!
//! A ReplicaSet name can have several lives: the garbage collector deletes a deleted
//! deployment's ReplicaSet, and the deployment controller, from a cache that still shows
//! the deployment, may create it again under the same name while the first one's pods are
//! still being collected. Where the history shows which ReplicaSet (by uid) owns a pod
//! (`ObjectWritten`, recorded when the control plane runs the garbage collector), the pod
//! counts for that life of the name only; elsewhere a name has one life.
//!
//! The liveness half (Running pods within a bound after faults heal, no surplus at rest)
//! is `awaited.rs`, judged from what the scenario's user waited for and saw; both halves
//! make one verdict.
//!
//! Cost: O(n log n) (pod lifecycle changes sorted by revision; maps by key and ReplicaSet),
//! times the handful of `DesiredReplicas` records scanned per pod change.

use std::collections::{BTreeMap, BTreeSet};

use api::{Resource, Verb, WatchEventKind};
use store::api::Revision;

use super::{CheckInput, Invariant, Verdict, Views, Violations};
use crate::history::{ApiOutcome, HistoryEvent};
use crate::views::ApiInvocation;

/// A pod's life began (created) or ended (deleted) at a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    Created,
    Deleted,
}

pub(super) fn check(input: &CheckInput, views: &Views) -> Verdict {
    let mut violations = Violations::new(Invariant::Convergence);
    let ambiguous = ambiguous_pod_creates(views);
    let PodEvidence { changes, desired_at, owner_at } = PodEvidence::of(input);
    let deployments: BTreeSet<&str> = desired_at.iter().map(|(_, d, _)| d.as_str()).collect();
    // A life of a ReplicaSet ("namespace/rs-name", and its uid where known) -> its live
    // pod keys.
    let mut live: BTreeMap<(String, &str), BTreeSet<&str>> = BTreeMap::new();
    // The ReplicaSet life each live pod counts for.
    let mut life_of: BTreeMap<&str, (String, &str)> = BTreeMap::new();
    // Per ReplicaSet life, whether its surplus was reported already (one violation per
    // surplus episode, not one per revision).
    let mut in_surplus: BTreeSet<(String, &str)> = BTreeSet::new();
    let mut n_checked = 0usize;
    for ((revision, key), (change, at_ns)) in &changes {
        let Some(rs) = replicaset_of(key) else {
            continue;
        };
        let life = match change {
            Change::Created if ambiguous.contains(*key) => continue,
            Change::Created => {
                let life = (rs.clone(), owner_at.get(&(*revision, *key)).copied().unwrap_or(""));
                life_of.insert(key, life.clone());
                live.entry(life.clone()).or_default().insert(key);
                life
            }
            Change::Deleted => {
                let Some(life) = life_of.remove(key) else {
                    continue;
                };
                let pods = live.entry(life.clone()).or_default();
                pods.remove(key);
                if pods.len() <= max_desired(&desired_at, &rs, *at_ns).map_or(usize::MAX, |(_, n)| n) {
                    in_surplus.remove(&life);
                }
                continue;
            }
        };
        let pods = &live[&life];
        let Some((deployment, max_replicas)) = max_desired(&desired_at, &rs, *at_ns) else {
            continue;
        };
        n_checked += 1;
        if pods.len() > max_replicas && in_surplus.insert(life.clone()) {
            violations.push(
                Some(*at_ns),
                format!(
                    "replicaset {rs} had {} live pods at revision {revision} (latest {key}) while \
                     deployment {deployment} was never asked for more than {max_replicas}",
                    pods.len()
                ),
            );
        }
    }
    violations.into_verdict(
        n_checked,
        format!(
            "{n_checked} pod creations of {} replicasets against the desired replicas of {} deployments \
             ({} pods whose create was answered with an error not counted)",
            live.keys().map(|(rs, _)| rs).collect::<BTreeSet<_>>().len(),
            deployments.len(),
            ambiguous.len()
        ),
    )
}

/// The keys of pods whose create was answered with an error: such a create may have
/// committed, and the controller may have replaced it meanwhile (see the module doc).
fn ambiguous_pod_creates(views: &Views) -> BTreeSet<String> {
    views
        .api_ops
        .iter()
        .filter(|request| {
            matches!(request.invocation, ApiInvocation { verb: Verb::Create, resource: Resource::Pods, .. })
                && request.returned.is_some_and(|returned| matches!(returned.outcome, ApiOutcome::Error { .. }))
        })
        .map(|request| Resource::Pods.key(request.invocation.namespace, request.invocation.name))
        .collect()
}

/// The ReplicaSet ("namespace/rs-name") a pod key belongs to by its name
/// (`<rs>-<suffix>`), if it is a pod key of that shape.
fn replicaset_of(key: &str) -> Option<String> {
    let (namespace, pod_name) = key.strip_prefix(Resource::Pods.key_prefix().as_str())?.split_once('/')?;
    let (rs_name, _suffix) = pod_name.rsplit_once('-')?;
    Some(format!("{namespace}/{rs_name}"))
}

/// What the history shows of pods' lives and of what the user asked for.
struct PodEvidence<'a> {
    /// (revision, pod key) -> change, with when it was first recorded.
    changes: BTreeMap<(Revision, &'a str), (Change, u64)>,
    /// (when, namespace/deployment, replicas) in record order: DesiredReplicas has no
    /// revision, so it applies to every change recorded after it.
    desired_at: Vec<(u64, String, i32)>,
    /// (revision, pod key) -> the uid of the ReplicaSet that owned the pod written then,
    /// where the history records it (`ObjectWritten`).
    owner_at: BTreeMap<(Revision, &'a str), &'a str>,
}

impl<'a> PodEvidence<'a> {
    fn of(input: &'a CheckInput) -> Self {
        let mut evidence = PodEvidence { changes: BTreeMap::new(), desired_at: Vec::new(), owner_at: BTreeMap::new() };
        let pod_prefix = Resource::Pods.key_prefix();
        for (at_ns, event) in input.history.events() {
            match event {
                HistoryEvent::StoreWrite { verb, key, revision, .. } if key.starts_with(&pod_prefix) => {
                    let change = match verb {
                        Verb::Create => Change::Created,
                        Verb::Delete => Change::Deleted,
                        _ => continue,
                    };
                    evidence.changes.entry((*revision, key)).or_insert((change, at_ns));
                }
                HistoryEvent::WatchDelivered { resource: Resource::Pods, events, .. } => {
                    for e in events {
                        let change = match e.kind {
                            WatchEventKind::Added => Change::Created,
                            WatchEventKind::Deleted => Change::Deleted,
                            WatchEventKind::Modified => continue,
                        };
                        evidence.changes.entry((e.resource_version, &e.key)).or_insert((change, at_ns));
                    }
                }
                HistoryEvent::Committed { revision, changes } => {
                    for change in changes.iter().filter(|c| c.value_hash.is_none() && c.key.starts_with(&pod_prefix)) {
                        evidence.changes.entry((*revision, &change.key)).or_insert((Change::Deleted, at_ns));
                    }
                }
                HistoryEvent::ObjectWritten { key, revision, meta, removed: false } if key.starts_with(&pod_prefix) => {
                    if let Some(owner) = meta.owners.iter().find(|owner| owner.kind == "ReplicaSet") {
                        evidence.owner_at.insert((*revision, key), &owner.uid);
                    }
                }
                HistoryEvent::DesiredReplicas { namespace, deployment, replicas } => {
                    evidence.desired_at.push((at_ns, format!("{namespace}/{deployment}"), *replicas));
                }
                _ => {}
            }
        }
        evidence
    }
}

/// The deployment ReplicaSet `rs` ("namespace/name") belongs to and the most replicas
/// the user asked of it in records up to `at_ns`, if the user ever asked.
fn max_desired(desired_at: &[(u64, String, i32)], rs: &str, at_ns: u64) -> Option<(String, usize)> {
    desired_at
        .iter()
        .filter(|(asked_ns, deployment, _)| {
            *asked_ns <= at_ns && rs.strip_prefix(deployment.as_str()).is_some_and(|rest| rest.starts_with('-'))
        })
        .map(|(_, deployment, replicas)| (deployment.clone(), (*replicas).max(0) as usize))
        .max_by_key(|(_, n)| *n)
}
