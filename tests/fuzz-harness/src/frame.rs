//! `ws_frame`: the mux frame decoder (`transport-ws/src/mux/frame.rs`).
//!
//! Checked: decoding arbitrary bytes never panics; a frame that decodes
//! re-encodes (shortest varints) to at most as many bytes, which decode to
//! the same frame, and re-encoding that is a fixed point. The same bytes are
//! also read as a frame to build (`arbitrary`): it encodes to
//! `encoded_len()` bytes and decodes back to itself, error codes above
//! 2^62 − 1 saturated as docs/protocol.md says.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use strand_transport_ws::mux::varint;
use strand_transport_ws::mux::{Frame, Shutdown, StreamId};

#[derive(Arbitrary, Debug)]
enum Built {
    Data { id: u64, payload: Vec<u8> },
    Ack { id: u64, credit: u32 },
    Error { id: u64, write: bool, code: u64 },
    Close { id: u64, write: bool },
}

fn shutdown(write: bool) -> Shutdown {
    if write {
        Shutdown::Write
    } else {
        Shutdown::Read
    }
}

/// Runs one input.
pub fn ws_frame(data: &[u8]) {
    let msg = Bytes::copy_from_slice(data);
    if let Ok(frame) = Frame::decode(msg) {
        let bytes = frame.to_bytes();
        assert_eq!(bytes.len(), frame.encoded_len(), "{frame:?}");
        assert!(bytes.len() <= data.len(), "{frame:?} grew when re-encoded");
        let again = Frame::decode(bytes.clone()).expect("a re-encoded frame decodes");
        assert_eq!(again, frame);
        assert_eq!(again.to_bytes(), bytes, "re-encoding is not a fixed point");
        if let Frame::Data { id, payload } = &frame {
            assert_eq!(Frame::encode_data(*id, payload), bytes);
        }
    }

    let Ok(built) = Built::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    // Ids come from our own counters and never pass the varint limit.
    let id = |id: u64| StreamId(id & varint::MAX);
    let (frame, expected) = match built {
        Built::Data { id: i, payload } => {
            let f = Frame::Data {
                id: id(i),
                payload: payload.into(),
            };
            (f.clone(), f)
        }
        Built::Ack { id: i, credit } => {
            let f = Frame::Ack { id: id(i), credit };
            (f.clone(), f)
        }
        Built::Error { id: i, write, code } => (
            Frame::Error {
                id: id(i),
                shutdown: shutdown(write),
                code,
            },
            Frame::Error {
                id: id(i),
                shutdown: shutdown(write),
                code: code.min(varint::MAX),
            },
        ),
        Built::Close { id: i, write } => {
            let f = Frame::Close {
                id: id(i),
                shutdown: shutdown(write),
            };
            (f.clone(), f)
        }
    };
    let bytes = frame.to_bytes();
    assert_eq!(bytes.len(), frame.encoded_len(), "{frame:?}");
    assert_eq!(Frame::decode(bytes), Ok(expected));
}
