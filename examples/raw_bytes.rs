//! A raw call: a JSON header and a leading JSON response, then raw bytes both
//! ways on the same stream (here: a checksum service reading a byte stream),
//! the caller's bytes pipelined behind the header.
//!
//! Run: `cargo run --example raw_bytes`

use serde_json::{json, Value};
use strand::{Endpoint, RawBody, RawReader, Router, RpcError, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The handler answers with a leading response at once; its body reads the
    // caller's bytes to the end and sends back their count and a checksum.
    let router = Router::new().raw(
        "checksum",
        |_ctx, p: Value, mut input: RawReader| async move {
            let label = p["label"].as_str().unwrap_or("data").to_string();
            let body = futures_util::stream::once(async move {
                let (mut count, mut sum) = (0u64, 0u32);
                let mut buf = [0u8; 8192];
                loop {
                    let n = input.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    count += n as u64;
                    sum = buf[..n]
                        .iter()
                        .fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(*b as u32));
                }
                Ok(bytes::Bytes::from(format!(
                    "{label}: {count} bytes, checksum {sum:08x}\n"
                )))
            });
            Ok::<_, RpcError>((json!({ "ready": true }), RawBody::from_stream(body)))
        },
    );
    let server = Server::builder(router).build();
    let listener = Endpoint::from_url("ws://127.0.0.1:0")?.bind().await?;
    let url = listener.url();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });

    let client = Endpoint::from_url(&url)?.connect().await?;
    // Pipelined: the bytes follow the header at once, without waiting a
    // round trip for the leading response (`client.raw` waits for it and
    // gives it together with the writer).
    let mut call = client
        .raw_pipelined::<_, Value>("checksum", &json!({ "label": "1 MiB of pattern" }))
        .await?;
    let chunk: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    for _ in 0..16 {
        // Each write waits while the stream's window is full: backpressure.
        call.writer.write_all(&chunk).await?;
    }
    call.writer.shutdown().await?;
    let mut response = call.response.leading().await?;
    println!("leading response: {}", response.leading);
    let mut answer = String::new();
    (&mut response.reader)
        .take(1024)
        .read_to_string(&mut answer)
        .await?;
    print!("server says: {answer}");

    server.shutdown(std::time::Duration::from_secs(1)).await;
    Ok(())
}
