//! [`Endpoint`]: a URL and its settings, and what can be done with it: bind a
//! listener or connect a client, on whichever carrier the scheme names.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use strand_rpc_core::transport::{DynConnection, Listener};
use strand_rpc_core::{Client, ClientConfig};
use strand_tls::{
    load_certs_pem, ClientAuth, ClientCertVerification, ClientTls, Identity, ServerTls,
    ServerVerification,
};
use strand_transport_quic::{QuicClientConfig, QuicConfig, QuicListener, QuicServerConfig};
use strand_transport_ws::{UpgradeHook, WsClientConfig, WsConfig, WsListener, WsServerConfig};

use crate::config::{ClientAuthMode, EndpointConfig, TimeoutsConfig, VerifyMode};
use crate::Error;

/// The carrier a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `ws://`: streams multiplexed over a plain WebSocket.
    Ws,
    /// `wss://`: the same over TLS.
    Wss,
    /// `quic://`: one QUIC bidi stream per call (always TLS 1.3).
    Quic,
}

impl Scheme {
    /// `"ws"`, `"wss"` or `"quic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Quic => "quic",
        }
    }

    /// Whether the carrier uses TLS.
    pub fn is_tls(self) -> bool {
        !matches!(self, Scheme::Ws)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where to listen or connect, and how: a `ws://`, `wss://` or `quic://` URL
/// plus an [`EndpointConfig`] (TLS, limits, timeouts, credentials).
///
/// Swapping the carrier is changing the URL: the same [`crate::Server`] and
/// the same [`Client`] code work over every one.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use strand::{Endpoint, Router, Server, RpcError};
/// use serde_json::Value;
///
/// let router = Router::new().unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) });
/// let server = Server::builder(router).build();
/// let listener = Endpoint::from_url("ws://127.0.0.1:0")?.bind().await?;
/// let url = listener.url();
/// tokio::spawn(async move { server.serve(listener).await });
///
/// let client = Endpoint::from_url(&url)?.connect().await?;
/// let out: Value = client.unary("echo", &serde_json::json!({"hi": 1})).await?;
/// # let _ = out; Ok(()) }
/// ```
///
/// Settings given in code (an in-memory [`Identity`], a
/// [`ServerVerification`], a [`ClientAuth`], an [`UpgradeHook`]) take
/// precedence over the file-based ones of the config.
#[derive(Clone, Debug)]
pub struct Endpoint {
    scheme: Scheme,
    host: String,
    port: u16,
    path: String,
    config: EndpointConfig,
    identity: Option<Identity>,
    verification: Option<ServerVerification>,
    client_auth: Option<ClientAuth>,
    upgrade_hook: Option<UpgradeHook>,
}

impl Endpoint {
    /// Parses `url` (`ws://host[:port][/path]`, `wss://…`, `quic://host:port`)
    /// with default settings. ws and wss default to ports 80 and 443; quic
    /// has no default port. Use port 0 to bind an ephemeral port.
    pub fn from_url(url: &str) -> Result<Endpoint, Error> {
        Endpoint::from_config(EndpointConfig::new(url))
    }

    /// An endpoint from a full configuration.
    pub fn from_config(config: EndpointConfig) -> Result<Endpoint, Error> {
        let (scheme, host, port, path) = parse_url(&config.url)?;
        Ok(Endpoint {
            scheme,
            host,
            port,
            path,
            config,
            identity: None,
            verification: None,
            client_auth: None,
            upgrade_hook: None,
        })
    }

    /// An endpoint from a TOML document holding an [`EndpointConfig`].
    pub fn from_toml(text: &str) -> Result<Endpoint, Error> {
        let config: EndpointConfig =
            toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        Endpoint::from_config(config)
    }

    /// The carrier.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (0 = ephemeral, when binding).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The ws path (`/` when none was given; unused for quic).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// The configuration, to change settings in code.
    pub fn config_mut(&mut self) -> &mut EndpointConfig {
        &mut self.config
    }

    /// The normalised URL.
    pub fn url(&self) -> String {
        format_url(self.scheme, &self.host, self.port, &self.path)
    }

    /// Uses `identity` as the server certificate (server side) or the client
    /// certificate for mTLS (client side), instead of `tls.cert`/`tls.key`.
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Client side: verifies the server this way instead of `tls.verify`.
    pub fn with_server_verification(mut self, verification: ServerVerification) -> Self {
        self.verification = Some(verification);
        self
    }

    /// Server side: asks this of client certificates instead of
    /// `tls.client_auth`.
    pub fn with_client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = Some(auth);
        self
    }

    /// Server side, ws/wss: runs `hook` on every upgrade request (auth on
    /// headers, path, client certificate) before the WebSocket is accepted.
    pub fn with_upgrade_hook(mut self, hook: UpgradeHook) -> Self {
        self.upgrade_hook = Some(hook);
        self
    }

    /// Client side: sends `Bearer <token>` with every call.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.config.auth.token = Some(token.into());
        self
    }

    /// Client side, ws/wss: adds a header to the upgrade request.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.auth.headers.insert(name.into(), value.into());
        self
    }

    /// Binds a listener on this endpoint's address. Hand it to
    /// [`crate::Server::serve`], or serve several with [`crate::Serving`].
    pub async fn bind(&self) -> Result<BoundListener, Error> {
        let inner = match self.scheme {
            Scheme::Ws | Scheme::Wss => {
                let mut config = WsServerConfig::default();
                config.transport = self.ws_config();
                let limits = &self.config.limits;
                if let Some(n) = limits.max_connections {
                    config.max_connections = n;
                }
                if let Some(n) = limits.max_pending_handshakes {
                    config.max_pending_handshakes = n;
                }
                if self.path != "/" {
                    config.path = Some(self.path.clone());
                }
                if self.scheme == Scheme::Wss {
                    config.tls = Some(self.server_tls()?);
                }
                config.upgrade_hook = self.upgrade_hook.clone();
                let listener = WsListener::bind((self.host.as_str(), self.port), config).await?;
                Inner::Ws(listener)
            }
            Scheme::Quic => {
                let addr = self.resolve().await?;
                let tls = self.server_tls()?;
                let mut config = QuicServerConfig::new(tls.identity.clone())
                    .with_client_auth(tls.client_auth)
                    .with_transport(self.quic_transport());
                if let Some(alpn) = self.alpn() {
                    config = config.with_alpn(alpn);
                }
                let limits = &self.config.limits;
                if let Some(n) = limits.max_connections {
                    config.max_connections = n;
                }
                if let Some(n) = limits.max_pending_handshakes {
                    config.max_pending_handshakes = n;
                }
                Inner::Quic(QuicListener::bind(addr, config).await?)
            }
        };
        let local_addr = match &inner {
            Inner::Ws(l) => l.local_addr(),
            Inner::Quic(l) => l.local_addr(),
        };
        let url = format_url(
            self.scheme,
            &local_addr.ip().to_string(),
            local_addr.port(),
            &self.path,
        );
        Ok(BoundListener {
            inner,
            local_addr,
            url,
        })
    }

    /// Connects and returns the bare connection (for the transport-level API).
    ///
    /// For quic each connection gets its own UDP socket; to make many
    /// connections from one socket use [`crate::quic::QuicClient`].
    pub async fn connect_connection(&self) -> Result<DynConnection, Error> {
        match self.scheme {
            Scheme::Ws | Scheme::Wss => {
                let mut config = WsClientConfig::default();
                config.transport = self.ws_config();
                if self.scheme == Scheme::Wss {
                    config.tls = Some(self.client_tls()?);
                }
                for (name, value) in &self.config.auth.headers {
                    let name = http::HeaderName::try_from(name.as_str())
                        .map_err(|e| Error::Config(format!("header name {name:?}: {e}")))?;
                    let value = http::HeaderValue::try_from(value.as_str())
                        .map_err(|e| Error::Config(format!("header {name}: {e}")))?;
                    config.headers.push((name, value));
                }
                let conn = strand_transport_ws::connect(&self.url(), config).await?;
                Ok(Arc::new(conn))
            }
            Scheme::Quic => {
                let addr = self.resolve().await?;
                let tls = self.client_tls()?;
                let mut config = QuicClientConfig::new(tls.verification.clone())
                    .with_transport(self.quic_transport());
                config.tls = tls;
                config.tls.alpn = self
                    .alpn()
                    .unwrap_or_else(|| vec![strand_transport_quic::DEFAULT_ALPN.to_vec()]);
                let name = self
                    .config
                    .tls
                    .server_name
                    .clone()
                    .unwrap_or_else(|| self.host.clone());
                let conn = strand_transport_quic::connect(addr, &name, config).await?;
                Ok(Arc::new(conn))
            }
        }
    }

    /// Connects and returns a [`Client`] with this endpoint's call settings
    /// (token, call timeout, message size limit).
    pub async fn connect(&self) -> Result<Client, Error> {
        let conn = self.connect_connection().await?;
        Ok(Client::from_shared(conn, self.client_config()))
    }

    /// The client settings this endpoint's config asks for.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::default();
        if let Some(timeout) = TimeoutsConfig::duration(self.config.timeouts.call_ms) {
            config = config.timeout(timeout);
        }
        if let Some(token) = &self.config.auth.token {
            config = config.bearer(token);
        }
        if let Some(size) = self.config.limits.max_message_size {
            config = config.max_message_size(size);
        }
        config
    }

    async fn resolve(&self) -> Result<SocketAddr, Error> {
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .next()
            .ok_or_else(|| {
                Error::Io(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} resolves to no address", self.host),
                ))
            })
    }

    fn alpn(&self) -> Option<Vec<Vec<u8>>> {
        let alpn = self.config.tls.alpn.as_ref()?;
        Some(alpn.iter().map(|p| p.as_bytes().to_vec()).collect())
    }

    fn ws_config(&self) -> WsConfig {
        let (limits, timeouts) = (&self.config.limits, &self.config.timeouts);
        let mut ws = WsConfig::default();
        if let Some(w) = limits.stream_window {
            ws.stream_window = w;
        }
        if let Some(n) = limits.max_streams {
            ws.max_streams = n as usize;
        }
        if let Some(n) = limits.stream_backlog {
            ws.stream_backlog = n;
        }
        if let Some(t) = TimeoutsConfig::duration(timeouts.handshake_ms) {
            ws.handshake_timeout = t;
        }
        if let Some(t) = TimeoutsConfig::optional(timeouts.idle_ms) {
            ws.idle_timeout = t;
        }
        if let Some(t) = TimeoutsConfig::optional(timeouts.keep_alive_ms) {
            ws.keep_alive_interval = t;
        }
        ws
    }

    fn quic_transport(&self) -> QuicConfig {
        let (limits, timeouts) = (&self.config.limits, &self.config.timeouts);
        let mut t = QuicConfig::default();
        if let Some(w) = limits.stream_window {
            t.stream_window = w;
        }
        if let Some(n) = limits.max_streams {
            t.max_streams = n;
        }
        if let Some(d) = TimeoutsConfig::duration(timeouts.handshake_ms) {
            t.handshake_timeout = d;
        }
        if let Some(d) = TimeoutsConfig::optional(timeouts.idle_ms) {
            t.idle_timeout = d;
        }
        if let Some(d) = TimeoutsConfig::optional(timeouts.keep_alive_ms) {
            t.keep_alive_interval = d;
        }
        t
    }

    fn file_identity(&self) -> Result<Option<Identity>, Error> {
        if let Some(identity) = &self.identity {
            return Ok(Some(identity.clone()));
        }
        match (&self.config.tls.cert, &self.config.tls.key) {
            (Some(cert), Some(key)) => Ok(Some(Identity::from_pem_files(cert, key)?)),
            (None, None) => Ok(None),
            _ => Err(Error::Config(
                "tls.cert and tls.key must be given together".into(),
            )),
        }
    }

    fn ca(&self) -> Result<Option<Vec<strand_tls::CertificateDer<'static>>>, Error> {
        let Some(path) = &self.config.tls.ca else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|source| strand_tls::TlsError::ReadFile {
            path: path.clone(),
            source,
        })?;
        Ok(Some(load_certs_pem(&pem)?))
    }

    fn server_tls(&self) -> Result<ServerTls, Error> {
        let identity = match self.file_identity()? {
            Some(identity) => identity,
            None if self.config.tls.self_signed => Identity::dev()?,
            None => {
                return Err(Error::Config(format!(
                    "a {} server needs a certificate: set tls.cert and tls.key, or tls.self_signed = true",
                    self.scheme
                )))
            }
        };
        let client_auth = match &self.client_auth {
            Some(auth) => auth.clone(),
            None => {
                let check = match self.ca()? {
                    Some(cas) => ClientCertVerification::Ca(cas),
                    None => ClientCertVerification::AnyCertificate,
                };
                match self.config.tls.client_auth {
                    ClientAuthMode::None => ClientAuth::None,
                    ClientAuthMode::Optional => ClientAuth::Optional(check),
                    ClientAuthMode::Required => ClientAuth::Required(check),
                }
            }
        };
        Ok(ServerTls::new(identity).with_client_auth(client_auth))
    }

    fn client_tls(&self) -> Result<ClientTls, Error> {
        let verification = match &self.verification {
            Some(v) => v.clone(),
            None => match (self.config.tls.verify, self.ca()?) {
                (VerifyMode::Auto | VerifyMode::Ca, Some(cas)) => ServerVerification::Ca(cas),
                (VerifyMode::Ca, None) => {
                    return Err(Error::Config("tls.verify = \"ca\" needs tls.ca".into()))
                }
                (VerifyMode::Auto | VerifyMode::Webpki, _) => ServerVerification::WebPkiRoots,
                (VerifyMode::Insecure, _) => ServerVerification::Insecure,
            },
        };
        let mut tls = ClientTls::new(verification);
        if let Some(identity) = self.file_identity()? {
            tls = tls.with_identity(identity);
        }
        Ok(tls)
    }
}

fn format_url(scheme: Scheme, host: &str, port: u16, path: &str) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let path = if scheme == Scheme::Quic || path == "/" {
        ""
    } else {
        path
    };
    format!("{scheme}://{host}:{port}{path}")
}

fn parse_url(url: &str) -> Result<(Scheme, String, u16, String), Error> {
    let uri: http::Uri = url.parse().map_err(|e| Error::url(url, format!("{e}")))?;
    let scheme = match uri.scheme_str() {
        Some("ws") => Scheme::Ws,
        Some("wss") => Scheme::Wss,
        Some("quic") => Scheme::Quic,
        Some(other) => {
            return Err(Error::url(
                url,
                format!("unknown scheme {other:?}: use ws, wss or quic"),
            ))
        }
        None => return Err(Error::url(url, "no scheme: use ws://, wss:// or quic://")),
    };
    let authority = uri.authority().ok_or_else(|| Error::url(url, "no host"))?;
    if authority.as_str().contains('@') {
        return Err(Error::url(url, "user info is not supported"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(Error::url(url, "no host"));
    }
    // `http::Uri` reports an out-of-range port as no port: read it ourselves.
    let raw = authority.as_str();
    let after_host = match raw.find(']') {
        Some(end) if raw.starts_with('[') => &raw[end + 1..],
        _ => raw,
    };
    let explicit = match after_host.rfind(':') {
        Some(colon) => {
            let port = &after_host[colon + 1..];
            if port.is_empty() {
                return Err(Error::url(url, "empty port"));
            }
            Some(
                port.parse::<u16>()
                    .map_err(|_| Error::url(url, format!("invalid port {port:?}")))?,
            )
        }
        None => None,
    };
    let port = match (explicit, scheme) {
        (Some(port), _) => port,
        (None, Scheme::Ws) => 80,
        (None, Scheme::Wss) => 443,
        (None, Scheme::Quic) => {
            return Err(Error::url(url, "missing port: quic has no default port"))
        }
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if scheme == Scheme::Quic && path != "/" && !path.is_empty() {
        return Err(Error::url(url, "a quic url has no path"));
    }
    let path = if path.is_empty() { "/" } else { path };
    Ok((scheme, host, port, path.to_owned()))
}

enum Inner {
    Ws(WsListener),
    Quic(QuicListener),
}

/// A listener bound by [`Endpoint::bind`], on either carrier. Implements
/// [`Listener`], so [`crate::Server::serve`] takes it.
pub struct BoundListener {
    inner: Inner,
    local_addr: SocketAddr,
    url: String,
}

impl BoundListener {
    /// The bound address (the actual port after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to, with the actual port.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl fmt::Debug for BoundListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundListener")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Listener for BoundListener {
    async fn accept(&self) -> io::Result<DynConnection> {
        match &self.inner {
            Inner::Ws(l) => Listener::accept(l).await,
            Inner::Quic(l) => Listener::accept(l).await,
        }
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientAuthMode, VerifyMode};

    #[test]
    fn parses_ws_wss_and_quic_urls() {
        let e = Endpoint::from_url("ws://127.0.0.1:8080/rpc").unwrap();
        assert_eq!(
            (e.scheme(), e.host(), e.port(), e.path()),
            (Scheme::Ws, "127.0.0.1", 8080, "/rpc")
        );
        assert_eq!(e.url(), "ws://127.0.0.1:8080/rpc");

        let e = Endpoint::from_url("wss://example.com").unwrap();
        assert_eq!(
            (e.scheme(), e.host(), e.port(), e.path()),
            (Scheme::Wss, "example.com", 443, "/")
        );
        assert_eq!(e.url(), "wss://example.com:443");

        let e = Endpoint::from_url("ws://localhost").unwrap();
        assert_eq!(e.port(), 80);

        let e = Endpoint::from_url("quic://[::1]:4433").unwrap();
        assert_eq!(
            (e.scheme(), e.host(), e.port()),
            (Scheme::Quic, "::1", 4433)
        );
        assert_eq!(e.url(), "quic://[::1]:4433");
        assert!(e.scheme().is_tls());
    }

    fn invalid(url: &str) -> String {
        match Endpoint::from_url(url) {
            Err(Error::InvalidUrl { reason, .. }) => reason,
            other => panic!("{url}: expected an invalid url error, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(invalid("http://127.0.0.1:80").contains("unknown scheme"));
        assert!(invalid("tcp://127.0.0.1:80").contains("unknown scheme"));
        assert!(invalid("127.0.0.1:80").contains("scheme"));
        assert!(invalid("quic://127.0.0.1").contains("missing port"));
        assert!(invalid("quic://127.0.0.1:").contains("port"));
        assert!(invalid("quic://127.0.0.1:4433/path").contains("no path"));
        assert!(invalid("ws://127.0.0.1:99999").contains("port"));
        assert!(invalid("ws://user@host:80").contains("user info"));
        invalid("");
        invalid("ws://");
    }

    #[test]
    fn toml_config_with_defaults() {
        let e = Endpoint::from_toml(r#"url = "quic://127.0.0.1:4433""#).unwrap();
        let c = e.config();
        assert_eq!(c.tls, crate::TlsConfig::default());
        assert_eq!(c.tls.verify, VerifyMode::Auto);
        assert_eq!(c.tls.client_auth, ClientAuthMode::None);
        assert!(!c.tls.self_signed);
        assert_eq!(c.limits, crate::LimitsConfig::default());
        assert_eq!(c.timeouts, crate::TimeoutsConfig::default());
        // Defaults left to the transports.
        let t = e.quic_transport();
        let d = QuicConfig::default();
        assert_eq!(t.stream_window, d.stream_window);
        assert_eq!(t.idle_timeout, d.idle_timeout);
        assert!(e.client_config().timeout.is_none());
        assert!(e.client_config().metadata.is_empty());
    }

    #[test]
    fn toml_config_full() {
        let e = Endpoint::from_toml(
            r#"
            url = "wss://127.0.0.1:9000/rpc"
            [tls]
            cert = "server.pem"
            key = "server.key"
            ca = "ca.pem"
            verify = "insecure"
            server_name = "localhost"
            client_auth = "required"
            alpn = ["quic", "h3"]
            [limits]
            stream_window = 65536
            max_streams = 16
            stream_backlog = 8
            max_connections = 10
            max_pending_handshakes = 5
            max_message_size = 4096
            [timeouts]
            handshake_ms = 2000
            idle_ms = 0
            keep_alive_ms = 1000
            call_ms = 3000
            [auth]
            token = "t0k"
            headers = { authorization = "Bearer up" }
            "#,
        )
        .unwrap();
        let c = e.config();
        assert_eq!(c.tls.verify, VerifyMode::Insecure);
        assert_eq!(c.tls.client_auth, ClientAuthMode::Required);
        assert_eq!(
            c.tls.alpn.as_deref(),
            Some(&["quic".to_string(), "h3".to_string()][..])
        );
        let ws = e.ws_config();
        assert_eq!(ws.stream_window, 65536);
        assert_eq!(ws.max_streams, 16);
        assert_eq!(ws.stream_backlog, 8);
        assert_eq!(c.limits.max_pending_handshakes, Some(5));
        // The former name of `stream_backlog` still reads.
        let old = Endpoint::from_toml("url = \"ws://h:1\"\n[limits]\naccept_backlog = 3").unwrap();
        assert_eq!(old.ws_config().stream_backlog, 3);
        assert_eq!(ws.handshake_timeout, std::time::Duration::from_secs(2));
        assert_eq!(ws.idle_timeout, None, "0 disables the idle timeout");
        assert_eq!(
            ws.keep_alive_interval,
            Some(std::time::Duration::from_secs(1))
        );
        let q = e.quic_transport();
        assert_eq!(q.stream_window, 65536);
        assert_eq!(q.max_streams, 16);
        let client = e.client_config();
        assert_eq!(client.timeout, Some(std::time::Duration::from_secs(3)));
        assert_eq!(client.max_message_size, 4096);
        assert_eq!(client.metadata["authorization"], "Bearer t0k");
        assert_eq!(c.auth.headers["authorization"], "Bearer up");
    }

    #[test]
    fn toml_config_errors() {
        // Unknown keys are refused (a typo must not be silently ignored).
        let err =
            Endpoint::from_toml("url = \"ws://h:1\"\n[limits]\nstream_windw = 1").unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
        // The url is required.
        assert!(matches!(
            Endpoint::from_toml("[tls]\n").unwrap_err(),
            Error::Config(_)
        ));
        let err = Endpoint::from_toml("url = \"ftp://h:1\"").unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
        let err = Endpoint::from_toml("url = \"ws://h:1\"\n[tls]\nverify = \"maybe\"").unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }

    #[tokio::test]
    async fn tls_servers_need_a_certificate() {
        let err = Endpoint::from_url("quic://127.0.0.1:0")
            .unwrap()
            .bind()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("needs a certificate"), "{err}");
        let mut e = Endpoint::from_url("wss://127.0.0.1:0").unwrap();
        e.config_mut().tls.cert = Some("cert.pem".into());
        let err = e.bind().await.unwrap_err();
        assert!(err.to_string().contains("together"), "{err}");
        let mut e = Endpoint::from_url("wss://127.0.0.1:0").unwrap();
        e.config_mut().tls.self_signed = true;
        let listener = e.bind().await.unwrap();
        assert!(listener.url().starts_with("wss://127.0.0.1:"));
        assert_ne!(listener.local_addr().port(), 0);
    }

    #[tokio::test]
    async fn missing_ca_file_is_a_clear_error() {
        let mut e = Endpoint::from_url("quic://127.0.0.1:9").unwrap();
        e.config_mut().tls.ca = Some("/nonexistent/ca.pem".into());
        let err = e.connect().await.err().expect("connect must fail");
        assert!(matches!(err, Error::Tls(_)), "{err}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
