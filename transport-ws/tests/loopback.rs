//! The transport over a real loopback WebSocket.

mod common;

use common::{eventually, pair_with, LIMIT};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strand_rpc_core::transport::{
    codes, CloseCode, CloseInitiator, Connection, Listener, RecvStream, SendStream, StreamError,
};
use strand_transport_ws::{
    connect, UpgradeRequest, WsClientConfig, WsConfig, WsConnection, WsListener, WsRecvStream,
    WsSendStream, WsServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

async fn pair() -> (WsListener, WsConnection, WsConnection) {
    pair_with(WsConfig::default(), WsConfig::default()).await
}

/// The next stream the peer opened, split, within the test's limit.
async fn accept_split(conn: &WsConnection) -> (WsSendStream, WsRecvStream) {
    timeout(LIMIT, conn.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split()
}

/// Everything `recv` gives until its end, within the test's limit.
async fn read_all(recv: &mut WsRecvStream) -> Vec<u8> {
    let mut got = Vec::new();
    timeout(LIMIT, recv.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    got
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn echo_round_trip_and_peer_info() {
    let (_l, client, server) = pair().await;
    let info = server.peer_info();
    assert_eq!(info.transport, "ws");
    assert!(info.remote_addr.unwrap().ip().is_loopback());
    assert_eq!(UpgradeRequest::of(&info).unwrap().uri.path(), "/");
    assert_eq!(client.peer_info().transport, "ws");

    let echo = tokio::spawn(async move {
        for _ in 0..3 {
            let (mut send, mut recv) = server.accept_stream().await.unwrap().split();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                recv.read_to_end(&mut buf).await.unwrap();
                send.write_all(&buf).await.unwrap();
                send.shutdown().await.unwrap();
            });
        }
        server
    });
    let mut tasks = Vec::new();
    for i in 0..3u8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let (mut send, mut recv) = client.open_stream().await.unwrap().split();
            let data = pattern(200_000 + usize::from(i), i);
            send.write_all(&data).await.unwrap();
            send.shutdown().await.unwrap();
            let mut back = Vec::new();
            recv.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, data);
        }));
    }
    for t in tasks {
        timeout(LIMIT, t).await.unwrap().unwrap();
    }
    timeout(LIMIT, echo).await.unwrap().unwrap();
}

/// Writes `data` on a fresh stream from `writer_conn`, counting bytes accepted.
fn spawn_writer(
    conn: WsConnection,
    data: Vec<u8>,
    written: Arc<AtomicU64>,
    opened: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut send, _recv) = if opened {
            conn.open_stream().await.unwrap().split()
        } else {
            conn.accept_stream().await.unwrap().split()
        };
        for chunk in data.chunks(8 * 1024) {
            send.write_all(chunk).await.unwrap();
            written.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        send.shutdown().await.unwrap();
    })
}

/// One side writes 4 windows' worth on stream A while the other side does not
/// read it; a second stream B completes a full transfer meanwhile.
async fn backpressure(writer: WsConnection, reader: WsConnection, writer_opens: bool) {
    let window = 64 * 1024u64;
    let total = 4 * window as usize;
    let written_a = Arc::new(AtomicU64::new(0));
    let data_a = pattern(total, 1);
    let task_a = spawn_writer(
        writer.clone(),
        data_a.clone(),
        written_a.clone(),
        writer_opens,
    );
    // The reader side takes stream A (opening it if the writer accepts) and
    // does not read it.
    let (_send_a, recv_a) = if writer_opens {
        timeout(LIMIT, reader.accept_stream())
            .await
            .unwrap()
            .unwrap()
            .split()
    } else {
        reader.open_stream().await.unwrap().split()
    };
    reader_keep(
        recv_a,
        &reader,
        &written_a,
        window,
        total,
        &data_a,
        task_a,
        writer,
        writer_opens,
    )
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn reader_keep(
    mut recv_a: strand_transport_ws::WsRecvStream,
    reader: &WsConnection,
    written_a: &Arc<AtomicU64>,
    window: u64,
    total: usize,
    data_a: &[u8],
    task_a: tokio::task::JoinHandle<()>,
    writer: WsConnection,
    writer_opens: bool,
) {
    // A stalls: the writer got exactly one window through and waits.
    eventually("stream A stalls at one window", || {
        recv_a.stats().map(|s| s.buffered) == Some(window)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = recv_a.stats().unwrap();
    assert_eq!(
        stats.buffered, window,
        "buffered bytes never exceed the window"
    );
    assert_eq!(stats.peer_credit, 0);
    assert!(written_a.load(Ordering::SeqCst) <= window + 8 * 1024);
    assert!(!task_a.is_finished(), "writer A waits at zero credit");

    // Stream B on the same connection completes a full transfer meanwhile.
    let data_b = pattern(total, 2);
    let written_b = Arc::new(AtomicU64::new(0));
    let task_b = spawn_writer(writer.clone(), data_b.clone(), written_b, writer_opens);
    let (_send_b, mut recv_b) = if writer_opens {
        timeout(LIMIT, reader.accept_stream())
            .await
            .unwrap()
            .unwrap()
            .split()
    } else {
        let (s, r) = reader.open_stream().await.unwrap().split();
        (s, r)
    };
    let mut got_b = Vec::new();
    timeout(LIMIT, recv_b.read_to_end(&mut got_b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got_b, data_b);
    timeout(LIMIT, task_b).await.unwrap().unwrap();
    // A is still stalled, its buffer still bounded.
    assert!(!task_a.is_finished());
    assert_eq!(recv_a.stats().unwrap().buffered, window);
    assert!(reader.stats().buffered <= window);

    // Now A's reader catches up and the transfer completes.
    let mut got_a = Vec::new();
    timeout(LIMIT, recv_a.read_to_end(&mut got_a))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got_a, data_a);
    timeout(LIMIT, task_a).await.unwrap().unwrap();
}

fn small_window() -> WsConfig {
    WsConfig::default().with_stream_window(64 * 1024)
}

#[tokio::test]
async fn backpressure_client_writes_server_does_not_read() {
    let (_l, client, server) = pair_with(small_window(), small_window()).await;
    backpressure(client, server, true).await;
}

#[tokio::test]
async fn backpressure_server_writes_client_does_not_read() {
    let (_l, client, server) = pair_with(small_window(), small_window()).await;
    // The server writes on streams the client opens.
    backpressure(server, client, false).await;
}

#[tokio::test]
async fn reset_and_stop_cross_the_wire() {
    let (_l, client, server) = pair().await;
    let (mut send, mut recv) = client.open_stream().await.unwrap().split();
    send.write_all(b"x").await.unwrap();
    let (mut s_send, mut s_recv) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    // The client aborts its sending half: the server's read fails at once.
    send.reset(7);
    let err = timeout(LIMIT, async {
        let mut buf = [0u8; 16];
        loop {
            match s_recv.read(&mut buf).await {
                Ok(_) => continue,
                Err(e) => return e,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(StreamError::from_io(&err), Some(&StreamError::Reset(7)));
    // The client stops reading: the server's writes fail, poll_stopped fires.
    recv.stop(9);
    let code = timeout(LIMIT, strand_rpc_core::transport::stopped(&mut s_send))
        .await
        .unwrap();
    assert_eq!(code, 9);
    let err = s_send.write_all(b"late").await.unwrap_err();
    assert_eq!(StreamError::from_io(&err), Some(&StreamError::Stopped(9)));
}

#[tokio::test]
async fn dropped_halves_cancel_the_stream() {
    let (_l, client, server) = pair().await;
    let (send, recv) = client.open_stream().await.unwrap().split();
    let (mut s_send, mut s_recv) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    drop(send);
    drop(recv);
    let mut buf = [0u8; 4];
    let err = timeout(LIMIT, s_recv.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(
        StreamError::from_io(&err),
        Some(&StreamError::Reset(codes::CANCELLED))
    );
    let code = timeout(LIMIT, strand_rpc_core::transport::stopped(&mut s_send))
        .await
        .unwrap();
    assert_eq!(code, codes::CANCELLED);
    drop((s_send, s_recv));
    eventually("streams released on both sides", || {
        client.stats().streams_open == 0 && server.stats().streams_open == 0
    })
    .await;
}

/// The last write queues the finish with it: the peer reads the bytes and
/// then the end, with no `shutdown` called.
#[tokio::test]
async fn a_last_write_finishes_the_stream() {
    let (_l, client, server) = pair().await;
    let (mut send, _recv) = client.open_stream().await.unwrap().split();
    let written = std::future::poll_fn(|cx| send.poll_write_last(cx, b"last words")).await;
    assert_eq!(written.unwrap(), (10, true));
    let (_s_send, mut s_recv) = accept_split(&server).await;
    assert_eq!(read_all(&mut s_recv).await, b"last words");
    // Finishing again is harmless; writing after the finish fails.
    send.shutdown().await.unwrap();
    assert!(send.write_all(b"more").await.is_err());
}

/// A receiving half that read the end is done with the stream: the stream
/// is released once the other half is, while that half is still held, and
/// it keeps reading the end (chunks and bytes alike) and ignores a stop.
#[tokio::test]
async fn a_recv_half_that_read_the_end_lets_its_stream_go() {
    let (_l, client, server) = pair().await;
    let (mut send, recv) = client.open_stream().await.unwrap().split();
    send.write_all(b"ping").await.unwrap();
    send.shutdown().await.unwrap();
    let (mut s_send, mut s_recv) = accept_split(&server).await;
    assert_eq!(read_all(&mut s_recv).await, b"ping");
    s_send.write_all(b"pong").await.unwrap();
    s_send.shutdown().await.unwrap();
    drop(s_send);
    drop((send, recv));
    // Both ends let go although the server still holds its reading half.
    eventually("streams released on both sides", || {
        client.stats().streams_open == 0 && server.stats().streams_open == 0
    })
    .await;
    assert_eq!(s_recv.read(&mut [0u8; 4]).await.unwrap(), 0);
    let chunk = std::future::poll_fn(|cx| s_recv.poll_read_chunk(cx, 64)).await;
    assert!(chunk.unwrap().is_none());
    s_recv.stop(codes::CANCELLED);
    assert_eq!(server.stats().streams_open, 0);
    drop(s_recv);
    assert!(server.stats().queued_control == 0);
}

#[tokio::test]
async fn peer_close_ends_every_stream_with_code_and_reason() {
    let (_l, client, server) = pair().await;
    let (_send, mut recv) = client.open_stream().await.unwrap().split();
    let _s = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    Connection::close(&server, CloseCode::GoingAway, "going away");
    let mut buf = [0u8; 4];
    let err = timeout(LIMIT, recv.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    match StreamError::from_io(&err) {
        Some(StreamError::ConnectionClosed(reason)) => {
            assert_eq!(reason.initiator, CloseInitiator::Peer);
            assert_eq!(reason.code, CloseCode::GoingAway);
            assert_eq!(reason.reason, "going away");
        }
        other => panic!("unexpected {other:?}"),
    }
    let reason = timeout(LIMIT, client.closed()).await.unwrap();
    assert_eq!(reason.code, CloseCode::GoingAway);
    let reason = timeout(LIMIT, server.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Local, CloseCode::GoingAway)
    );
    assert!(matches!(
        client.open_stream().await.map(|s| s.split()),
        Err(StreamError::ConnectionClosed(_))
    ));
    assert!(matches!(
        server.accept_stream().await.map(|s| s.split()),
        Err(StreamError::ConnectionClosed(_))
    ));
}

#[tokio::test]
async fn dropping_the_last_handle_closes_normally() {
    let (_l, client, server) = pair().await;
    drop(client);
    let reason = timeout(LIMIT, server.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Peer, CloseCode::Normal)
    );
}

#[tokio::test]
async fn listener_trait_object_accepts() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let addr = Listener::local_addr(&listener).unwrap();
    let client = connect(&format!("ws://{addr}"), WsClientConfig::default())
        .await
        .unwrap();
    let conn = timeout(LIMIT, Listener::accept(&listener))
        .await
        .unwrap()
        .unwrap();
    let stream = client.open_stream().await.unwrap();
    let (mut send, _recv) = stream.split();
    send.write_all(b"hi").await.unwrap();
    let (_s, mut r) = conn.accept_stream().await.unwrap().split();
    let mut buf = [0u8; 2];
    timeout(LIMIT, r.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"hi");
}

#[tokio::test]
async fn normal_close_reaches_the_peer_as_normal() {
    let (_l, client, server) = pair().await;
    Connection::close(&server, CloseCode::Normal, "bye");
    let reason = timeout(LIMIT, client.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code, reason.reason.as_str()),
        (CloseInitiator::Peer, CloseCode::Normal, "bye")
    );
    let reason = timeout(LIMIT, server.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Local, CloseCode::Normal)
    );
}

#[tokio::test]
async fn trait_shutdown_closes_normally() {
    let (_l, client, server) = pair().await;
    let conn: strand_rpc_core::transport::DynConnection = Arc::new(server);
    Connection::shutdown(&*conn, Duration::from_secs(5)).await;
    let reason = timeout(LIMIT, client.closed()).await.unwrap();
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Peer, CloseCode::Normal)
    );
}

#[tokio::test]
async fn write_boundary_waits_until_a_js_like_peer_read_the_message() {
    // A server that does not advertise its window is treated like a JS peer.
    let cfg = WsServerConfig::default().with_advertise_window(false);
    let listener = WsListener::bind("127.0.0.1:0", cfg).await.unwrap();
    let url = format!("ws://{}/", listener.local_addr());
    let client = connect(&url, WsClientConfig::default()).await.unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    let (mut send, _recv) = client.open_stream().await.unwrap().split();
    send.write_all(b"header").await.unwrap();
    let (_s, mut r) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let early = timeout(
        Duration::from_millis(100),
        strand_rpc_core::transport::write_boundary(&mut send),
    )
    .await;
    assert!(early.is_err(), "ready before the peer read the message");
    let mut buf = [0u8; 6];
    r.read_exact(&mut buf).await.unwrap();
    timeout(LIMIT, strand_rpc_core::transport::write_boundary(&mut send))
        .await
        .unwrap()
        .unwrap();
}

/// `shutdown` returns once the finish is queued, before the peer has read
/// (or, toward a peer that did not advertise its window, acknowledged) the
/// data; dropping the half then still delivers every byte and the end.
#[tokio::test]
async fn a_finished_half_delivers_its_data_after_the_handle_is_dropped() {
    for advertise in [true, false] {
        let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
            .await
            .unwrap();
        let url = format!("ws://{}/", listener.local_addr());
        // A budget large enough that every stream starts with the whole
        // 1 MiB window: the 200 KB below go out before the client reads.
        let mut client_cfg = WsClientConfig::default()
            .with_transport(WsConfig::default().with_connection_receive_buffer(512 << 20));
        // Without the advertisement the server treats the client as a JS
        // peer: CLOSE waits until every byte was acknowledged.
        client_cfg.advertise_window = advertise;
        let client = connect(&url, client_cfg).await.unwrap();
        let server = timeout(LIMIT, listener.accept_connection())
            .await
            .unwrap()
            .unwrap();

        let (mut send, _recv) = server.open_stream().await.unwrap().split();
        let data = pattern(200_000, 7);
        // The peer reads nothing yet: the ACKs a JS-like peer would wait for
        // cannot have come.
        timeout(LIMIT, send.write_all(&data))
            .await
            .unwrap()
            .unwrap();
        timeout(LIMIT, send.shutdown()).await.unwrap().unwrap();
        drop(send);
        let (_cs, mut cr) = timeout(LIMIT, client.accept_stream())
            .await
            .unwrap()
            .unwrap()
            .split();
        let mut got = Vec::new();
        timeout(LIMIT, cr.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), data.len(), "advertise {advertise}");
        assert!(got == data, "advertise {advertise}: bytes differ");
    }
}

#[tokio::test]
async fn try_open_and_try_accept_never_wait() {
    let (_l, client, server) = pair().await;
    assert!(server.try_accept_stream().is_none(), "nothing opened yet");
    let opened = client.try_open_stream().expect("no limit reached");
    let (mut send, _recv) = opened.unwrap().split();
    send.write_all(b"hi").await.unwrap();
    eventually("the peer's stream is waiting", || {
        server.try_accept_stream().is_some_and(|s| s.is_ok())
    })
    .await;
    assert!(server.try_accept_stream().is_none(), "taken once");
    // At the stream limit, opening would wait.
    let mut one_stream = WsConfig::default();
    one_stream.max_streams = 1;
    let (_l2, limited, _peer) = pair_with(WsConfig::default(), one_stream).await;
    let _held = limited.try_open_stream().unwrap().unwrap();
    assert!(limited.try_open_stream().is_none());
    // Once closed, both report it at once.
    Connection::close(&client, CloseCode::Normal, "");
    assert!(matches!(
        client.try_open_stream(),
        Some(Err(StreamError::ConnectionClosed(_)))
    ));
    eventually("the server saw the close", || {
        matches!(
            server.try_accept_stream(),
            Some(Err(StreamError::ConnectionClosed(_)))
        )
    })
    .await;
}

#[tokio::test]
async fn connection_stats_count_the_bytes_each_way() {
    let (_l, client, server) = pair().await;
    let payload = pattern(100_000, 3);
    let echo = tokio::spawn(async move {
        let (mut send, mut recv) = server.accept_stream().await.unwrap().split();
        let mut buf = Vec::new();
        recv.read_to_end(&mut buf).await.unwrap();
        send.write_all(&buf).await.unwrap();
        send.shutdown().await.unwrap();
        server
    });
    let (mut send, mut recv) = client.open_stream().await.unwrap().split();
    send.write_all(&payload).await.unwrap();
    send.shutdown().await.unwrap();
    let mut back = Vec::new();
    timeout(LIMIT, recv.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, payload);
    let server = timeout(LIMIT, echo).await.unwrap().unwrap();
    let n = payload.len() as u64;
    // Each side counted the payload (and the mux framing) both ways: the
    // server read all of it before it echoed it, and handed its echo to
    // the socket before the client read it.
    let (client, server) = (client.stats(), server.stats());
    assert!(client.bytes_sent >= n, "{client:?}");
    assert!(client.bytes_received >= n, "{client:?}");
    assert!(server.bytes_received >= n, "{server:?}");
    assert!(server.bytes_sent >= n, "{server:?}");
    // Framing is a few bytes per message, not a copy of the payload.
    assert!(client.bytes_sent < 2 * n, "{client:?}");
}
