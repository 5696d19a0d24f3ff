//! [`Invariant::RaftElectionSafety`] (docs/design.md §4.2; Raft paper §5.2, Figure 3): at
//! most one member becomes leader in a given term.
//!
//! Evidence is the `RoleChanged` records with role Leader. A member reporting leadership of
//! the same term twice (after a restart that kept its term) is the same leader, not two.
//!
//! Cost: O(n log n) in the number of `RoleChanged` records.

use std::collections::BTreeMap;

use store::api::MemberId;
use store::raft::Role;

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::HistoryEvent;

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::RaftElectionSafety);
    // term -> (first leader, when it was reported).
    let mut leaders: BTreeMap<u64, (MemberId, u64)> = BTreeMap::new();
    let mut n_leader_reports = 0usize;
    for (at_ns, event) in input.history.events() {
        let HistoryEvent::RoleChanged { member, term, role: Role::Leader, .. } = event else {
            continue;
        };
        n_leader_reports += 1;
        match leaders.get(term) {
            None => {
                leaders.insert(*term, (*member, at_ns));
            }
            Some((first, _)) if first == member => {}
            Some((first, first_at_ns)) => violations.push(
                Some(at_ns),
                format!(
                    "two leaders in term {term}: {first} (became leader at {:.6}s) and \
                     {member}",
                    *first_at_ns as f64 / 1e9
                ),
            ),
        }
    }
    violations
        .into_verdict(n_leader_reports, format!("{n_leader_reports} leadership reports over {} terms", leaders.len()))
}
