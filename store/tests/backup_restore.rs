//! `snapshot save` / `snapshot restore` as pure functions (etcdctl / etcdutl behaviour):
//! integrity check, bump-revision, mark-compacted, the restored member's disk, and the
//! harm each planted backup bug does.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use store::api::*;
use store::backup::{restore, write_member_disk, Backup, BackupBugs, BackupError, RestoreOptions};
use store::mvcc::Mvcc;
use store::snapshot::MemberSnapshot;
use store::wal::{SimDisk, Wal};

fn put(store: &mut Mvcc, key: &str, value: &str) {
    let m = Mutation::Put(PutRequest { key: key.into(), value: Bytes::from(value.to_string()), prev_kv: false });
    store.apply(&m).expect("put");
}

fn delete(store: &mut Mvcc, key: &str) {
    let m = Mutation::DeleteRange(DeleteRangeRequest { range: KeyRange::Key(key.into()), prev_kv: false });
    store.apply(&m).expect("delete");
}

/// A store with creates, updates, a delete and a re-create: revision 7.
fn sample_store() -> Mvcc {
    let mut store = Mvcc::new();
    put(&mut store, "a", "1"); // 2
    put(&mut store, "b", "1"); // 3
    put(&mut store, "a", "2"); // 4
    delete(&mut store, "b"); // 5
    put(&mut store, "c", "1"); // 6
    put(&mut store, "b", "2"); // 7
    assert_eq!(store.current_revision(), 7);
    store
}

fn backup_of(store: &Mvcc) -> Backup {
    Backup::new(100, MemberId(1), &store.to_snapshot(), store.current_revision())
}

fn options(bump_revision: u64, mark_compacted: bool) -> RestoreOptions {
    let members: BTreeMap<MemberId, SocketAddr> =
        (11..=13).map(|id| (MemberId(id), SocketAddr::from(([10, 0, 0, id as u8], 2379)))).collect();
    RestoreOptions { cluster_id: 200, members, bump_revision, mark_compacted, bugs: BackupBugs::default() }
}

fn restored_mvcc(restored: &store::backup::RestoredCluster) -> Mvcc {
    Mvcc::from_snapshot(MemberSnapshot::decode(&restored.snapshot_data).unwrap().mvcc)
}

fn range_at(store: &Mvcc, revision: Revision) -> Result<Vec<KeyValue>, StoreError> {
    let mut request = RangeRequest::new(KeyRange::Prefix(String::new()));
    request.revision = revision;
    store.range(&request).map(|r| r.kvs)
}

#[test]
fn a_fresh_backup_verifies() {
    let backup = backup_of(&sample_store());
    assert_eq!(backup.revision, 7);
    assert_eq!(backup.verify(), Ok(()));
}

/// etcdutl: "snapshot file integrity check failed" — a single flipped bit is refused.
#[test]
fn corrupted_backup_is_refused_at_restore() {
    let mut backup = backup_of(&sample_store());
    let mut data = backup.data.to_vec();
    let last = data.len() - 3;
    data[last] ^= 0x04;
    backup.data = Bytes::from(data);
    let error = restore(&backup, &options(1000, true)).unwrap_err();
    assert!(matches!(error, BackupError::ChecksumMismatch { .. }), "{error}");
    assert!(error.to_string().contains("integrity check failed"), "{error}");
}

#[test]
fn a_tampered_revision_field_fails_the_checksum_too() {
    let mut backup = backup_of(&sample_store());
    backup.revision += 1;
    assert!(matches!(backup.verify(), Err(BackupError::ChecksumMismatch { .. })));
}

/// Invariant 4 plus etcdutl's `--bump-revision 1000 --mark-compacted`: the keyspace at R is
/// preserved exactly (create/mod revisions and versions too), the revision is R + 1000,
/// and reads and watches below it fail with Compacted.
#[test]
fn restore_with_bump_keeps_the_keyspace_at_r_and_compacts_below_r_plus_bump() {
    let store = sample_store();
    let restored = restore(&backup_of(&store), &options(1000, true)).unwrap();
    assert_eq!(restored.revision, 1007);
    assert_eq!(restored.compacted_revision, 1007);
    assert_eq!(restored.snapshot_meta.index, 1);
    assert_eq!(restored.snapshot_meta.voters, vec![11, 12, 13]);
    let new_store = restored_mvcc(&restored);
    assert_eq!(new_store.current_revision(), 1007);
    assert_eq!(new_store.keyspace_at(0).unwrap(), store.keyspace_at(7).unwrap());
    assert!(matches!(range_at(&new_store, 7), Err(StoreError::Compacted { compacted: 1007, .. })));
    assert!(matches!(new_store.events(&KeyRange::Prefix(String::new()), 8, 0), Err(StoreError::Compacted { .. })));
    // The next write gets a revision no client can have seen before the restore.
    let mut new_store = new_store;
    put(&mut new_store, "d", "1");
    assert_eq!(new_store.current_revision(), 1008);
}

#[test]
fn restore_without_mark_compacted_keeps_history_readable() {
    let store = sample_store();
    let restored = restore(&backup_of(&store), &options(10, false)).unwrap();
    let new_store = restored_mvcc(&restored);
    assert_eq!(new_store.current_revision(), 17);
    assert_eq!(range_at(&new_store, 4).unwrap(), range_at(&store, 4).unwrap());
}

#[test]
fn restore_refuses_the_old_cluster_id_and_old_member_ids() {
    let backup = backup_of(&sample_store());
    let mut same_cluster = options(0, false);
    same_cluster.cluster_id = 100;
    assert!(matches!(restore(&backup, &same_cluster), Err(BackupError::InvalidOptions { .. })));
    let mut old_member = options(0, false);
    old_member.members.insert(MemberId(1), SocketAddr::from(([10, 0, 0, 1], 2379)));
    assert!(matches!(restore(&backup, &old_member), Err(BackupError::InvalidOptions { .. })));
    let mut no_members = options(0, false);
    no_members.members.clear();
    assert!(matches!(restore(&backup, &no_members), Err(BackupError::InvalidOptions { .. })));
}

/// What `write_member_disk` leaves is what a member recovers from: the identity, the
/// snapshot at index 1 and a hard state committing it.
#[test]
fn member_disk_written_by_restore_recovers_as_the_restored_cluster() {
    let restored = restore(&backup_of(&sample_store()), &options(1000, true)).unwrap();
    let disk = SimDisk::new();
    write_member_disk(&restored, MemberId(12), disk.clone()).unwrap();
    let (wal, recovered) = Wal::open(disk.clone()).unwrap();
    let identity = recovered.identity.unwrap();
    assert_eq!((identity.cluster_id, identity.member_id), (200, MemberId(12)));
    assert_eq!(recovered.snapshot.as_ref().unwrap().index, 1);
    assert_eq!(recovered.hard_state.commit, 1);
    assert!(recovered.entries.is_empty());
    let (_, data) = wal.load_snapshot().unwrap().unwrap();
    assert_eq!(MemberSnapshot::decode(&data).unwrap().members, restored.members);
    // A second write on the same (now non-empty) disk is refused, and so is a stranger.
    assert!(matches!(write_member_disk(&restored, MemberId(12), disk), Err(BackupError::DiskNotEmpty { .. })));
    assert!(matches!(
        write_member_disk(&restored, MemberId(99), SimDisk::new()),
        Err(BackupError::UnknownMember { .. })
    ));
}

/// Planted bug `restore-skips-checksum`: the same corrupted backup is restored silently,
/// with a value that was never written.
#[test]
fn planted_restore_skips_checksum_restores_a_corrupted_backup() {
    let mut store = sample_store();
    put(&mut store, "d", "written");
    let mut backup = backup_of(&store);
    // Bit rot in the value, wherever the encoding holds it (key history and event log).
    let mut data = backup.data.to_vec();
    for at in 0..data.len() - 7 {
        if &data[at..at + 7] == b"written" {
            data[at] ^= 0x20;
        }
    }
    backup.data = Bytes::from(data);
    let mut opts = options(1000, true);
    assert!(restore(&backup, &opts).is_err());
    opts.bugs.restore_skips_checksum = true;
    let restored = restore(&backup, &opts).expect("the bug lets it through");
    assert_ne!(restored_mvcc(&restored).keyspace_at(0).unwrap(), store.keyspace_at(8).unwrap());
}

/// Planted bug `restore-without-revision-bump`: the restored cluster is back at R, so a
/// revision a client saw after R is handed out again, and old revisions stay readable.
#[test]
fn planted_restore_without_revision_bump_reuses_revisions() {
    let store = sample_store();
    let mut opts = options(1000, true);
    opts.bugs.restore_without_revision_bump = true;
    let restored = restore(&backup_of(&store), &opts).unwrap();
    assert_eq!(restored.revision, 7);
    let mut new_store = restored_mvcc(&restored);
    assert!(range_at(&new_store, 5).is_ok());
    put(&mut new_store, "d", "1");
    assert_eq!(new_store.current_revision(), 8, "revision 8 is reused");
}

/// The building block of the `snapshot-omits-last-txn` planted bug: the store as of R - 1.
#[test]
fn rewound_store_forgets_exactly_the_last_revision() {
    let store = sample_store();
    let rewound = store.rewound_to(6).unwrap();
    assert_eq!(rewound.current_revision(), 6);
    assert_eq!(rewound.keyspace_at(0).unwrap(), store.keyspace_at(6).unwrap());
    assert_eq!(rewound.digest(), {
        let mut replay = Mvcc::new();
        put(&mut replay, "a", "1");
        put(&mut replay, "b", "1");
        put(&mut replay, "a", "2");
        delete(&mut replay, "b");
        put(&mut replay, "c", "1");
        replay.digest()
    });
    assert!(store.rewound_to(8).is_none());
}
