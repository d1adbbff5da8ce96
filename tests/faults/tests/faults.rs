//! Network faults on real sockets between two network namespaces
//! (docs/reliability.md, "Network faults"). Each test makes its own link
//! and tears it down on drop; where namespaces cannot be made it says so
//! and returns, except under `CI=true`, where that fails.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use strand::ClientError;
use strand_faults::forwarder::{self, Faults};
use strand_faults::service::{self, expected_transfer, Load};
use strand_faults::{connect, full, serve, Carrier, Link, NsRuntime, Timeouts, SERVER_IP};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How late past the idle timeout a cut or a dead peer may be noticed: a
/// keep-alive period (QUIC restarts its idle clock when it sends the first
/// ack-eliciting packet after a receipt, and a keep-alive may be that, up to
/// one period after the cut) plus 2 s for a busy machine.
const SLACK: Duration = Duration::from_secs(3);

/// Time for an end to free what it held once it knows (no idle timeout
/// involved: cancellation, deadline, a reset connection).
const PROMPT: Duration = Duration::from_secs(10);

fn lossy_link(carrier: Carrier) {
    let Some(link) = Link::new() else { return };
    let server_rt = NsRuntime::start(Some(&link.server_ns));
    let client_rt = NsRuntime::start(Some(&link.client_ns));
    // Idle timeouts long enough that loss never ends a connection.
    let timeouts = Timeouts {
        idle: Duration::from_secs(30),
        keep_alive: Duration::from_secs(5),
    };
    let served = server_rt.run(serve(carrier, SERVER_IP, timeouts));
    let (addr, tracker) = (served.addr, served.tracker.clone());
    let load = Load {
        raw_bytes: if full() { 8 << 20 } else { 256 << 10 },
        messages: if full() { 100 } else { 20 },
    };

    let clean = client_rt.run(async move {
        let client = connect(carrier, addr, timeouts).await;
        service::every_kind(&client, load).await
    });
    let clean = clean.unwrap_or_else(|e| panic!("the loss-free run failed: {e}"));
    let n = clean.len();
    assert_eq!(clean[n - 2], expected_transfer(load.raw_bytes, 7));
    assert_eq!(clean[n - 1], expected_transfer(load.raw_bytes, 11));

    link.set_loss(3);
    let started = Instant::now();
    let (faulty, counters) = client_rt.run(async move {
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        let fwd = match carrier {
            Carrier::Ws => forwarder::tcp(local, addr, Faults::issue(), 15).await,
            Carrier::Quic => forwarder::udp(local, addr, Faults::issue(), 15).await,
        };
        let client = connect(carrier, fwd.addr, timeouts).await;
        let out = service::every_kind(&client, load).await;

        // Cancellation: dropping a stream stops its handler on the server.
        let before = tracker.started();
        let mut items = client
            .server_streaming::<_, Value>("hang_stream", &serde_json::json!({}))
            .await
            .expect("hang_stream");
        futures_util::StreamExt::next(&mut items)
            .await
            .expect("first item")
            .expect("first item");
        assert!(
            tracker
                .wait(PROMPT, |alive, started| alive == 1 && started == before + 1)
                .await
        );
        drop(items);
        assert!(
            tracker.wait(PROMPT, |alive, _| alive == 0).await,
            "a cancelled call's handler still runs"
        );

        // Deadline: the caller's timeout reaches the handler.
        let deadline = Duration::from_millis(500);
        let at = Instant::now();
        let err = client
            .call("hang")
            .timeout(deadline)
            .unary::<_, Value>(&serde_json::json!({}))
            .await
            .unwrap_err();
        // The caller's clock, or the server's answer that the deadline passed.
        assert!(
            matches!(err, ClientError::TimedOut(_))
                || err.code() == Some(strand::core::message::error_codes::TIMED_OUT),
            "{err:?}"
        );
        assert!(
            tracker
                .wait(PROMPT, |alive, started| alive == 0 && started == before + 2)
                .await,
            "a timed-out call's handler still runs"
        );
        eprintln!(
            "{carrier:?}: deadline of {deadline:?}: handler gone after {:?}",
            at.elapsed()
        );
        (out, fwd.counters.clone())
    });
    link.set_loss(0);
    let faulty = faulty.unwrap_or_else(|e| panic!("the faulty run failed: {e}"));
    eprintln!(
        "{carrier:?} through 40 ms ± 10 ms, 3 % loss, 5 % reordering, 1 % duplication: {} results in {:?}, \
         {} bytes each way raw; forwarded {}, reordered {}, duplicated {}, stalled {}",
        faulty.len(),
        started.elapsed(),
        load.raw_bytes,
        counters.forwarded.load(std::sync::atomic::Ordering::Relaxed),
        counters.reordered.load(std::sync::atomic::Ordering::Relaxed),
        counters.duplicated.load(std::sync::atomic::Ordering::Relaxed),
        counters.stalled.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert!(faulty == clean, "results differ from the loss-free run");
    assert_eq!(served.server.calls_in_flight(), 0);
}

#[test]
fn every_call_kind_survives_a_faulty_link_ws() {
    lossy_link(Carrier::Ws);
}

#[test]
fn every_call_kind_survives_a_faulty_link_quic() {
    lossy_link(Carrier::Quic);
}

/// Waits for every hanging call: each must end with a transport error
/// within `bound`; returns the slowest.
async fn all_end_with_transport_errors(
    calls: Vec<(&'static str, service::Hung)>,
    since: Instant,
    bound: Duration,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for (kind, call) in calls {
        let left = bound.saturating_sub(since.elapsed());
        let outcome = tokio::time::timeout(left, call)
            .await
            .unwrap_or_else(|_| panic!("{kind}: still running {bound:?} after the fault"))
            .expect("call task");
        match outcome {
            Err(ClientError::Transport(_) | ClientError::Unanswered(_)) => {}
            other => panic!("{kind}: expected a transport error, got {other:?}"),
        }
        slowest = slowest.max(since.elapsed());
    }
    slowest
}

fn cut_link(carrier: Carrier) {
    let Some(link) = Link::new() else { return };
    let server_rt = NsRuntime::start(Some(&link.server_ns));
    let client_rt = NsRuntime::start(Some(&link.client_ns));
    let timeouts = Timeouts::short();
    let served = server_rt.run(serve(carrier, SERVER_IP, timeouts));
    let (addr, tracker) = (served.addr, served.tracker.clone());
    let calls = client_rt.run(async move {
        let client = connect(carrier, addr, timeouts).await;
        let calls = service::start_hanging(&client).await.expect("calls");
        (client, calls)
    });
    let kinds = calls.1.len();
    assert!(server_rt.run({
        let tracker = tracker.clone();
        async move { tracker.wait(PROMPT, |alive, _| alive == kinds).await }
    }));

    link.set_loss(100);
    let cut = Instant::now();
    let bound = timeouts.idle + SLACK;
    let (client, calls) = calls;
    let client_side = client_rt.handle().spawn(async move {
        let slowest = all_end_with_transport_errors(calls, cut, bound).await;
        drop(client);
        slowest
    });
    let server_side = server_rt.run({
        let tracker = tracker.clone();
        async move {
            let freed = tracker.wait(bound, |alive, _| alive == 0).await;
            (freed, cut.elapsed())
        }
    });
    let client_side = client_rt.run(client_side).expect("client side");
    assert!(
        server_side.0,
        "server: handlers still alive {bound:?} after the cut"
    );
    assert_eq!(served.server.calls_in_flight(), 0);
    assert!(
        eventually(|| tracker.ws_connections_alive() == 0),
        "server: the ws connection state is still there after the cut"
    );
    eprintln!(
        "{carrier:?}: link cut with {kinds} calls in flight, idle timeout {:?}: client calls ended after {client_side:?}, \
         server handlers after {:?}",
        timeouts.idle, server_side.1
    );

    link.set_loss(0);
    let echoed = client_rt.run(async move {
        let client = connect(carrier, addr, timeouts).await;
        client
            .unary::<_, Value>("echo", &serde_json::json!({ "after": "cut" }))
            .await
    });
    assert_eq!(
        echoed.expect("a new connection after the cut")["after"],
        "cut"
    );
}

#[test]
fn a_cut_link_ends_every_call_within_the_idle_timeout_ws() {
    cut_link(Carrier::Ws);
}

#[test]
fn a_cut_link_ends_every_call_within_the_idle_timeout_quic() {
    cut_link(Carrier::Quic);
}

/// Tasks alive on the current runtime after `wait`, this one included.
async fn tasks_after(wait: Duration) -> usize {
    tokio::time::sleep(wait).await;
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (at most `PROMPT`) until at most `baseline` tasks are alive on the
/// current runtime, this one included; how many are.
async fn tasks_down_to(baseline: usize) -> usize {
    let until = Instant::now() + PROMPT;
    let alive = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    while alive() > baseline && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alive()
}

const PEER: &str = env!("CARGO_BIN_EXE_strand-faults-peer");

/// Starts the peer process in namespace `ns` (on the current runtime, which
/// reaps it) and waits for its first line.
async fn spawn_peer(ns: String, args: Vec<String>) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new("ip")
        .args(["netns", "exec", &ns, PEER])
        .args(&args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("peer process");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    tokio::time::timeout(PROMPT, BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("the peer did not start")
        .expect("peer stdout");
    (child, line.trim().to_string())
}

/// Polls `f` every 20 ms for at most `PROMPT`; whether it came true.
fn eventually(f: impl Fn() -> bool) -> bool {
    let until = Instant::now() + PROMPT;
    while !f() {
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn killed_client(carrier: Carrier) {
    let Some(link) = Link::new() else { return };
    let server_rt = NsRuntime::start(Some(&link.server_ns));
    let timeouts = Timeouts::short();
    let served = server_rt.run(serve(carrier, SERVER_IP, timeouts));
    let (addr, tracker) = (served.addr, served.tracker.clone());
    // Let the accept loop settle: its tasks are the baseline.
    let baseline = server_rt.run(tasks_after(Duration::from_millis(100)));

    let client_rt = NsRuntime::start(None);
    let args = vec!["call".into(), carrier.scheme().into(), addr.to_string()];
    let (mut child, line) = client_rt.run(spawn_peer(link.client_ns.clone(), args));
    assert!(line.starts_with("calling"), "{line}");
    assert!(server_rt.run({
        let tracker = tracker.clone();
        async move { tracker.wait(PROMPT, |alive, _| alive == 5).await }
    }));
    let during = server_rt.run(tasks_after(Duration::ZERO));

    let mut child = client_rt.run(async move {
        child.start_kill().expect("SIGKILL");
        child
    });
    let killed = Instant::now();
    let bound = timeouts.idle + SLACK;
    let freed = server_rt.run({
        let tracker = tracker.clone();
        async move { tracker.wait(bound, |alive, _| alive == 0).await }
    });
    let handlers_gone = killed.elapsed();
    assert!(
        freed,
        "server: handlers alive {bound:?} after the client was killed"
    );
    let tasks_back = server_rt.run(tasks_down_to(baseline));
    assert_eq!(served.server.calls_in_flight(), 0);
    assert_eq!(
        tasks_back, baseline,
        "server tasks left after the client was killed"
    );
    assert!(
        eventually(|| tracker.ws_connections_alive() == 0),
        "server: the ws connection state is still there"
    );
    client_rt.run(async move {
        let _ = child.wait().await;
    });
    eprintln!(
        "{carrier:?}: client killed with 5 calls in flight: server handlers freed after {handlers_gone:?}, \
         server tasks {baseline} → {during} → {tasks_back}"
    );
}

#[test]
fn a_killed_client_process_frees_every_call_on_the_server_ws() {
    killed_client(Carrier::Ws);
}

#[test]
fn a_killed_client_process_frees_every_call_on_the_server_quic() {
    killed_client(Carrier::Quic);
}

fn killed_server(carrier: Carrier) {
    let Some(link) = Link::new() else { return };
    let client_rt = NsRuntime::start(Some(&link.client_ns));
    let spawner = NsRuntime::start(None);
    let timeouts = Timeouts::short();
    let args = vec![
        "serve".into(),
        carrier.scheme().into(),
        SERVER_IP.to_string(),
    ];
    let (mut child, line) = spawner.run(spawn_peer(link.server_ns.clone(), args));
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("peer said {line:?}"))
        .parse()
        .expect("addr");
    let baseline = client_rt.run(tasks_after(Duration::from_millis(50)));
    let (client, calls) = client_rt.run(async move {
        let client = connect(carrier, addr, timeouts).await;
        let calls = service::start_hanging(&client).await.expect("calls");
        (client, calls)
    });
    let probe = strand::ws::StatsProbe::of(&client.connection().peer_info()).cloned();
    let during = client_rt.run(tasks_after(Duration::ZERO));

    let mut child = spawner.run(async move {
        child.start_kill().expect("SIGKILL");
        child
    });
    let killed = Instant::now();
    let bound = timeouts.idle + SLACK;
    let slowest = client_rt.run(async move {
        let slowest = all_end_with_transport_errors(calls, killed, bound).await;
        drop(client);
        slowest
    });
    let tasks_back = client_rt.run(tasks_down_to(baseline));
    assert_eq!(
        tasks_back, baseline,
        "client tasks left after the server was killed"
    );
    if let Some(probe) = probe {
        assert!(
            eventually(|| probe.connection().is_none()),
            "client: the ws connection state is still there"
        );
    }
    spawner.run(async move {
        let _ = child.wait().await;
    });
    eprintln!(
        "{carrier:?}: server killed with 5 calls in flight: client calls ended after {slowest:?}, \
         client tasks {baseline} → {during} → {tasks_back}"
    );
}

#[test]
fn a_killed_server_process_frees_every_call_on_the_client_ws() {
    killed_server(Carrier::Ws);
}

#[test]
fn a_killed_server_process_frees_every_call_on_the_client_quic() {
    killed_server(Carrier::Quic);
}

/// How a client goes away mid-call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Dropped; its runtime keeps running.
    Drop,
    /// Dropped, and its runtime ends at once (a program returning from
    /// `main`).
    DropAndEnd,
    /// `connection().shutdown(100 ms)` awaited, then dropped and its
    /// runtime ended.
    ShutdownAndEnd,
}

/// A client that goes away mid-call closes its connection: the server frees
/// the calls at once (within `PROMPT`, its idle timeout being 30 s); only a
/// QUIC client whose runtime ends right after the drop cannot say so (no
/// task is left to send its CONNECTION_CLOSE), and the server's idle timeout
/// frees them (3 s here).
fn client_goes_away(carrier: Carrier, exit: Exit) {
    let Some(link) = Link::new() else { return };
    let server_rt = NsRuntime::start(Some(&link.server_ns));
    let silent = carrier == Carrier::Quic && exit == Exit::DropAndEnd;
    let timeouts = if silent {
        Timeouts::short()
    } else {
        Timeouts {
            idle: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
        }
    };
    let bound = if silent {
        timeouts.idle + SLACK
    } else {
        PROMPT
    };
    let served = server_rt.run(serve(carrier, SERVER_IP, timeouts));
    let (addr, tracker) = (served.addr, served.tracker.clone());
    let client_rt = NsRuntime::start(Some(&link.client_ns));
    let (client, calls) = client_rt.run(async move {
        let client = connect(carrier, addr, timeouts).await;
        let calls = service::start_hanging(&client).await.expect("calls");
        (client, calls)
    });
    assert!(server_rt.run({
        let tracker = tracker.clone();
        async move { tracker.wait(PROMPT, |alive, _| alive == 5).await }
    }));
    let gone = Instant::now();
    match exit {
        Exit::Drop => client_rt.run(async move {
            for (_, call) in calls {
                call.abort();
            }
            drop(client);
        }),
        Exit::DropAndEnd => {
            drop((client, calls));
            drop(client_rt);
        }
        Exit::ShutdownAndEnd => {
            let calls = client_rt.run(async move {
                client
                    .connection()
                    .shutdown(Duration::from_millis(100))
                    .await;
                calls
            });
            drop(calls);
            drop(client_rt);
        }
    }
    let freed = server_rt.run({
        let tracker = tracker.clone();
        async move { tracker.wait(bound, |alive, _| alive == 0).await }
    });
    eprintln!(
        "{carrier:?}: client gone ({exit:?}): server handlers freed after {:?}",
        gone.elapsed()
    );
    assert!(
        freed,
        "server: calls of a client gone ({exit:?}) still alive after {bound:?}"
    );
    assert_eq!(served.server.calls_in_flight(), 0);
}

#[test]
fn a_client_that_goes_away_closes_its_connection_ws() {
    for exit in [Exit::Drop, Exit::DropAndEnd, Exit::ShutdownAndEnd] {
        client_goes_away(Carrier::Ws, exit);
    }
}

#[test]
fn a_client_that_goes_away_closes_its_connection_quic() {
    for exit in [Exit::Drop, Exit::DropAndEnd, Exit::ShutdownAndEnd] {
        client_goes_away(Carrier::Quic, exit);
    }
}
