//! Network fault and soak tests for strand (docs/reliability.md, "Network
//! faults" and "Soak"): servers and clients on real sockets in network
//! namespaces made by the test, a forwarder for delay, jitter, reordering
//! and duplication, nftables for loss and cuts, and killed peer processes.
//!
//! The default profile is small enough for CI; `STRAND_FAULTS_FULL=1` runs
//! the full figures of the issue (8 MiB transfers, a 10-minute soak).

pub mod forwarder;
pub mod netns;
pub mod service;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use strand::tls::{Identity, ServerVerification};
use strand::{Client, Endpoint, Server};

pub use netns::{Link, NsRuntime, CLIENT_IP, SERVER_IP};
pub use service::Tracker;

/// Whether the full profile was asked for (`STRAND_FAULTS_FULL=1`).
pub fn full() -> bool {
    std::env::var("STRAND_FAULTS_FULL").as_deref() == Ok("1")
}

/// The carrier under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// Streams multiplexed over a WebSocket (TCP).
    Ws,
    /// QUIC (UDP).
    Quic,
}

impl Carrier {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Carrier::Ws => "ws",
            Carrier::Quic => "quic",
        }
    }
}

/// Idle timeout and keep-alive of both ends in the fault tests.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// `timeouts.idle_ms`.
    pub idle: Duration,
    /// `timeouts.keep_alive_ms`.
    pub keep_alive: Duration,
}

impl Timeouts {
    /// 3 s idle, 1 s keep-alive: a cut link is noticed in seconds.
    pub fn short() -> Timeouts {
        Timeouts {
            idle: Duration::from_secs(3),
            keep_alive: Duration::from_secs(1),
        }
    }
}

fn endpoint(carrier: Carrier, addr: SocketAddr, timeouts: Timeouts) -> Endpoint {
    let mut endpoint = Endpoint::from_url(&format!("{}://{addr}", carrier.scheme())).expect("url");
    let t = &mut endpoint.config_mut().timeouts;
    t.idle_ms = Some(timeouts.idle.as_millis() as u64);
    t.keep_alive_ms = Some(timeouts.keep_alive.as_millis() as u64);
    endpoint
}

/// A server of [`service::router`], running on some runtime.
pub struct Served {
    /// The server (for `calls_in_flight` and shutdown).
    pub server: Server,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its waiting handlers.
    pub tracker: Arc<Tracker>,
}

/// The server's deadline for a call that names none: long enough for the
/// full profile's 8 MiB raw transfer through loss (over a minute on QUIC;
/// the default of 60 s covers the whole raw call, bytes included).
pub const CALL_DEADLINE: Duration = Duration::from_secs(600);

/// Binds a server on `ip` (port 0) and serves it on the current runtime.
pub async fn serve(carrier: Carrier, ip: IpAddr, timeouts: Timeouts) -> Served {
    let tracker = Arc::new(Tracker::default());
    let server = Server::builder(service::router(tracker.clone()))
        .default_timeout(CALL_DEADLINE)
        .build();
    let mut endpoint = endpoint(carrier, SocketAddr::new(ip, 0), timeouts);
    if carrier == Carrier::Quic {
        endpoint = endpoint.with_identity(Identity::dev().expect("dev identity"));
    }
    let listener = endpoint.bind().await.expect("bind");
    let addr = listener.local_addr();
    tokio::spawn({
        let server = server.clone();
        async move { server.serve(listener).await }
    });
    Served {
        server,
        addr,
        tracker,
    }
}

/// Connects a client to `addr`.
pub async fn connect(carrier: Carrier, addr: SocketAddr, timeouts: Timeouts) -> Client {
    endpoint(carrier, addr, timeouts)
        .with_server_verification(ServerVerification::Insecure)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr} over {carrier:?}: {e}"))
}

/// The RSS of this process, in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
