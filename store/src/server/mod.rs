//! A store member on a simulated node: the thin async driver around [`core::MemberCore`].
//!
//! Three loops share the core: a ticker (Raft's logical clock, every `tick_interval` of
//! simulated time), a receiver of peers' Raft messages, and a receiver of client requests
//! (each request handled in its own task). Every input goes through the core under its
//! lock; the messages it hands back are sent after the lock is released.

pub mod core;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use madsim::net::Endpoint;

use crate::api::{KeyRange, MemberId, Principal, ResponseHeader, StoreError, WatchResponse};
use crate::raft::{self, Message, RaftBugs, RestoredState, Role};
use crate::rpc::{StoreOp, StoreReply, StoreRequest, RAFT_TAG};
use crate::wal::{Disk, Wal, WalError};

pub use self::core::{AppliedEntry, MemberCore, Proposal};

/// Planted defects in the member's driver. Each is off by default, documented here with
/// the invariant that must catch it, and marked `PLANTED BUG` where it acts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreBugs {
    /// fsync is put off until the next tick while votes, append acks and client answers
    /// go out at once (a disk cache with no write barrier, or an fsync the code forgot).
    /// Caught by "no acknowledged write lost" (invariant 11) after a crash.
    pub ack_before_fsync: bool,
    /// The vote is not written to the WAL (the hard state is persisted without it), so a
    /// member that crashes after voting may vote again in the same term. Caught by Raft
    /// election safety (invariant 2: at most one leader per term).
    pub vote_not_persisted: bool,
    /// Every read is served from the member's local state, with no ReadIndex round, so a
    /// deposed or partitioned member answers with stale data. Caught by linearizability
    /// (invariant 9).
    pub follower_reads_without_read_index: bool,
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
    pub planted_bugs: StoreBugs,
    pub raft_bugs: RaftBugs,
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
            planted_bugs: StoreBugs::default(),
            raft_bugs: RaftBugs::default(),
        }
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.peers[&self.id]
    }
}

/// Sees what a member does, for the history recorder. It must not steer the member.
pub trait StoreObserver: Send + Sync {
    fn role_changed(&self, _member: MemberId, _term: u64, _role: Role, _leader: Option<MemberId>) {}
    fn applied(&self, _member: MemberId, _entry: &AppliedEntry<'_>) {}
    /// A request the member refused at its door (the store ACL).
    fn rejected(&self, _member: MemberId, _principal: &Principal, _source: SocketAddr, _error: &StoreError) {}
    fn disk_failed(&self, _member: MemberId, _reason: &str) {}
    /// The member recovered from its disk and is about to serve.
    fn started(&self, _member: MemberId, _recovered_entries: usize, _torn_bytes: u64) {}
}

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("member {member}: cannot recover from disk: {source}")]
    Recovery { member: MemberId, source: WalError },
    #[error("member {member}: invalid recovered Raft state: {reason}")]
    Raft { member: MemberId, reason: String },
    #[error("member {member}: network: {source}")]
    Network { member: MemberId, source: std::io::Error },
}

type SharedCore<D> = Arc<Mutex<MemberCore<D>>>;

/// Runs a member until its node is killed. Returns only on a startup failure (an
/// unreadable or corrupted disk), which the member reports instead of serving.
pub async fn run<D: Disk>(
    config: MemberConfig,
    disk: D,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<(), MemberError> {
    let id = config.id;
    let core = match recover(&config, disk, observer.clone()) {
        Ok(core) => core,
        Err(e) => {
            tracing::error!(member = id, error = %e, "member refuses to start");
            if let Some(o) = &observer {
                o.disk_failed(id, &e.to_string());
            }
            return Err(e);
        }
    };
    let core: SharedCore<D> = Arc::new(Mutex::new(core));
    let endpoint = Endpoint::bind(config.listen_addr())
        .await
        .map_err(|source| MemberError::Network { member: id, source })?;
    let peers = Arc::new(config.peers.clone());

    madsim::task::spawn(tick_loop(core.clone(), endpoint.clone(), peers.clone(), config.tick_interval));
    madsim::task::spawn(raft_receive_loop(core.clone(), endpoint.clone(), peers.clone()));
    request_loop(core, endpoint, peers, config.request_timeout).await;
    Ok(())
}

fn recover<D: Disk>(
    config: &MemberConfig,
    disk: D,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<MemberCore<D>, MemberError> {
    let id = config.id;
    let (wal, recovered) = Wal::open(disk).map_err(|source| MemberError::Recovery { member: id, source })?;
    let mut raft_config = raft::Config::new(id, config.peers.keys().copied().collect());
    raft_config.election_tick = config.election_tick;
    raft_config.heartbeat_tick = config.heartbeat_tick;
    raft_config.planted_bugs = config.raft_bugs;
    let n_entries = recovered.entries.len();
    let restored = RestoredState {
        hard_state: recovered.hard_state,
        entries: recovered.entries,
        snapshot: recovered.snapshot,
    };
    let rng_seed: u64 = madsim::rand::random();
    let raft = raft::Raft::new(raft_config, restored, rng_seed)
        .map_err(|e| MemberError::Raft { member: id, reason: e.to_string() })?;
    if let Some(o) = &observer {
        o.started(id, n_entries, recovered.truncated_torn_bytes);
    }
    Ok(MemberCore::new(config.clone(), wal, raft, observer))
}

async fn send_all(endpoint: &Endpoint, peers: &BTreeMap<MemberId, SocketAddr>, messages: Vec<Message>) {
    for message in messages {
        if let Some(addr) = peers.get(&message.to) {
            // A send fails only when this node's network is gone; Raft retries on its own.
            let _ = endpoint.send_to_raw(*addr, RAFT_TAG, Box::new(message)).await;
        }
    }
}

async fn tick_loop<D: Disk>(
    core: SharedCore<D>,
    endpoint: Endpoint,
    peers: Arc<BTreeMap<MemberId, SocketAddr>>,
    tick_interval: Duration,
) {
    let mut n_ticks: u64 = 0;
    loop {
        madsim::time::sleep(tick_interval).await;
        n_ticks += 1;
        let messages = {
            let mut core = core.lock().expect("member core lock");
            if n_ticks % 10 == 0 {
                core.drop_abandoned();
            }
            core.tick()
        };
        send_all(&endpoint, &peers, messages).await;
    }
}

async fn raft_receive_loop<D: Disk>(core: SharedCore<D>, endpoint: Endpoint, peers: Arc<BTreeMap<MemberId, SocketAddr>>) {
    while let Ok((payload, _from)) = endpoint.recv_from_raw(RAFT_TAG).await {
        let Ok(message) = payload.downcast::<Message>() else {
            tracing::warn!("dropping a malformed Raft message");
            continue;
        };
        let messages = core.lock().expect("member core lock").step(*message);
        send_all(&endpoint, &peers, messages).await;
    }
}

async fn request_loop<D: Disk>(
    core: SharedCore<D>,
    endpoint: Endpoint,
    peers: Arc<BTreeMap<MemberId, SocketAddr>>,
    request_timeout: Duration,
) {
    while let Ok((payload, from)) = endpoint.recv_from_raw(<StoreRequest as madsim::net::rpc::Request>::ID).await {
        let Ok(envelope) = payload.downcast::<(u64, StoreRequest, Bytes)>() else {
            tracing::warn!(%from, "dropping a malformed store request");
            continue;
        };
        let (reply_tag, request, _) = *envelope;
        let (core, endpoint, peers) = (core.clone(), endpoint.clone(), peers.clone());
        madsim::task::spawn(async move {
            let result = handle(&core, &endpoint, &peers, request, from, request_timeout).await;
            let _ = endpoint.send_to_raw(from, reply_tag, Box::new((result, Bytes::new()))).await;
        });
    }
}

async fn handle<D: Disk>(
    core: &SharedCore<D>,
    endpoint: &Endpoint,
    peers: &BTreeMap<MemberId, SocketAddr>,
    request: StoreRequest,
    from: SocketAddr,
    request_timeout: Duration,
) -> Result<StoreReply, StoreError> {
    let StoreRequest { principal, op } = request;
    if op.is_mutation() && !principal.may_mutate() {
        // The store's access rule: only the apiserver role may mutate (invariant 1).
        let error = StoreError::PermissionDenied { principal: principal.name.clone(), action: "mutate the store".into() };
        let core = core.lock().expect("member core lock");
        if let Some(o) = &core_observer(&core) {
            o.rejected(core.id, &principal, from, &error);
        }
        return Err(error);
    }
    match op {
        StoreOp::Mutate(mutation) => {
            let (tx, rx) = oneshot::channel();
            let messages = core.lock().expect("member core lock").propose(principal, from, mutation, tx);
            send_all(endpoint, peers, messages).await;
            match madsim::time::timeout(request_timeout, rx).await {
                Ok(Ok(result)) => result.map(StoreReply::Mutate),
                Ok(Err(_canceled)) => Err(StoreError::UnknownOutcome { reason: "member lost track of the proposal".into() }),
                Err(_elapsed) => Err(StoreError::UnknownOutcome { reason: "request timed out".into() }),
            }
        }
        StoreOp::Range(range) => {
            let (tx, rx) = oneshot::channel();
            let messages = core.lock().expect("member core lock").read(range, tx);
            send_all(endpoint, peers, messages).await;
            match madsim::time::timeout(request_timeout, rx).await {
                Ok(Ok(result)) => result.map(StoreReply::Range),
                Ok(Err(_)) | Err(_) => Err(StoreError::Unavailable { reason: "read timed out".into() }),
            }
        }
        StoreOp::WatchPoll { request, max_events, wait_ms } => {
            watch_poll(core, request.range, request.start_revision, request.prev_kv, max_events, wait_ms).await
        }
        StoreOp::Status => Ok(StoreReply::Status(core.lock().expect("member core lock").status())),
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
            let status = core.status();
            let header = ResponseHeader { revision: status.revision, member_id: status.member_id, raft_term: status.term };
            let start = if start_revision <= 0 { status.revision + 1 } else { start_revision };
            match core.mvcc().events(&range, start, max_events.max(1)) {
                Ok(mut events) if !events.is_empty() => {
                    if !prev_kv {
                        events.iter_mut().for_each(|e| e.prev_kv = None);
                    }
                    let response = WatchResponse { header, watch_id: 0, events, compact_revision: None, canceled: false };
                    return Ok(StoreReply::Watch(response));
                }
                Err(StoreError::Compacted { compacted, .. }) => {
                    let response = WatchResponse {
                        header,
                        watch_id: 0,
                        events: Vec::new(),
                        compact_revision: Some(compacted),
                        canceled: true,
                    };
                    return Ok(StoreReply::Watch(response));
                }
                Err(e) => return Err(e),
                Ok(_) if madsim::time::Instant::now() >= deadline => {
                    let response = WatchResponse { header, watch_id: 0, events: Vec::new(), compact_revision: None, canceled: false };
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
        let _ = madsim::time::timeout(remaining, waiter).await;
    }
}
