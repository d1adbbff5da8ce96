//! Authentication layer 2 (ws and wss only): the HTTP upgrade request. A hook
//! refuses upgrades without a known API key before the WebSocket exists (401);
//! a verifier names the caller from the same header for every call.
//!
//! Run: `cargo run --example auth_upgrade_header`

use async_trait::async_trait;
use serde_json::{json, Value};
use strand::middleware::{AuthLayer, Credentials, Verified, Verifier};
use strand::ws::{UpgradeContext, UpgradeHook, UpgradeRefusal, UpgradeRequest};
use strand::{Context, Endpoint, RpcError, Server};

const KEYS: [(&str, &str); 2] = [("k-123", "build-bot"), ("k-456", "dashboard")];

fn key_owner(key: Option<&str>) -> Option<&'static str> {
    KEYS.iter()
        .find(|(k, _)| Some(*k) == key)
        .map(|(_, who)| *who)
}

/// Names the caller from the upgrade request's `x-api-key` header.
struct ApiKeyFromUpgrade;

#[async_trait]
impl Verifier for ApiKeyFromUpgrade {
    async fn verify(&self, _: Credentials, ctx: &Context) -> Result<Verified, RpcError> {
        let key = UpgradeRequest::of(ctx.peer())
            .and_then(|r| r.headers.get("x-api-key"))
            .and_then(|v| v.to_str().ok());
        let who = key_owner(key).ok_or_else(|| RpcError::unauthorized("unknown api key"))?;
        Ok(Verified::new(
            strand::Identity::new(who).with_attribute("auth", "upgrade-header"),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let hook = UpgradeHook::new(|ctx: UpgradeContext| async move {
        let key = ctx
            .request
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok());
        match key_owner(key) {
            Some(_) => Ok(()),
            None => Err(UpgradeRefusal::new(
                http::StatusCode::UNAUTHORIZED,
                "missing or unknown x-api-key",
            )),
        }
    });
    let server = Server::builder(strand::demo::router())
        .layer(AuthLayer::new(ApiKeyFromUpgrade))
        .build();
    let listener = Endpoint::from_url("ws://127.0.0.1:0/rpc")?
        .with_upgrade_hook(hook)
        .bind()
        .await?;
    let url = listener.url();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });

    let client = Endpoint::from_url(&url)?
        .with_header("x-api-key", "k-123")
        .connect()
        .await?;
    let me: Value = client.unary("whoami", &json!({})).await?;
    println!("with x-api-key: whoami = {me}");

    match Endpoint::from_url(&url)?.connect().await {
        Err(e) => println!("without a key: {e}"),
        Ok(_) => return Err("the upgrade should have been refused".into()),
    }
    match Endpoint::from_url(&url)?
        .with_header("x-api-key", "wrong")
        .connect()
        .await
    {
        Err(e) => println!("with a wrong key: {e}"),
        Ok(_) => return Err("the upgrade should have been refused".into()),
    }

    server.shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}
