use strand::{Context, Incoming};

#[strand::service]
pub trait Calc {
    fn chat(&self, ctx: Context, input: Incoming<String>) -> Vec<String>;
}

fn main() {}
