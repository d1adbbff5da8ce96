//! The facade's one error type.

use std::io;

/// Why an endpoint could not be parsed, configured, bound or connected.
///
/// Call failures are not here: a call fails with [`crate::ClientError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a usable `ws://`, `wss://` or `quic://` URL (caller
    /// error: fix the URL).
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration is inconsistent or could not be parsed (caller error).
    #[error("invalid config: {0}")]
    Config(String),
    /// A TLS identity or option could not be loaded or built (bad files,
    /// bad PEM, a key that does not match its certificate).
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The WebSocket transport failed to bind or connect.
    #[cfg(feature = "ws")]
    #[error("websocket: {0}")]
    Ws(#[from] crate::ws::WsError),
    /// The QUIC transport failed to bind or connect.
    #[cfg(feature = "quic")]
    #[error("quic: {0}")]
    Quic(#[from] crate::quic::QuicError),
    /// The URL names a carrier this build of strand leaves out (caller
    /// error: enable the cargo feature the message names).
    #[error("{}:// is not available: strand was built without its `{}` feature", .0, .0.feature())]
    NotBuilt(crate::Scheme),
    /// A socket operation or a name lookup failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    pub(crate) fn url(url: &str, reason: impl Into<String>) -> Self {
        Error::InvalidUrl {
            url: url.to_owned(),
            reason: reason.into(),
        }
    }
}
