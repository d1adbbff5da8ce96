//! strand's QUIC transport: one client-initiated bidi stream per call, over
//! quinn, wire-compatible with `@matrixai/quic`.
//!
//! - [`QuicListener`] binds a UDP socket and yields [`QuicConnection`]s (it
//!   implements rpc-core's [`Listener`](strand_rpc_core::transport::Listener)).
//! - [`QuicClient`] is a client endpoint that connects to many servers;
//!   [`connect`] is the one-shot shorthand.
//! - [`QuicConnection`] implements
//!   [`Connection`](strand_rpc_core::transport::Connection): every call is a
//!   bidi stream carrying the JSON-RPC bytes as they are, FIN is the graceful
//!   end, RESET_STREAM / STOP_SENDING carry the abort codes, and a normal close
//!   is application code 0. Peer info carries the transport name `"quic"`, the
//!   remote address and the peer's certificate chain (mTLS).
//!
//! TLS comes from [`strand_tls`]: the server identity from PEM or generated,
//! client verification by roots, custom CA, callback or not at all, optional
//! or required client certificates. ALPN is `quic` unless configured, with
//! strand's own id `strand/1` offered first ([`QuicConfig::strand_alpn`]):
//! two strand peers negotiate it and skip the waits that only
//! `@matrixai/quic` peers need (write boundaries, delayed stops).
//!
//! # Example
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use strand_rpc_core::transport::CloseCode;
//! use strand_tls::{Identity, ServerVerification};
//! use strand_transport_quic::{QuicClient, QuicClientConfig, QuicListener, QuicServerConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = Identity::dev()?;
//! let listener = QuicListener::bind("127.0.0.1:0", QuicServerConfig::new(identity.clone())).await?;
//! let addr = listener.local_addr();
//! tokio::spawn(async move {
//!     while let Ok(conn) = listener.accept_connection().await {
//!         tokio::spawn(async move {
//!             while let Ok(stream) = conn.accept_stream().await {
//!                 let (mut send, mut recv) = stream.split();
//!                 tokio::spawn(async move {
//!                     let _ = tokio::io::copy(&mut recv, &mut send).await;
//!                     let _ = send.shutdown().await;
//!                 });
//!             }
//!         });
//!     }
//! });
//!
//! let client = QuicClient::bind(
//!     "127.0.0.1:0".parse()?,
//!     QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec())),
//! )?;
//! let conn = client.connect(addr, "localhost").await?;
//! let (mut send, mut recv) = conn.open_stream().await?.split();
//! send.write_all(b"hello").await?;
//! send.shutdown().await?;
//! let mut echoed = Vec::new();
//! recv.read_to_end(&mut echoed).await?;
//! assert_eq!(echoed, b"hello");
//! conn.close(CloseCode::Normal, "done");
//! # Ok(())
//! # }
//! ```
//!
//! # Backpressure
//!
//! QUIC flow control does it end to end. A stream's reader that is behind
//! holds at most [`QuicConfig::stream_window`] bytes of heap,
//! and all of a connection's at most [`QuicConfig::receive_window`]; a
//! writer waits once the peer's window or our
//! [`QuicConfig::send_window`] is full. A slow reader therefore costs at
//! most one stream window of memory and never stalls other streams (apart
//! from sharing the connection window). quinn keeps each received datagram
//! whole (packet header and tag included) plus an index entry per packet, so
//! the window advertised to the peer is
//! [`QuicConfig::advertised_window`] of the configured one (about 85 %),
//! leaving room for that overhead when the peer sends full-sized packets
//! (measured: 0.95 MiB of heap for a stalled stream with the 1 MiB default;
//! the field's docs say when the bound does not hold). The writer's
//! unacknowledged bytes are freed as soon as the peer acknowledges them,
//! whether or not it reads. Stream count is bounded by
//! [`QuicConfig::max_streams`] (opening waits for credit),
//! and connections by [`QuicServerConfig::max_pending_handshakes`] (still
//! handshaking or waiting for `accept`) and
//! [`QuicServerConfig::max_connections`]; attempts over either are refused.
//!
//! # Cancel safety
//!
//! `poll_*` methods of the stream halves keep no partial state across
//! cancellation: a cancelled `write` wrote either nothing or what it reported,
//! a cancelled `read` consumed nothing. `open_stream`, `accept_stream`,
//! [`QuicListener::accept_connection`] and [`QuicClient::connect`] are cancel
//! safe (a cancelled connect abandons the attempt). Dropping a send half that
//! was not finished resets it with code 0 (quinn alone would finish it: a
//! truncated call would look complete); dropping a receive half before its end
//! stops it with code 0. Once the send half is finished or reset, the
//! STOP_SENDING of a stop or drop leaves in a packet of its own after quinn
//! acknowledged what the stream received (at most
//! [`QuicConfig::stop_ack_wait`] later): a JS peer misses it otherwise.
//! Between strand peers ([`QuicConnection::is_strand_peer`]) it leaves at
//! once. [`QuicConnection::shutdown`] documents its own case.

mod byte_count;
mod client;
mod config;
mod connection;
mod error;
mod goaway;
mod listener;
mod stream;

pub use client::{connect, QuicClient};
pub use config::{
    Budget, QuicClientConfig, QuicConfig, QuicFloodLimits, QuicServerConfig, DEFAULT_ALPN,
    STRAND_ALPN,
};
pub use connection::{ConnectionStats, QuicConnection, CLOSE_SEND_WAIT, RESET_FLOOD_REASON};
pub use error::QuicError;
pub use goaway::{GOAWAY_DATAGRAM, GOAWAY_DATAGRAM_BUFFER};
pub use listener::{QuicListener, QuicListenerStats};
pub use strand_tls;
pub use stream::{QuicRecvStream, QuicSendStream};
