use strand::{Context, RpcError};

#[strand::service]
pub trait Calc {
    async fn add(&mut self, ctx: Context, req: i64) -> Result<i64, RpcError>;
}

fn main() {}
