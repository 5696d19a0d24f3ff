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
//! Evidence of pods' lives: the apiserver's committed Create and Delete store writes, and
//! the Added/Deleted events watches delivered (which also show creates whose answer was
//! lost), deduplicated by (key, revision).
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
    let PodEvidence { changes, desired_at } = PodEvidence::of(input);
    let deployments: BTreeSet<&str> = desired_at.iter().map(|(_, d, _)| d.as_str()).collect();
    // ReplicaSet ("namespace/rs-name") -> its live pod keys.
    let mut live: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    // Per ReplicaSet, whether its surplus was reported already (one violation per surplus
    // episode, not one per revision).
    let mut in_surplus: BTreeSet<String> = BTreeSet::new();
    let mut n_checked = 0usize;
    for ((revision, key), (change, at_ns)) in &changes {
        let Some(rs) = replicaset_of(key) else {
            continue;
        };
        let pods = live.entry(rs.clone()).or_default();
        match change {
            Change::Created if ambiguous.contains(*key) => continue,
            Change::Created => {
                pods.insert(key);
            }
            Change::Deleted => {
                pods.remove(key);
                if pods.len() <= max_desired(&desired_at, &rs, *at_ns).map_or(usize::MAX, |(_, n)| n) {
                    in_surplus.remove(&rs);
                }
                continue;
            }
        }
        let Some((deployment, max_replicas)) = max_desired(&desired_at, &rs, *at_ns) else {
            continue;
        };
        n_checked += 1;
        if pods.len() > max_replicas && in_surplus.insert(rs.clone()) {
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
            live.len(),
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
}

impl<'a> PodEvidence<'a> {
    fn of(input: &'a CheckInput) -> Self {
        let mut evidence = PodEvidence { changes: BTreeMap::new(), desired_at: Vec::new() };
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
