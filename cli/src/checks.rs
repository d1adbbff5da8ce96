//! The checks `strand demo` runs: calls of every kind against the demo
//! service (`strand::demo`), each answer compared with what the service must
//! give, each kind timed as the median of several calls.

use std::io;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use strand::core::message::error_codes;
use strand::{Client, ClientError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// The call kinds [`run_checks`] exercises, in order.
pub(crate) const CHECKS: [&str; 6] = ["unary", "server", "client", "duplex", "raw", "deadline"];

/// Timed calls of each kind (after one untimed warm-up call), of which
/// [`run_checks`] reports the median: one call's time swings by several
/// times with the machine's scheduling, and the first call on a connection
/// pays for warming it up.
pub(crate) const TIMED_CALLS: usize = 15;

/// The outcome of one check.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    /// One of [`CHECKS`].
    pub(crate) kind: &'static str,
    /// The median time of the kind's calls, or what went wrong.
    pub(crate) result: Result<Duration, String>,
}

/// Runs every kind of call against a demo server through `client` and
/// checks each answer: a warm-up call and [`TIMED_CALLS`] timed ones per
/// kind, each bounded by `timeout`; the first failure ends the kind.
///
/// `deadline` calls `sleep` for 10 s with a 50 ms call timeout and passes
/// when the call fails with a timeout; it runs once (its time is the
/// timeout's).
///
/// The calls run on a task of the runtime: made from the thread that blocks
/// on the runtime (`main`), every step of a call would cross threads, which
/// costs about 0.1 ms on each call that is neither strand's nor the
/// transport's.
pub(crate) async fn run_checks(client: &Client, timeout: Duration) -> Vec<Check> {
    let client = client.clone();
    let checks = tokio::spawn(async move {
        let mut checks = Vec::with_capacity(CHECKS.len());
        for kind in CHECKS {
            let result = time_kind(&client, kind, timeout).await;
            checks.push(Check { kind, result });
        }
        checks
    })
    .await;
    checks.unwrap_or_else(|e| {
        CHECKS
            .iter()
            .map(|kind| Check {
                kind,
                result: Err(format!("the checks' task failed: {e}")),
            })
            .collect()
    })
}

/// The median time of `kind`'s timed calls, or the first failure.
async fn time_kind(client: &Client, kind: &str, timeout: Duration) -> Result<Duration, String> {
    let (warm_up, timed) = if kind == "deadline" {
        (0, 1)
    } else {
        (1, TIMED_CALLS)
    };
    let mut times = Vec::with_capacity(timed);
    for i in 0..warm_up + timed {
        let started = Instant::now();
        match tokio::time::timeout(timeout, check(client, kind)).await {
            Ok(Ok(())) if i >= warm_up => times.push(started.elapsed()),
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(format!("no answer within {timeout:?}")),
        }
    }
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

async fn check(client: &Client, kind: &str) -> Result<(), String> {
    fn expect(got: Value, want: Value) -> Result<(), String> {
        if got == want {
            Ok(())
        } else {
            Err(format!("expected {want}, got {got}"))
        }
    }
    let err = |e: ClientError| e.to_string();
    match kind {
        "unary" => {
            let got: Value = client
                .unary("echo", &json!({ "hello": "strand" }))
                .await
                .map_err(err)?;
            expect(got, json!({ "hello": "strand" }))
        }
        "server" => {
            let stream = client
                .server_streaming::<_, Value>("count", &json!({ "n": 3 }))
                .await
                .map_err(err)?;
            let items: Result<Vec<Value>, _> = stream
                .take(10)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect();
            expect(
                Value::Array(items.map_err(err)?),
                json!([{ "i": 0 }, { "i": 1 }, { "i": 2 }]),
            )
        }
        "client" => {
            let mut call = client
                .client_streaming::<Value, Value>("sum")
                .await
                .map_err(err)?;
            for x in [1, 2, 3] {
                call.send(&json!({ "x": x })).await.map_err(err)?;
            }
            expect(call.finish().await.map_err(err)?, json!({ "sum": 6 }))
        }
        "duplex" => {
            let (mut sink, mut responses) =
                client.duplex::<Value, Value>("chat").await.map_err(err)?;
            for m in 0..3 {
                sink.send(&json!({ "m": m })).await.map_err(err)?;
                let got = responses
                    .next()
                    .await
                    .ok_or("the stream ended early")?
                    .map_err(err)?;
                expect(got, json!({ "m": m }))?;
            }
            sink.finish().await.map_err(err)?;
            match responses.next().await {
                None => Ok(()),
                Some(extra) => Err(format!("unexpected extra response {extra:?}")),
            }
        }
        "raw" => {
            // Pipelined: the bytes follow the header, a round trip sooner
            // than after the leading response.
            let mut call = client
                .raw_pipelined::<_, Value>("upper", &json!({}))
                .await
                .map_err(err)?;
            let e = |e: io::Error| e.to_string();
            call.writer.write_all(b"hello strand").await.map_err(e)?;
            call.writer.shutdown().await.map_err(e)?;
            let mut response = call.response.leading().await.map_err(err)?;
            expect(response.leading.clone(), json!({ "ok": true }))?;
            let mut out = Vec::new();
            (&mut response.reader)
                .take(1024)
                .read_to_end(&mut out)
                .await
                .map_err(e)?;
            if out == b"HELLO STRAND" {
                Ok(())
            } else {
                Err(format!(
                    "expected HELLO STRAND, got {:?}",
                    String::from_utf8_lossy(&out)
                ))
            }
        }
        "deadline" => {
            let result = client
                .call("sleep")
                .timeout(Duration::from_millis(50))
                .unary::<_, Value>(&json!({ "ms": 10_000 }))
                .await;
            match result {
                Err(ClientError::TimedOut(_)) => Ok(()),
                Err(e) if e.code() == Some(error_codes::TIMED_OUT) => Ok(()),
                Err(e) => Err(format!("expected a timeout, got {e}")),
                Ok(v) => Err(format!("expected a timeout, got {v}")),
            }
        }
        other => Err(format!("unknown check {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strand::tls::Identity;
    use strand::{Endpoint, Serving};

    fn config(url: &str, ca: &std::path::Path, token: &str) -> String {
        format!(
            "url = \"{url}\"\n[tls]\nca = \"{}\"\nserver_name = \"localhost\"\n[timeouts]\ncall_ms = 10000\n[auth]\ntoken = \"{token}\"\n",
            ca.display()
        )
    }

    /// The same client code against a ws and a quic server, each built from
    /// a config that differs only in its URL.
    #[tokio::test]
    async fn swap_carrier_by_config() {
        let identity = Identity::dev().unwrap();
        let dir = std::env::temp_dir().join(format!("strand-facade-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, identity.cert_pem()).unwrap();

        let server = strand::demo::server(Some("secret"));
        let endpoints = [
            Endpoint::from_url("ws://127.0.0.1:0").unwrap(),
            Endpoint::from_url("wss://127.0.0.1:0")
                .unwrap()
                .with_identity(identity.clone()),
            Endpoint::from_url("quic://127.0.0.1:0")
                .unwrap()
                .with_identity(identity.clone()),
        ];
        let serving = Serving::start(&server, &endpoints).await.unwrap();
        assert_eq!(serving.urls().len(), 3);
        for (url, scheme) in serving.urls().iter().zip(["ws://", "wss://", "quic://"]) {
            assert!(url.starts_with(scheme), "{url}");
            assert!(!url.ends_with(":0"), "{url} should carry the bound port");
        }

        for url in serving.urls() {
            // The only line that differs between carriers: the URL in the config.
            let endpoint = Endpoint::from_toml(&config(url, &ca, "secret")).unwrap();
            let client = endpoint.connect().await.unwrap();
            let echoed: Value = client.unary("echo", &json!({"via": url})).await.unwrap();
            assert_eq!(echoed, json!({"via": url}));
            let me: Value = client.unary("whoami", &json!(null)).await.unwrap();
            assert_eq!(me["name"], "demo", "{url}");
            for check in run_checks(&client, Duration::from_secs(10)).await {
                assert!(
                    check.result.is_ok(),
                    "{url} {}: {:?}",
                    check.kind,
                    check.result
                );
            }
            // Without the token the call is refused.
            let anonymous = Endpoint::from_toml(&config(url, &ca, "wrong")).unwrap();
            let err = anonymous
                .connect()
                .await
                .unwrap()
                .unary::<_, Value>("echo", &json!({}))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Some(-32020), "{url}: {err}");
        }
        serving.shutdown(Duration::from_secs(1)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
