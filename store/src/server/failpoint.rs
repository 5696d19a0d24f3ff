//! Failpoints: named points in a member's ready loop where the process can be made to die,
//! as etcd's robustness tests do with gofail (`raftBeforeSave=panic`, `raftAfterSave=panic`,
//! `raftBeforeLeaderSend=panic`, then restart the member at once). A crash at a chosen
//! point of the persistence pipeline reaches states that a crash at a random instant
//! almost never does: a vote granted and then forgotten, entries saved but never sent.
//!
//! The member only asks "is this point armed?" where the point is; who arms it (the
//! nemesis, through `sim`'s world) is none of its business. A point may be armed to let
//! the member pass a number of times first (gofail's `N*off->panic` term): "the third
//! Ready this leader sends" is a different state from "the first". An armed point fires once: the
//! registry calls the arming side's callback and the member halts where it stands, sending
//! nothing more, until it is killed (in the same simulated instant) and restarted from its
//! disk. The registry is shared by every incarnation of the member's process.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// A point in the member's ready loop (`server::ready_loop`). Fault plans name the same
/// points with `faults::Failpoint` (same variants, same printed names); `sim`'s world
/// maps one onto the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failpoint {
    /// etcd `raftBeforeSave`: a Ready with hard state or entries to persist was taken
    /// from Raft, nothing of it is written yet. Raft's in-memory state moved on (a vote
    /// recorded, entries appended); the disk never hears of it.
    RaftBeforeSave,
    /// etcd `raftAfterSave`: the Ready's hard state and entries are fsynced, none of its
    /// messages are sent and none of its committed entries applied.
    RaftAfterSave,
    /// etcd `raftBeforeLeaderSend`: as `RaftAfterSave`, but only on a leader with messages to
    /// send; its newest entries then exist on its own disk only (the start of Raft's
    /// Figure 8: a leader that appended entries and died before replicating them).
    RaftBeforeLeaderSend,
    /// kubesim's point right after a Ready that grants a vote was persisted and sent: the
    /// candidate holds the grant, the voter dies. etcd has no failpoint of this name; its
    /// `raftAfterSave` reaches the same state when it fires on the Ready recording a vote,
    /// which the nemesis would otherwise hit only by luck among hundreds of appends. A
    /// correct member restarts still bound by its vote (Raft §5.2: `votedFor` is
    /// persistent state); one that forgot it may vote again in the same term.
    RaftAfterVote,
    /// kubesim's point right after a leader applied entries that a Ready committed, before
    /// it sends that Ready's messages: the leader has applied (and may have answered)
    /// what its last acknowledgements committed, and no follower has heard the new commit
    /// index. etcd has no failpoint of this name; its `raftBeforeLeaderSend` reaches the
    /// same state when it fires on the Ready that advanced the commit index, which the
    /// nemesis would otherwise hit only by luck among heartbeats and appends. Armed on a
    /// leader that was just elected, it fires at the first commit of its term: a correct
    /// leader then commits its own no-op with everything before it (Raft §5.4.2); one that
    /// counts replicas of old-term entries commits those alone and dies with them
    /// applied, the state of Raft's Figure 8 (c) from which (d) overwrites them.
    RaftLeaderAfterApply,
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failpoint::RaftBeforeSave => "raft-before-save",
            Failpoint::RaftAfterSave => "raft-after-save",
            Failpoint::RaftBeforeLeaderSend => "raft-before-leader-send",
            Failpoint::RaftAfterVote => "raft-after-vote",
            Failpoint::RaftLeaderAfterApply => "raft-leader-after-apply",
        })
    }
}

/// Called once when an armed failpoint is reached.
pub type OnReached = Box<dyn FnOnce() + Send>;

/// An armed point: how many more times the member passes it unharmed, then the callback.
struct Armed {
    passes_left: u32,
    on_reached: OnReached,
}

/// The armed failpoints of one member. Cloning shares the registry.
#[derive(Clone, Default)]
pub struct Failpoints(Arc<Mutex<BTreeMap<Failpoint, Armed>>>);

impl Failpoints {
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms `failpoint`: the next time the member reaches it, `on_reached` is called and
    /// the member halts. Re-arming replaces the previous callback.
    pub fn arm(&self, failpoint: Failpoint, on_reached: OnReached) {
        self.arm_after(failpoint, 0, on_reached);
    }

    /// Arms `failpoint` to let the member pass it `passes` times first (gofail
    /// `passes*off->panic`), then act as [`Failpoints::arm`].
    pub fn arm_after(&self, failpoint: Failpoint, passes: u32, on_reached: OnReached) {
        self.0.lock().expect("failpoints lock").insert(failpoint, Armed { passes_left: passes, on_reached });
    }

    /// Disarms `failpoint`; returns whether it was still armed (not yet reached).
    pub fn disarm(&self, failpoint: Failpoint) -> bool {
        self.0.lock().expect("failpoints lock").remove(&failpoint).is_some()
    }

    pub fn is_armed(&self, failpoint: Failpoint) -> bool {
        self.0.lock().expect("failpoints lock").contains_key(&failpoint)
    }

    /// The member reached `failpoint`: if it is armed, disarm it, call its callback and
    /// return true (the member must then halt).
    pub(crate) fn reached(&self, failpoint: Failpoint) -> bool {
        // Take the callback out before calling it: it may arm or disarm points itself.
        let on_reached = {
            let mut armed = self.0.lock().expect("failpoints lock");
            match armed.get_mut(&failpoint) {
                Some(point) if point.passes_left > 0 => {
                    point.passes_left -= 1;
                    None
                }
                Some(_) => armed.remove(&failpoint).map(|point| point.on_reached),
                None => None,
            }
        };
        match on_reached {
            Some(on_reached) => {
                tracing::info!(%failpoint, "failpoint reached: the member halts until it is crashed");
                on_reached();
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for Failpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let armed: Vec<Failpoint> = self.0.lock().expect("failpoints lock").keys().copied().collect();
        f.debug_struct("Failpoints").field("armed", &armed).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn an_armed_point_lets_its_passes_by_then_fires_once() {
        let fired = Arc::new(AtomicU32::new(0));
        let failpoints = Failpoints::new();
        let counter = fired.clone();
        failpoints.arm_after(
            Failpoint::RaftBeforeLeaderSend,
            2,
            Box::new(move || _ = counter.fetch_add(1, Ordering::SeqCst)),
        );
        assert!(!failpoints.reached(Failpoint::RaftAfterSave), "another point is not armed");
        assert!(!failpoints.reached(Failpoint::RaftBeforeLeaderSend));
        assert!(!failpoints.reached(Failpoint::RaftBeforeLeaderSend));
        assert!(failpoints.is_armed(Failpoint::RaftBeforeLeaderSend));
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        assert!(failpoints.reached(Failpoint::RaftBeforeLeaderSend), "the third reach fires");
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert!(!failpoints.reached(Failpoint::RaftBeforeLeaderSend), "a fired point is disarmed");
        assert!(!failpoints.disarm(Failpoint::RaftBeforeLeaderSend));
    }
}
