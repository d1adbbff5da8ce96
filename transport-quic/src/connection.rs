//! [`QuicConnection`]: a quinn connection behind rpc-core's `Connection` trait.

use std::fmt;
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use quinn::ConnectionError;
use strand_rpc_core::transport::{codes, CloseReason, Connection, PeerInfo, Stream, StreamError};
use strand_tls::CertificateDer;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::stream::{code, QuicRecvStream, QuicSendStream, StoppedFuture, StreamToken};

/// The stream timings of a [`crate::TransportConfig`] that each connection keeps.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamTimings {
    pub(crate) write_boundary_min: Duration,
    pub(crate) stop_ack_wait: Duration,
}

impl StreamTimings {
    pub(crate) fn of(config: &crate::TransportConfig) -> Self {
        StreamTimings {
            write_boundary_min: config.write_boundary_min,
            stop_ack_wait: config.stop_ack_wait,
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
    pub(crate) write_boundary_min: Duration,
    pub(crate) stop_ack_wait: Duration,
    /// Keeps the endpoint (and its UDP socket and driver) alive.
    _endpoint: quinn::Endpoint,
    /// The listener's connection slot, freed when the connection is gone.
    _slot: Option<OwnedSemaphorePermit>,
}

impl Shared {
    /// Translates quinn's view of a closed connection into strand's.
    pub(crate) fn reason(&self, err: &ConnectionError) -> CloseReason {
        match err {
            ConnectionError::LocallyClosed => self
                .local_close
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_else(|| CloseReason::local(0, "")),
            ConnectionError::ApplicationClosed(close) => CloseReason::peer(
                close.error_code.into_inner(),
                String::from_utf8_lossy(&close.reason),
            ),
            ConnectionError::ConnectionClosed(close) => {
                let mut reason = close.error_code.to_string();
                if !close.reason.is_empty() {
                    reason.push_str(": ");
                    reason.push_str(&String::from_utf8_lossy(&close.reason));
                }
                CloseReason::peer(u64::from(close.error_code), reason)
            }
            ConnectionError::TimedOut => CloseReason::lost("idle timeout"),
            ConnectionError::Reset => CloseReason::lost("stateless reset by peer"),
            other => CloseReason::lost(other.to_string()),
        }
    }

    fn close(&self, code: u64, reason: &str) {
        if let Ok(mut local) = self.local_close.lock() {
            if local.is_none() && self.conn.close_reason().is_none() {
                *local = Some(CloseReason::local(code, reason));
            }
        }
        self.conn.close(self::code(code), reason.as_bytes());
    }
}

/// A QUIC connection: opens and accepts one bidi stream per call.
///
/// Dropping it closes the connection with application code 0; streams still
/// open then fail with [`StreamError::ConnectionClosed`].
pub struct QuicConnection {
    shared: Arc<Shared>,
}

impl QuicConnection {
    pub(crate) fn new(
        conn: quinn::Connection,
        endpoint: quinn::Endpoint,
        timings: StreamTimings,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let certificates = conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|chain| chain.iter().map(|c| Bytes::copy_from_slice(c)).collect())
            .unwrap_or_default();
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
                write_boundary_min: timings.write_boundary_min,
                stop_ack_wait: timings.stop_ack_wait,
                _endpoint: endpoint,
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
        self.shared
            .conn
            .handshake_data()
            .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|d| d.protocol)
    }

    /// Streams of this connection whose halves are not both dropped yet.
    pub fn open_streams(&self) -> usize {
        self.shared.open_streams.load(Ordering::Acquire)
    }

    /// Graceful shutdown: stops accepting streams (the peer gets no new stream
    /// credit, and streams it opens anyway are refused with
    /// [`codes::SHUTDOWN`]), waits until every open stream was dropped and
    /// the peer acknowledged what finished ones wrote, or `deadline` passed,
    /// then closes with code 0. Returns the close reason.
    ///
    /// Cancel safety: dropping the future leaves the connection refusing new
    /// streams but open; call [`Connection::close`] to end it.
    pub async fn shutdown(&self, deadline: Instant) -> CloseReason {
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
        shared.close(0, "shutdown");
        let err = shared.conn.closed().await;
        shared.reason(&err)
    }

    fn wrap(&self, send: quinn::SendStream, recv: quinn::RecvStream) -> Stream {
        let token = StreamToken::new(self.shared.clone());
        Stream::new(
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
    /// Opens a bidi stream, waiting while the peer's stream limit is reached.
    /// The peer learns about the stream with its first byte (or FIN).
    async fn open_stream(&self) -> Result<Stream, StreamError> {
        if self.shared.shutting_down.load(Ordering::Acquire) {
            return Err(StreamError::ConnectionClosed(CloseReason::local(
                0,
                "shutting down",
            )));
        }
        let (send, recv) = self
            .shared
            .conn
            .open_bi()
            .await
            .map_err(|e| self.closed_error(&e))?;
        Ok(self.wrap(send, recv))
    }

    async fn accept_stream(&self) -> Result<Stream, StreamError> {
        let shutting_down =
            || StreamError::ConnectionClosed(CloseReason::local(0, "shutting down"));
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
        Ok(self.wrap(send, recv))
    }

    fn peer_info(&self) -> Arc<PeerInfo> {
        self.shared.peer.clone()
    }

    fn close(&self, code: u64, reason: &str) {
        self.shared.close(code, reason);
    }

    async fn closed(&self) -> CloseReason {
        let err = self.shared.conn.closed().await;
        self.shared.reason(&err)
    }

    async fn shutdown(&self, timeout: Duration) {
        QuicConnection::shutdown(self, Instant::now() + timeout).await;
    }
}

impl Drop for QuicConnection {
    fn drop(&mut self) {
        if self.shared.conn.close_reason().is_none() {
            self.shared.close(0, "");
        }
    }
}

impl fmt::Debug for QuicConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicConnection")
            .field("remote", &self.shared.conn.remote_address())
            .field("open_streams", &self.open_streams())
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
