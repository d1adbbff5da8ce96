//! WebSocket over HTTP/2 (RFC 8441) on the wss listener: strand
//! connections as extended CONNECT streams, several on one TCP connection,
//! the same admission as the HTTP/1.1 upgrade, and clear statuses for
//! everything else.

mod common;

use common::{eventually, LIMIT};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode};
use strand_rpc_core::transport::{CloseCode, Connection};
use strand_tls::{ClientTls, Identity, ServerTls, ServerVerification};
use strand_transport_ws::{
    connect, H2Client, Http2Config, HttpHandler, HttpResponse, UpgradeHook, UpgradeRefusal,
    UpgradeRequest, WsClientConfig, WsConnection, WsError, WsListener, WsServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

fn identity() -> Identity {
    Identity::dev().unwrap()
}

fn server_config(identity: &Identity) -> WsServerConfig {
    WsServerConfig::default().with_tls(ServerTls::new(identity.clone()))
}

fn trust(identity: &Identity) -> ClientTls {
    ClientTls::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
}

fn h2_client(identity: &Identity) -> WsClientConfig {
    WsClientConfig::default()
        .with_tls(trust(identity))
        .with_http2(Some(Http2Config::default()))
}

fn url(listener: &WsListener, path: &str) -> String {
    format!("wss://localhost:{}{path}", listener.local_addr().port())
}

/// Echoes one stream's bytes back, on the server side.
async fn echo_once(server: &WsConnection) {
    let (mut send, mut recv) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let mut buf = Vec::new();
    recv.read_to_end(&mut buf).await.unwrap();
    send.write_all(&buf).await.unwrap();
    send.shutdown().await.unwrap();
}

async fn round_trip(client: &WsConnection, server: &WsConnection, data: &[u8]) {
    let (mut send, mut recv) = client.open_stream().await.unwrap().split();
    let echo = echo_once(server);
    let call = async {
        send.write_all(data).await.unwrap();
        send.shutdown().await.unwrap();
        let mut back = Vec::new();
        recv.read_to_end(&mut back).await.unwrap();
        back
    };
    let ((), back) = timeout(LIMIT, async { tokio::join!(echo, call) })
        .await
        .unwrap();
    assert_eq!(back, data);
}

#[tokio::test]
async fn round_trip_over_h2_with_the_same_peer_info() {
    let id = identity();
    let listener = WsListener::bind("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();
    let client = connect(&url(&listener, "/rpc?x=1"), h2_client(&id))
        .await
        .unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.peer_info().transport, "wss");
    assert_eq!(server.peer_info().transport, "wss");
    let request = UpgradeRequest::of(&server.peer_info()).unwrap().clone();
    assert_eq!(request.uri.path(), "/rpc");
    assert_eq!(request.uri.query(), Some("x=1"));
    assert!(
        request.headers.contains_key("host"),
        "{:?}",
        request.headers
    );
    // Larger than every window on the way: HTTP/2 flow control and the
    // mux's both have to return credit.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    round_trip(&client, &server, &data).await;
    let stats = listener.stats();
    assert_eq!(
        (
            stats.h2_connections,
            stats.h2_upgrades,
            stats.http1_upgrades
        ),
        (1, 1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn two_strand_connections_share_one_tcp_connection() {
    let id = identity();
    let listener = WsListener::bind("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();
    let h2 = H2Client::connect(&url(&listener, "/"), h2_client(&id))
        .await
        .unwrap();
    let a = h2.open().await.unwrap();
    let sa = listener.accept_connection().await.unwrap();
    let b = h2.open().await.unwrap();
    let sb = listener.accept_connection().await.unwrap();
    round_trip(&a, &sa, b"first").await;
    round_trip(&b, &sb, b"second").await;
    let stats = listener.stats();
    assert_eq!(
        (
            stats.h2_connections,
            stats.h2_upgrades,
            stats.http1_upgrades
        ),
        (1, 2, 0),
        "{stats:?}"
    );
    // One slot for the HTTP/2 connection, one per WebSocket on it.
    assert_eq!(stats.open_connections, 3, "{stats:?}");
    // Closing one strand connection leaves the other working.
    Connection::close(&a, CloseCode::Normal, "done");
    drop((a, sa));
    round_trip(&b, &sb, b"still here").await;
    eventually("the closed one released its slot", || {
        listener.stats().open_connections == 2
    })
    .await;
}

#[tokio::test]
async fn http1_clients_still_connect_on_the_same_port() {
    let id = identity();
    let listener = WsListener::bind("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();
    let client = connect(
        &url(&listener, "/"),
        WsClientConfig::default().with_tls(trust(&id)),
    )
    .await
    .unwrap();
    let server = listener.accept_connection().await.unwrap();
    round_trip(&client, &server, b"http/1.1").await;
    let stats = listener.stats();
    assert_eq!(
        (
            stats.h2_connections,
            stats.h2_upgrades,
            stats.http1_upgrades
        ),
        (0, 0, 1)
    );
}

#[tokio::test]
async fn a_listener_without_http2_is_refused_by_an_h2_client() {
    let id = identity();
    let listener = WsListener::bind("127.0.0.1:0", server_config(&id).with_http2(None))
        .await
        .unwrap();
    let err = connect(&url(&listener, "/"), h2_client(&id))
        .await
        .unwrap_err();
    assert!(matches!(err, WsError::Http2(_)), "{err:?}");
}

#[tokio::test]
async fn refusals_answer_the_same_statuses_as_http1() {
    let id = identity();
    let hook = UpgradeHook::new(|ctx: strand_transport_ws::UpgradeContext| async move {
        match ctx.request.headers.get("authorization") {
            Some(v) if v == "Bearer good" => Ok(()),
            _ => Err(UpgradeRefusal::new(StatusCode::FORBIDDEN, "no")),
        }
    });
    let mut config = server_config(&id).with_path("/rpc").with_upgrade_hook(hook);
    config.max_connections = 3;
    let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
    let good = h2_client(&id).with_header(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer good"),
    );
    let h2 = H2Client::connect(&url(&listener, "/rpc"), good.clone())
        .await
        .unwrap();
    // The hook refuses with its status.
    let without_auth = H2Client::connect(&url(&listener, "/rpc"), h2_client(&id))
        .await
        .unwrap();
    let refused = without_auth.open().await.unwrap_err();
    assert!(
        matches!(refused, WsError::Refused(StatusCode::FORBIDDEN)),
        "{refused:?}"
    );
    // Another path: 404.
    let elsewhere = H2Client::connect(&url(&listener, "/elsewhere"), good.clone())
        .await
        .unwrap();
    let other = elsewhere.open().await.unwrap_err();
    assert!(
        matches!(other, WsError::Refused(StatusCode::NOT_FOUND)),
        "{other:?}"
    );
    // Three HTTP/2 connections hold the three slots: a WebSocket is refused
    // with 503.
    let full = h2.open().await.unwrap_err();
    assert!(
        matches!(full, WsError::Refused(StatusCode::SERVICE_UNAVAILABLE)),
        "{full:?}"
    );
    assert_eq!(listener.stats().h2_upgrades, 0);
    // A slot freed, the same client gets in.
    drop((without_auth, elsewhere));
    eventually("the idle connections released their slots", || {
        listener.stats().open_connections == 1
    })
    .await;
    let conn = h2.open().await.unwrap();
    let server = listener.accept_connection().await.unwrap();
    round_trip(&conn, &server, b"in").await;
}

#[tokio::test]
async fn the_per_source_handshake_bound_answers_429() {
    let id = identity();
    // A hook that never answers holds the one handshake slot of 127.0.0.1.
    let hook = UpgradeHook::new(|_ctx| std::future::pending());
    let config = server_config(&id)
        .with_upgrade_hook(hook)
        .with_max_pending_handshakes_per_ip(1);
    let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
    let h2 = H2Client::connect(&url(&listener, "/"), h2_client(&id))
        .await
        .unwrap();
    let held = h2.clone();
    let _stuck = tokio::spawn(async move { held.open().await });
    eventually("the hook holds the handshake", || {
        listener.stats().handshakes == 1
    })
    .await;
    let err = h2.open().await.unwrap_err();
    assert!(
        matches!(err, WsError::Refused(StatusCode::TOO_MANY_REQUESTS)),
        "{err:?}"
    );
}

/// A raw HTTP/2 client on the listener, for requests strand's client never
/// makes.
async fn raw_h2(listener: &WsListener, id: &Identity) -> h2::client::SendRequest<Bytes> {
    let mut tls = trust(id);
    tls.alpn = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(tls.build().unwrap())
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (send, conn) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(conn);
    send
}

async fn status_of(
    send: &h2::client::SendRequest<Bytes>,
    request: Request<()>,
) -> (StatusCode, Bytes) {
    let mut send = send.clone().ready().await.unwrap();
    let (response, _body) = send.send_request(request, true).unwrap();
    let response = timeout(LIMIT, response).await.unwrap().unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut all = Vec::new();
    while let Some(chunk) = timeout(LIMIT, body.data()).await.unwrap() {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        all.extend_from_slice(&chunk);
    }
    (status, Bytes::from(all))
}

fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn plain_http2_requests_get_a_status_never_a_hang() {
    let id = identity();
    let page = HttpHandler::new(|req: &UpgradeRequest| {
        (req.uri.path() == "/demo").then(|| HttpResponse::ok("text/html", "<p>demo</p>"))
    });
    let config = server_config(&id)
        .with_path("/rpc")
        .with_http_handler(page)
        .with_http2(Some(Http2Config::default().with_max_header_list_size(1024)));
    let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
    let send = raw_h2(&listener, &id).await;
    let (status, body) = status_of(&send, request(Method::GET, "/demo")).await;
    assert_eq!(
        (status, body.as_ref()),
        (StatusCode::OK, &b"<p>demo</p>"[..])
    );
    let (status, _) = status_of(&send, request(Method::GET, "/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = status_of(&send, request(Method::GET, "/rpc")).await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED);
    let (status, _) = status_of(&send, request(Method::POST, "/rpc")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // CONNECT without :protocol (a proxy tunnel) is not served.
    let tunnel = Request::builder()
        .method(Method::CONNECT)
        .uri("localhost:443")
        .body(())
        .unwrap();
    let (status, _) = status_of(&send, tunnel).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Another :protocol.
    let mut other = request(Method::CONNECT, "/rpc");
    other
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("bread"));
    let (status, _) = status_of(&send, other).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    // Headers over the HTTP/2 header list limit: 431 (far over it, the
    // HTTP/2 library closes the connection as abuse).
    let mut big = request(Method::GET, "/demo");
    big.headers_mut()
        .insert("x-big", HeaderValue::from_str(&"a".repeat(1500)).unwrap());
    let (status, _) = status_of(&send, big).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // None of them became a WebSocket, and the connection still serves.
    let (status, _) = status_of(&send, request(Method::GET, "/demo")).await;
    assert_eq!(status, StatusCode::OK);
    let stats = listener.stats();
    assert_eq!((stats.h2_connections, stats.h2_upgrades), (1, 0));
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_frees_its_slot() {
    let id = identity();
    let transport = strand_transport_ws::WsConfig::default()
        .with_idle_timeout(Some(std::time::Duration::from_millis(200)));
    let listener = WsListener::bind("127.0.0.1:0", server_config(&id).with_transport(transport))
        .await
        .unwrap();
    let send = raw_h2(&listener, &id).await;
    eventually("served as HTTP/2", || listener.stats().h2_connections == 1).await;
    // It held a slot from its TCP accept; nothing on it, it gives it back.
    eventually("the idle HTTP/2 connection is closed", || {
        listener.stats().open_connections == 0
    })
    .await;
    // Closed with GOAWAY: a new request on it fails rather than hangs.
    let result = timeout(LIMIT, async {
        let mut ready = send.ready().await?;
        let (response, _) = ready.send_request(request(Method::GET, "/"), true)?;
        response.await
    })
    .await
    .unwrap();
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn the_hook_sees_the_client_certificate_over_h2() {
    use strand_tls::{ClientAuth, ClientCertVerification};
    let server_id = identity();
    let client_id = Identity::self_signed(&["client.example"]).unwrap();
    let expected = client_id.cert_chain()[0].as_ref().to_vec();
    let seen = expected.clone();
    let hook = UpgradeHook::new(move |ctx: strand_transport_ws::UpgradeContext| {
        let ok = ctx.certificates.first().map(|c| c.as_ref()) == Some(seen.as_slice());
        async move {
            if ok {
                Ok(())
            } else {
                Err(UpgradeRefusal::new(StatusCode::FORBIDDEN, "unknown client"))
            }
        }
    });
    let config = WsServerConfig::default()
        .with_tls(
            ServerTls::new(server_id.clone())
                .with_client_auth(ClientAuth::Required(ClientCertVerification::AnyCertificate)),
        )
        .with_upgrade_hook(hook);
    let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
    let known = h2_client(&server_id).with_tls(trust(&server_id).with_identity(client_id));
    let client = connect(&url(&listener, "/"), known).await.unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.peer_info().certificates[0].as_ref(),
        expected.as_slice()
    );
    round_trip(&client, &server, b"mtls").await;
    // Another certificate passes TLS but the hook refuses it.
    let stranger = Identity::self_signed(&["stranger"]).unwrap();
    let other = h2_client(&server_id).with_tls(trust(&server_id).with_identity(stranger));
    let err = connect(&url(&listener, "/"), other).await.unwrap_err();
    assert!(
        matches!(err, WsError::Refused(StatusCode::FORBIDDEN)),
        "{err:?}"
    );
    assert_eq!(listener.stats().h2_upgrades, 1);
}

#[tokio::test]
async fn a_closed_listener_sends_goaway_and_the_websockets_on_it_go_on() {
    let id = identity();
    let listener = WsListener::bind("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();
    let h2 = H2Client::connect(&url(&listener, "/"), h2_client(&id))
        .await
        .unwrap();
    let client = h2.open().await.unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    // Dropped, as when its server shuts down or drains.
    drop(listener);
    // The WebSocket already open goes on.
    round_trip(&client, &server, b"after the close").await;
    // A new one on this HTTP/2 connection meets its GOAWAY (an HTTP/2
    // error, which a browser retries on a new connection), not a refusal
    // with a status; and the connection does not wait out its idle timeout.
    let refused = timeout(LIMIT, h2.open()).await.unwrap();
    assert!(
        matches!(refused, Err(WsError::Http2(_))),
        "{:?}",
        refused.map(|_| ())
    );
}

/// Forwards one TCP connection to `target` until the returned task is
/// aborted, which drops both sockets (the connection dies mid-way).
async fn cut_proxy(target: std::net::SocketAddr) -> (u16, tokio::task::JoinHandle<()>) {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = proxy.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut inbound, _) = proxy.accept().await.unwrap();
        let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
    });
    (port, task)
}

#[tokio::test]
async fn websockets_end_with_their_http2_connection() {
    // The WebSockets of an HTTP/2 connection are driven by its task on
    // both sides: when the connection dies, they must end (lost), with
    // their streams, not hang.
    let id = identity();
    let listener = WsListener::bind("127.0.0.1:0", server_config(&id))
        .await
        .unwrap();
    let (port, proxy) = cut_proxy(listener.local_addr()).await;
    let h2 = H2Client::connect(&format!("wss://localhost:{port}/"), h2_client(&id))
        .await
        .unwrap();
    let client = h2.open().await.unwrap();
    let server = listener.accept_connection().await.unwrap();
    round_trip(&client, &server, b"before the cut").await;
    let (_send, mut recv) = client.open_stream().await.unwrap().split();

    proxy.abort();
    let ended = async {
        tokio::join!(client.closed(), server.closed());
        let mut buf = Vec::new();
        recv.read_to_end(&mut buf).await
    };
    let read = timeout(LIMIT, ended).await.expect("both ends saw the end");
    assert!(read.is_err(), "a stream open at the cut fails: {read:?}");
    assert!(client.open_stream().await.is_err());
}
