//! Transport fixtures for the conformance suite: each gives a connected
//! (client, server) pair of [`DynConnection`]s and what it knows about its
//! own buffering, so one set of cases runs on every carrier.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use strand_rpc_core::memory::{self, MemoryConfig};
use strand_rpc_core::server::Router;
use strand_rpc_core::transport::{BoxSendStream, DynConnection};
use strand_rpc_core::RpcError;
use strand_tls::{ClientTls, Identity, ServerTls, ServerVerification};
use strand_transport_quic::{
    QuicClient, QuicClientConfig, QuicConfig, QuicConnection, QuicListener, QuicServerConfig,
};
use strand_transport_ws::{
    connect, Http2Config, WsClientConfig, WsConfig, WsConnection, WsListener, WsServerConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The streaming methods both suites serve, the same on every carrier and
/// for the JS peers: `count` (`{"n":N}` → `{"i":0}`…), `sum` (messages
/// `{"x":n}` → `{"sum":total}`, as the facade's demo service), `chat` (`{"msg":m}` → `{"reply":"re:m"}` each).
pub fn streaming_kinds() -> Router {
    Router::new()
        .server_streaming("count", |_ctx, p: Value| {
            let n = p["n"].as_u64().unwrap_or(0);
            futures_util::stream::iter((0..n).map(|i| Ok::<_, RpcError>(json!({ "i": i }))))
        })
        .client_streaming("sum", |_ctx, input| async move {
            let values: Vec<Result<Value, RpcError>> = input.collect().await;
            let mut sum = 0;
            for v in values {
                sum += v?["x"].as_i64().unwrap_or(0);
            }
            Ok::<_, RpcError>(json!({ "sum": sum }))
        })
        .duplex("chat", |_ctx, input| {
            input.map(|m: Result<Value, RpcError>| {
                let m = m?;
                Ok::<_, RpcError>(
                    json!({ "reply": format!("re:{}", m["msg"].as_str().unwrap_or("")) }),
                )
            })
        })
}

pub use strand_test_support::{eventually, within, LIMIT};

/// A connected pair and the carrier-specific handles the cases inspect.
pub struct Pair {
    /// The calling side.
    pub client: DynConnection,
    /// The serving side.
    pub server: DynConnection,
    /// The ws connections (client, server), for their stats.
    pub ws: Option<(WsConnection, WsConnection)>,
    /// The QUIC connections (client, server), for their stream counts.
    pub quic: Option<(Arc<QuicConnection>, Arc<QuicConnection>)>,
    /// Endpoints that must outlive the connections.
    pub keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl Pair {
    /// Streams the server side still tracks, where the carrier counts them.
    pub fn server_streams(&self) -> Option<usize> {
        if let Some((_, s)) = &self.ws {
            return Some(s.stats().streams_open);
        }
        if let Some((_, s)) = &self.quic {
            return Some(s.stats().open_streams);
        }
        None
    }

    /// Waits until neither side tracks a stream any more (where the carrier
    /// counts them); panics with the figures after [`LIMIT`].
    pub async fn streams_released(&self) {
        if self.server_streams().is_none() {
            return;
        }
        for _ in 0..(LIMIT.as_millis() / 10) {
            if self.server_streams() == Some(0) && self.client_streams() == Some(0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let detail = match &self.ws {
            Some((c, s)) => format!("client {:?}, server {:?}", c.stats(), s.stats()),
            None => format!(
                "client {:?}, server {:?}",
                self.client_streams(),
                self.server_streams()
            ),
        };
        panic!("streams left behind: {detail}");
    }

    /// Streams the client side still tracks, where the carrier counts them.
    pub fn client_streams(&self) -> Option<usize> {
        if let Some((c, _)) = &self.ws {
            return Some(c.stats().streams_open);
        }
        if let Some((c, _)) = &self.quic {
            return Some(c.stats().open_streams);
        }
        None
    }
}

/// One carrier under test.
#[allow(async_fn_in_trait)]
pub trait Fixture {
    /// The carrier's name in `PeerInfo::transport`.
    const NAME: &'static str;

    /// A fresh connected pair.
    async fn connect() -> Pair;

    /// The most bytes one direction of one stream can hold between a writer
    /// and a reader that stopped reading (windows and send buffers).
    fn stream_bound() -> usize;
}

/// The in-memory transport (run with paused time).
pub struct Memory;

/// Per-direction buffer of the memory pairs.
pub const MEMORY_BUFFER: usize = 64 * 1024;

impl Fixture for Memory {
    const NAME: &'static str = "memory";

    async fn connect() -> Pair {
        let config = MemoryConfig {
            stream_buffer: MEMORY_BUFFER,
            ..MemoryConfig::default()
        };
        let (c, s) = memory::pair_with(config);
        Pair {
            client: Arc::new(c),
            server: Arc::new(s),
            ws: None,
            quic: None,
            keep: Vec::new(),
        }
    }

    fn stream_bound() -> usize {
        MEMORY_BUFFER
    }
}

/// The WebSocket mux over loopback TCP.
pub struct Ws;

fn ws_config() -> WsConfig {
    // 1,000 concurrent calls: let the peer's opens queue instead of refusing.
    WsConfig::default()
        .with_max_streams(1024)
        .with_stream_backlog(1024)
}

impl Fixture for Ws {
    const NAME: &'static str = "ws";

    async fn connect() -> Pair {
        let listener = WsListener::bind(
            "127.0.0.1:0",
            WsServerConfig::default().with_transport(ws_config()),
        )
        .await
        .unwrap();
        let url = format!("ws://{}/", listener.local_addr());
        let (client, server) = within(async {
            tokio::join!(
                connect(&url, WsClientConfig::default().with_transport(ws_config())),
                listener.accept_connection()
            )
        })
        .await;
        let (client, server) = (client.unwrap(), server.unwrap());
        Pair {
            client: Arc::new(client.clone()),
            server: Arc::new(server.clone()),
            ws: Some((client, server)),
            quic: None,
            keep: vec![Box::new(listener)],
        }
    }

    fn stream_bound() -> usize {
        let c = ws_config();
        // Credit in flight plus what the writer may queue for the socket.
        c.stream_window as usize + c.stream_send_buffer
    }
}

/// The WebSocket mux over HTTP/2 (RFC 8441): an extended CONNECT stream
/// of a TLS connection that negotiated `h2`.
pub struct WsH2;

impl Fixture for WsH2 {
    const NAME: &'static str = "wss";

    async fn connect() -> Pair {
        let identity = Identity::dev().unwrap();
        let listener = WsListener::bind(
            "127.0.0.1:0",
            WsServerConfig::default()
                .with_transport(ws_config())
                .with_tls(ServerTls::new(identity.clone())),
        )
        .await
        .unwrap();
        let url = format!("wss://localhost:{}/", listener.local_addr().port());
        let client_config = WsClientConfig::default()
            .with_transport(ws_config())
            .with_tls(ClientTls::new(ServerVerification::Ca(
                identity.cert_chain().to_vec(),
            )))
            .with_http2(Some(Http2Config::default()));
        let (client, server) = within(async {
            tokio::join!(connect(&url, client_config), listener.accept_connection())
        })
        .await;
        let (client, server) = (client.unwrap(), server.unwrap());
        assert_eq!(listener.stats().h2_upgrades, 1, "not over HTTP/2");
        Pair {
            client: Arc::new(client.clone()),
            server: Arc::new(server.clone()),
            ws: Some((client, server)),
            quic: None,
            keep: vec![Box::new(listener)],
        }
    }

    fn stream_bound() -> usize {
        // The mux's own: what HTTP/2 holds on the way (its send buffer, its
        // stream window) was sent under the mux's credit, so it adds nothing.
        Ws::stream_bound()
    }
}

/// QUIC over loopback UDP.
pub struct Quic;

fn quic_transport() -> QuicConfig {
    let mut t = QuicConfig::default();
    t.max_streams = 256;
    t
}

impl Fixture for Quic {
    const NAME: &'static str = "quic";

    async fn connect() -> Pair {
        let identity = Identity::dev().unwrap();
        let listener = QuicListener::bind(
            "127.0.0.1:0",
            QuicServerConfig::new(identity.clone()).with_transport(quic_transport()),
        )
        .await
        .unwrap();
        let client = QuicClient::bind(
            "127.0.0.1:0".parse().unwrap(),
            QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
                .with_transport(quic_transport()),
        )
        .unwrap();
        let addr = listener.local_addr();
        let (c, s) = within(async {
            tokio::join!(
                client.connect(addr, "localhost"),
                listener.accept_connection()
            )
        })
        .await;
        let c = Arc::new(c.unwrap());
        let s = Arc::new(s.unwrap());
        Pair {
            client: c.clone(),
            server: s.clone(),
            ws: None,
            quic: Some((c, s)),
            keep: vec![Box::new(listener), Box::new(client)],
        }
    }

    fn stream_bound() -> usize {
        let t = quic_transport();
        // The peer's stream window plus quinn's connection send buffer.
        t.stream_window as usize + t.send_window as usize
    }
}

/// The ws fixture's per-stream receive window.
pub fn ws_window() -> u32 {
    ws_config().stream_window
}

/// The ws fixture's per-stream send buffer.
pub fn ws_send_buffer() -> usize {
    ws_config().stream_send_buffer
}

/// Byte `i` of the patterned payloads.
pub fn pattern(i: usize) -> u8 {
    (i as u8).wrapping_mul(31) ^ (i >> 16) as u8
}

/// Writes `total` patterned bytes in 64 KiB writes, then finishes.
pub fn write_pattern(mut writer: BoxSendStream, total: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut off = 0;
        while off < total {
            for (k, b) in chunk.iter_mut().enumerate() {
                *b = pattern(off + k);
            }
            writer.write_all(&chunk).await.unwrap();
            off += chunk.len();
        }
        writer.shutdown().await.unwrap();
    })
}

/// Reads to the end, checking every byte against the pattern; gives
/// the count.
pub async fn read_pattern(mut reader: impl AsyncRead + Unpin) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    loop {
        let n = reader.read(&mut buf).await.unwrap();
        if n == 0 {
            return got;
        }
        for (k, b) in buf[..n].iter().enumerate() {
            assert_eq!(*b, pattern(got + k), "byte {} differs", got + k);
        }
        got += n;
    }
}
