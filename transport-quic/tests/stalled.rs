//! A stream whose reader stalls holds at most its configured window: the
//! peer may send only the advertised window, and what quinn received for it
//! (whole datagrams, plus its per-packet bookkeeping) fits in the window.

mod common;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::{within, Rig};
use strand_tls::{Identity, ServerVerification};
use strand_transport_quic::{QuicClientConfig, QuicConfig, QuicServerConfig};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// One write attempt that does not wait: `None` when the write would block.
fn try_write(send: &mut (impl AsyncWrite + Unpin), buf: &[u8]) -> Option<io::Result<usize>> {
    let mut cx = Context::from_waker(Waker::noop());
    match Pin::new(send).poll_write(&mut cx, buf) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

/// Heap bytes quinn keeps per received packet besides the datagram itself:
/// the shared-buffer header and the reassembly index entry with the index
/// vector's spare capacity (see `QuicConfig::stream_window`).
const PER_PACKET_BOOKKEEPING: u64 = 40 + 2 * 56;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_holds_at_most_its_window() {
    // Large enough that a few packets a loaded machine makes the server
    // send twice (loss probes; quinn keeps such duplicates until it
    // compacts) stay within the room the advertised window leaves.
    const WINDOW: u32 = 2_000_000;
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.stream_window = WINDOW;
    let server = QuicServerConfig::new(identity.clone());
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport);
    let rig = Rig::with(identity, server, client).await;
    let (client, server) = rig.pair().await;

    let (mut csend, mut crecv) = client.open_stream().await.unwrap().split();
    csend.write_all(b"x").await.unwrap();
    let (mut ssend, mut srecv) = within(server.accept_stream()).await.unwrap().split();
    let mut first = [0u8; 1];
    within(srecv.read_exact(&mut first)).await.unwrap();
    let rx_before = client.quinn().stats().udp_rx;

    // The client never reads: the server's writes are taken up to the
    // stream credit the client advertised, then block.
    let chunk = vec![7u8; 16 * 1024];
    let mut accepted = 0u64;
    for _ in 0..1000 {
        match try_write(&mut ssend, &chunk) {
            Some(Ok(n)) => accepted += n as u64,
            Some(Err(e)) => panic!("write failed: {e}"),
            None => break,
        }
    }
    assert_eq!(
        accepted,
        QuicConfig::advertised_window(u64::from(WINDOW)),
        "the peer may send the advertised window and no more"
    );
    assert!(accepted <= u64::from(WINDOW));

    // Everything accepted reaches the client (it holds it unread).
    let mut rx = client.quinn().stats().udp_rx;
    for _ in 0..3000 {
        if rx.bytes - rx_before.bytes >= accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        rx = client.quinn().stats().udp_rx;
    }
    let (bytes, datagrams) = (
        rx.bytes - rx_before.bytes,
        rx.datagrams - rx_before.datagrams,
    );
    assert!(
        bytes >= accepted,
        "only {bytes} of {accepted} bytes arrived"
    );
    let held = bytes + datagrams * PER_PACKET_BOOKKEEPING;
    eprintln!("window {WINDOW}, accepted {accepted}, received {bytes} B in {datagrams} datagrams, held <= {held}");
    assert!(
        held <= u64::from(WINDOW),
        "{bytes} B in {datagrams} datagrams: about {held} B held, over the window"
    );
    // The stall blocks nothing else: the stream still reads in full.
    let mut got = vec![0u8; accepted as usize];
    within(crecv.read_exact(&mut got)).await.unwrap();
    assert!(got.iter().all(|&b| b == 7));
    drop(ssend);
}
