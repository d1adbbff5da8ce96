//! strand's conformance suite and its interop matrix with the JS stack.
//!
//! The crate has no API; everything is in `tests/`:
//!
//! - `tests/conformance.rs`: one set of cases, written once and generic over
//!   a transport fixture (`tests/common`), instantiated for the memory, ws,
//!   ws over HTTP/2 (RFC 8441) and quic transports: every call kind, metadata and auth, timeouts,
//!   cancellation, errors, a 16 MiB payload, 1,000 concurrent calls,
//!   backpressure both ways, a connection killed mid-call, and graceful
//!   shutdown. Memory cases run with paused time.
//! - `tests/interop_js.rs`: the same service against the real
//!   `@matrixai/rpc` over `@matrixai/ws` and `@matrixai/quic`, both
//!   directions, driven by `tests/js/rpc-*.mjs`.
