//! Behaviour of a generated service: all five call kinds and a renamed
//! method, served over the memory transport and called through the generated
//! client (and, for the wire names, through the untyped client).

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strand::core::memory;
use strand::core::middleware::{AuthLayer, BearerTokens};
use strand::core::server::{CallKind, ServerBuilder};
use strand::{
    Client, ClientError, Context, Incoming, RawBody, RawReader, Router, RpcError, Server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Two numbers to add.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Add {
    a: i64,
    b: i64,
}

/// How far to count.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Count {
    n: u32,
}

/// One number.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Num {
    n: i64,
}

/// A chat message.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Msg {
    text: String,
}

/// How a raw call transforms its bytes.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Mode {
    upper: bool,
}

/// A raw call's leading response.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Ack {
    ready: bool,
}

/// No params.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Empty {}

/// What `inspect` saw of its call.
#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Seen {
    method: String,
    tag: Option<String>,
    authorization: Option<String>,
    identity: Option<String>,
    has_deadline: bool,
    remaining_ms: Option<u64>,
}

/// The service under test: every call kind, a renamed method, and two
/// methods that report on the call's `Context`.
#[strand::service]
pub trait Calc {
    /// Adds two numbers. Idempotent: a reconnecting client may send it again.
    #[rpc(idempotent)]
    async fn add(&self, ctx: Context, req: Add) -> Result<i64, RpcError>;

    /// Counts from 0 to `n - 1`.
    fn count(&self, ctx: Context, req: Count) -> impl Stream<Item = Result<u32, RpcError>>;

    /// Sums the numbers sent.
    async fn sum(&self, ctx: Context, input: Incoming<Num>) -> Result<i64, RpcError>;

    /// Echoes each message, reversed.
    fn chat(
        &self,
        ctx: Context,
        input: Incoming<Msg>,
    ) -> impl Stream<Item = Result<Msg, RpcError>> + Send + 'static;

    /// Upper-cases (or lower-cases) the bytes sent.
    async fn upper(
        &self,
        ctx: Context,
        req: Mode,
        input: RawReader,
    ) -> Result<(Ack, RawBody), RpcError>;

    /// Running sums, under the JS manifest's name.
    #[rpc(name = "sumStream")]
    fn sum_stream(
        &self,
        ctx: Context,
        input: Incoming<Num>,
    ) -> impl Stream<Item = Result<i64, RpcError>> + Send + 'static;

    /// Reports what the handler sees of its context.
    async fn inspect(&self, ctx: Context, req: Empty) -> Result<Seen, RpcError>;

    /// Waits until the call is cancelled.
    async fn hang(&self, ctx: Context, req: Empty) -> Result<Empty, RpcError>;

    /// Counts up forever.
    fn ticks(
        &self,
        ctx: Context,
        req: Empty,
    ) -> impl Stream<Item = Result<u64, RpcError>> + Send + 'static;

    /// Waits for cancellation, under its own short server-side timeout.
    #[rpc(timeout_ms = 250)]
    async fn nap(&self, ctx: Context, _req: Empty) -> Result<Empty, RpcError> {
        ctx.cancelled().await;
        Ok(Empty {})
    }

    /// A provided method: the trait's default body is served as is.
    async fn ping(&self, _ctx: Context, _req: Empty) -> Result<String, RpcError> {
        Ok("pong".to_string())
    }
}

/// Reports handler events to the test.
struct CalcImpl {
    events: mpsc::UnboundedSender<&'static str>,
}

/// Sends `event` when dropped (the handler's future was dropped).
struct DropGuard(mpsc::UnboundedSender<&'static str>, &'static str);

impl Drop for DropGuard {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

impl Calc for CalcImpl {
    async fn add(&self, _ctx: Context, req: Add) -> Result<i64, RpcError> {
        req.a
            .checked_add(req.b)
            .ok_or_else(|| RpcError::handler("RangeError", "overflow"))
    }

    fn count(
        &self,
        _ctx: Context,
        req: Count,
    ) -> impl Stream<Item = Result<u32, RpcError>> + Send + 'static {
        stream::iter((0..req.n).map(Ok))
    }

    async fn sum(&self, _ctx: Context, mut input: Incoming<Num>) -> Result<i64, RpcError> {
        let mut total = 0;
        while let Some(num) = input.next().await {
            total += num?.n;
        }
        Ok(total)
    }

    fn chat(
        &self,
        _ctx: Context,
        input: Incoming<Msg>,
    ) -> impl Stream<Item = Result<Msg, RpcError>> + Send + 'static {
        input.map(|m| {
            m.map(|m| Msg {
                text: m.text.chars().rev().collect(),
            })
        })
    }

    async fn upper(
        &self,
        _ctx: Context,
        req: Mode,
        input: RawReader,
    ) -> Result<(Ack, RawBody), RpcError> {
        // Answer at once, then transform the bytes as they arrive.
        let body = stream::unfold(Some(input), move |input| async move {
            let mut input = input?;
            let mut buf = vec![0u8; 1024];
            match input.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    if req.upper {
                        buf.make_ascii_uppercase();
                    } else {
                        buf.make_ascii_lowercase();
                    }
                    Some((Ok(buf.into()), Some(input)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        Ok((Ack { ready: true }, RawBody::from_stream(body)))
    }

    fn sum_stream(
        &self,
        _ctx: Context,
        input: Incoming<Num>,
    ) -> impl Stream<Item = Result<i64, RpcError>> + Send + 'static {
        input.scan(0i64, |total, num| {
            let item = num.map(|num| {
                *total += num.n;
                *total
            });
            std::future::ready(Some(item))
        })
    }

    async fn inspect(&self, ctx: Context, _req: Empty) -> Result<Seen, RpcError> {
        Ok(Seen {
            method: ctx.method().to_string(),
            tag: ctx
                .metadata()
                .get("tag")
                .and_then(Value::as_str)
                .map(String::from),
            authorization: ctx.authorization().map(String::from),
            identity: ctx.identity().map(|i| i.name.clone()),
            has_deadline: ctx.deadline().is_some(),
            remaining_ms: ctx.remaining().map(|d| d.as_millis() as u64),
        })
    }

    fn ticks(
        &self,
        _ctx: Context,
        _req: Empty,
    ) -> impl Stream<Item = Result<u64, RpcError>> + Send + 'static {
        let guard = DropGuard(self.events.clone(), "ticks dropped");
        stream::iter(0..).map(move |i| {
            let _ = &guard;
            Ok(i)
        })
    }

    async fn hang(&self, ctx: Context, _req: Empty) -> Result<Empty, RpcError> {
        let _guard = DropGuard(self.events.clone(), "hang dropped");
        let _ = self.events.send("hang started");
        ctx.cancelled().await;
        let _ = self.events.send("hang cancelled");
        Ok(Empty {})
    }
}

/// The server's timeout for calls that do not ask for one.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

struct Harness {
    client: CalcClient,
    raw: Client,
    events: mpsc::UnboundedReceiver<&'static str>,
    _server: Server,
}

fn serve() -> Harness {
    serve_with(|builder| builder)
}

fn serve_with(configure: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Harness {
    let (tx, events) = mpsc::unbounded_channel();
    let router: Router = CalcImpl { events: tx }.into_router();
    let server = configure(Server::builder(router).default_timeout(DEFAULT_TIMEOUT)).build();
    let (client_side, server_side) = memory::pair();
    server.spawn_connection(Arc::new(server_side));
    let raw = Client::new(client_side);
    Harness {
        client: CalcClient::new(raw.clone()),
        raw,
        events,
        _server: server,
    }
}

#[tokio::test]
async fn unary_calls_return_the_handlers_result() {
    let h = serve();
    assert_eq!(h.client.add(&Add { a: 2, b: 40 }).await.unwrap(), 42);
    let err = h.client.add(&Add { a: i64::MAX, b: 1 }).await.unwrap_err();
    assert_eq!(err.error_type(), Some("RangeError"), "{err:?}");
    assert_eq!(h.client.ping(&Empty {}).await.unwrap(), "pong");
}

#[tokio::test]
async fn server_streaming_yields_every_item() {
    let h = serve();
    let items: Vec<u32> = h
        .client
        .count(&Count { n: 5 })
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(items, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn client_streaming_sums_the_messages() {
    let h = serve();
    let mut call = h.client.sum().await.unwrap();
    for n in [1, 2, 3, 4] {
        call.send(&Num { n }).await.unwrap();
    }
    assert_eq!(call.finish().await.unwrap(), 10);
}

#[tokio::test]
async fn duplex_answers_each_message() {
    let h = serve();
    let (mut sink, mut responses) = h.client.chat().await.unwrap();
    for text in ["abc", "strand"] {
        sink.send(&Msg { text: text.into() }).await.unwrap();
        let reply = responses.next().await.unwrap().unwrap();
        assert_eq!(reply.text, text.chars().rev().collect::<String>());
    }
    sink.finish().await.unwrap();
    assert!(responses.next().await.is_none());
}

#[tokio::test]
async fn raw_calls_carry_bytes_both_ways() {
    let h = serve();
    let mut call = h.client.upper(&Mode { upper: true }).await.unwrap();
    assert_eq!(call.leading, Ack { ready: true });
    call.writer.write_all(b"hello, raw").await.unwrap();
    call.writer.shutdown().await.unwrap();
    let mut back = Vec::new();
    call.reader.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"HELLO, RAW");
}

#[tokio::test]
async fn a_raw_method_also_gets_a_pipelined_client_method() {
    let h = serve();
    // The bytes go before the leading response is read.
    let mut call = h
        .client
        .upper_pipelined(&Mode { upper: true })
        .await
        .unwrap();
    call.writer.write_all(b"sent early").await.unwrap();
    call.writer.shutdown().await.unwrap();
    let mut response = call.response.leading().await.unwrap();
    assert_eq!(response.leading, Ack { ready: true });
    let mut back = Vec::new();
    response.reader.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"SENT EARLY");
}

#[tokio::test]
async fn the_renamed_method_goes_on_the_wire_under_its_wire_name() {
    let h = serve();

    // Through the generated client.
    let (mut sink, responses) = h.client.sum_stream().await.unwrap();
    for n in [1, 2, 3] {
        sink.send(&Num { n }).await.unwrap();
    }
    sink.finish().await.unwrap();
    let sums: Vec<i64> = responses.map(Result::unwrap).collect().await;
    assert_eq!(sums, [1, 3, 6]);

    // Through the untyped client, by the wire name.
    let (mut sink, responses) = h.raw.duplex::<Value, i64>("sumStream").await.unwrap();
    sink.send(&json!({ "n": 5 })).await.unwrap();
    sink.send(&json!({ "n": 6 })).await.unwrap();
    sink.finish().await.unwrap();
    let sums: Vec<i64> = responses.map(Result::unwrap).collect().await;
    assert_eq!(sums, [5, 11]);

    // The Rust name is not a route.
    let (mut sink, mut responses) = h.raw.duplex::<Value, i64>("sum_stream").await.unwrap();
    sink.send(&json!({ "n": 1 })).await.unwrap();
    let err = responses.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(-32601), "{err:?}");

    // Unrenamed methods use the Rust name as written.
    let sum: i64 = h
        .raw
        .unary("add", &json!({ "a": 1, "b": 2 }))
        .await
        .unwrap();
    assert_eq!(sum, 3);
}

#[tokio::test]
async fn the_manifest_matches_the_router() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let router = CalcImpl { events: tx }.into_router();
    let mut manifest: Vec<(String, CallKind)> = CalcClient::MANIFEST
        .iter()
        .map(|(name, kind)| (name.to_string(), *kind))
        .collect();
    assert_eq!(
        manifest[..6],
        [
            ("add".to_string(), CallKind::Unary),
            ("count".to_string(), CallKind::ServerStreaming),
            ("sum".to_string(), CallKind::ClientStreaming),
            ("chat".to_string(), CallKind::Duplex),
            ("upper".to_string(), CallKind::Raw),
            ("sumStream".to_string(), CallKind::Duplex),
        ]
    );
    manifest.sort();
    assert_eq!(manifest, router.methods());
    assert_eq!(
        router.method_timeout("nap"),
        Some(Duration::from_millis(250))
    );
    assert_eq!(router.method_timeout("add"), None);
}

#[tokio::test(start_paused = true)]
async fn a_method_timeout_applies_when_the_caller_sets_none() {
    let h = serve();
    let start = tokio::time::Instant::now();
    let err = h.client.nap(&Empty {}).await.unwrap_err();
    assert_eq!(err.code(), Some(-32008), "{err:?}");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < DEFAULT_TIMEOUT,
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_context_reaches_the_handler() {
    let h = serve();

    // No timeout asked for: the server's default applies.
    let seen = h.client.inspect(&Empty {}).await.unwrap();
    assert_eq!(
        seen,
        Seen {
            method: "inspect".into(),
            tag: None,
            authorization: None,
            identity: None,
            has_deadline: true,
            remaining_ms: Some(DEFAULT_TIMEOUT.as_millis() as u64),
        }
    );

    let seen = h
        .client
        .with_timeout(Duration::from_secs(5))
        .with_metadata("tag", "blue")
        .with_bearer("t0ken")
        .inspect(&Empty {})
        .await
        .unwrap();
    assert_eq!(seen.method, "inspect");
    assert_eq!(seen.tag.as_deref(), Some("blue"));
    assert_eq!(seen.authorization.as_deref(), Some("Bearer t0ken"));
    assert!(seen.has_deadline);
    let remaining = seen.remaining_ms.unwrap();
    assert!(remaining > 0 && remaining <= 5000, "{remaining}");

    // The options stay on the copy; the original client is unchanged.
    assert_eq!(h.client.inspect(&Empty {}).await.unwrap().tag, None);
}

#[tokio::test]
async fn the_identity_set_by_middleware_reaches_the_handler() {
    let h = serve_with(|b| b.layer(AuthLayer::new(BearerTokens::new().token("t0ken", "alice"))));
    let seen = h
        .client
        .with_bearer("t0ken")
        .inspect(&Empty {})
        .await
        .unwrap();
    assert_eq!(seen.identity.as_deref(), Some("alice"));
    let err = h.client.inspect(&Empty {}).await.unwrap_err();
    assert_eq!(err.code(), Some(-32020), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_travels_and_cancels_the_handler() {
    let mut h = serve();
    let err = h
        .client
        .with_timeout(Duration::from_millis(200))
        .hang(&Empty {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::TimedOut(_)) || err.code() == Some(-32008),
        "{err:?}"
    );
    assert_eq!(h.events.recv().await, Some("hang started"));
    // The server's deadline (or the caller's reset) drops the handler's future.
    wait_for(&mut h.events, "hang dropped", Duration::from_secs(1)).await;
}

/// Waits for `event` for at most `within` of (paused, virtual) time, so that
/// a missing event fails the test instead of hanging it.
async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<&'static str>,
    event: &'static str,
    within: Duration,
) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(within, async {
        while let Some(e) = events.recv().await {
            seen.push(e);
            if e == event {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "waiting for {event:?}, saw {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn dropping_a_generated_call_cancels_the_handler() {
    let mut h = serve();
    let client = h.client.clone();
    let call = tokio::spawn(async move { client.hang(&Empty {}).await });
    assert_eq!(h.events.recv().await, Some("hang started"));
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    // The server cancels the handler: its future is dropped, long before the
    // server's default timeout could have done it.
    wait_for(&mut h.events, "hang dropped", DEFAULT_TIMEOUT / 10).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_a_generated_response_stream_drops_the_handlers_stream() {
    let mut h = serve();
    let mut ticks = h.client.ticks(&Empty {}).await.unwrap();
    assert_eq!(ticks.next().await.unwrap().unwrap(), 0);
    assert_eq!(ticks.next().await.unwrap().unwrap(), 1);
    drop(ticks);
    wait_for(&mut h.events, "ticks dropped", DEFAULT_TIMEOUT / 10).await;
}
