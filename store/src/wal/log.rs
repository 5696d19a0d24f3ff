//! The write-ahead log: Raft hard state and entries appended as checksummed records to one
//! file, plus an optional snapshot file replaced atomically.
//!
//! Recovery rules (what `Wal::open` guarantees):
//! - it reads exactly what the disk holds; an incomplete record at the end of the log (a
//!   torn write) is cut off, the cut made durable, and its size reported;
//! - any complete record whose checksum fails is `WalError::Corrupt` with file and offset,
//!   wherever it is: corruption is never skipped, since skipping could lose an acknowledged
//!   entry or vote;
//! - entries come back contiguous: an entry record whose index is at or below the last one
//!   truncates the suffix from that index, exactly as `save` did when it was written.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::disk::{Disk, DiskError};
use super::record::{self, Decoded, RecordKind};
use crate::raft::{Entry, HardState, SnapshotMeta};

pub const WAL_FILE: &str = "wal";
pub const SNAPSHOT_FILE: &str = "snap";
pub const IDENTITY_FILE: &str = "identity";

/// A record larger than this is corruption, not an allocation (an entry holds at most one
/// request of `MAX_REQUEST_BYTES`, 1.5 MiB).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// Bound on the snapshot file's single record.
pub const MAX_SNAPSHOT_BYTES: usize = 512 * 1024 * 1024;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WalError {
    #[error("corrupt {file} at offset {offset}: {reason}")]
    Corrupt { file: String, offset: u64, reason: String },
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("invalid wal operation: {reason}")]
    Invalid { reason: String },
}

/// What `Wal::open` found on the disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    /// Contiguous; the first is `snapshot.index + 1` (or 1 without a snapshot).
    pub entries: Vec<Entry>,
    pub snapshot: Option<SnapshotMeta>,
    /// Bytes of an incomplete last record (a torn write) cut off the log.
    pub truncated_torn_bytes: u64,
    /// Who this disk belongs to; None on a disk the member never started on.
    pub identity: Option<MemberIdentity>,
}

/// The member's identity file (etcd keeps the member and cluster ids in its WAL metadata):
/// which member and cluster the disk belongs to, and every peer this member has ever
/// received a Raft message from. A peer is added, durably, *before* its first message is
/// stepped, so any vote or acknowledgement a peer ever gave was recorded by its receiver:
/// that is what lets a wiped member that restarts under its old id be recognised
/// ("member %s has already been bootstrapped", etcd `isMemberBootstrapped`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberIdentity {
    pub cluster_id: u64,
    pub member_id: crate::api::MemberId,
    pub peers_heard_from: std::collections::BTreeSet<crate::api::MemberId>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    data: Bytes,
}

/// What [`Wal::save_snapshot`] writes: a [`SnapshotRecord`] that borrows its fields, so
/// the snapshot's bytes are serialized straight from the caller's slice.
#[derive(Serialize)]
struct SnapshotRecordRef<'a> {
    meta: &'a SnapshotMeta,
    data: ByteSlice<'a>,
}

/// Serializes as serde bytes, the way `Bytes` does (not as a sequence of `u8`).
struct ByteSlice<'a>(&'a [u8]);

impl Serialize for ByteSlice<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

pub struct Wal<D: Disk> {
    disk: D,
    last_index: u64,
    /// Index of the last entry covered by the saved snapshot (0 without one).
    snapshot_index: u64,
}

/// The log file decoded: last hard state, entries after applying truncations, and how many
/// bytes of it are whole records.
struct ParsedLog {
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    valid_len: usize,
}

impl<D: Disk> Wal<D> {
    /// Recovers from whatever the disk holds; an empty disk gives the default state.
    pub fn open(disk: D) -> Result<(Wal<D>, Recovered), WalError> {
        let identity = read_identity(&disk)?;
        let snapshot = read_snapshot(&disk)?.map(|record| record.meta);
        let bytes = disk.read(WAL_FILE)?.unwrap_or_default();
        let parsed = parse_log(&bytes)?;
        let truncated_torn_bytes = (bytes.len() - parsed.valid_len) as u64;
        if truncated_torn_bytes > 0 {
            tracing::warn!(truncated_torn_bytes, "wal: cutting off a torn last record");
            disk.truncate(WAL_FILE, parsed.valid_len as u64)?;
            disk.sync(WAL_FILE)?;
        }
        let entries = entries_after_snapshot(parsed.entries, snapshot.as_ref());
        let snapshot_index = snapshot.as_ref().map_or(0, |meta| meta.index);
        if let Some(first) = entries.first() {
            if first.index != snapshot_index + 1 {
                return Err(WalError::Corrupt {
                    file: WAL_FILE.to_string(),
                    offset: 0,
                    reason: format!("log starts at index {} but the snapshot ends at {snapshot_index}", first.index),
                });
            }
        }
        let last_index = entries.last().map_or(snapshot_index, |entry| entry.index);
        let wal = Wal { disk, last_index, snapshot_index };
        let recovered = Recovered {
            hard_state: parsed.hard_state.unwrap_or_default(),
            entries,
            snapshot,
            truncated_torn_bytes,
            identity,
        };
        Ok((wal, recovered))
    }

    /// Appends the hard state (if given) and the entries. Entries must be contiguous; the
    /// first may be at or below `last_index` (a follower overwriting a conflicting suffix),
    /// but not past `last_index + 1` and not inside the snapshot. Not durable until `sync`.
    pub fn save(&mut self, hard_state: Option<&HardState>, entries: &[Entry]) -> Result<(), WalError> {
        if let Some(first) = entries.first() {
            if first.index <= self.snapshot_index || first.index > self.last_index + 1 {
                return Err(WalError::Invalid {
                    reason: format!(
                        "first entry index {} outside [{}, {}]",
                        first.index,
                        self.snapshot_index + 1,
                        self.last_index + 1
                    ),
                });
            }
            for pair in entries.windows(2) {
                if pair[1].index != pair[0].index + 1 || pair[1].term < pair[0].term {
                    return Err(WalError::Invalid {
                        reason: format!(
                            "entries not contiguous: ({}, term {}) then ({}, term {})",
                            pair[0].index, pair[0].term, pair[1].index, pair[1].term
                        ),
                    });
                }
            }
        }
        // Room for every record at once: payloads are serialized in place, a few bytes at a
        // time, and would otherwise grow the buffer again and again.
        let mut buffer = Vec::with_capacity(
            entries.iter().map(|entry| entry.data.len() + RECORD_ROOM_BYTES).sum::<usize>() + RECORD_ROOM_BYTES,
        );
        if let Some(hard_state) = hard_state {
            encode(RecordKind::HardState, hard_state, &mut buffer)?;
        }
        for entry in entries {
            encode(RecordKind::Entry, entry, &mut buffer)?;
        }
        if !buffer.is_empty() {
            self.disk.append(WAL_FILE, &buffer)?;
        }
        if let Some(last) = entries.last() {
            self.last_index = last.index;
        }
        Ok(())
    }

    /// fsync: everything saved so far survives a crash.
    pub fn sync(&mut self) -> Result<(), WalError> {
        match self.disk.sync(WAL_FILE) {
            // Nothing was ever saved: nothing to make durable.
            Err(DiskError::NotFound { .. }) => Ok(()),
            other => Ok(other?),
        }
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn disk(&self) -> &D {
        &self.disk
    }

    /// Saves a snapshot durably, then rewrites the log without the entries it covers. Raft's
    /// rule for installing a snapshot applies: entries after `meta.index` are kept only if
    /// the log holds `meta.index` with `meta.term`; otherwise the whole log is discarded.
    /// A crash between the two steps is harmless: recovery applies the same rule.
    pub fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), WalError> {
        if meta.index < self.snapshot_index {
            return Err(WalError::Invalid {
                reason: format!("snapshot at {} older than the saved one at {}", meta.index, self.snapshot_index),
            });
        }
        // Serialized once, in place after the record header, into a buffer of its final
        // size: the same bytes as a `SnapshotRecord`, without copying `data` on the way.
        let snapshot = SnapshotRecordRef { meta, data: ByteSlice(data) };
        let payload_len = bincode::serialized_size(&snapshot).map_err(invalid)? as usize;
        if payload_len > MAX_SNAPSHOT_BYTES {
            return Err(WalError::Invalid {
                reason: format!("snapshot of {payload_len} bytes exceeds {MAX_SNAPSHOT_BYTES}"),
            });
        }
        let mut buffer = Vec::with_capacity(record::HEADER_BYTES + payload_len);
        encode_bounded(RecordKind::Snapshot, &snapshot, MAX_SNAPSHOT_BYTES, &mut buffer)?;
        self.disk.write_atomic(SNAPSHOT_FILE, buffer)?;

        let bytes = self.disk.read(WAL_FILE)?.unwrap_or_default();
        let parsed = parse_log(&bytes)?;
        let entries = entries_after_snapshot(parsed.entries, Some(meta));
        // With the old log's size as capacity: the appends that follow fill the room the
        // dropped entries leave instead of growing the file's buffer again.
        let mut log = Vec::with_capacity(bytes.len());
        if let Some(hard_state) = &parsed.hard_state {
            encode(RecordKind::HardState, hard_state, &mut log)?;
        }
        for entry in &entries {
            encode(RecordKind::Entry, entry, &mut log)?;
        }
        self.disk.write_atomic(WAL_FILE, log)?;
        self.snapshot_index = meta.index;
        self.last_index = entries.last().map_or(meta.index, |entry| entry.index);
        Ok(())
    }

    /// Replaces the identity file durably (write_atomic: whole or absent after a crash).
    pub fn save_identity(&mut self, identity: &MemberIdentity) -> Result<(), WalError> {
        let mut buffer = Vec::new();
        encode(RecordKind::Identity, identity, &mut buffer)?;
        self.disk.write_atomic(IDENTITY_FILE, buffer)?;
        Ok(())
    }

    /// The saved snapshot and its data, checksum verified.
    pub fn load_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, WalError> {
        Ok(read_snapshot(&self.disk)?.map(|record| (record.meta, record.data.to_vec())))
    }
}

fn invalid(error: bincode::Error) -> WalError {
    WalError::Invalid { reason: format!("cannot encode record: {error}") }
}

/// Room for a record's header and the fixed-size fields of an entry or a hard state
/// (bincode: 28 bytes before an entry's data, 25 for a hard state); only a capacity hint.
const RECORD_ROOM_BYTES: usize = record::HEADER_BYTES + 32;

/// Appends `value`'s record to `out`, serialized in place after room for its header (no
/// buffer of its own per record); on an error `out` is left as it was.
fn encode<T: Serialize>(kind: RecordKind, value: &T, out: &mut Vec<u8>) -> Result<(), WalError> {
    encode_bounded(kind, value, MAX_RECORD_BYTES, out)
}

/// [`encode`] with a payload bound of `max_payload_bytes`.
fn encode_bounded<T: Serialize>(
    kind: RecordKind,
    value: &T,
    max_payload_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), WalError> {
    let start = out.len();
    out.resize(start + record::HEADER_BYTES, 0);
    if let Err(e) = bincode::serialize_into(&mut *out, value) {
        out.truncate(start);
        return Err(invalid(e));
    }
    let payload_len = out.len() - start - record::HEADER_BYTES;
    if payload_len > max_payload_bytes {
        out.truncate(start);
        return Err(WalError::Invalid {
            reason: format!("{kind:?} record of {payload_len} bytes exceeds {max_payload_bytes}"),
        });
    }
    record::seal(kind, &mut out[start..]);
    Ok(())
}

fn read_snapshot<D: Disk>(disk: &D) -> Result<Option<SnapshotRecord>, WalError> {
    let Some(bytes) = disk.read(SNAPSHOT_FILE)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| WalError::Corrupt { file: SNAPSHOT_FILE.to_string(), offset: 0, reason };
    // Written with write_atomic: it is whole or absent, so anything short is corruption.
    match record::decode(&bytes, 0, MAX_SNAPSHOT_BYTES) {
        Decoded::Record { kind: RecordKind::Snapshot, payload, next_offset } if next_offset == bytes.len() => {
            let snapshot: SnapshotRecord =
                bincode::deserialize(payload).map_err(|e| corrupt(format!("undecodable snapshot: {e}")))?;
            Ok(Some(snapshot))
        }
        Decoded::Record { kind, .. } => Err(corrupt(format!("unexpected {kind:?} record or trailing bytes"))),
        Decoded::Torn => Err(corrupt("incomplete snapshot file".to_string())),
        Decoded::Corrupt { reason } => Err(corrupt(reason)),
    }
}

fn read_identity<D: Disk>(disk: &D) -> Result<Option<MemberIdentity>, WalError> {
    let Some(bytes) = disk.read(IDENTITY_FILE)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| WalError::Corrupt { file: IDENTITY_FILE.to_string(), offset: 0, reason };
    match record::decode(&bytes, 0, MAX_RECORD_BYTES) {
        Decoded::Record { kind: RecordKind::Identity, payload, next_offset } if next_offset == bytes.len() => {
            bincode::deserialize(payload).map(Some).map_err(|e| corrupt(format!("undecodable identity: {e}")))
        }
        Decoded::Record { kind, .. } => Err(corrupt(format!("unexpected {kind:?} record or trailing bytes"))),
        Decoded::Torn => Err(corrupt("incomplete identity file".to_string())),
        Decoded::Corrupt { reason } => Err(corrupt(reason)),
    }
}

fn parse_log(bytes: &[u8]) -> Result<ParsedLog, WalError> {
    let mut parsed = ParsedLog { hard_state: None, entries: Vec::new(), valid_len: 0 };
    let mut offset = 0;
    while offset < bytes.len() {
        let corrupt = |reason: String| WalError::Corrupt { file: WAL_FILE.to_string(), offset: offset as u64, reason };
        let (kind, payload, next_offset) = match record::decode(bytes, offset, MAX_RECORD_BYTES) {
            Decoded::Record { kind, payload, next_offset } => (kind, payload, next_offset),
            Decoded::Torn => break,
            Decoded::Corrupt { reason } => return Err(corrupt(reason)),
        };
        match kind {
            RecordKind::HardState => {
                let hard_state: HardState =
                    bincode::deserialize(payload).map_err(|e| corrupt(format!("undecodable hard state: {e}")))?;
                parsed.hard_state = Some(hard_state);
            }
            RecordKind::Entry => {
                let entry: Entry =
                    bincode::deserialize(payload).map_err(|e| corrupt(format!("undecodable entry: {e}")))?;
                append_entry(&mut parsed.entries, entry).map_err(corrupt)?;
            }
            RecordKind::Snapshot | RecordKind::Identity => {
                return Err(corrupt(format!("{kind:?} record inside the log")));
            }
        }
        offset = next_offset;
        parsed.valid_len = offset;
    }
    Ok(parsed)
}

/// Replays one entry record: at or below the last index it truncates the suffix first.
fn append_entry(entries: &mut Vec<Entry>, entry: Entry) -> Result<(), String> {
    if let Some(first) = entries.first() {
        let last_index = first.index + entries.len() as u64 - 1;
        if entry.index > last_index + 1 {
            return Err(format!("entry {} leaves a gap after {last_index}", entry.index));
        }
        let keep = entry.index.saturating_sub(first.index) as usize;
        entries.truncate(keep);
    }
    entries.push(entry);
    Ok(())
}

/// Raft's rule for a log under a snapshot: keep the entries after it only when the log
/// holds the snapshot's last entry with the same term (or begins right after it).
fn entries_after_snapshot(entries: Vec<Entry>, snapshot: Option<&SnapshotMeta>) -> Vec<Entry> {
    let Some(meta) = snapshot else { return entries };
    let Some(first) = entries.first() else {
        return entries;
    };
    if first.index == meta.index + 1 {
        return entries;
    }
    let holds_snapshot_entry = entries.iter().any(|entry| entry.index == meta.index && entry.term == meta.term);
    if holds_snapshot_entry {
        entries.into_iter().filter(|entry| entry.index > meta.index).collect()
    } else {
        Vec::new()
    }
}
