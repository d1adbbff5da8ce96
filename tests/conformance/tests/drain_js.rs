//! A real `@matrixai/rpc` client (tests/js/rpc-drain-client.mjs) on a
//! strand server that drains, over wss and QUIC: it did not negotiate
//! go-away, so it sees what a shutdown shows it. Its long call finishes, a
//! call made during the drain gets −32001, and the connection closes
//! normally (ws 1000, QUIC 0), with no error the JS stack cannot handle.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::RpcError;
use strand_test_support::js::{node, stdout_lines};
use strand_tls::{Identity, ServerTls};
use strand_transport_quic::{QuicListener, QuicServerConfig};
use strand_transport_ws::{WsListener, WsServerConfig};

fn router() -> Router {
    Router::new()
        .unary("echo", |_ctx, p: Value| async move { Ok::<_, RpcError>(p) })
        .unary("nap", |_ctx, p: Value| async move {
            let ms = p["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, RpcError>(json!({ "napped": ms }))
        })
}

/// The next line from the script, waiting up to 60 s.
async fn line(lines: &mpsc::Receiver<String>) -> String {
    for _ in 0..6000 {
        match lines.try_recv() {
            Ok(line) => {
                eprintln!("js: {line}");
                return line;
            }
            Err(mpsc::TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(mpsc::TryRecvError::Disconnected) => panic!("the script ended early"),
        }
    }
    panic!("no output from the script within 60 s");
}

async fn js_client_sees_a_drain_as_a_normal_close(carrier: &str) {
    let identity = Identity::dev().unwrap();
    let server = Server::builder(router()).build();
    let port = if carrier == "ws" {
        let config = WsServerConfig::default().with_tls(ServerTls::new(identity.clone()));
        let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
        let port = listener.local_addr().port();
        let server = server.clone();
        tokio::spawn(async move { server.serve(listener).await });
        port
    } else {
        let config = QuicServerConfig::new(identity.clone());
        let listener = QuicListener::bind("127.0.0.1:0", config).await.unwrap();
        let port = listener.local_addr().port();
        let server = server.clone();
        tokio::spawn(async move { server.serve(listener).await });
        port
    };
    let mut process = node("rpc-drain-client.mjs", &[carrier, &port.to_string()]);
    let lines = stdout_lines(&mut process.child);
    let mut stdin = process.child.stdin.take().expect("piped stdin");
    writeln!(stdin, "{}", json!({ "ca": identity.cert_pem() })).unwrap();
    stdin.flush().unwrap();

    assert_eq!(line(&lines).await, "ok echo");
    assert_eq!(line(&lines).await, "started");
    for _ in 0..2000 {
        if server.calls_in_flight() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.calls_in_flight(), 1, "the long call runs");
    let drain = tokio::spawn({
        let server = server.clone();
        async move { server.drain(Duration::from_secs(10)).await }
    });
    for _ in 0..2000 {
        if server.is_stopping() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    writeln!(stdin, "drain").unwrap();
    stdin.flush().unwrap();

    let refused = line(&lines).await;
    assert!(
        refused.starts_with("ok refused ") && refused.contains("-32001"),
        "a call during the drain is answered −32001: {refused}"
    );
    assert_eq!(line(&lines).await, r#"ok nap {"napped":1000}"#);
    let closed = line(&lines).await;
    let detail: Value = serde_json::from_str(closed.strip_prefix("closed ").unwrap()).unwrap();
    let want = if carrier == "ws" { 1000 } else { 0 };
    assert_eq!(
        detail["data"]["errorCode"], want,
        "a normal close for the JS stack: {detail}"
    );
    assert_eq!(line(&lines).await, "done");
    tokio::time::timeout(Duration::from_secs(20), drain)
        .await
        .expect("the drain ended")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_sees_a_drain_over_wss_as_a_normal_close() {
    js_client_sees_a_drain_as_a_normal_close("ws").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_js_client_sees_a_drain_over_quic_as_a_normal_close() {
    js_client_sees_a_drain_as_a_normal_close("quic").await;
}
