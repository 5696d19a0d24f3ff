//! What overlapping faults share: a link two partitions both cut, a process two crashes
//! both hold down, the network conditions and clock skews of several events at once.
//! Each is counted or layered here, so that the first fault applies an effect and the
//! last heal undoes it.

use std::collections::BTreeMap;
use std::fmt;

use super::NodeRef;
use crate::plan::Slot;

/// Holds on things overlapping faults share (a clogged link, a paused node, a crashed
/// process), counted per thing: the first hold applies the effect, the last release
/// undoes it, the ones between change nothing.
#[derive(Debug)]
pub(crate) struct Holds<K> {
    counts: BTreeMap<K, u32>,
}

impl<K: Ord + Clone + fmt::Debug> Holds<K> {
    pub(crate) fn new() -> Self {
        Holds { counts: BTreeMap::new() }
    }

    /// One more hold on `key`; true if it is the first, when the caller applies the effect.
    pub(crate) fn take(&mut self, key: &K) -> bool {
        let count = self.counts.entry(key.clone()).or_insert(0);
        *count += 1;
        *count == 1
    }

    /// One hold fewer on `key`; true if it was the last, when the caller undoes the
    /// effect. Every release matches an earlier take: releasing what is not held is a bug
    /// of the nemesis.
    pub(crate) fn release(&mut self, key: &K) -> bool {
        let count = self.counts.get_mut(key).unwrap_or_else(|| panic!("{key:?} released but not held"));
        assert!(*count >= 1);
        *count -= 1;
        if *count == 0 {
            self.counts.remove(key);
            return true;
        }
        false
    }

    pub(crate) fn is_held(&self, key: &K) -> bool {
        self.counts.contains_key(key)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// A process held down by crashes. A store member is keyed by its slot (the plan's
/// `store-N`, whichever member runs it now), so that `crash store-1`, `crash-store-member
/// store-1` and a crash of the leader while it is store-1 count against the same process.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Down {
    StoreMember(Slot),
    Node(NodeRef),
}

impl fmt::Display for Down {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Down::StoreMember(slot) => slot.fmt(f),
            Down::Node(node) => f.write_str(node),
        }
    }
}

/// Packet loss and latency of the events that set them, by event: the most intense of
/// those still applied is in force.
#[derive(Debug, Default)]
pub(crate) struct NetworkConditions {
    packet_loss: BTreeMap<usize, f64>,
    latency_ms: BTreeMap<usize, (u64, u64)>,
}

/// A network condition one event sets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Condition {
    PacketLoss { rate: f64 },
    Latency { min_ms: u64, max_ms: u64 },
}

impl NetworkConditions {
    pub(crate) fn insert(&mut self, event_idx: usize, condition: Condition) {
        match condition {
            Condition::PacketLoss { rate } => self.packet_loss.insert(event_idx, rate).is_none(),
            Condition::Latency { min_ms, max_ms } => self.latency_ms.insert(event_idx, (min_ms, max_ms)).is_none(),
        };
    }

    /// Forgets what event `event_idx` set; returns it.
    pub(crate) fn remove(&mut self, event_idx: usize) -> Condition {
        if let Some(rate) = self.packet_loss.remove(&event_idx) {
            return Condition::PacketLoss { rate };
        }
        let (min_ms, max_ms) = self.latency_ms.remove(&event_idx).expect("network conditions are tracked by event");
        Condition::Latency { min_ms, max_ms }
    }

    /// The highest loss rate in force, if any.
    pub(crate) fn packet_loss(&self) -> Option<f64> {
        self.packet_loss.values().copied().reduce(f64::max)
    }

    /// The latency in force, if any: the highest bounds of every spike.
    pub(crate) fn latency_ms(&self) -> Option<(u64, u64)> {
        self.latency_ms.values().copied().reduce(|(min_a, max_a), (min_b, max_b)| (min_a.max(min_b), max_a.max(max_b)))
    }
}

/// The clock skews applied to each node, by event. Applying a skew sets it at once;
/// healing one falls back to the skew of the highest-numbered event still applied to
/// the node, or to the true time.
#[derive(Debug, Default)]
pub(crate) struct ClockSkews {
    by_node: BTreeMap<NodeRef, BTreeMap<usize, (i64, i64)>>,
}

impl ClockSkews {
    pub(crate) fn insert(&mut self, node: &NodeRef, event_idx: usize, offset_ms: i64, drift_ms_per_s: i64) {
        self.by_node.entry(node.clone()).or_default().insert(event_idx, (offset_ms, drift_ms_per_s));
    }

    /// Forgets event `event_idx`'s skew of `node`; returns the skew the node falls back
    /// to, or `None` for the true time.
    pub(crate) fn remove(&mut self, node: &NodeRef, event_idx: usize) -> Option<(i64, i64)> {
        let skews = self.by_node.get_mut(node).expect("a skew is tracked");
        skews.remove(&event_idx);
        let fallback = skews.last_key_value().map(|(_, &skew)| skew);
        if fallback.is_none() {
            self.by_node.remove(node);
        }
        fallback
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}
