//! strand: an RPC framework with pluggable transports (facade crate, in progress).

pub use strand_rpc_core as core;
pub use strand_tls as tls;
pub use strand_transport_quic as quic;
pub use strand_transport_ws as ws;

pub use strand_macros::service;
pub use strand_rpc_core::client::{ClientStreamingCall, RawCall, RequestSink};
pub use strand_rpc_core::middleware;
pub use strand_rpc_core::server::{Incoming, RawBody, RawReader, Router, Server};
pub use strand_rpc_core::{
    CallBuilder, Client, ClientConfig, ClientError, Context, Identity, ResponseStream, RpcError,
};

#[doc(hidden)]
pub mod macro_support;
