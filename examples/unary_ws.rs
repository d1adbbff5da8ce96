//! The smallest strand program: one unary method served over a WebSocket on
//! loopback, and a client calling it.
//!
//! Run: `cargo run --example unary_ws`

use serde::{Deserialize, Serialize};
use strand::{Endpoint, Router, RpcError, Server};

#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize, Debug)]
struct Sum {
    sum: i64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Define: method names to typed handlers.
    let router = Router::new().unary("add", |_ctx, p: Add| async move {
        let sum =
            p.a.checked_add(p.b)
                .ok_or_else(|| RpcError::invalid_params("overflow"))?;
        Ok::<_, RpcError>(Sum { sum })
    });
    let server = Server::builder(router).build();

    // Serve: bind a listener from a URL (port 0 = any free port).
    let listener = Endpoint::from_url("ws://127.0.0.1:0")?.bind().await?;
    let url = listener.url();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    println!("serving on {url}");

    // Call: connect a client to the same URL.
    let client = Endpoint::from_url(&url)?.connect().await?;
    let answer: Sum = client
        .unary("add", &serde_json::json!({ "a": 20, "b": 22 }))
        .await?;
    println!("add(20, 22) = {}", answer.sum);
    assert_eq!(answer.sum, 42);

    server.shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}
