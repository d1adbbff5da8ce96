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

/// A raw call still transferring when the server's deadline passes (it
/// covers the whole call, bytes included) is reset `TIMED_OUT`, as a
/// response write past the deadline is: it was reset `CANCELLED`, so a
/// caller could not tell the deadline from a handler that gave up.
#[tokio::test(start_paused = true)]
async fn a_raw_call_past_the_deadline_is_reset_timed_out() {
    use strand_rpc_core::server::{RawBody, RawReader};
    let deadline = Duration::from_secs(2);
    let router = Router::new().raw("sink", |_ctx, _p: Value, mut input: RawReader| async move {
        let body = futures_util::stream::once(async move {
            let mut buf = [0u8; 1024];
            while input.read(&mut buf).await? > 0 {}
            Ok(bytes::Bytes::from_static(b"done"))
        });
        Ok::<_, RpcError>((
            serde_json::json!({ "ready": true }),
            RawBody::from_stream(body),
        ))
    });
    let f = common::start_with(Server::builder(router).default_timeout(deadline));
    let mut call = f
        .client
        .raw::<_, Value>("sink", &serde_json::json!({}))
        .await
        .unwrap();
    call.writer
        .write_all(b"some bytes, and no end")
        .await
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let err = call.reader.read_to_end(&mut out).await.unwrap_err();
    assert_eq!(
        StreamError::from_io(&err),
        Some(&StreamError::Reset(codes::TIMED_OUT)),
        "{err}"
    );
    assert!(start.elapsed() <= deadline, "{:?}", start.elapsed());
    assert_eq!(f.server.calls_in_flight(), 0);
}
