//! A listener's queue of established connections, shared by every carrier:
//! a bound on handshakes in progress (and finished ones not yet accepted), a
//! cap on open connections, and an `accept` that is cancel safe.
//!
//! A listener's background task takes a [`PendingSlot`] before it starts a
//! handshake ([`AcceptQueue::reserve`] waits for one, [`AcceptQueue::try_reserve`]
//! refuses at once), takes a [`ConnectionSlot`] from it for the connection it
//! builds (refusing the newcomer when the connection cap is reached), and
//! pushes the connection. The pending slot is released when the application
//! accepts the connection (or the handshake fails); the connection slot when
//! the connection is dropped.
//!
//! Two ways to stop: [`AcceptQueue::stop_accepting`] takes no new handshake
//! but hands over every connection already set up or being set up (a client
//! that got its `101` may be sending calls: a server that is draining
//! serves them), and [`AcceptQueue::close`] drops them (nobody will accept).

use std::collections::VecDeque;
use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Why [`AcceptQueue::reserve`] gave no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcceptQueueError {
    /// `max_connections` connections are open.
    #[error("connection limit reached")]
    ConnectionLimit,
    /// `max_pending_handshakes` handshakes are in progress or waiting to be
    /// accepted (only from [`AcceptQueue::try_reserve`]; `reserve` waits).
    #[error("pending handshake limit reached")]
    PendingLimit,
    /// The queue was closed: the listener stopped.
    #[error("listener closed")]
    Closed,
}

impl AcceptQueueError {
    /// The `reason` label of a connection refused for this, in
    /// [`crate::metrics::CONNECTIONS_REFUSED`].
    pub fn reason(self) -> &'static str {
        match self {
            AcceptQueueError::ConnectionLimit => "connection_limit",
            AcceptQueueError::PendingLimit => "pending_handshake_limit",
            AcceptQueueError::Closed => "closed",
        }
    }
}

/// Established connections waiting for the application's `accept`.
pub struct AcceptQueue<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    ready: Mutex<VecDeque<(C, OwnedSemaphorePermit)>>,
    /// Wakes `accept` (one waiter per pushed connection) and, at the
    /// close, every waiter.
    notify: Notify,
    /// Wakes `closed` waiters. Apart from `notify`: a pushed connection's
    /// `notify_one` taken by a `closed` waiter would leave `accept` asleep.
    close_notify: Notify,
    /// No new handshake is taken: set by `stop_accepting` and `close`.
    closed: AtomicBool,
    /// Queued connections, and those pushed later, are dropped: set by
    /// `close` only.
    abandoned: AtomicBool,
    /// Handshakes holding a pending slot that have not pushed yet: `accept`
    /// after `stop_accepting` waits for them.
    handshaking: AtomicUsize,
    pending: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

impl<C> Clone for AcceptQueue<C> {
    fn clone(&self) -> Self {
        AcceptQueue {
            inner: self.inner.clone(),
        }
    }
}

impl<C> AcceptQueue<C> {
    /// Connections holding a connection slot: handshaking, queued or open.
    pub fn open_connections(&self) -> usize {
        self.inner.max_connections - self.inner.connections.available_permits()
    }
}

impl<C> fmt::Debug for AcceptQueue<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptQueue")
            .field("open_connections", &self.open_connections())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<C: Send + 'static> AcceptQueue<C> {
    /// A queue allowing `max_pending_handshakes` connections between their
    /// first byte and `accept`, and `max_connections` open in all (each at
    /// least 1).
    pub fn new(max_pending_handshakes: usize, max_connections: usize) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        AcceptQueue {
            inner: Arc::new(Inner {
                ready: Mutex::new(VecDeque::new()),
                notify: Notify::new(),
                close_notify: Notify::new(),
                closed: AtomicBool::new(false),
                abandoned: AtomicBool::new(false),
                handshaking: AtomicUsize::new(0),
                pending: Arc::new(Semaphore::new(
                    max_pending_handshakes.clamp(1, Semaphore::MAX_PERMITS),
                )),
                connections: Arc::new(Semaphore::new(max_connections)),
                max_connections,
            }),
        }
    }

    /// Waits for a pending-handshake slot.
    pub async fn reserve(&self) -> Result<PendingSlot<C>, AcceptQueueError> {
        let pending = self
            .inner
            .pending
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AcceptQueueError::Closed)?;
        self.slot(pending)
    }

    /// Takes a pending-handshake slot without waiting.
    pub fn try_reserve(&self) -> Result<PendingSlot<C>, AcceptQueueError> {
        if self.is_closed() {
            return Err(AcceptQueueError::Closed);
        }
        let pending = self
            .inner
            .pending
            .clone()
            .try_acquire_owned()
            .map_err(|_| AcceptQueueError::PendingLimit)?;
        self.slot(pending)
    }

    /// Counts the handshake in before it looks at `closed` (both SeqCst):
    /// an `accept` that saw none in progress after `stop_accepting` has
    /// them all queued, and one counted in later fails here.
    fn slot(&self, pending: OwnedSemaphorePermit) -> Result<PendingSlot<C>, AcceptQueueError> {
        self.inner.handshaking.fetch_add(1, Ordering::SeqCst);
        let slot = PendingSlot {
            inner: self.inner.clone(),
            pending: Some(pending),
        };
        if self.is_closed() {
            return Err(AcceptQueueError::Closed);
        }
        Ok(slot)
    }

    /// Waits for the next established connection. After
    /// [`AcceptQueue::stop_accepting`] it gives the connections queued and
    /// those of the handshakes still in progress, then fails with
    /// [`AcceptQueueError::Closed`]; after [`AcceptQueue::close`] it fails.
    ///
    /// Cancel safety: cancel safe; a connection leaves the queue only when
    /// this returns it.
    pub async fn accept(&self) -> Result<C, AcceptQueueError> {
        loop {
            let mut notified = pin!(self.inner.notify.notified());
            notified.as_mut().enable();
            // Read before the pop: a handshake pushes before it stops
            // counting, so none in progress here means all are queued.
            let all_queued = self.is_closed() && self.inner.handshaking.load(Ordering::SeqCst) == 0;
            if let Some((conn, _pending)) = self.lock().pop_front() {
                return Ok(conn);
            }
            if all_queued || self.inner.abandoned.load(Ordering::SeqCst) {
                return Err(AcceptQueueError::Closed);
            }
            notified.await;
        }
    }

    /// Takes no new handshake (waiting `reserve` calls fail with
    /// [`AcceptQueueError::Closed`]) but keeps the connections queued and
    /// those whose handshake is in progress for `accept`, which fails once
    /// it has given them all. For a server that stops gracefully: a client
    /// whose handshake completed may already be sending calls.
    pub fn stop_accepting(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.pending.close();
        self.inner.notify.notify_waiters();
        self.inner.close_notify.notify_waiters();
    }

    /// Stops the queue: queued connections are dropped (and those pushed
    /// later), waiting `reserve` and `accept` calls fail with
    /// [`AcceptQueueError::Closed`]. Connections already accepted are not
    /// affected.
    pub fn close(&self) {
        self.inner.abandoned.store(true, Ordering::SeqCst);
        self.stop_accepting();
        let dropped = std::mem::take(&mut *self.lock());
        drop(dropped);
    }

    /// Completes once the queue takes no new handshake
    /// ([`AcceptQueue::stop_accepting`] or [`AcceptQueue::close`]; at once
    /// if that happened already). Cancel safe.
    pub async fn closed(&self) {
        loop {
            let mut notified = pin!(self.inner.close_notify.notified());
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Whether the queue takes no new handshake
    /// ([`AcceptQueue::stop_accepting`] or [`AcceptQueue::close`]).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(C, OwnedSemaphorePermit)>> {
        self.inner
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handshake's place in an [`AcceptQueue`]: taken before the handshake,
/// released when the connection is accepted or the handshake fails.
pub struct PendingSlot<C> {
    inner: Arc<Inner<C>>,
    /// Taken by `push`, which moves it to the queue.
    pending: Option<OwnedSemaphorePermit>,
}

impl<C> fmt::Debug for PendingSlot<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingSlot").finish_non_exhaustive()
    }
}

impl<C> PendingSlot<C> {
    /// A slot under the connection cap, to be kept by the connection for as
    /// long as it lives. Fails with [`AcceptQueueError::ConnectionLimit`]
    /// when `max_connections` are open: refuse the newcomer then.
    pub fn connection_slot(&self) -> Result<ConnectionSlot, AcceptQueueError> {
        let permit = self
            .inner
            .connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| AcceptQueueError::ConnectionLimit)?;
        Ok(ConnectionSlot(permit))
    }

    /// Queues the established connection for `accept`. The pending slot stays
    /// taken until it is accepted. Dropped at once if the queue was closed
    /// with [`AcceptQueue::close`] (after `stop_accepting` it is queued).
    pub fn push(mut self, conn: C) {
        let pending = self.pending.take().expect("pushed once");
        {
            let mut ready = self
                .inner
                .ready
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Under the lock: `close` sets `abandoned` before it empties the
            // queue, so a push after that empty is seen here and dropped.
            if self.inner.abandoned.load(Ordering::SeqCst) {
                return;
            }
            ready.push_back((conn, pending));
        }
        self.inner.notify.notify_one();
        // `self` drops here: the handshake stops counting after the push.
    }
}

impl<C> Drop for PendingSlot<C> {
    fn drop(&mut self) {
        let was = self.inner.handshaking.fetch_sub(1, Ordering::SeqCst);
        if was == 1 && self.inner.closed.load(Ordering::SeqCst) {
            // The last one after `stop_accepting`: `accept` may now fail.
            self.inner.notify.notify_waiters();
        }
    }
}

/// One open connection's share of an [`AcceptQueue`]'s connection cap,
/// released when dropped.
pub struct ConnectionSlot(#[allow(dead_code)] OwnedSemaphorePermit);

impl fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionSlot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_closed_waiter_does_not_take_the_wakeup_of_an_accept() {
        // Both waited on one Notify: the connection's notify_one went to
        // the older `closed` waiter and `accept` slept on (a wss call hung
        // while an HTTP/2 connection of the listener was still up).
        let queue = AcceptQueue::<u32>::new(2, 2);
        let closed = tokio::spawn({
            let queue = queue.clone();
            async move { queue.closed().await }
        });
        tokio::task::yield_now().await;
        let accept = tokio::spawn({
            let queue = queue.clone();
            async move { queue.accept().await }
        });
        tokio::task::yield_now().await;
        queue.try_reserve().unwrap().push(7);
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(5), accept)
            .await
            .expect("accept was woken")
            .unwrap();
        assert_eq!(accepted, Ok(7));
        assert!(!closed.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn closed_waits_for_the_close() {
        let queue = AcceptQueue::<u32>::new(1, 1);
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.closed().await }
        });
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "open: still waiting");
        queue.close();
        waiting.await.unwrap();
        // Already closed: at once.
        queue.closed().await;
    }

    #[tokio::test]
    async fn bounds_pending_and_open_connections() {
        let queue = AcceptQueue::<u32>::new(2, 3);
        let a = queue.try_reserve().unwrap();
        let b = queue.try_reserve().unwrap();
        assert_eq!(
            queue.try_reserve().unwrap_err(),
            AcceptQueueError::PendingLimit
        );
        let slot_a = a.connection_slot().unwrap();
        a.push(1);
        drop(b); // a failed handshake frees its pending slot
        assert_eq!(queue.open_connections(), 1);
        assert_eq!(queue.accept().await.unwrap(), 1);
        // Accepted: its pending slot is free, its connection slot is not.
        let c = queue.try_reserve().unwrap();
        let d = queue.try_reserve().unwrap();
        let _keep = (c.connection_slot().unwrap(), d.connection_slot().unwrap());
        assert_eq!(queue.open_connections(), 3);
        drop((c, d));
        let e = queue.try_reserve().unwrap();
        assert_eq!(
            e.connection_slot().unwrap_err(),
            AcceptQueueError::ConnectionLimit
        );
        drop(slot_a);
        assert!(e.connection_slot().is_ok());
    }

    #[tokio::test]
    async fn close_wakes_accept_and_drops_queued() {
        let queue = AcceptQueue::<u32>::new(4, 4);
        queue.try_reserve().unwrap().push(7);
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move {
                let first = queue.accept().await;
                (first, queue.accept().await)
            }
        });
        tokio::task::yield_now().await;
        queue.close();
        let (first, second) = waiter.await.unwrap();
        assert_eq!(first, Ok(7));
        assert_eq!(second, Err(AcceptQueueError::Closed));
        assert_eq!(queue.reserve().await.unwrap_err(), AcceptQueueError::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_accepting_hands_over_the_queued_and_the_handshakes_in_progress() {
        let queue = AcceptQueue::<u32>::new(4, 4);
        queue.try_reserve().unwrap().push(1);
        let in_progress = queue.try_reserve().unwrap();
        let failing = queue.try_reserve().unwrap();
        queue.stop_accepting();
        assert_eq!(queue.try_reserve().unwrap_err(), AcceptQueueError::Closed);
        assert_eq!(queue.reserve().await.unwrap_err(), AcceptQueueError::Closed);
        queue.closed().await;
        assert_eq!(queue.accept().await, Ok(1));
        let waiter = tokio::spawn({
            let queue = queue.clone();
            async move { (queue.accept().await, queue.accept().await) }
        });
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(
            !waiter.is_finished(),
            "two handshakes are still in progress"
        );
        in_progress.push(2);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "one handshake is still in progress");
        drop(failing);
        let (second, third) = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the last handshake ended")
            .unwrap();
        assert_eq!(second, Ok(2));
        assert_eq!(third, Err(AcceptQueueError::Closed));
    }

    #[tokio::test]
    async fn close_after_stop_accepting_drops_what_is_left() {
        let queue = AcceptQueue::<u32>::new(4, 4);
        queue.try_reserve().unwrap().push(1);
        let late = queue.try_reserve().unwrap();
        queue.stop_accepting();
        queue.close();
        late.push(2);
        assert_eq!(queue.accept().await, Err(AcceptQueueError::Closed));
    }
}
