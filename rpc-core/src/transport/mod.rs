//! The `Transport` abstraction: connections that open and accept duplex streams.
//!
//! Everything above this module (codec, server, client) sees only these types, so
//! a handler cannot tell which carrier delivered its stream. Carriers implement
//! them in their own crates; [`crate::memory`] is the in-process one.
//! docs/protocol.md says how each carrier puts these acts on its wire.
//!
//! A [`Connection`] opens and accepts [`Stream`]s. A stream is two halves:
//!
//! - [`SendStream`]: `AsyncWrite`; `poll_shutdown` is the graceful finish (FIN),
//!   [`SendStream::reset`] aborts it with a code, and
//!   [`SendStream::poll_stopped`] reports that the peer cancelled its receive
//!   side.
//! - [`RecvStream`]: `AsyncRead`, reading `Ok(0)` at the peer's graceful finish;
//!   [`RecvStream::stop`] cancels it with a code.
//!
//! Errors surface through `std::io::Error` (that is what `AsyncRead`/`AsyncWrite`
//! return); the transport-level cause is a [`StreamError`] inside it, recovered
//! with [`StreamError::from_io`].
//!
//! # Drop semantics (every transport implements them)
//!
//! - Dropping a [`SendStream`] that was neither finished nor reset resets it
//!   with code [`codes::CANCELLED`]: a truncated stream never looks complete.
//! - Dropping a [`RecvStream`] before it reached the end stops it with
//!   [`codes::CANCELLED`], so the peer's writer learns nobody reads any more.
//! - Dropping the last handle to a [`Connection`] closes it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

mod accept_queue;
mod budget;
mod close;
mod peer;

pub use accept_queue::{AcceptQueue, AcceptQueueError, ConnectionSlot, PendingSlot};
pub use budget::{Budget, TokenBucket};
pub use close::{CloseCode, CloseInitiator, CloseReason};
pub use peer::{Extensions, PeerInfo};

/// Stream error codes that strand itself uses when it resets or stops a stream.
///
/// Codes are application-defined varints on every carrier; strand keeps 0 for
/// "cancelled" because that is what the TypeScript stack sends for every abort.
pub mod codes {
    /// The call was cancelled (dropped by the client, or the handler was aborted).
    pub const CANCELLED: u64 = 0;
    /// The call ran past its deadline.
    pub const TIMED_OUT: u64 = 1;
    /// The peer broke the RPC protocol on this stream (bad JSON, message too long).
    pub const PROTOCOL: u64 = 2;
    /// The server is shutting down and aborted the call.
    pub const SHUTDOWN: u64 = 3;
    /// The stream was refused because a limit was reached (streams, backlog).
    pub const REFUSED: u64 = 4;
}

/// Why a stream operation failed, as seen by the transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The peer aborted its sending side with this code (reading fails).
    #[error("stream reset by peer with code {0}")]
    Reset(u64),
    /// The peer cancelled its receiving side with this code (writing fails).
    #[error("stream stopped by peer with code {0}")]
    Stopped(u64),
    /// The connection closed; every stream on it fails with this.
    #[error("connection closed: {0}")]
    ConnectionClosed(CloseReason),
    /// This side already finished, reset or stopped the half it is using.
    #[error("stream already closed locally")]
    ClosedLocally,
    /// A limit refused the operation (too many streams, backlog full).
    #[error("refused by limit: {0}")]
    Refused(&'static str),
}

impl StreamError {
    /// Finds the `StreamError` carried inside an `io::Error` returned by a stream half.
    pub fn from_io(err: &io::Error) -> Option<&StreamError> {
        err.get_ref()?.downcast_ref::<StreamError>()
    }

    /// Wraps this error in an `io::Error` with a fitting kind.
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            StreamError::Reset(_) => io::ErrorKind::ConnectionReset,
            StreamError::Stopped(_) => io::ErrorKind::BrokenPipe,
            StreamError::ConnectionClosed(_) => io::ErrorKind::ConnectionAborted,
            StreamError::ClosedLocally => io::ErrorKind::NotConnected,
            StreamError::Refused(_) => io::ErrorKind::ConnectionRefused,
        };
        io::Error::new(kind, self)
    }
}

impl From<StreamError> for io::Error {
    fn from(err: StreamError) -> Self {
        err.into_io()
    }
}

/// The sending half of a duplex stream.
///
/// `poll_shutdown` finishes the stream gracefully: it resolves once the carrier
/// has queued the end of stream. The carrier then delivers the queued bytes
/// and the end even if the half is dropped right after.
pub trait SendStream: AsyncWrite + Send + Unpin + 'static {
    /// Aborts sending with `code`; the peer's reads fail with
    /// [`StreamError::Reset`]. Idempotent; a no-op after a graceful finish.
    fn reset(&mut self, code: u64);

    /// Resolves with the code once the peer has stopped reading (it will never
    /// read what we write). Stays pending otherwise, including after a graceful
    /// finish. Servers use it to cancel a handler whose caller went away.
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<u64>;

    /// Resolves once bytes written so far will reach the peer's reader as their
    /// own read, apart from bytes written later.
    ///
    /// Servers of the TypeScript stack drop whatever arrives right after a
    /// call's first message (in the same chunk, or before they finished
    /// parsing it), so the client waits on this after writing that message.
    /// Each carrier says how it waits (docs/protocol.md, "Rules that keep JS
    /// peers working"). The default is ready at once, right for carriers
    /// whose peers never lose those bytes.
    fn poll_write_boundary(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    /// Writes the stream's last bytes: `poll_write`, and once all of `buf`
    /// was taken, the finish too if the carrier can queue it in the same
    /// step. Gives the bytes taken and whether the stream is finished; when
    /// it is not, the caller finishes with `poll_shutdown` as usual.
    ///
    /// A unary call's request and response are each one write and a finish:
    /// a carrier whose halves share a lock (the WebSocket mux) takes it once
    /// for both; QUIC finishes without first looking for a STOP_SENDING.
    /// The default only writes.
    fn poll_write_last(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<(usize, bool)>> {
        Pin::new(self).poll_write(cx, buf).map_ok(|n| (n, false))
    }
}

/// The receiving half of a duplex stream. Reads `Ok(0)` once the peer finished.
pub trait RecvStream: AsyncRead + Send + Unpin + 'static {
    /// Tells the peer to stop sending with `code`; its writes fail with
    /// [`StreamError::Stopped`]. Idempotent; a no-op after the end was read.
    fn stop(&mut self, code: u64);

    /// Reads the next run of received bytes, at most `max` of them; `Ok(None)`
    /// once the peer finished. Errors as [`AsyncRead::poll_read`].
    ///
    /// Carriers that keep received bytes as [`Bytes`] hand them over without
    /// copying (the message reader then slices messages out of them). The
    /// default reads through `poll_read` and copies what arrived into a buffer
    /// of its exact size.
    fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        let mut storage = [std::mem::MaybeUninit::<u8>::uninit(); DEFAULT_CHUNK];
        let len = max.clamp(1, DEFAULT_CHUNK);
        let mut buf = ReadBuf::uninit(&mut storage[..len]);
        std::task::ready!(std::pin::Pin::new(&mut *self).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(match buf.filled() {
            [] => None,
            filled => Some(Bytes::copy_from_slice(filled)),
        }))
    }
}

/// The most [`RecvStream::poll_read_chunk`]'s default reads at once.
const DEFAULT_CHUNK: usize = 8 * 1024;

/// A boxed sending half.
pub type BoxSendStream = Box<dyn SendStream>;
/// A boxed receiving half.
pub type BoxRecvStream = Box<dyn RecvStream>;

/// A duplex stream: one call's worth of bytes in each direction.
///
/// Through a [`Connection`] the halves are boxed (`Stream`, the default
/// parameters); a carrier's own connection type gives its own halves
/// (`Stream<WsSendStream, WsRecvStream>`, say), with whatever figures they
/// carry, and [`Stream::boxed`] turns those into the former.
pub struct Stream<S = BoxSendStream, R = BoxRecvStream> {
    /// What we write to the peer.
    pub send: S,
    /// What the peer writes to us.
    pub recv: R,
}

impl Stream {
    /// Builds a boxed stream from any pair of halves.
    pub fn new(send: impl SendStream, recv: impl RecvStream) -> Self {
        Stream {
            send: Box::new(send),
            recv: Box::new(recv),
        }
    }
}

impl<S: SendStream, R: RecvStream> Stream<S, R> {
    /// A stream of the carrier's own halves.
    pub fn from_halves(send: S, recv: R) -> Self {
        Stream { send, recv }
    }

    /// Splits into the two halves.
    pub fn split(self) -> (S, R) {
        (self.send, self.recv)
    }

    /// The same stream with boxed halves, as [`Connection`] returns it.
    pub fn boxed(self) -> Stream {
        Stream::new(self.send, self.recv)
    }
}

impl<S, R> fmt::Debug for Stream<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").finish_non_exhaustive()
    }
}

/// A connection that carries many duplex streams.
///
/// Implementations are cheap handles around a driver task; `&self` methods may
/// be called from many tasks at once.
#[async_trait]
pub trait Connection: Send + Sync + 'static {
    /// Opens a new stream to the peer. May wait while a stream limit is reached.
    async fn open_stream(&self) -> Result<Stream, StreamError>;

    /// Waits for the next stream the peer opened. Fails with
    /// [`StreamError::ConnectionClosed`] once the connection is gone.
    async fn accept_stream(&self) -> Result<Stream, StreamError>;

    /// [`Connection::open_stream`] if it can complete without waiting;
    /// `None` if it would wait (then call `open_stream`). A fast path for
    /// the call loops: the boxed future of `open_stream` is an allocation
    /// per call. The default always says it would wait.
    fn try_open_stream(&self) -> Option<Result<Stream, StreamError>> {
        None
    }

    /// [`Connection::accept_stream`] if a stream is waiting (or the
    /// connection is gone); `None` if it would wait. See
    /// [`Connection::try_open_stream`].
    fn try_accept_stream(&self) -> Option<Result<Stream, StreamError>> {
        None
    }

    /// What is known about the peer.
    fn peer_info(&self) -> Arc<PeerInfo>;

    /// Closes the connection at once with `code` (mapped to the carrier's
    /// own close code) and `reason`. Every open stream fails with
    /// [`StreamError::ConnectionClosed`].
    fn close(&self, code: CloseCode, reason: &str);

    /// Resolves when the connection has closed, with the reason.
    async fn closed(&self) -> CloseReason;

    /// Closes gracefully: stop opening and accepting streams, let open streams
    /// finish until `timeout`, then close with [`CloseCode::Normal`].
    /// Transports override this; the default closes at once.
    async fn shutdown(&self, timeout: std::time::Duration) {
        let _ = timeout;
        self.close(CloseCode::Normal, "shutting down");
    }

    /// Tells the peer that this side is going away (a server draining), so
    /// that it moves its new calls to another connection. Only a peer that
    /// negotiated the go-away extension at set-up is told (docs/protocol.md,
    /// "Go-away"); returns whether it was. The default tells no one.
    fn go_away(&self) -> bool {
        false
    }

    /// Resolves once the peer said it is going away ([`Connection::go_away`]
    /// on its side). The connection still works; its streams may finish.
    /// The default never resolves (the carrier has no such signal).
    async fn going_away(&self) {
        std::future::pending::<()>().await
    }

    /// [`Connection::shutdown`] that ends as going away: the close of a
    /// draining server. On ws that is 1001 toward a peer that negotiated
    /// go-away and 1000 toward the others (`@matrixai/ws` takes any other
    /// code for an error); QUIC has one code, 0. The default is `shutdown`.
    async fn shutdown_going_away(&self, timeout: std::time::Duration) {
        self.shutdown(timeout).await
    }
}

/// A shared, type-erased connection.
pub type DynConnection = Arc<dyn Connection>;

/// A server-side source of connections.
#[async_trait]
pub trait Listener: Send + Sync + 'static {
    /// Waits for the next connection (after its handshake completed).
    async fn accept(&self) -> io::Result<DynConnection>;

    /// The local address, when the carrier has one.
    fn local_addr(&self) -> Option<SocketAddr>;

    /// Stops taking new connections but keeps those whose set-up is under
    /// way or done: `accept` hands them over, then fails. A stopping
    /// [`crate::server::Server`] calls it and serves what it gets, since a
    /// client whose handshake completed may already be sending calls; it
    /// does not wait for `accept` to fail beyond its grace period.
    ///
    /// Returns `false` if the listener cannot (the default): the server
    /// then stops accepting at once and drops it.
    fn stop_accepting(&self) -> bool {
        false
    }
}

/// Waits until the peer stops reading; see [`SendStream::poll_stopped`].
pub async fn stopped(send: &mut (impl SendStream + ?Sized)) -> u64 {
    std::future::poll_fn(|cx| send.poll_stopped(cx)).await
}

/// Waits for a write boundary; see [`SendStream::poll_write_boundary`].
pub async fn write_boundary(send: &mut (impl SendStream + ?Sized)) -> io::Result<()> {
    std::future::poll_fn(|cx| send.poll_write_boundary(cx)).await
}

impl SendStream for Box<dyn SendStream> {
    fn reset(&mut self, code: u64) {
        (**self).reset(code)
    }
    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        (**self).poll_stopped(cx)
    }
    fn poll_write_boundary(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_write_boundary(cx)
    }
    fn poll_write_last(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<(usize, bool)>> {
        (**self).poll_write_last(cx, buf)
    }
}

impl RecvStream for Box<dyn RecvStream> {
    fn stop(&mut self, code: u64) {
        (**self).stop(code)
    }
    fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        (**self).poll_read_chunk(cx, max)
    }
}
