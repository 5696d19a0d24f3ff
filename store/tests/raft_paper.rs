//! Tests derived from the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable
//! Consensus Algorithm"), in the style of raft-rs `test_raft_paper.rs`: each cites the
//! section it checks. Nodes are built from a chosen durable state and driven only through
//! the public API. Pre-vote and check-quorum are off unless a test says otherwise, to
//! test the paper's algorithm as written.

use bytes::Bytes;
use store::raft::{
    Config, Entry, EntryKind, HardState, Message, MessageBody, NodeId, Raft, Ready, RestoredState, Role,
};

fn entry(term: u64, index: u64) -> Entry {
    Entry { term, index, kind: EntryKind::Normal, data: Bytes::new() }
}

/// Entries with the given terms at indices 1, 2, ...
fn log_of_terms(terms: &[u64]) -> Vec<Entry> {
    terms.iter().enumerate().map(|(i, &t)| entry(t, i as u64 + 1)).collect()
}

fn node(id: NodeId, n_voters: u64, term: u64, terms: &[u64]) -> Raft {
    let mut config = Config::new(id, (1..=n_voters).collect());
    config.pre_vote = false;
    config.check_quorum = false;
    let restored = RestoredState {
        hard_state: HardState { term, vote: None, commit: 0 },
        entries: log_of_terms(terms),
        snapshot: None,
        snapshot_data: Default::default(),
    };
    Raft::new(config, restored, id).unwrap()
}

fn msg(from: NodeId, to: NodeId, term: u64, body: MessageBody) -> Message {
    Message { from, to, term, body }
}

fn elect(raft: &mut Raft) -> Ready {
    raft.campaign();
    let ready = raft.ready();
    let term = raft.term();
    let id = raft.id();
    for m in &ready.messages {
        raft.step(msg(m.to, id, term, MessageBody::VoteResponse { reject: false }));
    }
    assert_eq!(raft.role(), Role::Leader);
    raft.ready()
}

fn appends_to(ready: &Ready, to: NodeId) -> Vec<&MessageBody> {
    ready.messages.iter().filter(|m| m.to == to).map(|m| &m.body).collect()
}

/// Reference: section 5.1. A node that sees a higher term adopts it and, if it was a
/// candidate or leader, reverts to follower.
#[test]
fn higher_term_message_updates_term_and_steps_down() {
    for role in [Role::Follower, Role::Candidate, Role::Leader] {
        let mut raft = node(1, 3, 1, &[]);
        match role {
            Role::Candidate => raft.campaign(),
            Role::Leader => {
                elect(&mut raft);
            }
            _ => {}
        }
        assert_eq!(raft.role(), role);
        let higher = raft.term() + 1;
        let heartbeat = MessageBody::Heartbeat { commit: 0, read_seq: 0 };
        raft.step(msg(2, 1, higher, heartbeat));
        assert_eq!((raft.term(), raft.role(), raft.leader()), (higher, Role::Follower, Some(2)), "{role:?}");
    }
}

/// Reference: section 5.1. A node rejects (here: ignores) a request with a stale term.
#[test]
fn stale_term_append_is_rejected() {
    let mut raft = node(1, 3, 3, &[]);
    let append = MessageBody::Append { prev_log_index: 0, prev_log_term: 0, entries: vec![entry(2, 1)], commit: 0 };
    raft.step(msg(2, 1, 2, append));
    let ready = raft.ready();
    assert!(ready.entries.is_empty());
    assert_eq!(raft.term(), 3);
    assert_eq!(raft.leader(), None);
}

/// Reference: section 5.2. A follower that hears nothing for an election timeout becomes a
/// candidate: it increments its term, votes for itself and requests votes from all peers.
#[test]
fn follower_times_out_and_starts_election() {
    let mut raft = node(1, 3, 1, &[]);
    for _ in 0..20 {
        raft.tick();
    }
    assert_eq!((raft.role(), raft.term()), (Role::Candidate, 2));
    let ready = raft.ready();
    assert_eq!(ready.hard_state, Some(HardState { term: 2, vote: Some(1), commit: 0 }));
    let mut to: Vec<NodeId> = ready.messages.iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, vec![2, 3]);
    assert!(ready.messages.iter().all(|m| matches!(m.body, MessageBody::Vote { .. }) && m.term == 2));
}

/// Reference: section 5.2. A candidate wins with votes from a majority, loses when a
/// majority rejects it, and stays a candidate otherwise.
#[test]
fn candidate_wins_with_majority_only() {
    // (voters, grants, rejections) -> role
    let cases =
        [(3, 1, 0, Role::Leader), (5, 2, 0, Role::Leader), (5, 1, 0, Role::Candidate), (5, 0, 3, Role::Follower)];
    for (n_voters, n_grants, n_rejections, expected) in cases {
        let mut raft = node(1, n_voters, 0, &[]);
        raft.campaign();
        let mut peers = 2..=n_voters;
        for id in peers.by_ref().take(n_grants) {
            raft.step(msg(id, 1, 1, MessageBody::VoteResponse { reject: false }));
        }
        for id in peers.take(n_rejections) {
            raft.step(msg(id, 1, 1, MessageBody::VoteResponse { reject: true }));
        }
        assert_eq!(raft.role(), expected, "{n_voters} voters, {n_grants} grants, {n_rejections} rejections");
    }
}

/// Reference: section 5.2. Each server votes for at most one candidate per term
/// (first-come-first-served), and the vote is persisted in the Ready carrying the grant.
#[test]
fn voter_grants_at_most_one_vote_per_term() {
    let mut raft = node(1, 3, 0, &[]);
    let vote = || MessageBody::Vote { last_log_index: 0, last_log_term: 0 };
    raft.step(msg(2, 1, 1, vote()));
    raft.step(msg(3, 1, 1, vote()));
    raft.step(msg(2, 1, 1, vote())); // a retransmission is granted again
    let ready = raft.ready();
    assert_eq!(ready.hard_state.map(|h| h.vote), Some(Some(2)));
    let answers: Vec<(NodeId, bool)> = ready
        .messages
        .iter()
        .map(|m| match m.body {
            MessageBody::VoteResponse { reject } => (m.to, reject),
            ref other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(answers, vec![(2, false), (3, true), (2, false)]);
}

/// Reference: section 5.2. A candidate that hears from a leader of its own term steps down.
#[test]
fn candidate_concedes_to_leader_of_same_term() {
    let mut raft = node(1, 3, 0, &[]);
    raft.campaign();
    raft.step(msg(2, 1, 1, MessageBody::Heartbeat { commit: 0, read_seq: 0 }));
    assert_eq!((raft.role(), raft.leader(), raft.term()), (Role::Follower, Some(2), 1));
}

/// Reference: section 5.3. A follower refuses an append whose previous entry it does not
/// hold (the consistency check), and hints where its log diverges.
#[test]
fn follower_consistency_check() {
    // The follower's log has terms [1, 1, 2, 2]; (prev index, prev term, accepted).
    let cases = [(0, 0, true), (2, 1, true), (4, 2, true), (4, 3, false), (5, 2, false), (3, 1, false)];
    for (prev_log_index, prev_log_term, accepted) in cases {
        let mut raft = node(1, 3, 3, &[1, 1, 2, 2]);
        let append = MessageBody::Append { prev_log_index, prev_log_term, entries: vec![], commit: 0 };
        raft.step(msg(2, 1, 3, append));
        let ready = raft.ready();
        let [MessageBody::AppendResponse { reject, reject_hint, .. }] = appends_to(&ready, 2)[..] else {
            panic!("expected one AppendResponse");
        };
        assert_eq!(!reject, accepted, "prev {prev_log_index}/{prev_log_term}");
        if !accepted && prev_log_index == 5 {
            assert_eq!(reject_hint.unwrap().conflict_index, 5, "log shorter than prev: last index + 1");
        }
        if !accepted && prev_log_index == 4 {
            assert_eq!(reject_hint.unwrap().conflict_term, Some(2));
            assert_eq!(reject_hint.unwrap().conflict_index, 3, "first index of the conflicting term");
        }
    }
}

/// Reference: section 5.3. A follower deletes a conflicting entry and all that follow it,
/// and appends the leader's; the Ready tells the driver to truncate from there.
#[test]
fn follower_replaces_conflicting_suffix() {
    let mut raft = node(1, 3, 3, &[1, 1, 2, 2]);
    let entries = vec![entry(3, 3), entry(3, 4), entry(3, 5)];
    let append = MessageBody::Append { prev_log_index: 2, prev_log_term: 1, entries: entries.clone(), commit: 0 };
    raft.step(msg(2, 1, 3, append));
    let ready = raft.ready();
    assert_eq!(ready.entries, entries);
    assert_eq!(raft.status().last_index, 5);
}

/// Reference: section 5.3. A leader backs up a rejected follower until their logs match,
/// then brings the follower's log in line with its own.
#[test]
fn leader_repairs_divergent_follower() {
    let mut leader = node(1, 3, 5, &[1, 2, 2, 4]);
    let ready = elect(&mut leader);
    let mut follower = node(2, 3, 5, &[1, 3, 3, 3, 3]);
    let mut to_follower: Vec<Message> = ready.messages.into_iter().filter(|m| m.to == 2).collect();
    for _round in 0..5 {
        for m in to_follower.drain(..) {
            follower.step(m);
        }
        for m in follower.ready().messages {
            leader.step(m);
        }
        to_follower = leader.ready().messages.into_iter().filter(|m| m.to == 2).collect();
    }
    assert_eq!(follower.status().last_index, 5);
    assert_eq!(follower.status().commit, 5, "the leader's no-op of term 6 commits with the follower");
    assert_eq!(leader.status().commit, 5);
}

/// Reference: section 5.4.1. A voter denies its vote to a candidate whose log is less up to
/// date: a lower last term, or the same last term with a shorter log.
#[test]
fn election_restriction() {
    // The voter's log has terms [1, 2, 2]; (candidate last index, last term, granted).
    let cases = [(3, 2, true), (4, 2, true), (2, 2, false), (9, 1, false), (1, 3, true)];
    for (last_log_index, last_log_term, granted) in cases {
        let mut raft = node(1, 3, 3, &[1, 2, 2]);
        raft.step(msg(2, 1, 4, MessageBody::Vote { last_log_index, last_log_term }));
        let ready = raft.ready();
        assert_eq!(
            ready.messages[0].body,
            MessageBody::VoteResponse { reject: !granted },
            "candidate last {last_log_index}/{last_log_term}"
        );
    }
}

/// Reference: section 5.4.2. A leader commits an entry of its term once a majority stores
/// it, and with it every earlier entry; it never commits an entry of an earlier term by
/// counting replicas alone (Figure 8).
#[test]
fn leader_commits_only_current_term_entries_by_counting() {
    let ack = |raft: &mut Raft, from: NodeId, index: u64| {
        let term = raft.term();
        let body = MessageBody::AppendResponse { reject: false, index, reject_hint: None };
        raft.step(msg(from, 1, term, body));
    };
    // The leader holds an uncommitted term-2 entry at index 2 and becomes leader of term 4
    // (its no-op goes to index 3).
    let mut leader = node(1, 5, 3, &[1, 2]);
    elect(&mut leader);
    ack(&mut leader, 2, 2);
    ack(&mut leader, 3, 2);
    assert_eq!(leader.status().commit, 0, "index 2 (term 2) is on a majority but not committable");
    ack(&mut leader, 2, 3);
    ack(&mut leader, 3, 3);
    assert_eq!(leader.status().commit, 3, "the term-4 no-op commits, and index 2 with it");

    // With the planted bug the leader commits the old entry by counting.
    let mut config = Config::new(1, (1..=5).collect());
    config.pre_vote = false;
    config.planted_bugs.commit_previous_term_by_counting = true;
    let restored = RestoredState {
        hard_state: HardState { term: 3, vote: None, commit: 0 },
        entries: log_of_terms(&[1, 2]),
        snapshot: None,
        snapshot_data: Default::default(),
    };
    let mut buggy = Raft::new(config, restored, 1).unwrap();
    elect(&mut buggy);
    ack(&mut buggy, 2, 2);
    ack(&mut buggy, 3, 2);
    assert_eq!(buggy.status().commit, 2, "the planted bug commits a previous-term entry");
}

/// Reference: section 5.4.2 / §8. A new leader appends a no-op entry of its term.
#[test]
fn new_leader_appends_noop() {
    let mut raft = node(1, 3, 1, &[1]);
    let ready = elect(&mut raft);
    assert_eq!(ready.entries, vec![entry(2, 2)]);
}

/// Proposals are refused on a follower with a hint to the leader (etcd's ErrProposalDropped).
#[test]
fn follower_refuses_proposals_with_leader_hint() {
    let mut raft = node(1, 3, 1, &[]);
    raft.step(msg(2, 1, 1, MessageBody::Heartbeat { commit: 0, read_seq: 0 }));
    let error = raft.propose(Bytes::from_static(b"x")).unwrap_err();
    assert_eq!(error, store::raft::ProposeError::NotLeader { leader_hint: Some(2) });
}

/// Restored state is input: a malformed one is an error, not a panic.
#[test]
fn invalid_restored_state_is_an_error() {
    let config = Config::new(1, vec![1, 2, 3]);
    let gap = RestoredState {
        hard_state: HardState { term: 2, vote: None, commit: 0 },
        entries: vec![entry(1, 1), entry(1, 3)],
        snapshot: None,
        snapshot_data: Default::default(),
    };
    assert!(Raft::new(config.clone(), gap, 1).is_err());
    let commit_beyond = RestoredState {
        hard_state: HardState { term: 2, vote: None, commit: 5 },
        entries: vec![entry(1, 1)],
        snapshot: None,
        snapshot_data: Default::default(),
    };
    assert!(Raft::new(config.clone(), commit_beyond, 1).is_err());
    assert!(Raft::new(Config::new(4, vec![1, 2, 3]), RestoredState::default(), 1).is_err());
}

/// Odd messages (misaddressed, unimplemented snapshot) are ignored, never a panic.
#[test]
fn odd_messages_are_ignored() {
    let mut raft = node(1, 3, 1, &[1]);
    raft.step(msg(2, 7, 1, MessageBody::Heartbeat { commit: 0, read_seq: 0 }));
    let snapshot = MessageBody::Snapshot { meta: Default::default(), data: Bytes::new() };
    raft.step(msg(2, 1, 1, snapshot));
    raft.step(msg(2, 1, 1, MessageBody::AppendResponse { reject: true, index: 99, reject_hint: None }));
    raft.step(msg(2, 1, 1, MessageBody::ReadIndexResponse { request_ctx: 1, index: 0 }));
    assert_eq!(raft.role(), Role::Follower);
}

/// Reference: section 7 (log compaction, InstallSnapshot). A follower whose log conflicts
/// with the snapshot's last entry discards its whole log and adopts the snapshot: its
/// commit index, applied index and configuration become the snapshot's, and it
/// acknowledges at the snapshot's index. The driver is handed the snapshot to persist.
#[test]
fn install_snapshot_replaces_a_conflicting_log() {
    use store::raft::SnapshotMeta;
    let mut raft = node(2, 3, 1, &[1, 1, 1]);
    let meta = SnapshotMeta { index: 5, term: 2, voters: vec![1, 2, 3] };
    let data = Bytes::from_static(b"state");
    raft.step(msg(1, 2, 2, MessageBody::Snapshot { meta: meta.clone(), data: data.clone() }));
    let ready = raft.ready();
    assert_eq!(ready.snapshot, Some((meta, data)));
    let status = raft.status();
    assert_eq!((status.commit, status.applied, status.last_index, status.snapshot_index), (5, 5, 5, 5));
    let acks: Vec<_> = appends_to(&ready, 1);
    assert_eq!(acks, vec![&MessageBody::AppendResponse { reject: false, index: 5, reject_hint: None }]);
}

/// Reference: section 7. A snapshot whose last entry the follower's log already holds
/// keeps the entries after it (only the commit index moves), and one at or below the
/// commit index changes nothing.
#[test]
fn snapshot_covered_by_the_log_only_advances_the_commit_index() {
    use store::raft::SnapshotMeta;
    let mut raft = node(2, 3, 1, &[1, 1, 1, 1]);
    let meta = SnapshotMeta { index: 2, term: 1, voters: vec![1, 2, 3] };
    raft.step(msg(1, 2, 1, MessageBody::Snapshot { meta, data: Bytes::new() }));
    let ready = raft.ready();
    assert_eq!(ready.snapshot, None);
    assert_eq!((raft.status().commit, raft.status().last_index), (2, 4));
}

/// Reference: thesis section 4.1 (single-server changes; a new configuration takes effect
/// here when its entry commits), and the rule that a leader proposes a change only after
/// committing an entry of its term, one change at a time.
#[test]
fn conf_change_waits_for_a_commit_in_the_term_and_applies_on_commit() {
    use store::raft::{ConfChange, ProposeError};
    let mut raft = node(1, 3, 1, &[1]);
    elect(&mut raft);
    let refused = raft.propose_conf_change(ConfChange::AddVoter(4), Bytes::new());
    assert!(matches!(refused, Err(ProposeError::ConfChangePending { .. })), "{refused:?}");
    // Commit the leader's no-op (index 2) with node 2's acknowledgement.
    raft.step(msg(2, 1, raft.term(), MessageBody::AppendResponse { reject: false, index: 2, reject_hint: None }));
    let index = raft.propose_conf_change(ConfChange::AddVoter(4), Bytes::new()).unwrap();
    assert_eq!(raft.voters(), vec![1, 2, 3], "not in effect before it commits");
    let second = raft.propose_conf_change(ConfChange::RemoveVoter(3), Bytes::new());
    assert!(matches!(second, Err(ProposeError::ConfChangePending { .. })), "{second:?}");
    raft.step(msg(2, 1, raft.term(), MessageBody::AppendResponse { reject: false, index, reject_hint: None }));
    assert_eq!(raft.voters(), vec![1, 2, 3, 4]);
    // Now quorum is 3 of 4: node 2 alone no longer commits a new entry.
    let next = raft.propose(Bytes::from_static(b"x")).unwrap();
    raft.step(msg(2, 1, raft.term(), MessageBody::AppendResponse { reject: false, index: next, reject_hint: None }));
    assert_eq!(raft.status().commit, index);
    raft.step(msg(3, 1, raft.term(), MessageBody::AppendResponse { reject: false, index: next, reject_hint: None }));
    assert_eq!(raft.status().commit, next);
}

/// Reference: thesis section 4.2.2. A leader that commits its own removal steps down and
/// never campaigns again.
#[test]
fn leader_removing_itself_steps_down_once_committed() {
    use store::raft::ConfChange;
    let mut raft = node(1, 3, 1, &[1]);
    elect(&mut raft);
    raft.step(msg(2, 1, raft.term(), MessageBody::AppendResponse { reject: false, index: 2, reject_hint: None }));
    let index = raft.propose_conf_change(ConfChange::RemoveVoter(1), Bytes::new()).unwrap();
    assert_eq!(raft.role(), Role::Leader);
    raft.step(msg(2, 1, raft.term(), MessageBody::AppendResponse { reject: false, index, reject_hint: None }));
    assert_eq!(raft.role(), Role::Follower);
    assert_eq!(raft.voters(), vec![2, 3]);
    raft.campaign();
    assert_eq!(raft.role(), Role::Follower, "a non-voter never campaigns");
}
