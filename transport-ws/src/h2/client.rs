//! The client side: one HTTP/2 connection to a wss server, over which
//! strand connections open as extended CONNECT streams (RFC 8441).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use strand_rpc_core::transport::PeerInfo;
use strand_tls::ServerName;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

use super::drivers::{polled_in_place, DriverSender, Drivers};
use super::io::H2Io;
use crate::config::WsClientConfig;
use crate::conn::WsConnection;
use crate::endpoint::{certs_to_bytes, prepare};
use crate::error::WsError;
use crate::handshake::{self, WINDOW_HEADER};
use crate::mux::Role;

/// One HTTP/2 connection to a `wss://` server, over which any number of
/// strand connections open as WebSocket streams ([`H2Client::open`]), up
/// to the server's concurrent stream limit. Cheap to clone; the HTTP/2
/// connection closes when every clone and every connection opened over it
/// is dropped.
#[derive(Clone)]
pub struct H2Client {
    send: SendRequest<Bytes>,
    target: Uri,
    config: Arc<WsClientConfig>,
    remote: SocketAddr,
    certificates: Vec<Bytes>,
    /// To the connection's task, which runs the drivers of the strand
    /// connections opened over it (see `super::drivers`).
    drivers: DriverSender,
}

impl std::fmt::Debug for H2Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Client")
            .field("target", &self.target)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

fn h2_error(err: h2::Error) -> WsError {
    match err.into_io() {
        Some(io) => WsError::Io(io),
        None => WsError::Http2("stream or connection reset".into()),
    }
}

impl H2Client {
    /// Connects to a `wss://` URL over HTTP/2 (TCP, TLS with ALPN `h2`, the
    /// HTTP/2 handshake), within [`crate::WsConfig::handshake_timeout`].
    /// Fails if the server does not speak HTTP/2 or does not accept
    /// extended CONNECT. [`WsClientConfig::http2`] gives the HTTP/2 limits
    /// (their defaults if unset).
    pub async fn connect(url: &str, config: WsClientConfig) -> Result<H2Client, WsError> {
        let timeout = config.transport.handshake_timeout;
        tokio::time::timeout(timeout, Self::connect_inner(url, config))
            .await
            .map_err(|_| WsError::HandshakeTimeout)?
    }

    async fn connect_inner(url: &str, config: WsClientConfig) -> Result<H2Client, WsError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| WsError::InvalidUrl(e.to_string()))?;
        if uri.scheme_str() != Some("wss") {
            return Err(WsError::InvalidUrl(format!(
                "{url}: WebSocket over HTTP/2 needs a wss url"
            )));
        }
        let host = uri
            .host()
            .ok_or_else(|| WsError::InvalidUrl(format!("{url}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let authority = uri
            .authority()
            .ok_or_else(|| WsError::InvalidUrl(format!("{url}: no host")))?
            .clone();
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        // The :scheme of a WebSocket over HTTP/2 is https (RFC 8441, 5).
        let target = Uri::builder()
            .scheme("https")
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| WsError::InvalidUrl(format!("{url}: {e}")))?;
        let mut tls = config.tls.clone().ok_or(WsError::TlsRequired)?;
        tls.alpn = vec![b"h2".to_vec()];
        let tls = tls.build()?;
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        let _ = tcp.set_nodelay(true);
        let remote = tcp.peer_addr()?;
        let name = ServerName::try_from(host.clone())
            .map_err(|e| WsError::InvalidUrl(format!("{url}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(WsError::TlsHandshake)?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(WsError::Http2("the server did not negotiate h2".into()));
        }
        let certificates = certs_to_bytes(stream.get_ref().1.peer_certificates());
        let limits = config.http2.unwrap_or_default();
        let (send, mut connection) = limits
            .client()
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(h2_error)?;
        let ping = connection.ping_pong();
        let (drivers, mut driven) = Drivers::new();
        tokio::spawn(polled_in_place(async move {
            tokio::select! {
                ended = connection => if let Err(err) = ended {
                    tracing::debug!(%err, "h2 client connection ended");
                },
                never = driven.run() => match never {},
            }
        }));
        // The server's SETTINGS come before its answer to our PING: once it
        // is back we know whether it accepts extended CONNECT.
        if let Some(mut ping) = ping {
            ping.ping(h2::Ping::opaque()).await.map_err(h2_error)?;
        }
        if !send.is_extended_connect_protocol_enabled() {
            return Err(WsError::Http2(
                "the server does not accept WebSockets over HTTP/2".into(),
            ));
        }
        Ok(H2Client {
            send,
            target,
            config: Arc::new(config),
            remote,
            certificates,
            drivers,
        })
    }

    /// Opens one strand connection as a WebSocket stream of this HTTP/2
    /// connection (an extended CONNECT), within the handshake timeout.
    /// Waits while the server's concurrent stream limit is reached.
    pub async fn open(&self) -> Result<WsConnection, WsError> {
        let timeout = self.config.transport.handshake_timeout;
        tokio::time::timeout(timeout, self.open_inner())
            .await
            .map_err(|_| WsError::HandshakeTimeout)?
    }

    async fn open_inner(&self) -> Result<WsConnection, WsError> {
        let config = &self.config;
        let mut request = Request::builder()
            .method(Method::CONNECT)
            .uri(self.target.clone())
            .header("sec-websocket-version", "13")
            .body(())
            .map_err(|e| WsError::InvalidUrl(e.to_string()))?;
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let headers = request.headers_mut();
        for (name, value) in &config.headers {
            headers.append(name.clone(), value.clone());
        }
        if let Some(window) =
            handshake::advertised_window(config.advertise_window, &config.transport)
        {
            headers.insert(
                HeaderName::from_static(WINDOW_HEADER),
                HeaderValue::from(window),
            );
        }
        headers.insert(
            HeaderName::from_static(crate::goaway::GOAWAY_HEADER),
            HeaderValue::from_static("1"),
        );
        let mut send = self.send.clone().ready().await.map_err(h2_error)?;
        let (response, stream) = send.send_request(request, false).map_err(h2_error)?;
        let response = response.await.map_err(h2_error)?;
        if response.status() != StatusCode::OK {
            return Err(WsError::Refused(response.status()));
        }
        let peer_window = handshake::parse_window(response.headers());
        let io = H2Io::new(stream, response.into_body());
        let ws_config = Some(config.transport.tungstenite());
        let ws = WebSocketStream::from_raw_socket(io, WsRole::Client, ws_config).await;
        let peer = PeerInfo::new("wss")
            .with_remote_addr(self.remote)
            .with_certificates(self.certificates.clone());
        let windows = (peer_window, config.advertise_window);
        let (conn, driver) = prepare(ws, Role::Client, &config.transport, windows, peer, None);
        self.drivers
            .send(driver)
            .map_err(|_| WsError::Http2("the HTTP/2 connection ended".into()))?;
        Ok(conn)
    }
}
