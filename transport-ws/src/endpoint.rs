//! Listening and connecting: TCP, optional TLS, the upgrade, then a driver
//! task per connection.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use http::Uri;
use strand_rpc_core::metrics::ByteCounters;
use strand_rpc_core::transport::{AcceptQueue, ConnectionSlot, DynConnection, Listener, PeerInfo};
use strand_tls::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;

use crate::byte_count::ByteCount;
use crate::config::{WsClientConfig, WsConfig, WsServerConfig};
use crate::conn::{Shared, WsConnection};
use crate::driver::{self, Timers};
use crate::error::WsError;
use crate::h2::server::H2Context;
use crate::handshake;
use crate::mux::{Role, Session, SessionConfig};
use crate::source_limit::SourceLimit;

fn session_config(
    role: Role,
    ws: &WsConfig,
    peer_window: Option<u32>,
    window_advertised: bool,
) -> SessionConfig {
    SessionConfig {
        window: ws.stream_window,
        initial_window: ws.initial_stream_window(),
        receive_growth: ws.receive_growth(),
        max_streams: ws.max_streams,
        stream_backlog: ws.stream_backlog,
        max_data_payload: ws.max_data_payload.max(1),
        stream_send_buffer: ws.stream_send_buffer.max(1),
        connection_send_buffer: ws.connection_send_buffer.max(1),
        floods: ws.floods,
        max_queued_control: ws.max_queued_control.max(1),
        peer_window,
        // What our upgrade headers said: a strand peer counts on that window
        // (and needs no opening ACK) only if it was sent.
        window_advertised: handshake::advertised_window(window_advertised, ws).is_some(),
        ..SessionConfig::new(role)
    }
}

/// A connection's mux driver, for a task to run (see [`prepare`]).
pub(crate) type DriverFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Starts a connection over `ws`, its driver on a task of its own.
pub(crate) fn start<S>(
    ws: WebSocketStream<S>,
    role: Role,
    config: &WsConfig,
    windows: (Option<u32>, bool),
    peer: PeerInfo,
    slot: Option<ConnectionSlot>,
) -> WsConnection
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (conn, driver) = prepare(ws, role, config, windows, peer, slot);
    tokio::spawn(driver);
    conn
}

/// A connection over `ws` and its driver, which the caller runs: the
/// connection makes progress only while the driver is polled, and ends
/// (lost) if it is dropped unfinished.
pub(crate) fn prepare<S>(
    ws: WebSocketStream<S>,
    role: Role,
    config: &WsConfig,
    (peer_window, window_advertised): (Option<u32>, bool),
    peer: PeerInfo,
    slot: Option<ConnectionSlot>,
) -> (WsConnection, DriverFuture)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A served connection's bytes go to the metrics (a client's do not).
    let metrics = match role {
        Role::Server => ByteCounters::new(peer.transport),
        Role::Client => ByteCounters::default(),
    };
    let shared = Shared::new(
        Session::new(session_config(role, config, peer_window, window_advertised)),
        ByteCount::new(metrics),
    );
    let timers = Timers {
        keep_alive: config.keep_alive_interval,
        idle: config.idle_timeout,
        close: config.close_timeout,
        send: config.send_timeout,
    };
    let driver = driver::run(ws, shared.clone(), timers);
    let driver = Box::pin(async move {
        driver.await;
        // The listener's slot is held for as long as the socket is.
        drop(slot);
    });
    (WsConnection::new(shared, peer), driver)
}

pub(crate) fn certs_to_bytes(
    certs: Option<&[strand_tls::CertificateDer<'static>]>,
) -> Vec<bytes::Bytes> {
    strand_tls::chain_to_bytes(certs.unwrap_or_default())
}

/// Connects to a `ws://` or `wss://` URL and returns the connection once the
/// upgrade completed (within [`WsConfig::handshake_timeout`]).
pub async fn connect(url: &str, config: WsClientConfig) -> Result<WsConnection, WsError> {
    let timeout = config.transport.handshake_timeout;
    tokio::time::timeout(timeout, connect_inner(url, config))
        .await
        .map_err(|_| WsError::HandshakeTimeout)?
}

async fn connect_inner(url: &str, config: WsClientConfig) -> Result<WsConnection, WsError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| WsError::InvalidUrl(e.to_string()))?;
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(WsError::InvalidUrl(format!(
                "{url}: scheme must be ws or wss"
            )))
        }
    };
    if secure && config.http2.is_some() {
        return crate::h2::H2Client::connect(url, config)
            .await?
            .open()
            .await;
    }
    let host = uri
        .host()
        .ok_or_else(|| WsError::InvalidUrl(format!("{url}: no host")))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    let _ = tcp.set_nodelay(true);
    let remote = tcp.peer_addr()?;
    let advertised = config.advertise_window;
    if secure {
        let tls = config.tls.as_ref().ok_or(WsError::TlsRequired)?.build()?;
        let name = ServerName::try_from(host.clone())
            .map_err(|e| WsError::InvalidUrl(format!("{url}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(WsError::TlsHandshake)?;
        let certs = certs_to_bytes(stream.get_ref().1.peer_certificates());
        let (ws, peer_window) = handshake::client(stream, url, &config).await?;
        let peer = PeerInfo::new("wss")
            .with_remote_addr(remote)
            .with_certificates(certs);
        let windows = (peer_window, advertised);
        Ok(start(
            ws,
            Role::Client,
            &config.transport,
            windows,
            peer,
            None,
        ))
    } else {
        let (ws, peer_window) = handshake::client(tcp, url, &config).await?;
        let peer = PeerInfo::new("ws").with_remote_addr(remote);
        let windows = (peer_window, advertised);
        Ok(start(
            ws,
            Role::Client,
            &config.transport,
            windows,
            peer,
            None,
        ))
    }
}

/// A WebSocket server: accepts TCP (and TLS) connections, runs the upgrade
/// with the hook, and yields established connections through
/// [`WsListener::accept_connection`]. At most
/// [`WsServerConfig::max_pending_handshakes`] connections are in their
/// handshake or waiting to be accepted, and
/// [`WsServerConfig::max_connections`] open in all (a client over that gets
/// `503`); at most [`WsServerConfig::max_pending_handshakes_per_ip`]
/// handshakes are in progress from one source (a connection past it is
/// closed at once). Dropping the listener stops accepting; established
/// connections live on.
pub struct WsListener {
    local_addr: SocketAddr,
    queue: AcceptQueue<WsConnection>,
    sources: Arc<SourceLimit>,
    counters: Arc<ListenerCounters>,
    task: JoinHandle<()>,
}

/// How the listener's WebSockets arrived ([`WsListenerStats`]).
#[derive(Debug, Default)]
pub(crate) struct ListenerCounters {
    http1_upgrades: AtomicU64,
    h2_upgrades: AtomicU64,
    h2_connections: AtomicU64,
}

impl ListenerCounters {
    fn http1_upgrade(&self) {
        self.http1_upgrades.fetch_add(1, Ordering::Relaxed);
        strand_rpc_core::metrics::ws_upgrade("1.1");
    }

    pub(crate) fn h2_upgrade(&self) {
        self.h2_upgrades.fetch_add(1, Ordering::Relaxed);
        strand_rpc_core::metrics::ws_upgrade("2");
    }

    fn h2_connection(&self) {
        self.h2_connections.fetch_add(1, Ordering::Relaxed);
        strand_rpc_core::metrics::h2_connection();
    }
}

/// A [`WsListener`]'s figures ([`WsListener::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsListenerStats {
    /// Handshakes (TLS and upgrade) in progress.
    pub handshakes: usize,
    /// Connections holding a slot under `max_connections`: handshaking,
    /// waiting to be accepted, or open.
    pub open_connections: usize,
    /// Connections closed at once because their source address had
    /// `max_pending_handshakes_per_ip` handshakes in progress.
    pub refused_per_source: u64,
    /// WebSockets accepted as HTTP/1.1 upgrades (`GET` with `Upgrade`).
    pub http1_upgrades: u64,
    /// WebSockets accepted as HTTP/2 extended CONNECT streams (RFC 8441).
    pub h2_upgrades: u64,
    /// TCP connections served as HTTP/2 (ALPN `h2`); each carries any number
    /// of `h2_upgrades`.
    pub h2_connections: u64,
}

impl std::fmt::Debug for WsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for WsListener {
    fn drop(&mut self) {
        self.close();
    }
}

impl WsListener {
    /// Binds `addr` and starts accepting.
    pub async fn bind(
        addr: impl ToSocketAddrs,
        config: WsServerConfig,
    ) -> Result<WsListener, WsError> {
        let tls = match &config.tls {
            Some(tls) => {
                let mut tls = tls.clone();
                // One port for both: ALPN picks HTTP/2 or HTTP/1.1 (an
                // application's own ALPN list is kept as it is).
                if config.http2.is_some() && tls.alpn.is_empty() {
                    tls.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                }
                Some(tokio_rustls::TlsAcceptor::from(tls.build()?))
            }
            None => None,
        };
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let queue = AcceptQueue::new(config.max_pending_handshakes, config.max_connections);
        let sources = Arc::new(SourceLimit::new(config.max_pending_handshakes_per_ip));
        let counters = Arc::new(ListenerCounters::default());
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::new(config),
            tls,
            queue.clone(),
            sources.clone(),
            counters.clone(),
        ));
        Ok(WsListener {
            local_addr,
            queue,
            sources,
            counters,
            task,
        })
    }

    /// The listener's figures: handshakes in progress, open connections,
    /// connections refused by the per-source bound, and how the WebSockets
    /// arrived (HTTP/1.1 upgrades, HTTP/2 streams and connections).
    pub fn stats(&self) -> WsListenerStats {
        WsListenerStats {
            handshakes: self.sources.in_progress(),
            open_connections: self.queue.open_connections(),
            refused_per_source: self.sources.refused(),
            http1_upgrades: self.counters.http1_upgrades.load(Ordering::Relaxed),
            h2_upgrades: self.counters.h2_upgrades.load(Ordering::Relaxed),
            h2_connections: self.counters.h2_connections.load(Ordering::Relaxed),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next established connection.
    ///
    /// Cancel safety: cancel safe; a connection leaves the queue only when
    /// this returns it.
    pub async fn accept_connection(&self) -> Result<WsConnection, WsError> {
        self.queue
            .accept()
            .await
            .map_err(|_| WsError::ListenerClosed)
    }

    /// Stops accepting: the socket is closed, queued connections are
    /// dropped, and `accept_connection` fails with
    /// [`WsError::ListenerClosed`]. Connections already accepted stay open.
    pub fn close(&self) {
        self.task.abort();
        self.queue.close();
    }

    /// Stops accepting but keeps what is under way: the socket is closed
    /// (connections not yet taken from the kernel's queue are reset, and a
    /// proxy tries another server), handshakes in progress finish, and
    /// `accept_connection` gives those and the queued connections before it
    /// fails with [`WsError::ListenerClosed`]. HTTP/2 connections stop
    /// taking new WebSockets (GOAWAY); the requests they already read are
    /// refused with `503` unless their WebSocket was set up.
    pub fn stop_accepting(&self) {
        self.task.abort();
        self.queue.stop_accepting();
    }
}

#[async_trait]
impl Listener for WsListener {
    async fn accept(&self) -> io::Result<DynConnection> {
        Ok(Arc::new(self.accept_connection().await?))
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.local_addr)
    }

    fn stop_accepting(&self) -> bool {
        WsListener::stop_accepting(self);
        true
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<WsServerConfig>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    queue: AcceptQueue<WsConnection>,
    sources: Arc<SourceLimit>,
    counters: Arc<ListenerCounters>,
) {
    let mut accept_warn = RateLimit::new(ACCEPT_WARN_INTERVAL);
    let transport = if tls.is_some() { "wss" } else { "ws" };
    loop {
        // Taken before the TCP accept: while every pending slot is taken,
        // newcomers wait in the kernel's listen queue.
        let Ok(pending) = queue.reserve().await else {
            return;
        };
        let (mut tcp, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(err) => {
                if is_per_connection(&err) {
                    tracing::debug!(%err, "accept failed");
                } else if let Some(suppressed) = accept_warn.ready(tokio::time::Instant::now()) {
                    // Out of file descriptors and the like: the operator
                    // must hear of it, but not once per attempt.
                    tracing::warn!(%err, suppressed, "ws: accepting connections failed");
                }
                // Back off briefly, so a persistent error cannot spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Before anything of it is read: a source with its share of
        // handshakes in progress cannot take more slots (a slowloris from
        // one address), so the connection is closed at once.
        let Some(source) = sources.try_take(remote.ip()) else {
            tracing::debug!(%remote, "ws: too many handshakes from this source");
            strand_rpc_core::metrics::connection_refused(transport, "source_handshake_limit");
            // Best effort, never waited for: a fresh socket takes it.
            let _ = tcp.try_write(TOO_MANY_REQUESTS);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let slot = match pending.connection_slot() {
            Ok(slot) => slot,
            Err(limit) => {
                tracing::debug!(%remote, %limit, "ws: refusing connection");
                strand_rpc_core::metrics::connection_refused(transport, limit.reason());
                tokio::spawn(async move {
                    let _ = tcp.write_all(SERVICE_UNAVAILABLE).await;
                    let _ = tcp.shutdown().await;
                });
                continue;
            }
        };
        let config = config.clone();
        let tls = tls.clone();
        let (queue, sources, counters) = (queue.clone(), sources.clone(), counters.clone());
        tokio::spawn(async move {
            let timeout = config.transport.handshake_timeout;
            let conn = serve(tcp, remote, &config, tls, slot, &counters);
            let served = tokio::time::timeout(timeout, conn).await;
            drop(source);
            match served {
                Ok(Ok(Served::Connection(conn))) => pending.push(conn),
                Ok(Ok(Served::Answered)) => {}
                Ok(Ok(Served::Http2(h2))) => {
                    // Its WebSockets take pending slots of their own.
                    drop(pending);
                    counters.h2_connection();
                    let H2Served {
                        conn,
                        certificates,
                        slot,
                    } = *h2;
                    let (drivers, driven) = crate::h2::drivers::Drivers::new();
                    let ctx = Arc::new(H2Context {
                        config,
                        queue,
                        sources,
                        counters,
                        remote,
                        certificates,
                        drivers,
                    });
                    crate::h2::drivers::polled_in_place(crate::h2::server::serve(
                        conn, ctx, driven, slot,
                    ))
                    .await;
                }
                Ok(Err(err)) => tracing::debug!(%remote, %err, "upgrade failed"),
                Err(_) => tracing::debug!(%remote, "handshake timed out"),
            }
        });
    }
}

/// At most one warning about failing accepts per this long.
const ACCEPT_WARN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// An accept error that concerns one connection only (it went away before
/// we took it), not the listener: logged at debug.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Lets an event through at most once per interval, counting the others.
struct RateLimit {
    interval: std::time::Duration,
    last: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl RateLimit {
    fn new(interval: std::time::Duration) -> Self {
        RateLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(events suppressed since the last one let through)` when this
    /// one may be logged.
    fn ready(&mut self, now: tokio::time::Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now < last + self.interval) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The answer to a client over
/// [`WsServerConfig::max_pending_handshakes_per_ip`].
const TOO_MANY_REQUESTS: &[u8] =
    b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// The answer to a client over [`WsServerConfig::max_connections`].
const SERVICE_UNAVAILABLE: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// What a TCP connection's handshake came to.
enum Served {
    /// An HTTP/1.1 upgrade: one strand connection.
    Connection(WsConnection),
    /// A plain request or a refusal, answered.
    Answered,
    /// An HTTP/2 connection, its handshake done: it serves WebSockets as
    /// streams from now on.
    Http2(Box<H2Served>),
}

struct H2Served {
    conn: h2::server::Connection<tokio_rustls::server::TlsStream<TcpStream>, bytes::Bytes>,
    certificates: Vec<bytes::Bytes>,
    slot: ConnectionSlot,
}

async fn serve(
    tcp: TcpStream,
    remote: SocketAddr,
    config: &WsServerConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    slot: ConnectionSlot,
    counters: &ListenerCounters,
) -> Result<Served, WsError> {
    match tls {
        None => {
            let Some(acc) = handshake::server(tcp, config, remote, Vec::new()).await? else {
                return Ok(Served::Answered);
            };
            counters.http1_upgrade();
            let peer = PeerInfo::new("ws")
                .with_remote_addr(remote)
                .with_extension(acc.request);
            let windows = (acc.peer_window, config.advertise_window);
            let transport = &config.transport;
            Ok(Served::Connection(start(
                acc.ws,
                Role::Server,
                transport,
                windows,
                peer,
                Some(slot),
            )))
        }
        Some(acceptor) => {
            let stream = acceptor.accept(tcp).await.map_err(WsError::TlsHandshake)?;
            let certs = certs_to_bytes(stream.get_ref().1.peer_certificates());
            if let Some(limits) = &config.http2 {
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    let conn = crate::h2::server::handshake(stream, limits).await?;
                    return Ok(Served::Http2(Box::new(H2Served {
                        conn,
                        certificates: certs,
                        slot,
                    })));
                }
            }
            let Some(acc) = handshake::server(stream, config, remote, certs.clone()).await? else {
                return Ok(Served::Answered);
            };
            counters.http1_upgrade();
            let peer = PeerInfo::new("wss")
                .with_remote_addr(remote)
                .with_certificates(certs)
                .with_extension(acc.request);
            let windows = (acc.peer_window, config.advertise_window);
            let transport = &config.transport;
            Ok(Served::Connection(start(
                acc.ws,
                Role::Server,
                transport,
                windows,
                peer,
                Some(slot),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn accept_warnings_are_rate_limited() {
        let mut limit = RateLimit::new(ACCEPT_WARN_INTERVAL);
        let t0 = tokio::time::Instant::now();
        assert_eq!(limit.ready(t0), Some(0));
        // One attempt per 50 ms back-off for just under the interval.
        let mut let_through = 0;
        for i in 1..100u32 {
            if limit.ready(t0 + Duration::from_millis(50) * i).is_some() {
                let_through += 1;
            }
        }
        assert_eq!(let_through, 0);
        assert_eq!(limit.ready(t0 + ACCEPT_WARN_INTERVAL), Some(99));
        let emfile = io::Error::from_raw_os_error(24);
        assert!(
            !is_per_connection(&emfile),
            "EMFILE is the listener's problem"
        );
        assert!(is_per_connection(&io::ErrorKind::ConnectionAborted.into()));
    }
}
