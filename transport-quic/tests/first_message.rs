//! A call's first message over QUIC (docs/reliability.md, "Hostile peers"):
//! its own size and time limits, read before authentication runs.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{within, Rig};
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::transport::Connection;
use strand_rpc_core::RpcError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An RPC server with a counting `echo` on one QUIC connection; the client's
/// side and the counter.
async fn echo_over_quic(
    rig: &Rig,
    first_message_timeout: Duration,
) -> (strand_transport_quic::QuicConnection, Arc<AtomicUsize>) {
    let (client, server_conn) = rig.pair().await;
    let started = Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let router = Router::new().unary("echo", move |_ctx, p: Option<String>| {
        count.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, RpcError>(p) }
    });
    Server::builder(router)
        .first_message_timeout(first_message_timeout)
        .build()
        .spawn_connection(Arc::new(server_conn));
    (client, started)
}

/// Writes `bytes` (finishing unless `finish` is false) and reads the answer.
async fn exchange(
    client: &strand_transport_quic::QuicConnection,
    bytes: Vec<u8>,
    finish: bool,
) -> String {
    let stream = within(Connection::open_stream(client)).await.unwrap();
    let (mut send, mut recv) = (stream.send, stream.recv);
    let writer = tokio::spawn(async move {
        let _ = send.write_all(&bytes).await;
        if finish {
            let _ = send.shutdown().await;
        }
        send
    });
    let mut out = Vec::new();
    within(recv.read_to_end(&mut out)).await.unwrap();
    drop(writer.await);
    String::from_utf8(out).unwrap()
}

fn echo_request(len: usize) -> Vec<u8> {
    let mut msg = br#"{"jsonrpc":"2.0","method":"echo","params":""#.to_vec();
    msg.resize(len - 2, b'x');
    msg.extend_from_slice(br#""}"#);
    msg
}

#[tokio::test]
async fn the_first_message_limits_hold_over_quic() {
    let rig = Rig::dev().await;
    let (client, started) = echo_over_quic(&rig, Duration::from_millis(300)).await;
    let ok = exchange(&client, echo_request(64 << 10), true).await;
    assert!(ok.contains(r#""result""#), "{}", &ok[..60]);
    let too_long = exchange(&client, echo_request((64 << 10) + 1), true).await;
    assert!(too_long.contains(r#""code":-32003"#), "{too_long}");
    // Half a message and nothing more: answered once the first message's
    // time is up (300 ms here), not at the call timeout (60 s).
    let slow = exchange(&client, br#"{"jsonrpc":"2.0","#.to_vec(), false).await;
    assert!(slow.contains(r#""code":-32008"#), "{slow}");
    assert_eq!(started.load(Ordering::SeqCst), 1);
}
