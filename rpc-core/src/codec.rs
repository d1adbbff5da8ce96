//! Framing: JSON values concatenated back to back (docs/protocol.md, "RPC framing").
//!
//! There is no length prefix and no delimiter, so the reader finds where each
//! value ends by scanning its structure: nesting depth, strings and escapes.
//! [`JsonSplitter`] is the pure, incremental part (bytes in, complete values
//! out, never rescanning a byte); [`MessageReader`] drives it from a
//! [`RecvStream`], slicing messages out of the carrier's buffers.
//!
//! The splitter only delimits values; `serde_json` validates them when they
//! are parsed. Garbage that never closes is caught by the size limit.
//!
//! Bytes after a value are never lost: [`MessageReader::into_parts`] hands
//! back whatever was read beyond the last message, which a raw call needs.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};

use crate::transport::RecvStream;

/// Default limit on one message: 1 MiB, as the JS stack.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Why the byte stream is not a sequence of JSON messages.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// A message did not start with `{` or `[` (JSON-RPC messages are objects).
    #[error("invalid JSON: unexpected byte 0x{0:02x} at the start of a message")]
    UnexpectedByte(u8),
    /// A closing bracket without a matching opening one.
    #[error("invalid JSON: unbalanced closing bracket")]
    Unbalanced,
    /// The message grew past the limit before it ended.
    #[error("message longer than the limit of {limit} bytes")]
    TooLong {
        /// The configured limit.
        limit: usize,
    },
    /// The stream ended in the middle of a message.
    #[error("stream ended inside a message")]
    Truncated,
}

/// Incremental splitter for concatenated JSON objects and arrays.
///
/// Feed it a growing buffer; [`JsonSplitter::split`] removes and returns each
/// complete value from the front. Scanning state survives between calls, so
/// every byte is looked at once however the input is chunked.
#[derive(Debug, Clone)]
pub struct JsonSplitter {
    max_len: usize,
    /// Bytes of the current value already scanned.
    scanned: usize,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl JsonSplitter {
    /// A splitter that refuses values longer than `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        JsonSplitter {
            max_len,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    /// Changes the limit for the values to come (the one being scanned too).
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len;
    }

    /// Whether a value has started but not ended.
    pub fn in_value(&self) -> bool {
        self.scanned > 0
    }

    /// Removes the next complete value from the front of `buf`.
    ///
    /// Whitespace before a value is dropped. `Ok(None)` means more bytes are
    /// needed; what is left in `buf` is the unfinished value.
    pub fn split(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let skip = self.start(buf)?;
        buf.advance(skip);
        Ok(self.scan(buf)?.map(|end| buf.split_to(end).freeze()))
    }

    /// [`JsonSplitter::split`] for bytes that are not growing: the value
    /// returned shares `chunk`'s memory (no copy). After `Ok(None)`, `chunk`
    /// holds the unfinished value; continue it by moving those bytes into a
    /// growing buffer and calling `split` on that.
    pub fn split_bytes(&mut self, chunk: &mut Bytes) -> Result<Option<Bytes>, FrameError> {
        let skip = self.start(chunk)?;
        chunk.advance(skip);
        Ok(self.scan(chunk)?.map(|end| chunk.split_to(end)))
    }

    /// Before a value starts: how many whitespace bytes to drop, checking the
    /// byte after them opens a value.
    fn start(&self, data: &[u8]) -> Result<usize, FrameError> {
        if self.scanned > 0 {
            return Ok(0);
        }
        let skip = data.iter().take_while(|b| b.is_ascii_whitespace()).count();
        match data.get(skip) {
            None | Some(b'{' | b'[') => Ok(skip),
            Some(&other) => Err(FrameError::UnexpectedByte(other)),
        }
    }

    /// Scans `data` (the current value from its first byte) from where the
    /// last call stopped; the value's length once it is complete.
    fn scan(&mut self, data: &[u8]) -> Result<Option<usize>, FrameError> {
        if data.is_empty() {
            return Ok(None);
        }
        let limit = data.len().min(self.max_len);
        let mut i = self.scanned;
        while i < limit {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                // Strings are most of a message: jump to the next quote or
                // backslash instead of stepping through every byte.
                match memchr::memchr2(b'"', b'\\', &data[i..limit]) {
                    Some(at) => {
                        i += at;
                        if data[i] == b'"' {
                            self.in_string = false;
                        } else {
                            self.escaped = true;
                        }
                        i += 1;
                    }
                    None => i = limit,
                }
                continue;
            }
            let b = data[i];
            i += 1;
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.checked_sub(1).ok_or(FrameError::Unbalanced)?;
                    if self.depth == 0 {
                        self.scanned = 0;
                        return Ok(Some(i));
                    }
                }
                _ => {}
            }
        }
        self.scanned = i;
        if i >= self.max_len {
            return Err(FrameError::TooLong {
                limit: self.max_len,
            });
        }
        Ok(None)
    }
}

/// An error while reading messages: I/O from the transport, or bad framing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The transport failed (reset, connection closed, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bytes are not a sequence of JSON messages.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads concatenated JSON messages from a [`RecvStream`].
///
/// Messages are sliced out of the chunks the carrier hands over
/// ([`RecvStream::poll_read_chunk`]) without copying; only a message split
/// across chunks is gathered into a buffer of its own. A message shares its
/// chunk's memory until it is dropped.
///
/// # Cancel safety
///
/// [`MessageReader::next`] is cancel safe: bytes already read stay in the
/// reader and scanning resumes where it stopped.
#[derive(Debug)]
pub struct MessageReader<R> {
    reader: R,
    /// The rest of the last chunk read, not yet split into messages. Used
    /// while `partial` is empty.
    chunk: Bytes,
    /// A message begun in one chunk and continued in the next ones.
    partial: BytesMut,
    splitter: JsonSplitter,
    eof: bool,
}

/// The most one read asks of the carrier: what a reader may hold beyond the
/// message it is reading, on top of the carrier's own window.
const READ_CHUNK: usize = 8 * 1024;

impl<R: RecvStream> MessageReader<R> {
    /// Wraps `reader`, refusing messages longer than `max_len`.
    pub fn new(reader: R, max_len: usize) -> Self {
        MessageReader {
            reader,
            chunk: Bytes::new(),
            partial: BytesMut::new(),
            splitter: JsonSplitter::new(max_len),
            eof: false,
        }
    }

    /// The next message's bytes, or `None` at a clean end of stream.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next message's bytes; `Ok(None)` at a clean end of stream.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, ReadError>> {
        loop {
            if self.partial.is_empty() {
                if let Some(msg) = self.splitter.split_bytes(&mut self.chunk)? {
                    return Poll::Ready(Ok(Some(msg)));
                }
                // The chunk ends inside a message: gather it from here on.
                self.partial.extend_from_slice(&self.chunk);
                self.chunk.clear();
            } else if let Some(msg) = self.splitter.split(&mut self.partial)? {
                return Poll::Ready(Ok(Some(msg)));
            }
            if self.eof {
                return Poll::Ready(if self.splitter.in_value() || !self.partial.is_empty() {
                    Err(FrameError::Truncated.into())
                } else {
                    Ok(None)
                });
            }
            match ready!(self.reader.poll_read_chunk(cx, READ_CHUNK))? {
                None => self.eof = true,
                Some(bytes) if self.partial.is_empty() => self.chunk = bytes,
                Some(bytes) => self.partial.extend_from_slice(&bytes),
            }
        }
    }

    /// Changes the size limit for the messages to come: a server reads a
    /// call's first message under a smaller limit than the rest.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.splitter.set_max_len(max_len);
    }

    /// The reader and the bytes read beyond the last returned message.
    pub fn into_parts(self) -> (R, BytesMut) {
        let rest = if self.partial.is_empty() {
            BytesMut::from(self.chunk)
        } else {
            let mut rest = self.partial;
            rest.extend_from_slice(&self.chunk);
            rest
        };
        (self.reader, rest)
    }

    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::pin::Pin;

    fn split_all(chunks: &[&[u8]], max: usize) -> Result<Vec<Bytes>, FrameError> {
        let mut s = JsonSplitter::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(v) = s.split(&mut buf)? {
                out.push(v);
            }
        }
        Ok(out)
    }

    #[test]
    fn splits_packed_and_separated_values() {
        let input = br#"{"a":1}{"b":"}{"} 
 {"c":[1,{"d":"\"]"}]}"#;
        let out = split_all(&[input], 1024).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(&out[1][..], br#"{"b":"}{"}"#);
        assert_eq!(&out[2][..], br#"{"c":[1,{"d":"\"]"}]}"#);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(
            split_all(&[b"this is not json"], 1024),
            Err(FrameError::UnexpectedByte(b't'))
        );
        assert_eq!(
            split_all(&[b"{}}"], 1024),
            Err(FrameError::UnexpectedByte(b'}'))
        );
    }

    #[test]
    fn unfinished_value_over_limit_fails() {
        let mut s = JsonSplitter::new(16);
        let mut buf = BytesMut::from(&b"{\"a\":\"012345678"[..]);
        assert_eq!(s.split(&mut buf), Ok(None));
        buf.extend_from_slice(b"0123456789");
        assert_eq!(s.split(&mut buf), Err(FrameError::TooLong { limit: 16 }));
        // A complete value over the limit fails too.
        let mut s = JsonSplitter::new(4);
        let mut buf = BytesMut::from(&b"{\"a\":1}"[..]);
        assert_eq!(s.split(&mut buf), Err(FrameError::TooLong { limit: 4 }));
        // A value of exactly the limit passes.
        let mut s = JsonSplitter::new(7);
        let mut buf = BytesMut::from(&b"{\"a\":1}"[..]);
        assert_eq!(s.split(&mut buf).unwrap().unwrap().len(), 7);
    }

    #[test]
    fn bytes_after_a_value_stay_in_the_buffer() {
        let mut s = JsonSplitter::new(1024);
        let mut buf = BytesMut::from(&b"{\"method\":\"raw\"}raw bytes here"[..]);
        assert!(s.split(&mut buf).unwrap().is_some());
        assert_eq!(&buf[..], b"raw bytes here");
    }

    /// A receiving half that hands out the given chunks, then the end.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Chunks {
        fn new(chunks: &[&[u8]]) -> Self {
            Chunks(chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect())
        }
    }

    impl tokio::io::AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            while let Some(front) = self.0.front_mut() {
                if front.is_empty() {
                    self.0.pop_front();
                    continue;
                }
                let n = front.len().min(buf.remaining());
                buf.put_slice(&front.split_to(n));
                break;
            }
            Poll::Ready(Ok(()))
        }
    }

    impl RecvStream for Chunks {
        fn stop(&mut self, _: u64) {}

        fn poll_read_chunk(
            &mut self,
            _: &mut Context<'_>,
            max: usize,
        ) -> Poll<io::Result<Option<Bytes>>> {
            while let Some(front) = self.0.front_mut() {
                if front.is_empty() {
                    self.0.pop_front();
                    continue;
                }
                let n = front.len().min(max);
                return Poll::Ready(Ok(Some(front.split_to(n))));
            }
            Poll::Ready(Ok(None))
        }
    }

    /// Every message `reader` yields, then what was left after the last one.
    async fn read_all(chunks: &[&[u8]], max: usize) -> (Result<Vec<Bytes>, ReadError>, BytesMut) {
        let mut reader = MessageReader::new(Chunks::new(chunks), max);
        let mut out = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => break,
                Err(e) => return (Err(e), reader.into_parts().1),
            }
        }
        (Ok(out), reader.into_parts().1)
    }

    #[tokio::test]
    async fn reader_reports_truncation_and_clean_end() {
        let mut r = MessageReader::new(Chunks::new(&[b"{\"a\":1} {\"b\""]), 1024);
        assert_eq!(&r.next().await.unwrap().unwrap()[..], b"{\"a\":1}");
        assert!(matches!(
            r.next().await,
            Err(ReadError::Frame(FrameError::Truncated))
        ));
        let mut r = MessageReader::new(Chunks::new(&[b"{\"a\":1}\n"]), 1024);
        assert!(r.next().await.unwrap().is_some());
        assert!(r.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reader_slices_messages_out_of_a_chunk_without_copying() {
        let chunk = Bytes::from_static(b"{\"a\":1}{\"b\":2}");
        let mut r = MessageReader::new(Chunks(vec![chunk.clone()].into()), 1024);
        let first = r.next().await.unwrap().unwrap();
        assert_eq!(first.as_ptr(), chunk.as_ptr());
        let second = r.next().await.unwrap().unwrap();
        assert_eq!(&second[..], b"{\"b\":2}");
        assert!(r.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reader_hands_back_the_bytes_after_a_header() {
        for chunks in [
            &[&b"{\"method\":\"raw\"}raw "[..], b"bytes"][..],
            &[b"{\"method\"", b":\"raw\"}raw", b" bytes"],
        ] {
            let mut r = MessageReader::new(Chunks::new(chunks), 1024);
            assert_eq!(
                &r.next().await.unwrap().unwrap()[..],
                b"{\"method\":\"raw\"}"
            );
            let (mut rest, mut buf) = r.into_parts();
            while let Poll::Ready(Ok(Some(more))) =
                rest.poll_read_chunk(&mut Context::from_waker(std::task::Waker::noop()), 64)
            {
                buf.extend_from_slice(&more);
            }
            assert_eq!(&buf[..], b"raw bytes");
        }
    }

    #[tokio::test]
    async fn reader_enforces_the_limit_across_chunks() {
        let (out, _) = read_all(&[b"{\"a\":\"0123", b"456789\"}"], 8).await;
        assert!(matches!(
            out,
            Err(ReadError::Frame(FrameError::TooLong { limit: 8 }))
        ));
        let (out, _) = read_all(&[b"{\"a\":", b"1}"], 7).await;
        assert_eq!(out.unwrap().len(), 1);
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            // Strings full of the characters that matter to the scanner.
            "[a-z{}\\[\\]\"\\\\ \n\u{e9}\u{1F600}]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z\"{}]{0,6}", inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn message() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            prop::collection::btree_map("[a-z\"{}]{0,6}", json_value(), 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            prop::collection::vec(json_value(), 0..4).prop_map(serde_json::Value::Array),
        ]
    }

    proptest! {
        /// Every split of every concatenation yields the same values.
        #[test]
        fn any_chunking_yields_the_same_values(
            values in prop::collection::vec(message(), 1..6),
            seps in prop::collection::vec("[ \n\t\r]{0,2}", 6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut input = Vec::new();
            for (i, v) in values.iter().enumerate() {
                input.extend_from_slice(seps[i].as_bytes());
                input.extend_from_slice(&serde_json::to_vec(v).unwrap());
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&input[last..p]);
                last = p;
            }
            chunks.push(&input[last..]);
            let out = split_all(&chunks, usize::MAX).unwrap();
            let parsed: Vec<serde_json::Value> =
                out.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
            prop_assert_eq!(&parsed, &values);
            // The reader, which slices whole chunks and gathers split ones,
            // yields the same values.
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (out, rest) = rt.block_on(read_all(&chunks, usize::MAX));
            let parsed: Vec<serde_json::Value> =
                out.unwrap().iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
            prop_assert_eq!(parsed, values);
            prop_assert!(rest.iter().all(|b| b.is_ascii_whitespace()));
        }

        /// Arbitrary bytes never panic the splitter and never grow past the limit.
        #[test]
        fn arbitrary_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut s = JsonSplitter::new(100);
            let mut buf = BytesMut::new();
            for chunk in &chunks {
                buf.extend_from_slice(chunk);
                loop {
                    match s.split(&mut buf) {
                        Ok(Some(v)) => prop_assert!(v.len() <= 100),
                        Ok(None) => break,
                        Err(_) => return Ok(()),
                    }
                }
            }
        }
    }
}
