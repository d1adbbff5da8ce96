//! Graceful shutdown: stop accepting, let running calls finish within a
//! grace period, answer late calls with "server is shutting down" (−32001),
//! abort what is left when the grace period ends. Here on ws and quic at once.
//!
//! Run: `cargo run --example graceful_shutdown`

use std::time::Duration;

use serde_json::{json, Value};
use strand::tls::{Identity, ServerVerification};
use strand::{Endpoint, Serving};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let identity = Identity::dev()?;
    let server = strand::demo::server(None);
    let serving = Serving::start(
        &server,
        &[
            Endpoint::from_url("ws://127.0.0.1:0")?,
            Endpoint::from_url("quic://127.0.0.1:0")?.with_identity(identity.clone()),
        ],
    )
    .await?;

    let mut clients = Vec::new();
    for url in serving.urls() {
        let client = Endpoint::from_url(url)?
            .with_server_verification(ServerVerification::Ca(identity.cert_chain().to_vec()))
            .connect()
            .await?;
        clients.push((url.clone(), client));
    }

    // One short call and one too long for the grace period, per carrier.
    let mut calls = Vec::new();
    for (url, client) in &clients {
        for ms in [200, 5_000] {
            let client = client.clone();
            let url = url.clone();
            calls.push(tokio::spawn(async move {
                let result = client
                    .unary::<_, Value>("sleep", &json!({ "ms": ms }))
                    .await;
                (url, ms, result)
            }));
        }
    }
    for _ in 0..1000 {
        if server.calls_in_flight() >= calls.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "{} calls running; shutting down with a 1 s grace period",
        server.calls_in_flight()
    );
    serving.shutdown(Duration::from_secs(1)).await;

    for call in calls {
        let (url, ms, result) = call.await?;
        match result {
            Ok(v) => println!("{url:<26} sleep {ms:>4} ms: finished {v}"),
            Err(e) => println!("{url:<26} sleep {ms:>4} ms: {e}"),
        }
    }
    Ok(())
}
