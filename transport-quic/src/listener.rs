//! [`QuicListener`]: accepts QUIC connections, handshakes them in the
//! background and queues them for [`QuicListener::accept_connection`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use strand_rpc_core::transport::{AcceptQueue, DynConnection, Listener};
use tokio::net::{lookup_host, ToSocketAddrs};
use tokio::task::JoinHandle;

use crate::connection::StreamTimings;
use crate::{QuicConnection, QuicError, QuicServerConfig};

/// A QUIC server endpoint: a [`Listener`] of [`QuicConnection`]s.
///
/// A background task takes incoming connection attempts, runs each handshake
/// in its own task (bounded by the handshake timeout) and queues completed
/// connections. At most [`QuicServerConfig::max_pending_handshakes`] may be
/// handshaking or queued at once, and [`QuicServerConfig::max_connections`]
/// open in all; attempts over either limit are refused. Dropping the
/// listener stops accepting; connections already accepted stay open.
pub struct QuicListener {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    queue: AcceptQueue<QuicConnection>,
    driver: JoinHandle<()>,
}

impl QuicListener {
    /// Binds a UDP socket on `addr` (the first address it resolves to) and
    /// starts accepting connections.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: QuicServerConfig,
    ) -> Result<QuicListener, QuicError> {
        let server_config = config.build()?;
        let addr = lookup_host(addr)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| QuicError::Config("the listen address resolves to nothing".into()))?;
        let endpoint = quinn::Endpoint::server(server_config, addr)
            .map_err(|source| QuicError::Bind { addr, source })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| QuicError::Bind { addr, source })?;
        let queue = AcceptQueue::new(config.max_pending_handshakes, config.max_connections);
        let driver = tokio::spawn(drive(
            endpoint.clone(),
            queue.clone(),
            config.transport.handshake_timeout,
            StreamTimings::of(&config.transport),
        ));
        Ok(QuicListener {
            endpoint,
            local_addr,
            queue,
            driver,
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next connection whose handshake completed.
    ///
    /// Cancel safety: cancel safe; a connection is only taken from the queue
    /// when this returns it.
    pub async fn accept_connection(&self) -> Result<QuicConnection, QuicError> {
        self.queue
            .accept()
            .await
            .map_err(|_| QuicError::ListenerClosed)
    }

    /// Stops accepting: new attempts are refused, queued connections are
    /// closed, and `accept` fails with [`QuicError::ListenerClosed`].
    /// Connections already accepted stay open.
    pub fn close(&self) {
        self.endpoint.set_server_config(None);
        self.driver.abort();
        self.queue.close();
    }

    /// The underlying quinn endpoint.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

async fn drive(
    endpoint: quinn::Endpoint,
    queue: AcceptQueue<QuicConnection>,
    handshake_timeout: Duration,
    timings: StreamTimings,
) {
    while let Some(incoming) = endpoint.accept().await {
        let reserved = queue
            .try_reserve()
            .and_then(|slot| Ok((slot.connection_slot()?, slot)));
        let (connection, slot) = match reserved {
            Ok(slots) => slots,
            Err(limit) => {
                tracing::debug!(remote = %incoming.remote_address(), %limit, "quic: refusing connection");
                incoming.refuse();
                continue;
            }
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match tokio::time::timeout(handshake_timeout, incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "quic: handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "quic: handshake timed out");
                    return;
                }
            };
            slot.push(QuicConnection::new(
                conn,
                endpoint,
                timings,
                Some(connection),
            ));
        });
    }
    queue.close();
}

#[async_trait]
impl Listener for QuicListener {
    async fn accept(&self) -> io::Result<DynConnection> {
        let conn = self.accept_connection().await.map_err(QuicError::into_io)?;
        Ok(Arc::new(conn))
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.local_addr)
    }
}

impl Drop for QuicListener {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for QuicListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}
