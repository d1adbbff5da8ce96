//! The server's `tracing` spans (docs/deploy.md, "Traces"): a `call` span
//! with its method, kind and outcome inside its `connection` span, at
//! debug; nothing at info.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use strand_rpc_core::server::Router;
use strand_rpc_core::RpcError;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs an echo call and a failing call under a subscriber at `level`;
/// what it wrote.
async fn calls_logged_at(level: tracing::Level) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(captured.clone())
        .finish();
    // The test's runtime is on this thread: every task logs here.
    let _guard = tracing::subscriber::set_default(subscriber);
    let router = Router::new()
        .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
        .unary("fail", |_ctx, _p: Value| async move {
            Err::<Value, _>(RpcError::handler("Error", "no"))
        });
    let f = common::start(router);
    let out: Value = f.client.unary("echo", &json!({ "a": 1 })).await.unwrap();
    assert_eq!(out["a"], 1);
    f.client
        .unary::<_, Value>("fail", &json!({}))
        .await
        .unwrap_err();
    captured.text()
}

#[tokio::test]
async fn a_call_has_a_debug_span_with_its_method_kind_and_outcome() {
    let text = calls_logged_at(tracing::Level::DEBUG).await;
    assert!(
        text.contains(r#"connection{transport="memory" peer=None}:call{method="echo" kind="unary" outcome="ok"}: "#)
            && text.contains("close"),
        "{text}"
    );
    assert!(
        text.contains(r#"call{method="fail" kind="unary" outcome="error"}"#),
        "{text}"
    );
    assert!(text.contains("connection opened"), "{text}");
}

#[tokio::test]
async fn nothing_is_logged_at_info_per_call() {
    let text = calls_logged_at(tracing::Level::INFO).await;
    assert_eq!(text, "");
}
