//! Loopback throughput of the QUIC transport: one stream, then several in
//! parallel. Run with `cargo run --release -p strand-transport-quic --example quic_throughput`.

use std::sync::Arc;
use std::time::Instant;

use strand_rpc_core::transport::CloseCode;
use strand_tls::{Identity, ServerVerification};
use strand_transport_quic::{QuicClient, QuicClientConfig, QuicListener, QuicServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let identity = Identity::dev()?;
    let listener =
        QuicListener::bind("127.0.0.1:0", QuicServerConfig::new(identity.clone())).await?;
    let addr = listener.local_addr();
    // The server reads every stream to its end and answers with the byte count.
    tokio::spawn(async move {
        while let Ok(conn) = listener.accept_connection().await {
            tokio::spawn(async move {
                while let Ok(stream) = conn.accept_stream().await {
                    let (mut send, mut recv) = stream.split();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        let mut total = 0u64;
                        while let Ok(n) = recv.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            total += n as u64;
                        }
                        let _ = send.write_all(&total.to_be_bytes()).await;
                        let _ = send.shutdown().await;
                    });
                }
            });
        }
    });
    let client = QuicClient::bind(
        "127.0.0.1:0".parse()?,
        QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec())),
    )?;
    let conn = Arc::new(client.connect(addr, "localhost").await?);
    for (streams, per_stream) in [(1usize, 256 * MIB), (8, 32 * MIB)] {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let conn = conn.clone();
            tasks.push(tokio::spawn(async move {
                let (mut send, mut recv) = conn.open_stream().await.expect("open").split();
                let chunk = vec![7u8; 64 * 1024];
                let mut sent = 0;
                while sent < per_stream {
                    send.write_all(&chunk).await.expect("write");
                    sent += chunk.len();
                }
                send.shutdown().await.expect("finish");
                let mut count = [0u8; 8];
                recv.read_exact(&mut count).await.expect("count");
                assert_eq!(u64::from_be_bytes(count), per_stream as u64);
            }));
        }
        for t in tasks {
            t.await?;
        }
        let secs = start.elapsed().as_secs_f64();
        let total = (streams * per_stream) as f64 / MIB as f64;
        println!(
            "{streams} stream(s) x {} MiB: {:.0} MiB/s",
            per_stream / MIB,
            total / secs
        );
    }
    conn.close(CloseCode::Normal, "done");
    client.close().await;
    Ok(())
}
