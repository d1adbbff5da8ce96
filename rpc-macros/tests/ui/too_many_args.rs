use strand::{Context, Incoming, RpcError};

#[strand::service]
pub trait Calc {
    async fn add(&self, ctx: Context, a: i64, b: i64) -> Result<i64, RpcError>;
    async fn sum(&self, ctx: Context, input: Incoming<i64>, extra: i64) -> Result<i64, RpcError>;
}

fn main() {}
