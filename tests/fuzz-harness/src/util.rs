//! Small pieces the harnesses share.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use arbitrary::Unstructured;
use bytes::Bytes;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use strand_rpc_core::message::IncomingMessage;
use strand_rpc_core::transport::RecvStream;
use tokio::io::{AsyncRead, ReadBuf};

/// Polls `fut` to completion on this thread. Only for futures that wait on
/// nothing but [`Chunks`]-like sources, which are always ready after at most
/// one `Pending`; panics if a future stays pending.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("future still pending after a million polls");
}

/// Reads the fixed layout the byte-stream targets start with: a big-endian
/// `u16` (a limit), a flags byte, a count `n` (mod 17) and `n` chunk
/// lengths; the rest of the input is the stream. Easy to write seeds for.
pub(crate) fn header(data: &[u8]) -> Option<(u16, u8, &[u8], &[u8])> {
    let mut u = Unstructured::new(data);
    let limit = u.bytes(2).ok()?;
    let limit = u16::from_be_bytes([limit[0], limit[1]]);
    let flags = *u.bytes(1).ok()?.first()?;
    let n = *u.bytes(1).ok()?.first()? % 17;
    let cuts = u.bytes(usize::from(n)).ok()?;
    Some((limit, flags, cuts, u.take_rest()))
}

/// Cuts `data` into chunks of the lengths `cuts` gives in turn (cycled); a
/// zero length stands for a `Pending` before the next chunk.
pub(crate) fn cut(data: &[u8], cuts: &[u8]) -> Vec<Option<Bytes>> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let len = cuts.get(i % cuts.len().max(1)).copied().unwrap_or(u8::MAX);
        i += 1;
        if len == 0 {
            out.push(None);
            if i > 4 * data.len() + 8 {
                // A cut list of zeros only: no more pauses.
                out.push(Some(Bytes::copy_from_slice(rest)));
                break;
            }
            continue;
        }
        let (head, tail) = rest.split_at(usize::from(len).min(rest.len()));
        out.push(Some(Bytes::copy_from_slice(head)));
        rest = tail;
    }
    out
}

/// A receiving half that hands out given chunks (`None`: one `Pending`),
/// then the end.
#[derive(Debug)]
pub(crate) struct Chunks(pub VecDeque<Option<Bytes>>);

impl Chunks {
    pub(crate) fn new(chunks: Vec<Option<Bytes>>) -> Self {
        Chunks(chunks.into())
    }

    fn take(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<Option<Bytes>> {
        loop {
            match self.0.front_mut() {
                None => return Poll::Ready(None),
                Some(None) => {
                    self.0.pop_front();
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Some(Some(front)) if front.is_empty() => {
                    self.0.pop_front();
                }
                Some(Some(front)) => {
                    let n = front.len().min(max.max(1));
                    let out = front.split_to(n);
                    if front.is_empty() {
                        self.0.pop_front();
                    }
                    return Poll::Ready(Some(out));
                }
            }
        }
    }
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let max = buf.remaining();
        if let Some(bytes) = std::task::ready!(self.take(cx, max)) {
            buf.put_slice(&bytes);
        }
        Poll::Ready(Ok(()))
    }
}

impl RecvStream for Chunks {
    fn stop(&mut self, _code: u64) {}

    fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        self.take(cx, max).map(Ok)
    }
}

/// The reply metadata a first response carries, as docs/protocol.md
/// ("Metadata") puts it: the `metadata` member of an object result when it
/// is an object, else the response's own `metadata` member beside the
/// result or error when that is an object. A result object that names
/// `metadata` twice is ambiguous and carries none (serde refuses the
/// duplicate; the member beside it counts then).
pub(crate) fn reply_metadata(msg: &IncomingMessage<'_>) -> Option<Map<String, Value>> {
    let beside = || {
        msg.metadata
            .and_then(|raw| serde_json::from_str::<Map<String, Value>>(raw.get()).ok())
    };
    if msg.error.is_some() {
        return beside();
    }
    let result = msg.result?;
    let in_result = serde_json::from_str::<ResultMetadata>(result.get())
        .ok()
        .and_then(|r| r.0);
    in_result.or_else(beside)
}

/// The `metadata` member of an object, when it has exactly one and that
/// is an object; `None` for anything else (an error if the text is not an
/// object, or names `metadata` twice).
struct ResultMetadata(Option<Map<String, Value>>);

impl<'de> Deserialize<'de> for ResultMetadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = ResultMetadata;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ResultMetadata, A::Error> {
                let mut found: Option<Value> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "metadata" {
                        if found.is_some() {
                            return Err(serde::de::Error::custom("metadata twice"));
                        }
                        found = Some(map.next_value::<Value>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ResultMetadata(match found {
                    Some(Value::Object(m)) => Some(m),
                    _ => None,
                }))
            }
        }
        d.deserialize_map(Visit)
    }
}
