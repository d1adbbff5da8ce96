//! [`EndpointConfig`]: everything an [`Endpoint`](crate::Endpoint) needs
//! besides code, deserialisable with serde (TOML, JSON, ...).
//!
//! Every field but `url` is optional. A limit or timeout left out keeps the
//! transport's own default, which is documented next to the field; the
//! transports' config types (`strand::ws::WsConfig`,
//! `strand::quic::QuicConfig`) give the memory or DoS reason for each.
//!
//! ```
//! let config: strand::EndpointConfig = toml::from_str(r#"
//!     url = "quic://127.0.0.1:4433"
//!
//!     [tls]
//!     ca = "ca.pem"            # verify the server against this CA
//!
//!     [limits]
//!     stream_window = 262144
//!
//!     [timeouts]
//!     call_ms = 5000
//! "#).unwrap();
//! assert_eq!(config.limits.stream_window, Some(262_144));
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An endpoint's URL and settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// `ws://host:port/path`, `wss://host:port/path` or `quic://host:port`.
    /// To swap carriers, change the scheme (and port). `wss+h2://` is `wss`
    /// whose client goes over HTTP/2 (`[http2] enabled = true`).
    pub url: String,
    /// Certificates, keys and how peers are verified (`wss` and `quic` only).
    #[serde(default)]
    pub tls: TlsConfig,
    /// Size and count limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Timeouts and keep-alive.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Credentials a client sends.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Client side: reconnect when the connection is lost or the server
    /// drains. Present (even empty, `[reconnect]`) turns it on; absent, the
    /// client stays on its one connection.
    #[serde(default)]
    pub reconnect: Option<ReconnectConfig>,
    /// WebSocket over HTTP/2 (RFC 8441) on `wss`.
    #[serde(default)]
    pub http2: Http2Section,
}

/// `[http2]`: WebSocket over HTTP/2 (RFC 8441) on `wss` (docs/protocol.md,
/// "WebSocket over HTTP/2"). Every field is optional; a limit left out
/// keeps `strand::ws::Http2Config`'s default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Http2Section {
    /// A client reaches the server over HTTP/2 (default false: HTTP/1.1,
    /// which every peer accepts, the JS ones too; a `wss+h2://` URL turns
    /// it on). A server offers HTTP/2 beside HTTP/1.1 on its wss port
    /// (default true).
    pub enabled: Option<bool>,
    /// Streams (WebSockets) on one HTTP/2 connection at once. Default 32.
    pub max_concurrent_streams: Option<u32>,
    /// Largest header list accepted, in bytes. Default 16384.
    pub max_header_list_size: Option<u32>,
    /// HTTP/2 receive window per stream, in bytes. Default 1048576.
    pub initial_stream_window: Option<u32>,
    /// HTTP/2 receive window of the connection, in bytes. Default 8388608.
    pub initial_connection_window: Option<u32>,
    /// Bytes one stream may queue in HTTP/2 before writes wait. Default
    /// 262144.
    pub max_send_buffer: Option<usize>,
}

impl EndpointConfig {
    /// A config for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        EndpointConfig {
            url: url.into(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            timeouts: TimeoutsConfig::default(),
            auth: AuthConfig::default(),
            reconnect: None,
            http2: Http2Section::default(),
        }
    }
}

/// `[reconnect]`: how a client reconnects (docs/deploy.md). Every field is
/// optional; the defaults are gRPC's connection backoff.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// The wait after the first failed attempt. Default 1000 ms.
    pub initial_backoff_ms: Option<u64>,
    /// How much each wait grows over the last (at least 1). Default 1.6.
    pub multiplier: Option<f64>,
    /// The longest wait between attempts. Default 120000 ms.
    pub max_backoff_ms: Option<u64>,
    /// How far each wait is moved at random, as a fraction of it (0 to 1).
    /// Default 0.2.
    pub jitter: Option<f64>,
    /// Failed attempts in a row before the client gives up and closes.
    /// Default: no limit.
    pub max_attempts: Option<u32>,
    /// How many times one call is sent again after the connection was
    /// lost (idempotent calls, and calls the server did not start).
    /// Default 3.
    pub max_call_retries: Option<u32>,
}

// The floats are checked finite by `validate` before use.
impl Eq for ReconnectConfig {}

impl ReconnectConfig {
    /// Checks the ranges: a finite multiplier of at least 1, a jitter from
    /// 0 to 1, waits within [`MAX_TIMEOUT_MS`].
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |what: String| Err(crate::Error::Config(format!("reconnect.{what}")));
        if let Some(m) = self.multiplier.filter(|m| !(m.is_finite() && *m >= 1.0)) {
            return bad(format!("multiplier = {m}: must be a number of at least 1"));
        }
        if let Some(j) = self.jitter.filter(|j| !(0.0..=1.0).contains(j)) {
            return bad(format!("jitter = {j}: must be from 0 to 1"));
        }
        for (key, ms) in [
            ("initial_backoff_ms", self.initial_backoff_ms),
            ("max_backoff_ms", self.max_backoff_ms),
        ] {
            if let Some(ms) = ms.filter(|&ms| ms > MAX_TIMEOUT_MS) {
                return bad(format!(
                    "{key} = {ms} is too long: at most {MAX_TIMEOUT_MS} ms"
                ));
            }
        }
        Ok(())
    }

    /// The client's reconnect settings these ask for.
    pub fn to_client(&self) -> strand_rpc_core::ReconnectConfig {
        let mut config = strand_rpc_core::ReconnectConfig::default();
        if let Some(ms) = self.initial_backoff_ms {
            config.initial_backoff = Duration::from_millis(ms);
        }
        if let Some(m) = self.multiplier {
            config.multiplier = m;
        }
        if let Some(ms) = self.max_backoff_ms {
            config.max_backoff = Duration::from_millis(ms);
        }
        if let Some(j) = self.jitter {
            config.jitter = j;
        }
        config.max_attempts = self.max_attempts;
        if let Some(n) = self.max_call_retries {
            config.max_call_retries = n;
        }
        config
    }
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum VerifyMode {
    /// `ca` when [`TlsConfig::ca`] is set, `webpki` otherwise (the default).
    #[default]
    Auto,
    /// The Mozilla root store and the server name.
    Webpki,
    /// [`TlsConfig::ca`] (a private CA or a pinned certificate) and the
    /// server name. A server presenting exactly one of the certificates in
    /// `tls.ca` is accepted once its name and validity period check, even
    /// when it is marked as a CA (the `openssl req -x509` default) or its
    /// issuer is unknown. Certificate errors say what was expected, what was
    /// presented and what to pass.
    Ca,
    /// Accept any certificate. Development only: no protection against an
    /// active attacker.
    Insecure,
}

/// What a server asks of its clients' certificates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClientAuthMode {
    /// No client certificate is requested (the default).
    #[default]
    None,
    /// Requested; clients without one are accepted. A certificate that is
    /// sent is checked as [`TlsConfig::client_ca`] says: against
    /// [`TlsConfig::ca`] (which must then be set), or not at all.
    Optional,
    /// The handshake fails without a certificate that passes the check above.
    Required,
}

/// Server side: how client certificates are checked when
/// [`TlsConfig::client_auth`] asks for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClientCaMode {
    /// Against [`TlsConfig::ca`] (the default). Without `tls.ca` the
    /// configuration is refused, so that a forgotten CA is not "any client".
    #[default]
    Ca,
    /// Any certificate passes at the TLS layer (the client still proves it
    /// holds the key); the application judges the chain it finds in the
    /// connection's peer info. Must be chosen explicitly.
    Any,
}

/// TLS files and verification (`wss` and `quic`; ignored for `ws`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first: the server's certificate, or the
    /// client's for mTLS. Goes with `key`.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA certificates. A client verifies the server against them; a
    /// server verifies client certificates against them.
    pub ca: Option<PathBuf>,
    /// Client side: how the server is verified. Default `auto`.
    pub verify: VerifyMode,
    /// Client side, quic: the name the server's certificate must carry.
    /// Default: the URL's host (an IP address is checked against IP SANs).
    /// For wss the URL's host is always the name checked.
    pub server_name: Option<String>,
    /// Server side: what is asked of client certificates. Default `none`.
    pub client_auth: ClientAuthMode,
    /// Server side: how client certificates are checked. Default `ca`
    /// (against `tls.ca`, required with `client_auth`); `any` accepts every
    /// certificate for the application to judge.
    pub client_ca: ClientCaMode,
    /// Server side: without `cert`/`key`, generate an in-memory self-signed
    /// certificate for `localhost`, `127.0.0.1` and `::1`. Default false, so
    /// that a forgotten certificate is an error rather than a surprise.
    pub self_signed: bool,
    /// QUIC ALPN protocols, in preference order. Default `["quic"]` (what
    /// `@matrixai/quic` uses).
    pub alpn: Option<Vec<String>>,
    /// QUIC: offer strand's own ALPN id `strand/1` ahead of `alpn`, so that
    /// two strand peers recognise each other and skip the waits that only
    /// `@matrixai/quic` peers need (docs/protocol.md, "ALPN"). Default true;
    /// false treats every peer as a JS one.
    pub strand_alpn: Option<bool>,
}

/// Limits. `None` keeps the transport's default (given per field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// The memory a stalled stream may cost: bytes a peer may send on one
    /// stream ahead of our reader. Default 1 MiB on both carriers. On QUIC
    /// the peer is granted about 85 % of it, the rest being room for
    /// quinn's per-packet cost (see transport-quic's
    /// `QuicConfig::stream_window`).
    pub stream_window: Option<u32>,
    /// Streams open at once on one connection (ws: both directions, default
    /// 256; quic: opened by the peer, default 100). Bounds per-connection
    /// memory to about `max_streams × stream_window`.
    pub max_streams: Option<u32>,
    /// ws: streams opened by the peer and not yet accepted, default 256 (the
    /// same as `max_streams`); past it new streams are refused instead of
    /// buffered. (`accept_backlog` is
    /// accepted as its former name.)
    #[serde(alias = "accept_backlog")]
    pub stream_backlog: Option<usize>,
    /// ws: bytes written on all streams of a connection and not yet taken
    /// by the socket before writes wait, default 4 MiB: what a peer that
    /// stops reading can make us hold, whatever the number of streams.
    pub connection_send_buffer: Option<usize>,
    /// Server: connections open at once, default 1024 (each costs its
    /// buffers and windows). Past it a ws client gets `503`, a QUIC one is
    /// refused.
    pub max_connections: Option<usize>,
    /// Server: connections in their handshake or not yet accepted, default
    /// 256 (ws) and 128 (quic): slow or silent clients cannot take more.
    pub max_pending_handshakes: Option<usize>,
    /// ws server: handshakes in progress at once from one source address
    /// (IPv6: one /64), default 8: a slowloris from one address cannot take
    /// the other clients' handshake slots; a connection past it is closed
    /// at once. Clients behind one NAT share it.
    pub max_pending_handshakes_per_ip: Option<usize>,
    /// QUIC server: handshakes in progress from which a new connection
    /// attempt from an address not yet validated gets a Retry (it must echo
    /// a token, proving it receives at its address), default 64; 0 always
    /// asks. A flood of spoofed Initials then costs no handshake state.
    pub retry_threshold: Option<usize>,
    /// Client: longest JSON-RPC message accepted from the server, default
    /// 1 MiB (the memory one unfinished message may cost).
    pub max_message_size: Option<usize>,
    /// Bytes a peer may make us buffer on one connection, all streams
    /// together, for readers that are behind. ws: default 32 MiB, each stream
    /// starts with a window of half of it shared by `max_streams` (64 KiB)
    /// and grows to `stream_window` from the other half while its reader
    /// keeps up. quic: quinn's connection `receive_window`, default 8 MiB.
    pub connection_receive_buffer: Option<u64>,
    /// ws: control messages (replies the peer provoked) queued for the
    /// socket above which the peer's messages are no longer read until
    /// they drain, default 4096.
    pub max_queued_control: Option<usize>,
    /// Flood budgets, past which the connection is closed with 1008 (ws:
    /// a close frame; quic: the application close code): `resets` applies
    /// to both carriers, the others to ws only (docs/protocol.md, "Flood
    /// budgets").
    pub floods: FloodsConfig,
    /// Server: longest first message of a call, default 64 KiB. It is read
    /// before authentication runs: what an unauthenticated caller can make
    /// one stream cost. Past it the call is answered −32003
    /// ([`Endpoint::server_config`](crate::Endpoint::server_config)).
    pub max_first_message_size: Option<usize>,
    /// quic: bytes of the peer's datagrams held until read, default 1 KiB
    /// (transport-quic's `QuicConfig::datagram_receive_buffer`). Only the
    /// go-away notice of a draining server travels as one; 0 advertises no
    /// datagram support, and a client then gets no notice (docs/deploy.md).
    pub quic_datagram_buffer: Option<usize>,
}

/// One flood budget: `burst` events at once, `per_second` on average.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Events allowed at once.
    pub burst: u32,
    /// Events allowed per second on average.
    pub per_second: u32,
}

/// Flood budgets (`[limits.floods]`); `None` keeps the default. `resets`
/// is the same budget on ws and quic; the others exist on ws only, as
/// quinn already bounds what they guard against on QUIC
/// (docs/reliability.md, "Hostile peers").
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FloodsConfig {
    /// Streams the peer aborts before we answered them (rapid reset), and
    /// on ws refused opens. ws and quic. Default 500 at once, 100/s.
    pub resets: Option<BudgetConfig>,
    /// ws: ERROR/CLOSE frames that change nothing. Default 10,000, 2,000/s.
    pub idle_control: Option<BudgetConfig>,
    /// ws: WebSocket pings. Default 50, 10/s.
    pub pings: Option<BudgetConfig>,
    /// ws: DATA messages with no payload. Default 10,000, 2,000/s.
    /// (`tiny_data`, its name before it stopped counting one-byte messages,
    /// is still read.)
    #[serde(alias = "tiny_data")]
    pub empty_data: Option<BudgetConfig>,
}

/// The longest timeout a config accepts, in milliseconds: 10^12 ms, about 31
/// years. Longer ones are refused ([`crate::Error::Config`]) when the
/// endpoint is made, bound or connected: past some point a deadline no longer
/// fits the clock (`Instant + Duration` overflows), and 10^12 is also what a
/// strand server caps `metadata.timeout` at. Use `0` (where the field allows
/// it) or leave the field out for "no timeout".
pub const MAX_TIMEOUT_MS: u64 = 1_000_000_000_000;

/// Timeouts in milliseconds, each at most [`MAX_TIMEOUT_MS`]. `None` keeps
/// the transport's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeoutsConfig {
    /// TCP/TLS setup and upgrade (ws) or QUIC handshake. Default 10 s: a
    /// peer that connects and says nothing must not hold resources.
    pub handshake_ms: Option<u64>,
    /// Close a connection when nothing arrived for this long; 0 disables it.
    /// Default 60 s (ws), 30 s (quic).
    pub idle_ms: Option<u64>,
    /// Keep-alive interval (ws ping, QUIC keep-alive); 0 disables it. Default
    /// 20 s (ws), 5 s (quic). Keep it below `idle_ms`.
    pub keep_alive_ms: Option<u64>,
    /// ws: close the connection when data waits for the socket and the
    /// socket took nothing for this long; 0 disables it. Default 30 s: a
    /// peer that stops reading (even one that keeps pinging) is closed
    /// and its queued data released.
    pub send_ms: Option<u64>,
    /// Server: how long a call's first message may take to arrive, default
    /// 10 s; past it the call is answered −32008
    /// ([`Endpoint::server_config`](crate::Endpoint::server_config)).
    pub first_message_ms: Option<u64>,
    /// Client: timeout of every call (sent to the server as
    /// `metadata.timeout` and enforced locally). Default none: the server's
    /// default (60 s) applies.
    pub call_ms: Option<u64>,
}

impl TimeoutsConfig {
    /// Checks that every timeout is at most [`MAX_TIMEOUT_MS`].
    pub fn validate(&self) -> Result<(), crate::Error> {
        for (key, ms) in [
            ("handshake_ms", self.handshake_ms),
            ("idle_ms", self.idle_ms),
            ("keep_alive_ms", self.keep_alive_ms),
            ("send_ms", self.send_ms),
            ("first_message_ms", self.first_message_ms),
            ("call_ms", self.call_ms),
        ] {
            if let Some(ms) = ms.filter(|&ms| ms > MAX_TIMEOUT_MS) {
                return Err(crate::Error::Config(format!(
                    "timeouts.{key} = {ms} is too long: at most {MAX_TIMEOUT_MS} ms (about 31 years); leave it out for the default"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn duration(ms: Option<u64>) -> Option<Duration> {
        ms.map(Duration::from_millis)
    }

    /// `Some(Some(d))` to set, `Some(None)` to disable (0), `None` to keep.
    pub(crate) fn optional(ms: Option<u64>) -> Option<Option<Duration>> {
        ms.map(|ms| (ms > 0).then(|| Duration::from_millis(ms)))
    }
}

/// Credentials a client sends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Sent as `metadata.authorization = "Bearer <token>"` with every call.
    pub token: Option<String>,
    /// ws/wss: extra headers on the HTTP upgrade request (e.g.
    /// `authorization`), checked by a server's upgrade hook.
    pub headers: BTreeMap<String, String>,
}
