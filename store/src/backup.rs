//! `snapshot save` and `snapshot restore`: etcdctl's backup of one member's keyspace and
//! etcdutl's restore of it into a brand-new cluster. Pure: no madsim, no network; the
//! member produces a [`Backup`] (see `StoreClient::snapshot_save`), and [`restore`] plus
//! [`write_member_disk`] prepare each new member's empty disk.
//!
//! What etcd does and this module reproduces:
//! - `etcdctl snapshot save` streams one member's backend at its current revision R, with
//!   an integrity hash appended (sha256 in etcd; xxh3-64 here, over the header fields and
//!   the data, which catches every bit flip the fault model injects).
//! - `etcdutl snapshot restore` verifies the hash first ("snapshot file integrity check
//!   failed" otherwise), then builds a new cluster: new cluster id, new member ids, every
//!   member starting from the same data at Raft index 1 (etcd writes one ConfChange per
//!   member at term 1; here the snapshot's configuration says the same).
//! - `--bump-revision N --mark-compacted` (etcd ≥ 3.5.8, the Kubernetes restore procedure):
//!   the restored store's revision becomes R + N and everything below is marked compacted,
//!   so a client that saw revisions after R never sees one reused, and every watcher gets
//!   `Compacted` (Kubernetes: 410 Gone) and relists.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::api::{MemberId, Revision};
use crate::mvcc::{Mvcc, MvccSnapshot};
use crate::raft::{HardState, SnapshotMeta};
use crate::snapshot::MemberSnapshot;
use crate::wal::{Disk, MemberIdentity, Wal, WalError};

/// Planted defects in backup and restore. Each is off by default, documented with the
/// invariant that must catch it, and marked `PLANTED BUG` where it acts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupBugs {
    /// `snapshot save` copies the keyspace as of R - 1 (the last applied transaction is
    /// missing) while the backup claims revision R, as a save that reads the backend before
    /// the last batch was committed to it would. Caught by backup fidelity (invariant 4:
    /// the restored keyspace equals the one at R) and by invariant 6 (a write acknowledged
    /// at R is lost by the restore).
    pub snapshot_omits_last_txn: bool,
    /// `snapshot restore` does not verify the checksum, so a corrupted backup is restored
    /// as if it were good. Caught by invariant 6 ("a corrupted backup is refused").
    pub restore_skips_checksum: bool,
    /// `snapshot restore` ignores `bump_revision` and `mark_compacted` (etcd before 3.5.8,
    /// or an operator who forgets the flags): the new cluster reuses revisions clients
    /// already saw after R, and watchers resume without a 410. Caught by invariant 5
    /// (revisions observed never go backwards after a restore).
    pub restore_without_revision_bump: bool,
}

/// A point-in-time copy of one member's keyspace (`etcdctl snapshot save`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub cluster_id: u64,
    pub taken_from: MemberId,
    /// The store revision the backup holds the keyspace of.
    pub revision: Revision,
    pub compacted_revision: Revision,
    /// The serialized [`MvccSnapshot`].
    pub data: Bytes,
    /// xxh3-64 over every field above.
    pub checksum: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// etcdutl: "snapshot file integrity check failed".
    #[error("backup integrity check failed: checksum {found:#018x}, expected {expected:#018x}")]
    ChecksumMismatch { expected: u64, found: u64 },
    #[error("backup data is not a store snapshot: {reason}")]
    Undecodable { reason: String },
    #[error("backup claims revision {claimed} but its data is at revision {found}")]
    RevisionMismatch { claimed: Revision, found: Revision },
    #[error("invalid restore options: {reason}")]
    InvalidOptions { reason: String },
    #[error("{member} is not part of the restored cluster {members:?}")]
    UnknownMember { member: MemberId, members: Vec<MemberId> },
    #[error("{member}'s disk is not empty ({files:?}); restore needs a fresh disk")]
    DiskNotEmpty { member: MemberId, files: Vec<String> },
    #[error("cannot write {member}'s disk: {source}")]
    Disk { member: MemberId, source: WalError },
}

impl Backup {
    /// Builds a backup of `mvcc` at its current revision, with its checksum.
    pub fn new(cluster_id: u64, taken_from: MemberId, mvcc: &MvccSnapshot, revision: Revision) -> Backup {
        let data = Bytes::from(mvcc.encode());
        Backup::with_data(cluster_id, taken_from, revision, mvcc.compacted_revision(), data)
    }

    fn with_data(
        cluster_id: u64,
        taken_from: MemberId,
        revision: Revision,
        compacted_revision: Revision,
        data: Bytes,
    ) -> Backup {
        let mut backup = Backup { cluster_id, taken_from, revision, compacted_revision, data, checksum: 0 };
        backup.checksum = backup.compute_checksum();
        backup
    }

    fn compute_checksum(&self) -> u64 {
        let mut bytes = Vec::with_capacity(32 + self.data.len());
        bytes.extend_from_slice(&self.cluster_id.to_le_bytes());
        bytes.extend_from_slice(&self.taken_from.get().to_le_bytes());
        bytes.extend_from_slice(&self.revision.to_le_bytes());
        bytes.extend_from_slice(&self.compacted_revision.to_le_bytes());
        bytes.extend_from_slice(&self.data);
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    /// The integrity check `snapshot restore` runs first.
    pub fn verify(&self) -> Result<(), BackupError> {
        let found = self.compute_checksum();
        if found != self.checksum {
            return Err(BackupError::ChecksumMismatch { expected: self.checksum, found });
        }
        Ok(())
    }

    /// The keyspace the backup holds, decoded (no checksum check: call `verify` first).
    pub fn mvcc(&self) -> Result<Mvcc, BackupError> {
        let snapshot = MvccSnapshot::decode(&self.data).map_err(|reason| BackupError::Undecodable { reason })?;
        Mvcc::try_from_snapshot(snapshot).map_err(|reason| BackupError::Undecodable { reason })
    }
}

/// `etcdutl snapshot restore` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    /// The new cluster's id (must differ from the backup's: a restored cluster is a new one).
    pub cluster_id: u64,
    /// The new members and their addresses; ids must be new too.
    pub members: BTreeMap<MemberId, SocketAddr>,
    /// `--bump-revision`: added to the backup's revision.
    pub bump_revision: u64,
    /// `--mark-compacted`: compact at the bumped revision.
    pub mark_compacted: bool,
    pub bugs: BackupBugs,
}

/// A restored cluster, ready to be written onto each new member's empty disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredCluster {
    pub cluster_id: u64,
    pub members: BTreeMap<MemberId, SocketAddr>,
    /// The store revision the new cluster starts at (R + bump, unless the bug is on).
    pub revision: Revision,
    pub compacted_revision: Revision,
    /// The Raft snapshot every member starts from: index 1, term 1, every member a voter.
    pub snapshot_meta: SnapshotMeta,
    /// The encoded [`MemberSnapshot`].
    pub snapshot_data: Bytes,
}

/// `etcdutl snapshot restore`: verifies the backup, then builds the new cluster's state.
pub fn restore(backup: &Backup, options: &RestoreOptions) -> Result<RestoredCluster, BackupError> {
    if options.members.is_empty() {
        return Err(BackupError::InvalidOptions { reason: "no members to restore".into() });
    }
    if options.members.contains_key(&MemberId(0)) {
        return Err(BackupError::InvalidOptions { reason: "member id 0 is reserved".into() });
    }
    if options.cluster_id == backup.cluster_id {
        return Err(BackupError::InvalidOptions {
            reason: format!("the restored cluster needs a new cluster id, not the backup's {}", backup.cluster_id),
        });
    }
    if options.members.contains_key(&backup.taken_from) {
        return Err(BackupError::InvalidOptions {
            reason: format!(
                "member id {} belongs to the backed-up cluster; restore under new ids",
                backup.taken_from.get()
            ),
        });
    }
    if options.bugs.restore_skips_checksum {
        // PLANTED BUG (`restore_skips_checksum`): a corrupted backup goes through.
    } else {
        backup.verify()?;
    }
    let mut mvcc = backup.mvcc()?;
    if mvcc.current_revision() != backup.revision && !options.bugs.restore_skips_checksum {
        return Err(BackupError::RevisionMismatch { claimed: backup.revision, found: mvcc.current_revision() });
    }
    if options.bugs.restore_without_revision_bump {
        // PLANTED BUG (`restore_without_revision_bump`): the flags are ignored.
    } else {
        mvcc.bump_revision(options.bump_revision);
        if options.mark_compacted {
            mvcc.mark_compacted();
        }
    }
    let voters: Vec<MemberId> = options.members.keys().copied().collect();
    let member_snapshot = MemberSnapshot {
        cluster_id: options.cluster_id,
        mvcc: mvcc.to_snapshot(),
        members: options.members.clone(),
        removed: BTreeSet::new(),
    };
    Ok(RestoredCluster {
        cluster_id: options.cluster_id,
        members: options.members.clone(),
        revision: mvcc.current_revision(),
        compacted_revision: mvcc.compacted_revision(),
        snapshot_meta: SnapshotMeta { index: 1, term: 1, voters: voters.iter().map(|member| member.get()).collect() },
        snapshot_data: member_snapshot.encode(),
    })
}

/// Writes what member `member` of a restored cluster starts from onto its fresh disk: its
/// identity, the snapshot, and a hard state committing it. `store::server::run` on that
/// disk (with `Bootstrap::NewCluster` and the restored cluster's ids) then serves the
/// restored keyspace.
pub fn write_member_disk<D: Disk>(restored: &RestoredCluster, member: MemberId, disk: D) -> Result<(), BackupError> {
    if !restored.members.contains_key(&member) {
        return Err(BackupError::UnknownMember { member, members: restored.members.keys().copied().collect() });
    }
    let disk_error = |source: WalError| BackupError::Disk { member, source };
    let files = disk.list().map_err(|e| disk_error(e.into()))?;
    if !files.is_empty() {
        return Err(BackupError::DiskNotEmpty { member, files });
    }
    let (mut wal, _) = Wal::open(disk).map_err(disk_error)?;
    let identity =
        MemberIdentity { cluster_id: restored.cluster_id, member_id: member, peers_heard_from: BTreeSet::new() };
    wal.save_identity(&identity).map_err(disk_error)?;
    wal.save_snapshot(&restored.snapshot_meta, &restored.snapshot_data).map_err(disk_error)?;
    let meta = &restored.snapshot_meta;
    let hard_state = HardState { term: meta.term, vote: None, commit: meta.index };
    wal.save(Some(&hard_state), &[]).map_err(disk_error)?;
    wal.sync().map_err(disk_error)?;
    Ok(())
}
