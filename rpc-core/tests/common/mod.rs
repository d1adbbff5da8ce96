//! Fixtures shared by rpc-core's integration tests: a server and a client over
//! the memory transport, and raw byte exchanges for wire-level checks.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;
use strand_rpc_core::memory::{self, MemoryConnection};
use strand_rpc_core::server::{Router, Server, ServerBuilder};
use strand_rpc_core::transport::Connection;
use strand_rpc_core::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running server and a connection to it.
pub struct Fixture {
    pub server: Server,
    pub client: Client,
    pub conn: Arc<MemoryConnection>,
}

pub fn start(router: Router) -> Fixture {
    start_with(Server::builder(router))
}

pub fn start_with(builder: ServerBuilder) -> Fixture {
    let server = builder.build();
    let (client_side, server_side) = memory::pair();
    server.spawn_connection(Arc::new(server_side));
    let conn = Arc::new(client_side);
    let client = Client::from_shared(conn.clone(), Default::default());
    Fixture {
        server,
        client,
        conn,
    }
}

impl Fixture {
    /// Opens a stream, writes `chunks` (one write each), finishes, and returns
    /// everything the server wrote back.
    pub async fn exchange(&self, chunks: &[&[u8]]) -> Vec<u8> {
        let mut stream = self.conn.open_stream().await.unwrap();
        for chunk in chunks {
            stream.send.write_all(chunk).await.unwrap();
        }
        stream.send.shutdown().await.unwrap();
        let mut out = Vec::new();
        stream.recv.read_to_end(&mut out).await.unwrap();
        out
    }

    /// Like [`Fixture::exchange`], parsed as JSON values.
    pub async fn exchange_json(&self, chunks: &[&[u8]]) -> Vec<Value> {
        let bytes = self.exchange(chunks).await;
        serde_json::Deserializer::from_slice(&bytes)
            .into_iter::<Value>()
            .map(|v| v.unwrap())
            .collect()
    }
}
