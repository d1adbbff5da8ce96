//! The built-in demo service, shared by `strand demo`, `strand serve`, the
//! examples and the tests, and a set of checks that exercise it.
//!
//! Wire methods (params and results are JSON):
//!
//! | method | kind | behaviour |
//! |---|---|---|
//! | `echo` | unary | returns its params |
//! | `count` | server streaming | `{"n":N}` → `{"i":0}` … `{"i":N-1}` |
//! | `sum` | client streaming | messages `{"x":number}` → `{"sum":total}` |
//! | `chat` | duplex | echoes each message's params as a result as it arrives |
//! | `upper` | raw | leading `{"ok":true}`, then the input bytes ASCII-uppercased |
//! | `whoami` | unary | the authenticated identity (`{"name", "attributes"}`) or `null` |
//! | `sleep` | unary | `{"ms":N}`: sleeps, then `{"slept":N}`; honours cancellation and deadlines |
//!
//! `echo` and `chat` return params without the `metadata` key that carries
//! the call's timeout and authorization (docs/protocol.md, "Metadata"): the caller gets
//! back what it sent.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use strand_rpc_core::message::error_codes;
use strand_rpc_core::middleware::{AuthLayer, BearerTokens};
use strand_rpc_core::server::{Incoming, RawBody, RawReader, Router, Server};
use strand_rpc_core::{Client, ClientError, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The seven demo methods.
pub fn router() -> Router {
    Router::new()
        .unary("echo", |_ctx, params: Value| async move {
            Ok::<_, RpcError>(without_metadata(params))
        })
        .server_streaming("count", |_ctx, params: CountParams| {
            futures_util::stream::iter((0..params.n).map(|i| Ok::<_, RpcError>(json!({ "i": i }))))
        })
        .client_streaming("sum", |_ctx, mut messages: Incoming<SumParams>| async move {
            let mut total = Total::default();
            while let Some(message) = messages.next().await {
                total.add(&message?.x);
            }
            Ok::<_, RpcError>(json!({ "sum": total.into_value() }))
        })
        .duplex("chat", |_ctx, messages: Incoming<Value>| {
            messages.map(|m| m.map(without_metadata))
        })
        .raw("upper", |_ctx, _params: Value, input: RawReader| async move {
            Ok::<_, RpcError>((json!({ "ok": true }), RawBody::from_stream(uppercase(input))))
        })
        .unary("whoami", |ctx, _params: Value| async move {
            Ok::<_, RpcError>(match ctx.identity() {
                Some(id) => json!({ "name": id.name, "attributes": id.attributes }),
                None => Value::Null,
            })
        })
        .unary("sleep", |ctx, params: SleepParams| async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(params.ms)) => {
                    Ok(json!({ "slept": params.ms }))
                }
                _ = ctx.cancelled() => Err(RpcError::new(error_codes::HANDLER_ABORTED, "sleep cancelled")),
            }
        })
}

/// A server for [`router`]; with `token`, every call must carry
/// `Bearer <token>` (the identity is then `"demo"`), without it there is no
/// authentication.
pub fn server(token: Option<&str>) -> Server {
    let builder = Server::builder(router());
    match token {
        Some(token) => builder
            .layer(AuthLayer::new(BearerTokens::new().token(token, "demo")))
            .build(),
        None => builder.build(),
    }
}

#[derive(Deserialize)]
struct CountParams {
    n: u64,
}

#[derive(Deserialize)]
struct SumParams {
    x: serde_json::Number,
}

#[derive(Deserialize)]
struct SleepParams {
    ms: u64,
}

/// An exact integer sum while every input is an integer that fits, a float
/// sum otherwise.
#[derive(Default)]
struct Total {
    int: Option<i64>,
    float: f64,
    inexact: bool,
}

impl Total {
    fn add(&mut self, x: &serde_json::Number) {
        self.float += x.as_f64().unwrap_or(0.0);
        if !self.inexact {
            match (x.as_i64(), self.int.unwrap_or(0)) {
                (Some(x), acc) => match acc.checked_add(x) {
                    Some(sum) => self.int = Some(sum),
                    None => self.inexact = true,
                },
                (None, _) => self.inexact = true,
            }
        }
    }

    fn into_value(self) -> Value {
        match (self.inexact, self.int) {
            (false, Some(sum)) => json!(sum),
            (false, None) => json!(0),
            (true, _) => json!(self.float),
        }
    }
}

fn without_metadata(mut params: Value) -> Value {
    if let Value::Object(map) = &mut params {
        map.remove("metadata");
    }
    params
}

/// Reads `input` chunk by chunk and yields each chunk ASCII-uppercased: at
/// most one chunk (16 KiB) in memory, backpressure from the writer.
fn uppercase(input: RawReader) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(input), |input| async move {
        let mut input = input?;
        let mut buf = BytesMut::with_capacity(16 * 1024);
        match input.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => {
                buf.make_ascii_uppercase();
                Some((Ok(buf.freeze()), Some(input)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// The call kinds [`run_checks`] exercises, in order.
pub const CHECKS: [&str; 6] = ["unary", "server", "client", "duplex", "raw", "deadline"];

/// The outcome of one check.
#[derive(Debug, Clone)]
pub struct Check {
    /// One of [`CHECKS`].
    pub kind: &'static str,
    /// The latency of the call, or what went wrong.
    pub result: Result<Duration, String>,
}

/// Runs one call of every kind against a demo server through `client` and
/// checks each answer; each check is bounded by `timeout`.
///
/// `deadline` calls `sleep` for 10 s with a 50 ms call timeout and passes
/// when the call fails with a timeout.
pub async fn run_checks(client: &Client, timeout: Duration) -> Vec<Check> {
    let mut checks = Vec::with_capacity(CHECKS.len());
    for kind in CHECKS {
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, check(client, kind)).await;
        let result = match outcome {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        checks.push(Check { kind, result });
    }
    checks
}

async fn check(client: &Client, kind: &str) -> Result<(), String> {
    fn expect(got: Value, want: Value) -> Result<(), String> {
        if got == want {
            Ok(())
        } else {
            Err(format!("expected {want}, got {got}"))
        }
    }
    let err = |e: ClientError| e.to_string();
    match kind {
        "unary" => {
            let got: Value = client
                .unary("echo", &json!({ "hello": "strand" }))
                .await
                .map_err(err)?;
            expect(got, json!({ "hello": "strand" }))
        }
        "server" => {
            let stream = client
                .server_streaming::<_, Value>("count", &json!({ "n": 3 }))
                .await
                .map_err(err)?;
            let items: Result<Vec<Value>, _> = stream
                .take(10)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect();
            expect(
                Value::Array(items.map_err(err)?),
                json!([{ "i": 0 }, { "i": 1 }, { "i": 2 }]),
            )
        }
        "client" => {
            let mut call = client
                .client_streaming::<Value, Value>("sum")
                .await
                .map_err(err)?;
            for x in [1, 2, 3] {
                call.send(&json!({ "x": x })).await.map_err(err)?;
            }
            expect(call.finish().await.map_err(err)?, json!({ "sum": 6 }))
        }
        "duplex" => {
            let (mut sink, mut responses) =
                client.duplex::<Value, Value>("chat").await.map_err(err)?;
            for m in 0..3 {
                sink.send(&json!({ "m": m })).await.map_err(err)?;
                let got = responses
                    .next()
                    .await
                    .ok_or("the stream ended early")?
                    .map_err(err)?;
                expect(got, json!({ "m": m }))?;
            }
            sink.finish().await.map_err(err)?;
            match responses.next().await {
                None => Ok(()),
                Some(extra) => Err(format!("unexpected extra response {extra:?}")),
            }
        }
        "raw" => {
            let mut call = client
                .raw::<_, Value>("upper", &json!({}))
                .await
                .map_err(err)?;
            expect(call.leading.clone(), json!({ "ok": true }))?;
            let e = |e: io::Error| e.to_string();
            call.writer.write_all(b"hello strand").await.map_err(e)?;
            call.writer.shutdown().await.map_err(e)?;
            let mut out = Vec::new();
            (&mut call.reader)
                .take(1024)
                .read_to_end(&mut out)
                .await
                .map_err(e)?;
            if out == b"HELLO STRAND" {
                Ok(())
            } else {
                Err(format!(
                    "expected HELLO STRAND, got {:?}",
                    String::from_utf8_lossy(&out)
                ))
            }
        }
        "deadline" => {
            let result = client
                .call("sleep")
                .timeout(Duration::from_millis(50))
                .unary::<_, Value>(&json!({ "ms": 10_000 }))
                .await;
            match result {
                Err(ClientError::TimedOut(_)) => Ok(()),
                Err(e) if e.code() == Some(error_codes::TIMED_OUT) => Ok(()),
                Err(e) => Err(format!("expected a timeout, got {e}")),
                Ok(v) => Err(format!("expected a timeout, got {v}")),
            }
        }
        other => Err(format!("unknown check {other}")),
    }
}
