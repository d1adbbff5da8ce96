//! The crate's one error type.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a QUIC listener or connection could not be set up.
///
/// Stream-level failures are not here: they travel as
/// [`StreamError`](strand_rpc_core::transport::StreamError) inside `io::Error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuicError {
    /// The TLS options are invalid (local configuration problem).
    #[error("tls configuration: {0}")]
    Tls(#[from] strand_tls::TlsError),
    /// A transport option is out of range, or rustls cannot do QUIC with the
    /// given config (local configuration problem).
    #[error("invalid quic configuration: {0}")]
    Config(String),
    /// The UDP socket could not be bound (address in use, permissions).
    #[error("binding udp socket {addr}: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The connection attempt could not start (bad server name, endpoint closed).
    #[error("starting connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The handshake failed: certificate refused by either side, peer closed,
    /// unreachable. The inner error says which.
    #[error("handshake failed: {0}")]
    Handshake(#[source] quinn::ConnectionError),
    /// The peer accepts none of our ALPN protocols. Configure the same ALPN on
    /// both sides (`quic` is the default of strand and of `@matrixai/quic`).
    #[error("alpn mismatch: the server accepts none of the offered protocols {offered:?}")]
    AlpnMismatch {
        /// The protocols we offered.
        offered: Vec<String>,
    },
    /// The handshake did not finish within the configured handshake timeout.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The listener was closed; no more connections will be accepted.
    #[error("listener closed")]
    ListenerClosed,
}

impl QuicError {
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match &self {
            QuicError::ListenerClosed => io::ErrorKind::NotConnected,
            QuicError::HandshakeTimeout(_) => io::ErrorKind::TimedOut,
            QuicError::Bind { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}
