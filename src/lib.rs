//! strand: an RPC framework with pluggable transports.
//!
//! JSON-RPC calls of five kinds (unary, server streaming, client streaming,
//! duplex, raw bytes), each on its own duplex stream, carried by many streams
//! multiplexed over one WebSocket (`ws://`, `wss://`) or by QUIC streams
//! (`quic://`). On the wire it is compatible with `@matrixai/ws`,
//! `@matrixai/rpc` and `@matrixai/quic`.
//!
//! This facade crate gathers the pieces:
//!
//! - [`Router`], [`Server`], [`Client`], [`Context`] and the middleware
//!   from [`core`] (the transport-agnostic engine);
//! - [`Endpoint`]: a URL plus an [`EndpointConfig`] (serde, e.g. TOML) that
//!   binds a listener or connects a client on the carrier the scheme names,
//!   so swapping ws for quic is one line;
//! - [`Serving`]: one server on several listeners at once, shut down or
//!   drained ([`Serving::drain`]) as one;
//! - reconnecting clients: `[reconnect]` in the config, or
//!   [`Endpoint::with_reconnect`] (docs/deploy.md);
//! - [`demo`]: the built-in demo service used by the `strand` CLI;
//! - the transports themselves as [`ws`] and [`quic`], and TLS as [`tls`];
//! - with the `openrpc` feature, an OpenRPC document for every
//!   `#[strand::service]` (`{Trait}Client::openrpc()`), served as
//!   `rpc.discover` by [`Router::discover`] (docs/openrpc.md);
//! - with the `metrics` feature, server metrics (connections, calls by
//!   method and outcome, durations, refusals, drain) through the `metrics`
//!   crate's facade, named in [`core::metrics`], for whatever recorder the
//!   application installs; `tracing` spans per connection and per call
//!   either way (docs/deploy.md, "Metrics" and "Traces").
//!
//! # Example
//!
//! ```no_run
//! use serde_json::{json, Value};
//! use strand::{Endpoint, Router, RpcError, Server};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let router = Router::new()
//!     .unary("echo", |_ctx, params: Value| async move { Ok::<_, RpcError>(params) });
//! let server = Server::builder(router).build();
//!
//! // Swap "ws://127.0.0.1:0" for "quic://127.0.0.1:0" (plus a certificate) and
//! // nothing else changes.
//! let listener = Endpoint::from_url("ws://127.0.0.1:0")?.bind().await?;
//! let url = listener.url();
//! tokio::spawn({
//!     let server = server.clone();
//!     async move { server.serve(listener).await }
//! });
//!
//! let client = Endpoint::from_url(&url)?.connect().await?;
//! let answer: Value = client.unary("echo", &json!({ "hello": "strand" })).await?;
//! assert_eq!(answer["hello"], "strand");
//! server.shutdown(std::time::Duration::from_secs(1)).await;
//! # Ok(()) }
//! ```
//!
//! # Backpressure
//!
//! Every call's stream has its own flow-control window on both carriers
//! ([`LimitsConfig::stream_window`], 1 MiB by default): a writer whose reader
//! does not keep up waits in `write`, and one slow stream never stalls the
//! others. The server reads a streaming call's messages only as its handler
//! asks for them and writes results only as the transport accepts them. See
//! the `Backpressure` sections of [`core`], [`ws`] and [`quic`].
//!
//! # Cancel safety
//!
//! Dropping a client call (its future, response stream or request sink)
//! resets its stream, and the server's handler is cancelled. [`Endpoint::bind`]
//! and [`Endpoint::connect`] may be dropped at any time: nothing is left
//! behind but a closed socket. [`Serving::shutdown`] should be awaited to the
//! end; dropping a [`Serving`] stops its accept loops but leaves established
//! connections to finish on their own.

#[cfg(not(any(feature = "ws", feature = "quic")))]
compile_error!("strand needs at least one carrier: enable its `ws` or `quic` feature (or depend on strand-rpc-core alone)");

pub use strand_rpc_core as core;
pub use strand_tls as tls;
#[cfg(feature = "quic")]
pub use strand_transport_quic as quic;
#[cfg(feature = "ws")]
pub use strand_transport_ws as ws;

pub use strand_macros::service;
pub use strand_rpc_core::client::{
    ClientStreamingCall, PendingRawResponse, PipelinedRawCall, RawCall, RawResponse, RequestSink,
};
pub use strand_rpc_core::middleware;
pub use strand_rpc_core::server::{Incoming, RawBody, RawReader, Router, Server};
pub use strand_rpc_core::{
    CallBuilder, Client, ClientConfig, ClientError, ClientState, Context, Identity, ResponseStream,
    RpcError,
};

mod config;
pub mod demo;
mod endpoint;
mod error;
mod serving;
mod url;

pub use config::{
    AuthConfig, BudgetConfig, ClientAuthMode, ClientCaMode, EndpointConfig, FloodsConfig,
    LimitsConfig, ReconnectConfig, TimeoutsConfig, TlsConfig, VerifyMode, MAX_TIMEOUT_MS,
};
pub use endpoint::{BoundListener, Endpoint};
pub use error::Error;
pub use serving::Serving;
pub use url::Scheme;

#[doc(hidden)]
pub use strand_rpc_core::__private;
