//! `strand-bench`: strand over ws, quic and memory side by side with raw
//! tokio-tungstenite, raw quinn, jsonrpsee and tarpc, on loopback.
//!
//! The parent re-executes itself once per (case, system) —
//! `strand-bench case <case> <system> [--quick]` — so every measurement
//! runs in a fresh process (clean RSS, no warm caches from another system);
//! `--measure-ms N` sets a timed case's measured time (`instructions.sh`
//! uses it). Each child prints one JSON line; the parent prints a table
//! with the target ratios and writes JSON, Markdown and an SVG chart when
//! asked.

mod connect_tls;
mod heap;
mod idle10k;
mod js_peer;
mod kinds;
mod peers;
mod report;
mod strand;
mod util;

use std::io::Read;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::util::Opts;

#[global_allocator]
static ALLOC: heap::Counting = heap::Counting;

/// Every case and the systems that run it.
pub const MATRIX: &[(&str, &[&str])] = &[
    (
        "unary1",
        &[
            "strand-ws",
            "strand-wss",
            "strand-wss-h2",
            "strand-quic",
            "strand-mem",
            "quinn",
            "jsonrpsee",
            "tarpc",
        ],
    ),
    (
        "unary64",
        &[
            "strand-ws",
            "strand-wss",
            "strand-wss-h2",
            "strand-quic",
            "strand-mem",
            "quinn",
            "jsonrpsee",
            "tarpc",
        ],
    ),
    (
        "throughput",
        &[
            "strand-ws",
            "strand-wss",
            "strand-wss-h2",
            "strand-quic",
            "strand-mem",
            "tungstenite",
            "quinn",
        ],
    ),
    (
        "stream_items",
        &["strand-ws", "strand-quic", "strand-mem", "jsonrpsee"],
    ),
    (
        "open_latency",
        &[
            "strand-ws",
            "strand-quic",
            "strand-mem",
            "quinn",
            "jsonrpsee",
        ],
    ),
    // Each call kind's time to its first response.
    ("call_start", &["strand-ws", "strand-quic"]),
    // Unary p99 while a bulk stream shares the connection.
    ("loaded_latency", &["strand-ws", "strand-quic", "jsonrpsee"]),
    // A JS-like client (no window advertisement) in a process of its own.
    // `-node`: the real @matrixai/ws client in Node (tests/js's packages).
    (
        "js_client",
        &["strand-ws", "mux-echo", "strand-ws-node", "mux-echo-node"],
    ),
    // New TLS connections per second.
    (
        "connect_tls",
        &["strand-ws", "tungstenite", "strand-quic", "quinn"],
    ),
    (
        "idle_conn",
        &[
            "strand-ws",
            "strand-quic",
            "tungstenite",
            "quinn",
            "jsonrpsee",
            "tarpc",
        ],
    ),
    // 10,000 idle connections, clients in a process of their own. Not in
    // --quick: it needs 10,000 file descriptors per process and takes seconds.
    ("idle_conn10k", &["strand-ws", "strand-quic"]),
    (
        "idle_stream",
        &["strand-ws", "strand-quic", "strand-mem", "quinn"],
    ),
    (
        "stalled",
        &[
            "strand-ws",
            "strand-quic",
            "strand-mem",
            "tungstenite",
            "quinn",
            "jsonrpsee",
        ],
    ),
];

/// Cases the CI smoke run (`--quick`) leaves out, and why: `idle_conn10k`
/// needs 10,000 file descriptors in each of two processes and tens of
/// seconds to set its connections up.
const NOT_QUICK: &[&str] = &["idle_conn10k"];

const USAGE: &str =
    "usage: strand-bench [--quick] [--repeat N] [--json FILE] [--markdown FILE] [--svg FILE] \
[--case NAME]... [--system NAME]...\n       strand-bench case <case> <system> [--quick] [--measure-ms N]\n       strand-bench js-peer <url> <warmup ms> <measure ms>\n       strand-bench idle-peer <system> <url or address>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("case") {
        return child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("js-peer") {
        return js_peer::peer_main(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("idle-peer") {
        return idle10k::peer_main(&args[1..]);
    }
    match parent(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strand-bench: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn child(args: &[String]) -> ExitCode {
    let (Some(case), Some(system)) = (args.first(), args.get(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let measure = match args.iter().position(|a| a == "--measure-ms") {
        None => None,
        Some(i) => match args.get(i + 1).and_then(|ms| ms.parse().ok()) {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => {
                eprintln!("--measure-ms takes a number of milliseconds\n{USAGE}");
                return ExitCode::from(2);
            }
        },
    };
    let opts = Opts {
        quick: args.iter().any(|a| a == "--quick"),
        measure,
    };
    if ["idle_conn", "idle_conn10k", "idle_stream", "stalled"].contains(&case.as_str()) {
        heap::enable();
    }
    #[cfg(feature = "metrics")]
    if let Err(e) = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        println!("{}", json!({ "error": format!("metrics recorder: {e}") }));
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("{}", json!({ "error": format!("runtime: {e}") }));
            return ExitCode::FAILURE;
        }
    };
    // The case runs as a task on the runtime's workers, as an application's
    // code does; awaited from `block_on`'s own thread instead, each response
    // would wake a third thread on a 2-core machine (tens of microseconds a
    // call, milliseconds beside busy workers), which no transport causes.
    let (case, system) = (case.clone(), system.clone());
    let task = runtime.spawn(async move {
        let (case, system) = (case.as_str(), system.as_str());
        match case {
            "js_client" => return js_peer::run(system, opts).await,
            "connect_tls" => return connect_tls::run(system, opts).await,
            "idle_conn10k" => return idle10k::run(system).await,
            _ => {}
        }
        match system {
            "strand-ws" => strand::run(strand::Kind::Ws, case, opts).await,
            "strand-wss" => strand::run(strand::Kind::Wss, case, opts).await,
            "strand-wss-h2" => strand::run(strand::Kind::WssH2, case, opts).await,
            "strand-quic" => strand::run(strand::Kind::Quic, case, opts).await,
            "strand-mem" => strand::run(strand::Kind::Memory, case, opts).await,
            "tungstenite" => peers::tungstenite(case, opts).await,
            "quinn" => peers::quinn(case, opts).await,
            "jsonrpsee" => peers::jsonrpsee(case, opts).await,
            "tarpc" => peers::tarpc(case, opts).await,
            other => Err(format!("unknown system {other}").into()),
        }
    });
    let result = runtime
        .block_on(task)
        .unwrap_or_else(|e| Err(format!("the case's task failed: {e}").into()));
    let code = match &result {
        Ok(metrics) => {
            println!("{}", json!({ "metrics": metrics }));
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", json!({ "error": e.to_string() }));
            ExitCode::FAILURE
        }
    };
    // Do not wait for background tasks (servers, drivers) to wind down.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

fn parent(args: &[String]) -> Result<ExitCode, String> {
    let mut quick = false;
    let mut repeat = 1usize;
    let mut json_path = None;
    let mut md_path = None;
    let mut svg_path = None;
    let mut only_cases = Vec::new();
    let mut only_systems = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => quick = true,
            "--repeat" => {
                repeat = value()?
                    .parse()
                    .map_err(|_| "--repeat needs a positive number".to_string())?;
                if repeat == 0 {
                    return Err("--repeat needs a positive number".into());
                }
            }
            "--json" => json_path = Some(value()?),
            "--markdown" => md_path = Some(value()?),
            "--svg" => svg_path = Some(value()?),
            "--case" => only_cases.push(value()?),
            "--system" => only_systems.push(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let limit = if quick {
        Duration::from_secs(15)
    } else {
        Duration::from_secs(90)
    };
    let started = Instant::now();
    let mut results = Vec::new();
    for (case, systems) in MATRIX {
        if !only_cases.is_empty() && !only_cases.iter().any(|c| c == case) {
            continue;
        }
        if quick && NOT_QUICK.contains(case) {
            continue;
        }
        let systems: Vec<&str> = systems
            .iter()
            .copied()
            .filter(|s| only_systems.is_empty() || only_systems.iter().any(|o| o == s))
            .collect();
        // Repeats go round-robin over the systems, so load from elsewhere on
        // the machine spreads over all of them instead of hitting one.
        let mut runs: Vec<Vec<Result<Value, String>>> = vec![Vec::new(); systems.len()];
        for rep in 0..repeat {
            for (i, system) in systems.iter().enumerate() {
                let t = Instant::now();
                let mut cmd = Command::new(&exe);
                cmd.args(["case", case, system]);
                if quick {
                    cmd.arg("--quick");
                }
                let outcome = run_child(cmd, limit);
                eprintln!(
                    "  {case:<13} {system:<12} #{} {:>6.1}s  {}",
                    rep + 1,
                    t.elapsed().as_secs_f64(),
                    match &outcome {
                        Ok(_) => "ok".to_string(),
                        Err(e) => format!("FAILED: {e}"),
                    }
                );
                runs[i].push(outcome);
            }
        }
        for (system, outcomes) in systems.iter().zip(runs) {
            results.push(report::median_result(case, system, outcomes));
        }
    }
    let targets = report::targets(&results);
    let doc = json!({
        "quick": quick,
        "repeat": repeat,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "elapsed_s": started.elapsed().as_secs_f64(),
        "results": results,
        "targets": targets,
    });
    let table = report::markdown(&doc);
    println!("{table}");
    if let Some(p) = json_path {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(&p, text + "\n").map_err(|e| format!("{p}: {e}"))?;
    }
    if let Some(p) = md_path {
        std::fs::write(&p, table).map_err(|e| format!("{p}: {e}"))?;
    }
    if let Some(p) = svg_path {
        std::fs::write(&p, report::svg(&doc)).map_err(|e| format!("{p}: {e}"))?;
    }
    // A failed case is a broken harness or a broken system: say so in the exit code.
    let failed = doc["results"]
        .as_array()
        .map(|r| r.iter().filter(|r| r.get("error").is_some()).count())
        .unwrap_or(0);
    if failed > 0 {
        eprintln!("strand-bench: {failed} case(s) failed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one child, killing it after `limit`; returns its metrics.
fn run_child(mut cmd: Command, limit: Duration) -> Result<Value, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("wait: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!("timed out after {}s (hang)", limit.as_secs()));
    };
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("no result line (exit {status})"))?;
    let v: Value = serde_json::from_str(line).map_err(|e| format!("bad result line: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(e.as_str().unwrap_or("error").to_string());
    }
    v.get("metrics").cloned().ok_or_else(|| "no metrics".into())
}
