//! [`Endpoint`]: a URL and its settings, and what can be done with it: bind a
//! listener or connect a client, on whichever carrier the scheme names. The
//! carriers' own parts live in `ws.rs` and `quic.rs` (each behind its cargo
//! feature), the TLS settings in `tls.rs`.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use async_trait::async_trait;
use std::sync::Arc;
use strand_rpc_core::server::ServerConfig;
use strand_rpc_core::transport::{DynConnection, Listener};
use strand_rpc_core::{Client, ClientConfig, Connector};
use strand_tls::{ClientAuth, ClientTls, Identity, ServerVerification};
#[cfg(feature = "quic")]
use strand_transport_quic::QuicListener;
#[cfg(feature = "ws")]
use strand_transport_ws::{HttpHandler, UpgradeHook, WsListener};

use crate::config::{EndpointConfig, TimeoutsConfig};
use crate::url::{format_url, parse_url, Scheme};
use crate::Error;

#[cfg(feature = "quic")]
mod quic;
#[cfg(test)]
mod tests;
mod tls;
#[cfg(feature = "ws")]
mod ws;

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
    /// Where the client TLS configs built for this endpoint (and its clones)
    /// are kept, so that reconnections resume their TLS sessions.
    client_tls_configs: ClientTls,
    #[cfg(feature = "ws")]
    upgrade_hook: Option<UpgradeHook>,
    #[cfg(feature = "ws")]
    http_handler: Option<HttpHandler>,
}

impl Endpoint {
    /// Parses `url` (`ws://host[:port][/path]`, `wss://…`, `quic://host:port`)
    /// with default settings. ws and wss default to ports 80 and 443; quic
    /// has no default port. Use port 0 to bind an ephemeral port.
    pub fn from_url(url: &str) -> Result<Endpoint, Error> {
        Endpoint::from_config(EndpointConfig::new(url))
    }

    /// An endpoint from a full configuration.
    /// Fails on a URL it cannot use or a timeout past
    /// [`crate::config::MAX_TIMEOUT_MS`].
    pub fn from_config(config: EndpointConfig) -> Result<Endpoint, Error> {
        let (scheme, host, port, path) = parse_url(&config.url)?;
        config.timeouts.validate()?;
        if let Some(reconnect) = &config.reconnect {
            reconnect.validate()?;
        }
        Ok(Endpoint {
            scheme,
            host,
            port,
            path,
            config,
            identity: None,
            verification: None,
            client_auth: None,
            client_tls_configs: ClientTls::new(ServerVerification::Insecure),
            #[cfg(feature = "ws")]
            upgrade_hook: None,
            #[cfg(feature = "ws")]
            http_handler: None,
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
    #[cfg(feature = "ws")]
    pub fn with_upgrade_hook(mut self, hook: UpgradeHook) -> Self {
        self.upgrade_hook = Some(hook);
        self
    }

    /// Server side, ws/wss: answers plain `GET` requests (no upgrade) with
    /// `handler`, e.g. a page next to the WebSocket; the requests it leaves
    /// (`None`) get `426 Upgrade Required`.
    #[cfg(feature = "ws")]
    pub fn with_http_handler(mut self, handler: HttpHandler) -> Self {
        self.http_handler = Some(handler);
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
        // Settings may have changed through `config_mut` since `from_config`.
        self.config.timeouts.validate()?;
        let inner = match self.scheme {
            #[cfg(feature = "ws")]
            Scheme::Ws | Scheme::Wss => Inner::Ws(self.bind_ws().await?),
            #[cfg(feature = "quic")]
            Scheme::Quic => Inner::Quic(self.bind_quic().await?),
            #[allow(unreachable_patterns)]
            scheme => return Err(Error::NotBuilt(scheme)),
        };
        let local_addr = match &inner {
            #[cfg(feature = "ws")]
            Inner::Ws(l) => l.local_addr(),
            #[cfg(feature = "quic")]
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
    /// connections from one socket use `strand::quic::QuicClient`.
    pub async fn connect_connection(&self) -> Result<DynConnection, Error> {
        self.config.timeouts.validate()?;
        match self.scheme {
            #[cfg(feature = "ws")]
            Scheme::Ws | Scheme::Wss => self.connect_ws().await,
            #[cfg(feature = "quic")]
            Scheme::Quic => self.connect_quic().await,
            #[allow(unreachable_patterns)]
            scheme => Err(Error::NotBuilt(scheme)),
        }
    }

    /// Connects and returns a [`Client`] with this endpoint's call settings
    /// (token, call timeout, message size limit).
    ///
    /// With `[reconnect]` in the config (or [`Endpoint::with_reconnect`])
    /// the client reconnects when its connection is lost or its server
    /// drains (see [`strand_rpc_core::client::reconnect`]); the first
    /// connection must succeed.
    pub async fn connect(&self) -> Result<Client, Error> {
        let Some(reconnect) = &self.config.reconnect else {
            let conn = self.connect_connection().await?;
            return Ok(Client::from_shared(conn, self.client_config()));
        };
        reconnect.validate()?;
        let endpoint = self.clone();
        let connector: Connector = Arc::new(move || {
            let endpoint = endpoint.clone();
            Box::pin(async move {
                endpoint
                    .connect_connection()
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))
            })
        });
        let config = self.client_config().reconnect(reconnect.to_client());
        // The first attempt again, for its typed error.
        let first = self.connect_connection().await?;
        let first = std::sync::Mutex::new(Some(first));
        let connector_once: Connector =
            Arc::new(
                move || match first.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    Some(conn) => Box::pin(std::future::ready(Ok(conn))),
                    None => connector(),
                },
            );
        Ok(Client::connect_with(connector_once, config).await?)
    }

    /// Turns reconnecting on with these settings (as `[reconnect]` does).
    pub fn with_reconnect(mut self, reconnect: crate::config::ReconnectConfig) -> Self {
        self.config.reconnect = Some(reconnect);
        self
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

    /// The server settings this endpoint's config asks for
    /// (`limits.max_first_message_size`, `timeouts.first_message_ms`); pass
    /// them to [`ServerBuilder::config`](strand_rpc_core::server::ServerBuilder::config).
    pub fn server_config(&self) -> ServerConfig {
        let mut config = ServerConfig::default();
        if let Some(size) = self.config.limits.max_first_message_size {
            config.max_first_message_size = size;
        }
        if let Some(timeout) = TimeoutsConfig::duration(self.config.timeouts.first_message_ms) {
            config.first_message_timeout = timeout;
        }
        config
    }
}

enum Inner {
    #[cfg(feature = "ws")]
    Ws(WsListener),
    #[cfg(feature = "quic")]
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
            #[cfg(feature = "ws")]
            Inner::Ws(l) => Listener::accept(l).await,
            #[cfg(feature = "quic")]
            Inner::Quic(l) => Listener::accept(l).await,
        }
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        Some(self.local_addr)
    }

    fn stop_accepting(&self) -> bool {
        match &self.inner {
            #[cfg(feature = "ws")]
            Inner::Ws(l) => Listener::stop_accepting(l),
            #[cfg(feature = "quic")]
            Inner::Quic(l) => Listener::stop_accepting(l),
        }
    }
}
