//! The same service and the same client code over WebSocket and over QUIC:
//! the carrier is a line of configuration (the URL in a TOML config).
//!
//! Run: `cargo run --example swap_to_quic`

use serde_json::{json, Value};
use strand::tls::Identity;
use strand::{Client, Endpoint, EndpointConfig, Router, RpcError, Server, Serving};

/// Client code that does not know which carrier it runs on.
async fn greet(client: &Client) -> Result<Value, strand::ClientError> {
    client.unary("hello", &json!({ "name": "strand" })).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let router = Router::new().unary("hello", |ctx, p: Value| async move {
        Ok::<_, RpcError>(json!({
            "greeting": format!("hello, {}", p["name"].as_str().unwrap_or("?")),
            "carrier": ctx.peer().transport,
        }))
    });
    let server = Server::builder(router).build();

    // A development certificate for the TLS carriers, trusted by the client
    // below through a CA file.
    let identity = Identity::dev()?;
    let dir = std::env::temp_dir().join(format!("strand-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, identity.cert_pem())?;

    // The server config: one block per listener; only the URL differs.
    let server_configs = ["url = \"ws://127.0.0.1:0\"", "url = \"quic://127.0.0.1:0\""];
    let endpoints = server_configs
        .iter()
        .map(|text| {
            let config: EndpointConfig = toml::from_str(text)?;
            Ok(Endpoint::from_config(config)?.with_identity(identity.clone()))
        })
        .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
    let serving = Serving::start(&server, &endpoints).await?;

    for url in serving.urls() {
        // The client config: swap "ws://…" for "quic://…" and nothing else.
        let config = format!(
            "url = \"{url}\"\n\n[tls]\nca = \"{}\"\n\n[timeouts]\ncall_ms = 5000\n",
            ca.display()
        );
        let client = Endpoint::from_toml(&config)?.connect().await?;
        let answer = greet(&client).await?;
        println!("{url:<28} -> {answer}");
    }

    serving.shutdown(std::time::Duration::from_secs(1)).await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
