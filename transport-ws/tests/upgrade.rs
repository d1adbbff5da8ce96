//! The upgrade: auth hook, extra client headers, the window extension, TLS.

use http::{HeaderName, HeaderValue, StatusCode};
use strand_rpc_core::transport::Connection;
use strand_tls::{
    ClientAuth, ClientCertVerification, ClientTls, Identity, ServerTls, ServerVerification,
};
use strand_transport_ws::{
    connect, UpgradeHook, UpgradeRefusal, UpgradeRequest, WsClientConfig, WsConfig, WsError,
    WsListener, WsServerConfig, WINDOW_HEADER,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use strand_test_support::LIMIT;

fn bearer_hook() -> UpgradeHook {
    UpgradeHook::new(|ctx| async move {
        match ctx
            .request
            .headers
            .get("authorization")
            .map(|v| v.as_bytes())
        {
            Some(b"Bearer good") => Ok(()),
            Some(_) => Err(UpgradeRefusal::new(StatusCode::FORBIDDEN, "bad token")),
            None => Err(UpgradeRefusal::new(
                StatusCode::UNAUTHORIZED,
                "token required",
            )),
        }
    })
}

fn auth(value: &'static str) -> WsClientConfig {
    WsClientConfig::default().with_header(
        HeaderName::from_static("authorization"),
        HeaderValue::from_static(value),
    )
}

#[tokio::test]
async fn upgrade_hook_refuses_with_401_and_403_and_sees_headers() {
    let listener = WsListener::bind(
        "127.0.0.1:0",
        WsServerConfig::default().with_upgrade_hook(bearer_hook()),
    )
    .await
    .unwrap();
    let url = format!("ws://{}/calls?x=1", listener.local_addr());
    match connect(&url, WsClientConfig::default()).await {
        Err(WsError::Refused(s)) => assert_eq!(s, StatusCode::UNAUTHORIZED),
        other => panic!("unexpected {other:?}"),
    }
    match connect(&url, auth("Bearer bad")).await {
        Err(WsError::Refused(s)) => assert_eq!(s, StatusCode::FORBIDDEN),
        other => panic!("unexpected {other:?}"),
    }
    let _client = connect(&url, auth("Bearer good")).await.unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    let info = server.peer_info();
    let req = UpgradeRequest::of(&info).unwrap();
    assert_eq!(req.uri.path(), "/calls");
    assert_eq!(req.uri.query(), Some("x=1"));
    assert_eq!(req.headers.get("authorization").unwrap(), "Bearer good");
    // permessage-deflate is never negotiated: the client offered none and the
    // server would not answer it.
    assert!(req.headers.get("sec-websocket-extensions").is_none());
}

#[tokio::test]
async fn strand_peers_start_with_the_advertised_window() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let url = format!("ws://{}/", listener.local_addr());
    let client = connect(&url, WsClientConfig::default()).await.unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    let info = server.peer_info();
    assert_eq!(
        UpgradeRequest::of(&info)
            .unwrap()
            .headers
            .get(WINDOW_HEADER)
            .unwrap(),
        // The window a stream starts with (docs/protocol.md, "Connection
        // receive budget"): 32 MiB / 256 streams / 2.
        "65536"
    );
    // Credit before any ACK came back: ACK and DATA leave in one flush.
    let (mut send, _recv) = client.open_stream().await.unwrap().split();
    assert_eq!(send.stats().unwrap().send_credit, 64 << 10);
    send.write_all(b"no round trip").await.unwrap();
    send.shutdown().await.unwrap();
    let (_s, mut r) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"no round trip");

    // A client that does not advertise (like JS) gets the JS behaviour from
    // the server: no credit until the ACK.
    let mut cfg = WsClientConfig::default();
    cfg.advertise_window = false;
    let js_like = connect(&url, cfg).await.unwrap();
    let server2 = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    let (s2, _r2) = server2.open_stream().await.unwrap().split();
    assert_eq!(
        s2.stats().unwrap().send_credit,
        0,
        "server waits for the ACK of a JS-like peer"
    );
    // The client still knows the server's window.
    let (s3, _r3) = js_like.open_stream().await.unwrap().split();
    assert_eq!(s3.stats().unwrap().send_credit, 64 << 10);
}

/// Found by the `ws_session` fuzz target: a side whose window is 0 sent
/// `x-strand-window: 0`, which the peer ignores (it is no window), yet
/// counted on the peer knowing its window. The peer's opening ACK on a stream
/// this side opened was then taken as returned credit, doubling the credit,
/// and this side sent past the peer's window (which closes the connection).
#[tokio::test]
async fn a_zero_window_is_not_advertised() {
    let mut server_cfg = WsServerConfig::default();
    server_cfg.transport = WsConfig::default().with_stream_window(0);
    let listener = WsListener::bind("127.0.0.1:0", server_cfg).await.unwrap();
    let url = format!("ws://{}/", listener.local_addr());
    let mut client_cfg = WsClientConfig::default();
    client_cfg.transport = WsConfig::default().with_stream_window(1000);
    let client = connect(&url, client_cfg).await.unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    let (mut send, _recv) = server.open_stream().await.unwrap().split();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        send.write_all(&data).await?;
        send.shutdown().await?;
        Ok::<_, std::io::Error>(send)
    });
    let (_cs, mut cr) = timeout(LIMIT, client.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    // The server spends all the credit it believes it has before the
    // client reads anything.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut got = Vec::new();
    timeout(LIMIT, cr.read_to_end(&mut got))
        .await
        .unwrap()
        .expect("the stream, and the connection, stay up");
    assert!(
        got == expected,
        "{} of 3000 bytes, or other bytes",
        got.len()
    );
    timeout(LIMIT, writer).await.unwrap().unwrap().unwrap();
}

fn tls_server(identity: &Identity, auth: ClientAuth) -> WsServerConfig {
    WsServerConfig::default().with_tls(ServerTls::new(identity.clone()).with_client_auth(auth))
}

fn trust(identity: &Identity) -> ClientTls {
    ClientTls::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
}

#[tokio::test]
async fn wss_round_trip_with_a_dev_identity() {
    let identity = Identity::dev().unwrap();
    let listener = WsListener::bind("127.0.0.1:0", tls_server(&identity, ClientAuth::None))
        .await
        .unwrap();
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("wss://{host}:{}/", listener.local_addr().port());
        let client = connect(&url, WsClientConfig::default().with_tls(trust(&identity)))
            .await
            .unwrap();
        assert_eq!(client.peer_info().transport, "wss");
        assert_eq!(
            client.peer_info().certificates[0].as_ref(),
            identity.cert_chain()[0].as_ref()
        );
        let server = timeout(LIMIT, listener.accept_connection())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(server.peer_info().transport, "wss");
        assert!(server.peer_info().certificates.is_empty());
        let (mut s, mut r) = client.open_stream().await.unwrap().split();
        s.write_all(b"ping").await.unwrap();
        s.shutdown().await.unwrap();
        let (mut ss, mut sr) = timeout(LIMIT, server.accept_stream())
            .await
            .unwrap()
            .unwrap()
            .split();
        let mut got = Vec::new();
        sr.read_to_end(&mut got).await.unwrap();
        ss.write_all(&got).await.unwrap();
        ss.shutdown().await.unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"ping");
    }
    // An untrusted server certificate fails the client's handshake.
    let other = Identity::dev().unwrap();
    let url = format!("wss://127.0.0.1:{}/", listener.local_addr().port());
    assert!(
        connect(&url, WsClientConfig::default().with_tls(trust(&other)))
            .await
            .is_err()
    );
    // wss without TLS config is a caller error.
    assert!(matches!(
        connect(&url, WsClientConfig::default()).await,
        Err(WsError::TlsRequired)
    ));
}

#[tokio::test]
async fn mtls_client_certificate_is_visible_to_hook_and_peer_info() {
    let server_id = Identity::dev().unwrap();
    let client_id = Identity::self_signed(&["client.example"]).unwrap();
    let expected = client_id.cert_chain()[0].as_ref().to_vec();
    let seen = expected.clone();
    let hook = UpgradeHook::new(move |ctx| {
        let ok = ctx.certificates.first().map(|c| c.as_ref()) == Some(seen.as_slice());
        async move {
            if ok {
                Ok(())
            } else {
                Err(UpgradeRefusal::new(StatusCode::FORBIDDEN, "unknown client"))
            }
        }
    });
    let cfg = tls_server(
        &server_id,
        ClientAuth::Required(ClientCertVerification::AnyCertificate),
    )
    .with_upgrade_hook(hook);
    let listener = WsListener::bind("127.0.0.1:0", cfg).await.unwrap();
    let url = format!("wss://127.0.0.1:{}/", listener.local_addr().port());
    let tls = trust(&server_id).with_identity(client_id);
    let _client = connect(&url, WsClientConfig::default().with_tls(tls))
        .await
        .unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        server.peer_info().certificates[0].as_ref(),
        expected.as_slice()
    );

    // Another certificate passes TLS (any certificate) but the hook refuses it.
    let stranger = Identity::self_signed(&["stranger"]).unwrap();
    let tls = trust(&server_id).with_identity(stranger);
    match connect(&url, WsClientConfig::default().with_tls(tls)).await {
        Err(WsError::Refused(s)) => assert_eq!(s, StatusCode::FORBIDDEN),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn server_requiring_a_certificate_refuses_a_client_without_one() {
    let server_id = Identity::dev().unwrap();
    let client_id = Identity::self_signed(&["client.example"]).unwrap();
    let cfg = tls_server(
        &server_id,
        ClientAuth::Required(ClientCertVerification::Ca(client_id.cert_chain().to_vec())),
    );
    let listener = WsListener::bind("127.0.0.1:0", cfg).await.unwrap();
    let url = format!("wss://127.0.0.1:{}/", listener.local_addr().port());
    let err = connect(&url, WsClientConfig::default().with_tls(trust(&server_id)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WsError::TlsHandshake(_) | WsError::Io(_) | WsError::Handshake(_)
        ),
        "{err}"
    );
    // With the certificate it is accepted.
    let tls = trust(&server_id).with_identity(client_id);
    connect(&url, WsClientConfig::default().with_tls(tls))
        .await
        .unwrap();
    timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
}
