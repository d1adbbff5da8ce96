//! Handshake slots under a slowloris: pending handshakes are bounded per
//! source address as well as in total, and no handshake holds its slot past
//! the handshake timeout (docs/reliability.md, "Hostile peers"). Counts
//! only: nothing here depends on how fast the machine is.

mod common;

use common::{eventually, LIMIT};

use std::net::SocketAddr;
use std::time::Duration;

use strand_transport_ws::strand_tls::{Identity, ServerTls};
use strand_transport_ws::{WsConfig, WsListener, WsServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// The start of a request head that never ends: a slowloris.
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n";

async fn listener(per_ip: usize, handshake_timeout: Duration) -> WsListener {
    listener_with(WsServerConfig::default(), per_ip, handshake_timeout).await
}

async fn listener_with(
    config: WsServerConfig,
    per_ip: usize,
    handshake_timeout: Duration,
) -> WsListener {
    let mut config = config
        .with_max_pending_handshakes_per_ip(per_ip)
        .with_transport(WsConfig::default().with_handshake_timeout(handshake_timeout));
    config.max_pending_handshakes = 64;
    WsListener::bind("127.0.0.1:0", config).await.unwrap()
}

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads until the server closes the socket; panics if it never does.
async fn closed_by_server(socket: &mut TcpStream) {
    let mut buf = [0u8; 256];
    timeout(LIMIT, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server never closed the socket");
}

/// A raw upgrade from `from`: the status line the server answered, and the
/// socket.
async fn upgrade_from(from: &str, server: SocketAddr) -> (String, TcpStream) {
    let mut socket = connect_from(from, server).await;
    let request = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        let n = timeout(LIMIT, socket.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "closed before the status line");
        head.push(byte[0]);
    }
    (String::from_utf8(head).unwrap(), socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_from_one_address_takes_at_most_its_per_source_slots() {
    const SLOW: usize = 40;
    const PER_IP: usize = 8;
    // Long enough that no slow handshake expires during the test.
    let listener = listener(PER_IP, Duration::from_secs(600)).await;
    let addr = listener.local_addr();
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut socket = connect_from("127.0.0.1", addr).await;
        // Refused sockets may already be closed: the write may fail.
        let _ = socket.write_all(PARTIAL_HEAD).await;
        slow.push(socket);
    }
    eventually("every slow socket was taken or refused", || {
        let stats = listener.stats();
        stats.handshakes + stats.refused_per_source as usize == SLOW
    })
    .await;
    let stats = listener.stats();
    assert_eq!(stats.handshakes, PER_IP);
    assert_eq!(stats.refused_per_source, (SLOW - PER_IP) as u64);

    // A client from another loopback address is still served, while the
    // eight slow handshakes hold their slots.
    let (status, _good_socket) = upgrade_from("127.0.0.2", addr).await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let good = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    let remote = good.peer().remote_addr.unwrap();
    assert_eq!(remote.ip().to_string(), "127.0.0.2");
    assert_eq!(
        listener.stats().handshakes,
        PER_IP,
        "the slow ones still wait"
    );

    // The refused sockets were closed at once; the taken ones are open.
    for socket in &mut slow[PER_IP..] {
        closed_by_server(socket).await;
    }
    let mut buf = [0u8; 1];
    for socket in &mut slow[..PER_IP] {
        assert!(
            socket.try_read(&mut buf).is_err(),
            "still waiting for a head"
        );
    }

    // Closing the slow sockets gives their slots back.
    drop(slow);
    eventually("the slow handshakes ended", || {
        listener.stats().handshakes == 0
    })
    .await;
    assert_eq!(listener.stats().open_connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_keeps_trickling_is_closed_at_the_handshake_timeout() {
    let listener = listener(8, Duration::from_secs(1)).await;
    // A header value that never ends, one byte every 100 ms: progress, but
    // the timeout covers the whole head, not each read.
    trickle_until_closed(&listener, b"GET / HTTP/1.1\r\nX-Slow: ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_keeps_trickling_is_closed_at_the_handshake_timeout() {
    let tls = ServerTls::new(Identity::dev().unwrap());
    let listener = listener_with(
        WsServerConfig::default().with_tls(tls),
        8,
        Duration::from_secs(1),
    )
    .await;
    // A TLS record header announcing a ClientHello that never ends: the
    // timeout covers the TLS handshake too.
    trickle_until_closed(&listener, &[0x16, 0x03, 0x01, 0x3f, 0xff, 0x01]).await;
}

/// Connects, sends `start`, then one byte every 100 ms until the server
/// closes the socket; then checks the slot was given back.
async fn trickle_until_closed(listener: &WsListener, start: &[u8]) {
    let addr = listener.local_addr();
    let mut slow = connect_from("127.0.0.1", addr).await;
    eventually("the handshake started", || listener.stats().handshakes == 1).await;
    let trickle = async {
        if slow.write_all(start).await.is_err() {
            return;
        }
        loop {
            if slow.write_all(b"a").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    timeout(LIMIT, trickle)
        .await
        .expect("the trickling handshake was never closed");
    eventually("its slot was given back", || {
        let stats = listener.stats();
        stats.handshakes == 0 && stats.open_connections == 0
    })
    .await;
}
