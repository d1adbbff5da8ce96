//! Fixtures shared by the QUIC tests.
#![allow(dead_code)]

use std::io;

use strand_rpc_core::transport::{Connection, StreamError};
use strand_tls::{Identity, ServerVerification};
use strand_transport_quic::{
    QuicClient, QuicClientConfig, QuicConnection, QuicListener, QuicServerConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use strand_test_support::within;

/// A listener and a client endpoint that trust each other.
pub struct Rig {
    /// The server's identity.
    pub identity: Identity,
    /// The server side.
    pub listener: QuicListener,
    /// The client side.
    pub client: QuicClient,
}

impl Rig {
    /// Default configs, a dev certificate pinned by the client.
    pub async fn dev() -> Rig {
        let identity = Identity::dev().unwrap();
        let server = QuicServerConfig::new(identity.clone());
        let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
        Rig::with(identity, server, client).await
    }

    /// Default configs, except that the server does not offer `strand/1`:
    /// the client treats it as it treats a `@matrixai/quic` peer (write
    /// boundaries and stops wait), and the server treats the client so.
    pub async fn js_like() -> Rig {
        let identity = Identity::dev().unwrap();
        let mut server = QuicServerConfig::new(identity.clone());
        server.transport.strand_alpn = false;
        let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
        Rig::with(identity, server, client).await
    }

    /// Custom configs.
    pub async fn with(
        identity: Identity,
        server: QuicServerConfig,
        client: QuicClientConfig,
    ) -> Rig {
        let listener = QuicListener::bind("127.0.0.1:0", server).await.unwrap();
        let client = QuicClient::bind("127.0.0.1:0".parse().unwrap(), client).unwrap();
        Rig {
            identity,
            listener,
            client,
        }
    }

    /// A connected (client, server) pair.
    pub async fn pair(&self) -> (QuicConnection, QuicConnection) {
        let addr = self.listener.local_addr();
        let (client, server) = within(async {
            tokio::join!(
                self.client.connect(addr, "localhost"),
                self.listener.accept_connection()
            )
        })
        .await;
        (client.unwrap(), server.unwrap())
    }
}

/// Reads until EOF or an error; returns the bytes and the error, if any.
pub async fn drain(recv: &mut (impl AsyncRead + Unpin)) -> (Vec<u8>, Option<io::Error>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match recv.read(&mut buf).await {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// The `StreamError` inside an `io::Error` (panics if there is none).
pub fn stream_error(err: &io::Error) -> StreamError {
    StreamError::from_io(err)
        .unwrap_or_else(|| panic!("not a StreamError: {err:?}"))
        .clone()
}

/// Opens a stream on `client`, writes `first` so the peer learns of it, and
/// accepts it on `server`.
pub async fn open_pair(
    client: &QuicConnection,
    server: &QuicConnection,
    first: &[u8],
) -> (
    strand_rpc_core::transport::Stream,
    strand_rpc_core::transport::Stream,
) {
    use tokio::io::AsyncWriteExt;
    within(async {
        let mut c = Connection::open_stream(client).await.unwrap();
        c.send.write_all(first).await.unwrap();
        let s = Connection::accept_stream(server).await.unwrap();
        (c, s)
    })
    .await
}
