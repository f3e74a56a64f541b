//! The Confluent wire format: magic byte `0x00`, the schema id as 4 big-endian bytes, then the
//! Avro datum.

use crate::{Error, Result};

/// The first byte of every framed message.
pub const MAGIC_BYTE: u8 = 0x00;

/// Length of the header before the datum.
pub const HEADER_LEN: usize = 5;

/// Frames `datum`, written with schema `id`.
pub fn frame(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut bytes = header(id, datum.len());
    bytes.extend_from_slice(datum);
    bytes
}

/// A buffer holding the header for schema `id`, with room for `datum_len` more bytes.
pub(crate) fn header(id: u32, datum_len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + datum_len);
    bytes.push(MAGIC_BYTE);
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes
}

/// Splits a framed message into its schema id and its datum.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8])> {
    match bytes {
        [MAGIC_BYTE, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [found, ..] if *found != MAGIC_BYTE => Err(Error::BadMagicByte { found: *found }),
        _ => Err(Error::TooShort { len: bytes.len() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_and_split_round_trip() {
        let bytes = frame(0x0102_0304, b"datum");
        assert_eq!(&bytes[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(split(&bytes).ok(), Some((0x0102_0304, &b"datum"[..])));
    }

    #[test]
    fn split_rejects_short_and_foreign_messages() {
        assert!(matches!(split(&[]), Err(Error::TooShort { len: 0 })));
        assert!(matches!(split(&[0, 0, 0]), Err(Error::TooShort { len: 3 })));
        assert!(matches!(
            split(b"{\"json\":1}"),
            Err(Error::BadMagicByte { found: b'{' })
        ));
        // A wrong first byte is reported as such even when the message is also short.
        assert!(matches!(split(&[7]), Err(Error::BadMagicByte { found: 7 })));
    }

    #[test]
    fn empty_datum_is_a_valid_frame() {
        assert_eq!(split(&frame(9, &[])).ok(), Some((9, &[][..])));
    }
}
