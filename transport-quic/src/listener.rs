//! [`QuicListener`]: accepts QUIC connections, handshakes them in the
//! background and queues them for [`QuicListener::accept`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use strand_rpc_core::transport::{DynConnection, Listener};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::connection::StreamTimings;
use crate::{QuicConnection, QuicError, QuicServerConfig};

/// Handshaken connections waiting for `accept`, each holding its pending slot.
struct Queue {
    ready: Mutex<VecDeque<(QuicConnection, OwnedSemaphorePermit)>>,
    notify: Notify,
    closed: AtomicBool,
}

/// A QUIC server endpoint: a [`Listener`] of [`QuicConnection`]s.
///
/// A background task takes incoming connection attempts, runs each handshake
/// in its own task (bounded by the handshake timeout) and queues completed
/// connections. At most `max_pending_connections` may be handshaking or
/// queued at once, and `max_connections` open in all; attempts over either
/// limit are refused. Dropping the listener
/// stops accepting; connections already accepted stay open.
pub struct QuicListener {
    endpoint: quinn::Endpoint,
    queue: Arc<Queue>,
    driver: JoinHandle<()>,
}

impl QuicListener {
    /// Binds a UDP socket on `addr` and starts accepting connections.
    ///
    /// Must be called inside a tokio runtime.
    pub fn bind(addr: SocketAddr, config: QuicServerConfig) -> Result<QuicListener, QuicError> {
        let server_config = config.build()?;
        let endpoint = quinn::Endpoint::server(server_config, addr)
            .map_err(|source| QuicError::Bind { addr, source })?;
        let queue = Arc::new(Queue {
            ready: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        });
        let driver = tokio::spawn(drive(
            endpoint.clone(),
            queue.clone(),
            Limits {
                pending: Arc::new(Semaphore::new(config.max_pending_connections)),
                connections: Arc::new(Semaphore::new(config.max_connections)),
            },
            config.transport.handshake_timeout,
            StreamTimings::of(&config.transport),
        ));
        Ok(QuicListener {
            endpoint,
            queue,
            driver,
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Waits for the next connection whose handshake completed.
    ///
    /// Cancel safety: cancel safe; a connection is only taken from the queue
    /// when this returns it.
    pub async fn accept_connection(&self) -> Result<QuicConnection, QuicError> {
        loop {
            let mut notified = pin!(self.queue.notify.notified());
            notified.as_mut().enable();
            if let Some((conn, _permit)) =
                self.queue.ready.lock().ok().and_then(|mut q| q.pop_front())
            {
                return Ok(conn);
            }
            if self.queue.closed.load(Ordering::Acquire) {
                return Err(QuicError::ListenerClosed);
            }
            notified.await;
        }
    }

    /// Stops accepting: new attempts are refused, queued connections are
    /// closed, and `accept` fails with [`QuicError::ListenerClosed`].
    /// Connections already accepted stay open.
    pub fn close(&self) {
        self.endpoint.set_server_config(None);
        self.driver.abort();
        self.queue.closed.store(true, Ordering::Release);
        if let Ok(mut queue) = self.queue.ready.lock() {
            queue.clear();
        }
        self.queue.notify.notify_waiters();
    }

    /// The underlying quinn endpoint.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

struct Limits {
    /// Handshaking or queued connections.
    pending: Arc<Semaphore>,
    /// Every connection from its first packet until it is dropped.
    connections: Arc<Semaphore>,
}

async fn drive(
    endpoint: quinn::Endpoint,
    queue: Arc<Queue>,
    limits: Limits,
    handshake_timeout: Duration,
    timings: StreamTimings,
) {
    while let Some(incoming) = endpoint.accept().await {
        let (Ok(permit), Ok(slot)) = (
            limits.pending.clone().try_acquire_owned(),
            limits.connections.clone().try_acquire_owned(),
        ) else {
            tracing::debug!(remote = %incoming.remote_address(), "quic: connection limit reached, refusing");
            incoming.refuse();
            continue;
        };
        let queue = queue.clone();
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
            let conn = QuicConnection::new(conn, endpoint, timings, Some(slot));
            if queue.closed.load(Ordering::Acquire) {
                return;
            }
            if let Ok(mut ready) = queue.ready.lock() {
                ready.push_back((conn, permit));
            }
            queue.notify.notify_one();
        });
    }
    queue.closed.store(true, Ordering::Release);
    queue.notify.notify_waiters();
}

#[async_trait]
impl Listener for QuicListener {
    async fn accept(&self) -> io::Result<DynConnection> {
        let conn = self.accept_connection().await.map_err(QuicError::into_io)?;
        Ok(Arc::new(conn))
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
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
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}
