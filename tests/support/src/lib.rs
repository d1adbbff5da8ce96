//! Shared test fixtures for strand's crates.
//!
//! - [`js`] installs and runs the real JS peers (`@matrixai/ws`,
//!   `@matrixai/rpc`, `@matrixai/quic`) that the interop tests talk to.
//! - [`time`]: the bounds that keep a broken test from hanging ([`LIMIT`],
//!   [`within`], [`eventually`]).

pub mod js;
pub mod time;

pub use time::{eventually, within, LIMIT};
