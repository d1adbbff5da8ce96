//! A stream whose reader stalls holds its window and no more, whatever size
//! of DATA messages the peer sends it (large ones are queued whole, small
//! ones are copied together; both paths end at exactly one window).

mod common;

use std::time::Duration;

use common::{pair_with, LIMIT};
use strand_transport_ws::WsConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8).collect()
}

/// The client writes `total` bytes in `chunk`-byte writes (one DATA message
/// each) to a server stream that is not read until it stalled.
async fn stall_with_messages_of(chunk: usize) {
    const WINDOW: u32 = 100_000;
    // A receive budget that starts every stream with its whole window.
    let ws = WsConfig::default()
        .with_stream_window(WINDOW)
        .with_connection_receive_buffer(2 * 256 * WINDOW as usize);
    let (_l, client, server) = pair_with(ws.clone(), ws).await;
    let total = 3 * WINDOW as usize;
    let data = pattern(total);
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            let (mut send, _recv) = client.open_stream().await.unwrap().split();
            for piece in data.chunks(chunk) {
                send.write_all(piece).await.unwrap();
            }
            send.shutdown().await.unwrap();
            (send, client)
        })
    };
    let (_send, mut recv) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let mut buffered = 0;
    for _ in 0..3000 {
        buffered = recv.stats().unwrap().buffered;
        if buffered >= u64::from(WINDOW) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(buffered, u64::from(WINDOW), "stalls at exactly one window");
    // Stays there: the writer waits for credit.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = recv.stats().unwrap();
    assert_eq!(stats.buffered, u64::from(WINDOW));
    assert_eq!(stats.peer_credit, 0);
    assert_eq!(server.stats().buffered, u64::from(WINDOW));
    assert!(!writer.is_finished());
    // Nothing lost or reordered by the copies.
    let mut got = Vec::new();
    timeout(LIMIT, recv.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == data, "the stream's bytes came through unchanged");
    timeout(LIMIT, writer).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_stalled_stream_fed_large_messages_holds_its_window() {
    stall_with_messages_of(16 * 1024).await;
}

#[tokio::test]
async fn a_stalled_stream_fed_small_messages_holds_its_window() {
    // Below the size under which received payloads are copied together.
    stall_with_messages_of(700).await;
}
