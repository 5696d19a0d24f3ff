//! The store's slots and the members running them, what the store cluster, the operator
//! and the nemesis's world share (`StoreSlots`), and how a member starts on a slot.
//!
//! The store's membership is dynamic: the cluster has `n_members` *slots* (1..=n, the
//! names the fault plan uses: `store-<slot>`), each run at any time by one member. The
//! initial member of slot k has id k; a member replaced after a disk loss, or every member
//! after a restore, gets a new member id (and so a new address, see
//! [`crate::addresses::store_member`]), as etcd requires: a member id is never reused. The
//! current endpoints are published in a shared map ([`Endpoints`]) that the apiservers'
//! store clients follow.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use faults::Slot;
use madsim::runtime::{Handle, NodeHandle};
use store::api::MemberId;
use store::backup::BackupBugs;
use store::server::{Bootstrap, Failpoints, MemberConfig, StoreBugs, StoreObserver};
use store::wal::SimDisk;

use crate::addresses::MAX_MEMBER_ID;
use crate::nodes::SeedNodes;
use crate::recorder::Recorder;

/// The store's current members and their addresses, shared by the operator (who changes
/// them) and every store client that follows them (etcd clients are given the new
/// endpoints by their operator or by DNS after a replacement or a restore).
pub type Endpoints = Arc<Mutex<BTreeMap<MemberId, SocketAddr>>>;

/// Knobs for the store members of a run (see [`crate::knobs::Knobs`] for what each one
/// is and the values a seed draws).
#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub n_members: usize,
    /// Raft's cap on entries per append; `None`: the member's default (64).
    pub max_entries_per_append: Option<usize>,
    /// Raft election timeout in ticks ([`MemberConfig::election_tick`]).
    pub election_tick: u64,
    /// [`MemberConfig::snapshot_every_entries`].
    pub snapshot_every_entries: u64,
    /// [`MemberConfig::snapshot_catch_up_entries`].
    pub snapshot_catch_up_entries: u64,
    /// [`MemberConfig::request_timeout`], in milliseconds.
    pub request_timeout_ms: u64,
    pub bugs: StoreBugs,
    pub raft_bugs: store::raft::RaftBugs,
    /// Planted defects of `snapshot save` (in the member) and `snapshot restore` (in the
    /// operator's tool).
    pub backup_bugs: BackupBugs,
}

impl Default for StoreOptions {
    /// No members, no planted bugs, and the member's own defaults for every knob.
    fn default() -> Self {
        let member = MemberConfig::new(MemberId(1), BTreeMap::new());
        Self {
            n_members: 0,
            max_entries_per_append: None,
            election_tick: member.election_tick,
            snapshot_every_entries: member.snapshot_every_entries,
            snapshot_catch_up_entries: member.snapshot_catch_up_entries,
            request_timeout_ms: member.request_timeout.as_millis() as u64,
            bugs: StoreBugs::default(),
            raft_bugs: store::raft::RaftBugs::default(),
            backup_bugs: BackupBugs::default(),
        }
    }
}

pub struct StoreMember {
    pub id: MemberId,
    pub node: NodeHandle,
    /// The member's disk: survives restarts of the node; the nemesis crashes, tears,
    /// corrupts or wipes it.
    pub disk: SimDisk,
    /// The member's failpoints: survive restarts of the node; the nemesis arms them.
    pub failpoints: Failpoints,
    pub addr: SocketAddr,
}

/// What the slots hold now, and the identities handed out so far.
pub(crate) struct Membership {
    /// Slot (1..=n) → the member running it.
    pub slots: BTreeMap<Slot, StoreMember>,
    pub cluster_id: u64,
    pub next_member: MemberId,
    /// Slots whose disk was lost and that no replacement or restore has refilled yet.
    pub lost: std::collections::BTreeSet<Slot>,
}

impl Membership {
    /// The slot member `member` runs in, if it runs in one.
    pub fn slot_of(&self, member: MemberId) -> Option<Slot> {
        self.slots.iter().find(|(_, m)| m.id == member).map(|(slot, _)| *slot)
    }

    /// True when the lost slots are a majority: the cluster has no quorum left and only a
    /// restore brings it back (etcd's disaster recovery).
    pub fn quorum_lost(&self) -> bool {
        self.lost.len() > self.slots.len() / 2
    }

    /// A member id never used in this run, or `None` when the address plan is full.
    pub fn new_member_id(&mut self) -> Option<MemberId> {
        let id = self.next_member;
        if id > MAX_MEMBER_ID {
            return None;
        }
        self.next_member = MemberId(id.get() + 1);
        Some(id)
    }
}

/// The store's slots as the cluster, the world and the operator share them: who runs
/// each slot now ([`Membership`]), each slot's clock, the endpoints clients follow, and
/// how a member is started in a slot.
pub(crate) struct StoreSlots {
    pub options: StoreOptions,
    pub recorder: Recorder,
    /// The seed's nodes, where every member's node is registered.
    pub nodes: SeedNodes,
    pub membership: Mutex<Membership>,
    pub endpoints: Endpoints,
    /// Each slot's machine clock, which the nemesis may skew; the member running in the
    /// slot (a replacement too) reads it for lease expiry.
    pub clocks: Mutex<BTreeMap<Slot, simtime::Clock>>,
}

impl StoreSlots {
    pub fn membership(&self) -> std::sync::MutexGuard<'_, Membership> {
        self.membership.lock().expect("membership lock")
    }

    /// The clock of slot `slot`'s machine (shared by every member that runs there).
    pub fn slot_clock(&self, slot: Slot) -> simtime::Clock {
        self.clocks.lock().expect("slot clocks lock").entry(slot).or_default().clone()
    }

    /// Creates and starts a member on `disk` in slot `slot` (the node is named after the
    /// slot, the address after the member id).
    pub fn start_member(
        &self,
        slot: Slot,
        id: MemberId,
        peers: BTreeMap<MemberId, SocketAddr>,
        cluster_id: u64,
        bootstrap: Bootstrap,
        disk: SimDisk,
    ) -> StoreMember {
        let addr = peers[&id];
        let mut config = MemberConfig::new(id, peers);
        config.planted_bugs = self.options.bugs;
        config.raft_bugs = self.options.raft_bugs;
        config.backup_bugs = self.options.backup_bugs;
        config.cluster_id = cluster_id;
        config.bootstrap = bootstrap;
        if let Some(max_entries) = self.options.max_entries_per_append {
            config.max_entries_per_append = max_entries;
        }
        config.election_tick = self.options.election_tick;
        config.snapshot_every_entries = self.options.snapshot_every_entries;
        config.snapshot_catch_up_entries = self.options.snapshot_catch_up_entries;
        config.request_timeout = std::time::Duration::from_millis(self.options.request_timeout_ms);
        config.clock = self.slot_clock(slot);
        let failpoints = config.failpoints.clone();
        let observer: Arc<dyn StoreObserver> = Arc::new(self.recorder.clone());
        let node_disk = disk.clone();
        // A joining member is started only by the operator's replacement, under an id that
        // `member add` has just minted: its first start is vouched fresh, every restart of
        // the node (after a crash, or on a disk lost since) is not.
        let first_start = Arc::new(AtomicBool::new(bootstrap == Bootstrap::JoinExisting));
        let node =
            self.nodes.build(Handle::current().create_node().name(slot.to_string()).ip(addr.ip()).init(move || {
                let (mut config, disk, observer) = (config.clone(), node_disk.clone(), observer.clone());
                config.first_start_of_new_id = first_start.swap(false, Ordering::Relaxed);
                async move {
                    // A startup failure (corrupted disk) is recorded by the member; the
                    // node then stays down, as a real etcd member exits.
                    let _ = store::server::run(config, disk, Some(observer)).await;
                }
            }));
        StoreMember { id, node, disk, failpoints, addr }
    }
}

/// Keeps `client` pointed at the current endpoints: checks the shared map every second
/// and hands a change to `set_endpoints` (clientv3 `SetEndpoints`). Runs on the caller's
/// node until the node is killed.
pub fn follow_endpoints(client: store::client::StoreClient, endpoints: Endpoints) {
    madsim::task::spawn(async move {
        loop {
            madsim::time::sleep(std::time::Duration::from_secs(1)).await;
            let now = endpoints.lock().expect("endpoints lock").clone();
            if !now.is_empty() && now != client.endpoints() {
                client.set_endpoints(now);
            }
        }
    });
}
