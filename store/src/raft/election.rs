//! Leader election (§5.2) with pre-vote (thesis §9.6) and check-quorum (thesis §6.2):
//! timers, role transitions, vote requests and their answers.

use super::entry::NodeId;
use super::message::{Message, MessageBody};
use super::node::Raft;
use super::ready::Role;

impl Raft {
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.randomized_election_timeout {
            self.campaign();
        }
    }

    pub(super) fn tick_leader(&mut self) {
        self.tracker.tick_snapshots(self.config.election_tick);
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_tick {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.tracker.quorum_recently_active(self.id) {
                tracing::info!(id = self.id, term = self.term, "leader lost its quorum, stepping down");
                coverage::reached!("store.raft.check-quorum-step-down");
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_tick {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat();
        }
    }

    /// Starts an election now, as if the election timeout had elapsed: a pre-vote round
    /// first when `pre_vote` is on. A leader ignores it. (Also the hook for tests and for a
    /// driver that wants to hand leadership over.)
    pub fn campaign(&mut self) {
        if self.role == Role::Leader || !self.tracker.voters().contains(&self.id) {
            return;
        }
        if self.config.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
        self.request_votes();
    }

    /// Resets the per-term volatile state, adopting `term` (which never decreases).
    fn reset(&mut self, term: u64) {
        assert!(term >= self.term, "term must never decrease ({} -> {term})", self.term);
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.votes.clear();
        self.tracker.clear_progress();
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomize_election_timeout();
        self.read_only.reset();
    }

    pub(super) fn randomize_election_timeout(&mut self) {
        let election_tick = self.config.election_tick;
        self.randomized_election_timeout = self.rng.in_range(election_tick, 2 * election_tick);
    }

    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    fn become_pre_candidate(&mut self) {
        // Unlike a candidate, a pre-candidate keeps its term and its vote.
        self.reset(self.term);
        self.role = Role::PreCandidate;
    }

    fn become_candidate(&mut self) {
        self.reset(self.term + 1);
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        tracing::debug!(id = self.id, term = self.term, "campaigning");
    }

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate, "only a candidate becomes leader");
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.tracker.reset(self.log.last_index());
        self.pending_conf_index = 0;
        if let Some(progress) = self.tracker.get_mut(self.id) {
            progress.match_index = self.log.last_index();
            progress.become_replicate();
        }
        tracing::info!(id = self.id, term = self.term, "became leader");
        // §5.4.2 / §8: an entry of the new term lets the leader commit its predecessors'
        // entries and learn its commit index (needed before serving reads).
        self.append_entry(super::entry::EntryKind::Normal, bytes::Bytes::new());
        self.broadcast_append();
    }

    /// Votes for itself and asks every other voter (a pre-vote for `term + 1`, or a vote).
    fn request_votes(&mut self) {
        let pre_vote = self.role == Role::PreCandidate;
        let campaign_term = if pre_vote { self.term + 1 } else { self.term };
        self.record_vote(self.id, true);
        if self.role == Role::Leader || self.role == Role::Follower {
            return; // a single-voter group decides on its own vote
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.peers() {
            let body = if pre_vote {
                MessageBody::PreVote { last_log_index, last_log_term }
            } else {
                MessageBody::Vote { last_log_index, last_log_term }
            };
            self.send_with_term(peer, campaign_term, body);
        }
    }

    /// Counts a (pre-)vote and acts on the outcome once a quorum has decided.
    pub(super) fn record_vote(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        match self.tracker.tally(&self.votes) {
            Some(true) if self.role == Role::PreCandidate => {
                self.become_candidate();
                self.request_votes();
            }
            Some(true) => self.become_leader(),
            Some(false) => self.become_follower(self.term, None),
            None => {}
        }
    }

    /// Whether a vote request with a newer term is ignored because this node heard from a
    /// live leader within the election timeout. For pre-votes this is the pre-vote rule
    /// itself; for votes it is etcd's leader lease under check-quorum, which keeps a
    /// rejoining node with a higher term from deposing a healthy leader.
    pub(super) fn ignores_vote_request(&self, body: &MessageBody) -> bool {
        let heard_from_leader = self.leader.is_some() && self.election_elapsed < self.config.election_tick;
        match body {
            MessageBody::PreVote { .. } => heard_from_leader,
            MessageBody::Vote { .. } => self.config.check_quorum && heard_from_leader,
            _ => false,
        }
    }

    /// §5.2, §5.4.1: grant if not already voted for another in this term (for a pre-vote:
    /// or the request is for a later term) and the candidate's log is at least as up to
    /// date as ours.
    pub(super) fn handle_vote_request(&mut self, m: &Message) {
        let (pre_vote, last_log_index, last_log_term) = match m.body {
            MessageBody::PreVote { last_log_index, last_log_term } => (true, last_log_index, last_log_term),
            MessageBody::Vote { last_log_index, last_log_term } => (false, last_log_index, last_log_term),
            _ => return,
        };
        let can_vote = self.vote == Some(m.from)
            || (self.vote.is_none() && self.leader.is_none())
            || (pre_vote && m.term > self.term);
        let granted = can_vote && self.log.is_up_to_date(last_log_index, last_log_term);
        // A grant carries the requested term so the candidate counts it; a rejection
        // carries ours so a stale candidate learns it.
        let response_term = if granted { m.term } else { self.term };
        let body = if pre_vote {
            MessageBody::PreVoteResponse { reject: !granted }
        } else {
            MessageBody::VoteResponse { reject: !granted }
        };
        match (pre_vote, granted) {
            (true, false) => coverage::reached!("store.raft.pre-vote-rejected"),
            (false, false) => coverage::reached!("store.raft.vote-rejected"),
            _ => {}
        }
        if granted && !pre_vote {
            assert_eq!(m.term, self.term, "a vote is granted in the current term only");
            self.vote = Some(m.from);
            self.election_elapsed = 0;
            tracing::debug!(id = self.id, term = self.term, candidate = m.from, "vote granted");
        }
        self.send_with_term(m.from, response_term, body);
    }

    /// Counts a vote answer, if it belongs to the campaign under way.
    pub(super) fn handle_vote_response(&mut self, m: &Message) {
        match (self.role, &m.body) {
            // Grants carry the pre-campaign's term (ours + 1); rejections our term.
            (Role::PreCandidate, MessageBody::PreVoteResponse { reject }) if *reject || m.term == self.term + 1 => {
                self.record_vote(m.from, !reject);
            }
            (Role::Candidate, MessageBody::VoteResponse { reject }) if m.term == self.term => {
                self.record_vote(m.from, !reject);
            }
            _ => {}
        }
    }
}
