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

/// A `{"jsonrpc":"2.0","method":"echo","params":"xxx…"}` message of exactly `len` bytes.
fn echo_message(len: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","method":"echo","params":""#;
    let tail = br#""}"#;
    let mut msg = head.to_vec();
    msg.resize(len - tail.len(), b'x');
    msg.extend_from_slice(tail);
    msg
}

/// A router whose `echo` counts the calls that reached it.
fn counting_echo() -> (Router, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let started = std::sync::Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let router = Router::new().unary("echo", move |_ctx, p: Value| {
        count.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, RpcError>(p) }
    });
    (router, started)
}

#[tokio::test(start_paused = true)]
async fn a_first_message_over_its_limit_is_answered_too_long_before_any_handler() {
    use std::sync::atomic::Ordering;
    let (router, started) = counting_echo();
    let f = common::start_with(Server::builder(router));
    let limit = strand_rpc_core::server::DEFAULT_MAX_FIRST_MESSAGE_SIZE;
    assert_eq!(limit, 64 << 10);
    assert_eq!(f.server.config().max_first_message_size, limit);
    // Exactly the limit is served.
    let ok = f.exchange_json(&[&echo_message(limit)]).await;
    assert_eq!(ok[0]["result"].as_str().map(str::len), Some(limit - 45));
    // One byte more (still far below the 1 MiB message limit) is not.
    let answer = send_and_read(&f, echo_message(limit + 1)).await;
    assert_eq!(answer["error"]["code"], -32003, "{answer}");
    assert_eq!(started.load(Ordering::SeqCst), 1, "only the first call ran");
}

/// Writes `msg` and finishes on a fresh stream (off the reading task: the
/// server may stop reading early), and reads the one answer.
async fn send_and_read(f: &common::Fixture, msg: Vec<u8>) -> Value {
    let stream = f.conn.open_stream().await.unwrap();
    let (mut send, mut recv) = (stream.send, stream.recv);
    let writer = tokio::spawn(async move {
        let _ = send.write_all(&msg).await;
        let _ = send.shutdown().await;
    });
    let mut out = Vec::new();
    recv.read_to_end(&mut out).await.unwrap();
    let _ = writer.await;
    serde_json::from_slice(&out).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_first_message_that_trickles_in_is_answered_timed_out_at_its_limit() {
    use std::sync::atomic::Ordering;
    let (router, started) = counting_echo();
    let f = common::start_with(Server::builder(router));
    let limit = f.server.config().first_message_timeout;
    assert_eq!(limit, Duration::from_secs(10));
    let stream = f.conn.open_stream().await.unwrap();
    let (mut send, mut recv) = (stream.send, stream.recv);
    let start = Instant::now();
    // One byte a second, never a whole message (the call's own default
    // timeout, 60 s, would be the only bound before).
    let trickle = tokio::spawn(async move {
        for _ in 0..120 {
            if send.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut out = Vec::new();
    recv.read_to_end(&mut out).await.unwrap();
    let took = start.elapsed();
    println!("answered after {took:?} (virtual time)");
    assert!(
        took >= limit && took < limit + Duration::from_secs(1),
        "{took:?}"
    );
    let answer: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(answer["error"]["code"], -32008, "{answer}");
    assert_eq!(started.load(Ordering::SeqCst), 0);
    trickle.abort();
}

#[tokio::test(start_paused = true)]
async fn messages_after_the_first_keep_the_message_size_limit() {
    // 200 KiB second message: past the first message's limit, within 1 MiB.
    let router = Router::new().client_streaming(
        "sum",
        |_ctx, mut input: strand_rpc_core::server::Incoming<String>| async move {
            use futures_util::StreamExt;
            let mut total = 0;
            while let Some(item) = input.next().await {
                total += item?.len();
            }
            Ok::<_, RpcError>(total)
        },
    );
    let f = common::start_with(Server::builder(router));
    let second = format!(
        r#"{{"jsonrpc":"2.0","method":"sum","params":"{}"}}"#,
        "y".repeat(200 << 10)
    );
    let out = f
        .exchange_json(&[
            br#"{"jsonrpc":"2.0","method":"sum","params":"ab"}"#,
            second.as_bytes(),
        ])
        .await;
    assert_eq!(out[0]["result"], 2 + (200 << 10), "{}", out[0]);
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
