//! The server side: an HTTP/2 connection (ALPN `h2` on the wss listener)
//! whose extended CONNECT streams with `:protocol = websocket` become strand
//! connections after the same admission as an HTTP/1.1 upgrade.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::RecvStream;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use strand_rpc_core::transport::{AcceptQueue, ConnectionSlot, PeerInfo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

use super::drivers::{DriverSender, Drivers};
use super::io::H2Io;
use super::Http2Config;
use crate::config::{HttpResponse, UpgradeContext, WsServerConfig};
use crate::conn::WsConnection;
use crate::endpoint::{prepare, ListenerCounters};
use crate::error::WsError;
use crate::handshake::{self, UpgradeRequest, WINDOW_HEADER};
use crate::mux::Role;
use crate::source_limit::SourceLimit;

/// What every stream of one HTTP/2 connection is admitted with.
pub(crate) struct H2Context {
    pub config: Arc<WsServerConfig>,
    pub queue: AcceptQueue<WsConnection>,
    pub sources: Arc<SourceLimit>,
    pub counters: Arc<ListenerCounters>,
    pub remote: SocketAddr,
    pub certificates: Vec<Bytes>,
    /// To the connection's task, which runs its WebSockets' drivers.
    pub drivers: DriverSender,
}

/// The HTTP/2 preface and SETTINGS exchange; SETTINGS_ENABLE_CONNECT_PROTOCOL
/// is advertised.
pub(crate) async fn handshake<S>(
    io: S,
    config: &Http2Config,
) -> Result<Connection<S, Bytes>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    config
        .server()
        .handshake(io)
        .await
        .map_err(|e| WsError::Http2(e.to_string()))
}

/// Serves the connection's streams until it closes. It is shut down
/// gracefully (GOAWAY: no new streams, those open go on) when it is idle (no
/// stream for [`crate::WsConfig::idle_timeout`]) or when the listener closed
/// (dropped, or its server shut down or drained): a browser then opens its
/// next WebSocket elsewhere. `slot`, its share of `max_connections`, is held
/// until it ends. The drivers of its WebSockets run on this task, handed
/// over through `ctx.drivers` (see [`super::drivers`]); they end with it.
pub(crate) async fn serve<S>(
    mut conn: Connection<S, Bytes>,
    ctx: Arc<H2Context>,
    mut drivers: Drivers,
    slot: ConnectionSlot,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let idle = ctx.config.transport.idle_timeout;
    let listener_closed = ctx.queue.closed();
    tokio::pin!(listener_closed);
    let mut shutting_down = false;
    loop {
        let next = tokio::select! {
            next = async {
                match idle {
                    Some(idle) => tokio::time::timeout(idle, conn.accept()).await,
                    None => Ok(conn.accept().await),
                }
            } => next,
            () = &mut listener_closed, if !shutting_down => {
                shutting_down = true;
                conn.graceful_shutdown();
                continue;
            }
            never = drivers.run() => match never {},
        };
        match next {
            Ok(Some(Ok((request, respond)))) => {
                tokio::spawn(handle(request, respond, ctx.clone()));
            }
            Ok(Some(Err(err))) => {
                tracing::debug!(remote = %ctx.remote, %err, "h2 connection failed");
                break;
            }
            Ok(None) => break,
            Err(_idle) => {
                if !conn.has_streams() && !shutting_down {
                    shutting_down = true;
                    conn.graceful_shutdown();
                }
            }
        }
    }
    drop(slot);
}

/// How a request that did not become a WebSocket is answered.
enum Answer {
    Status(StatusCode, &'static str),
    Refused(StatusCode, String),
    Page(HttpResponse),
}

async fn handle(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    ctx: Arc<H2Context>,
) {
    let timeout = ctx.config.transport.handshake_timeout;
    let answer = match tokio::time::timeout(timeout, admit(request, &mut respond, &ctx)).await {
        Ok(Ok(())) => return,
        Ok(Err(answer)) => answer,
        Err(_) => Answer::Status(StatusCode::REQUEST_TIMEOUT, "handshake timed out"),
    };
    send_answer(&mut respond, answer);
}

/// Admits an extended CONNECT as a strand connection (answering `200` and
/// queueing the connection for `accept`), or says how to refuse it.
async fn admit(
    request: Request<RecvStream>,
    respond: &mut SendResponse<Bytes>,
    ctx: &H2Context,
) -> Result<(), Answer> {
    let config = &ctx.config;
    let (parts, body) = request.into_parts();
    // HTTP/1.1 hooks see the path and query as the target, and a host.
    let uri = parts
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
    let mut headers = parts.headers;
    if !headers.contains_key(http::header::HOST) {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(http::header::HOST, host);
        }
    }
    let request = UpgradeRequest { uri, headers };
    if parts.method != Method::CONNECT {
        return Err(plain(&parts.method, &request, config));
    }
    let Some(protocol) = parts.extensions.get::<h2::ext::Protocol>() else {
        return Err(Answer::Status(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT without :protocol is not served",
        ));
    };
    if !protocol.as_str().eq_ignore_ascii_case("websocket") {
        return Err(Answer::Status(
            StatusCode::NOT_IMPLEMENTED,
            "only the websocket protocol is served",
        ));
    }
    if let Some(path) = &config.path {
        if request.uri.path() != path {
            return Err(Answer::Status(StatusCode::NOT_FOUND, "not found"));
        }
    }
    if request
        .headers
        .get("sec-websocket-version")
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err(Answer::Status(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported websocket version",
        ));
    }
    // The same bounds as a TCP connection's upgrade: per source while the
    // admission runs, then the pending and open connection caps.
    let Some(_source) = ctx.sources.try_take(ctx.remote.ip()) else {
        strand_rpc_core::metrics::connection_refused("wss", "source_handshake_limit");
        return Err(Answer::Status(
            StatusCode::TOO_MANY_REQUESTS,
            "too many handshakes from this source",
        ));
    };
    let pending = ctx.queue.try_reserve().map_err(|e| {
        strand_rpc_core::metrics::connection_refused("wss", e.reason());
        Answer::Status(StatusCode::SERVICE_UNAVAILABLE, "server busy")
    })?;
    let slot = pending.connection_slot().map_err(|e| {
        strand_rpc_core::metrics::connection_refused("wss", e.reason());
        Answer::Status(StatusCode::SERVICE_UNAVAILABLE, "server busy")
    })?;
    if let Some(hook) = &config.upgrade_hook {
        let ctx = UpgradeContext {
            request: request.clone(),
            remote_addr: ctx.remote,
            certificates: ctx.certificates.clone(),
        };
        if let Err(refusal) = hook.call(ctx).await {
            return Err(Answer::Refused(refusal.status, refusal.reason));
        }
    }
    let mut response = Response::builder().status(StatusCode::OK);
    if let Some(window) = handshake::advertised_window(config.advertise_window, &config.transport) {
        response = response.header(WINDOW_HEADER, window);
    }
    if crate::goaway::offered(&request.headers) {
        response = response.header(crate::goaway::GOAWAY_HEADER, "1");
    }
    let Ok(response) = response.body(()) else {
        return Err(Answer::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        ));
    };
    let Ok(send) = respond.send_response(response, false) else {
        // The stream is gone (reset by the client): nothing to answer.
        return Ok(());
    };
    let peer_window = handshake::parse_window(&request.headers);
    let io = H2Io::new(send, body);
    let ws_config = Some(config.transport.tungstenite());
    let ws = WebSocketStream::from_raw_socket(io, WsRole::Server, ws_config).await;
    let peer = PeerInfo::new("wss")
        .with_remote_addr(ctx.remote)
        .with_certificates(ctx.certificates.clone())
        .with_extension(request);
    let windows = (peer_window, config.advertise_window);
    let (conn, driver) = prepare(
        ws,
        Role::Server,
        &config.transport,
        windows,
        peer,
        Some(slot),
    );
    if ctx.drivers.send(driver).is_err() {
        // The HTTP/2 connection ended, and the stream with it.
        return Ok(());
    }
    ctx.counters.h2_upgrade();
    pending.push(conn);
    Ok(())
}

/// A request that is not an extended CONNECT: the page handler's answer to
/// a `GET`, else `426` on the WebSocket path, `404` elsewhere, `405` for
/// other methods (`HEAD` included: no page handler answers it).
fn plain(method: &Method, request: &UpgradeRequest, config: &WsServerConfig) -> Answer {
    if method != Method::GET {
        return Answer::Status(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    if let Some(page) = config.http_handler.as_ref().and_then(|h| h.call(request)) {
        return Answer::Page(page);
    }
    match &config.path {
        Some(path) if request.uri.path() != path => {
            Answer::Status(StatusCode::NOT_FOUND, "not found")
        }
        _ => Answer::Status(StatusCode::UPGRADE_REQUIRED, "upgrade required"),
    }
}

fn send_answer(respond: &mut SendResponse<Bytes>, answer: Answer) {
    let (status, content_type, body) = match answer {
        Answer::Status(status, why) => (
            status,
            "text/plain".to_owned(),
            Bytes::from_static(why.as_bytes()),
        ),
        Answer::Refused(status, why) => (status, "text/plain".to_owned(), Bytes::from(why)),
        Answer::Page(page) => (page.status, page.content_type, page.body),
    };
    let content_type = HeaderValue::from_str(&content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut response = Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff");
    if status == StatusCode::UPGRADE_REQUIRED {
        response = response.header("sec-websocket-version", "13");
    }
    let Ok(response) = response.body(()) else {
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    };
    let end = body.is_empty();
    if let Ok(mut send) = respond.send_response(response, end) {
        if !end {
            // Queued whole: the library sends it as the peer's window allows.
            let _ = send.send_data(body, true);
        }
    }
}
