//! transport-quic over loopback: stream semantics, TLS, limits.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{drain, open_pair, stream_error, within, Rig};
use strand_rpc_core::transport::{
    codes, stopped, write_boundary, CloseCode, CloseInitiator, CloseReason, Connection, Listener,
    RecvStream, SendStream, StreamError,
};
use strand_tls::{ClientAuth, ClientCertVerification, Identity, ServerVerification};
use strand_transport_quic::{
    QuicClientConfig, QuicConfig, QuicConnection, QuicError, QuicServerConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn open_accept_echo() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let info = server.peer_info();
    assert_eq!(info.transport, "quic");
    assert_eq!(info.remote_addr, Some(rig.client.local_addr().unwrap()));
    assert!(info.certificates.is_empty());
    assert_eq!(
        client.peer_info().remote_addr,
        Some(rig.listener.local_addr())
    );
    assert_eq!(
        client.peer_info().certificates,
        vec![bytes::Bytes::copy_from_slice(&rig.identity.cert_chain()[0])]
    );
    assert_eq!(
        client.alpn().as_deref(),
        Some(strand_transport_quic::STRAND_ALPN)
    );

    let echo = tokio::spawn(async move {
        let stream = server.accept_stream().await.unwrap();
        let (mut send, mut recv) = stream.split();
        let (data, err) = drain(&mut recv).await;
        assert!(err.is_none(), "{err:?}");
        send.write_all(&data).await.unwrap();
        send.shutdown().await.unwrap();
        server
    });
    let (mut send, mut recv) = client.open_stream().await.unwrap().split();
    send.write_all(b"quic hello 0").await.unwrap();
    send.shutdown().await.unwrap();
    let (data, err) = within(drain(&mut recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(data, b"quic hello 0");
    let _server = within(echo).await.unwrap();
}

#[tokio::test]
async fn listener_trait_yields_connections() {
    let rig = Rig::dev().await;
    let addr = Listener::local_addr(&rig.listener).unwrap();
    let (client, server) = within(async {
        tokio::join!(
            rig.client.connect(addr, "127.0.0.1"),
            Listener::accept(&rig.listener)
        )
    })
    .await;
    let (client, server) = (client.unwrap(), server.unwrap());
    let (mut c, mut s) = {
        let mut c = client.open_stream().await.unwrap();
        c.send.write_all(b"x").await.unwrap();
        let s = within(server.accept_stream()).await.unwrap();
        (c, s)
    };
    let mut byte = [0u8; 1];
    s.recv.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"x");
    c.send.shutdown().await.unwrap();
    assert_eq!(within(s.recv.read(&mut byte)).await.unwrap(), 0);
}

#[tokio::test]
async fn fin_reads_zero_and_later_reset_is_a_noop() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"abc").await;
    c.send.write_all(b"def").await.unwrap();
    c.send.shutdown().await.unwrap();
    // Reset after a graceful finish must not turn the stream into an abort.
    c.send.reset(5);
    let (data, err) = within(drain(&mut s.recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(data, b"abcdef");
    // Reads after the end keep returning 0, stop after the end is a no-op.
    let mut buf = [0u8; 4];
    assert_eq!(s.recv.read(&mut buf).await.unwrap(), 0);
    s.recv.stop(9);
    // Writing after the finish fails locally.
    let err = c.send.write_all(b"more").await.unwrap_err();
    assert_eq!(stream_error(&err), StreamError::ClosedLocally);
    // The other direction still works.
    s.send.write_all(b"reply").await.unwrap();
    s.send.shutdown().await.unwrap();
    let (data, err) = within(drain(&mut c.recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(data, b"reply");
}

#[tokio::test]
async fn reset_fails_the_peer_read_with_its_code() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"partial").await;
    c.send.reset(7);
    c.send.reset(8); // idempotent: the first code stands
    let (_, err) = within(drain(&mut s.recv)).await;
    assert_eq!(
        stream_error(&err.expect("read must fail")),
        StreamError::Reset(7)
    );
    let err = c.send.write_all(b"x").await.unwrap_err();
    assert_eq!(stream_error(&err), StreamError::ClosedLocally);
}

#[tokio::test]
async fn stop_fails_the_peer_write_and_resolves_stopped() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"first").await;
    s.recv.stop(9);
    assert_eq!(within(stopped(&mut c.send)).await, 9);
    // Resolves again, with the same code.
    assert_eq!(within(stopped(&mut c.send)).await, 9);
    let err = within(async {
        loop {
            if let Err(e) = c.send.write_all(&[0u8; 1024]).await {
                return e;
            }
        }
    })
    .await;
    assert_eq!(stream_error(&err), StreamError::Stopped(9));
    // Finishing a stopped stream reports the stop instead of pretending success.
    let err = c.send.shutdown().await.unwrap_err();
    assert_eq!(stream_error(&err), StreamError::Stopped(9));
    // Reading from the stopped half fails locally.
    let mut buf = [0u8; 4];
    let err = s.recv.read(&mut buf).await.unwrap_err();
    assert_eq!(stream_error(&err), StreamError::ClosedLocally);
}

#[tokio::test]
async fn stop_after_our_finish_still_reaches_the_peer() {
    // Our send half finished: the STOP_SENDING waits for quinn's ACK (or
    // `stop_ack_wait`) so it leaves in a packet of its own; it still arrives,
    // whether we stop or drop the receive half. Between strand peers it
    // leaves at once.
    for (rig, strand_peers) in [(Rig::js_like().await, false), (Rig::dev().await, true)] {
        let (client, server) = rig.pair().await;
        assert_eq!(server.is_strand_peer(), strand_peers);
        stop_after_finish_reaches(&client, &server).await;
    }
}

async fn stop_after_finish_reaches(client: &QuicConnection, server: &QuicConnection) {
    for explicit in [true, false] {
        let (mut c, mut s) = open_pair(client, server, b"request").await;
        c.send.write_all(b"and more").await.unwrap();
        let mut buf = [0u8; 8];
        within(s.recv.read_exact(&mut buf[..7])).await.unwrap();
        s.send.shutdown().await.unwrap();
        within(s.recv.read_exact(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"and more");
        if explicit {
            s.recv.stop(7);
            assert_eq!(within(stopped(&mut c.send)).await, 7);
        } else {
            drop(s.recv);
            assert_eq!(within(stopped(&mut c.send)).await, codes::CANCELLED);
        }
    }
}

#[tokio::test]
async fn dropping_a_recv_half_whose_end_arrived_sends_no_stop() {
    // A unary answer's FIN comes with its bytes; a caller that read the
    // bytes and drops the half has nothing to stop: no STOP_SENDING (the
    // peer would have to handle it, and perhaps reset a finished stream).
    // Whether our send half is still open or finished, towards strand and
    // JS peers alike. A half dropped before the end arrived still stops.
    for (rig, our_send_finished) in [
        (Rig::dev().await, false),
        (Rig::dev().await, true),
        (Rig::js_like().await, false),
    ] {
        let (client, server) = rig.pair().await;
        let (mut c, mut s) = open_pair(&client, &server, b"request").await;
        if our_send_finished {
            c.send.shutdown().await.unwrap();
        }
        // Written and finished in one poll of this (current-thread)
        // runtime: the bytes and the FIN leave in one packet.
        s.send.write_all(b"answer").await.unwrap();
        s.send.shutdown().await.unwrap();
        let mut buf = [0u8; 6];
        within(c.recv.read_exact(&mut buf)).await.unwrap();
        drop(c.recv);
        // A second exchange: a STOP_SENDING owed would leave before or
        // with it.
        let (_c2, mut s2) = open_pair(&client, &server, b"later").await;
        within(s2.recv.read_exact(&mut [0u8; 5])).await.unwrap();
        assert_eq!(client.quinn().stats().frame_tx.stop_sending, 0);
    }
    // The control: the end had not arrived, so the drop stops the stream.
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (c, mut s) = open_pair(&client, &server, b"request").await;
    drop(c.recv);
    assert_eq!(within(stopped(&mut s.send)).await, codes::CANCELLED);
    assert_eq!(client.quinn().stats().frame_tx.stop_sending, 1);
}

#[tokio::test]
async fn stopped_stays_pending_after_finish() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"all").await;
    c.send.shutdown().await.unwrap();
    let (data, _) = within(drain(&mut s.recv)).await;
    assert_eq!(data, b"all");
    // The peer read everything: nobody stopped us. Give the ack time to
    // arrive, then check that `stopped` did not resolve.
    let waited = tokio::time::timeout(Duration::from_millis(200), stopped(&mut c.send)).await;
    assert!(
        waited.is_err(),
        "stopped resolved after a graceful finish: {waited:?}"
    );
}

#[tokio::test]
async fn dropping_an_unfinished_send_half_resets_it() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (c, mut s) = open_pair(&client, &server, b"truncated").await;
    drop(c.send);
    let (data, err) = within(drain(&mut s.recv)).await;
    assert!(data.len() <= b"truncated".len());
    assert_eq!(
        stream_error(&err.expect("a dropped stream must not look complete")),
        StreamError::Reset(codes::CANCELLED)
    );
}

#[tokio::test]
async fn dropping_a_finished_send_half_keeps_its_data() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"complete").await;
    c.send.shutdown().await.unwrap();
    drop(c);
    let (data, err) = within(drain(&mut s.recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(data, b"complete");
}

#[tokio::test]
async fn a_last_write_finishes_the_stream() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"request ").await;
    let written = std::future::poll_fn(|cx| c.send.poll_write_last(cx, b"last words")).await;
    assert_eq!(written.unwrap(), (10, true));
    // Finishing again is harmless; writing after the finish fails.
    c.send.shutdown().await.unwrap();
    let err = c.send.write_all(b"more").await.unwrap_err();
    assert_eq!(stream_error(&err), StreamError::ClosedLocally);
    // Dropped at once, it still delivers everything, then the end.
    drop(c.send);
    let (data, err) = within(drain(&mut s.recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(data, b"request last words");
}

#[tokio::test]
async fn dropping_an_unread_recv_half_stops_it() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, s) = open_pair(&client, &server, b"nobody reads this").await;
    drop(s.recv);
    assert_eq!(within(stopped(&mut c.send)).await, codes::CANCELLED);
    let err = within(async {
        loop {
            if let Err(e) = c.send.write_all(&[1u8; 1024]).await {
                return e;
            }
        }
    })
    .await;
    assert_eq!(stream_error(&err), StreamError::Stopped(codes::CANCELLED));
}

#[tokio::test]
async fn connection_close_fails_streams_with_connection_closed() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"open").await;
    client.close(CloseCode::Application(42), "bye");
    let (_, err) = within(drain(&mut s.recv)).await;
    assert_eq!(
        stream_error(&err.expect("read must fail")),
        StreamError::ConnectionClosed(CloseReason::peer(CloseCode::Application(42), "bye"))
    );
    let server_reason = within(server.closed()).await;
    assert_eq!(
        server_reason,
        CloseReason::peer(CloseCode::Application(42), "bye")
    );
    // This side reports its own close.
    let err = c.send.write_all(b"x").await.unwrap_err();
    assert_eq!(
        stream_error(&err),
        StreamError::ConnectionClosed(CloseReason::local(CloseCode::Application(42), "bye"))
    );
    let (_, err) = within(drain(&mut c.recv)).await;
    assert_eq!(
        stream_error(&err.unwrap()),
        StreamError::ConnectionClosed(CloseReason::local(CloseCode::Application(42), "bye"))
    );
    assert_eq!(
        within(client.closed()).await,
        CloseReason::local(CloseCode::Application(42), "bye")
    );
    let err = client.open_stream().await.unwrap_err();
    assert!(matches!(err, StreamError::ConnectionClosed(_)), "{err:?}");
    let err = within(server.accept_stream()).await.unwrap_err();
    assert_eq!(
        err,
        StreamError::ConnectionClosed(CloseReason::peer(CloseCode::Application(42), "bye"))
    );
}

#[tokio::test]
async fn dropping_the_connection_closes_it_with_code_zero() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (c, mut s) = open_pair(&client, &server, b"x").await;
    drop(client);
    let reason = within(server.closed()).await;
    assert_eq!(reason.initiator, CloseInitiator::Peer);
    assert_eq!(reason.code, CloseCode::Normal);
    let (_, err) = within(drain(&mut s.recv)).await;
    assert!(matches!(
        stream_error(&err.unwrap()),
        StreamError::ConnectionClosed(CloseReason {
            initiator: CloseInitiator::Peer,
            code: CloseCode::Normal,
            ..
        })
    ));
    drop(c);
}

#[tokio::test]
async fn mutual_tls_identity_reaches_peer_info() {
    let server_id = Identity::dev().unwrap();
    let client_id = Identity::self_signed(&["client.test"]).unwrap();
    let server = QuicServerConfig::new(server_id.clone())
        .with_client_auth(ClientAuth::Required(ClientCertVerification::AnyCertificate));
    let client = QuicClientConfig::new(ServerVerification::Ca(server_id.cert_chain().to_vec()))
        .with_identity(client_id.clone());
    let rig = Rig::with(server_id.clone(), server, client).await;
    let (client, server) = rig.pair().await;
    let chain = |id: &Identity| -> Vec<bytes::Bytes> {
        id.cert_chain()
            .iter()
            .map(|c| bytes::Bytes::copy_from_slice(c))
            .collect()
    };
    assert_eq!(server.peer_info().certificates, chain(&client_id));
    assert_eq!(client.peer_info().certificates, chain(&server_id));
}

#[tokio::test]
async fn required_client_certificate_refuses_anonymous_clients() {
    let server_id = Identity::dev().unwrap();
    let client_id = Identity::self_signed(&["client.test"]).unwrap();
    let server = QuicServerConfig::new(server_id.clone())
        .with_client_auth(ClientAuth::Required(ClientCertVerification::AnyCertificate));
    let verification = ServerVerification::Ca(server_id.cert_chain().to_vec());
    let rig = Rig::with(
        server_id.clone(),
        server,
        QuicClientConfig::new(verification.clone()),
    )
    .await;
    let addr = rig.listener.local_addr();
    // In TLS 1.3 the client may finish its side before the server checks the
    // certificate: the refusal then arrives as a close right after connecting.
    match within(rig.client.connect(addr, "localhost")).await {
        Err(e) => assert!(matches!(e, QuicError::Handshake(_)), "{e}"),
        Ok(conn) => {
            let reason = within(conn.closed()).await;
            assert_eq!(reason.initiator, CloseInitiator::Peer, "{reason}");
            // A TLS alert is a transport error: the code says protocol,
            // the reason names alert 116 (certificate_required).
            assert_eq!(reason.code, CloseCode::Protocol, "{reason}");
            assert!(
                reason.reason.contains("error 116"),
                "certificate_required alert: {reason}"
            );
        }
    }
    // The listener never yielded the refused client: the first connection it
    // yields is the one with a certificate.
    let good = strand_transport_quic::QuicClient::bind(
        "127.0.0.1:0".parse().unwrap(),
        QuicClientConfig::new(verification).with_identity(client_id.clone()),
    )
    .unwrap();
    let (client, server) = within(async {
        tokio::join!(
            good.connect(addr, "localhost"),
            rig.listener.accept_connection()
        )
    })
    .await;
    let (_client, server) = (client.unwrap(), server.unwrap());
    assert_eq!(server.peer_info().certificates.len(), 1);
    assert_eq!(
        &server.peer_info().certificates[0][..],
        &client_id.cert_chain()[0][..]
    );
}

#[tokio::test]
async fn optional_client_certificate_accepts_anonymous_clients() {
    let server_id = Identity::dev().unwrap();
    let server = QuicServerConfig::new(server_id.clone())
        .with_client_auth(ClientAuth::Optional(ClientCertVerification::AnyCertificate));
    let client = QuicClientConfig::new(ServerVerification::Ca(server_id.cert_chain().to_vec()));
    let rig = Rig::with(server_id, server, client).await;
    let (client, server) = rig.pair().await;
    assert!(server.peer_info().certificates.is_empty());
    let (mut c, mut s) = open_pair(&client, &server, b"hi").await;
    c.send.shutdown().await.unwrap();
    assert_eq!(within(drain(&mut s.recv)).await.0, b"hi");
}

#[tokio::test]
async fn wrong_server_name_is_refused() {
    let rig = Rig::dev().await;
    let addr = rig.listener.local_addr();
    let err = within(rig.client.connect(addr, "example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, QuicError::Handshake(_)), "{err}");
}

#[tokio::test]
async fn alpn_mismatch_fails_with_a_clear_error() {
    let identity = Identity::dev().unwrap();
    let mut client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_alpn(vec![b"h3".to_vec()]);
    // Two strand peers would agree on strand/1 whatever else they offer.
    client.transport.strand_alpn = false;
    let rig = Rig::with(identity.clone(), QuicServerConfig::new(identity), client).await;
    let addr = rig.listener.local_addr();
    let err = within(rig.client.connect(addr, "localhost"))
        .await
        .unwrap_err();
    match &err {
        QuicError::AlpnMismatch { offered } => assert_eq!(offered, &vec!["h3".to_owned()]),
        other => panic!("expected an ALPN mismatch, got {other}"),
    }
    assert!(err.to_string().contains("alpn"), "{err}");
}

#[tokio::test]
async fn many_concurrent_streams() {
    const STREAMS: usize = 300; // three times the concurrent stream limit
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let server = Arc::new(server);
    let accept = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..STREAMS {
                let (mut send, mut recv) = server.accept_stream().await.unwrap().split();
                tasks.push(tokio::spawn(async move {
                    let (data, err) = drain(&mut recv).await;
                    assert!(err.is_none(), "{err:?}");
                    send.write_all(&data).await.unwrap();
                    send.shutdown().await.unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    };
    let client = Arc::new(client);
    let mut calls = Vec::new();
    for i in 0..STREAMS {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let (mut send, mut recv) = client.open_stream().await.unwrap().split();
            let payload = format!("stream {i} ").repeat(100).into_bytes();
            send.write_all(&payload).await.unwrap();
            send.shutdown().await.unwrap();
            let (data, err) = drain(&mut recv).await;
            assert!(err.is_none(), "{err:?}");
            assert_eq!(data, payload);
        }));
    }
    within(async {
        for c in calls {
            c.await.unwrap();
        }
        accept.await.unwrap();
    })
    .await;
    // Every stream half was dropped: nothing is left open.
    assert_eq!(client.stats().open_streams, 0);
}

#[tokio::test]
async fn large_transfer_with_a_slow_reader_stays_bounded() {
    const TOTAL: usize = 16 * 1024 * 1024;
    const READ: usize = 16 * 1024;
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.stream_window = 256 * 1024;
    let server = QuicServerConfig::new(identity.clone()).with_transport(transport.clone());
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport.clone());
    let rig = Rig::with(identity, server, client).await;
    let (client, server) = rig.pair().await;

    let written = Arc::new(AtomicU64::new(0));
    let (mut c, mut s) = open_pair(&client, &server, &[0u8]).await;
    written.fetch_add(1, Ordering::SeqCst);
    let writer = {
        let written = written.clone();
        tokio::spawn(async move {
            let chunk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
            let mut sent = 1;
            while sent < TOTAL {
                let n = (TOTAL - sent).min(chunk.len());
                // Counted before the write: `written` may run one chunk ahead
                // of what the transport took, never behind what was read.
                written.fetch_add(n as u64, Ordering::SeqCst);
                c.send.write_all(&chunk[..n]).await.unwrap();
                sent += n;
            }
            c.send.shutdown().await.unwrap();
            c
        })
    };
    // Flow control lets the writer run at most one stream window ahead of
    // what the reader consumed; plus one read and one write chunk of slack
    // for the counters.
    let bound = u64::from(transport.stream_window) + READ as u64 + 64 * 1024;
    let mut read = 0u64;
    let mut max_ahead = 0u64;
    let mut buf = vec![0u8; READ];
    let mut checksum = 0u64;
    within(async {
        loop {
            let n = s.recv.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            checksum = buf[..n].iter().fold(checksum, |a, &b| {
                a.wrapping_mul(31).wrapping_add(u64::from(b))
            });
            read += n as u64;
            let ahead = written.load(Ordering::SeqCst) - read;
            max_ahead = max_ahead.max(ahead);
            assert!(
                ahead <= bound,
                "writer got {ahead} bytes ahead of the reader (bound {bound})"
            );
            // The slow reader: a pause every 256 KiB.
            if read % (256 * 1024) < READ as u64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    })
    .await;
    assert_eq!(read, TOTAL as u64);
    let mut expected = 0u64;
    expected = expected.wrapping_mul(31); // the first byte, 0
    for i in 0..TOTAL - 1 {
        let b = ((i % (64 * 1024)) % 251) as u8;
        expected = expected.wrapping_mul(31).wrapping_add(u64::from(b));
    }
    assert_eq!(checksum, expected);
    within(writer).await.unwrap();
    // The writer really was held back (the window is far smaller than 16 MiB).
    assert!(max_ahead <= bound);
    println!("max bytes ahead of the reader: {max_ahead} (bound {bound})");
}

#[tokio::test]
async fn write_boundary_waits_after_writes_only() {
    // Toward a peer that is not a strand peer (a JS one); between strand
    // peers it never waits (tests/strand_alpn.rs).
    let rig = Rig::js_like().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"first message").await;
    let start = tokio::time::Instant::now();
    within(write_boundary(&mut c.send)).await.unwrap();
    // At least the configured minimum passed (a sleep never ends early).
    assert!(start.elapsed() >= QuicConfig::default().write_boundary_min);
    // Nothing written since: ready at once.
    let ready =
        std::future::poll_fn(|cx| std::task::Poll::Ready(c.send.poll_write_boundary(cx))).await;
    assert!(matches!(ready, std::task::Poll::Ready(Ok(()))));
    c.send.write_all(b" second").await.unwrap();
    c.send.shutdown().await.unwrap();
    assert_eq!(within(drain(&mut s.recv)).await.0, b"first message second");
}

#[tokio::test]
async fn shutdown_drains_open_streams_then_closes_with_code_zero() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"in flight").await;
    let server = Arc::new(server);
    let shutdown = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(Duration::from_secs(20)).await })
    };
    // The in-flight call completes normally.
    c.send.shutdown().await.unwrap();
    let (data, err) = within(drain(&mut s.recv)).await;
    assert!(err.is_none());
    assert_eq!(data, b"in flight");
    s.send.write_all(b"done").await.unwrap();
    s.send.shutdown().await.unwrap();
    assert_eq!(within(drain(&mut c.recv)).await.0, b"done");
    drop((c, s));
    let reason = within(shutdown).await.unwrap();
    assert_eq!(reason, CloseReason::local(CloseCode::Normal, "shutdown"));
    let reason = within(client.closed()).await;
    assert_eq!(reason, CloseReason::peer(CloseCode::Normal, "shutdown"));
}

#[tokio::test]
async fn shutdown_waits_until_dropped_finished_streams_were_acknowledged() {
    // The server finishes a large response, drops the stream and shuts down
    // at once: most of the response is still in flight, and the close must
    // wait for the peer's acknowledgement of it.
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, mut s) = open_pair(&client, &server, b"request").await;
    let response: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    s.send.write_all(&response).await.unwrap();
    s.send.shutdown().await.unwrap();
    drop(s);
    assert_eq!(server.stats().open_streams, 0);
    let shutdown = tokio::spawn(async move { server.shutdown(Duration::from_secs(20)).await });
    let (data, err) = within(drain(&mut c.recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(data.len(), response.len());
    assert!(data == response);
    assert_eq!(
        within(shutdown).await.unwrap(),
        CloseReason::local(CloseCode::Normal, "shutdown")
    );
}

#[tokio::test]
async fn shutdown_refuses_new_streams_and_forces_at_the_deadline() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let (mut c, _s) = open_pair(&client, &server, b"never finishes").await;
    let server = Arc::new(server);
    let shutdown = {
        let server = server.clone();
        tokio::spawn(async move { server.shutdown(Duration::from_millis(500)).await })
    };
    // A stream opened during the drain is refused with SHUTDOWN (or the
    // connection is already closed if the deadline won the race).
    let mut late = within(client.open_stream()).await.unwrap();
    late.send.write_all(b"late").await.unwrap();
    let (_, err) = within(drain(&mut late.recv)).await;
    match stream_error(&err.expect("the late stream must fail")) {
        StreamError::Reset(code) => assert_eq!(code, codes::SHUTDOWN),
        StreamError::ConnectionClosed(r) => assert_eq!(r.code, CloseCode::Normal),
        other => panic!("unexpected {other:?}"),
    }
    let reason = within(shutdown).await.unwrap();
    assert_eq!(reason, CloseReason::local(CloseCode::Normal, "shutdown"));
    let (_, err) = within(drain(&mut c.recv)).await;
    assert_eq!(
        stream_error(&err.unwrap()),
        StreamError::ConnectionClosed(CloseReason::peer(CloseCode::Normal, "shutdown"))
    );
}

#[tokio::test]
async fn pending_connection_limit_refuses_extra_attempts() {
    let identity = Identity::dev().unwrap();
    let mut server = QuicServerConfig::new(identity.clone());
    server.max_pending_handshakes = 1;
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let rig = Rig::with(identity, server, client).await;
    let addr = rig.listener.local_addr();
    // The first connection fills the only slot (nobody accepts it yet).
    let first = within(rig.client.connect(addr, "localhost")).await.unwrap();
    // Its slot was taken when its first packet arrived, before the handshake.
    let second = within(rig.client.connect(addr, "localhost")).await;
    match second {
        Err(e) => assert!(matches!(e, QuicError::Handshake(_)), "{e}"),
        Ok(c) => panic!("second connection accepted while the slot was taken: {c:?}"),
    }
    let accepted = within(rig.listener.accept_connection()).await.unwrap();
    assert_eq!(
        accepted.peer_info().remote_addr,
        Some(rig.client.local_addr().unwrap())
    );
    drop(first);
}

#[tokio::test]
async fn closed_listener_fails_accept() {
    let rig = Rig::dev().await;
    rig.listener.close();
    let err = within(rig.listener.accept_connection()).await.unwrap_err();
    assert!(matches!(err, QuicError::ListenerClosed), "{err}");
    let err = within(Listener::accept(&rig.listener))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
}

#[tokio::test]
async fn connection_limit_refuses_until_a_connection_is_dropped() {
    let identity = Identity::dev().unwrap();
    let mut server = QuicServerConfig::new(identity.clone());
    server.max_connections = 1;
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let rig = Rig::with(identity, server, client).await;
    let addr = rig.listener.local_addr();
    let (first_client, first_server) = rig.pair().await;
    let refused = within(rig.client.connect(addr, "localhost")).await;
    assert!(
        matches!(refused, Err(QuicError::Handshake(_))),
        "{refused:?}"
    );
    // Dropping the accepted connection (and the client's) frees the slot.
    drop(first_server);
    drop(first_client);
    let (_c, _s) = rig.pair().await;
}

#[tokio::test]
async fn one_client_endpoint_serves_many_connections() {
    let rig = Rig::dev().await;
    let other = strand_transport_quic::QuicListener::bind(
        "127.0.0.1:0",
        QuicServerConfig::new(rig.identity.clone()),
    )
    .await
    .unwrap();
    let (a_client, a_server) = rig.pair().await;
    let other_addr = other.local_addr();
    let (b_client, b_server) = within(async {
        tokio::join!(
            rig.client.connect(other_addr, "localhost"),
            other.accept_connection()
        )
    })
    .await;
    let (b_client, b_server) = (b_client.unwrap(), b_server.unwrap());
    // Both connections come from the same local socket.
    let local = rig.client.local_addr().unwrap();
    assert_eq!(a_server.peer_info().remote_addr, Some(local));
    assert_eq!(b_server.peer_info().remote_addr, Some(local));
    for (client, server, tag) in [(&a_client, &a_server, b"a"), (&b_client, &b_server, b"b")] {
        let (mut c, mut s) = open_pair(client, server, tag).await;
        c.send.shutdown().await.unwrap();
        assert_eq!(within(drain(&mut s.recv)).await.0, tag);
    }
    // Closing one leaves the other working.
    a_client.close(CloseCode::Normal, "");
    within(a_server.closed()).await;
    let (mut c, mut s) = open_pair(&b_client, &b_server, b"still here").await;
    c.send.shutdown().await.unwrap();
    assert_eq!(within(drain(&mut s.recv)).await.0, b"still here");
}

#[tokio::test]
async fn ipv6_loopback_with_the_one_shot_connect() {
    let identity = Identity::dev().unwrap();
    let listener = strand_transport_quic::QuicListener::bind(
        "[::1]:0",
        QuicServerConfig::new(identity.clone()),
    )
    .await
    .unwrap();
    let addr = listener.local_addr();
    let config = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let (client, server) = within(async {
        tokio::join!(
            strand_transport_quic::connect(addr, "::1", config),
            listener.accept_connection()
        )
    })
    .await;
    let (client, server) = (client.unwrap(), server.unwrap());
    assert!(server.peer_info().remote_addr.unwrap().is_ipv6());
    let (mut c, mut s) = open_pair(&client, &server, b"v6").await;
    c.send.shutdown().await.unwrap();
    assert_eq!(within(drain(&mut s.recv)).await.0, b"v6");
    // The one-shot endpoint lives as long as its connection: dropping the
    // connection still tells the server (code 0), it does not just vanish.
    drop((c, client));
    let reason = within(server.closed()).await;
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Peer, CloseCode::Normal),
        "{reason}"
    );
}

async fn timing(idle: Duration, keep_alive: Option<Duration>) -> Rig {
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.idle_timeout = Some(idle);
    transport.keep_alive_interval = keep_alive;
    let server = QuicServerConfig::new(identity.clone()).with_transport(transport.clone());
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport);
    Rig::with(identity, server, client).await
}

#[tokio::test]
async fn idle_connection_without_keep_alive_times_out() {
    let rig = timing(Duration::from_millis(300), None).await;
    let (client, server) = rig.pair().await;
    let (mut c, _s) = open_pair(&client, &server, b"x").await;
    let reason = within(client.closed()).await;
    assert_eq!(reason, CloseReason::lost("idle timeout"));
    assert_eq!(
        within(server.closed()).await,
        CloseReason::lost("idle timeout")
    );
    // A writer waiting for `stopped` learns that nobody will read any more.
    assert_eq!(within(stopped(&mut c.send)).await, codes::CANCELLED);
}

#[tokio::test]
async fn keep_alive_holds_an_idle_connection_open() {
    // Keep-alives every 100 ms against a 1 s idle timeout; idle for 2.5 s.
    let rig = timing(Duration::from_secs(1), Some(Duration::from_millis(100))).await;
    let (client, server) = rig.pair().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(client.quinn().close_reason().is_none());
    let (mut c, mut s) = open_pair(&client, &server, b"alive").await;
    c.send.shutdown().await.unwrap();
    assert_eq!(within(drain(&mut s.recv)).await.0, b"alive");
}

#[tokio::test]
async fn handshake_timeout_against_a_silent_peer() {
    // A UDP socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.handshake_timeout = Duration::from_millis(300);
    let config = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport);
    let err = within(strand_transport_quic::connect(
        silent.local_addr().unwrap(),
        "localhost",
        config,
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(err, QuicError::HandshakeTimeout(d) if d == Duration::from_millis(300)),
        "{err}"
    );
}

#[tokio::test]
async fn insecure_and_callback_server_verification() {
    // A certificate for some other name: only Insecure or a callback accept it.
    let identity = Identity::self_signed(&["elsewhere.test"]).unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let callback = ServerVerification::Callback(Arc::new(move |chain, name| {
        log.lock()
            .unwrap()
            .push((chain[0].to_vec(), name.to_str().into_owned()));
        Ok(())
    }));
    for verification in [ServerVerification::Insecure, callback] {
        let rig = Rig::with(
            identity.clone(),
            QuicServerConfig::new(identity.clone()),
            QuicClientConfig::new(verification),
        )
        .await;
        let (client, server) = rig.pair().await;
        let (mut c, mut s) = open_pair(&client, &server, b"ok").await;
        c.send.shutdown().await.unwrap();
        assert_eq!(within(drain(&mut s.recv)).await.0, b"ok");
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0],
        (identity.cert_chain()[0].to_vec(), "localhost".to_owned())
    );

    // A refusing callback fails the handshake with its message.
    let refuse = ServerVerification::Callback(Arc::new(|_, _| Err("pinned key mismatch".into())));
    let rig = Rig::with(
        identity.clone(),
        QuicServerConfig::new(identity.clone()),
        QuicClientConfig::new(refuse),
    )
    .await;
    let addr = rig.listener.local_addr();
    let err = within(rig.client.connect(addr, "localhost"))
        .await
        .unwrap_err();
    assert!(matches!(err, QuicError::Handshake(_)), "{err}");
    assert!(err.to_string().contains("pinned key mismatch"), "{err}");
}

#[tokio::test]
async fn connection_stats_count_the_bytes_each_way() {
    let rig = Rig::dev().await;
    let (client, server) = rig.pair().await;
    let server_before = server.stats();
    let client_before = client.stats();
    let payload = vec![7u8; 100_000];
    let echo = tokio::spawn(async move {
        let (mut send, mut recv) = server.accept_stream().await.unwrap().split();
        let (data, err) = drain(&mut recv).await;
        assert!(err.is_none(), "{err:?}");
        send.write_all(&data).await.unwrap();
        send.shutdown().await.unwrap();
        server
    });
    let (mut send, mut recv) = client.open_stream().await.unwrap().split();
    send.write_all(&payload).await.unwrap();
    send.shutdown().await.unwrap();
    let (back, err) = within(drain(&mut recv)).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(back.len(), payload.len());
    let server = within(echo).await.unwrap();
    let (client_after, server_after) = (client.stats(), server.stats());
    let n = payload.len() as u64;
    // UDP datagrams: the payload plus QUIC's framing, each way.
    assert!(client_after.bytes_sent - client_before.bytes_sent >= n);
    assert!(client_after.bytes_received - client_before.bytes_received >= n);
    assert!(server_after.bytes_received - server_before.bytes_received >= n);
    assert!(server_after.bytes_sent - server_before.bytes_sent >= n);
}

/// A process that closes its connection and exits at once (`strand call`
/// does) must still tell the server: the close is sent by the endpoint's
/// driver task, which stops with the client's runtime.
#[tokio::test]
async fn a_client_that_closes_and_exits_at_once_still_tells_the_server() {
    let rig = Rig::dev().await;
    let addr = rig.listener.local_addr();
    let verification = ServerVerification::Ca(rig.identity.cert_chain().to_vec());
    let client = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let conn = strand_transport_quic::connect(
                addr,
                "localhost",
                QuicClientConfig::new(verification),
            )
            .await
            .unwrap();
            conn.close(CloseCode::Normal, "done");
            conn.closed().await
        })
        // The runtime, the endpoint's driver with it, ends here.
    });
    let server = within(rig.listener.accept_connection()).await.unwrap();
    let ours = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    assert_eq!(ours.initiator, CloseInitiator::Local, "{ours}");
    // The default idle timeout is far longer than this wait: a close that
    // was never sent would show as a timeout here.
    let reason = tokio::time::timeout(Duration::from_secs(5), server.closed())
        .await
        .expect("the server heard the close");
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Peer, CloseCode::Normal),
        "{reason}"
    );
}
