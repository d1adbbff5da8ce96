//! [`QuicClient`]: one client endpoint (one UDP socket) for many connections.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use quinn::{ConnectionError, TransportErrorCode};

use crate::connection::StreamTimings;
use crate::{QuicClientConfig, QuicConnection, QuicError};

/// The TLS alert `no_application_protocol` (120) as a QUIC crypto error.
const NO_APPLICATION_PROTOCOL: u8 = 120;

/// A QUIC client endpoint: one UDP socket that can connect to many servers.
#[derive(Clone)]
pub struct QuicClient {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    settings: QuicClientConfig,
}

impl QuicClient {
    /// Binds a client endpoint on `local` (port 0 for any).
    ///
    /// Must be called inside a tokio runtime.
    pub fn bind(local: SocketAddr, config: QuicClientConfig) -> Result<QuicClient, QuicError> {
        let quinn_config = config.build()?;
        let endpoint = quinn::Endpoint::client(local).map_err(|source| QuicError::Bind {
            addr: local,
            source,
        })?;
        Ok(QuicClient {
            endpoint,
            config: quinn_config,
            settings: config,
        })
    }

    /// The bound local address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Connects to `addr`, verifying the server certificate for
    /// `server_name` (a DNS name or an IP address), within the handshake
    /// timeout.
    ///
    /// Cancel safety: dropping the future abandons the attempt.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<QuicConnection, QuicError> {
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), addr, server_name)?;
        let timeout = self.settings.transport.handshake_timeout;
        let conn = match tokio::time::timeout(timeout, connecting).await {
            Err(_) => return Err(QuicError::HandshakeTimeout(timeout)),
            Ok(Err(e)) => return Err(self.handshake_error(e)),
            Ok(Ok(conn)) => conn,
        };
        Ok(QuicConnection::new(
            conn,
            self.endpoint.clone(),
            StreamTimings::of(&self.settings.transport),
            None,
        ))
    }

    fn handshake_error(&self, err: ConnectionError) -> QuicError {
        if let ConnectionError::ConnectionClosed(close) = &err {
            if close.error_code == TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL) {
                return QuicError::AlpnMismatch {
                    offered: self
                        .settings
                        .offered_alpn()
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect(),
                };
            }
        }
        QuicError::Handshake(err)
    }

    /// Closes every connection of this endpoint with code 0 and waits until
    /// the peers were told (or the close timed out).
    pub async fn close(&self) {
        self.endpoint.close(quinn::VarInt::from_u32(0), b"");
        self.endpoint.wait_idle().await;
    }

    /// The underlying quinn endpoint.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

impl fmt::Debug for QuicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicClient")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Connects with a fresh client endpoint bound to the unspecified address of
/// `addr`'s family. Use one [`QuicClient`] for many connections instead.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    config: QuicClientConfig,
) -> Result<QuicConnection, QuicError> {
    let local = if addr.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    Ok(QuicClient::bind(local, config)?
        .connect(addr, server_name)
        .await?
        .owning_its_endpoint())
}
