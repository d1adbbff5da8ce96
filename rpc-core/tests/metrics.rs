//! The server's metrics (feature `metrics`): every outcome and refusal is
//! counted under its documented labels, and the gauges come back to zero.
//! A process-wide recorder is installed, so this file holds one test.
#![cfg(feature = "metrics")]

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::{json, Value};
use strand_rpc_core::message::error_codes;
use strand_rpc_core::metrics::{
    CALLS_FINISHED, CALLS_REFUSED, CALLS_STARTED, CONNECTIONS_ACCEPTED, CONNECTIONS_OPEN, DRAINING,
    STREAMS_OPEN,
};
use strand_rpc_core::server::Router;
use strand_rpc_core::RpcError;

/// A series: its name and its labels, sorted.
type Series = (String, Vec<(String, String)>);

/// Every series' value so far. The debugging recorder's snapshot takes
/// what was recorded since the last one (it swaps counters and gauges to
/// zero), so the values are added up here; gauges only go up and down by
/// one (or are set once), which adds up the same.
struct Totals {
    snapshotter: Snapshotter,
    seen: RefCell<HashMap<Series, f64>>,
}

impl Totals {
    /// The value of `name{labels}` (labels in any order); 0 if never recorded.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut seen = self.seen.borrow_mut();
        for (key, _, _, v) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            labels.sort();
            let v = match v {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            };
            *seen.entry((key.name().to_string(), labels)).or_default() += v;
        }
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        wanted.sort();
        seen.get(&(name.to_string(), wanted))
            .copied()
            .unwrap_or(0.0)
    }
}

fn router() -> Router {
    Router::new()
        .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
        .unary("fail", |_ctx, _p: Value| async move {
            Err::<Value, _>(RpcError::handler("Error", "no"))
        })
        .unary("hang", |_ctx, _p: Value| async move {
            std::future::pending::<Result<Value, RpcError>>().await
        })
        .unary("slow", |_ctx, _p: Value| async move {
            std::future::pending::<Result<Value, RpcError>>().await
        })
        .timeout("slow", Duration::from_millis(50))
}

#[tokio::test(start_paused = true)]
async fn every_outcome_and_refusal_is_counted_under_its_labels() {
    let recorder = DebuggingRecorder::new();
    let totals = Totals {
        snapshotter: recorder.snapshotter(),
        seen: RefCell::default(),
    };
    recorder
        .install()
        .expect("the only recorder of this process");
    let finished = |method: &str, kind: &str, outcome: &str| {
        totals.value(
            CALLS_FINISHED,
            &[("method", method), ("kind", kind), ("outcome", outcome)],
        )
    };

    let f = common::start(router());
    let out: Value = f.client.unary("echo", &json!({ "a": 1 })).await.unwrap();
    assert_eq!(out["a"], 1);
    f.client
        .unary::<_, Value>("fail", &json!({}))
        .await
        .unwrap_err();
    let err = f
        .client
        .unary::<_, Value>("made.up", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::METHOD_NOT_FOUND));
    // Past the method's deadline: answered −32008.
    let err = f
        .client
        .unary::<_, Value>("slow", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::TIMED_OUT), "{err}");
    // The caller goes away: the handler is cancelled.
    let gone = tokio::time::timeout(
        Duration::from_millis(10),
        f.client.unary::<_, Value>("hang", &json!({})),
    )
    .await;
    assert!(gone.is_err());
    for _ in 0..100 {
        if finished("hang", "unary", "cancelled") == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    assert_eq!(finished("echo", "unary", "ok"), 1.0);
    assert_eq!(finished("fail", "unary", "error"), 1.0);
    assert_eq!(finished("unknown", "unknown", "error"), 1.0);
    assert_eq!(finished("slow", "unary", "timeout"), 1.0);
    assert_eq!(finished("hang", "unary", "cancelled"), 1.0);
    assert_eq!(
        totals.value(CALLS_STARTED, &[("method", "hang"), ("kind", "unary")]),
        1.0
    );
    let memory = [("transport", "memory")];
    assert_eq!(totals.value(CONNECTIONS_ACCEPTED, &memory), 1.0);
    assert_eq!(totals.value(CONNECTIONS_OPEN, &memory), 1.0);
    assert_eq!(totals.value(STREAMS_OPEN, &[]), 0.0);
    assert_eq!(totals.value(DRAINING, &[]), 0.0);

    // A drain whose grace runs out aborts the call still running, and a
    // call made meanwhile is refused.
    let c = f.client.clone();
    let running = tokio::spawn(async move { c.unary::<_, Value>("hang", &json!({})).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(totals.value(STREAMS_OPEN, &[]), 1.0);
    let server = f.server.clone();
    let drain = tokio::spawn(async move { server.drain(Duration::from_millis(100)).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(totals.value(DRAINING, &[]), 1.0);
    let refused = f
        .client
        .unary::<_, Value>("echo", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(error_codes::SERVER_STOPPING),
        "{refused}"
    );
    assert_eq!(totals.value(CALLS_REFUSED, &[("reason", "stopping")]), 1.0);
    drain.await.unwrap();
    running.await.unwrap().unwrap_err();
    assert_eq!(finished("hang", "unary", "aborted"), 1.0);
    for _ in 0..100 {
        if totals.value(CONNECTIONS_OPEN, &memory) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(totals.value(CONNECTIONS_OPEN, &memory), 0.0);
    assert_eq!(totals.value(STREAMS_OPEN, &[]), 0.0);
}
