#[strand::service]
pub struct Calc {
    value: i64,
}

fn main() {}
