//! Static configuration of one Raft node, and the planted defects kubesim's checkers must
//! catch.

use super::entry::NodeId;
use super::errors::RaftError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub id: NodeId,
    /// All voting members, including `id`: the initial configuration of a new cluster. A
    /// node that joins an existing cluster starts with none and learns the configuration
    /// from the leader (a snapshot, or the log's configuration entries); until it is a voter
    /// it never campaigns. A snapshot's or a committed entry's configuration overrides this.
    pub voters: Vec<NodeId>,
    /// A follower that hears from no leader for a randomized `[election_tick,
    /// 2 * election_tick)` ticks campaigns; a leader checks its quorum every
    /// `election_tick` ticks.
    pub election_tick: u64,
    /// A leader sends heartbeats every `heartbeat_tick` ticks.
    pub heartbeat_tick: u64,
    /// Raft thesis §9.6: a pre-candidate asks for votes without bumping its term, so a
    /// partitioned node that rejoins does not depose a healthy leader.
    pub pre_vote: bool,
    /// Raft thesis §6.2: a leader that has not heard from a quorum for an election timeout
    /// steps down, and a node that heard from a leader within the election timeout ignores
    /// requests to vote for another (etcd's leader lease under CheckQuorum).
    pub check_quorum: bool,
    /// Upper bound on entries in one append message.
    pub max_entries_per_append: usize,
    /// Upper bound on append messages sent to a follower and not yet acknowledged.
    pub max_inflight_appends: usize,
    pub planted_bugs: RaftBugs,
}

impl Config {
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            election_tick: 10,
            heartbeat_tick: 1,
            pre_vote: true,
            check_quorum: true,
            max_entries_per_append: 64,
            max_inflight_appends: 256,
            planted_bugs: RaftBugs::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RaftError> {
        if !self.voters.is_empty() && !self.voters.contains(&self.id) {
            return Err(RaftError::NotAVoter { id: self.id, voters: self.voters.clone() });
        }
        let invalid = |reason: &str| Err(RaftError::InvalidConfig { reason: reason.to_owned() });
        if self.heartbeat_tick == 0 {
            return invalid("heartbeat_tick must be positive");
        }
        if self.election_tick <= self.heartbeat_tick {
            return invalid("election_tick must exceed heartbeat_tick");
        }
        if self.max_entries_per_append == 0 || self.max_inflight_appends == 0 {
            return invalid("max_entries_per_append and max_inflight_appends must be positive");
        }
        Ok(())
    }

    /// Backpressure bound on the leader's uncommitted log suffix: what the inflight
    /// windows of one follower can carry.
    pub(crate) fn max_uncommitted_entries(&self) -> u64 {
        (self.max_entries_per_append * self.max_inflight_appends) as u64
    }
}

/// Planted defects for kubesim's checkers to catch. Each field documents the bug and the
/// invariant that must catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftBugs {
    /// The leader commits an entry from a previous term as soon as a majority stores it,
    /// violating Raft §5.4.2 (the Figure 8 scenario): committed entries can then be lost.
    /// Caught by state-machine safety / no acknowledged write lost.
    pub commit_previous_term_by_counting: bool,
}

impl RaftBugs {
    pub(crate) fn any(&self) -> bool {
        self.commit_previous_term_by_counting
    }
}
