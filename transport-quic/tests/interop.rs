//! Interop with the real `@matrixai/quic` 2.x (node scripts in tests/js):
//! a JS client against a strand listener, a strand client against a JS server.

mod common;

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::{drain, within};
use strand_rpc_core::transport::{
    stopped, write_boundary, CloseCode, Connection, PeerInfo, SendStream, StreamError,
};
use strand_test_support::js::{node, NodeProcess};
use strand_tls::{ClientAuth, ClientCertVerification, Identity, ServerVerification};
use strand_transport_quic::{QuicClient, QuicClientConfig, QuicListener, QuicServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A node process whose stdout lines arrive through a channel.
struct Script {
    process: NodeProcess,
    lines: mpsc::Receiver<String>,
}

impl Script {
    fn start(script: &str, args: &[&str]) -> Script {
        let mut process = node(script, args);
        let lines = strand_test_support::js::stdout_lines(&mut process.child);
        Script { process, lines }
    }

    /// The next stdout line; panics after 60 s or at EOF.
    async fn line(&self) -> String {
        // The reader thread blocks; poll the channel without blocking the runtime.
        for _ in 0..6000 {
            match self.lines.try_recv() {
                Ok(line) => return line,
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(mpsc::TryRecvError::Disconnected) => panic!("script ended without more output"),
            }
        }
        panic!("no output from the script within 60 s");
    }

    /// Waits for the exit status (bounded).
    async fn exit_code(&mut self) -> Option<i32> {
        for _ in 0..6000 {
            if let Some(status) = self.process.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("script did not exit within 60 s");
    }
}

/// A folder with the identity's PEM files, removed on drop.
struct PemDir(PathBuf);

impl PemDir {
    fn new(tag: &str, identities: &[(&str, &Identity)]) -> PemDir {
        let dir = std::env::temp_dir().join(format!("strand-quic-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, id) in identities {
            std::fs::write(dir.join(format!("{name}.crt")), id.cert_pem()).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), id.key_pem()).unwrap();
        }
        PemDir(dir)
    }

    fn path(&self, file: &str) -> String {
        self.0.join(file).to_str().unwrap().to_owned()
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Echoes every stream of every connection; reports each connection's peer info.
fn spawn_echo(listener: QuicListener) -> tokio::sync::mpsc::UnboundedReceiver<Arc<PeerInfo>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(conn) = listener.accept_connection().await {
            let _ = tx.send(conn.peer_info());
            tokio::spawn(async move {
                while let Ok(stream) = conn.accept_stream().await {
                    let (mut send, mut recv) = stream.split();
                    tokio::spawn(async move {
                        let (data, err) = drain(&mut recv).await;
                        if err.is_none() {
                            let _ = send.write_all(&data).await;
                            let _ = send.shutdown().await;
                        }
                    });
                }
            });
        }
    });
    rx
}

async fn run_js_client(port: u16, args: &[&str]) -> Vec<String> {
    let port = port.to_string();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    let mut script = Script::start("quic-echo-client.mjs", &all);
    let mut lines = Vec::new();
    loop {
        let line = script.line().await;
        let last = line == "done" || line.starts_with("fail") || line == "timeout";
        lines.push(line);
        if last {
            break;
        }
    }
    assert_eq!(
        script.exit_code().await,
        Some(0),
        "js client output: {lines:?}"
    );
    lines
}

fn expected_lines(count: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..count).map(|i| format!("ok {i}")).collect();
    v.push("done".into());
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    let done = v.pop();
    v.sort();
    v.extend(done);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_against_strand_listener() {
    let identity = Identity::dev().unwrap();
    let pems = PemDir::new("server", &[("server", &identity)]);
    let config = QuicServerConfig::new(identity.clone())
        .with_client_auth(ClientAuth::Optional(ClientCertVerification::AnyCertificate));
    let listener = QuicListener::bind("127.0.0.1:0", config).await.unwrap();
    let port = listener.local_addr().port();
    let mut peers = spawn_echo(listener);

    // Verifying the server as `localhost` against our certificate.
    let lines = run_js_client(port, &["5", &pems.path("server.crt")]).await;
    assert_eq!(sorted(lines), expected_lines(5));
    let peer = within(peers.recv()).await.unwrap();
    assert_eq!(peer.transport, "quic");
    assert!(peer.remote_addr.unwrap().ip().is_loopback());
    assert!(
        peer.certificates.is_empty(),
        "the JS client sent no certificate"
    );

    // Without verification.
    let lines = run_js_client(port, &["3", "insecure"]).await;
    assert_eq!(sorted(lines), expected_lines(3));
    within(peers.recv()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_certificate_reaches_peer_info() {
    let identity = Identity::dev().unwrap();
    let client_id = Identity::self_signed(&["js-client.test"]).unwrap();
    let pems = PemDir::new("mtls", &[("server", &identity), ("client", &client_id)]);
    let config = QuicServerConfig::new(identity.clone())
        .with_client_auth(ClientAuth::Required(ClientCertVerification::AnyCertificate));
    let listener = QuicListener::bind("127.0.0.1:0", config).await.unwrap();
    let port = listener.local_addr().port();
    let mut peers = spawn_echo(listener);
    let lines = run_js_client(
        port,
        &[
            "2",
            &pems.path("server.crt"),
            &pems.path("client.crt"),
            &pems.path("client.key"),
        ],
    )
    .await;
    assert_eq!(sorted(lines), expected_lines(2));
    let peer = within(peers.recv()).await.unwrap();
    assert_eq!(peer.certificates.len(), 1);
    assert_eq!(&peer.certificates[0][..], &client_id.cert_chain()[0][..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strand_client_against_js_server() {
    let identity = Identity::dev().unwrap();
    let pems = PemDir::new("jsserver", &[("server", &identity)]);
    let mut script = Script::start(
        "quic-echo-server.mjs",
        &[&pems.path("server.crt"), &pems.path("server.key")],
    );
    let listening = script.line().await;
    let port: u16 = listening
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {listening:?}"))
        .parse()
        .unwrap();
    let client = QuicClient::bind(
        "127.0.0.1:0".parse().unwrap(),
        QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec())),
    )
    .unwrap();
    let addr = ([127, 0, 0, 1], port).into();
    let conn = Arc::new(within(client.connect(addr, "localhost")).await.unwrap());
    assert_eq!(conn.alpn().as_deref(), Some(&b"quic"[..]));
    assert_eq!(
        &conn.peer_info().certificates[0][..],
        &identity.cert_chain()[0][..]
    );

    // Small messages on concurrent streams, and one 1 MiB payload that needs
    // flow-control updates from the JS side.
    let mut calls = Vec::new();
    for i in 0..6usize {
        let conn = conn.clone();
        calls.push(tokio::spawn(async move {
            let payload = if i == 5 {
                (0..1024 * 1024)
                    .map(|b| (b % 253) as u8)
                    .collect::<Vec<u8>>()
            } else {
                format!("quic hello {i}").into_bytes()
            };
            let (mut send, mut recv) = conn.open_stream().await.unwrap().split();
            send.write_all(&payload).await.unwrap();
            send.shutdown().await.unwrap();
            let (echo, err) = drain(&mut recv).await;
            assert!(err.is_none(), "stream {i}: {err:?}");
            assert_eq!(echo.len(), payload.len(), "stream {i}");
            assert!(echo == payload, "stream {i}: echo differs");
        }));
    }
    within(async {
        for c in calls {
            c.await.unwrap();
        }
    })
    .await;
    let mut echoed = Vec::new();
    for _ in 0..6 {
        echoed.push(script.line().await);
    }
    assert!(
        echoed.iter().all(|l| l.starts_with("echoed ")),
        "{echoed:?}"
    );
    let big = format!("echoed {} ", 1024 * 1024);
    assert!(echoed.iter().any(|l| l.starts_with(&big)), "{echoed:?}");

    // The write boundary: what was written before it reaches the JS reader as
    // a chunk of its own (JS RPC servers drop bytes that share the first chunk).
    let (mut send, mut recv) = conn.open_stream().await.unwrap().split();
    send.write_all(b"first message").await.unwrap();
    within(write_boundary(&mut send)).await.unwrap();
    send.write_all(b"then the rest").await.unwrap();
    send.shutdown().await.unwrap();
    let (echo, err) = within(drain(&mut recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(echo, b"first messagethen the rest");
    let line = script.line().await;
    let chunks = line
        .strip_prefix("echoed 26 chunks ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"));
    assert_eq!(chunks.split(',').next(), Some("13"), "first chunk: {line}");
    conn.close(CloseCode::Normal, "done");
    within(client.close()).await;
    drop(script.process.child.stdin.take());
    assert_eq!(script.exit_code().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_cancel_arrives_as_reset_and_stop_with_its_code() {
    let identity = Identity::dev().unwrap();
    let listener = QuicListener::bind("127.0.0.1:0", QuicServerConfig::new(identity))
        .await
        .unwrap();
    let port = listener.local_addr().port().to_string();
    let mut script = Script::start("quic-abort-client.mjs", &[&port]);
    let conn = within(listener.accept_connection()).await.unwrap();
    let mut stream = within(conn.accept_stream()).await.unwrap();
    let mut first = [0u8; 8];
    within(stream.recv.read_exact(&mut first)).await.unwrap();
    assert_eq!(&first, b"abort me");
    stream.send.write_all(b"r").await.unwrap();
    assert_eq!(script.line().await, "cancelled");
    assert_eq!(within(stopped(&mut stream.send)).await, 7);
    let (_, err) = within(drain(&mut stream.recv)).await;
    assert_eq!(
        StreamError::from_io(&err.expect("read must fail")),
        Some(&StreamError::Reset(7))
    );
    conn.close(CloseCode::Normal, "done");
    assert_eq!(script.line().await, "done");
    assert_eq!(script.exit_code().await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strand_reset_reaches_the_js_reader_with_its_code() {
    let identity = Identity::dev().unwrap();
    let pems = PemDir::new("jsabort", &[("server", &identity)]);
    let script = Script::start(
        "quic-echo-server.mjs",
        &[&pems.path("server.crt"), &pems.path("server.key")],
    );
    let listening = script.line().await;
    let port: u16 = listening
        .strip_prefix("listening ")
        .unwrap()
        .parse()
        .unwrap();
    let conn = within(strand_transport_quic::connect(
        ([127, 0, 0, 1], port).into(),
        "localhost",
        QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec())),
    ))
    .await
    .unwrap();
    let (mut send, recv) = conn.open_stream().await.unwrap().split();
    send.write_all(b"abort me").await.unwrap();
    within(write_boundary(&mut send)).await.unwrap();
    send.reset(5);
    assert_eq!(script.line().await, "stream-error read 5");
    drop(recv);
    conn.close(CloseCode::Normal, "done");
}
