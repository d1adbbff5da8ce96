use strand::{Context, RpcError};

#[strand::service]
pub trait Calc {
    async fn add<T>(&self, ctx: Context, req: T) -> Result<i64, RpcError>;
}

fn main() {}
