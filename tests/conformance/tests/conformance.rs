//! The conformance suite: every case is written once, generic over a
//! transport [`Fixture`], and instantiated for the memory, ws, ws over
//! HTTP/2 and quic carriers by the `suite!` macro at the bottom.
//!
//! Memory cases run with paused time (timers are virtual); the network
//! carriers run on a two-worker runtime with short real timeouts. No
//! assertion depends on speed: time limits only guard against hangs.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{
    eventually, read_pattern, within, write_pattern, Fixture, Memory, Pair, Quic, Ws, WsH2,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use strand_rpc_core::codec::MessageReader;
use strand_rpc_core::middleware::{AuthLayer, BearerTokens, Credentials, Verified, Verifier};
use strand_rpc_core::server::{RawBody, RawReader, Router, Server};
use strand_rpc_core::transport::CloseCode;
use strand_rpc_core::transport::StreamError;
use strand_rpc_core::{Client, ClientConfig, ClientError, Context, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// What the handlers report to the test.
#[derive(Default)]
struct State {
    /// Handlers of `hang`, `hang_stream`, `slow` and `gate` that started.
    started: AtomicUsize,
    /// Their cancellation tokens that fired.
    cancelled: AtomicUsize,
    /// Their futures / streams that were dropped.
    dropped: AtomicUsize,
    /// `metadata.timeout` the last `hang` saw, in ms (`u64::MAX`: none).
    requested_ms: AtomicU64,
    /// Items the `flood` handler produced.
    produced: AtomicUsize,
    /// `sink` calls whose handler started.
    sinks: AtomicUsize,
    /// Released by the test: `sink` and `gate` wait for a permit.
    gate: Gate,
}

/// A semaphore that starts with no permit.
struct Gate(Semaphore);

impl Default for Gate {
    fn default() -> Self {
        Gate(Semaphore::new(0))
    }
}

/// Counts a drop into [`State::dropped`].
struct DropFlag(Arc<State>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Registers a started call: counts it and watches its cancellation token.
fn track(state: &Arc<State>, ctx: &Context) -> DropFlag {
    state.started.fetch_add(1, Ordering::SeqCst);
    let cancelled = ctx.cancelled();
    let st = state.clone();
    tokio::spawn(async move {
        cancelled.await;
        st.cancelled.fetch_add(1, Ordering::SeqCst);
    });
    DropFlag(state.clone())
}

fn router(state: Arc<State>) -> Router {
    let (s1, s2, s3, s4, s5, s6) = (
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
        state.clone(),
    );
    common::streaming_kinds()
        .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
        .unary("whoami", |ctx: Context, _p: Value| async move {
            Ok::<_, RpcError>(json!({
                "identity": ctx.identity().map(|i| i.name.clone()),
                "transport": ctx.peer().transport,
                "app": ctx.metadata().get("app"),
            }))
        })
        .raw("upper", |_ctx, p: Value, reader: RawReader| async move {
            let body = tokio_util::io::ReaderStream::new(reader)
                .map(|chunk| chunk.map(|b| Bytes::from(b.to_ascii_uppercase())));
            Ok::<_, RpcError>((json!({ "accepted": p["mode"] }), RawBody::from_stream(body)))
        })
        .raw(
            "peek",
            |_ctx, _p: Value, mut reader: RawReader| async move {
                // The leading response waits for the caller's first bytes: only
                // a call that writes before it has read that response gets one.
                let mut first = [0u8; 5];
                reader
                    .read_exact(&mut first)
                    .await
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                let body = tokio_util::io::ReaderStream::new(reader)
                    .map(|chunk| chunk.map(|b| Bytes::from(b.to_ascii_uppercase())));
                let first = String::from_utf8_lossy(&first).into_owned();
                Ok::<_, RpcError>((json!({ "first": first }), RawBody::from_stream(body)))
            },
        )
        .raw(
            "echo_raw",
            |_ctx, _p: Value, reader: RawReader| async move {
                Ok::<_, RpcError>((json!({ "echoing": true }), RawBody::from_reader(reader)))
            },
        )
        .unary("fail", |_ctx, _p: Value| async move {
            Err::<Value, _>(
                RpcError::handler("TypeError", "handler exploded")
                    .with_data(json!({ "detail": 42 })),
            )
        })
        .unary("hang", move |ctx: Context, _p: Value| {
            let st = s1.clone();
            async move {
                let _flag = track(&st, &ctx);
                let ms = ctx
                    .requested_timeout()
                    .map_or(u64::MAX, |t| t.as_millis() as u64);
                st.requested_ms.store(ms, Ordering::SeqCst);
                std::future::pending::<()>().await;
                Ok::<Value, RpcError>(Value::Null)
            }
        })
        .unary("slow", move |ctx: Context, _p: Value| {
            let st = s2.clone();
            async move {
                let _flag = track(&st, &ctx);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<Value, RpcError>(Value::Null)
            }
        })
        .timeout("slow", Duration::from_millis(200))
        .server_streaming("hang_stream", move |ctx: Context, _p: Value| {
            let flag = track(&s3, &ctx);
            futures_util::stream::once(async { Ok::<_, RpcError>(json!({ "i": 0 })) })
                .chain(futures_util::stream::pending())
                .map(move |item| {
                    let _ = &flag;
                    item
                })
        })
        .server_streaming("flood", move |_ctx, p: Value| {
            let st = s4.clone();
            let n = p["n"].as_u64().unwrap_or(0);
            let pad = "x".repeat(p["size"].as_u64().unwrap_or(0) as usize);
            futures_util::stream::iter(0..n).map(move |i| {
                st.produced.fetch_add(1, Ordering::SeqCst);
                Ok::<_, RpcError>(json!({ "i": i, "pad": pad }))
            })
        })
        .client_streaming("sink", move |_ctx, input| {
            let st = s5.clone();
            async move {
                st.sinks.fetch_add(1, Ordering::SeqCst);
                st.gate
                    .0
                    .acquire()
                    .await
                    .map_err(|e| RpcError::internal(e.to_string()))?
                    .forget();
                let mut count = 0u64;
                let mut next = 0u64;
                let mut input = std::pin::pin!(input);
                while let Some(m) = input.next().await {
                    let m: Value = m?;
                    if m["i"].as_u64() != Some(next) {
                        return Err(RpcError::handler(
                            "Error",
                            format!("message {next} missing"),
                        ));
                    }
                    next += 1;
                    count += 1;
                }
                Ok::<_, RpcError>(json!({ "count": count }))
            }
        })
        .unary("gate", move |ctx: Context, _p: Value| {
            let st = s6.clone();
            async move {
                let _flag = track(&st, &ctx);
                st.gate
                    .0
                    .acquire()
                    .await
                    .map_err(|e| RpcError::internal(e.to_string()))?
                    .forget();
                Ok::<_, RpcError>(json!("drained"))
            }
        })
}

/// Accepts `let-me-in` as alice and hands back a fresh token.
struct RefreshingTokens(BearerTokens);

#[async_trait]
impl Verifier for RefreshingTokens {
    async fn verify(&self, credentials: Credentials, ctx: &Context) -> Result<Verified, RpcError> {
        Ok(self
            .0
            .verify(credentials, ctx)
            .await?
            .with_refreshed_token("fresh-token"))
    }
}

/// A server on one side of a fresh pair and a client on the other.
struct Harness {
    pair: Pair,
    server: Server,
    client: Client,
    state: Arc<State>,
}

/// Which end writes, in the backpressure cases.
#[derive(Debug, Clone, Copy)]
enum Side {
    Client,
    Server,
}

impl Harness {
    /// Opens a `hang_stream` call and reads its first item; the handler then
    /// waits until it is cancelled.
    async fn open_hang_stream(&self) -> strand_rpc_core::ResponseStream<Value> {
        let mut items = within(
            self.client
                .server_streaming::<_, Value>("hang_stream", &json!({})),
        )
        .await
        .unwrap();
        assert_eq!(
            within(items.next()).await.unwrap().unwrap(),
            json!({ "i": 0 })
        );
        items
    }

    /// A writer that had `n` messages of `item` bytes to send stalled after
    /// `settled`, with at most `bound` bytes buffered between it and its
    /// stalled reader (one message may be in the writer's hands and one
    /// being written); on ws, the reader's buffer stays within its window
    /// and the writer's queue within its send buffer.
    fn assert_stalled_within_bound(
        &self,
        settled: usize,
        n: usize,
        item: usize,
        bound: usize,
        writer: Side,
    ) {
        assert!(
            settled < n,
            "the writer never stalled: {settled} of {n} messages sent"
        );
        let wire = item + 64;
        assert!(
            settled.saturating_sub(2) * wire <= bound,
            "{settled} messages of {wire} bytes buffered, bound {bound}"
        );
        if let Some((client, server)) = &self.pair.ws {
            let (w, r) = match writer {
                Side::Client => (client.stats(), server.stats()),
                Side::Server => (server.stats(), client.stats()),
            };
            assert!(r.buffered <= u64::from(common::ws_window()), "{r:?}");
            assert!(w.queued_send <= common::ws_send_buffer() as u64, "{w:?}");
        }
    }

    async fn start<F: Fixture>(auth: bool) -> Harness {
        let state = Arc::new(State::default());
        let mut builder = Server::builder(router(state.clone()));
        if auth {
            builder = builder.layer(AuthLayer::new(RefreshingTokens(
                BearerTokens::new().token("let-me-in", "alice"),
            )));
        }
        let server = builder.build();
        let pair = F::connect().await;
        server.spawn_connection(pair.server.clone());
        let client = Client::from_shared(pair.client.clone(), ClientConfig::default());
        Harness {
            pair,
            server,
            client,
            state,
        }
    }

    fn count(&self, which: &AtomicUsize) -> usize {
        let _ = self;
        which.load(Ordering::SeqCst)
    }

    /// Waits until every started handler was cancelled and dropped and the
    /// server runs no call.
    async fn all_calls_gone(&self) {
        let st = &self.state;
        let done = || {
            let started = st.started.load(Ordering::SeqCst);
            st.cancelled.load(Ordering::SeqCst) == started
                && st.dropped.load(Ordering::SeqCst) == started
                && self.server.calls_in_flight() == 0
        };
        for _ in 0..(common::LIMIT.as_millis() / 10) {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "calls left behind: started {}, cancelled {}, dropped {}, sinks {}, in flight {}",
            self.count(&st.started),
            self.count(&st.cancelled),
            self.count(&st.dropped),
            self.count(&st.sinks),
            self.server.calls_in_flight()
        );
    }
}

/// Waits until `counter` stops moving (five equal samples 50 ms apart).
async fn settle(counter: &AtomicUsize) -> usize {
    let mut last = counter.load(Ordering::SeqCst);
    let mut stable = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter.load(Ordering::SeqCst);
        if now == last {
            stable += 1;
            if stable == 5 {
                return now;
            }
        } else {
            stable = 0;
            last = now;
        }
    }
    panic!("counter never settled (last {last})");
}

fn remote_code(err: &ClientError) -> i64 {
    err.code()
        .unwrap_or_else(|| panic!("expected a remote error, got {err:?}"))
}

mod cases {
    use super::*;

    pub async fn unary<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let out: Value = within(h.client.unary("echo", &json!({ "hello": "world" })))
            .await
            .unwrap();
        assert_eq!(out["hello"], "world");
        let who: Value = within(
            h.client
                .call("whoami")
                .metadata("app", "conformance")
                .unary(&json!({})),
        )
        .await
        .unwrap();
        assert_eq!(who["transport"], F::NAME);
        assert_eq!(who["app"], "conformance");
        assert_eq!(who["identity"], Value::Null);
    }

    pub async fn server_streaming<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let items: Vec<Value> = within(async {
            h.client
                .server_streaming("count", &json!({ "n": 3 }))
                .await
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
                .await
        })
        .await;
        assert_eq!(
            items,
            vec![json!({"i": 0}), json!({"i": 1}), json!({"i": 2})]
        );
        let none: Vec<Result<Value, ClientError>> = within(async {
            h.client
                .server_streaming("count", &json!({ "n": 0 }))
                .await
                .unwrap()
                .collect()
                .await
        })
        .await;
        assert!(none.is_empty());
    }

    pub async fn client_streaming<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let out: Value = within(async {
            let mut call = h.client.client_streaming("sum").await.unwrap();
            for v in 1..=3 {
                call.send(&json!({ "x": v })).await.unwrap();
            }
            call.finish().await.unwrap()
        })
        .await;
        assert_eq!(out, json!({ "sum": 6 }));
    }

    pub async fn duplex<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        within(async {
            let (mut sink, mut replies) = h.client.duplex::<Value, Value>("chat").await.unwrap();
            for m in ["a", "b", "c"] {
                sink.send(&json!({ "msg": m })).await.unwrap();
                let reply = replies.next().await.unwrap().unwrap();
                assert_eq!(reply, json!({ "reply": format!("re:{m}") }));
            }
            sink.finish().await.unwrap();
            assert!(replies.next().await.is_none());
        })
        .await;
    }

    pub async fn raw<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        within(async {
            let mut call = h
                .client
                .raw::<_, Value>("upper", &json!({ "mode": "upper" }))
                .await
                .unwrap();
            assert_eq!(call.leading, json!({ "accepted": "upper" }));
            call.writer.write_all(b"raw bytes ").await.unwrap();
            call.writer.write_all(b"here").await.unwrap();
            call.writer.shutdown().await.unwrap();
            let mut back = String::new();
            call.reader.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, "RAW BYTES HERE");
        })
        .await;
    }

    pub async fn raw_pipelined<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        within(async {
            // `peek` sends its leading response only once it has read the
            // caller's first bytes, so this passes only if they go first.
            let mut call = h
                .client
                .raw_pipelined::<_, Value>("peek", &json!({}))
                .await
                .unwrap();
            call.writer.write_all(b"hello raw bytes").await.unwrap();
            call.writer.shutdown().await.unwrap();
            let mut response = call.response.leading().await.unwrap();
            assert_eq!(response.leading, json!({ "first": "hello" }));
            let mut back = String::new();
            response.reader.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, " RAW BYTES");
            // The same over the raw form, bytes written once the leading
            // response came: `upper` answers at once.
            let call = h
                .client
                .raw_pipelined::<_, Value>("upper", &json!({ "mode": "upper" }))
                .await
                .unwrap();
            let mut writer = call.writer;
            let mut response = call.response.leading().await.unwrap();
            assert_eq!(response.leading, json!({ "accepted": "upper" }));
            writer.write_all(b"after").await.unwrap();
            writer.shutdown().await.unwrap();
            let mut back = String::new();
            response.reader.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, "AFTER");
        })
        .await;
    }

    /// A pipelined call the server refuses: bytes written past every window
    /// fail once the server stops reading, and the leading response says why.
    pub async fn raw_pipelined_refused<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let mut call = within(h.client.raw_pipelined::<_, Value>("nope", &json!({})))
            .await
            .unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0;
        let failed = within(async {
            while written < 4 * F::stream_bound() {
                if let Err(e) = call.writer.write_all(&chunk).await {
                    return e;
                }
                written += chunk.len();
            }
            panic!("{written} bytes written to a call the server refused");
        })
        .await;
        assert!(
            matches!(StreamError::from_io(&failed), Some(StreamError::Stopped(_))),
            "{failed:?}"
        );
        match within(call.response.leading()).await {
            Err(ClientError::Remote { code, .. }) => assert_eq!(code, -32601),
            Err(other) => panic!("expected −32601, got {other:?}"),
            Ok(r) => panic!("expected −32601, got {:?}", r.leading),
        }
        // The connection is still fine.
        let out: Value = within(h.client.unary("echo", &json!(1))).await.unwrap();
        assert_eq!(out, json!(1));
    }

    pub async fn auth<F: Fixture>() {
        let h = Harness::start::<F>(true).await;
        within(async {
            // Accepted: the identity reaches the handler, a fresh token comes back.
            let (who, md) = h
                .client
                .call("whoami")
                .bearer("let-me-in")
                .unary_with_metadata::<_, Value>(&json!({}))
                .await
                .unwrap();
            assert_eq!(who["identity"], "alice");
            let md = md.expect("result.metadata");
            assert_eq!(md["authorization"], "Bearer fresh-token");

            // The refreshed token works for the next call (here a stream,
            // whose first response carries the refresh).
            let fresh = md["authorization"]
                .as_str()
                .unwrap()
                .strip_prefix("Bearer ")
                .unwrap();
            let refreshing = h
                .client
                .with_config(ClientConfig::default().bearer("let-me-in"));
            let mut items = refreshing
                .server_streaming::<_, Value>("count", &json!({ "n": 2 }))
                .await
                .unwrap();
            assert_eq!(items.next().await.unwrap().unwrap()["i"], 0);
            assert_eq!(
                items.metadata().unwrap()["authorization"],
                "Bearer fresh-token"
            );
            assert_eq!(items.next().await.unwrap().unwrap()["i"], 1);
            assert!(items.next().await.is_none());
            assert_eq!(fresh, "fresh-token");

            // Rejected: a wrong token and no token.
            let err = h
                .client
                .call("whoami")
                .bearer("wrong")
                .unary::<_, Value>(&json!({}))
                .await
                .unwrap_err();
            assert_eq!(remote_code(&err), -32020, "{err:?}");
            let err = h
                .client
                .unary::<_, Value>("whoami", &json!({}))
                .await
                .unwrap_err();
            assert_eq!(remote_code(&err), -32020, "{err:?}");
            // A rejected call never reaches its handler.
            let err = h
                .client
                .call("hang")
                .bearer("wrong")
                .unary::<_, Value>(&json!({}))
                .await
                .unwrap_err();
            assert_eq!(remote_code(&err), -32020, "{err:?}");
        })
        .await;
        assert_eq!(h.count(&h.state.started), 0);
    }

    pub async fn timeout_by_server<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let err = within(h.client.unary::<_, Value>("slow", &json!({})))
            .await
            .unwrap_err();
        assert_eq!(remote_code(&err), -32008, "{err:?}");
        assert_eq!(h.count(&h.state.started), 1);
        h.all_calls_gone().await;
    }

    pub async fn timeout_by_client<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let err = within(
            h.client
                .call("hang")
                .timeout(Duration::from_millis(200))
                .unary::<_, Value>(&json!({})),
        )
        .await
        .unwrap_err();
        // Either side's timer may win the race: the local one, or the server's
        // (armed from `metadata.timeout`) answering −32008.
        assert!(
            matches!(err, ClientError::TimedOut(_)) || err.code() == Some(-32008),
            "{err:?}"
        );
        assert_eq!(h.state.requested_ms.load(Ordering::SeqCst), 200);
        h.all_calls_gone().await;
    }

    pub async fn cancel_unary<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let client = h.client.clone();
        let call = tokio::spawn(async move { client.unary::<_, Value>("hang", &json!({})).await });
        let st = h.state.clone();
        eventually("handler started", move || {
            st.started.load(Ordering::SeqCst) == 1
        })
        .await;
        assert_eq!(h.count(&h.state.cancelled), 0);
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        h.all_calls_gone().await;
        assert_eq!(h.count(&h.state.cancelled), 1);
        assert_eq!(h.count(&h.state.dropped), 1);
    }

    pub async fn cancel_stream<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let items = h.open_hang_stream().await;
        assert_eq!(h.count(&h.state.cancelled), 0);
        drop(items);
        h.all_calls_gone().await;
        assert_eq!(h.count(&h.state.started), 1);
    }

    pub async fn unknown_method<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let err = within(h.client.unary::<_, Value>("nope", &json!({})))
            .await
            .unwrap_err();
        match err {
            ClientError::Remote {
                code,
                message,
                data,
                ..
            } => {
                assert_eq!(code, -32601);
                assert!(message.contains("nope"), "{message}");
                let data = data.expect("error data");
                assert_eq!(data["code"], -32601);
                assert!(data["message"].is_string());
            }
            other => panic!("expected −32601, got {other:?}"),
        }
        // The connection is still fine.
        let out: Value = within(h.client.unary("echo", &json!(1))).await.unwrap();
        assert_eq!(out, json!(1));
    }

    pub async fn handler_error<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let err = within(h.client.unary::<_, Value>("fail", &json!({})))
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), Some("TypeError"));
        match err {
            ClientError::Remote {
                code,
                message,
                data,
                ..
            } => {
                assert_eq!(code, -32006);
                assert_eq!(message, "handler exploded");
                let data = data.expect("error data");
                assert_eq!(data["type"], "TypeError");
                assert_eq!(data["message"], "handler exploded");
                assert_eq!(data["data"]["detail"], 42);
                assert!(data["data"]["stack"].is_string(), "{data}");
            }
            other => panic!("expected −32006, got {other:?}"),
        }
    }

    /// A JS unary caller ends its side only after it read the response, and
    /// fails if that side was stopped first (QUIC). The server must not stop
    /// a caller's input just because it answered: not after a result, not
    /// after a refusal (auth, unknown method).
    pub async fn caller_finishes_after_the_response<F: Fixture>() {
        let h = Harness::start::<F>(true).await;
        for (method, token, code) in [
            ("whoami", "let-me-in", None),
            ("whoami", "wrong", Some(-32020)),
            ("nope", "let-me-in", Some(-32601)),
        ] {
            within(async {
                let (mut send, recv) = h.pair.client.open_stream().await.unwrap().split();
                let params = json!({ "metadata": { "authorization": format!("Bearer {token}"), "timeout": null } });
                let header = strand_rpc_core::message::encode_request(method, &params).unwrap();
                send.write_all(&header).await.unwrap();
                let mut reader = MessageReader::new(recv, 1 << 20);
                let response: Value =
                    serde_json::from_slice(&reader.next().await.unwrap().unwrap()).unwrap();
                assert_eq!(response["error"]["code"].as_i64(), code, "{response}");
                send.shutdown()
                    .await
                    .unwrap_or_else(|e| panic!("{method} with {token}: finishing after the response: {e}"));
                assert!(reader.next().await.unwrap().is_none());
            })
            .await;
        }
    }

    pub async fn payload_16mib<F: Fixture>() {
        const TOTAL: usize = 16 << 20;
        let h = Harness::start::<F>(false).await;
        let call = within(h.client.raw::<_, Value>("echo_raw", &json!({})))
            .await
            .unwrap();
        assert_eq!(call.leading, json!({ "echoing": true }));
        let send = write_pattern(call.writer, TOTAL);
        let received = within(read_pattern(call.reader)).await;
        within(send).await.unwrap();
        assert_eq!(received, TOTAL);
    }

    /// Bulk bytes pipelined behind the header (in the header's first
    /// chunk, past the server's limit on a first message) come back whole.
    pub async fn raw_pipelined_4mib<F: Fixture>() {
        const TOTAL: usize = 4 << 20;
        let h = Harness::start::<F>(false).await;
        let call = within(h.client.raw_pipelined::<_, Value>("echo_raw", &json!({})))
            .await
            .unwrap();
        let send = write_pattern(call.writer, TOTAL);
        let response = within(call.response.leading()).await.unwrap();
        assert_eq!(response.leading, json!({ "echoing": true }));
        let received = within(read_pattern(response.reader)).await;
        within(send).await.unwrap();
        assert_eq!(received, TOTAL);
    }

    pub async fn concurrent_1000<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let calls: Vec<_> = (0..1000u64)
            .map(|i| {
                let client = h.client.clone();
                tokio::spawn(
                    async move { client.unary::<_, Value>("echo", &json!({ "i": i })).await },
                )
            })
            .collect();
        let results = within(futures_util::future::join_all(calls)).await;
        for (i, r) in results.into_iter().enumerate() {
            let v = r.unwrap().unwrap_or_else(|e| panic!("call {i}: {e:?}"));
            assert_eq!(v["i"], i as u64);
        }
        let server = h.server.clone();
        eventually("no call in flight", move || server.calls_in_flight() == 0).await;
        h.pair.streams_released().await;
    }

    pub async fn backpressure_server_to_client<F: Fixture>() {
        const ITEM: usize = 16 * 1024;
        let bound = F::stream_bound();
        let n = bound / ITEM + 64;
        let h = Harness::start::<F>(false).await;
        let mut stalled = within(
            h.client
                .server_streaming::<_, Value>("flood", &json!({ "n": n, "size": ITEM })),
        )
        .await
        .unwrap();
        let produced = settle(&h.state.produced).await;
        h.assert_stalled_within_bound(produced, n, ITEM, bound, Side::Server);
        // The stalled stream holds up no other call.
        within(async {
            let out: Value = h.client.unary("echo", &json!("other")).await.unwrap();
            assert_eq!(out, json!("other"));
            let items: Vec<_> = h
                .client
                .server_streaming::<_, Value>("count", &json!({ "n": 100 }))
                .await
                .unwrap()
                .collect()
                .await;
            assert_eq!(items.len(), 100);
        })
        .await;
        // Nothing was lost.
        let mut next = 0;
        within(async {
            while let Some(item) = stalled.next().await {
                assert_eq!(item.unwrap()["i"], next);
                next += 1;
            }
        })
        .await;
        assert_eq!(next as usize, n);
    }

    pub async fn backpressure_client_to_server<F: Fixture>() {
        const ITEM: usize = 16 * 1024;
        let bound = F::stream_bound();
        let n = bound / ITEM + 64;
        let h = Harness::start::<F>(false).await;
        let mut call = within(h.client.client_streaming::<Value, Value>("sink"))
            .await
            .unwrap();
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let pad = "y".repeat(ITEM);
        let sender = tokio::spawn(async move {
            for i in 0..n {
                call.send(&json!({ "i": i, "pad": pad })).await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
            }
            call.finish().await
        });
        let settled = settle(&sent).await;
        assert_eq!(h.count(&h.state.sinks), 1);
        h.assert_stalled_within_bound(settled, n, ITEM, bound, Side::Client);
        within(async {
            let out: Value = h.client.unary("echo", &json!("other")).await.unwrap();
            assert_eq!(out, json!("other"));
            let mut other = h
                .client
                .client_streaming::<Value, Value>("sum")
                .await
                .unwrap();
            other.send(&json!({ "x": 5 })).await.unwrap();
            assert_eq!(other.finish().await.unwrap(), json!({ "sum": 5 }));
        })
        .await;
        h.state.gate.0.add_permits(1);
        let out = within(sender).await.unwrap().unwrap();
        assert_eq!(out, json!({ "count": n }));
    }

    async fn killed<F: Fixture>(by_server: bool) {
        let h = Harness::start::<F>(false).await;
        let client = h.client.clone();
        let unary = tokio::spawn(async move { client.unary::<_, Value>("hang", &json!({})).await });
        let mut stream = h.open_hang_stream().await;
        let mut sink = within(h.client.client_streaming::<Value, Value>("sink"))
            .await
            .unwrap();
        within(sink.send(&json!({ "i": 0 }))).await.unwrap();
        let st = h.state.clone();
        let server = h.server.clone();
        eventually("three calls running", move || {
            st.started.load(Ordering::SeqCst) == 2
                && st.sinks.load(Ordering::SeqCst) == 1
                && server.calls_in_flight() == 3
        })
        .await;

        if by_server {
            h.pair.server.close(CloseCode::Internal, "killed");
        } else {
            h.pair.client.close(CloseCode::Internal, "killed");
        }

        // Every call fails on the client, none looks like a clean end.
        let err = within(unary).await.unwrap().unwrap_err();
        assert!(!matches!(err, ClientError::Remote { .. }), "{err:?}");
        match within(stream.next()).await {
            Some(Err(_)) => {}
            other => panic!("stream after the kill: {other:?}"),
        }
        assert!(within(sink.finish()).await.is_err());
        drop(stream);
        // Every handler was cancelled and dropped; no call, no stream left.
        h.all_calls_gone().await;
        assert_eq!(h.count(&h.state.cancelled), 2);
        h.pair.streams_released().await;
        // Both sides see the connection closed.
        within(h.pair.client.closed()).await;
        within(h.pair.server.closed()).await;
    }

    pub async fn killed_by_server<F: Fixture>() {
        killed::<F>(true).await;
    }

    pub async fn killed_by_client<F: Fixture>() {
        killed::<F>(false).await;
    }

    pub async fn graceful_shutdown<F: Fixture>() {
        let h = Harness::start::<F>(false).await;
        let c1 = h.client.clone();
        let draining = tokio::spawn(async move { c1.unary::<_, Value>("gate", &json!({})).await });
        let c2 = h.client.clone();
        let aborted = tokio::spawn(async move { c2.unary::<_, Value>("hang", &json!({})).await });
        let st = h.state.clone();
        let server = h.server.clone();
        eventually("two calls running", move || {
            st.started.load(Ordering::SeqCst) == 2 && server.calls_in_flight() == 2
        })
        .await;

        let server = h.server.clone();
        let shutdown = tokio::spawn(async move { server.shutdown(Duration::from_secs(2)).await });
        // New calls are refused with −32001 once shutdown started.
        let refused = within(async {
            loop {
                match h.client.unary::<_, Value>("echo", &json!(0)).await {
                    Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    Err(e) => break e,
                }
            }
        })
        .await;
        assert_eq!(remote_code(&refused), -32001, "{refused:?}");
        // The call that had started drains.
        h.state.gate.0.add_permits(1);
        let out = within(draining).await.unwrap().unwrap();
        assert_eq!(out, json!("drained"));
        // The one that never ends is aborted with −32001 after the grace.
        let err = within(aborted).await.unwrap().unwrap_err();
        assert_eq!(remote_code(&err), -32001, "{err:?}");
        within(shutdown).await.unwrap();
        assert_eq!(h.server.calls_in_flight(), 0);
        h.all_calls_gone().await;
    }
}

/// Instantiates every case for one fixture under one test attribute.
macro_rules! suite {
    ($module:ident, $fixture:ty, $attr:meta) => {
        suite!(@cases $module, $fixture, $attr;
            unary, server_streaming, client_streaming, duplex, raw,
            raw_pipelined, raw_pipelined_refused, raw_pipelined_4mib, auth,
            timeout_by_server, timeout_by_client, cancel_unary, cancel_stream,
            unknown_method, handler_error, caller_finishes_after_the_response,
            payload_16mib, concurrent_1000,
            backpressure_server_to_client, backpressure_client_to_server,
            killed_by_server, killed_by_client, graceful_shutdown);
    };
    (@cases $module:ident, $fixture:ty, $attr:meta; $($case:ident),* $(,)?) => {
        mod $module {
            use super::*;
            $(
                #[$attr]
                async fn $case() {
                    cases::$case::<$fixture>().await;
                }
            )*
        }
    };
}

suite!(memory, Memory, tokio::test(start_paused = true));
suite!(
    ws,
    Ws,
    tokio::test(flavor = "multi_thread", worker_threads = 2)
);
suite!(
    ws_h2,
    WsH2,
    tokio::test(flavor = "multi_thread", worker_threads = 2)
);
suite!(
    quic,
    Quic,
    tokio::test(flavor = "multi_thread", worker_threads = 2)
);
