//! The [`Server`]: accepts connections and streams, reads each call's first
//! message, runs it through the service stack (middleware around the
//! [`Router`]) and writes the response.
//!
//! One task per connection accepts streams and gives each call its first
//! poll; a call that cannot finish in that poll gets a task of its own. A call
//! watches three things besides its handler: the caller stopping our
//! sending side (it went away: cancel the handler), the server being forced
//! down (answer −32001), and the deadline (enforced by the router's adapters).

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWrite;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};
use tracing::{debug, trace, warn};

use super::call::{parse_error_to_rpc, read_error_to_rpc, CallInput, CallRequest, CallResponse};
use super::router::Router;
use crate::codec::{MessageReader, DEFAULT_MAX_MESSAGE_SIZE};
use crate::context::Context;
use crate::error::RpcError;
use crate::message::{self, error_codes, IncomingMessage, MetadataRaw};
use crate::transport::{
    codes, BoxSendStream, CloseCode, DynConnection, Listener, PeerInfo, SendStream, Stream,
    StreamError,
};

/// A stream whose items are always ready is checked for a stop or a forced
/// shutdown once per this many messages (a lock each, on some carriers).
const INTERRUPT_CHECK_EVERY: u32 = 64;

/// How long an aborted call may take to write its last error message.
const ABORT_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            default_timeout: Duration::from_secs(60),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_connections: 4096,
        }
    }
}

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
                stopping: CancellationToken::new(),
                forced: CancellationToken::new(),
                calls: TaskTracker::new(),
                connections: Mutex::new(Vec::new()),
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

struct Inner {
    /// The layers around the router; `None` without layers.
    service: Option<CallService>,
    router: Router,
    config: ServerConfig,
    connection_slots: Arc<Semaphore>,
    /// Cancelled when shutdown starts: new calls are answered −32001.
    stopping: CancellationToken,
    /// Cancelled when the drain deadline passes: running calls are aborted.
    forced: CancellationToken,
    calls: TaskTracker,
    connections: Mutex<Vec<DynConnection>>,
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
    /// on its own task.
    pub async fn serve(&self, listener: impl Listener) -> io::Result<()> {
        let inner = &self.inner;
        loop {
            let slot = tokio::select! {
                _ = inner.stopping.cancelled() => return Ok(()),
                slot = inner.connection_slots.clone().acquire_owned() => slot,
            };
            let Ok(slot) = slot else { return Ok(()) };
            let accepted = tokio::select! {
                _ = inner.stopping.cancelled() => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok(conn) => {
                    let server = self.clone();
                    tokio::spawn(async move {
                        server.serve_connection(conn).await;
                        drop(slot);
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Err(e),
                Err(e) => {
                    // One failed handshake must not stop the server; pause a
                    // moment so a persistent error cannot spin.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Serves one connection on a new task.
    pub fn spawn_connection(&self, conn: DynConnection) {
        let server = self.clone();
        tokio::spawn(async move { server.serve_connection(conn).await });
    }

    /// Serves one connection until it closes or the server is forced down.
    pub async fn serve_connection(&self, conn: DynConnection) {
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
        let peer = conn.peer_info();
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
                    let inner = self.inner.clone();
                    let peer = peer.clone();
                    let conn = conn.clone();
                    let call = async move {
                        // A call cannot outlive its connection: nothing can be
                        // written any more, and a handler that is not reading
                        // (its input ended, or it is busy) would never notice.
                        // Dropping the call cancels its handler.
                        tokio::select! {
                            biased;
                            () = inner.run_call(peer, stream) => {}
                            // Made only if the call waits: it allocates.
                            reason = async { conn.closed().await } => {
                                debug!(%reason, "connection closed: call dropped");
                            }
                        }
                    };
                    run_or_spawn(Box::pin(self.inner.calls.track_future(call))).await;
                }
                Err(e) => {
                    debug!(error = %e, "connection ended");
                    break;
                }
            }
        }
    }

    /// Shuts down gracefully: stops accepting, answers new calls with −32001,
    /// lets running calls finish for up to `grace`, then aborts the rest with
    /// −32001 and closes every connection.
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.stopping.cancel();
        inner.calls.close();
        if tokio::time::timeout(grace, inner.calls.wait())
            .await
            .is_err()
        {
            debug!("grace period over: aborting the calls still running");
        }
        inner.forced.cancel();
        // Aborted calls only write one error message; bound that too.
        let _ = tokio::time::timeout(Duration::from_secs(1), inner.calls.wait()).await;
        let conns =
            std::mem::take(&mut *inner.connections.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in conns {
            conn.shutdown(Duration::from_millis(100)).await;
        }
    }

    /// The number of calls running now.
    pub fn calls_in_flight(&self) -> usize {
        self.inner.calls.len()
    }
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

/// Why a call stopped before its response was complete.
enum Interrupted {
    /// The caller stopped reading (it went away).
    Stopped(u64),
    /// The server is being forced down.
    Forced,
    /// Writing failed.
    Io(io::Error),
}

impl Interrupted {
    /// A failed write: the caller's stop is a stop, anything else I/O.
    fn from_write_error(e: io::Error) -> Self {
        match StreamError::from_io(&e) {
            Some(StreamError::Stopped(code)) => Interrupted::Stopped(*code),
            _ => Interrupted::Io(e),
        }
    }
}

impl Inner {
    async fn run_call(self: Arc<Self>, peer: Arc<PeerInfo>, stream: Stream) {
        let (mut send, recv) = stream.split();
        if self.stopping.is_cancelled() {
            let _ = self
                .answer_error(&mut send, &RpcError::server_stopping())
                .await;
            return;
        }
        let mut reader = MessageReader::new(recv, self.config.max_message_size);
        // The read first: a request that is already here (the usual case)
        // never registers with the shared shutdown token.
        let first = tokio::select! {
            biased;
            r = tokio::time::timeout(self.config.default_timeout, reader.next()) => r,
            _ = self.forced.cancelled() => return,
        };
        let header = match first {
            Ok(Ok(Some(bytes))) => bytes,
            // The caller finished without a message: nothing to answer.
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                let err = read_error_to_rpc(e);
                if err.code() != error_codes::STREAM_ENDED {
                    let _ = self.answer_error(&mut send, &err).await;
                }
                return;
            }
            Err(_) => {
                let _ = self.answer_error(&mut send, &RpcError::timed_out()).await;
                return;
            }
        };
        let (ctx, params) = match self.parse_header(&header, peer) {
            Ok(parsed) => parsed,
            Err(err) => {
                let _ = self.answer_error(&mut send, &err).await;
                return;
            }
        };
        trace!(method = ctx.method(), "call started");
        let cancel_on_exit = ctx.end_guard();
        let req = CallRequest {
            ctx: ctx.clone(),
            params,
            input: CallInput::new(reader),
        };
        let service = self.service.clone();
        let router = &self.router;
        let response = AssertUnwindSafe(async move {
            match service {
                Some(mut service) => service.ready().await?.call(req).await,
                None => router.dispatch(req).await,
            }
        })
        .catch_unwind()
        .map(|outcome| {
            outcome.unwrap_or_else(|_| {
                warn!(method = ctx.method(), "a handler panicked");
                Err(RpcError::internal("the handler panicked"))
            })
        });
        // The handler first: one that answers at once needs no watch on
        // the caller's stop or a forced shutdown (both register wakers).
        let outcome = tokio::select! {
            biased;
            r = response => Ok(r),
            _ = self.forced.cancelled() => Err(Interrupted::Forced),
            code = crate::transport::stopped(&mut send) => Err(Interrupted::Stopped(code)),
        };
        let result = match outcome {
            Ok(Ok(response)) => self.write_response(&mut send, response).await,
            Ok(Err(err)) => self.answer_error(&mut send, &err).await,
            Err(e) => Err(e),
        };
        drop(cancel_on_exit);
        match result {
            Ok(()) => trace!(method = ctx.method(), "call done"),
            Err(Interrupted::Forced) => {
                // The server is going down: one last bounded attempt to tell
                // the caller why, then the stream is reset by the drop.
                let never = CancellationToken::new();
                let bytes = message::encode_error(&RpcError::server_stopping().to_error_object());
                let _ = tokio::time::timeout(ABORT_WRITE_TIMEOUT, async {
                    write_message(&mut send, &bytes, &never).await?;
                    std::future::poll_fn(|cx| Pin::new(&mut send).poll_shutdown(cx))
                        .await
                        .map_err(Interrupted::Io)
                })
                .await;
            }
            Err(Interrupted::Stopped(code)) => {
                debug!(
                    method = ctx.method(),
                    code, "caller went away; call cancelled"
                );
                send.reset(codes::CANCELLED);
            }
            Err(Interrupted::Io(e)) => {
                debug!(method = ctx.method(), error = %e, "writing the response failed");
                send.reset(codes::CANCELLED);
            }
        }
    }

    fn parse_header(
        &self,
        header: &[u8],
        peer: Arc<PeerInfo>,
    ) -> Result<(Context, Option<Box<serde_json::value::RawValue>>), RpcError> {
        let (mut ctx, params) = parse_call_header(header, peer)?;
        let now = Instant::now();
        let mut timeout = self
            .router
            .method_timeout(ctx.method())
            .unwrap_or(self.config.default_timeout);
        if let Some(requested) = ctx.requested_timeout() {
            timeout = timeout.min(requested);
        }
        ctx.shorten_deadline(now + timeout);
        Ok((ctx, params))
    }

    async fn write_response(
        &self,
        send: &mut BoxSendStream,
        response: CallResponse,
    ) -> Result<(), Interrupted> {
        match response {
            CallResponse::Unary(bytes) => {
                write_message(send, &bytes, &self.forced).await?;
            }
            CallResponse::Stream(mut items) => {
                let mut written = 0u32;
                loop {
                    self.check_interrupted(send, &mut written)?;
                    // The next item first: when it is ready, nothing needs to
                    // watch for a stop or a forced shutdown (a stop also fails
                    // the write, and the check above sees both every
                    // INTERRUPT_CHECK_EVERY items); only while we wait for it
                    // do those register.
                    let item = tokio::select! {
                        biased;
                        // A stream that panics is ended with −32603, like a
                        // handler that does (it is not polled again).
                        item = AssertUnwindSafe(items.next()).catch_unwind() => item.unwrap_or_else(|_| {
                            warn!("a handler's stream panicked");
                            Some(Err(RpcError::internal("the handler panicked")))
                        }),
                        _ = self.forced.cancelled() => return Err(Interrupted::Forced),
                        code = crate::transport::stopped(send) => return Err(Interrupted::Stopped(code)),
                    };
                    match item {
                        Some(Ok(bytes)) => write_message(send, &bytes, &self.forced).await?,
                        Some(Err(err)) => {
                            write_message(
                                send,
                                &message::encode_error(&err.to_error_object()),
                                &self.forced,
                            )
                            .await?;
                            break;
                        }
                        None => break,
                    }
                }
            }
            CallResponse::Raw { leading, mut body } => {
                write_message(send, &leading, &self.forced).await?;
                let mut written = 0u32;
                loop {
                    self.check_interrupted(send, &mut written)?;
                    let chunk = tokio::select! {
                        biased;
                        chunk = body.next() => chunk,
                        _ = self.forced.cancelled() => return Err(Interrupted::Forced),
                        code = crate::transport::stopped(send) => return Err(Interrupted::Stopped(code)),
                    };
                    match chunk {
                        Some(Ok(bytes)) => write_message(send, &bytes, &self.forced).await?,
                        Some(Err(e)) => return Err(Interrupted::Io(e)),
                        None => break,
                    }
                }
            }
        }
        self.finish(send).await
    }

    /// Every [`INTERRUPT_CHECK_EVERY`] messages of a stream whose items are
    /// always ready (so the select never waits and never sees them): has the
    /// caller stopped reading, or the server been forced down?
    fn check_interrupted(
        &self,
        send: &mut BoxSendStream,
        written: &mut u32,
    ) -> Result<(), Interrupted> {
        *written = written.wrapping_add(1);
        if !written.is_multiple_of(INTERRUPT_CHECK_EVERY) {
            return Ok(());
        }
        if self.forced.is_cancelled() {
            return Err(Interrupted::Forced);
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match send.poll_stopped(&mut cx) {
            Poll::Ready(code) => Err(Interrupted::Stopped(code)),
            Poll::Pending => Ok(()),
        }
    }

    async fn answer_error(
        &self,
        send: &mut BoxSendStream,
        err: &RpcError,
    ) -> Result<(), Interrupted> {
        write_message(
            send,
            &message::encode_error(&err.to_error_object()),
            &self.forced,
        )
        .await?;
        self.finish(send).await
    }

    /// Finishes our side gracefully, bounded so a caller that never reads (and
    /// never acknowledges) cannot hold the task.
    async fn finish(&self, send: &mut BoxSendStream) -> Result<(), Interrupted> {
        let finish = std::future::poll_fn(|cx| Pin::new(&mut *send).poll_shutdown(cx));
        // The finish first: one that completes at once (the usual case)
        // never registers with the shared shutdown token.
        tokio::select! {
            biased;
            r = tokio::time::timeout(self.config.default_timeout, finish) => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(Interrupted::Io(e)),
                Err(_) => Err(Interrupted::Io(io::Error::new(io::ErrorKind::TimedOut, "finishing the stream timed out"))),
            },
            _ = self.forced.cancelled() => Err(Interrupted::Forced),
        }
    }
}

/// Writes one message, giving up if the caller stops reading or the server
/// is forced down. Those are watched only while the write waits: a write
/// that goes through needs no registration (and a stop fails it anyway).
async fn write_message(
    send: &mut BoxSendStream,
    bytes: &Bytes,
    forced: &CancellationToken,
) -> Result<(), Interrupted> {
    let mut forced = pin!(forced.cancelled());
    let mut rest: &[u8] = bytes;
    std::future::poll_fn(|cx| {
        while !rest.is_empty() {
            match Pin::new(&mut *send).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(Interrupted::Io(io::ErrorKind::WriteZero.into())))
                }
                Poll::Ready(Ok(n)) => rest = &rest[n..],
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Interrupted::from_write_error(e))),
                Poll::Pending => {
                    // Once part of a message is out, finish it: a torn
                    // message would corrupt the stream for the error that
                    // follows.
                    if rest.len() == bytes.len() && forced.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(Interrupted::Forced));
                    }
                    if let Poll::Ready(code) = send.poll_stopped(cx) {
                        return Poll::Ready(Err(Interrupted::Stopped(code)));
                    }
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    })
    .await
}

/// Parses a call's first message: its method, its context (with the raw
/// JSON of `params.metadata`, made a map only on demand) and its params.
/// The deadline is the server's to set.
pub fn parse_call_header(
    header: &[u8],
    peer: Arc<PeerInfo>,
) -> Result<(Context, Option<Box<serde_json::value::RawValue>>), RpcError> {
    let msg = IncomingMessage::parse(header).map_err(|e| parse_error_to_rpc(&e))?;
    let method = msg.method.as_deref().ok_or_else(|| {
        RpcError::new(error_codes::INVALID_REQUEST, "first message has no method")
    })?;
    // Only the raw JSON of `metadata` is kept: the context makes a map
    // of it if a handler or a layer asks.
    let metadata = msg
        .params
        .filter(|raw| message::may_have_metadata(raw.get()))
        .and_then(|raw| {
            serde_json::from_str::<MetadataRaw<'_>>(raw.get())
                .ok()
                .and_then(|m| m.metadata)
        });
    let ctx = Context::from_raw_metadata(method, metadata, peer);
    Ok((ctx, msg.params.map(|p| p.to_owned())))
}
