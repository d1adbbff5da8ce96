//! Soak (docs/reliability.md, "Soak"): one server, a mixed load of every
//! call kind over ws and QUIC on loopback, random message sizes,
//! cancellations, deadlines and reconnects. 60 s by default (CI);
//! `STRAND_FAULTS_FULL=1` runs 10 minutes, `STRAND_SOAK_SECS` any length,
//! and `STRAND_SOAK_CSV=<file>` writes the per-second samples.
//!
//! Asserts zero unexpected errors, no server task or handler left once the
//! load ended, the live heap (counted by the allocator) back within
//! `HEAP_MARGIN` of its figure before the load (the leak check), and the
//! process's RSS above its start by at most `ARENA_FACTOR` times the live
//! heap's peak rise, plus `MEMORY_MARGIN`: glibc keeps in its arenas the
//! pages the load's heap took, fragmented, and never goes back to the
//! figure before the load, so the RSS after a short run says little about
//! a leak; this bounds what is not the allocator's (thread stacks, mapped
//! buffers) against what the heap explains.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use strand::core::message::error_codes;
use strand::{Client, ClientError};
use strand_faults::service::{self, expected_transfer};
use strand_faults::{connect, full, rss_bytes, serve, Carrier, NsRuntime, Timeouts};

/// How far the RSS may end above its start beyond what the heap explains.
const MEMORY_MARGIN: u64 = 16 << 20;

/// The RSS may end above its start by this many times the live heap's peak
/// rise (glibc's arenas, fragmented by the load's mixed sizes): measured at
/// 0.8 to 1.3 times it after 60 s runs (docs/reliability.md, "Soak"), and
/// the RSS's highest point in a 10-minute run, where it stopped growing, at
/// about 1.5 times the 60 s runs' rise.
const ARENA_FACTOR: u64 = 2;

/// How far above its figure before the load the live heap may end.
const HEAP_MARGIN: i64 = HEAP_MARGIN_MIB << 20;
const HEAP_MARGIN_MIB: i64 = 4;

#[global_allocator]
static HEAP: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed, in the whole process (a realloc is
/// counted in these two as its growth or shrinking).
fn live_heap() -> i64 {
    let s = HEAP.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Load tasks (each with its own ws and QUIC client).
const WORKERS: usize = 6;

#[derive(Default)]
struct Figures {
    ops: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
    reconnects: AtomicU64,
}

struct Sample {
    at: f64,
    rss: u64,
    server_tasks: usize,
    client_tasks: usize,
    ops: u64,
}

#[test]
fn soak_mixed_load_leaves_nothing_behind() {
    let secs = std::env::var("STRAND_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full() { 600 } else { 60 });
    let duration = Duration::from_secs(secs);
    let warm_up = (duration / 6).min(Duration::from_secs(60));
    let timeouts = Timeouts {
        idle: Duration::from_secs(30),
        keep_alive: Duration::from_secs(5),
    };
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);

    let server_rt = NsRuntime::start(None);
    let (ws, quic) = server_rt.run(async move {
        (
            serve(Carrier::Ws, loopback, timeouts).await,
            serve(Carrier::Quic, loopback, timeouts).await,
        )
    });
    let server_tasks = || server_rt.handle().metrics().num_alive_tasks();
    let client_rt = NsRuntime::start(None);
    let client_tasks = || client_rt.handle().metrics().num_alive_tasks();
    std::thread::sleep(Duration::from_millis(200));
    let (tasks_at_start, rss_at_start, heap_at_start) = (server_tasks(), rss_bytes(), live_heap());

    let figures = Arc::new(Figures::default());
    let stop = Arc::new(AtomicBool::new(false));
    let addrs = (ws.addr, quic.addr);
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (figures, stop) = (figures.clone(), stop.clone());
            client_rt
                .handle()
                .spawn(worker(i as u64, addrs, timeouts, figures, stop))
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut rss_warm = None;
    let mut heap_peak = heap_at_start;
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        let sample = Sample {
            at: started.elapsed().as_secs_f64(),
            rss: rss_bytes(),
            server_tasks: server_tasks(),
            client_tasks: client_tasks(),
            ops: figures.ops.load(Relaxed),
        };
        heap_peak = heap_peak.max(live_heap());
        if rss_warm.is_none() && started.elapsed() >= warm_up {
            rss_warm = Some(sample.rss);
        }
        samples.push(sample);
    }
    stop.store(true, Relaxed);
    client_rt.run(async move {
        for worker in workers {
            worker.await.expect("worker");
        }
    });
    let load_time = started.elapsed();

    // Everything the load made must go: handlers, calls, connections, tasks.
    let settled = server_rt.run({
        let (ws_tracker, quic_tracker) = (ws.tracker.clone(), quic.tracker.clone());
        async move {
            let a = ws_tracker
                .wait(Duration::from_secs(10), |alive, _| alive == 0)
                .await;
            let b = quic_tracker
                .wait(Duration::from_secs(10), |alive, _| alive == 0)
                .await;
            a && b
        }
    });
    // Closed connections end within moments, except a QUIC connection
    // whose CONNECTION_CLOSE was lost: UDP datagrams do get dropped on
    // loopback under this load (the kernel's `RcvbufErrors` rose by 54 in
    // one run), a client that closed forgets its connection a few round
    // trips later, and the server then lets it go at its idle timeout
    // (docs/reliability.md). A 10 s wait failed once in CI with one
    // connection's two tasks left, most likely that way.
    let settle_start = Instant::now();
    let until = settle_start + timeouts.idle + Duration::from_secs(10);
    while server_tasks() > tasks_at_start && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let settle_time = settle_start.elapsed();
    let tasks_after = server_tasks();
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = rss_bytes();
    let heap_after = live_heap();
    let rss_warm = rss_warm.unwrap_or(rss_at_start);

    let after_warm: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= warm_up.as_secs_f64())
        .collect();
    let rss_slope = slope(&after_warm, |s| s.rss as f64) * 60.0 / 1024.0;
    let task_slope = slope(&after_warm, |s| s.server_tasks as f64) * 60.0;
    let peak = samples.iter().map(|s| s.rss).max().unwrap_or(0);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let f = &figures;
    eprintln!(
        "soak: {:.0} s, {WORKERS} workers, {} operations ({} cancelled, {} timed out as asked, {} reconnects), \
         {} unexpected errors; server tasks {tasks_at_start} at start, {} at the end of the load, {tasks_after} after {:.1} s; \
         RSS {:.1} MiB at start, {:.1} MiB after warm-up ({:.0} s), peak {:.1} MiB, {:.1} MiB after; \
         slope after warm-up: RSS {rss_slope:+.0} KiB/min, server tasks {task_slope:+.2}/min; \
         live heap {:.1} MiB at start, peak {:.1} MiB, {:.1} MiB after",
        load_time.as_secs_f64(),
        f.ops.load(Relaxed),
        f.cancelled.load(Relaxed),
        f.timed_out.load(Relaxed),
        f.reconnects.load(Relaxed),
        f.errors.load(Relaxed),
        samples.last().map_or(0, |s| s.server_tasks),
        settle_time.as_secs_f64(),
        mib(rss_at_start),
        mib(rss_warm),
        warm_up.as_secs_f64(),
        mib(peak),
        mib(rss_after),
        heap_at_start as f64 / (1 << 20) as f64,
        heap_peak as f64 / (1 << 20) as f64,
        heap_after as f64 / (1 << 20) as f64,
    );
    if let Ok(path) = std::env::var("STRAND_SOAK_CSV") {
        let mut csv = String::from("seconds,rss_bytes,server_tasks,client_tasks,operations\n");
        for s in &samples {
            csv.push_str(&format!(
                "{:.1},{},{},{},{}\n",
                s.at, s.rss, s.server_tasks, s.client_tasks, s.ops
            ));
        }
        std::fs::write(&path, csv).unwrap_or_else(|e| panic!("{path}: {e}"));
    }

    assert!(f.ops.load(Relaxed) > 0, "no operation ran");
    assert_eq!(f.errors.load(Relaxed), 0, "unexpected errors");
    assert!(settled, "handlers still alive after the load");
    assert_eq!(
        ws.server.calls_in_flight() + quic.server.calls_in_flight(),
        0
    );
    assert_eq!(
        tasks_after, tasks_at_start,
        "server tasks left after the load"
    );
    let heap_rise = u64::try_from(heap_peak - heap_at_start).unwrap_or(0);
    assert!(
        rss_after <= rss_at_start + ARENA_FACTOR * heap_rise + MEMORY_MARGIN,
        "RSS {:.1} MiB after the load, {:.1} MiB at start: more than {ARENA_FACTOR} times \
         the live heap's peak rise ({:.1} MiB) and {} MiB above it",
        mib(rss_after),
        mib(rss_at_start),
        mib(heap_rise),
        MEMORY_MARGIN >> 20
    );
    assert!(
        heap_after <= heap_at_start + HEAP_MARGIN,
        "live heap {heap_after} B after the load, {heap_at_start} B before it: more than {HEAP_MARGIN_MIB} MiB above"
    );
}

/// Least-squares slope of `y` per second.
fn slope(samples: &[&Sample], y: impl Fn(&Sample) -> f64) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = samples.iter().map(|s| s.at).sum::<f64>() / n;
    let my = samples.iter().map(|s| y(s)).sum::<f64>() / n;
    let num: f64 = samples.iter().map(|s| (s.at - mx) * (y(s) - my)).sum();
    let den: f64 = samples.iter().map(|s| (s.at - mx).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// One load task: random operations on its ws or QUIC client until `stop`.
async fn worker(
    seed: u64,
    (ws, quic): (SocketAddr, SocketAddr),
    timeouts: Timeouts,
    figures: Arc<Figures>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut clients = [
        connect(Carrier::Ws, ws, timeouts).await,
        connect(Carrier::Quic, quic, timeouts).await,
    ];
    while !stop.load(Relaxed) {
        let which = rng.usize(0..2);
        if rng.u32(0..100) < 2 {
            let (carrier, addr) = [(Carrier::Ws, ws), (Carrier::Quic, quic)][which];
            clients[which] = connect(carrier, addr, timeouts).await;
            figures.reconnects.fetch_add(1, Relaxed);
        }
        let op = rng.u32(0..9);
        let outcome = operation(&clients[which], op, &mut rng, &figures).await;
        figures.ops.fetch_add(1, Relaxed);
        if let Err(e) = outcome {
            figures.errors.fetch_add(1, Relaxed);
            eprintln!("soak: operation {op} on {which}: {e}");
        }
    }
}

/// One random operation; `Err` only for what should not happen.
async fn operation(
    client: &Client,
    op: u32,
    rng: &mut fastrand::Rng,
    figures: &Figures,
) -> Result<(), String> {
    let e = |e: ClientError| e.to_string();
    match op {
        0 | 1 => {
            let p = json!({ "s": "z".repeat(rng.usize(0..32 * 1024)) });
            let out: Value = client.unary("echo", &p).await.map_err(e)?;
            check(out["s"] == p["s"], "echo")
        }
        2 => {
            let n = rng.u64(1..40);
            let size = rng.u64(0..4096);
            let mut items = client
                .server_streaming::<_, Value>("count", &json!({ "n": n, "size": size }))
                .await
                .map_err(e)?;
            let mut got = 0;
            while let Some(item) = items.next().await {
                check(item.map_err(e)?["i"] == got, "count order")?;
                got += 1;
            }
            check(got == n, "count length")
        }
        3 => {
            let n = rng.i64(1..40);
            let mut sum = client
                .client_streaming::<Value, Value>("sum")
                .await
                .map_err(e)?;
            for x in 0..n {
                sum.send(&json!({ "x": x })).await.map_err(e)?;
            }
            let out = sum.finish().await.map_err(e)?;
            check(out["sum"] == n * (n - 1) / 2, "sum")
        }
        4 => {
            let (mut xs, mut ys) = client.duplex::<Value, Value>("double").await.map_err(e)?;
            for x in 0..rng.i64(1..20) {
                xs.send(&json!({ "x": x })).await.map_err(e)?;
                let y = ys.next().await.ok_or("duplex ended")?.map_err(e)?;
                check(y["y"] == x * 2, "double")?;
            }
            xs.finish().await.map_err(e)?;
            check(ys.next().await.is_none(), "duplex end")
        }
        5 => {
            let (n, seed) = (rng.usize(0..256 * 1024), rng.u64(..));
            let out = service::raw_upload(client, n, seed).await.map_err(e)?;
            check(out == expected_transfer(n, seed), "raw upload")
        }
        6 => {
            let (n, seed) = (rng.usize(0..256 * 1024), rng.u64(..));
            let out = service::raw_download(client, n, seed).await.map_err(e)?;
            check(out == expected_transfer(n, seed), "raw download")
        }
        7 => {
            // Cancellation: the caller drops a running stream.
            let mut items = client
                .server_streaming::<_, Value>("hang_stream", &json!({}))
                .await
                .map_err(e)?;
            items.next().await.ok_or("no first item")?.map_err(e)?;
            drop(items);
            figures.cancelled.fetch_add(1, Relaxed);
            Ok(())
        }
        _ => {
            // A deadline: the call must time out (by the caller's clock, or
            // the server's answer that the deadline passed), and nothing else.
            let timeout = Duration::from_millis(rng.u64(20..200));
            match client
                .call("hang")
                .timeout(timeout)
                .unary::<_, Value>(&json!({}))
                .await
            {
                Err(ClientError::TimedOut(_)) => {
                    figures.timed_out.fetch_add(1, Relaxed);
                    Ok(())
                }
                Err(err) if err.code() == Some(error_codes::TIMED_OUT) => {
                    figures.timed_out.fetch_add(1, Relaxed);
                    Ok(())
                }
                other => Err(format!("a call past its deadline gave {other:?}")),
            }
        }
    }
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("wrong answer: {what}"))
    }
}
