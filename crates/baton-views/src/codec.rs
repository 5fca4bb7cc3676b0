//! Stored values: the view types postcard-encoded, the metadata's numbers
//! big-endian.
//!
//! Every value the views write goes through `encode`, which fails rather
//! than store something empty in its place; every value they read goes
//! through a decode that names the key of a value it cannot read, so a
//! damaged store is found and rebuilt, never read as zero.
//!
//! It must never pick keys or touch sled.

use baton_domain::Timestamp;
use serde::{de::DeserializeOwned, Serialize};

use crate::ViewsError;

/// Why a stored value cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
    #[error("{found} bytes where a {expected}-byte number is stored")]
    Length { expected: usize, found: usize },
}

/// `value` as stored.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ViewsError> {
    postcard::to_allocvec(value).map_err(|source| ViewsError::Encode {
        what: std::any::type_name::<T>(),
        source,
    })
}

/// The value stored under `key`.
pub(crate) fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, ViewsError> {
    postcard::from_bytes(bytes).map_err(|e| corrupt(key, e.into()))
}

fn corrupt(key: &[u8], problem: Unreadable) -> ViewsError {
    ViewsError::Corrupt {
        key: key.escape_ascii().to_string(),
        problem,
    }
}

/// The `N` bytes of a number stored under `key`.
fn fixed<const N: usize>(key: &[u8], bytes: &[u8]) -> Result<[u8; N], ViewsError> {
    bytes.try_into().map_err(|_| {
        corrupt(
            key,
            Unreadable::Length {
                expected: N,
                found: bytes.len(),
            },
        )
    })
}

/// A stream sequence (the views' position).
pub(crate) fn encode_sequence(sequence: u64) -> [u8; 8] {
    sequence.to_be_bytes()
}

pub(crate) fn decode_sequence(key: &[u8], bytes: &[u8]) -> Result<u64, ViewsError> {
    fixed(key, bytes).map(u64::from_be_bytes)
}

/// An instant (the stream time).
pub(crate) fn encode_time(at: Timestamp) -> [u8; 8] {
    at.0.to_be_bytes()
}

pub(crate) fn decode_time(key: &[u8], bytes: &[u8]) -> Result<Timestamp, ViewsError> {
    fixed(key, bytes).map(i64::from_be_bytes).map(Timestamp)
}

/// The store's schema version.
pub(crate) fn encode_schema(version: u32) -> [u8; 4] {
    version.to_be_bytes()
}

pub(crate) fn decode_schema(key: &[u8], bytes: &[u8]) -> Result<u32, ViewsError> {
    fixed(key, bytes).map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back_and_a_short_one_is_corrupt_not_zero() {
        let sequence = decode_sequence(b"m/position", &encode_sequence(42));
        assert_eq!(sequence.expect("reads back"), 42);
        let time = decode_time(b"m/stream-time", &encode_time(Timestamp(-7)));
        assert_eq!(time.expect("reads back"), Timestamp(-7));
        let schema = decode_schema(b"m/schema", &encode_schema(6));
        assert_eq!(schema.expect("reads back"), 6);
        match decode_sequence(b"m/position", &[0, 1, 2]) {
            Err(ViewsError::Corrupt { key, problem }) => {
                assert_eq!(key, "m/position");
                assert_eq!(
                    problem,
                    Unreadable::Length {
                        expected: 8,
                        found: 3
                    }
                );
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
    }

    #[test]
    fn a_value_that_does_not_decode_names_its_key() {
        let err = decode::<crate::PairTallies>(b"p/\xff", &[0xff; 3]).expect_err("not a value");
        assert!(
            matches!(&err, ViewsError::Corrupt { key, problem: Unreadable::Postcard(_) } if key == "p/\\xff"),
            "{err}"
        );
    }

    #[test]
    fn what_cannot_be_encoded_is_an_error_not_an_empty_value() {
        /// A value whose `Serialize` fails.
        struct Unencodable;
        impl Serialize for Unencodable {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no encoding"))
            }
        }
        assert!(matches!(
            encode(&Unencodable),
            Err(ViewsError::Encode { .. })
        ));
    }
}
