//! Measures what a `strand serve` process keeps after hostile connections
//! leave (docs/reliability.md, "After the attack"): its resident memory
//! before, during and after 2,000 idle ws connection attempts, then during
//! and after 256 stalled readers (4 connections × 64 `count` streams that
//! are never read). Linux only (reads `/proc/<pid>/status`).
//!
//! Run: `strand serve --ws 127.0.0.1:47011 &`, then
//! `cargo run -p strand-cli --example hostile_rss -- ws://127.0.0.1:47011 <its pid>`.
//! (It lives beside the CLI, not in the workspace's examples, which CI runs
//! without arguments: it needs a server to measure.)

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use strand::ws::{connect, WsClientConfig};
use strand::{Client, ClientConfig};

const IDLE: usize = 2_000;
const STALLED_CONNECTIONS: usize = 4;
const STALLED_STREAMS: usize = 64;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn report(pid: u32, what: &str) {
    println!("{what:<40} {:>8.1} MiB", rss_kib(pid) as f64 / 1024.0);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(pid)) = (args.next(), args.next()) else {
        eprintln!("usage: hostile_rss <ws url of strand serve> <its pid>");
        std::process::exit(2);
    };
    let pid: u32 = pid.parse().expect("a pid");
    report(pid, "before");

    // Twice: a second round that grows again would be a leak, one that
    // reuses the first one's memory is the allocator keeping it.
    for round in 1..=2 {
        let mut idle = Vec::new();
        let mut refused = 0;
        for _ in 0..IDLE {
            match connect(&url, WsClientConfig::default()).await {
                Ok(conn) => idle.push(conn),
                Err(_) => refused += 1,
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        report(
            pid,
            &format!("round {round}: {} idle ({refused} refused)", idle.len()),
        );
        drop(idle);
        tokio::time::sleep(Duration::from_secs(3)).await;
        report(pid, "after they closed");
        tokio::time::sleep(Duration::from_secs(12)).await;
        report(pid, "15 s after they closed");
    }

    let mut clients = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..STALLED_CONNECTIONS {
        let conn = connect(&url, WsClientConfig::default())
            .await
            .expect("connect");
        let client = Client::from_shared(Arc::new(conn), ClientConfig::default());
        for _ in 0..STALLED_STREAMS {
            let call = client
                .server_streaming::<_, Value>("count", &json!({ "n": 1_000_000_000u64 }))
                .await
                .expect("call");
            calls.push(call);
        }
        clients.push(client);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    report(pid, "256 stalled readers");
    drop(calls);
    drop(clients);
    tokio::time::sleep(Duration::from_secs(3)).await;
    report(pid, "after they closed");
    // An allocator that returns memory in the background (jemalloc's
    // decay, 10 s by default) has done so by now.
    tokio::time::sleep(Duration::from_secs(12)).await;
    report(pid, "15 s after they closed");
}
