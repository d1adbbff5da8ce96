//! Interop smoke tests against the real `@matrixai/ws` 1.1.7 (Node).
//!
//! JS clients always dial `wss://`, and a JS server is always HTTPS, so these
//! run over TLS with a development identity (IP SANs, which JS verifies).

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use strand_test_support::js;
use strand_tls::{ClientTls, Identity, ServerTls, ServerVerification};
use strand_transport_ws::{
    connect, Http2Config, WsClientConfig, WsConnection, WsListener, WsServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(60);

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lines printed by a node process, read on a thread.
fn lines(proc: &mut js::NodeProcess) -> mpsc::Receiver<String> {
    js::stdout_lines(&mut proc.child)
}

async fn next_line(rx: &mpsc::Receiver<String>) -> Option<String> {
    // The receiver is polled from a blocking section to keep the runtime free.
    tokio::task::block_in_place(|| rx.recv_timeout(LIMIT).ok())
}

async fn collect_until_done(rx: &mpsc::Receiver<String>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(line) = next_line(rx).await {
        let end = line == "done" || line.starts_with("fail");
        out.push(line);
        if end {
            break;
        }
    }
    out
}

async fn echo_server(identity: &Identity) -> WsListener {
    let config = WsServerConfig::default().with_tls(ServerTls::new(identity.clone()));
    let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
    listener
}

fn spawn_echo(conn: WsConnection) {
    tokio::spawn(async move {
        while let Ok((mut send, mut recv)) = conn.accept_stream().await.map(|s| s.split()) {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if recv.read_to_end(&mut buf).await.is_ok() {
                    let _ = send.write_all(&buf).await;
                    let _ = send.shutdown().await;
                }
            });
        }
    });
}

async fn run_js_client(mode: &str) -> Vec<String> {
    let identity = Identity::dev().unwrap();
    let listener = echo_server(&identity).await;
    let port = listener.local_addr().port().to_string();
    let mut node = js::node("ws-echo-client.mjs", &[&port, mode]);
    let rx = lines(&mut node);
    let stdin = node.child.stdin.as_mut().unwrap();
    writeln!(stdin, "{{\"ca\":{}}}", json_str(&identity.cert_pem())).unwrap();
    stdin.flush().unwrap();
    let conn = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conn.peer().transport, "wss");
    spawn_echo(conn);
    collect_until_done(&rx).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_opens_three_streams_to_strand_echo_server() {
    let out = run_js_client("echo3").await;
    let oks: Vec<_> = out.iter().filter(|l| l.starts_with("ok ")).collect();
    assert_eq!(oks.len(), 3, "{out:?}");
    assert_eq!(out.last().map(String::as_str), Some("done"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_sends_several_data_then_closes_50_times() {
    let out = run_js_client("burst").await;
    assert!(out.contains(&"ok burst 50".to_string()), "{out:?}");
    assert_eq!(out.last().map(String::as_str), Some("done"), "{out:?}");
}

/// A listener serving WebSocket over HTTP/2 (the default) still serves the
/// JS client, over HTTP/1.1, on the same port as an HTTP/2 strand client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_over_http1_beside_an_h2_client_on_one_port() {
    let identity = Identity::dev().unwrap();
    let listener = echo_server(&identity).await;
    let port = listener.local_addr().port();
    let mut node = js::node("ws-echo-client.mjs", &[&port.to_string(), "echo3"]);
    let rx = lines(&mut node);
    let stdin = node.child.stdin.as_mut().unwrap();
    writeln!(stdin, "{{\"ca\":{}}}", json_str(&identity.cert_pem())).unwrap();
    stdin.flush().unwrap();
    let js_conn = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    spawn_echo(js_conn);
    let out = collect_until_done(&rx).await;
    assert_eq!(
        out.iter().filter(|l| l.starts_with("ok ")).count(),
        3,
        "{out:?}"
    );
    let tls = ClientTls::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let h2 = WsClientConfig::default()
        .with_tls(tls)
        .with_http2(Some(Http2Config::default()));
    let client = connect(&format!("wss://localhost:{port}/"), h2)
        .await
        .unwrap();
    spawn_echo(listener.accept_connection().await.unwrap());
    let (mut send, mut recv) = client.open_stream().await.unwrap().split();
    send.write_all(b"over h2").await.unwrap();
    send.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(LIMIT, recv.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"over h2");
    let stats = listener.stats();
    assert_eq!(
        (stats.http1_upgrades, stats.h2_upgrades),
        (1, 1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strand_client_echoes_through_js_server() {
    let identity = Identity::dev().unwrap();
    let mut node = js::node("ws-echo-server.mjs", &[]);
    let rx = lines(&mut node);
    let stdin = node.child.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "{{\"cert\":{},\"key\":{}}}",
        json_str(&identity.cert_pem()),
        json_str(&identity.key_pem())
    )
    .unwrap();
    stdin.flush().unwrap();
    let line = next_line(&rx).await.expect("server started");
    let port = line.strip_prefix("listening ").expect("listening line");
    let tls = ClientTls::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let url = format!("wss://127.0.0.1:{port}/");
    let client = connect(&url, WsClientConfig::default().with_tls(tls))
        .await
        .unwrap();
    assert_eq!(client.peer().transport, "wss");
    assert!(!client.peer().certificates.is_empty());
    let mut tasks = Vec::new();
    for i in 0..3 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut send, mut recv) = client.open_stream().await.unwrap().split();
            let first = format!("hello-{i}");
            let second = format!("second message on stream {i}");
            send.write_all(first.as_bytes()).await.unwrap();
            send.write_all(second.as_bytes()).await.unwrap();
            send.shutdown().await.unwrap();
            let mut back = String::new();
            recv.read_to_string(&mut back).await.unwrap();
            assert_eq!(back, format!("{first}{second}"));
        }));
    }
    for t in tasks {
        timeout(LIMIT, t).await.unwrap().unwrap();
    }
    // The JS server saw three complete echoes.
    let mut echoed = 0;
    while echoed < 3 {
        let line = next_line(&rx).await.expect("echo report");
        assert!(line.starts_with("echoed "), "{line}");
        echoed += 1;
    }
}
