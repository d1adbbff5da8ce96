//! strand over ws, wss (HTTP/1.1 and HTTP/2), quic and the memory transport.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Value};
use strand_rpc_core::memory;
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::transport::{CloseCode, DynConnection, Listener};
use strand_rpc_core::{Client, ClientConfig, RpcError};
use strand_tls::{ClientTls, Identity, ServerTls, ServerVerification};
use strand_transport_quic::{
    QuicClient, QuicClientConfig, QuicConfig, QuicListener, QuicServerConfig,
};
use strand_transport_ws::{
    connect, Http2Config, WsClientConfig, WsConfig, WsListener, WsServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::heap;
use crate::kinds;
use crate::util::{self, EchoMsg, Opts, Res, CHUNK, STALL_TOTAL};

/// Which strand carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The WebSocket mux.
    Ws,
    /// The WebSocket mux over TLS, HTTP/1.1 upgrade.
    Wss,
    /// The WebSocket mux over TLS, as an HTTP/2 extended CONNECT stream
    /// (RFC 8441).
    WssH2,
    /// QUIC.
    Quic,
    /// The in-memory transport.
    Memory,
}

/// Stream limits raised for the idle-stream case (the defaults refuse 10,000 streams).
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    many_streams: bool,
}

enum Net {
    Ws {
        listener: WsListener,
        url: String,
        client: WsClientConfig,
    },
    Quic {
        listener: QuicListener,
        client: QuicClient,
        addr: std::net::SocketAddr,
    },
    Memory,
}

impl Net {
    async fn new(kind: Kind, limits: Limits) -> Res<Net> {
        Ok(match kind {
            Kind::Ws => {
                let mut ws = WsConfig::default();
                if limits.many_streams {
                    ws = ws.with_max_streams(40_000).with_stream_backlog(40_000);
                }
                let listener = WsListener::bind(
                    "127.0.0.1:0",
                    WsServerConfig::default().with_transport(ws.clone()),
                )
                .await?;
                let url = format!("ws://{}/", listener.local_addr());
                Net::Ws {
                    listener,
                    url,
                    client: WsClientConfig::default().with_transport(ws),
                }
            }
            Kind::Wss | Kind::WssH2 => {
                let mut ws = WsConfig::default();
                if limits.many_streams {
                    ws = ws.with_max_streams(40_000).with_stream_backlog(40_000);
                }
                let identity = Identity::dev()?;
                let listener = WsListener::bind(
                    "127.0.0.1:0",
                    WsServerConfig::default()
                        .with_transport(ws.clone())
                        .with_tls(ServerTls::new(identity.clone())),
                )
                .await?;
                let url = format!("wss://localhost:{}/", listener.local_addr().port());
                let tls = ClientTls::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
                let http2 = (kind == Kind::WssH2).then(Http2Config::default);
                Net::Ws {
                    listener,
                    url,
                    client: WsClientConfig::default()
                        .with_transport(ws)
                        .with_tls(tls)
                        .with_http2(http2),
                }
            }
            Kind::Quic => {
                let mut transport = QuicConfig::default();
                if limits.many_streams {
                    // The default (100) would make the 101st open wait.
                    transport.max_streams = 40_000;
                }
                let identity = Identity::dev()?;
                let listener = QuicListener::bind(
                    "127.0.0.1:0",
                    QuicServerConfig::new(identity.clone()).with_transport(transport.clone()),
                )
                .await?;
                let addr = listener.local_addr();
                let client = QuicClient::bind(
                    "127.0.0.1:0".parse()?,
                    QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
                        .with_transport(transport),
                )?;
                Net::Quic {
                    listener,
                    client,
                    addr,
                }
            }
            Kind::Memory => Net::Memory,
        })
    }

    /// A connected (client side, server side) pair.
    async fn pair(&self) -> Res<(DynConnection, DynConnection)> {
        Ok(match self {
            Net::Ws {
                listener,
                url,
                client,
            } => {
                let (c, s) = tokio::join!(connect(url, client.clone()), Listener::accept(listener));
                (Arc::new(c?) as DynConnection, s?)
            }
            Net::Quic {
                listener,
                client,
                addr,
            } => {
                let (c, s) = tokio::join!(
                    client.connect(*addr, "localhost"),
                    Listener::accept(listener)
                );
                (Arc::new(c?) as DynConnection, s?)
            }
            Net::Memory => {
                let (c, s) = memory::pair();
                (Arc::new(c) as DynConnection, Arc::new(s) as DynConnection)
            }
        })
    }
}

fn router() -> Router {
    Router::new()
        .unary(
            "echo",
            |_ctx, p: EchoMsg| async move { Ok::<_, RpcError>(p) },
        )
        .server_streaming("items", |_ctx, n: u64| {
            let item = util::item();
            futures::stream::iter(0..n).map(move |_| Ok::<_, RpcError>(item.clone()))
        })
}

/// An RPC client connected to a running server.
async fn rpc(net: &Net, server: &Server) -> Res<Client> {
    let (c, s) = net.pair().await?;
    server.spawn_connection(s);
    Ok(Client::from_shared(c, ClientConfig::default()))
}

/// Runs one case.
pub async fn run(kind: Kind, case: &str, opts: Opts) -> Res<Value> {
    match case {
        "unary1" | "unary64" => {
            let net = Net::new(kind, Limits::default()).await?;
            let server = Server::builder(router()).build();
            let client = rpc(&net, &server).await?;
            let callers = if case == "unary1" { 1 } else { 64 };
            let payload = Arc::new(util::echo_payload());
            util::unary_load(opts, callers, move || {
                let client = client.clone();
                let payload = payload.clone();
                async move {
                    let out: EchoMsg = client.unary("echo", &*payload).await?;
                    if out != *payload {
                        return Err(format!("echo mismatch: {out:?}").into());
                    }
                    Ok(())
                }
            })
            .await
        }
        "stream_items" => {
            let net = Net::new(kind, Limits::default()).await?;
            let server = Server::builder(router()).build();
            let client = rpc(&net, &server).await?;
            stream_items_for(&client, opts.warmup()).await?; // warm-up
            let (items, secs) = stream_items_for(&client, opts.duration()).await?;
            Ok(json!({ "items_per_s": items as f64 / secs, "items": items }))
        }
        "throughput" => {
            let net = Net::new(kind, Limits::default()).await?;
            let (c, s) = net.pair().await?;
            tokio::spawn(async move {
                while let Ok(st) = s.accept_stream().await {
                    tokio::spawn(async move {
                        let (send, recv) = st.split();
                        let _ = util::count_chunks_and_reply(recv, send).await;
                    });
                }
            });
            util::throughput(opts, || {
                let c = c.clone();
                async move { Ok(c.open_stream().await?.split()) }
            })
            .await
        }
        "open_latency" => {
            let net = Net::new(kind, Limits::default()).await?;
            let (c, s) = net.pair().await?;
            tokio::spawn(async move {
                while let Ok(st) = s.accept_stream().await {
                    tokio::spawn(async move {
                        let (mut send, mut recv) = st.split();
                        let mut b = [0u8; util::OPEN_PROBE];
                        if recv.read_exact(&mut b).await.is_ok() {
                            let _ = send.write_all(&b).await;
                            let _ = send.shutdown().await;
                            // The client drops the stream after the first byte.
                            let mut rest = Vec::new();
                            let _ = recv.read_to_end(&mut rest).await;
                        }
                    });
                }
            });
            util::sequential_latency(opts, || {
                let c = c.clone();
                async move {
                    let (mut send, mut recv) = c.open_stream().await?.split();
                    send.write_all(&[b'x'; util::OPEN_PROBE]).await?;
                    let mut b = [0u8; util::OPEN_PROBE];
                    recv.read_exact(&mut b).await?;
                    // First byte in: the measurement ends; dropping the
                    // halves resets and stops the stream.
                    Ok(())
                }
            })
            .await
        }
        "idle_conn" => {
            let net = Net::new(kind, Limits::default()).await?;
            let server = Server::builder(router()).build();
            let payload = util::echo_payload();
            // One connection first, so one-time setup is not counted.
            let first = rpc(&net, &server).await?;
            let _: EchoMsg = first.unary("echo", &payload).await?;
            util::settle().await;
            let before = util::mem();
            let n = opts.connections();
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                let client = rpc(&net, &server).await?;
                let _: EchoMsg = client.unary("echo", &payload).await?;
                clients.push(client);
            }
            util::settle().await;
            let report = util::per_item_report(before, n, "conn");
            drop(clients);
            Ok(report)
        }
        "idle_stream" => {
            let net = Net::new(kind, Limits { many_streams: true }).await?;
            let (c, s) = net.pair().await?;
            let held = Arc::new(AtomicU64::new(0));
            let held2 = held.clone();
            let server_task = tokio::spawn(async move {
                let mut streams = Vec::new();
                while let Ok(st) = s.accept_stream().await {
                    let (send, mut recv) = st.split();
                    let mut b = [0u8; 1];
                    if recv.read_exact(&mut b).await.is_err() {
                        break;
                    }
                    streams.push((send, recv));
                    held2.fetch_add(1, Ordering::Relaxed);
                }
                streams.len()
            });
            // Warm one stream up (not counted).
            let warm = open_idle(&c).await?;
            util::wait_count(&held, 1).await?;
            util::settle().await;
            let before = util::mem();
            let n = opts.streams();
            let mut streams = Vec::with_capacity(n);
            for _ in 0..n {
                streams.push(open_idle(&c).await?);
            }
            util::wait_count(&held, n as u64 + 1).await?;
            util::settle().await;
            let report = util::per_item_report(before, n, "stream");
            drop((warm, streams));
            c.close(CloseCode::Normal, "done");
            server_task.abort();
            Ok(report)
        }
        "call_start" => {
            let net = Net::new(kind, Limits::default()).await?;
            let server = Server::builder(kinds::add_methods(router())).build();
            let client = rpc(&net, &server).await?;
            kinds::call_start(&client, opts).await
        }
        "loaded_latency" => {
            let net = Net::new(kind, Limits::default()).await?;
            let server = Server::builder(kinds::add_methods(router())).build();
            let client = rpc(&net, &server).await?;
            let payload = util::echo_payload();
            let bulk_client = client.clone();
            kinds::loaded_latency(
                opts,
                || async {
                    let _: EchoMsg = client.unary("echo", &payload).await?;
                    Ok::<(), util::BoxError>(())
                },
                move |stop, bytes| kinds::strand_bulk(bulk_client, stop, bytes),
            )
            .await
        }
        "stalled" => stalled(kind).await,
        _ => Err(format!("case {case} is not implemented for strand").into()),
    }
}

/// One consumer that opens a server-streaming call and never reads it, while
/// the server pushes 8 MiB at it.
///
/// The producing server runs on a runtime of its own whose threads count
/// their allocations for the producing end (see `heap`), so the report can
/// say what the stalled consumer's end holds apart from the producer's
/// queue.
async fn stalled(kind: Kind) -> Res<Value> {
    let producer = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(crate::heap::mark_producer_thread)
        .build()?;
    let produced = Arc::new(AtomicU64::new(0));
    let p2 = produced.clone();
    // The producer's source: a 64 KiB JSON string item, made before the
    // measurement and shared by the call (what the stream holds is
    // measured, not the data it is fed from; the peers' pushers do the same).
    let big: Arc<str> = "y".repeat(CHUNK - 2).into();
    let router = Router::new().server_streaming("flood", move |_ctx, _p: Value| {
        let big = big.clone();
        let p2 = p2.clone();
        futures::stream::iter(0..(STALL_TOTAL / CHUNK)).map(move |_| {
            p2.fetch_add(CHUNK as u64, Ordering::Relaxed);
            Ok::<_, RpcError>(big.to_string())
        })
    });
    let server = Server::builder(router).build();
    let result = stalled_on(kind, &producer, server, &produced).await;
    // Dropping a runtime inside another one's task is not allowed.
    producer.shutdown_background();
    result
}

async fn stalled_on(
    kind: Kind,
    producer: &tokio::runtime::Runtime,
    server: Server,
    produced: &AtomicU64,
) -> Res<Value> {
    let conn: DynConnection = match kind {
        Kind::Ws => {
            let listener = producer
                .spawn(async { WsListener::bind("127.0.0.1:0", WsServerConfig::default()).await })
                .await??;
            let url = format!("ws://{}/", listener.local_addr());
            producer.spawn(async move {
                if let Ok(conn) = Listener::accept(&listener).await {
                    server.serve_connection(conn).await;
                }
            });
            Arc::new(connect(&url, WsClientConfig::default()).await?)
        }
        Kind::Quic => {
            let identity = Identity::dev()?;
            let roots = identity.cert_chain().to_vec();
            let bind: std::net::SocketAddr = "127.0.0.1:0".parse()?;
            let listener = producer
                .spawn(
                    async move { QuicListener::bind(bind, QuicServerConfig::new(identity)).await },
                )
                .await??;
            let addr = listener.local_addr();
            producer.spawn(async move {
                if let Ok(conn) = Listener::accept(&listener).await {
                    server.serve_connection(conn).await;
                }
            });
            let client = QuicClient::bind(
                "127.0.0.1:0".parse()?,
                QuicClientConfig::new(ServerVerification::Ca(roots)),
            )?;
            Arc::new(client.connect(addr, "localhost").await?)
        }
        Kind::Memory => {
            let (c, s) = memory::pair();
            producer.spawn(async move { server.serve_connection(Arc::new(s)).await });
            Arc::new(c)
        }
        Kind::Wss | Kind::WssH2 => return Err("stalled runs on ws, quic and memory".into()),
    };
    let client = Client::from_shared(conn, ClientConfig::default());
    util::settle().await;
    let before = util::mem();
    let (consumer_before, producer_before) = (heap::live_consumer(), heap::live_producer());
    // The consumer opens the stream and never polls it.
    let stalled = client
        .server_streaming::<_, String>("flood", &json!({}))
        .await?;
    util::wait_stalled(produced, STALL_TOTAL as u64).await;
    let window = match kind {
        Kind::Ws | Kind::Wss | Kind::WssH2 => WsConfig::default().stream_window as u64,
        Kind::Quic => QuicConfig::default().stream_window as u64,
        Kind::Memory => memory::MemoryConfig::default().stream_buffer as u64,
    };
    // Read before the report is built: its JSON is allocated on this
    // (consumer) thread and is not what the stalled stream holds.
    let consumer = heap::live_consumer() - consumer_before;
    let producer = heap::live_producer() - producer_before;
    let mut report = util::stalled_report(before, produced.load(Ordering::Relaxed), Some(window));
    report["consumer_heap_delta_bytes"] = json!(consumer);
    report["producer_heap_delta_bytes"] = json!(producer);
    drop(stalled);
    Ok(report)
}

async fn open_idle(c: &DynConnection) -> Res<strand_rpc_core::transport::Stream> {
    let mut st = c.open_stream().await?;
    st.send.write_all(b"x").await?;
    Ok(st)
}

async fn stream_items_for(client: &Client, dur: std::time::Duration) -> Res<(u64, f64)> {
    let mut items = client
        .server_streaming::<_, String>("items", &u64::MAX)
        .await?;
    util::count_items_for(&mut items, dur).await
}
