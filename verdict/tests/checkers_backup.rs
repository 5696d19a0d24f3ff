//! The backup and restore checkers (docs/design.md §4, invariants 4–6) and the epoch
//! scoping of the older checkers, on hand-made histories: each must fire on the planted
//! defect it exists for and stay quiet on a correct restore with its expected data-loss
//! window.

use verdict::checkers::testing::{check_one, h, key_state, HistoryBuilder};
use verdict::checkers::{EndState, Invariant, Verdict};
use verdict::history::History;

fn check(invariant: Invariant, history: &History) -> Verdict {
    check_one(invariant, history, None, Vec::new())
}

#[track_caller]
fn assert_one_violation(verdict: &Verdict, evidence: &[&str]) {
    let messages: Vec<&str> = verdict.violations.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    for piece in evidence {
        assert!(messages[0].contains(piece), "'{piece}' not in: {}", messages[0]);
    }
}

#[track_caller]
fn assert_passes(verdict: &Verdict) {
    assert!(verdict.passed(), "{:#?}", verdict.violations);
    assert!(verdict.checked > 0, "vacuous: {}", verdict.summary);
}

/// A client writes /a at 2 and /b at 3 (both acknowledged); the operator backs up at 3;
/// the client then writes /a again at 4 (acknowledged: the data-loss window) before the
/// cluster is lost.
fn lost_cluster() -> HistoryBuilder {
    h().put("c1", 1, "/a", "a1")
        .committed_put(2, "/a", "a1", 2, 1)
        .written("c1", 1, 2)
        .put("c1", 2, "/b", "b1")
        .committed_put(3, "/b", "b1", 3, 1)
        .written("c1", 2, 3)
        .backup_taken(0, 3)
        .put("c1", 3, "/a", "a2")
        .committed_put(4, "/a", "a2", 2, 2)
        .written("c1", 3, 4)
}

fn keyspace_at_3() -> Vec<verdict::history::KeyState> {
    vec![key_state("/a", "a1", 2, 2, 1), key_state("/b", "b1", 3, 3, 1)]
}

#[test]
fn backup_restore_equality_must_not_fire_on_a_faithful_restore() {
    let history = lost_cluster().restored(0, 3, 1_000_000, keyspace_at_3()).build();
    assert_passes(&check(Invariant::BackupRestoreEquality, &history));
}

#[test]
fn backup_restore_equality_must_fire_when_the_backup_misses_its_last_transaction() {
    // Planted bug snapshot-omits-last-txn: the backup claims revision 3 but holds 2.
    let history = lost_cluster().restored(0, 3, 1_000_000, vec![key_state("/a", "a1", 2, 2, 1)]).build();
    assert_one_violation(&check(Invariant::BackupRestoreEquality, &history), &["key /b is absent", "mod 3"]);
}

#[test]
fn restore_durability_must_not_fire_on_the_expected_data_loss_window() {
    let history = lost_cluster().restored(0, 3, 1_000_000, keyspace_at_3()).build();
    let verdict = check(Invariant::RestoreDurability, &history);
    assert_passes(&verdict);
    assert!(verdict.summary.contains("data-loss window 1 writes / 2 bytes up to rev 4"), "{}", verdict.summary);
    // The older checkers judge each epoch alone: the lost write at 4 is not "lost" to them.
    let end = EndState { revision: 1_000_003, keyspace: Vec::new(), read_at_ns: u64::MAX };
    let durability = check_one(Invariant::NoAcknowledgedWriteLost, &history, Some(&end), Vec::new());
    assert!(durability.passed(), "{:#?}", durability.violations);
    assert!(check(Invariant::Linearizability, &history).passed());
}

#[test]
fn restore_durability_must_fire_when_an_acknowledged_write_below_the_backup_is_lost() {
    let history = lost_cluster().restored(0, 3, 1_000_000, vec![key_state("/a", "a1", 2, 2, 1)]).build();
    assert_one_violation(
        &check(Invariant::RestoreDurability, &history),
        &["store op c1#2 on /b acknowledged at revision 3", "is lost by the restore"],
    );
}

#[test]
fn restore_durability_must_fire_when_a_corrupted_backup_is_restored() {
    // Planted bug restore-skips-checksum: the corrupted backup goes through.
    let history = lost_cluster().backup_corrupted(0).restored(0, 3, 1_000_000, keyspace_at_3()).build();
    assert_one_violation(&check(Invariant::RestoreDurability, &history), &["backup 0 was corrupted"]);
}

#[test]
fn revisions_must_not_go_backwards_across_a_bumped_restore() {
    let history = lost_cluster()
        .restored(0, 3, 1_000_000, keyspace_at_3())
        .put("c1", 4, "/c", "c1")
        .written("c1", 4, 1_000_004)
        .build();
    assert_passes(&check(Invariant::RevisionsNeverGoBackwards, &history));
}

#[test]
fn revisions_never_go_backwards_must_fire_on_a_restore_without_the_bump() {
    // Planted bug restore-without-revision-bump: the new cluster reuses revision 4.
    let history = lost_cluster()
        .restored(0, 3, 0, keyspace_at_3())
        .put("c1", 4, "/c", "c1")
        .written("c1", 4, 4)
        .put("c1", 5, "/c", "c2")
        .written("c1", 5, 5)
        .build();
    assert_one_violation(
        &check(Invariant::RevisionsNeverGoBackwards, &history),
        &["c1#4", "at revision 4, not above revision 4"],
    );
}

#[test]
fn concurrent_operations_may_answer_in_either_order() {
    let history = h().put("c1", 1, "/a", "a1").put("c1", 2, "/b", "b1").written("c1", 2, 6).written("c1", 1, 5).build();
    assert_passes(&check(Invariant::RevisionsNeverGoBackwards, &history));
}
