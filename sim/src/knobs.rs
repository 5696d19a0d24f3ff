//! The knobs a seed runs on: every configuration constant of the simulated cluster whose
//! extreme values a real cluster can be configured with, drawn per seed as FoundationDB
//! randomizes its knobs under BUGGIFY.
//!
//! Most seeds run a knob at its realistic default; some run it at an extreme value that
//! opens a path the default never reaches within a seed's minute of simulated time: a
//! compactor every few seconds (410 Gone, informer relists, watches cancelled by
//! compaction), a watch cache of a few events (window overflow, "too old resource
//! version"), a Raft snapshot every few dozen entries (InstallSnapshot, catch-up from the
//! kept entries), short or long leader-election leases, short timeouts. The draw is a
//! function of the seed alone ([`Knobs::for_seed`]), made before the run, so a seed always
//! replays on the same knobs; `kubesim run` prints the knobs that differ from the defaults
//! and a corpus case saves all of them, so a saved case keeps running what it ran even when
//! the draw changes.
//!
//! Each knob is documented with the real default and where Kubernetes or etcd sets it.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::control_plane::ControlPlaneOptions;

/// Every store size [`Knobs::for_seed`] picks.
pub const STORE_SIZES: [usize; 2] = [3, 5];

/// The knob set of one run. Serialized in corpus cases (`knobs`): a field left out of a
/// case takes its default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    /// Store members, 1 to [`Knobs::MAX_MEMBERS`]. Drawn: 5 in one seed of 4, 3 otherwise,
    /// the sizes etcd recommends. Five members tolerate two down at once and have four
    /// followers that can time out in the same tick after a leader dies: split votes and
    /// several candidates in one term become common.
    pub store_members: usize,
    /// Raft's cap on entries per append message; `None`: the member's default (64). etcd
    /// caps an append at `MaxSizePerMsg` (1 MiB), which holds hundreds of typical objects
    /// but one large one. Drawn: 1 in one seed of 4, 8 in one of 4: a new leader then
    /// replicates its predecessors' uncommitted tail over several messages, before its own
    /// entries (the window of Raft's Figure 8, §5.4.2).
    pub max_entries_per_append: Option<usize>,
    /// Raft election timeout in ticks of 100 ms (etcd `--election-timeout` 1000 ms over
    /// `--heartbeat-interval` 100 ms: 10; etcd refuses less than 5 heartbeats). Drawn: 5 or
    /// 30 in one seed of 10 each.
    pub election_tick: u64,
    /// A member saves a snapshot and compacts its Raft log every this many applied entries
    /// (etcd `--snapshot-count`: 100 000 in 3.4, 10 000 since 3.5; kubesim 2 000, more
    /// than a seed applies). Drawn: 50 or 20 in one seed of 4 each, so that a follower
    /// that falls behind is sent a snapshot (InstallSnapshot).
    pub snapshot_every_entries: u64,
    /// Raft entries kept under a new snapshot so that a follower a little behind catches up
    /// from the log (etcd `SnapshotCatchUpEntries`, 5 000;
    /// `--experimental-snapshot-catchup-entries` in 3.6). kubesim's default 0 compacts to
    /// the snapshot's index. Drawn: 10 in one seed of 4.
    pub snapshot_catch_up_entries: u64,
    /// How long a request waits inside a store member before its outcome is reported
    /// unknown (etcd's request timeout is 5 s plus two election timeouts; kubesim 3 s).
    /// Drawn: 1 s in one seed of 8.
    pub store_request_timeout_ms: u64,
    /// kube-apiserver `--etcd-compaction-interval` (5 min; 0 switches the compactor off).
    /// Drawn: 2, 5 or 10 s in four seeds of ten together, off in one of 20: a compaction
    /// every few seconds makes informers meet 410 Gone and relist.
    pub compaction_interval_ms: u64,
    /// Events the apiserver's watch cache keeps (kubesim 1 000; kube-apiserver's
    /// `--default-watch-cache-size` was 100, sizes are set per resource with
    /// `--watch-cache-sizes`). Drawn: 100 or 10 in one seed of 5 each: the window
    /// overflows and a watch from before it is answered "too old resource version".
    pub watch_cache_capacity: usize,
    /// The most events one watch answer carries (kubesim 500). Drawn: 1 in one seed of 8,
    /// so that every answer is cut short and the client resumes from its last revision.
    pub watch_max_events_per_response: usize,
    /// How long a component's API client waits for one answer (client-go's default is no
    /// timeout on the client and 60 s on the apiserver; kubesim 5 s). Drawn: 1 s in one
    /// seed of 8.
    pub api_request_timeout_ms: u64,
    /// Controller-manager and scheduler leader election (`--leader-elect-lease-duration`
    /// 15 s, `--leader-elect-renew-deadline` 10 s, `--leader-elect-retry-period` 2 s;
    /// client-go requires lease > renew deadline > 1.2 × retry period). Drawn: 4/3/1 s or
    /// 30/20/4 s in one seed of 10 each.
    pub leader_lease_duration_ms: u64,
    pub leader_renew_deadline_ms: u64,
    pub leader_retry_period_ms: u64,
    /// Deployment and ReplicaSet resync period (kube-controller-manager
    /// `--min-resync-period` is 12 h; kubesim 30 s, its runs being a minute). Drawn: 1 s in
    /// one seed of 8.
    pub resync_period_ms: u64,
    /// kube-controller-manager `--node-monitor-grace-period` (40 s): heartbeat silence
    /// after which a node is marked NotReady. Drawn: 15 s (one and a half missed 10 s lease
    /// renewals) in one seed of 5.
    pub node_monitor_grace_period_ms: u64,
    /// NotReady time after which a node's pods are evicted (`--pod-eviction-timeout`,
    /// 5 min; the default `tolerationSeconds` of the not-ready taint is the same). Drawn:
    /// 5 s in one seed of 5.
    pub pod_eviction_timeout_ms: u64,
    /// kube-apiserver `--event-ttl` (1 h): an Event lives this long after its last write,
    /// under a store lease, before the store deletes it. Drawn: 10 s in one seed of 4 and
    /// 30 s in one of 8, so that Events expire within a run (lease expiry by the store
    /// leader, across the leader changes and clock faults the nemesis makes).
    pub event_ttl_ms: u64,
}

impl Default for Knobs {
    /// The realistic defaults every knob is drawn around (3 store members).
    fn default() -> Self {
        Self::of(&ControlPlaneOptions::default())
    }
}

/// A knob set that no cluster could run on, named by its knob.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("knobs.{knob}: {problem}")]
pub struct KnobError {
    pub knob: &'static str,
    pub problem: String,
}

fn knob_error(knob: &'static str, problem: impl Into<String>) -> KnobError {
    KnobError { knob, problem: problem.into() }
}

impl Knobs {
    /// The most store members a run may have.
    pub const MAX_MEMBERS: usize = crate::workload::MAX_STORE_MEMBERS;

    /// The knobs `seed` picks: from the seed alone, before the run. Every knob is an
    /// independent draw of one stream; the two store knobs come first, in the order they
    /// were drawn before the others existed.
    pub fn for_seed(seed: u64) -> Self {
        let mut rng = faults::SeedStreams::derive(seed).knobs;
        let store_members = if rng.gen_ratio(1, 4) { 5 } else { 3 };
        let max_entries_per_append = match rng.gen_range(0..4) {
            0 => Some(1),
            1 => Some(8),
            _ => None,
        };
        let mut knobs = Self { store_members, max_entries_per_append, ..Self::default() };
        // One draw in 0..40 per knob: each arm is a share of seeds in fortieths.
        let mut draw = || rng.gen_range(0..40u32);
        knobs.election_tick = match draw() {
            0..=3 => 5,
            4..=7 => 30,
            _ => knobs.election_tick,
        };
        knobs.snapshot_every_entries = match draw() {
            0..=9 => 50,
            10..=19 => 20,
            _ => knobs.snapshot_every_entries,
        };
        if draw() < 10 {
            knobs.snapshot_catch_up_entries = 10;
        }
        if draw() < 5 {
            knobs.store_request_timeout_ms = 1_000;
        }
        knobs.compaction_interval_ms = match draw() {
            0..=5 => 2_000,
            6..=10 => 5_000,
            11..=15 => 10_000,
            16..=17 => 0,
            _ => knobs.compaction_interval_ms,
        };
        knobs.watch_cache_capacity = match draw() {
            0..=7 => 100,
            8..=15 => 10,
            _ => knobs.watch_cache_capacity,
        };
        if draw() < 5 {
            knobs.watch_max_events_per_response = 1;
        }
        if draw() < 5 {
            knobs.api_request_timeout_ms = 1_000;
        }
        let leader = match draw() {
            0..=3 => Some((4_000, 3_000, 1_000)),
            4..=7 => Some((30_000, 20_000, 4_000)),
            _ => None,
        };
        if let Some((lease, renew, retry)) = leader {
            (knobs.leader_lease_duration_ms, knobs.leader_renew_deadline_ms, knobs.leader_retry_period_ms) =
                (lease, renew, retry);
        }
        if draw() < 5 {
            knobs.resync_period_ms = 1_000;
        }
        if draw() < 8 {
            knobs.node_monitor_grace_period_ms = 15_000;
        }
        if draw() < 8 {
            knobs.pod_eviction_timeout_ms = 5_000;
        }
        knobs.event_ttl_ms = match draw() {
            0..=9 => 10_000,
            10..=14 => 30_000,
            _ => knobs.event_ttl_ms,
        };
        debug_assert!(knobs.validate().is_ok(), "a drawn knob set is valid: {knobs:?}");
        knobs
    }

    /// The knobs a cluster's options run on.
    pub fn of(cluster: &ControlPlaneOptions) -> Self {
        let store = &cluster.store;
        let tuning = &cluster.tuning;
        Self {
            store_members: store.n_members,
            max_entries_per_append: store.max_entries_per_append,
            election_tick: store.election_tick,
            snapshot_every_entries: store.snapshot_every_entries,
            snapshot_catch_up_entries: store.snapshot_catch_up_entries,
            store_request_timeout_ms: store.request_timeout_ms,
            compaction_interval_ms: tuning.compaction_interval_ms,
            watch_cache_capacity: tuning.watch_cache_capacity,
            watch_max_events_per_response: tuning.watch_max_events_per_response,
            api_request_timeout_ms: tuning.api_request_timeout_ms,
            leader_lease_duration_ms: tuning.leader_lease_duration_ms,
            leader_renew_deadline_ms: tuning.leader_renew_deadline_ms,
            leader_retry_period_ms: tuning.leader_retry_period_ms,
            resync_period_ms: tuning.resync_period_ms,
            node_monitor_grace_period_ms: tuning.node_monitor_grace_period_ms,
            pod_eviction_timeout_ms: tuning.pod_eviction_timeout_ms,
            event_ttl_ms: tuning.event_ttl_ms,
        }
    }

    /// Sets these knobs in a cluster's options.
    pub fn apply(&self, cluster: &mut ControlPlaneOptions) {
        let store = &mut cluster.store;
        store.n_members = self.store_members;
        store.max_entries_per_append = self.max_entries_per_append;
        store.election_tick = self.election_tick;
        store.snapshot_every_entries = self.snapshot_every_entries;
        store.snapshot_catch_up_entries = self.snapshot_catch_up_entries;
        store.request_timeout_ms = self.store_request_timeout_ms;
        let tuning = &mut cluster.tuning;
        tuning.compaction_interval_ms = self.compaction_interval_ms;
        tuning.watch_cache_capacity = self.watch_cache_capacity;
        tuning.watch_max_events_per_response = self.watch_max_events_per_response;
        tuning.api_request_timeout_ms = self.api_request_timeout_ms;
        tuning.leader_lease_duration_ms = self.leader_lease_duration_ms;
        tuning.leader_renew_deadline_ms = self.leader_renew_deadline_ms;
        tuning.leader_retry_period_ms = self.leader_retry_period_ms;
        tuning.resync_period_ms = self.resync_period_ms;
        tuning.node_monitor_grace_period_ms = self.node_monitor_grace_period_ms;
        tuning.pod_eviction_timeout_ms = self.pod_eviction_timeout_ms;
        tuning.event_ttl_ms = self.event_ttl_ms;
    }

    /// Refuses a knob set no cluster could run on, with the rule it breaks (etcd's and
    /// client-go's own validation where they have one).
    pub fn validate(&self) -> Result<(), KnobError> {
        if !(1..=Self::MAX_MEMBERS).contains(&self.store_members) {
            return Err(knob_error(
                "store_members",
                format!("expected 1 to {}, got {}", Self::MAX_MEMBERS, self.store_members),
            ));
        }
        if self.max_entries_per_append == Some(0) {
            return Err(knob_error("max_entries_per_append", "expected at least 1 (or null for the default)"));
        }
        // etcd: "--election-timeout should be at least as 5 times as --heartbeat-interval".
        if !(5..=1_000).contains(&self.election_tick) {
            return Err(knob_error("election_tick", format!("expected 5 to 1000 ticks, got {}", self.election_tick)));
        }
        let positive: [(&'static str, u64); 9] = [
            ("store_request_timeout_ms", self.store_request_timeout_ms),
            ("watch_cache_capacity", self.watch_cache_capacity as u64),
            ("watch_max_events_per_response", self.watch_max_events_per_response as u64),
            ("api_request_timeout_ms", self.api_request_timeout_ms),
            ("leader_retry_period_ms", self.leader_retry_period_ms),
            ("resync_period_ms", self.resync_period_ms),
            ("node_monitor_grace_period_ms", self.node_monitor_grace_period_ms),
            ("pod_eviction_timeout_ms", self.pod_eviction_timeout_ms),
            ("leader_lease_duration_ms", self.leader_lease_duration_ms),
        ];
        for (knob, value) in positive {
            if value == 0 {
                return Err(knob_error(knob, "expected more than 0"));
            }
        }
        // A store lease's TTL is whole seconds.
        if self.event_ttl_ms < 1_000 {
            return Err(knob_error("event_ttl_ms", format!("expected at least 1000 ms, got {}", self.event_ttl_ms)));
        }
        // A seed runs for minutes of simulated time: an hour bounds every duration.
        let durations: [(&'static str, u64); 10] = [
            ("event_ttl_ms", self.event_ttl_ms),
            ("store_request_timeout_ms", self.store_request_timeout_ms),
            ("compaction_interval_ms", self.compaction_interval_ms),
            ("api_request_timeout_ms", self.api_request_timeout_ms),
            ("leader_lease_duration_ms", self.leader_lease_duration_ms),
            ("leader_renew_deadline_ms", self.leader_renew_deadline_ms),
            ("leader_retry_period_ms", self.leader_retry_period_ms),
            ("resync_period_ms", self.resync_period_ms),
            ("node_monitor_grace_period_ms", self.node_monitor_grace_period_ms),
            ("pod_eviction_timeout_ms", self.pod_eviction_timeout_ms),
        ];
        for (knob, value) in durations {
            if value > Self::MAX_DURATION_MS {
                return Err(knob_error(knob, format!("expected at most {} ms, got {value}", Self::MAX_DURATION_MS)));
            }
        }
        // client-go's leaderelection.NewLeaderElector: LeaseDuration > RenewDeadline >
        // JitterFactor (1.2) × RetryPeriod.
        if self.leader_lease_duration_ms <= self.leader_renew_deadline_ms {
            return Err(knob_error("leader_renew_deadline_ms", "must be less than leader_lease_duration_ms"));
        }
        if self.leader_renew_deadline_ms * 5 <= self.leader_retry_period_ms * 6 {
            return Err(knob_error("leader_renew_deadline_ms", "must exceed 1.2 × leader_retry_period_ms"));
        }
        Ok(())
    }

    /// The most milliseconds a duration knob may hold.
    pub const MAX_DURATION_MS: u64 = 3_600_000;

    /// The knobs that differ from [`Knobs::default`] (store members compared with 3), as
    /// `name=value` pairs in name order.
    pub fn differences(&self) -> Vec<String> {
        let (mine, defaults) = (self.fields(), Self::default().fields());
        mine.into_iter()
            .zip(defaults)
            .filter(|(a, b)| a != b)
            .map(|((name, value), _)| format!("{name}={value}"))
            .collect()
    }

    /// Every knob as (name, printed value), in name order.
    fn fields(&self) -> Vec<(String, String)> {
        let value = serde_json::to_value(self).expect("knobs serialize");
        let serde_json::Value::Object(map) = value else { unreachable!("knobs serialize as an object") };
        map.into_iter().map(|(name, value)| (name, value.to_string())).collect()
    }
}

impl fmt::Display for Knobs {
    /// The knobs that differ from the defaults, or `defaults`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let differences = self.differences();
        if differences.is_empty() {
            f.write_str("defaults")
        } else {
            f.write_str(&differences.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_knob_set_is_valid_and_the_defaults_are_the_common_draw() {
        let mut at_default = 0;
        for seed in 0..2_000 {
            let knobs = Knobs::for_seed(seed);
            knobs.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert!(STORE_SIZES.contains(&knobs.store_members));
            if knobs.compaction_interval_ms == Knobs::default().compaction_interval_ms {
                at_default += 1;
            }
        }
        // Most seeds run the realistic default of each knob.
        assert!(at_default > 1_000, "{at_default} of 2000 seeds keep the default compaction interval");
    }

    #[test]
    fn the_draw_is_a_function_of_the_seed_and_reaches_every_extreme() {
        assert_eq!(Knobs::for_seed(42), Knobs::for_seed(42));
        let draws: Vec<Knobs> = (0..400).map(Knobs::for_seed).collect();
        assert!(draws.iter().any(|k| k.compaction_interval_ms == 2_000));
        assert!(draws.iter().any(|k| k.compaction_interval_ms == 0));
        assert!(draws.iter().any(|k| k.snapshot_every_entries == 20));
        assert!(draws.iter().any(|k| k.watch_cache_capacity == 10));
        assert!(draws.iter().any(|k| k.leader_lease_duration_ms == 4_000));
        assert!(draws.iter().any(|k| k.election_tick == 30));
        assert!(draws.iter().any(|k| k.event_ttl_ms == 10_000));
    }

    #[test]
    fn differences_name_only_the_knobs_off_their_default() {
        assert_eq!(Knobs::default().to_string(), "defaults");
        let knobs = Knobs { compaction_interval_ms: 2_000, max_entries_per_append: Some(8), ..Knobs::default() };
        assert_eq!(knobs.differences(), vec!["compaction_interval_ms=2000", "max_entries_per_append=8"]);
    }

    #[test]
    fn invalid_knobs_are_refused_naming_the_knob() {
        let bad = |knobs: Knobs| knobs.validate().unwrap_err().to_string();
        assert!(bad(Knobs { store_members: 0, ..Knobs::default() }).starts_with("knobs.store_members:"));
        assert!(bad(Knobs { election_tick: 2, ..Knobs::default() }).starts_with("knobs.election_tick:"));
        let inverted = Knobs { leader_renew_deadline_ms: 20_000, ..Knobs::default() };
        assert!(bad(inverted).contains("less than leader_lease_duration_ms"));
        assert!(bad(Knobs { resync_period_ms: 0, ..Knobs::default() }).starts_with("knobs.resync_period_ms:"));
        let long = Knobs { compaction_interval_ms: Knobs::MAX_DURATION_MS + 1, ..Knobs::default() };
        assert!(bad(long).starts_with("knobs.compaction_interval_ms:"));
    }

    #[test]
    fn a_knob_left_out_of_a_case_takes_its_default_and_an_unknown_one_is_refused() {
        let knobs: Knobs = serde_json::from_str(r#"{"store_members": 5}"#).unwrap();
        assert_eq!(knobs, Knobs { store_members: 5, ..Knobs::default() });
        assert!(serde_json::from_str::<Knobs>(r#"{"compaction_interval": 5}"#).is_err());
    }
}
