//! A rolling restart that callers do not notice: a reconnecting client, a
//! server drained (as `strand serve` does on SIGTERM) while a call runs, and
//! its successor started on the same port. The call in flight finishes on
//! the old server; the client moves its new calls to the new one; no call
//! fails.
//!
//! Run: `cargo run --example reconnect`

use std::time::Duration;

use serde_json::{json, Value};
use strand::{ClientState, Endpoint, ReconnectConfig, Router, RpcError, Server, Serving};

/// A server whose `who` answers `name`, with a `sleep` that takes `ms`.
fn server(name: &'static str) -> Server {
    let router = Router::new()
        .unary("who", move |_ctx, _p: Value| async move {
            Ok::<_, RpcError>(json!(name))
        })
        .unary("sleep", |_ctx, p: Value| async move {
            let ms = p["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, RpcError>(json!({ "slept": ms }))
        });
    Server::builder(router).build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let old = Serving::start(&server("old"), &[Endpoint::from_url("ws://127.0.0.1:0")?]).await?;
    let url = old.urls()[0].clone();

    // `[reconnect]` in a TOML config does the same; short waits for the demo
    // (the defaults are gRPC's: 1 s, ×1.6, up to 120 s, ±20 %).
    let reconnect: ReconnectConfig = toml::from_str("initial_backoff_ms = 50")?;
    let client = Endpoint::from_url(&url)?
        .with_reconnect(reconnect)
        .connect()
        .await?;
    let mut state = client.state().expect("a reconnecting client");
    let watcher = tokio::spawn(async move {
        let mut seen = vec![*state.borrow_and_update()];
        while state.changed().await.is_ok() {
            seen.push(*state.borrow_and_update());
            if seen.ends_with(&[ClientState::Reconnecting, ClientState::Ready]) {
                break;
            }
        }
        seen
    });
    println!(
        "{url}: {}",
        client.unary::<_, Value>("who", &json!({})).await?
    );

    // A call that outlives the restart.
    let long = tokio::spawn({
        let client = client.clone();
        async move { client.unary::<_, Value>("sleep", &json!({"ms": 300})).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Drain the old server: it stops listening, tells the client to go
    // elsewhere, lets the running call finish, then closes (1001).
    let drained = tokio::spawn(old.drain(Duration::from_secs(5)));
    // The notice travels to the client while the port comes free: a call
    // made before the client has read it is still served by the old server
    // (see `Server::drain`). Wait for the client to have heard it.
    client
        .state()
        .expect("a reconnecting client")
        .wait_for(|state| *state != ClientState::Ready)
        .await?;
    // The new one takes the port once the old one let go of it.
    let mut new = None;
    for _ in 0..100 {
        match Serving::start(&server("new"), &[Endpoint::from_url(&url)?]).await {
            Ok(serving) => {
                new = Some(serving);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let new = new.ok_or("the port did not come free")?;

    for i in 0..5 {
        let who: Value = client
            .call("who")
            .timeout(Duration::from_secs(5))
            .unary(&json!({}))
            .await?;
        println!("call {i} after the drain began: {who}");
        assert_eq!(who, "new");
    }
    println!("the call started before: {}", long.await??);
    drained.await?;
    println!("client states: {:?}", watcher.await?);
    new.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
