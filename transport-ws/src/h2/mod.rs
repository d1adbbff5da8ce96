//! WebSocket over HTTP/2 (RFC 8441): a strand connection as an extended
//! CONNECT stream of an HTTP/2 connection, on the same wss port as the
//! HTTP/1.1 upgrade (ALPN picks). The HTTP/2 protocol itself is the `h2`
//! crate's; here are only the adapter of a stream to a byte pipe
//! ([`io`]), the server's admission ([`server`]), the client ([`client`])
//! and HTTP/2's limits ([`config`]). Over the stream, the WebSocket and the
//! mux driver run unchanged.

mod client;
mod config;
pub(crate) mod drivers;
mod io;
pub(crate) mod server;

pub use client::H2Client;
pub use config::Http2Config;
