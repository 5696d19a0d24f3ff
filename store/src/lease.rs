//! etcd's leases (server/lease/lessor.go), as two pure parts:
//!
//! - [`LeaseTable`]: the replicated state every member holds alike — which leases exist,
//!   their granted TTL, and which keys each one carries. It changes only by applying
//!   committed requests (grant, revoke, a put that attaches or detaches a key, a delete),
//!   so every member that applies the same log holds the same table.
//! - [`LeaseExpiry`]: what only the lease primary (the Raft leader) keeps — when each
//!   lease expires on its own clock. etcd's followers hold every lease "forever" and never
//!   expire one; the leader finds expired leases and proposes their revocation through
//!   Raft, and a new leader refreshes every lease on promotion so that a leader change
//!   does not expire them all at once.
//!
//! Neither part reads a clock or knows Raft: the member passes its clock's instant in
//! (as a [`Duration`] since the member's epoch) and turns expired leases into revoke
//! proposals. The MVCC state machine applies grants, revokes and leased puts with the
//! table (see `Mvcc::apply`); the member (server/core.rs) promotes and demotes the expiry
//! clock with its Raft role, reads it on its `simtime::Clock`, proposes the revokes and
//! serves keep-alive, time-to-live and the lease list.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The principal of the revokes the leader's lessor proposes for expired leases. It
/// writes with the apiserver's role, since the store's access rule admits key changes
/// from that role alone: an expiry is the store deleting keys on its own account.
pub const LESSOR_PRINCIPAL: &str = "store-lessor";

use serde::{Deserialize, Serialize};

/// etcd `LeaseID`. 0 is etcd's `NoLease`.
pub type LeaseId = i64;

/// etcd `lease.NoLease`: a key attached to no lease, or "choose an id" in a grant.
pub const NO_LEASE: LeaseId = 0;

/// etcd `MaxLeaseTTL` (lessor.go): a grant asking for more is `ErrLeaseTTLTooLarge`.
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

/// etcd `leaseRevokeRate` (lessor.go): at most this many leases are revoked per second;
/// each expiry check (every 500 ms) hands out at most half of it.
pub const LEASE_REVOKE_RATE: usize = 1000;

/// etcd `expiredLeaseRetryInterval` (lessor.go): a lease reported expired is reported
/// again after this long if its revoke has not been applied by then (a lost proposal).
pub const EXPIRED_LEASE_RETRY_INTERVAL: Duration = Duration::from_secs(3);

/// etcd's minimum lease TTL: 1.5 election timeouts, rounded up to whole seconds
/// (etcdserver/server.go `minTTL`, passed as lessor.go `MinLeaseTTL`). A grant asking for
/// less gets this. 2 s with etcd's defaults (100 ms heartbeat, 10 ticks) and kubesim's.
pub fn min_lease_ttl_secs(election_timeout: Duration) -> i64 {
    let min = election_timeout.as_nanos() * 3 / 2;
    i64::try_from(min.div_ceil(1_000_000_000)).unwrap_or(i64::MAX)
}

/// etcd's lease errors (lease/lessor.go, surfaced by etcdserver/api/v3rpc as gRPC codes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum LeaseError {
    /// etcd `ErrLeaseNotFound`: "requested lease not found" (revoke, renew, a put
    /// attaching to an unknown or expired lease).
    #[error("requested lease {id:x} not found")]
    NotFound { id: LeaseId },
    /// etcd `ErrLeaseExists`: a grant with an id already in use.
    #[error("lease {id:x} already exists")]
    Exists { id: LeaseId },
    /// etcd `ErrLeaseTTLTooLarge`.
    #[error("lease TTL {ttl_secs} s is too large (at most {MAX_LEASE_TTL_SECS} s)")]
    TtlTooLarge { ttl_secs: i64 },
    /// etcd `ErrNotPrimary`: only the lease primary (the leader) renews leases or tells
    /// their remaining time.
    #[error("not the lease primary")]
    NotPrimary,
}

/// A lease error as the store's requests report it: [`crate::api::StoreError::Lease`].
impl From<LeaseError> for crate::api::StoreError {
    fn from(error: LeaseError) -> Self {
        crate::api::StoreError::Lease { error }
    }
}

/// One lease: its granted TTL and the keys attached to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: LeaseId,
    /// The TTL granted (after raising it to the minimum), in seconds.
    pub ttl_secs: i64,
    /// etcd `Lease.itemSet`; sorted, which is also the order a revoke deletes them in.
    pub keys: BTreeSet<String>,
}

/// The replicated lease state (etcd lessor's `leaseMap` and `itemMap`, persisted in
/// etcd's `lease` bucket). Deterministic: only applied requests change it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTable {
    leases: BTreeMap<LeaseId, Lease>,
    /// etcd `itemMap`: the lease each attached key belongs to.
    by_key: BTreeMap<String, LeaseId>,
    /// The last id chosen for a grant that named none.
    last_chosen_id: LeaseId,
}

impl LeaseTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// True when there is no lease and no id was ever chosen: the table of a store that
    /// never used leases.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty() && self.last_chosen_id == NO_LEASE
    }

    /// etcd `lessor.Grant` (applied on every member): a TTL above [`MAX_LEASE_TTL_SECS`]
    /// is `TtlTooLarge`, an id in use `Exists`; a TTL below `min_ttl_secs` is raised to
    /// it. Returns the lease's id and granted TTL.
    ///
    /// Id 0 asks for an id to be chosen. etcd's server fills it in before proposing (from
    /// its request id generator, so ids look random); here it is chosen when the grant is
    /// applied, the first id after the last one chosen that no lease holds, so that every
    /// member chooses the same one without an id in the request.
    pub fn grant(&mut self, id: LeaseId, ttl_secs: i64, min_ttl_secs: i64) -> Result<(LeaseId, i64), LeaseError> {
        if ttl_secs > MAX_LEASE_TTL_SECS {
            return Err(LeaseError::TtlTooLarge { ttl_secs });
        }
        let id = if id == NO_LEASE { self.choose_id() } else { id };
        if self.leases.contains_key(&id) {
            return Err(LeaseError::Exists { id });
        }
        let ttl_secs = ttl_secs.max(min_ttl_secs);
        self.leases.insert(id, Lease { id, ttl_secs, keys: BTreeSet::new() });
        Ok((id, ttl_secs))
    }

    fn choose_id(&mut self) -> LeaseId {
        let mut id = self.last_chosen_id;
        loop {
            id = if id == LeaseId::MAX { 1 } else { id + 1 };
            if !self.leases.contains_key(&id) {
                self.last_chosen_id = id;
                return id;
            }
        }
    }

    /// etcd `lessor.Revoke`: removes the lease and returns its keys, sorted, for the caller
    /// to delete in one write transaction (etcd sorts them "so deletes are in same order
    /// among all members"). An unknown lease is `NotFound`.
    pub fn revoke(&mut self, id: LeaseId) -> Result<Vec<String>, LeaseError> {
        let lease = self.leases.remove(&id).ok_or(LeaseError::NotFound { id })?;
        for key in &lease.keys {
            self.by_key.remove(key);
        }
        Ok(lease.keys.into_iter().collect())
    }

    /// Checks that a put may attach to `id` (etcd `applyPut`/`checkRequestPut`: a put
    /// with an unknown lease is `ErrLeaseNotFound` and writes nothing).
    pub fn check_attachable(&self, id: LeaseId) -> Result<(), LeaseError> {
        if id == NO_LEASE || self.leases.contains_key(&id) {
            Ok(())
        } else {
            Err(LeaseError::NotFound { id })
        }
    }

    /// What a put of `key` with lease `id` (0: none) does to the leases (etcd
    /// mvcc/kvstore_txn.go `put`): the key leaves the lease it was attached to, whatever
    /// the new lease, and joins `id`. Check [`Self::check_attachable`] first.
    pub fn put(&mut self, key: &str, id: LeaseId) -> Result<(), LeaseError> {
        self.check_attachable(id)?;
        self.detach(key);
        if id != NO_LEASE {
            self.leases.get_mut(&id).expect("checked above").keys.insert(key.to_string());
            self.by_key.insert(key.to_string(), id);
        }
        Ok(())
    }

    /// What deleting `key` does to the leases (etcd mvcc/kvstore_txn.go `delete`): it
    /// leaves its lease. A key attached to none is left alone.
    pub fn detach(&mut self, key: &str) {
        if let Some(id) = self.by_key.remove(key) {
            if let Some(lease) = self.leases.get_mut(&id) {
                lease.keys.remove(key);
            }
        }
    }

    /// The lease `key` is attached to (etcd `lessor.GetLease`), or [`NO_LEASE`].
    pub fn lease_of(&self, key: &str) -> LeaseId {
        self.by_key.get(key).copied().unwrap_or(NO_LEASE)
    }

    /// etcd `lessor.Lookup`.
    pub fn lookup(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    /// etcd `lessor.Leases` (`LeaseLeases`): every lease id, ascending.
    pub fn ids(&self) -> Vec<LeaseId> {
        self.leases.keys().copied().collect()
    }

    /// Every lease, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }
}

/// What a member's lessor did, on that member's clock, for the harness to check lease
/// expiry against (`StoreObserver::lessor`). `now` is the member's wall clock (the one its
/// lessor reads), so a checker judges expiry as etcd does: by the deciding leader's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LessorEvent {
    /// The member became the lease primary (etcd `Promote`), with the extension it gives
    /// every lease, and the leases (id, TTL) it then held.
    Promoted { now: Duration, extend: Duration, leases: Vec<(LeaseId, i64)> },
    /// The member stopped being the primary (etcd `Demote`).
    Demoted,
    /// A grant was applied here; `primary` when this member then ran the expiry clock.
    Granted { lease: LeaseId, ttl_secs: i64, now: Duration, primary: bool },
    /// The primary acknowledged a keep-alive (etcd `Renew`).
    Renewed { lease: LeaseId, ttl_secs: i64, now: Duration },
    /// The primary found the lease expired and proposed its revoke as proposal
    /// `proposal_id` (etcd `revokeExpiredLeases`).
    ExpiryProposed { lease: LeaseId, now: Duration, proposal_id: u64 },
}

/// The lease primary's clock-driven state (etcd lessor's `primary` flag, each lease's
/// `expiry` and the `leaseExpiredNotifier` heap). Kept only in memory, on the member that
/// leads: etcd persists a lease's id and TTL, never its expiry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseExpiry {
    primary: bool,
    /// When each lease expires, on the primary's clock. Only set while primary.
    expiries: BTreeMap<LeaseId, Duration>,
    /// PLANTED BUG (`StoreBugs::lease_expiry_ignores_promotion`): when each lease's grant
    /// was applied here, on this member's clock, primary or not; `None` without the bug.
    granted_at: Option<BTreeMap<LeaseId, Duration>>,
}

impl LeaseExpiry {
    /// A follower's: not primary, every lease held forever.
    pub fn new() -> Self {
        Self::default()
    }

    /// PLANTED BUG (`StoreBugs::lease_expiry_ignores_promotion`): a lessor that, on
    /// promotion, counts each lease's TTL from when this member applied its grant instead
    /// of refreshing it (see [`Self::promote`]).
    pub fn with_planted_bug_ignores_promotion() -> Self {
        Self { granted_at: Some(BTreeMap::new()), ..Self::default() }
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    /// etcd `lessor.Promote(extend)`, called when the member becomes leader with
    /// `extend` = the election timeout: every lease is refreshed to expire `extend` plus its
    /// full TTL from now (`Lease.refresh`; etcd's optional lease checkpoints, off by
    /// default in 3.4, would use the checkpointed remaining TTL instead). A leader change
    /// therefore never expires a lease early; a lease whose holder stopped renewing lives
    /// at most one TTL plus an election timeout past the promotion. etcd then spreads the
    /// expiries when more than `leaseRevokeRate` leases exist; here the revoke rate limit
    /// of [`Self::take_expired`] bounds the same burst.
    pub fn promote(&mut self, table: &LeaseTable, now: Duration, extend: Duration) {
        self.primary = true;
        self.expiries = table
            .iter()
            .map(|lease| match self.granted_at.as_ref().and_then(|at| at.get(&lease.id)) {
                // PLANTED BUG: the TTL runs from the grant as this member applied it, as
                // if a follower's lessor kept time; a lease granted under the previous
                // leader may expire right after the election, before its TTL has run on
                // the new leader's clock.
                Some(granted) => (lease.id, *granted + ttl(lease.ttl_secs)),
                None => (lease.id, now + extend + ttl(lease.ttl_secs)),
            })
            .collect();
    }

    /// etcd `lessor.Demote`: the member stopped leading; every lease is held forever
    /// (`Lease.forever`) until a later promotion.
    pub fn demote(&mut self) {
        self.primary = false;
        self.expiries.clear();
    }

    /// A grant was applied (etcd `lessor.Grant`): on the primary the lease expires one TTL
    /// from now (`refresh(0)`); elsewhere it is held forever.
    pub fn granted(&mut self, lease: &Lease, now: Duration) {
        if let Some(granted_at) = &mut self.granted_at {
            granted_at.insert(lease.id, now);
        }
        if self.primary {
            self.expiries.insert(lease.id, now + ttl(lease.ttl_secs));
        }
    }

    /// A revoke was applied: the lease has no expiry any more.
    pub fn revoked(&mut self, id: LeaseId) {
        self.expiries.remove(&id);
        if let Some(granted_at) = &mut self.granted_at {
            granted_at.remove(&id);
        }
    }

    /// etcd `lessor.Renew` (`LeaseKeepAlive`, served by the leader only, not through
    /// Raft): the lease expires one TTL from now; returns that TTL. Not primary is
    /// `NotPrimary`; an unknown lease, or one already expired and waiting for its revoke,
    /// is `NotFound`.
    pub fn renew(&mut self, table: &LeaseTable, id: LeaseId, now: Duration) -> Result<i64, LeaseError> {
        if !self.primary {
            return Err(LeaseError::NotPrimary);
        }
        let lease = table.lookup(id).ok_or(LeaseError::NotFound { id })?;
        let expiry = self.expiries.entry(id).or_insert(now + ttl(lease.ttl_secs));
        if *expiry <= now {
            return Err(LeaseError::NotFound { id });
        }
        *expiry = now + ttl(lease.ttl_secs);
        Ok(lease.ttl_secs)
    }

    /// The TTL etcd's `LeaseTimeToLive` reports: whole seconds left on the primary's clock
    /// (`int64(l.Remaining().Seconds())`, truncated), 0 once expired. Not primary is
    /// `NotPrimary`; an unknown lease `NotFound` (which etcd's gRPC layer turns into a
    /// response with TTL -1).
    pub fn remaining_secs(&self, table: &LeaseTable, id: LeaseId, now: Duration) -> Result<i64, LeaseError> {
        if !self.primary {
            return Err(LeaseError::NotPrimary);
        }
        let lease = table.lookup(id).ok_or(LeaseError::NotFound { id })?;
        let expiry = self.expiries.get(&id).copied().unwrap_or(now + ttl(lease.ttl_secs));
        Ok(i64::try_from(expiry.saturating_sub(now).as_secs()).unwrap_or(i64::MAX))
    }

    /// etcd `lessor.findExpiredLeases` (run every 500 ms by `revokeExpiredLeases`, on the
    /// primary only): up to `limit` leases whose expiry has passed, earliest first (ties by
    /// id), for the caller to propose their revocation. Each one returned is due again
    /// [`EXPIRED_LEASE_RETRY_INTERVAL`] later, in case its revoke is lost.
    pub fn take_expired(&mut self, now: Duration, limit: usize) -> Vec<LeaseId> {
        if !self.primary {
            return Vec::new();
        }
        let mut due: Vec<(Duration, LeaseId)> =
            self.expiries.iter().filter(|(_, &at)| at <= now).map(|(&id, &at)| (at, id)).collect();
        due.sort();
        due.truncate(limit);
        for (_, id) in &due {
            self.expiries.insert(*id, now + EXPIRED_LEASE_RETRY_INTERVAL);
        }
        due.into_iter().map(|(_, id)| id).collect()
    }
}

fn ttl(ttl_secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl_secs).unwrap_or(0))
}
