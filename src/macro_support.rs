//! Paths the `#[strand::service]` expansion refers to, so user crates need no
//! direct dependency on them. Not a public API.

pub use futures_util;
pub use serde;
pub use serde_json;
