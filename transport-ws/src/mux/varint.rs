//! QUIC variable-length integers (RFC 9000 section 16), as used for stream ids
//! and error codes on the mux.
//!
//! The top two bits of the first byte give the length: `00` one byte (up to 63),
//! `01` two bytes (up to 16383), `10` four bytes (up to 2^30 - 1), `11` eight
//! bytes (up to 2^62 - 1). We always encode in the shortest form and accept
//! non-minimal forms when decoding, like every QUIC implementation.

use bytes::BufMut;

/// The largest value a varint can hold: 2^62 - 1.
pub const MAX: u64 = (1 << 62) - 1;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarIntError {
    /// The input ended before the length announced by the first byte.
    Truncated,
}

/// Number of bytes the shortest encoding of `value` takes. Values above
/// [`MAX`] are clamped to it (callers never pass them; see [`encode`]).
pub fn encoded_len(value: u64) -> usize {
    if value < 1 << 6 {
        1
    } else if value < 1 << 14 {
        2
    } else if value < 1 << 30 {
        4
    } else {
        8
    }
}

/// Appends the shortest encoding of `value` to `buf`. Values above [`MAX`]
/// are saturated to [`MAX`]: they cannot be represented, and error codes
/// coming from applications are the only source of such values.
pub fn encode(value: u64, buf: &mut impl BufMut) {
    let value = value.min(MAX);
    match encoded_len(value) {
        1 => buf.put_u8(value as u8),
        2 => buf.put_u16(0x4000 | value as u16),
        4 => buf.put_u32(0x8000_0000 | value as u32),
        _ => buf.put_u64(0xc000_0000_0000_0000 | value),
    }
}

/// Decodes a varint from the start of `input`, returning the value and the
/// number of bytes it took.
pub fn decode(input: &[u8]) -> Result<(u64, usize), VarIntError> {
    let first = *input.first().ok_or(VarIntError::Truncated)?;
    let len = 1usize << (first >> 6);
    let bytes = input.get(..len).ok_or(VarIntError::Truncated)?;
    let mut value = u64::from(first & 0x3f);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    Ok((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        out
    }

    #[test]
    fn boundaries_use_the_shortest_form() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(63), [0x3f]);
        assert_eq!(enc(64), [0x40, 0x40]);
        assert_eq!(enc(16383), [0x7f, 0xff]);
        assert_eq!(enc(16384), [0x80, 0x00, 0x40, 0x00]);
        assert_eq!(enc((1 << 30) - 1), [0xbf, 0xff, 0xff, 0xff]);
        assert_eq!(enc(1 << 30), [0xc0, 0, 0, 0, 0x40, 0, 0, 0]);
        assert_eq!(enc(MAX), [0xff; 8]);
        assert_eq!(enc(u64::MAX), [0xff; 8], "saturates");
    }

    #[test]
    fn rfc9000_examples() {
        assert_eq!(
            decode(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]),
            Ok((151_288_809_941_952_652, 8))
        );
        assert_eq!(decode(&[0x9d, 0x7f, 0x3e, 0x7d]), Ok((494_878_333, 4)));
        assert_eq!(decode(&[0x7b, 0xbd]), Ok((15293, 2)));
        assert_eq!(decode(&[0x25]), Ok((37, 1)));
        // Non-minimal form of 37 is accepted.
        assert_eq!(decode(&[0x40, 0x25]), Ok((37, 2)));
    }

    #[test]
    fn truncated_input() {
        assert_eq!(decode(&[]), Err(VarIntError::Truncated));
        assert_eq!(decode(&[0x40]), Err(VarIntError::Truncated));
        assert_eq!(decode(&[0x80, 0, 0]), Err(VarIntError::Truncated));
        assert_eq!(
            decode(&[0xc0, 0, 0, 0, 0, 0, 0]),
            Err(VarIntError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn roundtrip(v in 0..=MAX) {
            let bytes = enc(v);
            prop_assert_eq!(bytes.len(), encoded_len(v));
            prop_assert_eq!(decode(&bytes), Ok((v, bytes.len())));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..10)) {
            if let Ok((v, n)) = decode(&bytes) {
                prop_assert!(v <= MAX);
                prop_assert!(n <= bytes.len());
            }
        }
    }
}
