//! Configuration: limits and timers shared by both sides, plus the server-
//! and client-specific parts. Every limit has its default and its reason.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use strand_tls::{ClientTls, ServerTls};

use crate::h2::Http2Config;
use crate::handshake::UpgradeRequest;
use crate::mux::FloodLimits;

/// Limits and timers of one connection, the same on both sides.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WsConfig {
    /// Receive window granted to the peer per stream, in bytes. Default
    /// 1 MiB (the JS default), at most 2^32 − 1 (the ACK field is a u32).
    /// A stalled reader costs at most this much memory per stream: the
    /// payloads it has not read are kept in buffers of their own size, at
    /// most 1/32 larger (small ones copied together into a buffer that
    /// never outgrows the window), except the one that filled the window
    /// and a small one that arrived with nothing unread: those stay in the
    /// WebSocket read buffer they arrived in for as long as that buffer is
    /// the one the socket is read into. Besides, each connection holds that
    /// read buffer: one message plus up to [`WsConfig::read_buffer_size`]
    /// more, and up to one stream window (1 MiB at least) of buffers that
    /// payloads of readers behind were copied into, kept for reuse (an
    /// allocation per large message otherwise) and let go at the next
    /// keep-alive tick once unused.
    ///
    /// It is also what a bulk stream may have in flight ahead of the other
    /// streams' messages on the same connection: a small call beside a
    /// stream pushing at full speed waits on average for half a window at
    /// the bulk's rate. A smaller window trades the bulk's throughput on a
    /// long path for that latency (docs/benchmarks.md, "Round 2 run").
    pub stream_window: u32,
    /// Largest WebSocket message accepted, in bytes; a bigger one closes the
    /// connection with 1009. Default 2 MiB: one DATA message can carry up to
    /// a full 1 MiB window plus its header, with room to spare. Keep it above
    /// `stream_window` + 16: a JS peer may send its whole credit in one message.
    pub max_message_size: usize,
    /// Largest DATA payload we send in one message. Default 64 KiB: large
    /// enough for throughput, small enough that streams interleave fairly.
    pub max_data_payload: usize,
    /// Streams alive at once on one connection (both directions). Default
    /// 256. Bounds memory to about `max_streams × stream_window`; peer opens
    /// past it are refused with `ERROR(Read/Write, REFUSED)`, our own
    /// `open_stream` waits for a free slot.
    pub max_streams: usize,
    /// Streams opened by the peer and not yet taken by `accept_stream`.
    /// Default 256, the same as [`WsConfig::max_streams`] (and
    /// [`WsConfig::with_max_streams`] moves it along while they are equal):
    /// a burst of opens that arrives in one read, before the accepting task
    /// runs, is served up to `max_streams`, so a refusal means the real
    /// limit. Memory stays bounded as for any open stream: a backlogged
    /// stream counts towards `max_streams` and holds at most its window.
    /// Set it lower to refuse earlier an application that accepts slowly.
    pub stream_backlog: usize,
    /// Bytes written on one stream and not yet handed to the socket before
    /// writes wait. Default 256 KiB: keeps the socket busy without letting
    /// one fast writer queue its whole credit in memory.
    pub stream_send_buffer: usize,
    /// Bytes written on all streams of the connection together and not yet
    /// handed to the socket before writes wait. Default 4 MiB: bounds what
    /// a peer that stops reading holds of our memory (besides the driver's
    /// batch of up to 128 KiB and the WebSocket write buffer, see
    /// [`WsConfig::write_buffer_size`]), whatever the number of streams;
    /// never passed. Writers blocked by it are woken as the socket takes
    /// DATA, which it does round robin across streams.
    pub connection_send_buffer: usize,
    /// WebSocket ping interval. Default 20 s. `None` disables pings (we
    /// still answer the peer's). The same tick lets go of the receive copy
    /// buffers kept for reuse (see [`WsConfig::stream_window`]); without
    /// it they are kept, a stream window (1 MiB at least) at most, for the
    /// connection's life.
    pub keep_alive_interval: Option<Duration>,
    /// Close the connection when nothing arrived for this long. Default
    /// 60 s. Armed at connect time, so a silent peer is timed out too.
    pub idle_timeout: Option<Duration>,
    /// Close the connection when data waits for the socket and the socket
    /// took nothing for this long: a peer that stops reading must not hold
    /// our send queues (up to [`WsConfig::connection_send_buffer`]) for
    /// ever. Default 30 s. Only the socket taking bytes counts: pings or
    /// any other message from the peer do not reset it. The close frame
    /// (1001, "send timeout") is sent if the socket still takes it, then
    /// the socket is dropped and the queues released. `None` disables it.
    pub send_timeout: Option<Duration>,
    /// Time allowed for TCP/TLS setup and the HTTP upgrade. Default 10 s:
    /// a peer that opens a socket and sends nothing must not hold it.
    pub handshake_timeout: Duration,
    /// How long a closing connection waits for the peer's close frame
    /// before dropping the socket. Default 5 s.
    pub close_timeout: Duration,
    /// Size at which the WebSocket write buffer is flushed. Default 64 KiB,
    /// one full DATA message ([`WsConfig::max_data_payload`]): small frames
    /// still leave together (a unary call's ACK, DATA and CLOSE in one
    /// write), a full message goes out on its own. The buffer keeps the
    /// capacity it once needed, and with 128 KiB (tungstenite's default) a
    /// bulk sender's grew to 256 KiB (128 KiB, one message and a few control
    /// frames, doubled); with 64 KiB it stays at about 128 KiB.
    pub write_buffer_size: usize,
    /// Bytes read from the socket at a time. Default 8 KiB (tungstenite's
    /// own default is 128 KiB): the buffer is allocated per connection and
    /// zero-filled on every read, and DATA payloads queued for a slow reader
    /// share its allocation, so a smaller one costs less per idle connection
    /// and per stalled stream. Measured on loopback against 16 KiB (see
    /// docs/benchmarks.md): 8 KiB less per idle connection end, one-stream
    /// throughput up by a quarter, unary calls the same; a unary call's p99
    /// beside a bulk stream on the same connection is higher (both cores
    /// busy with the bulk transfer: more reads for the same bytes).
    pub read_buffer_size: usize,
    /// Bytes the peer may make us buffer on the connection, all streams
    /// together, received and not yet read by the application. Default
    /// 32 MiB (before it, 256 full streams could hold 256 MiB). Every
    /// stream starts with a window of [`WsConfig::initial_stream_window`]
    /// (half this budget shared by `max_streams`: 64 KiB by default, which
    /// is also what the window header advertises); a stream whose reader
    /// consumes half its window grows towards `stream_window` from the other
    /// half, and gives the growth back when it ends. Returned credit is never
    /// held back, so a stream never waits for another to be read.
    pub connection_receive_buffer: usize,
    /// Control messages (replies the peer provoked: opening ACKs, ERROR and
    /// CLOSE answers) queued for the socket above which we stop reading the
    /// socket until it takes them. Default 4096: a peer that provokes
    /// replies and does not read them cannot make us queue more (the read
    /// batch in progress, at most 64 messages, still completes).
    pub max_queued_control: usize,
    /// Flood budgets (docs/protocol.md, "Flood budgets"): token buckets for
    /// the frames that cost work but carry no data. Past one the connection
    /// is closed with 1008 and the budget's name as the reason. Defaults in
    /// [`FloodLimits::default`]: stream aborts and refusals 500 at once and
    /// 100/s (a rapid reset: handlers are started no faster), pings 50 and
    /// 10/s, empty DATA messages and ERROR/CLOSE frames that change nothing
    /// 10,000 and 2,000/s each.
    pub floods: FloodLimits,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            stream_window: 1 << 20,
            max_message_size: 2 << 20,
            max_data_payload: 64 << 10,
            max_streams: 256,
            stream_backlog: 256,
            stream_send_buffer: 256 << 10,
            connection_send_buffer: 4 << 20,
            keep_alive_interval: Some(Duration::from_secs(20)),
            idle_timeout: Some(Duration::from_secs(60)),
            send_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_buffer_size: 64 << 10,
            read_buffer_size: 8 << 10,
            connection_receive_buffer: 32 << 20,
            max_queued_control: 4096,
            floods: FloodLimits::default(),
        }
    }
}

impl WsConfig {
    /// Sets [`WsConfig::stream_window`].
    pub fn with_stream_window(mut self, window: u32) -> Self {
        self.stream_window = window;
        self
    }

    /// Sets [`WsConfig::max_streams`], and [`WsConfig::stream_backlog`] with
    /// it while the backlog was equal to the old limit (as by default).
    pub fn with_max_streams(mut self, n: usize) -> Self {
        if self.stream_backlog == self.max_streams {
            self.stream_backlog = n;
        }
        self.max_streams = n;
        self
    }

    /// Sets [`WsConfig::stream_backlog`].
    pub fn with_stream_backlog(mut self, n: usize) -> Self {
        self.stream_backlog = n;
        self
    }

    /// Sets [`WsConfig::keep_alive_interval`].
    pub fn with_keep_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive_interval = interval;
        self
    }

    /// Sets [`WsConfig::idle_timeout`].
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`WsConfig::send_timeout`].
    pub fn with_send_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Sets [`WsConfig::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`WsConfig::max_message_size`].
    pub fn with_max_message_size(mut self, size: usize) -> Self {
        self.max_message_size = size;
        self
    }

    /// Sets [`WsConfig::max_data_payload`].
    pub fn with_max_data_payload(mut self, size: usize) -> Self {
        self.max_data_payload = size;
        self
    }

    /// Sets [`WsConfig::stream_send_buffer`].
    pub fn with_stream_send_buffer(mut self, size: usize) -> Self {
        self.stream_send_buffer = size;
        self
    }

    /// Sets [`WsConfig::connection_receive_buffer`].
    pub fn with_connection_receive_buffer(mut self, size: usize) -> Self {
        self.connection_receive_buffer = size;
        self
    }

    /// The receive window every stream starts with: `stream_window`, or
    /// less when `max_streams` such windows would take more than half of
    /// [`WsConfig::connection_receive_buffer`] (at least 1 byte, so that
    /// every stream can make progress).
    pub fn initial_stream_window(&self) -> u32 {
        let share = self.connection_receive_buffer / self.max_streams.max(1) / 2;
        let share = u32::try_from(share).unwrap_or(u32::MAX).max(1);
        self.stream_window.min(share)
    }

    /// Receive window the streams of a connection may grow by, together,
    /// beyond their initial windows.
    pub(crate) fn receive_growth(&self) -> u64 {
        let initial = u64::from(self.initial_stream_window()) * self.max_streams as u64;
        (self.connection_receive_buffer as u64).saturating_sub(initial)
    }

    /// Sets [`WsConfig::max_queued_control`].
    pub fn with_max_queued_control(mut self, n: usize) -> Self {
        self.max_queued_control = n;
        self
    }

    /// Sets [`WsConfig::floods`].
    pub fn with_floods(mut self, floods: FloodLimits) -> Self {
        self.floods = floods;
        self
    }

    /// Sets [`WsConfig::connection_send_buffer`].
    pub fn with_connection_send_buffer(mut self, size: usize) -> Self {
        self.connection_send_buffer = size;
        self
    }

    pub(crate) fn tungstenite(&self) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
            .write_buffer_size(self.write_buffer_size)
            .read_buffer_size(self.read_buffer_size)
            // Bounded: the driver only feeds the sink when it is ready, so the
            // buffer holds at most one flush threshold plus one message.
            .max_write_buffer_size(self.write_buffer_size + self.max_message_size + 1024)
    }
}

/// What the upgrade hook sees of a connecting client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpgradeContext {
    /// The HTTP upgrade request (target and headers).
    pub request: UpgradeRequest,
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The client's TLS certificate chain (DER, leaf first), if it sent one.
    pub certificates: Vec<Bytes>,
}

/// A refusal from the upgrade hook: answered with this status before `101`.
#[derive(Debug, Clone)]
pub struct UpgradeRefusal {
    /// Usually 401 or 403.
    pub status: StatusCode,
    /// Sent as the response body (plain text).
    pub reason: String,
}

impl UpgradeRefusal {
    /// A refusal with a status and a short reason.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        UpgradeRefusal {
            status,
            reason: reason.into(),
        }
    }
}

/// The boxed future an upgrade hook returns.
pub type UpgradeFuture = Pin<Box<dyn Future<Output = Result<(), UpgradeRefusal>> + Send>>;

/// An async check run on every upgrade request before `101` is sent.
#[derive(Clone)]
pub struct UpgradeHook(Arc<dyn Fn(UpgradeContext) -> UpgradeFuture + Send + Sync>);

impl UpgradeHook {
    /// Wraps an async function.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(UpgradeContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), UpgradeRefusal>> + Send + 'static,
    {
        UpgradeHook(Arc::new(move |ctx| Box::pin(f(ctx))))
    }

    pub(crate) fn call(&self, ctx: UpgradeContext) -> UpgradeFuture {
        (self.0)(ctx)
    }
}

impl fmt::Debug for UpgradeHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UpgradeHook(..)")
    }
}

/// The answer to a plain HTTP request (not a WebSocket upgrade), from an
/// [`HttpHandler`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpResponse {
    /// The status, usually `200`.
    pub status: StatusCode,
    /// The `Content-Type` header, e.g. `text/html; charset=utf-8`.
    pub content_type: String,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A `200 OK` with this content type and body.
    pub fn ok(content_type: impl Into<String>, body: impl Into<Bytes>) -> Self {
        HttpResponse {
            status: StatusCode::OK,
            content_type: content_type.into(),
            body: body.into(),
        }
    }
}

/// Answers plain `GET` requests on a ws listener (a status or demo page next
/// to the WebSocket endpoint). It sees the request target and headers and
/// returns `None` for a request it does not serve, which then gets the usual
/// `426 Upgrade Required`. Upgrade requests never reach it.
#[derive(Clone)]
pub struct HttpHandler(Arc<HttpHandlerFn>);

/// The function behind an [`HttpHandler`].
type HttpHandlerFn = dyn Fn(&UpgradeRequest) -> Option<HttpResponse> + Send + Sync;

impl HttpHandler {
    /// Wraps a function.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&UpgradeRequest) -> Option<HttpResponse> + Send + Sync + 'static,
    {
        HttpHandler(Arc::new(f))
    }

    pub(crate) fn call(&self, request: &UpgradeRequest) -> Option<HttpResponse> {
        (self.0)(request)
    }
}

impl fmt::Debug for HttpHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpHandler(..)")
    }
}

/// Server configuration for [`crate::WsListener`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WsServerConfig {
    /// Limits and timers of each connection.
    pub transport: WsConfig,
    /// Accept upgrades only on this path (e.g. `/rpc`); any path if `None`.
    /// Other paths get `404`.
    pub path: Option<String>,
    /// TLS (`wss`); plain `ws` if `None`.
    pub tls: Option<ServerTls>,
    /// Async check of each upgrade request (auth on headers, path, client
    /// certificate); may refuse with an HTTP status.
    pub upgrade_hook: Option<UpgradeHook>,
    /// Answers plain `GET` requests (no upgrade), e.g. with a page; without
    /// it, or when it returns `None`, they get `426 Upgrade Required`.
    pub http_handler: Option<HttpHandler>,
    /// Largest HTTP request head accepted, in bytes. Default 16 KiB; a bigger
    /// one gets `431`.
    pub max_request_head: usize,
    /// Connections in their handshake, or established and not yet taken by
    /// `accept_connection`, at once. Default 256: slow or silent clients
    /// cannot exhaust memory or file descriptors; further TCP connections
    /// wait in the kernel's listen queue.
    pub max_pending_handshakes: usize,
    /// Handshakes (TLS and upgrade) in progress at once from one source
    /// address (IPv6: one /64). Default 8: a slowloris from one address
    /// takes at most this many of the `max_pending_handshakes` slots, so
    /// clients from other addresses are still served. A connection past it
    /// is closed at once (after a best-effort `429`), before anything of it
    /// is read. Clients behind one NAT share the bound: raise it for them.
    pub max_pending_handshakes_per_ip: usize,
    /// Connections open at once (pending ones included). Default 1024: each
    /// costs its buffers and stream state, so this bounds the listener's
    /// memory. A client over the limit gets `503 Service Unavailable`.
    pub max_connections: usize,
    /// Advertise our stream window in the `x-strand-window` response header
    /// (strand extension, see docs/protocol.md, "Window advertisement").
    /// Default true.
    pub advertise_window: bool,
    /// WebSocket over HTTP/2 (RFC 8441) on a wss listener, with these
    /// HTTP/2 limits: TLS offers ALPN `h2` and `http/1.1` (unless
    /// [`ServerTls::alpn`] is set), and on an `h2` connection an extended
    /// CONNECT with `:protocol = websocket` runs the same admission as an
    /// HTTP/1.1 upgrade (path, limits, hook). Each WebSocket on it takes a
    /// connection slot, and the HTTP/2 connection holds one of its own.
    /// Default on (`Some` with [`Http2Config::default`]); `None` serves
    /// HTTP/1.1 only. No effect on plain `ws`.
    pub http2: Option<Http2Config>,
}

impl Default for WsServerConfig {
    fn default() -> Self {
        WsServerConfig {
            transport: WsConfig::default(),
            path: None,
            tls: None,
            upgrade_hook: None,
            http_handler: None,
            max_request_head: 16 << 10,
            max_pending_handshakes: 256,
            max_pending_handshakes_per_ip: 8,
            max_connections: 1024,
            advertise_window: true,
            http2: Some(Http2Config::default()),
        }
    }
}

impl WsServerConfig {
    /// Sets the connection limits and timers.
    pub fn with_transport(mut self, transport: WsConfig) -> Self {
        self.transport = transport;
        self
    }

    /// Serves `wss` with this TLS configuration.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Accepts upgrades only on `path`.
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Runs `hook` on each upgrade request.
    pub fn with_upgrade_hook(mut self, hook: UpgradeHook) -> Self {
        self.upgrade_hook = Some(hook);
        self
    }

    /// Sets [`WsServerConfig::advertise_window`].
    pub fn with_advertise_window(mut self, advertise: bool) -> Self {
        self.advertise_window = advertise;
        self
    }

    /// Sets [`WsServerConfig::max_pending_handshakes_per_ip`].
    pub fn with_max_pending_handshakes_per_ip(mut self, n: usize) -> Self {
        self.max_pending_handshakes_per_ip = n;
        self
    }

    /// Sets [`WsServerConfig::http2`].
    pub fn with_http2(mut self, http2: Option<Http2Config>) -> Self {
        self.http2 = http2;
        self
    }

    /// Answers plain `GET` requests with `handler`.
    pub fn with_http_handler(mut self, handler: HttpHandler) -> Self {
        self.http_handler = Some(handler);
        self
    }
}

/// Client configuration for [`crate::connect`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WsClientConfig {
    /// Limits and timers of the connection.
    pub transport: WsConfig,
    /// TLS for `wss://` URLs. Required for them.
    pub tls: Option<ClientTls>,
    /// Extra headers for the upgrade request (e.g. `authorization`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Advertise our stream window in the `x-strand-window` request header
    /// (strand extension, see docs/protocol.md, "Window advertisement").
    /// Default true; false behaves exactly like a JS client.
    pub advertise_window: bool,
    /// Reach a `wss://` server over HTTP/2 (RFC 8441) with these HTTP/2
    /// limits: [`crate::connect`] opens one HTTP/2 connection for the
    /// strand connection, [`crate::H2Client`] several over one. Default
    /// `None`: HTTP/1.1, which every peer (the JS ones too) accepts.
    pub http2: Option<Http2Config>,
}

impl Default for WsClientConfig {
    fn default() -> Self {
        WsClientConfig {
            transport: WsConfig::default(),
            tls: None,
            headers: Vec::new(),
            advertise_window: true,
            http2: None,
        }
    }
}

impl WsClientConfig {
    /// Sets the connection limits and timers.
    pub fn with_transport(mut self, transport: WsConfig) -> Self {
        self.transport = transport;
        self
    }

    /// Sets [`WsClientConfig::advertise_window`].
    pub fn with_advertise_window(mut self, advertise: bool) -> Self {
        self.advertise_window = advertise;
        self
    }

    /// Sets [`WsClientConfig::http2`].
    pub fn with_http2(mut self, http2: Option<Http2Config>) -> Self {
        self.http2 = http2;
        self
    }

    /// Uses this TLS configuration for `wss://`.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Adds a header to the upgrade request.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}
