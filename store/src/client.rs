//! The store client: the only way to mutate the store, and only the apiserver depends on it.
//!
//! It finds the leader (following `NotLeader` hints, rotating through members when there is
//! no hint) with bounded attempts and backoff. Reads are spread over every member, as etcd's
//! clientv3 does with gRPC's round-robin balancer (each request goes to the next endpoint);
//! a member serves a linearizable read by a ReadIndex round through its leader, so this is
//! correct on followers too, and it is what exposes a member that answers from its own
//! possibly stale state. A mutation that was sent but never answered
//! is reported as `UnknownOutcome`, never as success or failure, and never retried: a
//! retried Txn could apply twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use madsim::net::Endpoint;

use crate::api::{
    CompactRequest, CompactResponse, DeleteRangeRequest, DeleteRangeResponse, KeyRange, LeaseGrantRequest,
    LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveResponse, LeasedPutRequest, MemberId, Mutation, MutationResponse, Principal, PutRequest,
    PutResponse, RangeRequest, RangeResponse, Revision, StoreError, TxnRequest, TxnResponse, WatchRequest,
    WatchResponse,
};
use crate::backup::Backup;
use crate::lease::LeaseId;
use crate::rpc::{MemberStatus, StoreOp, StoreReply, StoreRequest};

#[derive(Clone, Debug)]
pub struct StoreClientConfig {
    /// How long to wait for one member's answer (the member itself gives up earlier).
    pub request_timeout: Duration,
    /// Bound on attempts (redirects and retries) for one request.
    pub max_attempts: usize,
}

impl Default for StoreClientConfig {
    fn default() -> Self {
        Self { request_timeout: Duration::from_secs(4), max_attempts: 8 }
    }
}

#[derive(Clone)]
pub struct StoreClient {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    /// The endpoints (clientv3 `SetEndpoints` replaces them).
    members: std::sync::Mutex<BTreeMap<MemberId, SocketAddr>>,
    principal: Principal,
    config: StoreClientConfig,
    /// The member believed to lead (0: unknown).
    leader_hint: MemberCell,
    /// Where the next read starts (the round-robin balancer's position).
    next_read_member: MemberCell,
    /// Members that failed at the transport level (no answer), skipped until the instant
    /// given, as etcd's client balancer stops using an endpoint that fails: without it,
    /// every third read waits out a timeout on a dead member.
    unreachable_until: std::sync::Mutex<BTreeMap<MemberId, madsim::time::Instant>>,
}

impl StoreClient {
    /// Binds a client endpoint on the current simulated node.
    pub async fn connect(
        members: BTreeMap<MemberId, SocketAddr>,
        principal: Principal,
        config: StoreClientConfig,
    ) -> std::io::Result<Self> {
        assert!(!members.is_empty(), "a StoreClient needs at least one member");
        let endpoint = Endpoint::bind("0.0.0.0:0").await?;
        let first = *members.keys().next().expect("checked non-empty");
        Ok(Self {
            inner: Arc::new(Inner {
                endpoint,
                members: std::sync::Mutex::new(members),
                principal,
                config,
                leader_hint: MemberCell::new(first),
                next_read_member: MemberCell::new(first),
                unreachable_until: std::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn principal(&self) -> &Principal {
        &self.inner.principal
    }

    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, StoreError> {
        match self.send(StoreOp::Range(request)).await? {
            StoreReply::Range(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get(&self, key: &str) -> Result<RangeResponse, StoreError> {
        self.range(RangeRequest::new(KeyRange::Key(key.to_string()))).await
    }

    pub async fn mutate(&self, mutation: Mutation) -> Result<MutationResponse, StoreError> {
        match self.send(StoreOp::Mutate(mutation)).await? {
            StoreReply::Mutate(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub async fn put(&self, request: PutRequest) -> Result<PutResponse, StoreError> {
        match self.mutate(Mutation::Put(request)).await? {
            MutationResponse::Put(r) => Ok(r),
            other => Err(unexpected_mutation(other)),
        }
    }

    pub async fn delete_range(&self, request: DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        match self.mutate(Mutation::DeleteRange(request)).await? {
            MutationResponse::DeleteRange(r) => Ok(r),
            other => Err(unexpected_mutation(other)),
        }
    }

    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, StoreError> {
        match self.mutate(Mutation::Txn(request)).await? {
            MutationResponse::Txn(r) => Ok(r),
            other => Err(unexpected_mutation(other)),
        }
    }

    pub async fn compact(&self, revision: Revision) -> Result<CompactResponse, StoreError> {
        match self.mutate(Mutation::Compact(CompactRequest { revision })).await? {
            MutationResponse::Compact(r) => Ok(r),
            other => Err(unexpected_mutation(other)),
        }
    }

    /// etcd `LeaseGrant`: a lease with `ttl_secs`, under `id` (0: the store chooses one).
    pub async fn lease_grant(&self, id: LeaseId, ttl_secs: i64) -> Result<LeaseGrantResponse, StoreError> {
        match self.mutate(Mutation::LeaseGrant(LeaseGrantRequest { id, ttl_secs })).await? {
            MutationResponse::LeaseGrant(r) => Ok(r),
            other => Err(unexpected_mutation(other)),
        }
    }

    /// etcd `LeaseRevoke`: deletes every key attached to the lease, in one revision.
    pub async fn lease_revoke(&self, id: LeaseId) -> Result<LeaseRevokeResponse, StoreError> {
        match self.mutate(Mutation::LeaseRevoke(LeaseRevokeRequest { id })).await? {
            MutationResponse::LeaseRevoke(r) => Ok(r),
            other => Err(unexpected_mutation(other)),
        }
    }

    /// etcd `Put` with a lease.
    pub async fn leased_put(&self, request: LeasedPutRequest) -> Result<PutResponse, StoreError> {
        match self.mutate(Mutation::LeasedPut(request)).await? {
            MutationResponse::Put(r) => Ok(r),
            other => Err(unexpected_mutation(other)),
        }
    }

    /// etcd `LeaseKeepAlive` (one renewal): served by the leader, on its clock.
    pub async fn lease_keep_alive(&self, id: LeaseId) -> Result<LeaseKeepAliveResponse, StoreError> {
        match self.send(StoreOp::LeaseKeepAlive { id }).await? {
            StoreReply::LeaseKeepAlive(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// etcd `LeaseTimeToLive` (with the attached keys when `keys`): served by the leader.
    pub async fn lease_time_to_live(&self, id: LeaseId, keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        match self.send(StoreOp::LeaseTimeToLive { id, keys }).await? {
            StoreReply::LeaseTimeToLive(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// etcd `LeaseLeases`.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        match self.send(StoreOp::LeaseLeases).await? {
            StoreReply::LeaseLeases(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Events from `request.start_revision` on, waiting up to `wait` for the first one.
    /// Served by any member (watches are not linearizable in etcd either).
    pub async fn watch_poll(
        &self,
        request: WatchRequest,
        max_events: usize,
        wait: Duration,
    ) -> Result<WatchResponse, StoreError> {
        let op = StoreOp::WatchPoll { request, max_events, wait_ms: wait.as_millis() as u64 };
        match self.send_with_timeout(op, self.inner.config.request_timeout + wait).await? {
            StoreReply::Watch(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// Asks one member for its status (no redirection).
    pub async fn status(&self, member: MemberId) -> Result<MemberStatus, StoreError> {
        match self.call_member(member, StoreOp::Status).await? {
            StoreReply::Status(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    /// etcdctl `member add`: adds a voter (the new member then starts with
    /// `Bootstrap::JoinExisting` and an empty disk). Returns the voters after the change.
    /// Operator principals only. Never retried once sent: its outcome may be unknown.
    pub async fn member_add(&self, id: MemberId, addr: SocketAddr) -> Result<Vec<MemberId>, StoreError> {
        match self.send(StoreOp::MemberAdd { id, addr }).await? {
            StoreReply::Members(voters) => Ok(voters),
            other => Err(unexpected(other)),
        }
    }

    /// etcdctl `member remove`. Returns the voters after the change.
    pub async fn member_remove(&self, id: MemberId) -> Result<Vec<MemberId>, StoreError> {
        match self.send(StoreOp::MemberRemove { id }).await? {
            StoreReply::Members(voters) => Ok(voters),
            other => Err(unexpected(other)),
        }
    }

    /// etcdctl `member list`: the leader's committed voters.
    pub async fn member_list(&self) -> Result<Vec<MemberId>, StoreError> {
        match self.send(StoreOp::MemberList).await? {
            StoreReply::Members(voters) => Ok(voters),
            other => Err(unexpected(other)),
        }
    }

    /// etcdctl `snapshot save` against one member (no redirection): its keyspace at its
    /// applied revision, with a checksum. Operator principals only.
    pub async fn snapshot_save(&self, member: MemberId) -> Result<Backup, StoreError> {
        match self.call_member(member, StoreOp::SnapshotSave).await? {
            StoreReply::Snapshot(backup) => Ok(*backup),
            other => Err(unexpected(other)),
        }
    }

    /// clientv3 `SetEndpoints`: from now on requests go to these members (so a client can
    /// follow a member replaced under a new id, or a restored cluster).
    pub fn set_endpoints(&self, members: BTreeMap<MemberId, SocketAddr>) {
        assert!(!members.is_empty(), "a StoreClient needs at least one member");
        let first = *members.keys().next().expect("checked non-empty");
        let mut current = self.inner.members.lock().expect("members lock");
        *current = members;
        for position in [&self.inner.leader_hint, &self.inner.next_read_member] {
            if !current.contains_key(&position.load()) {
                position.store(first);
            }
        }
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> BTreeMap<MemberId, SocketAddr> {
        self.inner.members.lock().expect("members lock").clone()
    }

    fn member_addr(&self, member: MemberId) -> Option<SocketAddr> {
        self.inner.members.lock().expect("members lock").get(&member).copied()
    }

    /// One request to one member, no redirection.
    async fn call_member(&self, member: MemberId, op: StoreOp) -> Result<StoreReply, StoreError> {
        let addr = self
            .member_addr(member)
            .ok_or_else(|| StoreError::InvalidRequest { reason: format!("unknown {member}") })?;
        match self.call(addr, op, self.inner.config.request_timeout).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Unavailable { reason: format!("{member}: {e}") }),
        }
    }

    async fn send(&self, op: StoreOp) -> Result<StoreReply, StoreError> {
        self.send_with_timeout(op, self.inner.config.request_timeout).await
    }

    async fn send_with_timeout(&self, op: StoreOp, timeout: Duration) -> Result<StoreReply, StoreError> {
        let inner = &self.inner;
        let is_mutation = op.is_mutation();
        // Reads go round-robin (see the module doc); everything else to the leader.
        let mut read_member = matches!(op, StoreOp::Range(_)).then(|| self.next_read_member());
        let mut last_error = StoreError::Unavailable { reason: "no store member reachable".into() };
        for attempt in 0..inner.config.max_attempts {
            let member = read_member.unwrap_or_else(|| inner.leader_hint.load());
            let Some(addr) = self.member_addr(member) else {
                // The endpoints changed under this request: start over from the first one.
                let first = *self.endpoints().keys().next().expect("endpoints are never empty");
                inner.leader_hint.store(first);
                read_member = read_member.map(|_| first);
                continue;
            };
            match self.call(addr, op.clone(), timeout).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(StoreError::NotLeader { leader_hint })) => {
                    // Nothing was proposed: safe to go where the member points.
                    last_error = StoreError::NotLeader { leader_hint };
                    match leader_hint.filter(|h| self.member_addr(*h).is_some() && *h != member) {
                        Some(hint) => {
                            coverage::reached!("store.client.followed-leader-hint");
                            inner.leader_hint.store(hint);
                            read_member = read_member.map(|_| hint);
                            continue;
                        }
                        None => self.fail_over(member, &mut read_member),
                    }
                }
                Ok(Err(e @ StoreError::Unavailable { .. })) => {
                    last_error = e;
                    self.fail_over(member, &mut read_member);
                }
                Ok(Err(e)) => return Err(e),
                Err(e) if is_mutation && e.kind() == std::io::ErrorKind::TimedOut => {
                    self.mark_unreachable(member);
                    self.rotate_from(member);
                    coverage::reached!("store.client.write-outcome-unknown");
                    return Err(StoreError::UnknownOutcome { reason: format!("no answer from {member}: {e}") });
                }
                Err(e) => {
                    last_error = StoreError::Unavailable { reason: format!("{member}: {e}") };
                    self.mark_unreachable(member);
                    self.fail_over(member, &mut read_member);
                }
            }
            // Bounded backoff: 20ms, 40ms, ... capped at 500ms.
            let backoff_ms = (20u64 << attempt.min(5)).min(500);
            madsim::time::sleep(Duration::from_millis(backoff_ms)).await;
        }
        Err(last_error)
    }

    async fn call(
        &self,
        addr: SocketAddr,
        op: StoreOp,
        timeout: Duration,
    ) -> std::io::Result<Result<StoreReply, StoreError>> {
        let request = StoreRequest { principal: self.inner.principal.clone(), op };
        simtime::call_timeout(&self.inner.endpoint, addr, request, timeout).await
    }

    fn rotate_from(&self, member: MemberId) {
        let next = self.member_after(member);
        self.inner.leader_hint.replace_if(member, next);
    }

    /// After `member` failed a request: the leader hint moves on, and a read moves on to
    /// the next member.
    fn fail_over(&self, member: MemberId, read_member: &mut Option<MemberId>) {
        self.rotate_from(member);
        if let Some(read_member) = read_member {
            *read_member = self.member_after(member);
        }
    }

    /// How long a member that did not answer is skipped.
    const UNREACHABLE_FOR: Duration = Duration::from_secs(10);

    fn mark_unreachable(&self, member: MemberId) {
        let until = madsim::time::Instant::now() + Self::UNREACHABLE_FOR;
        self.inner.unreachable_until.lock().expect("unreachable lock").insert(member, until);
    }

    fn reachable(&self, member: MemberId) -> bool {
        let unreachable = self.inner.unreachable_until.lock().expect("unreachable lock");
        unreachable.get(&member).is_none_or(|until| madsim::time::Instant::now() >= *until)
    }

    /// The next member after `member` in id order (wrapping around) that is not marked
    /// unreachable; the plain next one if every member is marked.
    fn member_after(&self, member: MemberId) -> MemberId {
        let members = self.inner.members.lock().expect("members lock");
        let mut ring = members
            .range((Bound::Excluded(member), Bound::Unbounded))
            .chain(members.range(..=member))
            .map(|(id, _)| *id);
        let first = ring.next().expect("endpoints are never empty");
        std::iter::once(first).chain(ring).find(|m| self.reachable(*m)).unwrap_or(first)
    }

    /// The round-robin balancer's pick for the next read, skipping unreachable members.
    fn next_read_member(&self) -> MemberId {
        let inner = &self.inner;
        let mut member = inner.next_read_member.load();
        if !self.reachable(member) {
            member = self.member_after(member);
        }
        inner.next_read_member.store(self.member_after(member));
        member
    }
}

/// A member id the client's requests share and update (the leader hint, the next read's
/// member): an atomic number, read and written as a [`MemberId`].
struct MemberCell(AtomicU64);

impl MemberCell {
    fn new(member: MemberId) -> Self {
        MemberCell(AtomicU64::new(member.get()))
    }

    fn load(&self) -> MemberId {
        MemberId(self.0.load(Ordering::Relaxed))
    }

    fn store(&self, member: MemberId) {
        self.0.store(member.get(), Ordering::Relaxed);
    }

    /// Moves to `next` unless another request already moved it off `current`.
    fn replace_if(&self, current: MemberId, next: MemberId) {
        let _ = self.0.compare_exchange(current.get(), next.get(), Ordering::Relaxed, Ordering::Relaxed);
    }
}

fn unexpected(reply: StoreReply) -> StoreError {
    StoreError::InvalidRequest { reason: format!("unexpected reply shape: {reply:?}") }
}

fn unexpected_mutation(response: MutationResponse) -> StoreError {
    StoreError::InvalidRequest { reason: format!("unexpected response shape: {response:?}") }
}
