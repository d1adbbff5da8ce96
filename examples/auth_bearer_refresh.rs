//! Authentication layer 3 (every carrier): a Bearer token inside the call's
//! metadata, with refresh. The verifier accepts a login token once and hands
//! back a session token in `result.metadata.authorization`; the client uses
//! the fresh token from then on.
//!
//! Run: `cargo run --example auth_bearer_refresh`

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use strand::middleware::{AuthLayer, Credentials, Verified, Verifier};
use strand::{ClientConfig, Context, Endpoint, RpcError, Server};

/// Accepts a one-time login token, then issued session tokens.
#[derive(Default)]
struct Sessions {
    tokens: Mutex<HashMap<String, String>>,
    issued: Mutex<u64>,
}

#[async_trait]
impl Verifier for Sessions {
    async fn verify(&self, credentials: Credentials, _ctx: &Context) -> Result<Verified, RpcError> {
        let Credentials::Bearer(token) = credentials else {
            return Err(RpcError::unauthorized("a bearer token is required"));
        };
        // One lock at a time, never held across an await.
        let user = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&token)
            .ok_or_else(|| RpcError::unauthorized("invalid or used token"))?;
        let fresh = {
            let mut n = self.issued.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            format!("session-{user}-{n}")
        };
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(fresh.clone(), user.clone());
        Ok(
            Verified::new(strand::Identity::new(user).with_attribute("auth", "bearer"))
                .with_refreshed_token(fresh),
        )
    }
}

fn refreshed(metadata: Option<Map<String, Value>>) -> Option<String> {
    let value = metadata?.get("authorization")?.as_str()?.to_string();
    value.strip_prefix("Bearer ").map(str::to_string)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sessions = Sessions::default();
    sessions
        .tokens
        .lock()
        .unwrap()
        .insert("login-token".into(), "carol".into());
    let server = Server::builder(strand::demo::router())
        .layer(AuthLayer::new(sessions))
        .build();
    let listener = Endpoint::from_url("ws://127.0.0.1:0")?.bind().await?;
    let url = listener.url();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });

    let client = Endpoint::from_url(&url)?.connect().await?;
    let mut token = "login-token".to_string();
    for round in 1..=3 {
        let (mut me, metadata) = client
            .call("whoami")
            .bearer(&token)
            .unary_with_metadata::<_, Value>(&json!({}))
            .await?;
        let fresh = refreshed(metadata).ok_or("no refreshed token")?;
        // The first result also carries the metadata; show the identity only.
        if let Some(map) = me.as_object_mut() {
            map.remove("metadata");
        }
        println!("call {round} with {token:<18} -> {me}, next token {fresh}");
        token = fresh;
    }

    // A used token is refused.
    let stale = client.with_config(ClientConfig::default().bearer("login-token"));
    match stale.unary::<_, Value>("whoami", &json!({})).await {
        Err(e) => println!("replaying the login token: {e}"),
        Ok(v) => return Err(format!("a used token was accepted: {v}").into()),
    }

    server.shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}
