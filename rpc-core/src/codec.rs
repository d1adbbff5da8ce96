//! Framing: JSON values concatenated back to back (PROTOCOL.md 2.2).
//!
//! There is no length prefix and no delimiter, so the reader finds where each
//! value ends by scanning its structure: nesting depth, strings and escapes.
//! [`JsonSplitter`] is the pure, incremental part (bytes in, complete values
//! out, never rescanning a byte); [`MessageReader`] drives it from an
//! `AsyncRead`.
//!
//! The splitter only delimits values; `serde_json` validates them when they
//! are parsed. Garbage that never closes is caught by the size limit.
//!
//! Bytes after a value are never lost: [`MessageReader::into_parts`] hands
//! back whatever was read beyond the last message, which a raw call needs.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncRead;
use tokio_util::io::poll_read_buf;

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

    /// Whether a value has started but not ended.
    pub fn in_value(&self) -> bool {
        self.scanned > 0
    }

    /// Removes the next complete value from the front of `buf`.
    ///
    /// Whitespace before a value is dropped. `Ok(None)` means more bytes are
    /// needed; what is left in `buf` is the unfinished value.
    pub fn split(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if self.scanned == 0 {
            let skip = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let _ = buf.split_to(skip);
            match buf.first() {
                None => return Ok(None),
                Some(b'{' | b'[') => {}
                Some(&other) => return Err(FrameError::UnexpectedByte(other)),
            }
        }
        let limit = buf.len().min(self.max_len);
        let mut i = self.scanned;
        while i < limit {
            let b = buf[i];
            i += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.checked_sub(1).ok_or(FrameError::Unbalanced)?;
                    if self.depth == 0 {
                        self.scanned = 0;
                        return Ok(Some(buf.split_to(i).freeze()));
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

/// Reads concatenated JSON messages from an `AsyncRead`.
///
/// # Cancel safety
///
/// [`MessageReader::next`] is cancel safe: bytes already read stay in the
/// buffer and scanning resumes where it stopped.
#[derive(Debug)]
pub struct MessageReader<R> {
    reader: R,
    buf: BytesMut,
    splitter: JsonSplitter,
    eof: bool,
}

const READ_CHUNK: usize = 8 * 1024;

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Wraps `reader`, refusing messages longer than `max_len`.
    pub fn new(reader: R, max_len: usize) -> Self {
        Self::with_buffer(reader, BytesMut::new(), max_len)
    }

    /// Wraps `reader` with bytes already read from it.
    pub fn with_buffer(reader: R, buf: BytesMut, max_len: usize) -> Self {
        MessageReader {
            reader,
            buf,
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
            if let Some(msg) = self.splitter.split(&mut self.buf)? {
                return Poll::Ready(Ok(Some(msg)));
            }
            if self.eof {
                return Poll::Ready(if self.splitter.in_value() || !self.buf.is_empty() {
                    Err(FrameError::Truncated.into())
                } else {
                    Ok(None)
                });
            }
            self.buf.reserve(READ_CHUNK);
            if ready!(poll_read_buf(Pin::new(&mut self.reader), cx, &mut self.buf))? == 0 {
                self.eof = true;
            }
        }
    }

    /// The reader and the bytes read beyond the last returned message.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.reader, self.buf)
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

    #[tokio::test]
    async fn reader_reports_truncation_and_clean_end() {
        let mut r = MessageReader::new(&b"{\"a\":1} {\"b\""[..], 1024);
        assert_eq!(&r.next().await.unwrap().unwrap()[..], b"{\"a\":1}");
        assert!(matches!(
            r.next().await,
            Err(ReadError::Frame(FrameError::Truncated))
        ));
        let mut r = MessageReader::new(&b"{\"a\":1}\n"[..], 1024);
        assert!(r.next().await.unwrap().is_some());
        assert!(r.next().await.unwrap().is_none());
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
            prop_assert_eq!(parsed, values);
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
