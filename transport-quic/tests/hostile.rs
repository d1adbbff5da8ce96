//! Hostile QUIC peers: connection floods, clients that vanish, stream
//! floods. Each test asserts the listener's or the connection's figures
//! (docs/reliability.md, "Hostile peers"), never how fast this machine is.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{drain, within, Rig};
use strand_rpc_core::transport::CloseCode;
use strand_test_support::eventually;
use strand_tls::{Identity, ServerVerification};
use strand_transport_quic::{
    Budget, QuicClient, QuicClientConfig, QuicConfig, QuicConnection, QuicListener, QuicRecvStream,
    QuicSendStream, QuicServerConfig, RESET_FLOOD_REASON,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A UDP relay between one client endpoint and the server. It can stop
/// passing on what the server sends (a client that never completes its
/// handshake, or one that vanished) or stop altogether, and it counts the
/// Retry packets the server sent through it.
struct Relay {
    addr: SocketAddr,
    state: Arc<RelayState>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct RelayState {
    /// Pass the server's packets on to the client.
    deliver: AtomicBool,
    /// Retry packets the server sent (long header, type 3).
    retries: AtomicUsize,
}

impl Relay {
    async fn to(server: SocketAddr, deliver: bool) -> Relay {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let state = Arc::new(RelayState::default());
        state.deliver.store(deliver, Ordering::Relaxed);
        let task = tokio::spawn(relay(socket, server, state.clone()));
        Relay { addr, state, task }
    }

    fn retries(&self) -> usize {
        self.state.retries.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(socket: UdpSocket, server: SocketAddr, state: Arc<RelayState>) {
    let mut client = None;
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let packet = &buf[..n];
        if from == server {
            // QUIC v1 long header: form and fixed bits, then the type.
            if packet.first().is_some_and(|b| b & 0xf0 == 0xf0) {
                state.retries.fetch_add(1, Ordering::Relaxed);
            }
            if let (true, Some(client)) = (state.deliver.load(Ordering::Relaxed), client) {
                let _ = socket.send_to(packet, client).await;
            }
        } else {
            client = Some(from);
            let _ = socket.send_to(packet, server).await;
        }
    }
}

fn configs(
    server: impl FnOnce(&mut QuicServerConfig),
) -> (Identity, QuicServerConfig, QuicClientConfig) {
    let identity = Identity::dev().unwrap();
    let mut server_config = QuicServerConfig::new(identity.clone());
    server(&mut server_config);
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    (identity, server_config, client)
}

fn client(config: &QuicClientConfig) -> Arc<QuicClient> {
    Arc::new(QuicClient::bind("127.0.0.1:0".parse().unwrap(), config.clone()).unwrap())
}

/// `n` connection attempts from `client` to `to`, left to themselves.
fn attempts(client: &Arc<QuicClient>, to: SocketAddr, n: usize) -> Vec<JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let _ = client.connect(to, "localhost").await;
            })
        })
        .collect()
}

/// Accepts every connection and holds it until it closes, as a server does.
fn hold_connections(listener: Arc<QuicListener>) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(conn) = listener.accept_connection().await {
            tokio::spawn(async move {
                conn.closed().await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_initials_past_the_retry_threshold_gets_retries_and_a_real_client_connects() {
    const THRESHOLD: usize = 4;
    const FLOOD: usize = 24;
    let (_identity, server, client_config) = configs(|s| {
        s.retry_threshold = THRESHOLD;
        s.max_pending_handshakes = 64;
        // No flooding handshake ends by itself during the test.
        s.transport.handshake_timeout = Duration::from_secs(600);
    });
    let listener = QuicListener::bind("127.0.0.1:0", server).await.unwrap();
    let server_addr = listener.local_addr();
    // The flood never hears back: every attempt stays an Initial.
    let flood_relay = Relay::to(server_addr, false).await;
    let flooder = client(&client_config);

    let mut flood = attempts(&flooder, flood_relay.addr, THRESHOLD);
    eventually("the first attempts are handshaking", || {
        listener.stats().handshakes == THRESHOLD
    })
    .await;
    assert_eq!(flood_relay.retries(), 0, "below the threshold: no Retry");
    flood.extend(attempts(&flooder, flood_relay.addr, FLOOD));
    eventually("every further attempt got a Retry", || {
        flood_relay.retries() >= FLOOD
    })
    .await;
    let stats = listener.stats();
    assert_eq!(stats.handshakes, THRESHOLD, "a Retry keeps no state");
    assert!(stats.retries >= FLOOD as u64, "{stats:?}");
    assert_eq!(stats.refused, 0);

    // A real client, through a relay that counts what it is sent: a
    // Retry, then its handshake from the validated address.
    let real_relay = Relay::to(server_addr, true).await;
    let real = client(&client_config);
    let (connected, accepted) = within(async {
        tokio::join!(
            real.connect(real_relay.addr, "localhost"),
            listener.accept_connection()
        )
    })
    .await;
    connected.expect("the real client connects");
    accepted.expect("and is accepted");
    // One Retry, or more if its Initial was sent again before the Retry
    // reached it (a loaded machine).
    assert!(
        real_relay.retries() >= 1,
        "the real client was not asked to retry"
    );
    assert_eq!(listener.stats().handshakes, THRESHOLD);
    for attempt in flood {
        attempt.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_bounded_by_max_pending_handshakes() {
    const MAX_PENDING: usize = 8;
    const FLOOD: usize = 40;
    let (_identity, server, client_config) = configs(|s| {
        s.max_pending_handshakes = MAX_PENDING;
        // No Retry: the pending bound alone holds.
        s.retry_threshold = usize::MAX;
        s.transport.handshake_timeout = Duration::from_secs(2);
    });
    let listener = QuicListener::bind("127.0.0.1:0", server).await.unwrap();
    let server_addr = listener.local_addr();
    let flood_relay = Relay::to(server_addr, false).await;
    let flooder = client(&client_config);
    let flood = attempts(&flooder, flood_relay.addr, FLOOD);
    eventually(
        "the flood filled the pending slots and was refused past them",
        || {
            let stats = listener.stats();
            stats.handshakes == MAX_PENDING && stats.refused >= (FLOOD - MAX_PENDING) as u64
        },
    )
    .await;
    let stats = listener.stats();
    assert_eq!(stats.handshakes, MAX_PENDING);
    assert_eq!(stats.open_connections, MAX_PENDING);

    // Once the flood stops, its handshakes time out and a client is served.
    for attempt in flood {
        attempt.abort();
    }
    drop(flood_relay);
    eventually("the flood's handshakes timed out", || {
        listener.stats().handshakes == 0
    })
    .await;
    let good = client(&client_config);
    let (connected, accepted) = within(async {
        tokio::join!(
            good.connect(server_addr, "localhost"),
            listener.accept_connection()
        )
    })
    .await;
    connected.unwrap();
    accepted.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_connections_are_freed_after_the_idle_timeout() {
    const CLIENTS: usize = 16;
    let (_identity, server, client_config) = configs(|s| {
        s.transport.idle_timeout = Some(Duration::from_secs(1));
        s.transport.keep_alive_interval = Some(Duration::from_millis(300));
    });
    let listener = Arc::new(QuicListener::bind("127.0.0.1:0", server).await.unwrap());
    let server_addr = listener.local_addr();
    let holder = hold_connections(listener.clone());
    let mut vanishing = Vec::new();
    for _ in 0..CLIENTS {
        let relay = Relay::to(server_addr, true).await;
        let client = client(&client_config);
        let conn = within(client.connect(relay.addr, "localhost"))
            .await
            .unwrap();
        vanishing.push((relay, client, conn));
    }
    eventually("every client is connected", || {
        listener.stats().open_connections == CLIENTS
    })
    .await;

    // The clients vanish: nothing of theirs reaches the server any more,
    // no close either (their relays are gone).
    let mut gone: Vec<(Arc<QuicClient>, QuicConnection)> = Vec::new();
    for (relay, client, conn) in vanishing {
        drop(relay);
        gone.push((client, conn));
    }
    eventually("the server freed every abandoned connection", || {
        listener.stats().open_connections == 0
    })
    .await;
    assert_eq!(listener.stats().handshakes, 0);
    holder.abort();
}

/// Reads a call's request to its end and answers it.
async fn answer(stream: strand_rpc_core::transport::Stream<QuicSendStream, QuicRecvStream>) {
    let (mut send, mut recv) = stream.split();
    let (request, error) = within(drain(&mut recv)).await;
    assert_eq!((request.as_slice(), error.is_none()), (&b"x"[..], true));
    send.write_all(b"y").await.unwrap();
    send.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flood_past_max_streams_waits_for_credit() {
    const MAX_STREAMS: u32 = 16;
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.max_streams = MAX_STREAMS;
    let server = QuicServerConfig::new(identity.clone()).with_transport(transport);
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let rig = Rig::with(identity, server, client).await;
    let (client, server) = rig.pair().await;
    let client = Arc::new(client);

    // Twice as many opens as the server allows, all at once.
    let opens: Vec<_> = (0..2 * MAX_STREAMS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                // A call: a request, then the answer to its end.
                let (mut send, mut recv) = client.open_stream().await.expect("no refusal").split();
                send.write_all(b"x").await.unwrap();
                send.shutdown().await.unwrap();
                let (answer, error) = drain(&mut recv).await;
                assert_eq!((answer.as_slice(), error.is_none()), (&b"y"[..], true));
            })
        })
        .collect();
    let mut held = Vec::new();
    for _ in 0..MAX_STREAMS {
        held.push(within(server.accept_stream()).await.unwrap());
    }
    assert_eq!(server.stats().open_streams, MAX_STREAMS as usize);
    // The rest wait for credit: none is opened past the limit.
    let more = tokio::time::timeout(Duration::from_millis(300), server.accept_stream()).await;
    assert!(more.is_err(), "a stream past max_streams was opened");
    assert_eq!(server.stats().open_streams, MAX_STREAMS as usize);

    // Answering the first ones gives their credit to the waiting ones.
    for stream in held.drain(..) {
        answer(stream).await;
    }
    for _ in 0..MAX_STREAMS {
        let stream = within(server.accept_stream()).await.unwrap();
        assert!(server.stats().open_streams <= MAX_STREAMS as usize);
        answer(stream).await;
    }
    let mut opened = 0;
    for open in opens {
        within(open).await.unwrap();
        opened += 1;
    }
    assert_eq!(opened, 2 * MAX_STREAMS);
}

/// An RPC server on `server` whose `hold` method counts its start and then
/// waits until it is cancelled, so that every call it started is still
/// unanswered when the caller aborts it.
fn holding_server(
    server: Arc<QuicConnection>,
) -> (strand_rpc_core::server::Server, Arc<AtomicUsize>) {
    use strand_rpc_core::server::{Router, Server};
    let started = Arc::new(AtomicUsize::new(0));
    let count = started.clone();
    let router = Router::new().unary("hold", move |_ctx, _p: Option<String>| {
        count.fetch_add(1, Ordering::SeqCst);
        async move {
            std::future::pending::<()>().await;
            Ok::<_, strand_rpc_core::RpcError>(())
        }
    });
    let rpc = Server::builder(router).build();
    rpc.spawn_connection(server);
    (rpc, started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_is_closed_1008_having_started_no_more_handlers_than_its_budget() {
    // No refill: the budget is exactly its burst, whatever this machine's speed.
    const BURST: u32 = 500;
    const MAX_STREAMS: u32 = 8;
    const CYCLES: usize = 50_000;
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.max_streams = MAX_STREAMS;
    transport.floods.resets = Budget::new(BURST, 0);
    let server = QuicServerConfig::new(identity.clone()).with_transport(transport);
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let rig = Rig::with(identity, server, client).await;
    let (client, server) = rig.pair().await;
    let server = Arc::new(server);
    let (rpc, started) = holding_server(server.clone());

    // Open, a whole request, then RESET_STREAM and STOP_SENDING: quinn
    // returns the stream's credit at once, so only the budget stops it.
    let quinn = client.quinn().clone();
    let request = br#"{"jsonrpc":"2.0","method":"hold","params":"x"}"#;
    let mut cycles = 0;
    while cycles < CYCLES {
        let Ok((mut send, mut recv)) = quinn.open_bi().await else {
            break;
        };
        cycles += 1;
        let _ = send.write_all(request).await;
        let _ = send.reset(0u32.into());
        let _ = recv.stop(0u32.into());
    }
    let reason = within(client.closed()).await;
    assert_eq!(reason.code, CloseCode::Policy, "{reason:?}");
    assert_eq!(reason.reason, RESET_FLOOD_REASON);
    assert!(cycles < CYCLES, "the flood ran to its end");
    let aborts = server.stats().peer_aborts;
    let handlers = started.load(Ordering::SeqCst);
    println!("cycles {cycles}, aborts counted {aborts}, handlers started {handlers}");
    assert_eq!(aborts, u64::from(BURST) + 1);
    // A handler starts only on a stream accepted before the close; each one
    // whose abort was seen spent the budget, and at most `MAX_STREAMS` more
    // were open when it closed.
    assert!(
        handlers <= (BURST + 1 + MAX_STREAMS) as usize,
        "{handlers} handlers started"
    );
    eventually("the streams were released", || {
        server.stats().open_streams == 0 && rpc.calls_in_flight() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_running_handlers_is_closed_1008_within_the_budget() {
    const BURST: u32 = 100;
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.floods.resets = Budget::new(BURST, 0);
    let server = QuicServerConfig::new(identity.clone()).with_transport(transport);
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()));
    let rig = Rig::with(identity, server, client).await;
    let (client, server) = rig.pair().await;
    let server = Arc::new(server);
    let (rpc, started) = holding_server(server.clone());

    // Each cycle waits for its handler to start, then aborts the call.
    let quinn = client.quinn().clone();
    let request = br#"{"jsonrpc":"2.0","method":"hold","params":"x"}"#;
    let mut cycles = 0;
    while cycles < 10 * BURST as usize {
        let Ok((mut send, mut recv)) = quinn.open_bi().await else {
            break;
        };
        cycles += 1;
        if send.write_all(request).await.is_err() || send.finish().is_err() {
            break;
        }
        let cycle = cycles;
        eventually("the handler started", || {
            started.load(Ordering::SeqCst) >= cycle || quinn.close_reason().is_some()
        })
        .await;
        let _ = recv.stop(0u32.into());
    }
    let reason = within(client.closed()).await;
    assert_eq!(reason.code, CloseCode::Policy, "{reason:?}");
    assert_eq!(reason.reason, RESET_FLOOD_REASON);
    let handlers = started.load(Ordering::SeqCst);
    println!("cycles {cycles}, handlers started {handlers}");
    assert_eq!(server.stats().peer_aborts, u64::from(BURST) + 1);
    // The budget's handlers and the one whose abort closed it, plus at most
    // the next one, started while that abort was still on its way.
    assert!(
        (BURST as usize + 1..=BURST as usize + 2).contains(&handlers),
        "{handlers} handlers started"
    );
    eventually("the calls ended", || {
        server.stats().open_streams == 0 && rpc.calls_in_flight() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_calls_and_a_server_aborting_our_calls_spend_no_reset_budget() {
    use strand_rpc_core::transport::{RecvStream as _, SendStream as _};
    const CALLS: usize = 100;
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.floods.resets = Budget::new(4, 0);
    let server = QuicServerConfig::new(identity.clone()).with_transport(transport.clone());
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport);
    let rig = Rig::with(identity, server, client).await;
    let (client, server) = rig.pair().await;

    // Answered calls: the client finishes, the server answers and finishes.
    for _ in 0..CALLS {
        let (mut send, mut recv) = within(client.open_stream()).await.unwrap().split();
        send.write_all(b"x").await.unwrap();
        send.shutdown().await.unwrap();
        answer(within(server.accept_stream()).await.unwrap()).await;
        let (answer, error) = within(drain(&mut recv)).await;
        assert_eq!((answer.as_slice(), error.is_none()), (&b"y"[..], true));
    }
    // Calls the server aborts while the client still sends (a refused
    // upload): the client's streams, so they never count on the client.
    for _ in 0..CALLS {
        let (mut send, mut recv) = within(client.open_stream()).await.unwrap().split();
        send.write_all(b"x").await.unwrap();
        let (mut s_send, mut s_recv) = within(server.accept_stream()).await.unwrap().split();
        s_send.reset(1);
        s_recv.stop(1);
        let (_, error) = within(drain(&mut recv)).await;
        assert!(error.is_some(), "the client saw the reset");
    }
    assert_eq!(server.stats().peer_aborts, 0);
    assert_eq!(client.stats().peer_aborts, 0);
    assert!(client.quinn().close_reason().is_none());
    assert!(server.quinn().close_reason().is_none());
}

/// A caller that reads its answer and drops the call before the server's
/// task finished the stream (a unary reply is whole before its FIN, and a
/// busy machine delays the finish): no rapid reset. Before, the stop spent
/// the budget, and honest calls at a high rate were closed 1008.
#[tokio::test]
async fn a_call_dropped_after_its_answer_but_before_the_finish_costs_nothing() {
    use strand_rpc_core::transport::RecvStream as _;
    let identity = Identity::dev().unwrap();
    let mut transport = QuicConfig::default();
    transport.floods.resets = Budget::new(0, 0);
    let server = QuicServerConfig::new(identity.clone()).with_transport(transport.clone());
    let client = QuicClientConfig::new(ServerVerification::Ca(identity.cert_chain().to_vec()))
        .with_transport(transport);
    let rig = Rig::with(identity, server, client).await;
    let (client, server) = rig.pair().await;

    let (mut send, mut recv) = within(client.open_stream()).await.unwrap().split();
    send.write_all(b"x").await.unwrap();
    send.shutdown().await.unwrap();
    let (mut s_send, _s_recv) = within(server.accept_stream()).await.unwrap().split();
    s_send.write_all(b"y").await.unwrap();
    let mut byte = [0u8; 1];
    within(tokio::io::AsyncReadExt::read_exact(&mut recv, &mut byte))
        .await
        .unwrap();
    // The answer is read; the caller is done and stops the stream.
    recv.stop(0);
    within(strand_rpc_core::transport::stopped(&mut s_send)).await;
    assert_eq!(server.stats().peer_aborts, 0);
    assert!(server.quinn().close_reason().is_none());
}
