//! The QUIC side of [`Endpoint`]: its settings as a [`QuicConfig`], and
//! binding and connecting `quic://` URLs. Built with the `quic` feature.

use std::io;
use std::net::SocketAddr;

use strand_rpc_core::transport::DynConnection;
use strand_transport_quic::{QuicClientConfig, QuicConfig, QuicListener, QuicServerConfig};

use super::Endpoint;
use crate::config::TimeoutsConfig;
use crate::Error;

impl Endpoint {
    pub(super) async fn bind_quic(&self) -> Result<QuicListener, Error> {
        let config = self.quic_server_config()?;
        Ok(QuicListener::bind((self.host.as_str(), self.port), config).await?)
    }

    /// The listener's settings: identity, ALPN, the transport's, the
    /// server limits.
    pub(crate) fn quic_server_config(&self) -> Result<QuicServerConfig, Error> {
        let tls = self.server_tls()?;
        let mut config = QuicServerConfig::new(tls.identity.clone())
            .with_client_auth(tls.client_auth)
            .with_transport(self.quic_transport());
        if let Some(alpn) = self.alpn() {
            config = config.with_alpn(alpn);
        }
        let limits = &self.config.limits;
        if let Some(n) = limits.max_connections {
            config.max_connections = n;
        }
        if let Some(n) = limits.max_pending_handshakes {
            config.max_pending_handshakes = n;
        }
        if let Some(n) = limits.retry_threshold {
            config.retry_threshold = n;
        }
        Ok(config)
    }

    pub(super) async fn connect_quic(&self) -> Result<DynConnection, Error> {
        let addr = self.resolve().await?;
        let tls = self.client_tls()?;
        let mut config =
            QuicClientConfig::new(tls.verification.clone()).with_transport(self.quic_transport());
        config.tls = tls;
        config.tls.alpn = self
            .alpn()
            .unwrap_or_else(|| vec![strand_transport_quic::DEFAULT_ALPN.to_vec()]);
        let name = self
            .config
            .tls
            .server_name
            .clone()
            .unwrap_or_else(|| self.host.clone());
        let conn = strand_transport_quic::connect(addr, &name, config).await?;
        Ok(std::sync::Arc::new(conn))
    }

    async fn resolve(&self) -> Result<SocketAddr, Error> {
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| {
                Error::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} resolves to no address", self.host),
                ))
            })
    }

    fn alpn(&self) -> Option<Vec<Vec<u8>>> {
        let alpn = self.config.tls.alpn.as_ref()?;
        Some(alpn.iter().map(|p| p.as_bytes().to_vec()).collect())
    }

    pub(crate) fn quic_transport(&self) -> QuicConfig {
        let (limits, timeouts) = (&self.config.limits, &self.config.timeouts);
        let mut t = QuicConfig::default();
        if let Some(w) = limits.stream_window {
            t.stream_window = w;
        }
        if let Some(n) = limits.max_streams {
            t.max_streams = n;
        }
        if let Some(n) = limits.connection_receive_buffer {
            t.receive_window = n;
        }
        if let Some(on) = self.config.tls.strand_alpn {
            t.strand_alpn = on;
        }
        if let Some(bytes) = limits.quic_datagram_buffer {
            t.datagram_receive_buffer = bytes;
        }
        // The one flood budget both carriers have (docs/reliability.md).
        if let Some(b) = limits.floods.resets {
            t.floods.resets = strand_transport_quic::Budget::new(b.burst, b.per_second);
        }
        if let Some(d) = TimeoutsConfig::duration(timeouts.handshake_ms) {
            t.handshake_timeout = d;
        }
        if let Some(d) = TimeoutsConfig::optional(timeouts.idle_ms) {
            t.idle_timeout = d;
        }
        if let Some(d) = TimeoutsConfig::optional(timeouts.keep_alive_ms) {
            t.keep_alive_interval = d;
        }
        t
    }
}
