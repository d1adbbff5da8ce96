//! The service every fault test calls: each call kind with a checkable
//! answer, handlers that wait for ever (to be cut, cancelled or timed out)
//! and count themselves, and the calls that exercise them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use strand::{Client, ClientError, Incoming, RawBody, RawReader, Router, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Counts the waiting handlers that are alive: each holds a [`Live`] guard
/// that its drop (cancellation, deadline, connection gone) gives back.
#[derive(Debug, Default)]
pub struct Tracker {
    live: AtomicUsize,
    started: AtomicUsize,
    changed: Notify,
    /// The ws connections the waiting handlers ran on (a probe does not
    /// keep its connection alive).
    probes: std::sync::Mutex<Vec<strand::ws::StatsProbe>>,
}

/// One live handler.
pub struct Live(Arc<Tracker>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

impl Tracker {
    fn live(self: &Arc<Self>, ctx: &strand::Context) -> Live {
        if let Some(probe) = strand::ws::StatsProbe::of(ctx.peer()) {
            self.probes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(probe.clone());
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        Live(self.clone())
    }

    /// Handlers alive now.
    pub fn alive(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// The ws connections of the waiting handlers that are still there
    /// (their session state, streams and buffers not freed yet).
    pub fn ws_connections_alive(&self) -> usize {
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|p| p.connection().is_some())
            .count()
    }

    /// Handlers started so far.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Acquire)
    }

    /// Waits until `f(alive, started)` holds, at most `within`; whether it did.
    pub async fn wait(&self, within: Duration, f: impl Fn(usize, usize) -> bool) -> bool {
        let until = tokio::time::Instant::now() + within;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if f(self.alive(), self.started()) {
                return true;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                return f(self.alive(), self.started());
            }
        }
    }
}

/// FNV-1a, 64 bits: what both ends compute over a raw transfer.
#[derive(Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// `n` pseudo-random bytes from `seed`, in chunks of at most 64 KiB.
pub fn pattern(seed: u64, n: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut left = n;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let len = left.min(64 * 1024);
        left -= len;
        Some(std::iter::repeat_with(|| rng.u8(..)).take(len).collect())
    })
}

/// The router: `echo`, `count`, `sum`, `double`, `sink`, `source` answer;
/// the `hang*` methods, one per kind, wait for ever holding a [`Live`].
pub fn router(tracker: Arc<Tracker>) -> Router {
    let t = tracker;
    Router::new()
        .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
        .server_streaming("count", |_ctx, p: Value| {
            let n = p["n"].as_u64().unwrap_or(0);
            let pad = "x".repeat(p["size"].as_u64().unwrap_or(0) as usize);
            futures_util::stream::iter(
                (0..n).map(move |i| Ok::<_, RpcError>(json!({ "i": i, "pad": pad }))),
            )
        })
        .client_streaming("sum", |_ctx, mut xs: Incoming<Value>| async move {
            let (mut sum, mut count) = (0i64, 0u64);
            while let Some(x) = xs.next().await {
                sum += x?["x"].as_i64().unwrap_or(0);
                count += 1;
            }
            Ok::<_, RpcError>(json!({ "sum": sum, "count": count }))
        })
        .duplex("double", |_ctx, xs: Incoming<Value>| {
            xs.map(|x| Ok::<_, RpcError>(json!({ "y": x?["x"].as_i64().unwrap_or(0) * 2 })))
        })
        .raw("sink", |_ctx, _p: Value, mut input: RawReader| async move {
            let body = futures_util::stream::once(async move {
                let (mut count, mut hash) = (0u64, Fnv::default());
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = input.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    count += n as u64;
                    hash.update(&buf[..n]);
                }
                Ok(bytes::Bytes::from(
                    json!({ "count": count, "hash": hash.0 }).to_string(),
                ))
            });
            Ok::<_, RpcError>((json!({ "ready": true }), RawBody::from_stream(body)))
        })
        .raw("source", |_ctx, p: Value, _input: RawReader| async move {
            let n = p["n"].as_u64().unwrap_or(0) as usize;
            let seed = p["seed"].as_u64().unwrap_or(0);
            let body =
                futures_util::stream::iter(pattern(seed, n).map(|c| Ok(bytes::Bytes::from(c))));
            Ok::<_, RpcError>((json!({ "n": n }), RawBody::from_stream(body)))
        })
        .unary("hang", {
            let t = t.clone();
            move |ctx, _p: Value| {
                let live = t.live(&ctx);
                async move {
                    let _live = live;
                    std::future::pending::<Result<Value, RpcError>>().await
                }
            }
        })
        .server_streaming("hang_stream", {
            let t = t.clone();
            move |ctx, _p: Value| {
                let live = t.live(&ctx);
                futures_util::stream::once(async { Ok::<_, RpcError>(json!("first")) })
                    .chain(futures_util::stream::pending())
                    .map(move |item| {
                        let _ = &live;
                        item
                    })
            }
        })
        .client_streaming("hang_sum", {
            let t = t.clone();
            move |ctx, mut xs: Incoming<Value>| {
                let live = t.live(&ctx);
                async move {
                    let _live = live;
                    while let Some(x) = xs.next().await {
                        x?;
                    }
                    Ok::<_, RpcError>(json!("ended"))
                }
            }
        })
        .duplex("hang_duplex", {
            let t = t.clone();
            move |ctx, xs: Incoming<Value>| {
                let live = t.live(&ctx);
                xs.map(move |x| {
                    let _ = &live;
                    x
                })
            }
        })
        .raw("hang_raw", {
            let t = t.clone();
            move |ctx, _p: Value, mut input: RawReader| {
                let live = t.live(&ctx);
                async move {
                    let body = futures_util::stream::once(async move {
                        let _live = live;
                        let mut buf = vec![0u8; 4096];
                        while input.read(&mut buf).await? > 0 {}
                        Ok(bytes::Bytes::from_static(b"ended"))
                    });
                    Ok::<_, RpcError>((json!({ "ready": true }), RawBody::from_stream(body)))
                }
            }
        })
}

/// How much each call of [`every_kind`] moves.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Bytes of each raw transfer (each way).
    pub raw_bytes: usize,
    /// Messages of each streaming call.
    pub messages: u64,
}

/// Every call kind once (unary many times), with answers the caller can
/// compare with another run's: the raw transfers as byte counts and hashes.
pub async fn every_kind(client: &Client, load: Load) -> Result<Vec<Value>, String> {
    let at = |step: &'static str| move |e: ClientError| format!("{step}: {e}");
    let mut out = Vec::new();
    for i in 0..load.messages {
        let p = json!({ "i": i, "s": "y".repeat((i as usize * 97) % 2000) });
        out.push(
            client
                .unary::<_, Value>("echo", &p)
                .await
                .map_err(at("unary"))?,
        );
    }
    let mut items = client
        .server_streaming::<_, Value>("count", &json!({ "n": load.messages, "size": 1000 }))
        .await
        .map_err(at("server streaming"))?;
    while let Some(item) = items.next().await {
        out.push(item.map_err(at("server streaming item"))?);
    }
    let mut sum = client
        .client_streaming::<Value, Value>("sum")
        .await
        .map_err(at("client streaming"))?;
    for x in 0..load.messages as i64 {
        sum.send(&json!({ "x": x }))
            .await
            .map_err(at("client streaming send"))?;
    }
    out.push(sum.finish().await.map_err(at("client streaming finish"))?);
    let (mut xs, mut ys) = client
        .duplex::<Value, Value>("double")
        .await
        .map_err(at("duplex"))?;
    for x in 0..load.messages as i64 {
        xs.send(&json!({ "x": x }))
            .await
            .map_err(at("duplex send"))?;
        let y = ys.next().await.ok_or("duplex: ended early")?;
        out.push(y.map_err(at("duplex item"))?);
    }
    xs.finish().await.map_err(at("duplex finish"))?;
    if let Some(item) = ys.next().await {
        return Err(format!("duplex: answered past its input: {item:?}"));
    }
    out.push(
        raw_upload(client, load.raw_bytes, 7)
            .await
            .map_err(at("raw upload"))?,
    );
    out.push(
        raw_download(client, load.raw_bytes, 11)
            .await
            .map_err(at("raw download"))?,
    );
    Ok(out)
}

/// Sends `n` bytes to `sink`; its answer (count and hash).
pub async fn raw_upload(client: &Client, n: usize, seed: u64) -> Result<Value, ClientError> {
    let mut call = client.raw::<_, Value>("sink", &json!({})).await?;
    for chunk in pattern(seed, n) {
        call.writer
            .write_all(&chunk)
            .await
            .map_err(ClientError::Transport)?;
    }
    call.writer
        .shutdown()
        .await
        .map_err(ClientError::Transport)?;
    let mut answer = Vec::new();
    call.reader
        .read_to_end(&mut answer)
        .await
        .map_err(ClientError::Transport)?;
    Ok(serde_json::from_slice(&answer)?)
}

/// Reads `n` bytes from `source`; their count and hash.
pub async fn raw_download(client: &Client, n: usize, seed: u64) -> Result<Value, ClientError> {
    let mut call = client
        .raw::<_, Value>("source", &json!({ "n": n, "seed": seed }))
        .await?;
    // The handler reads nothing: its input is stopped, and our end of it
    // is left alone until the transfer ended.
    let (mut count, mut hash) = (0u64, Fnv::default());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = call
            .reader
            .read(&mut buf)
            .await
            .map_err(ClientError::Transport)?;
        if read == 0 {
            break;
        }
        count += read as u64;
        hash.update(&buf[..read]);
    }
    drop(call.writer);
    Ok(json!({ "count": count, "hash": hash.0 }))
}

/// What a raw transfer of `n` bytes from `seed` must answer.
pub fn expected_transfer(n: usize, seed: u64) -> Value {
    let mut hash = Fnv::default();
    for chunk in pattern(seed, n) {
        hash.update(&chunk);
    }
    json!({ "count": n, "hash": hash.0 })
}

/// Outcome of a hanging call: how it ended (an error is what the tests
/// expect; `Ok` says what came instead).
pub type Hung = tokio::task::JoinHandle<Result<String, ClientError>>;

/// Starts one waiting call of every kind, each well under way (its first
/// exchange done), and a task per call that waits for its end.
pub async fn start_hanging(client: &Client) -> Result<Vec<(&'static str, Hung)>, ClientError> {
    let mut calls: Vec<(&'static str, Hung)> = Vec::new();
    let c = client.clone();
    calls.push((
        "unary",
        tokio::spawn(async move {
            c.unary::<_, Value>("hang", &json!({}))
                .await
                .map(|v| v.to_string())
        }),
    ));
    let mut items = client
        .server_streaming::<_, Value>("hang_stream", &json!({}))
        .await?;
    let first = items.next().await;
    if !matches!(first, Some(Ok(_))) {
        return Err(ClientError::Protocol(format!("hang_stream: {first:?}")));
    }
    calls.push((
        "server streaming",
        tokio::spawn(async move { next_of(&mut items).await }),
    ));
    let (mut xs, mut ys) = client.duplex::<Value, Value>("hang_sum").await?;
    xs.send(&json!({ "x": 1 })).await?;
    calls.push((
        "client streaming",
        tokio::spawn(async move {
            let out = next_of(&mut ys).await;
            drop(xs);
            out
        }),
    ));
    let (mut xs, mut ys) = client.duplex::<Value, Value>("hang_duplex").await?;
    xs.send(&json!({ "x": 1 })).await?;
    if !matches!(ys.next().await, Some(Ok(_))) {
        return Err(ClientError::Protocol("hang_duplex answered nothing".into()));
    }
    calls.push((
        "duplex",
        tokio::spawn(async move {
            let out = next_of(&mut ys).await;
            drop(xs);
            out
        }),
    ));
    let mut raw = client.raw::<_, Value>("hang_raw", &json!({})).await?;
    raw.writer
        .write_all(&[7u8; 1024])
        .await
        .map_err(ClientError::Transport)?;
    raw.writer.flush().await.map_err(ClientError::Transport)?;
    calls.push((
        "raw",
        tokio::spawn(async move {
            let mut out = Vec::new();
            let read = raw.reader.read_to_end(&mut out).await;
            drop(raw.writer);
            match read {
                Ok(n) => Ok(format!("{n} bytes and the end")),
                Err(e) => Err(ClientError::Transport(e)),
            }
        }),
    ));
    Ok(calls)
}

async fn next_of(items: &mut strand::ResponseStream<Value>) -> Result<String, ClientError> {
    match items.next().await {
        Some(Err(e)) => Err(e),
        other => Ok(format!("{other:?}")),
    }
}
