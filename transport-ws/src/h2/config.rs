//! HTTP/2's own limits for WebSocket over HTTP/2 (RFC 8441). They sit in
//! front of the mux's: one HTTP/2 connection carries up to
//! `max_concurrent_streams` strand connections, each an extended CONNECT
//! stream with its own mux limits ([`crate::WsConfig`]).

/// Limits of the HTTP/2 layer, on either side. Defaults are documented per
/// field and in docs/protocol.md ("WebSocket over HTTP/2").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Http2Config {
    /// Streams the peer may have open on one HTTP/2 connection: WebSockets,
    /// and on the server also plain requests in progress. Default 32: a
    /// browser opens one WebSocket per page, a strand client a few; every
    /// strand connection costs its mux buffers, bounded by
    /// `max_connections` besides.
    pub max_concurrent_streams: u32,
    /// Largest header list accepted (HPACK-decoded), in bytes. Default
    /// 16 KiB, the same as the HTTP/1.1 request head
    /// ([`crate::WsServerConfig::max_request_head`]); a bigger one is
    /// answered `431` by the HTTP/2 library.
    pub max_header_list_size: u32,
    /// Receive window of each HTTP/2 stream, in bytes (at most 2^31 − 1,
    /// as the next one). Default 1 MiB, the
    /// mux's stream window: one busy mux stream is not held back by HTTP/2
    /// flow control. Credit is returned as the WebSocket reads the bytes.
    pub initial_stream_window: u32,
    /// Receive window of the whole HTTP/2 connection, in bytes. Default
    /// 8 MiB: several WebSockets on one connection share it.
    pub initial_connection_window: u32,
    /// Bytes one HTTP/2 stream may queue in the HTTP/2 library before
    /// writes wait for the socket. Default 256 KiB, the mux's per-stream send
    /// buffer: a peer that stops reading pushes back on our writers and the
    /// mux's send timeout sees it.
    pub max_send_buffer: usize,
    /// Streams the peer reset before we accepted them, at once, past which
    /// the connection is closed with `ENHANCE_YOUR_CALM` (the rapid reset
    /// defence, CVE-2023-44487). Default 20, the HTTP/2 library's.
    pub max_pending_accept_reset_streams: usize,
    /// Streams we reset because of the peer's protocol errors, past which the
    /// connection is closed with `ENHANCE_YOUR_CALM`. Default 1024, the
    /// HTTP/2 library's.
    pub max_local_error_reset_streams: usize,
    /// Reset streams whose state is remembered to recognise the peer's late
    /// frames. Default 50.
    pub max_concurrent_reset_streams: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_concurrent_streams: 32,
            max_header_list_size: 16 << 10,
            initial_stream_window: 1 << 20,
            initial_connection_window: 8 << 20,
            max_send_buffer: 256 << 10,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            max_concurrent_reset_streams: 50,
        }
    }
}

impl Http2Config {
    /// Sets [`Http2Config::max_concurrent_streams`].
    pub fn with_max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = n;
        self
    }

    /// Sets [`Http2Config::max_header_list_size`].
    pub fn with_max_header_list_size(mut self, n: u32) -> Self {
        self.max_header_list_size = n;
        self
    }

    fn send_buffer(&self) -> usize {
        self.max_send_buffer.clamp(1, u32::MAX as usize)
    }

    /// HTTP/2 windows are at most 2^31 − 1 (the library panics past it).
    fn windows(&self) -> (u32, u32) {
        const MAX: u32 = (1 << 31) - 1;
        (
            self.initial_stream_window.min(MAX),
            self.initial_connection_window.min(MAX),
        )
    }

    pub(crate) fn server(&self) -> h2::server::Builder {
        let (stream_window, connection_window) = self.windows();
        let mut b = h2::server::Builder::new();
        b.max_concurrent_streams(self.max_concurrent_streams)
            .max_header_list_size(self.max_header_list_size)
            .initial_window_size(stream_window)
            .initial_connection_window_size(connection_window)
            .max_send_buffer_size(self.send_buffer())
            .max_pending_accept_reset_streams(self.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(self.max_local_error_reset_streams))
            .max_concurrent_reset_streams(self.max_concurrent_reset_streams)
            .enable_connect_protocol();
        b
    }

    pub(crate) fn client(&self) -> h2::client::Builder {
        let (stream_window, connection_window) = self.windows();
        let mut b = h2::client::Builder::new();
        b.max_concurrent_streams(self.max_concurrent_streams)
            .max_header_list_size(self.max_header_list_size)
            .initial_window_size(stream_window)
            .initial_connection_window_size(connection_window)
            .max_send_buffer_size(self.send_buffer())
            .max_pending_accept_reset_streams(self.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(self.max_local_error_reset_streams))
            .max_concurrent_reset_streams(self.max_concurrent_reset_streams)
            .enable_push(false);
        b
    }
}
