//! The peers: raw tokio-tungstenite, raw quinn, jsonrpsee (WebSocket) and
//! tarpc (JSON over TCP), each doing what the strand cases do.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::util::{self, EchoMsg, Opts, Res, CHUNK, STALL_TOTAL};

// ---------------------------------------------------------------- tungstenite

async fn ws_pair(
    listener: &TcpListener,
) -> Res<(
    tokio_tungstenite::WebSocketStream<TcpStream>,
    tokio_tungstenite::WebSocketStream<TcpStream>,
)> {
    let addr = listener.local_addr()?;
    let client = async {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp).await?;
        Ok::<_, util::BoxError>(ws)
    };
    let server = async {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        Ok::<_, util::BoxError>(tokio_tungstenite::accept_async(tcp).await?)
    };
    let (c, s) = tokio::join!(client, server);
    Ok((c?, s?))
}

/// Raw tokio-tungstenite.
pub async fn tungstenite(case: &str, opts: Opts) -> Res<Value> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    match case {
        "throughput" => {
            // One WebSocket per run; binary messages of 64 KiB; an empty
            // message marks the end and the server answers the byte count.
            let mut results = Vec::new();
            for dur in [opts.warmup(), opts.duration()] {
                let (mut c, mut s) = ws_pair(&listener).await?;
                let server = tokio::spawn(async move {
                    let mut total = 0u64;
                    while let Some(msg) = s.next().await {
                        match msg? {
                            Message::Binary(b) if b.is_empty() => break,
                            Message::Binary(b) => total += b.len() as u64,
                            _ => {}
                        }
                    }
                    s.send(Message::Binary(Bytes::copy_from_slice(
                        &total.to_be_bytes(),
                    )))
                    .await?;
                    Ok::<_, util::BoxError>(())
                });
                let chunk = Bytes::from(vec![7u8; CHUNK]);
                let start = Instant::now();
                let mut sent = 0u64;
                while start.elapsed() < dur {
                    c.send(Message::Binary(chunk.clone())).await?;
                    sent += CHUNK as u64;
                }
                c.send(Message::Binary(Bytes::new())).await?;
                let reply = loop {
                    match c.next().await.ok_or("closed")?? {
                        Message::Binary(b) => break b,
                        _ => continue,
                    }
                };
                let secs = start.elapsed().as_secs_f64();
                let got = u64::from_be_bytes(reply[..8].try_into()?);
                if got != sent {
                    return Err("byte count mismatch".into());
                }
                server.await??;
                results.push((sent, secs));
            }
            let (bytes, secs) = results[1];
            Ok(json!({ "mb_per_s": bytes as f64 / secs / 1e6, "bytes": bytes }))
        }
        "idle_conn" => {
            let (mut c, mut s) = ws_pair(&listener).await?;
            ping(&mut c, &mut s).await?;
            util::settle().await;
            let before = util::mem();
            let n = opts.connections();
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                let (mut c, mut s) = ws_pair(&listener).await?;
                ping(&mut c, &mut s).await?;
                conns.push((c, s));
            }
            util::settle().await;
            Ok(util::per_item_report(before, n, "conn"))
        }
        "stalled" => {
            let (c, mut s) = ws_pair(&listener).await?;
            // The producer's source, made before the measurement.
            let chunk = Bytes::from(vec![7u8; CHUNK]);
            util::settle().await;
            let before = util::mem();
            let progress = Arc::new(AtomicU64::new(0));
            let p2 = progress.clone();
            let pusher = tokio::spawn(async move {
                for _ in 0..STALL_TOTAL / CHUNK {
                    if s.send(Message::Binary(chunk.clone())).await.is_err() {
                        break;
                    }
                    p2.fetch_add(CHUNK as u64, Ordering::Relaxed);
                }
                s
            });
            util::wait_stalled(&progress, STALL_TOTAL as u64).await;
            let report = util::stalled_report(before, progress.load(Ordering::Relaxed), None);
            pusher.abort();
            drop(c);
            Ok(report)
        }
        _ => Err(format!("case {case} is not implemented for tungstenite").into()),
    }
}

async fn ping(
    c: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    s: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
) -> Res<()> {
    c.send(Message::Binary(Bytes::from_static(b"ping"))).await?;
    let m = s.next().await.ok_or("closed")??;
    s.send(m).await?;
    c.next().await.ok_or("closed")??;
    Ok(())
}

// ---------------------------------------------------------------------- quinn

fn quinn_endpoints(many_streams: bool) -> Res<(quinn::Endpoint, quinn::Endpoint, SocketAddr)> {
    let identity = strand_tls::Identity::dev()?;
    let mut transport = quinn::TransportConfig::default();
    if many_streams {
        transport.max_concurrent_bidi_streams(40_000u32.into());
    }
    let transport = Arc::new(transport);
    let mut server_config = quinn::ServerConfig::with_single_cert(
        identity.cert_chain().to_vec(),
        identity.private_key().clone_key(),
    )?;
    server_config.transport_config(transport.clone());
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in identity.cert_chain() {
        roots.add(cert.clone())?;
    }
    let mut client_config = quinn::ClientConfig::with_root_certificates(Arc::new(roots))?;
    client_config.transport_config(transport);
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(client_config);
    Ok((server, client, addr))
}

async fn quinn_pair(
    server: &quinn::Endpoint,
    client: &quinn::Endpoint,
    addr: SocketAddr,
) -> Res<(quinn::Connection, quinn::Connection)> {
    let c = async { Ok::<_, util::BoxError>(client.connect(addr, "localhost")?.await?) };
    let s = async {
        let incoming = server.accept().await.ok_or("endpoint closed")?;
        Ok::<_, util::BoxError>(incoming.await?)
    };
    let (c, s) = tokio::join!(c, s);
    Ok((c?, s?))
}

/// Raw quinn, with quinn's default transport settings.
pub async fn quinn(case: &str, opts: Opts) -> Res<Value> {
    let (server, client, addr) = quinn_endpoints(case == "idle_stream")?;
    match case {
        "unary1" | "unary64" => {
            // Stream per request, as strand-quic does: the request is the
            // stream's bytes up to the finish, the reply likewise. Each
            // request is served on the accepting task when it is all there
            // (as strand's server does), else on a task of its own.
            let (c, s) = quinn_pair(&server, &client, addr).await?;
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = s.accept_bi().await {
                    util::run_or_spawn(async move {
                        let Ok(req) = recv.read_to_end(64 * 1024).await else {
                            return;
                        };
                        let Ok(msg) = serde_json::from_slice::<EchoMsg>(&req) else {
                            return;
                        };
                        let Ok(reply) = serde_json::to_vec(&msg) else {
                            return;
                        };
                        let _ = send.write_all(&reply).await;
                        let _ = send.finish();
                    })
                    .await;
                }
            });
            let callers = if case == "unary1" { 1 } else { 64 };
            let payload = Arc::new(util::echo_payload());
            util::unary_load(opts, callers, move || {
                let c = c.clone();
                let payload = payload.clone();
                async move {
                    let (mut send, mut recv) = c.open_bi().await?;
                    send.write_all(&serde_json::to_vec(&*payload)?).await?;
                    send.finish()?;
                    let reply = recv.read_to_end(64 * 1024).await?;
                    let out: EchoMsg = serde_json::from_slice(&reply)?;
                    if out != *payload {
                        return Err(format!("echo mismatch: {out:?}").into());
                    }
                    Ok(())
                }
            })
            .await
        }
        "throughput" => {
            let (c, s) = quinn_pair(&server, &client, addr).await?;
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = s.accept_bi().await {
                    // quinn's zero-copy read, as strand's side reads chunks.
                    tokio::spawn(async move {
                        let mut total = 0u64;
                        while let Ok(Some(chunk)) = recv.read_chunk(util::CHUNK, true).await {
                            total += chunk.bytes.len() as u64;
                        }
                        let _ = send.write_all(&total.to_be_bytes()).await;
                        let _ = send.finish();
                    });
                }
            });
            util::throughput(opts, || {
                let c = c.clone();
                async move { Ok(c.open_bi().await?) }
            })
            .await
        }
        "open_latency" => {
            let (c, s) = quinn_pair(&server, &client, addr).await?;
            tokio::spawn(async move {
                while let Ok((mut send, mut recv)) = s.accept_bi().await {
                    tokio::spawn(async move {
                        let mut b = [0u8; util::OPEN_PROBE];
                        if recv.read_exact(&mut b).await.is_ok() {
                            let _ = send.write_all(&b).await;
                            let _ = send.finish();
                            let _ = recv.read_to_end(1024).await;
                        }
                    });
                }
            });
            util::sequential_latency(opts, || {
                let c = c.clone();
                async move {
                    let (mut send, mut recv) = c.open_bi().await?;
                    send.write_all(&[b'x'; util::OPEN_PROBE]).await?;
                    let mut b = [0u8; util::OPEN_PROBE];
                    recv.read_exact(&mut b).await?;
                    Ok(())
                }
            })
            .await
        }
        "idle_conn" => {
            let first = quinn_pair(&server, &client, addr).await?;
            quinn_ping(&first.0, &first.1).await?;
            util::settle().await;
            let before = util::mem();
            let n = opts.connections();
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                let (c, s) = quinn_pair(&server, &client, addr).await?;
                quinn_ping(&c, &s).await?;
                conns.push((c, s));
            }
            util::settle().await;
            Ok(util::per_item_report(before, n, "conn"))
        }
        "idle_stream" => {
            let (c, s) = quinn_pair(&server, &client, addr).await?;
            let held = Arc::new(AtomicU64::new(0));
            let h2 = held.clone();
            let server_task = tokio::spawn(async move {
                let mut streams = Vec::new();
                while let Ok((send, mut recv)) = s.accept_bi().await {
                    let mut b = [0u8; 1];
                    if recv.read_exact(&mut b).await.is_err() {
                        break;
                    }
                    streams.push((send, recv));
                    h2.fetch_add(1, Ordering::Relaxed);
                }
            });
            let open = || async {
                let (mut send, recv) = c.open_bi().await?;
                send.write_all(b"x").await?;
                Ok::<_, util::BoxError>((send, recv))
            };
            let warm = open().await?;
            util::wait_count(&held, 1).await?;
            util::settle().await;
            let before = util::mem();
            let n = opts.streams();
            let mut streams = Vec::with_capacity(n);
            for _ in 0..n {
                streams.push(open().await?);
            }
            util::wait_count(&held, n as u64 + 1).await?;
            util::settle().await;
            let report = util::per_item_report(before, n, "stream");
            drop((warm, streams));
            server_task.abort();
            Ok(report)
        }
        "stalled" => {
            let (c, s) = quinn_pair(&server, &client, addr).await?;
            // The producer's source, made before the measurement.
            let chunk = Bytes::from(vec![7u8; CHUNK]);
            util::settle().await;
            let before = util::mem();
            // The client opens a stream and never reads it; the server pushes.
            let (mut csend, _crecv) = c.open_bi().await?;
            csend.write_all(b"x").await?;
            let (ssend, mut srecv) = s.accept_bi().await?;
            let mut b = [0u8; 1];
            srecv.read_exact(&mut b).await?;
            let progress = Arc::new(AtomicU64::new(0));
            let pusher = tokio::spawn(util::push_until_stalled(ssend, chunk, progress.clone()));
            util::wait_stalled(&progress, STALL_TOTAL as u64).await;
            let window = 1_250_000u64; // quinn's default stream receive window
            let report =
                util::stalled_report(before, progress.load(Ordering::Relaxed), Some(window));
            pusher.abort();
            Ok(report)
        }
        _ => Err(format!("case {case} is not implemented for quinn").into()),
    }
}

async fn quinn_ping(c: &quinn::Connection, s: &quinn::Connection) -> Res<()> {
    let (mut send, mut recv) = c.open_bi().await?;
    send.write_all(b"x").await?;
    send.finish()?;
    let (mut ssend, mut srecv) = s.accept_bi().await?;
    let mut b = [0u8; 1];
    srecv.read_exact(&mut b).await?;
    ssend.write_all(&b).await?;
    ssend.finish()?;
    recv.read_exact(&mut b).await?;
    Ok(())
}

// ------------------------------------------------------------------ jsonrpsee

async fn jsonrpsee_server(
    flood: Option<Arc<AtomicU64>>,
) -> Res<(SocketAddr, jsonrpsee::server::ServerHandle)> {
    use jsonrpsee::server::{RpcModule, Server, SubscriptionMessage};

    let config = jsonrpsee::server::ServerConfig::builder()
        .max_connections(40_000)
        .max_subscriptions_per_connection(40_000)
        .build();
    let server = Server::builder()
        .set_config(config)
        .build("127.0.0.1:0")
        .await?;
    let addr = server.local_addr()?;
    let mut module = RpcModule::new(());
    module.register_method("echo", |params, _, _| params.one::<EchoMsg>())?;
    let item = serde_json::value::to_raw_value(&util::item())?;
    module.register_subscription(
        "sub_items",
        "items",
        "unsub_items",
        move |params, pending, _, _| {
            let item = item.clone();
            async move {
                let n: u64 = params.one()?;
                let sink = pending.accept().await?;
                for _ in 0..n {
                    sink.send(SubscriptionMessage::from(item.clone())).await?;
                }
                Ok(())
            }
        },
    )?;
    // The stalled case's source, shared by its calls (made once, before any
    // measurement; each item is a copy of it, as strand's handler makes).
    let big = Arc::new(serde_json::value::to_raw_value(&"y".repeat(CHUNK - 2))?);
    // loaded_latency's bulk stream: as many 64 KiB items as asked for.
    let bulk = (*big).clone();
    module.register_subscription(
        "sub_bulk",
        "bulk",
        "unsub_bulk",
        move |params, pending, _, _| {
            let bulk = bulk.clone();
            async move {
                let n: u64 = params.one()?;
                let sink = pending.accept().await?;
                for _ in 0..n {
                    sink.send(SubscriptionMessage::from(bulk.clone())).await?;
                }
                Ok(())
            }
        },
    )?;
    module.register_subscription(
        "sub_flood",
        "flood",
        "unsub_flood",
        move |_params, pending, _, _| {
            let big = big.clone();
            let flood = flood.clone();
            async move {
                let sink = pending.accept().await?;
                for _ in 0..STALL_TOTAL / CHUNK {
                    sink.send(SubscriptionMessage::from((*big).clone())).await?;
                    if let Some(f) = &flood {
                        f.fetch_add(CHUNK as u64, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
        },
    )?;
    let handle = server.start(module);
    Ok((addr, handle))
}

async fn jsonrpsee_client(addr: SocketAddr) -> Res<jsonrpsee::ws_client::WsClient> {
    Ok(jsonrpsee::ws_client::WsClientBuilder::default()
        .build(format!("ws://{addr}"))
        .await?)
}

/// jsonrpsee over WebSocket: methods and subscriptions.
pub async fn jsonrpsee(case: &str, opts: Opts) -> Res<Value> {
    use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
    use jsonrpsee::rpc_params;

    let flood = Arc::new(AtomicU64::new(0));
    let (addr, _handle) = jsonrpsee_server(Some(flood.clone())).await?;
    match case {
        "unary1" | "unary64" => {
            let client = Arc::new(jsonrpsee_client(addr).await?);
            let callers = if case == "unary1" { 1 } else { 64 };
            let payload = Arc::new(util::echo_payload());
            util::unary_load(opts, callers, move || {
                let client = client.clone();
                let payload = payload.clone();
                async move {
                    let out: EchoMsg = client.request("echo", rpc_params![&*payload]).await?;
                    if out != *payload {
                        return Err("echo mismatch".into());
                    }
                    Ok(())
                }
            })
            .await
        }
        "stream_items" => {
            // jsonrpsee has no backpressure from a subscriber to the server: a
            // subscription whose buffer (1024 items by default) fills is closed
            // as lagging. Give it room for the whole run instead.
            let client = jsonrpsee::ws_client::WsClientBuilder::default()
                .max_buffer_capacity_per_subscription(1 << 24)
                .build(format!("ws://{addr}"))
                .await?;
            let mut res = (0, 0.0);
            for dur in [opts.warmup(), opts.duration()] {
                let mut sub = client
                    .subscribe::<String, _>("sub_items", rpc_params![u64::MAX], "unsub_items")
                    .await?;
                res = util::count_items_for(&mut sub, dur).await?;
                sub.unsubscribe().await?;
            }
            Ok(json!({ "items_per_s": res.0 as f64 / res.1, "items": res.0 }))
        }
        "open_latency" => {
            let client = jsonrpsee_client(addr).await?;
            util::sequential_latency(opts, || async {
                let mut sub = client
                    .subscribe::<String, _>("sub_items", rpc_params![1u64], "unsub_items")
                    .await?;
                sub.next().await.ok_or("no item")??;
                Ok(())
            })
            .await
        }
        "loaded_latency" => {
            // A subscriber without backpressure is closed when its buffer
            // fills; the bulk reader keeps up, the room is a safety margin.
            let client = Arc::new(
                jsonrpsee::ws_client::WsClientBuilder::default()
                    .max_buffer_capacity_per_subscription(1 << 16)
                    .build(format!("ws://{addr}"))
                    .await?,
            );
            let bulk_client = client.clone();
            let payload = util::echo_payload();
            crate::kinds::loaded_latency(
                opts,
                || async {
                    let _: EchoMsg = client.request("echo", rpc_params![&payload]).await?;
                    Ok::<(), util::BoxError>(())
                },
                move |stop, bytes| async move {
                    let mut sub = bulk_client
                        .subscribe::<String, _>("sub_bulk", rpc_params![u64::MAX], "unsub_bulk")
                        .await?;
                    while !stop.load(Ordering::Relaxed) {
                        let item = sub.next().await.ok_or("bulk stream ended")??;
                        bytes.fetch_add(item.len() as u64, Ordering::Relaxed);
                    }
                    Ok::<(), util::BoxError>(())
                },
            )
            .await
        }
        "idle_conn" => {
            let first = jsonrpsee_client(addr).await?;
            let _: EchoMsg = first
                .request("echo", rpc_params![util::echo_payload()])
                .await?;
            util::settle().await;
            let before = util::mem();
            let n = opts.connections();
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                let c = jsonrpsee_client(addr).await?;
                let _: EchoMsg = c.request("echo", rpc_params![util::echo_payload()]).await?;
                clients.push(c);
            }
            util::settle().await;
            Ok(util::per_item_report(before, n, "conn"))
        }
        "stalled" => {
            let client = jsonrpsee_client(addr).await?;
            let _: EchoMsg = client
                .request("echo", rpc_params![util::echo_payload()])
                .await?;
            util::settle().await;
            let before = util::mem();
            // Subscribed, never read.
            let sub = client
                .subscribe::<String, _>("sub_flood", rpc_params![], "unsub_flood")
                .await?;
            util::wait_stalled(&flood, STALL_TOTAL as u64).await;
            let report = util::stalled_report(before, flood.load(Ordering::Relaxed), None);
            drop(sub);
            Ok(report)
        }
        _ => Err(format!("case {case} is not implemented for jsonrpsee").into()),
    }
}

// ---------------------------------------------------------------------- tarpc

/// The tarpc service: one echo method.
#[tarpc::service]
pub trait Bench {
    /// Returns its argument.
    async fn echo(v: EchoMsg) -> EchoMsg;
}

#[derive(Clone)]
struct BenchServer;

impl Bench for BenchServer {
    async fn echo(self, _: tarpc::context::Context, v: EchoMsg) -> EchoMsg {
        v
    }
}

async fn tarpc_server() -> Res<SocketAddr> {
    use tarpc::server::{BaseChannel, Channel};
    use tarpc::tokio_serde::formats::Json;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let transport = tarpc::serde_transport::Transport::from((tcp, Json::default()));
            tokio::spawn(
                BaseChannel::with_defaults(transport)
                    .execute(BenchServer.serve())
                    .for_each(|fut| async move {
                        tokio::spawn(fut);
                    }),
            );
        }
    });
    Ok(addr)
}

async fn tarpc_client(addr: SocketAddr) -> Res<BenchClient> {
    use tarpc::tokio_serde::formats::Json;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let transport = tarpc::serde_transport::Transport::from((tcp, Json::default()));
    Ok(BenchClient::new(tarpc::client::Config::default(), transport).spawn())
}

/// tarpc with JSON over TCP.
pub async fn tarpc(case: &str, opts: Opts) -> Res<Value> {
    let addr = tarpc_server().await?;
    match case {
        "unary1" | "unary64" => {
            let client = tarpc_client(addr).await?;
            let callers = if case == "unary1" { 1 } else { 64 };
            let payload = Arc::new(util::echo_payload());
            util::unary_load(opts, callers, move || {
                let client = client.clone();
                let payload = payload.clone();
                async move {
                    let out = client
                        .echo(tarpc::context::current(), (*payload).clone())
                        .await?;
                    if out != *payload {
                        return Err("echo mismatch".into());
                    }
                    Ok(())
                }
            })
            .await
        }
        "idle_conn" => {
            let first = tarpc_client(addr).await?;
            first
                .echo(tarpc::context::current(), util::echo_payload())
                .await?;
            util::settle().await;
            let before = util::mem();
            let n = opts.connections();
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                let c = tarpc_client(addr).await?;
                c.echo(tarpc::context::current(), util::echo_payload())
                    .await?;
                clients.push(c);
            }
            util::settle().await;
            Ok(util::per_item_report(before, n, "conn"))
        }
        _ => Err(format!("case {case} is not implemented for tarpc").into()),
    }
}
