//! The store cluster of one run: its initial members, one madsim node per slot, and the
//! operator's node. The members of a slot change with replacements and restores
//! (`crate::membership`); the cluster's handle follows them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use faults::Slot;
use madsim::runtime::Handle;
use store::api::MemberId;
use store::server::Bootstrap;
use store::wal::SimDisk;

use crate::addresses;
use crate::membership::{Endpoints, Membership, StoreMember, StoreOptions, StoreSlots};
use crate::nodes::{restart_node, SeedNodes};
use crate::operator::{ApiServerProcess, Operator};
use crate::recorder::Recorder;

/// The store members of one run.
pub struct StoreCluster {
    /// The initial members (member id = slot). After a replacement or a restore the
    /// slots hold other members: see [`StoreCluster::current`].
    pub members: BTreeMap<MemberId, StoreMember>,
    pub(crate) shared: Arc<StoreSlots>,
    pub(crate) operator: Arc<Operator>,
}

impl StoreCluster {
    /// Creates and starts `options.n_members` members (ids 1..=n) and the operator's node,
    /// registered in `nodes`. Must be called from the simulation's supervisor (the future
    /// given to `block_on`).
    pub fn start(options: &StoreOptions, recorder: &Recorder, nodes: &SeedNodes) -> Self {
        let peers: BTreeMap<MemberId, SocketAddr> =
            (1..=options.n_members as u64).map(MemberId).map(|id| (id, addresses::store_member(id))).collect();
        let shared = Arc::new(StoreSlots {
            options: options.clone(),
            recorder: recorder.clone(),
            nodes: nodes.clone(),
            membership: Mutex::new(Membership {
                slots: BTreeMap::new(),
                cluster_id: 1,
                next_member: MemberId(options.n_members as u64 + 1),
                lost: Default::default(),
            }),
            endpoints: Arc::new(Mutex::new(peers.clone())),
            clocks: Mutex::new(BTreeMap::new()),
        });
        let mut members = BTreeMap::new();
        for &id in peers.keys() {
            let disk = SimDisk::new();
            // The initial member of slot k has id k.
            let slot = Slot(id.get());
            let member = shared.start_member(slot, id, peers.clone(), 1, Bootstrap::NewCluster, disk.clone());
            members.insert(
                id,
                StoreMember {
                    id,
                    node: member.node.clone(),
                    disk,
                    failpoints: member.failpoints.clone(),
                    addr: member.addr,
                },
            );
            shared.membership().slots.insert(slot, member);
        }
        let operator = Operator::start(shared.clone());
        Self { members, shared, operator }
    }

    /// The initial members' addresses.
    pub fn addresses(&self) -> BTreeMap<MemberId, SocketAddr> {
        self.members.iter().map(|(id, m)| (*id, m.addr)).collect()
    }

    /// The endpoints the operator keeps current (see [`Endpoints`]).
    pub fn endpoints(&self) -> Endpoints {
        self.shared.endpoints.clone()
    }

    /// The members running each slot now: slot → (member id, address).
    pub fn current(&self) -> BTreeMap<Slot, (MemberId, SocketAddr)> {
        self.shared.membership().slots.iter().map(|(slot, m)| (*slot, (m.id, m.addr))).collect()
    }

    /// The slot member `member` runs now, if it still runs one.
    pub fn slot_of(&self, member: MemberId) -> Option<Slot> {
        self.shared.membership().slot_of(member)
    }

    pub fn member(&self, id: MemberId) -> &StoreMember {
        &self.members[&id]
    }

    /// The apiservers, controller-managers and schedulers the operator stops and starts
    /// around a restore.
    pub(crate) fn set_control_plane(&self, apiservers: Vec<ApiServerProcess>, controllers: Vec<madsim::task::NodeId>) {
        self.operator.set_control_plane(apiservers, controllers);
    }

    /// Kills the member in slot `slot`: its unsynced writes are lost and, when `tear` is
    /// given, the last unsynced write is torn.
    pub fn crash(&self, slot: Slot, tear: Option<u64>) {
        let membership = self.shared.membership();
        let m = &membership.slots[&slot];
        Handle::current().kill(m.node.id());
        m.disk.crash(tear);
    }

    /// Restarts the member in slot `slot` (see [`restart_node`]); its disk keeps what it had.
    pub fn restart(&self, slot: Slot) {
        let id = self.shared.membership().slots[&slot].node.id();
        restart_node(id);
    }
}
