//! Store leases for objects with a time to live (Events), shared by the writes of one
//! apiserver: Kubernetes' `storage/etcd3/lease_manager.go`.
//!
//! kube-apiserver stores each Event under an etcd lease of `--event-ttl` (one hour by
//! default), so the store deletes it on its own once the TTL has passed without a newer
//! write. Granting a lease per write would cost one Raft round per Event, so the lease
//! manager reuses its previous lease for writes that arrive within a reuse window: it
//! grants `ttl + reuse` seconds, and a later write of the same TTL takes that lease while
//! the lease still outlives the write by at least `ttl` and by at most `ttl + reuse`
//! (`valid && sufficient` in `GetLease`). The window is 5% of the TTL, at most 60 s
//! (`leaseReuseDurationPercent`, `ReuseDurationSeconds`); a lease carries at most 1000
//! objects (`MaxObjectCount`). Its clock is the apiserver's own (`time.Now()` there).
//!
//! The manager holds its lock across the grant, as Kubernetes' does, so concurrent writes
//! never grant two leases for one window.

use std::sync::Arc;
use std::time::Duration;

use api::Clock;
use store::api::StoreError;
use store::lease::LeaseId;

use crate::backend::Backend;

/// kube-apiserver's `--event-ttl` default.
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(60 * 60);
/// `defaultLeaseReuseDurationSeconds` (lease_manager.go).
const MAX_REUSE_SECS: i64 = 60;
/// `leaseReuseDurationPercent` (lease_manager.go): the reuse window is this share of the
/// TTL when that is shorter than [`MAX_REUSE_SECS`].
const REUSE_PERCENT: i64 = 5;
/// `defaultLeaseMaxObjectCount` (lease_manager.go).
const MAX_OBJECTS_PER_LEASE: u64 = 1000;

/// The lease manager of one apiserver (cheap to clone; clones share the lease).
#[derive(Clone)]
pub struct TtlLeases {
    clock: Clock,
    state: Arc<futures::lock::Mutex<Reused>>,
}

#[derive(Default)]
struct Reused {
    /// The last lease granted and when it expires on this apiserver's clock (ms).
    lease: Option<(LeaseId, u64)>,
    /// Objects given the last lease so far (every request counts, as in Kubernetes).
    attached: u64,
}

impl TtlLeases {
    pub fn new(clock: Clock) -> Self {
        Self { clock, state: Arc::new(futures::lock::Mutex::new(Reused::default())) }
    }

    /// A lease under which an object may be written to live `ttl` (whole seconds, at least
    /// one): the previous one when it fits the reuse window, else a new grant of `ttl` plus
    /// the window.
    pub async fn lease_for<B: Backend>(&self, backend: &B, ttl: Duration) -> Result<LeaseId, StoreError> {
        let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let reuse_secs = (ttl_secs * REUSE_PERCENT / 100).min(MAX_REUSE_SECS);
        let mut state = self.state.lock().await;
        let now = self.clock.now_ms();
        state.attached += 1;
        if let Some((id, expires_ms)) = state.lease {
            let valid = now + secs_ms(ttl_secs) < expires_ms;
            let sufficient = now + secs_ms(ttl_secs + reuse_secs) > expires_ms;
            if valid && sufficient && state.attached <= MAX_OBJECTS_PER_LEASE {
                coverage::reached!("apiserver.ttl-lease.reused");
                return Ok(id);
            }
        }
        let granted = backend.lease_grant(ttl_secs + reuse_secs).await?;
        coverage::reached!("apiserver.ttl-lease.granted");
        state.lease = Some((granted.id, now + secs_ms(ttl_secs + reuse_secs)));
        state.attached = 1;
        Ok(granted.id)
    }
}

fn secs_ms(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0).saturating_mul(1000)
}
