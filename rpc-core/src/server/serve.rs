//! The [`Server`]: its configuration and builder, the accept loops (per
//! listener and per connection), and graceful shutdown. Each call, from its
//! first message to its last response, runs in `run_call.rs`.
//!
//! One task per connection accepts streams and gives each call its first
//! poll; a call that cannot finish in that poll gets a task of its own. A call
//! watches three things besides its handler: the caller stopping our
//! sending side (it went away: cancel the handler), the server being forced
//! down (answer −32001), and the deadline (enforced by the router's adapters).

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service};
use tracing::{debug, debug_span, warn, Instrument};

use super::call::{CallRequest, CallResponse};
use super::router::Router;
use super::stop_signal::StopSignal;
use crate::codec::DEFAULT_MAX_MESSAGE_SIZE;
use crate::error::RpcError;
use crate::transport::{CloseCode, DynConnection, Listener, PeerInfo};

/// The type-erased service stack a server runs each call through.
pub type CallService = BoxCloneSyncService<CallRequest, CallResponse, RpcError>;

/// Server limits and timeouts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Time a call may take when neither its method nor the caller sets less.
    /// Default 60 s (the JS stack's default). It also bounds the wait for a
    /// call's first message.
    pub default_timeout: Duration,
    /// Longest message accepted from a caller. Default 1 MiB: the memory one
    /// unfinished message may cost.
    pub max_message_size: usize,
    /// Connections served at once; further ones wait in the listener's queue.
    /// Default 4096.
    pub max_connections: usize,
    /// Longest first message of a call, default 64 KiB (capped by
    /// `max_message_size`). The first message is read before middleware
    /// (authentication) runs, so this is what an unauthenticated caller can
    /// make a stream cost; past it the call is answered −32003 and finished.
    pub max_first_message_size: usize,
    /// How long a call's first message may take to arrive, from the stream's
    /// start, default 10 s (capped by `default_timeout`): a caller that
    /// opens streams and trickles bytes holds them no longer. Past it the
    /// call is answered −32008 and finished.
    pub first_message_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            default_timeout: Duration::from_secs(60),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_connections: 4096,
            max_first_message_size: DEFAULT_MAX_FIRST_MESSAGE_SIZE,
            first_message_timeout: DEFAULT_FIRST_MESSAGE_TIMEOUT,
        }
    }
}

/// Default [`ServerConfig::max_first_message_size`]: 64 KiB.
pub const DEFAULT_MAX_FIRST_MESSAGE_SIZE: usize = 64 << 10;

/// Default [`ServerConfig::first_message_timeout`]: 10 s.
pub const DEFAULT_FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

type LayerFn = Box<dyn FnOnce(CallService) -> CallService + Send>;

/// Builds a [`Server`] from a router, middleware and limits.
pub struct ServerBuilder {
    router: Router,
    config: ServerConfig,
    layers: Vec<LayerFn>,
}

impl ServerBuilder {
    /// Sets the default call timeout.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = timeout;
        self
    }

    /// Sets the message size limit.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Sets the size limit of a call's first message (read before
    /// authentication).
    pub fn max_first_message_size(mut self, bytes: usize) -> Self {
        self.config.max_first_message_size = bytes;
        self
    }

    /// Sets how long a call's first message may take to arrive.
    pub fn first_message_timeout(mut self, timeout: Duration) -> Self {
        self.config.first_message_timeout = timeout;
        self
    }

    /// Sets how many connections are served at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.config.max_connections = n.max(1);
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Wraps call handling in a tower layer. The first layer added is the
    /// outermost (as with `tower::ServiceBuilder`): it sees each call first.
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<CallService> + Send + 'static,
        L::Service: Service<CallRequest, Response = CallResponse, Error = RpcError>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<CallRequest>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |inner| {
            BoxCloneSyncService::new(layer.layer(inner))
        }));
        self
    }

    /// Builds the server.
    pub fn build(self) -> Server {
        // Without layers the router is called directly: the boxed stack
        // costs a clone of the service and a second boxed future per call.
        let service = (!self.layers.is_empty()).then(|| {
            let mut service = BoxCloneSyncService::new(self.router.clone());
            for layer in self.layers.into_iter().rev() {
                service = layer(service);
            }
            service
        });
        Server {
            inner: Arc::new(Inner {
                service,
                router: self.router,
                connection_slots: Arc::new(Semaphore::new(self.config.max_connections)),
                config: self.config,
                stopping: StopSignal::default(),
                forced: StopSignal::default(),
                calls: TaskTracker::new(),
                accepting: TaskTracker::new(),
                connections: Mutex::new(Vec::new()),
                moving: Mutex::new(Vec::new()),
                draining: AtomicBool::new(false),
                series: crate::metrics::ServerSeries::default(),
            }),
        }
    }
}

/// Serves a router on any number of connections and listeners. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use strand_rpc_core::{memory, server::{Router, Server}, Client, RpcError};
/// use serde_json::{json, Value};
///
/// let router = Router::new().unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) });
/// let server = Server::builder(router).build();
/// let (client_conn, server_conn) = memory::pair();
/// server.spawn_connection(std::sync::Arc::new(server_conn));
/// let client = Client::new(client_conn);
/// let out: Value = client.unary("echo", &json!({"hi": 1})).await.unwrap();
/// assert_eq!(out["hi"], 1);
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    /// The layers around the router; `None` without layers.
    pub(super) service: Option<CallService>,
    pub(super) router: Router,
    pub(super) config: ServerConfig,
    pub(super) connection_slots: Arc<Semaphore>,
    /// Cancelled when shutdown starts: new calls are answered −32001.
    pub(super) stopping: StopSignal,
    /// Cancelled when the drain deadline passes: running calls are aborted.
    pub(super) forced: StopSignal,
    pub(super) calls: TaskTracker,
    /// One token per `serve` loop, held until its listener handed over the
    /// connections set up before the stop.
    pub(super) accepting: TaskTracker,
    pub(super) connections: Mutex<Vec<DynConnection>>,
    /// The connections a drain told to go away (by address): their peers
    /// move their new calls elsewhere, and what they sent before they read
    /// the notice is served as usual until they close.
    pub(super) moving: Mutex<Vec<usize>>,
    /// Set when a drain starts, before it looks at the connections: one
    /// that registers after that look tells its peer itself.
    pub(super) draining: AtomicBool,
    /// Its metrics series without a method label, looked up once.
    pub(super) series: crate::metrics::ServerSeries,
}

impl Inner {
    /// Tells `conn`'s peer to go away if it negotiated the extension, and
    /// serves its calls as usual from then on.
    fn tell_to_go_away(&self, conn: &DynConnection) -> bool {
        if !conn.go_away() {
            return false;
        }
        self.moving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(address(conn));
        true
    }

    /// The connections told to go away that are still open.
    fn still_moving(&self) -> Vec<DynConnection> {
        let conns = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        conns.into_iter().filter(|c| self.is_moving(c)).collect()
    }

    /// Whether `conn`'s peer was told to go away by a drain.
    fn is_moving(&self, conn: &DynConnection) -> bool {
        self.moving
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&address(conn))
    }
}

/// A connection's identity while it is alive (its allocation's address).
fn address(conn: &DynConnection) -> usize {
    Arc::as_ptr(conn).cast::<()>() as usize
}

impl Server {
    /// Starts building a server around `router`.
    pub fn builder(router: Router) -> ServerBuilder {
        ServerBuilder {
            router,
            config: ServerConfig::default(),
            layers: Vec::new(),
        }
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Accepts connections from `listener` until shutdown starts, serving each
    /// on its own task. Then, if the listener can ([`Listener::stop_accepting`]),
    /// it takes no new connection but serves those whose set-up was under
    /// way (within the grace period), and returns once it has them all.
    pub async fn serve(&self, listener: impl Listener) -> io::Result<()> {
        let inner = &self.inner;
        let _accepting = inner.accepting.token();
        loop {
            let slot = tokio::select! {
                _ = inner.stopping.cancelled() => break,
                slot = inner.connection_slots.clone().acquire_owned() => slot,
            };
            let Ok(slot) = slot else { break };
            let accepted = tokio::select! {
                _ = inner.stopping.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok(conn) => self.spawn_served(conn, Some(slot)),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Err(e),
                Err(e) => {
                    // One failed handshake must not stop the server; pause a
                    // moment so a persistent error cannot spin.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        self.hand_over(&listener).await;
        Ok(())
    }

    /// Serves the connections `listener` set up before the stop: their
    /// clients got their handshake answered and may be sending calls, which
    /// dropping them would lose on the wire. Registered while draining, each
    /// is told to go away. They are few (the listener's pending handshakes)
    /// and take no connection slot: the stop frees slots anyway.
    async fn hand_over(&self, listener: &impl Listener) {
        if !listener.stop_accepting() {
            return;
        }
        loop {
            let accepted = tokio::select! {
                _ = self.inner.forced.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok(conn) => self.spawn_served(conn, None),
                Err(_) => return,
            }
        }
    }

    fn spawn_served(&self, conn: DynConnection, slot: Option<OwnedSemaphorePermit>) {
        let server = self.clone();
        tokio::spawn(async move {
            server.serve_connection(conn).await;
            drop(slot);
        });
    }

    /// Serves one connection on a new task.
    pub fn spawn_connection(&self, conn: DynConnection) {
        let server = self.clone();
        tokio::spawn(async move { server.serve_connection(conn).await });
    }

    /// Serves one connection until it closes or the server is forced down,
    /// in a `connection` span (debug level: its carrier and peer address)
    /// that every call's span is a child of.
    pub async fn serve_connection(&self, conn: DynConnection) {
        let peer = conn.peer_info();
        let span = debug_span!(
            "connection",
            transport = peer.transport,
            peer = ?peer.remote_addr
        );
        self.serve_connection_in_span(conn, span.clone())
            .instrument(span)
            .await
    }

    /// `span` is the connection's, for the calls spawned off its task.
    async fn serve_connection_in_span(&self, conn: DynConnection, span: tracing::Span) {
        let inner = &self.inner;
        if inner.forced.is_cancelled() {
            conn.close(CloseCode::Normal, "server shut down");
            return;
        }
        {
            let mut conns = inner.connections.lock().unwrap_or_else(|e| e.into_inner());
            conns.retain(|c| Arc::strong_count(c) > 1);
            conns.push(conn.clone());
        }
        // Registered after a drain looked at the connections (the lock
        // orders the two): tell the peer here.
        if inner.draining.load(Ordering::SeqCst) {
            inner.tell_to_go_away(&conn);
        }
        let peer = conn.peer_info();
        let _counted = crate::metrics::ConnectionGuard::new(peer.transport);
        let shared = Arc::new(ConnectionCalls {
            inner: self.inner.clone(),
            conn: conn.clone(),
            peer,
        });
        debug!("connection opened");
        loop {
            if inner.forced.is_cancelled() {
                break;
            }
            let stream = match conn.try_accept_stream() {
                Some(s) => s,
                None => tokio::select! {
                    _ = inner.forced.cancelled() => break,
                    s = conn.accept_stream() => s,
                },
            };
            match stream {
                Ok(stream) => {
                    let shared = shared.clone();
                    // A call spawned off this task keeps the connection's span.
                    let span = span.clone();
                    let call = async move {
                        let ConnectionCalls { inner, conn, peer } = &*shared;
                        // Only while stopping: one atomic load otherwise.
                        let moving = inner.stopping.is_cancelled() && inner.is_moving(conn);
                        // A call cannot outlive its connection: nothing can be
                        // written any more, and a handler that is not reading
                        // (its input ended, or it is busy) would never notice.
                        // Dropping the call cancels its handler.
                        tokio::select! {
                            biased;
                            () = inner.run_call(peer.clone(), stream, moving) => {}
                            // Made only if the call waits: it allocates.
                            reason = async { conn.closed().await } => {
                                debug!(%reason, "connection closed: call dropped");
                            }
                        }
                    }
                    .instrument(span);
                    run_or_spawn(Box::pin(self.inner.calls.track_future(call))).await;
                }
                Err(e) => {
                    debug!(error = %e, "connection closed");
                    // Let go of it now (a forced stop leaves it to
                    // `shutdown`, which closes what the list holds): kept
                    // until the next connection's prune, an ended connection
                    // (its session, its buffers) outlived its end on a quiet
                    // server.
                    let this = Arc::as_ptr(&conn).cast::<()>();
                    inner
                        .connections
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|c| Arc::as_ptr(c).cast::<()>() != this);
                    break;
                }
            }
        }
    }

    /// Shuts down gracefully: stops accepting, answers new calls with −32001,
    /// lets running calls finish for up to `grace`, then aborts the rest with
    /// −32001 and closes every connection, all at once: the whole takes at
    /// most `grace`, one second for the aborted calls' answers, and one
    /// close of the slowest connection (its drain of 100 ms and the
    /// carrier's close timeout), however many connections there are.
    ///
    /// "Stops accepting": a listener that can ([`Listener::stop_accepting`])
    /// still hands over the connections whose handshake was under way, and
    /// they are served like the others (their clients may have sent calls
    /// already); waiting for those handshakes is bounded by `grace` too.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop(grace, Stop::Shutdown).await
    }

    /// Drains, for a restart behind a proxy or a rolling deploy: as
    /// [`Server::shutdown`] (stop accepting, answer new calls −32001, let
    /// running calls finish for up to `grace`, then abort the rest and
    /// close every connection, all under one deadline), and besides:
    ///
    /// - every connected peer that negotiated the go-away extension is told
    ///   at once to move its new calls elsewhere (docs/protocol.md,
    ///   "Go-away"); a reconnecting strand client then makes a new
    ///   connection, and no call of its fails;
    /// - the calls of a peer told so are still served (one it started just
    ///   before the notice is on its way), and the drain waits, within
    ///   `grace`, for that peer to close the connection, which a strand
    ///   client does once its calls there are done;
    /// - a new call refused on another connection says it was not started
    ///   ([`RpcError::server_stopping_not_started`]), so that such a client
    ///   sends it again elsewhere;
    /// - connections close as going away (ws 1001 toward peers that
    ///   negotiated the extension, 1000 toward the others as `@matrixai/ws`
    ///   needs; QUIC 0).
    ///
    /// A peer that did not negotiate the extension (every JS peer) sees what
    /// a shutdown shows it, and the close.
    pub async fn drain(&self, grace: Duration) {
        self.stop(grace, Stop::Drain).await
    }

    /// Whether [`Server::shutdown`] or [`Server::drain`] has started.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.is_cancelled()
    }

    async fn stop(&self, grace: Duration, how: Stop) {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + grace;
        if how == Stop::Drain {
            // Told before the calls are refused, so that no call of a peer
            // that is told is refused (it is served until the peer closes).
            inner.draining.store(true, Ordering::SeqCst);
            let conns = inner
                .connections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            let told = conns
                .iter()
                .filter(|conn| inner.tell_to_go_away(conn))
                .count();
            debug!(
                told,
                connections = conns.len(),
                "draining: peers told to go away"
            );
        }
        inner.stopping.cancel();
        inner.calls.close();
        crate::metrics::draining();
        // The listeners hand over the connections whose set-up was under
        // way: once they are registered (and, draining, told), the waits
        // below see them.
        inner.accepting.close();
        let _ = tokio::time::timeout_at(deadline, inner.accepting.wait()).await;
        if tokio::time::timeout_at(deadline, inner.calls.wait())
            .await
            .is_err()
        {
            debug!("grace period over: aborting the calls still running");
        } else if how == Stop::Drain {
            // A peer told to go away may have sent calls before it read the
            // notice: closing now would lose them on the wire. It closes the
            // connection itself once its calls on it are done (a strand
            // client does, docs/protocol.md "Go-away"); wait for that within
            // the grace, serving what still arrives. Connections that
            // registered meanwhile are told too, hence the loop.
            let mut awaited = Vec::new();
            loop {
                let moving: Vec<_> = inner
                    .still_moving()
                    .into_iter()
                    .filter(|c| !awaited.contains(&address(c)))
                    .collect();
                if moving.is_empty() {
                    break;
                }
                awaited.extend(moving.iter().map(address));
                let peers_gone = futures_util::future::join_all(moving.iter().map(|c| c.closed()));
                if tokio::time::timeout_at(deadline, peers_gone).await.is_err() {
                    debug!("grace period over: closing connections whose peers stayed");
                    break;
                }
            }
            let _ = tokio::time::timeout_at(deadline, inner.calls.wait()).await;
        }
        inner.forced.cancel();
        // Aborted calls only write one error message; bound that too.
        let _ = tokio::time::timeout(Duration::from_secs(1), inner.calls.wait()).await;
        let conns =
            std::mem::take(&mut *inner.connections.lock().unwrap_or_else(|e| e.into_inner()));
        // All at once: each close may wait for its peer's close frame (the
        // carrier's close timeout), and N silent peers must cost one such
        // wait, not N.
        let drain = Duration::from_millis(100);
        futures_util::future::join_all(conns.iter().map(|conn| async move {
            match how {
                Stop::Shutdown => conn.shutdown(drain).await,
                Stop::Drain => conn.shutdown_going_away(drain).await,
            }
        }))
        .await;
    }

    /// The number of calls running now.
    pub fn calls_in_flight(&self) -> usize {
        self.inner.calls.len()
    }
}

/// What every call of one connection needs, behind one counter: a call
/// clones this connection's counter, not the server's (which every call of
/// every connection would touch, from both workers), the connection's and
/// its peer's each.
struct ConnectionCalls {
    inner: Arc<Inner>,
    conn: DynConnection,
    peer: Arc<PeerInfo>,
}

/// How a server stops: shut down (close normally) or drain (tell peers to
/// go away, close as going away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Shutdown,
    Drain,
}

/// Polls a new call once on the accepting task, and gives it a task of its
/// own only if it is not finished by then.
///
/// A call whose request is already here and whose handler answers at once
/// (the common unary case) then completes with no spawn and no hop to
/// another task: on the ws and QUIC carriers that halves the futex wake-ups
/// per call (strace, bench case unary1). A call that has to wait is spawned;
/// its task polls it again, which registers its own waker everywhere the
/// first poll registered ours (the future contract), so the first poll here
/// loses nothing. A handler that blocks in its first poll delays the next
/// call on this connection, as it would delay any task sharing its worker.
///
/// A panic is caught here (the call is dropped, which resets its stream) so
/// it cannot take down the connection's accept loop; a panicking handler is
/// answered with −32603 before that (see `run_call`).
async fn run_or_spawn(call: Pin<Box<dyn Future<Output = ()> + Send>>) {
    let mut call = AssertUnwindSafe(call).catch_unwind().map(|outcome| {
        if outcome.is_err() {
            warn!("a call panicked: its stream was reset");
        }
    });
    let done = std::future::poll_fn(|cx| Poll::Ready(call.poll_unpin(cx).is_ready())).await;
    if !done {
        tokio::spawn(call);
    }
}
