use strand::{Context, RpcError};

#[strand::service]
pub trait Calc {
    async fn add(&self, ctx: Context, req: i64) -> Result<i64, RpcError>;
    #[rpc(name = "add")]
    async fn plus(&self, ctx: Context, req: i64) -> Result<i64, RpcError>;
}

fn main() {}
