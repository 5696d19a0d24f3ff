//! Starting a member: recover the WAL and the latest snapshot, check that the disk belongs
//! to this member of this cluster, and, on an empty disk, make sure this member id has
//! never taken part before (etcd `isMemberBootstrapped`), then rebuild Raft and the state
//! machine.
//!
//! Why the bootstrapped check: a member that voted or acknowledged entries and then lost
//! its disk no longer holds what it promised. If it came back under the same id with an
//! empty log it could vote for a candidate missing committed entries, and help elect a
//! leader that loses them. Every member records durably, before stepping it, the first
//! Raft message it receives from each peer (the identity file); a member starting on an
//! empty disk asks every peer and refuses to start if any of them has heard from it.
//!
//! The one start without the check is a joining member's very first (etcd runs no
//! `isMemberBootstrapped` for `--initial-cluster-state existing` at all): the operator
//! vouches that the id was just minted by `member add` and never ran, so no peer can know
//! it (`MemberConfig::first_start_of_new_id`). Any later start of it on an empty disk asks.
//!
//! When peers do not answer: the member keeps asking (every 200 ms) and never starts Raft
//! meanwhile, so it can never vote or acknowledge before it knows. After a few quick rounds
//! each round waits twice as long for an answer (up to [`MAX_QUERY_TIMEOUT`]): a peer still
//! silent then is behind a slow network rather than not started, and an answer that comes
//! after its round gave up is lost (a 300 ms wait under 700 ms of latency each way never
//! got one: store-smoke seed 438, where a member waited out the whole check while its peer
//! was up, and the cluster stayed without a quorum once another member failed). It waits for an answer
//! from *every* peer, since only the member that received a message knows of it. After
//! `bootstrap_check_timeout` without every answer it gives up with
//! `MemberError::BootstrapUndecided` (refusing to start, which is always safe) rather than
//! waiting unboundedly.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use madsim::net::rpc::Request as _;
use madsim::net::Endpoint;

use super::core::{MemberCore, RecoveredMachine};
use super::{Bootstrap, MemberConfig, MemberError, StoreObserver};
use crate::api::MemberId;
use crate::mvcc::Mvcc;
use crate::raft::{self, HardState, RestoredState};
use crate::rpc::{BootstrapAnswer, BootstrapQuery};
use crate::snapshot::MemberSnapshot;
use crate::wal::{Disk, MemberIdentity, Wal};

/// How long one bootstrap query waits for its answer, and the pause between rounds. Short:
/// members of a new cluster start at the same instant, and a query to a peer that has not
/// bound its port yet is lost rather than refused, so the first round often waits this out.
const QUERY_TIMEOUT: Duration = Duration::from_millis(300);
const QUERY_RETRY: Duration = Duration::from_millis(200);
/// Rounds that wait [`QUERY_TIMEOUT`] before the wait starts doubling.
const QUICK_ROUNDS: u32 = 3;
/// The longest wait for one answer: a round trip under the worst latency fault (2 s each
/// way), and like etcd's peer dial timeout (1 s plus an election timeout) a few seconds.
const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long round `round` (from 0) waits for each answer.
fn query_timeout(round: u32) -> Duration {
    let doublings = round.saturating_sub(QUICK_ROUNDS - 1).min(8);
    (QUERY_TIMEOUT * (1 << doublings)).min(MAX_QUERY_TIMEOUT)
}

pub(super) async fn start<D: Disk>(
    config: &MemberConfig,
    disk: D,
    endpoint: Arc<Endpoint>,
    observer: Option<Arc<dyn StoreObserver>>,
) -> Result<MemberCore<D>, MemberError> {
    let id = config.id;
    let recovery = |source| MemberError::Recovery { member: id, source };
    let (mut wal, recovered) = Wal::open(disk).map_err(|source| {
        if matches!(source, crate::wal::WalError::Corrupt { .. }) {
            coverage::reached!("store.start.corruption-detected");
        }
        recovery(source)
    })?;
    let empty_disk = recovered.identity.is_none()
        && recovered.snapshot.is_none()
        && recovered.entries.is_empty()
        && recovered.hard_state == HardState::default();
    let identity = Arc::new(Mutex::new(identity_of(config, recovered.identity.as_ref())?));
    let removed = Arc::new(Mutex::new(BTreeSet::new()));
    let answering = madsim::task::spawn(answer_bootstrap_queries(
        endpoint.clone(),
        identity.clone(),
        removed.clone(),
        config.cluster_id,
        id,
    ));
    if recovered.identity.is_none() {
        if empty_disk {
            if let Err(e) = refuse_rejoin_under_old_identity(config, &endpoint).await {
                answering.abort();
                return Err(e);
            }
        }
        // Only now: a crash before this line leaves the disk empty, so the check runs again.
        let snapshot = identity.lock().expect("identity lock").clone();
        wal.save_identity(&snapshot).map_err(recovery)?;
    }

    let (machine, snapshot_data) = recover_machine(config, &wal)?;
    let voters = match config.bootstrap {
        Bootstrap::NewCluster => config.peers.keys().map(|member| member.get()).collect(),
        Bootstrap::JoinExisting => Vec::new(),
    };
    let raft_config = raft_config(config, voters);
    let n_entries = recovered.entries.len();
    let restored = RestoredState {
        hard_state: recovered.hard_state,
        entries: recovered.entries,
        snapshot: recovered.snapshot,
        snapshot_data,
    };
    let rng_seed: u64 = madsim::rand::random();
    let raft = raft::Raft::new(raft_config, restored, rng_seed)
        .map_err(|e| MemberError::Raft { member: id, reason: e.to_string() })?;
    if recovered.truncated_torn_bytes > 0 {
        coverage::reached!("store.start.torn-tail-recovered");
    }
    if machine.applied_index > 0 {
        coverage::reached!("store.start.from-snapshot");
    }
    if let Some(o) = &observer {
        o.started(id, n_entries, recovered.truncated_torn_bytes);
        if machine.applied_index > 0 {
            o.recovered_snapshot(id, machine.applied_index, machine.mvcc.current_revision());
        }
    }
    Ok(MemberCore::new(config.clone(), wal, raft, machine, identity, removed, observer))
}

/// The identity the member runs under: its disk's, which must be this member's of this
/// cluster, or a new one for an empty disk.
fn identity_of(config: &MemberConfig, on_disk: Option<&MemberIdentity>) -> Result<MemberIdentity, MemberError> {
    let id = config.id;
    match on_disk {
        Some(identity) if identity.member_id != id || identity.cluster_id != config.cluster_id => {
            Err(MemberError::IdentityMismatch {
                member: id,
                disk_member: identity.member_id,
                disk_cluster: identity.cluster_id,
                cluster: config.cluster_id,
            })
        }
        Some(identity) => Ok(identity.clone()),
        None => Ok(MemberIdentity { cluster_id: config.cluster_id, member_id: id, peers_heard_from: BTreeSet::new() }),
    }
}

/// A member starting on an empty disk without an identity: refused if its peers know it
/// already (etcd's "member has already been bootstrapped"), unless its id was just minted.
async fn refuse_rejoin_under_old_identity(config: &MemberConfig, endpoint: &Endpoint) -> Result<(), MemberError> {
    if config.planted_bugs.rejoin_under_old_identity {
        // PLANTED BUG (`rejoin_under_old_identity`): no check; a wiped member votes with
        // an empty log under the id its peers know.
        return Ok(());
    }
    if config.first_start_of_new_id && config.bootstrap == Bootstrap::JoinExisting {
        // The first start of an id just minted by `member add`: nobody can know it yet
        // (`MemberConfig::first_start_of_new_id`).
        return Ok(());
    }
    check_not_bootstrapped(config, endpoint).await.inspect_err(|e| {
        if matches!(e, MemberError::AlreadyBootstrapped { .. }) {
            coverage::reached!("store.start.refused-already-bootstrapped");
        }
    })
}

/// Raft's configuration for the member, its planted bugs included.
fn raft_config(config: &MemberConfig, voters: Vec<u64>) -> raft::Config {
    let mut raft_config = raft::Config::new(config.id.get(), voters);
    raft_config.election_tick = config.election_tick;
    raft_config.heartbeat_tick = config.heartbeat_tick;
    raft_config.max_entries_per_append = config.max_entries_per_append;
    raft_config.planted_bugs = config.raft_bugs;
    raft_config.planted_bugs.driver_breaks_persistence |=
        config.planted_bugs.vote_not_persisted || config.planted_bugs.ack_before_fsync;
    raft_config
}

/// The state machine as of the latest snapshot on disk (empty without one); the log
/// entries after it are re-applied by Raft, so nothing is applied twice.
fn recover_machine<D: Disk>(config: &MemberConfig, wal: &Wal<D>) -> Result<(RecoveredMachine, Bytes), MemberError> {
    let id = config.id;
    let loaded = wal.load_snapshot().map_err(|source| {
        if matches!(source, crate::wal::WalError::Corrupt { .. }) {
            coverage::reached!("store.start.corruption-detected");
        }
        MemberError::Recovery { member: id, source }
    })?;
    let Some((meta, data)) = loaded else {
        let mut mvcc = Mvcc::new();
        mvcc.set_min_lease_ttl_secs(config.min_lease_ttl_secs());
        let machine =
            RecoveredMachine { mvcc, applied_index: 0, peers: config.peers.clone(), removed: BTreeSet::new() };
        return Ok((machine, Bytes::new()));
    };
    let snapshot_error = |reason: String| MemberError::Snapshot { member: id, reason };
    let snapshot = MemberSnapshot::decode(&data).map_err(snapshot_error)?;
    if snapshot.cluster_id != config.cluster_id {
        return Err(snapshot_error(format!(
            "snapshot of cluster {}, member of cluster {}",
            snapshot.cluster_id, config.cluster_id
        )));
    }
    let mut mvcc = Mvcc::try_from_snapshot(snapshot.mvcc).map_err(snapshot_error)?;
    mvcc.set_min_lease_ttl_secs(config.min_lease_ttl_secs());
    let mut peers: BTreeMap<MemberId, SocketAddr> = config.peers.clone();
    peers.extend(snapshot.members);
    peers.retain(|member, _| *member == id || !snapshot.removed.contains(member));
    let machine = RecoveredMachine { mvcc, applied_index: meta.index, peers, removed: snapshot.removed };
    Ok((machine, Bytes::from(data)))
}

/// Asks every peer whether it has heard from this member; see the module doc.
async fn check_not_bootstrapped(config: &MemberConfig, endpoint: &Endpoint) -> Result<(), MemberError> {
    let id = config.id;
    let mut unanswered: BTreeMap<MemberId, SocketAddr> =
        config.peers.iter().filter(|(peer, _)| **peer != id).map(|(peer, addr)| (*peer, *addr)).collect();
    let mut answered: BTreeMap<MemberId, SocketAddr> = BTreeMap::new();
    let started = madsim::time::Instant::now();
    let query = BootstrapQuery { cluster_id: config.cluster_id, member: id };
    let mut round = 0;
    loop {
        let timeout = query_timeout(round);
        round += 1;
        // A joining member asks the peers that answered again while others are silent: a
        // silent peer's removal may be committed after they first answered, and only they
        // can tell. A member of a new cluster has no removed peers to learn of.
        let re_ask = matches!(config.bootstrap, Bootstrap::JoinExisting);
        let asking: Vec<(MemberId, SocketAddr)> =
            unanswered.iter().chain(answered.iter().filter(|_| re_ask)).map(|(p, a)| (*p, *a)).collect();
        for (peer, addr) in asking {
            if unanswered.is_empty() {
                break;
            }
            let Ok(answer) = simtime::call_timeout(endpoint, addr, query.clone(), timeout).await else {
                continue;
            };
            if answer.cluster_id != config.cluster_id {
                return Err(MemberError::ClusterMismatch {
                    member: id,
                    peer,
                    peer_cluster: answer.cluster_id,
                    cluster: config.cluster_id,
                });
            }
            if answer.already_bootstrapped {
                return Err(MemberError::AlreadyBootstrapped { member: id, peer });
            }
            if let Some(addr) = unanswered.remove(&peer) {
                answered.insert(peer, addr);
            }
            // A peer removed since this member's peer list was drawn up (typically one
            // whose disk was lost too, replaced after us) will never answer; it is no
            // longer part of the cluster, so its answer is not needed.
            for gone in &answer.removed {
                unanswered.remove(gone);
            }
        }
        if unanswered.is_empty() {
            return Ok(());
        }
        let waited = madsim::time::Instant::now() - started;
        if waited >= config.bootstrap_check_timeout {
            return Err(MemberError::BootstrapUndecided {
                member: id,
                waited,
                unanswered: unanswered.keys().copied().collect(),
            });
        }
        madsim::time::sleep(QUERY_RETRY).await;
    }
}

/// Answers peers' bootstrap queries for as long as the member runs (from before its own
/// startup finishes, so members of a new cluster starting together never wait on each
/// other).
async fn answer_bootstrap_queries(
    endpoint: Arc<Endpoint>,
    identity: Arc<Mutex<MemberIdentity>>,
    removed: Arc<Mutex<BTreeSet<MemberId>>>,
    cluster_id: u64,
    id: MemberId,
) {
    while let Ok((payload, from)) = endpoint.recv_from_raw(BootstrapQuery::ID).await {
        let Ok(envelope) = payload.downcast::<(u64, BootstrapQuery, Bytes)>() else {
            tracing::warn!(%from, "dropping a malformed bootstrap query");
            continue;
        };
        let (reply_tag, query, _) = *envelope;
        let already_bootstrapped = identity.lock().expect("identity lock").peers_heard_from.contains(&query.member);
        let removed = removed.lock().expect("removed lock").iter().copied().collect();
        let answer = BootstrapAnswer { cluster_id, answered_by: id, already_bootstrapped, removed };
        let _ = endpoint.send_to_raw(from, reply_tag, Box::new((answer, Bytes::new()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_queries_wait_longer_after_the_quick_rounds() {
        let waits: Vec<u64> = (0..9).map(|round| query_timeout(round).as_millis() as u64).collect();
        assert_eq!(waits, [300, 300, 300, 600, 1200, 2400, 4800, 5000, 5000]);
        assert_eq!(query_timeout(u32::MAX), MAX_QUERY_TIMEOUT);
    }
}
