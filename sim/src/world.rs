//! The simulated world as the nemesis sees it: `faults::World` over madsim's node and
//! network handles, the store members' `SimDisk`s and every node's `Clock`.
//!
//! Node names are the ones the cluster builder gives (`store-1`, `apiserver-0`,
//! `controller-manager-1`, `scheduler-0`, `kubelet-2`). `store-<k>` names slot k: the
//! member running it now (a replacement or a restore puts a new member there). Backups,
//! replacements and restores go to the operator (`crate::operator`).

use std::collections::BTreeMap;
use std::sync::Arc;

use api::Clock;
use faults::{BitFlip, Failpoint, NodeRef, Refused, Slot, Target, Tear, View, World};
use madsim::net::NetSim;
use madsim::runtime::Handle;
use madsim::task::NodeId;
use store::raft::Role;
use store::server::Failpoints;
use store::wal::{SimDisk, WAL_FILE};

use crate::cluster::StoreCluster;
use crate::control_plane::ControlPlane;
use crate::history::HistoryEvent;
use crate::membership::StoreSlots;
use crate::nodes::restart_node;
use crate::operator::Operator;
use crate::recorder::Recorder;

/// madsim's default send latency, restored when a latency fault heals.
const DEFAULT_LATENCY: std::ops::Range<std::time::Duration> =
    std::time::Duration::from_millis(1)..std::time::Duration::from_millis(10);

pub struct SimWorld {
    /// Nodes other than store members.
    nodes: BTreeMap<String, NodeId>,
    /// The store's slots (`store-<slot>`), resolved at each call: a replacement or a
    /// restore puts a new member (node, disk) in a slot.
    store: Arc<StoreSlots>,
    operator: Arc<Operator>,
    clocks: BTreeMap<String, Clock>,
    recorder: Recorder,
    /// The last leader the store reported, tracked cheaply from the history's tail.
    leader_cache: std::sync::Mutex<(usize, Option<store::api::MemberId>)>,
    /// The controller-manager that last acquired its lease and has not reported losing
    /// it, tracked the same way.
    controller_manager_leader_cache: std::sync::Mutex<(usize, Option<String>)>,
}

impl SimWorld {
    pub fn for_store(store: &StoreCluster, recorder: &Recorder) -> Arc<Self> {
        Arc::new(Self::from_parts(store, BTreeMap::new(), BTreeMap::new(), recorder))
    }

    pub fn for_control_plane(plane: &ControlPlane, recorder: &Recorder) -> Arc<Self> {
        let mut nodes = BTreeMap::new();
        let mut clocks = BTreeMap::new();
        let components = plane
            .apiservers
            .iter()
            .chain(&plane.controller_managers)
            .chain(std::iter::once(&plane.scheduler))
            .chain(plane.kubelets.iter().map(|(c, _)| c));
        for c in components {
            nodes.insert(c.name.clone(), c.node.id());
            clocks.insert(c.name.clone(), c.clock.clone());
        }
        Arc::new(Self::from_parts(&plane.store, nodes, clocks, recorder))
    }

    fn from_parts(
        store: &StoreCluster,
        nodes: BTreeMap<String, NodeId>,
        clocks: BTreeMap<String, Clock>,
        recorder: &Recorder,
    ) -> Self {
        Self {
            nodes,
            store: store.shared.clone(),
            operator: store.operator.clone(),
            clocks,
            recorder: recorder.clone(),
            leader_cache: std::sync::Mutex::new((0, None)),
            controller_manager_leader_cache: std::sync::Mutex::new((0, None)),
        }
    }

    /// The node of the controller-manager that holds its lease as far as the history
    /// knows: the last to acquire it, unless it has since reported losing it. A holder
    /// that crashed reports nothing, so until its successor acquires the lease it is still
    /// named here (a fault aimed at it then meets a crashed process, as one aimed at a
    /// crashed store leader does).
    fn controller_manager_leader(&self) -> Option<String> {
        let mut cache = self.controller_manager_leader_cache.lock().expect("controller-manager leader cache lock");
        let (seen, leader) = &mut *cache;
        self.recorder.with_records(|records| {
            for record in &records[(*seen).min(records.len())..] {
                match &record.event {
                    HistoryEvent::LeaderAcquired { component, identity, .. }
                        if component == controllers::controller_manager::COMPONENT =>
                    {
                        *leader = Some(identity.clone());
                    }
                    HistoryEvent::LeaderLost { component, identity }
                        if component == controllers::controller_manager::COMPONENT
                            && leader.as_ref() == Some(identity) =>
                    {
                        *leader = None;
                    }
                    _ => {}
                }
            }
            *seen = records.len();
        });
        leader.clone()
    }

    /// The node and disk of the member in slot `slot` now.
    fn slot(&self, slot: Slot) -> Option<(NodeId, SimDisk)> {
        self.store.membership().slots.get(&slot).map(|m| (m.node.id(), m.disk.clone()))
    }

    /// The failpoints of the member in slot `slot` now.
    fn slot_failpoints(&self, slot: Slot) -> Option<Failpoints> {
        self.store.membership().slots.get(&slot).map(|m| m.failpoints.clone())
    }

    fn id(&self, node: &NodeRef) -> Option<NodeId> {
        if let Some(slot) = store_slot(node) {
            return self.slot(slot).map(|(id, _)| id);
        }
        self.nodes.get(node).copied()
    }
}

/// The slot a store member's node name names (`store-<k>`), or `None` for other nodes.
fn store_slot(node: &NodeRef) -> Option<Slot> {
    node.strip_prefix("store-").and_then(|slot| slot.parse().ok()).map(Slot)
}

impl SimWorld {
    /// The clock of a component's node, or of a store slot's machine.
    fn clock_of(&self, node: &NodeRef) -> Option<Clock> {
        match store_slot(node) {
            Some(slot) => Some(self.store.slot_clock(slot)),
            None => self.clocks.get(node).cloned(),
        }
    }
}

/// The member's point for a plan's failpoint. The two enums are one concept with one
/// name per point: the plan's (`faults`, which knows nothing of the store) and the
/// member's (`store::server`, which knows nothing of plans); this is the one place they
/// meet, and `failpoint_names_agree` keeps their printed names equal.
fn member_failpoint(failpoint: Failpoint) -> store::server::Failpoint {
    use store::server::Failpoint as Point;
    match failpoint {
        Failpoint::RaftBeforeSave => Point::RaftBeforeSave,
        Failpoint::RaftAfterSave => Point::RaftAfterSave,
        Failpoint::RaftBeforeLeaderSend => Point::RaftBeforeLeaderSend,
        Failpoint::RaftAfterVote => Point::RaftAfterVote,
        Failpoint::RaftLeaderAfterApply => Point::RaftLeaderAfterApply,
    }
}

impl View for SimWorld {
    /// The slots: the plan's `StoreMember(k)` is whichever member runs slot k now.
    fn store_members(&self) -> Vec<Slot> {
        self.store.membership().slots.keys().copied().collect()
    }

    fn store_leader(&self) -> Option<Slot> {
        let mut cache = self.leader_cache.lock().expect("leader cache lock");
        // Only the records since the last call, read in place.
        self.recorder.with_records(|records| {
            for record in &records[cache.0.min(records.len())..] {
                if let HistoryEvent::RoleChanged { member, role, .. } = &record.event {
                    if *role == Role::Leader {
                        cache.1 = Some(*member);
                    } else if cache.1 == Some(*member) {
                        cache.1 = None;
                    }
                }
            }
            cache.0 = records.len();
        });
        // The leader is reported by member id; the nemesis speaks of slots.
        cache.1.and_then(|member| self.store.membership().slot_of(member))
    }

    fn node_of(&self, target: &Target) -> Option<NodeRef> {
        let name = match target {
            Target::StoreMember(slot) => slot.to_string(),
            Target::StoreLeader => self.store_leader()?.to_string(),
            Target::ApiServer(n) => format!("apiserver-{n}"),
            Target::ControllerManager(n) => format!("controller-manager-{n}"),
            Target::ControllerManagerLeader => self.controller_manager_leader()?,
            Target::Scheduler => "scheduler-0".to_string(),
            Target::Kubelet(n) => format!("kubelet-{n}"),
        };
        self.id(&name).is_some().then_some(name)
    }

    fn all_nodes(&self) -> Vec<NodeRef> {
        let slots = self.store.membership().slots.keys().map(Slot::to_string).collect::<Vec<_>>();
        let mut all: Vec<NodeRef> = self.nodes.keys().cloned().chain(slots).collect();
        all.sort();
        all
    }
}

impl World for SimWorld {
    fn kill(&self, node: &NodeRef) {
        if let Some(id) = self.id(node) {
            Handle::current().kill(id);
        }
    }

    fn restart(&self, node: &NodeRef) {
        if let Some(id) = self.id(node) {
            restart_node(id);
        }
    }

    fn pause(&self, node: &NodeRef) {
        if let Some(id) = self.id(node) {
            Handle::current().pause(id);
        }
    }

    fn resume(&self, node: &NodeRef) {
        if let Some(id) = self.id(node) {
            Handle::current().resume(id);
        }
    }

    fn crash_store_member(&self, slot: Slot, tear: Option<Tear>) {
        if let Some((id, disk)) = self.slot(slot) {
            Handle::current().kill(id);
            // `SimDisk::crash` keeps `r % (len + 1)` bytes of the torn write: `r` is the
            // tear's share of it, at most `len`.
            let kept = tear.map(|tear| tear.kept_bytes(disk.last_unsynced_append_len().unwrap_or(0)));
            disk.crash(kept);
        }
    }

    fn restart_store_member(&self, slot: Slot) {
        if let Some((id, _)) = self.slot(slot) {
            restart_node(id);
        }
    }

    fn corrupt_store_record(&self, slot: Slot, flip: BitFlip) -> Option<String> {
        let (_, disk) = self.slot(slot)?;
        let len = disk.file_len(WAL_FILE, true).filter(|len| *len > 0)?;
        let (offset, mask) = (flip.offset(len), flip.xor_mask);
        disk.corrupt(WAL_FILE, offset, mask).ok()?;
        Some(format!("flipped bits {mask:#04x} at byte {offset} of {slot}'s {len}-byte synced WAL"))
    }

    fn clog(&self, from: &NodeRef, to: &NodeRef) {
        if let (Some(a), Some(b)) = (self.id(from), self.id(to)) {
            NetSim::current().clog_link(a, b);
        }
    }

    fn unclog(&self, from: &NodeRef, to: &NodeRef) {
        if let (Some(a), Some(b)) = (self.id(from), self.id(to)) {
            NetSim::current().unclog_link(a, b);
        }
    }

    fn set_packet_loss(&self, rate: f64) {
        NetSim::current().update_config(|c| c.packet_loss_rate = rate);
    }

    fn set_latency_ms(&self, min_ms: u64, max_ms: u64) {
        let range = std::time::Duration::from_millis(min_ms)..std::time::Duration::from_millis(max_ms.max(min_ms) + 1);
        NetSim::current().update_config(|c| c.send_latency = range);
    }

    fn reset_network_conditions(&self) {
        NetSim::current().update_config(|c| {
            c.packet_loss_rate = 0.0;
            c.send_latency = DEFAULT_LATENCY;
        });
    }

    fn set_clock_skew(&self, node: &NodeRef, offset_ms: i64, drift_ms_per_s: i64) {
        if let Some(clock) = self.clock_of(node) {
            clock.set_skew(offset_ms, drift_ms_per_s);
        }
    }

    fn reset_clock(&self, node: &NodeRef) {
        if let Some(clock) = self.clock_of(node) {
            clock.reset();
        }
    }

    fn arm_failpoint(&self, slot: Slot, failpoint: Failpoint, passes: u32, on_reached: Box<dyn FnOnce() + Send>) {
        if let Some(failpoints) = self.slot_failpoints(slot) {
            failpoints.arm_after(member_failpoint(failpoint), passes, on_reached);
        }
    }

    fn disarm_failpoint(&self, slot: Slot, failpoint: Failpoint) {
        if let Some(failpoints) = self.slot_failpoints(slot) {
            failpoints.disarm(member_failpoint(failpoint));
        }
    }

    fn record(&self, description: String) {
        self.recorder.fault(description);
    }

    fn lose_disk(&self, slot: Slot) {
        let Some((id, disk)) = self.slot(slot) else { return };
        let member_id = {
            let mut membership = self.store.membership();
            membership.lost.insert(slot);
            membership.slots[&slot].id
        };
        Handle::current().kill(id);
        disk.wipe();
        self.recorder.record(HistoryEvent::DiskLost { member: member_id });
    }

    fn take_backup(&self, slot: Slot) -> Result<String, Refused> {
        self.operator.request_backup(slot)
    }

    fn corrupt_backup(&self, flip: BitFlip) -> Option<String> {
        self.operator.corrupt_latest_backup(flip)
    }

    fn replace_member(&self, slot: Slot) -> Result<String, Refused> {
        self.operator.request_replace(slot)
    }

    fn restore_from_backup(&self) -> Result<String, Refused> {
        self.operator.request_restore()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan's failpoint and the member's point it arms print the same name (the one the
    /// plan's JSON uses), so a history line reads the same whichever side wrote it.
    #[test]
    fn failpoint_names_agree() {
        for failpoint in Failpoint::ALL {
            assert_eq!(member_failpoint(failpoint).to_string(), failpoint.name());
        }
    }
}
