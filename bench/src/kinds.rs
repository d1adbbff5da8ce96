//! strand's round-2 call cases: `call_start` (time to the first response of
//! each call kind) and `loaded_latency` (unary p99 beside a bulk stream on the
//! same connection).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use strand_rpc_core::server::{Incoming, RawBody, RawReader, Router};
use strand_rpc_core::{Client, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{self, EchoMsg, Opts, Res, CHUNK};

/// Bytes a raw call of `call_start` writes (and waits for the first of).
const RAW_PROBE: usize = 1;

/// The call kinds `call_start` opens, in report order. `raw_pipelined` is
/// a raw call whose bytes go before its leading response is read.
pub const KINDS: [&str; 6] = [
    "unary",
    "server",
    "client",
    "duplex",
    "raw",
    "raw_pipelined",
];

/// Adds the methods of the round-2 cases: one per call kind, and `bulk`
/// (server streaming of 64 KiB string items, as many as asked for).
pub fn add_methods(router: Router) -> Router {
    let big = "y".repeat(CHUNK - 2);
    router
        .client_streaming("sum", |_ctx, input: Incoming<u64>| async move {
            let mut input = input;
            let mut sum = 0u64;
            while let Some(x) = input.next().await {
                sum = sum.wrapping_add(x?);
            }
            Ok::<_, RpcError>(sum)
        })
        .duplex("chat", |_ctx, input: Incoming<u64>| input)
        .raw("rawecho", |_ctx, _p: Value, reader: RawReader| async move {
            Ok::<_, RpcError>((true, RawBody::from_reader(reader)))
        })
        .server_streaming("bulk", move |_ctx, n: u64| {
            let big = big.clone();
            futures::stream::iter(0..n).map(move |_| Ok::<_, RpcError>(big.clone()))
        })
}

/// Opens one call of `kind` and returns the time from its start to its first
/// response item (unary and client streaming: the result; raw: the first
/// byte of the echo). The call is then wound down, outside the timed part.
async fn first_response(client: &Client, kind: &str) -> Res<Duration> {
    let t = Instant::now();
    match kind {
        "unary" => {
            let _: EchoMsg = client.unary("echo", &util::echo_payload()).await?;
            Ok(t.elapsed())
        }
        "server" => {
            let mut items = client.server_streaming::<_, String>("items", &1u64).await?;
            items.next().await.ok_or("no item")??;
            let took = t.elapsed();
            while items.next().await.is_some() {}
            Ok(took)
        }
        "client" => {
            let mut call = client.client_streaming::<u64, u64>("sum").await?;
            call.send(&1).await?;
            let sum = call.finish().await?;
            if sum != 1 {
                return Err(format!("sum {sum}").into());
            }
            Ok(t.elapsed())
        }
        "duplex" => {
            let (mut sink, mut replies) = client.duplex::<u64, u64>("chat").await?;
            sink.send(&7).await?;
            replies.next().await.ok_or("no reply")??;
            let took = t.elapsed();
            sink.finish().await?;
            while replies.next().await.is_some() {}
            Ok(took)
        }
        "raw" => {
            let mut call = client.raw::<_, bool>("rawecho", &json!({})).await?;
            call.writer.write_all(&[b'x'; RAW_PROBE]).await?;
            let mut b = [0u8; 1];
            call.reader.read_exact(&mut b).await?;
            let took = t.elapsed();
            call.writer.shutdown().await?;
            let mut rest = Vec::new();
            call.reader.read_to_end(&mut rest).await?;
            Ok(took)
        }
        "raw_pipelined" => {
            let mut call = client
                .raw_pipelined::<_, bool>("rawecho", &json!({}))
                .await?;
            call.writer.write_all(&[b'x'; RAW_PROBE]).await?;
            let mut response = call.response.leading().await?;
            let mut b = [0u8; 1];
            response.reader.read_exact(&mut b).await?;
            let took = t.elapsed();
            call.writer.shutdown().await?;
            let mut rest = Vec::new();
            response.reader.read_to_end(&mut rest).await?;
            Ok(took)
        }
        other => Err(format!("unknown call kind {other}").into()),
    }
}

/// `call_start`: per call kind, p50 and p99 of the time to the first
/// response, calls opened one after another on one connection.
pub async fn call_start(client: &Client, opts: Opts) -> Res<Value> {
    let mut out = json!({});
    let mut worst = 0.0f64;
    for kind in KINDS {
        let warm_end = Instant::now() + opts.warmup();
        while Instant::now() < warm_end {
            first_response(client, kind).await?;
        }
        let end = Instant::now() + opts.duration();
        let mut lat = Vec::new();
        while Instant::now() < end {
            lat.push(first_response(client, kind).await?.as_nanos() as u64);
        }
        lat.sort_unstable();
        let p50 = util::pct_us(&lat, 50.0);
        worst = worst.max(p50);
        out[format!("{kind}_p50_us")] = json!(p50);
        out[format!("{kind}_p99_us")] = json!(util::pct_us(&lat, 99.0));
        out[format!("{kind}_calls")] = json!(lat.len());
    }
    out["worst_p50_us"] = json!(worst);
    Ok(out)
}

/// `loaded_latency` over any system: `unary` makes one call, `bulk` starts
/// a stream that pushes at full speed until `stop` is set, counting bytes.
pub async fn loaded_latency<U, UF, B, BF>(opts: Opts, unary: U, bulk: B) -> Res<Value>
where
    U: Fn() -> UF,
    UF: std::future::Future<Output = Res<()>>,
    B: FnOnce(Arc<AtomicBool>, Arc<AtomicU64>) -> BF,
    BF: std::future::Future<Output = Res<()>> + Send + 'static,
{
    let unloaded = util::sequential_latency(opts, &unary).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let pusher = tokio::spawn(bulk(stop.clone(), bytes.clone()));
    // The bulk stream must be flowing before the loaded measurement starts.
    let started = Instant::now();
    while bytes.load(Ordering::Relaxed) == 0 {
        if started.elapsed() > Duration::from_secs(10) || pusher.is_finished() {
            return Err("the bulk stream did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = bytes.load(Ordering::Relaxed);
    let t = Instant::now();
    let loaded = util::sequential_latency(opts, &unary).await;
    let bulk_mb_per_s =
        (bytes.load(Ordering::Relaxed) - before) as f64 / t.elapsed().as_secs_f64() / 1e6;
    stop.store(true, Ordering::Relaxed);
    if pusher.is_finished() {
        pusher.await??;
        return Err("the bulk stream ended during the measurement".into());
    }
    pusher.abort();
    let loaded = loaded?;
    let (u99, l99) = (
        unloaded["p99_us"].as_f64().unwrap_or(0.0),
        loaded["p99_us"].as_f64().unwrap_or(0.0),
    );
    Ok(json!({
        "p50_unloaded_us": unloaded["p50_us"],
        "p99_unloaded_us": u99,
        "p50_loaded_us": loaded["p50_us"],
        "p99_loaded_us": l99,
        "p99_ratio": if u99 > 0.0 { l99 / u99 } else { 0.0 },
        "bulk_mb_per_s": bulk_mb_per_s,
        "calls": loaded["opens"],
    }))
}

/// The bulk side of `loaded_latency` for strand: one `bulk` call read as
/// fast as it comes.
pub async fn strand_bulk(client: Client, stop: Arc<AtomicBool>, bytes: Arc<AtomicU64>) -> Res<()> {
    let mut items = client
        .server_streaming::<_, String>("bulk", &u64::MAX)
        .await?;
    while !stop.load(Ordering::Relaxed) {
        let item = items.next().await.ok_or("bulk stream ended")??;
        bytes.fetch_add(item.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}
