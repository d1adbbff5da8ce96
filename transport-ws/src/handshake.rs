//! The HTTP upgrade, both sides.
//!
//! Server: we read and parse the request head ourselves (bounded, with
//! `httparse`) so that the async upgrade hook can run before we answer, then
//! either answer an error status or write `101` and wrap the socket. The
//! response never carries `Sec-WebSocket-Extensions`: permessage-deflate is
//! never negotiated. Client: tungstenite's client handshake on our socket.

use std::net::SocketAddr;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use strand_rpc_core::transport::PeerInfo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::tungstenite::Error as WsErr;
use tokio_tungstenite::WebSocketStream;

use crate::config::{HttpResponse, UpgradeContext, WsClientConfig, WsConfig, WsServerConfig};
use crate::error::WsError;

/// Header in which a strand peer advertises its stream window (see
/// docs/protocol.md, "Window advertisement").
pub const WINDOW_HEADER: &str = "x-strand-window";

/// The parts of a WebSocket upgrade request that a server keeps for its
/// handlers. A ws server connection's [`PeerInfo::extensions`] hold it:
/// `UpgradeRequest::of(ctx.peer())`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// The request target (path and query).
    pub uri: http::Uri,
    /// The request headers.
    pub headers: http::HeaderMap,
}

impl UpgradeRequest {
    /// The upgrade request of the connection `peer` describes: `None` on a
    /// client connection or another carrier.
    pub fn of(peer: &PeerInfo) -> Option<&UpgradeRequest> {
        peer.extensions.get::<UpgradeRequest>()
    }
}

const MAX_HEADERS: usize = 64;

/// What a successful server upgrade yields.
pub(crate) struct Accepted<S> {
    pub ws: WebSocketStream<S>,
    pub request: UpgradeRequest,
    pub peer_window: Option<u32>,
}

pub(crate) enum Head {
    Upgrade {
        request: Box<UpgradeRequest>,
        key: String,
        leftover: Bytes,
    },
    /// A plain request the [`crate::HttpHandler`] answers.
    Plain(HttpResponse),
    Reject(StatusCode, &'static str),
}

fn header_has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

pub(crate) fn parse_window(headers: &HeaderMap) -> Option<u32> {
    headers
        .get(WINDOW_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|w| *w > 0)
}

/// The window our upgrade headers advertise, if any. A window of 0 is not
/// one: the peer would not read it ([`parse_window`]), so it is not sent, and
/// the session must not count on the peer knowing it.
pub(crate) fn advertised_window(advertise: bool, transport: &WsConfig) -> Option<u32> {
    // What a stream starts with: the rest is granted by ACKs as it grows.
    Some(transport.initial_stream_window()).filter(|w| advertise && *w > 0)
}

pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    config: &WsServerConfig,
) -> Result<Head, WsError> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if buf.len() >= config.max_request_head {
            return Ok(Head::Reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large",
            ));
        }
        let want = (config.max_request_head - buf.len()).min(4096);
        let mut chunk = vec![0u8; want];
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(WsError::Handshake(
                "connection closed during the request".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                return Ok(Head::Reject(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "too many headers",
                ))
            }
            Err(_) => return Ok(Head::Reject(StatusCode::BAD_REQUEST, "malformed request")),
            Ok(httparse::Status::Complete(len)) => {
                let mut map = HeaderMap::new();
                for h in req.headers.iter() {
                    let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(h.name.as_bytes()),
                        HeaderValue::from_bytes(h.value),
                    ) else {
                        return Ok(Head::Reject(StatusCode::BAD_REQUEST, "malformed header"));
                    };
                    map.append(name, value);
                }
                let Ok(uri) = Uri::from_str(req.path.unwrap_or("/")) else {
                    return Ok(Head::Reject(
                        StatusCode::BAD_REQUEST,
                        "malformed request target",
                    ));
                };
                let is_upgrade = header_has_token(&map, "upgrade", "websocket")
                    && header_has_token(&map, "connection", "upgrade");
                if !is_upgrade {
                    let plain = UpgradeRequest { uri, headers: map };
                    let answer = match &config.http_handler {
                        Some(handler) if req.method == Some("GET") => handler.call(&plain),
                        _ => None,
                    };
                    if let Some(response) = answer {
                        return Ok(Head::Plain(response));
                    }
                    return Ok(Head::Reject(
                        StatusCode::UPGRADE_REQUIRED,
                        "upgrade required",
                    ));
                }
                if req.method != Some("GET") {
                    return Ok(Head::Reject(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method not allowed",
                    ));
                }
                if map.get("sec-websocket-version").map(|v| v.as_bytes()) != Some(b"13") {
                    return Ok(Head::Reject(
                        StatusCode::UPGRADE_REQUIRED,
                        "unsupported websocket version",
                    ));
                }
                let Some(key) = map
                    .get("sec-websocket-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                else {
                    return Ok(Head::Reject(
                        StatusCode::BAD_REQUEST,
                        "missing sec-websocket-key",
                    ));
                };
                if let Some(path) = &config.path {
                    if uri.path() != path {
                        return Ok(Head::Reject(StatusCode::NOT_FOUND, "not found"));
                    }
                }
                let leftover = buf.split_off(len).freeze();
                return Ok(Head::Upgrade {
                    request: Box::new(UpgradeRequest { uri, headers: map }),
                    key,
                    leftover,
                });
            }
        }
    }
}

async fn reject<S: AsyncWrite + Unpin>(
    io: &mut S,
    status: StatusCode,
    body: &str,
) -> Result<(), WsError> {
    let mut resp = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if status == StatusCode::UPGRADE_REQUIRED {
        resp.push_str("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    }
    resp.push_str("\r\n");
    resp.push_str(body);
    io.write_all(resp.as_bytes()).await?;
    io.flush().await?;
    let _ = io.shutdown().await;
    Ok(())
}

/// Answers a plain request with the handler's response, then shuts the socket.
async fn answer<S: AsyncWrite + Unpin>(io: &mut S, response: &HttpResponse) -> Result<(), WsError> {
    // A content type with a line break would smuggle headers in.
    let content_type = response.content_type.replace(['\r', '\n'], "");
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        response.status.as_u16(),
        response.status.canonical_reason().unwrap_or(""),
        response.body.len()
    );
    io.write_all(head.as_bytes()).await?;
    io.write_all(&response.body).await?;
    io.flush().await?;
    let _ = io.shutdown().await;
    Ok(())
}

/// Runs the server side of the upgrade on an established (TLS) socket.
/// `Ok(None)` when the request was answered with an error status.
pub(crate) async fn server<S>(
    mut io: S,
    config: &WsServerConfig,
    remote_addr: SocketAddr,
    certificates: Vec<Bytes>,
) -> Result<Option<Accepted<S>>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (request, key, leftover) = match read_head(&mut io, config).await? {
        Head::Reject(status, why) => {
            reject(&mut io, status, why).await?;
            return Ok(None);
        }
        Head::Plain(response) => {
            answer(&mut io, &response).await?;
            return Ok(None);
        }
        Head::Upgrade {
            request,
            key,
            leftover,
        } => (*request, key, leftover),
    };
    if let Some(hook) = &config.upgrade_hook {
        let ctx = UpgradeContext {
            request: request.clone(),
            remote_addr,
            certificates,
        };
        if let Err(refusal) = hook.call(ctx).await {
            reject(&mut io, refusal.status, &refusal.reason).await?;
            return Ok(None);
        }
    }
    let mut resp = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if let Some(window) = advertised_window(config.advertise_window, &config.transport) {
        resp.push_str(&format!("{WINDOW_HEADER}: {window}\r\n"));
    }
    if crate::goaway::offered(&request.headers) {
        resp.push_str(&format!("{}: 1\r\n", crate::goaway::GOAWAY_HEADER));
    }
    resp.push_str("\r\n");
    io.write_all(resp.as_bytes()).await?;
    io.flush().await?;
    let peer_window = parse_window(&request.headers);
    let ws_config = Some(config.transport.tungstenite());
    let ws = if leftover.is_empty() {
        WebSocketStream::from_raw_socket(io, WsRole::Server, ws_config).await
    } else {
        WebSocketStream::from_partially_read(io, leftover.to_vec(), WsRole::Server, ws_config).await
    };
    Ok(Some(Accepted {
        ws,
        request,
        peer_window,
    }))
}

/// Runs the client side of the upgrade. Returns the socket and the server's
/// advertised window.
pub(crate) async fn client<S>(
    io: S,
    url: &str,
    config: &WsClientConfig,
) -> Result<(WebSocketStream<S>, Option<u32>), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = url
        .into_client_request()
        .map_err(|e| WsError::InvalidUrl(e.to_string()))?;
    for (name, value) in &config.headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    if let Some(window) = advertised_window(config.advertise_window, &config.transport) {
        request.headers_mut().insert(
            HeaderName::from_static(WINDOW_HEADER),
            HeaderValue::from(window),
        );
    }
    request.headers_mut().insert(
        HeaderName::from_static(crate::goaway::GOAWAY_HEADER),
        HeaderValue::from_static("1"),
    );
    let ws_config = Some(config.transport.tungstenite());
    match tokio_tungstenite::client_async_with_config(request, io, ws_config).await {
        Ok((ws, response)) => Ok((ws, parse_window(response.headers()))),
        Err(WsErr::Http(response)) => Err(WsError::Refused(response.status())),
        Err(WsErr::Io(e)) => Err(WsError::Io(e)),
        Err(e) => Err(WsError::Handshake(e.to_string())),
    }
}
