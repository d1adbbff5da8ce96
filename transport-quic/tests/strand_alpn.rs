//! Strand peers recognise each other by ALPN (`strand/1`, docs/protocol.md,
//! "ALPN") and skip the waits that only `@matrixai/quic` peers need; a peer
//! that does not offer it gets them.

mod common;

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use common::{within, Rig};
use futures_util::StreamExt;
use strand_rpc_core::client::{Client, ClientConfig};
use strand_rpc_core::server::{Incoming, Router, Server};
use strand_rpc_core::transport::{Connection, DynConnection, SendStream};
use strand_rpc_core::RpcError;
use strand_tls::{Identity, ServerVerification};
use strand_transport_quic::{
    QuicClientConfig, QuicConfig, QuicConnection, QuicError, QuicServerConfig, STRAND_ALPN,
};
use tokio::io::AsyncWriteExt;

/// Long enough that a test which waited for it would hit `within`'s bound.
const NEVER: Duration = Duration::from_secs(3600);

/// Transport settings whose write boundary never ends, and whether to offer
/// `strand/1`.
fn transport(strand_alpn: bool) -> QuicConfig {
    let mut t = QuicConfig::default();
    t.write_boundary_min = NEVER;
    t.strand_alpn = strand_alpn;
    t
}

async fn rig(server_strand_alpn: bool, client_strand_alpn: bool) -> Rig {
    let identity = Identity::dev().unwrap();
    let server =
        QuicServerConfig::new(identity.clone()).with_transport(transport(server_strand_alpn));
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport(client_strand_alpn));
    Rig::with(identity, server, client).await
}

/// Writes a byte on a new stream and polls its write boundary once: whether
/// it was ready at once.
async fn boundary_is_immediate(conn: &QuicConnection) -> bool {
    let mut stream = within(Connection::open_stream(conn)).await.unwrap();
    stream.send.write_all(b"{").await.unwrap();
    let send = &mut stream.send;
    std::future::poll_fn(|cx| Poll::Ready(send.poll_write_boundary(cx).is_ready())).await
}

#[tokio::test]
async fn strand_peers_negotiate_strand_alpn_and_do_not_wait() {
    let rig = rig(true, true).await;
    let (client, server) = rig.pair().await;
    for conn in [&client, &server] {
        assert_eq!(conn.alpn().as_deref(), Some(STRAND_ALPN));
        assert!(conn.is_strand_peer());
    }
    assert!(boundary_is_immediate(&client).await);
    assert_eq!(client.stats().boundary_waits, 0);
}

#[tokio::test]
async fn a_peer_without_strand_alpn_gets_the_js_protections() {
    for (server_on, client_on) in [(false, true), (true, false)] {
        let rig = rig(server_on, client_on).await;
        let (client, server) = rig.pair().await;
        for conn in [&client, &server] {
            assert_eq!(conn.alpn().as_deref(), Some(&b"quic"[..]));
            assert!(!conn.is_strand_peer());
        }
        assert!(
            !boundary_is_immediate(&client).await,
            "server {server_on}, client {client_on}"
        );
        assert_eq!(client.stats().boundary_waits, 1);
    }
}

#[tokio::test]
async fn strand_peers_skip_the_js_check_of_the_configured_alpn() {
    // Both offer strand/1 first: the configured protocols need not match.
    let identity = Identity::dev().unwrap();
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_alpn(vec![b"h3".to_vec()]);
    assert_eq!(
        client.offered_alpn(),
        vec![STRAND_ALPN.to_vec(), b"h3".to_vec()]
    );
    let rig = Rig::with(identity.clone(), QuicServerConfig::new(identity), client).await;
    let (client, _server) = rig.pair().await;
    assert!(client.is_strand_peer());

    // Without it on the client, the mismatch is reported with what was offered.
    let identity = Identity::dev().unwrap();
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_alpn(vec![b"h3".to_vec()])
        .with_transport(transport(false));
    let rig = Rig::with(identity.clone(), QuicServerConfig::new(identity), client).await;
    let err = within(rig.client.connect(rig.listener.local_addr(), "localhost"))
        .await
        .unwrap_err();
    match err {
        QuicError::AlpnMismatch { offered } => assert_eq!(offered, vec!["h3".to_owned()]),
        other => panic!("expected an ALPN mismatch, got {other}"),
    }
}

/// A client-streaming call between strand peers: its first message is
/// followed at once by the next (a boundary of an hour would hold the call
/// past `within`'s bound), and no boundary waited.
#[tokio::test]
async fn a_client_streaming_call_between_strand_peers_starts_without_waiting() {
    let rig = rig(true, true).await;
    let (client, server) = rig.pair().await;
    let router =
        Router::new().client_streaming("sum", |_ctx, mut input: Incoming<i64>| async move {
            let mut sum = 0;
            while let Some(n) = input.next().await {
                sum += n?;
            }
            Ok::<_, RpcError>(sum)
        });
    Server::builder(router)
        .build()
        .spawn_connection(Arc::new(server));
    let client = Arc::new(client);
    let rpc = Client::from_shared(client.clone() as DynConnection, ClientConfig::default());
    let sum = within(async {
        let mut call = rpc.client_streaming::<i64, i64>("sum").await.unwrap();
        for x in [1, 2, 3] {
            call.send(&x).await.unwrap();
        }
        call.finish().await.unwrap()
    })
    .await;
    assert_eq!(sum, 6);
    assert_eq!(client.stats().boundary_waits, 0);
}
