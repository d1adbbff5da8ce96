use futures_util::Stream;
use strand::{Context, RpcError};

#[strand::service]
pub trait Calc {
    fn count(&self, ctx: Context, req: u32) -> impl Stream<Item = u32> + Send + 'static;
    fn check(&self, ctx: Context, req: u32) -> impl Stream<Item = Result<u32, RpcError>>;
}

fn main() {}
