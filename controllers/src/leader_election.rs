//! Leader election on a Lease, after client-go's `leaderelection` package.
//!
//! A candidate acquires the lease when nobody holds it or the holder's
//! `renew_time + lease_duration` has passed, as judged by *this node's* [`Clock`]
//! (deliberately the skewed clock, so the nemesis's clock faults reach leader election).
//! This departs from client-go, which judges expiry from when *it observed* the record
//! change (`observedTime`, `isLeaseValid`) on Go's monotonic clock, so that only a
//! difference in clock *rate* can make it take over early ("tolerant to arbitrary clock
//! skew, but is not tolerant to arbitrary clock skew rate", `leaderelection/doc.go`);
//! here a clock offset or jump does too, a stronger fault than Kubernetes sees.
//!
//! The leader renews every retry period in rounds bounded by the renew deadline, and stops
//! leading only when a round's deadline passes without a successful renewal: as in
//! client-go, finding the lease held by another identity is one more failed attempt, not
//! the end of the term (see `Elector::renew_round`). Nothing between the elector and a controller's write
//! looks at the lease clock: a controller writes while [`LeaderHandle`] says it leads.
//!
//! Fencing (kubesim's addition, docs/design.md §4 invariant 3): the leader's writes carry a
//! [`LeaseFence`] naming the lease and its resourceVersion as last written by the leader.
//! The apiserver compares the lease in the same store transaction, so a deposed leader's
//! write fails with `Fenced` even if the deposed leader has not noticed yet. With
//! `fencing: false` writes carry no fence, as in Kubernetes: then a paused-and-resumed old
//! leader can write concurrently with the new one. Every renewal moves the lease's
//! resourceVersion, so a write racing a renewal may be fenced spuriously; controllers treat
//! `Fenced` like a conflict and retry with the new fence while still leading.
//!
//! [`decide`] is the pure core (lease, now, identity in; what to write out);
//! [`run_leader_election`] is the async driver.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use api::{ApiClient, ApiError, Clock, Lease, LeaseFence, LeaseSpec, Object, ObjectMeta, Resource, ResourceVersion};
use madsim::rand::Rng;

use crate::driver::TaskGroup;
use crate::notify::Notify;
use crate::observer::ControllerObserver;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Lease namespace (Kubernetes: `kube-system`).
    pub lease_namespace: String,
    /// Lease name (`kube-controller-manager`, `kube-scheduler`).
    pub lease_name: String,
    /// This candidate's identity, unique among candidates (the simulator uses the node name).
    pub identity: String,
    /// How long a lease is valid after its last renewal (Kubernetes default 15 s).
    pub lease_duration_ms: u64,
    /// How long a leader keeps trying to renew before giving up (default 10 s).
    pub renew_deadline_ms: u64,
    /// Interval between acquire/renew attempts (default 2 s).
    pub retry_period_ms: u64,
    /// Whether writes carry the lease fence (kubesim default true; Kubernetes has none).
    pub fencing: bool,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        Self {
            lease_namespace: "kube-system".into(),
            lease_name: "kube-controller-manager".into(),
            identity: "kube-controller-manager".into(),
            lease_duration_ms: 15_000,
            renew_deadline_ms: 10_000,
            retry_period_ms: 2_000,
            fencing: true,
        }
    }
}

impl LeaderElectionConfig {
    pub fn for_lease(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            lease_namespace: namespace.into(),
            lease_name: name.into(),
            identity: identity.into(),
            ..Self::default()
        }
    }
}

/// What a candidate should do with the lease it read (client-go `tryAcquireOrRenew`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No lease exists: create it, held by us.
    Create(Lease),
    /// Write this lease (it keeps the read resourceVersion as precondition): a renewal of
    /// our own lease, or a takeover of a free or expired one.
    Update { lease: Lease, takeover: bool },
    /// Another candidate holds a lease that has not expired by our clock.
    HeldByOther { holder: String, expires_at_ms: u64 },
}

/// When a lease expires: its last renewal (or acquisition) plus its duration.
pub fn lease_expiry_ms(spec: &LeaseSpec) -> u64 {
    let renewed_ms = spec.renew_time_ms.or(spec.acquire_time_ms).unwrap_or(0);
    renewed_ms.saturating_add(u64::from(spec.lease_duration_seconds) * 1_000)
}

/// The pure core of leader election: what to do given the current lease and this node's
/// time.
pub fn decide(current: Option<&Lease>, now_ms: u64, config: &LeaderElectionConfig) -> LeaseDecision {
    let lease_duration_seconds = config.lease_duration_ms.div_ceil(1_000) as u32;
    let Some(current) = current else {
        let mut lease = Lease {
            metadata: ObjectMeta::named(&config.lease_namespace, &config.lease_name),
            spec: LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds,
                acquire_time_ms: Some(now_ms),
                renew_time_ms: Some(now_ms),
                lease_transitions: 0,
            },
        };
        lease.metadata.resource_version = 0;
        return LeaseDecision::Create(lease);
    };
    let holder = current.spec.holder_identity.clone().filter(|h| !h.is_empty());
    let mut lease = current.clone();
    match holder {
        Some(holder) if holder == config.identity => {
            lease.spec.renew_time_ms = Some(now_ms);
            lease.spec.lease_duration_seconds = lease_duration_seconds;
            LeaseDecision::Update { lease, takeover: false }
        }
        Some(holder) if lease_expiry_ms(&current.spec) > now_ms => {
            LeaseDecision::HeldByOther { holder, expires_at_ms: lease_expiry_ms(&current.spec) }
        }
        // Free, or expired by our clock: take it over.
        _ => {
            lease.spec = LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds,
                acquire_time_ms: Some(now_ms),
                renew_time_ms: Some(now_ms),
                lease_transitions: current.spec.lease_transitions + 1,
            };
            LeaseDecision::Update { lease, takeover: true }
        }
    }
}

/// The write was refused or skipped because this candidate is not (or no longer) leading.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not the leader")]
pub struct NotLeader;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderState {
    pub leading: bool,
    /// The lease's resourceVersion as last written by us: the fencing token.
    pub lease_rv: ResourceVersion,
    /// The epoch: the lease's lease_transitions when we acquired it.
    pub transitions: u32,
    /// Our clock's time at the last successful acquire or renew.
    pub last_renew_ms: u64,
}

/// Leadership as the elector sees it, shared with the loops that act on it.
#[derive(Clone)]
pub struct LeaderHandle {
    inner: Arc<LeaderShared>,
}

struct LeaderShared {
    lease_namespace: String,
    lease_name: String,
    fencing: bool,
    state: Mutex<LeaderState>,
    changed: Notify,
}

impl LeaderHandle {
    pub fn new(config: &LeaderElectionConfig) -> Self {
        Self {
            inner: Arc::new(LeaderShared {
                lease_namespace: config.lease_namespace.clone(),
                lease_name: config.lease_name.clone(),
                fencing: config.fencing,
                state: Mutex::new(LeaderState::default()),
                changed: Notify::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, LeaderState> {
        self.inner.state.lock().expect("leader state")
    }

    pub fn snapshot(&self) -> LeaderState {
        self.state().clone()
    }

    pub fn is_leader(&self) -> bool {
        self.state().leading
    }

    /// The epoch of the current (or last) leadership: the lease's transitions count.
    pub fn term(&self) -> u32 {
        self.state().transitions
    }

    /// The current fence, whether or not fencing is switched on; None when not leading.
    pub fn fence(&self) -> Option<LeaseFence> {
        let state = self.state();
        state.leading.then(|| LeaseFence {
            namespace: self.inner.lease_namespace.clone(),
            name: self.inner.lease_name.clone(),
            resource_version: state.lease_rv,
        })
    }

    /// What a write should carry: the fence (None when fencing is off), or `NotLeader`
    /// when this candidate must not write at all.
    pub fn write_fence(&self) -> Result<Option<LeaseFence>, NotLeader> {
        match self.fence() {
            None => Err(NotLeader),
            Some(fence) => Ok(self.inner.fencing.then_some(fence)),
        }
    }

    fn acquired(&self, lease_rv: ResourceVersion, transitions: u32, now_ms: u64) {
        *self.state() = LeaderState { leading: true, lease_rv, transitions, last_renew_ms: now_ms };
        self.inner.changed.notify();
    }

    fn renewed(&self, lease_rv: ResourceVersion, now_ms: u64) {
        let mut state = self.state();
        assert!(state.leading, "renewed a lease we do not hold");
        assert!(lease_rv > state.lease_rv, "lease resourceVersion went back from {} to {lease_rv}", state.lease_rv);
        state.lease_rv = lease_rv;
        state.last_renew_ms = now_ms;
    }

    fn lost(&self) {
        self.state().leading = false;
        self.inner.changed.notify();
    }

    /// Waits until this candidate leads.
    pub async fn wait_until_leader(&self) {
        while !self.is_leader() {
            self.inner.changed.notified().await;
        }
    }

    /// Waits until this candidate stops leading.
    pub async fn wait_until_lost(&self) {
        while self.is_leader() {
            self.inner.changed.notified().await;
        }
    }
}

// One value per election attempt: size does not matter.
#[allow(clippy::large_enum_variant)]
enum AttemptOutcome {
    Holding(Lease, bool),
    HeldByOther(String),
}

async fn try_acquire_or_renew(
    client: &ApiClient,
    clock: &Clock,
    config: &LeaderElectionConfig,
) -> Result<AttemptOutcome, ApiError> {
    let current = match client.get(Resource::Leases, &config.lease_namespace, &config.lease_name).await {
        Ok(object) => object.into_lease(),
        Err(ApiError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    let written = match decide(current.as_ref(), clock.now_ms(), config) {
        LeaseDecision::HeldByOther { holder, .. } => return Ok(AttemptOutcome::HeldByOther(holder)),
        LeaseDecision::Create(lease) => (client.create(Object::Lease(lease), None).await?, true),
        LeaseDecision::Update { lease, takeover } => (client.update(Object::Lease(lease), None).await?, takeover),
    };
    match written.0.into_lease() {
        Some(lease) => Ok(AttemptOutcome::Holding(lease, written.1)),
        None => Err(ApiError::Internal { reason: "lease write answered with another kind of object".into() }),
    }
}

/// Runs the election forever, publishing leadership through `handle`.
///
/// The loop is client-go's `LeaderElector.Run`: `acquire` until this candidate holds the
/// lease, then `renew` until a renew round fails, then back to `acquire` (a real
/// kube-controller-manager exits in `OnStoppedLeading` and is restarted; kubesim's next
/// term starts fresh tasks, the same thing seen from the API). The first renew round
/// starts as soon as the lease is acquired (`wait.Until` runs its function at once, and
/// `PollImmediateUntil` attempts at once), so a new leader renews straight away; later
/// rounds start a retry period after the previous one succeeded.
pub async fn run_leader_election(
    config: LeaderElectionConfig,
    component: String,
    client: ApiClient,
    clock: Clock,
    handle: LeaderHandle,
    observer: Option<Arc<dyn ControllerObserver>>,
) {
    assert!(
        config.renew_deadline_ms < config.lease_duration_ms && config.retry_period_ms > 0,
        "leader election needs retry_period > 0 and renew_deadline < lease_duration"
    );
    let elector = Elector { config, component, client, clock, handle, observer };
    loop {
        if elector.handle.is_leader() {
            elector.renew_round().await;
            if elector.handle.is_leader() {
                // client-go's `wait.Until(…, RetryPeriod, …)`: sliding, no jitter.
                madsim::time::sleep(Duration::from_millis(elector.config.retry_period_ms)).await;
            }
        } else {
            elector.try_acquire().await;
            if !elector.handle.is_leader() {
                // client-go's `acquire`: `JitterUntil` with jitter factor 1.2.
                let retry_ms = elector.config.retry_period_ms;
                let sleep_ms = retry_ms + madsim::rand::thread_rng().gen_range(0..=retry_ms * 6 / 5);
                madsim::time::sleep(Duration::from_millis(sleep_ms)).await;
            }
        }
    }
}

/// One candidate's election state machine (see [`run_leader_election`]).
struct Elector {
    config: LeaderElectionConfig,
    component: String,
    client: ApiClient,
    clock: Clock,
    handle: LeaderHandle,
    observer: Option<Arc<dyn ControllerObserver>>,
}

impl Elector {
    /// One attempt to acquire the lease (client-go `acquire`'s `tryAcquireOrRenew`),
    /// bounded by the renew deadline so that a lost answer does not stall the candidate.
    async fn try_acquire(&self) {
        let bound = Duration::from_millis(self.config.renew_deadline_ms);
        if let Ok(Ok(AttemptOutcome::Holding(lease, _))) =
            simtime::timeout(bound, try_acquire_or_renew(&self.client, &self.clock, &self.config)).await
        {
            self.acquired(&lease);
        }
    }

    /// One renew round: client-go `renew`'s body, `PollImmediateUntil(RetryPeriod,
    /// tryAcquireOrRenew, ctx)` under `context.WithTimeout(RenewDeadline)`. The leader
    /// attempts at once, then every retry period, until an attempt succeeds or the round's
    /// deadline passes; only then does it stop leading (client-go cancels the context its
    /// `OnStartedLeading` callback runs under).
    ///
    /// So a leader that finds its lease held by another identity does *not* stop at once:
    /// `tryAcquireOrRenew` answers false ("lock is held by … and has not yet expired") and
    /// the poll retries until the deadline, while the controllers keep acting. Nothing in
    /// client-go's controllers checks the lease clock before a write either. A leader
    /// resuming from a pause longer than the lease (a stop-the-world GC, a VM migration)
    /// therefore starts a new round on waking and has up to a renew deadline of writes beside
    /// its successor: the split-brain Kubernetes documents ("This implementation does not
    /// guarantee that only one client is acting as a leader (a.k.a. fencing)", client-go
    /// `leaderelection/doc.go`), and the window kubesim's fence closes.
    ///
    /// The deadline is measured on the simulator's unskewed time, as Go's
    /// `context.WithTimeout` is on the monotonic clock: a wall-clock fault does not move it.
    async fn renew_round(&self) {
        let deadline_ms = Clock::sim_now_ms() + self.config.renew_deadline_ms;
        let remaining = || Duration::from_millis(deadline_ms.saturating_sub(Clock::sim_now_ms()));
        let mut saw_other_holder = false;
        loop {
            if remaining().is_zero() {
                break;
            }
            let attempt =
                simtime::timeout(remaining(), try_acquire_or_renew(&self.client, &self.clock, &self.config)).await;
            match attempt {
                Ok(Ok(AttemptOutcome::Holding(lease, takeover))) => {
                    if takeover {
                        // We held it, lost it unnoticed, and took it over again: a new epoch.
                        coverage::reached!("controllers.leader.reacquired-after-unnoticed-loss");
                        self.lose("lease taken over again");
                        self.acquired(&lease);
                    } else {
                        let renewed_ms = lease.spec.renew_time_ms.unwrap_or_else(|| self.clock.now_ms());
                        self.handle.renewed(lease.metadata.resource_version, renewed_ms);
                    }
                    return;
                }
                Ok(Ok(AttemptOutcome::HeldByOther(holder))) => {
                    if !saw_other_holder {
                        saw_other_holder = true;
                        tracing::info!(
                            "{} found {} held by {holder}; keeps leading until its renew deadline",
                            self.config.identity,
                            self.component
                        );
                        coverage::reached!("controllers.leader.found-lease-taken");
                    }
                }
                Ok(Err(e)) => tracing::debug!("{}: lease renewal failed: {e}", self.config.identity),
                Err(_) => {}
            }
            if remaining().is_zero() {
                break;
            }
            madsim::time::sleep(remaining().min(Duration::from_millis(self.config.retry_period_ms))).await;
        }
        coverage::reached!("controllers.leader.renew-deadline-passed");
        self.lose("renew deadline passed");
    }

    fn acquired(&self, lease: &Lease) {
        let rv = lease.metadata.resource_version;
        let transitions = lease.spec.lease_transitions;
        if transitions > 0 {
            coverage::reached!("controllers.leader.took-over");
        }
        self.handle.acquired(rv, transitions, lease.spec.renew_time_ms.unwrap_or_else(|| self.clock.now_ms()));
        tracing::info!("{} leads {}, epoch {transitions}, lease rv {rv}", self.config.identity, self.component);
        if let Some(o) = &self.observer {
            o.leader_acquired(&self.component, &self.config.identity, transitions, rv);
        }
    }

    fn lose(&self, why: &str) {
        tracing::info!("{} lost {}: {why}", self.config.identity, self.component);
        self.handle.lost();
        notify_lost(&self.observer, &self.component, &self.config.identity);
    }
}

/// Runs leader election and, during each term of leadership, the tasks `start_term`
/// returns; they are aborted as soon as leadership is lost. Runs forever.
pub async fn run_while_leader<F>(
    config: LeaderElectionConfig,
    component: &str,
    client: ApiClient,
    clock: Clock,
    observer: Option<Arc<dyn ControllerObserver>>,
    mut start_term: F,
) where
    F: FnMut(LeaderHandle) -> TaskGroup,
{
    let handle = LeaderHandle::new(&config);
    let mut elector = TaskGroup::new();
    elector.spawn(run_leader_election(config, component.to_string(), client, clock, handle.clone(), observer));
    loop {
        handle.wait_until_leader().await;
        let term = start_term(handle.clone());
        handle.wait_until_lost().await;
        drop(term);
    }
}

fn notify_lost(observer: &Option<Arc<dyn ControllerObserver>>, component: &str, identity: &str) {
    if let Some(o) = observer {
        o.leader_lost(component, identity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(identity: &str) -> LeaderElectionConfig {
        LeaderElectionConfig::for_lease("kube-system", "kube-controller-manager", identity)
    }

    fn lease(holder: &str, renew_ms: u64, transitions: u32) -> Lease {
        let mut lease = Lease {
            metadata: ObjectMeta::named("kube-system", "kube-controller-manager"),
            spec: LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: 15,
                acquire_time_ms: Some(0),
                renew_time_ms: Some(renew_ms),
                lease_transitions: transitions,
            },
        };
        lease.metadata.resource_version = 42;
        lease
    }

    #[test]
    fn acquires_a_missing_lease_by_creating_it() {
        match decide(None, 1_000, &config("cm-1")) {
            LeaseDecision::Create(l) => {
                assert_eq!(l.spec.holder_identity.as_deref(), Some("cm-1"));
                assert_eq!(l.spec.renew_time_ms, Some(1_000));
                assert_eq!(l.spec.lease_duration_seconds, 15);
                assert_eq!(l.spec.lease_transitions, 0);
            }
            other => panic!("expected Create, got {other:?}"),
        }
    }

    #[test]
    fn holder_renews_keeping_epoch_and_precondition() {
        let current = lease("cm-1", 10_000, 3);
        match decide(Some(&current), 12_000, &config("cm-1")) {
            LeaseDecision::Update { lease, takeover } => {
                assert!(!takeover);
                assert_eq!(lease.spec.renew_time_ms, Some(12_000));
                assert_eq!(lease.spec.lease_transitions, 3);
                assert_eq!(lease.metadata.resource_version, 42, "read rv is the precondition");
            }
            other => panic!("expected renewal, got {other:?}"),
        }
    }

    #[test]
    fn other_holder_is_respected_until_renew_time_plus_duration() {
        let current = lease("cm-1", 10_000, 3);
        assert_eq!(
            decide(Some(&current), 24_999, &config("cm-2")),
            LeaseDecision::HeldByOther { holder: "cm-1".into(), expires_at_ms: 25_000 }
        );
        match decide(Some(&current), 25_000, &config("cm-2")) {
            LeaseDecision::Update { lease, takeover } => {
                assert!(takeover);
                assert_eq!(lease.spec.holder_identity.as_deref(), Some("cm-2"));
                assert_eq!(lease.spec.lease_transitions, 4, "a takeover starts a new epoch");
                assert_eq!(lease.spec.acquire_time_ms, Some(25_000));
            }
            other => panic!("expected takeover, got {other:?}"),
        }
    }

    #[test]
    fn a_clock_running_ahead_takes_over_early() {
        // The candidate's clock is 6 s ahead: by its clock the lease renewed at 10 s has
        // expired at true time 19 s. Kubernetes leases have exactly this weakness.
        let current = lease("cm-1", 10_000, 0);
        let skewed_now_ms = 19_000 + 6_000;
        assert!(matches!(
            decide(Some(&current), skewed_now_ms, &config("cm-2")),
            LeaseDecision::Update { takeover: true, .. }
        ));
    }

    #[test]
    fn released_lease_is_free() {
        let mut current = lease("", 10_000, 1);
        current.spec.holder_identity = None;
        assert!(matches!(
            decide(Some(&current), 10_001, &config("cm-2")),
            LeaseDecision::Update { takeover: true, .. }
        ));
    }

    #[test]
    fn write_fence_follows_leadership_and_the_switch() {
        let fenced = LeaderHandle::new(&config("cm-1"));
        assert_eq!(fenced.write_fence(), Err(NotLeader));
        fenced.acquired(7, 1, 0);
        assert_eq!(
            fenced.write_fence(),
            Ok(Some(LeaseFence {
                namespace: "kube-system".into(),
                name: "kube-controller-manager".into(),
                resource_version: 7
            }))
        );
        fenced.renewed(9, 2_000);
        assert_eq!(fenced.write_fence().unwrap().unwrap().resource_version, 9);
        fenced.lost();
        assert_eq!(fenced.write_fence(), Err(NotLeader));

        let unfenced = LeaderHandle::new(&LeaderElectionConfig { fencing: false, ..config("cm-1") });
        unfenced.acquired(7, 1, 0);
        assert_eq!(unfenced.write_fence(), Ok(None));
        assert_eq!(unfenced.term(), 1);
    }
}
