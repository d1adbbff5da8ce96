use strand::{Context, RpcError};

#[strand::service]
pub trait Calc {
    async fn add(&self, ctx: Context) -> Result<i64, RpcError>;
}

fn main() {}
