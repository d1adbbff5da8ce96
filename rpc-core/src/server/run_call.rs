//! One call on the server, from its stream's first message to the end of
//! its response: parse the header, run the service stack, write the results
//! while watching for the caller stopping, a forced shutdown and panics.

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWrite;
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tracing::{debug, debug_span, field, trace, warn, Instrument};

use super::call::{parse_error_to_rpc, read_error_to_rpc, CallInput, CallRequest, CallResponse};
use super::serve::Inner;
use super::stop_signal::StopSignal;
use crate::codec::MessageReader;
use crate::context::Context;
use crate::error::RpcError;
use crate::message::{self, error_codes, IncomingMessage, MetadataRaw};
use crate::metrics::{CallMetrics, Outcome, StreamGuard};
use crate::openrpc::kind_name;
use crate::transport::{codes, BoxSendStream, PeerInfo, SendStream, Stream, StreamError};

/// A stream whose items are always ready is checked for a stop or a forced
/// shutdown once per this many messages (a lock each, on some carriers).
const INTERRUPT_CHECK_EVERY: u32 = 64;

/// How long an aborted call may take to write its last error message.
const ABORT_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a call stopped before its response was complete.
enum Interrupted {
    /// The caller stopped reading (it went away).
    Stopped(u64),
    /// The server is being forced down.
    Forced,
    /// Writing failed.
    Io(io::Error),
    /// The call's deadline passed while a write waited for the caller.
    TimedOut,
}

impl Interrupted {
    /// A failed write: the caller's stop is a stop, anything else I/O.
    fn from_write_error(e: io::Error) -> Self {
        match StreamError::from_io(&e) {
            Some(StreamError::Stopped(code)) => Interrupted::Stopped(*code),
            _ => Interrupted::Io(e),
        }
    }
}

impl Inner {
    /// Runs one call; `moving`: its peer was told to go away by a drain and
    /// its calls are still served (any other call is refused while stopping).
    pub(super) async fn run_call(&self, peer: Arc<PeerInfo>, stream: Stream, moving: bool) {
        let _counted = StreamGuard::new(&self.series);
        let (mut send, recv) = stream.split();
        if self.stopping.is_cancelled() && !moving {
            crate::metrics::call_refused("stopping");
            let _ = self
                .answer_error(&mut send, &RpcError::server_stopping_not_started(), None)
                .await;
            return;
        }
        // The first message is read before authentication: its own, smaller
        // limits bound what an unauthenticated caller makes a stream cost.
        let config = &self.config;
        let first_limit = config.max_first_message_size.min(config.max_message_size);
        let first_wait = config.first_message_timeout.min(config.default_timeout);
        let mut reader = MessageReader::new(recv, first_limit);
        // The read first: a request that is already here (the usual case)
        // never registers with the shared shutdown token.
        let first = tokio::select! {
            biased;
            r = crate::deadline::within(first_wait, reader.next()) => r,
            // Its request had not come in when the grace ended: answered as
            // a running call is, not reset (a JS peer that opened the
            // stream may be about to send it).
            _ = self.forced.cancelled() => {
                abort_answer(&mut send).await;
                return;
            }
        };
        let header = match first {
            Some(Ok(Some(bytes))) => bytes,
            // The caller finished without a message: nothing to answer.
            Some(Ok(None)) => return,
            Some(Err(e)) => {
                let err = read_error_to_rpc(e);
                if err.code() != error_codes::STREAM_ENDED {
                    crate::metrics::call_refused(if err.code() == error_codes::MESSAGE_TOO_LONG {
                        "first_message_too_large"
                    } else {
                        "bad_request"
                    });
                    let _ = self.answer_error(&mut send, &err, None).await;
                }
                return;
            }
            None => {
                crate::metrics::call_refused("first_message_timeout");
                let _ = self
                    .answer_error(&mut send, &RpcError::timed_out(), None)
                    .await;
                return;
            }
        };
        let (ctx, params) = match self.parse_header(&header, peer) {
            Ok(parsed) => parsed,
            Err(err) => {
                crate::metrics::call_refused("bad_request");
                let _ = self.answer_error(&mut send, &err, None).await;
                return;
            }
        };
        reader.set_max_len(self.config.max_message_size);
        let routed = || {
            self.router
                .method_entry(ctx.method())
                .map(|(name, kind, series)| (name, kind_name(kind), series))
        };
        let metrics = CallMetrics::start(routed, self.router.unknown_series());
        // Its fields are made only if a subscriber wants the span.
        let span = debug_span!(
            "call",
            method = ctx.method(),
            kind = field::Empty,
            outcome = field::Empty
        );
        let started = (!span.is_disabled()).then(|| {
            if let Some((_, kind, _)) = routed() {
                span.record("kind", kind);
            }
            std::time::Instant::now()
        });
        let outcome = self
            .serve_call(ctx, params, reader, send)
            .instrument(span.clone())
            .await;
        metrics.finish(outcome);
        if let Some(started) = started {
            span.record("outcome", outcome.as_str());
            span.in_scope(|| trace!(outcome = outcome.as_str(), elapsed = ?started.elapsed(), "call finished"));
        }
    }

    /// A call from its parsed header on: runs the service stack, writes
    /// its response, and says how it ended.
    async fn serve_call(
        &self,
        ctx: Context,
        params: Option<Box<serde_json::value::RawValue>>,
        reader: MessageReader<crate::transport::BoxRecvStream>,
        mut send: BoxSendStream,
    ) -> Outcome {
        trace!("call started");
        let cancel_on_exit = ctx.end_guard();
        let req = CallRequest {
            ctx: ctx.clone(),
            params,
            input: CallInput::new(reader),
        };
        let service = self.service.clone();
        let router = &self.router;
        let response = AssertUnwindSafe(async move {
            match service {
                Some(mut service) => service.ready().await?.call(req).await,
                None => router.dispatch(req).await,
            }
        })
        .catch_unwind()
        .map(|outcome| {
            outcome.unwrap_or_else(|_| {
                warn!(method = ctx.method(), "a handler panicked");
                Err(RpcError::internal("the handler panicked"))
            })
        });
        // The handler first: one that answers at once needs no watch on
        // the caller's stop or a forced shutdown (both register wakers).
        let outcome = tokio::select! {
            biased;
            r = response => Ok(r),
            _ = self.forced.cancelled() => Err(Interrupted::Forced),
            code = crate::transport::stopped(&mut send) => Err(Interrupted::Stopped(code)),
        };
        let result = match outcome {
            Ok(Ok(response)) => self.write_response(&mut send, response, &ctx).await,
            // The reply metadata (a refreshed token) goes with the error too:
            // the call may have spent the caller's token.
            Ok(Err(err)) => {
                let metadata = ctx.take_reply_metadata();
                self.answer_error_with(&mut send, &err, metadata.as_ref(), ctx.deadline())
                    .await
                    .map(|()| error_outcome(&err))
            }
            Err(e) => Err(e),
        };
        drop(cancel_on_exit);
        match result {
            Ok(outcome) => outcome,
            Err(Interrupted::Forced) => {
                abort_answer(&mut send).await;
                Outcome::Aborted
            }
            Err(Interrupted::Stopped(code)) => {
                debug!(code, "caller went away; call cancelled");
                send.reset(codes::CANCELLED);
                Outcome::Cancelled
            }
            Err(Interrupted::Io(e)) => {
                debug!(error = %e, "writing the response failed");
                send.reset(codes::CANCELLED);
                Outcome::Failed
            }
            Err(Interrupted::TimedOut) => {
                // The caller did not take the response in time: the stream
                // is reset (a torn message cannot be ended with an error),
                // and the handler's stream, if any, was dropped with it.
                debug!("deadline passed while writing the response");
                send.reset(codes::TIMED_OUT);
                Outcome::Timeout
            }
        }
    }

    fn parse_header(
        &self,
        header: &[u8],
        peer: Arc<PeerInfo>,
    ) -> Result<(Context, Option<Box<serde_json::value::RawValue>>), RpcError> {
        let (mut ctx, params) = parse_call_header(header, peer)?;
        let now = Instant::now();
        let mut timeout = self
            .router
            .method_timeout(ctx.method())
            .unwrap_or(self.config.default_timeout);
        if let Some(requested) = ctx.requested_timeout() {
            timeout = timeout.min(requested);
        }
        ctx.shorten_deadline(now + timeout);
        Ok((ctx, params))
    }

    async fn write_response(
        &self,
        send: &mut BoxSendStream,
        response: CallResponse,
        ctx: &Context,
    ) -> Result<Outcome, Interrupted> {
        let deadline = ctx.deadline();
        let mut outcome = Outcome::Ok;
        match response {
            CallResponse::Unary(bytes) => {
                if write_message(send, &bytes, &self.forced, deadline, Last::Yes).await? {
                    return Ok(outcome);
                }
            }
            CallResponse::Stream(mut items) => {
                let mut written = 0u32;
                loop {
                    self.check_interrupted(send, &mut written)?;
                    // The next item first: when it is ready, nothing needs to
                    // watch for a stop or a forced shutdown (a stop also fails
                    // the write, and the check above sees both every
                    // INTERRUPT_CHECK_EVERY items); only while we wait for it
                    // do those register.
                    let item = tokio::select! {
                        biased;
                        // A stream that panics is ended with −32603, like a
                        // handler that does (it is not polled again).
                        item = AssertUnwindSafe(items.next()).catch_unwind() => item.unwrap_or_else(|_| {
                            warn!("a handler's stream panicked");
                            Some(Err(RpcError::internal("the handler panicked")))
                        }),
                        _ = self.forced.cancelled() => return Err(Interrupted::Forced),
                        code = crate::transport::stopped(send) => return Err(Interrupted::Stopped(code)),
                    };
                    match item {
                        Some(Ok(bytes)) => {
                            write_message(send, &bytes, &self.forced, deadline, Last::No).await?;
                            yield_when_budget_spent().await;
                        }
                        Some(Err(err)) => {
                            // Reply metadata still here if this is the first
                            // message (the first result takes it).
                            let metadata = ctx.take_reply_metadata();
                            write_message(
                                send,
                                &message::encode_error_with_metadata(
                                    &err.to_error_object(),
                                    metadata.as_ref(),
                                ),
                                &self.forced,
                                deadline,
                                Last::No,
                            )
                            .await?;
                            outcome = error_outcome(&err);
                            break;
                        }
                        None => break,
                    }
                }
            }
            CallResponse::Raw { leading, mut body } => {
                write_message(send, &leading, &self.forced, deadline, Last::No).await?;
                let mut written = 0u32;
                loop {
                    self.check_interrupted(send, &mut written)?;
                    let chunk = tokio::select! {
                        biased;
                        chunk = body.next() => chunk,
                        _ = self.forced.cancelled() => return Err(Interrupted::Forced),
                        code = crate::transport::stopped(send) => return Err(Interrupted::Stopped(code)),
                    };
                    match chunk {
                        Some(Ok(bytes)) => {
                            write_message(send, &bytes, &self.forced, deadline, Last::No).await?;
                            yield_when_budget_spent().await;
                        }
                        // The deadline covers the whole raw call, bytes
                        // included: say so, as a write past it does.
                        Some(Err(_)) if deadline.is_some_and(|d| Instant::now() >= d) => {
                            return Err(Interrupted::TimedOut)
                        }
                        Some(Err(e)) => return Err(Interrupted::Io(e)),
                        None => break,
                    }
                }
            }
        }
        self.finish(send).await.map(|()| outcome)
    }

    /// Every [`INTERRUPT_CHECK_EVERY`] messages of a stream whose items are
    /// always ready (so the select never waits and never sees them): has the
    /// caller stopped reading, or the server been forced down?
    fn check_interrupted(
        &self,
        send: &mut BoxSendStream,
        written: &mut u32,
    ) -> Result<(), Interrupted> {
        *written = written.wrapping_add(1);
        if !written.is_multiple_of(INTERRUPT_CHECK_EVERY) {
            return Ok(());
        }
        if self.forced.is_cancelled() {
            return Err(Interrupted::Forced);
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match send.poll_stopped(&mut cx) {
            Poll::Ready(code) => Err(Interrupted::Stopped(code)),
            Poll::Pending => Ok(()),
        }
    }

    async fn answer_error(
        &self,
        send: &mut BoxSendStream,
        err: &RpcError,
        deadline: Option<Instant>,
    ) -> Result<(), Interrupted> {
        self.answer_error_with(send, err, None, deadline).await
    }

    /// Answers with `err` and the reply metadata, if any.
    async fn answer_error_with(
        &self,
        send: &mut BoxSendStream,
        err: &RpcError,
        metadata: Option<&serde_json::Map<String, serde_json::Value>>,
        deadline: Option<Instant>,
    ) -> Result<(), Interrupted> {
        let finished = write_message(
            send,
            &message::encode_error_with_metadata(&err.to_error_object(), metadata),
            &self.forced,
            deadline,
            Last::Yes,
        )
        .await?;
        if finished {
            return Ok(());
        }
        self.finish(send).await
    }

    /// Finishes our side gracefully, bounded so a caller that never reads (and
    /// never acknowledges) cannot hold the task.
    async fn finish(&self, send: &mut BoxSendStream) -> Result<(), Interrupted> {
        let finish = std::future::poll_fn(|cx| Pin::new(&mut *send).poll_shutdown(cx));
        // The finish first: one that completes at once (the usual case)
        // never registers with the shared shutdown token.
        tokio::select! {
            biased;
            r = crate::deadline::within(self.config.default_timeout, finish) => match r {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(Interrupted::Io(e)),
                None => Err(Interrupted::Io(io::Error::new(io::ErrorKind::TimedOut, "finishing the stream timed out"))),
            },
            _ = self.forced.cancelled() => Err(Interrupted::Forced),
        }
    }
}

/// The server is being forced down: one last bounded attempt to tell the
/// caller why (−32001); the stream is reset by the drop if it fails.
async fn abort_answer(send: &mut BoxSendStream) {
    let never = StopSignal::default();
    let bytes = message::encode_error(&RpcError::server_stopping().to_error_object());
    let _ = tokio::time::timeout(ABORT_WRITE_TIMEOUT, async {
        if !write_message(send, &bytes, &never, None, Last::Yes).await? {
            std::future::poll_fn(|cx| Pin::new(&mut *send).poll_shutdown(cx))
                .await
                .map_err(Interrupted::Io)?;
        }
        Ok::<_, Interrupted>(())
    })
    .await;
}

/// The outcome of a call answered with `err`.
fn error_outcome(err: &RpcError) -> Outcome {
    if err.code() == error_codes::TIMED_OUT {
        Outcome::Timeout
    } else {
        Outcome::Error
    }
}

/// Yields once the task's cooperative budget is spent. A stream whose items
/// are always ready and whose writes always go through (a reader as fast as
/// us) never waits otherwise: on the connection's accept task (a call's
/// first poll runs there) it would write its whole response before the next
/// call on the connection is accepted, and a forced shutdown would find that
/// call never started. Yielding makes such a call take a task of its own.
async fn yield_when_budget_spent() {
    tokio::task::consume_budget().await;
}

/// Whether a message is the last of its stream (see [`write_message`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Yes,
    No,
}

/// Writes one message, giving up if the caller stops reading, the server
/// is forced down, or the call's `deadline` passes. Those are watched only
/// while the write waits: a write that goes through needs no registration
/// (and a stop fails it anyway); the deadline's timer is made only then.
///
/// The stream's `Last` message goes with the finish where the carrier can
/// queue both in one step ([`SendStream::poll_write_last`]): gives whether
/// the stream is finished (the caller finishes it otherwise).
async fn write_message(
    send: &mut BoxSendStream,
    bytes: &Bytes,
    forced: &StopSignal,
    deadline: Option<Instant>,
    last: Last,
) -> Result<bool, Interrupted> {
    let mut forced = pin!(forced.cancelled());
    let mut timer = pin!(None::<tokio::time::Sleep>);
    let mut rest: &[u8] = bytes;
    let mut finished = false;
    std::future::poll_fn(|cx| {
        while !rest.is_empty() {
            let written = match last {
                Last::Yes => send.poll_write_last(cx, rest),
                Last::No => Pin::new(&mut *send)
                    .poll_write(cx, rest)
                    .map_ok(|n| (n, false)),
            };
            match written {
                Poll::Ready(Ok((0, _))) => {
                    return Poll::Ready(Err(Interrupted::Io(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok((n, fin))) => {
                    rest = &rest[n..];
                    finished = fin;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Interrupted::from_write_error(e))),
                Poll::Pending => {
                    // Once part of a message is out, finish it: a torn
                    // message would corrupt the stream for the error that
                    // follows.
                    if rest.len() == bytes.len() && forced.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(Interrupted::Forced));
                    }
                    if let Poll::Ready(code) = send.poll_stopped(cx) {
                        return Poll::Ready(Err(Interrupted::Stopped(code)));
                    }
                    if let Some(deadline) = deadline {
                        if timer.is_none() {
                            timer.set(Some(tokio::time::sleep_until(deadline)));
                        }
                        if let Some(t) = timer.as_mut().as_pin_mut() {
                            if t.poll(cx).is_ready() {
                                return Poll::Ready(Err(Interrupted::TimedOut));
                            }
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(finished))
    })
    .await
}

/// Parses a call's first message: its method, its context (with the raw
/// JSON of `params.metadata`, made a map only on demand) and its params.
/// The deadline is the server's to set.
pub fn parse_call_header(
    header: &[u8],
    peer: Arc<PeerInfo>,
) -> Result<(Context, Option<Box<serde_json::value::RawValue>>), RpcError> {
    let msg = IncomingMessage::parse(header).map_err(|e| parse_error_to_rpc(&e))?;
    let method = msg.method.as_deref().ok_or_else(|| {
        RpcError::new(error_codes::INVALID_REQUEST, "first message has no method")
    })?;
    // Only the raw JSON of `metadata` is kept: the context makes a map
    // of it if a handler or a layer asks.
    let metadata = msg
        .params
        .filter(|raw| message::may_have_metadata(raw.get()))
        .and_then(|raw| {
            serde_json::from_str::<MetadataRaw<'_>>(raw.get())
                .ok()
                .and_then(|m| m.metadata)
        });
    let ctx = Context::from_raw_metadata(method, metadata, peer);
    Ok((ctx, msg.params.map(|p| p.to_owned())))
}
