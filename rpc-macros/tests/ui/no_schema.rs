// With strand's `openrpc` feature, every params and result type needs a JSON
// Schema; the error names the type.
use serde::{Deserialize, Serialize};
use strand::{Context, RpcError};

#[derive(Serialize, Deserialize)]
pub struct Plain {
    n: i64,
}

#[strand::service]
pub trait Calc {
    async fn add(&self, ctx: Context, req: Plain) -> Result<i64, RpcError>;
}

fn main() {}
