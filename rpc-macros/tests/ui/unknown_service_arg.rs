use strand::{Context, RpcError};

#[strand::service(version = 2)]
pub trait Calc {
    async fn add(&self, ctx: Context, req: i64) -> Result<i64, RpcError>;
}

fn main() {}
