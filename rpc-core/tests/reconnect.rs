//! The reconnecting client over the memory transport, in virtual time: the
//! backoff between attempts, calls made while reconnecting, calls in flight
//! when the connection drops, and the attempt limit.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use strand_rpc_core::memory;
use strand_rpc_core::server::{Router, Server};
use strand_rpc_core::transport::{CloseCode, DynConnection};
use strand_rpc_core::{Client, ClientConfig, ClientError, ClientState, Connector, ReconnectConfig};
use tokio::time::Instant;

/// A server that can be taken down (its connections closed, new ones
/// refused) and brought back, with a counter of the calls it ran.
struct Site {
    server: Server,
    up: AtomicBool,
    attempts: AtomicU32,
    /// Server sides of the connections made, to kill them.
    conns: Mutex<Vec<DynConnection>>,
    runs: Arc<AtomicU32>,
}

impl Site {
    fn new() -> Arc<Site> {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let router = Router::new()
            .unary("echo", |_ctx, p: Value| async move { Ok(p) })
            .server_streaming("forever", |_ctx, _p: Value| {
                futures_util::stream::pending::<Result<Value, strand_rpc_core::RpcError>>()
            })
            .duplex(
                "chat",
                |_ctx, input: strand_rpc_core::server::Incoming<Value>| input,
            )
            .unary("slow", move |_ctx, p: Value| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_millis(p["ms"].as_u64().unwrap_or(0))).await;
                    Ok(p)
                }
            });
        Arc::new(Site {
            server: Server::builder(router).build(),
            up: AtomicBool::new(true),
            attempts: AtomicU32::new(0),
            conns: Mutex::new(Vec::new()),
            runs,
        })
    }

    fn connector(self: &Arc<Self>) -> Connector {
        let site = self.clone();
        Arc::new(move || {
            let site = site.clone();
            Box::pin(async move {
                site.attempts.fetch_add(1, Ordering::SeqCst);
                if !site.up.load(Ordering::SeqCst) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "server down",
                    ));
                }
                let (client, server) = memory::pair();
                let server: DynConnection = Arc::new(server);
                site.conns.lock().unwrap().push(server.clone());
                site.server.spawn_connection(server);
                Ok(Arc::new(client) as DynConnection)
            })
        })
    }

    /// Kills every connection (as a crashed server would) and refuses new ones.
    fn kill(&self) {
        self.up.store(false, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.close(CloseCode::Internal, "killed");
        }
    }

    fn revive(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn config(reconnect: ReconnectConfig) -> ClientConfig {
    ClientConfig::default().reconnect(reconnect)
}

async fn wait_for(client: &Client, want: ClientState) {
    let mut state = client.state().expect("a reconnecting client");
    state.wait_for(|s| *s == want).await.expect("state changes");
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_replaced_after_the_backoff() {
    let site = Site::new();
    let reconnect = ReconnectConfig::default().jitter(0.0);
    let client = Client::connect_with(site.connector(), config(reconnect))
        .await
        .unwrap();
    assert_eq!(*client.state().unwrap().borrow(), ClientState::Ready);
    let out: Value = client.unary("echo", &json!(1)).await.unwrap();
    assert_eq!(out, json!(1));

    site.kill();
    wait_for(&client, ClientState::Reconnecting).await;
    let lost_at = Instant::now();
    // Down for 3 s: attempts at 0 s (fails at once), 1 s, 2.6 s, 5.16 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        site.attempts.load(Ordering::SeqCst),
        1 + 3,
        "first + 3 retries"
    );
    site.revive();
    wait_for(&client, ClientState::Ready).await;
    assert_eq!(
        lost_at.elapsed().as_millis(),
        5160,
        "1 s, then ×1.6 (no jitter)"
    );
    let out: Value = client.unary("echo", &json!(2)).await.unwrap();
    assert_eq!(out, json!(2));
}

#[tokio::test(start_paused = true)]
async fn a_call_made_while_reconnecting_waits_for_the_new_connection() {
    let site = Site::new();
    let client = Client::connect_with(site.connector(), config(ReconnectConfig::default()))
        .await
        .unwrap();
    site.kill();
    wait_for(&client, ClientState::Reconnecting).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call("echo")
                .timeout(Duration::from_secs(30))
                .unary::<_, Value>(&json!("waited"))
                .await
        }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !call.is_finished(),
        "the call waits while the server is down"
    );
    site.revive();
    assert_eq!(call.await.unwrap().unwrap(), json!("waited"));
}

#[tokio::test(start_paused = true)]
async fn a_call_made_while_reconnecting_times_out_with_its_own_timeout() {
    let site = Site::new();
    let client = Client::connect_with(site.connector(), config(ReconnectConfig::default()))
        .await
        .unwrap();
    site.kill();
    wait_for(&client, ClientState::Reconnecting).await;
    let start = Instant::now();
    let err = client
        .call("echo")
        .timeout(Duration::from_secs(2))
        .unary::<_, Value>(&json!(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::TimedOut(t) if t == Duration::from_secs(2)),
        "{err:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(*client.state().unwrap().borrow(), ClientState::Reconnecting);
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_when_the_connection_drops_may_have_run_and_an_idempotent_one_is_sent_again(
) {
    let site = Site::new();
    let reconnect = ReconnectConfig::default().initial_backoff(Duration::from_millis(100));
    let client = Client::connect_with(site.connector(), config(reconnect))
        .await
        .unwrap();
    let plain = tokio::spawn({
        let client = client.clone();
        async move { client.unary::<_, Value>("slow", &json!({"ms": 1000})).await }
    });
    let idempotent = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .call("slow")
                .idempotent()
                .unary::<_, Value>(&json!({"ms": 1000}))
                .await
        }
    });
    // Both run on the server; then it dies and comes back at once.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(site.runs.load(Ordering::SeqCst), 2);
    site.kill();
    site.revive();

    let err = plain.await.unwrap().unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionLost { sent: true, .. }),
        "{err:?}"
    );
    assert!(!err.not_started());
    assert!(err.to_string().contains("may have run"), "{err}");
    assert_eq!(
        idempotent.await.unwrap().unwrap()["ms"],
        1000,
        "sent again on the new connection"
    );
    assert_eq!(
        site.runs.load(Ordering::SeqCst),
        3,
        "only the idempotent one ran again"
    );
}

/// Streams in flight when the connection drops fail as calls the server
/// may have run, the same error a unary call gets, not a bare transport
/// error.
#[tokio::test(start_paused = true)]
async fn streams_in_flight_when_the_connection_drops_may_have_run() {
    use futures_util::StreamExt;
    let site = Site::new();
    let reconnect = ReconnectConfig::default().initial_backoff(Duration::from_millis(100));
    let client = Client::connect_with(site.connector(), config(reconnect))
        .await
        .unwrap();
    let mut forever = client
        .server_streaming::<_, Value>("forever", &json!({}))
        .await
        .unwrap();
    let (mut sink, mut chat) = client.duplex::<Value, Value>("chat").await.unwrap();
    sink.send(&json!({"m": 0})).await.unwrap();
    assert_eq!(chat.next().await.unwrap().unwrap()["m"], 0);
    site.kill();

    let err = forever.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionLost { sent: true, .. }),
        "{err:?}"
    );
    let err = chat.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionLost { sent: true, .. }),
        "{err:?}"
    );
    // The sink of a call on the lost connection says the same.
    let err = loop {
        match sink.send(&json!({"m": 1})).await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, ClientError::ConnectionLost { sent: true, .. }),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_client_closes_after_max_attempts_and_calls_fail_unsent() {
    let site = Site::new();
    let reconnect = ReconnectConfig::default().max_attempts(Some(3));
    let client = Client::connect_with(site.connector(), config(reconnect))
        .await
        .unwrap();
    site.kill();
    wait_for(&client, ClientState::Closed).await;
    assert_eq!(site.attempts.load(Ordering::SeqCst), 1 + 3);
    let err = client
        .unary::<_, Value>("echo", &json!(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionLost { sent: false, .. }),
        "{err:?}"
    );
    assert!(err.not_started());
    let reason = client.connection().closed().await;
    assert!(reason.reason.contains("3 times"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_that_says_not_started_is_sent_again_on_a_new_connection() {
    // A server that stopped answers new calls −32001 "not started"; the
    // client moves to a new connection (to a server that is up) and the
    // call succeeds.
    let stopping = Site::new();
    let fresh = Site::new();
    let first = Arc::new(AtomicBool::new(true));
    let connector: Connector = {
        let (a, b) = (stopping.connector(), fresh.connector());
        Arc::new(move || {
            if first.swap(false, Ordering::SeqCst) {
                a()
            } else {
                b()
            }
        })
    };
    let client = Client::connect_with(connector, config(ReconnectConfig::default()))
        .await
        .unwrap();
    let server = stopping.server.clone();
    let shut = tokio::spawn(async move { server.shutdown(Duration::from_secs(60)).await });
    tokio::task::yield_now().await;
    assert!(stopping.server.is_stopping());
    let out: Value = client.unary("echo", &json!("moved")).await.unwrap();
    assert_eq!(out, json!("moved"));
    assert_eq!(fresh.attempts.load(Ordering::SeqCst), 1);
    shut.await.unwrap();
}
