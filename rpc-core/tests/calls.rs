//! Every call kind end to end over the memory transport, plus metadata,
//! timeouts and cancellation.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use strand_rpc_core::message::error_codes;
use strand_rpc_core::server::{Incoming, RawBody, Router};
use strand_rpc_core::{ClientError, Context, RpcError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Num {
    x: i64,
}

fn router() -> Router {
    Router::new()
        .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
        .server_streaming("count", |_ctx, p: Value| {
            let n = p["n"].as_u64().unwrap_or(0);
            stream::iter((0..n).map(|i| Ok::<_, RpcError>(json!({ "i": i }))))
        })
        .client_streaming("sum", |_ctx, mut input: Incoming<Num>| async move {
            let mut sum = 0;
            while let Some(n) = input.next().await {
                sum += n?.x;
            }
            Ok::<_, RpcError>(json!({ "sum": sum }))
        })
        .duplex("chat", |_ctx, input: Incoming<Value>| {
            input.map(|m| m.map(|v| json!({ "re": v["msg"] })))
        })
        .raw(
            "upper",
            |_ctx, _p: Value, input: strand_rpc_core::server::RawReader| async move {
                // The leading response goes first; the body is produced as input arrives.
                let upper = tokio_util::io::ReaderStream::new(input)
                    .map(|chunk| chunk.map(|b| Bytes::from(b.to_ascii_uppercase())));
                Ok::<_, RpcError>((json!({ "ok": true }), RawBody::from_stream(upper)))
            },
        )
        .unary("whoami", |ctx: Context, _p: Value| async move {
            Ok::<_, RpcError>(
                json!({ "trace": ctx.metadata().get("trace"), "method": ctx.method() }),
            )
        })
}

#[tokio::test]
async fn unary() {
    let f = common::start(router());
    let out: Value = f
        .client
        .unary("echo", &json!({ "hello": "world" }))
        .await
        .unwrap();
    assert_eq!(out["hello"], "world");
}

#[tokio::test]
async fn server_streaming() {
    let f = common::start(router());
    let items: Vec<Value> = f
        .client
        .server_streaming("count", &json!({ "n": 3 }))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        items,
        vec![json!({"i": 0}), json!({"i": 1}), json!({"i": 2})]
    );
}

#[tokio::test]
async fn client_streaming() {
    let f = common::start(router());
    let mut call = f
        .client
        .client_streaming::<Num, Value>("sum")
        .await
        .unwrap();
    for x in [1, 2, 3] {
        call.send(&Num { x }).await.unwrap();
    }
    assert_eq!(call.finish().await.unwrap(), json!({ "sum": 6 }));
}

#[tokio::test]
async fn duplex_interleaves() {
    let f = common::start(router());
    let (mut sink, mut responses) = f.client.duplex::<Value, Value>("chat").await.unwrap();
    for msg in ["a", "b", "c"] {
        sink.send(&json!({ "msg": msg })).await.unwrap();
        // Each reply arrives before the next message is sent.
        assert_eq!(
            responses.next().await.unwrap().unwrap(),
            json!({ "re": msg })
        );
    }
    sink.finish().await.unwrap();
    assert!(responses.next().await.is_none());
}

#[tokio::test]
async fn raw_bytes_both_ways() {
    let f = common::start(router());
    let mut call = f.client.raw::<_, Value>("upper", &json!({})).await.unwrap();
    assert_eq!(call.leading, json!({ "ok": true }));
    call.writer.write_all(b"raw bytes here").await.unwrap();
    call.writer.shutdown().await.unwrap();
    let mut out = Vec::new();
    call.reader.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"RAW BYTES HERE");
}

#[tokio::test]
async fn metadata_reaches_the_handler() {
    let f = common::start(router());
    let out: Value = f
        .client
        .call("whoami")
        .metadata("trace", "t-42")
        .unary(&json!({}))
        .await
        .unwrap();
    assert_eq!(out, json!({ "trace": "t-42", "method": "whoami" }));
}

#[tokio::test]
async fn reply_metadata_reaches_the_client() {
    let router = Router::new().unary("hello", |ctx: Context, _p: Value| async move {
        ctx.set_reply_metadata("session", "s-1");
        Ok::<_, RpcError>(json!({ "hi": true }))
    });
    let f = common::start(router);
    let (out, md): (Value, _) = f
        .client
        .call("hello")
        .unary_with_metadata(&json!({}))
        .await
        .unwrap();
    assert_eq!(out, json!({ "hi": true, "metadata": { "session": "s-1" } }));
    assert_eq!(md.unwrap()["session"], "s-1");
}

#[tokio::test]
async fn unknown_method() {
    let f = common::start(router());
    let err = f
        .client
        .unary::<_, Value>("nope", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::METHOD_NOT_FOUND), "{err}");
}

#[tokio::test]
async fn handler_error_reaches_the_client() {
    let router = Router::new().unary("fail", |_ctx, _p: Value| async move {
        Err::<Value, _>(
            RpcError::handler("TypeError", "handler exploded").with_data(json!({ "k": 1 })),
        )
    });
    let f = common::start(router);
    let err = f
        .client
        .unary::<_, Value>("fail", &json!({}))
        .await
        .unwrap_err();
    match &err {
        ClientError::Remote {
            code,
            message,
            data,
            ..
        } => {
            assert_eq!(*code, error_codes::HANDLER_ERROR);
            assert_eq!(message, "handler exploded");
            let data = data.as_ref().unwrap();
            assert_eq!(data["type"], "TypeError");
            assert_eq!(data["data"]["k"], 1);
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(err.error_type(), Some("TypeError"));
}

#[tokio::test]
async fn invalid_params() {
    let router = Router::new().unary("typed", |_ctx, n: Num| async move { Ok::<_, RpcError>(n) });
    let f = common::start(router);
    let err = f
        .client
        .unary::<_, Value>("typed", &json!({ "x": "not a number" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::INVALID_PARAMS), "{err}");
    let ok: Num = f.client.unary("typed", &Num { x: 5 }).await.unwrap();
    assert_eq!(ok, Num { x: 5 });
}

/// A handler that records whether it was cancelled and whether its future was dropped.
struct Probe {
    cancelled: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn slow_router(started: Option<oneshot::Sender<()>>) -> (Router, Probe) {
    let cancelled = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let probe = Probe {
        cancelled: cancelled.clone(),
        dropped: dropped.clone(),
    };
    let started = Arc::new(std::sync::Mutex::new(started));
    let router = Router::new().unary("slow", move |ctx: Context, _p: Value| {
        let cancelled = cancelled.clone();
        let guard = SetOnDrop(dropped.clone());
        let started = started.lock().unwrap().take();
        async move {
            let _guard = guard;
            let token = ctx.cancellation().clone();
            tokio::spawn(async move {
                token.cancelled().await;
                cancelled.store(true, Ordering::SeqCst);
            });
            if let Some(tx) = started {
                let _ = tx.send(());
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, RpcError>(json!({}))
        }
    });
    (router, probe)
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_cancels_the_handler() {
    let (tx, rx) = oneshot::channel();
    let (router, probe) = slow_router(Some(tx));
    let f = common::start(router);
    let client = f.client.clone();
    let call = tokio::spawn(async move { client.unary::<_, Value>("slow", &json!({})).await });
    rx.await.unwrap();
    assert!(!probe.cancelled.load(Ordering::SeqCst));
    call.abort();
    let _ = call.await;
    settle().await;
    assert!(
        probe.dropped.load(Ordering::SeqCst),
        "the handler's future must be dropped"
    );
    assert!(
        probe.cancelled.load(Ordering::SeqCst),
        "the handler's token must fire"
    );
    assert_eq!(f.server.calls_in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn client_timeout_shortens_the_server_default() {
    let (router, probe) = slow_router(None);
    let f = common::start(router);
    let start = tokio::time::Instant::now();
    // The server gets `metadata.timeout = 300`; the client waits a little longer
    // so the server's −32008 answer is what it sees.
    let err = f
        .client
        .call("slow")
        .metadata("timeout", 300)
        .unary::<_, Value>(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::TIMED_OUT), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    settle().await;
    assert!(probe.cancelled.load(Ordering::SeqCst));
    assert!(probe.dropped.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn client_side_timeout_is_enforced_locally() {
    let (router, _probe) = slow_router(None);
    let f = common::start(router);
    let err = f
        .client
        .call("slow")
        .timeout(Duration::from_millis(200))
        .unary::<_, Value>(&json!({}))
        .await
        .unwrap_err();
    // Both sides time out at the same instant; either answer is a timeout.
    assert!(
        matches!(err, ClientError::TimedOut(_)) || err.code() == Some(error_codes::TIMED_OUT),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pipelined_raw_call_times_out_waiting_for_its_leading_response() {
    // The handler never answers: its leading response waits for input that
    // never ends.
    let router = Router::new().raw(
        "stall",
        |_ctx, _p: Value, mut input: strand_rpc_core::server::RawReader| async move {
            let mut all = Vec::new();
            input.read_to_end(&mut all).await.ok();
            Ok::<_, RpcError>((json!({ "ok": true }), RawBody::from_stream(stream::empty())))
        },
    );
    let f = common::start(router);
    let start = tokio::time::Instant::now();
    let mut call = f
        .client
        .call("stall")
        .timeout(Duration::from_millis(200))
        .raw_pipelined::<_, Value>(&json!({}))
        .await
        .unwrap();
    // Writes are not bounded by the timeout; the wait for the answer is.
    call.writer.write_all(b"some bytes").await.unwrap();
    let err = call.response.leading().await.err().expect("a timeout");
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert!(
        matches!(err, ClientError::TimedOut(_)) || err.code() == Some(error_codes::TIMED_OUT),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn server_default_timeout_applies() {
    let (router, probe) = slow_router(None);
    let f = common::start_with(
        strand_rpc_core::server::Server::builder(router).default_timeout(Duration::from_secs(2)),
    );
    let start = tokio::time::Instant::now();
    let err = f
        .client
        .unary::<_, Value>("slow", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::TIMED_OUT), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    settle().await;
    assert!(probe.cancelled.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn per_method_timeout_overrides_the_default_and_the_client_cannot_extend_it() {
    let (router, _probe) = slow_router(None);
    let router = router.timeout("slow", Duration::from_secs(1));
    let f = common::start(router);
    let start = tokio::time::Instant::now();
    let err = f
        .client
        .call("slow")
        .metadata("timeout", 10_000)
        .unary::<_, Value>(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::TIMED_OUT), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn streaming_handler_times_out_mid_stream() {
    let router = Router::new().server_streaming("ticks", |_ctx, _p: Value| {
        stream::unfold(0u64, |i| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok::<_, RpcError>(json!({ "i": i })), i + 1))
        })
    });
    let f = common::start(router);
    let mut s = f
        .client
        .call("ticks")
        .metadata("timeout", 350)
        .server_streaming::<_, Value>(&json!({}))
        .await
        .unwrap();
    let mut got = 0;
    let err = loop {
        match s.next().await.unwrap() {
            Ok(_) => got += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(got, 3);
    assert_eq!(err.code(), Some(error_codes::TIMED_OUT), "{err}");
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn a_bare_reset_before_any_answer_is_reported_as_unanswered() {
    use strand_rpc_core::transport::{Connection, SendStream};
    // A peer that behaves like a JS server facing an unknown method: it
    // reads the request, then resets its side without a word.
    let (client_side, server_side) = strand_rpc_core::memory::pair();
    tokio::spawn(async move {
        let mut stream = server_side.accept_stream().await.unwrap();
        let mut buf = [0u8; 256];
        let _ = stream.recv.read(&mut buf).await;
        stream.send.reset(0);
        // Keep the connection open until the client is done.
        server_side.closed().await;
    });
    let client = strand_rpc_core::Client::new(client_side);
    let err = client
        .unary::<_, Value>("nope", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unanswered(_)), "{err:?}");
    assert!(err.to_string().contains("without answering"), "{err}");
    assert_eq!(
        err.stream_error(),
        Some(&strand_rpc_core::transport::StreamError::Reset(0))
    );
}

/// A handler that panics is answered with −32603, and the connection keeps
/// serving: the panic may come in the call's first poll (which runs on the
/// connection's accepting task) or after the handler waited.
#[tokio::test]
async fn a_panicking_handler_is_answered_and_the_connection_survives() {
    let router = router()
        .unary("panic_now", |_ctx, _p: Value| async move {
            if true {
                panic!("at once");
            }
            Ok::<_, RpcError>(json!(null))
        })
        .unary("panic_later", |_ctx, _p: Value| async move {
            tokio::task::yield_now().await;
            if true {
                panic!("after a wait");
            }
            Ok::<_, RpcError>(json!(null))
        });
    let f = common::start(router);
    for method in ["panic_now", "panic_later", "panic_now"] {
        let err = f
            .client
            .unary::<_, Value>(method, &json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(error_codes::INTERNAL_ERROR),
            "{method}: {err:?}"
        );
        let out: Value = f
            .client
            .unary("echo", &json!({ "after": method }))
            .await
            .unwrap();
        assert_eq!(out["after"], method);
    }
    assert_eq!(f.server.calls_in_flight(), 0);
}

/// A stream that panics between items ends with −32603 after the items
/// before it, and other calls go on.
#[tokio::test]
async fn a_stream_that_panics_ends_with_an_error() {
    let router = router().server_streaming("panic_midway", |_ctx, _p: Value| {
        stream::iter(0..3).map(|i| {
            if i == 2 {
                panic!("midway");
            }
            Ok::<_, RpcError>(json!({ "i": i }))
        })
    });
    let f = common::start(router);
    let items: Vec<Result<Value, ClientError>> = f
        .client
        .server_streaming("panic_midway", &json!({}))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap()["i"], 0);
    assert_eq!(items[1].as_ref().unwrap()["i"], 1);
    assert_eq!(
        items[2].as_ref().unwrap_err().code(),
        Some(error_codes::INTERNAL_ERROR),
        "{items:?}"
    );
    let out: Value = f
        .client
        .unary("echo", &json!({ "still": "up" }))
        .await
        .unwrap();
    assert_eq!(out["still"], "up");
}

#[tokio::test(start_paused = true)]
async fn array_params_carry_no_metadata() {
    // `params.metadata` of an array is nothing (as in JS): its first
    // element is not read as the metadata (serde reads a struct from an
    // array that way), so its `timeout` does not shorten the server's 2 s.
    let (router, _probe) = slow_router(None);
    let f = common::start_with(
        strand_rpc_core::server::Server::builder(router).default_timeout(Duration::from_secs(2)),
    );
    let start = tokio::time::Instant::now();
    let err = f
        .client
        .call("slow")
        .timeout(Duration::from_secs(10))
        .unary::<_, Value>(&json!([{ "timeout": 300, "note": "metadata" }]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::TIMED_OUT), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

/// A timeout too far away for the clock (`Instant + Duration` would overflow)
/// means no local deadline; the call is still made, and the server caps the
/// `metadata.timeout` it reads.
#[tokio::test]
async fn a_timeout_past_the_clock_means_no_local_deadline() {
    let f = common::start(router());
    let out: Value = f
        .client
        .call("echo")
        .timeout(Duration::MAX)
        .unary(&json!({ "x": 1 }))
        .await
        .unwrap();
    assert_eq!(out["x"], 1);
    let mut items = f
        .client
        .call("count")
        .timeout(Duration::MAX)
        .server_streaming::<_, Value>(&json!({ "n": 2 }))
        .await
        .unwrap();
    assert_eq!(items.next().await.unwrap().unwrap(), json!({ "i": 0 }));
}

/// The same for the server's timeout layer: no deadline rather than a panic.
#[tokio::test]
async fn a_timeout_layer_past_the_clock_is_no_deadline() {
    let f = common::start_with(strand_rpc_core::server::Server::builder(router()).layer(
        strand_rpc_core::middleware::TimeoutLayer::new(Duration::MAX),
    ));
    let out: Value = f.client.unary("echo", &json!({ "y": 2 })).await.unwrap();
    assert_eq!(out["y"], 2);
}

/// A connection that ended is let go by the server at once: the server kept
/// every connection in its shutdown list until the next one arrived, so the
/// last connection of a quiet server (its session, its buffers) outlived its
/// end for as long as no other came.
#[tokio::test]
async fn the_server_lets_go_of_a_connection_that_ended() {
    use strand_rpc_core::server::Server;
    use strand_rpc_core::transport::CloseCode;
    use strand_rpc_core::Client;
    let server = Server::builder(router()).build();
    let (client_side, server_side) = strand_rpc_core::memory::pair();
    let server_side = Arc::new(server_side);
    let serving = tokio::spawn({
        let server = server.clone();
        let conn: strand_rpc_core::transport::DynConnection = server_side.clone();
        async move { server.serve_connection(conn).await }
    });
    let client = Client::from_shared(Arc::new(client_side), Default::default());
    let out: Value = client.unary("echo", &json!({ "a": 1 })).await.unwrap();
    assert_eq!(out["a"], 1);
    client.connection().close(CloseCode::Normal, "done");
    drop(client);
    serving.await.unwrap();
    assert_eq!(
        Arc::strong_count(&server_side),
        1,
        "the server still holds the connection that ended"
    );
}
