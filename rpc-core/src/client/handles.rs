//! The handles of a call in progress: [`RequestSink`] for the input of a
//! streaming call, [`ResponseStream`] for its results, and the two
//! composites [`ClientStreamingCall`] and [`RawCall`] (or, pipelined,
//! [`PipelinedRawCall`]). Dropping any of them resets or stops the call's
//! stream.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use futures_util::stream::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep_until, Instant, Sleep};

use super::{finish, no_response, with_deadline, Start};
use crate::codec::{MessageReader, ReadError};
use crate::error::ClientError;
use crate::message::{self, IncomingMessage, MetadataOnly};
use crate::server::RawReader;
use crate::transport::{self, BoxRecvStream, BoxSendStream, StreamError};

/// The requests of a client-streaming or duplex call.
///
/// The first message sent carries the call's metadata and is written on its
/// own. Call [`RequestSink::finish`] to end the input; dropping the sink
/// without it aborts the call's input (the server sees a reset).
pub struct RequestSink<P> {
    pub(super) send: BoxSendStream,
    pub(super) method: String,
    pub(super) start: Option<Start<'static>>,
    pub(super) deadline: Option<(Instant, Duration)>,
    pub(super) _marker: PhantomData<fn(&P)>,
}

impl<P: Serialize> RequestSink<P> {
    /// Sends one message. Waits while the transport pushes back.
    pub async fn send(&mut self, params: &P) -> Result<(), ClientError> {
        let deadline = self.deadline;
        with_deadline(deadline, async {
            match self.start.take() {
                Some(start) => {
                    let header = start.header(params)?;
                    self.send.write_all(&header).await?;
                    transport::write_boundary(&mut self.send).await?;
                }
                None => {
                    // The method is only read from the first message; later ones
                    // still name it, as the JS client does.
                    let bytes = message::encode_request(&self.method, params)?;
                    self.send.write_all(&bytes).await?;
                }
            }
            Ok(())
        })
        .await
        // The first message was written, or being written: the server may
        // have started the call.
        .map_err(|e: ClientError| e.lost_if_closed(true))
    }

    /// Ends the input gracefully.
    pub async fn finish(mut self) -> Result<(), ClientError> {
        if self.start.is_some() {
            return Err(ClientError::Protocol(
                "a streaming call must send at least one message: the first one names the method"
                    .into(),
            ));
        }
        finish(&mut self.send)
            .await
            .map_err(|e| e.lost_if_closed(true))
    }

    /// Aborts the input with `code`.
    pub fn reset(mut self, code: u64) {
        transport::SendStream::reset(&mut self.send, code);
    }
}

/// The responses of a call.
///
/// Yields each result; a JSON-RPC error from the server is yielded as
/// [`ClientError::Remote`] and ends the stream. Dropping it stops the stream,
/// which cancels the server's handler.
pub struct ResponseStream<R> {
    pub(super) reader: MessageReader<BoxRecvStream>,
    pub(super) deadline: Option<(Pin<Box<Sleep>>, Duration)>,
    pub(super) metadata: Option<Map<String, Value>>,
    first: bool,
    done: bool,
    _marker: PhantomData<fn() -> R>,
}

impl<R> Unpin for ResponseStream<R> {}

impl<R: DeserializeOwned> ResponseStream<R> {
    pub(super) fn new(
        reader: MessageReader<BoxRecvStream>,
        deadline: Option<(Instant, Duration)>,
    ) -> Self {
        ResponseStream {
            reader,
            deadline: deadline.map(|(at, t)| (Box::pin(sleep_until(at)), t)),
            metadata: None,
            first: true,
            done: false,
            _marker: PhantomData,
        }
    }

    /// The reply metadata of the first response (e.g. a refreshed token),
    /// once it arrived: `result.metadata` of an object result, or the
    /// response's own `metadata` member beside a result of another type or
    /// an error (docs/protocol.md, "Metadata"). An error yielded as the first
    /// item carries it too ([`ClientError::reply_metadata`]).
    pub fn metadata(&self) -> Option<&Map<String, Value>> {
        self.metadata.as_ref()
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<R, ClientError> {
        let msg = IncomingMessage::parse(bytes)
            .map_err(|e| ClientError::Protocol(format!("invalid response: {e}")))?;
        let first = std::mem::take(&mut self.first);
        // Beside the result or the error: where a result that is not an
        // object, or an error, carries the reply metadata.
        let beside = || {
            msg.metadata
                .and_then(|raw| serde_json::from_str::<Map<String, Value>>(raw.get()).ok())
        };
        if let Some(error) = msg.error {
            if first {
                self.metadata = beside();
            }
            return Err(ClientError::from_error_object(
                error,
                first.then(|| self.metadata.clone()).flatten(),
            ));
        }
        let raw = msg
            .result
            .ok_or_else(|| ClientError::Protocol("response has neither result nor error".into()))?;
        if first {
            if message::may_have_metadata(raw.get()) {
                self.metadata = serde_json::from_str::<MetadataOnly>(raw.get())
                    .ok()
                    .and_then(|m| m.metadata);
            }
            if self.metadata.is_none() {
                self.metadata = beside();
            }
        }
        Ok(serde_json::from_str(raw.get())?)
    }
}

impl<R: DeserializeOwned> Stream for ResponseStream<R> {
    type Item = Result<R, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some((sleep, timeout)) = this.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                this.done = true;
                return Poll::Ready(Some(Err(ClientError::TimedOut(*timeout))));
            }
        }
        let item = match this.reader.poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(Some(bytes))) => this.decode(&bytes),
            Poll::Ready(Ok(None)) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Ready(Err(e)) => match e {
                ReadError::Io(e)
                    if this.first
                        && matches!(StreamError::from_io(&e), Some(StreamError::Reset(_))) =>
                {
                    Err(ClientError::Unanswered(e))
                }
                // A response stream exists once the call was sent: a
                // connection lost now may have run it.
                e => Err(ClientError::from_read(e).lost_if_closed(true)),
            },
        };
        if item.is_err() {
            this.done = true;
        }
        Poll::Ready(Some(item))
    }
}

/// A client-streaming call in progress.
pub struct ClientStreamingCall<P, R> {
    pub(super) sink: RequestSink<P>,
    pub(super) responses: ResponseStream<R>,
}

impl<P: Serialize, R: DeserializeOwned> ClientStreamingCall<P, R> {
    /// Sends one message.
    pub async fn send(&mut self, params: &P) -> Result<(), ClientError> {
        self.sink.send(params).await
    }

    /// Ends the input and waits for the response.
    pub async fn finish(self) -> Result<R, ClientError> {
        Ok(self.finish_with_metadata().await?.0)
    }

    /// Ends the input; returns the response and its `result.metadata`.
    pub async fn finish_with_metadata(
        mut self,
    ) -> Result<(R, Option<Map<String, Value>>), ClientError> {
        let finished = self.sink.finish().await;
        // An early error response explains a failed finish better than the
        // transport error does.
        let response = self
            .responses
            .next()
            .await
            .unwrap_or_else(|| Err(no_response()));
        let value = match (response, finished) {
            (Ok(v), _) => v,
            (Err(e @ ClientError::Remote { .. }), _) => return Err(e),
            (Err(_), Err(e)) => return Err(e),
            (Err(e), Ok(())) => return Err(e),
        };
        Ok((value, self.responses.metadata))
    }
}

/// A raw call after its leading response: raw bytes both ways.
pub struct RawCall<R> {
    /// The leading response.
    pub leading: R,
    /// `result.metadata` of the leading response.
    pub metadata: Option<Map<String, Value>>,
    /// Bytes to the server (`shutdown` ends them; `reset` aborts).
    pub writer: BoxSendStream,
    /// Bytes from the server.
    pub reader: RawReader,
}

/// A pipelined raw call ([`CallBuilder::raw_pipelined`](super::CallBuilder::raw_pipelined)):
/// its writer at once, its leading response to wait for.
pub struct PipelinedRawCall<R> {
    /// Bytes to the server, writable before the leading response arrives
    /// (`shutdown` ends them; `reset` aborts).
    pub writer: BoxSendStream,
    /// The leading response, then the server's bytes.
    pub response: PendingRawResponse<R>,
}

/// The leading response of a pipelined raw call, not read yet.
pub struct PendingRawResponse<R> {
    responses: ResponseStream<R>,
    /// The server's stop, if it overtook the header: the error if no
    /// response comes (see `write_request`).
    refused: Option<ClientError>,
    deadline: Option<(Instant, Duration)>,
}

impl<R: DeserializeOwned> PendingRawResponse<R> {
    pub(super) fn new(
        reader: MessageReader<BoxRecvStream>,
        refused: Option<ClientError>,
        deadline: Option<(Instant, Duration)>,
    ) -> Self {
        PendingRawResponse {
            // The call's deadline is kept here, for the wait below only: the
            // bytes after the leading response have none.
            responses: ResponseStream::new(reader, None),
            refused,
            deadline,
        }
    }

    /// Waits for the leading response (within the call's timeout); gives it
    /// with the reader of the server's bytes. A server that refused the
    /// call answers with its error here.
    pub async fn leading(self) -> Result<RawResponse<R>, ClientError> {
        let PendingRawResponse {
            mut responses,
            refused,
            deadline,
        } = self;
        let leading = with_deadline(deadline, async {
            responses
                .next()
                .await
                .unwrap_or_else(|| Err(refused.unwrap_or_else(no_response)))
        })
        .await?;
        let metadata = responses.metadata.take();
        let (inner, buf) = responses.reader.into_parts();
        Ok(RawResponse {
            leading,
            metadata,
            reader: RawReader::new(buf, inner),
        })
    }
}

/// The leading response of a pipelined raw call and the server's bytes.
pub struct RawResponse<R> {
    /// The leading response.
    pub leading: R,
    /// `result.metadata` of the leading response.
    pub metadata: Option<Map<String, Value>>,
    /// Bytes from the server.
    pub reader: RawReader,
}
