//! `strand describe`, `strand call`'s params check against the described
//! schema, and `strand codegen ts`, end to end against `strand serve`; the
//! checked-in demo document and generated client are fresh
//! (docs/openrpc.md).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

use common::{run, stderr, stdout, BIN};

/// A `strand serve --ws 127.0.0.1:0 [args]`, killed on drop.
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

fn serve(args: &[&str]) -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--ws", "127.0.0.1:0"])
        .args(args)
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

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ts/examples")
}

/// The demo document as checked in: pretty JSON and a newline.
fn demo_document_text() -> String {
    serde_json::to_string_pretty(&strand::demo::document()).unwrap() + "\n"
}

#[test]
fn describe_prints_the_demo_document() {
    let served = serve(&[]);
    let out = run(&["describe", &served.url], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), demo_document_text());
}

#[test]
fn describe_table_lists_every_method() {
    let served = serve(&[]);
    let out = run(&["describe", &served.url, "--table"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["METHOD", "KIND", "PARAMS", "RESULT", "TIMEOUT", "SUMMARY"]
    );
    let rows: Vec<[&str; 4]> = lines[1..]
        .iter()
        .map(|l| [l[0], l[1], l[2], l[3]])
        .collect();
    assert_eq!(
        rows,
        [
            ["echo", "unary", "any", "any"],
            ["count", "server", "CountParams", "CountItem"],
            ["sum", "client", "SumParams", "SumResult"],
            ["chat", "duplex", "any", "any"],
            ["upper", "raw", "any", "UpperLead"],
            ["whoami", "unary", "any", "WhoAmI|null"],
            ["sleep", "unary", "SleepParams", "Slept"],
            ["stats", "unary", "any", "Stats"],
        ]
    );
}

#[test]
fn describe_needs_the_token_of_a_server_with_auth() {
    let served = serve(&["--token", "sesame"]);
    let out = run(&["describe", &served.url], b"");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("error: rpc.discover: ") && err.contains("-32020"),
        "{err}"
    );
    let out = run(&["describe", &served.url, "--token", "sesame"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), demo_document_text());
}

#[test]
fn call_checks_params_against_the_described_schema() {
    let served = serve(&[]);
    let out = run(&["call", &served.url, "sleep", r#"{"ms":"soon"}"#], b"");
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: params do not match the schema of `sleep` (rpc.discover): at /ms: expected integer, got string; --no-check sends them anyway\n"
    );
    let out = run(&["call", &served.url, "sleep", "{}"], b"");
    assert_eq!(
        stderr(&out),
        "error: params do not match the schema of `sleep` (rpc.discover): at /: missing required field `ms`; --no-check sends them anyway\n"
    );
    // Valid params go through.
    let out = run(&["call", &served.url, "sleep", r#"{"ms":1}"#], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"slept\":1}\n");
    // --no-check sends them: the server's own check answers.
    let out = run(
        &[
            "call",
            &served.url,
            "sleep",
            r#"{"ms":"soon"}"#,
            "--no-check",
        ],
        b"",
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("-32602"), "{}", stderr(&out));
}

#[test]
fn call_checks_every_stdin_message_of_a_client_stream() {
    let served = serve(&[]);
    let out = run(
        &["call", &served.url, "sum", "--kind", "client"],
        b"{\"x\":1}\n{\"x\":[2]}\n",
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: params do not match the schema of `sum` (rpc.discover): at /x: expected number, got array; --no-check sends them anyway\n"
    );
    let out = run(
        &["call", &served.url, "sum", "--kind", "client"],
        b"{\"x\":1}\n{\"x\":2}\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"sum\":3}\n");
}

#[test]
fn call_refuses_the_wrong_kind_of_a_described_method() {
    let served = serve(&[]);
    let out = run(&["call", &served.url, "count", r#"{"n":2}"#], b"");
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out),
        "error: `count` is described (rpc.discover) as kind `server`: call it with --kind server\n"
    );
}

#[test]
fn call_without_the_token_reports_the_call_not_the_description() {
    let served = serve(&["--token", "sesame"]);
    let out = run(&["call", &served.url, "echo", "{}"], b"");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("-32020") && !err.contains("rpc.discover"),
        "{err}"
    );
}

#[test]
fn codegen_reads_a_file_or_a_url() {
    let served = serve(&[]);
    let file = examples().join("demo.openrpc.json");
    let from_file = run(&["codegen", "ts", file.to_str().unwrap()], b"");
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    let from_url = run(&["codegen", "ts", &served.url], b"");
    assert!(from_url.status.success(), "{}", stderr(&from_url));
    assert_eq!(stdout(&from_file), stdout(&from_url));
    let missing = run(&["codegen", "ts", "no/such/file.json"], b"");
    assert!(!missing.status.success());
    assert!(stderr(&missing).starts_with("error: cannot read no/such/file.json"));
}

/// CI's freshness check: the checked-in example is what the demo service
/// describes now, and the checked-in client what codegen makes of it.
#[test]
fn checked_in_demo_document_and_client_are_fresh() {
    let doc_path = examples().join("demo.openrpc.json");
    let checked_in = std::fs::read_to_string(&doc_path).unwrap();
    assert!(
        checked_in == demo_document_text(),
        "{} is stale: regenerate it with `strand describe` of `strand serve` \
         (and the client with `strand codegen ts {0} -o clients/ts/examples/demo-client.ts`)",
        doc_path.display()
    );
    let out = run(&["codegen", "ts", doc_path.to_str().unwrap()], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let client_path = examples().join("demo-client.ts");
    assert!(
        stdout(&out) == std::fs::read_to_string(&client_path).unwrap(),
        "{} is stale: regenerate it with `strand codegen ts clients/ts/examples/demo.openrpc.json -o {0}`",
        client_path.display()
    );
}

/// The demo's router and document both come from its `#[strand::service]`
/// trait; `rpc.discover` aside, they list the same methods with the same kinds.
#[test]
fn demo_document_describes_exactly_the_routed_methods() {
    let document = strand::demo::document();
    let mut described: Vec<(String, String)> = document["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap().to_string();
            (name, m["x-strand-kind"].as_str().unwrap().to_string())
        })
        .collect();
    described.sort();
    let routed: Vec<(String, String)> = strand::demo::router()
        .methods()
        .into_iter()
        .filter(|(name, _)| name != strand::core::openrpc::DISCOVER_METHOD)
        .map(|(name, kind)| (name, strand::core::openrpc::kind_name(kind).to_string()))
        .collect();
    assert_eq!(described, routed);
}

/// A server whose `rpc.discover` never answers: `describe` gives up after
/// its `--timeout` with the reason, and `call --no-check` is not held up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_gives_up_on_a_server_that_never_answers() {
    let router = strand::Router::new()
        .unary("rpc.discover", |_ctx, _p: serde_json::Value| async {
            std::future::pending::<Result<serde_json::Value, strand::RpcError>>().await
        })
        .unary("echo", |_ctx, p: serde_json::Value| async move {
            Ok::<_, strand::RpcError>(p)
        });
    let server = strand::Server::builder(router).build();
    let listener = strand::Endpoint::from_url("ws://127.0.0.1:0")
        .unwrap()
        .bind()
        .await
        .unwrap();
    let url = listener.url();
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run(&["describe", &url, "--timeout", "200"], b"")
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    // The caller's timeout travels with the call, so the server's deadline
    // (−32008) and the CLI's own timer end it at the same moment: either
    // may be the one reported, both say the call timed out.
    assert!(
        err.starts_with("error: rpc.discover: call timed out after 200ms")
            || err.starts_with("error: rpc.discover: remote error -32008: call timed out"),
        "{err}"
    );
    let out =
        tokio::task::spawn_blocking(move || run(&["call", &url, "echo", "{}", "--no-check"], b""))
            .await
            .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    server.shutdown(Duration::from_millis(100)).await;
    serving.abort();
}
