//! strand's transport-agnostic JSON-RPC engine.
//!
//! - [`transport`]: the `Connection` / `SendStream` / `RecvStream` traits that
//!   carriers implement (the WebSocket mux, QUIC, and [`memory`] here).
//! - [`codec`] and [`message`]: concatenated-JSON framing and message shapes,
//!   byte-compatible with `@matrixai/rpc`.
//! - [`server`]: a [`server::Router`] of typed handlers for the five call kinds
//!   (unary, server streaming, client streaming, duplex, raw) and a
//!   [`server::Server`] that runs them, with deadlines, cancellation and
//!   graceful shutdown.
//! - [`middleware`]: tower layers for in-payload auth, timeouts and
//!   concurrency limits.
//! - [`Client`]: one method per call kind.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), strand_rpc_core::ClientError> {
//! use futures_util::StreamExt;
//! use serde_json::{json, Value};
//! use strand_rpc_core::{memory, server::{Router, Server}, Client, RpcError};
//!
//! let router = Router::new()
//!     .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
//!     .server_streaming("count", |_ctx, p: Value| {
//!         let n = p["n"].as_u64().unwrap_or(0);
//!         futures_util::stream::iter((0..n).map(|i| Ok::<_, RpcError>(json!({ "i": i }))))
//!     });
//! let server = Server::builder(router).build();
//! let (client_side, server_side) = memory::pair();
//! server.spawn_connection(std::sync::Arc::new(server_side));
//!
//! let client = Client::new(client_side);
//! let echoed: Value = client.unary("echo", &json!({ "hello": "world" })).await?;
//! assert_eq!(echoed["hello"], "world");
//! let items: Vec<Value> = client
//!     .server_streaming("count", &json!({ "n": 3 }))
//!     .await?
//!     .map(|r| r.unwrap())
//!     .collect()
//!     .await;
//! assert_eq!(items, vec![json!({"i": 0}), json!({"i": 1}), json!({"i": 2})]);
//! # Ok(()) }
//! ```
//!
//! # Backpressure
//!
//! Every stream is bounded by its transport's window: a writer whose reader
//! does not keep up waits in `write`, message by message. The server reads a
//! client-streaming call's messages only as the handler asks for them, and
//! writes a streaming handler's results only as the transport accepts them,
//! so a slow peer costs at most one window and one message per call.
//!
//! # Cancel safety
//!
//! Dropping any client call future or stream cancels the call on the server
//! (its stream is reset and stopped; the handler's cancellation token fires
//! and its future is dropped). [`codec::MessageReader::next`] is cancel safe.
//! [`client::RequestSink::send`] is not: a cancelled send may have written
//! part of a message, so drop the sink (aborting the input) after cancelling one.
//!
//! # Reconnecting and draining
//!
//! A [`Client`] runs over one connection unless it is made with
//! [`Client::connect_with`]: it then makes a new connection through a
//! [`Connector`] when its connection is lost (with gRPC's backoff and a
//! limit, [`ReconnectConfig`]) or its server drains, and its state is a
//! `watch` ([`Client::state`]). A call in flight when a connection is lost
//! fails with [`ClientError::ConnectionLost`], which says whether the server
//! may have run it; idempotent unary calls ([`CallBuilder::idempotent`]) are
//! sent again. [`server::Server::drain`] tells peers that negotiated it to
//! go away before it shuts down. See docs/deploy.md.
//!
//! # Metrics and traces
//!
//! With the `metrics` feature (off by default: then none of it is
//! compiled), a [`server::Server`] reports connections, streams, calls by
//! method, kind and outcome, call durations, refusals and its drain through
//! the `metrics` crate's facade; the application installs the recorder.
//! The names and labels are in [`metrics`]. Either way it opens a `tracing`
//! span per connection and per call at debug level, whose fields are made
//! only when a subscriber wants them. See docs/deploy.md, "Metrics" and
//! "Traces".
//!
//! # Panics in handlers
//!
//! A handler, or a handler's response stream, that panics is answered with
//! −32603 ("the handler panicked") and logged; other calls and the connection
//! go on. Handlers should still not block: a call's first poll runs on its
//! connection's accepting task (a call that answers at once needs no task of
//! its own), so a handler that blocks there delays the next call on that
//! connection.

pub mod client;
pub mod codec;
pub mod context;
mod deadline;
pub mod error;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod middleware;
pub mod openrpc;
pub mod server;
pub mod transport;

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;

/// Not an API: what strand's fuzz targets and their replay tests
/// (`tests/fuzz-harness`) need of the crate's internals. Hidden, unstable,
/// and may change or go away in any release.
#[doc(hidden)]
pub mod __fuzz {
    /// How the server reads a call's first message (method, context with
    /// the raw metadata, params), without the deadline it then sets.
    pub use crate::server::run_call::parse_call_header;
}

pub use client::{
    CallBuilder, Client, ClientConfig, ClientState, Connector, ReconnectConfig, ResponseStream,
};
pub use context::{Context, Identity};
pub use error::{ClientError, RpcError};
