use strand::{Context, RpcError};

#[strand::service]
pub trait Calc {
    async fn add(ctx: Context, req: i64) -> Result<i64, RpcError>;
    async fn sub(&self, req: i64) -> Result<i64, RpcError>;
    #[rpc(name = "sub", timeout = 5)]
    async fn minus(&self, ctx: Context, req: i64) -> Result<i64, RpcError>;
}

fn main() {}
