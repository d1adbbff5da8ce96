//! Hostile and broken peers: bursts, peers that stop reading, silent peers.
//! Each test names the bound it checks (docs/reliability.md, "Hostile peers").

mod common;

use common::{eventually, LIMIT};

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use strand_rpc_core::server::{Router, Server};
use strand_transport_ws::mux::{Frame, StreamId};
use strand_transport_ws::{WsConfig, WsListener, WsServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A raw WebSocket client on `listener` and the server's connection.
async fn raw_client(
    listener: &WsListener,
) -> (
    tokio_tungstenite::WebSocketStream<TcpStream>,
    strand_transport_ws::WsConnection,
) {
    let addr = listener.local_addr();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (raw, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .unwrap();
    let server = timeout(LIMIT, listener.accept_connection())
        .await
        .unwrap()
        .unwrap();
    (raw, server)
}

#[tokio::test]
async fn a_burst_of_opens_in_one_write_is_served_up_to_max_streams() {
    const BURST: u64 = 100;
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let (mut raw, server) = raw_client(&listener).await;
    // 100 opens (ACK on a fresh client id) with a byte each, fed without a
    // flush: they leave in one socket write and arrive before anyone accepts.
    for i in 0..BURST {
        let id = StreamId(2 * i);
        raw.feed(Message::Binary(
            Frame::Ack {
                id,
                credit: 1 << 20,
            }
            .to_bytes(),
        ))
        .await
        .unwrap();
        raw.feed(Message::Binary(Frame::encode_data(id, b"x")))
            .await
            .unwrap();
    }
    raw.flush().await.unwrap();
    eventually("the burst reached the session", || {
        let s = server.stats();
        s.stream_backlog as u64 + s.refused == BURST
    })
    .await;
    assert_eq!(server.stats().refused, 0, "none refused below max_streams");
    for _ in 0..BURST {
        timeout(LIMIT, server.accept_stream())
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(server.stats().stream_backlog, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_silent_peers_concurrently() {
    const PEERS: usize = 4;
    let grace = Duration::from_secs(1);
    let close_timeout = WsConfig::default().close_timeout;
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let server = Server::builder(Router::new()).build();
    let serving = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    // Peers that complete the upgrade, then never read again: our close
    // frame is never answered.
    let mut silent = Vec::new();
    for _ in 0..PEERS {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (raw, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .unwrap();
        silent.push(raw);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    timeout(LIMIT * 4, server.shutdown(grace)).await.unwrap();
    let took = start.elapsed();
    println!("shutdown of {PEERS} silent peers took {took:?} (virtual time)");
    // One close timeout for all of them, not one each (4 × 5 s before).
    assert!(
        took <= grace + close_timeout + Duration::from_secs(1),
        "shutdown took {took:?} for {PEERS} silent peers"
    );
    serving.await.unwrap().unwrap();
    drop(silent);
}

#[tokio::test]
async fn a_graceful_shutdown_sends_every_finished_byte_before_the_close() {
    // More than the loopback socket buffers hold while the peer does not
    // read: most of it is still queued in the session when the close starts.
    const LEN: usize = 16 << 20;
    let server_cfg = WsConfig::default()
        .with_stream_send_buffer(2 * LEN)
        .with_connection_send_buffer(2 * LEN);
    let listener = WsListener::bind(
        "127.0.0.1:0",
        WsServerConfig::default().with_transport(server_cfg),
    )
    .await
    .unwrap();
    let (mut raw, server) = raw_client(&listener).await;
    let id = StreamId(0);
    raw.send(Message::Binary(
        Frame::Ack {
            id,
            credit: 2 * LEN as u32,
        }
        .to_bytes(),
    ))
    .await
    .unwrap();
    // The request is never finished: the drain cannot end early.
    raw.send(Message::Binary(Frame::encode_data(id, b"?")))
        .await
        .unwrap();
    let (mut send, mut recv) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let mut one = [0u8; 1];
    recv.read_exact(&mut one).await.unwrap();
    let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    // Queued whole (within the credit and the send buffer), finished, and
    // the connection shut down at once, while the peer is not reading.
    send.write_all(&data).await.unwrap();
    send.shutdown().await.unwrap();
    let closing = tokio::spawn(async move { server.shutdown(Duration::ZERO).await });
    let mut got = Vec::new();
    let mut close_frame = None;
    while let Some(msg) = timeout(LIMIT, raw.next()).await.unwrap() {
        match msg.unwrap() {
            Message::Binary(bytes) => {
                if let Ok(Frame::Data { id: d, payload }) = Frame::decode(bytes) {
                    assert_eq!(d, id);
                    got.extend_from_slice(&payload);
                }
            }
            Message::Close(frame) => {
                close_frame = frame;
                break;
            }
            _ => {}
        }
    }
    assert_eq!(got.len(), LEN, "every finished byte came before the close");
    assert!(got == data);
    assert_eq!(u16::from(close_frame.unwrap().code), 1000);
    // Reading on sends our reply, which completes the close handshake.
    while let Some(Ok(_)) = timeout(LIMIT, raw.next()).await.unwrap() {}
    timeout(LIMIT, closing).await.unwrap().unwrap();
}

/// A raw client that opens `streams` streams, granting each 64 MiB of credit
/// and sending a byte, then never reads; the server accepts them all.
async fn non_reading_peer(
    server_cfg: WsConfig,
    streams: u64,
) -> (
    WsListener,
    tokio_tungstenite::WebSocketStream<TcpStream>,
    strand_transport_ws::WsConnection,
    Vec<strand_transport_ws::WsStream>,
) {
    let listener = WsListener::bind(
        "127.0.0.1:0",
        WsServerConfig::default().with_transport(server_cfg),
    )
    .await
    .unwrap();
    let (mut raw, server) = raw_client(&listener).await;
    for i in 0..streams {
        let id = StreamId(2 * i);
        raw.feed(Message::Binary(
            Frame::Ack {
                id,
                credit: 64 << 20,
            }
            .to_bytes(),
        ))
        .await
        .unwrap();
        raw.feed(Message::Binary(Frame::encode_data(id, b"?")))
            .await
            .unwrap();
    }
    raw.flush().await.unwrap();
    let mut accepted = Vec::new();
    for _ in 0..streams {
        accepted.push(
            timeout(LIMIT, server.accept_stream())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    (listener, raw, server, accepted)
}

/// Writes 64 KiB pieces on `stream` until it fails, counting what was taken.
fn write_forever(
    stream: strand_transport_ws::WsStream,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut send, _recv) = stream.split();
        let piece = vec![7u8; 64 << 10];
        while send.write_all(&piece).await.is_ok() {
            written.fetch_add(piece.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    })
}

#[tokio::test]
async fn a_peer_that_stops_reading_holds_at_most_the_connection_send_buffer() {
    const STREAMS: u64 = 8;
    const BUDGET: usize = 1 << 20;
    // 8 streams × 256 KiB of stream_send_buffer = 2 MiB without the budget.
    let cfg = WsConfig::default()
        .with_connection_send_buffer(BUDGET)
        .with_send_timeout(None);
    let (_l, _raw, server, streams) = non_reading_peer(cfg, STREAMS).await;
    let counters: Vec<_> = (0..STREAMS)
        .map(|_| std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)))
        .collect();
    let writers: Vec<_> = streams
        .into_iter()
        .zip(&counters)
        .map(|(s, c)| write_forever(s, c.clone()))
        .collect();
    eventually("the send queues filled", || {
        server.stats().queued_send >= BUDGET as u64
    })
    .await;
    // Let every writer try again: the queue stays at the budget.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = server.stats().queued_send;
    println!("queued for a non-reading peer: {queued} bytes (budget {BUDGET})");
    assert!(queued <= BUDGET as u64, "{queued} bytes queued");
    for (i, c) in counters.iter().enumerate() {
        assert!(
            c.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "stream {i} wrote nothing"
        );
    }
    for w in writers {
        w.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_closed_after_the_send_timeout() {
    let send_timeout = Duration::from_secs(30);
    let cfg = WsConfig::default().with_send_timeout(Some(send_timeout));
    let (_l, mut raw, server, mut streams) = non_reading_peer(cfg, 1).await;
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let writer = write_forever(streams.pop().unwrap(), written.clone());
    // The peer keeps pinging (and so keeps the idle timer away): that does
    // not count as taking our data.
    let pinger = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if raw.send(Message::Ping(Default::default())).await.is_err() {
                break;
            }
        }
    });
    let reason = timeout(Duration::from_secs(120), server.closed())
        .await
        .expect("closed by the send timeout");
    let took = start.elapsed();
    println!("closed after {took:?} (virtual time): {reason}");
    assert!(took >= send_timeout, "closed too early: {took:?}");
    assert!(took < send_timeout + Duration::from_secs(5), "{took:?}");
    assert_eq!(
        reason.code,
        strand_rpc_core::transport::CloseCode::GoingAway
    );
    assert_eq!(reason.reason, "send timeout");
    assert_eq!(server.stats().queued_send, 0, "queues released");
    timeout(LIMIT, writer).await.unwrap().unwrap();
    pinger.abort();
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_sends_a_close_frame_going_away() {
    let idle = Duration::from_secs(10);
    let cfg = WsConfig::default()
        .with_keep_alive_interval(None)
        .with_idle_timeout(Some(idle));
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default().with_transport(cfg))
        .await
        .unwrap();
    let (mut raw, _server) = raw_client(&listener).await;
    let start = Instant::now();
    // A peer that sends nothing but still reads.
    let msg = timeout(Duration::from_secs(100), raw.next())
        .await
        .expect("the server ended the connection")
        .expect("a message before the end");
    let took = start.elapsed();
    let Ok(Message::Close(Some(frame))) = msg else {
        panic!("no close frame: {msg:?}");
    };
    println!("closed after {took:?} (virtual time): {frame}");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(frame.reason.as_str(), "idle timeout");
    assert!(took >= idle, "{took:?}");
}

/// Reads until the peer's close frame; its code and reason (`None` if the
/// connection ended without one).
async fn close_frame_of(
    raw: &mut (impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
              + Unpin),
) -> Option<(u16, String)> {
    while let Some(msg) = timeout(Duration::from_secs(60), raw.next()).await.ok()? {
        match msg {
            Ok(Message::Close(frame)) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// One client-opened stream's open, a whole request and its abort (both
/// halves), as a rapid-reset attacker sends them.
fn open_request_reset(i: u64) -> [Message; 4] {
    let id = StreamId(2 * i);
    [
        Message::Binary(
            Frame::Ack {
                id,
                credit: 1 << 20,
            }
            .to_bytes(),
        ),
        Message::Binary(Frame::encode_data(
            id,
            br#"{"jsonrpc":"2.0","method":"slow","params":null}"#,
        )),
        Message::Binary(
            Frame::Error {
                id,
                shutdown: strand_transport_ws::mux::Shutdown::Read,
                code: 0,
            }
            .to_bytes(),
        ),
        Message::Binary(
            Frame::Error {
                id,
                shutdown: strand_transport_ws::mux::Shutdown::Write,
                code: 0,
            }
            .to_bytes(),
        ),
    ]
}

#[tokio::test(start_paused = true)]
async fn a_rapid_reset_flood_is_closed_1008_having_started_no_more_handlers_than_its_budget() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CYCLES: u64 = 50_000;
    let budget = WsConfig::default().floods.resets;
    assert_eq!((budget.burst, budget.per_second), (500, 100));
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let (raw, conn) = raw_client(&listener).await;
    let started = std::sync::Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let router = Router::new().unary("slow", move |_ctx, _p: ()| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, strand_rpc_core::RpcError>(())
        }
    });
    let server = Server::builder(router).build();
    server.spawn_connection(std::sync::Arc::new(conn.clone()));
    let (mut sink, mut stream) = raw.split();
    let start = Instant::now();
    let attacker = tokio::spawn(async move {
        let mut sent = 0u64;
        for i in 0..CYCLES {
            for msg in open_request_reset(i) {
                if sink.feed(msg).await.is_err() {
                    return sent;
                }
            }
            sent += 1;
            if i % 64 == 63 && sink.flush().await.is_err() {
                return sent;
            }
        }
        let _ = sink.flush().await;
        sent
    });
    let close = close_frame_of(&mut stream).await;
    let elapsed = start.elapsed();
    let stats = conn.stats();
    println!(
        "closed after {elapsed:?} (virtual): {close:?}; {} aborts counted, {} handlers started",
        stats.aborted_by_peer,
        started.load(Ordering::SeqCst)
    );
    assert_eq!(
        close,
        Some((1008, "flood: stream resets and refusals".to_owned()))
    );
    // The budget is 500 at once plus 100 a second of (virtual) time.
    let allowed = 500 + 100 * elapsed.as_secs() + 100;
    assert!(stats.aborted_by_peer <= allowed, "{stats:?}");
    assert!(started.load(Ordering::SeqCst) as u64 <= allowed);
    // Nothing of the connection is left once it closed.
    eventually("the calls ended", || server.calls_in_flight() == 0).await;
    eventually("the streams were released", || {
        conn.stats().streams_open == 0
    })
    .await;
    let s = conn.stats();
    assert_eq!((s.buffered, s.queued_send, s.stream_backlog), (0, 0, 0));
    let sent = timeout(LIMIT, attacker).await.unwrap().unwrap();
    assert!(
        sent < CYCLES,
        "the attacker was cut off, after {sent} cycles"
    );
}

#[tokio::test(start_paused = true)]
async fn an_open_flood_past_max_streams_is_refused_then_closed_1008() {
    const MAX: u64 = 8;
    let cfg = WsConfig::default().with_max_streams(MAX as usize);
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default().with_transport(cfg))
        .await
        .unwrap();
    let (raw, conn) = raw_client(&listener).await;
    let (mut sink, mut stream) = raw.split();
    // Nobody accepts: 8 streams are taken, the rest refused until the
    // refusals pass the reset budget (500).
    let attacker = tokio::spawn(async move {
        for i in 0..10_000u64 {
            let ack = Frame::Ack {
                id: StreamId(2 * i),
                credit: 1 << 20,
            };
            if sink.feed(Message::Binary(ack.to_bytes())).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
    });
    let close = close_frame_of(&mut stream).await;
    let stats = conn.stats();
    println!("{close:?}: {stats:?}");
    assert_eq!(
        close,
        Some((1008, "flood: stream resets and refusals".to_owned()))
    );
    assert_eq!(stats.refused, 501, "500 refusals fit the budget");
    assert!(stats.streams_open as u64 <= MAX);
    attacker.abort();
}

#[tokio::test(start_paused = true)]
async fn an_empty_data_flood_is_closed_1008_holding_no_more_than_it_sent() {
    const FLOOD: u64 = 30_000;
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let (raw, conn) = raw_client(&listener).await;
    let (mut sink, mut stream) = raw.split();
    let id = StreamId(0);
    let attacker = tokio::spawn(async move {
        let ack = Frame::Ack {
            id,
            credit: 1 << 20,
        };
        sink.feed(Message::Binary(ack.to_bytes())).await.unwrap();
        for i in 0..FLOOD {
            // Empty and one-byte DATA, alternately.
            let payload: &[u8] = if i % 2 == 0 { b"" } else { b"x" };
            let msg = Message::Binary(Frame::encode_data(id, payload));
            if sink.feed(msg).await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
    });
    let close = close_frame_of(&mut stream).await;
    let stats = conn.stats();
    println!("{close:?}: {stats:?}");
    assert_eq!(close, Some((1008, "flood: empty DATA messages".to_owned())));
    assert_eq!(stats.empty_data, 10_001, "10,000 fit the budget at once");
    attacker.abort();
}

#[tokio::test(start_paused = true)]
async fn a_ping_flood_from_a_peer_that_does_not_read_is_closed_1008() {
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let (raw, conn) = raw_client(&listener).await;
    let (mut sink, mut stream) = raw.split();
    // 1,000 pings and no read (the pongs are not taken) until the end.
    for _ in 0..1000 {
        sink.feed(Message::Ping(Default::default())).await.unwrap();
    }
    sink.flush().await.unwrap();
    eventually("the connection closed", || conn.stats().pings > 50).await;
    let stats = conn.stats();
    assert_eq!(stats.pings, 51, "50 pings fit the budget at once");
    let reason = timeout(LIMIT, conn.closed()).await.unwrap();
    assert_eq!(reason.code, strand_rpc_core::transport::CloseCode::Policy);
    assert_eq!(reason.reason, "flood: pings");
    // Reading now: at most one pong was kept pending, then the close.
    let mut pongs = 0;
    let close = loop {
        match timeout(LIMIT, stream.next()).await.unwrap() {
            Some(Ok(Message::Pong(_))) => pongs += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("{other:?}"),
        }
    };
    println!("{pongs} pongs before the close");
    assert_eq!(close, Some(1008));
    // The WebSocket layer answers the pings of the batch the budget ran
    // out in (up to 64 messages a batch) before the session sees them.
    assert!(pongs <= 51 + 64, "{pongs} pongs");
}

#[tokio::test(start_paused = true)]
async fn resetting_running_handlers_is_closed_1008_within_the_budget() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const CYCLES: u64 = 50_000;
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let (raw, conn) = raw_client(&listener).await;
    let started = std::sync::Arc::new(AtomicUsize::new(0));
    let running = std::sync::Arc::new(tokio::sync::Notify::new());
    let (count, notify) = (started.clone(), running.clone());
    let router = Router::new().unary("slow", move |_ctx, _p: ()| {
        count.fetch_add(1, Ordering::SeqCst);
        notify.notify_one();
        std::future::pending::<Result<(), strand_rpc_core::RpcError>>()
    });
    let server = Server::builder(router).build();
    server.spawn_connection(std::sync::Arc::new(conn.clone()));
    let (mut sink, mut stream) = raw.split();
    let start = Instant::now();
    // Each cycle waits until its handler runs, then resets the call: the
    // budget bounds the handlers started, not only the frames.
    let attacker = tokio::spawn(async move {
        for i in 0..CYCLES {
            let [open, request, reset_read, reset_write] = open_request_reset(i);
            for msg in [open, request] {
                if sink.feed(msg).await.is_err() {
                    return i;
                }
            }
            if sink.flush().await.is_err() {
                return i;
            }
            if timeout(LIMIT, running.notified()).await.is_err() {
                return i;
            }
            for msg in [reset_read, reset_write] {
                if sink.feed(msg).await.is_err() {
                    return i;
                }
            }
        }
        CYCLES
    });
    let close = close_frame_of(&mut stream).await;
    let elapsed = start.elapsed();
    let handlers = started.load(Ordering::SeqCst) as u64;
    println!("closed after {elapsed:?} (virtual): {close:?}; {handlers} handlers started");
    assert_eq!(
        close,
        Some((1008, "flood: stream resets and refusals".to_owned()))
    );
    // 500 at once and 100 a second, plus the one running when it closed.
    assert!(handlers <= 500 + 100 * elapsed.as_secs() + 1, "{handlers}");
    assert!(handlers >= 500, "the budget let {handlers} through");
    eventually("the calls ended", || server.calls_in_flight() == 0).await;
    eventually("the streams were released", || {
        conn.stats().streams_open == 0
    })
    .await;
    attacker.abort();
}

/// An RPC server with an `echo` method on one ws connection; the client's
/// connection, and a counter of the calls that reached the handler.
async fn echo_server() -> (
    WsListener,
    strand_transport_ws::WsConnection,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let (listener, client, server_conn) =
        common::pair_with(WsConfig::default(), WsConfig::default()).await;
    let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = started.clone();
    let router = Router::new().unary("echo", move |_ctx, p: Option<String>| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { Ok::<_, strand_rpc_core::RpcError>(p) }
    });
    Server::builder(router)
        .build()
        .spawn_connection(std::sync::Arc::new(server_conn));
    (listener, client, started)
}

/// Sends `bytes` on a fresh stream and finishes (off the reading task: the
/// server may stop reading early); returns what the server answered, as
/// text.
async fn exchange(client: &strand_transport_ws::WsConnection, bytes: Vec<u8>) -> String {
    let (mut send, mut recv) = timeout(LIMIT, client.open_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let writer = tokio::spawn(async move {
        let _ = send.write_all(&bytes).await;
        let _ = send.shutdown().await;
    });
    let mut out = Vec::new();
    timeout(LIMIT, recv.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let _ = writer.await;
    String::from_utf8(out).unwrap()
}

/// The error code of an answer, if it is one JSON-RPC error.
fn error_code(answer: &str) -> Option<i64> {
    let at = answer.find(r#""code":"#)? + 7;
    let end = answer[at..].find([',', '}'])? + at;
    answer[at..end].trim().parse().ok()
}

fn echo_request(len: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","method":"echo","params":""#;
    let mut msg = head.to_vec();
    msg.resize(len - 2, b'x');
    msg.extend_from_slice(br#""}"#);
    msg
}

#[tokio::test]
async fn an_oversized_first_message_is_answered_too_long_without_a_handler() {
    use std::sync::atomic::Ordering;
    let (_l, client, started) = echo_server().await;
    let limit = 64 << 10;
    let ok = exchange(&client, echo_request(limit)).await;
    assert!(ok.contains(r#""result":"xxx"#), "{}", &ok[..80]);
    // One byte over 64 KiB, and a 1 MiB one (the former limit): refused.
    for len in [limit + 1, 1 << 20] {
        let answer = exchange(&client, echo_request(len)).await;
        assert_eq!(error_code(&answer), Some(-32003), "{answer}");
    }
    assert_eq!(started.load(Ordering::SeqCst), 1);
    // The connection still serves.
    let again = exchange(&client, echo_request(100)).await;
    assert!(again.contains("result"), "{again}");
}

#[tokio::test(start_paused = true)]
async fn a_first_message_too_slow_is_answered_timed_out_after_10_s() {
    let (_l, client, started) = echo_server().await;
    let (mut send, mut recv) = timeout(LIMIT, client.open_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let start = Instant::now();
    let trickle = tokio::spawn(async move {
        send.write_all(br#"{"jsonrpc":"2.0","method":"echo","#)
            .await
            .unwrap();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if send.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    timeout(Duration::from_secs(60), recv.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let took = start.elapsed();
    let answer = String::from_utf8(out).unwrap();
    println!("answered after {took:?} (virtual): {answer}");
    assert_eq!(error_code(&answer), Some(-32008), "{answer}");
    assert!(took >= Duration::from_secs(10) && took < Duration::from_secs(11));
    assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 0);
    trickle.abort();
}

#[tokio::test]
async fn deep_nesting_invalid_utf8_and_garbage_get_clean_errors() {
    let (_l, client, started) = echo_server().await;
    // 30,000 levels of arrays in the params, within the 64 KiB limit.
    let mut deep = br#"{"jsonrpc":"2.0","method":"echo","params":"#.to_vec();
    deep.extend(std::iter::repeat_n(b'[', 30_000));
    deep.extend(std::iter::repeat_n(b']', 30_000));
    deep.push(b'}');
    let cases: [(&str, Vec<u8>); 5] = [
        ("deep nesting", deep),
        (
            "invalid UTF-8 in a string",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"ec\xff\xfeho\"}".to_vec(),
        ),
        ("not JSON", b"hello, world".to_vec()),
        ("binary garbage", (0..=255u8).rev().collect()),
        ("unbalanced", b"{\"jsonrpc\":\"2.0\"]]]".to_vec()),
    ];
    for (what, bytes) in cases {
        let answer = exchange(&client, bytes).await;
        let code = error_code(&answer);
        println!("{what}: {code:?}");
        // The params are kept raw until the method's type reads them
        // (-32602 here); any type's read stops at serde_json's recursion
        // limit (128) rather than overflowing the stack.
        assert!(
            matches!(code, Some(-32700 | -32600 | -32602)),
            "{what}: {answer}"
        );
    }
    assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 0);
    let again = exchange(&client, echo_request(100)).await;
    assert!(again.contains("result"), "{again}");
}

#[tokio::test]
async fn a_peer_filling_every_stream_holds_no_more_than_the_connection_receive_buffer() {
    const STREAMS: u64 = 256;
    let cfg = WsConfig::default();
    let budget = cfg.connection_receive_buffer as u64;
    let initial = cfg.initial_stream_window();
    assert_eq!((budget, initial), (32 << 20, 64 << 10));
    let listener = WsListener::bind("127.0.0.1:0", WsServerConfig::default())
        .await
        .unwrap();
    let (mut raw, conn) = raw_client(&listener).await;
    // 256 streams, each sent all its window allows (what the opening ACK
    // and the window header grant), and nobody reads any of them.
    let fill = vec![b'x'; 16 << 10];
    for i in 0..STREAMS {
        let id = StreamId(2 * i);
        raw.feed(Message::Binary(
            Frame::Ack {
                id,
                credit: 1 << 20,
            }
            .to_bytes(),
        ))
        .await
        .unwrap();
        for _ in 0..initial as usize / fill.len() {
            raw.feed(Message::Binary(Frame::encode_data(id, &fill)))
                .await
                .unwrap();
        }
    }
    raw.flush().await.unwrap();
    let full = STREAMS * u64::from(initial);
    eventually("every stream filled", || conn.stats().buffered == full).await;
    let stats = conn.stats();
    println!(
        "{STREAMS} full streams: {} bytes buffered, {} of windows granted (budget {budget})",
        stats.buffered, stats.receive_windows
    );
    assert!(stats.buffered <= budget);
    assert!(stats.receive_windows <= budget);
    assert_eq!(stats.streams_open as u64, STREAMS);
    // One byte more on any stream is past its window: a protocol error.
    raw.send(Message::Binary(Frame::encode_data(StreamId(0), b"!")))
        .await
        .unwrap();
    assert_eq!(close_frame_of(&mut raw).await.map(|c| c.0), Some(1002));
}

#[tokio::test]
async fn a_stream_whose_reader_keeps_up_grows_to_the_whole_stream_window() {
    let (_l, client, server) = common::pair_with(WsConfig::default(), WsConfig::default()).await;
    const LEN: usize = 8 << 20;
    let writer = tokio::spawn(async move {
        let (mut send, _recv) = client.open_stream().await.unwrap().split();
        send.write_all(&vec![3u8; LEN]).await.unwrap();
        send.shutdown().await.unwrap();
        (send, client)
    });
    let (_send, mut recv) = timeout(LIMIT, server.accept_stream())
        .await
        .unwrap()
        .unwrap()
        .split();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    let mut window = 0;
    loop {
        let n = timeout(LIMIT, recv.read(&mut buf)).await.unwrap().unwrap();
        if n == 0 {
            break;
        }
        total += n;
        if let Some(s) = recv.stats() {
            window = window.max(s.window);
        }
    }
    assert_eq!(total, LEN);
    println!("window grew from 64 KiB to {window}");
    assert_eq!(window, 1 << 20, "grown to stream_window");
    timeout(LIMIT, writer).await.unwrap().unwrap();
}

#[tokio::test]
async fn replies_to_a_peer_that_does_not_read_pause_the_reading_at_max_queued_control() {
    const MAX: usize = 64;
    let cfg = WsConfig::default()
        .with_max_queued_control(MAX)
        .with_send_timeout(None);
    // The client grants 64 MiB on one stream and reads nothing: the
    // server's 16 MiB fill the socket, so replies queue in the session.
    let (_l, raw, server, mut streams) = non_reading_peer(cfg, 1).await;
    let (mut send, _recv) = streams.pop().unwrap().split();
    let filler = tokio::spawn(async move {
        let _ = send.write_all(&vec![1u8; 16 << 20]).await;
        send
    });
    eventually("the socket is full", || server.stats().queued_send > 0).await;
    // Each open (ACK) and finish (CLOSE(Read)) from a peer that does not
    // advertise its window provokes two replies: an opening ACK and a
    // CLOSE(Write). Accepted streams are dropped, so no limit refuses them.
    let acceptor = {
        let server = server.clone();
        tokio::spawn(async move {
            while let Ok(s) = server.accept_stream().await {
                drop(s);
            }
        })
    };
    let (mut sink, _stream) = raw.split();
    let provoker = tokio::spawn(async move {
        for i in 1..200_000u64 {
            let id = StreamId(2 * i);
            let open = Frame::Ack {
                id,
                credit: 1 << 20,
            }
            .to_bytes();
            let close = Frame::Close {
                id,
                shutdown: strand_transport_ws::mux::Shutdown::Read,
            }
            .to_bytes();
            for msg in [open, close] {
                if sink.feed(Message::Binary(msg)).await.is_err() {
                    return;
                }
            }
            if i % 64 == 0 && sink.flush().await.is_err() {
                return;
            }
        }
    });
    eventually("the replies reached the limit", || {
        server.stats().queued_control >= MAX
    })
    .await;
    // The provoker keeps writing; the server reads no more, so the queue
    // stays at the limit plus at most one read batch's replies.
    let mut most = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        most = most.max(server.stats().queued_control);
    }
    println!("queued replies: at most {most} (limit {MAX})");
    assert!(most >= MAX);
    assert!(most <= MAX + 3 * 64, "{most} replies queued");
    assert_eq!(server.stats().refused, 0);
    provoker.abort();
    acceptor.abort();
    filler.abort();
}
