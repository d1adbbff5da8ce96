//! In-payload authentication: accepted, rejected, token refresh.

mod common;

use async_trait::async_trait;
use serde_json::{json, Value};
use strand_rpc_core::message::error_codes;
use strand_rpc_core::middleware::{AuthLayer, BearerTokens, Credentials, Verified, Verifier};
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::{ClientConfig, Context, Identity, RpcError};

fn router() -> Router {
    Router::new().unary("whoami", |ctx: Context, _p: Value| async move {
        Ok::<_, RpcError>(json!({ "name": ctx.identity().map(|i| i.name.clone()) }))
    })
}

#[tokio::test]
async fn bearer_token_accepted_and_rejected() {
    let f = common::start_with(Server::builder(router()).layer(AuthLayer::new(
        BearerTokens::new().token("let-me-in", "alice"),
    )));
    let ok: Value = f
        .client
        .call("whoami")
        .bearer("let-me-in")
        .unary(&json!({}))
        .await
        .unwrap();
    assert_eq!(ok["name"], "alice");

    let err = f
        .client
        .call("whoami")
        .bearer("wrong")
        .unary::<_, Value>(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::UNAUTHORIZED), "{err}");

    let err = f
        .client
        .unary::<_, Value>("whoami", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::UNAUTHORIZED), "{err}");

    // A client configured with the token sends it on every call.
    let authed = f
        .client
        .with_config(ClientConfig::default().bearer("let-me-in"));
    let ok: Value = authed.unary("whoami", &json!({})).await.unwrap();
    assert_eq!(ok["name"], "alice");
}

/// Accepts `Basic alice:pw` and `Bearer <any token starting with t->`, and
/// refreshes bearer tokens.
struct Rotating;

#[async_trait]
impl Verifier for Rotating {
    async fn verify(&self, credentials: Credentials, _ctx: &Context) -> Result<Verified, RpcError> {
        match credentials {
            Credentials::Basic { user, password } if user == "alice" && password == "pw" => {
                Ok(Verified::new(Identity::new("alice")).with_refreshed_token("t-1"))
            }
            Credentials::Bearer(t) if t.starts_with("t-") => {
                let next: u32 = t[2..].parse().unwrap_or(0) + 1;
                Ok(Verified::new(Identity::new("alice")).with_refreshed_token(format!("t-{next}")))
            }
            _ => Err(RpcError::unauthorized("bad credentials")),
        }
    }
}

#[tokio::test]
async fn token_refresh_travels_in_result_metadata() {
    let f = common::start_with(Server::builder(router()).layer(AuthLayer::new(Rotating)));
    // "alice:pw" in base64.
    let (out, md): (Value, _) = f
        .client
        .call("whoami")
        .metadata("authorization", "Basic YWxpY2U6cHc=")
        .unary_with_metadata(&json!({}))
        .await
        .unwrap();
    assert_eq!(out["name"], "alice");
    let token = md.unwrap()["authorization"].as_str().unwrap().to_string();
    assert_eq!(token, "Bearer t-1");
    assert_eq!(out["metadata"]["authorization"], "Bearer t-1");

    let (_, md): (Value, _) = f
        .client
        .call("whoami")
        .metadata("authorization", token)
        .unary_with_metadata(&json!({}))
        .await
        .unwrap();
    assert_eq!(md.unwrap()["authorization"], "Bearer t-2");

    let err = f
        .client
        .call("whoami")
        .metadata("authorization", "Basic YWxpY2U6eHg=")
        .unary::<_, Value>(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::UNAUTHORIZED));
}

#[tokio::test]
async fn rejected_call_never_reaches_the_handler() {
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = reached.clone();
    let router = Router::new().unary("secret", move |_ctx, _p: Value| {
        r.store(true, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, RpcError>(json!({})) }
    });
    let f = common::start_with(Server::builder(router).layer(AuthLayer::new(BearerTokens::new())));
    let out = f
        .exchange_json(&[
            br#"{"method":"secret","params":{"metadata":{"authorization":"Bearer x"}}}"#,
        ])
        .await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["error"]["code"], error_codes::UNAUTHORIZED);
    assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
}

/// Every token of a `BearerTokens` set is found, whatever its position, and
/// near misses (a prefix, one byte off, longer) are refused.
#[tokio::test]
async fn bearer_tokens_match_exactly() {
    let f = common::start_with(
        Server::builder(router()).layer(AuthLayer::new(
            BearerTokens::new()
                .token("alpha-token", "alice")
                .token("beta-token", "bob")
                .token("alpha-token", "carol"),
        )),
    );
    for (token, name) in [("alpha-token", "carol"), ("beta-token", "bob")] {
        let ok: Value = f
            .client
            .call("whoami")
            .bearer(token)
            .unary(&json!({}))
            .await
            .unwrap();
        assert_eq!(ok["name"], name, "{token}");
    }
    for wrong in ["alpha-toke", "alpha-tokem", "alpha-token-", "beta-token\0"] {
        let err = f
            .client
            .call("whoami")
            .bearer(wrong)
            .unary::<_, Value>(&json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(error_codes::UNAUTHORIZED),
            "{wrong:?}: {err}"
        );
    }
}

/// One-time tokens: `t-N` is accepted once and `t-(N+1)` handed back; any
/// other token is refused.
#[derive(Default)]
struct OneTime(std::sync::Mutex<u32>);

#[async_trait]
impl Verifier for OneTime {
    async fn verify(&self, credentials: Credentials, _ctx: &Context) -> Result<Verified, RpcError> {
        let mut next = self.0.lock().unwrap();
        match credentials {
            Credentials::Bearer(t) if t == format!("t-{next}") => {
                *next += 1;
                Ok(Verified::new(Identity::new("alice")).with_refreshed_token(format!("t-{next}")))
            }
            _ => Err(RpcError::unauthorized("spent or unknown token")),
        }
    }
}

fn one_time_router() -> Router {
    router()
        .unary(
            "number",
            |_ctx, _p: Value| async move { Ok::<_, RpcError>(42) },
        )
        .unary("nothing", |_ctx, _p: Value| async move {
            Ok::<_, RpcError>(Value::Null)
        })
        .unary("fail", |_ctx, _p: Value| async move {
            Err::<Value, _>(RpcError::new(-32000, "no"))
        })
        .server_streaming("failing", |_ctx, _p: Value| {
            futures_util::stream::iter([Err::<Value, _>(RpcError::new(-32000, "no"))])
        })
}

fn token_of(md: Option<&serde_json::Map<String, Value>>) -> Option<String> {
    let auth = md?.get("authorization")?.as_str()?;
    Some(auth.strip_prefix("Bearer ")?.to_string())
}

/// The refreshed token reaches the client whatever the first response is: a
/// result that is not an object (a number), an error. A one-time token is
/// spent by the call either way, so losing its successor locks the client out.
#[tokio::test]
async fn a_refreshed_token_survives_every_first_response() {
    use futures_util::StreamExt;
    let f = common::start_with(
        Server::builder(one_time_router()).layer(AuthLayer::new(OneTime::default())),
    );
    // A number: no `result.metadata` to carry it.
    let (n, md): (i64, _) = f
        .client
        .call("number")
        .bearer("t-0")
        .unary_with_metadata(&json!({}))
        .await
        .unwrap();
    assert_eq!(n, 42);
    let token = token_of(md.as_ref()).expect("the token after a number result");
    assert_eq!(token, "t-1");
    // An error as the first response of a stream.
    let mut items = f
        .client
        .call("failing")
        .bearer(&token)
        .server_streaming::<_, Value>(&json!({}))
        .await
        .unwrap();
    let err = items.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), Some(-32000), "{err}");
    let token = token_of(items.metadata()).expect("the token after an error");
    assert_eq!(token, "t-2");
    // An error answering a unary call.
    let err = f
        .client
        .call("fail")
        .bearer(&token)
        .unary::<_, Value>(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(-32000), "{err}");
    let token = token_of(err.reply_metadata()).expect("the token after a unary error");
    assert_eq!(token, "t-3");
    // A refused call spends nothing and hands nothing back.
    let err = f
        .client
        .call("fail")
        .bearer("t-0")
        .unary::<_, Value>(&json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(error_codes::UNAUTHORIZED), "{err}");
    assert!(err.reply_metadata().is_none());
    // The last token still works.
    let ok: Value = f
        .client
        .call("whoami")
        .bearer(&token)
        .unary(&json!({}))
        .await
        .unwrap();
    assert_eq!(ok["name"], "alice");
}

/// A `null` result is a result: the client read `"result":null` as no
/// result at all ("response has neither result nor error"), so a handler
/// answering `null` (or `None`) failed every call, and reply metadata beside
/// a `null` result was lost with it. With metadata, strand's server writes
/// the `null` result as `{"metadata":{…}}` (docs/protocol.md, "Metadata").
#[tokio::test]
async fn a_null_result_is_a_result_with_or_without_reply_metadata() {
    let plain = common::start(one_time_router());
    let value: Option<u32> = plain.client.unary("nothing", &json!({})).await.unwrap();
    assert_eq!(value, None);

    let f = common::start_with(
        Server::builder(one_time_router()).layer(AuthLayer::new(OneTime::default())),
    );
    let (value, md): (Value, _) = f
        .client
        .call("nothing")
        .bearer("t-0")
        .unary_with_metadata(&json!({}))
        .await
        .unwrap();
    assert_eq!(token_of(md.as_ref()).as_deref(), Some("t-1"));
    assert_eq!(
        value,
        json!({ "metadata": { "authorization": "Bearer t-1" } })
    );

    // A peer that writes the metadata beside a `null` result instead.
    let items = raw_peer_answers(
        br#"{"jsonrpc":"2.0","result":null,"metadata":{"authorization":"Bearer t-9"},"id":null}"#,
    )
    .await;
    let (value, md) = items.expect("a null result beside metadata is a result");
    assert_eq!(value, Value::Null);
    assert_eq!(token_of(md.as_ref()).as_deref(), Some("t-9"));
}

/// A unary call answered by a fake server that writes `response` verbatim.
async fn raw_peer_answers(
    response: &'static [u8],
) -> Result<(Value, Option<serde_json::Map<String, Value>>), strand_rpc_core::ClientError> {
    use std::sync::Arc;
    use strand_rpc_core::transport::Connection;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (client_side, server_side) = strand_rpc_core::memory::pair();
    let peer = tokio::spawn(async move {
        let mut stream = server_side.accept_stream().await.unwrap();
        let mut request = Vec::new();
        stream.recv.read_to_end(&mut request).await.unwrap();
        stream.send.write_all(response).await.unwrap();
        stream.send.shutdown().await.unwrap();
        server_side
    });
    let client = strand_rpc_core::Client::from_shared(Arc::new(client_side), Default::default());
    let out = client.call("x").unary_with_metadata(&json!({})).await;
    drop(peer.await.unwrap());
    out
}
