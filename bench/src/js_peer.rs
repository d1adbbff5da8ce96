//! `js_client`: a server driven by a client that behaves like a JS peer, in
//! a separate process.
//!
//! The client (`strand-bench js-peer`, this binary re-executed) speaks the
//! WebSocket mux without strand's window advertisement, exactly like
//! @matrixai/ws: every stream it opens starts with an ACK round trip. It runs
//! on one thread (a JS peer has one event loop) and makes unary calls the way
//! @matrixai/rpc does: open a stream, write one JSON-RPC request, close the
//! writable side, read the reply to its end. 64 callers share one connection.
//!
//! Two servers are driven identically: `strand-ws` (strand's `Server` with the
//! echo method) and `mux-echo` (the same mux with a trivial byte echo and no
//! RPC layer). The server process reports its own CPU time per call over the
//! measured window (/proc/self/stat), so the RPC layer's cost shows apart
//! from the client's.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::transport::{Listener, RecvStream as _};
use strand_rpc_core::RpcError;
use strand_tls::{Identity, ServerTls};
use strand_transport_ws::{connect, WsClientConfig, WsListener, WsServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{self, EchoMsg, Opts, Res};

/// Concurrent callers on the one connection.
const CALLERS: usize = 64;

/// The request every call writes: what @matrixai/rpc's unary caller sends.
const REQUEST: &[u8] =
    br#"{"jsonrpc":"2.0","method":"echo","params":{"msg":"hello world","n":42},"id":1}"#;

/// Server side of the case: serves `system` on loopback, runs the JS-like
/// client as a child process and measures this process's CPU meanwhile.
pub async fn run(system: &str, opts: Opts) -> Res<Value> {
    // `-node` systems: the same servers over wss (@matrixai/ws speaks only
    // TLS), driven by the real @matrixai/ws in Node.
    let (server_kind, node) = match system.strip_suffix("-node") {
        Some(kind) => (kind, true),
        None => (system, false),
    };
    let js_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js");
    if node && !js_dir.join("node_modules/@matrixai/ws").exists() {
        let why = format!(
            "skipped: @matrixai/ws is not installed (npm install in {})",
            js_dir.display()
        );
        eprintln!("js_client {system}: {why}");
        return Ok(json!({ "skipped": why }));
    }
    let identity = Identity::dev()?;
    let mut config = WsServerConfig::default();
    if node {
        config = config.with_tls(ServerTls::new(identity.clone()));
    }
    let listener = WsListener::bind("127.0.0.1:0", config).await?;
    let addr = listener.local_addr();
    let url = format!("ws://{addr}/");
    match server_kind {
        "strand-ws" => {
            let router =
                Router::new().unary(
                    "echo",
                    |_ctx, p: EchoMsg| async move { Ok::<_, RpcError>(p) },
                );
            let server = Server::builder(router).build();
            tokio::spawn(async move {
                while let Ok(conn) = Listener::accept(&listener).await {
                    server.spawn_connection(conn);
                }
            });
        }
        "mux-echo" => {
            tokio::spawn(async move {
                while let Ok(conn) = Listener::accept(&listener).await {
                    tokio::spawn(async move {
                        while let Ok(st) = conn.accept_stream().await {
                            util::run_or_spawn(echo_once(st)).await;
                        }
                    });
                }
            });
        }
        other => return Err(format!("case js_client has no system {other}").into()),
    }
    let (warm, dur) = (
        opts.warmup().as_millis().to_string(),
        opts.duration().as_millis().to_string(),
    );
    let mut child = if node {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("js/js-client.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(&js_dir)
            .args([&addr.port().to_string(), &CALLERS.to_string(), &warm, &dur])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        writeln!(stdin, "{}", json!({ "ca": identity.cert_pem() }))?;
        child
    } else {
        Command::new(std::env::current_exe()?)
            .args(["js-peer", &url, &warm, &dur])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?
    };
    let stdout = child.stdout.take().ok_or("no stdout")?;
    // The child's lines arrive on a thread of their own; the server keeps
    // running on the runtime meanwhile.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let at = (Instant::now(), cpu_ticks());
            if tx.send((line, at)).is_err() {
                break;
            }
        }
    });
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        let mut start = None;
        while let Some((line, at)) = rx.recv().await {
            if line == "start" {
                start = Some(at);
            } else if let Some(json) = line.strip_prefix("result ") {
                let (t0, cpu0) = start.ok_or("result before start")?;
                let (t1, cpu1) = at;
                let mut v: Value = serde_json::from_str(json)?;
                let calls = v["calls"].as_f64().unwrap_or(0.0);
                let cpu_s = cpu1.saturating_sub(cpu0) as f64 / TICKS_PER_S;
                let wall = t1.duration_since(t0).as_secs_f64();
                v["server_cpu_us_per_call"] = json!(cpu_s * 1e6 / calls.max(1.0));
                v["server_cpu_pct"] = json!(100.0 * cpu_s / wall);
                return Ok::<_, util::BoxError>(v);
            } else if let Some(e) = line.strip_prefix("error ") {
                return Err(format!("js-peer: {e}").into());
            }
        }
        Err("js-peer ended without a result".into())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    outcome.map_err(|_| "js-peer timed out")?
}

/// The bare server's stream: a unary server's pattern without the RPC
/// layer. The request's first chunk (all of it on loopback) goes back at
/// once, the reply side closes and the stream is dropped, as strand's server
/// does after a unary answer. Zero-copy reads, as strand's server reads.
async fn echo_once(st: strand_rpc_core::transport::Stream) {
    let (mut send, mut recv) = st.split();
    let first = std::future::poll_fn(|cx| recv.poll_read_chunk(cx, 64 * 1024)).await;
    if let Ok(Some(chunk)) = first {
        if send.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = send.shutdown().await;
}

/// /proc's clock ticks (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// User + system CPU time of this process so far, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th and stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// The client process: `strand-bench js-peer <url> <warmup ms> <measure ms>`.
/// Prints `start` after the warm-up and `result {json}` at the end (or
/// `error <reason>`).
pub fn peer_main(args: &[String]) -> std::process::ExitCode {
    let parsed = (|| {
        let url = args.first()?.clone();
        let warm = args.get(1)?.parse().ok()?;
        let dur = args.get(2)?.parse().ok()?;
        Some((url, Duration::from_millis(warm), Duration::from_millis(dur)))
    })();
    let Some((url, warm, dur)) = parsed else {
        eprintln!("usage: strand-bench js-peer <url> <warmup ms> <measure ms>");
        return std::process::ExitCode::from(2);
    };
    // One thread, as a JS peer has one event loop.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("error runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(drive(&url, warm, dur));
    let mut out = std::io::stdout().lock();
    match result {
        Ok(v) => {
            let _ = writeln!(out, "result {v}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(out, "error {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn drive(url: &str, warm: Duration, dur: Duration) -> Res<Value> {
    // No window advertisement: the server treats this peer as a JS one.
    let conn =
        Arc::new(connect(url, WsClientConfig::default().with_advertise_window(false)).await?);
    let call = move || {
        let conn = conn.clone();
        async move {
            let (mut send, mut recv) = conn.open_stream().await?.split();
            send.write_all(REQUEST).await?;
            send.shutdown().await?;
            let mut reply = Vec::with_capacity(128);
            recv.read_to_end(&mut reply).await?;
            if !reply.windows(11).any(|w| w == b"hello world") {
                return Err(format!("bad reply {}", String::from_utf8_lossy(&reply)).into());
            }
            Ok(())
        }
    };
    util::run_callers(CALLERS, warm, call.clone()).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "start")?;
        out.flush()?;
    }
    let start = Instant::now();
    let mut lat = util::run_callers(CALLERS, dur, call).await?;
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok(json!({
        "calls_per_s": lat.len() as f64 / secs,
        "p50_us": util::pct_us(&lat, 50.0),
        "p99_us": util::pct_us(&lat, 99.0),
        "calls": lat.len(),
    }))
}
