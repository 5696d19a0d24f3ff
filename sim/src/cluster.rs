//! Builds the simulated world: one madsim node per component, with fixed addresses, and
//! the disks that outlive their nodes.
//!
//! Address plan (so traces read easily): store members `10.0.1.<id>:2379`, apiservers
//! `10.0.2.<n>:6443`, controller-managers `10.0.3.<n>`, scheduler `10.0.4.1`, kubelets
//! `10.0.5.<n>`, clients (workload, kubectl) `10.0.9.<n>`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use madsim::runtime::{Handle, NodeHandle};
use store::api::MemberId;
use store::rpc::STORE_PORT;
use store::server::{Failpoints, MemberConfig, StoreBugs, StoreObserver};
use store::wal::SimDisk;

use crate::history::Recorder;

/// Restarts a node's process: kills it first, because madsim's `restart` alone keeps the
/// old process's sockets bound and the new process could not bind its port again.
pub fn restart_node(id: madsim::task::NodeId) {
    let handle = Handle::current();
    handle.kill(id);
    handle.restart(id);
}

pub fn ip(subnet: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, subnet, host))
}

pub fn store_member_addr(member: MemberId) -> SocketAddr {
    SocketAddr::new(ip(1, member as u8), STORE_PORT)
}

/// Knobs for the store members of a run.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    pub n_members: usize,
    /// Raft's cap on entries per append; `None`: the member's default (64).
    pub max_entries_per_append: Option<usize>,
    pub bugs: StoreBugs,
    pub raft_bugs: store::raft::RaftBugs,
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

/// The store members of one run.
pub struct StoreCluster {
    pub members: BTreeMap<MemberId, StoreMember>,
}

impl StoreCluster {
    /// Creates and starts `options.n_members` members (ids 1..=n). Must be called from
    /// the simulation's supervisor (the future given to `block_on`).
    pub fn start(options: &StoreOptions, recorder: &Recorder) -> Self {
        let handle = Handle::current();
        let peers: BTreeMap<MemberId, SocketAddr> =
            (1..=options.n_members as MemberId).map(|id| (id, store_member_addr(id))).collect();
        let mut members = BTreeMap::new();
        for &id in peers.keys() {
            let disk = SimDisk::new();
            let mut config = MemberConfig::new(id, peers.clone());
            let failpoints = config.failpoints.clone();
            if let Some(max_entries) = options.max_entries_per_append {
                config.max_entries_per_append = max_entries;
            }
            config.planted_bugs = options.bugs;
            config.raft_bugs = options.raft_bugs;
            let observer: Arc<dyn StoreObserver> = Arc::new(recorder.clone());
            let node_disk = disk.clone();
            let node = handle
                .create_node()
                .name(format!("store-{id}"))
                .ip(peers[&id].ip())
                .init(move || {
                    let (config, disk, observer) = (config.clone(), node_disk.clone(), observer.clone());
                    async move {
                        // A startup failure (corrupted disk) is recorded by the member; the
                        // node then stays down, as a real etcd member exits.
                        let _ = store::server::run(config, disk, Some(observer)).await;
                    }
                })
                .build();
            members.insert(id, StoreMember { id, node, disk, failpoints, addr: peers[&id] });
        }
        Self { members }
    }

    pub fn addresses(&self) -> BTreeMap<MemberId, SocketAddr> {
        self.members.iter().map(|(id, m)| (*id, m.addr)).collect()
    }

    pub fn member(&self, id: MemberId) -> &StoreMember {
        &self.members[&id]
    }

    /// Kills the member's process: its unsynced writes are lost and, when `tear` is
    /// given, the last unsynced write is torn.
    pub fn crash(&self, id: MemberId, tear: Option<u64>) {
        let m = self.member(id);
        Handle::current().kill(m.node.id());
        m.disk.crash(tear);
    }

    /// Restarts the member's process (see [`restart_node`]); its disk keeps what it had.
    pub fn restart(&self, id: MemberId) {
        restart_node(self.member(id).node.id());
    }
}
