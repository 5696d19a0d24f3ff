//! Message dispatch: the term rules every message goes through first (§5.1: adopt a newer
//! term and step down; reject or ignore an older one), then per-role handling.

use super::message::{Message, MessageBody};
use super::node::Raft;
use super::ready::{ReadState, Role};

impl Raft {
    /// Feeds a message from a peer. Stale, duplicated, reordered or unexpected messages are
    /// ignored (never a panic); messages addressed to another node are dropped.
    pub fn step(&mut self, m: Message) {
        if m.to != self.id || m.from == self.id {
            tracing::warn!(id = self.id, from = m.from, to = m.to, "dropping a misaddressed message");
            return;
        }
        if !self.step_term(&m) {
            return;
        }
        match m.body {
            MessageBody::PreVote { .. } | MessageBody::Vote { .. } => self.handle_vote_request(&m),
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::PreCandidate | Role::Candidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
    }

    /// Applies the term rules; returns whether the message should be handled further.
    fn step_term(&mut self, m: &Message) -> bool {
        if m.term > self.term {
            if m.body.is_vote_request() && self.ignores_vote_request(&m.body) {
                return false;
            }
            match m.body {
                // A pre-vote request or grant is about a term nobody has entered yet.
                MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { reject: false } => {}
                _ => {
                    let leader = m.body.is_from_leader().then_some(m.from);
                    self.become_follower(m.term, leader);
                }
            }
        } else if m.term < self.term {
            self.answer_stale(m);
            return false;
        }
        true
    }

    /// An older-term sender learns our term from the answer, so that a deposed leader (or
    /// a pre-candidate) steps down. Without pre-vote or check-quorum, the stale leader's
    /// next election would do this anyway, so etcd stays silent then.
    fn answer_stale(&mut self, m: &Message) {
        let term = self.term;
        if m.body.is_from_leader() && (self.config.check_quorum || self.config.pre_vote) {
            self.send_with_term(m.from, term, MessageBody::HeartbeatResponse { read_seq: 0 });
        } else if matches!(m.body, MessageBody::PreVote { .. }) {
            self.send_with_term(m.from, term, MessageBody::PreVoteResponse { reject: true });
        }
    }

    fn step_leader(&mut self, m: Message) {
        match m.body {
            MessageBody::AppendResponse { .. } => self.handle_append_response(m.from, m.body),
            MessageBody::HeartbeatResponse { read_seq } => self.handle_heartbeat_response(m.from, read_seq),
            MessageBody::ReadIndex { request_ctx } => {
                if let Err(error) = self.leader_read_index(m.from, request_ctx) {
                    tracing::warn!(id = self.id, from = m.from, %error, "dropping a forwarded read");
                }
            }
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::Snapshot { .. } => {
                tracing::error!(id = self.id, from = m.from, term = self.term, "two leaders in one term");
                assert!(self.config.planted_bugs.any(), "election safety violated in term {}", self.term);
            }
            _ => {}
        }
    }

    fn step_candidate(&mut self, m: Message) {
        match m.body {
            MessageBody::Append { .. } | MessageBody::Heartbeat { .. } | MessageBody::Snapshot { .. } => {
                // A leader of our term exists (§5.2): concede.
                self.become_follower(self.term, Some(m.from));
                self.step_follower(m);
            }
            MessageBody::PreVoteResponse { .. } | MessageBody::VoteResponse { .. } => {
                self.handle_vote_response(&m);
            }
            _ => {}
        }
    }

    fn step_follower(&mut self, m: Message) {
        match m.body {
            MessageBody::Append { .. } => {
                self.heard_from_leader(m.from);
                self.handle_append(m.from, m.body);
            }
            MessageBody::Heartbeat { commit, read_seq } => {
                self.heard_from_leader(m.from);
                self.handle_heartbeat(m.from, commit, read_seq);
            }
            MessageBody::Snapshot { meta, data } => {
                self.heard_from_leader(m.from);
                self.handle_snapshot(m.from, meta, data);
            }
            MessageBody::ReadIndexResponse { request_ctx, index } => {
                self.read_states.push(ReadState { request_ctx, index });
            }
            _ => {}
        }
    }

    fn heard_from_leader(&mut self, leader: super::entry::NodeId) {
        self.election_elapsed = 0;
        self.leader = Some(leader);
    }
}
