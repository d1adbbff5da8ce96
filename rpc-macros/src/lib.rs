//! `#[strand::service]`: a strand service from a Rust trait.
//!
//! Put the attribute on a trait whose methods are RPCs. The macro generates
//!
//! - **the server side**: the trait itself, made spawnable (see below), with a
//!   provided method `into_router(self) -> strand::Router` that registers every
//!   method under its wire name. Routers merge (`Router::merge`), so one server
//!   can serve several services.
//! - **the client side**: `{Trait}Client`, wrapping a [`strand::Client`], with
//!   one method per RPC returning strand's client types, per-call options
//!   (`with_timeout`, `with_metadata`, `with_bearer`) and a `MANIFEST` constant
//!   listing each method's wire name and call kind.
//!
//! Use it through the facade crate as `#[strand::service]`; this crate is an
//! implementation detail of `strand`.
//!
//! [`strand::Client`]: https://docs.rs/strand/latest/strand/struct.Client.html
//!
//! # Example
//!
//! ```
//! use futures_util::stream::{self, Stream, StreamExt};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//! use strand::{Context, Incoming, RpcError};
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! pub struct Add { pub a: i64, pub b: i64 }
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! pub struct Count { pub n: u32 }
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! pub struct Num { pub n: i64 }
//!
//! #[strand::service]
//! pub trait Calc {
//!     /// Unary: one request, one response.
//!     async fn add(&self, ctx: Context, req: Add) -> Result<i64, RpcError>;
//!
//!     /// Server streaming: one request, a stream of responses.
//!     fn count(&self, ctx: Context, req: Count) -> impl Stream<Item = Result<u32, RpcError>>;
//!
//!     /// Client streaming, under the name an existing JS manifest uses.
//!     #[rpc(name = "sumAll")]
//!     async fn sum_all(&self, ctx: Context, input: Incoming<Num>) -> Result<i64, RpcError>;
//! }
//!
//! struct Calculator;
//!
//! impl Calc for Calculator {
//!     async fn add(&self, _ctx: Context, req: Add) -> Result<i64, RpcError> {
//!         Ok(req.a + req.b)
//!     }
//!
//!     // Implementations repeat `+ Send + 'static` on streaming return types.
//!     fn count(
//!         &self,
//!         _ctx: Context,
//!         req: Count,
//!     ) -> impl Stream<Item = Result<u32, RpcError>> + Send + 'static {
//!         stream::iter((0..req.n).map(Ok))
//!     }
//!
//!     async fn sum_all(&self, _ctx: Context, mut input: Incoming<Num>) -> Result<i64, RpcError> {
//!         let mut total = 0;
//!         while let Some(num) = input.next().await {
//!             total += num?.n;
//!         }
//!         Ok(total)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), strand::ClientError> {
//! // Serve it (here over the in-memory transport) ...
//! let server = strand::Server::builder(Calculator.into_router()).build();
//! let (client_side, server_side) = strand::core::memory::pair();
//! server.spawn_connection(std::sync::Arc::new(server_side));
//!
//! // ... and call it.
//! let calc = CalcClient::new(strand::Client::new(client_side));
//! assert_eq!(calc.add(&Add { a: 2, b: 40 }).await?, 42);
//!
//! let counted: Vec<u32> = calc.count(&Count { n: 3 }).await?.map(Result::unwrap).collect().await;
//! assert_eq!(counted, [0, 1, 2]);
//!
//! let mut call = calc
//!     .with_timeout(std::time::Duration::from_secs(5))
//!     .with_bearer("token")
//!     .sum_all()
//!     .await?;
//! for n in 1..=4 {
//!     call.send(&Num { n }).await?;
//! }
//! assert_eq!(call.finish().await?, 10);
//!
//! assert_eq!(CalcClient::MANIFEST[2].0, "sumAll");
//! # Ok(()) }
//! ```
//!
//! # Signature rules
//!
//! Every method takes `&self`, then the call's `Context` (metadata, identity,
//! deadline, cancellation token, peer), then its request. The call kind follows
//! from the rest of the signature:
//!
//! | kind | handler signature | generated client method |
//! |---|---|---|
//! | unary | `async fn m(&self, ctx: Context, req: Req) -> Result<Resp, RpcError>` | `async fn m(&self, req: &Req) -> Result<Resp, ClientError>` |
//! | server streaming | `fn m(&self, ctx: Context, req: Req) -> impl Stream<Item = Result<Item, RpcError>>` | `async fn m(&self, req: &Req) -> Result<ResponseStream<Item>, ClientError>` |
//! | client streaming | `async fn m(&self, ctx: Context, input: Incoming<Msg>) -> Result<Resp, RpcError>` | `async fn m(&self) -> Result<ClientStreamingCall<Msg, Resp>, ClientError>` |
//! | duplex | `fn m(&self, ctx: Context, input: Incoming<Msg>) -> impl Stream<Item = Result<Item, RpcError>>` | `async fn m(&self) -> Result<(RequestSink<Msg>, ResponseStream<Item>), ClientError>` |
//! | raw | `async fn m(&self, ctx: Context, req: Req, input: RawReader) -> Result<(Lead, RawBody), RpcError>` | `async fn m(&self, req: &Req) -> Result<RawCall<Lead>, ClientError>`, and `async fn m_pipelined(&self, req: &Req) -> Result<PipelinedRawCall<Lead>, ClientError>` (the caller's bytes right behind the header) |
//!
//! - Request, message and response types are serde types
//!   (`Deserialize + Send + 'static` on the server side, `Serialize` on the
//!   client side). Make requests JSON objects (structs): the caller's metadata
//!   (timeout, authorization) travels inside the first message's params, which
//!   only an object can carry. For the same reason, do not put
//!   `#[serde(deny_unknown_fields)]` on a request type: its params arrive with
//!   a `metadata` field (also readable through `Context::metadata`).
//! - `async fn m(...)` may also be written `fn m(...) -> impl Future<Output =
//!   Result<..., RpcError>>`. Methods may have default bodies; those are served
//!   like any other.
//! - Types are recognised by their last path segment, so `strand::Context` and
//!   `Context` both work; type aliases of `Result` or `Context` are not seen
//!   through. The error type is always `RpcError`.
//! - Wire names default to the Rust method name as written (`sum_all`, a raw
//!   identifier `r#type` gives `type`); `#[rpc(name = "sumAll")]` renames one.
//! - `#[rpc(timeout_ms = 5000)]` gives a method its own server-side timeout
//!   (`Router::timeout`), replacing the server's default for it; a caller's
//!   shorter `metadata.timeout` still wins. `name` and `timeout_ms` combine:
//!   `#[rpc(name = "sumAll", timeout_ms = 5000)]`.
//! - `#[rpc(idempotent)]` marks a method idempotent: its client method
//!   calls `CallBuilder::idempotent`, so that a reconnecting client sends a
//!   unary call again on a new connection when the old one was lost after
//!   the call was sent (docs/deploy.md). Say it only of methods that do no
//!   more when run twice.
//! - Not allowed, each with a spanned compile error: a non-trait item, generic
//!   traits or methods, trait items other than methods, a receiver other than
//!   `&self`, a missing `Context`, a missing or extra argument, a return type
//!   that is neither `Result<_, RpcError>` (async) nor `impl Stream` (plain
//!   `fn`), duplicate wire names, unknown `#[rpc(...)]` keys, `#[cfg]` on a
//!   method (put it on the whole trait), and Rust names
//!   that clash with the generated code (`new`, `client`, `into_inner`,
//!   `with_timeout`, `with_metadata`, `with_bearer`, `into_router`, and
//!   `m_pipelined` beside a raw method `m`: rename the method and keep the
//!   wire name with `#[rpc(name = "...")]`).
//!
//! # OpenRPC document
//!
//! With strand's `openrpc` feature (off by default), the client also gets
//! `{Trait}Client::openrpc() -> serde_json::Value`: an OpenRPC 1.3 document
//! of the trait, built from the types' JSON Schemas (`schemars`). Wire
//! names, the call kind as `x-strand-kind` (`unary`, `server`, `client`,
//! `duplex`, `raw`), the request's fields as by-name params (and the whole
//! params schema as `x-strand-params`), the response (each one for
//! streaming kinds, the leading one for raw) as result, doc comments as
//! summary and description (the trait's as `info.description`),
//! `#[rpc(timeout_ms)]` as `x-strand-timeout-ms`, and strand's error codes.
//! Every request, message, response and leading type must then implement
//! `schemars::JsonSchema`; one that does not is a compile error naming it
//! where the trait uses it. Serve the document with
//! `router.discover(CalcClient::openrpc())` (`rpc.discover`). The
//! repository's docs/openrpc.md describes the document, discovery and its
//! security note, and the CLI that reads it.
//!
//! # What the trait becomes
//!
//! Handlers run on spawned tasks, so the macro rewrites the trait:
//!
//! - it gets `Send + Sync + 'static` supertraits;
//! - `async fn m(...) -> T` becomes `fn m(...) -> impl Future<Output = T> + Send`
//!   (implementations still write `async fn`);
//! - streaming return types get `+ Send + 'static` when they lack them; an
//!   implementation must write those bounds itself, as in the example.
//!
//! A server-streaming or duplex handler's stream is boxed once per call (the
//! router needs a `'static` stream; the trait method's return type borrows
//! `&self` as far as the borrow checker is concerned).
//!
//! # Arguments
//!
//! `#[strand::service(crate = "path::to::strand")]` names the facade crate
//! when it is not reachable as `::strand` (e.g. renamed in `Cargo.toml`).
//! The generated code needs only `strand_rpc_core` (through its hidden
//! `__private` module), so a crate without the facade or any carrier can use
//! `#[strand_macros::service(crate = "strand_rpc_core")]`.
//!
//! # Backpressure
//!
//! The generated code adds no buffering of its own. `Incoming<T>` reads the
//! caller's messages only as the handler polls it, a handler's stream is
//! polled only as the transport accepts its output, and the client's
//! `RequestSink::send` waits while the transport pushes back: a slow peer costs
//! at most its stream's window and one message per call.
//!
//! # Cancel safety
//!
//! Dropping a generated client call (its future, its `ResponseStream`, its
//! `RequestSink` or `ClientStreamingCall`) resets the call's stream; the server
//! then fires the handler's `Context` cancellation token and drops the
//! handler's future or stream. A deadline set with `with_timeout` travels to
//! the server as `metadata.timeout` and is enforced on both sides. As in the
//! core client, `RequestSink::send` is not cancel safe: after cancelling a send,
//! drop the sink.

use proc_macro::TokenStream;

#[cfg(feature = "openrpc")]
mod describe;
mod expand;
mod model;
mod parse;

/// Turns a trait into a strand service: the trait (made spawnable) with a
/// provided `into_router`, and a typed `{Trait}Client`. See the
/// [crate documentation](crate) for the signature rules and an example.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    match parse::parse(attr.into(), item.into()) {
        Ok(service) => expand::expand(&service).into(),
        Err((err, item)) => {
            // Emit the item as well (without its `#[rpc]` attributes), so the
            // only errors the user sees are ours.
            let err = err.to_compile_error();
            quote::quote!(#err #item).into()
        }
    }
}
