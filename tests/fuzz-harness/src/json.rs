//! `json_reader`: the JSON message splitter and reader
//! (`rpc-core/src/codec.rs`, `JsonSplitter` and `MessageReader`).
//!
//! The input is a size limit, chunk lengths and the byte stream (the
//! layout of `util::header`).
//! Checked:
//! - whatever the chunking (and `Pending`s between chunks), the reader yields
//!   the same messages and ends the same way (clean end, truncated, or the
//!   same framing error) as the splitter over the whole stream at once;
//! - every message starts with `{` or `[`, ends with `}` or `]`, fits the
//!   limit, and the messages with the whitespace between them are exactly
//!   the stream's bytes, in order;
//! - when `serde_json` reads the whole stream as objects and arrays within
//!   the limit, the splitter cuts exactly where serde_json does;
//! - after the first message, the bytes the reader hands back
//!   (`into_parts`) and the rest of the stream are exactly the bytes after
//!   that message (what a raw call relies on).

use bytes::{Bytes, BytesMut};
use serde::de::IgnoredAny;
use strand_rpc_core::codec::{FrameError, JsonSplitter, MessageReader, ReadError};
use strand_rpc_core::transport::RecvStream;

use crate::util::{block_on, cut, header, Chunks};

/// How a stream of messages ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    Error(FrameError),
}

/// The splitter over the whole stream at once.
fn split_whole(data: &[u8], max_len: usize) -> (Vec<Bytes>, End) {
    let mut splitter = JsonSplitter::new(max_len);
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    loop {
        match splitter.split(&mut buf) {
            Ok(Some(msg)) => out.push(msg),
            Ok(None) => break,
            Err(e) => return (out, End::Error(e)),
        }
    }
    let end = if splitter.in_value() || !buf.is_empty() {
        End::Error(FrameError::Truncated)
    } else {
        End::Clean
    };
    (out, end)
}

fn read_chunked(chunks: Vec<Option<Bytes>>, max_len: usize) -> (Vec<Bytes>, End) {
    let mut reader = MessageReader::new(Chunks::new(chunks), max_len);
    let mut out = Vec::new();
    loop {
        match block_on(reader.next()) {
            Ok(Some(msg)) => out.push(msg),
            Ok(None) => {
                let (_, rest) = reader.into_parts();
                assert!(
                    rest.iter().all(u8::is_ascii_whitespace),
                    "bytes left after a clean end: {rest:?}"
                );
                return (out, End::Clean);
            }
            Err(ReadError::Frame(e)) => return (out, End::Error(e)),
            Err(e) => panic!("the chunk source never fails: {e}"),
        }
    }
}

/// Where serde_json cuts the stream, if it reads all of it as objects and
/// arrays of at most `max_len` bytes.
fn serde_cuts(data: &[u8], max_len: usize) -> Option<Vec<(usize, usize)>> {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<IgnoredAny>();
    let mut cuts = Vec::new();
    let mut at = 0;
    loop {
        let start = at
            + data[at..]
                .iter()
                .take_while(|b| b" \t\n\r".contains(b))
                .count();
        match values.next() {
            None => return Some(cuts),
            Some(Err(_)) => return None,
            Some(Ok(_)) => {
                let end = values.byte_offset();
                if !matches!(data[start], b'{' | b'[') || end - start > max_len {
                    return None;
                }
                cuts.push((start, end));
                at = end;
            }
        }
    }
}

/// Runs one input.
pub fn json_reader(data: &[u8]) {
    let Some((limit, _, cuts, stream)) = header(data) else {
        return;
    };
    let max_len = if limit == u16::MAX {
        usize::MAX
    } else {
        1 + usize::from(limit % 4096)
    };

    let (whole, whole_end) = split_whole(stream, max_len);
    // The messages, with the whitespace before each, are the stream.
    let mut at = 0;
    for msg in &whole {
        at += stream[at..]
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        assert_eq!(
            &stream[at..at + msg.len()],
            &msg[..],
            "message out of place"
        );
        assert!(matches!(msg[0], b'{' | b'['), "{msg:?}");
        assert!(matches!(msg[msg.len() - 1], b'}' | b']'), "{msg:?}");
        assert!(
            msg.len() <= max_len,
            "{} bytes over the limit {max_len}",
            msg.len()
        );
        at += msg.len();
    }
    if whole_end == End::Clean {
        assert!(stream[at..].iter().all(u8::is_ascii_whitespace));
    }

    let (chunked, chunked_end) = read_chunked(cut(stream, cuts), max_len);
    assert_eq!(chunked, whole, "the chunking changed the messages");
    assert_eq!(chunked_end, whole_end, "the chunking changed the end");

    if let Some(serde) = serde_cuts(stream, max_len) {
        let cuts: Vec<&[u8]> = serde.iter().map(|&(s, e)| &stream[s..e]).collect();
        let ours: Vec<&[u8]> = whole.iter().map(|m| &m[..]).collect();
        assert_eq!(ours, cuts, "the splitter disagrees with serde_json");
        assert_eq!(whole_end, End::Clean);
    }

    // A raw call: the first message, then every byte after it.
    if let Some(first) = whole.first() {
        let start = stream
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        let after = &stream[start + first.len()..];
        let mut reader = MessageReader::new(Chunks::new(cut(stream, cuts)), max_len);
        let msg = block_on(reader.next()).expect("the first message reads");
        assert_eq!(msg.as_ref(), Some(first));
        let (mut rest, mut buf) = reader.into_parts();
        while let Some(more) =
            block_on(std::future::poll_fn(|cx| rest.poll_read_chunk(cx, 64))).unwrap()
        {
            buf.extend_from_slice(&more);
        }
        assert_eq!(&buf[..], after, "bytes after the first message were lost");
    }
}
