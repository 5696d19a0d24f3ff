//! Every checker on small hand-made histories: one where it must fire (a planted bug, and
//! the violation names the evidence) and one where it must not. Plus the linearizability
//! checker on a synthetic 100k-operation history.

use std::net::{IpAddr, SocketAddr};

use store::api::{MemberId, PrincipalRole};
use verdict::checkers::testing::{applied_event, check_one, h, APISERVER_SOURCE};
use verdict::checkers::{EndState, Invariant, Verdict};
use verdict::history::{History, HistoryEvent};

fn apiserver_ip() -> IpAddr {
    APISERVER_SOURCE.parse::<SocketAddr>().unwrap().ip()
}

fn check(invariant: Invariant, history: &History) -> Verdict {
    check_one(invariant, history, None, vec![apiserver_ip()])
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

mod api {
    use super::*;

    #[test]
    fn invariant_names_round_trip_and_only_implemented_ones_get_verdicts() {
        for invariant in Invariant::ALL {
            assert_eq!(invariant.name().parse::<Invariant>(), Ok(invariant));
            let json = serde_json::to_string(&invariant).unwrap();
            assert_eq!(json, format!("\"{}\"", invariant.name()));
        }
        assert!("no-such-invariant".parse::<Invariant>().is_err());
        let history = h().build();
        let verdicts = verdict::checkers::check_all(&verdict::checkers::CheckInput {
            history: &history,
            end_state: None,
            apiserver_sources: vec![],
        });
        let checked: Vec<Invariant> = verdicts.iter().map(|v| v.invariant).collect();
        // Every invariant has a checker now, one verdict each, in declaration order.
        assert_eq!(checked, Invariant::ALL.to_vec());
        // An empty history passes vacuously: nothing examined (the report says "vacuous").
        for v in &verdicts {
            assert!(v.passed() && v.checked == 0, "{v:?}");
        }
    }
}

mod store_single_writer {
    use super::*;

    fn applied_by(
        member: MemberId,
        index: u64,
        principal: &str,
        role: PrincipalRole,
        source: &str,
        succeeded: bool,
        n_events: usize,
    ) -> HistoryEvent {
        let mut event = applied_event(member, index, 2, 100 + index, 1 + index as i64);
        if let HistoryEvent::Applied {
            principal: p, principal_role: r, source: s, succeeded: ok, n_events: n, ..
        } = &mut event
        {
            *p = principal.into();
            *r = role;
            *s = source.into();
            *ok = succeeded;
            *n = n_events;
        }
        event
    }

    #[test]
    fn apiserver_writes_from_an_apiserver_address_pass() {
        let history = h()
            .applied(MemberId(1), 1, 2, 101, 2)
            .applied(MemberId(2), 1, 2, 101, 2)
            .applied(MemberId(1), 2, 2, 102, 3)
            .build();
        // An entry applied on two members is judged once.
        assert_passes(&check(Invariant::StoreSingleWriter, &history), 2);
    }

    #[test]
    fn writes_refused_at_the_door_or_at_apply_pass() {
        let history = h()
            .event(HistoryEvent::StoreRejected {
                member: MemberId(1),
                principal: "kube-controller-manager".into(),
                source: "10.0.3.1:5000".into(),
                error: "permission denied".into(),
            })
            .event(applied_by(
                MemberId(1),
                3,
                "kube-controller-manager",
                PrincipalRole::Other,
                "10.0.3.1:5000",
                false,
                0,
            ))
            .build();
        let verdict = check(Invariant::StoreSingleWriter, &history);
        assert_passes(&verdict, 1);
        assert!(verdict.summary.contains("1 requests rejected"), "{}", verdict.summary);
    }

    #[test]
    fn fires_on_a_write_applied_for_a_non_apiserver_principal() {
        let history = h()
            .event(applied_by(MemberId(1), 7, "kube-scheduler", PrincipalRole::Other, "10.0.4.1:5000", true, 1))
            .build();
        assert_one_violation(
            &check(Invariant::StoreSingleWriter, &history),
            &["entry 7", "'kube-scheduler'", "Other", "10.0.4.1"],
        );
    }

    #[test]
    fn fires_on_the_apiserver_credential_used_from_a_controller_manager() {
        let stolen =
            |member| applied_by(member, 9, "kube-apiserver", PrincipalRole::ApiServer, "10.0.3.1:40100", true, 1);
        let history = h().event(stolen(MemberId(1))).event(stolen(MemberId(2))).build();
        // One violation for the entry, however many members applied it.
        assert_one_violation(
            &check(Invariant::StoreSingleWriter, &history),
            &["entry 9", "10.0.3.1", "not an apiserver address", "10.0.2.1"],
        );
    }
}

mod raft_election_safety {
    use super::*;
    use store::raft::Role;

    #[test]
    fn one_leader_per_term_passes() {
        let history = h()
            .role(MemberId(1), 2, Role::Candidate)
            .leader(MemberId(1), 2)
            .role(MemberId(2), 2, Role::Follower)
            .leader(MemberId(2), 3)
            .role(MemberId(1), 3, Role::Follower)
            // store-2 restarts and reports its leadership of term 3 again.
            .leader(MemberId(2), 3)
            .build();
        assert_passes(&check(Invariant::RaftElectionSafety, &history), 3);
    }

    #[test]
    fn fires_on_two_leaders_in_term_3() {
        let history = h().leader(MemberId(1), 2).leader(MemberId(2), 3).leader(MemberId(3), 3).build();
        let verdict = check(Invariant::RaftElectionSafety, &history);
        assert_one_violation(&verdict, &["two leaders in term 3", "member 2", "member 3"]);
        assert_eq!(verdict.violations[0].at_ns, Some(20));
    }
}

mod raft_state_machine_safety {
    use super::*;

    #[test]
    fn members_that_agree_pass_including_a_restart_that_replays_the_log() {
        let history = h()
            .started(MemberId(1))
            .started(MemberId(2))
            // Index 1 is the leader's no-op (not recorded); a failed compare at index 4
            // leaves the revision where it was.
            .applied(MemberId(1), 2, 2, 10, 2)
            .applied(MemberId(2), 2, 2, 10, 2)
            .applied(MemberId(1), 3, 2, 11, 3)
            .event({
                let mut e = applied_event(MemberId(1), 4, 2, 12, 3);
                if let HistoryEvent::Applied { n_events, .. } = &mut e {
                    *n_events = 0;
                }
                e
            })
            .applied(MemberId(1), 5, 2, 13, 4)
            .applied(MemberId(2), 3, 2, 11, 3)
            // store-2 restarts and re-applies its log from the start.
            .started(MemberId(2))
            .applied(MemberId(2), 2, 2, 10, 2)
            .applied(MemberId(2), 3, 2, 11, 3)
            .build();
        let verdict = check(Invariant::RaftStateMachineSafety, &history);
        assert_passes(&verdict, 8);
        assert!(verdict.summary.contains("1 restarts"), "{}", verdict.summary);
    }

    #[test]
    fn fires_when_member_2_applies_a_different_proposal_at_index_7() {
        let history = h()
            .applied(MemberId(1), 6, 3, 40, 5)
            .applied(MemberId(1), 7, 3, 41, 6)
            .applied(MemberId(2), 6, 3, 40, 5)
            .applied(MemberId(2), 7, 3, 99, 6)
            .build();
        assert_one_violation(
            &check(Invariant::RaftStateMachineSafety, &history),
            &["member 2", "index 7", "proposal 99", "member 1", "proposal 41"],
        );
    }

    #[test]
    fn fires_when_members_disagree_on_the_revision_after_an_index() {
        let history = h().applied(MemberId(1), 3, 2, 40, 5).applied(MemberId(3), 3, 2, 40, 6).build();
        assert_one_violation(
            &check(Invariant::RaftStateMachineSafety, &history),
            &["member 3", "index 3", "revision 6", "revision 5"],
        );
    }

    #[test]
    fn fires_when_a_member_skips_an_index_another_member_applied() {
        let history = h()
            .applied(MemberId(1), 4, 2, 40, 2)
            .applied(MemberId(1), 5, 2, 41, 3)
            .applied(MemberId(1), 6, 2, 42, 4)
            .applied(MemberId(2), 4, 2, 40, 2)
            .applied(MemberId(2), 6, 2, 42, 4)
            .build();
        let verdict = check(Invariant::RaftStateMachineSafety, &history);
        let messages = messages(&verdict);
        // The gap at index 5 and the revision jump 2 -> 4 are both reported.
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(
            messages.iter().any(|m| m.contains("member 2 skipped index 5") && m.contains("proposal 41")),
            "{messages:#?}"
        );
        assert!(messages.iter().any(|m| m.contains("member 2's revision went from 2")), "{messages:#?}");
    }

    #[test]
    fn fires_when_a_member_applies_out_of_order() {
        let history = h().applied(MemberId(1), 5, 2, 41, 3).applied(MemberId(1), 4, 2, 40, 2).build();
        assert_one_violation(
            &check(Invariant::RaftStateMachineSafety, &history),
            &["member 1 applied index 4 after index 5"],
        );
    }

    /// A member that installs the leader's snapshot skips the indexes it covers, and one
    /// that restarts from its own snapshot re-applies only the log after it.
    #[test]
    fn snapshots_cover_the_indexes_a_member_skips() {
        let installed = |member, index, revision| HistoryEvent::SnapshotInstalled { member, index, revision };
        let recovered = |member, index, revision| HistoryEvent::SnapshotRecovered { member, index, revision };
        let history = h()
            .started(MemberId(1))
            .started(MemberId(2))
            .applied(MemberId(1), 2, 2, 10, 2)
            .applied(MemberId(1), 3, 2, 11, 3)
            .applied(MemberId(1), 4, 2, 12, 4)
            .applied(MemberId(1), 5, 2, 13, 5)
            .applied(MemberId(2), 2, 2, 10, 2)
            // store-2 fell behind and was sent a snapshot of index 4.
            .event(installed(MemberId(2), 4, 4))
            .applied(MemberId(2), 5, 2, 13, 5)
            // store-1 restarts from its own snapshot of index 3 and replays 4 and 5.
            .started(MemberId(1))
            .event(recovered(MemberId(1), 3, 3))
            .applied(MemberId(1), 4, 2, 12, 4)
            .applied(MemberId(1), 5, 2, 13, 5)
            .build();
        assert_passes(&check(Invariant::RaftStateMachineSafety, &history), 8);
    }

    #[test]
    fn fires_when_a_snapshot_does_not_cover_a_skipped_index() {
        let history = h()
            .applied(MemberId(1), 2, 2, 10, 2)
            .applied(MemberId(1), 3, 2, 11, 3)
            .applied(MemberId(1), 4, 2, 12, 4)
            .event(HistoryEvent::SnapshotInstalled { member: MemberId(2), index: 2, revision: 2 })
            .applied(MemberId(2), 4, 2, 12, 4)
            .build();
        let verdict = check(Invariant::RaftStateMachineSafety, &history);
        let messages = messages(&verdict);
        assert!(
            messages.iter().any(|m| m.contains("member 2 skipped index 3") && m.contains("snapshots cover up to 2")),
            "{messages:#?}"
        );
    }

    #[test]
    fn fires_when_a_snapshot_disagrees_with_the_revision_at_its_index_or_moves_back() {
        let history = h()
            .applied(MemberId(1), 2, 2, 10, 2)
            .applied(MemberId(1), 3, 2, 11, 3)
            .event(HistoryEvent::SnapshotInstalled { member: MemberId(2), index: 3, revision: 7 })
            .build();
        assert_one_violation(
            &check(Invariant::RaftStateMachineSafety, &history),
            &["member 2 took a snapshot of index 3 at revision 7", "member 1 applied proposal 11"],
        );
        let history = h()
            .applied(MemberId(2), 2, 2, 10, 2)
            .applied(MemberId(2), 3, 2, 11, 3)
            .event(HistoryEvent::SnapshotInstalled { member: MemberId(2), index: 2, revision: 2 })
            .build();
        assert_one_violation(
            &check(Invariant::RaftStateMachineSafety, &history),
            &["member 2 took a snapshot of index 2 after reaching index 3"],
        );
    }

    #[test]
    fn fires_when_a_restarted_member_replays_a_different_entry() {
        let history = h()
            .started(MemberId(3))
            .applied(MemberId(3), 2, 2, 10, 2)
            .started(MemberId(3))
            .applied(MemberId(3), 2, 4, 77, 2)
            .build();
        assert_one_violation(
            &check(Invariant::RaftStateMachineSafety, &history),
            &["member 3 re-applied index 2 after a restart", "proposal 77", "proposal 10"],
        );
    }
}

mod linearizability {
    use super::*;

    fn lin(history: &History) -> Verdict {
        check(Invariant::Linearizability, history)
    }

    #[test]
    fn sequential_writes_and_reads_pass() {
        let history = h()
            .get("c1", 1, "/k")
            .read("c1", 1, 1, None, 0)
            .put("c1", 2, "/k", "v2")
            .written("c1", 2, 2)
            .get("c2", 1, "/k")
            .read("c2", 1, 2, Some("v2"), 2)
            .put("c2", 2, "/other", "o3")
            .written("c2", 2, 3)
            // A read at a later revision still sees /k's write at 2.
            .get("c1", 3, "/k")
            .read("c1", 3, 3, Some("v2"), 2)
            .cas("c1", 4, "/k", 2, "v4")
            .written("c1", 4, 4)
            .cas("c2", 3, "/k", 2, "v5")
            .compare_failed("c2", 3, 4)
            .build();
        assert_passes(&lin(&history), 7);
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // c1's put and c2's read overlap: the read may or may not see it.
        let history = h()
            .put("c1", 1, "/k", "a")
            .get("c2", 1, "/k")
            .read("c2", 1, 1, None, 0)
            .get("c3", 1, "/k")
            .written("c1", 1, 2)
            .read("c3", 1, 2, Some("a"), 2)
            .build();
        assert_passes(&lin(&history), 3);
    }

    #[test]
    fn unknown_and_pending_writes_may_or_may_not_take_effect() {
        let history = h()
            .put("c1", 1, "/k", "maybe-1")
            .unknown("c1", 1)
            .put("c2", 1, "/k", "never-seen")
            .unknown("c2", 1)
            // A read sees the first one: it took effect at revision 2 (inferred).
            .get("c3", 1, "/k")
            .read("c3", 1, 2, Some("maybe-1"), 2)
            .get("c3", 2, "/k")
            .read("c3", 2, 2, Some("maybe-1"), 2)
            // Never returned: counts as unknown.
            .put("c4", 1, "/k", "pending")
            .build();
        let verdict = lin(&history);
        assert_passes(&verdict, 5);
        assert!(verdict.summary.contains("1 seen by reads"), "{}", verdict.summary);
    }

    #[test]
    fn a_compare_may_prove_an_unacknowledged_write_that_no_read_saw() {
        // c2's put timed out but applied at revision 3; c1 read it (outside the recorded
        // operations, as the workload's compare-and-put does) and its compare held.
        let history = h()
            .put("c1", 1, "/k", "a")
            .written("c1", 1, 2)
            .put("c2", 1, "/k", "timed-out")
            .unknown("c2", 1)
            .cas("c1", 2, "/k", 3, "b")
            .written("c1", 2, 4)
            .build();
        let verdict = lin(&history);
        assert_passes(&verdict, 3);
        assert!(verdict.summary.contains("1 more proven"), "{}", verdict.summary);

        // That proven write makes a later read that misses it stale.
        let history = h()
            .put("c1", 1, "/k", "a")
            .written("c1", 1, 2)
            .put("c2", 1, "/k", "timed-out")
            .unknown("c2", 1)
            .cas("c1", 2, "/k", 3, "b")
            .get("c3", 1, "/k")
            .written("c1", 2, 5)
            .read("c3", 1, 4, Some("a"), 2)
            .build();
        assert_one_violation(&lin(&history), &["stale read", "c3#1", "revision 4", "unacknowledged write", "c1#2"]);
    }

    #[test]
    fn fires_when_compares_prove_two_writes_at_one_revision() {
        let history = h()
            .put("c1", 1, "/a", "a")
            .written("c1", 1, 2)
            .put("c2", 1, "/a", "timed-out-a")
            .unknown("c2", 1)
            .put("c3", 1, "/b", "timed-out-b")
            .unknown("c3", 1)
            .cas("c1", 2, "/a", 3, "a2")
            .written("c1", 2, 4)
            .cas("c1", 3, "/b", 3, "b2")
            .written("c1", 3, 5)
            .build();
        assert_one_violation(&lin(&history), &["c1#3", "write to /b at revision 3", "c1#2", "one to /a there"]);
    }

    #[test]
    fn a_failed_compare_may_be_explained_by_an_unacknowledged_write() {
        let history = h()
            .put("c1", 1, "/k", "a")
            .written("c1", 1, 2)
            .put("c2", 1, "/k", "timed-out")
            .unknown("c2", 1)
            .cas("c1", 2, "/k", 2, "b")
            .compare_failed("c1", 2, 3)
            .build();
        assert_passes(&lin(&history), 3);
    }

    #[test]
    fn fires_on_a_stale_read_that_misses_an_acknowledged_write() {
        let history = h()
            .put("c1", 1, "/k", "old")
            .written("c1", 1, 2)
            .put("c1", 2, "/k", "new")
            .get("c2", 1, "/k")
            .written("c1", 2, 3)
            // Concurrent with the second put, so real time allows either value; but the
            // read claims revision 3, where /k is "new".
            .read("c2", 1, 3, Some("old"), 2)
            .build();
        assert_one_violation(&lin(&history), &["stale read", "c2#1", "/k", "revision 3", "'old'", "c1#2"]);
    }

    #[test]
    fn fires_on_a_read_of_an_absent_key_that_was_written() {
        let history =
            h().put("c1", 1, "/k", "v").get("c2", 1, "/k").written("c1", 1, 2).read("c2", 1, 2, None, 0).build();
        assert_one_violation(&lin(&history), &["c2#1", "as absent", "c1#1", "revision 2"]);
    }

    #[test]
    fn fires_on_a_read_observing_a_failed_writes_value() {
        let history = h()
            .put("c1", 1, "/k", "ghost")
            .failed("c1", 1)
            .get("c2", 1, "/k")
            .read("c2", 1, 2, Some("ghost"), 2)
            .build();
        assert_one_violation(&lin(&history), &["c2#1", "'ghost'", "c1#1", "failed"]);
    }

    #[test]
    fn fires_on_a_read_of_a_value_nobody_wrote() {
        let history = h().get("c2", 1, "/k").read("c2", 1, 2, Some("forged"), 2).build();
        assert_one_violation(&lin(&history), &["c2#1", "'forged'", "no recorded operation"]);
    }

    #[test]
    fn fires_on_a_value_seen_at_another_revision_than_acknowledged() {
        let history =
            h().put("c1", 1, "/k", "v").written("c1", 1, 2).get("c2", 1, "/k").read("c2", 1, 3, Some("v"), 3).build();
        assert_one_violation(&lin(&history), &["c2#1", "mod_revision 3", "acknowledged at revision 2"]);
    }

    #[test]
    fn fires_on_an_unknown_write_seen_at_two_revisions() {
        let history = h()
            .put("c1", 1, "/k", "v")
            .unknown("c1", 1)
            .get("c2", 1, "/k")
            .read("c2", 1, 2, Some("v"), 2)
            .get("c2", 2, "/k")
            .read("c2", 2, 3, Some("v"), 3)
            .build();
        assert_one_violation(&lin(&history), &["c2#2", "seen at mod_revision 2", "c2#1"]);
    }

    #[test]
    fn fires_when_a_later_invoked_write_gets_an_earlier_revision() {
        let history = h()
            .at(0)
            .put("c1", 1, "/a", "x")
            .at(1)
            .written("c1", 1, 10)
            .at(2)
            .put("c2", 1, "/b", "y")
            .written("c2", 1, 5)
            .build();
        let verdict = lin(&history);
        assert_one_violation(&verdict, &["real-time order", "c2#1", "revision 5", "c1#1", "revision 10"]);
    }

    #[test]
    fn fires_on_a_read_served_below_a_completed_write() {
        let history =
            h().put("c1", 1, "/a", "x").written("c1", 1, 7).get("c2", 1, "/b").read("c2", 1, 6, None, 0).build();
        assert_one_violation(
            &lin(&history),
            &["real-time order", "c2#1", "served at revision 6", "c1#1", "revision 7"],
        );
    }

    #[test]
    fn fires_on_reads_going_back_in_time() {
        let history =
            h().get("c1", 1, "/a").read("c1", 1, 9, None, 0).get("c2", 1, "/a").read("c2", 1, 8, None, 0).build();
        assert_one_violation(&lin(&history), &["c2#1", "revision 8", "c1#1", "revision 9"]);
    }

    #[test]
    fn fires_on_two_writes_at_one_revision() {
        let history =
            h().put("c1", 1, "/a", "x").put("c2", 1, "/b", "y").written("c1", 1, 4).written("c2", 1, 4).build();
        assert_one_violation(&lin(&history), &["c1#1", "c2#1", "both", "revision 4"]);
    }

    #[test]
    fn fires_on_a_compare_that_held_against_the_wrong_revision() {
        let history = h()
            .put("c1", 1, "/k", "a")
            .written("c1", 1, 2)
            .put("c1", 2, "/k", "b")
            .written("c1", 2, 3)
            .cas("c2", 1, "/k", 2, "c")
            .written("c2", 1, 4)
            .build();
        assert_one_violation(&lin(&history), &["c2#1", "mod_revision 2", "c1#2", "revision 3"]);
    }

    #[test]
    fn fires_on_a_create_that_succeeded_over_an_existing_key() {
        let history =
            h().put("c1", 1, "/k", "a").written("c1", 1, 2).cas("c2", 1, "/k", 0, "c").written("c2", 1, 3).build();
        assert_one_violation(&lin(&history), &["c2#1", "mod_revision 0", "c1#1"]);
    }

    #[test]
    fn fires_on_a_compare_that_failed_although_it_held() {
        let history = h()
            .put("c1", 1, "/k", "a")
            .written("c1", 1, 2)
            .cas("c2", 1, "/k", 2, "c")
            .compare_failed("c2", 1, 2)
            .build();
        assert_one_violation(&lin(&history), &["c2#1", "failed its compare at revision 2", "c1#1"]);
    }

    #[test]
    fn fires_on_malformed_histories() {
        let history = h().written("c9", 1, 2).get("c1", 1, "/k").written("c1", 1, 2).build();
        let verdict = lin(&history);
        let messages = messages(&verdict);
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[0].contains("c9#1 returned, never invoked"));
        assert!(messages[1].contains("c1#1") && messages[1].contains("cannot have"));
    }

    /// A linearizable history of `n_ops` operations by `n_clients` concurrent clients on
    /// 64 keys: each operation takes effect on a model store at its invocation (inside its
    /// interval), and returns later; about 1% of writes time out, half of them applied.
    fn synthetic_history(n_ops: usize, n_clients: usize) -> History {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut keys: Vec<Option<(String, i64)>> = vec![None; 64];
        let mut revision = 1i64;
        let mut in_flight: Vec<Option<(u64, verdict::history::StoreOpOutcome)>> = vec![None; n_clients];
        let mut builder = h();
        let mut n_invoked = 0usize;
        let mut op_id = 0u64;
        use verdict::history::StoreOpOutcome;
        while n_invoked < n_ops || in_flight.iter().any(Option::is_some) {
            let client_idx = (next() % n_clients as u64) as usize;
            let client = format!("c{client_idx}");
            if let Some((id, outcome)) = in_flight[client_idx].take() {
                builder = builder.ret(&client, id, outcome);
                continue;
            }
            if n_invoked == n_ops {
                continue;
            }
            n_invoked += 1;
            op_id += 1;
            let key_idx = (next() % 64) as usize;
            let key = format!("/k/{key_idx}");
            let value = format!("{client}-{op_id}");
            let outcome = match next() % 10 {
                0..=4 => {
                    builder = builder.put(&client, op_id, &key, &value);
                    let roll = next() % 200;
                    if roll < 2 {
                        if roll == 0 {
                            revision += 1;
                            keys[key_idx] = Some((value, revision));
                        }
                        StoreOpOutcome::Unknown { error: "timeout".into() }
                    } else {
                        revision += 1;
                        keys[key_idx] = Some((value, revision));
                        StoreOpOutcome::Written { revision, succeeded: true }
                    }
                }
                5..=7 => {
                    builder = builder.get(&client, op_id, &key);
                    StoreOpOutcome::Read {
                        revision,
                        value: keys[key_idx].as_ref().map(|(v, _)| v.clone()),
                        mod_revision: keys[key_idx].as_ref().map_or(0, |(_, r)| *r),
                        served_by: MemberId(1),
                    }
                }
                _ => {
                    let current = keys[key_idx].as_ref().map_or(0, |(_, r)| *r);
                    let expected = if next() % 2 == 0 { current } else { current.max(1) - 1 };
                    builder = builder.cas(&client, op_id, &key, expected, &value);
                    if expected == current {
                        revision += 1;
                        keys[key_idx] = Some((value, revision));
                        StoreOpOutcome::Written { revision, succeeded: true }
                    } else {
                        StoreOpOutcome::Written { revision, succeeded: false }
                    }
                }
            };
            in_flight[client_idx] = Some((op_id, outcome));
        }
        builder.build()
    }

    #[test]
    fn a_synthetic_linearizable_history_of_100k_operations_passes() {
        let history = synthetic_history(100_000, 16);
        let started = std::time::Instant::now();
        let verdict = lin(&history);
        eprintln!(
            "linearizability of {} operations ({} records): {:?} ({})",
            verdict.checked,
            history.records.len(),
            started.elapsed(),
            verdict.summary
        );
        assert_passes(&verdict, 100_000);
    }

    #[test]
    fn a_synthetic_history_with_one_stale_read_planted_fails() {
        let mut history = synthetic_history(20_000, 8);
        let planted = plant_stale_read(&mut history).expect("a read to corrupt");
        let verdict = lin(&history);
        assert!(!verdict.passed(), "planted {planted} went unnoticed");
        assert!(messages(&verdict).iter().any(|m| m.contains(&planted)), "{planted}: {:#?}", messages(&verdict));
    }

    /// Finds a read that saw value v1 at mod_revision m1 while an earlier acknowledged
    /// write of the same key (another value, at m0 < m1) exists, and makes the read report
    /// the older write's value and revision: a stale read. Returns the read's op label.
    fn plant_stale_read(history: &mut History) -> Option<String> {
        use std::collections::HashMap;
        use verdict::history::{StoreOpKind, StoreOpOutcome};
        let mut last_ack: HashMap<String, (String, i64)> = HashMap::new();
        let mut previous_ack: HashMap<String, (String, i64)> = HashMap::new();
        let mut invoked: HashMap<(String, u64), StoreOpKind> = HashMap::new();
        for record in &mut history.records {
            match &mut record.event {
                HistoryEvent::StoreOpInvoked { client, op_id, op } => {
                    invoked.insert((client.to_string(), *op_id), op.clone());
                }
                HistoryEvent::StoreOpReturned { client, op_id, outcome } => {
                    let op = &invoked[&(client.to_string(), *op_id)];
                    match (op, outcome) {
                        (
                            StoreOpKind::Put { key, value } | StoreOpKind::CompareAndPut { key, value, .. },
                            StoreOpOutcome::Written { revision, succeeded: true },
                        ) => {
                            if let Some(prev) = last_ack.insert(key.clone(), (value.clone(), *revision)) {
                                previous_ack.insert(key.clone(), prev);
                            }
                        }
                        (StoreOpKind::Get { key }, StoreOpOutcome::Read { value: Some(seen), mod_revision, .. })
                            if last_ack.get(key).is_some_and(|(v, _)| v == seen) && previous_ack.contains_key(key) =>
                        {
                            let (old_value, old_revision) = previous_ack[key].clone();
                            *seen = old_value;
                            *mod_revision = old_revision;
                            return Some(format!("op {client}#{op_id}"));
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        None
    }
}

mod no_acknowledged_write_lost {
    use super::*;
    use bytes::Bytes;
    use store::api::KeyValue;

    fn kv(key: &str, value: &str, mod_revision: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Bytes::from(value.to_string()),
            create_revision: 2,
            mod_revision,
            version: 1,
            lease: 0,
        }
    }

    fn durability(history: &History, end_state: Option<&EndState>) -> Verdict {
        check_one(Invariant::NoAcknowledgedWriteLost, history, end_state, vec![apiserver_ip()])
    }

    fn two_writes() -> History {
        h().put("c1", 1, "/a", "a1")
            .written("c1", 1, 2)
            .put("c1", 2, "/a", "a2")
            .written("c1", 2, 3)
            .put("c2", 1, "/b", "b1")
            .written("c2", 1, 4)
            .put("c2", 2, "/b", "b-failed")
            .failed("c2", 2)
            .build()
    }

    #[test]
    fn writes_still_in_the_end_state_or_overwritten_later_pass() {
        let end = EndState { revision: 4, keyspace: vec![kv("/a", "a2", 3), kv("/b", "b1", 4)], read_at_ns: u64::MAX };
        assert_passes(&durability(&two_writes(), Some(&end)), 3);
    }

    #[test]
    fn without_an_end_state_it_examines_nothing_and_says_so() {
        let verdict = durability(&two_writes(), None);
        assert_passes(&verdict, 0);
        assert!(verdict.summary.contains("skipped"), "{}", verdict.summary);
    }

    #[test]
    fn fires_on_a_write_rolled_back_to_an_older_value() {
        let end = EndState { revision: 4, keyspace: vec![kv("/a", "a1", 2), kv("/b", "b1", 4)], read_at_ns: u64::MAX };
        assert_one_violation(
            &durability(&two_writes(), Some(&end)),
            &["c1#2", "/a='a2'", "revision 3", "mod_revision is only 2", "'a1'"],
        );
    }

    #[test]
    fn fires_on_a_key_that_vanished() {
        let end = EndState { revision: 4, keyspace: vec![kv("/a", "a2", 3)], read_at_ns: u64::MAX };
        assert_one_violation(&durability(&two_writes(), Some(&end)), &["c2#1", "/b='b1'", "absent"]);
    }

    #[test]
    fn fires_on_another_value_at_the_acknowledged_revision() {
        let end =
            EndState { revision: 4, keyspace: vec![kv("/a", "a2", 3), kv("/b", "b-failed", 4)], read_at_ns: u64::MAX };
        assert_one_violation(&durability(&two_writes(), Some(&end)), &["c2#1", "'b-failed' at that same mod_revision"]);
    }

    #[test]
    fn fires_when_the_end_state_is_older_than_an_acknowledged_write() {
        let end = EndState { revision: 3, keyspace: vec![kv("/a", "a2", 3), kv("/b", "b1", 5)], read_at_ns: u64::MAX };
        assert_one_violation(
            &durability(&two_writes(), Some(&end)),
            &["read at revision 3", "below revision 4", "c2#1"],
        );
    }
}

mod informer_continuity {
    use super::*;
    use ::api::{Resource, Verb};
    use verdict::history::ApiOutcome;

    fn list(client: &str, request_id: u64, resource_version: i64) -> [HistoryEvent; 2] {
        [
            HistoryEvent::ApiInvoked {
                client: client.into(),
                request_id,
                verb: Verb::List,
                resource: Resource::Pods,
                namespace: String::new(),
                name: String::new(),
            },
            HistoryEvent::ApiReturned {
                client: client.into(),
                request_id,
                outcome: ApiOutcome::Ok { resource_version },
            },
        ]
    }

    fn watched(client: &str, since: i64, resource_version: i64) -> HistoryEvent {
        HistoryEvent::WatchDelivered {
            client: client.into(),
            resource: Resource::Pods,
            namespace: String::new(),
            since,
            resource_version,
            events: Vec::new(),
        }
    }

    /// A reflector lists, watches from the list, resumes from each answer, and after a
    /// 410 (which leaves no record) lists again and watches from the new list.
    #[test]
    fn passes_when_every_watch_resumes_from_a_list_or_an_answer() {
        let [invoked, returned] = list("kubelet-0", 1, 10);
        let [relist, relisted] = list("kubelet-0", 2, 40);
        let history = h()
            .event(invoked)
            .event(returned)
            .event(watched("kubelet-0", 10, 12))
            .event(watched("kubelet-0", 12, 15))
            .event(relist)
            .event(relisted)
            .event(watched("kubelet-0", 40, 41))
            // An answer lost to a timeout is asked again from the same point.
            .event(watched("kubelet-0", 40, 41))
            .build();
        assert_passes(&check(Invariant::InformerContinuity, &history), 4);
    }

    #[test]
    fn fires_when_a_watch_resumes_past_a_410_without_relisting() {
        let [invoked, returned] = list("scheduler-0", 1, 10);
        let history = h()
            .event(invoked)
            .event(returned)
            .event(watched("scheduler-0", 10, 12))
            // 410 Gone (compacted at 30): resumed there instead of listing.
            .event(watched("scheduler-0", 30, 31))
            .build();
        assert_one_violation(
            &check(Invariant::InformerContinuity, &history),
            &["scheduler-0 watched pods", "from resourceVersion 30", "closest below it was 12"],
        );
    }

    #[test]
    fn fires_when_a_client_resumes_from_another_clients_list() {
        let [invoked, returned] = list("kubelet-0", 1, 10);
        let history = h().event(invoked).event(returned).event(watched("kubelet-1", 10, 11)).build();
        assert_one_violation(&check(Invariant::InformerContinuity, &history), &["kubelet-1", "none below it"]);
    }
}

mod lease_expiry {
    use super::*;
    use verdict::history::LessorRecord;

    fn lessor(member: MemberId, event: LessorRecord) -> HistoryEvent {
        HistoryEvent::Lessor { member, event }
    }

    fn promoted(now_ms: u64, leases: &[(i64, i64)]) -> LessorRecord {
        LessorRecord::Promoted { now_ms, extend_ms: 1_000, leases: leases.to_vec() }
    }

    /// The apiserver's write of `key` at `revision` attached it to `lease`.
    fn attached(key: &str, revision: i64, lease: i64) -> HistoryEvent {
        HistoryEvent::LeaseAttached { apiserver: "apiserver-0".into(), key: key.into(), revision, lease }
    }

    fn expired(lease: i64, now_ms: u64) -> LessorRecord {
        LessorRecord::ExpiryProposed { lease, now_ms, proposal_id: 7 }
    }

    /// Member 1 grants lease 5 (10 s) as leader and expires it on time; member 2, promoted
    /// later, expires lease 6 a full TTL after its promotion; a keep-alive pushes lease 8's
    /// expiry back and it is expired a TTL after that.
    #[test]
    fn passes_when_each_lease_expires_a_ttl_after_its_last_refresh_on_the_deciding_leader() {
        let history = h()
            .event(lessor(MemberId(1), promoted(0, &[])))
            .event(lessor(MemberId(1), LessorRecord::Granted { lease: 5, ttl_secs: 10, now_ms: 1_000, primary: true }))
            .event(lessor(MemberId(2), LessorRecord::Granted { lease: 5, ttl_secs: 10, now_ms: 1_200, primary: false }))
            .event(lessor(MemberId(1), LessorRecord::Granted { lease: 8, ttl_secs: 10, now_ms: 1_500, primary: true }))
            .event(lessor(MemberId(1), LessorRecord::Renewed { lease: 8, ttl_secs: 10, now_ms: 9_000 }))
            .event(lessor(MemberId(1), expired(5, 11_000)))
            .event(lessor(MemberId(1), expired(8, 19_000)))
            .event(lessor(MemberId(1), LessorRecord::Demoted))
            .event(lessor(MemberId(2), promoted(30_000, &[(6, 10)])))
            .event(lessor(MemberId(2), expired(6, 41_000)))
            .build();
        assert_passes(&check(Invariant::LeaseExpiry, &history), 3);
    }

    /// The planted bug's shape: the new leader expires a lease 10 s after the grant it
    /// applied as a follower, only 2 s after its promotion.
    #[test]
    fn fires_when_a_new_leader_expires_a_lease_before_a_ttl_since_its_promotion() {
        let history = h()
            .event(lessor(MemberId(2), LessorRecord::Granted { lease: 5, ttl_secs: 10, now_ms: 1_000, primary: false }))
            .event(lessor(MemberId(2), promoted(9_000, &[(5, 10)])))
            .event(lessor(MemberId(2), expired(5, 11_000)))
            .build();
        assert_one_violation(
            &check(Invariant::LeaseExpiry, &history),
            &["member 2 expired lease 5", "TTL 10 s", "2000 ms after its promotion"],
        );
    }

    /// A clock set back after the promotion: the grant reads earlier than the promotion,
    /// and the lease expires a TTL after the grant by that clock (seed 654 of the default
    /// menu, where the nemesis reset the skewed leader's clock).
    #[test]
    fn passes_when_a_grant_after_the_promotion_reads_earlier_on_a_clock_set_back() {
        let history = h()
            .event(lessor(MemberId(1), promoted(9_000, &[])))
            .event(lessor(MemberId(1), LessorRecord::Granted { lease: 5, ttl_secs: 10, now_ms: 300, primary: true }))
            .event(lessor(MemberId(1), expired(5, 10_300)))
            .build();
        assert_passes(&check(Invariant::LeaseExpiry, &history), 1);
    }

    /// Two Events under lease 5; the lessor's revoke (proposal 7) commits at revision 12.
    fn revoke_of(deletes: &[&str]) -> History {
        let builder = h()
            .event(lessor(MemberId(1), promoted(0, &[])))
            .event(lessor(MemberId(1), LessorRecord::Granted { lease: 5, ttl_secs: 10, now_ms: 100, primary: true }))
            .committed_put(10, "/registry/events/default/a.1", "a", 10, 1)
            .event(attached("/registry/events/default/a.1", 10, 5))
            .committed_put(11, "/registry/events/default/b.1", "b", 11, 1)
            .event(attached("/registry/events/default/b.1", 11, 5))
            .event(lessor(MemberId(1), expired(5, 10_100)))
            .event(verdict::checkers::testing::applied_event(MemberId(1), 12, 1, 7, 12));
        let changes = deletes.iter().map(|key| verdict::history::KeyState::deleted(key, 12)).collect();
        builder.event(HistoryEvent::Committed { revision: 12, changes }).build()
    }

    #[test]
    fn passes_when_a_revoke_deletes_every_key_attached_to_the_lease() {
        let history = revoke_of(&["/registry/events/default/a.1", "/registry/events/default/b.1"]);
        assert_passes(&check(Invariant::LeaseExpiry, &history), 1 + 2);
    }

    #[test]
    fn fires_when_a_revoke_leaves_an_attached_key_behind() {
        let history = revoke_of(&["/registry/events/default/a.1"]);
        assert_one_violation(
            &check(Invariant::LeaseExpiry, &history),
            &["lease 5 was revoked at revision 12", "/registry/events/default/b.1", "revision 11"],
        );
    }

    #[test]
    fn fires_when_a_revoke_deletes_a_key_moved_to_another_lease() {
        let history = h()
            .event(lessor(MemberId(1), promoted(0, &[(5, 10), (6, 10)])))
            .committed_put(10, "/registry/events/default/a.1", "a", 10, 1)
            .event(attached("/registry/events/default/a.1", 10, 5))
            // The Event repeated: updated under lease 6.
            .committed_put(11, "/registry/events/default/a.1", "a2", 10, 2)
            .event(attached("/registry/events/default/a.1", 11, 6))
            .event(lessor(MemberId(1), expired(5, 20_000)))
            .event(verdict::checkers::testing::applied_event(MemberId(1), 12, 1, 7, 12))
            .committed_delete(12, "/registry/events/default/a.1")
            .build();
        assert_one_violation(
            &check(Invariant::LeaseExpiry, &history),
            &["revoke of lease 5 at revision 12 deleted /registry/events/default/a.1", "to lease 6"],
        );
    }

    #[test]
    fn fires_when_a_keep_alive_is_ignored_or_a_follower_expires_a_lease() {
        let history = h()
            .event(lessor(MemberId(1), promoted(0, &[(5, 10)])))
            .event(lessor(MemberId(1), LessorRecord::Renewed { lease: 5, ttl_secs: 10, now_ms: 8_000 }))
            .event(lessor(MemberId(1), expired(5, 12_000)))
            .build();
        assert_one_violation(&check(Invariant::LeaseExpiry, &history), &["4000 ms after its grant or last keep-alive"]);
        let restarted = h()
            .event(lessor(MemberId(3), promoted(0, &[(5, 10)])))
            .event(HistoryEvent::MemberStarted { member: MemberId(3), recovered_entries: 0, torn_bytes: 0 })
            .event(lessor(MemberId(3), expired(5, 20_000)))
            .build();
        assert_one_violation(&check(Invariant::LeaseExpiry, &restarted), &["member 3", "while not the lease primary"]);
    }
}
