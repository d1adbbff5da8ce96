//! Hostile and broken peers: bursts, peers that stop reading, silent peers.
//! Each test names the bound it checks (docs/reliability.md, "Hostile peers").

mod common;

use common::{eventually, LIMIT};

use futures_util::SinkExt;
use strand_transport_ws::mux::{Frame, StreamId};
use strand_transport_ws::{WsListener, WsServerConfig};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

/// A raw WebSocket client on `listener` and the server's connection.
async fn raw_client(
    listener: &WsListener,
) -> (
    tokio_tungstenite::WebSocketStream<TcpStream>,
    strand_transport_ws::WsConnection,
) {
    let addr = listener.local_addr();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (raw, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    (raw, server)
}

#[tokio::test]
async fn a_burst_of_opens_in_one_write_is_served_up_to_max_streams() {
    const BURST: u64 = 100;
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let (mut raw, server) = raw_client(&listener).await;
    // 100 opens (ACK on a fresh client id) with a byte each, fed without a
    // flush: they leave in one socket write and arrive before anyone accepts.
    for i in 0..BURST {
        let id = StreamId(2 * i);
        raw.feed(Message::Binary(Frame::Ack { id, credit: 1 << 20 }.to_bytes()))
            .await
            .unwrap();
        raw.feed(Message::Binary(Frame::encode_data(id, b"x")))
            .await
            .unwrap();
    }
    raw.flush().await.unwrap();
    eventually("the burst reached the session", || {
        let s = server.stats();
        s.stream_backlog as u64 + s.refused == BURST
    })
    .await;
    assert_eq!(server.stats().refused, 0, "none refused below max_streams");
    for _ in 0..BURST {
        timeout(LIMIT, server.accept_stream())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(server.stats().stream_backlog, 0);
}
