//! The crate's error type.

use std::io;

/// Why connecting, listening or the upgrade failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The URL is not a usable `ws://` or `wss://` URL (caller error).
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// A socket operation failed (connect, bind, read, write).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The TLS configuration could not be built (caller error).
    #[error("tls configuration: {0}")]
    Tls(#[from] strand_tls::TlsError),
    /// `wss://` without a TLS configuration (caller error).
    #[error("wss url but no tls configuration")]
    TlsRequired,
    /// The TLS handshake failed (certificate rejected by either side).
    #[error("tls handshake failed: {0}")]
    TlsHandshake(io::Error),
    /// The server answered the upgrade with this HTTP status (e.g. 401, 403,
    /// 404, 426).
    #[error("upgrade refused with http status {0}")]
    Refused(http::StatusCode),
    /// The WebSocket handshake failed (malformed response, protocol error).
    #[error("websocket handshake failed: {0}")]
    Handshake(String),
    /// WebSocket over HTTP/2: the server does not speak HTTP/2 or refuses
    /// extended CONNECT, or the HTTP/2 connection failed.
    #[error("http/2: {0}")]
    Http2(String),
    /// The handshake did not finish within the configured timeout.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The listener was closed; no more connections will be accepted.
    #[error("listener closed")]
    ListenerClosed,
}

impl From<WsError> for io::Error {
    fn from(err: WsError) -> io::Error {
        match err {
            WsError::Io(e) => e,
            WsError::HandshakeTimeout => io::Error::new(io::ErrorKind::TimedOut, err),
            WsError::ListenerClosed => io::Error::new(io::ErrorKind::NotConnected, err),
            other => io::Error::other(other),
        }
    }
}
