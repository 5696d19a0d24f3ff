//! The member's synchronous core: Raft, the MVCC state machine and the WAL, glued by the
//! persistence contract. Inputs (a tick, a peer's message, a client proposal or read) go
//! in; what to send and whom to answer comes out. The async driver in `server` (its
//! `mod.rs`) feeds it and performs the sends; nothing here awaits.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};

use crate::api::{
    LeaseKeepAliveResponse, LeaseLeasesResponse, LeaseRevokeRequest, LeaseTimeToLiveResponse, MemberId, Mutation,
    MutationResponse, Principal, RangeRequest, RangeResponse, Revision, StoreError,
};
use crate::backup::Backup;
use crate::lease::{LeaseError, LeaseExpiry, LeaseId, LessorEvent, LEASE_REVOKE_RATE};
use crate::mvcc::Mvcc;
use crate::raft::{
    ConfChange, ConfChangeEntry, Entry, EntryKind, Message, MessageBody, ProposeError, Raft, ReadState, Role,
    SnapshotMeta, SoftState,
};
use crate::rpc::MemberStatus;
use crate::server::failpoint::Failpoint;
use crate::server::{MemberConfig, StoreObserver};
use crate::snapshot::{MemberSnapshot, MemberSnapshotView};
use crate::wal::{Disk, MemberIdentity, Wal};

/// What a member proposes through Raft: the mutation with who asked and from where.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Proposal {
    /// Unique per proposing member, across its restarts: see [`request_id_base`].
    pub id: u64,
    pub principal: Principal,
    /// The sender's network address, as the proposing member saw it.
    pub source: String,
    pub mutation: Mutation,
}

/// Bound on the entries [`decode_proposal`] remembers; past it the memo starts over.
const MAX_DECODED_PROPOSALS: usize = 4096;

thread_local! {
    /// The proposals decoded lately, by the exact bytes of their entry. Every member of a
    /// cluster applies the same committed entries, so each proposal's bincode decode was
    /// repeated once per member; decoding is a pure function of the bytes, so a hit is
    /// exactly what decoding again would give (a speed-only memo, as the apiserver's
    /// `registry::decode`). One seed runs on one thread, so a hit almost always comes from
    /// the same seed (one from an earlier seed would still be exact).
    static DECODED_PROPOSALS: std::cell::RefCell<BTreeMap<Bytes, std::rc::Rc<Proposal>>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// A committed entry's proposal, decoded (or remembered from the last time these exact
/// bytes were decoded).
fn decode_proposal(data: &Bytes) -> Result<std::rc::Rc<Proposal>, bincode::Error> {
    if let Some(proposal) = DECODED_PROPOSALS.with_borrow(|decoded| decoded.get(data).cloned()) {
        return Ok(proposal);
    }
    let proposal = std::rc::Rc::new(bincode::deserialize::<Proposal>(data)?);
    DECODED_PROPOSALS.with_borrow_mut(|decoded| {
        if decoded.len() >= MAX_DECODED_PROPOSALS {
            decoded.clear();
        }
        decoded.insert(data.clone(), proposal.clone());
    });
    Ok(proposal)
}

/// Where a member process's request ids (proposal ids, ReadIndex contexts) start, as
/// etcd's `idutil.Generator` does: the member id in the top 16 bits, then the start time in
/// milliseconds shifted left by 8, counted up from there. A member matches applied entries
/// and ReadIndex answers to its waiting requests by these ids, so they must never repeat
/// across restarts: a restarted member whose counter began at 0 again answered a new put
/// with the result of its previous incarnation's entry of the same id, committed late
/// (two writes acknowledged at one revision, found by linearizability on seed 2222).
pub fn request_id_base(member: MemberId) -> u64 {
    const SUFFIX_BITS: u32 = 48;
    let started_ms = madsim::time::TimeHandle::try_current().map_or(0, |time| time.elapsed().as_millis() as u64);
    ((member.get() & 0xffff) << SUFFIX_BITS) | ((started_ms << 8) & ((1 << SUFFIX_BITS) - 1))
}

/// One applied entry, as observers see it.
#[derive(Clone, Debug)]
pub struct AppliedEntry<'a> {
    pub index: u64,
    pub term: u64,
    pub proposal: &'a Proposal,
    /// The store revision after applying (unchanged when the mutation wrote nothing).
    pub revision: Revision,
    pub result: &'a Result<MutationResponse, StoreError>,
    pub events: &'a [crate::api::Event],
}

type MutationReply = oneshot::Sender<Result<MutationResponse, StoreError>>;
type MembersReply = oneshot::Sender<Result<Vec<MemberId>, StoreError>>;
type RangeReply = oneshot::Sender<Result<RangeResponse, StoreError>>;

struct PendingRead {
    request: RangeRequest,
    reply: RangeReply,
    /// Known once Raft confirmed the read index.
    read_index: Option<u64>,
}

/// One Ready's worth of work for the driver's persistence pipeline.
pub struct ReadyBatch {
    /// Whether hard state or entries were written and must be fsynced.
    pub needs_sync: bool,
    /// To send only after the fsync (the persistence contract).
    pub messages: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Whether the member was the leader when it took this Ready.
    pub from_leader: bool,
    /// Whether `messages` grant a vote (not a pre-vote).
    pub grants_vote: bool,
}

pub use crate::lease::LESSOR_PRINCIPAL;

/// Upper bound on client requests waiting inside one member.
pub const MAX_PENDING_REQUESTS: usize = 4096;

pub struct MemberCore<D: Disk> {
    pub(crate) id: MemberId,
    config: MemberConfig,
    raft: Raft,
    mvcc: Mvcc,
    wal: Wal<D>,
    applied_index: u64,
    next_proposal_seq: u64,
    pending_mutations: BTreeMap<u64, MutationReply>,
    pending_reads: BTreeMap<u64, PendingRead>,
    next_read_ctx: u64,
    /// Woken whenever new events are applied (watch long-polls).
    watch_waiters: Vec<oneshot::Sender<()>>,
    observer: Option<std::sync::Arc<dyn StoreObserver>>,
    /// Set when the disk failed while running; the member stops serving.
    failed: Option<String>,
    /// Every member's address as of the applied index (replicated state: it changes with
    /// applied membership changes and snapshots).
    peers: BTreeMap<MemberId, SocketAddr>,
    /// Members removed from the cluster (their ids are never reused). Shared with the loop
    /// that answers bootstrap queries: a joining member need not hear from them.
    removed: Arc<Mutex<BTreeSet<MemberId>>>,
    /// Shared with the loop that answers bootstrap queries.
    identity: Arc<Mutex<MemberIdentity>>,
    /// Membership changes proposed here, by log index, answered when applied.
    pending_conf_changes: BTreeMap<u64, (ConfChange, MembersReply)>,
    /// Index of the latest snapshot (0: none).
    snapshot_index: u64,
    /// Set when an armed failpoint was reached: the process is about to be killed and
    /// does nothing more (no Ready, no answers), as a process stopped by gofail's panic.
    halted: bool,
    /// The lessor's primary-only state: when each lease expires on this member's clock,
    /// kept while it leads (see [`LeaseExpiry`]).
    lease_expiry: LeaseExpiry,
    /// When, on this member's clock, the lessor next looks for expired leases (etcd's
    /// `revokeExpiredLeases` runs every 500 ms).
    next_lease_check: Duration,
}

/// etcd lessor.go's `revokeExpiredLeases` interval.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// What a member restarts from besides its Raft log: the state machine as of its latest
/// snapshot (or empty).
pub struct RecoveredMachine {
    pub mvcc: Mvcc,
    pub applied_index: u64,
    pub peers: BTreeMap<MemberId, SocketAddr>,
    pub removed: BTreeSet<MemberId>,
}

impl<D: Disk> MemberCore<D> {
    pub fn new(
        config: MemberConfig,
        wal: Wal<D>,
        raft: Raft,
        machine: RecoveredMachine,
        identity: Arc<Mutex<MemberIdentity>>,
        removed: Arc<Mutex<BTreeSet<MemberId>>>,
        observer: Option<std::sync::Arc<dyn StoreObserver>>,
    ) -> Self {
        *removed.lock().expect("removed lock") = machine.removed;
        let request_ids = request_id_base(config.id);
        let lease_expiry = if config.planted_bugs.lease_expiry_ignores_promotion {
            LeaseExpiry::with_planted_bug_ignores_promotion()
        } else {
            LeaseExpiry::new()
        };
        Self {
            id: config.id,
            config,
            raft,
            mvcc: machine.mvcc,
            wal,
            applied_index: machine.applied_index,
            peers: machine.peers,
            removed,
            identity,
            pending_conf_changes: BTreeMap::new(),
            snapshot_index: machine.applied_index,
            next_proposal_seq: request_ids,
            pending_mutations: BTreeMap::new(),
            pending_reads: BTreeMap::new(),
            next_read_ctx: request_ids,
            watch_waiters: Vec::new(),
            observer,
            failed: None,
            halted: false,
            lease_expiry,
            next_lease_check: Duration::ZERO,
        }
    }

    /// This member's wall clock, as the lessor reads it.
    fn lease_now(&self) -> Duration {
        Duration::from_millis(self.config.clock.now_ms())
    }

    /// etcd `revokeExpiredLeases` (server/lease/lessor.go) and the server's loop that
    /// proposes a `LeaseRevoke` for each expired lease (etcdserver/server.go): on the
    /// leader only, every 500 ms of its clock, at most half of `leaseRevokeRate` leases at
    /// a time. The revoke goes through Raft like a client's, so every member deletes the
    /// lease's keys at the same revision; a revoke that is lost is proposed again after
    /// etcd's retry interval.
    pub fn expire_leases(&mut self) {
        if !self.lease_expiry.is_primary() || self.failed.is_some() || self.halted {
            return;
        }
        let now = self.lease_now();
        if now < self.next_lease_check {
            return;
        }
        self.next_lease_check = now + LEASE_CHECK_INTERVAL;
        let source = self.config.listen_addr();
        for id in self.lease_expiry.take_expired(now, LEASE_REVOKE_RATE / 2) {
            tracing::debug!(member = self.id.get(), lease = id, "lease expired: proposing its revoke");
            // Nobody waits for the answer: the revoke's effect is the keys' deletion.
            let (reply, _answer) = oneshot::channel();
            let principal = Principal::apiserver(LESSOR_PRINCIPAL);
            let proposal_id = self.propose(principal, source, Mutation::LeaseRevoke(LeaseRevokeRequest { id }), reply);
            if let Some(proposal_id) = proposal_id {
                coverage::reached!("store.lease.expired");
                self.observe_lessor(LessorEvent::ExpiryProposed { lease: id, now, proposal_id });
            }
        }
    }

    fn observe_lessor(&self, event: LessorEvent) {
        if let Some(o) = &self.observer {
            o.lessor(self.id, &event);
        }
    }

    /// etcd `LeaseKeepAlive` (etcdserver/v3_server.go `LeaseRenew` on the leader,
    /// lessor.go `Renew`): the lease expires one TTL from now on the leader's clock. A
    /// follower answers `NotLeader` (the client goes to the leader, as etcd's follower
    /// forwards the request); an unknown or already expired lease answers TTL 0.
    pub fn lease_keep_alive(&mut self, id: LeaseId) -> Result<LeaseKeepAliveResponse, StoreError> {
        self.is_leader()?;
        let now = self.lease_now();
        let ttl_secs = match self.lease_expiry.renew(self.mvcc.leases(), id, now) {
            Ok(ttl) => {
                self.observe_lessor(LessorEvent::Renewed { lease: id, ttl_secs: ttl, now });
                ttl
            }
            Err(LeaseError::NotFound { .. }) => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(LeaseKeepAliveResponse { header: self.header(), id, ttl_secs })
    }

    /// etcd `LeaseTimeToLive`, served by the leader: the whole seconds left on its clock,
    /// the granted TTL and, when asked, the attached keys; an unknown lease answers TTL -1
    /// (etcdserver/api/v3rpc/lease.go).
    pub fn lease_time_to_live(&self, id: LeaseId, keys: bool) -> Result<LeaseTimeToLiveResponse, StoreError> {
        self.is_leader()?;
        let header = self.header();
        let Some(lease) = self.mvcc.leases().lookup(id) else {
            return Ok(LeaseTimeToLiveResponse { header, id, ttl_secs: -1, granted_ttl_secs: 0, keys: Vec::new() });
        };
        let ttl_secs = self.lease_expiry.remaining_secs(self.mvcc.leases(), id, self.lease_now())?;
        let keys = if keys { lease.keys.iter().cloned().collect() } else { Vec::new() };
        Ok(LeaseTimeToLiveResponse { header, id, ttl_secs, granted_ttl_secs: lease.ttl_secs, keys })
    }

    /// etcd `LeaseLeases`: the lease ids in this member's applied state.
    pub fn lease_leases(&self) -> Result<LeaseLeasesResponse, StoreError> {
        self.check_available()?;
        Ok(LeaseLeasesResponse { header: self.header(), leases: self.mvcc.leases().ids() })
    }

    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    pub fn mvcc(&self) -> &Mvcc {
        &self.mvcc
    }

    pub fn tick(&mut self) {
        self.raft.tick();
    }

    /// Feeds a peer's Raft message. The first message from a peer is recorded durably in
    /// the identity file before it is stepped (see [`MemberIdentity`]); if that write fails
    /// the message is dropped and the member stops.
    pub fn step(&mut self, message: Message) {
        if self.failed.is_some() {
            return;
        }
        let recorded = {
            let mut identity = self.identity.lock().expect("identity lock");
            if identity.peers_heard_from.contains(&MemberId(message.from)) {
                None
            } else {
                identity.peers_heard_from.insert(MemberId(message.from));
                Some(identity.clone())
            }
        };
        if let Some(identity) = recorded {
            if let Err(e) = self.wal.save_identity(&identity) {
                self.fail(format!("identity write failed: {e}"));
                return;
            }
        }
        self.raft.step(message);
    }

    /// The address of a peer, as of the applied membership.
    pub fn peer_addr(&self, member: MemberId) -> Option<SocketAddr> {
        self.peers.get(&member).copied()
    }

    pub fn voters(&self) -> Vec<MemberId> {
        member_ids(self.raft.voters())
    }

    pub fn is_leader(&self) -> Result<(), StoreError> {
        self.check_available()?;
        match self.raft.role() {
            Role::Leader => Ok(()),
            _ => Err(StoreError::NotLeader { leader_hint: self.raft.leader().map(MemberId) }),
        }
    }

    /// etcdctl `member add` / `member remove` on the leader: answered with the new voters
    /// once the change is applied here.
    pub fn propose_conf_change(&mut self, change: ConfChange, addr: Option<SocketAddr>, reply: MembersReply) {
        if let Err(e) = self.check_available() {
            let _ = reply.send(Err(e));
            return;
        }
        if let ConfChange::AddVoter(id) = change {
            if self.removed.lock().expect("removed lock").contains(&MemberId(id)) || id == 0 {
                let reason = format!("member id {id} was removed from the cluster and cannot be reused");
                let _ = reply.send(Err(StoreError::InvalidRequest { reason }));
                return;
            }
        }
        let context = Bytes::from(addr.map(|a| a.to_string()).unwrap_or_default());
        match self.raft.propose_conf_change(change, context) {
            Ok(index) => {
                self.pending_conf_changes.insert(index, (change, reply));
            }
            Err(ProposeError::NotLeader { leader_hint }) => {
                let _ = reply.send(Err(StoreError::NotLeader { leader_hint: leader_hint.map(MemberId) }));
            }
            Err(e @ ProposeError::InvalidConfChange { .. }) => {
                let _ = reply.send(Err(StoreError::InvalidRequest { reason: e.to_string() }));
            }
            Err(e) => {
                let _ = reply.send(Err(StoreError::Unavailable { reason: e.to_string() }));
            }
        }
    }

    /// etcdctl `snapshot save` from this member: its keyspace at its applied revision.
    pub fn snapshot_save(&self) -> Result<Backup, StoreError> {
        self.check_available()?;
        let revision = self.mvcc.current_revision();
        let rewound = if self.config.backup_bugs.snapshot_omits_last_txn {
            // PLANTED BUG (`snapshot_omits_last_txn`): the copy misses the last applied
            // transaction but claims the current revision.
            self.mvcc.rewound_to(revision - 1).map(|mut mvcc| {
                mvcc.bump_revision(1);
                mvcc
            })
        } else {
            None
        };
        let snapshot = rewound.as_ref().unwrap_or(&self.mvcc).to_snapshot();
        Ok(Backup::new(self.config.cluster_id, self.id, &snapshot, revision))
    }

    pub fn has_ready(&self) -> bool {
        self.failed.is_none() && !self.halted && self.raft.has_ready()
    }

    /// The response header for a request served now.
    pub fn header(&self) -> crate::api::ResponseHeader {
        crate::api::ResponseHeader {
            revision: self.mvcc.current_revision(),
            member_id: self.id,
            raft_term: self.raft.term(),
        }
    }

    /// Everything about this member, including a digest of the whole keyspace (costly:
    /// for the Status request only).
    pub fn status(&self) -> MemberStatus {
        let s = self.raft.status();
        MemberStatus {
            member_id: self.id,
            term: s.term,
            role: s.role,
            leader: s.leader.map(MemberId),
            commit_index: s.commit,
            applied_index: self.applied_index,
            revision: self.mvcc.current_revision(),
            compacted_revision: self.mvcc.compacted_revision(),
            keyspace_digest: self.mvcc.digest(),
            cluster_id: self.config.cluster_id,
            voters: self.voters(),
            snapshot_index: self.snapshot_index,
        }
    }

    fn check_available(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(reason) => Err(StoreError::Unavailable { reason: reason.clone() }),
            None if self.pending_mutations.len() + self.pending_reads.len() >= MAX_PENDING_REQUESTS => {
                Err(StoreError::Unavailable { reason: format!("{} has too many requests in flight", self.id) })
            }
            None => Ok(()),
        }
    }

    /// Proposes a mutation; `reply` is answered when it is applied (or dropped if this
    /// member loses track of it, which the caller reports as an unknown outcome). Returns
    /// the proposal's id when Raft took it.
    pub fn propose(
        &mut self,
        principal: Principal,
        source: SocketAddr,
        mutation: Mutation,
        reply: MutationReply,
    ) -> Option<u64> {
        if let Err(e) = self.check_available().and_then(|_| Mvcc::validate(&mutation)) {
            let _ = reply.send(Err(e));
            return None;
        }
        self.next_proposal_seq += 1;
        let proposal = Proposal { id: self.next_proposal_seq, principal, source: source.to_string(), mutation };
        let data = Bytes::from(bincode::serialize(&proposal).expect("proposals always serialize"));
        match self.raft.propose(data) {
            Ok(_index) => {
                self.pending_mutations.insert(proposal.id, reply);
                Some(proposal.id)
            }
            Err(ProposeError::NotLeader { leader_hint }) => {
                let _ = reply.send(Err(StoreError::NotLeader { leader_hint: leader_hint.map(MemberId) }));
                None
            }
            #[allow(unreachable_patterns)]
            Err(e) => {
                let _ = reply.send(Err(StoreError::Unavailable { reason: e.to_string() }));
                None
            }
        }
    }

    /// A read: linearizable through ReadIndex unless `serializable`.
    pub fn read(&mut self, request: RangeRequest, reply: RangeReply) {
        if let Err(e) = self.check_available() {
            let _ = reply.send(Err(e));
            return;
        }
        if request.serializable || self.config.planted_bugs.follower_reads_without_read_index {
            // PLANTED BUG (when `follower_reads_without_read_index`): every read is served
            // from local state, so a partitioned follower returns stale data.
            let _ = reply.send(self.serve_range(&request));
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        match self.raft.read_index(ctx) {
            Ok(()) => {
                self.pending_reads.insert(ctx, PendingRead { request, reply, read_index: None });
            }
            Err(ProposeError::NotLeader { leader_hint }) => {
                let _ = reply.send(Err(StoreError::NotLeader { leader_hint: leader_hint.map(MemberId) }));
            }
            #[allow(unreachable_patterns)]
            Err(e) => {
                let _ = reply.send(Err(StoreError::Unavailable { reason: e.to_string() }));
            }
        }
    }

    fn serve_range(&self, request: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let mut response = self.mvcc.range(request)?;
        response.header.member_id = self.id;
        response.header.raft_term = self.raft.term();
        Ok(response)
    }

    pub fn add_watch_waiter(&mut self, waiter: oneshot::Sender<()>) {
        self.watch_waiters.push(waiter);
    }

    /// Step 1 of the persistence pipeline: takes Raft's Ready and writes its hard state
    /// and entries to the WAL (not yet fsynced). The caller then waits out the disk's
    /// fsync latency, calls [`Self::sync`], and only then sends the batch's messages and
    /// calls [`Self::apply_batch`]. A crash before `sync` loses (or tears) the write.
    pub fn take_ready(&mut self) -> Option<ReadyBatch> {
        if !self.has_ready() {
            return None;
        }
        let ready = self.raft.ready();
        if let Some(soft) = &ready.soft_state {
            self.on_soft_state(soft);
        }
        if let Some((meta, data)) = &ready.snapshot {
            // Step 0 of the contract: the leader's snapshot replaces everything before it.
            if let Err(reason) = self.install_snapshot(meta, data) {
                self.fail(reason);
                return None;
            }
        }
        let needs_sync = ready.hard_state.is_some() || !ready.entries.is_empty();
        if needs_sync && self.reached(Failpoint::RaftBeforeSave) {
            return None;
        }
        if needs_sync {
            let hard_state = ready.hard_state.map(|mut hs| {
                if self.config.planted_bugs.vote_not_persisted {
                    // PLANTED BUG (`vote_not_persisted`): the vote never reaches the disk,
                    // so after a crash this member may vote twice in one term.
                    hs.vote = None;
                }
                hs
            });
            if let Err(e) = self.wal.save(hard_state.as_ref(), &ready.entries) {
                self.fail(format!("WAL write failed: {e}"));
                return None;
            }
        }
        let grants_vote = ready.messages.iter().any(|m| matches!(m.body, MessageBody::VoteResponse { reject: false }));
        Some(ReadyBatch {
            needs_sync,
            messages: ready.messages,
            committed_entries: ready.committed_entries,
            read_states: ready.read_states,
            from_leader: self.raft.role() == Role::Leader,
            grants_vote,
        })
    }

    /// The member reached `failpoint`: if it is armed, the member halts for good (see
    /// [`crate::server::failpoint`]) and this returns true.
    pub fn reached(&mut self, failpoint: Failpoint) -> bool {
        if self.halted {
            return true;
        }
        self.halted = self.config.failpoints.reached(failpoint);
        if self.halted {
            coverage::reached!("store.failpoint.halted");
        }
        self.halted
    }

    pub fn halted(&self) -> bool {
        self.halted
    }

    /// Step 2: fsync. Returns false (and stops the member) if the disk failed.
    pub fn sync(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        match self.wal.sync() {
            Ok(()) => true,
            Err(e) => {
                self.fail(format!("WAL sync failed: {e}"));
                false
            }
        }
    }

    /// Step 3 (after the batch's messages went out): apply committed entries, then serve
    /// the reads whose index is now applied.
    pub fn apply_batch(&mut self, committed_entries: &[Entry], read_states: &[ReadState]) {
        if self.failed.is_some() || self.halted {
            return;
        }
        for entry in committed_entries {
            self.apply(entry);
        }
        self.on_read_states(read_states);
        self.serve_ready_reads();
        self.maybe_snapshot();
    }

    /// Every `snapshot_every_entries` applied entries: save a snapshot of the applied state
    /// and compact the Raft log under it (etcd `--snapshot-count`). The snapshot file is
    /// written atomically before the WAL drops the entries it covers, so a crash in
    /// between recovers from either the old or the new snapshot, never from neither.
    fn maybe_snapshot(&mut self) {
        let every = self.config.snapshot_every_entries;
        if every == 0 || self.failed.is_some() || self.applied_index < self.snapshot_index + every {
            return;
        }
        // PLANTED BUG (`raft_snapshot_omits_last_entry`): the state one revision back,
        // labelled with the applied index.
        let rewound = if self.config.planted_bugs.raft_snapshot_omits_last_entry {
            self.mvcc.rewound_to(self.mvcc.current_revision() - 1)
        } else {
            None
        };
        let data = {
            let removed = self.removed.lock().expect("removed lock");
            MemberSnapshotView {
                cluster_id: self.config.cluster_id,
                mvcc: rewound.as_ref().unwrap_or(&self.mvcc).view(),
                members: &self.peers,
                removed: &removed,
            }
            .encode()
        };
        let meta =
            match self.raft.compact_keeping(self.applied_index, data.clone(), self.config.snapshot_catch_up_entries) {
                Ok(meta) => meta,
                Err(e) => {
                    tracing::warn!(member = self.id.get(), error = %e, "cannot compact the log");
                    return;
                }
            };
        if let Err(e) = self.wal.save_snapshot(&meta, &data) {
            self.fail(format!("snapshot write failed: {e}"));
            return;
        }
        tracing::debug!(member = self.id.get(), index = meta.index, "snapshot saved, log compacted");
        coverage::reached!("store.snapshot.saved");
        self.snapshot_index = meta.index;
    }

    /// Persists and loads a snapshot the leader sent (the Raft core already installed it).
    fn install_snapshot(&mut self, meta: &SnapshotMeta, data: &Bytes) -> Result<(), String> {
        let snapshot = MemberSnapshot::decode(data)?;
        if snapshot.cluster_id != self.config.cluster_id {
            return Err(format!(
                "snapshot from cluster {} received by a member of cluster {}",
                snapshot.cluster_id, self.config.cluster_id
            ));
        }
        let mut mvcc = Mvcc::try_from_snapshot(snapshot.mvcc)?;
        mvcc.set_min_lease_ttl_secs(self.config.min_lease_ttl_secs());
        self.wal.save_snapshot(meta, data).map_err(|e| format!("snapshot write failed: {e}"))?;
        assert!(meta.index > self.applied_index, "an installed snapshot is always ahead of the applied index");
        self.mvcc = mvcc;
        self.applied_index = meta.index;
        self.snapshot_index = meta.index;
        // The snapshot's address book is the one of its index, which may be far behind
        // (a restored cluster's only snapshot is the restore's, at index 1, until
        // `snapshot_every_entries` entries): it lacks every member added since, possibly
        // the leader that sent it. Replacing the book with it left the follower unable to
        // answer that leader, which resent the snapshot forever (seed 674 of the disk-loss
        // menu: both replacements of a restored cluster led by a replacement never caught
        // up). So the snapshot's addresses join the ones this member knew (those it was
        // started with and learned since), minus the members the snapshot says were
        // removed, as a restart from a snapshot on disk builds it (`startup`); the entries
        // after the snapshot then add and remove members as they apply. Ids are never
        // reused, so an address kept this way is never wrong, only possibly unused.
        let mut peers = std::mem::take(&mut self.peers);
        peers.extend(snapshot.members);
        peers.retain(|member, _| *member == self.id || !snapshot.removed.contains(member));
        self.peers = peers;
        *self.removed.lock().expect("removed lock") = snapshot.removed;
        coverage::reached!("store.snapshot.installed");
        if self.config.bootstrap == super::Bootstrap::JoinExisting {
            coverage::reached!("store.snapshot.installed-by-new-member");
        }
        if let Some(o) = &self.observer {
            o.snapshot_installed(self.id, meta.index, self.mvcc.current_revision());
        }
        for waiter in self.watch_waiters.drain(..) {
            let _ = waiter.send(());
        }
        Ok(())
    }

    fn fail(&mut self, reason: String) {
        tracing::error!(member = self.id.get(), %reason, "member stops serving");
        if let Some(o) = &self.observer {
            o.disk_failed(self.id, &reason);
        }
        self.failed = Some(reason.clone());
        for (_, reply) in std::mem::take(&mut self.pending_mutations) {
            let _ = reply.send(Err(StoreError::UnknownOutcome { reason: reason.clone() }));
        }
        for (_, read) in std::mem::take(&mut self.pending_reads) {
            let _ = read.reply.send(Err(StoreError::Unavailable { reason: reason.clone() }));
        }
        for (_, (_, reply)) in std::mem::take(&mut self.pending_conf_changes) {
            let _ = reply.send(Err(StoreError::UnknownOutcome { reason: reason.clone() }));
        }
    }

    fn on_soft_state(&mut self, soft: &SoftState) {
        if let Some(o) = &self.observer {
            o.role_changed(self.id, soft.term, soft.role, soft.leader.map(MemberId));
        }
        // etcdserver/raft.go: a member that becomes leader promotes its lessor with the
        // election timeout as the extension (lessor.go `Promote`: every lease gets its
        // full TTL plus that from now, so a leader change expires no lease early); one
        // that stops leading demotes it (every lease held forever).
        let leads = soft.role == Role::Leader;
        if leads && !self.lease_expiry.is_primary() {
            let extend = self.config.tick_interval * u32::try_from(self.config.election_tick).unwrap_or(u32::MAX);
            let now = self.lease_now();
            self.lease_expiry.promote(self.mvcc.leases(), now, extend);
            self.next_lease_check = now;
            let leases = self.mvcc.leases().iter().map(|l| (l.id, l.ttl_secs)).collect();
            self.observe_lessor(LessorEvent::Promoted { now, extend, leases });
        } else if !leads && self.lease_expiry.is_primary() {
            self.lease_expiry.demote();
            self.observe_lessor(LessorEvent::Demoted);
        }
        if soft.role != Role::Leader {
            // Reads waiting for this member's leadership confirmation will not get it.
            let waiting: Vec<u64> =
                self.pending_reads.iter().filter(|(_, r)| r.read_index.is_none()).map(|(c, _)| *c).collect();
            for ctx in waiting {
                if let Some(read) = self.pending_reads.remove(&ctx) {
                    let _ = read.reply.send(Err(StoreError::NotLeader { leader_hint: soft.leader.map(MemberId) }));
                }
            }
        }
    }

    fn apply(&mut self, entry: &Entry) {
        assert!(
            entry.index == self.applied_index + 1,
            "{}: applying entry {} after {}: entries must apply in order with no gap",
            self.id,
            entry.index,
            self.applied_index
        );
        self.applied_index = entry.index;
        self.raft.advance_applied(entry.index);
        if entry.kind == EntryKind::ConfChange || entry.data.is_empty() {
            if let Some(o) = &self.observer {
                o.applied_empty(self.id, entry.index, entry.term, self.mvcc.current_revision());
            }
            if entry.kind == EntryKind::ConfChange {
                self.apply_conf_change(entry);
            }
            return;
        }
        let proposal = match decode_proposal(&entry.data) {
            Ok(p) => p,
            Err(e) => panic!("{}: committed entry {} does not decode: {e}", self.id, entry.index),
        };
        let revision_before = self.mvcc.current_revision();
        let (result, events) = match self.apply_mutation(&proposal) {
            Ok((mut response, events)) => {
                self.lessor_follows(&proposal.mutation, &response);
                set_header(&mut response, self.id, self.raft.term());
                (Ok(response), events)
            }
            Err(e) => (Err(e), Vec::new()),
        };
        let revision = self.mvcc.current_revision();
        assert!(revision >= revision_before, "store revision went backwards on apply");
        if let Some(o) = &self.observer {
            o.applied(
                self.id,
                &AppliedEntry {
                    index: entry.index,
                    term: entry.term,
                    proposal: &proposal,
                    revision,
                    result: &result,
                    events: &events,
                },
            );
        }
        if let Some(reply) = self.pending_mutations.remove(&proposal.id) {
            let _ = reply.send(result);
        }
        if !events.is_empty() {
            for waiter in self.watch_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    /// The proposal's mutation applied to the state machine, if its principal may mutate.
    fn apply_mutation(
        &mut self,
        proposal: &Proposal,
    ) -> Result<(MutationResponse, Vec<crate::api::Event>), StoreError> {
        if !proposal.principal.may_mutate() {
            // Defence in depth: a non-apiserver mutation is refused at apply time too, on
            // every member, so it can never change the state machine.
            return Err(StoreError::PermissionDenied {
                principal: proposal.principal.name.clone(),
                action: "mutate".into(),
            });
        }
        match &proposal.mutation {
            Mutation::Compact(compact) if self.config.planted_bugs.compaction_drops_kept_version => {
                self.mvcc.planted_compact_dropping_kept_versions(compact)
            }
            mutation => self.mvcc.apply(mutation),
        }
    }

    /// The primary's expiry clock follows applied grants and revokes (etcd's lessor does
    /// both inside `Grant` and `Revoke`).
    fn lessor_follows(&mut self, mutation: &Mutation, response: &MutationResponse) {
        match (mutation, response) {
            (Mutation::LeaseGrant(_), MutationResponse::LeaseGrant(granted)) => {
                let now = self.lease_now();
                if let Some(lease) = self.mvcc.leases().lookup(granted.id) {
                    self.lease_expiry.granted(lease, now);
                    self.observe_lessor(LessorEvent::Granted {
                        lease: lease.id,
                        ttl_secs: lease.ttl_secs,
                        now,
                        primary: self.lease_expiry.is_primary(),
                    });
                }
            }
            (Mutation::LeaseRevoke(revoke), _) => self.lease_expiry.revoked(revoke.id),
            _ => {}
        }
    }

    /// Updates the address book and answers the operator's pending request, if it was
    /// proposed here (a different entry at that index means the proposal was lost).
    fn apply_conf_change(&mut self, entry: &Entry) {
        let conf = ConfChangeEntry::decode(&entry.data);
        if let Some(conf) = &conf {
            match conf.change {
                ConfChange::AddVoter(id) => {
                    let addr = std::str::from_utf8(&conf.context).ok().and_then(|s| s.parse::<SocketAddr>().ok());
                    match addr {
                        Some(addr) => {
                            self.peers.insert(MemberId(id), addr);
                        }
                        None => tracing::warn!(member = self.id.get(), id, "added member without a valid address"),
                    }
                }
                ConfChange::RemoveVoter(id) => {
                    let id = MemberId(id);
                    if id != self.id {
                        self.peers.remove(&id);
                    }
                    self.removed.lock().expect("removed lock").insert(id);
                }
            }
            if let Some(o) = &self.observer {
                o.membership_changed(self.id, entry.index, &member_ids(conf.voters.iter().copied()));
            }
        }
        if let Some((change, reply)) = self.pending_conf_changes.remove(&entry.index) {
            let result = match conf {
                Some(conf) if conf.change == change => Ok(member_ids(conf.voters)),
                _ => Err(StoreError::UnknownOutcome { reason: "membership change lost to a leader change".into() }),
            };
            let _ = reply.send(result);
        }
        // Proposals below the applied index were overwritten by another leader's entries.
        let lost: Vec<u64> = self.pending_conf_changes.range(..=entry.index).map(|(index, _)| *index).collect();
        for index in lost {
            if let Some((_, reply)) = self.pending_conf_changes.remove(&index) {
                let _ = reply.send(Err(StoreError::UnknownOutcome { reason: "membership change lost".into() }));
            }
        }
    }

    fn on_read_states(&mut self, read_states: &[ReadState]) {
        for rs in read_states {
            if let Some(read) = self.pending_reads.get_mut(&rs.request_ctx) {
                read.read_index = Some(rs.index);
            }
        }
    }

    fn serve_ready_reads(&mut self) {
        let applied = self.applied_index;
        let ready: Vec<u64> = self
            .pending_reads
            .iter()
            .filter(|(_, r)| r.read_index.is_some_and(|idx| idx <= applied))
            .map(|(ctx, _)| *ctx)
            .collect();
        for ctx in ready {
            let read = self.pending_reads.remove(&ctx).expect("collected above");
            let _ = read.reply.send(self.serve_range(&read.request));
        }
    }

    /// Forgets requests whose callers gave up waiting (their outcome was reported
    /// unknown); keeps the pending maps bounded by live requests.
    pub fn drop_abandoned(&mut self) {
        self.pending_mutations.retain(|_, r| !r.is_canceled());
        self.pending_reads.retain(|_, r| !r.reply.is_canceled());
        self.pending_conf_changes.retain(|_, (_, r)| !r.is_canceled());
        self.watch_waiters.retain(|w| !w.is_canceled());
    }

    pub fn observer(&self) -> Option<std::sync::Arc<dyn StoreObserver>> {
        self.observer.clone()
    }
}

/// Raft's peer numbers as the store's member ids.
fn member_ids(voters: impl IntoIterator<Item = crate::raft::NodeId>) -> Vec<MemberId> {
    voters.into_iter().map(MemberId).collect()
}

fn set_header(response: &mut MutationResponse, member_id: MemberId, term: u64) {
    let header = response.header_mut();
    header.member_id = member_id;
    header.raft_term = term;
}
