//! A store member on a simulated node: the thin async driver around [`core::MemberCore`].
//!
//! Inputs reach the core from three loops: a ticker (Raft's logical clock, every
//! `tick_interval` of simulated time), a receiver of peers' Raft messages, and a receiver
//! of client requests (each request handled in its own task). Each input only updates
//! Raft and wakes the ready loop, which alone drains Raft's output through the persistence
//! pipeline (etcd's raftNode loop): write the WAL, wait out the disk's fsync latency,
//! fsync, then send the messages, then apply. A crash during the fsync wait loses (or
//! tears) that write, as on a real disk.

pub mod core;
pub mod failpoint;
mod startup;
mod stream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use madsim::net::Endpoint;

use crate::api::{KeyRange, MemberId, Principal, ResponseHeader, StoreError, WatchResponse};
use crate::backup::BackupBugs;
use crate::raft::{self, ConfChange, Message, RaftBugs, Role};
use crate::rpc::{StoreOp, StoreReply, StoreRequest, RAFT_TAG};
use crate::wal::{Disk, WalError};

pub use self::core::{AppliedEntry, MemberCore, Proposal, LESSOR_PRINCIPAL};
pub use self::failpoint::{Failpoint, Failpoints, OnReached};

/// Planted defects in the member's driver. Each is off by default, documented here with
/// the invariant that must catch it, and marked `PLANTED BUG` where it acts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreBugs {
    /// The member treats its WAL as a write-back cache: messages (votes, append acks) go
    /// out and committed entries are applied (clients answered) as soon as the entries are
    /// written, and the cache is flushed (fsynced) lazily, once per tick (100 ms), not
    /// before answering. This is etcd run with `--unsafe-no-fsync`, or on a disk or
    /// virtual disk that acknowledges fsync from a volatile cache (Jepsen found such lost
    /// acknowledged writes with LazyFS, which models exactly this page cache). A minority
    /// crash loses nothing (the others still hold the entries in memory and flush them),
    /// but a power loss of the whole cluster loses up to a tick of acknowledged writes.
    /// Caught by "no acknowledged write lost" (invariant 11).
    pub ack_before_fsync: bool,
    /// The vote is not written to the WAL (the hard state is persisted without it), so a
    /// member that crashes after voting may vote again in the same term. Caught by Raft
    /// election safety (invariant 2: at most one leader per term).
    pub vote_not_persisted: bool,
    /// Every read is served from the member's local state, with no ReadIndex round, so a
    /// deposed or partitioned member answers with stale data. Caught by linearizability
    /// (invariant 9).
    pub follower_reads_without_read_index: bool,
    /// A member whose disk was wiped starts under its old id without the bootstrapped
    /// check (etcd `isMemberBootstrapped`), so it votes and acknowledges with an empty log:
    /// it can help elect a leader that lacks committed entries, which are then lost.
    /// Caught by "no acknowledged write lost" (invariant 11) and Raft state-machine safety
    /// (invariant 2).
    pub rejoin_under_old_identity: bool,
    /// The Raft snapshot a member saves every `snapshot_every_entries` entries holds its
    /// state without the last applied entry's writes, but claims that entry's index: the
    /// data lags the index it is labelled with. etcd 3.5.0 to 3.5.2 had this class of bug
    /// (etcd-io/etcd#13766: the consistent index persisted ahead of the data it covers, so a
    /// member that restarted, or a follower sent the snapshot, skipped entries and
    /// diverged). A member restarting from such a snapshot, or a follower installing it,
    /// silently misses a write. Caught by Raft state-machine safety (invariant 2: a
    /// snapshot stands at the revision every member reached at its index). Reached only
    /// when snapshots are taken within a run (the `snapshot_every_entries` knob's small
    /// values).
    pub raft_snapshot_omits_last_entry: bool,
    /// Compaction drops the newest version of each key at or below the compacted revision
    /// too, an off-by-one of etcd's `keyIndex.compact` (which keeps the largest revision at
    /// or below it, so that the key still reads at the compacted revision and after): a key
    /// not written since then disappears from every later read, its object from the
    /// apiserver, with no delete event. Caught by linearizability (invariant 9: a read
    /// misses the last write) and "no acknowledged write lost" (invariant 11). Reached only
    /// when the apiserver compacts within a run (the `compaction_interval_ms` knob's short
    /// values).
    pub compaction_drops_kept_version: bool,
    /// A new leader's lessor does not refresh the leases on promotion: it counts each
    /// lease's TTL from when it applied the lease's grant as a follower, as if followers
    /// kept lease time. etcd's `lessor.Promote` refreshes every lease to its full TTL (plus
    /// an election timeout) on the new leader's clock, because a follower's view of when a
    /// lease was last renewed is not the leader's (keep-alives go to the leader only, not
    /// through Raft); without it a lease kept alive on the old leader, or granted just
    /// before a leader change, expires early after the election (etcd-io/etcd#9496 and
    /// the lease checkpointing that followed are about the remaining TTL across leader
    /// changes). Caught by the lease-expiry invariant (a lease revoked before its TTL ran
    /// on the deciding leader's clock since its promotion). Reached when Events expire
    /// within a run (the `event_ttl_ms` knob's short values) across a leader change.
    pub lease_expiry_ignores_promotion: bool,
}

/// How a member with an empty disk joins (etcd `--initial-cluster-state`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Bootstrap {
    /// One of the initial members of a new cluster (`new`): the voters are `peers`.
    #[default]
    NewCluster,
    /// A member added with `member add` to a running cluster (`existing`): it starts with
    /// no configuration and learns everything (configuration, keyspace) from the leader,
    /// by a snapshot or the log; until then it never campaigns.
    JoinExisting,
}

#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub id: MemberId,
    /// Every member's address, this one included.
    pub peers: BTreeMap<MemberId, SocketAddr>,
    /// One Raft tick (etcd `--heartbeat-interval`, 100 ms by default).
    pub tick_interval: Duration,
    /// Election timeout in ticks (etcd: 1000 ms / 100 ms = 10).
    pub election_tick: u64,
    pub heartbeat_tick: u64,
    /// How long a request waits inside the member before its outcome is reported unknown.
    pub request_timeout: Duration,
    /// How long one fsync takes (chosen uniformly in this range per fsync).
    pub fsync_latency: std::ops::Range<Duration>,
    pub planted_bugs: StoreBugs,
    pub raft_bugs: RaftBugs,
    pub backup_bugs: BackupBugs,
    /// The cluster this member belongs to (etcd's cluster id): recorded on the disk at the
    /// first start, checked at every later one and on every snapshot received.
    pub cluster_id: u64,
    pub bootstrap: Bootstrap,
    /// Whoever starts the process (the operator) vouches that this is the very first start
    /// of a member id that `member add` has just minted: no process has ever run under the
    /// id, so no peer can have heard from it, and the bootstrapped check is skipped, as
    /// etcd starts a member with `--initial-cluster-state existing` without
    /// `isMemberBootstrapped`. Waiting for every peer instead can deadlock: a voter whose
    /// disk was lost and which is not removed yet never answers, and when the quorum needs
    /// the new member, removing that voter needs the new member too (seed 774). Honoured
    /// with `Bootstrap::JoinExisting` only, and must be false for every later start of the
    /// same id: a restart on an empty disk (its disk lost after it ran) still runs the check.
    pub first_start_of_new_id: bool,
    /// Save a snapshot and compact the Raft log every this many applied entries (etcd
    /// `--snapshot-count`, 10 000 by default there); 0 = never.
    pub snapshot_every_entries: u64,
    /// How many applied entries the Raft log keeps under a new snapshot, so that a
    /// follower a little behind catches up from the log rather than by a snapshot (etcd's
    /// `SnapshotCatchUpEntries`, 5 000, `--experimental-snapshot-catchup-entries` in 3.6);
    /// 0 compacts the log to the snapshot's index.
    pub snapshot_catch_up_entries: u64,
    /// A member starting on an empty disk asks every peer whether it already knows it, and
    /// gives up (refusing to start) after this long without every answer.
    pub bootstrap_check_timeout: Duration,
    /// Where a test may make this member's process die (see [`failpoint`]); shared by
    /// every restart of the member. None armed by default.
    pub failpoints: Failpoints,
    /// Raft's cap on entries in one append (see `raft::Config::max_entries_per_append`).
    pub max_entries_per_append: usize,
    /// How long a peer's Raft message that arrived ahead of a gap in its stream waits for
    /// the gap to fill (see `stream`).
    pub stream_gap_timeout: Duration,
    /// The node's wall clock (which the nemesis may skew): while this member leads, its
    /// lessor decides on it when a lease expires, as etcd's leader does on its own clock.
    pub clock: simtime::Clock,
}

impl MemberConfig {
    pub fn new(id: MemberId, peers: BTreeMap<MemberId, SocketAddr>) -> Self {
        Self {
            id,
            peers,
            tick_interval: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 1,
            request_timeout: Duration::from_secs(3),
            fsync_latency: Duration::from_micros(500)..Duration::from_millis(3),
            planted_bugs: StoreBugs::default(),
            raft_bugs: RaftBugs::default(),
            backup_bugs: BackupBugs::default(),
            cluster_id: 1,
            bootstrap: Bootstrap::NewCluster,
            first_start_of_new_id: false,
            snapshot_every_entries: 2_000,
            snapshot_catch_up_entries: 0,
            bootstrap_check_timeout: Duration::from_secs(60),
            failpoints: Failpoints::new(),
            max_entries_per_append: raft::Config::new(id.get(), Vec::new()).max_entries_per_append,
            stream_gap_timeout: Duration::from_millis(10),
            clock: simtime::Clock::new(),
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.peers[&self.id]
    }

    /// etcd's minimum lease TTL for this member's election timeout
    /// (`tick_interval × election_tick`; see [`crate::lease::min_lease_ttl_secs`]).
    pub fn min_lease_ttl_secs(&self) -> i64 {
        crate::lease::min_lease_ttl_secs(self.tick_interval * self.election_tick as u32)
    }
}

/// Sees what a member does, for the history recorder. It must not steer the member.
pub trait StoreObserver: Send + Sync {
    fn role_changed(&self, _member: MemberId, _term: u64, _role: Role, _leader: Option<MemberId>) {}
    fn applied(&self, _member: MemberId, _entry: &AppliedEntry<'_>) {}
    /// An entry without a proposal was applied: a leader's no-op (its first entry of a
    /// term) or a configuration change. It changes no key, but Raft's State Machine
    /// Safety covers it as much as any other entry.
    fn applied_empty(&self, _member: MemberId, _index: u64, _term: u64, _revision: i64) {}
    /// A request the member refused at its door (the store ACL).
    fn rejected(&self, _member: MemberId, _principal: &Principal, _source: SocketAddr, _error: &StoreError) {}
    fn disk_failed(&self, _member: MemberId, _reason: &str) {}
    /// The member recovered from its disk and is about to serve.
    fn started(&self, _member: MemberId, _recovered_entries: usize, _torn_bytes: u64) {}
    /// Right after `started`: the member recovered its state from its own snapshot,
    /// covering every index up to `index`, and re-applies its log after it.
    fn recovered_snapshot(&self, _member: MemberId, _index: u64, _revision: i64) {}
    /// The member replaced its state with a snapshot from the leader, covering every index
    /// up to `index` (it applies no entry at or below it).
    fn snapshot_installed(&self, _member: MemberId, _index: u64, _revision: i64) {}
    /// A membership change was applied at `index`; `voters` is the configuration after it.
    fn membership_changed(&self, _member: MemberId, _index: u64, _voters: &[MemberId]) {}
    /// The member refused to start (a startup error), with the reason.
    fn refused_to_start(&self, _member: MemberId, _reason: &str) {}
    /// The member's lessor promoted, demoted, applied a grant, renewed or expired a lease
    /// (what the lease-expiry invariant is judged on).
    fn lessor(&self, _member: MemberId, _event: &crate::lease::LessorEvent) {}
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("{member}: cannot recover from disk: {source}")]
    Recovery { member: MemberId, source: WalError },
    #[error("{member}: invalid recovered Raft state: {reason}")]
    Raft { member: MemberId, reason: String },
    #[error("{member}: network: {source}")]
    Network { member: MemberId, source: std::io::Error },
    /// etcd: "member %s has already been bootstrapped". The member's disk is empty but a
    /// peer has heard from it before: it may have voted or acknowledged entries it no
    /// longer has, so it must not take part under this id. Replace it (member remove, then
    /// member add under a new id) instead.
    #[error(
        "{member} has already been bootstrapped (peer {peer_id} knows it) but its disk is empty; \
         remove it and add it back under a new id",
        peer_id = peer.get()
    )]
    AlreadyBootstrapped { member: MemberId, peer: MemberId },
    #[error("{member}: could not learn within {waited:?} whether it was bootstrapped before (no answer from {unanswered:?})")]
    BootstrapUndecided { member: MemberId, waited: Duration, unanswered: Vec<MemberId> },
    #[error("{member}: the disk belongs to {disk_member} of cluster {disk_cluster}, not to cluster {cluster}")]
    IdentityMismatch { member: MemberId, disk_member: MemberId, disk_cluster: u64, cluster: u64 },
    #[error("{member}: peer {peer_id} belongs to cluster {peer_cluster}, not {cluster}", peer_id = peer.get())]
    ClusterMismatch { member: MemberId, peer: MemberId, peer_cluster: u64, cluster: u64 },
    #[error("{member}: unusable snapshot: {reason}")]
    Snapshot { member: MemberId, reason: String },
}

type SharedCore<D> = Arc<Mutex<MemberCore<D>>>;

/// Wakes the ready loop. Notifications coalesce: one pending wake-up is enough, since the
/// loop drains everything Raft has when it runs.
///
/// A flag and the loop's waker rather than a channel of `()`: the channel allocated a
/// sender and a queue node per wake-up, several per delivered message. The loop's task is
/// woken exactly when the channel woke it (a wake-up while it waits here), so the
/// simulation schedules the same polls; the channel only made the loop drain one queued
/// `()` per wake-up, and those extra passes found Raft with nothing ready.
#[derive(Default)]
struct Wake {
    pending: AtomicBool,
    waiter: AtomicWaker,
}

impl Wake {
    fn wake(&self) {
        self.pending.store(true, Ordering::SeqCst);
        self.waiter.wake();
    }

    /// Resolves once a wake-up is pending, and consumes it.
    fn notified(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.pending.swap(false, Ordering::SeqCst) {
                return std::task::Poll::Ready(());
            }
            self.waiter.register(cx.waker());
            if self.pending.swap(false, Ordering::SeqCst) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
    }
}

/// The member's shared parts, handed to each of its loops.
struct MemberContext<D: Disk> {
    core: SharedCore<D>,
    endpoint: Arc<Endpoint>,
    wake: Wake,
    config: MemberConfig,
}

/// Runs a member until its node is killed. Returns only on a startup failure (an
/// unreadable or corrupted disk), which the member reports instead of serving.
pub async fn run<D: Disk>(
    config: MemberConfig,
    disk: D,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<(), MemberError> {
    let id = config.id;
    let refuse = |e: MemberError| {
        tracing::error!(member = id.get(), error = %e, "member refuses to start");
        if let Some(o) = &observer {
            match &e {
                MemberError::Recovery { .. } | MemberError::Snapshot { .. } => o.disk_failed(id, &e.to_string()),
                _ => o.refused_to_start(id, &e.to_string()),
            }
        }
        e
    };
    let endpoint =
        Endpoint::bind(config.listen_addr()).await.map_err(|source| MemberError::Network { member: id, source })?;
    let endpoint = Arc::new(endpoint);
    let core = startup::start(&config, disk, endpoint.clone(), observer.clone()).await.map_err(refuse)?;
    let shared = Arc::new(MemberContext { core: Arc::new(Mutex::new(core)), endpoint, wake: Wake::default(), config });
    shared.wake.wake(); // committed entries recovered from the WAL are applied at once

    madsim::task::spawn(ready_loop(shared.clone()));
    madsim::task::spawn(tick_loop(shared.clone()));
    madsim::task::spawn(raft_receive_loop(shared.clone()));
    request_loop(shared).await;
    Ok(())
}

async fn send_all(shared: &MemberContext<impl Disk>, streams: &mut stream::Outbound, messages: Vec<Message>) {
    if messages.is_empty() {
        return;
    }
    for message in messages {
        // Resolved message by message rather than all up front (which collected them into
        // a Vec of their own): the address book changes only in this task (applying a
        // membership change, installing a snapshot), never during a send.
        let addr = shared.core.lock().expect("member core lock").peer_addr(MemberId(message.to));
        if let Some(addr) = addr {
            let frame = streams.frame(message);
            // A send fails only when this node's network is gone; Raft retries on its own.
            let _ = shared.endpoint.send_to_raw(addr, RAFT_TAG, Box::new(frame)).await;
        }
    }
}

/// The only place Raft's output is drained: WAL write, fsync latency, fsync, send, apply.
async fn ready_loop<D: Disk>(shared: Arc<MemberContext<D>>) {
    let ack_before_fsync = shared.config.planted_bugs.ack_before_fsync;
    let incarnation = madsim::time::TimeHandle::current().elapsed().as_nanos() as u64;
    let mut streams = stream::Outbound::new(incarnation);
    loop {
        shared.wake.notified().await;
        loop {
            let Some(batch) = shared.core.lock().expect("member core lock").take_ready() else {
                break;
            };
            if ack_before_fsync {
                // PLANTED BUG (`ack_before_fsync`): answer at once; the write stays in the
                // cache until the tick loop's lazy flush.
                send_all(&shared, &mut streams, batch.messages).await;
                shared.core.lock().expect("member core lock").apply_batch(&batch.committed_entries, &batch.read_states);
                continue;
            }
            if batch.needs_sync {
                madsim::time::sleep(fsync_latency(&shared.config)).await;
                let mut core = shared.core.lock().expect("member core lock");
                if !core.sync() || core.reached(Failpoint::RaftAfterSave) {
                    return;
                }
            }
            if batch.from_leader {
                // A leader applies before it sends, as etcd's raftNode hands committed
                // entries to the apply loop before `raftBeforeLeaderSend` (the leader
                // replicates in parallel with applying): a leader that dies at that point
                // may already have applied, and answered, what its last acks committed.
                let halt = {
                    let mut core = shared.core.lock().expect("member core lock");
                    core.apply_batch(&batch.committed_entries, &batch.read_states);
                    (!batch.committed_entries.is_empty() && core.reached(Failpoint::RaftLeaderAfterApply))
                        || (!batch.messages.is_empty() && core.reached(Failpoint::RaftBeforeLeaderSend))
                };
                if halt {
                    return;
                }
                send_all(&shared, &mut streams, batch.messages).await;
                continue;
            }
            send_all(&shared, &mut streams, batch.messages).await;
            if batch.grants_vote && shared.core.lock().expect("member core lock").reached(Failpoint::RaftAfterVote) {
                return;
            }
            shared.core.lock().expect("member core lock").apply_batch(&batch.committed_entries, &batch.read_states);
        }
    }
}

fn fsync_latency(config: &MemberConfig) -> Duration {
    use madsim::rand::Rng;
    let range = config.fsync_latency.clone();
    if range.is_empty() {
        return range.start;
    }
    madsim::rand::thread_rng().gen_range(range)
}

async fn tick_loop<D: Disk>(shared: Arc<MemberContext<D>>) {
    let mut n_ticks: u64 = 0;
    loop {
        madsim::time::sleep(shared.config.tick_interval).await;
        n_ticks += 1;
        let mut core = shared.core.lock().expect("member core lock");
        if n_ticks.is_multiple_of(10) {
            core.drop_abandoned();
        }
        if shared.config.planted_bugs.ack_before_fsync {
            // PLANTED BUG (`ack_before_fsync`): the write-back cache's lazy flush, once a
            // tick, long after the entries it holds were acknowledged.
            core.sync();
        }
        core.tick();
        core.expire_leases();
        drop(core);
        shared.wake.wake();
    }
}

/// Hands peers' Raft messages to Raft in the order each peer sent them (see [`stream`]).
async fn raft_receive_loop<D: Disk>(shared: Arc<MemberContext<D>>) {
    let mut streams = stream::Inbound::new(shared.config.stream_gap_timeout);
    let mut ready = Vec::new();
    loop {
        let received = match streams.next_deadline() {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(madsim::time::Instant::now());
                simtime::timeout(wait, shared.endpoint.recv_from_raw(RAFT_TAG)).await.ok()
            }
            None => Some(shared.endpoint.recv_from_raw(RAFT_TAG).await),
        };
        let now = madsim::time::Instant::now();
        match received {
            Some(Ok((payload, _from))) => match payload.downcast::<stream::Frame>() {
                Ok(frame) => streams.receive(*frame, now, &mut ready),
                Err(_) => tracing::warn!("dropping a malformed Raft message"),
            },
            Some(Err(_)) => return,
            None => {}
        }
        streams.expire(now, &mut ready);
        if ready.is_empty() {
            continue;
        }
        let mut core = shared.core.lock().expect("member core lock");
        for message in ready.drain(..) {
            core.step(message);
        }
        drop(core);
        shared.wake.wake();
    }
}

async fn request_loop<D: Disk>(shared: Arc<MemberContext<D>>) {
    while let Ok((payload, from)) = shared.endpoint.recv_from_raw(<StoreRequest as madsim::net::rpc::Request>::ID).await
    {
        let Ok(envelope) = payload.downcast::<(u64, StoreRequest, Bytes)>() else {
            tracing::warn!(%from, "dropping a malformed store request");
            continue;
        };
        let (reply_tag, request, _) = *envelope;
        let shared = shared.clone();
        madsim::task::spawn(async move {
            let result = handle(&shared, request, from).await;
            let _ = shared.endpoint.send_to_raw(from, reply_tag, Box::new((result, Bytes::new()))).await;
        });
    }
}

async fn handle<D: Disk>(
    shared: &MemberContext<D>,
    request: StoreRequest,
    from: SocketAddr,
) -> Result<StoreReply, StoreError> {
    let StoreRequest { principal, op } = request;
    let core = &shared.core;
    let request_timeout = shared.config.request_timeout;
    let denied = if op.is_mutation() && !principal.may_mutate() {
        // The store's access rule: only the apiserver role may mutate (invariant 1).
        Some("mutate the store")
    } else if op.is_operator_op() && !principal.may_operate() {
        Some("change membership or take backups")
    } else {
        None
    };
    if let Some(action) = denied {
        coverage::reached!("store.acl.rejected");
        let error = StoreError::PermissionDenied { principal: principal.name.clone(), action: action.into() };
        let core = core.lock().expect("member core lock");
        if let Some(o) = &core_observer(&core) {
            o.rejected(core.id, &principal, from, &error);
        }
        return Err(error);
    }
    match op {
        StoreOp::Mutate(mutation) => {
            let (tx, rx) = oneshot::channel();
            let _proposal_id = core.lock().expect("member core lock").propose(principal, from, mutation, tx);
            shared.wake.wake();
            match simtime::timeout(request_timeout, rx).await {
                Ok(Ok(result)) => result.map(StoreReply::Mutate),
                Ok(Err(_canceled)) => {
                    Err(StoreError::UnknownOutcome { reason: "member lost track of the proposal".into() })
                }
                Err(_elapsed) => {
                    coverage::reached!("store.request.write-timed-out");
                    Err(StoreError::UnknownOutcome { reason: "request timed out".into() })
                }
            }
        }
        StoreOp::Range(range) => {
            let (tx, rx) = oneshot::channel();
            core.lock().expect("member core lock").read(range, tx);
            shared.wake.wake();
            match simtime::timeout(request_timeout, rx).await {
                Ok(Ok(result)) => result.map(StoreReply::Range),
                Ok(Err(_)) | Err(_) => Err(StoreError::Unavailable { reason: "read timed out".into() }),
            }
        }
        StoreOp::WatchPoll { request, max_events, wait_ms } => {
            watch_poll(core, request.range, request.start_revision, request.prev_kv, max_events, wait_ms).await
        }
        StoreOp::Status => Ok(StoreReply::Status(core.lock().expect("member core lock").status())),
        StoreOp::MemberAdd { id, addr } => conf_change(shared, ConfChange::AddVoter(id.get()), Some(addr)).await,
        StoreOp::MemberRemove { id } => conf_change(shared, ConfChange::RemoveVoter(id.get()), None).await,
        StoreOp::MemberList => {
            let core = core.lock().expect("member core lock");
            core.is_leader()?;
            Ok(StoreReply::Members(core.voters()))
        }
        StoreOp::SnapshotSave => {
            let backup = core.lock().expect("member core lock").snapshot_save()?;
            Ok(StoreReply::Snapshot(Box::new(backup)))
        }
        StoreOp::LeaseKeepAlive { id } => {
            core.lock().expect("member core lock").lease_keep_alive(id).map(StoreReply::LeaseKeepAlive)
        }
        StoreOp::LeaseTimeToLive { id, keys } => {
            core.lock().expect("member core lock").lease_time_to_live(id, keys).map(StoreReply::LeaseTimeToLive)
        }
        StoreOp::LeaseLeases => core.lock().expect("member core lock").lease_leases().map(StoreReply::LeaseLeases),
    }
}

async fn conf_change<D: Disk>(
    shared: &MemberContext<D>,
    change: ConfChange,
    addr: Option<SocketAddr>,
) -> Result<StoreReply, StoreError> {
    let (tx, rx) = oneshot::channel();
    shared.core.lock().expect("member core lock").propose_conf_change(change, addr, tx);
    shared.wake.wake();
    match simtime::timeout(shared.config.request_timeout, rx).await {
        Ok(Ok(result)) => result.map(StoreReply::Members),
        Ok(Err(_canceled)) => Err(StoreError::UnknownOutcome { reason: "member lost track of the change".into() }),
        Err(_elapsed) => Err(StoreError::UnknownOutcome { reason: "membership change timed out".into() }),
    }
}

fn core_observer<D: Disk>(core: &MemberCore<D>) -> Option<Arc<dyn StoreObserver>> {
    core.observer()
}

/// Serves a watch long-poll from the member's MVCC history: the events from
/// `start_revision` on (all of one revision together), or an empty progress answer after
/// `wait_ms`, or a cancellation when `start_revision` is compacted (etcd cancels such a
/// watch with the compact revision).
async fn watch_poll<D: Disk>(
    core: &SharedCore<D>,
    range: KeyRange,
    start_revision: i64,
    prev_kv: bool,
    max_events: usize,
    wait_ms: u64,
) -> Result<StoreReply, StoreError> {
    let deadline = madsim::time::Instant::now() + Duration::from_millis(wait_ms);
    loop {
        let waiter = {
            let mut core = core.lock().expect("member core lock");
            if let Some(reason) = core.failed() {
                return Err(StoreError::Unavailable { reason: reason.to_string() });
            }
            // Not `core.status()`: that also digests the whole keyspace.
            let header = core.header();
            let start = if start_revision <= 0 { header.revision + 1 } else { start_revision };
            match core.mvcc().events(&range, start, max_events.max(1)) {
                Ok(mut events) if !events.is_empty() => {
                    if !prev_kv {
                        events.iter_mut().for_each(|e| e.prev_kv = None);
                    }
                    let response =
                        WatchResponse { header, watch_id: 0, events, compact_revision: None, canceled: false };
                    return Ok(StoreReply::Watch(response));
                }
                Err(StoreError::Compacted { compacted, .. }) => {
                    // etcd's watchable store sends a compacted watch's cancellation with
                    // revision 0 (`WatchResponse{CompactRevision: ...}` in
                    // mvcc/watchable_store.go), and the gRPC watch server copies it into the
                    // header (`newResponseHeader(wresp.Revision)`, v3rpc/watch.go).
                    coverage::reached!("store.watch.canceled-compacted");
                    let response = WatchResponse {
                        header: ResponseHeader { revision: 0, ..header },
                        watch_id: 0,
                        events: Vec::new(),
                        compact_revision: Some(compacted),
                        canceled: true,
                    };
                    return Ok(StoreReply::Watch(response));
                }
                Err(e) => return Err(e),
                Ok(_) if madsim::time::Instant::now() >= deadline => {
                    let response = WatchResponse {
                        header,
                        watch_id: 0,
                        events: Vec::new(),
                        compact_revision: None,
                        canceled: false,
                    };
                    return Ok(StoreReply::Watch(response));
                }
                Ok(_) => {
                    let (tx, rx) = oneshot::channel();
                    core.add_watch_waiter(tx);
                    rx
                }
            }
        };
        let remaining = deadline.saturating_duration_since(madsim::time::Instant::now());
        let _ = simtime::timeout(remaining, waiter).await;
    }
}
