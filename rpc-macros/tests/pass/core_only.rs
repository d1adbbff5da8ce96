//! A service needs neither the facade nor a carrier: with
//! `crate = "strand_rpc_core"` the generated code uses rpc-core alone, and
//! the service runs over the in-memory transport.
#![deny(warnings)]

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strand_rpc_core::server::Server;
use strand_rpc_core::{Client, Context, RpcError};

/// A request.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Req {
    n: i64,
}

/// The service.
#[strand_macros::service(crate = "strand_rpc_core")]
pub trait Double {
    /// The one method.
    async fn double(&self, ctx: Context, req: Req) -> Result<i64, RpcError>;
}

struct Impl;

impl Double for Impl {
    async fn double(&self, _ctx: Context, req: Req) -> Result<i64, RpcError> {
        Ok(req.n * 2)
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = Server::builder(Impl.into_router()).build();
        let (client_side, server_side) = strand_rpc_core::memory::pair();
        server.spawn_connection(std::sync::Arc::new(server_side));
        let client = DoubleClient::new(Client::new(client_side));
        assert_eq!(client.double(&Req { n: 21 }).await.unwrap(), 42);
    });
}
