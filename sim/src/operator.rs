//! The operator: a person with `etcdctl`/`etcdutl` and the store's operator credential,
//! on a node of their own (`operator`, 10.0.8.1). The nemesis asks for their actions
//! through `faults::World` (synchronous calls); each becomes a command the operator's
//! node works through in order, so two actions never interleave:
//!
//! - **backup** — `etcdctl snapshot save` against one member; the backup is kept
//!   off-cluster, in the world (the last [`KEEP_BACKUPS`] are retained), where
//!   `snapshot-corruption` may damage it.
//! - **replace** after one member's disk loss — etcd's documented procedure
//!   ("Replacing a failed etcd member"): `member remove` the old id, `member add` a new
//!   id on a new address, start the new member with `--initial-cluster-state existing`
//!   and an empty disk; it catches up from a snapshot. The old id is never reused.
//! - **restore** after a majority or total loss — the Kubernetes procedure ("Restoring
//!   an etcd cluster"): stop every apiserver (gracefully: SIGTERM, which closes its
//!   watches, see `ApiServerProcess`), stop the surviving members, `etcdutl
//!   snapshot restore --bump-revision --mark-compacted` from the latest backup that
//!   verifies (a corrupted one is refused: etcdutl's integrity check; the next older one
//!   is tried), onto fresh disks, as a new cluster with new member ids, start it, then
//!   start the apiservers against the new endpoints. Controllers, the scheduler and
//!   kubelets get 410 Gone on their watches and relist. With no backup that verifies, the
//!   cluster state is lost: `TotalLoss`, an expected outcome (docs/design.md §4.8).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faults::{Refused, Slot};
use futures::channel::mpsc;
use futures::StreamExt;
use madsim::runtime::Handle;
use store::api::{KeyRange, MemberId, Principal, RangeRequest, Revision};
use store::backup::{restore, write_member_disk, Backup, RestoreOptions, RestoredCluster};
use store::client::{StoreClient, StoreClientConfig};
use store::server::Bootstrap;
use store::snapshot::MemberSnapshot;
use store::wal::SimDisk;

use crate::addresses;
use crate::history::{History, HistoryEvent, KeyState};
use crate::membership::StoreSlots;
use crate::nodes::restart_node;

/// How many backups the operator keeps (the most recent ones).
pub const KEEP_BACKUPS: usize = 4;
/// `--bump-revision` of the first restore. Kubernetes' restore guide uses 1 000 000 000; it
/// must exceed every revision the lost cluster may have committed after the backup. Runs
/// commit far fewer than a million revisions per cluster, so this keeps numbers readable.
/// The k-th restore of a run bumps by k times this: it may restore the same backup as an
/// earlier one (no newer backup was taken since), and must still land above every
/// revision the cluster restored in between handed out.
pub const BUMP_REVISION: u64 = 1_000_000;
/// How long the operator keeps retrying `member remove` / `member add` (a leader may be
/// in the middle of an election).
const MEMBERSHIP_PATIENCE: Duration = Duration::from_secs(30);
/// How long the operator waits for one etcdctl command (etcdctl's `--command-timeout`
/// is 5 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Between asking the apiservers to shut down and stopping their nodes: the answers that
/// close their watches must leave first, and madsim holds every send for at least 1 ms
/// (its minimum sleep). The watchers retry after `ApiClient`'s 50 ms backoff, by when the
/// restarted apiserver listens again (it binds within a few ms of its restart). Short
/// against kube-apiserver's own termination, which waits for in-flight requests.
const APISERVER_SHUTDOWN_GRACE: Duration = Duration::from_millis(2);

/// An apiserver as its supervisor sees it: the node to stop and start, and the handle
/// that delivers SIGTERM to whichever instance runs on it. Stopping an apiserver for a
/// restore is a graceful termination (kube-apiserver closes every watch, so each client
/// re-watches at once, gets 410 Gone from the restored cluster and relists), unlike the
/// nemesis' crash or pause, which close nothing.
pub(crate) struct ApiServerProcess {
    pub node: madsim::task::NodeId,
    pub termination: apiserver::Termination,
}

enum Command {
    Backup { slot: Slot },
    Replace { slot: Slot },
    Restore,
}

/// A backup kept off-cluster, numbered in the order taken.
struct StoredBackup {
    number: u32,
    backup: Backup,
}

/// The most commands waiting for the operator. A plan asks for one per fault event, and the
/// operator takes seconds per restore: a plan that queues more than this is refused command
/// by command (the nemesis records why), rather than growing the queue without bound.
pub const MAX_QUEUED_COMMANDS: usize = 256;

pub(crate) struct Operator {
    shared: Arc<StoreSlots>,
    /// One sender, so the channel's bound is [`MAX_QUEUED_COMMANDS`] (each clone of a
    /// futures sender would add a slot of its own).
    commands: Mutex<mpsc::Sender<Command>>,
    backups: Mutex<Vec<StoredBackup>>,
    next_backup: Mutex<u32>,
    /// Restores attempted so far.
    restores: Mutex<u64>,
    apiservers: Mutex<Vec<ApiServerProcess>>,
    /// Controller-managers and schedulers: restarted after a restore, as the Kubernetes
    /// guide recommends, so they do not act on caches of the lost cluster.
    controllers: Mutex<Vec<madsim::task::NodeId>>,
}

impl Operator {
    /// Creates the operator's node and starts working through commands on it.
    pub fn start(shared: Arc<StoreSlots>) -> Arc<Operator> {
        let (commands, mut queue) = mpsc::channel(MAX_QUEUED_COMMANDS - 1);
        let operator = Arc::new(Operator {
            shared,
            commands: Mutex::new(commands),
            backups: Mutex::new(Vec::new()),
            next_backup: Mutex::new(0),
            restores: Mutex::new(0),
            apiservers: Mutex::new(Vec::new()),
            controllers: Mutex::new(Vec::new()),
        });
        let node =
            operator.shared.nodes.build(Handle::current().create_node().name("operator").ip(addresses::OPERATOR));
        let worker = operator.clone();
        node.spawn(async move {
            let endpoints = worker.shared.endpoints.lock().expect("endpoints lock").clone();
            let config = StoreClientConfig::default();
            let Ok(client) = StoreClient::connect(endpoints, Principal::operator("etcdctl"), config).await else {
                worker.shared.recorder.fault("operator: cannot bind a store client; no operator actions");
                return;
            };
            while let Some(command) = queue.next().await {
                let endpoints = worker.shared.endpoints.lock().expect("endpoints lock").clone();
                if !endpoints.is_empty() {
                    client.set_endpoints(endpoints);
                }
                match command {
                    Command::Backup { slot } => worker.backup(&client, slot).await,
                    Command::Replace { slot } => {
                        if !worker.shared.membership().lost.contains(&slot) {
                            // A restore refilled the slot meanwhile.
                            continue;
                        }
                        // A replacement that fails because the quorum went meanwhile
                        // escalates too.
                        let quorum_lost = worker.shared.membership().quorum_lost();
                        if quorum_lost
                            || (!worker.replace(&client, slot).await && worker.shared.membership().quorum_lost())
                        {
                            worker.escalate(slot).await;
                        }
                    }
                    // An escalated replacement may have restored already.
                    Command::Restore if worker.shared.membership().lost.is_empty() => {
                        worker
                            .shared
                            .recorder
                            .fault("operator: restore not needed, the cluster was restored meanwhile");
                    }
                    Command::Restore => worker.restore().await,
                }
            }
        });
        operator
    }

    pub fn set_control_plane(&self, apiservers: Vec<ApiServerProcess>, controllers: Vec<madsim::task::NodeId>) {
        *self.apiservers.lock().expect("apiservers lock") = apiservers;
        *self.controllers.lock().expect("controllers lock") = controllers;
    }

    fn member_of(&self, slot: Slot) -> Result<MemberId, Refused> {
        self.shared.membership().slots.get(&slot).map(|m| m.id).ok_or(Refused::NoSuchSlot(slot))
    }

    pub fn request_backup(&self, slot: Slot) -> Result<String, Refused> {
        let member = self.member_of(slot)?;
        self.send(Command::Backup { slot })?;
        Ok(format!("requested from {member}"))
    }

    pub fn request_replace(&self, slot: Slot) -> Result<String, Refused> {
        let member = self.member_of(slot)?;
        self.send(Command::Replace { slot })?;
        Ok(format!("replacement of {member} started"))
    }

    pub fn request_restore(&self) -> Result<String, Refused> {
        let n = self.backups.lock().expect("backups lock").len();
        self.send(Command::Restore)?;
        Ok(format!("restore started ({n} backups kept)"))
    }

    fn send(&self, command: Command) -> Result<(), Refused> {
        self.commands.lock().expect("operator commands lock").try_send(command).map_err(|e| {
            if e.is_full() {
                Refused::OperatorBusy { waiting: MAX_QUEUED_COMMANDS }
            } else {
                Refused::OperatorGone
            }
        })
    }

    /// `snapshot-corruption`: flips bits of one byte of the most recent backup, where it
    /// is kept (the checksum stays as it was, so a restore's integrity check can see it).
    pub fn corrupt_latest_backup(&self, flip: faults::BitFlip) -> Option<String> {
        let mut backups = self.backups.lock().expect("backups lock");
        let stored = backups.last_mut()?;
        let mut data = stored.backup.data.to_vec();
        if data.is_empty() {
            return None;
        }
        let offset = flip.offset(data.len() as u64) as usize;
        let mask = flip.xor_mask;
        data[offset] ^= mask;
        stored.backup.data = bytes::Bytes::from(data);
        let description = format!(
            "flipped bits {mask:#04x} at byte {offset} of backup {} ({} bytes, revision {})",
            stored.number,
            stored.backup.data.len(),
            stored.backup.revision
        );
        self.shared
            .recorder
            .record(HistoryEvent::BackupCorrupted { backup: stored.number, description: description.clone() });
        Some(description)
    }

    async fn backup(&self, client: &StoreClient, slot: Slot) {
        let Ok(member) = self.member_of(slot) else { return };
        let recorder = &self.shared.recorder;
        match simtime::timeout(CALL_TIMEOUT, client.snapshot_save(member)).await {
            Ok(Ok(backup)) => {
                let number = {
                    let mut next = self.next_backup.lock().expect("backup counter lock");
                    *next += 1;
                    *next - 1
                };
                coverage::reached!("operator.backup.taken");
                let n_keys = backup.mvcc().map_or(0, |mvcc| keyspace(&mvcc).len());
                recorder.record(HistoryEvent::BackupTaken {
                    backup: number,
                    member,
                    cluster_id: backup.cluster_id,
                    revision: backup.revision,
                    n_keys,
                    checksum_ok: backup.verify().is_ok(),
                });
                let mut backups = self.backups.lock().expect("backups lock");
                backups.push(StoredBackup { number, backup });
                let excess = backups.len().saturating_sub(KEEP_BACKUPS);
                backups.drain(..excess);
            }
            Ok(Err(error)) => recorder.record(HistoryEvent::BackupFailed { member, error: error.to_string() }),
            Err(_) => recorder.record(HistoryEvent::BackupFailed {
                member,
                error: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
            }),
        }
    }

    /// A majority of the disks is lost: replacing one member cannot work (member remove
    /// needs a quorum), so the operator restores instead, as etcd's disaster-recovery guide
    /// says for a cluster that permanently lost its quorum.
    async fn escalate(&self, slot: Slot) {
        coverage::reached!("operator.replace.escalated-to-restore");
        let lost: BTreeSet<u64> = self.shared.membership().lost.iter().map(|lost| lost.number()).collect();
        self.shared.recorder.fault(format!(
            "operator: cannot replace {slot}: slots {lost:?} lost their disks, the quorum is gone; restoring from backup"
        ));
        self.restore().await;
    }

    /// Replaces the member of `slot`; false if it did not get through.
    async fn replace(&self, client: &StoreClient, slot: Slot) -> bool {
        let recorder = &self.shared.recorder;
        let Ok(old) = self.member_of(slot) else { return false };
        if self.shared.options.bugs.rejoin_under_old_identity {
            // With the planted bug the member skips etcd's bootstrapped check, so the
            // operator's naive "just restart it" succeeds: the wiped member rejoins under
            // its old id (see `StoreBugs::rejoin_under_old_identity`).
            let node = self.shared.membership().slots[&slot].node.id();
            restart_node(node);
            self.shared.membership().lost.remove(&slot);
            recorder.fault(format!("operator: restarted {old} on its empty disk under its old identity"));
            return true;
        }
        let Some(new) = self.shared.membership().new_member_id() else {
            let error = "no member id left in the address plan".to_string();
            recorder.record(HistoryEvent::MemberReplaced {
                old,
                new: MemberId(0),
                addr: String::new(),
                error: Some(error),
            });
            return false;
        };
        let addr = addresses::store_member(new);
        let replaced = |error: Option<String>| HistoryEvent::MemberReplaced { old, new, addr: addr.to_string(), error };
        let shared = &self.shared;
        let remove = retry_membership(shared, client, |voters| !voters.contains(&old), || client.member_remove(old));
        if let Err(error) = remove.await {
            recorder.record(replaced(Some(format!("member remove {}: {error}", old.get()))));
            return false;
        }
        self.shared.endpoints.lock().expect("endpoints lock").remove(&old);
        self.remove_other_lost_members(client, slot).await;
        let add = retry_membership(shared, client, |voters| voters.contains(&new), || client.member_add(new, addr));
        if let Err(error) = add.await {
            recorder.record(replaced(Some(format!("member add {}: {error}", new.get()))));
            return false;
        }
        let mut peers = self.shared.endpoints.lock().expect("endpoints lock").clone();
        peers.insert(new, addr);
        let cluster_id = self.shared.membership().cluster_id;
        let member =
            self.shared.start_member(slot, new, peers.clone(), cluster_id, Bootstrap::JoinExisting, SimDisk::new());
        {
            let mut membership = self.shared.membership();
            membership.slots.insert(slot, member);
            membership.lost.remove(&slot);
        }
        *self.shared.endpoints.lock().expect("endpoints lock") = peers;
        coverage::reached!("operator.member.replaced");
        recorder.record(replaced(None));
        true
    }

    /// Before a replacement is added, removes the members of every other slot whose disk
    /// is lost too (their own replacement comes later, and finds them gone). etcd refuses
    /// `member add` while any voter is unreachable (`--strict-reconfig-check`, on by
    /// default: "reconfigure breaks active quorum"), and its runbook removes every failed
    /// member before adding one: a new voter raises the quorum before it holds anything.
    /// Here it is worse: the new member's bootstrapped check waits for an answer from every
    /// peer it is given that has not been removed, so it cannot even start while a dead
    /// member stays in the configuration. Seed 1250 of the disk-loss menu: member 12 was
    /// added while member 10 (disk lost) was still a voter, so the five voters had three
    /// working members; 10's removal then waited behind a backup against 10 itself, and
    /// the loss of the leader's disk left two of five: the quorum was gone for good.
    async fn remove_other_lost_members(&self, client: &StoreClient, slot: Slot) {
        // A lost member no longer among the endpoints was removed by an earlier replacement.
        let endpoints = self.shared.endpoints.lock().expect("endpoints lock").clone();
        let others: Vec<(Slot, MemberId)> = {
            let membership = self.shared.membership();
            membership
                .lost
                .iter()
                .filter(|&&other| other != slot)
                .filter_map(|other| membership.slots.get(other).map(|member| (*other, member.id)))
                .filter(|(_, member)| endpoints.contains_key(member))
                .collect()
        };
        for (other_slot, member) in others {
            let remove = retry_membership(
                &self.shared,
                client,
                |voters| !voters.contains(&member),
                || client.member_remove(member),
            );
            let outcome = match remove.await {
                Ok(()) => {
                    self.shared.endpoints.lock().expect("endpoints lock").remove(&member);
                    "removed".to_string()
                }
                Err(error) => format!("could not remove it ({error})"),
            };
            self.shared.recorder.fault(format!(
                "operator: {other_slot} lost its disk too: {member} {outcome} before adding {slot}'s replacement"
            ));
        }
    }

    /// Stops every apiserver the way an operator does, with SIGTERM: each closes its
    /// watches and refuses new requests ([`apiserver::Termination`]); after a short grace
    /// the nodes are stopped. Returns the nodes, to start them again.
    async fn stop_apiservers(&self) -> Vec<madsim::task::NodeId> {
        let (nodes, n_terminated) = {
            let apiservers = self.apiservers.lock().expect("apiservers lock");
            let n_terminated = apiservers.iter().filter(|apiserver| apiserver.termination.terminate()).count();
            (apiservers.iter().map(|apiserver| apiserver.node).collect::<Vec<_>>(), n_terminated)
        };
        if n_terminated > 0 {
            madsim::time::sleep(APISERVER_SHUTDOWN_GRACE).await;
        }
        let handle = Handle::current();
        for &node in &nodes {
            handle.kill(node);
        }
        nodes
    }

    /// etcd's disaster recovery: stop everything, restore the latest backup that verifies
    /// as a new cluster (new cluster id, new member ids, revisions bumped), start it in the
    /// same slots and start the control plane again. With no backup that verifies, the
    /// cluster state is lost (`TotalLoss`).
    async fn restore(&self) {
        let recorder = &self.shared.recorder;
        let stopped = self.stop_everything().await;
        let Some((cluster_id, ids)) = self.new_cluster_identity(stopped.slots.len()) else {
            recorder.record(HistoryEvent::TotalLoss {
                acknowledged_objects_lost: live_keys(&recorder.snapshot()),
                reason: "no member id left in the address plan for a restored cluster".into(),
            });
            return;
        };
        let bump = self.next_revision_bump();
        let members: BTreeMap<MemberId, SocketAddr> = ids.iter().map(|&id| (id, addresses::store_member(id))).collect();
        let options = RestoreOptions {
            cluster_id,
            members: members.clone(),
            bump_revision: bump,
            mark_compacted: true,
            bugs: self.shared.options.backup_bugs,
        };
        let Some((number, backup_revision, restored)) = self.restore_latest_backup(&options) else {
            return;
        };
        let keyspace = match MemberSnapshot::decode(&restored.snapshot_data)
            .and_then(|snapshot| store::mvcc::Mvcc::try_from_snapshot(snapshot.mvcc))
        {
            Ok(mvcc) => keyspace(&mvcc),
            Err(error) => {
                recorder.record(HistoryEvent::RestoreRefused { backup: number, error });
                return;
            }
        };
        coverage::reached!("operator.restore.bumped-revisions");
        recorder.record(HistoryEvent::Restored {
            backup: number,
            backup_revision,
            bump,
            new_revision: restored.revision,
            new_cluster_id: cluster_id,
            members: ids.clone(),
            keyspace,
        });
        self.start_restored_members(&stopped.slots, &ids, &restored, &members, cluster_id);
        *self.shared.endpoints.lock().expect("endpoints lock") = members;
        for &node in stopped.apiservers.iter().chain(&stopped.controllers) {
            restart_node(node);
        }
        recorder.fault(format!(
            "operator: started the restored members {ids:?}, {} apiservers and {} controller-managers and schedulers \
             (kubelets keep running and relist)",
            stopped.apiservers.len(),
            stopped.controllers.len()
        ));
    }

    /// The first step of a restore: apiservers stopped gracefully, controllers and every
    /// store member killed.
    async fn stop_everything(&self) -> Stopped {
        let handle = Handle::current();
        let apiservers = self.stop_apiservers().await;
        let controllers = self.controllers.lock().expect("controllers lock").clone();
        for &node in &controllers {
            handle.kill(node);
        }
        let slots: Vec<Slot> = {
            let membership = self.shared.membership();
            for member in membership.slots.values() {
                handle.kill(member.node.id());
            }
            membership.slots.keys().copied().collect()
        };
        self.shared.recorder.fault(format!(
            "operator: stopped {} apiservers (gracefully: their watches closed), {} controller-managers and schedulers, \
             and every store member",
            apiservers.len(),
            controllers.len()
        ));
        Stopped { apiservers, controllers, slots }
    }

    /// A new cluster id and `n_members` member ids never used in this run, or `None` when
    /// the address plan has no ids left.
    fn new_cluster_identity(&self, n_members: usize) -> Option<(u64, Vec<MemberId>)> {
        let mut membership = self.shared.membership();
        membership.cluster_id += 1;
        let ids: Option<Vec<MemberId>> = (0..n_members).map(|_| membership.new_member_id()).collect();
        ids.map(|ids| (membership.cluster_id, ids))
    }

    /// How far this restore bumps revisions: `BUMP_REVISION` more than the one before, so
    /// that every restore moves revisions past whatever a client saw.
    fn next_revision_bump(&self) -> u64 {
        let mut restores = self.restores.lock().expect("restores lock");
        *restores += 1;
        BUMP_REVISION * *restores
    }

    /// `snapshot restore` of the latest backup that verifies: its number, the revision it
    /// was taken at and the restored cluster. Each refused backup is recorded; with none
    /// left, the total loss is, and the endpoints are cleared.
    fn restore_latest_backup(&self, options: &RestoreOptions) -> Option<(u32, Revision, RestoredCluster)> {
        let recorder = &self.shared.recorder;
        // The latest backup is the one holding the newest data: of the latest cluster, at
        // the highest revision (a backup saved from a member still catching up holds an
        // older revision than one taken before it), the last taken among equals.
        let candidates: Vec<(u32, Backup)> = {
            let backups = self.backups.lock().expect("backups lock");
            let mut candidates: Vec<(u32, Backup)> =
                backups.iter().map(|stored| (stored.number, stored.backup.clone())).collect();
            candidates.sort_by_key(|(number, backup)| std::cmp::Reverse((backup.cluster_id, backup.revision, *number)));
            candidates
        };
        for (number, backup) in &candidates {
            match restore(backup, options) {
                Ok(restored) => return Some((*number, backup.revision, restored)),
                Err(error) => {
                    coverage::reached!("operator.restore.refused-backup");
                    recorder.record(HistoryEvent::RestoreRefused { backup: *number, error: error.to_string() })
                }
            }
        }
        let reason = if candidates.is_empty() {
            "no backup was ever taken".to_string()
        } else {
            format!("none of the {} kept backups verifies", candidates.len())
        };
        coverage::reached!("operator.restore.total-loss");
        let lost = live_keys(&recorder.snapshot());
        recorder.record(HistoryEvent::TotalLoss { acknowledged_objects_lost: lost, reason });
        self.shared.endpoints.lock().expect("endpoints lock").clear();
        None
    }

    /// Writes each restored member's disk (`snapshot restore`'s data dir) and starts it in
    /// its slot, the slots in order; a disk that cannot be written is recorded and its slot
    /// stays empty.
    fn start_restored_members(
        &self,
        slots: &[Slot],
        ids: &[MemberId],
        restored: &RestoredCluster,
        members: &BTreeMap<MemberId, SocketAddr>,
        cluster_id: u64,
    ) {
        let mut started = BTreeMap::new();
        for (&slot, &id) in slots.iter().zip(ids) {
            let disk = SimDisk::new();
            if let Err(error) = write_member_disk(restored, id, disk.clone()) {
                self.shared.recorder.fault(format!("operator: cannot prepare {id}'s disk: {error}"));
                continue;
            }
            started.insert(
                slot,
                self.shared.start_member(slot, id, members.clone(), cluster_id, Bootstrap::NewCluster, disk),
            );
        }
        let mut membership = self.shared.membership();
        membership.slots.extend(started);
        membership.lost.clear();
    }
}

/// What a restore stopped, to start again once the restored members run.
struct Stopped {
    apiservers: Vec<madsim::task::NodeId>,
    controllers: Vec<madsim::task::NodeId>,
    slots: Vec<Slot>,
}

/// Why a membership change did not take effect; `last` says what the last attempt got.
#[derive(Debug, thiserror::Error)]
enum MembershipChangeError {
    /// The lost disks are a majority: no change can commit.
    #[error("the quorum is lost ({last})")]
    QuorumLost { last: String },
    /// `MEMBERSHIP_PATIENCE` ran out.
    #[error("gave up after {after_secs}s: {last}")]
    GaveUp { after_secs: u64, last: String },
}

/// Runs a membership change until it took effect: retried while it fails, and checked
/// with `member list` when its outcome is unknown (a change is never blindly re-sent
/// after it may have been applied). Gives up at once when the quorum is lost.
async fn retry_membership<F, Fut>(
    shared: &StoreSlots,
    client: &StoreClient,
    done: impl Fn(&[MemberId]) -> bool,
    change: F,
) -> Result<(), MembershipChangeError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<MemberId>, store::api::StoreError>>,
{
    let start = madsim::time::Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < MEMBERSHIP_PATIENCE {
        if shared.membership().quorum_lost() {
            return Err(MembershipChangeError::QuorumLost { last });
        }
        if let Ok(Ok(voters)) = simtime::timeout(CALL_TIMEOUT, client.member_list()).await {
            if done(&voters) {
                return Ok(());
            }
        }
        match simtime::timeout(CALL_TIMEOUT, change()).await {
            Ok(Ok(voters)) if done(&voters) => return Ok(()),
            Ok(Ok(voters)) => last = format!("voters after the change: {voters:?}"),
            Ok(Err(error)) => last = error.to_string(),
            Err(_) => last = format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
        }
        madsim::time::sleep(Duration::from_secs(1)).await;
    }
    Err(MembershipChangeError::GaveUp { after_secs: MEMBERSHIP_PATIENCE.as_secs(), last })
}

/// Every live key of `mvcc` at its current revision.
fn keyspace(mvcc: &store::mvcc::Mvcc) -> Vec<KeyState> {
    mvcc.range(&RangeRequest::new(KeyRange::Prefix(String::new())))
        .map(|response| response.kvs.iter().map(KeyState::of).collect())
        .unwrap_or_default()
}

/// The number of live keys the current cluster epoch holds, by the history's `Committed`
/// records (from the last restore's keyspace, or empty): what a total loss loses.
fn live_keys(history: &History) -> usize {
    let mut keys: BTreeMap<&str, bool> = BTreeMap::new();
    for record in &history.records {
        match &record.event {
            HistoryEvent::Restored { keyspace, .. } => {
                keys = keyspace.iter().map(|state| (state.key.as_str(), true)).collect();
            }
            HistoryEvent::Committed { changes, .. } => {
                for change in changes {
                    keys.insert(change.key.as_str(), change.value_hash.is_some());
                }
            }
            _ => {}
        }
    }
    keys.values().filter(|live| **live).count()
}
