//! The on-disk record framing shared by the WAL and the snapshot file.
//!
//! ```text
//! [payload_len u32 LE][kind u8][payload_crc u32 LE][header_crc u32 LE][payload ...]
//! ```
//!
//! `header_crc` covers the first 9 bytes. It is what tells a torn tail from corruption: a
//! torn write keeps a prefix of the real bytes, so a complete header always has a valid
//! header checksum; if bit rot hits a length field, the header checksum fails and the record
//! is reported corrupt instead of being mistaken for an incomplete tail and truncated away.

pub(crate) const HEADER_BYTES: usize = 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordKind {
    HardState = 1,
    Entry = 2,
    Snapshot = 3,
    Identity = 4,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::HardState),
            2 => Some(Self::Entry),
            3 => Some(Self::Snapshot),
            4 => Some(Self::Identity),
            _ => None,
        }
    }
}

/// Fills in the header of `record`: `HEADER_BYTES` of room, then the payload. Lets a
/// writer serialize a payload in place, right after the room for its header.
pub(crate) fn seal(kind: RecordKind, record: &mut [u8]) {
    let (header, payload) = record.split_at_mut(HEADER_BYTES);
    let payload_len = u32::try_from(payload.len()).expect("record payloads are bounded");
    header[..4].copy_from_slice(&payload_len.to_le_bytes());
    header[4] = kind as u8;
    header[5..9].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(&header[..9]);
    header[9..].copy_from_slice(&header_crc.to_le_bytes());
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    Record {
        kind: RecordKind,
        payload: &'a [u8],
        next_offset: usize,
    },
    /// The bytes from `offset` to the end are an incomplete record: a torn write.
    Torn,
    Corrupt {
        reason: String,
    },
}

/// Decodes the record at `offset` (which must be < `bytes.len()`).
pub(crate) fn decode(bytes: &[u8], offset: usize, max_payload_bytes: usize) -> Decoded<'_> {
    let rest = &bytes[offset..];
    if rest.len() < HEADER_BYTES {
        return Decoded::Torn;
    }
    let word = |at: usize| u32::from_le_bytes(rest[at..at + 4].try_into().expect("4 bytes"));
    let header_crc = word(9);
    if crc32fast::hash(&rest[..9]) != header_crc {
        return Decoded::Corrupt { reason: "record header checksum mismatch".to_string() };
    }
    let payload_len = word(0) as usize;
    if payload_len > max_payload_bytes {
        return Decoded::Corrupt {
            reason: format!("record length {payload_len} exceeds the limit {max_payload_bytes}"),
        };
    }
    let Some(kind) = RecordKind::from_byte(rest[4]) else {
        return Decoded::Corrupt { reason: format!("unknown record kind {}", rest[4]) };
    };
    if rest.len() < HEADER_BYTES + payload_len {
        return Decoded::Torn;
    }
    let payload = &rest[HEADER_BYTES..HEADER_BYTES + payload_len];
    if crc32fast::hash(payload) != word(5) {
        return Decoded::Corrupt { reason: format!("{kind:?} record payload checksum mismatch") };
    }
    Decoded::Record { kind, payload, next_offset: offset + HEADER_BYTES + payload_len }
}
