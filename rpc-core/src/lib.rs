//! strand's JSON-RPC engine (placeholder overview, completed below as modules land).
pub mod transport;
