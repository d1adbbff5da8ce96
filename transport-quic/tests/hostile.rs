//! Hostile callers over QUIC (docs/reliability.md, "Hostile peers"): the
//! first message's own limits, and a stream flood past `max_streams`.

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

#[tokio::test]
async fn a_stream_flood_waits_for_credit_past_max_streams() {
    const FLOOD: usize = 150;
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let client = Arc::new(client);
    let opened = Arc::new(AtomicUsize::new(0));
    // 150 opens with a byte each; the server accepts none of them.
    let mut tasks = Vec::new();
    for _ in 0..FLOOD {
        let (client, opened) = (client.clone(), opened.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = Connection::open_stream(&*client).await.unwrap();
            s.send.write_all(b"{").await.unwrap();
            opened.fetch_add(1, Ordering::SeqCst);
            // Held until the server drops its side.
            let _ = s.send.shutdown().await;
            let _ = s.recv.read_to_end(&mut Vec::new()).await;
        }));
    }
    let max = strand_transport_quic::QuicConfig::default().max_streams as usize;
    assert_eq!(max, 100);
    strand_test_support::eventually("the credit was used", || {
        opened.load(Ordering::SeqCst) >= max
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // quinn grants the peer no more than max_streams: the rest wait, none
    // is refused, nothing is buffered for them on the server.
    assert_eq!(opened.load(Ordering::SeqCst), max);
    // Accepting (and dropping) streams gives credit back to the waiters.
    for _ in 0..FLOOD {
        let s = within(Connection::accept_stream(&server)).await.unwrap();
        drop(s);
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    assert_eq!(opened.load(Ordering::SeqCst), FLOOD);
}
