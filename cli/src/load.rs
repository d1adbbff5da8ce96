//! `strand load`: keeps calls of one kind running on N workers for a while
//! and reports calls, errors by kind, latency percentiles and calls/s.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};
use strand::core::transport::StreamError;
use strand::{Client, ClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::call::Kind;
use crate::connect::ConnectArgs;

/// Most bytes a raw call reads back: a server that never stops sending
/// ends the call with an error instead of filling memory.
const MAX_RAW_READ: u64 = 16 << 20;

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// ws://host:port[/path], wss://… or quic://host:port
    url: String,
    /// The method to call.
    method: String,
    /// Params as JSON. For client and duplex calls, a JSON array is the list
    /// of messages each call sends (any other value is the one message).
    json: Option<String>,
    /// The call kind. Server calls read every item; raw calls send
    /// --raw-bytes bytes right behind the header (pipelined: without
    /// waiting for the leading response) and read the answer to its end.
    #[arg(long, value_enum, default_value_t = Kind::Unary)]
    kind: Kind,
    /// Calls running at once (each worker starts its next call when its
    /// last one ends).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// How long to keep starting calls: `500ms`, `30s`, `2m`, `1h`. Calls
    /// running at the end are waited for.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Connections the workers share (worker i uses connection i mod N):
    /// more than one spreads the calls over the servers behind a proxy.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,
    /// Use the reconnecting client (backoff as gRPC's: 1 s, ×1.6, 120 s
    /// max, 20 % jitter; see docs/deploy.md), and check every result as
    /// --check does.
    #[arg(long)]
    reconnect: bool,
    /// Compare each result with what the demo service (`strand serve`) must
    /// give: `echo` its params, `count` n items, `sum` the sum, `chat` the
    /// messages, `upper` the bytes uppercased. A wrong result is an error.
    #[arg(long)]
    check: bool,
    /// Mark unary calls idempotent: a reconnecting client sends one again
    /// when its connection was lost after it was sent.
    #[arg(long)]
    idempotent: bool,
    /// Each call's timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout: u64,
    /// Bytes each raw call sends.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    raw_bytes: usize,
    /// Print the summary as one JSON object on stdout: `calls`, `ok`,
    /// `errors`, `error_kinds` (count per kind), `error_examples` (the first
    /// message per kind), `latency_us` (`p50`, `p90`, `p99`, `max` of the
    /// calls that succeeded, in µs), `calls_per_s`, `elapsed_ms`,
    /// `last_error_ms` and `ok_after_last_error` (calls started after the
    /// last failure that succeeded), and the run's settings.
    #[arg(long = "json")]
    json_summary: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Parses `500ms`, `30s`, `2m`, `1h` (a whole number and a unit).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write e.g. 500ms, 30s, 2m or 1h"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let per_unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`: use ms, s, m or h"
            ))
        }
    };
    let ms = n
        .checked_mul(per_unit_ms)
        .filter(|&ms| ms <= strand::MAX_TIMEOUT_MS)
        .ok_or_else(|| format!("`{text}` is too long"))?;
    if ms == 0 {
        return Err("the duration must be more than 0".into());
    }
    Ok(Duration::from_millis(ms))
}

/// What one call does, the same for every call of the run.
struct Plan {
    method: String,
    kind: Kind,
    params: Value,
    messages: Vec<Value>,
    raw: Vec<u8>,
    check: bool,
    idempotent: bool,
    timeout: Duration,
}

/// The outcome of one failed call: its kind of error and the message.
struct Failure {
    kind: String,
    message: String,
}

impl Failure {
    fn wrong(message: String) -> Self {
        Failure {
            kind: "wrong_result".into(),
            message,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let kind = match &e {
            ClientError::ConnectionLost { sent: true, .. } => "connection_lost_may_have_run".into(),
            ClientError::ConnectionLost { sent: false, .. } => "connection_lost_not_sent".into(),
            ClientError::Remote { code, .. } => format!("remote_{code}"),
            ClientError::TimedOut(_) => "timed_out".into(),
            ClientError::Transport(_) => "transport".into(),
            ClientError::Unanswered(_) => "unanswered".into(),
            ClientError::Protocol(_) => "protocol".into(),
            ClientError::Cancelled => "cancelled".into(),
            ClientError::Serde(_) => "serde".into(),
            #[allow(unreachable_patterns)]
            _ => "other".into(),
        };
        Failure {
            kind,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        // A raw call's bytes travel as i/o, after the call was sent: a lost
        // connection there is the same "may have run" as for other calls.
        let kind = match StreamError::from_io(&e) {
            Some(StreamError::ConnectionClosed(_)) => "connection_lost_may_have_run",
            Some(_) => "transport",
            None => "io",
        };
        Failure {
            kind: kind.into(),
            message: e.to_string(),
        }
    }
}

/// One worker's record: each ok call's start (µs since the run began) and
/// latency (µs); each kind of error's count and first message; when the
/// last error happened.
#[derive(Default)]
struct Record {
    ok: Vec<(u64, u64)>,
    errors: BTreeMap<String, (u64, String)>,
    last_error_us: Option<u64>,
}

pub(crate) async fn run(args: LoadArgs) -> ExitCode {
    let plan = match plan(&args) {
        Ok(plan) => Arc::new(plan),
        Err(e) => return crate::fail(e),
    };
    let mut endpoint = match args.connect.endpoint(&args.url) {
        Ok(e) => e,
        Err(e) => return crate::fail(e),
    };
    endpoint.config_mut().timeouts.call_ms = Some(args.timeout);
    if args.reconnect {
        endpoint = endpoint.with_reconnect(Default::default());
    }
    let mut clients = Vec::with_capacity(args.connections as usize);
    for _ in 0..args.connections {
        match endpoint.connect().await {
            Ok(client) => clients.push(client),
            Err(e) => {
                for client in &clients {
                    crate::call::close(client).await;
                }
                return crate::fail(format!("cannot connect to {}: {e}", args.url));
            }
        }
    }
    let clients = Arc::new(clients);
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let deadline = started + args.duration;
    let workers: Vec<_> = (0..args.concurrency as usize)
        .map(|i| {
            let clients = clients.clone();
            let plan = plan.clone();
            let progress = progress.clone();
            tokio::spawn(async move {
                let client = &clients[i % clients.len()];
                worker(client, &plan, &progress, started, deadline).await
            })
        })
        .collect();
    let ticker = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(show_progress(progress.clone(), started)));
    let mut records = Vec::with_capacity(workers.len());
    for worker in workers {
        match worker.await {
            Ok(record) => records.push(record),
            Err(e) => return crate::fail(format!("a worker failed: {e}")),
        }
    }
    let elapsed = started.elapsed();
    if let Some(ticker) = ticker {
        ticker.abort();
        eprintln!();
    }
    for client in clients.iter() {
        crate::call::close(client).await;
    }
    let summary = summarize(&args, records, elapsed);
    let printed = if args.json_summary {
        writeln!(std::io::stdout().lock(), "{summary}")
    } else {
        print_summary(&summary)
    };
    if let Err(e) = printed {
        return crate::fail(format!("writing the summary: {e}"));
    }
    if summary["errors"].as_u64() == Some(0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn plan(args: &LoadArgs) -> Result<Plan, String> {
    let params = match args.json.as_deref().map(serde_json::from_str::<Value>) {
        None => Value::Null,
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(format!("invalid JSON params: {e}")),
    };
    let messages = match &params {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    // Lower case, so that `upper` has work to do.
    let raw = b"strand load "
        .iter()
        .copied()
        .cycle()
        .take(args.raw_bytes)
        .collect();
    if args.timeout == 0 || args.timeout > strand::MAX_TIMEOUT_MS {
        return Err(format!(
            "--timeout {}: must be from 1 to {} ms",
            args.timeout,
            strand::MAX_TIMEOUT_MS
        ));
    }
    Ok(Plan {
        method: args.method.clone(),
        kind: args.kind,
        params,
        messages,
        raw,
        check: args.check || args.reconnect,
        idempotent: args.idempotent,
        timeout: Duration::from_millis(args.timeout),
    })
}

/// Counters the progress line reads while the workers run.
#[derive(Default)]
struct Progress {
    calls: AtomicU64,
    errors: AtomicU64,
}

async fn show_progress(progress: Arc<Progress>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let calls = progress.calls.load(Ordering::Relaxed);
        let errors = progress.errors.load(Ordering::Relaxed);
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { calls as f64 / secs } else { 0.0 };
        eprint!("\r\x1b[K{secs:6.1} s  {calls} calls  {errors} errors  {rate:.0} calls/s");
        let _ = std::io::stderr().flush();
    }
}

async fn worker(
    client: &Client,
    plan: &Plan,
    progress: &Progress,
    started: Instant,
    deadline: Instant,
) -> Record {
    let mut record = Record::default();
    loop {
        let begun = Instant::now();
        if begun >= deadline {
            return record;
        }
        // The client's timeout bounds each call; this one also bounds a raw
        // call's bytes, which the client's does not.
        let outcome = match tokio::time::timeout(plan.timeout, one_call(client, plan)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure {
                kind: "timed_out".into(),
                message: format!("no end within {:?}", plan.timeout),
            }),
        };
        let start_us = micros(begun - started);
        progress.calls.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(()) => record.ok.push((start_us, micros(begun.elapsed()))),
            Err(failure) => {
                progress.errors.fetch_add(1, Ordering::Relaxed);
                record.last_error_us = Some(micros(started.elapsed()));
                let entry = record
                    .errors
                    .entry(failure.kind)
                    .or_insert((0, failure.message));
                entry.0 += 1;
            }
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

async fn one_call(client: &Client, plan: &Plan) -> Result<(), Failure> {
    let method = plan.method.as_str();
    match plan.kind {
        Kind::Unary => {
            let mut call = client.call(method);
            if plan.idempotent {
                call = call.idempotent();
            }
            let got: Value = call.unary(&plan.params).await?;
            if plan.check && method == "echo" {
                expect(&got, &plan.params)?;
            }
            Ok(())
        }
        Kind::Server => {
            let mut items = client
                .server_streaming::<_, Value>(method, &plan.params)
                .await?;
            let mut n = 0u64;
            while let Some(item) = items.next().await {
                let item = item?;
                if plan.check && method == "count" {
                    expect(&item, &json!({ "i": n }))?;
                }
                n += 1;
            }
            if plan.check && method == "count" {
                let want = plan.params["n"].as_u64().unwrap_or(0);
                if n != want {
                    return Err(Failure::wrong(format!("{n} items, expected {want}")));
                }
            }
            Ok(())
        }
        Kind::Client => {
            let mut call = client.client_streaming::<Value, Value>(method).await?;
            for message in &plan.messages {
                call.send(message).await?;
            }
            let got = call.finish().await?;
            if plan.check && method == "sum" {
                let total: f64 = plan.messages.iter().filter_map(|m| m["x"].as_f64()).sum();
                if got["sum"].as_f64() != Some(total) {
                    return Err(Failure::wrong(format!("expected sum {total}, got {got}")));
                }
            }
            Ok(())
        }
        Kind::Duplex => {
            let (mut sink, mut responses) = client.duplex::<Value, Value>(method).await?;
            let send = async {
                for message in &plan.messages {
                    sink.send(message).await?;
                }
                sink.finish().await?;
                Ok::<_, Failure>(())
            };
            let receive = async {
                let mut got = Vec::with_capacity(plan.messages.len());
                while let Some(item) = responses.next().await {
                    got.push(item?);
                }
                Ok::<_, Failure>(got)
            };
            let (sent, got) = tokio::join!(send, receive);
            // The receiving side's error says more (e.g. the server's own).
            let got = got?;
            sent?;
            if plan.check && method == "chat" {
                expect(&Value::Array(got), &Value::Array(plan.messages.clone()))?;
            }
            Ok(())
        }
        Kind::Raw => {
            let params = match &plan.params {
                Value::Null => json!({}),
                p => p.clone(),
            };
            // Pipelined, as `strand call --kind raw`: the bytes follow the
            // header without waiting for the leading response.
            let call = client.raw_pipelined::<_, Value>(method, &params).await?;
            let mut writer = call.writer;
            let up = async {
                writer.write_all(&plan.raw).await?;
                writer.shutdown().await?;
                Ok::<_, Failure>(())
            };
            let down = async {
                let mut response = call.response.leading().await?;
                let mut back = Vec::with_capacity(plan.raw.len());
                (&mut response.reader)
                    .take(MAX_RAW_READ)
                    .read_to_end(&mut back)
                    .await?;
                Ok::<_, Failure>((response.leading, back))
            };
            let (sent, received) = tokio::join!(up, down);
            // The leading response's error (e.g. an unknown method) says
            // more than the write it stopped.
            let (leading, back) = received?;
            sent?;
            if plan.check && method == "upper" {
                if leading != json!({ "ok": true }) {
                    return Err(Failure::wrong(format!(
                        "leading response {leading}, expected {{\"ok\":true}}"
                    )));
                }
                if back != plan.raw.to_ascii_uppercase() {
                    return Err(Failure::wrong(format!(
                        "{} bytes back, not the {} sent uppercased",
                        back.len(),
                        plan.raw.len()
                    )));
                }
            }
            Ok(())
        }
    }
}

fn expect(got: &Value, want: &Value) -> Result<(), Failure> {
    if got == want {
        Ok(())
    } else {
        Err(Failure::wrong(format!("expected {want}, got {got}")))
    }
}

/// The run's summary as JSON (the `--json` output; the text summary is
/// printed from it).
fn summarize(args: &LoadArgs, records: Vec<Record>, elapsed: Duration) -> Value {
    let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut ok = Vec::new();
    let mut last_error_us = None;
    for record in records {
        ok.extend(record.ok);
        for (kind, (n, message)) in record.errors {
            errors.entry(kind).or_insert((0, message)).0 += n;
        }
        last_error_us = last_error_us.max(record.last_error_us);
    }
    let error_count: u64 = errors.values().map(|(n, _)| n).sum();
    let ok_after_last_error = match last_error_us {
        Some(t) => ok.iter().filter(|(start, _)| *start > t).count() as u64,
        None => ok.len() as u64,
    };
    let mut latencies: Vec<u64> = ok.iter().map(|(_, latency)| *latency).collect();
    latencies.sort_unstable();
    let calls = ok.len() as u64 + error_count;
    let secs = elapsed.as_secs_f64();
    json!({
        "url": args.url,
        "method": args.method,
        "kind": format!("{:?}", args.kind).to_lowercase(),
        "concurrency": args.concurrency,
        "connections": args.connections,
        "reconnect": args.reconnect,
        "elapsed_ms": elapsed.as_millis() as u64,
        "calls": calls,
        "ok": ok.len(),
        "errors": error_count,
        "error_kinds": errors.iter().map(|(k, (n, _))| (k.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "error_examples": errors.iter().map(|(k, (_, m))| (k.clone(), json!(m))).collect::<serde_json::Map<_, _>>(),
        "last_error_ms": last_error_us.map(|us| us / 1000),
        "ok_after_last_error": ok_after_last_error,
        "latency_us": {
            "p50": percentile(&latencies, 50),
            "p90": percentile(&latencies, 90),
            "p99": percentile(&latencies, 99),
            "max": latencies.last(),
        },
        "calls_per_s": if secs > 0.0 { (calls as f64 / secs * 10.0).round() / 10.0 } else { 0.0 },
    })
}

/// The nearest-rank percentile of sorted values; `None` when there are none.
fn percentile(sorted: &[u64], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() as u64 * p).div_ceil(100).max(1);
    sorted.get(rank as usize - 1).copied()
}

fn print_summary(summary: &Value) -> std::io::Result<()> {
    let ms = |key: &str| match summary["latency_us"][key].as_u64() {
        Some(us) => format!("{:.2} ms", us as f64 / 1000.0),
        None => "-".into(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "calls    {} ({} ok, {} errors) in {:.2} s, {} calls/s",
        summary["calls"],
        summary["ok"],
        summary["errors"],
        summary["elapsed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        summary["calls_per_s"]
    )?;
    writeln!(
        out,
        "latency  p50 {}  p90 {}  p99 {}  max {}",
        ms("p50"),
        ms("p90"),
        ms("p99"),
        ms("max")
    )?;
    if let Some(kinds) = summary["error_kinds"].as_object() {
        for (kind, n) in kinds {
            let example = summary["error_examples"][kind].as_str().unwrap_or("");
            writeln!(out, "error    {kind} ×{n}: {}", example.replace('\n', " "))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration(" 7s "), Ok(Duration::from_secs(7)));
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, why) in [
            ("30", "no unit"),
            ("s", "whole number"),
            ("1.5s", "unknown unit"),
            ("10d", "unknown unit"),
            ("-1s", "whole number"),
            ("0s", "more than 0"),
            ("99999999999999999999h", "whole number"),
            ("9999999999h", "too long"),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }
}
