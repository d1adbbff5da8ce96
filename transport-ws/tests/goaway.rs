//! The go-away extension (docs/protocol.md, "Go-away"): offered by a strand
//! client's upgrade header, answered by the server's, the notice a ping
//! only a peer that offered is sent; a peer that did not (a JS peer) sees
//! nothing new, only the close: 1001 toward a strand peer, 1000 (what
//! `@matrixai/ws` takes for a normal close) toward the others.

use std::time::Duration;

use futures_util::StreamExt;
use strand_rpc_core::transport::{CloseCode, Connection};
use strand_test_support::LIMIT;
use strand_transport_ws::{
    connect, WsClientConfig, WsListener, WsServerConfig, GOAWAY_HEADER, GOAWAY_PING,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_strand_client_gets_the_notice_and_the_connection_keeps_working() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let url = format!("ws://{}/", listener.local_addr());
    let client = connect(&url, WsClientConfig::default()).await.unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    assert!(server.go_away(), "the client offered the extension");
    timeout(LIMIT, client.going_away())
        .await
        .expect("the notice arrives");
    // A notice is no close: streams still open both ways.
    let (mut send, _recv) = client.open_stream().await.unwrap().split();
    send.write_all(b"still here").await.unwrap();
    send.shutdown().await.unwrap();
    let (_s, mut recv) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let mut got = Vec::new();
    recv.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"still here");
    // The drain's close is going away (1001).
    Connection::shutdown_going_away(&server, Duration::from_millis(100)).await;
    let reason = timeout(LIMIT, client.closed()).await.unwrap();
    assert_eq!(reason.code, CloseCode::GoingAway, "{reason}");
}

#[tokio::test]
async fn a_peer_that_did_not_offer_gets_no_notice_only_the_close() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();
    // A plain WebSocket client, as a JS peer's: no strand headers.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    assert!(
        response.headers().get(GOAWAY_HEADER).is_none(),
        "not offered, not answered"
    );
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !server.go_away(),
        "nothing is sent to a peer that did not offer"
    );
    let closing = tokio::spawn(async move {
        Connection::shutdown_going_away(&server, Duration::from_millis(100)).await;
    });
    // Everything the peer receives up to the close: no go-away ping.
    let mut seen = Vec::new();
    while let Some(msg) = timeout(LIMIT, ws.next()).await.unwrap() {
        match msg.unwrap() {
            Message::Close(frame) => {
                seen.push(format!("close {:?}", frame.map(|f| u16::from(f.code))));
                let _ = ws.close(None).await;
            }
            other => seen.push(format!("{other:?}")),
        }
    }
    assert_eq!(seen, ["close Some(1000)"]);
    closing.await.unwrap();
}

#[tokio::test]
async fn the_server_answers_the_header_only_when_offered() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let accept = tokio::spawn(async move {
        let _a = listener.accept_connection().await;
        let _b = listener.accept_connection().await;
    });
    for (offer, answered) in [(true, true), (false, false)] {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let extra = if offer {
            format!("{GOAWAY_HEADER}: 1\r\n")
        } else {
            String::new()
        };
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            timeout(LIMIT, tcp.read_exact(&mut byte))
                .await
                .unwrap()
                .unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert_eq!(
            head.contains(&format!("{GOAWAY_HEADER}: 1")),
            answered,
            "{head}"
        );
    }
    accept.abort();
    assert_eq!(GOAWAY_PING, b"strand-goaway");
}
