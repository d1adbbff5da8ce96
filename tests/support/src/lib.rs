//! Shared test fixtures for strand's crates.
//!
//! [`js`] installs and runs the real JS peers (`@matrixai/ws`, `@matrixai/rpc`,
//! `@matrixai/quic`) that the interop tests talk to.

pub mod js;
