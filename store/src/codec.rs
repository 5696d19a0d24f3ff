//! Decoding of records that carry more after their serde part (snapshots with a trailing
//! lease section), bounded by the bytes at hand.

use bincode::Options;
use serde::de::DeserializeOwned;

/// Decodes a value written by `bincode::serialize` from the front of `data` and returns
/// it with the bytes after it.
///
/// Reading from a slice as a stream (`bincode::deserialize_from`) trusts each length
/// prefix and allocates that much before reading: a corrupted prefix (a damaged backup, a
/// flipped bit on disk) asked for 7.6 EB and aborted the whole process. The size limit
/// here is the input's own length, so such a prefix is refused with an error naming it.
pub(crate) fn decode_prefix<T: DeserializeOwned>(data: &[u8]) -> bincode::Result<(T, &[u8])> {
    let mut rest = data;
    let value = bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
        .with_limit(data.len() as u64)
        .deserialize_from(&mut rest)?;
    Ok((value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_and_what_follows_it_decode_as_bincode_wrote_them() {
        let mut data = bincode::serialize(&(7u64, bytes::Bytes::from_static(b"abc"))).unwrap();
        data.extend_from_slice(b"tail");
        let ((n, bytes), rest): ((u64, bytes::Bytes), &[u8]) = decode_prefix(&data).unwrap();
        assert_eq!((n, &bytes[..], rest), (7, &b"abc"[..], &b"tail"[..]));
    }

    #[test]
    fn a_corrupted_length_prefix_is_an_error_not_an_allocation() {
        // A byte buffer claiming u64::MAX / 2 bytes, followed by almost nothing.
        let mut data = (u64::MAX / 2).to_le_bytes().to_vec();
        data.extend_from_slice(b"xy");
        let error = decode_prefix::<bytes::Bytes>(&data).unwrap_err();
        assert!(error.to_string().contains("size limit"), "{error}");
    }
}
