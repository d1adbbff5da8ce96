//! Mux messages: one binary WebSocket message is one frame.
//!
//! ```text
//! streamId: varint | type: u16 big-endian | payload
//! ```
//!
//! | type | frame | payload |
//! |---|---|---|
//! | 0 | DATA | the rest of the message (may be empty) |
//! | 1 | ACK | `u32` big-endian credit |
//! | 2 | ERROR | `u8` shutdown, then a varint code |
//! | 3 | CLOSE | `u8` shutdown |
//!
//! Decoding takes a [`Bytes`] and slices DATA payloads out of it without
//! copying. Every way a message can be invalid has its own [`FrameError`]; all
//! of them are protocol errors that close the WebSocket with 1002.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::stream_id::StreamId;
use super::varint;

const TYPE_DATA: u16 = 0;
const TYPE_ACK: u16 = 1;
const TYPE_ERROR: u16 = 2;
const TYPE_CLOSE: u16 = 3;

/// Which half of the stream the **receiver** of a CLOSE or ERROR must shut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `0x00`: the receiver's readable ends (the sender finished or aborted writing).
    Read,
    /// `0x01`: the receiver's writable ends (the sender stopped reading).
    Write,
}

impl Shutdown {
    fn to_byte(self) -> u8 {
        match self {
            Shutdown::Read => 0,
            Shutdown::Write => 1,
        }
    }

    fn from_byte(b: u8) -> Result<Shutdown, FrameError> {
        match b {
            0 => Ok(Shutdown::Read),
            1 => Ok(Shutdown::Write),
            other => Err(FrameError::BadShutdown(other)),
        }
    }

    /// The other half.
    pub fn opposite(self) -> Shutdown {
        match self {
            Shutdown::Read => Shutdown::Write,
            Shutdown::Write => Shutdown::Read,
        }
    }
}

/// One mux message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Stream bytes. The payload is a slice of the received message.
    Data {
        /// The stream.
        id: StreamId,
        /// The bytes, possibly empty.
        payload: Bytes,
    },
    /// Credit granted to the peer (also opens a stream when it is the first
    /// message on an id).
    Ack {
        /// The stream.
        id: StreamId,
        /// Bytes the peer may send in addition to what it already may.
        credit: u32,
    },
    /// Abort (`Read`: "I aborted my writable") or cancel (`Write`: "I stopped
    /// reading") one half with an application code.
    Error {
        /// The stream.
        id: StreamId,
        /// The half the receiver must shut.
        shutdown: Shutdown,
        /// Application-defined code (varint).
        code: u64,
    },
    /// Graceful end (`Read`: "I finished writing"), or its reply (`Write`).
    Close {
        /// The stream.
        id: StreamId,
        /// The half the receiver must shut.
        shutdown: Shutdown,
    },
}

/// Why a binary message is not a valid frame. Each is a protocol error (1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The message ended inside the stream id.
    #[error("truncated stream id")]
    TruncatedStreamId,
    /// The message ended before the two type bytes.
    #[error("truncated message type")]
    TruncatedType,
    /// The type is not DATA, ACK, ERROR or CLOSE.
    #[error("unknown message type {0}")]
    UnknownType(u16),
    /// The ACK payload is shorter than four bytes.
    #[error("truncated ack")]
    TruncatedAck,
    /// The CLOSE payload has no shutdown byte.
    #[error("truncated close")]
    TruncatedClose,
    /// The ERROR payload lacks its shutdown byte or its code.
    #[error("truncated error")]
    TruncatedError,
    /// The shutdown byte is neither 0 (Read) nor 1 (Write).
    #[error("invalid shutdown value {0}")]
    BadShutdown(u8),
    /// Bytes follow a complete ACK, CLOSE or ERROR payload.
    #[error("trailing bytes after a control message")]
    TrailingBytes,
}

impl Frame {
    /// The stream this frame belongs to.
    pub fn stream_id(&self) -> StreamId {
        match self {
            Frame::Data { id, .. }
            | Frame::Ack { id, .. }
            | Frame::Error { id, .. }
            | Frame::Close { id, .. } => *id,
        }
    }

    /// Exact size of the encoded message.
    pub fn encoded_len(&self) -> usize {
        let head = varint::encoded_len(self.stream_id().0) + 2;
        head + match self {
            Frame::Data { payload, .. } => payload.len(),
            Frame::Ack { .. } => 4,
            Frame::Error { code, .. } => 1 + varint::encoded_len((*code).min(varint::MAX)),
            Frame::Close { .. } => 1,
        }
    }

    /// Appends the encoded message to `buf`.
    pub fn encode(&self, buf: &mut impl BufMut) {
        varint::encode(self.stream_id().0, buf);
        match self {
            Frame::Data { payload, .. } => {
                buf.put_u16(TYPE_DATA);
                buf.put_slice(payload);
            }
            Frame::Ack { credit, .. } => {
                buf.put_u16(TYPE_ACK);
                buf.put_u32(*credit);
            }
            Frame::Error { shutdown, code, .. } => {
                buf.put_u16(TYPE_ERROR);
                buf.put_u8(shutdown.to_byte());
                varint::encode(*code, buf);
            }
            Frame::Close { shutdown, .. } => {
                buf.put_u16(TYPE_CLOSE);
                buf.put_u8(shutdown.to_byte());
            }
        }
    }

    /// Length of a DATA message's header (stream id and type) on `id`.
    pub fn data_header_len(id: StreamId) -> usize {
        varint::encoded_len(id.0) + 2
    }

    /// Encodes a DATA message carrying a copy of `payload`, header included,
    /// in one allocation of exactly its size.
    pub fn encode_data(id: StreamId, payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(Self::data_header_len(id) + payload.len());
        Self::encode_data_into(id, payload, &mut buf);
        buf.freeze()
    }

    /// Appends a DATA message carrying a copy of `payload` to `buf`
    /// ([`Frame::data_header_len`] + `payload.len()` bytes).
    pub fn encode_data_into(id: StreamId, payload: &[u8], buf: &mut impl BufMut) {
        varint::encode(id.0, buf);
        buf.put_u16(TYPE_DATA);
        buf.put_slice(payload);
    }

    /// Encodes into a fresh buffer of exactly the right size.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }

    /// Decodes one whole message. DATA payloads share `msg`'s memory.
    pub fn decode(mut msg: Bytes) -> Result<Frame, FrameError> {
        let (id, n) = varint::decode(&msg).map_err(|_| FrameError::TruncatedStreamId)?;
        msg.advance(n);
        let id = StreamId(id);
        if msg.len() < 2 {
            return Err(FrameError::TruncatedType);
        }
        let ty = msg.get_u16();
        let frame = match ty {
            TYPE_DATA => return Ok(Frame::Data { id, payload: msg }),
            TYPE_ACK => {
                if msg.len() < 4 {
                    return Err(FrameError::TruncatedAck);
                }
                Frame::Ack {
                    id,
                    credit: msg.get_u32(),
                }
            }
            TYPE_CLOSE => {
                if msg.is_empty() {
                    return Err(FrameError::TruncatedClose);
                }
                Frame::Close {
                    id,
                    shutdown: Shutdown::from_byte(msg.get_u8())?,
                }
            }
            TYPE_ERROR => {
                if msg.is_empty() {
                    return Err(FrameError::TruncatedError);
                }
                let shutdown = Shutdown::from_byte(msg.get_u8())?;
                let (code, n) = varint::decode(&msg).map_err(|_| FrameError::TruncatedError)?;
                msg.advance(n);
                Frame::Error { id, shutdown, code }
            }
            other => return Err(FrameError::UnknownType(other)),
        };
        if !msg.is_empty() {
            return Err(FrameError::TrailingBytes);
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Bytes {
        let bytes: Vec<u8> = s
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        Bytes::from(bytes)
    }

    /// The frame-encoding test vectors of docs/protocol.md, produced by the
    /// JS encoder.
    fn vectors() -> Vec<(Frame, &'static str)> {
        let id = StreamId;
        vec![
            (
                Frame::Ack {
                    id: id(0),
                    credit: 1_048_576,
                },
                "00 00 01 00 10 00 00",
            ),
            (
                Frame::Data {
                    id: id(3),
                    payload: Bytes::from_static(b"hi"),
                },
                "03 00 00 68 69",
            ),
            (
                Frame::Close {
                    id: id(2),
                    shutdown: Shutdown::Read,
                },
                "02 00 03 00",
            ),
            (
                Frame::Close {
                    id: id(2),
                    shutdown: Shutdown::Write,
                },
                "02 00 03 01",
            ),
            (
                Frame::Error {
                    id: id(5),
                    shutdown: Shutdown::Write,
                    code: 4002,
                },
                "05 00 02 01 4f a2",
            ),
            (
                Frame::Error {
                    id: id(4),
                    shutdown: Shutdown::Read,
                    code: 0,
                },
                "04 00 02 00 00",
            ),
            (
                Frame::Data {
                    id: id(100),
                    payload: Bytes::new(),
                },
                "40 64 00 00",
            ),
            (
                Frame::Ack {
                    id: id(64),
                    credit: 7,
                },
                "40 40 00 01 00 00 00 07",
            ),
            (
                Frame::Data {
                    id: id(16384),
                    payload: Bytes::from_static(b"x"),
                },
                "80 00 40 00 00 00 78",
            ),
            (
                Frame::Close {
                    id: id(1 << 30),
                    shutdown: Shutdown::Read,
                },
                "c0 00 00 00 40 00 00 00 00 03 00",
            ),
            (
                Frame::Error {
                    id: id(1),
                    shutdown: Shutdown::Read,
                    code: 1 << 30,
                },
                "01 00 02 00 c0 00 00 00 40 00 00 00",
            ),
        ]
    }

    #[test]
    fn protocol_vectors_encode() {
        for (frame, bytes) in vectors() {
            assert_eq!(frame.to_bytes(), hex(bytes), "{frame:?}");
            assert_eq!(frame.encoded_len(), hex(bytes).len());
        }
    }

    #[test]
    fn protocol_vectors_decode() {
        for (frame, bytes) in vectors() {
            assert_eq!(Frame::decode(hex(bytes)), Ok(frame), "{bytes}");
        }
    }

    #[test]
    fn encode_data_matches_the_frame_encoding() {
        for (id, payload) in [
            (3, &b"hi"[..]),
            (100, b""),
            (16384, b"x"),
            (1 << 30, b"abc"),
        ] {
            let id = StreamId(id);
            let frame = Frame::Data {
                id,
                payload: Bytes::copy_from_slice(payload),
            };
            let msg = Frame::encode_data(id, payload);
            assert_eq!(msg, frame.to_bytes());
            assert_eq!(msg.len(), Frame::data_header_len(id) + payload.len());
        }
    }

    #[test]
    fn data_payload_is_not_copied() {
        let msg = hex("03 00 00 68 69");
        let base = msg.as_ptr();
        let Ok(Frame::Data { payload, .. }) = Frame::decode(msg) else {
            panic!("not data")
        };
        assert_eq!(payload.as_ptr(), base.wrapping_add(3));
    }

    #[test]
    fn invalid_messages() {
        let cases = [
            ("", FrameError::TruncatedStreamId),
            ("40", FrameError::TruncatedStreamId),
            ("00", FrameError::TruncatedType),
            ("00 00", FrameError::TruncatedType),
            ("00 00 04", FrameError::UnknownType(4)),
            ("00 01 00", FrameError::UnknownType(256)),
            ("00 00 01 00 10 00", FrameError::TruncatedAck),
            ("00 00 03", FrameError::TruncatedClose),
            ("00 00 03 02", FrameError::BadShutdown(2)),
            ("00 00 02", FrameError::TruncatedError),
            ("00 00 02 01", FrameError::TruncatedError),
            ("00 00 02 01 40", FrameError::TruncatedError),
            ("00 00 02 07 00", FrameError::BadShutdown(7)),
            ("00 00 01 00 00 00 01 ff", FrameError::TrailingBytes),
            ("00 00 03 00 00", FrameError::TrailingBytes),
            ("00 00 02 00 00 00", FrameError::TrailingBytes),
        ];
        for (bytes, err) in cases {
            assert_eq!(Frame::decode(hex(bytes)), Err(err), "{bytes}");
        }
    }

    fn arb_shutdown() -> impl Strategy<Value = Shutdown> {
        prop_oneof![Just(Shutdown::Read), Just(Shutdown::Write)]
    }

    pub(crate) fn arb_frame() -> impl Strategy<Value = Frame> {
        let id = (0..=varint::MAX).prop_map(StreamId);
        prop_oneof![
            (id.clone(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(id, p)| {
                Frame::Data {
                    id,
                    payload: p.into(),
                }
            }),
            (id.clone(), any::<u32>()).prop_map(|(id, credit)| Frame::Ack { id, credit }),
            (id.clone(), arb_shutdown(), 0..=varint::MAX)
                .prop_map(|(id, shutdown, code)| Frame::Error { id, shutdown, code }),
            (id, arb_shutdown()).prop_map(|(id, shutdown)| Frame::Close { id, shutdown }),
        ]
    }

    proptest! {
        #[test]
        fn roundtrip(frame in arb_frame()) {
            let bytes = frame.to_bytes();
            prop_assert_eq!(bytes.len(), frame.encoded_len());
            prop_assert_eq!(Frame::decode(bytes), Ok(frame));
        }

        /// The decoder on arbitrary bytes: never panics, and whatever it
        /// accepts re-encodes to a message it decodes the same way.
        #[test]
        fn decode_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            if let Ok(frame) = Frame::decode(Bytes::from(bytes)) {
                prop_assert_eq!(Frame::decode(frame.to_bytes()), Ok(frame));
            }
        }
    }
}
