//! `strand serve --metrics`: the Prometheus endpoint answers, and its
//! counters move by exactly the calls and connections made between two
//! scrapes (docs/deploy.md, "Metrics").

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_strand");

/// A `strand serve` process, killed on drop.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `strand serve` process and what it printed.
struct Serving {
    _served: Served,
    /// The listeners' URLs, in the order printed.
    urls: Vec<String>,
    /// The metrics address (host:port).
    metrics: String,
    /// The generated certificate's path (with a TLS listener).
    cert: Option<String>,
}

/// Starts `strand serve --ws 127.0.0.1:0 --metrics 127.0.0.1:0`; the ws URL
/// and the metrics address (host:port) it printed.
fn serve() -> (Served, String, String) {
    let serving = serve_with(&["--ws", "127.0.0.1:0"], 1);
    let url = serving.urls[0].clone();
    (serving._served, url, serving.metrics)
}

/// Starts `strand serve LISTENERS --metrics 127.0.0.1:0` and reads its
/// lines until it printed `listeners` URLs and the metrics address.
fn serve_with(args: &[&str], listeners: usize) -> Serving {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .args(["--metrics", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn strand serve");
    let lines = strand_test_support::js::stdout_lines(&mut child);
    let served = Served(child);
    let (mut urls, mut metrics, mut cert) = (Vec::new(), None, None);
    while urls.len() < listeners || metrics.is_none() {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("serve printed its listening and metrics lines");
        if let Some(u) = line.strip_prefix("listening ") {
            urls.push(u.to_string());
        } else if let Some(c) = line.strip_prefix("certificate ") {
            cert = Some(c.to_string());
        } else if let Some(m) = line.strip_prefix("metrics ") {
            let addr = m
                .strip_prefix("http://")
                .and_then(|m| m.strip_suffix("/metrics"))
                .unwrap_or_else(|| panic!("metrics line: {line:?}"));
            metrics = Some(addr.to_string());
        }
    }
    Serving {
        _served: served,
        urls,
        metrics: metrics.unwrap(),
        cert,
    }
}

/// `strand call URL args --no-check`, bounded; its output.
fn call(url: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(["call", url])
        .args(args)
        .arg("--no-check")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn strand call");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("strand call finished within 60 s")
        .unwrap()
}

/// One scrape: every sample, keyed `name{labels sorted}`.
fn scrape(addr: &str) -> BTreeMap<String, f64> {
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect to the metrics listener");
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(tcp, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value`");
            (normalize(series), value.parse().expect("a number"))
        })
        .collect()
}

/// `name{b="2",a="1"}` → `name{a="1",b="2"}`: label order is the
/// exporter's to choose.
fn normalize(series: &str) -> String {
    let Some((name, labels)) = series.split_once('{') else {
        return series.to_string();
    };
    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
    labels.sort_unstable();
    format!("{name}{{{}}}", labels.join(","))
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(&normalize(series)).copied().unwrap_or(0.0)
}

#[test]
fn serve_metrics_count_connections_and_calls_by_method_and_outcome() {
    let (_served, url, metrics) = serve();
    let before = scrape(&metrics);

    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    ok(call(&url, &["echo", r#"{"a":1}"#], b""));
    ok(call(&url, &["echo", r#"{"a":2}"#], b""));
    ok(call(
        &url,
        &["count", r#"{"n":3}"#, "--kind", "server"],
        b"",
    ));
    ok(call(
        &url,
        &["sum", "--kind", "client"],
        b"{\"x\":1}\n{\"x\":2}\n",
    ));
    ok(call(
        &url,
        &["chat", "{}", "--kind", "duplex"],
        b"{\"m\":1}\n",
    ));
    ok(call(&url, &["upper", "--kind", "raw"], b"bytes\n"));
    // Ends with an error: an unknown method is counted under one label.
    let out = call(&url, &["no.such.method"], b"");
    assert!(!out.status.success());
    // Params of the wrong type: answered −32602, counted under its method.
    // (A call past its deadline is not made here: the CLI's timer and the
    // server's deadline fire together, so its outcome may be `cancelled`;
    // rpc-core/tests/metrics.rs counts `timeout` deterministically.)
    let out = call(&url, &["sleep", r#"{"ms":"long"}"#], b"");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-32602"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let connections = 8.0;

    // The last connection's end is seen by the server a moment after the
    // CLI exits: wait (bounded) until every connection is closed again.
    let open = r#"strand_connections_open{transport="ws"}"#;
    let mut after = scrape(&metrics);
    for _ in 0..100 {
        if value(&after, open) == value(&before, open) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        after = scrape(&metrics);
    }
    let delta = |series: &str| value(&after, series) - value(&before, series);

    assert_eq!(value(&after, open), value(&before, open), "{after:#?}");
    assert_eq!(
        delta(r#"strand_connections_accepted_total{transport="ws"}"#),
        connections
    );
    let finished = [
        (r#"method="echo",kind="unary",outcome="ok""#, 2.0),
        (r#"method="count",kind="server",outcome="ok""#, 1.0),
        (r#"method="sum",kind="client",outcome="ok""#, 1.0),
        (r#"method="chat",kind="duplex",outcome="ok""#, 1.0),
        (r#"method="upper",kind="raw",outcome="ok""#, 1.0),
        (r#"method="unknown",kind="unknown",outcome="error""#, 1.0),
        (r#"method="sleep",kind="unary",outcome="error""#, 1.0),
    ];
    for (labels, n) in finished {
        assert_eq!(
            delta(&format!("strand_calls_finished_total{{{labels}}}")),
            n,
            "{labels}: {after:#?}"
        );
    }
    assert_eq!(
        delta(r#"strand_calls_started_total{method="echo",kind="unary"}"#),
        2.0
    );
    assert_eq!(
        delta(r#"strand_calls_started_total{method="unknown",kind="unknown"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"strand_call_duration_seconds_count{method="echo",outcome="ok"}"#),
        2.0
    );
    // Nothing else was called: the total of calls started moved by 8.
    let total = |samples: &BTreeMap<String, f64>| -> f64 {
        samples
            .iter()
            .filter(|(k, _)| k.starts_with("strand_calls_started_total{"))
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(total(&after) - total(&before), 8.0);
    assert_eq!(value(&after, "strand_streams_open"), 0.0);
    assert_eq!(value(&after, "strand_server_draining"), 0.0);
}

#[test]
fn serve_metrics_answers_404_off_its_path() {
    let (_served, _url, metrics) = serve();
    let mut tcp = std::net::TcpStream::connect(&metrics).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(tcp, "GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
}

#[test]
fn serve_metrics_count_bytes_in_and_out_by_transport() {
    let serving = serve_with(&["--ws", "127.0.0.1:0", "--quic", "127.0.0.1:0"], 2);
    let cert = serving.cert.clone().expect("quic needs a certificate");
    let before = scrape(&serving.metrics);
    // One echo of 20,000 characters on each transport: its bytes go in and
    // come back out.
    let payload = format!("\"{}\"", "x".repeat(20_000));
    for url in &serving.urls {
        let out = call(url, &["echo", &payload, "--ca", &cert], b"");
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The server adds QUIC's bytes once a second (ws's as they pass):
    // wait (bounded) for the counters.
    let series = |dir: &str, transport: &str| {
        format!(r#"strand_bytes_{dir}_total{{transport="{transport}"}}"#)
    };
    let moved = |after: &BTreeMap<String, f64>, dir: &str, transport: &str| {
        value(after, &series(dir, transport)) - value(&before, &series(dir, transport))
    };
    let all_moved = |after: &BTreeMap<String, f64>| {
        ["received", "sent"].iter().all(|dir| {
            ["ws", "quic"]
                .iter()
                .all(|transport| moved(after, dir, transport) >= 20_000.0)
        })
    };
    let mut after = scrape(&serving.metrics);
    for _ in 0..200 {
        if all_moved(&after) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        after = scrape(&serving.metrics);
    }
    for dir in ["received", "sent"] {
        for transport in ["ws", "quic"] {
            let n = moved(&after, dir, transport);
            assert!(n >= 20_000.0, "{dir} over {transport}: {n}: {after:#?}");
            // Not wildly more than one call's worth either (the handshake
            // and framing add a few KiB).
            assert!(n < 200_000.0, "{dir} over {transport}: {n}");
        }
    }
}
