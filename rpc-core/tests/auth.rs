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
