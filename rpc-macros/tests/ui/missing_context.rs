use strand::RpcError;

#[strand::service]
pub trait Calc {
    async fn add(&self, req: i64) -> Result<i64, RpcError>;
}

fn main() {}
