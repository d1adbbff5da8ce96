//! [`QuicListener`]: accepts QUIC connections, handshakes them in the
//! background and queues them for [`QuicListener::accept_connection`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use strand_rpc_core::transport::{AcceptQueue, DynConnection, Listener};
use tokio::net::{lookup_host, ToSocketAddrs};
use tokio::task::JoinHandle;

use crate::byte_count::{self, Served};
use crate::connection::StreamTimings;
use crate::{QuicConnection, QuicError, QuicServerConfig};

/// A QUIC server endpoint: a [`Listener`] of [`QuicConnection`]s.
///
/// A background task takes incoming connection attempts, runs each handshake
/// in its own task (bounded by the handshake timeout) and queues completed
/// connections. At most [`QuicServerConfig::max_pending_handshakes`] may be
/// handshaking or queued at once, and [`QuicServerConfig::max_connections`]
/// open in all; attempts over either limit are refused. From
/// [`QuicServerConfig::retry_threshold`] handshakes in progress on, an
/// attempt from an address not yet validated gets a Retry instead of a
/// handshake. Dropping the listener stops accepting; connections already
/// accepted stay open.
pub struct QuicListener {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    queue: AcceptQueue<QuicConnection>,
    counters: Arc<Counters>,
    driver: JoinHandle<()>,
    /// The connections whose bytes the metrics count: sampled while this
    /// listener lives (the sampling task holds it weakly).
    _served: Arc<Served>,
}

/// A [`QuicListener`]'s figures ([`QuicListener::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuicListenerStats {
    /// Handshakes in progress.
    pub handshakes: usize,
    /// Connections holding a slot under `max_connections`: handshaking,
    /// waiting to be accepted, or open.
    pub open_connections: usize,
    /// Connection attempts answered with a Retry (address validation).
    pub retries: u64,
    /// Connection attempts refused: `max_pending_handshakes` or
    /// `max_connections` was reached.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    handshakes: AtomicUsize,
    retries: AtomicU64,
    refused: AtomicU64,
}

/// One handshake in progress, counted until dropped.
struct Handshaking(Arc<Counters>);

impl Handshaking {
    fn start(counters: &Arc<Counters>) -> Self {
        counters.handshakes.fetch_add(1, Ordering::Relaxed);
        Handshaking(counters.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the accept loop needs besides the endpoint and the queue.
struct Admission {
    handshake_timeout: Duration,
    retry_threshold: usize,
    timings: StreamTimings,
    counters: Arc<Counters>,
    served: Arc<Served>,
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
        let counters = Arc::new(Counters::default());
        let served = Arc::new(Served::default());
        if strand_rpc_core::metrics::ENABLED {
            tokio::spawn(byte_count::sample(Arc::downgrade(&served)));
        }
        let admission = Admission {
            handshake_timeout: config.transport.handshake_timeout,
            retry_threshold: config.retry_threshold,
            timings: StreamTimings::of(&config.transport),
            counters: counters.clone(),
            served: served.clone(),
        };
        let driver = tokio::spawn(drive(endpoint.clone(), queue.clone(), admission));
        Ok(QuicListener {
            endpoint,
            local_addr,
            queue,
            counters,
            driver,
            _served: served,
        })
    }

    /// The listener's figures: handshakes in progress, open connections,
    /// Retries sent, attempts refused.
    pub fn stats(&self) -> QuicListenerStats {
        QuicListenerStats {
            handshakes: self.counters.handshakes.load(Ordering::Relaxed),
            open_connections: self.queue.open_connections(),
            retries: self.counters.retries.load(Ordering::Relaxed),
            refused: self.counters.refused.load(Ordering::Relaxed),
        }
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

    /// Stops accepting but keeps what is under way: new attempts are
    /// refused, handshakes in progress finish, and `accept_connection`
    /// gives those and the queued connections before it fails with
    /// [`QuicError::ListenerClosed`].
    pub fn stop_accepting(&self) {
        self.endpoint.set_server_config(None);
        self.driver.abort();
        self.queue.stop_accepting();
    }

    /// The underlying quinn endpoint.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

async fn drive(
    endpoint: quinn::Endpoint,
    queue: AcceptQueue<QuicConnection>,
    admission: Admission,
) {
    let Admission {
        handshake_timeout,
        retry_threshold,
        timings,
        counters,
        served,
    } = admission;
    while let Some(mut incoming) = endpoint.accept().await {
        let busy = counters.handshakes.load(Ordering::Relaxed) >= retry_threshold;
        if busy && !incoming.remote_address_validated() {
            // Stateless: an attempt that never echoes the token costs
            // nothing more (docs/reliability.md, "Hostile peers").
            match incoming.retry() {
                Ok(()) => {
                    counters.retries.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                // Not allowed for this attempt: handshake as usual.
                Err(not_allowed) => incoming = not_allowed.into_incoming(),
            }
        }
        let reserved = queue
            .try_reserve()
            .and_then(|slot| Ok((slot.connection_slot()?, slot)));
        let (connection, slot) = match reserved {
            Ok(slots) => slots,
            Err(limit) => {
                tracing::debug!(remote = %incoming.remote_address(), %limit, "quic: refusing connection");
                counters.refused.fetch_add(1, Ordering::Relaxed);
                strand_rpc_core::metrics::connection_refused("quic", limit.reason());
                incoming.refuse();
                continue;
            }
        };
        let endpoint = endpoint.clone();
        let served = served.clone();
        let handshaking = Handshaking::start(&counters);
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
            drop(handshaking);
            let conn = QuicConnection::new(conn, endpoint, timings, Some(connection));
            if strand_rpc_core::metrics::ENABLED {
                served.register(&conn.shared);
            }
            slot.push(conn);
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

    fn stop_accepting(&self) -> bool {
        QuicListener::stop_accepting(self);
        true
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
