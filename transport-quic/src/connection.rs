//! [`QuicConnection`]: a quinn connection behind rpc-core's `Connection` trait.

use std::fmt;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use quinn::ConnectionError;
use strand_rpc_core::metrics::ByteCounters;
use strand_rpc_core::transport::{
    codes, CloseCode, CloseReason, Connection, ConnectionSlot, PeerInfo, Stream, StreamError,
    TokenBucket,
};
use strand_tls::CertificateDer;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::byte_count::{self, ByteReporter};
use crate::stream::{code, QuicRecvStream, QuicSendStream, StoppedFuture, StreamToken};

/// The stream timings of a [`crate::QuicConfig`] that each connection keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamTimings {
    pub(crate) write_boundary_min: Duration,
    pub(crate) stop_ack_wait: Duration,
    pub(crate) floods: crate::QuicFloodLimits,
}

impl StreamTimings {
    pub(crate) fn of(config: &crate::QuicConfig) -> Self {
        StreamTimings {
            write_boundary_min: config.write_boundary_min,
            stop_ack_wait: config.stop_ack_wait,
            floods: config.floods,
        }
    }
}

/// The `stopped()` futures of dropped, finished send halves: each resolves
/// once the peer acknowledged the stream's data and FIN (or the connection
/// ended). Nothing polls them until a graceful shutdown, except a prune of
/// the resolved ones whenever the list doubled, so the list stays near the
/// number of streams still in flight, at an amortised constant cost per push.
#[derive(Default)]
pub(crate) struct Lingering {
    acks: Vec<StoppedFuture>,
    prune_at: usize,
}

/// The list length below which [`Lingering`] does not prune.
const LINGER_PRUNE_MIN: usize = 64;

impl Lingering {
    pub(crate) fn push(&mut self, acked: StoppedFuture) {
        if self.acks.len() >= self.prune_at {
            let _ = self.prune(&mut Context::from_waker(Waker::noop()));
            self.prune_at = (self.acks.len() * 2).max(LINGER_PRUNE_MIN);
        }
        self.acks.push(acked);
    }

    /// Drops the futures that resolved; ready once none is left.
    fn prune(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.acks.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if self.acks.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// State shared by a connection handle and its streams.
/// The longest [`QuicConnection::closed`] waits for its own endpoint to
/// have sent a close we made (quinn keeps a closed connection for three probe
/// timeouts, tens of milliseconds on a quick path, before letting it go).
pub const CLOSE_SEND_WAIT: Duration = Duration::from_millis(500);

pub(crate) struct Shared {
    pub(crate) conn: quinn::Connection,
    peer: Arc<PeerInfo>,
    /// The reason we gave when we closed, so that streams report it.
    local_close: Mutex<Option<CloseReason>>,
    pub(crate) open_streams: AtomicUsize,
    pub(crate) streams_changed: Notify,
    /// Finished send halves, dropped, whose data the peer may not have
    /// acknowledged yet; [`QuicConnection::shutdown`] waits for them.
    pub(crate) lingering: Mutex<Lingering>,
    shutting_down: AtomicBool,
    /// The peer negotiated [`crate::STRAND_ALPN`]: no JS protections.
    strand_peer: bool,
    /// The least write-boundary wait; `None` between strand peers, which
    /// need none.
    pub(crate) write_boundary_min: Option<Duration>,
    /// Zero between strand peers.
    pub(crate) stop_ack_wait: Duration,
    /// Write boundaries that waited, so far.
    pub(crate) boundary_waits: AtomicU64,
    /// `floods.resets`: streams the peer aborted before we answered them.
    resets: Mutex<TokenBucket>,
    /// When the connection was wrapped: the reset budget's clock.
    started: Instant,
    /// Streams the peer aborted before we answered them, so far.
    peer_aborts: AtomicU64,
    /// A served connection's byte counts, for the metrics (`None`: a
    /// client's connection, not reported).
    pub(crate) bytes: Option<ByteReporter>,
    /// Keeps the endpoint (and its UDP socket and driver) alive.
    endpoint: quinn::Endpoint,
    /// The endpoint was made for this connection alone ([`crate::connect`]):
    /// once we closed, [`QuicConnection::closed`] waits for it to have sent
    /// the close.
    owns_endpoint: AtomicBool,
    /// The listener's connection slot, freed when the connection is gone.
    _slot: Option<ConnectionSlot>,
}

/// The QUIC application error code that carries `code` (docs/protocol.md,
/// "Closing connections"): 0 for an orderly end, as `@matrixai/quic` expects
/// (a drain's "going away" included), the WebSocket numbers for the errors,
/// and an application code as itself.
pub(crate) fn close_code_to_wire(code: CloseCode) -> u64 {
    match code {
        CloseCode::Normal | CloseCode::GoingAway => 0,
        CloseCode::Protocol => 1002,
        CloseCode::Policy => 1008,
        CloseCode::TooBig => 1009,
        CloseCode::Internal | CloseCode::Abnormal => 1011,
        CloseCode::Application(n) => u64::from(n),
        _ => 1011,
    }
}

/// The reverse of [`close_code_to_wire`]; codes it does not name are the
/// application's.
pub(crate) fn close_code_from_wire(code: u64) -> CloseCode {
    match code {
        0 => CloseCode::Normal,
        1002 => CloseCode::Protocol,
        1008 => CloseCode::Policy,
        1009 => CloseCode::TooBig,
        1011 => CloseCode::Internal,
        n => CloseCode::Application(u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

impl Shared {
    /// Reports the bytes counted since the last sample to the metrics (a
    /// served connection's only).
    pub(crate) fn sample_bytes(&self) {
        if let Some(bytes) = &self.bytes {
            bytes.sample(&self.conn);
        }
    }

    /// Translates quinn's view of a closed connection into strand's.
    pub(crate) fn reason(&self, err: &ConnectionError) -> CloseReason {
        match err {
            ConnectionError::LocallyClosed => self
                .local_close
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_else(|| CloseReason::local(CloseCode::Normal, "")),
            ConnectionError::ApplicationClosed(close) => CloseReason::peer(
                close_code_from_wire(close.error_code.into_inner()),
                String::from_utf8_lossy(&close.reason),
            ),
            ConnectionError::ConnectionClosed(close) => {
                let mut reason = close.error_code.to_string();
                if !close.reason.is_empty() {
                    reason.push_str(": ");
                    reason.push_str(&String::from_utf8_lossy(&close.reason));
                }
                CloseReason::peer(CloseCode::Protocol, reason)
            }
            ConnectionError::TimedOut => CloseReason::lost("idle timeout"),
            ConnectionError::Reset => CloseReason::lost("stateless reset by peer"),
            other => CloseReason::lost(other.to_string()),
        }
    }

    fn close(&self, code: CloseCode, reason: &str) {
        if let Ok(mut local) = self.local_close.lock() {
            if local.is_none() && self.conn.close_reason().is_none() {
                *local = Some(CloseReason::local(code, reason));
            }
        }
        let wire = quinn::VarInt::from_u64(close_code_to_wire(code)).unwrap_or(quinn::VarInt::MAX);
        self.conn.close(wire, reason.as_bytes());
    }

    /// The peer aborted one of its streams (RESET_STREAM or STOP_SENDING)
    /// before we finished answering it: spends `floods.resets`, and closes
    /// the connection with 1008 once it is spent (rapid reset; h2 answers
    /// it with `ENHANCE_YOUR_CALM`). The streams already accepted then fail,
    /// and no new one is accepted, so no handler starts past the budget.
    pub(crate) fn peer_aborted_stream(&self) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Under the lock, so that streams aborted on several threads at
        // once spend the bucket one after another and none counts past
        // the close.
        let mut bucket = self
            .resets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.conn.close_reason().is_some() {
            return;
        }
        self.peer_aborts.fetch_add(1, Ordering::AcqRel);
        if !bucket.take(now_ms) {
            self.close(CloseCode::Policy, RESET_FLOOD_REASON);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The connection's last bytes (those after its last stream ended).
        self.sample_bytes();
    }
}

/// The close reason when `floods.resets` is spent.
pub const RESET_FLOOD_REASON: &str = "flood: stream resets";

/// A QUIC connection: opens and accepts one bidi stream per call.
///
/// Dropping it closes the connection with application code 0; streams still
/// open then fail with [`StreamError::ConnectionClosed`].
/// The CONNECTION_CLOSE that the drop queues is sent by the runtime's
/// tasks: if the runtime ends right after the drop (a program returning
/// from `main`), it is never sent and the peer learns only at its idle
/// timeout. Await [`QuicConnection::shutdown`] first there
/// (docs/reliability.md, "Network faults").
pub struct QuicConnection {
    pub(crate) shared: Arc<Shared>,
}

impl QuicConnection {
    pub(crate) fn new(
        conn: quinn::Connection,
        endpoint: quinn::Endpoint,
        timings: StreamTimings,
        slot: Option<ConnectionSlot>,
    ) -> Self {
        let certificates = conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|chain| strand_tls::chain_to_bytes(&chain))
            .unwrap_or_default();
        let strand_peer = negotiated_alpn(&conn).as_deref() == Some(crate::STRAND_ALPN);
        let peer = PeerInfo::new("quic")
            .with_remote_addr(conn.remote_address())
            .with_certificates(certificates);
        QuicConnection {
            shared: Arc::new(Shared {
                conn,
                peer: Arc::new(peer),
                local_close: Mutex::new(None),
                open_streams: AtomicUsize::new(0),
                streams_changed: Notify::new(),
                lingering: Mutex::new(Lingering::default()),
                shutting_down: AtomicBool::new(false),
                strand_peer,
                write_boundary_min: (!strand_peer).then_some(timings.write_boundary_min),
                stop_ack_wait: if strand_peer {
                    Duration::ZERO
                } else {
                    timings.stop_ack_wait
                },
                boundary_waits: AtomicU64::new(0),
                resets: Mutex::new(TokenBucket::new(timings.floods.resets)),
                started: Instant::now(),
                peer_aborts: AtomicU64::new(0),
                // The listener gives its connections a slot; a client's
                // have none.
                bytes: slot
                    .is_some()
                    .then(|| ByteReporter::new(ByteCounters::new("quic"))),
                endpoint,
                owns_endpoint: AtomicBool::new(false),
                _slot: slot,
            }),
        }
    }

    /// The underlying quinn connection (statistics, RTT, ALPN).
    pub fn quinn(&self) -> &quinn::Connection {
        &self.shared.conn
    }

    /// The negotiated ALPN protocol.
    pub fn alpn(&self) -> Option<Vec<u8>> {
        negotiated_alpn(&self.shared.conn)
    }

    /// Whether the peer is a strand peer: the connection negotiated
    /// [`STRAND_ALPN`](crate::STRAND_ALPN) (see
    /// [`QuicConfig::strand_alpn`](crate::QuicConfig::strand_alpn)). Then
    /// neither write boundaries nor stops wait; toward any other peer
    /// they wait as `@matrixai/quic` needs.
    pub fn is_strand_peer(&self) -> bool {
        self.shared.strand_peer
    }

    /// Connection-wide figures.
    pub fn stats(&self) -> ConnectionStats {
        let (bytes_received, bytes_sent) = byte_count::totals(&self.shared.conn);
        ConnectionStats {
            open_streams: self.shared.open_streams.load(Ordering::Acquire),
            peer_aborts: self.shared.peer_aborts.load(Ordering::Acquire),
            boundary_waits: self.shared.boundary_waits.load(Ordering::Relaxed),
            bytes_received,
            bytes_sent,
        }
    }

    /// Opens a bidi stream, waiting while the peer's stream limit is reached.
    /// Gives the carrier's own halves; [`Connection::open_stream`] boxes them.
    /// The peer learns about the stream with its first byte (or FIN).
    pub async fn open_stream(&self) -> Result<Stream<QuicSendStream, QuicRecvStream>, StreamError> {
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        let (send, recv) = self
            .shared
            .conn
            .open_bi()
            .await
            .map_err(|e| self.closed_error(&e))?;
        Ok(self.wrap(send, recv, false))
    }

    /// Waits for the next stream the peer opened; the carrier's own halves
    /// ([`Connection::accept_stream`] boxes them).
    pub async fn accept_stream(
        &self,
    ) -> Result<Stream<QuicSendStream, QuicRecvStream>, StreamError> {
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return Err(shutting_down());
        }
        let (mut send, mut recv) = self
            .shared
            .conn
            .accept_bi()
            .await
            .map_err(|e| self.closed_error(&e))?;
        if self.shared.shutting_down.load(Ordering::Acquire) {
            let _ = send.reset(code(codes::SHUTDOWN));
            let _ = recv.stop(code(codes::SHUTDOWN));
            return Err(shutting_down());
        }
        Ok(self.wrap(send, recv, true))
    }

    /// Closes at once with `code` (see [`Connection::close`]).
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.shared.close(code, reason);
    }

    /// Resolves when the connection has closed, with the reason.
    ///
    /// When we closed it and its endpoint is its own (made by
    /// [`crate::connect`]), this also waits, up to
    /// [`CLOSE_SEND_WAIT`], for the endpoint to have sent the close and let
    /// the connection go: the close is sent by the endpoint's driver task, and
    /// a process that exits before then leaves the server waiting out its
    /// idle timeout.
    pub async fn closed(&self) -> CloseReason {
        let err = self.shared.conn.closed().await;
        if matches!(err, ConnectionError::LocallyClosed)
            && self.shared.owns_endpoint.load(Ordering::Acquire)
        {
            let _ = tokio::time::timeout(CLOSE_SEND_WAIT, self.shared.endpoint.wait_idle()).await;
        }
        self.shared.reason(&err)
    }

    /// Marks the endpoint as made for this connection alone.
    pub(crate) fn owning_its_endpoint(self) -> Self {
        self.shared.owns_endpoint.store(true, Ordering::Release);
        self
    }

    /// Graceful shutdown: stops accepting streams (the peer gets no new stream
    /// credit, and streams it opens anyway are refused with
    /// [`codes::SHUTDOWN`]), waits until every open stream was dropped and
    /// the peer acknowledged what finished ones wrote, or `timeout` passed,
    /// then closes with [`CloseCode::Normal`] (code 0). Returns the close
    /// reason.
    ///
    /// Cancel safety: dropping the future leaves the connection refusing new
    /// streams but open; call [`Connection::close`] to end it.
    pub async fn shutdown(&self, timeout: Duration) -> CloseReason {
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        shared.shutting_down.store(true, Ordering::Release);
        shared
            .conn
            .set_max_concurrent_bi_streams(quinn::VarInt::from_u32(0));
        let mut sleep = pin!(tokio::time::sleep_until(deadline));
        loop {
            let mut changed = pin!(shared.streams_changed.notified());
            changed.as_mut().enable();
            if shared.open_streams.load(Ordering::Acquire) == 0 {
                break;
            }
            tokio::select! {
                _ = changed => {}
                accepted = shared.conn.accept_bi() => match accepted {
                    Ok((mut send, mut recv)) => {
                        let _ = send.reset(code(codes::SHUTDOWN));
                        let _ = recv.stop(code(codes::SHUTDOWN));
                    }
                    Err(_) => break,
                },
                _ = sleep.as_mut() => break,
            }
        }
        // Every handle is gone; what the finished ones wrote may still be in
        // flight, and closing now would discard it.
        let mut lingering = std::mem::take(
            &mut *shared
                .lingering
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let _ = tokio::time::timeout_at(deadline, poll_fn(|cx| lingering.prune(cx))).await;
        shared.close(CloseCode::Normal, "shutdown");
        let err = shared.conn.closed().await;
        shared.reason(&err)
    }

    fn wrap(
        &self,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        peer_opened: bool,
    ) -> Stream<QuicSendStream, QuicRecvStream> {
        let token = StreamToken::new(self.shared.clone(), peer_opened);
        Stream::from_halves(
            QuicSendStream::new(send, self.shared.clone(), token.clone()),
            QuicRecvStream::new(recv, self.shared.clone(), token),
        )
    }

    fn closed_error(&self, err: &ConnectionError) -> StreamError {
        StreamError::ConnectionClosed(self.shared.reason(err))
    }
}

#[async_trait]
impl Connection for QuicConnection {
    async fn open_stream(&self) -> Result<Stream, StreamError> {
        Ok(QuicConnection::open_stream(self).await?.boxed())
    }

    async fn accept_stream(&self) -> Result<Stream, StreamError> {
        Ok(QuicConnection::accept_stream(self).await?.boxed())
    }

    fn peer_info(&self) -> Arc<PeerInfo> {
        self.shared.peer.clone()
    }

    fn close(&self, code: CloseCode, reason: &str) {
        QuicConnection::close(self, code, reason);
    }

    async fn closed(&self) -> CloseReason {
        QuicConnection::closed(self).await
    }

    async fn shutdown(&self, timeout: Duration) {
        QuicConnection::shutdown(self, timeout).await;
    }

    fn go_away(&self) -> bool {
        QuicConnection::go_away(self)
    }

    async fn going_away(&self) {
        QuicConnection::going_away(self).await
    }
}

/// The ALPN protocol the handshake of `conn` settled on.
fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
}

fn shutting_down() -> StreamError {
    StreamError::ConnectionClosed(CloseReason::local(CloseCode::Normal, "shutting down"))
}

/// Connection-wide figures of a [`QuicConnection`] (quinn's own, such as the
/// round-trip time, are on [`QuicConnection::quinn`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Streams whose halves are not both dropped yet.
    pub open_streams: usize,
    /// Streams the peer aborted (RESET_STREAM or STOP_SENDING) before we
    /// finished answering them: what spends
    /// [`QuicFloodLimits::resets`](crate::QuicFloodLimits::resets).
    pub peer_aborts: u64,
    /// Write boundaries that waited for the bytes before them to leave on
    /// their own (only toward peers that are not strand peers, see
    /// [`QuicConnection::is_strand_peer`]).
    pub boundary_waits: u64,
    /// Bytes of the UDP datagrams received (quinn's `udp_rx`).
    pub bytes_received: u64,
    /// Bytes of the UDP datagrams sent (quinn's `udp_tx`).
    pub bytes_sent: u64,
}

impl Drop for QuicConnection {
    fn drop(&mut self) {
        if self.shared.conn.close_reason().is_none() {
            self.shared.close(CloseCode::Normal, "");
        }
    }
}

impl fmt::Debug for QuicConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicConnection")
            .field("remote", &self.shared.conn.remote_address())
            .field("open_streams", &self.stats().open_streams)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lingering_prunes_what_resolved_and_keeps_what_did_not() {
        let mut lingering = Lingering::default();
        for _ in 0..1000 {
            lingering.push(Box::pin(std::future::ready(Ok(None))));
            assert!(lingering.acks.len() <= LINGER_PRUNE_MIN);
        }
        let mut lingering = Lingering::default();
        for _ in 0..200 {
            lingering.push(Box::pin(std::future::pending()));
        }
        assert_eq!(lingering.acks.len(), 200);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(lingering.prune(&mut cx).is_pending());
        assert_eq!(lingering.acks.len(), 200);
    }
}
