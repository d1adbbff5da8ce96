//! The `#[strand::service]` macro (in progress).
