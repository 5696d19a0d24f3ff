//! Planted bugs: named, off-by-default defects that each checker must be able to catch.
//! A checker that no planted bug can make fire proves nothing (docs/design.md §4).
//!
//! Each bug's code lives where the defect would live in a real system and is marked
//! `PLANTED BUG` there; this table only switches it on and says which invariant must
//! catch it.

use std::fmt;
use std::str::FromStr;

use crate::checkers::Invariant;
use crate::runner::RunOptions;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum PlantedBug {
    StoreAckBeforeFsync,
    VoteNotPersisted,
    CommitPreviousTermByCounting,
    ApiserverAckBeforeCommit,
    FollowerReadsWithoutReadIndex,
    ControllerWritesStore,
    ControllerFencingOff,
    ReplicasetNoExpectations,
    RestoreWithoutRevisionBump,
    SnapshotOmitsLastTxn,
    RestoreSkipsChecksum,
    RejoinUnderOldIdentity,
    WatchCacheServesEvicted,
    RaftSnapshotOmitsLastEntry,
    CompactionDropsKeptVersion,
    InformerSkipsRelist,
    LeaseExpiryIgnoresPromotion,
    GcOwnerByName,
    ServiceIpsUnconditionalPut,
    UpdateReappliesOnConflict,
    RolloutIgnoresMaxSurge,
    RbacCacheIgnoresBindingDeletes,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 22] = [
        PlantedBug::StoreAckBeforeFsync,
        PlantedBug::VoteNotPersisted,
        PlantedBug::CommitPreviousTermByCounting,
        PlantedBug::ApiserverAckBeforeCommit,
        PlantedBug::FollowerReadsWithoutReadIndex,
        PlantedBug::ControllerWritesStore,
        PlantedBug::ControllerFencingOff,
        PlantedBug::ReplicasetNoExpectations,
        PlantedBug::RestoreWithoutRevisionBump,
        PlantedBug::SnapshotOmitsLastTxn,
        PlantedBug::RestoreSkipsChecksum,
        PlantedBug::RejoinUnderOldIdentity,
        PlantedBug::WatchCacheServesEvicted,
        PlantedBug::RaftSnapshotOmitsLastEntry,
        PlantedBug::CompactionDropsKeptVersion,
        PlantedBug::InformerSkipsRelist,
        PlantedBug::LeaseExpiryIgnoresPromotion,
        PlantedBug::GcOwnerByName,
        PlantedBug::ServiceIpsUnconditionalPut,
        PlantedBug::UpdateReappliesOnConflict,
        PlantedBug::RolloutIgnoresMaxSurge,
        PlantedBug::RbacCacheIgnoresBindingDeletes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::StoreAckBeforeFsync => "store-ack-before-fsync",
            PlantedBug::VoteNotPersisted => "vote-not-persisted",
            PlantedBug::CommitPreviousTermByCounting => "commit-previous-term-by-counting",
            PlantedBug::ApiserverAckBeforeCommit => "apiserver-ack-before-commit",
            PlantedBug::FollowerReadsWithoutReadIndex => "follower-reads-without-read-index",
            PlantedBug::ControllerWritesStore => "controller-writes-store",
            PlantedBug::ControllerFencingOff => "controller-fencing-off",
            PlantedBug::ReplicasetNoExpectations => "replicaset-no-expectations",
            PlantedBug::RestoreWithoutRevisionBump => "restore-without-revision-bump",
            PlantedBug::SnapshotOmitsLastTxn => "snapshot-omits-last-txn",
            PlantedBug::RestoreSkipsChecksum => "restore-skips-checksum",
            PlantedBug::RejoinUnderOldIdentity => "rejoin-under-old-identity",
            PlantedBug::WatchCacheServesEvicted => "watch-cache-serves-evicted",
            PlantedBug::RaftSnapshotOmitsLastEntry => "raft-snapshot-omits-last-entry",
            PlantedBug::CompactionDropsKeptVersion => "compaction-drops-kept-version",
            PlantedBug::InformerSkipsRelist => "informer-skips-relist",
            PlantedBug::LeaseExpiryIgnoresPromotion => "lease-expiry-ignores-promotion",
            PlantedBug::GcOwnerByName => "gc-owner-by-name",
            PlantedBug::ServiceIpsUnconditionalPut => "service-ips-unconditional-put",
            PlantedBug::UpdateReappliesOnConflict => "update-reapplies-on-conflict",
            PlantedBug::RolloutIgnoresMaxSurge => "rollout-ignores-max-surge",
            PlantedBug::RbacCacheIgnoresBindingDeletes => "rbac-cache-ignores-binding-deletes",
        }
    }

    /// What goes wrong, and where the code is.
    pub fn description(self) -> &'static str {
        match self {
            PlantedBug::StoreAckBeforeFsync => {
                "store member sends votes/acks and answers clients before its WAL fsync completes (store/src/server/mod.rs)"
            }
            PlantedBug::VoteNotPersisted => {
                "store member grants a vote without persisting it; after a crash it may vote twice in a term (store/src/server/core.rs)"
            }
            PlantedBug::CommitPreviousTermByCounting => {
                "Raft leader commits a previous-term entry by counting replicas, the Figure 8 bug (store/src/raft)"
            }
            PlantedBug::ApiserverAckBeforeCommit => {
                "apiserver answers a create/update before the store committed it (apiserver/src/registry.rs)"
            }
            PlantedBug::FollowerReadsWithoutReadIndex => {
                "store member serves linearizable reads from local state without a ReadIndex round (store/src/server/core.rs)"
            }
            PlantedBug::ControllerWritesStore => {
                "a controller-manager writes pods straight to the store with a leaked apiserver credential (sim/src/control_plane.rs)"
            }
            PlantedBug::ControllerFencingOff => {
                "controller writes carry no lease fence, as in Kubernetes: a paused old leader writes beside the new one (controllers/src/leader_election.rs)"
            }
            PlantedBug::ReplicasetNoExpectations => {
                "ReplicaSet controller without expectations over-creates pods from a stale informer cache (controllers/src/replicaset.rs)"
            }
            PlantedBug::RestoreWithoutRevisionBump => {
                "snapshot restore ignores --bump-revision/--mark-compacted: the new cluster reuses revisions clients saw (store/src/backup.rs)"
            }
            PlantedBug::SnapshotOmitsLastTxn => {
                "snapshot save copies the keyspace without the last applied transaction but claims its revision (store/src/backup.rs)"
            }
            PlantedBug::RestoreSkipsChecksum => {
                "snapshot restore skips the integrity check and restores a corrupted backup (store/src/backup.rs)"
            }
            PlantedBug::RejoinUnderOldIdentity => {
                "a member whose disk was lost restarts under its old id without etcd's bootstrapped check (store/src/server/startup.rs)"
            }
            PlantedBug::WatchCacheServesEvicted => {
                "the apiserver's watch cache serves a watch from before its window from the window's start instead of 410 Gone (apiserver/src/watch_cache.rs)"
            }
            PlantedBug::RaftSnapshotOmitsLastEntry => {
                "a member's Raft snapshot lacks the last applied entry's writes but claims its index, as etcd-io/etcd#13766 (store/src/server/core.rs)"
            }
            PlantedBug::CompactionDropsKeptVersion => {
                "compaction also drops each key's newest version at or below the compacted revision: keys not written since vanish (store/src/mvcc/store.rs)"
            }
            PlantedBug::InformerSkipsRelist => {
                "on 410 Gone an informer resumes its watch from the compacted revision instead of relisting (controllers/src/informer.rs)"
            }
            PlantedBug::LeaseExpiryIgnoresPromotion => {
                "a new store leader counts lease TTLs from the grants it applied as a follower instead of refreshing them on promotion: Events expire early after an election (store/src/lease.rs)"
            }
            PlantedBug::GcOwnerByName => {
                "the garbage collector finds owners by name without comparing uids: an owner deleted and created again under its name keeps the old one's dependents alive (controllers/src/garbage_collector.rs; run with --scenario garbage-collection)"
            }
            PlantedBug::ServiceIpsUnconditionalPut => {
                "the ClusterIP allocator writes its bitmap with a plain put, not a compare-and-swap: the last apiserver to write wins and an IP is handed out twice (apiserver/src/service_ips.rs; run it with --scenario services)"
            }
            PlantedBug::UpdateReappliesOnConflict => {
                "an update with a stale resourceVersion is re-applied over the newer version instead of refused with 409 Conflict: the writes in between are lost (apiserver/src/registry.rs; run it with --scenario read-modify-write)"
            }
            PlantedBug::RolloutIgnoresMaxSurge => {
                "a rolling update makes (or scales) the new ReplicaSet straight to replicas, whatever the old ones still hold: up to twice the pods (controllers/src/rollout.rs; run it with --scenario rollout)"
            }
            PlantedBug::RbacCacheIgnoresBindingDeletes => {
                "the apiserver's RBAC cache ignores RoleBinding deletes: a revoked binding keeps granting while the cache claims to have synced past its delete (apiserver/src/rbac_cache.rs; run it with --scenario permissions)"
            }
        }
    }

    /// The invariant that must catch it.
    pub fn caught_by(self) -> Invariant {
        match self {
            PlantedBug::StoreAckBeforeFsync => Invariant::NoAcknowledgedWriteLost,
            PlantedBug::VoteNotPersisted => Invariant::RaftElectionSafety,
            PlantedBug::CommitPreviousTermByCounting => Invariant::RaftStateMachineSafety,
            PlantedBug::ApiserverAckBeforeCommit => Invariant::NoAcknowledgedWriteLost,
            PlantedBug::FollowerReadsWithoutReadIndex => Invariant::Linearizability,
            PlantedBug::ControllerWritesStore => Invariant::StoreSingleWriter,
            PlantedBug::ControllerFencingOff => Invariant::ControllerSingleLeader,
            PlantedBug::ReplicasetNoExpectations => Invariant::Convergence,
            PlantedBug::RestoreWithoutRevisionBump => Invariant::RevisionsNeverGoBackwards,
            PlantedBug::SnapshotOmitsLastTxn => Invariant::BackupRestoreEquality,
            PlantedBug::RestoreSkipsChecksum => Invariant::RestoreDurability,
            PlantedBug::RejoinUnderOldIdentity => Invariant::RaftStateMachineSafety,
            PlantedBug::WatchCacheServesEvicted => Invariant::WatchGuarantees,
            PlantedBug::RaftSnapshotOmitsLastEntry => Invariant::RaftStateMachineSafety,
            PlantedBug::CompactionDropsKeptVersion => Invariant::Linearizability,
            PlantedBug::InformerSkipsRelist => Invariant::InformerContinuity,
            PlantedBug::LeaseExpiryIgnoresPromotion => Invariant::LeaseExpiry,
            PlantedBug::GcOwnerByName => Invariant::GarbageCollection,
            PlantedBug::ServiceIpsUnconditionalPut => Invariant::ServiceIpsUnique,
            PlantedBug::UpdateReappliesOnConflict => Invariant::NoLostUpdate,
            PlantedBug::RolloutIgnoresMaxSurge => Invariant::RolloutBound,
            PlantedBug::RbacCacheIgnoresBindingDeletes => Invariant::Permissions,
        }
    }

    /// Switches the bug on in a run's options.
    pub fn plant(self, options: &mut RunOptions) {
        let cluster = &mut options.cluster;
        match self {
            PlantedBug::StoreAckBeforeFsync => cluster.store.bugs.ack_before_fsync = true,
            PlantedBug::VoteNotPersisted => cluster.store.bugs.vote_not_persisted = true,
            PlantedBug::CommitPreviousTermByCounting => cluster.store.raft_bugs.commit_previous_term_by_counting = true,
            PlantedBug::ApiserverAckBeforeCommit => cluster.apiserver_bugs.ack_before_commit = true,
            PlantedBug::FollowerReadsWithoutReadIndex => cluster.store.bugs.follower_reads_without_read_index = true,
            PlantedBug::ControllerWritesStore => cluster.controller_writes_store = true,
            PlantedBug::ControllerFencingOff => cluster.fencing = false,
            PlantedBug::ReplicasetNoExpectations => cluster.replicaset_no_expectations = true,
            PlantedBug::RestoreWithoutRevisionBump => cluster.store.backup_bugs.restore_without_revision_bump = true,
            PlantedBug::SnapshotOmitsLastTxn => cluster.store.backup_bugs.snapshot_omits_last_txn = true,
            PlantedBug::RestoreSkipsChecksum => cluster.store.backup_bugs.restore_skips_checksum = true,
            PlantedBug::RejoinUnderOldIdentity => cluster.store.bugs.rejoin_under_old_identity = true,
            PlantedBug::WatchCacheServesEvicted => cluster.apiserver_bugs.watch_cache_serves_evicted = true,
            PlantedBug::RaftSnapshotOmitsLastEntry => cluster.store.bugs.raft_snapshot_omits_last_entry = true,
            PlantedBug::CompactionDropsKeptVersion => cluster.store.bugs.compaction_drops_kept_version = true,
            PlantedBug::InformerSkipsRelist => cluster.informer_skips_relist = true,
            PlantedBug::LeaseExpiryIgnoresPromotion => cluster.store.bugs.lease_expiry_ignores_promotion = true,
            PlantedBug::GcOwnerByName => cluster.gc_owner_by_name = true,
            PlantedBug::ServiceIpsUnconditionalPut => cluster.apiserver_bugs.service_ips_unconditional_put = true,
            PlantedBug::UpdateReappliesOnConflict => cluster.apiserver_bugs.update_reapplies_on_conflict = true,
            PlantedBug::RolloutIgnoresMaxSurge => cluster.rollout_ignores_max_surge = true,
            PlantedBug::RbacCacheIgnoresBindingDeletes => {
                cluster.apiserver_bugs.rbac_cache_ignores_binding_deletes = true
            }
        }
    }
}

impl fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A bug name that names no planted bug.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown planted bug '{0}' (known: {known})", known = PlantedBug::ALL.map(PlantedBug::name).join(", "))]
pub struct UnknownBug(pub String);

impl FromStr for PlantedBug {
    type Err = UnknownBug;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PlantedBug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| UnknownBug(s.to_string()))
    }
}

/// The table `kubesim bugs` prints.
pub fn render_table() -> String {
    let mut out = String::from("planted bugs (enable with --bug NAME):\n");
    for bug in PlantedBug::ALL {
        out.push_str(&format!("  {:<36} caught by {:<28} {}\n", bug.name(), bug.caught_by().name(), bug.description()));
    }
    out
}
