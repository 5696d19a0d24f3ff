//! A tiny builder of hand-made histories, for the checkers' must-fire / must-not-fire
//! tests: `h().put("c1", 1, "/k", "v1").written("c1", 1, 2).build()`.
//!
//! Each record is stamped 10 ns after the previous one unless [`HistoryBuilder::at`] moves
//! the clock; checkers order operations by record position, so the order of calls is the
//! real-time order.

use store::api::{MemberId, Revision, Role as PrincipalRole};
use store::raft::Role;

use super::{check_all, CheckInput, EndState, Invariant, Verdict};
use crate::history::{History, HistoryEvent, Record, StoreOpKind, StoreOpOutcome};

/// Runs every checker and returns `invariant`'s verdict. Panics if it has no checker.
pub fn check_one(
    invariant: Invariant,
    history: &History,
    end_state: Option<&EndState>,
    apiserver_sources: Vec<std::net::IpAddr>,
) -> Verdict {
    let input = CheckInput { history, end_state, apiserver_sources };
    check_all(&input)
        .into_iter()
        .find(|v| v.invariant == invariant)
        .unwrap_or_else(|| panic!("{invariant} has no checker"))
}

/// Starts an empty history.
pub fn h() -> HistoryBuilder {
    HistoryBuilder::default()
}

/// The source address an apiserver's writes come from in hand-made histories.
pub const APISERVER_SOURCE: &str = "10.0.2.1:40001";

#[derive(Default)]
pub struct HistoryBuilder {
    records: Vec<Record>,
    now_ns: u64,
}

impl HistoryBuilder {
    /// Stamps the following records from `at_ns` on.
    pub fn at(mut self, at_ns: u64) -> Self {
        self.now_ns = at_ns;
        self
    }

    pub fn event(mut self, event: HistoryEvent) -> Self {
        self.records.push(Record { at_ns: self.now_ns, event });
        self.now_ns += 10;
        self
    }

    pub fn build(self) -> History {
        History { records: self.records, trace_hash: 0, overflowed: false }
    }

    // Client operations.

    pub fn invoke(self, client: &str, op_id: u64, op: StoreOpKind) -> Self {
        self.event(HistoryEvent::StoreOpInvoked { client: client.to_string(), op_id, op })
    }

    pub fn ret(self, client: &str, op_id: u64, outcome: StoreOpOutcome) -> Self {
        self.event(HistoryEvent::StoreOpReturned { client: client.to_string(), op_id, outcome })
    }

    pub fn put(self, client: &str, op_id: u64, key: &str, value: &str) -> Self {
        self.invoke(client, op_id, StoreOpKind::Put { key: key.to_string(), value: value.to_string() })
    }

    pub fn get(self, client: &str, op_id: u64, key: &str) -> Self {
        self.invoke(client, op_id, StoreOpKind::Get { key: key.to_string() })
    }

    pub fn cas(self, client: &str, op_id: u64, key: &str, expected: Revision, value: &str) -> Self {
        self.invoke(
            client,
            op_id,
            StoreOpKind::CompareAndPut {
                key: key.to_string(),
                expected_mod_revision: expected,
                value: value.to_string(),
            },
        )
    }

    /// An acknowledged write (a put, or a compare-and-put whose compare held).
    pub fn written(self, client: &str, op_id: u64, revision: Revision) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Written { revision, succeeded: true })
    }

    /// A compare-and-put whose compare failed, answered at `revision`.
    pub fn compare_failed(self, client: &str, op_id: u64, revision: Revision) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Written { revision, succeeded: false })
    }

    pub fn read(
        self,
        client: &str,
        op_id: u64,
        revision: Revision,
        value: Option<&str>,
        mod_revision: Revision,
    ) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Read { revision, value: value.map(str::to_string), mod_revision })
    }

    pub fn failed(self, client: &str, op_id: u64) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Failed { error: "not leader".into() })
    }

    pub fn unknown(self, client: &str, op_id: u64) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Unknown { error: "request timed out".into() })
    }

    // Store members.

    pub fn started(self, member: MemberId) -> Self {
        self.event(HistoryEvent::MemberStarted { member, recovered_entries: 0, torn_bytes: 0 })
    }

    pub fn role(self, member: MemberId, term: u64, role: Role) -> Self {
        let leader = (role == Role::Leader).then_some(member);
        self.event(HistoryEvent::RoleChanged { member, term, role, leader })
    }

    pub fn leader(self, member: MemberId, term: u64) -> Self {
        self.role(member, term, Role::Leader)
    }

    /// A successful one-key write by the apiserver, applied at `index` by `member`,
    /// leaving the store at `revision`.
    pub fn applied(self, member: MemberId, index: u64, term: u64, proposal_id: u64, revision: Revision) -> Self {
        self.event(applied_event(member, index, term, proposal_id, revision))
    }
}

/// The `Applied` record [`HistoryBuilder::applied`] adds, to tweak fields in a test.
pub fn applied_event(member: MemberId, index: u64, term: u64, proposal_id: u64, revision: Revision) -> HistoryEvent {
    HistoryEvent::Applied {
        member,
        index,
        term,
        proposal_id,
        principal: "apiserver-1".into(),
        principal_role: PrincipalRole::ApiServer,
        source: APISERVER_SOURCE.into(),
        revision,
        succeeded: true,
        n_events: 1,
    }
}
