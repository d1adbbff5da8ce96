//! Listener and client configuration, with the limits and their defaults.

use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, VarInt};
pub use strand_rpc_core::transport::Budget;
use strand_tls::{ClientAuth, ClientTls, Identity, ServerTls, ServerVerification};

use crate::QuicError;

/// The ALPN protocol that strand and `@matrixai/quic` use by default.
pub const DEFAULT_ALPN: &[u8] = b"quic";

/// The ALPN protocol id by which two strand peers recognise each other
/// (docs/protocol.md, "ALPN"): offered ahead of the configured protocols
/// while [`QuicConfig::strand_alpn`] is on. Once negotiated, neither side
/// applies the waits that protect `@matrixai/quic` peers.
pub const STRAND_ALPN: &[u8] = b"strand/1";

/// Connection-level QUIC settings shared by listeners and clients.
///
/// Memory per connection is bounded by these windows: at most
/// `stream_window` bytes held per stream and `receive_window`
/// bytes across all streams on the receiving side (for peers that send
/// full-sized packets, see [`QuicConfig::stream_window`]), and
/// `send_window` bytes buffered or unacknowledged on the sending side.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QuicConfig {
    /// Interval between keep-alive packets; `None` sends none.
    ///
    /// Default 5 s, below `idle_timeout`: JS peers send no keep-alives and
    /// advertise no idle timeout, so ours alone decides, and an RPC connection
    /// that is quiet between calls must not time out.
    pub keep_alive_interval: Option<Duration>,
    /// Close the connection after this long without any packet from the peer;
    /// `None` disables the timeout (not recommended: a vanished peer then holds
    /// its streams forever).
    ///
    /// Default 30 s. The effective value is the smaller of ours and the peer's.
    pub idle_timeout: Option<Duration>,
    /// Give up a handshake that has not completed after this long.
    ///
    /// Default 10 s: bounds the time a silent or slow client can hold a
    /// pending-connection slot on a listener.
    pub handshake_timeout: Duration,
    /// Streams the peer may have open at once towards us.
    ///
    /// Default 100 (what JS peers allow). Bounds per-connection stream state;
    /// a peer over the limit waits for credit, it is not refused.
    pub max_streams: u32,
    /// Heap bytes one stream may hold for a reader that is behind: the
    /// memory bound of a stalled stream.
    ///
    /// Default 1 MiB (the JS default). quinn keeps each received packet whole
    /// (header, tag and frame header included) plus an index entry per
    /// packet, so the flow-control window advertised to the peer is smaller:
    /// this value scaled by [`QuicConfig::advertised_window`] (about
    /// 85 %, 866 KiB for the default), which leaves room for that overhead.
    /// The bound holds for a peer that sends this stream's data in
    /// full-sized packets (at least 1,100 bytes of it per packet, as quinn
    /// and `@matrixai/quic` do whenever a writer has that much to send). It
    /// does not hold for a peer that sends it in small frames: quinn then
    /// keeps each frame's whole datagram and about 150 bytes of bookkeeping
    /// per frame until it compacts the stream (once more than 2,048 frames
    /// are buffered, or once the datagram bytes it holds beyond the data
    /// pass the larger of 32 KiB and 1.5 times the data), and a frame that
    /// arrived in a coalesced (GRO) batch of datagrams keeps the whole batch
    /// (up to 64 KiB) alive until it is read or compacted. Data a peer sends
    /// twice (a retransmission that was not needed) is kept twice until the
    /// same compaction. A peer sending small frames on purpose can make one
    /// stream hold far more than this value (in the worst case 2,048 such
    /// batches); quinn 0.11 has no setting that bounds it. This value also
    /// caps one stream's throughput at one advertised window per round trip.
    pub stream_window: u32,
    /// Heap bytes all streams of a connection may hold for readers that are
    /// behind.
    ///
    /// Default 8 MiB: bounds a connection's receive buffers however many
    /// streams are open. Advertised to the peer scaled like
    /// [`QuicConfig::stream_window`], with the same caveats.
    pub receive_window: u64,
    /// Bytes we buffer for sending (written but not yet acknowledged) across
    /// all streams of a connection; writers wait once it is full.
    ///
    /// Default 4 MiB: bounds our send-side memory per connection.
    pub send_window: u64,
    /// The least time [`poll_write_boundary`] waits (it waits one smoothed
    /// round trip, or this if that is shorter).
    ///
    /// Default 5 ms. Against a JS server on an idle loopback one smoothed
    /// round trip alone kept the first message in a chunk of its own in every
    /// run, and skipping the wait never did; with both cores busy, a 1 ms floor
    /// lost a message once (the JS process read two packets as one chunk), so
    /// the default leaves more room. It delays only calls that send more
    /// after their first message (client streaming, duplex, raw). Not
    /// applied at all between strand peers (see [`QuicConfig::strand_alpn`]),
    /// which never lose those bytes.
    ///
    /// [`poll_write_boundary`]: strand_rpc_core::transport::SendStream::poll_write_boundary
    pub write_boundary_min: Duration,
    /// The longest a cancelled read (a stop, or a receive half dropped before
    /// its end) holds back its STOP_SENDING until nothing the connection
    /// received waits for quinn's acknowledgement, so that the two travel in
    /// separate packets. Applies only once our sending half of the stream is
    /// finished or reset.
    ///
    /// Default 250 ms. The wait ends as soon as an acknowledgement left with
    /// nothing received after it, or after 50 ms in which nothing arrived and
    /// nothing was acknowledged (quinn acknowledges within its 25 ms maximum
    /// ACK delay): usually within 25 ms. This cap is for a peer that keeps
    /// sending so that neither ever holds. A `@matrixai/quic` peer misses a
    /// STOP_SENDING that arrives together with the acknowledgement of its
    /// last data once our FIN or reset reached it (quiche forgets the stream
    /// within that datagram), so a JS handler would never be cancelled. Only
    /// the STOP_SENDING waits, never data. Zero stops at once; between
    /// strand peers (see [`QuicConfig::strand_alpn`]) it is always zero.
    pub stop_ack_wait: Duration,
    /// Offer [`STRAND_ALPN`] (`strand/1`) ahead of the configured ALPN
    /// protocols, on both sides. A connection that negotiates it is between
    /// two strand peers ([`QuicConnection::is_strand_peer`]) and skips the
    /// waits that only `@matrixai/quic` peers need
    /// ([`QuicConfig::write_boundary_min`], [`QuicConfig::stop_ack_wait`]);
    /// a JS peer does not know the id and negotiates its own, so the waits
    /// stay toward it.
    ///
    /// Default true. Off, this side offers only the configured protocols
    /// and treats every peer as a JS one.
    ///
    /// [`QuicConnection::is_strand_peer`]: crate::QuicConnection::is_strand_peer
    pub strand_alpn: bool,
    /// Bytes of the peer's QUIC datagrams held until read, after which
    /// quinn drops the oldest: what a peer's datagrams may cost. Default
    /// 1 KiB ([`crate::GOAWAY_DATAGRAM_BUFFER`]): strand reads only the
    /// 13-byte go-away notice (docs/protocol.md, "Go-away"). Advertised as
    /// datagram support, which is how a strand peer offers go-away; 0
    /// advertises none, and this side is then never sent the notice.
    pub datagram_receive_buffer: usize,
    /// Flood budgets, past which the connection is closed with application
    /// code 1008 (docs/protocol.md, "Flood budgets").
    pub floods: QuicFloodLimits,
}

/// The flood budgets of one QUIC connection (defaults in
/// [`QuicFloodLimits::default`]). quinn already bounds what the others of
/// the ws budgets guard against: pings have no reply to queue, stream
/// credit bounds opens, and small STREAM frames cost their sender a frame
/// header each within the flow-control window (docs/reliability.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuicFloodLimits {
    /// Streams the peer opened and aborts (RESET_STREAM or STOP_SENDING)
    /// before we finished answering them, once each: the rapid reset, which quinn's
    /// stream credit does not stop (an aborted stream returns its credit).
    /// Past it the connection is closed with 1008 "flood: stream resets".
    /// Default 500 at once, 100/s, as ws's `floods.resets`.
    pub resets: Budget,
}

impl Default for QuicFloodLimits {
    fn default() -> Self {
        QuicFloodLimits {
            resets: Budget::new(500, 100),
        }
    }
}

impl Default for QuicConfig {
    fn default() -> Self {
        QuicConfig {
            keep_alive_interval: Some(Duration::from_secs(5)),
            idle_timeout: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            max_streams: 100,
            stream_window: 1024 * 1024,
            receive_window: 8 * 1024 * 1024,
            send_window: 4 * 1024 * 1024,
            write_boundary_min: Duration::from_millis(5),
            stop_ack_wait: Duration::from_millis(250),
            strand_alpn: true,
            datagram_receive_buffer: crate::goaway::GOAWAY_DATAGRAM_BUFFER,
            floods: QuicFloodLimits::default(),
        }
    }
}

/// The least stream data a packet carries in the bound of
/// [`QuicConfig::stream_window`]: a packet of QUIC's minimum
/// datagram size (1,200 bytes) less its header, tag, frame header and room
/// for an ACK frame riding along.
const MIN_PACKET_DATA: u64 = 1100;

/// Heap bytes quinn holds per received packet beyond its stream data, at
/// most: the rest of the datagram (short header with our 8-byte connection
/// id and packet number, 13; AEAD tag, 16; STREAM frame header, up to 19),
/// the shared-buffer header `bytes` allocates for it (40) and the
/// reassembly index entry (56), twice over for the index vector's spare
/// capacity (it grows by doubling).
const PACKET_OVERHEAD: u64 = 13 + 16 + 19 + 40 + 2 * 56;

impl QuicConfig {
    /// The flow-control window advertised to the peer for a memory bound of
    /// `window` bytes (see [`QuicConfig::stream_window`]): the
    /// stream data that, received in packets carrying at least 1,100 bytes
    /// of it each, fits in `window` bytes together with what quinn keeps
    /// per packet (at most 200 bytes: the rest of the datagram, a buffer
    /// header and an index entry). About 85 % of `window`.
    pub fn advertised_window(window: u64) -> u64 {
        // u128: no overflow for any u64 window.
        (u128::from(window) * u128::from(MIN_PACKET_DATA)
            / u128::from(MIN_PACKET_DATA + PACKET_OVERHEAD)) as u64
    }

    /// The ALPN protocols this side offers: `configured`, preceded by
    /// [`STRAND_ALPN`] while [`QuicConfig::strand_alpn`] is on.
    pub fn offered_alpn(&self, configured: &[Vec<u8>]) -> Vec<Vec<u8>> {
        if !self.strand_alpn {
            return configured.to_vec();
        }
        std::iter::once(STRAND_ALPN.to_vec())
            .chain(configured.iter().filter(|p| *p != STRAND_ALPN).cloned())
            .collect()
    }

    pub(crate) fn build(&self) -> Result<Arc<quinn::TransportConfig>, QuicError> {
        if let (Some(keep_alive), Some(idle)) = (self.keep_alive_interval, self.idle_timeout) {
            if keep_alive >= idle {
                tracing::warn!(
                    ?keep_alive,
                    ?idle,
                    "quic: keep-alive interval is not below the idle timeout; quiet connections to JS peers will time out"
                );
            }
        }
        let mut t = quinn::TransportConfig::default();
        let idle = match self.idle_timeout {
            Some(d) => Some(
                IdleTimeout::try_from(d)
                    .map_err(|_| QuicError::Config(format!("idle timeout {d:?} is too large")))?,
            ),
            None => None,
        };
        let receive_window = VarInt::from_u64(Self::advertised_window(self.receive_window))
            .map_err(|_| {
                QuicError::Config(format!(
                    "receive window {} is too large",
                    self.receive_window
                ))
            })?;
        t.keep_alive_interval(self.keep_alive_interval)
            .max_idle_timeout(idle)
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .stream_receive_window(VarInt::from_u32(Self::advertised_window(u64::from(
                self.stream_window,
            )) as u32))
            .receive_window(receive_window)
            .send_window(self.send_window)
            .datagram_receive_buffer_size(
                Some(self.datagram_receive_buffer).filter(|&bytes| bytes > 0),
            );
        Ok(Arc::new(t))
    }
}

/// Options of a [`QuicListener`](crate::QuicListener).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QuicServerConfig {
    /// Identity, client authentication and ALPN (default ALPN: `quic`;
    /// `strand/1` is accepted ahead of it, see [`QuicConfig::strand_alpn`]).
    pub tls: ServerTls,
    /// Connection settings and limits.
    pub transport: QuicConfig,
    /// Connections that may be handshaking or waiting in the accept queue at
    /// once; further attempts are refused at the QUIC level.
    ///
    /// Default 128: bounds the memory and CPU a flood of connection attempts
    /// can take while the application is not accepting.
    pub max_pending_handshakes: usize,
    /// Handshakes in progress from which a new connection attempt from an
    /// address not yet validated is answered with a Retry (address
    /// validation): the client must echo the token it carries from the
    /// address it claims, which costs an honest client one round trip and
    /// a spoofed or fire-and-forget Initial every handshake slot and all
    /// handshake work (quinn answers a Retry without keeping state).
    ///
    /// Default 64 (half of `max_pending_handshakes`): below it no client
    /// pays the round trip; 0 asks every client.
    pub retry_threshold: usize,
    /// Connections that may be open at once (accepted by the application and
    /// not yet dropped, plus pending ones); further attempts are refused.
    ///
    /// Default 1024: each connection costs its stream state and receive
    /// windows, so this bounds the listener's memory.
    pub max_connections: usize,
}

impl QuicServerConfig {
    /// Presents `identity`, asks nothing of clients, ALPN `quic`, default limits.
    pub fn new(identity: Identity) -> Self {
        QuicServerConfig {
            tls: ServerTls::new(identity).with_alpn(vec![DEFAULT_ALPN.to_vec()]),
            transport: QuicConfig::default(),
            max_pending_handshakes: 128,
            retry_threshold: 64,
            max_connections: 1024,
        }
    }

    /// Sets what is asked of clients; `ClientAuth::Required` refuses clients
    /// without a valid certificate.
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Self {
        self.tls.client_auth = auth;
        self
    }

    /// Sets the ALPN protocols, in preference order.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.tls.alpn = protocols;
        self
    }

    /// Sets the connection settings.
    pub fn with_transport(mut self, transport: QuicConfig) -> Self {
        self.transport = transport;
        self
    }

    /// Sets [`QuicServerConfig::retry_threshold`].
    pub fn with_retry_threshold(mut self, handshakes: usize) -> Self {
        self.retry_threshold = handshakes;
        self
    }

    pub(crate) fn build(&self) -> Result<quinn::ServerConfig, QuicError> {
        let mut tls = self.tls.clone();
        tls.alpn = self.transport.offered_alpn(&self.tls.alpn);
        let tls = tls.build()?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| QuicError::Config(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(self.transport.build()?);
        Ok(config)
    }
}

/// Options of a [`QuicClient`](crate::QuicClient).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct QuicClientConfig {
    /// Server verification, client certificate and ALPN (default ALPN: `quic`;
    /// `strand/1` is offered ahead of it, see [`QuicConfig::strand_alpn`]).
    pub tls: ClientTls,
    /// Connection settings and limits.
    pub transport: QuicConfig,
}

impl QuicClientConfig {
    /// Verifies servers with `verification`, no client certificate, ALPN `quic`.
    pub fn new(verification: ServerVerification) -> Self {
        QuicClientConfig {
            tls: ClientTls::new(verification).with_alpn(vec![DEFAULT_ALPN.to_vec()]),
            transport: QuicConfig::default(),
        }
    }

    /// Presents `identity` when the server asks for a client certificate.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.tls.identity = Some(identity);
        self
    }

    /// Sets the ALPN protocols, in preference order.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.tls.alpn = protocols;
        self
    }

    /// Sets the connection settings.
    pub fn with_transport(mut self, transport: QuicConfig) -> Self {
        self.transport = transport;
        self
    }

    /// The ALPN protocols the client offers, in preference order.
    pub fn offered_alpn(&self) -> Vec<Vec<u8>> {
        self.transport.offered_alpn(&self.tls.alpn)
    }

    pub(crate) fn build(&self) -> Result<quinn::ClientConfig, QuicError> {
        let mut tls = self.tls.clone();
        tls.alpn = self.offered_alpn();
        let tls = tls.build()?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| QuicError::Config(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.transport.build()?);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_window_leaves_room_for_quinns_per_packet_overhead() {
        for window in [0u64, 1, 1199, 65_536, 300_000, 1 << 20, 8 << 20, 1 << 40] {
            let advertised = QuicConfig::advertised_window(window);
            assert!(advertised <= window);
            // Full packets carrying MIN_PACKET_DATA each, with their overhead.
            let packets = advertised.div_ceil(MIN_PACKET_DATA);
            let held = advertised + packets * PACKET_OVERHEAD;
            assert!(held <= window + PACKET_OVERHEAD, "{window}: {held}");
        }
        assert_eq!(QuicConfig::advertised_window(1 << 20), 887_256);
        // No overflow at the extreme.
        assert!(QuicConfig::advertised_window(u64::MAX) < u64::MAX);
    }

    #[test]
    fn strand_alpn_goes_first_once_and_only_when_on() {
        let configured = vec![b"quic".to_vec(), STRAND_ALPN.to_vec(), b"h3".to_vec()];
        let on = QuicConfig::default();
        assert_eq!(
            on.offered_alpn(&configured),
            vec![STRAND_ALPN.to_vec(), b"quic".to_vec(), b"h3".to_vec()]
        );
        let off = QuicConfig {
            strand_alpn: false,
            ..QuicConfig::default()
        };
        assert_eq!(off.offered_alpn(&configured), configured);
        assert_eq!(off.offered_alpn(&[]), Vec::<Vec<u8>>::new());
    }
}
