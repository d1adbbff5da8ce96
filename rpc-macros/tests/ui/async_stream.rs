use futures_util::Stream;
use strand::{Context, RpcError};

#[strand::service]
pub trait Calc {
    async fn count(&self, ctx: Context, req: u32) -> impl Stream<Item = Result<u32, RpcError>>;
}

fn main() {}
