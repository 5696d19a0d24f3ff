//! [`Invariant::StoreSingleWriter`] (docs/design.md §4.1): every store mutation that took
//! effect came from an apiserver principal, sent from an apiserver's address.
//!
//! The store's ACL checks the principal's role only; the address check catches a
//! credential used from the wrong node (a controller that got hold of the apiserver's
//! credential and writes the store directly), which the ACL cannot see. An entry is judged
//! once, however many members applied it.
//!
//! One writer besides the apiservers is legitimate: the store leader's lessor, which
//! proposes the revoke of an expired lease itself (etcd `revokeExpiredLeases`, under the
//! `store-lessor` principal). An entry is accepted as the lessor's only when the history
//! shows the lessor proposing it (`LessorRecord::ExpiryProposed`, reported by the member,
//! not claimed over the network).
//!
//! Cost: O(n log n) in the number of `Applied` records (a set of judged entries).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use store::api::PrincipalRole;

use super::{CheckInput, Invariant, Verdict, Violations};
use store::lease::LESSOR_PRINCIPAL;

use crate::history::{HistoryEvent, LessorRecord};

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::StoreSingleWriter);
    // (index, term, proposal id) of every entry already judged.
    let mut judged: BTreeSet<(u64, u64, u64)> = BTreeSet::new();
    let mut n_mutations = 0usize;
    let mut n_rejected = 0usize;
    let lessor_proposals = lessor_proposals(input);
    let mut n_lease_expiries = 0usize;
    for (at_ns, event) in input.history.events() {
        let HistoryEvent::Applied {
            member,
            index,
            term,
            proposal_id,
            principal,
            principal_role,
            source,
            revision,
            succeeded,
            n_events,
        } = event
        else {
            if matches!(event, HistoryEvent::StoreRejected { .. }) {
                n_rejected += 1;
            }
            continue;
        };
        if !judged.insert((*index, *term, *proposal_id)) {
            continue;
        }
        let changed_state = *succeeded && *n_events > 0;
        if changed_state {
            n_mutations += 1;
        }
        let evidence = || {
            format!(
                "entry {index} (term {term}, proposal {proposal_id}) applied on {member} \
                 at revision {revision} with {n_events} events"
            )
        };
        if *succeeded && *principal_role != PrincipalRole::ApiServer {
            violations.push(
                Some(at_ns),
                format!(
                    "{}: principal '{principal}' with role {principal_role:?} (from {source}) \
                     mutated the store; only the apiserver role may",
                    evidence()
                ),
            );
            continue;
        }
        if !changed_state {
            continue;
        }
        if principal == LESSOR_PRINCIPAL && lessor_proposals.contains(proposal_id) {
            n_lease_expiries += 1;
            continue;
        }
        if let Some(why) = wrong_source(input, principal, source) {
            violations.push(Some(at_ns), format!("{}: {why}", evidence()));
        }
    }
    let checked = judged.len();
    violations.into_verdict(
        checked,
        format!(
            "{checked} committed entries ({n_mutations} changed the store, {n_lease_expiries} \
             of them lease expiries), {n_rejected} requests rejected at a member"
        ),
    )
}

/// The proposal ids the store leader's lessor reported proposing (expired leases' revokes).
fn lessor_proposals(input: &CheckInput) -> BTreeSet<u64> {
    input
        .history
        .events()
        .filter_map(|(_, event)| match event {
            HistoryEvent::Lessor { event: LessorRecord::ExpiryProposed { proposal_id, .. }, .. } => Some(*proposal_id),
            _ => None,
        })
        .collect()
}

/// Why a write by apiserver principal `principal` from `source` did not come from an
/// apiserver's address, if it did not.
fn wrong_source(input: &CheckInput, principal: &str, source: &str) -> Option<String> {
    match source_ip(source) {
        Some(ip) if input.apiserver_sources.contains(&ip) => None,
        Some(ip) => Some(format!(
            "apiserver principal '{principal}' wrote from {ip}, which is not an apiserver address ({})",
            list_ips(&input.apiserver_sources)
        )),
        None => Some(format!("apiserver principal '{principal}' wrote from an unparseable source address '{source}'")),
    }
}

/// The IP of a source as the store records it ("10.0.2.1:40001", or a bare IP).
fn source_ip(source: &str) -> Option<IpAddr> {
    source.parse::<SocketAddr>().map(|a| a.ip()).or_else(|_| source.parse::<IpAddr>()).ok()
}

fn list_ips(ips: &[IpAddr]) -> String {
    if ips.is_empty() {
        return "none configured".into();
    }
    let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
    format!("apiservers: {}", ips.join(", "))
}
