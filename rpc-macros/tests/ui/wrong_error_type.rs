use strand::Context;

#[strand::service]
pub trait Calc {
    async fn add(&self, ctx: Context, req: i64) -> Result<i64, String>;
}

fn main() {}
