//! [`Invariant::LeaseExpiry`] (docs/design.md §4.18): the store expires a lease only as
//! etcd's lessor may: the member that proposes the revoke is the lease primary (the
//! leader, promoted and not demoted since), and on its own clock at least the lease's TTL
//! has passed since the latest of
//! - its promotion (etcd `lessor.Promote` refreshes every lease to its full TTL, plus an
//!   election timeout, on the new leader's clock: a leader change never expires a lease
//!   early),
//! - its applying the lease's grant as primary (`lessor.Grant`: one TTL from then),
//! - the last keep-alive it acknowledged (`lessor.Renew`).
//!
//! "Latest" is the order of events, not of clock readings: a clock set back reads less
//! after an event than before it, and the lessor counts from the reading it took then.
//!
//! And a revoke deletes what the lease holds: when a lessor's revoke commits at revision
//! r, every key the apiserver last attached to that lease before r (`LeaseAttached`, the
//! write's own revision), and that nothing wrote or deleted since, is deleted at r, in that
//! one revision (etcd `lessor.Revoke`: the lease's keys go in one write transaction), and
//! no key that its last write attached to another lease is (a put with a lease detaches
//! the key from its old one). A
//! write whose answer the apiserver never got is not attributed to a lease and is not
//! examined.
//!
//! The clock is the deciding member's, as etcd's is: a leader whose clock jumps forward
//! expires leases early in real time, which etcd documents (leases depend on the leader's
//! clock rate) and this invariant allows. The election-timeout extension is slack the
//! invariant does not demand.
//!
//! Evidence: the lessor's own records (`HistoryEvent::Lessor`), per member, reset when the
//! member restarts (a restarted member's lessor starts demoted). Judged per cluster epoch
//! (a restore starts a new cluster, whose leader promotes the restored leases).
//!
//! Cost: O(n log n) in lessor records.

use std::collections::{BTreeMap, BTreeSet};

use store::api::{MemberId, Revision};

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{HistoryEvent, LessorRecord};

/// One member's lessor as its records show it.
#[derive(Default)]
struct Lessor {
    /// The promotion's clock reading while primary.
    promoted_ms: Option<u64>,
    /// Per lease, the clock reading of the last grant applied as primary or keep-alive
    /// acknowledged since the promotion.
    refreshed_ms: BTreeMap<i64, u64>,
}

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::LeaseExpiry);
    let mut lessors: BTreeMap<MemberId, Lessor> = BTreeMap::new();
    let mut ttl_secs: BTreeMap<i64, i64> = BTreeMap::new();
    let (mut n_expiries, mut n_grants, mut n_promotions) = (0usize, 0usize, 0usize);
    for (at_ns, event) in input.history.events() {
        let (member, record) = match event {
            HistoryEvent::MemberStarted { member, .. } => {
                lessors.remove(member);
                continue;
            }
            HistoryEvent::Lessor { member, event } => (*member, event),
            _ => continue,
        };
        let lessor = lessors.entry(member).or_default();
        match record {
            LessorRecord::Promoted { now_ms, leases, .. } => {
                n_promotions += 1;
                lessor.promoted_ms = Some(*now_ms);
                lessor.refreshed_ms.clear();
                ttl_secs.extend(leases.iter().copied());
            }
            LessorRecord::Demoted => *lessor = Lessor::default(),
            LessorRecord::Granted { lease, ttl_secs: ttl, now_ms, primary } => {
                n_grants += 1;
                ttl_secs.insert(*lease, *ttl);
                if *primary {
                    lessor.refreshed_ms.insert(*lease, *now_ms);
                }
            }
            LessorRecord::Renewed { lease, ttl_secs: ttl, now_ms } => {
                ttl_secs.insert(*lease, *ttl);
                lessor.refreshed_ms.insert(*lease, *now_ms);
            }
            LessorRecord::ExpiryProposed { lease, now_ms, proposal_id } => {
                n_expiries += 1;
                let expiry = Expiry { member, lease: *lease, now_ms: *now_ms, proposal_id: *proposal_id };
                if let Some(why) = early_expiry(lessor, &ttl_secs, &expiry) {
                    violations.push(Some(at_ns), why);
                }
            }
        }
    }
    let (n_revokes, n_keys) = check_revokes(input, &mut violations);
    violations.into_verdict(
        n_expiries + n_keys,
        format!(
            "{n_expiries} lease expiries against {n_grants} grants applied and {n_promotions} lessor promotions; \
             {n_revokes} revokes committed, {n_keys} attached keys checked deleted"
        ),
    )
}

/// A lessor's proposal to revoke an expired lease.
struct Expiry {
    member: MemberId,
    lease: i64,
    now_ms: u64,
    proposal_id: u64,
}

/// Why `expiry` came too early, or from a lessor that may not expire leases, if it did:
/// only the primary expires, a lease it knows, once the TTL ran on its clock since the
/// later of its promotion and the lease's last grant or keep-alive.
fn early_expiry(lessor: &Lessor, ttl_secs: &BTreeMap<i64, i64>, expiry: &Expiry) -> Option<String> {
    let Expiry { member, lease, now_ms, proposal_id } = expiry;
    let Some(promoted_ms) = lessor.promoted_ms else {
        return Some(format!(
            "{member} proposed the revoke of expired lease {lease:x} (proposal \
             {proposal_id}) while not the lease primary: only the leader's lessor expires leases"
        ));
    };
    let Some(ttl) = ttl_secs.get(lease).copied() else {
        return Some(format!("{member} expired lease {lease:x}, which it never granted nor held when promoted"));
    };
    // The later event, not the larger reading: a clock set back reads less after than
    // before (a promotion clears the refreshes before it).
    let (since_ms, since) = match lessor.refreshed_ms.get(lease) {
        Some(&refreshed) => (refreshed, "its grant or last keep-alive"),
        None => (promoted_ms, "its promotion to leader"),
    };
    let ttl_ms = u64::try_from(ttl).unwrap_or(0).saturating_mul(1000);
    (*now_ms < since_ms.saturating_add(ttl_ms)).then(|| {
        format!(
            "{member} expired lease {lease:x} (TTL {ttl} s) at {now_ms} ms on its clock, \
             {} ms after {since} at {since_ms} ms: before the TTL ran on the deciding leader's clock",
            now_ms.saturating_sub(since_ms)
        )
    })
}

/// The revokes' half (see the module): returns the revokes committed and the keys checked.
fn check_revokes(input: &CheckInput, violations: &mut Violations) -> (usize, usize) {
    let RevokeEvidence { revokes, attached, changes, deleted_at } = RevokeEvidence::of(input);
    // (key, write revision) -> the lease that write attached the key to.
    let lease_of_write: BTreeMap<(&str, Revision), i64> =
        attached.iter().flat_map(|(&lease, keys)| keys.iter().map(move |&(key, at)| ((key, at), lease))).collect();
    let mut n_keys = 0;
    for (&revoked_at, &(lease, at_ns)) in &revokes {
        // Only its own keys: a key moved to another lease since (etcd's put with a lease
        // detaches it from the old one) outlives the old lease.
        for &key in deleted_at.get(&revoked_at).map(Vec::as_slice).unwrap_or_default() {
            let Some(&(written_at, false)) = last_change_before(&changes, key, revoked_at) else { continue };
            if let Some(&other) = lease_of_write.get(&(key, written_at)).filter(|&&other| other != lease) {
                violations.push(
                    Some(at_ns),
                    format!(
                        "the revoke of lease {lease:x} at revision {revoked_at} deleted {key}, which the write at \
                         revision {written_at} had attached to lease {other:x}"
                    ),
                );
            }
        }
        for &(key, written_at) in attached.get(&lease).map(Vec::as_slice).unwrap_or_default() {
            // The key's last change before the revoke must be this leased write.
            if last_change_before(&changes, key, revoked_at) != Some(&(written_at, false)) {
                continue;
            }
            n_keys += 1;
            if !deleted_at.get(&revoked_at).is_some_and(|keys| keys.contains(&key)) {
                violations.push(
                    Some(at_ns),
                    format!(
                        "lease {lease:x} was revoked at revision {revoked_at}, but {key}, attached to it by the \
                         write at revision {written_at}, was not deleted at that revision"
                    ),
                );
            }
        }
    }
    (revokes.len(), n_keys)
}

/// What the history shows of lessor revokes and of the keys attached to leases.
struct RevokeEvidence<'a> {
    /// revision -> (lease, when), for each lessor revoke that committed.
    revokes: BTreeMap<Revision, (i64, u64)>,
    /// lease -> keys the apiserver attached to it, with the write's revision.
    attached: BTreeMap<i64, Vec<(&'a str, Revision)>>,
    /// key -> (revision, deleted) of each committed change.
    changes: BTreeMap<&'a str, Vec<(Revision, bool)>>,
    /// revision -> the keys it deleted.
    deleted_at: BTreeMap<Revision, Vec<&'a str>>,
}

impl<'a> RevokeEvidence<'a> {
    fn of(input: &'a CheckInput) -> Self {
        let mut evidence = RevokeEvidence {
            revokes: BTreeMap::new(),
            attached: BTreeMap::new(),
            changes: BTreeMap::new(),
            deleted_at: BTreeMap::new(),
        };
        let mut lease_of_proposal: BTreeMap<u64, i64> = BTreeMap::new();
        let mut judged_proposals: BTreeSet<u64> = BTreeSet::new();
        for (at_ns, event) in input.history.events() {
            match event {
                HistoryEvent::Lessor { event: LessorRecord::ExpiryProposed { lease, proposal_id, .. }, .. } => {
                    lease_of_proposal.insert(*proposal_id, *lease);
                }
                // A revoke that deleted nothing leaves the revision as it was: only one that
                // deleted something owns its revision.
                HistoryEvent::Applied { proposal_id, succeeded: true, revision, n_events, .. } if *n_events > 0 => {
                    if let Some(&lease) = lease_of_proposal.get(proposal_id) {
                        if judged_proposals.insert(*proposal_id) {
                            evidence.revokes.insert(*revision, (lease, at_ns));
                        }
                    }
                }
                HistoryEvent::LeaseAttached { key, revision, lease, .. } => {
                    evidence.attached.entry(*lease).or_default().push((key, *revision));
                }
                HistoryEvent::Committed { revision, changes: changed } => {
                    for change in changed {
                        let deleted = change.value_hash.is_none();
                        evidence.changes.entry(&change.key).or_default().push((*revision, deleted));
                        if deleted {
                            evidence.deleted_at.entry(*revision).or_default().push(&change.key);
                        }
                    }
                }
                _ => {}
            }
        }
        evidence
    }
}

/// A key's last committed change (revision, deleted) before `revision`.
fn last_change_before<'a>(
    changes: &'a BTreeMap<&str, Vec<(Revision, bool)>>,
    key: &str,
    revision: Revision,
) -> Option<&'a (Revision, bool)> {
    changes.get(key)?.iter().rev().find(|(at, _)| *at < revision)
}
