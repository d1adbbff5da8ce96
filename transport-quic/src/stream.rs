//! The two halves of a QUIC bidi stream, with strand's stream semantics.
//!
//! ```text
//! send half:  Open ──poll_shutdown──▶ Finished   (FIN; reset is then a no-op)
//!               │
//!               └──reset / drop────▶ Reset       (RESET_STREAM with the code)
//!
//! recv half:  Open ──read Ok(0)────▶ Ended       (stop is then a no-op)
//!               │
//!               └──stop / drop─────▶ Stopped     (STOP_SENDING with the code,
//!                                                 once our ACK left; see
//!                                                 `stop_after_ack`)
//! ```
//!
//! quinn finishes a dropped `SendStream` implicitly; strand's contract is the
//! opposite (a truncated stream must never look complete), so the send half
//! resets with [`codes::CANCELLED`] when dropped while still open.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use quinn::{ReadError, StoppedError, VarInt, WriteError};
use strand_rpc_core::transport::{codes, SendStream as _, StreamError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::connection::Shared;

/// Keeps a connection's open-stream count while either half lives.
pub(crate) struct StreamToken {
    shared: Arc<Shared>,
    /// The send half is open (neither finished, reset nor dropped).
    send_open: AtomicBool,
    /// The peer opened this stream: only such streams spend the reset
    /// budget (as on ws), so a client is never closed for what a server
    /// does to its calls.
    peer_opened: bool,
    /// The peer's abort of this stream was counted (once per stream).
    abort_counted: AtomicBool,
    /// We wrote on it: the peer has (or will have) an answer, and its abort
    /// after that is a caller done reading (a unary reply read before our
    /// finish, a stream cut after its first items), not a rapid reset.
    answered: AtomicBool,
}

impl StreamToken {
    pub(crate) fn new(shared: Arc<Shared>, peer_opened: bool) -> Arc<Self> {
        shared.open_streams.fetch_add(1, Ordering::AcqRel);
        Arc::new(StreamToken {
            shared,
            send_open: AtomicBool::new(true),
            peer_opened,
            abort_counted: AtomicBool::new(false),
            answered: AtomicBool::new(false),
        })
    }

    /// The peer reset or stopped this stream: counts against the reset
    /// budget if it opened it and we had written no answer on it, once per
    /// stream.
    fn peer_aborted(&self) {
        if self.peer_opened
            && self.send_open.load(Ordering::Acquire)
            && !self.answered.load(Ordering::Acquire)
            && !self.abort_counted.swap(true, Ordering::AcqRel)
        {
            self.shared.peer_aborted_stream();
        }
    }
}

impl Drop for StreamToken {
    fn drop(&mut self) {
        self.shared.open_streams.fetch_sub(1, Ordering::AcqRel);
        self.shared.streams_changed.notify_waiters();
    }
}

pub(crate) fn code(code: u64) -> VarInt {
    VarInt::from_u64(code).unwrap_or(VarInt::MAX)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SendState {
    Open,
    Finished,
    Reset,
}

pub(crate) type StoppedFuture =
    Pin<Box<dyn Future<Output = Result<Option<VarInt>, StoppedError>> + Send>>;

/// The sending half of a QUIC stream; see the module docs for its states.
pub struct QuicSendStream {
    inner: quinn::SendStream,
    shared: Arc<Shared>,
    _token: Arc<StreamToken>,
    state: SendState,
    /// quinn's `stopped()` future, created on the first `poll_stopped`.
    stopped: Option<StoppedFuture>,
    /// What `poll_stopped` resolved with: `Some(code)` stays ready, `None`
    /// (finished and acknowledged) stays pending.
    stopped_result: Option<Option<u64>>,
    /// Bytes were written since the last write boundary.
    unbounded: bool,
    boundary: Option<Pin<Box<Sleep>>>,
}

impl QuicSendStream {
    pub(crate) fn new(
        inner: quinn::SendStream,
        shared: Arc<Shared>,
        token: Arc<StreamToken>,
    ) -> Self {
        QuicSendStream {
            inner,
            shared,
            _token: token,
            state: SendState::Open,
            stopped: None,
            stopped_result: None,
            unbounded: false,
            boundary: None,
        }
    }

    /// The QUIC stream id.
    pub fn id(&self) -> quinn::StreamId {
        self.inner.id()
    }

    fn write_error(&self, err: WriteError) -> io::Error {
        if matches!(err, WriteError::Stopped(_)) {
            self._token.peer_aborted();
        }
        match err {
            WriteError::Stopped(code) => StreamError::Stopped(code.into_inner()),
            WriteError::ConnectionLost(e) => StreamError::ConnectionClosed(self.shared.reason(&e)),
            WriteError::ClosedStream => StreamError::ClosedLocally,
            WriteError::ZeroRttRejected => StreamError::ConnectionClosed(
                strand_rpc_core::transport::CloseReason::lost("0-rtt rejected"),
            ),
        }
        .into_io()
    }
}

impl AsyncWrite for QuicSendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.state != SendState::Open {
            return Poll::Ready(Err(StreamError::ClosedLocally.into_io()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match ready!(Pin::new(&mut this.inner).poll_write(cx, buf)) {
            Ok(n) => {
                this.unbounded = true;
                this._token.answered.store(true, Ordering::Release);
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(this.write_error(e))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // quinn hands written bytes to its connection driver at once.
        Poll::Ready(Ok(()))
    }

    /// Finishes the stream (FIN). quinn keeps retransmitting the buffered
    /// bytes and the FIN after this returns, until the peer acknowledges them.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.state {
            SendState::Finished => return Poll::Ready(Ok(())),
            SendState::Reset => return Poll::Ready(Err(StreamError::ClosedLocally.into_io())),
            SendState::Open => {}
        }
        if let Some(e) = this.shared.conn.close_reason() {
            return Poll::Ready(Err(
                StreamError::ConnectionClosed(this.shared.reason(&e)).into_io()
            ));
        }
        // quinn reports a finish after STOP_SENDING as success; we report it.
        if let Poll::Ready(code) = this.poll_stopped(cx) {
            return Poll::Ready(Err(StreamError::Stopped(code).into_io()));
        }
        this.state = SendState::Finished;
        this._token.send_open.store(false, Ordering::Release);
        match this.inner.finish() {
            Ok(()) => Poll::Ready(Ok(())),
            Err(_) => Poll::Ready(Err(StreamError::ClosedLocally.into_io())),
        }
    }
}

impl strand_rpc_core::transport::SendStream for QuicSendStream {
    fn reset(&mut self, code: u64) {
        if self.state == SendState::Open {
            self.state = SendState::Reset;
            self._token.send_open.store(false, Ordering::Release);
            let _ = self.inner.reset(self::code(code));
        }
    }

    /// Resolves with the peer's STOP_SENDING code. A connection that closes
    /// first resolves it with [`codes::CANCELLED`]: nobody will read any more.
    ///
    /// Built on quinn's `stopped()`, which registers a small waker entry per
    /// stream that quinn only removes when the stream is stopped, finished and
    /// acknowledged, or the connection ends: a stream that was polled here and
    /// then reset by us keeps its entry (tens of bytes) until the connection
    /// closes. quinn 0.11 offers no other way to wait for STOP_SENDING.
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        match self.stopped_result {
            Some(Some(code)) => return Poll::Ready(code),
            Some(None) => return Poll::Pending,
            None => {}
        }
        let fut = self
            .stopped
            .get_or_insert_with(|| Box::pin(self.inner.stopped()));
        let result = match ready!(fut.as_mut().poll(cx)) {
            Ok(Some(code)) => {
                self._token.peer_aborted();
                Some(code.into_inner())
            }
            Ok(None) => None,
            Err(_) => Some(codes::CANCELLED),
        };
        self.stopped = None;
        self.stopped_result = Some(result);
        match result {
            Some(code) => Poll::Ready(code),
            None => Poll::Pending,
        }
    }

    /// The write, then quinn's finish in the same step. Unlike
    /// `poll_shutdown` it does not look for a STOP_SENDING first: the write
    /// just found none, and one that arrives between the two is no different
    /// from one that arrives right after the finish. That look would make
    /// quinn's `stopped()` future (an allocation, a lock on the connection,
    /// an entry in its table) on every unary request and answer.
    fn poll_write_last(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<(usize, bool)>> {
        let n = ready!(Pin::new(&mut *self).poll_write(cx, buf))?;
        if n < buf.len() {
            return Poll::Ready(Ok((n, false)));
        }
        self.state = SendState::Finished;
        self._token.send_open.store(false, Ordering::Release);
        match self.inner.finish() {
            Ok(()) => Poll::Ready(Ok((n, true))),
            Err(_) => Poll::Ready(Err(StreamError::ClosedLocally.into_io())),
        }
    }

    /// Waits one smoothed round trip (at least
    /// [`QuicConfig::write_boundary_min`](crate::QuicConfig::write_boundary_min))
    /// after bytes were written, so that bytes written later travel in later
    /// packets and reach the peer's reader as a separate chunk. quinn does not
    /// expose per-stream acknowledgements, so one round trip stands in for
    /// "the peer acknowledged them". Ready at once if nothing was written
    /// since the last boundary.
    fn poll_write_boundary(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.boundary.is_none() {
            if !self.unbounded || self.state != SendState::Open {
                return Poll::Ready(Ok(()));
            }
            // A strand peer reads what arrives as a stream of bytes, however
            // it was packed: nothing to wait for.
            let Some(min) = self.shared.write_boundary_min else {
                self.unbounded = false;
                return Poll::Ready(Ok(()));
            };
            let wait = self.shared.conn.rtt().max(min);
            self.shared.boundary_waits.fetch_add(1, Ordering::Relaxed);
            self.boundary = Some(Box::pin(tokio::time::sleep(wait)));
        }
        if let Some(sleep) = self.boundary.as_mut() {
            ready!(sleep.as_mut().poll(cx));
        }
        self.boundary = None;
        self.unbounded = false;
        Poll::Ready(Ok(()))
    }
}

impl Drop for QuicSendStream {
    fn drop(&mut self) {
        self._token.send_open.store(false, Ordering::Release);
        match self.state {
            SendState::Open => {
                let _ = self.inner.reset(code(codes::CANCELLED));
            }
            SendState::Finished => {
                // quinn keeps delivering what we wrote, and the FIN, after
                // the handle is gone. A graceful shutdown must not close the
                // connection before the peer acknowledged it (a call's last
                // response), so it waits on this stream's `stopped()`
                // (resolves once acknowledged); no task per stream. The one
                // the finish made for its stop check serves (one allocation
                // and one lock on quinn's state fewer); none is needed once
                // it resolved.
                if self.stopped_result.is_some() {
                    return;
                }
                let acked = self
                    .stopped
                    .take()
                    .unwrap_or_else(|| Box::pin(self.inner.stopped()));
                if let Ok(mut lingering) = self.shared.lingering.lock() {
                    lingering.push(acked);
                }
            }
            SendState::Reset => {}
        }
    }
}

impl std::fmt::Debug for QuicSendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicSendStream")
            .field("id", &self.inner.id())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum RecvState {
    Open,
    Ended,
    Stopped,
}

/// The receiving half of a QUIC stream; see the module docs for its states.
pub struct QuicRecvStream {
    /// `None` once a stop handed it to [`stop_after_ack`].
    inner: Option<quinn::RecvStream>,
    id: quinn::StreamId,
    shared: Arc<Shared>,
    _token: Arc<StreamToken>,
    state: RecvState,
}

impl QuicRecvStream {
    pub(crate) fn new(
        inner: quinn::RecvStream,
        shared: Arc<Shared>,
        token: Arc<StreamToken>,
    ) -> Self {
        QuicRecvStream {
            id: inner.id(),
            inner: Some(inner),
            shared,
            _token: token,
            state: RecvState::Open,
        }
    }

    /// The QUIC stream id.
    pub fn id(&self) -> quinn::StreamId {
        self.id
    }

    /// Stops the stream with `code` (STOP_SENDING), after the data it received
    /// so far was acknowledged; see [`stop_after_ack`].
    fn stop_inner(&mut self, code: u64) {
        self.state = RecvState::Stopped;
        if let Some(inner) = self.inner.take() {
            stop_after_ack(&self.shared, &self._token, inner, self::code(code));
        }
    }
}

/// Sends STOP_SENDING on `inner` with `code`, in a packet of its own once
/// quinn acknowledged what the stream received, if the stream still needs it.
///
/// Why: quinn delays acknowledgements (up to 25 ms) and bundles a pending one
/// into the next packet it sends, so a STOP_SENDING sent right after reading
/// usually travels with the acknowledgement of the data just read. A quiche
/// peer whose receiving side has ended (our FIN or reset arrived) handles
/// both in one datagram: the STOP_SENDING ends its sending side, the
/// acknowledgement then makes the stream complete, and quiche forgets the
/// stream before the datagram is done. `@matrixai/quic` learns of a
/// STOP_SENDING only by finding the stream among quiche's writable streams
/// after a datagram, so it never does: its writer waits for ever and an
/// `@matrixai/rpc` handler is never cancelled. Sent on its own, after the
/// acknowledgement, the STOP_SENDING finds the stream alive.
///
/// A stream whose end already arrived, unread, needs no STOP_SENDING at all
/// (the common case: a unary answer's FIN comes with its bytes). Otherwise,
/// unless our sending half is still open (then the peer's stream cannot be
/// complete) or [`QuicConfig::stop_ack_wait`] is zero (between strand
/// peers), a task reads and discards what still arrives and sends the
/// STOP_SENDING once nothing we received waits for an acknowledgement
/// ([`AckWatch`]), or after `stop_ack_wait` at the latest; a stream that
/// ends meanwhile needs none. Only cancelled reads pay for the task.
///
/// [`QuicConfig::stop_ack_wait`]: crate::QuicConfig::stop_ack_wait
fn stop_after_ack(
    shared: &Arc<Shared>,
    token: &StreamToken,
    mut inner: quinn::RecvStream,
    code: VarInt,
) {
    // The end may be here already, unread (a unary answer's FIN comes with
    // its bytes): the stream is then over and needs no STOP_SENDING, which
    // would cost the peer a frame to handle and perhaps a RESET_STREAM.
    if discard_to_end(&mut inner, &mut Context::from_waker(Waker::noop())).is_ready() {
        return;
    }
    let wait = shared.stop_ack_wait;
    if wait.is_zero() || token.send_open.load(Ordering::Acquire) {
        let _ = inner.stop(code);
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        let _ = inner.stop(code);
        return;
    };
    let conn = shared.conn.clone();
    runtime.spawn(async move {
        let start = Instant::now();
        let deadline = start + wait;
        let mut watch = AckWatch::new(&conn, start);
        let mut tick = std::pin::pin!(tokio::time::sleep(STOP_ACK_POLL));
        let ended = std::future::poll_fn(|cx| {
            if discard_to_end(&mut inner, cx).is_ready() {
                return Poll::Ready(true);
            }
            loop {
                let now = Instant::now();
                if now >= deadline || watch.nothing_to_acknowledge(&conn, now) {
                    return Poll::Ready(false);
                }
                ready!(tick.as_mut().poll(cx));
                tick.as_mut().reset(now + STOP_ACK_POLL);
            }
        })
        .await;
        if !ended {
            let _ = inner.stop(code);
        }
    });
}

/// How often [`stop_after_ack`] looks at the connection's figures.
const STOP_ACK_POLL: Duration = Duration::from_millis(1);

/// How long nothing may arrive and no acknowledgement leave before
/// [`AckWatch`] takes it that none is pending: twice quinn's 25 ms maximum
/// ACK delay, so that a pending one had its timer fire even on a busy
/// machine.
const ACK_QUIET: Duration = Duration::from_millis(50);

/// The longest gap between two looks that still counts towards
/// [`ACK_QUIET`]: a later look means this runtime (and so perhaps quinn's
/// driver, whose ACK timer it runs) did not run for a while, and an ACK
/// still pending would leave together with the STOP_SENDING; the quiet
/// period then starts over.
const PROMPT_LOOK: Duration = Duration::from_millis(5);

/// Tells, from quinn's counters alone, when nothing we received waits for
/// our acknowledgement, so that a STOP_SENDING sent then cannot carry the
/// acknowledgement of the peer's last data (see [`stop_after_ack`]).
///
/// quinn acknowledges an ack-eliciting packet within its maximum ACK delay
/// (at once after two), either in a packet of its own or with the next
/// frames it sends; every ACK frame covers everything received so far. So
/// between two looks at the counters: if an ACK frame left and no
/// ack-eliciting frame arrived, everything received had been acknowledged
/// (the ACK was written after the last arrival); if one arrived, a new
/// acknowledgement is owed and the watch starts over; if nothing arrived
/// and nothing left for [`ACK_QUIET`] of looks that came on time (see
/// [`PROMPT_LOOK`]), no acknowledgement was owed.
///
/// Counting "an ACK left" alone (the former rule) let a datagram that
/// arrived in the same interval ride on the STOP_SENDING's packet, which a
/// busy machine made likely (`js_server_streams_cancelled_over_quic`).
struct AckWatch {
    received: u64,
    acks_sent: u64,
    quiet_since: Instant,
    last_look: Instant,
}

impl AckWatch {
    fn new(conn: &quinn::Connection, now: Instant) -> Self {
        let (received, acks_sent) = Self::counters(conn);
        Self::from_counters(received, acks_sent, now)
    }

    fn from_counters(received: u64, acks_sent: u64, now: Instant) -> Self {
        AckWatch {
            received,
            acks_sent,
            quiet_since: now,
            last_look: now,
        }
    }

    /// (ack-eliciting frames received, ACK frames sent).
    fn counters(conn: &quinn::Connection) -> (u64, u64) {
        let stats = conn.stats();
        let rx = &stats.frame_rx;
        // Every frame but ACK, PADDING (not counted) and CONNECTION_CLOSE
        // elicits an acknowledgement.
        let received = rx.ack_frequency
            + rx.crypto
            + rx.data_blocked
            + rx.datagram
            + u64::from(rx.handshake_done)
            + rx.immediate_ack
            + rx.max_data
            + rx.max_stream_data
            + rx.max_streams_bidi
            + rx.max_streams_uni
            + rx.new_connection_id
            + rx.new_token
            + rx.path_challenge
            + rx.path_response
            + rx.ping
            + rx.reset_stream
            + rx.retire_connection_id
            + rx.stream_data_blocked
            + rx.streams_blocked_bidi
            + rx.streams_blocked_uni
            + rx.stop_sending
            + rx.stream;
        (received, stats.frame_tx.acks)
    }

    /// Whether nothing received waits for an acknowledgement, judging by
    /// the counters now against the last look.
    fn nothing_to_acknowledge(&mut self, conn: &quinn::Connection, now: Instant) -> bool {
        let (received, acks_sent) = Self::counters(conn);
        self.look(received, acks_sent, now)
    }

    /// [`AckWatch::nothing_to_acknowledge`] on given counters.
    fn look(&mut self, received: u64, acks_sent: u64, now: Instant) -> bool {
        if received != self.received {
            *self = Self::from_counters(received, acks_sent, now);
            return false;
        }
        if acks_sent != self.acks_sent {
            return true;
        }
        if now.duration_since(self.last_look) > PROMPT_LOOK {
            // This runtime stalled: quinn's driver may not have run either,
            // so the quiet so far proves nothing; it starts over.
            self.quiet_since = now;
        }
        self.last_look = now;
        now.duration_since(self.quiet_since) >= ACK_QUIET
    }
}

/// Reads and drops what `inner` holds; ready once the stream ended (FIN,
/// reset or a lost connection). Reads at most 64 chunks per call, so a fast
/// peer cannot keep it busy.
fn discard_to_end(inner: &mut quinn::RecvStream, cx: &mut Context<'_>) -> Poll<()> {
    for _ in 0..64 {
        let read = std::pin::pin!(inner.read_chunk(usize::MAX, true));
        match ready!(read.poll(cx)) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return Poll::Ready(()),
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

impl AsyncRead for QuicRecvStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.state {
            RecvState::Ended => return Poll::Ready(Ok(())),
            RecvState::Stopped => return Poll::Ready(Err(StreamError::ClosedLocally.into_io())),
            RecvState::Open => {}
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(StreamError::ClosedLocally.into_io()));
        };
        let before = buf.filled().len();
        match ready!(inner.poll_read_buf(cx, buf)) {
            Ok(()) => {
                if buf.filled().len() == before {
                    this.state = RecvState::Ended;
                }
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(this.read_error(e))),
        }
    }
}

impl QuicRecvStream {
    fn read_error(&self, e: ReadError) -> io::Error {
        if matches!(e, ReadError::Reset(_)) {
            self._token.peer_aborted();
        }
        let err = match e {
            ReadError::Reset(code) => StreamError::Reset(code.into_inner()),
            ReadError::ConnectionLost(e) => StreamError::ConnectionClosed(self.shared.reason(&e)),
            ReadError::ClosedStream | ReadError::IllegalOrderedRead => StreamError::ClosedLocally,
            ReadError::ZeroRttRejected => StreamError::ConnectionClosed(
                strand_rpc_core::transport::CloseReason::lost("0-rtt rejected"),
            ),
        };
        err.into_io()
    }
}

impl strand_rpc_core::transport::RecvStream for QuicRecvStream {
    fn stop(&mut self, code: u64) {
        if self.state == RecvState::Open {
            self.stop_inner(code);
        }
    }

    /// Hands over quinn's received chunks themselves (no copy).
    fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<bytes::Bytes>>> {
        match self.state {
            RecvState::Ended => return Poll::Ready(Ok(None)),
            RecvState::Stopped => return Poll::Ready(Err(StreamError::ClosedLocally.into_io())),
            RecvState::Open => {}
        }
        // quinn's read_chunk future only polls the stream: a fresh one per
        // poll loses nothing.
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(StreamError::ClosedLocally.into_io()));
        };
        let read = {
            let chunk = std::pin::pin!(inner.read_chunk(max.max(1), true));
            ready!(chunk.poll(cx))
        };
        Poll::Ready(match read {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
            Ok(None) => {
                self.state = RecvState::Ended;
                Ok(None)
            }
            Err(e) => Err(self.read_error(e)),
        })
    }
}

impl Drop for QuicRecvStream {
    fn drop(&mut self) {
        if self.state == RecvState::Open {
            self.stop_inner(codes::CANCELLED);
        }
    }
}

impl std::fmt::Debug for QuicRecvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicRecvStream")
            .field("id", &self.id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_watch_waits_for_an_ack_written_after_the_last_arrival() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // An ACK left, nothing arrived: everything was acknowledged.
        let mut watch = AckWatch::from_counters(10, 3, t0);
        assert!(!watch.look(10, 3, ms(1)));
        assert!(watch.look(10, 4, ms(2)));
        // An ACK left but a frame arrived in the same interval: it may be
        // unacknowledged, so wait for an ACK after it.
        let mut watch = AckWatch::from_counters(10, 3, t0);
        assert!(!watch.look(11, 4, ms(1)));
        assert!(!watch.look(11, 4, ms(2)));
        assert!(watch.look(11, 5, ms(3)));
        // Nothing arrives, nothing leaves: none was owed, after ACK_QUIET.
        let mut watch = AckWatch::from_counters(10, 3, t0);
        for n in 1..50 {
            assert!(!watch.look(10, 3, ms(n)));
        }
        assert!(watch.look(10, 3, ms(50)));
        // ... of looks on time: after a stall (quinn's ACK timer may have
        // stalled with us) the quiet starts over, and the late ACK, once
        // it leaves, decides.
        let mut watch = AckWatch::from_counters(10, 3, t0);
        assert!(!watch.look(10, 3, ms(108)));
        for n in 109..158 {
            assert!(!watch.look(10, 3, ms(n)));
        }
        assert!(watch.look(10, 3, ms(158)));
        let mut watch = AckWatch::from_counters(10, 3, t0);
        assert!(!watch.look(10, 3, ms(108)));
        assert!(watch.look(10, 4, ms(109)), "the late ACK left alone");
        // A peer that sends in every interval never leaves a clean moment
        // (stop_after_ack's cap then decides).
        let mut watch = AckWatch::from_counters(0, 0, t0);
        for n in 1..200 {
            assert!(!watch.look(n, n, ms(n)));
        }
    }
}
