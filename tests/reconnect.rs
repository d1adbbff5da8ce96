//! Reconnect and drain over real loopback sockets, ws and QUIC: a server
//! that goes away and comes back on the same port, and a drain that moves a
//! reconnecting client's new calls to a second server while a long call
//! finishes on the first, with no call failing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use strand::core::transport::{CloseCode, CloseInitiator, DynConnection};
use strand::core::Connector;
use strand::tls::{Identity, ServerVerification};
use strand::{Client, ClientState, Endpoint, ReconnectConfig, Router, RpcError, Server, Serving};

/// A server whose `who` answers `name`, with a `sleep` that takes `ms`.
fn server(name: &'static str) -> Server {
    let router = Router::new()
        .unary("who", move |_ctx, _p: Value| async move {
            Ok::<_, RpcError>(json!(name))
        })
        .unary("sleep", |_ctx, p: Value| async move {
            let ms = p["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, RpcError>(json!({ "slept": ms }))
        });
    Server::builder(router).build()
}

fn fast_reconnect() -> ReconnectConfig {
    toml::from_str("initial_backoff_ms = 20\nmax_backoff_ms = 200").unwrap()
}

/// The endpoint for `url`, with the test identity trusted for QUIC.
fn endpoint(url: &str, identity: &Identity) -> Endpoint {
    let endpoint = Endpoint::from_url(url).unwrap();
    if url.starts_with("quic") {
        endpoint
            .with_identity(identity.clone())
            .with_server_verification(ServerVerification::Ca(identity.cert_chain().to_vec()))
    } else {
        endpoint
    }
}

/// Waits (bounded) until `client` is in `want`.
async fn wait_for(client: &Client, want: ClientState) {
    let mut state = client.state().expect("a reconnecting client");
    tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| *s == want))
        .await
        .unwrap_or_else(|_| panic!("the client never became {want:?}"))
        .unwrap();
}

#[tokio::test]
async fn a_server_that_comes_back_on_the_same_port_serves_the_reconnecting_client() {
    let first = server("first");
    let serving = Serving::start(&first, &[Endpoint::from_url("ws://127.0.0.1:0").unwrap()])
        .await
        .unwrap();
    let url = serving.urls()[0].clone();
    let client = Endpoint::from_url(&url)
        .unwrap()
        .with_reconnect(fast_reconnect())
        .connect()
        .await
        .unwrap();
    assert_eq!(
        client.unary::<_, Value>("who", &json!({})).await.unwrap(),
        "first"
    );

    serving.shutdown(Duration::ZERO).await;
    wait_for(&client, ClientState::Reconnecting).await;
    let second = server("second");
    let serving = Serving::start(&second, &[Endpoint::from_url(&url).unwrap()])
        .await
        .unwrap();
    wait_for(&client, ClientState::Ready).await;
    for _ in 0..10 {
        let who: Value = client.unary("who", &json!({})).await.unwrap();
        assert_eq!(who, "second");
    }
    serving.shutdown(Duration::ZERO).await;
}

/// Drains the first of two servers under a reconnecting client: the long
/// call started before the drain finishes, every new call goes to the
/// second server, none fails, and the first connection ends going away.
async fn drain_moves_new_calls_and_fails_none(scheme: &str) {
    let identity = Identity::dev().unwrap();
    let (a, b) = (server("a"), server("b"));
    let bind = format!("{scheme}://127.0.0.1:0");
    let serving_a = Serving::start(&a, &[endpoint(&bind, &identity)])
        .await
        .unwrap();
    let serving_b = Serving::start(&b, &[endpoint(&bind, &identity)])
        .await
        .unwrap();
    // The first connection goes to a, every later one to b (a proxy in front
    // of both would do the same once a stopped accepting).
    let urls = [serving_a.urls()[0].clone(), serving_b.urls()[0].clone()];
    let made = Arc::new(AtomicUsize::new(0));
    let first_conn: Arc<std::sync::Mutex<Option<DynConnection>>> = Default::default();
    let connector: Connector = {
        let (identity, made, first_conn) = (identity.clone(), made.clone(), first_conn.clone());
        Arc::new(move || {
            let n = made.fetch_add(1, Ordering::SeqCst);
            let endpoint = endpoint(&urls[n.min(1)], &identity);
            let first_conn = first_conn.clone();
            Box::pin(async move {
                let conn = endpoint
                    .connect_connection()
                    .await
                    .map_err(std::io::Error::other)?;
                if n == 0 {
                    *first_conn.lock().unwrap() = Some(conn.clone());
                }
                Ok(conn)
            })
        })
    };
    let config = strand::ClientConfig::default().reconnect(fast_reconnect().to_client());
    let client = Client::connect_with(connector, config).await.unwrap();
    assert_eq!(
        client.unary::<_, Value>("who", &json!({})).await.unwrap(),
        "a"
    );

    let long = tokio::spawn({
        let client = client.clone();
        async move { client.unary::<_, Value>("sleep", &json!({"ms": 500})).await }
    });
    for _ in 0..2000 {
        if a.calls_in_flight() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(a.calls_in_flight(), 1, "the long call runs on a");

    let drain = tokio::spawn(serving_a.drain(Duration::from_secs(10)));
    // The go-away notice alone (no call is made yet) moves the client to b
    // while the long call still runs on a.
    for _ in 0..2000 {
        if made.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        made.load(Ordering::SeqCst),
        2,
        "the notice made a new connection"
    );
    assert!(!long.is_finished(), "before the drained server closed");
    wait_for(&client, ClientState::Ready).await;
    let mut calls = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client.unary::<_, Value>("who", &json!({})).await
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut failures = 0;
    let mut on_b = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(who) if who == "b" => on_b += 1,
            Ok(who) => panic!("a call went to {who} after the notice"),
            Err(e) => {
                failures += 1;
                eprintln!("failed: {e}");
            }
        }
    }
    assert_eq!(failures, 0, "no call fails during the drain");
    assert_eq!(on_b, 20, "every new call went to b");
    assert_eq!(
        long.await.unwrap().unwrap(),
        json!({"slept": 500}),
        "the call started before the drain finished"
    );
    drain.await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 2, "one new connection, to b");
    let old = first_conn.lock().unwrap().take().unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), old.closed())
        .await
        .expect("the drained connection closed");
    // The client closed it itself once its call there was done, and the
    // drain waited for that close (docs/protocol.md, "Go-away").
    assert_eq!(
        (reason.initiator, reason.code),
        (CloseInitiator::Local, CloseCode::Normal),
        "{reason}"
    );
    assert_eq!(
        client.unary::<_, Value>("who", &json!({})).await.unwrap(),
        "b"
    );
    serving_b.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn drain_over_ws_moves_new_calls_and_fails_none() {
    drain_moves_new_calls_and_fails_none("ws").await;
}

#[tokio::test]
async fn drain_over_quic_moves_new_calls_and_fails_none() {
    drain_moves_new_calls_and_fails_none("quic").await;
}

/// A connection whose handshake the drained server had answered but not
/// yet taken from its listener (here: its one connection slot was taken)
/// is served and told to go away, not dropped: its client may already be
/// sending calls, and behind a proxy a client that reconnects on a go-away
/// can land on the draining server just before it stops accepting. Before,
/// the listener dropped it when the server stopped accepting: the client
/// saw its connection closed (ws 1000) with its call sent.
async fn a_connection_set_up_as_the_drain_begins_is_served(scheme: &str) {
    let identity = Identity::dev().unwrap();
    let router = Router::new().unary("who", |_ctx, _p: Value| async move {
        Ok::<_, RpcError>(json!("a"))
    });
    let a = Server::builder(router).max_connections(1).build();
    let bind = format!("{scheme}://127.0.0.1:0");
    let serving = Serving::start(&a, &[endpoint(&bind, &identity)])
        .await
        .unwrap();
    let url = serving.urls()[0].clone();
    let first = endpoint(&url, &identity)
        .connect_connection()
        .await
        .unwrap();
    let first_client = Client::from_shared(first.clone(), Default::default());
    assert_eq!(
        first_client
            .unary::<_, Value>("who", &json!({}))
            .await
            .unwrap(),
        "a"
    );
    // Set up, but waiting in the listener for a connection slot.
    let queued = endpoint(&url, &identity)
        .connect_connection()
        .await
        .unwrap();
    let drain = tokio::spawn(serving.drain(Duration::from_secs(10)));
    tokio::select! {
        () = queued.going_away() => {}
        reason = queued.closed() => panic!("the queued connection was dropped: {reason}"),
        () = tokio::time::sleep(Duration::from_secs(10)) => panic!("no go-away notice"),
    }
    let queued_client = Client::from_shared(queued.clone(), Default::default());
    assert_eq!(
        queued_client
            .unary::<_, Value>("who", &json!({}))
            .await
            .unwrap(),
        "a",
        "a call made before the client moved is served"
    );
    // The drain waits for the peers to close, as a reconnecting client does.
    queued.shutdown(Duration::from_secs(1)).await;
    first.shutdown(Duration::from_secs(1)).await;
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("the drain ended once its peers closed")
        .unwrap();
}

#[tokio::test]
async fn a_ws_connection_set_up_as_the_drain_begins_is_served() {
    a_connection_set_up_as_the_drain_begins_is_served("ws").await;
}

#[tokio::test]
async fn a_quic_connection_set_up_as_the_drain_begins_is_served() {
    a_connection_set_up_as_the_drain_begins_is_served("quic").await;
}
