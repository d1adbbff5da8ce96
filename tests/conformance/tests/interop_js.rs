//! The interop matrix with the real JS stack: `@matrixai/rpc` 0.5.1 over
//! `@matrixai/ws` 1.1.7 (wss) and `@matrixai/quic` 2.0.9, in both
//! directions (JS client → strand server, strand client → JS server).
//!
//! The JS side lives in `tests/js/rpc-*.mjs`. A JS client runs every case
//! in turn and prints `ok <case> <detail>` / `fail <case> <reason>`; a JS
//! server prints `cancelled <method>` when a handler sees its call cancelled.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{eventually, read_pattern, within, write_pattern};
use futures_util::StreamExt;
use serde_json::{json, Value};
use strand_rpc_core::middleware::{AuthLayer, BearerTokens, Credentials, Verified, Verifier};
use strand_rpc_core::server::{RawBody, RawReader, Router, Server};
use strand_rpc_core::transport::DynConnection;
use strand_rpc_core::{Client, ClientConfig, ClientError, Context, RpcError};
use strand_test_support::js::{node, NodeProcess};
use strand_tls::{ClientTls, Identity, ServerTls, ServerVerification};
use strand_transport_quic::{
    QuicClient, QuicClientConfig, QuicConfig, QuicListener, QuicServerConfig,
};
use strand_transport_ws::{
    connect, Budget, FloodLimits, WsClientConfig, WsConfig, WsListener, WsServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The idle timeout both sides use (`IDLE_MS` in rpc-common.mjs); strand
/// pings well inside it.
const IDLE: Duration = Duration::from_millis(2000);
const KEEP_ALIVE: Duration = Duration::from_millis(300);

/// A node process whose stdout lines arrive through a channel.
struct Script {
    _process: NodeProcess,
    lines: mpsc::Receiver<String>,
}

impl Script {
    fn start(script: &str, args: &[&str], first_line: &Value) -> Script {
        let mut process = node(script, args);
        let lines = strand_test_support::js::stdout_lines(&mut process.child);
        let stdin = process.child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{first_line}").unwrap();
        stdin.flush().unwrap();
        Script {
            _process: process,
            lines,
        }
    }

    /// The next stdout line; panics after 90 s or at EOF.
    async fn line(&self) -> String {
        for _ in 0..9000 {
            match self.lines.try_recv() {
                Ok(line) => return line,
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("the script ended without more output")
                }
            }
        }
        panic!("no output from the script within 90 s");
    }

    /// Waits up to `wait` for `want`, skipping other lines; false if it did
    /// not come.
    async fn saw_within(&self, want: &str, wait: Duration) -> bool {
        let polls = wait.as_millis() / 10;
        for _ in 0..polls {
            match self.lines.try_recv() {
                Ok(line) if line == want => return true,
                Ok(line) => eprintln!("js: {line}"),
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("the script ended without more output")
                }
            }
        }
        false
    }

    /// Reads lines until `want`; returns the lines skipped on the way.
    async fn expect(&self, want: &str) -> Vec<String> {
        let mut skipped = Vec::new();
        loop {
            let line = self.line().await;
            if line == want {
                return skipped;
            }
            eprintln!("js: {line}");
            skipped.push(line);
        }
    }

    /// The lines up to `done` (or a failure of the script as a whole).
    async fn until_done(&self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let line = self.line().await;
            if line == "done" || line == "fail timeout" {
                out.push(line);
                return out;
            }
            out.push(line);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Carrier {
    Ws,
    Quic,
}

impl Carrier {
    fn name(self) -> &'static str {
        match self {
            Carrier::Ws => "ws",
            Carrier::Quic => "quic",
        }
    }
}

/// Cancellations the strand handlers saw.
#[derive(Default)]
struct Probe {
    slow: AtomicUsize,
    hang_stream: AtomicUsize,
}

fn watch(ctx: &Context, counter: impl Fn() + Send + 'static) {
    let cancelled = ctx.cancelled();
    tokio::spawn(async move {
        cancelled.await;
        counter();
    });
}

/// The strand twin of the JS service in rpc-common.mjs.
fn router(probe: Arc<Probe>) -> Router {
    let (p1, p2) = (probe.clone(), probe);
    common::streaming_kinds()
        .unary("echo", |_ctx, p: Value| async move {
            let mut p = p;
            if let Value::Object(map) = &mut p {
                map.remove("metadata");
                map.insert("echoed".into(), json!(true));
            }
            Ok::<_, RpcError>(p)
        })
        .unary("whoami", |ctx: Context, _p: Value| async move {
            Ok::<_, RpcError>(json!({ "identity": ctx.identity().map(|i| i.name.clone()) }))
        })
        .unary("fail", |_ctx, _p: Value| async move {
            Err::<Value, _>(
                RpcError::handler("TypeError", "handler exploded")
                    .with_data(json!({ "detail": 42 })),
            )
        })
        .unary("slow", move |ctx: Context, _p: Value| {
            let probe = p1.clone();
            async move {
                watch(&ctx, move || {
                    probe.slow.fetch_add(1, Ordering::SeqCst);
                });
                std::future::pending::<()>().await;
                Ok::<Value, RpcError>(Value::Null)
            }
        })
        .server_streaming("hangStream", move |ctx: Context, _p: Value| {
            let probe = p2.clone();
            watch(&ctx, move || {
                probe.hang_stream.fetch_add(1, Ordering::SeqCst);
            });
            futures_util::stream::once(async { Ok::<_, RpcError>(json!({ "i": 0 })) })
                .chain(futures_util::stream::pending())
        })
        .raw("rawUpper", |_ctx, p: Value, reader: RawReader| async move {
            let body = tokio_util::io::ReaderStream::new(reader)
                .map(|chunk| chunk.map(|b| Bytes::from(b.to_ascii_uppercase())));
            Ok::<_, RpcError>((json!({ "accepted": p["mode"] }), RawBody::from_stream(body)))
        })
        .raw("rawEcho", |_ctx, _p: Value, reader: RawReader| async move {
            Ok::<_, RpcError>((json!({ "echoing": true }), RawBody::from_reader(reader)))
        })
}

/// Accepts `let-me-in` and hands back `fresh-token`, like the JS server.
struct RefreshingTokens(BearerTokens);

#[async_trait]
impl Verifier for RefreshingTokens {
    async fn verify(&self, credentials: Credentials, ctx: &Context) -> Result<Verified, RpcError> {
        Ok(self
            .0
            .verify(credentials, ctx)
            .await?
            .with_refreshed_token("fresh-token"))
    }
}

fn ws_config() -> WsConfig {
    WsConfig::default()
        .with_keep_alive_interval(Some(KEEP_ALIVE))
        .with_idle_timeout(Some(IDLE))
}

fn quic_transport() -> QuicConfig {
    let mut t = QuicConfig::default();
    t.keep_alive_interval = Some(KEEP_ALIVE);
    t.idle_timeout = Some(IDLE);
    // A JS server drops whatever reaches it before it has parsed a call's
    // first message (docs/protocol.md, "Write boundary"). A 1 ms wait (the
    // default at the time) after that message lost the next one in about one client-streaming call in fifty
    // on a loaded two-core machine; 20 ms lost none.
    t.write_boundary_min = Duration::from_millis(20);
    t
}

/// Every case of rpc-client.mjs against a strand server.
async fn js_client_against_strand_server(carrier: Carrier) {
    let identity = Identity::dev().unwrap();
    let probe = Arc::new(Probe::default());
    let server = Server::builder(router(probe.clone()))
        .layer(AuthLayer::new(RefreshingTokens(
            BearerTokens::new().token("let-me-in", "alice"),
        )))
        .build();
    let port = match carrier {
        Carrier::Ws => {
            let config = WsServerConfig::default()
                .with_tls(ServerTls::new(identity.clone()))
                .with_transport(ws_config());
            let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
            let port = listener.local_addr().port();
            let server = server.clone();
            tokio::spawn(async move { server.serve(listener).await });
            port
        }
        Carrier::Quic => {
            let config = QuicServerConfig::new(identity.clone()).with_transport(quic_transport());
            let listener = QuicListener::bind("127.0.0.1:0", config).await.unwrap();
            let port = listener.local_addr().port();
            let server = server.clone();
            tokio::spawn(async move { server.serve(listener).await });
            port
        }
    };
    let script = Script::start(
        "rpc-client.mjs",
        &[carrier.name(), &port.to_string()],
        &json!({ "ca": identity.cert_pem() }),
    );
    let out = script.until_done().await;
    for line in &out {
        eprintln!("js client: {line}");
    }
    let get = |case: &str| -> String {
        let prefix = format!("ok {case} ");
        out.iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("case {case} did not pass: {out:#?}"))
            .to_string()
    };
    assert_eq!(get("unary"), "world");
    assert_eq!(get("serverStream"), "0,1,2");
    assert_eq!(get("clientStream"), "6");
    assert_eq!(get("duplex"), "re:a,re:b");
    assert_eq!(get("raw"), "RAW_BYTES_HERE");
    // The JS client rebuilt the TypeError from strand's `data` shape.
    assert_eq!(get("handlerError"), "ErrorRPCRemote TypeError");
    // js-rpc hands a `data` without `type` through as a plain object: the
    // −32601 of strand's answer is its `code`.
    let unknown: Value = serde_json::from_str(&get("unknownMethod")).unwrap();
    assert_eq!(unknown["code"], -32601, "{unknown}");
    let timeout: Value = serde_json::from_str(&get("timeout")).unwrap();
    // Either the JS client's own timer won, or strand's −32008 arrived first.
    assert!(
        timeout["name"] == "ErrorRPCTimedOut" || timeout["code"] == -32008,
        "{timeout}"
    );
    let auth = get("auth");
    assert!(auth.starts_with("refreshed=fresh-token "), "{auth}");
    assert_eq!(auth.matches("-32020").count(), 2, "{auth}");
    assert_eq!(get("cancel"), "sent");
    assert_eq!(get("big"), (8 << 20).to_string());
    assert_eq!(get("burst"), "50");
    assert_eq!(get("manyUnary"), "300");
    assert_eq!(get("keepalive"), "5000ms");
    assert_eq!(out.last().map(String::as_str), Some("done"), "{out:#?}");
    // The JS timeout and the JS cancel both reached the strand handlers.
    eventually("strand handlers cancelled", || {
        probe.slow.load(Ordering::SeqCst) == 1 && probe.hang_stream.load(Ordering::SeqCst) == 1
    })
    .await;
    let s = server.clone();
    eventually("no call left", move || s.calls_in_flight() == 0).await;
}

/// A JS caller's sequential unary calls spend no flood budget: its
/// CLOSE(Write), answering our CLOSE(Read) after we released the stream,
/// was owed. With it counted as churn, a budget of 50 closed the
/// connection (1008) after 50 calls, and the default one capped JS callers
/// at its refill rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_callers_close_replies_spend_no_flood_budget_over_ws() {
    let identity = Identity::dev().unwrap();
    let server = Server::builder(router(Arc::new(Probe::default())))
        .layer(AuthLayer::new(
            BearerTokens::new().token("let-me-in", "alice"),
        ))
        .build();
    let floods = FloodLimits {
        idle_control: Budget::new(50, 0),
        ..FloodLimits::default()
    };
    let config = WsServerConfig::default()
        .with_tls(ServerTls::new(identity.clone()))
        .with_transport(ws_config().with_floods(floods));
    let listener = WsListener::bind("127.0.0.1:0", config).await.unwrap();
    let port = listener.local_addr().port();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let script = Script::start(
        "rpc-client.mjs",
        &["ws", &port.to_string(), "manyUnary"],
        &json!({ "ca": identity.cert_pem() }),
    );
    let out = script.until_done().await;
    assert_eq!(
        out,
        ["ok manyUnary 300", "done"],
        "the JS caller was cut off"
    );
}

/// A strand client connected to rpc-server.mjs.
async fn connect_to_js(
    carrier: Carrier,
    identity: &Identity,
    port: u16,
) -> (DynConnection, Option<QuicClient>) {
    let verification = ServerVerification::Ca(identity.cert_chain().to_vec());
    match carrier {
        Carrier::Ws => {
            let config = WsClientConfig::default()
                .with_tls(ClientTls::new(verification))
                .with_transport(ws_config());
            let conn = within(connect(&format!("wss://127.0.0.1:{port}/"), config))
                .await
                .unwrap();
            (Arc::new(conn), None)
        }
        Carrier::Quic => {
            let (conn, client) = connect_quic_to_js(identity, port, quic_transport()).await;
            (conn, Some(client))
        }
    }
}

async fn connect_quic_to_js(
    identity: &Identity,
    port: u16,
    transport: QuicConfig,
) -> (DynConnection, QuicClient) {
    let verification = ServerVerification::Ca(identity.cert_chain().to_vec());
    let client = QuicClient::bind(
        "127.0.0.1:0".parse().unwrap(),
        QuicClientConfig::new(verification).with_transport(transport),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let conn = within(client.connect(addr, "localhost")).await.unwrap();
    (Arc::new(conn), client)
}

/// Starts the JS RPC server on `carrier` with `identity`; returns the script
/// and the port it listens on.
async fn start_js_server(carrier: Carrier, identity: &Identity) -> (Script, u16) {
    let script = Script::start(
        "rpc-server.mjs",
        &[carrier.name()],
        &json!({ "cert": identity.cert_pem(), "key": identity.key_pem() }),
    );
    let line = script.line().await;
    let port: u16 = line
        .strip_prefix("listening ")
        .expect("listening line")
        .parse()
        .unwrap();
    (script, port)
}

async fn strand_client_against_js_server(carrier: Carrier) {
    let identity = Identity::dev().unwrap();
    let (script, port) = start_js_server(carrier, &identity).await;
    let (conn, _endpoint) = connect_to_js(carrier, &identity, port).await;
    let client = Client::from_shared(conn.clone(), ClientConfig::default().bearer("let-me-in"));

    within(async {
        // unary, with the refreshed token from result.metadata.authorization
        let (out, md) = client
            .call("echo")
            .unary_with_metadata::<_, Value>(&json!({ "hello": "world" }))
            .await
            .unwrap();
        assert_eq!(out["hello"], "world");
        assert_eq!(out["echoed"], true);
        assert_eq!(md.unwrap()["authorization"], "Bearer fresh-token");

        // server streaming
        let items: Vec<Value> = client
            .server_streaming("count", &json!({ "n": 3 }))
            .await
            .unwrap()
            .map(|r: Result<Value, ClientError>| r.unwrap()["i"].clone())
            .collect()
            .await;
        assert_eq!(items, vec![json!(0), json!(1), json!(2)]);

        // client streaming
        let mut call = client
            .client_streaming::<Value, Value>("sum")
            .await
            .unwrap();
        for v in [1, 10, 100] {
            call.send(&json!({ "x": v })).await.unwrap();
        }
        assert_eq!(call.finish().await.unwrap()["sum"], 111);

        // duplex
        let (mut sink, mut replies) = client.duplex::<Value, Value>("chat").await.unwrap();
        for m in ["a", "b"] {
            sink.send(&json!({ "msg": m })).await.unwrap();
            assert_eq!(
                replies.next().await.unwrap().unwrap()["reply"],
                format!("re:{m}")
            );
        }
        sink.finish().await.unwrap();
        assert!(replies.next().await.is_none());

        // raw
        let mut raw = client
            .raw::<_, Value>("rawUpper", &json!({ "mode": "upper" }))
            .await
            .unwrap();
        assert_eq!(raw.leading["accepted"]["mode"], "upper");
        raw.writer.write_all(b"raw bytes here").await.unwrap();
        raw.writer.shutdown().await.unwrap();
        let mut back = String::new();
        raw.reader.read_to_string(&mut back).await.unwrap();
        assert_eq!(back, "RAW BYTES HERE");

        // raw, pipelined: the bytes written before the leading response is
        // read (the write boundary keeps the JS server from losing them)
        let mut raw = client
            .raw_pipelined::<_, Value>("rawUpper", &json!({ "mode": "upper" }))
            .await
            .unwrap();
        raw.writer.write_all(b"sent early").await.unwrap();
        raw.writer.shutdown().await.unwrap();
        let mut response = raw.response.leading().await.unwrap();
        assert_eq!(response.leading["accepted"]["mode"], "upper");
        let mut back = String::new();
        response.reader.read_to_string(&mut back).await.unwrap();
        assert_eq!(back, "SENT EARLY");

        // a JS handler's error: code, message and data
        let err = client
            .unary::<_, Value>("fail", &json!({}))
            .await
            .unwrap_err();
        match &err {
            ClientError::Remote {
                code,
                message,
                data,
                ..
            } => {
                assert_eq!(*code, -32006);
                assert_eq!(message, "handler exploded");
                let data = data.as_ref().unwrap();
                assert_eq!(data["type"], "TypeError");
                assert_eq!(data["message"], "handler exploded");
                assert!(data["data"]["stack"].is_string(), "{data}");
            }
            other => panic!("{other:?}"),
        }

        // unknown method: the JS server just resets the stream
        let err = client
            .unary::<_, Value>("nope", &json!({}))
            .await
            .unwrap_err();
        assert!(err.code().is_none(), "{err:?}");
        let text = err.to_string();
        eprintln!("unknown method on a JS server: {text}");
        assert!(
            text.contains("reset") || text.contains("without a response"),
            "unclear error for an unknown method: {text}"
        );

        // auth refused by the JS middleware
        let err = client
            .call("echo")
            .bearer("wrong")
            .unary::<_, Value>(&json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(-32001), "{err:?}");
    })
    .await;

    // timeout via metadata.timeout: the JS handler is cancelled
    let err = within(
        client
            .call("slow")
            .timeout(Duration::from_millis(300))
            .unary::<_, Value>(&json!({})),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ClientError::TimedOut(_)) || err.code() == Some(-32006),
        "{err:?}"
    );
    within(script.expect("cancelled slow")).await;

    // cancellation: dropping a duplex call resets its input, which cancels
    // the JS handler
    let (mut sink, mut replies) = within(client.duplex::<Value, Value>("hangDuplex"))
        .await
        .unwrap();
    within(sink.send(&json!({ "msg": "x" }))).await.unwrap();
    assert_eq!(within(replies.next()).await.unwrap().unwrap()["reply"], "x");
    drop((sink, replies));
    within(script.expect("cancelled hangDuplex")).await;

    // cancellation of a server-streaming call: its input already ended, so
    // only the stop of its output tells the JS handler (over QUIC thanks to
    // the stop-after-ACK rule, see `js_server_streams_cancelled_over_quic`)
    let mut stream = within(client.server_streaming::<_, Value>("hangStream", &json!({})))
        .await
        .unwrap();
    assert_eq!(within(stream.next()).await.unwrap().unwrap()["i"], 0);
    drop(stream);
    within(script.expect("cancelled hangStream")).await;

    // 8 MiB both ways through a raw echo
    within(async {
        const TOTAL: usize = 8 << 20;
        let call = client.raw::<_, Value>("rawEcho", &json!({})).await.unwrap();
        let send = write_pattern(call.writer, TOTAL);
        let got = read_pattern(call.reader).await;
        send.await.unwrap();
        assert_eq!(got, TOTAL);
    })
    .await;

    // several messages then a close, 50 times, nothing lost
    within(async {
        for round in 0..50i64 {
            let mut call = client
                .client_streaming::<Value, Value>("sum")
                .await
                .unwrap();
            for v in 1..=5 {
                call.send(&json!({ "x": v + round })).await.unwrap();
            }
            assert_eq!(
                call.finish().await.unwrap()["sum"],
                15 + 5 * round,
                "round {round}"
            );
        }
    })
    .await;

    // keep-alive: idle for longer than both idle timeouts, still connected
    tokio::time::sleep(IDLE * 5 / 2).await;
    let out: Value = within(client.unary("echo", &json!({ "hello": "still here" })))
        .await
        .unwrap();
    assert_eq!(out["hello"], "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_to_strand_server_over_ws() {
    js_client_against_strand_server(Carrier::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_to_strand_server_over_quic() {
    js_client_against_strand_server(Carrier::Quic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strand_client_to_js_server_over_ws() {
    strand_client_against_js_server(Carrier::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strand_client_to_js_server_over_quic() {
    strand_client_against_js_server(Carrier::Quic).await;
}

/// Calls `hangStream` on a JS QUIC server, reads the first item and drops the
/// call, `rounds` times (stopping at the first miss if `until_missed`);
/// returns how many of the JS handlers saw their cancellation within 2 s.
async fn cancel_js_server_streams(
    stop_ack_wait: Duration,
    rounds: usize,
    until_missed: bool,
) -> usize {
    let identity = Identity::dev().unwrap();
    let (script, port) = start_js_server(Carrier::Quic, &identity).await;
    let mut transport = quic_transport();
    transport.stop_ack_wait = stop_ack_wait;
    let (conn, _client) = connect_quic_to_js(&identity, port, transport).await;
    let client = Client::from_shared(conn, ClientConfig::default().bearer("let-me-in"));
    // The connection's first packets (handshake done, new connection ids)
    // draw acknowledgements of their own; settle them with one call.
    let _: Value = within(client.unary("echo", &json!({}))).await.unwrap();
    let mut cancelled = 0;
    for _ in 0..rounds {
        let mut stream = within(client.server_streaming::<_, Value>("hangStream", &json!({})))
            .await
            .unwrap();
        assert_eq!(within(stream.next()).await.unwrap().unwrap()["i"], 0);
        drop(stream);
        if script
            .saw_within("cancelled hangStream", Duration::from_secs(2))
            .await
        {
            cancelled += 1;
        } else if until_missed {
            break;
        }
    }
    cancelled
}

/// A strand client that drops a server-streaming call cancels the JS QUIC
/// handler every time.
///
/// Our input already ended (FIN), so the STOP_SENDING of the dropped output
/// is all the JS side gets. A quiche peer forgets a stream whose receiving
/// side has ended as soon as a STOP_SENDING ends its sending side and the
/// same datagram acknowledges the data it sent; js-quic looks for stopped
/// streams only after the datagram, among quiche's writable streams, and
/// then finds nothing. quinn bundles its delayed ACK of the item we just read
/// into the packet of the STOP_SENDING, so that was the usual case (missed
/// in about 4 rounds of 5). A JS client acknowledges at once, before it
/// cancels, which is why JS → JS cancels always worked. The strand rule
/// (`QuicConfig::stop_ack_wait`): send the STOP_SENDING only after our
/// ACK went out, in a packet of its own, and only once nothing that arrived
/// since waits for an ACK of its own. With both cores kept busy by two
/// other processes, the former rule ("an ACK left") failed this test in 3
/// of 60 runs of this suite (4 cancels of 300 missed): the trace showed the
/// handler's next item arriving between that ACK and the STOP_SENDING,
/// whose packet then acknowledged it, or (a stalled runtime) the
/// STOP_SENDING leaving with the ACK its timer was about to send. The rule
/// now passed 40 runs of 40 (200 cancels). `QUIC_TRACE=1` makes rpc-server.mjs
/// show it (quic-cancel-trace.mjs): without the rule, the one datagram takes
/// the stream from open straight to forgotten (`InvalidStreamState`); with
/// it, the STOP_SENDING datagram leaves it `StreamStopped` and the JS writer
/// fails, which cancels the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_server_streams_cancelled_over_quic() {
    let rounds = 5;
    let cancelled =
        cancel_js_server_streams(QuicConfig::default().stop_ack_wait, rounds, false).await;
    assert_eq!(cancelled, rounds);
}

/// The JS bug itself: with `stop_ack_wait` zero, the STOP_SENDING leaves with
/// the ACK of the item just read, and the JS handler never learns of it (it
/// writes into a stream quiche has forgotten and waits for ever). Whether
/// quinn still had that ACK pending depends on timing (an ACK goes out at
/// once after two packets, or after 25 ms), so this asserts that at least
/// one of up to 20 rounds was missed; in our runs nearly every round was (a
/// round that cancels takes milliseconds; the first miss ends the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_server_misses_a_stop_that_carries_the_last_ack_over_quic() {
    let rounds = 20;
    let cancelled = cancel_js_server_streams(Duration::ZERO, rounds, true).await;
    assert!(cancelled < rounds, "the JS handler saw every cancellation");
}

/// The JS bug behind the write-boundary rule (docs/protocol.md, "Write boundary"): a JS server
/// drops what reaches it while it still parses a call's first message. Sent
/// in the same DATA message as the first, the second message of a
/// client-streaming call is always lost (sent as a DATA message of its own
/// right after, it is lost too, but only when the JS process is quick enough,
/// so that variant is not asserted); written alone and after the boundary
/// (on ws: the ACK of the first message), it is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_server_drops_a_message_that_follows_the_first_over_ws() {
    use strand_rpc_core::codec::MessageReader;
    use strand_rpc_core::message::encode_request;
    use strand_rpc_core::transport::write_boundary;

    let identity = Identity::dev().unwrap();
    let (_script, port) = start_js_server(Carrier::Ws, &identity).await;
    let (conn, _) = connect_to_js(Carrier::Ws, &identity, port).await;
    let first = encode_request(
        "sum",
        &json!({ "x": 1, "metadata": { "authorization": "Bearer let-me-in", "timeout": null } }),
    )
    .unwrap();
    let second = encode_request("sum", &json!({ "x": 10 })).unwrap();
    let mut sums = Vec::new();
    for wait in [false, true] {
        let sum = within(async {
            let (mut send, recv) = conn.open_stream().await.unwrap().split();
            if wait {
                send.write_all(&first).await.unwrap();
                write_boundary(&mut send).await.unwrap();
                send.write_all(&second).await.unwrap();
            } else {
                send.write_all(&[&first[..], &second[..]].concat())
                    .await
                    .unwrap();
            }
            send.shutdown().await.unwrap();
            let mut reader = MessageReader::new(recv, 1 << 20);
            let response: Value =
                serde_json::from_slice(&reader.next().await.unwrap().unwrap()).unwrap();
            response["result"]["sum"].clone()
        })
        .await;
        sums.push(sum);
    }
    assert_eq!(
        sums,
        vec![json!(1), json!(11)],
        "without the wait, then with it"
    );
}
