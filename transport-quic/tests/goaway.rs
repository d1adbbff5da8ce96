//! The go-away notice on QUIC (docs/protocol.md, "Go-away"): a datagram,
//! sent only to a peer that advertised datagram support, which strand peers
//! do unless `QuicConfig::datagram_receive_buffer` is 0.

mod common;

use common::{within, Rig};
use strand_tls::{Identity, ServerVerification};
use strand_transport_quic::{QuicClientConfig, QuicConfig, QuicServerConfig};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_strand_client_gets_the_notice_and_the_connection_keeps_working() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    assert!(server.go_away(), "the client advertised datagram support");
    within(client.going_away()).await;
    // A notice is no close: a stream still opens and carries data.
    let (mut send, _recv) = client.open_stream().await.unwrap().split();
    send.write_all(b"still here").await.unwrap();
    let stream = within(server.accept_stream()).await.unwrap();
    drop(stream);
}

#[tokio::test]
async fn a_client_without_datagram_support_is_sent_no_notice() {
    let identity = Identity::dev().unwrap();
    let server = QuicServerConfig::new(identity.clone());
    let mut transport = QuicConfig::default();
    transport.datagram_receive_buffer = 0;
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport);
    let rig = Rig::with(identity, server, client).await;
    let (_client, server) = rig.pair().await;
    assert!(!server.go_away(), "nothing for a peer that offered nothing");
}
