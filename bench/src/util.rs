//! Shared measurement helpers: options, RSS, percentiles and the generic
//! drivers (unary load, sequential latency, one-stream push, stalled push).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A boxed error that carries a message; every case returns it on failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The result of a case or a step of one.
pub type Res<T> = Result<T, BoxError>;

/// Bytes in one write of the throughput case.
pub const CHUNK: usize = 64 * 1024;
/// Bytes pushed at a stalled consumer.
pub const STALL_TOTAL: usize = 8 * 1024 * 1024;
/// Size of one streamed item's payload (a JSON string of this many characters).
pub const ITEM_LEN: usize = 64;
/// Bytes the open-latency case writes and gets echoed on each stream: one,
/// as in round 1. (For a while 16: the ws mux's flood guard then counted
/// DATA messages under 16 bytes and closed back-to-back 1-byte opens 1008;
/// it counts only empty ones now.)
pub const OPEN_PROBE: usize = 1;
/// How long a push may make no progress before the consumer counts as stalled.
pub const STALL_QUIET: Duration = Duration::from_millis(300);

/// Options every case sees.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// The short run used by CI: shorter durations, fewer connections and streams.
    pub quick: bool,
    /// The measured time of a timed case, when given (`--measure-ms`):
    /// `bench/instructions.sh` runs a case twice under callgrind for
    /// different lengths and divides the difference.
    pub measure: Option<Duration>,
}

impl Opts {
    /// Measured time of a timed case.
    pub fn duration(&self) -> Duration {
        if let Some(measure) = self.measure {
            measure
        } else if self.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(2)
        }
    }

    /// Warm-up before a timed case.
    pub fn warmup(&self) -> Duration {
        if self.quick {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(300)
        }
    }

    /// Connections of the idle-connection case.
    pub fn connections(&self) -> usize {
        if self.quick {
            100
        } else {
            1000
        }
    }

    /// Streams of the idle-stream case.
    pub fn streams(&self) -> usize {
        if self.quick {
            1000
        } else {
            10_000
        }
    }
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A memory reading: resident set size and live heap bytes.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    /// VmRSS, bytes.
    pub rss: u64,
    /// Live heap bytes (counting allocator).
    pub heap: i64,
}

/// Reads RSS and the live heap now.
pub fn mem() -> Mem {
    Mem {
        rss: rss(),
        heap: crate::heap::live(),
    }
}

/// Resident set size now, in bytes.
pub fn rss() -> u64 {
    status_kib("VmRSS:") * 1024
}

/// Peak resident set size so far, in bytes.
pub fn peak_rss() -> u64 {
    status_kib("VmHWM:") * 1024
}

/// The typed message every unary case echoes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EchoMsg {
    /// A short text.
    pub msg: String,
    /// A number.
    pub n: u64,
}

/// The echo payload of the unary cases.
pub fn echo_payload() -> EchoMsg {
    EchoMsg {
        msg: "hello world".into(),
        n: 42,
    }
}

/// A streamed item: a string of [`ITEM_LEN`] characters.
pub fn item() -> String {
    "x".repeat(ITEM_LEN)
}

/// Percentile `p` (0..=100) of sorted nanoseconds, in microseconds.
pub fn pct_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Runs `callers` concurrent loops of `call` for the case duration (after a
/// warm-up) and reports calls/s, p50 and p99.
pub async fn unary_load<F, Fut>(opts: Opts, callers: usize, call: F) -> Res<Value>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Res<()>> + Send + 'static,
{
    // Warm-up with the same concurrency.
    run_callers(callers, opts.warmup(), call.clone()).await?;
    let start = Instant::now();
    let mut lat = run_callers(callers, opts.duration(), call).await?;
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    Ok(json!({
        "calls_per_s": lat.len() as f64 / secs,
        "p50_us": pct_us(&lat, 50.0),
        "p99_us": pct_us(&lat, 99.0),
        "calls": lat.len(),
    }))
}

/// Runs `callers` concurrent loops of `call` for `dur`; returns every call's
/// time in nanoseconds.
pub async fn run_callers<F, Fut>(callers: usize, dur: Duration, call: F) -> Res<Vec<u64>>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Res<()>> + Send + 'static,
{
    let end = Instant::now() + dur;
    let mut tasks = Vec::with_capacity(callers);
    for _ in 0..callers {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(4096);
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                call().await?;
                lat.push(t.elapsed().as_nanos() as u64);
            }
            Ok::<_, BoxError>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

/// Runs `op` back to back for the case duration and reports p50/p99 of its time.
pub async fn sequential_latency<F, Fut>(opts: Opts, op: F) -> Res<Value>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Res<()>>,
{
    let warm_end = Instant::now() + opts.warmup();
    while Instant::now() < warm_end {
        op().await?;
    }
    let end = Instant::now() + opts.duration();
    let mut lat = Vec::new();
    loop {
        let t = Instant::now();
        if t >= end {
            break;
        }
        op().await?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    Ok(json!({
        "p50_us": pct_us(&lat, 50.0),
        "p99_us": pct_us(&lat, 99.0),
        "opens": lat.len(),
    }))
}

/// Server side of the throughput case: counts what arrives, reading with
/// strand's zero-copy chunk reads (`RecvStream::poll_read_chunk`) as the raw
/// peers read owned messages or chunks, then answers the count.
pub async fn count_chunks_and_reply<W>(
    mut recv: strand_rpc_core::transport::BoxRecvStream,
    mut send: W,
) -> Res<()>
where
    W: AsyncWrite + Unpin,
{
    use strand_rpc_core::transport::RecvStream as _;
    let mut total = 0u64;
    while let Some(chunk) = std::future::poll_fn(|cx| recv.poll_read_chunk(cx, CHUNK)).await? {
        total += chunk.len() as u64;
    }
    send.write_all(&total.to_be_bytes()).await?;
    send.shutdown().await?;
    Ok(())
}

/// Client side of the throughput case: 64 KiB writes for `dur`, finish, wait
/// for the server's count. Returns (bytes, seconds).
pub async fn push_for<R, W>(mut send: W, mut recv: R, dur: Duration) -> Res<(u64, f64)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let chunk = vec![7u8; CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < dur {
        send.write_all(&chunk).await?;
        sent += CHUNK as u64;
    }
    send.shutdown().await?;
    let mut count = [0u8; 8];
    recv.read_exact(&mut count).await?;
    let secs = start.elapsed().as_secs_f64();
    let got = u64::from_be_bytes(count);
    if got != sent {
        return Err(format!("server counted {got} bytes, client sent {sent}").into());
    }
    Ok((sent, secs))
}

/// The throughput case over any byte stream, with a warm-up stream first:
/// `open` yields a fresh (send, recv) pair whose peer runs [`count_chunks_and_reply`] or its raw equivalent.
pub async fn throughput<R, W, F, Fut>(opts: Opts, open: F) -> Res<Value>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: Fn() -> Fut,
    Fut: Future<Output = Res<(W, R)>>,
{
    let (s, r) = open().await?;
    push_for(s, r, opts.warmup()).await?;
    let (s, r) = open().await?;
    let (bytes, secs) = push_for(s, r, opts.duration()).await?;
    Ok(json!({ "mb_per_s": bytes as f64 / secs / 1e6, "bytes": bytes }))
}

/// Pushes up to [`STALL_TOTAL`] bytes in 64 KiB writes of `chunk` (the
/// producer's source, made before the measurement: what the stream holds is
/// measured, not the data it is fed from) at a reader that never reads;
/// returns once everything was taken or no write completed for
/// [`STALL_QUIET`]. Counts accepted bytes into `progress`.
pub async fn push_until_stalled<W: AsyncWrite + Unpin>(
    mut send: W,
    chunk: bytes::Bytes,
    progress: Arc<AtomicU64>,
) -> W {
    let mut sent = 0;
    while sent < STALL_TOTAL {
        match tokio::time::timeout(STALL_QUIET, send.write_all(&chunk)).await {
            Ok(Ok(())) => {
                sent += CHUNK;
                progress.fetch_add(CHUNK as u64, Ordering::Relaxed);
            }
            _ => break,
        }
    }
    send
}

/// Waits until `progress` stopped moving for [`STALL_QUIET`] (or reached the total).
pub async fn wait_stalled(progress: &AtomicU64, total: u64) {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(STALL_QUIET).await;
        let now = progress.load(Ordering::Relaxed);
        if now == last || now >= total {
            // One more quiet period so the last bytes settle in buffers.
            tokio::time::sleep(STALL_QUIET / 2).await;
            return;
        }
        last = now;
    }
}

/// The JSON of the stalled-consumer case.
pub fn stalled_report(before: Mem, pushed: u64, window: Option<u64>) -> Value {
    let after = mem();
    json!({
        "rss_delta_bytes": after.rss.saturating_sub(before.rss),
        "heap_delta_bytes": after.heap - before.heap,
        "pushed_bytes": pushed,
        "window_bytes": window,
        "peak_rss_bytes": peak_rss(),
    })
}

/// The JSON of the idle-connection and idle-stream cases.
pub fn per_item_report(before: Mem, count: usize, unit: &str) -> Value {
    let after = mem();
    let delta = after.rss.saturating_sub(before.rss);
    json!({
        format!("bytes_per_{unit}"): delta as f64 / count as f64,
        format!("heap_bytes_per_{unit}"): (after.heap - before.heap) as f64 / count as f64,
        "count": count,
        "rss_before_bytes": before.rss,
        "rss_after_bytes": after.rss,
        "peak_rss_bytes": peak_rss(),
    })
}

/// Lets background tasks settle before an RSS reading.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Waits until a server counted `n` accepted streams (at most 30 s).
pub async fn wait_count(held: &AtomicU64, n: u64) -> Res<()> {
    let start = Instant::now();
    while held.load(Ordering::Relaxed) < n {
        if start.elapsed().as_secs() > 30 {
            return Err(format!(
                "server accepted only {} of {n} streams",
                held.load(Ordering::Relaxed)
            )
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Counts streamed items of [`ITEM_LEN`] characters for `dur` (the clock is
/// read every 256 items). Returns (items, seconds).
pub async fn count_items_for<S, E>(items: &mut S, dur: Duration) -> Res<(u64, f64)>
where
    S: futures::Stream<Item = Result<String, E>> + Unpin,
    E: Into<BoxError>,
{
    use futures::StreamExt;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..256 {
            match items.next().await {
                Some(Ok(s)) if s.len() == ITEM_LEN => n += 1,
                Some(Ok(_)) => return Err("bad item".into()),
                Some(Err(e)) => return Err(e.into()),
                None => return Err("stream ended early".into()),
            }
        }
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

/// Polls `fut` once on the accepting task and spawns it only if it is not
/// done by then: what strand's server does with each call (its
/// `run_or_spawn`). The baselines that stand for a server of calls (the bare
/// mux echo, raw quinn's stream per request) do the same, so they do not pay
/// a task hop the RPC server avoids.
pub async fn run_or_spawn<F: std::future::Future<Output = ()> + Send + 'static>(fut: F) {
    let mut fut = Box::pin(fut);
    let done =
        std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready())).await;
    if !done {
        tokio::spawn(fut);
    }
}
