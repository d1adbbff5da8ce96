//! The connection handle ([`WsConnection`]) and the state it shares with the
//! driver and the stream halves (`stream.rs`).
//!
//! The [`Session`] lives behind a mutex shared by the driver task and every
//! handle (quinn's shape). Handles mutate it, then wake the tasks that the
//! resulting events concern and the driver, which owns the socket, once the
//! lock is released. The lock is never held across an await.

use std::io;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, MutexGuard};
use strand_rpc_core::transport::{
    CloseCode, CloseReason, Connection, PeerInfo, Stream, StreamError,
};
use tokio::sync::Notify;

use crate::byte_count::ByteCount;
use crate::goaway::GoAway;
use crate::handshake::UpgradeRequest;
use crate::mux::{Event, OpError, Session, SessionStats, StreamId, StreamMap, StreamStats};
use crate::stream::{WsRecvStream, WsSendStream};

/// State shared by the driver and the handles.
pub(crate) struct Inner {
    pub(crate) session: Session,
    pub(crate) driver: Option<Waker>,
    /// The driver was woken and has not polled since: waking it again is
    /// wasted work (an atomic update on a line the other thread holds).
    driver_woken: bool,
    pub(crate) read_wakers: StreamMap<Waker>,
    pub(crate) write_wakers: StreamMap<Waker>,
    pub(crate) stopped_wakers: StreamMap<Waker>,
    /// Wake-ups found under the lock, delivered once it is released.
    wakeups: Wakeups,
    /// The driver finished (socket gone).
    pub(crate) driver_done: bool,
    /// The go-away notice, both ways (`goaway.rs`).
    pub(crate) go_away: GoAway,
}

impl Inner {
    /// The peer's go-away notice arrived: wake whoever waits for it once
    /// the lock is released.
    pub(crate) fn go_away_received(&mut self) {
        if let Some(waker) = self.go_away.receive() {
            self.wakeups.tasks.push(waker);
        }
    }
}

impl Inner {
    /// Called by the driver as it starts a pass, under the lock.
    pub(crate) fn driver_polled(&mut self, waker: &Waker) {
        self.driver_woken = false;
        if !self.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.driver = Some(waker.clone());
        }
    }
}

/// Tasks and notifications to wake, gathered under the lock and woken after
/// it is released: a task woken under the lock may start on the other
/// thread at once and run straight into it.
#[derive(Default)]
pub(crate) struct Wakeups {
    tasks: Vec<Waker>,
    accept: bool,
    released: bool,
    closed: bool,
}

impl Wakeups {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty() && !self.accept && !self.released && !self.closed
    }
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Bytes in and out, added by the driver outside the lock.
    pub(crate) bytes: ByteCount,
    /// A peer stream is ready, or the connection closed.
    accept: Notify,
    /// A stream slot was released, or the connection closed.
    released: Notify,
    /// The connection closed / the driver ended.
    closed: Notify,
}

impl Shared {
    pub(crate) fn new(session: Session, bytes: ByteCount) -> Arc<Shared> {
        Arc::new(Shared {
            bytes,
            inner: Mutex::new(Inner {
                session,
                driver: None,
                driver_woken: false,
                read_wakers: StreamMap::default(),
                write_wakers: StreamMap::default(),
                stopped_wakers: StreamMap::default(),
                wakeups: Wakeups::default(),
                driver_done: false,
                go_away: GoAway::default(),
            }),
            accept: Notify::new(),
            released: Notify::new(),
            closed: Notify::new(),
        })
    }

    /// Locks the state. parking_lot's lock spins a little before it parks,
    /// which suits these short critical sections: under a 64-caller load
    /// it gave 8 % more calls/s than `std::sync::Mutex` (docs/benchmarks.md).
    /// It has no poisoning: a handle that panicked mid-update left the
    /// session structurally valid, so carrying on is right anyway.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Runs `f` on the state, then wakes whoever the session's events
    /// concern, after unlocking. Wakes the driver when the change gave it
    /// something to do (a message to send, the close), and only then: a
    /// wake-up for nothing costs a task switch, often onto the other thread.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        self.locked(true, f)
    }

    /// [`Shared::with`] for the driver: does not wake the driver, which
    /// would otherwise wake itself forever.
    pub(crate) fn with_driver<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        self.locked(false, f)
    }

    fn locked<R>(&self, wake_driver: bool, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut inner = self.lock();
        let r = f(&mut inner);
        self.process_events(&mut inner);
        let driver = if wake_driver && inner.session.needs_driver() && !inner.driver_woken {
            inner.driver_woken = true;
            inner.driver.clone()
        } else {
            None
        };
        let wakeups = take_wakeups(&mut inner);
        drop(inner);
        if let Some(driver) = driver {
            driver.wake();
        }
        self.wake(wakeups);
        r
    }

    /// Turns the session's events into wake-ups.
    fn process_events(&self, inner: &mut Inner) {
        while let Some(event) = inner.session.poll_event() {
            let woken = match event {
                Event::Opened(_) => {
                    inner.wakeups.accept = true;
                    None
                }
                Event::Readable(id) | Event::Reset { id, .. } => inner.read_wakers.remove(&id),
                Event::Writable(id) | Event::Finished(id) => inner.write_wakers.remove(&id),
                Event::Stopped { id, .. } => {
                    if let Some(w) = inner.stopped_wakers.remove(&id) {
                        inner.wakeups.tasks.push(w);
                    }
                    inner.write_wakers.remove(&id)
                }
                Event::Released(_) => {
                    inner.wakeups.released = true;
                    None
                }
                Event::Closed(_) => {
                    wake_all(inner);
                    None
                }
            };
            if let Some(w) = woken {
                inner.wakeups.tasks.push(w);
            }
        }
        if inner.session.is_draining() {
            // A shutdown waits for streams to become inactive, which any
            // stream operation or frame may cause.
            inner.wakeups.released = true;
        }
    }

    fn wake(&self, wakeups: Option<Wakeups>) {
        let Some(wakeups) = wakeups else {
            return;
        };
        for w in wakeups.tasks {
            w.wake();
        }
        if wakeups.accept {
            self.accept.notify_waiters();
        }
        if wakeups.released {
            self.released.notify_waiters();
        }
        if wakeups.closed {
            self.closed.notify_waiters();
        }
    }

    pub(crate) fn notify_closed(&self) {
        self.closed.notify_waiters();
    }

    /// The connection's figures: the session's and the driver's byte counts.
    fn stats(&self) -> ConnectionStats {
        let mut stats = self.lock().session.stats();
        (stats.bytes_received, stats.bytes_sent) = self.bytes.totals();
        stats
    }
}

/// Takes the gathered wake-ups out of the state (`None` when there are none,
/// the common case for a handle's operation).
fn take_wakeups(inner: &mut Inner) -> Option<Wakeups> {
    if inner.wakeups.is_empty() {
        None
    } else {
        Some(std::mem::take(&mut inner.wakeups))
    }
}

/// Queues a wake-up for every task and waiter: the connection closed.
pub(crate) fn wake_all(inner: &mut Inner) {
    let tasks = &mut inner.wakeups.tasks;
    tasks.extend(inner.read_wakers.drain().map(|(_, w)| w));
    tasks.extend(inner.write_wakers.drain().map(|(_, w)| w));
    tasks.extend(inner.stopped_wakers.drain().map(|(_, w)| w));
    inner.wakeups.accept = true;
    inner.wakeups.released = true;
    inner.wakeups.closed = true;
}

/// A stream operation's result as a poll: `Blocked` registers the task in
/// `wakers` (the session's event for this stream wakes it), other errors
/// become I/O errors.
pub(crate) fn poll_op<T>(
    result: Result<T, OpError>,
    wakers: &mut StreamMap<Waker>,
    id: StreamId,
    cx: &Context<'_>,
) -> Poll<io::Result<T>> {
    match result {
        Ok(v) => Poll::Ready(Ok(v)),
        Err(OpError::Blocked) => {
            wakers.insert(id, cx.waker().clone());
            Poll::Pending
        }
        Err(e) => Poll::Ready(Err(to_stream_error(e).into_io())),
    }
}

pub(crate) fn to_stream_error(err: OpError) -> StreamError {
    match err {
        OpError::Reset(code) => StreamError::Reset(code),
        OpError::Stopped(code) => StreamError::Stopped(code),
        OpError::ClosedLocally => StreamError::ClosedLocally,
        OpError::ConnectionClosed(reason) => StreamError::ConnectionClosed(reason),
        OpError::Refused(what) => StreamError::Refused(what),
        // Callers handle Blocked themselves.
        OpError::Blocked => StreamError::ClosedLocally,
    }
}

/// Connection-wide figures (see also [`WsSendStream::stats`] and
/// [`WsRecvStream::stats`] for one stream).
pub type ConnectionStats = SessionStats;

/// Read-only figures of one connection, for a handler or an operator to look
/// at from outside the connection: every ws connection's
/// [`PeerInfo::extensions`] hold one (`StatsProbe::of(ctx.peer())` in a
/// handler). It does not keep the connection alive: once the connection is
/// gone it reports nothing.
#[derive(Clone)]
pub struct StatsProbe(std::sync::Weak<Shared>);

impl StatsProbe {
    /// The probe of the connection `peer` describes: `None` on another
    /// carrier.
    pub fn of(peer: &PeerInfo) -> Option<&StatsProbe> {
        peer.extensions.get::<StatsProbe>()
    }

    /// Connection-wide figures; `None` once the connection is gone.
    pub fn connection(&self) -> Option<ConnectionStats> {
        Some(self.0.upgrade()?.stats())
    }

    /// The figures of every stream alive, by stream id, in id order; empty
    /// once the connection is gone.
    pub fn streams(&self) -> Vec<(u64, StreamStats)> {
        self.0
            .upgrade()
            .map(|shared| shared.lock().session.all_stream_stats())
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for StatsProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsProbe(..)")
    }
}

/// A mux stream with its own halves, as [`WsConnection::open_stream`] and
/// [`WsConnection::accept_stream`] give it.
pub type WsStream = Stream<WsSendStream, WsRecvStream>;

/// A WebSocket mux connection: opens and accepts streams.
///
/// A cheap handle around the driver task; clones share the connection.
/// Dropping the last handle closes the connection with 1000 (streams the
/// application still holds fail with [`StreamError::ConnectionClosed`]).
#[derive(Clone)]
pub struct WsConnection {
    shared: Arc<Shared>,
    peer: Arc<PeerInfo>,
    _guard: Arc<CloseOnDrop>,
}

struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // Graceful: what streams wrote before the last handle went still
        // reaches the socket before the close frame.
        self.0
            .with(|inner| inner.session.close_after_flush(CloseCode::Normal, ""));
    }
}

impl std::fmt::Debug for WsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsConnection")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl WsConnection {
    pub(crate) fn new(shared: Arc<Shared>, peer: PeerInfo) -> Self {
        let peer = peer.with_extension(StatsProbe(Arc::downgrade(&shared)));
        WsConnection {
            _guard: Arc::new(CloseOnDrop(shared.clone())),
            shared,
            peer: Arc::new(peer),
        }
    }

    /// Connection-wide figures: streams open, accept backlog, bytes
    /// buffered, bytes received and sent.
    pub fn stats(&self) -> ConnectionStats {
        self.shared.stats()
    }

    /// Opens a stream. Waits while [`crate::WsConfig::max_streams`] streams
    /// are alive. Gives the mux's own halves; [`Connection::open_stream`]
    /// boxes them.
    pub async fn open_stream(&self) -> Result<WsStream, StreamError> {
        self.wait_for(&self.shared.released, Session::open).await
    }

    /// Waits for the next stream the peer opened. Gives the mux's own
    /// halves; [`Connection::accept_stream`] boxes them.
    pub async fn accept_stream(&self) -> Result<WsStream, StreamError> {
        self.wait_for(&self.shared.accept, Session::accept).await
    }

    /// Runs `op` until it gives a stream, waiting on `notify` while it is
    /// blocked. The first try registers nothing: registering with a
    /// `Notify` takes its lock, which every call would otherwise pay.
    async fn wait_for(
        &self,
        notify: &Notify,
        op: fn(&mut Session) -> Result<StreamId, OpError>,
    ) -> Result<WsStream, StreamError> {
        let mut notified = std::pin::pin!(notify.notified());
        let mut registered = false;
        loop {
            if let Some(done) = self.try_op(op) {
                return done;
            }
            if registered {
                notified.as_mut().await;
                notified.set(notify.notified());
                registered = false;
            } else {
                // Registered before the retry: a wake-up in between is kept.
                notified.as_mut().enable();
                registered = true;
            }
        }
    }

    /// Runs `op` once: `None` if it is blocked.
    fn try_op(
        &self,
        op: fn(&mut Session) -> Result<StreamId, OpError>,
    ) -> Option<Result<WsStream, StreamError>> {
        match self.shared.with(|inner| op(&mut inner.session)) {
            Ok(id) => Some(Ok(self.halves(id))),
            Err(OpError::Blocked) => None,
            Err(e) => Some(Err(to_stream_error(e))),
        }
    }

    fn halves(&self, id: StreamId) -> WsStream {
        Stream::from_halves(
            WsSendStream::new(self.shared.clone(), id),
            WsRecvStream::new(self.shared.clone(), id),
        )
    }

    /// Closes at once with `code` and `reason`; the close frame carries the
    /// WebSocket code for `code` (see [`crate::mux::close_code::to_wire`]).
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.shared.with(|inner| inner.session.close(code, reason));
    }

    /// Graceful shutdown: no new streams either way (peer opens are refused),
    /// open streams may finish until `deadline` elapses, then the connection
    /// closes with [`CloseCode::Normal`] (1000) after every byte queued for
    /// the socket went out (bounded by [`crate::WsConfig::close_timeout`]).
    /// Resolves once closed.
    pub async fn shutdown(&self, deadline: Duration) -> CloseReason {
        self.shutdown_with(deadline, CloseCode::Normal, "").await
    }

    /// Whether the peer's upgrade request offered the go-away extension
    /// (a server-side connection of a strand client).
    fn peer_offered_go_away(&self) -> bool {
        UpgradeRequest::of(&self.peer).is_some_and(|r| crate::goaway::offered(&r.headers))
    }

    /// Tells the peer we are going away (docs/protocol.md, "Go-away") if
    /// its upgrade request offered the extension: a server-side connection
    /// only. Returns whether the notice was queued.
    pub fn go_away(&self) -> bool {
        if !self.peer_offered_go_away() {
            return false;
        }
        let driver = self.shared.with(|inner| {
            inner.go_away.request_send();
            inner.driver.clone()
        });
        // The session has nothing for the driver: wake it ourselves.
        if let Some(driver) = driver {
            driver.wake();
        }
        true
    }

    /// Resolves once the peer's go-away notice arrived.
    pub async fn going_away(&self) {
        std::future::poll_fn(|cx| {
            if self
                .shared
                .with(|inner| inner.go_away.poll_received(cx.waker()))
            {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// [`WsConnection::shutdown`] ending with `code` and `reason`.
    pub async fn shutdown_with(
        &self,
        deadline: Duration,
        code: CloseCode,
        reason: &str,
    ) -> CloseReason {
        self.shared.with(|inner| inner.session.start_shutdown());
        let drained = async {
            loop {
                let notified = self.shared.released.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                // Only look: processing here would notify ourselves.
                let done = {
                    let inner = self.shared.lock();
                    inner.session.close_reason().is_some() || inner.session.active_streams() == 0
                };
                if done {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(deadline, drained).await;
        // What streams finished writing (or wrote) still reaches the
        // socket before the close frame, within the close timeout.
        self.shared
            .with(|inner| inner.session.close_after_flush(code, reason));
        self.closed().await
    }

    /// Resolves when the connection has closed and its driver has stopped.
    pub async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.shared.closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let inner = self.shared.lock();
                if inner.driver_done {
                    if let Some(reason) = inner.session.close_reason() {
                        return reason.clone();
                    }
                    return CloseReason::lost("driver stopped");
                }
            }
            notified.await;
        }
    }

    /// What is known about the peer.
    pub fn peer(&self) -> &Arc<PeerInfo> {
        &self.peer
    }
}

#[async_trait]
impl Connection for WsConnection {
    async fn open_stream(&self) -> Result<Stream, StreamError> {
        Ok(WsConnection::open_stream(self).await?.boxed())
    }

    async fn accept_stream(&self) -> Result<Stream, StreamError> {
        Ok(WsConnection::accept_stream(self).await?.boxed())
    }

    fn try_open_stream(&self) -> Option<Result<Stream, StreamError>> {
        let opened = self.try_op(Session::open)?;
        Some(opened.map(Stream::boxed))
    }

    fn try_accept_stream(&self) -> Option<Result<Stream, StreamError>> {
        let accepted = self.try_op(Session::accept)?;
        Some(accepted.map(Stream::boxed))
    }

    fn peer_info(&self) -> Arc<PeerInfo> {
        self.peer.clone()
    }

    fn close(&self, code: CloseCode, reason: &str) {
        WsConnection::close(self, code, reason);
    }

    async fn closed(&self) -> CloseReason {
        WsConnection::closed(self).await
    }

    async fn shutdown(&self, timeout: Duration) {
        WsConnection::shutdown(self, timeout).await;
    }

    fn go_away(&self) -> bool {
        WsConnection::go_away(self)
    }

    async fn going_away(&self) {
        WsConnection::going_away(self).await
    }

    /// Closes 1001 toward a strand peer; toward a peer that did not offer
    /// go-away, 1000 as a shutdown does: `@matrixai/ws` takes every code
    /// but 1000 for an error (docs/protocol.md, "Go-away").
    async fn shutdown_going_away(&self, timeout: Duration) {
        let (code, reason) = if self.peer_offered_go_away() {
            (CloseCode::GoingAway, "server draining")
        } else {
            (CloseCode::Normal, "")
        };
        WsConnection::shutdown_with(self, timeout, code, reason).await;
    }
}
