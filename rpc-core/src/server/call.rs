//! What flows through the server's service stack: a [`CallRequest`] in, a
//! [`CallResponse`] out. Middleware (tower `Layer`s) sees and may change both.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, ReadBuf};

use crate::codec::{FrameError, MessageReader, ReadError};
use crate::context::Context;
use crate::error::RpcError;
use crate::message::{error_codes, IncomingMessage};
use crate::transport::{BoxRecvStream, StreamError};

/// One incoming call, after its first message was read.
pub struct CallRequest {
    /// The call's context; layers may set the identity or shorten the deadline.
    pub ctx: Context,
    /// `params` of the first message, as raw JSON (`None` when absent).
    pub params: Option<Box<RawValue>>,
    /// The rest of the stream: further messages, or raw bytes.
    pub input: CallInput,
}

impl fmt::Debug for CallRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallRequest")
            .field("ctx", &self.ctx)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// What a call answers: written to the stream by the server.
pub enum CallResponse {
    /// One encoded response message.
    Unary(Bytes),
    /// Encoded response messages, one per item; an error item ends the stream
    /// with that error message.
    Stream(BoxStream<'static, Result<Bytes, RpcError>>),
    /// A raw call: one encoded leading response, then raw bytes. An error item
    /// in the body resets the stream (raw bytes cannot carry an error message).
    Raw {
        /// The encoded leading response.
        leading: Bytes,
        /// The bytes that follow.
        body: RawBody,
    },
}

impl fmt::Debug for CallResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallResponse::Unary(b) => f.debug_tuple("Unary").field(b).finish(),
            CallResponse::Stream(_) => f.write_str("Stream(..)"),
            CallResponse::Raw { leading, .. } => f
                .debug_struct("Raw")
                .field("leading", leading)
                .finish_non_exhaustive(),
        }
    }
}

/// The bytes a raw handler sends after its leading response.
pub struct RawBody(BoxStream<'static, io::Result<Bytes>>);

impl RawBody {
    /// A body from a stream of chunks.
    pub fn from_stream(stream: impl Stream<Item = io::Result<Bytes>> + Send + 'static) -> Self {
        RawBody(stream.boxed())
    }

    /// A body read from an `AsyncRead` until its end.
    pub fn from_reader(reader: impl AsyncRead + Send + 'static) -> Self {
        RawBody(tokio_util::io::ReaderStream::new(reader).boxed())
    }

    /// An empty body.
    pub fn empty() -> Self {
        RawBody(futures_util::stream::empty().boxed())
    }
}

impl Stream for RawBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next_unpin(cx)
    }
}

/// The part of a call's stream after its first message.
///
/// Dropped unconsumed (a unary or server-streaming call, or a call refused
/// before its handler), it keeps reading the caller's side until its end for
/// at most one second before stopping it, off the call's task (a JS unary
/// caller ends its side only after reading the response).
pub struct CallInput {
    reader: Option<MessageReader<BoxRecvStream>>,
}

/// How long an input nobody needs any more is still read before it is
/// stopped. A JS unary caller ends its side only after it read the response,
/// and on QUIC fails the call if that side was stopped first; it needs about
/// one round trip. One second leaves a wide margin and bounds what a caller
/// that never ends its side can cost.
pub(crate) const INPUT_LINGER: Duration = Duration::from_secs(1);

impl CallInput {
    pub(crate) fn new(reader: MessageReader<BoxRecvStream>) -> Self {
        CallInput {
            reader: Some(reader),
        }
    }

    fn take(&mut self) -> MessageReader<BoxRecvStream> {
        self.reader
            .take()
            .expect("a call input is consumed at most once")
    }

    /// Typed messages: `first` (the first message's params) and then each
    /// further message's params.
    pub fn into_messages<P: DeserializeOwned>(
        mut self,
        first: Option<Result<P, RpcError>>,
    ) -> Incoming<P> {
        Incoming {
            first,
            reader: Some(self.take()),
            _marker: PhantomData,
        }
    }

    /// Raw bytes after the first message, including any that arrived with it.
    pub fn into_raw(mut self) -> RawReader {
        let (inner, buf) = self.take().into_parts();
        RawReader { buf, inner }
    }

    /// Reads and discards further messages. Resolves only with an error: when
    /// the peer resets the stream or sends bad bytes. A clean end never resolves,
    /// so this can be raced against a handler.
    pub(crate) async fn fail_on_error(mut self) -> RpcError {
        let Some(reader) = self.reader.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match reader.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => std::future::pending::<()>().await,
                Err(e) => return read_error_to_rpc(e),
            }
        }
    }
}

impl Drop for CallInput {
    fn drop(&mut self) {
        let Some(mut reader) = self.reader.take() else {
            return;
        };
        // Usually the caller's end is already here (a strand client finishes
        // right after its request): then no task is needed.
        loop {
            match reader.next().now_or_never() {
                Some(Ok(Some(_))) => continue,
                Some(_) => return,
                None => break,
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let drain = async { while let Ok(Some(_)) = reader.next().await {} };
            let _ = tokio::time::timeout(INPUT_LINGER, drain).await;
        });
    }
}

/// Maps a read failure to the error the caller gets.
pub(crate) fn read_error_to_rpc(err: ReadError) -> RpcError {
    match err {
        ReadError::Frame(FrameError::TooLong { limit }) => RpcError::new(
            error_codes::MESSAGE_TOO_LONG,
            format!("message longer than {limit} bytes"),
        ),
        ReadError::Frame(e) => RpcError::new(error_codes::PARSE_ERROR, e.to_string()),
        ReadError::Io(e) => match StreamError::from_io(&e) {
            Some(StreamError::Reset(code)) => RpcError::new(
                error_codes::STREAM_ENDED,
                format!("caller reset the stream with code {code}"),
            ),
            _ => RpcError::new(error_codes::STREAM_ENDED, format!("stream failed: {e}")),
        },
    }
}

/// Maps a `serde_json` failure on a received message to the caller's error.
pub(crate) fn parse_error_to_rpc(err: &serde_json::Error) -> RpcError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof => {
            RpcError::new(error_codes::PARSE_ERROR, format!("invalid JSON: {err}"))
        }
        Category::Data | Category::Io => RpcError::new(
            error_codes::INVALID_REQUEST,
            format!("invalid request: {err}"),
        ),
    }
}

/// Parses params (absent params parse as JSON `null`).
pub(crate) fn parse_params<P: DeserializeOwned>(raw: Option<&RawValue>) -> Result<P, RpcError> {
    let text = raw.map_or("null", RawValue::get);
    serde_json::from_str(text).map_err(|e| RpcError::invalid_params(format!("invalid params: {e}")))
}

/// The messages of a client-streaming or duplex call, typed: the first
/// message's params, then each further message's, until the caller ends its
/// side. A bad message yields one error and ends the stream.
///
/// Dropping it stops the caller's sending side.
pub struct Incoming<P> {
    first: Option<Result<P, RpcError>>,
    reader: Option<MessageReader<BoxRecvStream>>,
    _marker: PhantomData<fn() -> P>,
}

impl<P> Unpin for Incoming<P> {}

impl<P: DeserializeOwned> Stream for Incoming<P> {
    type Item = Result<P, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            if first.is_err() {
                self.reader = None;
            }
            return Poll::Ready(Some(first));
        }
        let Some(reader) = self.reader.as_mut() else {
            return Poll::Ready(None);
        };
        let item = match ready!(reader.poll_next(cx)) {
            Ok(Some(bytes)) => match IncomingMessage::parse(&bytes) {
                Ok(msg) => parse_params(msg.params),
                Err(e) => Err(parse_error_to_rpc(&e)),
            },
            Ok(None) => {
                self.reader = None;
                return Poll::Ready(None);
            }
            Err(e) => Err(read_error_to_rpc(e)),
        };
        if item.is_err() {
            self.reader = None;
        }
        Poll::Ready(Some(item))
    }
}

/// The raw bytes a raw call's caller sends after its header.
pub struct RawReader {
    buf: BytesMut,
    inner: BoxRecvStream,
}

impl RawReader {
    /// Bytes already read (`buf`), then the rest of `inner`.
    pub(crate) fn new(buf: BytesMut, inner: BoxRecvStream) -> Self {
        RawReader { buf, inner }
    }

    /// Stops the stream: the peer's writes fail with this code.
    pub fn stop(&mut self, code: u64) {
        crate::transport::RecvStream::stop(&mut self.inner, code);
    }
}

impl AsyncRead for RawReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.buf.is_empty() {
            let n = self.buf.len().min(out.remaining());
            out.put_slice(&self.buf[..n]);
            self.buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}
