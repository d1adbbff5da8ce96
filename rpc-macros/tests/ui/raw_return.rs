use strand::{Context, RawReader, RpcError};

#[strand::service]
pub trait Calc {
    async fn upper(&self, ctx: Context, req: u32, input: RawReader) -> Result<u32, RpcError>;
}

fn main() {}
