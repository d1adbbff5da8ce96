//! Fixtures shared by the socket tests: a connected pair on loopback.
#![allow(dead_code)]

use strand_transport_ws::{
    connect, WsClientConfig, WsConfig, WsConnection, WsListener, WsServerConfig,
};
use tokio::time::timeout;

#[allow(unused_imports)]
pub use strand_test_support::{eventually, LIMIT};

/// A listener on loopback and a connected (client, server) pair.
pub async fn pair_with(
    server: WsConfig,
    client: WsConfig,
) -> (WsListener, WsConnection, WsConnection) {
    let listener = WsListener::bind(
        "127.0.0.1:0",
        WsServerConfig::default().with_transport(server),
    )
    .await
    .unwrap();
    let url = format!("ws://{}/", listener.local_addr());
    let client = connect(&url, WsClientConfig::default().with_transport(client))
        .await
        .unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    (listener, client, server)
}
