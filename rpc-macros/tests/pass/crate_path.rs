//! `crate = "..."` names the facade when it is not reachable as `::strand`.
#![deny(warnings)]

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use strand as rpc;

use rpc::{Context, RpcError};

/// A request.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct Req {
    n: i64,
}

/// The service.
#[rpc::service(crate = "rpc")]
pub trait Echo {
    /// The one method.
    async fn echo(&self, ctx: Context, req: Req) -> Result<i64, RpcError>;
}

struct Impl;

impl Echo for Impl {
    async fn echo(&self, _ctx: Context, req: Req) -> Result<i64, RpcError> {
        Ok(req.n)
    }
}

fn main() {
    let router: rpc::Router = Impl.into_router();
    assert_eq!(router.methods().len(), EchoClient::MANIFEST.len());
    let _ = EchoClient::echo;
}
