//! Limits, timers, graceful shutdown and upgrade handling over loopback.

mod common;

use common::{pair_with, LIMIT};

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use strand_rpc_core::transport::{codes, CloseCode, CloseInitiator, Connection, StreamError};
use strand_transport_ws::{
    connect, HttpHandler, HttpResponse, StatsProbe, WsClientConfig, WsConfig, WsConnection,
    WsError, WsListener, WsServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

fn io_err(e: &std::io::Error) -> StreamError {
    StreamError::from_io(e)
        .cloned()
        .unwrap_or_else(|| panic!("not a stream error: {e}"))
}

#[tokio::test]
async fn peer_streams_past_the_backlog_are_refused() {
    let server_cfg = WsConfig::default().with_stream_backlog(1);
    let (_l, client, server) = pair_with(server_cfg, WsConfig::default()).await;
    let (mut s1, _r1) = client.open_stream().await.unwrap().split();
    s1.write_all(b"first").await.unwrap();
    let (mut s2, mut r2) = client.open_stream().await.unwrap().split();
    let err = timeout(LIMIT, r2.read(&mut [0u8; 4]))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(io_err(&err), StreamError::Reset(codes::REFUSED));
    let err = s2.write_all(b"x").await.unwrap_err();
    assert_eq!(io_err(&err), StreamError::Stopped(codes::REFUSED));
    assert_eq!(server.stats().refused, 1);
    assert_eq!(server.stats().stream_backlog, 1);
    // Taking the backlogged stream makes room again.
    let (_a, mut r) = server.accept_stream().await.unwrap().split();
    let mut buf = [0u8; 5];
    r.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"first");
    let (mut s3, _r3) = client.open_stream().await.unwrap().split();
    s3.write_all(b"third").await.unwrap();
    let (_a3, mut r3) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    r3.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"third");
}

#[tokio::test]
async fn peer_streams_past_max_streams_are_refused_and_open_waits() {
    let (_l, client, server) = pair_with(
        WsConfig::default().with_max_streams(1),
        WsConfig::default().with_max_streams(1),
    )
    .await;
    let (s1, r1) = client.open_stream().await.unwrap().split();
    let _accepted = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    // Our own open waits for a slot rather than failing.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.open_stream().await.map(|s| s.split()) }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "open waits at max_streams");
    // Dropping both halves cancels the stream and frees the slot.
    drop((s1, r1));
    let (_s2, mut r2) = timeout(LIMIT, waiting).await.unwrap().unwrap().unwrap();
    // The server still holds its stream, so at its own limit it refused the new one.
    let err = timeout(LIMIT, r2.read(&mut [0u8; 1]))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(io_err(&err), StreamError::Reset(codes::REFUSED));
    assert_eq!(server.stats().refused, 1);
}

#[tokio::test]
async fn waiting_open_gets_refused_stream_errors() {
    let (_l, client, server) =
        pair_with(WsConfig::default().with_max_streams(1), WsConfig::default()).await;
    let _keep = client.open_stream().await.unwrap().split();
    let (_a, _b) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let (mut s, mut r) = client.open_stream().await.unwrap().split();
    let err = timeout(LIMIT, r.read(&mut [0u8; 1]))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(io_err(&err), StreamError::Reset(codes::REFUSED));
    let err = s.write_all(b"x").await.unwrap_err();
    assert_eq!(io_err(&err), StreamError::Stopped(codes::REFUSED));
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let server_cfg = WsConfig::default().with_max_message_size(1024);
    let client_cfg = WsConfig::default().with_max_data_payload(64 * 1024);
    let (_l, client, server) = pair_with(server_cfg, client_cfg).await;
    let (mut s, _r) = client.open_stream().await.unwrap().split();
    // Wait for the server's ACK so the big write goes out as one message.
    let _accepted = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    s.write_all(&[0u8; 4096]).await.unwrap();
    let reason = timeout(LIMIT, client.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Peer, CloseCode::TooBig),
        "{reason}"
    );
    let reason = timeout(LIMIT, server.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Local, CloseCode::TooBig)
    );
}

async fn raw_ws(addr: std::net::SocketAddr) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    ws
}

async fn close_code(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> Option<u16> {
    let mut code = None;
    // Read to the end: that also flushes tungstenite's close reply.
    while let Some(msg) = timeout(LIMIT, ws.next()).await.unwrap() {
        if let Ok(Message::Close(frame)) = msg {
            code = frame.map(|f| u16::from(f.code));
        }
    }
    code
}

#[tokio::test]
async fn text_message_closes_with_1002() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let mut ws = raw_ws(listener.local_addr()).await;
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1002));
    let reason = timeout(LIMIT, server.closed()).await.unwrap();
    assert_eq!(reason.code, CloseCode::Protocol);
}

#[tokio::test]
async fn malformed_frames_close_with_1002() {
    let cases: [&[u8]; 5] = [
        &[0x00, 0x00, 0x01, 0x00], // truncated ACK
        &[0x00, 0x00, 0x03],       // truncated CLOSE
        &[0x00, 0x00, 0x02, 0x01], // truncated ERROR
        &[0x00, 0x00, 0x09],       // unknown type
        &[0x00, 0x00, 0x03, 0x05], // bad shutdown
    ];
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    for msg in cases {
        let mut ws = raw_ws(listener.local_addr()).await;
        let _server = timeout(LIMIT, listener.accept_connection())
            .await
            .unwrap()
            .unwrap();
        ws.send(Message::binary(msg.to_vec())).await.unwrap();
        assert_eq!(close_code(&mut ws).await, Some(1002), "{msg:02x?}");
    }
}

#[tokio::test]
async fn data_beyond_the_window_closes_with_1002() {
    let listener = WsListener::bind(
        "127.0.0.1:0",
        WsServerConfig::default().with_transport(WsConfig::default().with_stream_window(4)),
    )
    .await
    .unwrap();
    let mut ws = raw_ws(listener.local_addr()).await;
    let _server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    ws.send(Message::binary(vec![
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x10,
    ]))
    .await
    .unwrap();
    ws.send(Message::binary(b"\x00\x00\x00hello".to_vec()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1002));
}

#[tokio::test]
async fn plain_http_gets_426_and_wrong_path_404() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default().with_path("/rpc"))
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(listener.local_addr()).await.unwrap();
    tcp.write_all(b"GET /rpc HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    timeout(LIMIT, tcp.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert!(resp.starts_with("HTTP/1.1 426 "), "{resp}");
    assert!(resp.contains("Upgrade: websocket"), "{resp}");
    let url = format!("ws://{}/other", listener.local_addr());
    match connect(&url, WsClientConfig::default()).await {
        Err(WsError::Refused(status)) => assert_eq!(status, 404),
        other => panic!("unexpected {other:?}"),
    }
    let url = format!("ws://{}/rpc", listener.local_addr());
    connect(&url, WsClientConfig::default()).await.unwrap();
}

#[tokio::test]
async fn the_stats_probe_in_peer_info_sees_every_stream_and_not_past_the_connection() {
    let (_l, client, server) = pair_with(WsConfig::default(), WsConfig::default()).await;
    let probe = StatsProbe::of(&server.peer_info()).unwrap().clone();
    let (mut s1, _r1) = client.open_stream().await.unwrap().split();
    let (mut s2, _r2) = client.open_stream().await.unwrap().split();
    s1.write_all(b"first").await.unwrap();
    s2.write_all(b"second!").await.unwrap();
    let (_a1, _b1) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let (_a2, _b2) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    // Unread on the server: 5 bytes on stream 0, 7 on stream 2.
    let mut seen = Vec::new();
    for _ in 0..200 {
        seen = probe.streams();
        if seen.iter().map(|(_, s)| s.buffered).sum::<u64>() == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let figures: Vec<(u64, u64)> = seen.iter().map(|(id, s)| (*id, s.buffered)).collect();
    assert_eq!(figures, [(0, 5), (2, 7)]);
    // The window a stream starts with (it grows as its reader keeps up).
    assert_eq!(
        seen[0].1.window,
        WsConfig::default().initial_stream_window()
    );
    assert_eq!(seen[0].1.window, 64 << 10);
    assert_eq!(probe.connection().unwrap().buffered, 12);
    drop((_a1, _b1, _a2, _b2));
    drop(server);
    // The last handle closes the connection; once its driver is done the
    // probe, which keeps nothing alive, reports nothing.
    timeout(LIMIT, async {
        while probe.connection().is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the connection went away");
    assert!(probe.streams().is_empty());
}

/// Sends `request` on a fresh socket and reads the whole answer.
async fn plain_request(addr: std::net::SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut resp = String::new();
    timeout(LIMIT, tcp.read_to_string(&mut resp))
        .await
        .unwrap()
        .unwrap();
    resp
}

#[tokio::test]
async fn the_http_handler_answers_plain_gets_it_serves_and_nothing_else() {
    let handler = HttpHandler::new(|req| {
        (req.uri.path() == "/page").then(|| HttpResponse::ok("text/html; charset=utf-8", "<p>hi"))
    });
    let cfg = WsServerConfig::default()
        .with_path("/rpc")
        .with_http_handler(handler);
    let listener = WsListener::bind("127.0.0.1:0", cfg).await.unwrap();
    let addr = listener.local_addr();
    let page = plain_request(addr, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
        "{page}"
    );
    assert!(page.contains("\r\nContent-Length: 5\r\n"), "{page}");
    assert!(page.ends_with("\r\n\r\n<p>hi"), "{page}");
    // The WebSocket path, another path, and a POST to the page keep their 426.
    for request in [
        "GET /rpc HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /other HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /page HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ] {
        let resp = plain_request(addr, request).await;
        assert!(resp.starts_with("HTTP/1.1 426 "), "{request:?}: {resp}");
    }
    // Upgrades never reach the handler.
    let url = format!("ws://{addr}/rpc");
    connect(&url, WsClientConfig::default()).await.unwrap();
    let url = format!("ws://{addr}/page");
    match connect(&url, WsClientConfig::default()).await {
        Err(WsError::Refused(status)) => assert_eq!(status, 404),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn server_handshake_timeout_drops_silent_sockets() {
    let cfg = WsServerConfig::default()
        .with_transport(WsConfig::default().with_handshake_timeout(Duration::from_secs(5)));
    let listener = WsListener::bind("127.0.0.1:0", cfg).await.unwrap();
    let mut tcp = TcpStream::connect(listener.local_addr()).await.unwrap();
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = timeout(Duration::from_secs(60), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a response");
    assert!(start.elapsed() >= Duration::from_secs(5));
}

#[tokio::test]
async fn client_handshake_timeout() {
    let raw = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = raw.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (sock, _) = raw.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(sock);
    });
    tokio::time::pause();
    let cfg = WsClientConfig::default()
        .with_transport(WsConfig::default().with_handshake_timeout(Duration::from_secs(3)));
    let err = connect(&format!("ws://{addr}/"), cfg).await.unwrap_err();
    assert!(matches!(err, WsError::HandshakeTimeout), "{err}");
    hold.abort();
}

/// A server with a 10 s idle timeout and a client that never pings.
async fn idle_pair() -> (WsListener, WsConnection, WsConnection) {
    let quiet = WsConfig::default()
        .with_keep_alive_interval(None)
        .with_idle_timeout(None);
    let server_cfg = WsConfig::default()
        .with_keep_alive_interval(None)
        .with_idle_timeout(Some(Duration::from_secs(10)));
    pair_with(server_cfg, quiet).await
}

#[tokio::test]
async fn idle_timeout_closes_a_silent_connection() {
    let (_l, client, server) = idle_pair().await;
    tokio::time::pause();
    let start = tokio::time::Instant::now();
    let reason = timeout(Duration::from_secs(100), server.closed())
        .await
        .unwrap();
    assert_eq!(reason.initiator, CloseInitiator::Lost);
    assert_eq!(reason.reason, "idle timeout");
    assert!(start.elapsed() >= Duration::from_secs(10) - Duration::from_millis(100));
    let reason = timeout(Duration::from_secs(100), client.closed())
        .await
        .unwrap();
    assert_ne!(reason.initiator, CloseInitiator::Local);
}

#[tokio::test]
async fn idle_timeout_counts_from_the_last_message() {
    let (_l, client, server) = idle_pair().await;
    tokio::time::pause();
    let (mut s, _r) = client.open_stream().await.unwrap().split();
    // Traffic every 6 s for 30 s: the 10 s timer fires in between and finds
    // the peer was heard from since.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(6)).await;
        s.write_all(b"ping").await.unwrap();
        s.flush().await.unwrap();
    }
    let last = tokio::time::Instant::now();
    let reason = timeout(Duration::from_secs(100), server.closed())
        .await
        .unwrap();
    assert_eq!(reason.reason, "idle timeout");
    let silent = last.elapsed();
    assert!(
        silent >= Duration::from_secs(10) - Duration::from_millis(100)
            && silent <= Duration::from_secs(10) + Duration::from_millis(500),
        "closed {silent:?} after the last message"
    );
}

#[tokio::test]
async fn keep_alive_pings_keep_an_idle_connection_open() {
    let client_cfg = WsConfig::default()
        .with_keep_alive_interval(None)
        .with_idle_timeout(Some(Duration::from_secs(10)));
    let server_cfg = WsConfig::default()
        .with_keep_alive_interval(Some(Duration::from_secs(2)))
        .with_idle_timeout(None);
    let (_l, client, _server) = pair_with(server_cfg, client_cfg).await;
    tokio::time::pause();
    // Pings every 2 s keep the client's 10 s idle timer from firing.
    let closed = timeout(Duration::from_secs(60), client.closed()).await;
    assert!(closed.is_err(), "connection closed: {:?}", closed.ok());
    let (mut s, _r) = client.open_stream().await.unwrap().split();
    s.write_all(b"still alive").await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_lets_open_streams_finish() {
    let (_l, client, server) = pair_with(WsConfig::default(), WsConfig::default()).await;
    let (mut cs, mut cr) = client.open_stream().await.unwrap().split();
    cs.write_all(b"request").await.unwrap();
    let (mut ss, mut sr) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let shutdown = tokio::spawn({
        let server = server.clone();
        async move { server.shutdown(LIMIT).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!shutdown.is_finished(), "waits for the open stream");
    // New streams are refused meanwhile; the open one completes.
    assert!(matches!(
        server.open_stream().await.map(|s| s.split()),
        Err(StreamError::Refused(_))
    ));
    let (_x, mut xr) = client.open_stream().await.unwrap().split();
    let err = timeout(LIMIT, xr.read(&mut [0u8; 1]))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(io_err(&err), StreamError::Reset(codes::REFUSED));
    cs.shutdown().await.unwrap();
    let mut req = Vec::new();
    sr.read_to_end(&mut req).await.unwrap();
    assert_eq!(req, b"request");
    ss.write_all(b"response").await.unwrap();
    ss.shutdown().await.unwrap();
    let mut resp = Vec::new();
    cr.read_to_end(&mut resp).await.unwrap();
    assert_eq!(resp, b"response");
    let reason = timeout(LIMIT, shutdown).await.unwrap().unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Local, CloseCode::Normal)
    );
    let reason = timeout(LIMIT, client.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Peer, CloseCode::Normal)
    );
}

#[tokio::test]
async fn graceful_shutdown_forces_the_close_at_the_deadline() {
    let (_l, client, server) = pair_with(WsConfig::default(), WsConfig::default()).await;
    let (_cs, mut cr) = client.open_stream().await.unwrap().split();
    let _accepted = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    tokio::time::pause();
    let reason = server.shutdown(Duration::from_secs(5)).await;
    assert_eq!(reason.code, CloseCode::Normal);
    let err = timeout(LIMIT, cr.read(&mut [0u8; 1]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(io_err(&err), StreamError::ConnectionClosed(r) if r.code == CloseCode::Normal)
    );
}

/// Toward a strand peer (it sent `x-strand-window`) the acceptor sends
/// neither its opening ACK nor the `CLOSE(Write)` reply to a finish (the
/// peer would ignore both); toward a JS-like peer it sends both at once.
#[tokio::test]
async fn frames_only_js_peers_need_are_not_sent_to_strand_peers() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    for strand in [true, false] {
        let ws_config = WsConfig::default().with_keep_alive_interval(None);
        let listener = WsListener::bind(
            "127.0.0.1:0",
            WsServerConfig::default().with_transport(ws_config),
        )
        .await
        .unwrap();
        let addr = listener.local_addr();
        let mut request = format!("ws://{addr}/").into_client_request().unwrap();
        if strand {
            request
                .headers_mut()
                .insert("x-strand-window", HeaderValue::from_static("1048576"));
        }
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
        let server = timeout(LIMIT, listener.accept_connection())
            .await
            .unwrap()
            .unwrap();
        // Stream 0: opening ACK(1 MiB), DATA "hi", CLOSE(Read). Then stream
        // 2 opens; the server answers on it, after whatever stream 0 caused.
        for msg in [
            &[0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00][..],
            b"\x00\x00\x00hi",
            &[0x00, 0x00, 0x03, 0x00],
            &[0x02, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00],
        ] {
            ws.send(Message::binary(msg.to_vec())).await.unwrap();
        }
        let (_send0, _recv0) = timeout(LIMIT, server.accept_stream())
            .await
            .unwrap()
            .unwrap()
            .split();
        let (mut send2, _recv2) = timeout(LIMIT, server.accept_stream())
            .await
            .unwrap()
            .unwrap()
            .split();
        assert_eq!(send2.id(), 2);
        send2.write_all(b"yo").await.unwrap();
        let marker = b"\x02\x00\x00yo".to_vec();
        let mut got = Vec::new();
        while got.last() != Some(&marker) {
            match timeout(LIMIT, ws.next()).await.unwrap().unwrap().unwrap() {
                Message::Binary(b) => got.push(b.to_vec()),
                other => panic!("unexpected {other:?}"),
            }
        }
        let expected = if strand {
            vec![marker]
        } else {
            // Opening ACKs grant the initial window, 64 KiB.
            vec![
                vec![0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00],
                vec![0x00, 0x00, 0x03, 0x01],
                vec![0x02, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00],
                marker,
            ]
        };
        assert_eq!(got, expected, "strand peer: {strand}");
    }
}

/// Past `max_connections` a client is answered 503, not left hanging; once a
/// connection is dropped its slot serves the next client.
#[tokio::test]
async fn connections_past_the_cap_get_503() {
    let mut config = WsServerConfig::default();
    config.max_connections = 1;
    let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
    let url = format!("ws://{}/", listener.local_addr());
    let first = timeout(LIMIT, connect(&url, WsClientConfig::default()))
        .await
        .unwrap()
        .unwrap();
    let first_server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    match timeout(LIMIT, connect(&url, WsClientConfig::default()))
        .await
        .unwrap()
    {
        Err(WsError::Refused(status)) => assert_eq!(status.as_u16(), 503),
        other => panic!("expected a 503 refusal, got {other:?}"),
    }
    // Freeing the slot: both ends dropped, the driver ends and lets it go.
    drop((first, first_server));
    let mut attempts = 0;
    let second = loop {
        attempts += 1;
        match timeout(LIMIT, connect(&url, WsClientConfig::default()))
            .await
            .unwrap()
        {
            Ok(conn) => break conn,
            Err(WsError::Refused(_)) if attempts < 500 => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("the freed slot was not reused: {e}"),
        }
    };
    let _server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    drop(second);
}
