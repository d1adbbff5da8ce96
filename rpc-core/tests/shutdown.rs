//! Graceful shutdown, and the timeout and concurrency-limit layers.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use strand_rpc_core::message::error_codes;
use strand_rpc_core::middleware::{ConcurrencyLimitLayer, TimeoutLayer};
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::{Context, RpcError};
use tokio::time::Instant;

fn sleepy() -> Router {
    Router::new().unary("sleep", |ctx: Context, p: Value| async move {
        let ms = p["ms"].as_u64().unwrap_or(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok::<_, RpcError>(json!({ "slept": ms })),
            _ = ctx.cancelled() => Err(RpcError::handler("Error", "cancelled")),
        }
    })
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_then_aborts() {
    let f = common::start(sleepy());
    let c1 = f.client.clone();
    let short =
        tokio::spawn(async move { c1.unary::<_, Value>("sleep", &json!({ "ms": 1000 })).await });
    let c2 = f.client.clone();
    let long = tokio::spawn(async move {
        c2.unary::<_, Value>("sleep", &json!({ "ms": 10_000 }))
            .await
    });
    // Let both calls start.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(f.server.calls_in_flight(), 2);

    let start = Instant::now();
    let server = f.server.clone();
    let shutdown = tokio::spawn(async move { server.shutdown(Duration::from_secs(3)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;

    // A call that starts during the drain is refused with −32001.
    let err = f
        .client
        .unary::<_, Value>("sleep", &json!({ "ms": 1 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::SERVER_STOPPING), "{err}");

    // The short call finishes normally within the grace period.
    assert_eq!(short.await.unwrap().unwrap(), json!({ "slept": 1000 }));
    // The long one is aborted with −32001 when the grace period ends.
    let err = long.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(error_codes::SERVER_STOPPING), "{err}");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
    shutdown.await.unwrap();
    assert_eq!(f.server.calls_in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_nothing_running_is_immediate() {
    let f = common::start(sleepy());
    let out: Value = f.client.unary("sleep", &json!({ "ms": 5 })).await.unwrap();
    assert_eq!(out["slept"], 5);
    let start = Instant::now();
    f.server.shutdown(Duration::from_secs(30)).await;
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn timeout_layer_bounds_calls() {
    let f = common::start_with(
        Server::builder(sleepy()).layer(TimeoutLayer::new(Duration::from_millis(500))),
    );
    let start = Instant::now();
    let err = f
        .client
        .unary::<_, Value>("sleep", &json!({ "ms": 5000 }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::TIMED_OUT), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    let ok: Value = f
        .client
        .unary("sleep", &json!({ "ms": 100 }))
        .await
        .unwrap();
    assert_eq!(ok["slept"], 100);
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_queues_calls() {
    let f = common::start_with(Server::builder(sleepy()).layer(ConcurrencyLimitLayer::new(2)));
    let start = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let c = f.client.clone();
            tokio::spawn(async move { c.unary::<_, Value>("sleep", &json!({ "ms": 1000 })).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // Two at a time: four one-second calls take two seconds.
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

/// A stream whose items are always ready and whose caller reads as fast as
/// they come never waits, yet a forced shutdown still ends it with −32001,
/// and a caller that drops it still cancels it.
#[tokio::test]
async fn an_endless_ready_stream_is_still_interrupted() {
    use futures_util::StreamExt;
    let router = Router::new().server_streaming("forever", |_ctx, _p: Value| {
        futures_util::stream::repeat_with(|| Ok::<_, RpcError>(json!({ "x": 1 })))
    });
    let f = common::start(router);

    // Dropped by the caller: the handler's stream stops being polled.
    let mut items = f
        .client
        .server_streaming::<_, Value>("forever", &json!({}))
        .await
        .unwrap();
    for _ in 0..100 {
        items.next().await.unwrap().unwrap();
    }
    drop(items);
    tokio::time::timeout(Duration::from_secs(10), async {
        while f.server.calls_in_flight() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the dropped stream's call ended");

    // Forced down while the caller keeps reading.
    let mut items = f
        .client
        .server_streaming::<_, Value>("forever", &json!({}))
        .await
        .unwrap();
    items.next().await.unwrap().unwrap();
    let server = f.server.clone();
    let shutdown = tokio::spawn(async move { server.shutdown(Duration::ZERO).await });
    let err = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match items.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => break e,
                None => panic!("the stream ended without an error"),
            }
        }
    })
    .await
    .expect("the forced shutdown reached the stream");
    assert_eq!(err.code(), Some(error_codes::SERVER_STOPPING), "{err}");
    shutdown.await.unwrap();
    assert_eq!(f.server.calls_in_flight(), 0);
}

/// A call's first poll runs on its connection's accept task: a server
/// stream whose items are always ready and whose writes always go through
/// (here a buffer that holds the whole response) must give that task back
/// after a bounded number of items, so that the call behind it is accepted
/// (and, while stopping, answered) without waiting for the whole stream.
#[tokio::test]
async fn a_ready_stream_does_not_hold_the_calls_behind_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures_util::StreamExt;
    use strand_rpc_core::memory::{self, MemoryConfig};
    use strand_rpc_core::Client;

    const ITEMS: usize = 100_000;
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let seen = produced.clone();
    let router = Router::new()
        .server_streaming("count", move |_ctx, _p: Value| {
            let counter = counter.clone();
            futures_util::stream::iter(0..ITEMS).map(move |i| {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok::<_, RpcError>(json!({ "i": i }))
            })
        })
        .unary("probe", move |_ctx, _p: Value| {
            let seen = seen.clone();
            async move { Ok::<_, RpcError>(json!(seen.load(Ordering::Relaxed))) }
        });
    let server = Server::builder(router).build();
    // Room for the whole response: the stream's writes never wait.
    let config = MemoryConfig {
        stream_buffer: 64 << 20,
        ..Default::default()
    };
    let (client_side, server_side) = memory::pair_with(config);
    server.spawn_connection(Arc::new(server_side));
    let client = Client::new(client_side);

    // Both requests are sent before the server's task runs (one thread):
    // the stream's call is accepted first, the probe right behind it.
    let params = json!({});
    let (items, probe) = tokio::join!(
        client.server_streaming::<_, Value>("count", &params),
        client.unary::<_, Value>("probe", &params),
    );
    let at_probe = probe.unwrap().as_u64().unwrap() as usize;
    assert!(
        at_probe < ITEMS / 10,
        "the probe waited for {at_probe} of {ITEMS} items"
    );
    // The stream is whole all the same.
    assert_eq!(items.unwrap().count().await, ITEMS);
}

/// A call whose request has not come in when the grace ends is answered
/// −32001 like a running one, not reset: a JS peer opens the stream and
/// sends its request a round trip later.
#[tokio::test(start_paused = true)]
async fn a_call_still_waiting_for_its_request_is_answered_when_aborted() {
    use strand_rpc_core::transport::Connection;
    use tokio::io::AsyncReadExt;

    let f = common::start(sleepy());
    // Opened, nothing written yet.
    let mut stream = f.conn.open_stream().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(f.server.calls_in_flight(), 1);
    f.server.shutdown(Duration::from_millis(300)).await;
    let mut out = Vec::new();
    stream.recv.read_to_end(&mut out).await.unwrap();
    let answer: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        answer["error"]["code"],
        error_codes::SERVER_STOPPING,
        "{answer}"
    );
}
