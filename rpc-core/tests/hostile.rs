//! Hostile and broken callers (docs/reliability.md, "Hostile peers").

mod common;

use std::time::Duration;

use serde_json::Value;
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::transport::{codes, Connection, StreamError};
use strand_rpc_core::RpcError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_response_write_that_waits_past_the_deadline_is_reset_timed_out() {
    let deadline = Duration::from_secs(2);
    // 1 MiB of response, past the memory transport's 64 KiB stream buffer.
    let router = Router::new().unary("big", |_ctx, _p: Value| async move {
        Ok::<_, RpcError>("x".repeat(1 << 20))
    });
    let f = common::start_with(Server::builder(router).default_timeout(deadline));
    let mut stream = f.conn.open_stream().await.unwrap();
    stream
        .send
        .write_all(br#"{"jsonrpc":"2.0","method":"big","params":null,"id":null}"#)
        .await
        .unwrap();
    stream.send.shutdown().await.unwrap();
    let start = Instant::now();
    // The caller does not read: the write waits for room past the deadline.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(f.server.calls_in_flight(), 1);
    for _ in 0..6000 {
        if f.server.calls_in_flight() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(f.server.calls_in_flight(), 0, "the call still waits");
    let took = start.elapsed();
    println!("call ended after {took:?} (virtual time)");
    assert!(took <= deadline + Duration::from_millis(100), "{took:?}");
    let mut out = Vec::new();
    let err = stream.recv.read_to_end(&mut out).await.unwrap_err();
    assert_eq!(
        StreamError::from_io(&err),
        Some(&StreamError::Reset(codes::TIMED_OUT))
    );
}
