//! [`Invariant::RolloutBound`] (docs/design.md §4.16): the deployment controller never
//! asks for more pods than `replicas + maxSurge`, nor takes the available pods more than
//! `maxUnavailable` below `replicas`, judged against what its own informer had observed.
//!
//! Kubernetes' deployment controller (`pkg/controller/deployment/rolling.go`,
//! `util/deployment_util.go`) decides every scale of a rolling update from its
//! ReplicaSet lister: `NewRSNewReplicas` grows the new ReplicaSet only by what
//! `replicas + MaxSurge` leaves above the sum of every ReplicaSet's `spec.replicas`
//! (`GetReplicaCountForReplicaSets`); `reconcileOldReplicaSets` shrinks old ones only by
//! their unavailable replicas (`cleanupUnhealthyReplicas`) or by what the available pods
//! hold above `replicas - MaxUnavailable` (`scaleDownOldReplicaSetsForRollingUpdate`);
//! `recreate.go` scales the new ReplicaSet up only once every old one is at zero and its
//! pods are gone (`oldPodsRunning`). A cache that is behind (a partition, a paused leader)
//! changes what it decides, never the arithmetic, so the rule is judged on the view it
//! decided on, not on the store: a stale cache is no false alarm, an arithmetic that
//! ignores the budget is caught whatever the timing.
//!
//! The exact rule, for each `RolloutScaled` record (written just before the controller
//! sends the scale; `observed` is every ReplicaSet of the deployment as its informer had
//! them, with the scales it decided before in the same sync; `after` is `observed` with
//! the scaled ReplicaSet at `to`, a created one added; `available(rs)` is
//! `min(status.availableReplicas, spec.replicas)`, the pods that can stay available once
//! the ReplicaSet controller deleted down to `spec.replicas`, unavailable ones first):
//! - RollingUpdate, a scale up (`to > from`): `Σ spec.replicas` over `after` is at most
//!   `replicas + maxSurge`;
//! - RollingUpdate, a scale down (`to < from`): `Σ available` over `after` is at least
//!   `replicas - maxUnavailable`, unless it equals `Σ available` over `observed` (the
//!   write takes away only pods the controller saw unavailable: `cleanupUnhealthyReplicas`,
//!   or a ReplicaSet scaled to a size its available pods still fill);
//! - Recreate, a scale up: every other ReplicaSet in `observed` is at zero replicas with
//!   no pod in its status, and `Σ spec.replicas` over `after` is at most `replicas`
//!   (Recreate takes every pod away on purpose: no scale down is judged).
//!
//! `maxSurge` and `maxUnavailable` are as the controller resolved them (the record carries
//! them: Kubernetes' `ResolveFenceposts`, surge rounded up, unavailable down).
//!
//! Cost: O(n · r) for n records of r ReplicaSets each.

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{HistoryEvent, ObservedReplicaSetRecord, RolloutStrategyRecord};

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::RolloutBound);
    let mut n_scales = 0usize;
    for (at_ns, event) in input.history.events() {
        let HistoryEvent::RolloutScaled {
            controller,
            namespace,
            deployment,
            strategy,
            replicas,
            replica_set,
            from,
            to,
            observed,
        } = event
        else {
            continue;
        };
        n_scales += 1;
        let mut after = observed.clone();
        match after.iter_mut().find(|rs| &rs.name == replica_set) {
            Some(rs) => rs.replicas = *to,
            None => {
                after.push(ObservedReplicaSetRecord { name: replica_set.clone(), replicas: *to, available: 0, pods: 0 })
            }
        }
        let total_after: i32 = after.iter().map(|rs| rs.replicas).sum();
        let what = format!(
            "{controller} scaled ReplicaSet {replica_set} of deployment {namespace}/{deployment} ({replicas} replicas) \
             from {from} to {to}, having seen {}",
            describe(observed)
        );
        match *strategy {
            RolloutStrategyRecord::RollingUpdate { max_surge, max_unavailable } => {
                if to > from && total_after > replicas + max_surge {
                    violations.push(
                        Some(at_ns),
                        format!(
                            "{what}: {total_after} pods asked for, above replicas + maxSurge = {}",
                            replicas + max_surge
                        ),
                    );
                }
                let (before, now) = (available(observed), available(&after));
                if to < from && now < replicas - max_unavailable && now < before {
                    violations.push(
                        Some(at_ns),
                        format!(
                            "{what}: {now} pods left available (from {before}), below replicas - maxUnavailable = {}",
                            replicas - max_unavailable
                        ),
                    );
                }
            }
            RolloutStrategyRecord::Recreate if to > from => {
                let running_old: Vec<&ObservedReplicaSetRecord> =
                    observed.iter().filter(|rs| &rs.name != replica_set && (rs.replicas > 0 || rs.pods > 0)).collect();
                if !running_old.is_empty() {
                    violations.push(
                        Some(at_ns),
                        format!(
                            "{what}: Recreate scaled up while old ReplicaSets had pods: {}",
                            describe_refs(&running_old)
                        ),
                    );
                } else if total_after > *replicas {
                    violations.push(
                        Some(at_ns),
                        format!("{what}: {total_after} pods asked for, above replicas = {replicas}"),
                    );
                }
            }
            RolloutStrategyRecord::Recreate => {}
        }
    }
    violations.into_verdict(n_scales, format!("{n_scales} rollout scale writes judged against the controller's view"))
}

/// `Σ min(available, replicas)`: the available pods the ReplicaSets can keep.
fn available(replica_sets: &[ObservedReplicaSetRecord]) -> i32 {
    replica_sets.iter().map(|rs| rs.available.min(rs.replicas)).sum()
}

fn describe(replica_sets: &[ObservedReplicaSetRecord]) -> String {
    describe_refs(&replica_sets.iter().collect::<Vec<_>>())
}

fn describe_refs(replica_sets: &[&ObservedReplicaSetRecord]) -> String {
    if replica_sets.is_empty() {
        return "no ReplicaSet".to_string();
    }
    replica_sets
        .iter()
        .map(|rs| format!("{} {}/{} available, {} pods", rs.name, rs.available, rs.replicas, rs.pods))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testing::{check_one, h};

    const ROLLING: RolloutStrategyRecord = RolloutStrategyRecord::RollingUpdate { max_surge: 1, max_unavailable: 1 };

    fn rs(name: &str, replicas: i32, available: i32) -> ObservedReplicaSetRecord {
        ObservedReplicaSetRecord { name: name.into(), replicas, available, pods: replicas }
    }

    fn scaled(
        strategy: RolloutStrategyRecord,
        replica_set: &str,
        from: i32,
        to: i32,
        observed: Vec<ObservedReplicaSetRecord>,
    ) -> HistoryEvent {
        HistoryEvent::RolloutScaled {
            controller: "controller-manager-0".into(),
            namespace: "default".into(),
            deployment: "web".into(),
            strategy,
            replicas: 5,
            replica_set: replica_set.into(),
            from,
            to,
            observed,
        }
    }

    fn verdict(events: Vec<HistoryEvent>) -> Verdict {
        let history = events.into_iter().fold(h(), |history, event| history.event(event)).build();
        check_one(Invariant::RolloutBound, &history, None, Vec::new())
    }

    /// A rolling update of 5 replicas with maxSurge 1 and maxUnavailable 1, as Kubernetes'
    /// arithmetic makes it: the new ReplicaSet created at 1, the old one down to 4 (4 + 1
    /// available = 5 ≥ 4), the new one up to 2 once the old one shrank, ...
    #[test]
    fn a_rolling_update_within_its_budget_passes() {
        let v = verdict(vec![
            scaled(ROLLING, "new", 0, 1, vec![rs("old", 5, 5)]),
            scaled(ROLLING, "old", 5, 4, vec![rs("old", 5, 5), rs("new", 1, 0)]),
            scaled(ROLLING, "new", 1, 2, vec![rs("old", 4, 4), rs("new", 1, 0)]),
            // Unavailable pods only (cleanupUnhealthyReplicas): allowed below the budget.
            scaled(ROLLING, "old", 4, 2, vec![rs("old", 4, 2), rs("new", 2, 1)]),
            scaled(ROLLING, "old", 2, 1, vec![rs("old", 2, 2), rs("new", 4, 3)]),
        ]);
        assert!(v.passed(), "{:?}", v.violations);
        assert_eq!(v.checked, 5);
    }

    /// What the planted bug `rollout-ignores-max-surge` does: the new ReplicaSet straight
    /// to replicas beside a full old one.
    #[test]
    fn a_surge_beyond_max_surge_fires() {
        let v = verdict(vec![scaled(ROLLING, "new", 0, 5, vec![rs("old", 5, 5)])]);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].message.contains("10 pods asked for"), "{}", v.violations[0].message);
    }

    #[test]
    fn taking_available_pods_below_the_budget_fires() {
        let v = verdict(vec![scaled(ROLLING, "old", 5, 3, vec![rs("old", 5, 5), rs("new", 1, 0)])]);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].message.contains("3 pods left available"), "{}", v.violations[0].message);
    }

    /// Judged on the controller's view: a write that the store would show over budget
    /// (the cache was behind) is no violation when the view it was decided on allowed it.
    #[test]
    fn judged_on_the_view_not_on_the_truth() {
        // The view says the old ReplicaSet is at 3 (its cache is behind; the store has 5).
        let v = verdict(vec![scaled(ROLLING, "new", 2, 3, vec![rs("old", 3, 3), rs("new", 2, 2)])]);
        assert!(v.passed(), "{:?}", v.violations);
    }

    #[test]
    fn recreate_scales_up_only_after_the_old_pods_are_gone() {
        let fine = verdict(vec![
            scaled(RolloutStrategyRecord::Recreate, "old", 5, 0, vec![rs("old", 5, 5)]),
            scaled(RolloutStrategyRecord::Recreate, "new", 0, 5, vec![rs("old", 0, 0)]),
        ]);
        assert!(fine.passed(), "{:?}", fine.violations);
        let old_pods = ObservedReplicaSetRecord { name: "old".into(), replicas: 0, available: 0, pods: 2 };
        let early = verdict(vec![scaled(RolloutStrategyRecord::Recreate, "new", 0, 5, vec![old_pods])]);
        assert_eq!(early.violations.len(), 1, "{:?}", early.violations);
    }

    #[test]
    fn no_rollout_is_vacuous() {
        let v = verdict(Vec::new());
        assert!(v.passed());
        assert_eq!(v.checked, 0);
    }
}
