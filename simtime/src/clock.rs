//! A node's view of wall time: the simulator's clock plus this node's skew.
//!
//! Leases and leader election read time through a `Clock` — Kubernetes' leader election
//! in the controllers, and the store leader's lessor, which decides when an etcd lease
//! expires — so the nemesis can give a node an offset or a drift (docs/design.md §3, clock
//! faults) and expose what lease logic does when clocks disagree. The skew lives in shared
//! state outside the node's tasks so it survives a restart and the nemesis can change it at
//! any time. It lives here, below both `api` and `store`, so that both can read it.

use std::sync::{Arc, Mutex};

/// Milliseconds of a node's wall time (simulated time plus the node's skew).
pub type TimestampMs = u64;

/// A node's clock fault: an offset and a drift.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ClockSkew {
    /// Added to the simulated time, in ms (may be negative).
    pub offset_ms: i64,
    /// Extra ms gained per simulated second (drift), measured from when it was set.
    pub drift_ms_per_s: i64,
    /// Simulated ms at which the drift began.
    pub drift_since_ms: u64,
}

/// A node's clock: shared by every clone, so the nemesis's handle and the node's tasks see
/// the same skew.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    skew: Arc<Mutex<ClockSkew>>,
}

impl Clock {
    /// An unskewed clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Milliseconds of simulated time since the simulation started, unskewed.
    pub fn sim_now_ms() -> u64 {
        madsim::time::TimeHandle::current().elapsed().as_millis() as u64
    }

    /// This node's wall time in ms: simulated time with the node's offset and drift.
    /// Never below zero.
    pub fn now_ms(&self) -> TimestampMs {
        let sim_ms = Self::sim_now_ms();
        let skew = *self.skew.lock().expect("clock skew lock");
        let drift_ms = (sim_ms.saturating_sub(skew.drift_since_ms) as i64) * skew.drift_ms_per_s / 1000;
        (sim_ms as i64 + skew.offset_ms + drift_ms).max(0) as u64
    }

    /// Sets an offset and a drift that starts now.
    pub fn set_skew(&self, offset_ms: i64, drift_ms_per_s: i64) {
        let mut s = self.skew.lock().expect("clock skew lock");
        *s = ClockSkew { offset_ms, drift_ms_per_s, drift_since_ms: Self::sim_now_ms() };
    }

    /// Removes the skew.
    pub fn reset(&self) {
        *self.skew.lock().expect("clock skew lock") = ClockSkew::default();
    }

    /// The current skew.
    pub fn skew(&self) -> ClockSkew {
        *self.skew.lock().expect("clock skew lock")
    }
}
