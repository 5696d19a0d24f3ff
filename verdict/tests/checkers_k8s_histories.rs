//! The Kubernetes-level checkers on small hand-made histories: for each, one history
//! where it must fire (the violation names the evidence) and one where it must not.

use api::{Resource, Verb, WatchEventKind};
use verdict::checkers::testing::{check_one, h};
use verdict::checkers::{Invariant, Verdict};
use verdict::history::History;

const CM: &str = "kube-controller-manager";
const CM_USER: &str = "system:kube-controller-manager";

fn check(invariant: Invariant, history: &History) -> Verdict {
    check_one(invariant, history, None, vec![])
}

fn messages(verdict: &Verdict) -> Vec<&str> {
    verdict.violations.iter().map(|v| v.message.as_str()).collect()
}

/// Asserts exactly one violation, whose message contains every piece of `evidence`.
#[track_caller]
fn assert_one_violation(verdict: &Verdict, evidence: &[&str]) {
    let messages = messages(verdict);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    for piece in evidence {
        assert!(messages[0].contains(piece), "'{piece}' not in: {}", messages[0]);
    }
}

#[track_caller]
fn assert_passes(verdict: &Verdict, checked: usize) {
    assert!(verdict.passed(), "{:#?}", verdict.violations);
    assert_eq!(verdict.checked, checked, "{}", verdict.summary);
}

fn pod_key(name: &str) -> String {
    Resource::Pods.key("default", name)
}

mod controller_single_leader {
    use super::*;

    /// cm-0 leads from lease revision 10, cm-1 takes over at 20 (cm-0 was paused).
    fn two_epochs() -> verdict::checkers::testing::HistoryBuilder {
        h().leader_acquired(CM, "controller-manager-0", 0, 10)
            .api_write("controller-manager-0", CM_USER, 1, Verb::Create, Resource::Pods, "default", "x", 12)
            // cm-0 renews its lease: the election itself, not judged.
            .api_write("controller-manager-0", CM_USER, 2, Verb::Update, Resource::Leases, "kube-system", CM, 15)
            .leader_acquired(CM, "controller-manager-1", 1, 20)
            .api_write("controller-manager-1", CM_USER, 1, Verb::Create, Resource::Pods, "default", "y", 21)
            // A kubelet's writes are not leader-elected.
            .api_write("kubelet-0", "system:node:kubelet-0", 1, Verb::UpdateStatus, Resource::Pods, "default", "y", 22)
    }

    #[test]
    fn writes_from_each_epochs_holder_pass() {
        assert_passes(&check(Invariant::ControllerSingleLeader, &two_epochs().build()), 2);
    }

    #[test]
    fn a_deposed_leaders_write_after_the_takeover_fires() {
        // Fencing off: cm-0 resumes and writes after cm-1 acquired at lease revision 20.
        let history = two_epochs()
            .api_write("controller-manager-0", CM_USER, 3, Verb::Delete, Resource::Pods, "default", "x", 25)
            .build();
        assert_one_violation(
            &check(Invariant::ControllerSingleLeader, &history),
            &[
                "controller-manager-0 wrote pods/default/x",
                "revision 25",
                "controller-manager-1 held",
                "since revision 20",
            ],
        );
    }

    #[test]
    fn a_refused_write_of_the_deposed_leader_passes() {
        // With fencing the same write is refused (409 Fenced): nothing committed.
        let history = two_epochs()
            .api_invoke("controller-manager-0", 3, Verb::Delete, Resource::Pods, "default", "x")
            .api_error("controller-manager-0", 3, 409)
            .build();
        assert_passes(&check(Invariant::ControllerSingleLeader, &history), 2);
    }
}

mod watch_guarantees {
    use super::*;

    fn writes() -> verdict::checkers::testing::HistoryBuilder {
        h().store_write(CM_USER, Verb::Create, &pod_key("a"), 5)
            .store_write("system:kube-scheduler", Verb::Bind, &pod_key("a"), 6)
            .store_write(CM_USER, Verb::Create, &Resource::ReplicaSets.key("default", "rs"), 7)
            .store_write(CM_USER, Verb::Delete, &pod_key("a"), 8)
    }

    #[test]
    fn a_complete_ordered_answer_passes() {
        let history = writes()
            .watch(
                "kubelet-0",
                Resource::Pods,
                "",
                4,
                8,
                &[
                    (WatchEventKind::Added, &pod_key("a"), 5),
                    (WatchEventKind::Modified, &pod_key("a"), 6),
                    (WatchEventKind::Deleted, &pod_key("a"), 8),
                ],
            )
            // Resuming from 6 in the namespace: only the delete.
            .watch("kubelet-1", Resource::Pods, "default", 6, 9, &[(WatchEventKind::Deleted, &pod_key("a"), 8)])
            // An event with no recorded store write (a commit whose answer was lost) is fine.
            .watch("kubelet-1", Resource::Pods, "default", 8, 10, &[(WatchEventKind::Added, &pod_key("b"), 10)])
            .build();
        assert_passes(&check(Invariant::WatchGuarantees, &history), 3);
    }

    #[test]
    fn a_gap_fires() {
        let history = writes()
            .watch(
                "kubelet-1",
                Resource::Pods,
                "",
                4,
                8,
                &[(WatchEventKind::Added, &pod_key("a"), 5), (WatchEventKind::Deleted, &pod_key("a"), 8)],
            )
            .build();
        assert_one_violation(
            &check(Invariant::WatchGuarantees, &history),
            &["kubelet-1's watch of pods from 4 to 8", "missed /registry/pods/default/a@6"],
        );
    }

    #[test]
    fn out_of_order_out_of_range_and_contradicting_events_fire() {
        let history = writes()
            .watch(
                "kubelet-1",
                Resource::Pods,
                "",
                5,
                8,
                &[
                    (WatchEventKind::Modified, &pod_key("a"), 6),
                    (WatchEventKind::Deleted, &pod_key("a"), 8),
                    (WatchEventKind::Modified, &pod_key("a"), 6),
                    (WatchEventKind::Added, &pod_key("a"), 5),
                ],
            )
            .watch("kubelet-2", Resource::Pods, "", 6, 7, &[(WatchEventKind::Added, &pod_key("z"), 7)])
            .build();
        let verdict = check(Invariant::WatchGuarantees, &history);
        let all = messages(&verdict).join("\n");
        for evidence in [
            "delivered /registry/pods/default/a@6 after an event at revision 8",
            "delivered /registry/pods/default/a@6 twice",
            "delivered /registry/pods/default/a@5, outside (5, 8]",
            "delivered Added /registry/pods/default/z@7, but revision 7 was system:kube-controller-manager's Create of /registry/replicasets/default/rs",
        ] {
            assert!(all.contains(evidence), "'{evidence}' not in:\n{all}");
        }
    }
}

mod pod_bound_once {
    use super::*;

    fn life() -> verdict::checkers::testing::HistoryBuilder {
        h().store_write(CM_USER, Verb::Create, &pod_key("a"), 5)
            .store_write("system:kube-scheduler", Verb::Bind, &pod_key("a"), 6)
            .pod_started("kubelet-0", "a", "uid-1")
    }

    #[test]
    fn one_bind_per_life_and_one_kubelet_at_a_time_pass() {
        let history = life()
            .pod_started("kubelet-0", "a", "uid-1") // the kubelet restarted: same node
            .pod_stopped("kubelet-0", "a", "uid-1")
            .store_write(CM_USER, Verb::Delete, &pod_key("a"), 7)
            // Same name, new life, new uid, another node.
            .store_write(CM_USER, Verb::Create, &pod_key("a"), 8)
            .store_write("system:kube-scheduler", Verb::Bind, &pod_key("a"), 9)
            .pod_started("kubelet-1", "a", "uid-2")
            .build();
        assert_passes(&check(Invariant::PodBoundOnce, &history), 5);
    }

    #[test]
    fn a_second_bind_fires() {
        let history = life().store_write("system:kube-scheduler", Verb::Bind, &pod_key("a"), 7).build();
        assert_one_violation(
            &check(Invariant::PodBoundOnce, &history),
            &["/registry/pods/default/a was bound at revision 6 and bound again at revision 7"],
        );
    }

    #[test]
    fn a_pod_on_two_kubelets_fires() {
        let history = life().pod_started("kubelet-2", "a", "uid-1").build();
        assert_one_violation(
            &check(Invariant::PodBoundOnce, &history),
            &["pod default/a (uid uid-1) started on kubelet-2 while still running on kubelet-0"],
        );
    }
}

mod convergence {
    use super::*;

    const RS_POD: &str = "nginx-deployment-6c6-";

    fn created(
        builder: verdict::checkers::testing::HistoryBuilder,
        suffix: &str,
        revision: i64,
    ) -> verdict::checkers::testing::HistoryBuilder {
        builder.store_write(CM_USER, Verb::Create, &pod_key(&format!("{RS_POD}{suffix}")), revision)
    }

    #[test]
    fn pods_up_to_the_desired_replicas_pass_and_a_scale_up_raises_the_bound() {
        let mut b = h().desired_replicas("nginx-deployment", 2);
        b = created(b, "a", 5);
        b = created(b, "b", 6);
        b = b.store_write(CM_USER, Verb::Delete, &pod_key(&format!("{RS_POD}a")), 7);
        b = created(b, "c", 8);
        b = b.desired_replicas("nginx-deployment", 3);
        b = created(b, "d", 9);
        // Seen only through a watch (its create's answer was lost): still counted.
        b = b.watch(
            "kubelet-0",
            Resource::Pods,
            "",
            9,
            10,
            &[(WatchEventKind::Deleted, &pod_key(&format!("{RS_POD}b")), 10)],
        );
        b = created(b, "e", 11);
        assert_passes(&check(Invariant::Convergence, &b.build()), 5);
    }

    #[test]
    fn a_delete_only_the_store_recorded_ends_the_pods_life() {
        // A drain's eviction of "a" committed, its answer lost and every watcher relisted
        // past it: only the store's own record of revision 7 shows it. The replacement
        // "c" is then no surplus; without that record it would be.
        let with_record = |recorded: bool| {
            let mut b = h().desired_replicas("nginx-deployment", 2);
            b = created(b, "a", 5);
            b = created(b, "b", 6);
            if recorded {
                b = b.committed_delete(7, &pod_key(&format!("{RS_POD}a")));
            }
            created(b, "c", 8).build()
        };
        assert_passes(&check(Invariant::Convergence, &with_record(true)), 3);
        assert_one_violation(&check(Invariant::Convergence, &with_record(false)), &["had 3 live pods at revision 8"]);
    }

    #[test]
    fn a_replacement_for_a_timed_out_create_that_committed_passes() {
        // The controller's create of "a" timed out (it committed); it lowered its
        // expectations and created "b" before its informer showed "a".
        let mut b = h().desired_replicas("nginx-deployment", 1);
        b = b.api_invoke("controller-manager-0", 1, Verb::Create, Resource::Pods, "default", &format!("{RS_POD}a"));
        b = created(b, "a", 5);
        b = b.api_error("controller-manager-0", 1, 504);
        b = created(b, "b", 6);
        let verdict = check(Invariant::Convergence, &b.build());
        assert_passes(&verdict, 1);
        assert!(verdict.summary.contains("1 pods whose create was answered with an error"), "{}", verdict.summary);
    }

    /// A pod written under ReplicaSet `rs_uid` (as a run with the garbage collector records it).
    fn created_by(
        builder: verdict::checkers::testing::HistoryBuilder,
        suffix: &str,
        revision: i64,
        rs_uid: &str,
    ) -> verdict::checkers::testing::HistoryBuilder {
        let key = pod_key(&format!("{RS_POD}{suffix}"));
        let owners = vec![verdict::history::OwnerRecord {
            kind: "ReplicaSet".into(),
            name: RS_POD.trim_end_matches('-').into(),
            uid: rs_uid.into(),
            block_owner_deletion: true,
        }];
        created(builder, suffix, revision).event(verdict::history::HistoryEvent::ObjectWritten {
            key,
            revision,
            meta: verdict::history::ObjectMetaRecord { uid: format!("pod-{suffix}"), owners, ..Default::default() },
            removed: false,
        })
    }

    #[test]
    fn two_lives_of_one_replicaset_name_are_counted_apart_where_owners_are_recorded() {
        // The collector deleted the ReplicaSet; the deployment controller made it again
        // under its name while the first one's two pods were still being collected.
        let two_lives = |owned: bool| {
            let mut b = h().desired_replicas("nginx-deployment", 2);
            for (suffix, revision, uid) in [("a", 5, "rs-1"), ("b", 6, "rs-1"), ("c", 8, "rs-2"), ("d", 9, "rs-2")] {
                b = if owned { created_by(b, suffix, revision, uid) } else { created(b, suffix, revision) };
            }
            b.build()
        };
        assert_passes(&check(Invariant::Convergence, &two_lives(true)), 4);
        // Without the owners' uids, the four pods count for one ReplicaSet.
        assert_one_violation(
            &check(Invariant::Convergence, &two_lives(false)),
            &["replicaset default/nginx-deployment-6c6 had 3 live pods at revision 8"],
        );
    }

    #[test]
    fn a_surplus_within_one_life_of_a_replicaset_still_fires() {
        let mut b = h().desired_replicas("nginx-deployment", 1);
        b = created_by(b, "a", 5, "rs-1");
        b = created_by(b, "b", 6, "rs-2");
        b = created_by(b, "c", 7, "rs-2");
        assert_one_violation(
            &check(Invariant::Convergence, &b.build()),
            &["had 2 live pods at revision 7", "never asked for more than 1"],
        );
    }

    #[test]
    fn over_creation_fires_once_per_surplus() {
        let mut b = h().desired_replicas("nginx-deployment", 2);
        b = created(b, "a", 5);
        b = created(b, "b", 6);
        b = b.watch(
            "kubelet-0",
            Resource::Pods,
            "",
            6,
            7,
            &[(WatchEventKind::Added, &pod_key(&format!("{RS_POD}c")), 7)],
        );
        b = created(b, "d", 8);
        assert_one_violation(
            &check(Invariant::Convergence, &b.build()),
            &["replicaset default/nginx-deployment-6c6 had 3 live pods at revision 7", "never asked for more than 2"],
        );
    }
}

mod no_acknowledged_write_lost_api {
    use super::*;

    #[test]
    fn writes_acknowledged_at_their_commit_revision_pass() {
        let history = h()
            .api_write("kubectl", "kubernetes-admin", 1, Verb::Create, Resource::Deployments, "default", "d", 4)
            .api_invoke("kubectl", 2, Verb::Update, Resource::Deployments, "default", "d")
            .api_error("kubectl", 2, 504)
            .build();
        assert_passes(&check(Invariant::NoAcknowledgedWriteLost, &history), 1);
    }

    #[test]
    fn an_acknowledgement_without_a_commit_fires() {
        // The apiserver answered with a guessed revision 9; the store committed it at 11.
        let history = h()
            .api_invoke("controller-manager-1", 7, Verb::Create, Resource::Pods, "default", "x")
            .api_ok("controller-manager-1", 7, 9)
            .store_write(CM_USER, Verb::Create, &pod_key("x"), 11)
            .build();
        assert_one_violation(
            &check(Invariant::NoAcknowledgedWriteLost, &history),
            &["controller-manager-1 was told its Create of pods/default/x", "revision 9", "revisions - and 11"],
        );
    }
}
