//! Many duplex streams multiplexed over one WebSocket, wire-compatible with
//! `@matrixai/ws` 1.x.
//!
//! This crate is strand's WebSocket transport. A [`WsConnection`] carries any
//! number of streams, each a [`WsSendStream`] + [`WsRecvStream`] pair with its
//! own credit-based flow control, and implements rpc-core's
//! [`Connection`](strand_rpc_core::transport::Connection); a [`WsListener`]
//! implements [`Listener`](strand_rpc_core::transport::Listener). A JS peer
//! built on `@matrixai/ws` talks to a strand peer and the other way round.
//!
//! - [`mux`]: the protocol as a pure state machine (frames, varints, stream
//!   ids, credit windows, per-stream state, the [`mux::Session`]). No tokio,
//!   no clock; tested without sockets.
//! - the driver (private): the one task per connection that owns the socket
//!   and the timers (keep-alive pings, idle timeout, close handshake).
//! - [`WsListener::bind`] / [`connect`]: TCP, optional TLS through
//!   [`strand_tls`], the HTTP upgrade (with an async [`UpgradeHook`] on the
//!   server), then a driver task.
//!
//! Between two strand peers the stream window is advertised in the upgrade
//! (`x-strand-window`), so a stream's first DATA leaves with its opening ACK
//! instead of a round trip later; see docs/protocol.md, "Window
//! advertisement". With a JS
//! peer the behaviour is exactly the JS protocol.
//!
//! # Example
//!
//! ```no_run
//! use strand_transport_ws::{connect, WsClientConfig, WsListener, WsServerConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default()).await?;
//! let url = format!("ws://{}/", listener.local_addr());
//!
//! tokio::spawn(async move {
//!     let conn = listener.accept_connection().await.unwrap();
//!     while let Ok(stream) = conn.accept_stream().await {
//!         let (mut send, mut recv) = stream.split();
//!         tokio::spawn(async move {
//!             let mut buf = Vec::new();
//!             recv.read_to_end(&mut buf).await.unwrap();
//!             send.write_all(&buf).await.unwrap(); // echo
//!             send.shutdown().await.unwrap();
//!         });
//!     }
//! });
//!
//! let conn = connect(&url, WsClientConfig::default()).await?;
//! let (mut send, mut recv) = conn.open_stream().await?.split();
//! send.write_all(b"hello").await?;
//! send.shutdown().await?; // CLOSE(Read): the end of our half
//! let mut echo = Vec::new();
//! recv.read_to_end(&mut echo).await?;
//! assert_eq!(echo, b"hello");
//! # Ok(()) }
//! ```
//!
//! For `wss://`, set [`WsServerConfig::tls`] (a [`strand_tls::ServerTls`])
//! and [`WsClientConfig::tls`] (a [`strand_tls::ClientTls`]).
//!
//! # Backpressure
//!
//! Flow control is per stream. The receiver grants each stream a window
//! ([`WsConfig::stream_window`], 1 MiB by default) and returns credit with ACK
//! as the application reads (once half the window was consumed, or when its
//! buffer drains). A writer never sends more than its credit: a large write is
//! split at the credit, and at zero credit `poll_write` returns `Pending` until
//! the peer's ACK. So a slow reader costs at most one window of memory on the
//! receiving side and stalls only its own writer.
//!
//! The driver's read loop never waits on a stream's consumer: incoming DATA
//! goes straight into that stream's buffer (bounded by the credit we granted),
//! so one stalled stream cannot hold up the others or the connection. On the
//! sending side each stream queues at most [`WsConfig::stream_send_buffer`]
//! bytes for the socket, and the driver feeds the socket only while it accepts
//! more, so a slow network pushes back on writers instead of growing buffers.
//! Streams beyond [`WsConfig::max_streams`] or the accept backlog are refused
//! with `ERROR(Read, 4)` + `ERROR(Write, 4)` rather than buffered; our own
//! [`WsConnection::open_stream`] waits for a free slot.
//!
//! # Cancel safety
//!
//! - [`WsConnection::open_stream`] and [`WsConnection::accept_stream`] are cancel safe: if
//!   the future is dropped before it completes, no stream was taken (an
//!   accepted stream stays in the backlog for the next `accept`).
//! - `poll_write` either takes bytes (returning how many) or takes none, so
//!   dropping a pending write loses nothing that was reported written.
//!   `poll_read` likewise. `write_all`/`read_exact` have tokio's usual
//!   caveats: a cancelled `write_all` may have written a prefix.
//! - `poll_shutdown` may be polled again after cancellation; the finish, once
//!   requested, completes in the background even if the handle is dropped.
//! - Dropping a [`WsSendStream`] that was neither finished nor reset resets it
//!   with code 0 (`CANCELLED`); dropping a [`WsRecvStream`] before its end
//!   stops it with code 0. Dropping the last [`WsConnection`] handle closes
//!   the WebSocket with 1000, after what was queued for the socket.
//!
//! # Closing
//!
//! Close codes: 1000 normal, 1001 going away, 1002 protocol error (malformed
//! frame, text message, DATA beyond the window), 1009 message too big, 1011
//! internal error. When the connection closes, every stream fails with
//! [`StreamError::ConnectionClosed`](strand_rpc_core::transport::StreamError)
//! carrying the code and reason (data already buffered is still readable
//! first). [`WsConnection::shutdown`] drains: no new streams, open ones may
//! finish until a deadline, then 1000.

mod byte_count;
mod config;
mod conn;
mod driver;
mod endpoint;
mod error;
mod goaway;
mod h2;
mod handshake;
pub mod mux;
mod source_limit;
mod stream;

#[doc(hidden)]
#[path = "fuzz_support.rs"]
pub mod __fuzz;

pub use config::{
    HttpHandler, HttpResponse, UpgradeContext, UpgradeFuture, UpgradeHook, UpgradeRefusal,
    WsClientConfig, WsConfig, WsServerConfig,
};
pub use conn::{ConnectionStats, StatsProbe, WsConnection, WsStream};
pub use endpoint::{connect, WsListener, WsListenerStats};
pub use error::WsError;
pub use goaway::{GOAWAY_HEADER, GOAWAY_PING};
pub use h2::{H2Client, Http2Config};
pub use handshake::{UpgradeRequest, WINDOW_HEADER};
pub use mux::{Budget, FloodLimits, SessionStats, StreamStats};
pub use strand_tls;
pub use stream::{WsRecvStream, WsSendStream};
