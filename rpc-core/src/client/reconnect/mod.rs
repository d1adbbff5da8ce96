//! Reconnecting: a [`Connection`] that makes a new connection through a
//! [`Connector`] when the current one is lost or its server goes away.
//!
//! [`Client::connect_with`](crate::Client::connect_with) builds a client on
//! one. Its state is a `tokio::sync::watch` ([`ClientState`]). When the
//! connection is lost the client waits [`Backoff`] between attempts
//! (gRPC's connection backoff: 1 s, ×1.6, 120 s at most, ±20 %), up to
//! [`ReconnectConfig::max_attempts`] failures in a row, then closes. When the
//! server says it is going away (a draining strand server, docs/protocol.md,
//! "Go-away"), new calls go to a new connection at once while the calls in
//! flight finish on the old one.
//!
//! Calls made while reconnecting wait for the new connection within their
//! own timeout. What happens to a call in flight when the connection is
//! lost is in [`crate::ClientError::ConnectionLost`]; streams are never
//! resumed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{watch, Notify};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::debug;

use crate::transport::{
    CloseCode, CloseReason, Connection, DynConnection, PeerInfo, Stream, StreamError,
};

mod backoff;

pub use backoff::Backoff;

/// Makes a new connection: given by whoever knows the carrier (the facade's
/// `Endpoint`), so that rpc-core stays carrier-free.
pub type Connector =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = io::Result<DynConnection>> + Send>> + Send + Sync>;

/// When and how often a client reconnects. The defaults are gRPC's
/// connection backoff.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// The wait after the first failed attempt. Default 1 s.
    pub initial_backoff: Duration,
    /// How much each wait grows over the last. Default 1.6.
    pub multiplier: f64,
    /// The longest wait between attempts. Default 120 s.
    pub max_backoff: Duration,
    /// How far each wait is moved at random, as a fraction of it (0.2 =
    /// ±20 %). Default 0.2.
    pub jitter: f64,
    /// Failed attempts in a row before the client gives up and closes;
    /// `None` retries for ever. Default `None`.
    pub max_attempts: Option<u32>,
    /// How many times one call is sent again after the connection was
    /// lost (an idempotent one, or one the server did not start). Bounds
    /// the work a call can cause on a server that keeps failing. Default 3.
    pub max_call_retries: u32,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_backoff: Duration::from_secs(1),
            multiplier: 1.6,
            max_backoff: Duration::from_secs(120),
            jitter: 0.2,
            max_attempts: None,
            max_call_retries: 3,
        }
    }
}

impl ReconnectConfig {
    /// Sets the wait after the first failed attempt.
    pub fn initial_backoff(mut self, wait: Duration) -> Self {
        self.initial_backoff = wait;
        self
    }

    /// Sets how much each wait grows over the last (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets the longest wait between attempts.
    pub fn max_backoff(mut self, wait: Duration) -> Self {
        self.max_backoff = wait;
        self
    }

    /// Sets the jitter, a fraction of each wait (0 to 1).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the failed attempts in a row before giving up (`None`: never).
    pub fn max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets how many times one call is sent again.
    pub fn max_call_retries(mut self, retries: u32) -> Self {
        self.max_call_retries = retries;
        self
    }
}

/// Where a reconnecting client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientState {
    /// Making the first connection.
    Connecting,
    /// A connection is up; calls go out at once.
    Ready,
    /// The connection was lost or its server is going away; a new one is
    /// being made, and new calls wait for it.
    Reconnecting,
    /// Given up (attempts exhausted) or dropped; calls fail.
    Closed,
}

/// The connection of a reconnecting client: the current one while there is
/// one, a wait while there is not. Dropping it stops reconnecting and closes
/// the current connection.
pub struct ReconnectingConnection {
    shared: Arc<Shared>,
    stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

struct Shared {
    /// The connection new calls go to; `None` while reconnecting.
    current: Mutex<Option<DynConnection>>,
    state: watch::Sender<ClientState>,
    /// The current connection should be replaced (lost, or its server
    /// refused a call because it is stopping).
    retire: Notify,
    /// Why the client closed, once it has.
    closed: Mutex<Option<CloseReason>>,
    peer: Arc<PeerInfo>,
}

impl Shared {
    fn current(&self) -> Option<DynConnection> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set(&self, conn: Option<DynConnection>, state: ClientState) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = conn;
        self.state.send_replace(state);
    }

    fn closed_error(&self) -> StreamError {
        let reason = self
            .closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        StreamError::ConnectionClosed(
            reason.unwrap_or_else(|| CloseReason::local(CloseCode::Normal, "client closed")),
        )
    }

    /// Whether `conn` is the connection new calls go to.
    fn is_current(&self, conn: &DynConnection) -> bool {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, conn))
    }

    /// The current connection, waiting for one while reconnecting.
    async fn ready(&self) -> Result<DynConnection, StreamError> {
        let mut state = self.state.subscribe();
        loop {
            if let Some(conn) = self.current() {
                return Ok(conn);
            }
            if *state.borrow_and_update() == ClientState::Closed {
                return Err(self.closed_error());
            }
            if state.changed().await.is_err() {
                return Err(self.closed_error());
            }
        }
    }

    /// Stops sending new calls to `conn` (if it is still the current one)
    /// and has a new one made.
    fn retire(&self, conn: &DynConnection) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *current = None;
            drop(current);
            self.state.send_replace(ClientState::Reconnecting);
            self.retire.notify_one();
        }
    }
}

impl ReconnectingConnection {
    /// Makes the first connection with `connector` and keeps one up from
    /// then on. Fails if the first attempt fails: a wrong address or
    /// certificate shows at once rather than as calls that wait.
    pub async fn connect(connector: Connector, config: ReconnectConfig) -> io::Result<Self> {
        let (state, _) = watch::channel(ClientState::Connecting);
        let first = connector().await?;
        let shared = Arc::new(Shared {
            current: Mutex::new(None),
            state,
            retire: Notify::new(),
            closed: Mutex::new(None),
            peer: first.peer_info(),
        });
        shared.set(Some(first.clone()), ClientState::Ready);
        let stop = CancellationToken::new();
        tokio::spawn(supervise(
            shared.clone(),
            first,
            connector,
            config,
            stop.clone(),
        ));
        Ok(ReconnectingConnection {
            shared,
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
        })
    }

    /// The client's state, as it changes.
    pub fn state(&self) -> watch::Receiver<ClientState> {
        self.shared.state.subscribe()
    }

    /// The connection new calls go to now, if there is one.
    pub fn current(&self) -> Option<DynConnection> {
        self.shared.current()
    }

    /// Has `conn` replaced: a call learnt that its server stopped taking
    /// calls on it (a refusal that says the call was not started).
    pub(crate) fn retire(&self, conn: &DynConnection) {
        self.shared.retire(conn);
    }
}

/// Keeps a connection up until the client is dropped or gives up.
async fn supervise(
    shared: Arc<Shared>,
    mut conn: DynConnection,
    connector: Connector,
    config: ReconnectConfig,
    stop: CancellationToken,
) {
    loop {
        // `retire` notifies only while `conn` is current, and a permit left
        // by a notification before this point is for `conn` too.
        let retired = shared.retire.notified();
        tokio::select! {
            _ = stop.cancelled() => {
                conn.close(CloseCode::Normal, "client closed");
                return;
            }
            reason = conn.closed() => {
                debug!(%reason, "connection lost: reconnecting");
                shared.set(None, ClientState::Reconnecting);
            }
            () = conn.going_away() => {
                debug!("the server is going away: moving new calls to a new connection");
                shared.set(None, ClientState::Reconnecting);
                linger(conn.clone(), stop.clone());
            }
            () = retired => {
                if shared.is_current(&conn) {
                    // A permit left by a retirement raced by the loss of the
                    // connection before this one: `retire` takes the
                    // connection it notifies for out of `current`.
                    continue;
                }
                debug!("the server refused a call: moving to a new connection");
                linger(conn.clone(), stop.clone());
            }
        }
        let mut backoff = Backoff::new(&config);
        let mut failures = 0u32;
        conn = loop {
            let attempt = tokio::select! {
                _ = stop.cancelled() => return,
                attempt = connector() => attempt,
            };
            match attempt {
                Ok(next) => break next,
                Err(e) => {
                    failures += 1;
                    if config.max_attempts.is_some_and(|max| failures >= max) {
                        debug!(error = %e, failures, "giving up reconnecting");
                        *shared.closed.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(CloseReason::lost(format!(
                                "reconnecting failed {failures} times, last: {e}"
                            )));
                        shared.set(None, ClientState::Closed);
                        return;
                    }
                    let wait = backoff.next_delay();
                    debug!(error = %e, ?wait, "reconnect attempt failed");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        };
        if stop.is_cancelled() {
            return;
        }
        shared.set(Some(conn.clone()), ClientState::Ready);
    }
}

/// How long a connection we moved away from may keep its calls in flight
/// before we close it anyway (the server's grace usually ends it first).
const LINGER_LIMIT: Duration = Duration::from_secs(120);

/// Closes a connection we no longer send new calls to once the calls in
/// flight on it are done (a graceful shutdown: it opens no stream and waits
/// for the open ones). A draining server waits for that close before it
/// closes itself, so that no call we sent before reading its go-away is
/// lost on the wire (docs/protocol.md, "Go-away"); dropping the last handle
/// instead would cut the calls in flight.
fn linger(conn: DynConnection, stop: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            () = conn.shutdown(LINGER_LIMIT) => {}
            _ = conn.closed() => {}
            _ = stop.cancelled() => conn.close(CloseCode::Normal, "client closed"),
        }
    });
}

#[async_trait]
impl Connection for ReconnectingConnection {
    async fn open_stream(&self) -> Result<Stream, StreamError> {
        loop {
            let conn = self.shared.ready().await?;
            match conn.open_stream().await {
                Ok(stream) => return Ok(stream),
                // Nothing of the call was sent: safe on the next connection.
                Err(StreamError::ConnectionClosed(_)) => self.shared.retire(&conn),
                // We moved away from `conn` meanwhile (a go-away) and it is
                // shutting down: nothing was sent, the next one takes it.
                Err(StreamError::Refused(_)) if !self.shared.is_current(&conn) => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn try_open_stream(&self) -> Option<Result<Stream, StreamError>> {
        match self.shared.current()?.try_open_stream()? {
            Err(StreamError::ConnectionClosed(_)) => None,
            opened => Some(opened),
        }
    }

    async fn accept_stream(&self) -> Result<Stream, StreamError> {
        let conn = self.shared.ready().await?;
        conn.accept_stream().await
    }

    fn peer_info(&self) -> Arc<PeerInfo> {
        self.shared
            .current()
            .map_or_else(|| self.shared.peer.clone(), |c| c.peer_info())
    }

    fn close(&self, code: CloseCode, reason: &str) {
        *self.shared.closed.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(CloseReason::local(code, reason));
        self.stop.cancel();
        if let Some(conn) = self.shared.current() {
            conn.close(code, reason);
        }
        self.shared.set(None, ClientState::Closed);
    }

    async fn closed(&self) -> CloseReason {
        let mut state = self.shared.state.subscribe();
        while *state.borrow_and_update() != ClientState::Closed {
            if state.changed().await.is_err() {
                break;
            }
        }
        match self.shared.closed_error() {
            StreamError::ConnectionClosed(reason) => reason,
            _ => CloseReason::local(CloseCode::Normal, "client closed"),
        }
    }
}
