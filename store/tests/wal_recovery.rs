//! The WAL on a SimDisk under the disk faults of docs/design.md §3 (unsynced loss, torn
//! writes, disk loss, bit rot), and SimDisk's and FileDisk's own contracts.

use bytes::Bytes;
use store::raft::{Entry, EntryKind, HardState, SnapshotMeta};
use store::wal::{Disk, DiskError, FileDisk, Recovered, SimDisk, Wal, WalError, SNAPSHOT_FILE, WAL_FILE};

fn entry(index: u64, term: u64) -> Entry {
    Entry { term, index, kind: EntryKind::Normal, data: Bytes::from(format!("entry {index} term {term}")) }
}

fn entries(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|index| entry(index, term)).collect()
}

fn hard_state(term: u64, commit: u64) -> HardState {
    HardState { term, vote: Some(1), commit }
}

fn open(disk: &SimDisk) -> (Wal<SimDisk>, Recovered) {
    Wal::open(disk.clone()).expect("open")
}

/// A crash loses every write not yet fsynced (docs/design.md §3, disk faults).
#[test]
fn unsynced_writes_are_lost_on_crash() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    wal.save(Some(&hard_state(1, 0)), &entries(1..=3, 1)).unwrap();
    wal.sync().unwrap();
    wal.save(Some(&hard_state(2, 3)), &entries(4..=5, 2)).unwrap();
    assert_eq!(wal.last_index(), 5);
    disk.crash(None);
    let (wal, recovered) = open(&disk);
    assert_eq!(recovered.hard_state, hard_state(1, 0));
    assert_eq!(recovered.entries, entries(1..=3, 1));
    assert_eq!((recovered.truncated_torn_bytes, wal.last_index()), (0, 3));
}

/// Synced writes survive a crash, across several save/sync rounds and reopenings.
#[test]
fn synced_writes_survive_crash() {
    let disk = SimDisk::new();
    let (mut wal, recovered) = open(&disk);
    assert_eq!(recovered, Recovered::default());
    wal.save(Some(&hard_state(1, 0)), &entries(1..=2, 1)).unwrap();
    wal.sync().unwrap();
    disk.crash(None);
    let (mut wal, _) = open(&disk);
    wal.save(None, &entries(3..=4, 1)).unwrap();
    wal.save(Some(&hard_state(1, 4)), &[]).unwrap();
    wal.sync().unwrap();
    disk.crash(Some(12345));
    let (wal, recovered) = open(&disk);
    assert_eq!(recovered.hard_state, hard_state(1, 4));
    assert_eq!(recovered.entries, entries(1..=4, 1));
    assert_eq!(wal.last_index(), 4);
    assert!(disk.stats().syncs >= 2);
}

/// A torn last write (an incomplete record at the tail) is cut off, reported, and the cut
/// is made durable; the complete records before it are recovered.
#[test]
fn torn_tail_is_truncated_and_reported() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    wal.save(Some(&hard_state(1, 0)), &entries(1..=2, 1)).unwrap();
    wal.sync().unwrap();
    let synced_len = disk.file_len(WAL_FILE, true).unwrap();
    wal.save(None, &entries(3..=3, 1)).unwrap();
    let record_len = disk.file_len(WAL_FILE, false).unwrap() - synced_len;
    // Keep 5 bytes of the record: not even a whole header.
    disk.crash(Some(5));
    assert_eq!(disk.file_len(WAL_FILE, true), Some(synced_len + 5));
    let (_, recovered) = open(&disk);
    assert_eq!(recovered.truncated_torn_bytes, 5);
    assert_eq!(recovered.entries, entries(1..=2, 1));
    assert_eq!(disk.file_len(WAL_FILE, true), Some(synced_len), "the cut is durable");
    // A tear inside the payload (header complete) is torn too, not corruption.
    let (mut wal, _) = open(&disk);
    wal.save(None, &entries(3..=3, 1)).unwrap();
    disk.crash(Some(record_len - 1));
    let (_, recovered) = open(&disk);
    assert_eq!(recovered.truncated_torn_bytes, record_len - 1);
    assert_eq!(recovered.entries, entries(1..=2, 1));
}

/// Bit rot in a complete record in the middle of the log is `Corrupt` naming the file and
/// the record's offset; it is never skipped.
#[test]
fn corrupted_byte_in_a_middle_record_is_corrupt_with_offset() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    let mut offsets = Vec::new();
    for index in 1..=3 {
        offsets.push(disk.file_len(WAL_FILE, true).unwrap_or(0));
        wal.save(None, &[entry(index, 1)]).unwrap();
        wal.sync().unwrap();
    }
    // Flip a payload byte of the second record.
    disk.corrupt(WAL_FILE, offsets[1] + 20, 0x40).unwrap();
    let error = Wal::open(disk.clone()).err().expect("corruption must be detected");
    let WalError::Corrupt { file, offset, .. } = error else { panic!("{error:?}") };
    assert_eq!((file.as_str(), offset), (WAL_FILE, offsets[1]));
}

/// A bit flip in a record's length field could make a middle record look like a torn tail;
/// the header checksum makes it corruption instead of silently truncating synced records.
#[test]
fn corrupted_length_field_is_corrupt_not_torn() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    wal.save(None, &entries(1..=3, 1)).unwrap();
    wal.sync().unwrap();
    disk.corrupt(WAL_FILE, 3, 0x10).unwrap(); // most significant length byte of record 1
    assert!(matches!(Wal::open(disk.clone()), Err(WalError::Corrupt { offset: 0, .. })));
}

/// A corrupted hard state record, even as the last complete record, is detected.
#[test]
fn corrupted_hard_state_is_detected() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    wal.save(None, &entries(1..=2, 1)).unwrap();
    wal.sync().unwrap();
    let hard_state_offset = disk.file_len(WAL_FILE, true).unwrap();
    wal.save(Some(&hard_state(3, 2)), &[]).unwrap();
    wal.sync().unwrap();
    let end = disk.file_len(WAL_FILE, true).unwrap();
    disk.corrupt(WAL_FILE, end - 1, 0x01).unwrap();
    let error = Wal::open(disk.clone()).err().expect("corruption must be detected");
    assert!(matches!(error, WalError::Corrupt { offset, .. } if offset == hard_state_offset), "{error:?}");
}

/// Entries saved at or below the last index overwrite that suffix (a follower resolving a
/// conflict, Raft §5.3), and recovery reproduces the truncation.
#[test]
fn overwritten_suffix_is_recovered_truncated() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    wal.save(Some(&hard_state(1, 0)), &entries(1..=5, 1)).unwrap();
    wal.save(Some(&hard_state(2, 0)), &entries(3..=4, 2)).unwrap();
    assert_eq!(wal.last_index(), 4);
    wal.save(None, &entries(5..=5, 2)).unwrap();
    wal.sync().unwrap();
    disk.crash(None);
    let (wal, recovered) = open(&disk);
    let mut expected = entries(1..=2, 1);
    expected.extend(entries(3..=5, 2));
    assert_eq!(recovered.entries, expected);
    assert_eq!((recovered.hard_state, wal.last_index()), (hard_state(2, 0), 5));
}

/// `save` refuses a gap or non-contiguous entries and writes nothing.
#[test]
fn save_rejects_non_contiguous_entries() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    assert!(matches!(wal.save(None, &entries(2..=3, 1)), Err(WalError::Invalid { .. })));
    assert!(matches!(wal.save(None, &[entry(1, 1), entry(3, 1)]), Err(WalError::Invalid { .. })));
    assert!(matches!(wal.save(None, &[entry(1, 2), entry(2, 1)]), Err(WalError::Invalid { .. })));
    assert_eq!((wal.last_index(), disk.file_len(WAL_FILE, false)), (0, None));
}

/// Disk loss: after a wipe the member recovers the empty default state.
#[test]
fn wipe_recovers_empty_state() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    wal.save(Some(&hard_state(4, 2)), &entries(1..=3, 4)).unwrap();
    wal.sync().unwrap();
    wal.save_snapshot(&SnapshotMeta { index: 2, term: 4, voters: vec![1, 2, 3] }, b"state").unwrap();
    disk.wipe();
    assert_eq!(disk.list().unwrap(), Vec::<String>::new());
    let (wal, recovered) = open(&disk);
    assert_eq!((recovered, wal.last_index()), (Recovered::default(), 0));
}

/// A snapshot is saved durably with a checksum and recovered with the entries after it;
/// bit rot in the snapshot file is detected.
#[test]
fn snapshot_is_recovered_and_its_corruption_detected() {
    let disk = SimDisk::new();
    let (mut wal, _) = open(&disk);
    wal.save(Some(&hard_state(2, 5)), &entries(1..=6, 2)).unwrap();
    let meta = SnapshotMeta { index: 4, term: 2, voters: vec![1, 2, 3] };
    wal.save_snapshot(&meta, b"mvcc snapshot bytes").unwrap();
    assert_eq!(wal.last_index(), 6);
    wal.save(None, &entries(7..=7, 2)).unwrap();
    wal.sync().unwrap();
    disk.crash(None);
    let (wal, recovered) = open(&disk);
    assert_eq!(recovered.snapshot, Some(meta.clone()));
    assert_eq!(recovered.entries, entries(5..=7, 2));
    assert_eq!(recovered.hard_state, hard_state(2, 5));
    assert_eq!(wal.load_snapshot().unwrap(), Some((meta.clone(), b"mvcc snapshot bytes".to_vec())));

    // A snapshot whose last entry conflicts with the log replaces the whole log.
    let (mut wal, _) = open(&disk);
    wal.save_snapshot(&SnapshotMeta { index: 9, term: 3, voters: vec![1] }, b"newer").unwrap();
    assert_eq!(wal.last_index(), 9);
    let (_, recovered) = open(&disk);
    assert!(recovered.entries.is_empty());

    disk.corrupt(SNAPSHOT_FILE, 15, 0x02).unwrap();
    assert!(matches!(Wal::open(disk.clone()), Err(WalError::Corrupt { file, .. }) if file == SNAPSHOT_FILE));
}

/// SimDisk's crash model: a file created since the last sync vanishes, an unsynced truncate
/// is undone, a tear keeps a prefix of the last unsynced append, and corrupt only touches
/// durable bytes.
#[test]
fn sim_disk_crash_model() {
    let disk = SimDisk::new();
    disk.append("a", b"hello").unwrap();
    disk.append("b", b"never synced").unwrap();
    disk.sync("a").unwrap();
    disk.truncate("a", 2).unwrap();
    assert_eq!(disk.read("a").unwrap(), Some(b"he".to_vec()));
    disk.crash(None);
    assert_eq!(disk.list().unwrap(), ["a"]);
    assert_eq!(disk.read("a").unwrap(), Some(b"hello".to_vec()));

    disk.append("a", b" world").unwrap();
    disk.crash(Some(3));
    assert_eq!(disk.read("a").unwrap(), Some(b"hello wo".to_vec()));
    assert_eq!(disk.file_len("a", true), Some(8));

    assert!(disk.corrupt("a", 8, 1).is_err());
    disk.corrupt("a", 0, 0x20).unwrap();
    assert_eq!(disk.read("a").unwrap(), Some(b"Hello wo".to_vec()));
    assert_eq!(disk.sync("missing"), Err(DiskError::NotFound { name: "missing".into() }));
    disk.set_failed(true);
    assert!(matches!(disk.read("a"), Err(DiskError::Failed { .. })));
    disk.set_failed(false);
    let stats = disk.stats();
    assert_eq!((stats.syncs, stats.bytes_written, stats.bytes_synced), (1, 23, 5));
}

/// FileDisk: the same WAL round-trips through a real directory (so a member can run outside
/// the simulation), including a torn tail written by hand.
#[test]
fn file_disk_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, recovered) = Wal::open(FileDisk::open(dir.path()).unwrap()).unwrap();
        assert_eq!(recovered, Recovered::default());
        wal.save(Some(&hard_state(1, 1)), &entries(1..=3, 1)).unwrap();
        wal.sync().unwrap();
        wal.save_snapshot(&SnapshotMeta { index: 1, term: 1, voters: vec![1] }, b"snap").unwrap();
        wal.disk().append(WAL_FILE, &[1, 2, 3]).unwrap();
    }
    let disk = FileDisk::open(dir.path()).unwrap();
    assert_eq!(disk.list().unwrap(), [SNAPSHOT_FILE, WAL_FILE]);
    let (wal, recovered) = Wal::open(disk).unwrap();
    assert_eq!(recovered.entries, entries(2..=3, 1));
    assert_eq!(recovered.hard_state, hard_state(1, 1));
    assert_eq!(recovered.truncated_torn_bytes, 3);
    assert_eq!(wal.load_snapshot().unwrap().unwrap().1, b"snap".to_vec());
    assert_eq!(wal.disk().read("missing").unwrap(), None);
    wal.disk().remove(WAL_FILE).unwrap();
    assert_eq!(wal.disk().list().unwrap(), [SNAPSHOT_FILE]);
}

/// The identity file (member id, cluster id, peers heard from) is written atomically, so
/// it survives a crash at once, is gone with a disk loss, and bit rot in it is detected.
#[test]
fn identity_file_is_durable_lost_with_the_disk_and_checksummed() {
    use store::api::MemberId;
    use store::wal::{MemberIdentity, IDENTITY_FILE};
    let disk = SimDisk::new();
    let (mut wal, recovered) = open(&disk);
    assert_eq!(recovered.identity, None);
    let identity = MemberIdentity {
        cluster_id: 7,
        member_id: MemberId(2),
        peers_heard_from: [MemberId(1), MemberId(3)].into_iter().collect(),
    };
    wal.save_identity(&identity).unwrap();
    disk.crash(None);
    assert_eq!(open(&disk).1.identity, Some(identity));
    disk.corrupt(IDENTITY_FILE, 20, 0x01).unwrap();
    assert!(matches!(Wal::open(disk.clone()), Err(WalError::Corrupt { .. })));
    disk.wipe();
    assert_eq!(open(&disk).1.identity, None);
}
