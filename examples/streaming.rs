//! The three streaming call kinds: server streaming, client streaming and
//! duplex.
//!
//! Run: `cargo run --example streaming`

use futures_util::StreamExt;
use serde_json::{json, Value};
use strand::{Endpoint, Incoming, Router, RpcError, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let router = Router::new()
        // One request, many responses.
        .server_streaming("countdown", |_ctx, p: Value| {
            let from = p["from"].as_u64().unwrap_or(3);
            futures_util::stream::iter((0..=from).rev().map(|n| Ok::<_, RpcError>(json!(n))))
        })
        // Many requests, one response.
        .client_streaming("average", |_ctx, mut xs: Incoming<Value>| async move {
            let (mut total, mut count) = (0.0, 0u64);
            while let Some(x) = xs.next().await {
                total += x?["x"].as_f64().unwrap_or(0.0);
                count += 1;
            }
            Ok::<_, RpcError>(json!({ "average": total / count.max(1) as f64 }))
        })
        // Many requests, many responses, interleaved.
        .duplex("shout", |_ctx, words: Incoming<Value>| {
            words.map(|w| {
                let w = w?;
                Ok::<_, RpcError>(json!(w["word"].as_str().unwrap_or("").to_uppercase()))
            })
        });
    let server = Server::builder(router).build();
    let listener = Endpoint::from_url("ws://127.0.0.1:0")?.bind().await?;
    let url = listener.url();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    let client = Endpoint::from_url(&url)?.connect().await?;

    let mut countdown = client
        .server_streaming::<_, u64>("countdown", &json!({ "from": 3 }))
        .await?;
    while let Some(n) = countdown.next().await {
        println!("countdown: {}", n?);
    }

    let mut average = client.client_streaming::<Value, Value>("average").await?;
    for x in [1.0, 2.0, 6.0] {
        average.send(&json!({ "x": x })).await?;
    }
    println!("average: {}", average.finish().await?);

    let (mut words, mut shouts) = client.duplex::<Value, String>("shout").await?;
    for word in ["one", "stream", "per", "call"] {
        words.send(&json!({ "word": word })).await?;
        // Each answer arrives while the call is still open.
        println!("shout: {}", shouts.next().await.ok_or("stream ended")??);
    }
    words.finish().await?;

    server.shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}
