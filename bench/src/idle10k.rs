//! `idle_conn10k`: 10,000 idle connections on one server, the clients in a
//! process of their own, so each end's memory is read apart.
//!
//! The server process (the case's child) serves strand's RPC stack; the
//! client process (`strand-bench idle-peer`, this binary re-executed) makes
//! one warm connection, then 10,000 more, each making one call, and keeps
//! them open. Both ends report their growth in RSS and live heap per
//! connection. Not part of `--quick`: it needs 10,000 file descriptors per
//! process and takes seconds.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::transport::{DynConnection, Listener};
use strand_rpc_core::{Client, ClientConfig, RpcError};
use strand_tls::{CertificateDer, Identity, ServerVerification};
use strand_transport_quic::{QuicClient, QuicClientConfig, QuicListener, QuicServerConfig};
use strand_transport_ws::{connect, WsClientConfig, WsListener, WsServerConfig};

use crate::util::{self, EchoMsg, Res};

/// Idle connections held.
const CONNECTIONS: usize = 10_000;
/// Connections being set up at once by the client process.
const PARALLEL: usize = 8;
/// The environment variable that hands the server's certificate (DER, hex)
/// to the client process.
const CA_ENV: &str = "STRAND_BENCH_CA_HEX";

/// Raises this process's open-file soft limit to its hard limit; an error
/// says why the case cannot run here.
fn raise_nofile(needed: libc::rlim_t) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err("getrlimit(RLIMIT_NOFILE) failed".into());
        }
        if lim.rlim_max < needed {
            return Err(format!(
                "skipped: the open-file hard limit is {}, {needed} needed (raise it: ulimit -Hn)",
                lim.rlim_max
            ));
        }
        lim.rlim_cur = lim.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err("setrlimit(RLIMIT_NOFILE) failed".into());
        }
    }
    Ok(())
}

fn router() -> Router {
    Router::new().unary(
        "echo",
        |_ctx, p: EchoMsg| async move { Ok::<_, RpcError>(p) },
    )
}

/// Server side: serves `system`, runs the client process, reports both ends.
pub async fn run(system: &str) -> Res<Value> {
    if let Err(why) = raise_nofile((CONNECTIONS + 1024) as libc::rlim_t) {
        eprintln!("idle_conn10k: {why}");
        return Ok(json!({ "skipped": why }));
    }
    let identity = Identity::dev()?;
    let ca_hex = hex(identity.cert_chain()[0].as_ref());
    let server = Server::builder(router()).build();
    let accepted = Arc::new(AtomicU64::new(0));
    let (listener, target): (Box<dyn Listener + Send + Sync>, String) = match system {
        "strand-ws" => {
            let mut config = WsServerConfig::default();
            config.max_connections = CONNECTIONS * 2;
            // The client process connects from one address, a few at once.
            config.max_pending_handshakes_per_ip = PARALLEL * 8;
            let l = WsListener::bind("127.0.0.1:0", config).await?;
            let url = format!("ws://{}/", l.local_addr());
            (Box::new(l), url)
        }
        "strand-quic" => {
            let mut config = QuicServerConfig::new(identity);
            config.max_connections = CONNECTIONS * 2;
            let l = QuicListener::bind("127.0.0.1:0", config).await?;
            let addr = l.local_addr().to_string();
            (Box::new(l), addr)
        }
        other => return Err(format!("case idle_conn10k has no system {other}").into()),
    };
    let acc = accepted.clone();
    tokio::spawn(async move {
        while let Ok(conn) = listener.accept().await {
            server.spawn_connection(conn);
            acc.fetch_add(1, Ordering::Relaxed);
        }
    });

    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["idle-peer", system, &target])
        .env(CA_ENV, ca_hex)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(85), async {
        let mut before = None;
        while let Some(line) = rx.recv().await {
            if line == "warm" {
                util::wait_count(&accepted, 1).await?;
                util::settle().await;
                before = Some(util::mem());
                writeln!(stdin, "go")?;
                stdin.flush()?;
            } else if let Some(json) = line.strip_prefix("result ") {
                let before = before.ok_or("result before warm-up")?;
                util::wait_count(&accepted, CONNECTIONS as u64 + 1).await?;
                util::settle().await;
                let server_end = util::per_item_report(before, CONNECTIONS, "conn");
                let client_end: Value = serde_json::from_str(json)?;
                let both = |k: &str| {
                    server_end[k].as_f64().unwrap_or(0.0) + client_end[k].as_f64().unwrap_or(0.0)
                };
                return Ok::<_, util::BoxError>(json!({
                    "heap_kib_per_conn": both("heap_bytes_per_conn") / 1024.0,
                    "rss_kib_per_conn": both("bytes_per_conn") / 1024.0,
                    "server_heap_bytes_per_conn": server_end["heap_bytes_per_conn"],
                    "client_heap_bytes_per_conn": client_end["heap_bytes_per_conn"],
                    "server_rss_bytes_per_conn": server_end["bytes_per_conn"],
                    "client_rss_bytes_per_conn": client_end["bytes_per_conn"],
                    "count": CONNECTIONS,
                }));
            } else if let Some(e) = line.strip_prefix("error ") {
                return Err(format!("idle-peer: {e}").into());
            }
        }
        Err("idle-peer ended without a result".into())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    outcome.map_err(|_| "idle_conn10k timed out")?
}

/// The client process: `strand-bench idle-peer <system> <url or address>`.
pub fn peer_main(args: &[String]) -> std::process::ExitCode {
    crate::heap::enable();
    let (Some(system), Some(target)) = (args.first(), args.get(1)) else {
        eprintln!("usage: strand-bench idle-peer <strand-ws|strand-quic> <url or address>");
        return std::process::ExitCode::from(2);
    };
    let result = raise_nofile((CONNECTIONS + 1024) as libc::rlim_t)
        .map_err(util::BoxError::from)
        .and_then(|()| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(util::BoxError::from)
        })
        .and_then(|rt| {
            let r = rt.block_on(hold(system, target));
            rt.shutdown_background();
            r
        });
    match result {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            println!("error {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn hold(system: &str, target: &str) -> Res<Value> {
    let ca = std::env::var(CA_ENV)?;
    let ca = CertificateDer::from(unhex(&ca).ok_or("bad certificate hex")?);
    let quic = if system == "strand-quic" {
        Some(Arc::new(QuicClient::bind(
            "127.0.0.1:0".parse()?,
            QuicClientConfig::new(ServerVerification::Ca(vec![ca])),
        )?))
    } else {
        None
    };
    let connect_one = || {
        let quic = quic.clone();
        async move {
            let conn: DynConnection = match &quic {
                Some(q) => Arc::new(q.connect(target.parse()?, "localhost").await?),
                None => Arc::new(connect(target, WsClientConfig::default()).await?),
            };
            let client = Client::from_shared(conn, ClientConfig::default());
            let _: EchoMsg = client.unary("echo", &util::echo_payload()).await?;
            Ok::<_, util::BoxError>(client)
        }
    };
    let warm = connect_one().await?;
    util::settle().await;
    let before = util::mem();
    println!("warm");
    read_stdin_line().await?;
    let clients: Vec<Res<Client>> = futures::stream::iter(0..CONNECTIONS)
        .map(|_| connect_one())
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let clients = clients.into_iter().collect::<Res<Vec<_>>>()?;
    util::settle().await;
    let report = util::per_item_report(before, clients.len(), "conn");
    println!("result {report}");
    // Held until the server measured its end and closed our stdin.
    read_stdin_line().await?;
    drop((warm, clients));
    Ok(report)
}

async fn read_stdin_line() -> Res<String> {
    Ok(tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await??)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
