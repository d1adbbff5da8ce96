//! The built-in demo service, shared by `strand demo`, `strand serve`, the
//! examples and the tests. (The checks `strand demo` runs against it live in
//! the CLI.)
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
//! | `stats` | unary | the caller's connection's flow-control figures: `{"transport", "streams"}`, `streams` a list of `{"id", "buffered", "peer_credit", "window", "send_credit", "in_flight", "queued_send"}` on ws (see [`crate::ws::StreamStats`]), `null` on other carriers |
//! | `rpc.discover` | unary | with the `openrpc` feature: the OpenRPC document of the methods above (`document()`) |
//!
//! It is a `#[strand::service]`: [`Demo`] is the trait, [`DemoClient`] a
//! typed client of it.
//!
//! `echo` and `chat` return params without the `metadata` key that carries
//! the call's timeout and authorization (docs/protocol.md, "Metadata"): the caller gets
//! back what it sent.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strand_rpc_core::message::error_codes;
use strand_rpc_core::middleware::{AuthLayer, BearerTokens, Credentials, Verified, Verifier};
use strand_rpc_core::server::{Incoming, RawBody, RawReader, Router, Server};
use strand_rpc_core::{Context, RpcError};
use tokio::io::AsyncReadExt;

/// The eight demo methods (and `rpc.discover` answering with `document()`,
/// with the `openrpc` feature).
pub fn router() -> Router {
    let router = DemoService.into_router();
    #[cfg(feature = "openrpc")]
    let router = router.discover(document());
    router
}

/// The demo service's OpenRPC document (docs/openrpc.md), served as
/// `rpc.discover` by [`router`].
#[cfg(feature = "openrpc")]
pub fn document() -> Value {
    let mut document = DemoClient::openrpc();
    document["info"]["title"] = json!("strand demo");
    document
}

/// The demo service of `strand serve`: one method of every call kind, and a few to inspect a call.
#[crate::service(crate = "crate")]
pub trait Demo {
    /// Returns its params (without `metadata`).
    async fn echo(&self, ctx: Context, params: Value) -> Result<Value, RpcError>;

    /// Streams `{"i":0}` to `{"i":n-1}`.
    fn count(
        &self,
        ctx: Context,
        params: CountParams,
    ) -> impl Stream<Item = Result<CountItem, RpcError>>;

    /// Adds the `x` of every message.
    async fn sum(&self, ctx: Context, messages: Incoming<SumParams>)
        -> Result<SumResult, RpcError>;

    /// Echoes each message's params (without `metadata`) as it arrives.
    fn chat(
        &self,
        ctx: Context,
        messages: Incoming<Value>,
    ) -> impl Stream<Item = Result<Value, RpcError>>;

    /// Answers `{"ok":true}`, then the input bytes ASCII-uppercased.
    async fn upper(
        &self,
        ctx: Context,
        params: Value,
        input: RawReader,
    ) -> Result<(UpperLead, RawBody), RpcError>;

    /// The caller's authenticated identity, or null.
    async fn whoami(&self, ctx: Context, params: Value) -> Result<Option<WhoAmI>, RpcError>;

    /// Sleeps `ms` milliseconds; honours cancellation and deadlines.
    async fn sleep(&self, ctx: Context, params: SleepParams) -> Result<Slept, RpcError>;

    /// The caller's connection's flow-control figures.
    async fn stats(&self, ctx: Context, params: Value) -> Result<Stats, RpcError>;
}

/// The demo service's implementation.
struct DemoService;

impl Demo for DemoService {
    async fn echo(&self, _ctx: Context, params: Value) -> Result<Value, RpcError> {
        Ok(without_metadata(params))
    }

    fn count(
        &self,
        _ctx: Context,
        params: CountParams,
    ) -> impl Stream<Item = Result<CountItem, RpcError>> + Send + 'static {
        futures_util::stream::iter((0..params.n).map(|i| Ok(CountItem { i })))
    }

    async fn sum(
        &self,
        _ctx: Context,
        mut messages: Incoming<SumParams>,
    ) -> Result<SumResult, RpcError> {
        let mut total = Total::default();
        while let Some(message) = messages.next().await {
            total.add(&message?.x);
        }
        Ok(SumResult {
            sum: total.into_value(),
        })
    }

    fn chat(
        &self,
        _ctx: Context,
        messages: Incoming<Value>,
    ) -> impl Stream<Item = Result<Value, RpcError>> + Send + 'static {
        messages.map(|m| m.map(without_metadata))
    }

    async fn upper(
        &self,
        _ctx: Context,
        _params: Value,
        input: RawReader,
    ) -> Result<(UpperLead, RawBody), RpcError> {
        Ok((
            UpperLead { ok: true },
            RawBody::from_stream(uppercase(input)),
        ))
    }

    async fn whoami(&self, ctx: Context, _params: Value) -> Result<Option<WhoAmI>, RpcError> {
        Ok(ctx.identity().map(|id| WhoAmI {
            name: id.name.clone(),
            attributes: id.attributes.clone(),
        }))
    }

    async fn sleep(&self, ctx: Context, params: SleepParams) -> Result<Slept, RpcError> {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(params.ms)) => Ok(Slept { slept: params.ms }),
            _ = ctx.cancelled() => Err(RpcError::new(error_codes::HANDLER_ABORTED, "sleep cancelled")),
        }
    }

    async fn stats(&self, ctx: Context, _params: Value) -> Result<Stats, RpcError> {
        Ok(Stats(connection_stats(&ctx)))
    }
}

/// The `stats` method's answer: what the mux knows of every stream of the
/// caller's connection (ws), so that a client in another process can see
/// how much the server holds for a stream whose reader stopped.
fn connection_stats(ctx: &Context) -> Value {
    #[cfg(feature = "ws")]
    if let Some(probe) = crate::ws::StatsProbe::of(ctx.peer()) {
        let streams: Vec<Value> = probe
            .streams()
            .into_iter()
            .map(|(id, s)| {
                json!({
                    "id": id,
                    "buffered": s.buffered,
                    "peer_credit": s.peer_credit,
                    "window": s.window,
                    "send_credit": s.send_credit,
                    "in_flight": s.in_flight,
                    "queued_send": s.queued_send,
                })
            })
            .collect();
        return json!({ "transport": ctx.peer().transport, "streams": streams });
    }
    json!({ "transport": ctx.peer().transport, "streams": null })
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

/// A server for [`router`] whose callers authenticate with `token` (identity
/// `"demo"`) and are handed `fresh` back with every authenticated call
/// (`result.metadata.authorization`, docs/protocol.md, "Metadata"); `fresh`
/// is accepted too, as identity `"refreshed"`, so `whoami` tells which of
/// the two a call carried.
pub fn server_with_refresh(token: &str, fresh: &str) -> Server {
    let verifier = Refreshing {
        tokens: BearerTokens::new()
            .token(token, "demo")
            .token(fresh, "refreshed"),
        fresh: fresh.to_string(),
    };
    Server::builder(router())
        .layer(AuthLayer::new(verifier))
        .build()
}

/// Bearer tokens, with a fresh one handed back on every accepted call.
struct Refreshing {
    tokens: BearerTokens,
    fresh: String,
}

#[async_trait]
impl Verifier for Refreshing {
    async fn verify(&self, credentials: Credentials, ctx: &Context) -> Result<Verified, RpcError> {
        let verified = self.tokens.verify(credentials, ctx).await?;
        Ok(verified.with_refreshed_token(self.fresh.clone()))
    }
}

/// How far to count.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct CountParams {
    /// Items to send: `{"i":0}` to `{"i":n-1}`.
    pub n: u64,
}

/// One item of `count`.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct CountItem {
    /// From 0 to n-1.
    pub i: u64,
}

/// One number to add.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct SumParams {
    /// An integer or a float.
    pub x: serde_json::Number,
}

/// The answer of `sum`.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct SumResult {
    /// An exact integer while every input is an integer that fits, a float otherwise.
    #[cfg_attr(feature = "openrpc", schemars(with = "serde_json::Number"))]
    pub sum: Value,
}

/// The leading response of `upper`.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct UpperLead {
    /// Always true.
    pub ok: bool,
}

/// The caller's authenticated identity.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct WhoAmI {
    /// The identity's name.
    pub name: String,
    /// What the authentication layer attached to it.
    pub attributes: serde_json::Map<String, Value>,
}

/// How long to sleep.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct SleepParams {
    /// Milliseconds.
    pub ms: u64,
}

/// The answer of `sleep`.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openrpc", derive(schemars::JsonSchema))]
pub struct Slept {
    /// The milliseconds slept.
    pub slept: u64,
}

/// The caller's connection's flow-control figures: `{"transport", "streams"}`,
/// `streams` a list of `{"id", "buffered", "peer_credit", "window",
/// "send_credit", "in_flight", "queued_send"}` on ws (see
/// [`crate::ws::StreamStats`]), `null` on other carriers.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct Stats(pub Value);

#[cfg(feature = "openrpc")]
impl schemars::JsonSchema for Stats {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Stats".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        /// The caller's connection's flow-control figures.
        #[derive(schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Stats {
            /// The carrier: `ws`, `quic`, `memory`.
            transport: String,
            /// Per stream (ws only): `id`, `buffered`, `peer_credit`, `window`,
            /// `send_credit`, `in_flight`, `queued_send`; null on other carriers.
            streams: Option<Vec<serde_json::Map<String, Value>>>,
        }
        Stats::json_schema(generator)
    }
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
