//! What a plan aims at: [`Target`] (a component, in JSON a node-like name such as
//! `"store-1"`), the [`Slot`] a store target names, and the [`Topology`] of the cluster a
//! plan is checked against.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A store slot: one of the cluster's places for a store member, numbered `1..=n`
/// (`Topology::store_members`). A slot is not a member id: the member running in a slot
/// changes when the operator replaces it after a disk loss or restores the cluster, and
/// each new member gets an id never used before, while plans, node names and the nemesis
/// keep naming the slot. Printed (and named in plans and node names) `store-N`; in JSON
/// a bare number where a slot stands alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slot(pub u64);

impl Slot {
    /// The slot's number, `1..=n`.
    pub fn number(self) -> u64 {
        self.0
    }

    /// Every slot of a cluster of `n` store members, in order: `store-1..=store-n`.
    pub fn all(n: u64) -> impl Iterator<Item = Slot> {
        (1..=n).map(Slot)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store-{}", self.0)
    }
}

/// The shape of the simulated cluster a plan is checked against. Component indices are
/// 0-based except store slots, which are 1-based ([`Slot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub store_members: u64,
    pub apiservers: u32,
    pub controller_managers: u32,
    pub schedulers: u32,
    pub kubelets: u32,
}

impl Topology {
    /// The largest number of store members that may be down at once while a majority
    /// remains: `(n - 1) / 2` (1 of 3, 2 of 5; 0 for a single member).
    pub fn store_minority(&self) -> u64 {
        self.store_members.saturating_sub(1) / 2
    }

    /// Whether `target` names a component of this topology (`StoreLeader` exists when
    /// there is at least one store member).
    pub fn contains(&self, target: &Target) -> bool {
        match *target {
            Target::StoreMember(Slot(slot)) => slot >= 1 && slot <= self.store_members,
            Target::StoreLeader => self.store_members >= 1,
            Target::ApiServer(idx) => idx < self.apiservers,
            Target::ControllerManager(idx) => idx < self.controller_managers,
            Target::ControllerManagerLeader => self.controller_managers >= 1,
            Target::Scheduler => self.schedulers >= 1,
            Target::Kubelet(idx) => idx < self.kubelets,
        }
    }

    pub(crate) fn describe_absence(&self, target: &Target) -> String {
        let plural = |n: u64, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        let has = match target {
            Target::StoreMember(_) | Target::StoreLeader => {
                let members = plural(self.store_members, "store member");
                if self.store_members == 0 {
                    members
                } else {
                    format!("{members}, numbered 1..={}", self.store_members)
                }
            }
            Target::ApiServer(_) => plural(self.apiservers.into(), "apiserver"),
            Target::ControllerManager(_) | Target::ControllerManagerLeader => {
                plural(self.controller_managers.into(), "controller-manager")
            }
            Target::Scheduler => plural(self.schedulers.into(), "scheduler"),
            Target::Kubelet(_) => plural(self.kubelets.into(), "kubelet"),
        };
        format!("target {target} does not exist (topology has {has})")
    }
}

/// A component a fault is aimed at. In JSON a target is one string that reads like the
/// node's name: `"store-1"`, `"store-leader"`, `"apiserver-0"`, `"controller-manager-1"`,
/// `"controller-manager-leader"`, `"scheduler"`, `"kubelet-2"`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Target {
    /// Whichever store member runs this slot when the fault is applied (at first the
    /// member whose id is the slot's number).
    StoreMember(Slot),
    /// Whichever store member is the Raft leader when the fault is applied (the nemesis
    /// asks the world at apply time, the way Jepsen's `partition-leader` nemesis does).
    StoreLeader,
    /// An apiserver by its 0-based index.
    ApiServer(u32),
    /// A kube-controller-manager replica by its 0-based index.
    ControllerManager(u32),
    /// Whichever kube-controller-manager holds the `kube-system/kube-controller-manager`
    /// lease when the fault is applied, as the world last saw it acquire leadership (the
    /// lease-holder counterpart of [`Target::StoreLeader`]): a fault aimed at the replica
    /// whose controllers act, not at a standby that does nothing.
    ControllerManagerLeader,
    /// The scheduler; the world resolves it (to its only replica, or the active one).
    Scheduler,
    /// A node's kubelet by its 0-based index.
    Kubelet(u32),
}

impl Target {
    /// Whether the target is a store member (concrete or the leader).
    pub fn is_store(&self) -> bool {
        matches!(self, Target::StoreMember(_) | Target::StoreLeader)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::StoreMember(slot) => slot.fmt(f),
            Target::StoreLeader => write!(f, "store-leader"),
            Target::ApiServer(idx) => write!(f, "apiserver-{idx}"),
            Target::ControllerManager(idx) => write!(f, "controller-manager-{idx}"),
            Target::ControllerManagerLeader => write!(f, "controller-manager-leader"),
            Target::Scheduler => write!(f, "scheduler"),
            Target::Kubelet(idx) => write!(f, "kubelet-{idx}"),
        }
    }
}

/// The target string could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown target {0:?} (expected store-N, store-leader, apiserver-N, \
     controller-manager-N, controller-manager-leader, scheduler or kubelet-N)"
)]
pub struct TargetParseError(pub String);

impl FromStr for Target {
    type Err = TargetParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || TargetParseError(text.to_string());
        match text {
            "store-leader" => return Ok(Target::StoreLeader),
            "controller-manager-leader" => return Ok(Target::ControllerManagerLeader),
            "scheduler" => return Ok(Target::Scheduler),
            _ => {}
        }
        // Longest prefix first: "controller-manager-" must not be read as something else.
        let (prefix, number) = text.rsplit_once('-').ok_or_else(error)?;
        // Reject "+1", " 1" and friends that `parse` would otherwise accept or trim.
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        match prefix {
            "store" => number.parse().map(|n| Target::StoreMember(Slot(n))).map_err(|_| error()),
            "apiserver" => number.parse().map(Target::ApiServer).map_err(|_| error()),
            "controller-manager" => number.parse().map(Target::ControllerManager).map_err(|_| error()),
            "kubelet" => number.parse().map(Target::Kubelet).map_err(|_| error()),
            _ => Err(error()),
        }
    }
}

impl TryFrom<String> for Target {
    type Error = TargetParseError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Target> for String {
    fn from(target: Target) -> String {
        target.to_string()
    }
}
