//! End-to-end tests of the `strand` binary: `serve`, `call` for every kind
//! over every transport, `demo`, and the one-line failures.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;

use common::{run, stderr, stdout, BIN};

/// A `strand serve` process, killed on drop.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    cert: Option<PathBuf>,
    urls: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killed, serve cannot remove its certificate: do it here.
        if let Some(cert) = &self.cert {
            let _ = std::fs::remove_file(cert);
            if let Some(dir) = cert.parent().filter(|d| *d != std::env::temp_dir()) {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn strand serve");
    let lines = strand_test_support::js::stdout_lines(&mut child);
    let mut served = Served {
        child,
        lines,
        cert: None,
        urls: Vec::new(),
    };
    let expected = ["--ws", "--wss", "--quic"]
        .iter()
        .filter(|flag| args.contains(flag))
        .count();
    let expected = if expected == 0 { 3 } else { expected };
    while served.urls.len() < expected {
        let line = served
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed its listening lines");
        if let Some(path) = line.strip_prefix("certificate ") {
            served.cert = Some(PathBuf::from(path));
        } else if let Some(url) = line.strip_prefix("listening ") {
            served.urls.push(url.to_string());
        } else {
            panic!("unexpected line from serve: {line:?}");
        }
    }
    served
}

/// Calls `args` and expects success with exactly `expected` on stdout.
fn call_ok(url: &str, cert: &str, args: &[&str], stdin: &[u8], expected: &str) {
    let mut full = vec!["call", url];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--ca", cert, "--token", "sesame", "--timeout", "10000"]);
    let out = run(&full, stdin);
    assert!(out.status.success(), "{full:?} failed: {}", stderr(&out));
    assert_eq!(stdout(&out), expected, "{full:?}");
}

#[test]
fn serve_then_call_every_kind_over_every_transport() {
    let served = serve(&[
        "--ws",
        "127.0.0.1:0",
        "--wss",
        "127.0.0.1:0",
        "--quic",
        "127.0.0.1:0",
        "--token",
        "sesame",
    ]);
    let cert = served.cert.clone().expect("a generated certificate path");
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let cert = cert.to_str().unwrap().to_string();
    for (url, scheme) in
        served
            .urls
            .iter()
            .zip(["ws://127.0.0.1:", "wss://127.0.0.1:", "quic://127.0.0.1:"])
    {
        assert!(url.starts_with(scheme) && !url.ends_with(":0"), "{url}");
    }
    for url in &served.urls {
        call_ok(
            url,
            &cert,
            &["echo", r#"{"a":[1,"x"]}"#],
            b"",
            "{\"a\":[1,\"x\"]}\n",
        );
        call_ok(
            url,
            &cert,
            &["count", r#"{"n":3}"#, "--kind", "server"],
            b"",
            "{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n",
        );
        call_ok(
            url,
            &cert,
            &["sum", "--kind", "client"],
            b"{\"x\":1}\n\n{\"x\":2}\n{\"x\":39}\n",
            "{\"sum\":42}\n",
        );
        call_ok(
            url,
            &cert,
            &["chat", r#"{"m":0}"#, "--kind", "duplex"],
            b"{\"m\":1}\n{\"m\":2}\n",
            "{\"m\":0}\n{\"m\":1}\n{\"m\":2}\n",
        );
        call_ok(
            url,
            &cert,
            &["upper", "--kind", "raw"],
            b"hello, raw bytes\n",
            "{\"ok\":true}\nHELLO, RAW BYTES\n",
        );
        call_ok(
            url,
            &cert,
            &["whoami"],
            b"",
            "{\"attributes\":{\"auth\":\"bearer\"},\"name\":\"demo\"}\n",
        );
        call_ok(
            url,
            &cert,
            &["sleep", r#"{"ms":1}"#],
            b"",
            "{\"slept\":1}\n",
        );

        // A deadline shorter than the sleep: one line, non-zero.
        let out = run(
            &[
                "call",
                url,
                "sleep",
                r#"{"ms":30000}"#,
                "--ca",
                &cert,
                "--token",
                "sesame",
                "--timeout",
                "100",
            ],
            b"",
        );
        assert!(!out.status.success());
        assert!(stdout(&out).is_empty());
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));

        // Without the token the call is refused.
        let out = run(&["call", url, "echo", "--ca", &cert], b"");
        assert!(!out.status.success());
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("-32020"), "{}", stderr(&out));

        // An unknown method: one line, non-zero.
        let out = run(
            &["call", url, "nope", "--ca", &cert, "--token", "sesame"],
            b"",
        );
        assert!(!out.status.success());
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("method not found"),
            "{}",
            stderr(&out)
        );
    }

    // --insecure skips verification; without --ca or --insecure a self-signed
    // server is refused.
    let wss = &served.urls[1];
    let out = run(
        &["call", wss, "echo", "{}", "--insecure", "--token", "sesame"],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{}\n");
    let out = run(&["call", wss, "echo", "{}", "--token", "sesame"], b"");
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    // Metadata needs object params.
    let out = run(
        &["call", wss, "echo", "1", "--insecure", "--token", "sesame"],
        b"",
    );
    assert!(!out.status.success());
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn serve_shuts_down_on_sigterm_and_removes_its_certificate() {
    let mut served = serve(&["--quic", "127.0.0.1:0", "--grace", "1000"]);
    let cert = served.cert.clone().unwrap();
    assert!(cert.exists());
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = mpsc::channel();
    let mut child = std::mem::replace(&mut served.child, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve exited after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        !cert.exists(),
        "the generated certificate is removed on exit"
    );
}

#[test]
fn serve_ws_only_writes_no_certificate() {
    let served = serve(&["--ws", "127.0.0.1:0"]);
    assert!(served.cert.is_none());
    assert_eq!(served.urls.len(), 1);
    let out = run(&["call", &served.urls[0], "echo", r#""plain""#], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "\"plain\"\n");
}

#[test]
fn demo_exits_zero_with_a_full_table() {
    let out = run(&["demo"], b"");
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let table = stdout(&out);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["kind", "memory", "ws", "wss", "quic"]
    );
    for kind in ["unary", "server", "client", "duplex", "raw", "deadline"] {
        let row = lines.next().unwrap();
        assert!(row.starts_with(kind), "{row}");
        assert_eq!(row.matches("ok").count(), 4, "{row}");
    }
    assert!(table.contains("all 24 checks ok"), "{table}");
}

#[test]
fn bad_input_prints_one_line_and_fails() {
    for args in [
        &["call", "ftp://127.0.0.1:1", "echo"][..],
        &["call", "quic://127.0.0.1", "echo"],
        &["call", "ws://127.0.0.1:1", "echo", "{not json"],
        &["serve", "--ws", "nonsense://x"],
    ] {
        let out = run(args, b"");
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

#[test]
fn refused_connection_prints_one_line_and_fails() {
    // Bind and drop a listener to get a port with nobody behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = run(&["call", &format!("ws://127.0.0.1:{port}"), "echo"], b"");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn duplex_call_ends_on_a_server_error_without_waiting_for_stdin() {
    let served = serve(&["--ws", "127.0.0.1:0"]);
    let mut child = Command::new(BIN)
        .args(["call", &served.urls[0], "nope", "{}", "--kind", "duplex"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep stdin open: the call must end on the server's answer alone.
    let stdin = child.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the call ended while stdin was still open")
        .unwrap();
    drop(stdin);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("method not found"), "{err}");
}

#[test]
fn a_huge_timeout_is_refused_in_one_line() {
    let served = serve(&["--ws", "127.0.0.1:0"]);
    let out = run(
        &[
            "call",
            &served.urls[0],
            "echo",
            "{}",
            "--timeout",
            "18446744073709551615",
        ],
        b"",
    );
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("at most"),
        "{err}"
    );
}

/// The dev certificate sits in a fresh private directory of the temp dir
/// with an unpredictable name (so nobody can plant or swap it first), the
/// file itself readable by its owner only; both go on exit.
#[cfg(unix)]
#[test]
fn serve_writes_its_certificate_privately_and_removes_it() {
    use std::os::unix::fs::PermissionsExt;
    let mut served = serve(&["--quic", "127.0.0.1:0", "--grace", "1000"]);
    let other = serve(&["--quic", "127.0.0.1:0", "--grace", "1000"]);
    let cert = served.cert.clone().unwrap();
    let dir = cert.parent().unwrap().to_path_buf();
    assert_eq!(dir.parent().unwrap(), std::env::temp_dir(), "{cert:?}");
    assert_ne!(dir, other.cert.clone().unwrap().parent().unwrap());
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let random = name.rsplit('-').next().unwrap();
    assert!(
        random.len() >= 32 && random.chars().all(|c| c.is_ascii_hexdigit()),
        "{name}: no random part"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{dir:?}");
    assert_eq!(mode(&cert), 0o600, "{cert:?}");
    assert!(std::fs::read_to_string(&cert)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));

    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = mpsc::channel();
    let mut child = std::mem::replace(&mut served.child, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve exited after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!cert.exists() && !dir.exists(), "{dir:?} is left behind");
}

/// A plain HTTP/1.1 `GET path` to `addr`; the whole answer.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read the answer");
    answer
}

#[test]
fn serve_answers_get_demo_with_the_page_and_keeps_426_on_the_websocket_path() {
    let served = serve(&["--ws", "127.0.0.1:0"]);
    let addr = served.urls[0].strip_prefix("ws://").unwrap().to_string();
    let line = served
        .lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the demo line");
    assert_eq!(line, format!("demo http://{addr}/demo"));

    let page = http_get(&addr, "/demo");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(
        page.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
        "{page}"
    );
    assert!(page.contains("<title>strand in the browser</title>"));
    assert!(page.contains("/demo/strand-client.min.js"));
    let script = http_get(&addr, "/demo/strand-client.min.js");
    assert!(script.starts_with("HTTP/1.1 200 OK\r\n"), "{script}");
    assert!(script.contains("\r\nContent-Type: text/javascript; charset=utf-8\r\n"));
    assert!(script.contains("export{"), "an ES module");

    for path in ["/", "/other"] {
        let plain = http_get(&addr, path);
        assert!(plain.starts_with("HTTP/1.1 426 "), "{path}: {plain}");
    }
    // The WebSocket still works beside the page.
    let out = run(
        &["call", &served.urls[0], "echo", r#"{"after":"page"}"#],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"after\":\"page\"}\n");
}

#[test]
fn serve_with_a_refresh_token_accepts_both_and_tells_them_apart() {
    let served = serve(&[
        "--ws",
        "127.0.0.1:0",
        "--token",
        "sesame",
        "--refresh-token",
        "fresh",
    ]);
    let url = &served.urls[0];
    for (token, name) in [("sesame", "demo"), ("fresh", "refreshed")] {
        let out = run(&["call", url, "whoami", "--token", token], b"");
        assert!(out.status.success(), "{}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(answer["name"], name, "{answer}");
        // Every accepted call hands the fresh token back.
        assert_eq!(
            answer["metadata"]["authorization"], "Bearer fresh",
            "{answer}"
        );
    }
    let out = run(&["call", url, "whoami", "--token", "stale"], b"");
    assert!(!out.status.success());
}

/// SIGTERM drains: a connected strand client is told to go away at once,
/// its running call finishes, and the connection closes going away (1001).
#[cfg(unix)]
#[test]
fn serve_drains_on_sigterm() {
    use serde_json::{json, Value};
    use strand::core::transport::CloseCode;

    let mut served = serve(&["--ws", "127.0.0.1:0", "--grace", "5000"]);
    let url = served.urls[0].clone();
    let pid = served.child.id().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let client = strand::Endpoint::from_url(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let conn = client.connection().clone();
        let call = tokio::spawn(async move {
            client
                .unary::<_, Value>("sleep", &json!({"ms": 1000}))
                .await
        });
        // The call is on its way; then the deploy signal.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), conn.going_away())
            .await
            .expect("the go-away notice arrived");
        assert!(!call.is_finished(), "the notice comes before the call ends");
        let out = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the running call finished")
            .unwrap()
            .unwrap();
        assert_eq!(out, json!({"slept": 1000}));
        let reason = tokio::time::timeout(Duration::from_secs(10), conn.closed())
            .await
            .expect("the connection closed");
        assert_eq!(reason.code, CloseCode::GoingAway, "{reason}");
    });
    let (tx, rx) = mpsc::channel();
    let mut child = std::mem::replace(&mut served.child, Command::new("true").spawn().unwrap());
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve exited after the drain")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
