//! Plan targets resolved against the world as it is when a fault is applied
//! (`store-leader` is whoever leads then), and the links each network fault cuts:
//! partitions, isolation, Jepsen's ring and bridge grudges, one-way and clogged links.

use std::collections::{BTreeMap, BTreeSet};

use super::holds::Down;
use super::{NodeRef, View};
use crate::plan::{kind_name, Fault, Slot, Target};

/// A directed link `from → to` whose messages are dropped.
pub(crate) type Link = (NodeRef, NodeRef);

/// The links one network fault cuts, and how the history describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    pub(crate) description: String,
    pub(crate) links: BTreeSet<Link>,
}

/// Why a fault's target did not resolve when it was due: the fault is skipped, and the
/// history says why (`partition: no leader known, skipped`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unresolved {
    /// `store-leader` was named and the world knows no leader.
    #[error("no leader known")]
    NoLeader,
    /// `isolate-store-leader` with no leader known.
    #[error("no leader to isolate")]
    NoLeaderToIsolate,
    /// A store-only fault named another component.
    #[error("{0} is not a store member")]
    NotAStoreMember(Target),
    /// The world has no node for the target now.
    #[error("{0} does not resolve")]
    NoNode(Target),
    /// Both ends of a one-way cut or clogged link are the same node now (the leader named
    /// beside the member that leads).
    #[error("{0} resolves to both ends")]
    BothEnds(NodeRef),
    /// The slot a failpoint is armed on holds no member.
    #[error("{0} does not exist")]
    NoSuchSlot(Slot),
}

/// Resolves targets through a [`View`] of the world. Every method reads the world as it
/// is now; an `Err` says why a target does not resolve, for the history.
pub(crate) struct Targets<'a> {
    view: &'a dyn View,
}

impl<'a> Targets<'a> {
    pub(crate) fn new(view: &'a dyn View) -> Self {
        Targets { view }
    }

    /// The store's slots, in order.
    pub(crate) fn store_members(&self) -> Vec<Slot> {
        let mut members = self.view.store_members();
        members.sort_unstable();
        members.dedup();
        members
    }

    pub(crate) fn has_store_member(&self, slot: Slot) -> bool {
        self.view.store_members().contains(&slot)
    }

    /// The slot of a store target (`store-leader` resolved now).
    pub(crate) fn member(&self, target: &Target) -> Result<Slot, Unresolved> {
        match target {
            Target::StoreMember(slot) => Ok(*slot),
            Target::StoreLeader => self.view.store_leader().ok_or(Unresolved::NoLeader),
            other => Err(Unresolved::NotAStoreMember(other.clone())),
        }
    }

    /// The node a target runs on, as the world names it.
    pub(crate) fn node(&self, target: &Target) -> Result<NodeRef, Unresolved> {
        self.view.node_of(target).ok_or_else(|| Unresolved::NoNode(target.clone()))
    }

    /// What a crash of `target` holds down: a store member by slot, anything else by node.
    pub(crate) fn down(&self, target: &Target) -> Result<Down, Unresolved> {
        if target.is_store() {
            self.member(target).map(Down::StoreMember)
        } else {
            self.node(target).map(Down::Node)
        }
    }

    fn member_node(&self, slot: Slot) -> Result<NodeRef, Unresolved> {
        self.node(&Target::StoreMember(slot))
    }

    /// The node of a target, `store-leader` included.
    fn endpoint(&self, target: &Target) -> Result<NodeRef, Unresolved> {
        match target {
            Target::StoreLeader => self.member_node(self.member(target)?),
            other => self.node(other),
        }
    }

    /// The links a network fault cuts (partitions, isolation, grudges, one-way, clog).
    pub(crate) fn cut(&self, fault: &Fault) -> Result<Cut, Unresolved> {
        let (description, links) = match fault {
            Fault::Partition { groups } => {
                let groups = self.groups(groups)?;
                (format!("partition {}", describe_groups(&groups)), complete_cut(&groups))
            }
            Fault::IsolateStoreLeader => {
                let leader = self.view.store_leader().ok_or(Unresolved::NoLeaderToIsolate)?;
                let node = self.member_node(leader)?;
                (format!("isolate store leader {node}"), self.isolate(&node))
            }
            Fault::IsolateApiServer { apiserver } => {
                let node = self.node(&Target::ApiServer(*apiserver))?;
                (format!("isolate apiserver {node}"), self.isolate(&node))
            }
            Fault::MajoritiesRing | Fault::Bridge => return self.grudge_cut(fault),
            Fault::OneWay { from, to } => {
                let (from, to) = (self.endpoint(from)?, self.endpoint(to)?);
                if from == to {
                    return Err(Unresolved::BothEnds(from));
                }
                (format!("one-way {from} -> {to} dropped"), BTreeSet::from([(from, to)]))
            }
            Fault::ClogLink { a, b } => {
                let (a, b) = (self.endpoint(a)?, self.endpoint(b)?);
                if a == b {
                    return Err(Unresolved::BothEnds(a));
                }
                (format!("clog-link {a} <-> {b}"), BTreeSet::from([(a.clone(), b.clone()), (b, a)]))
            }
            _ => unreachable!("not a network cut: {fault:?}"),
        };
        Ok(Cut { description, links })
    }

    /// The links of Jepsen's ring and bridge grudges over the store members, described
    /// by what each member still hears.
    fn grudge_cut(&self, fault: &Fault) -> Result<Cut, Unresolved> {
        let members = self.store_members();
        let grudge = match fault {
            Fault::MajoritiesRing => majorities_ring(&members),
            Fault::Bridge => bridge(&members),
            _ => unreachable!("not a grudge over store members: {fault:?}"),
        };
        let mut links = BTreeSet::new();
        let mut views = Vec::new();
        for member in &members {
            let receiver = self.member_node(*member)?;
            let dropped = grudge.get(member).cloned().unwrap_or_default();
            let mut hears = Vec::new();
            for other in &members {
                let sender = self.member_node(*other)?;
                if dropped.contains(other) {
                    links.insert((sender, receiver.clone()));
                } else {
                    hears.push(sender);
                }
            }
            views.push(format!("{receiver} hears {{{}}}", hears.join(", ")));
        }
        Ok(Cut { description: format!("{}: {}", kind_name(fault), views.join("; ")), links })
    }

    /// Resolves partition groups. The leader, resolved now, is removed from any other
    /// group that names it concretely; a target that does not resolve is an error.
    fn groups(&self, groups: &[Vec<Target>]) -> Result<Vec<Vec<NodeRef>>, Unresolved> {
        let leader_group = groups.iter().position(|group| group.contains(&Target::StoreLeader));
        let leader_node = match leader_group {
            Some(_) => Some(self.endpoint(&Target::StoreLeader)?),
            None => None,
        };
        let mut resolved = Vec::with_capacity(groups.len());
        for (group_idx, group) in groups.iter().enumerate() {
            let mut nodes = Vec::with_capacity(group.len());
            for target in group {
                let node = self.endpoint(target)?;
                let leader_elsewhere = leader_node.as_ref() == Some(&node) && leader_group != Some(group_idx);
                if !leader_elsewhere && !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
            resolved.push(nodes);
        }
        Ok(resolved)
    }

    /// Links cutting `node` off from every other node, both directions.
    fn isolate(&self, node: &NodeRef) -> BTreeSet<Link> {
        let others: Vec<NodeRef> = self.view.all_nodes().into_iter().filter(|other| other != node).collect();
        complete_cut(&[vec![node.clone()], others])
    }
}

/// Jepsen's `complete-grudge`: nodes in different groups cannot talk, both directions.
fn complete_cut(groups: &[Vec<NodeRef>]) -> BTreeSet<Link> {
    let mut links = BTreeSet::new();
    for (group_idx, group) in groups.iter().enumerate() {
        for other_group in &groups[group_idx + 1..] {
            for a in group {
                for b in other_group {
                    if a != b {
                        links.insert((a.clone(), b.clone()));
                        links.insert((b.clone(), a.clone()));
                    }
                }
            }
        }
    }
    links
}

fn describe_groups(groups: &[Vec<NodeRef>]) -> String {
    groups.iter().map(|group| format!("{{{}}}", group.join(", "))).collect::<Vec<_>>().join(" | ")
}

/// A Jepsen grudge over the store: for each slot, the slots whose messages it drops.
pub type Grudge = BTreeMap<Slot, BTreeSet<Slot>>;

/// Jepsen's `majorities-ring` (`majorities-ring-perfect` in jepsen.nemesis): lay the
/// members on a ring, take the `n` windows of `m = n/2 + 1` consecutive members, and let
/// the member in the middle of each window (index `m/2`) hear only that window. Every
/// member then sees a majority, itself included, and no two see the same majority.
///
/// Differences from Jepsen, both forced by a plan being data that replays exactly: the
/// ring is in slot order rather than shuffled (Raft members are symmetric up to
/// relabelling; who leads changes over time anyway), and clusters above 5 members use
/// the same windows instead of Jepsen's stochastic graph, which still gives each member
/// its own majority.
///
/// With 3 members (`m = 2`) the ring is one-way: 1 hears 3, 2 hears 1, 3 hears 2, so the
/// dropped links are 2→1, 3→2 and 1→3. With 5, each member hears exactly its two ring
/// neighbours and the cut is symmetric.
pub fn majorities_ring(members: &[Slot]) -> Grudge {
    let n = members.len();
    let majority = n / 2 + 1;
    let mut grudge = Grudge::new();
    for start in 0..n {
        let window: BTreeSet<Slot> = (0..majority).map(|offset| members[(start + offset) % n]).collect();
        let center = members[(start + majority / 2) % n];
        let dropped = members.iter().copied().filter(|member| !window.contains(member)).collect();
        grudge.insert(center, dropped);
    }
    grudge
}

/// Jepsen's `bridge`: cut the members in two halves (the smaller first, as Jepsen's
/// `bisect` does) and keep the first member of the second half as a bridge that talks
/// to both: nobody drops the bridge and the bridge drops nobody. With 3 members, 1 and 3
/// cannot talk and 2 bridges them; with 5, {1, 2} and {4, 5} meet only through 3.
/// Members are in slot order, not shuffled (see [`majorities_ring`]).
pub fn bridge(members: &[Slot]) -> Grudge {
    let (first, second) = members.split_at(members.len() / 2);
    let Some(&bridge_member) = second.first() else {
        return Grudge::new();
    };
    let mut grudge = Grudge::new();
    for (side, other_side) in [(first, second), (second, first)] {
        for &member in side {
            if member == bridge_member {
                continue;
            }
            let dropped = other_side.iter().copied().filter(|&other| other != bridge_member).collect();
            grudge.insert(member, dropped);
        }
    }
    grudge
}
