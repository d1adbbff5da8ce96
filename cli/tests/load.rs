//! `strand load` against `strand serve`: every call kind, the `--json`
//! summary, errors counted by kind, and the one-line failures.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_strand");

/// `strand serve --ws` on an ephemeral loopback port, killed on drop.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--ws", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn strand serve");
    let lines = strand_test_support::js::stdout_lines(&mut child);
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed its listening line");
    let url = line
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected line from serve: {line:?}"))
        .to_string();
    Served { child, url }
}

fn load(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("load")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strand load")
}

/// The `--json` summary: exactly one line, one JSON object.
fn summary(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one summary line: {stdout:?}");
    serde_json::from_str(lines[0]).expect("the summary is JSON")
}

fn assert_clean_run(output: &Output, kind: &str) -> Value {
    let s = summary(output);
    assert!(
        output.status.success(),
        "{kind}: {s} / {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(s["kind"], kind);
    assert_eq!(s["errors"], 0, "{kind}: {s}");
    assert_eq!(s["error_kinds"], serde_json::json!({}), "{kind}: {s}");
    let calls = s["calls"].as_u64().expect("calls");
    assert!(calls > 0, "{kind}: {s}");
    assert_eq!(s["ok"].as_u64(), Some(calls), "{kind}: {s}");
    let latency = &s["latency_us"];
    let p50 = latency["p50"].as_u64().expect("p50");
    let p90 = latency["p90"].as_u64().expect("p90");
    let p99 = latency["p99"].as_u64().expect("p99");
    let max = latency["max"].as_u64().expect("max");
    assert!(p50 <= p90 && p90 <= p99 && p99 <= max, "{kind}: {s}");
    s
}

/// A run in which every call failed, all with the error kind `kind`.
fn assert_every_call_failed(output: &Output, kind: &str) {
    assert!(!output.status.success());
    let s = summary(output);
    let calls = s["calls"].as_u64().expect("calls");
    assert!(calls > 0, "{s}");
    assert_eq!(s["errors"].as_u64(), Some(calls), "{s}");
    assert_eq!(s["ok"], 0);
    assert_eq!(s["error_kinds"][kind].as_u64(), Some(calls), "{s}");
    assert!(s["latency_us"]["p50"].is_null(), "{s}");
}

#[test]
fn every_kind_runs_against_serve_with_checked_results() {
    let served = serve();
    let url = served.url.as_str();
    let runs: [(&str, &str, Option<&str>, &str); 5] = [
        ("unary", "echo", Some(r#"{"hello":"strand"}"#), "unary"),
        ("server", "count", Some(r#"{"n":4}"#), "server"),
        (
            "client",
            "sum",
            Some(r#"[{"x":1},{"x":2},{"x":3.5}]"#),
            "client",
        ),
        (
            "duplex",
            "chat",
            Some(r#"[{"m":0},{"m":1},{"m":2}]"#),
            "duplex",
        ),
        ("raw", "upper", None, "raw"),
    ];
    for (kind, method, json, expected_kind) in runs {
        let mut args = vec![url, method];
        args.extend(json);
        args.extend([
            "--kind",
            kind,
            "--concurrency",
            "2",
            "--connections",
            "2",
            "--duration",
            "300ms",
            "--check",
            "--json",
        ]);
        let output = load(&args);
        let s = assert_clean_run(&output, expected_kind);
        assert_eq!(s["method"], method);
        assert_eq!(s["concurrency"], 2);
        assert_eq!(s["connections"], 2);
    }
}

#[test]
fn the_reconnecting_client_runs_and_checks_results() {
    let served = serve();
    let output = load(&[
        &served.url,
        "count",
        r#"{"n":3}"#,
        "--kind",
        "server",
        "--duration",
        "300ms",
        "--reconnect",
        "--json",
    ]);
    let s = assert_clean_run(&output, "server");
    assert_eq!(s["reconnect"], true);
}

#[test]
fn failed_calls_are_counted_by_kind_and_the_exit_status_says_so() {
    let served = serve();
    // `count` wants `{"n": number}`: every call fails with invalid params.
    let output = load(&[
        &served.url,
        "count",
        r#"{"n":"three"}"#,
        "--kind",
        "server",
        "--duration",
        "200ms",
        "--concurrency",
        "1",
        "--json",
    ]);
    assert_every_call_failed(&output, "remote_-32602");
}

#[test]
fn refused_raw_calls_count_the_servers_error_not_the_stopped_write() {
    let served = serve();
    // The bytes follow the header at once; 1 MB is past what the server
    // takes in before it refuses the unknown method and stops reading, so
    // the write fails too. Each call must count as the server's -32601.
    let output = load(&[
        &served.url,
        "no_such_method",
        "--kind",
        "raw",
        "--raw-bytes",
        "1000000",
        "--duration",
        "200ms",
        "--concurrency",
        "2",
        "--json",
    ]);
    assert_every_call_failed(&output, "remote_-32601");
}

#[test]
fn the_text_summary_names_calls_latency_and_errors() {
    let served = serve();
    let output = load(&[&served.url, "echo", "[1]", "--duration", "200ms"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("calls    "), "{stdout}");
    assert!(stdout.contains(" 0 errors)"), "{stdout}");
    assert!(stdout.contains("calls/s"), "{stdout}");
    assert!(stdout.contains("latency  p50 "), "{stdout}");
}

#[test]
fn a_wrong_url_fails_with_one_line() {
    // Port 1 on loopback: nothing listens there.
    let output = load(&["ws://127.0.0.1:1", "echo", "--duration", "1s"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot connect to ws://127.0.0.1:1"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let output = load(&["not a url", "echo"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: "));
}

#[test]
fn a_bad_duration_is_refused_with_the_reason() {
    let output = load(&["ws://127.0.0.1:1", "echo", "--duration", "10x"]);
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown unit `x`"), "{stderr}");
}
