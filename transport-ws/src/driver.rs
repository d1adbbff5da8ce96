//! The driver: the only code that touches the socket and the timers.
//!
//! One task per connection polls, in a loop, (1) the socket for incoming
//! messages, handing each to the session at once (a stream's DATA goes into
//! that stream's buffer, bounded by the credit we granted: the read loop never
//! waits on a stream's consumer; a socket found empty is read again only
//! once its own waker fired, see [`ReadWake`]), (2) the session for frames to send, feeding
//! them all while the sink is ready and flushing once, and (3) the keep-alive,
//! idle and close timers.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::{Sink, Stream};
use strand_rpc_core::transport::CloseCode;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep, Instant, Sleep};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WireCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsErr, Message};
use tokio_tungstenite::WebSocketStream;

use crate::conn::{wake_all, Inner, Shared};
use crate::mux::close_code;

/// Messages read per wake-up before yielding, so one busy socket cannot
/// starve the writes or other tasks.
const READ_BUDGET: usize = 64;

/// Bytes of received messages above which a batch is handed to the session
/// before reading on: bulk data reaches its reader without waiting for the
/// rest of the batch.
const READ_BATCH_BYTES: usize = 16 << 10;

/// Messages taken from the session under one lock, at most.
const WRITE_BATCH: usize = 64;

/// Bytes taken from the session under one lock, at most (one more message
/// may pass it): bounds what the driver holds outside the session.
const WRITE_BATCH_BYTES: usize = 128 << 10;

/// Timers of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    pub keep_alive: Option<Duration>,
    pub idle: Option<Duration>,
    pub close: Duration,
    pub send: Option<Duration>,
}

/// Where a connection is in its close lifecycle.
///
/// ```text
///  Open ──session closed (either side, or a protocol error)──► Closing
///  Closing ──our close frame flushed and the peer's close read, or the
///            peer's close answered, or the close timer fired──► (driver ends)
/// ```
enum Phase {
    /// Reading and writing as usual.
    Open,
    /// The session closed; the close handshake runs, bounded by the close
    /// timer.
    Closing(Closing),
}

struct Closing {
    /// We closed (so we send the first close frame), rather than the peer.
    local: bool,
    /// Our close frame went into the sink.
    frame_sent: bool,
    /// When we stop waiting for the peer's part of the handshake.
    deadline: Pin<Box<Sleep>>,
}

struct Driver<S> {
    ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    timers: Timers,
    phase: Phase,
    keep_alive: Option<Pin<Box<Sleep>>>,
    idle: Option<Pin<Box<Sleep>>>,
    /// The send-progress timer (allocated once), polled only while armed.
    send_timer: Option<Pin<Box<Sleep>>>,
    send_timer_armed: bool,
    /// Since when data waits for a socket that takes none of it; `None`
    /// while the socket keeps up (or nothing waits).
    stalled_since: Option<Instant>,
    /// When the peer was last heard from, for the idle timeout; updated from
    /// `heard_from_peer` once per pass of the driver.
    last_heard: Instant,
    heard_from_peer: bool,
    /// When the driver started: the session's time counts from here.
    started: Instant,
    /// Messages read in one batch (kept for its capacity).
    read_batch: Vec<Message>,
    /// Messages taken from the session that the sink has not accepted yet
    /// (at most one batch).
    unsent: VecDeque<Bytes>,
    /// The sink took messages since its last flush.
    needs_flush: bool,
    /// Our go-away notice waits for the sink (docs/protocol.md, "Go-away").
    go_away_pending: bool,
    /// The socket's read side ended (or failed); it is not polled again.
    read_done: bool,
    /// The session's state as of the driver's last lock of it (see
    /// [`Driver::with_session`]): whether it wants the socket read, and
    /// whether it closed.
    wants_read: bool,
    session_closed: bool,
    /// The waker the socket is read with, and whether it fired.
    read_wake: Arc<ReadWake>,
    read_waker: Waker,
    /// The last read found the socket empty, and [`Driver::read_wake`] has
    /// not fired since: reading again would find it empty again.
    read_idle: bool,
}

/// Reading the socket when it has nothing costs more than a look:
/// tungstenite zero-fills its read buffer's spare room (up to
/// `read_buffer_size`) before every read. A driver woken to write would pay
/// that on each pass, so the socket is read with a waker of its own, which
/// notes that the read side was woken and then wakes the driver; until it
/// fires, a read that found nothing is not repeated (as any future that
/// returned `Pending` need not be polled before its waker is called).
#[derive(Default)]
struct ReadWake {
    woken: AtomicBool,
    driver: AtomicWaker,
}

impl ReadWake {
    /// Whether the read side was woken since the last call.
    fn take_woken(&self) -> bool {
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for ReadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.driver.wake();
    }
}

/// Runs a connection until it closed. Spawned once per connection.
pub(crate) async fn run<S>(ws: WebSocketStream<S>, shared: Arc<Shared>, timers: Timers)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let read_wake = Arc::new(ReadWake::default());
    let mut driver = Driver {
        ws,
        read_waker: Waker::from(read_wake.clone()),
        read_wake,
        read_idle: false,
        shared,
        timers,
        keep_alive: timers.keep_alive.map(|d| Box::pin(sleep(d))),
        idle: timers.idle.map(|d| Box::pin(sleep(d))),
        send_timer: timers.send.map(|d| Box::pin(sleep(d))),
        send_timer_armed: false,
        stalled_since: None,
        phase: Phase::Open,
        last_heard: Instant::now(),
        heard_from_peer: false,
        started: Instant::now(),
        read_batch: Vec::new(),
        unsent: VecDeque::new(),
        needs_flush: false,
        go_away_pending: false,
        read_done: false,
        wants_read: true,
        session_closed: false,
    };
    // Declared after the driver, so dropped before it: also when the
    // future is dropped unfinished (a task running several drivers, such as
    // an HTTP/2 connection's, ended).
    let ended = Ended(driver.shared.clone());
    poll_fn(|cx| driver.poll(cx)).await;
    drop(ended);
    drop(driver);
}

/// Ends the session when the driver stops, finished or dropped: the
/// handles see the connection as lost and every waiter wakes.
struct Ended(Arc<Shared>);

impl Drop for Ended {
    fn drop(&mut self) {
        let shared = &self.0;
        shared.with(|inner| {
            inner.session.handle_lost("connection ended");
            inner.driver_done = true;
            inner.driver = None;
        });
        shared.with(wake_all);
        shared.notify_closed();
    }
}

impl<S> Driver<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn ws(&mut self) -> Pin<&mut WebSocketStream<S>> {
        Pin::new(&mut self.ws)
    }

    /// Runs `f` on the shared state and notes what the driver's own checks
    /// need from it (whether to read, whether the session closed): each step
    /// of a pass takes the lock once, not once more per check, and the
    /// handles on the other thread contend with fewer acquisitions. A change
    /// a handle makes meanwhile wakes the driver, and the next pass sees it.
    fn with_session<R>(&mut self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut state = (true, false);
        let r = self.shared.with_driver(|inner| {
            let r = f(inner);
            state = (
                inner.session.wants_read(),
                inner.session.close_reason().is_some(),
            );
            r
        });
        (self.wants_read, self.session_closed) = state;
        r
    }

    /// The socket's next message, read with [`Driver::read_waker`]; not
    /// read again after finding nothing until that waker fires.
    fn poll_message(&mut self) -> Poll<Option<Result<Message, WsErr>>> {
        if self.read_idle && !self.read_wake.take_woken() {
            return Poll::Pending;
        }
        let mut cx = Context::from_waker(&self.read_waker);
        let polled = Pin::new(&mut self.ws).poll_next(&mut cx);
        self.read_idle = polled.is_pending();
        polled
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.read_wake.driver.register(cx.waker());
        self.with_session(|inner| inner.driver_polled(cx.waker()));
        loop {
            let mut progress = false;
            if self.poll_read(cx, &mut progress).is_ready() {
                return Poll::Ready(());
            }
            if self.poll_write(cx, &mut progress).is_ready() {
                return Poll::Ready(());
            }
            if self.poll_timers(cx, &mut progress).is_ready() {
                return Poll::Ready(());
            }
            if self.poll_closing(cx).is_ready() {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Reads up to [`READ_BUDGET`] messages, then hands them to the session
    /// under one lock: the handles on other threads contend for the lock
    /// once per batch, not once per message.
    fn poll_read(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Poll<()> {
        if self.read_done {
            return Poll::Pending;
        }
        if !self.wants_read {
            // Too many replies queued for a peer that does not read: stop
            // reading until the socket drains them. Checked per batch, so
            // the queue may pass the limit by one batch's replies.
            return Poll::Pending;
        }
        let mut batch = std::mem::take(&mut self.read_batch);
        let mut batch_bytes = 0;
        let mut read_bytes = 0;
        let mut got = false;
        let mut end = None;
        let mut budget_used = true;
        for _ in 0..READ_BUDGET {
            match self.poll_message() {
                Poll::Pending => {
                    budget_used = false;
                    break;
                }
                Poll::Ready(Some(Ok(msg))) => {
                    got = true;
                    batch_bytes += msg.len();
                    read_bytes += msg.len();
                    batch.push(msg);
                    if batch_bytes >= READ_BATCH_BYTES {
                        // Bulk data: let its reader start on it now.
                        self.deliver(&mut batch);
                        batch_bytes = 0;
                    }
                }
                Poll::Ready(other) => {
                    end = Some(other);
                    budget_used = false;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            self.deliver(&mut batch);
        }
        *progress |= got;
        self.read_batch = batch;
        if got {
            self.shared.bytes.add(read_bytes as u64, 0);
        }
        match end {
            Some(None) => {
                self.read_done = true;
                self.with_session(|inner| inner.session.handle_lost("connection reset"));
                return Poll::Ready(());
            }
            Some(Some(Err(err))) => {
                self.read_done = true;
                return self.on_read_error(err);
            }
            _ => {}
        }
        if budget_used {
            // Budget used up: come back after other tasks ran.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Hands the messages read so far to the session.
    fn deliver(&mut self, batch: &mut Vec<Message>) {
        self.on_alive();
        // The flood budgets refill with the connection's age: one clock
        // read per batch.
        let age = self.started.elapsed();
        self.with_session(|inner| {
            inner.session.set_time(age);
            for msg in batch.drain(..) {
                on_message(inner, msg);
            }
        });
    }

    /// Notes that the peer was heard from; `poll_timers` reads the clock
    /// once per pass for it.
    fn on_alive(&mut self) {
        self.heard_from_peer = true;
    }

    fn on_read_error(&mut self, err: WsErr) -> Poll<()> {
        match err {
            WsErr::ConnectionClosed | WsErr::AlreadyClosed => {
                self.with_session(|inner| inner.session.handle_lost("connection closed"));
                Poll::Ready(())
            }
            WsErr::Capacity(e) => {
                self.with_session(|inner| {
                    inner
                        .session
                        .close(CloseCode::TooBig, &format!("message too big: {e}"))
                });
                Poll::Pending
            }
            WsErr::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                self.with_session(|inner| {
                    inner.session.handle_lost("connection reset without close")
                });
                Poll::Ready(())
            }
            WsErr::Protocol(e) => {
                self.with_session(|inner| {
                    inner.session.close(
                        CloseCode::Protocol,
                        &format!("websocket protocol error: {e}"),
                    )
                });
                Poll::Pending
            }
            other => {
                self.with_session(|inner| inner.session.handle_lost(&other.to_string()));
                Poll::Ready(())
            }
        }
    }

    /// Takes the session's messages in batches (one lock per batch, not
    /// per message) and feeds them to the sink while it is ready; flushes
    /// once.
    fn poll_write(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Poll<()> {
        let mut took = false;
        // Payload bytes the sink took in this pass, counted once at its end.
        let mut sent_bytes = 0;
        loop {
            if self.unsent.is_empty() {
                let mut unsent = std::mem::take(&mut self.unsent);
                let mut go_away = false;
                self.with_session(|inner| {
                    go_away = inner.go_away.take_send();
                    let mut bytes = 0;
                    while unsent.len() < WRITE_BATCH && bytes < WRITE_BATCH_BYTES {
                        let Some(msg) = inner.session.poll_transmit() else {
                            break;
                        };
                        bytes += msg.len();
                        unsent.push_back(msg);
                    }
                });
                self.unsent = unsent;
                self.go_away_pending |= go_away;
                if self.go_away_pending {
                    match self.ws().poll_ready(cx) {
                        Poll::Pending => break,
                        Poll::Ready(Err(err)) => return self.lost(err),
                        Poll::Ready(Ok(())) => {}
                    }
                    let notice = Bytes::from_static(crate::goaway::GOAWAY_PING);
                    sent_bytes += notice.len();
                    if let Err(err) = self.ws().start_send(Message::Ping(notice)) {
                        return self.lost(err);
                    }
                    self.go_away_pending = false;
                    self.needs_flush = true;
                    took = true;
                    *progress = true;
                }
                if self.unsent.is_empty() {
                    break;
                }
            }
            match self.ws().poll_ready(cx) {
                Poll::Pending => break,
                Poll::Ready(Err(err)) => return self.lost(err),
                Poll::Ready(Ok(())) => {}
            }
            let Some(msg) = self.unsent.pop_front() else {
                continue;
            };
            sent_bytes += msg.len();
            if let Err(err) = self.ws().start_send(Message::Binary(msg)) {
                return self.lost(err);
            }
            self.needs_flush = true;
            took = true;
            *progress = true;
        }
        if sent_bytes > 0 {
            self.shared.bytes.add(0, sent_bytes as u64);
        }
        let flushed = self.poll_flush(cx, &mut took);
        self.note_send_progress(took);
        flushed
    }

    /// Tracks whether the socket keeps taking what waits for it (see
    /// `WsConfig::send_timeout`). Reads the clock only when the socket
    /// blocks with data waiting, not per message.
    fn note_send_progress(&mut self, took: bool) {
        let Some(d) = self.timers.send else {
            return;
        };
        let waiting = !self.unsent.is_empty() || self.needs_flush;
        if !waiting {
            self.stalled_since = None;
            return;
        }
        if took || self.stalled_since.is_none() {
            let now = Instant::now();
            self.stalled_since = Some(now);
            if !self.send_timer_armed {
                if let Some(timer) = self.send_timer.as_mut() {
                    timer.as_mut().reset(now + d);
                    self.send_timer_armed = true;
                }
            }
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>, took: &mut bool) -> Poll<()> {
        if self.needs_flush {
            match self.ws().poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.needs_flush = false;
                    *took = true;
                }
                Poll::Ready(Err(err)) => return self.lost(err),
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }

    fn lost(&mut self, err: WsErr) -> Poll<()> {
        self.with_session(|inner| inner.session.handle_lost(&err.to_string()));
        Poll::Ready(())
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>, progress: &mut bool) -> Poll<()> {
        if self.send_timer_armed {
            if let (Some(timer), Some(d)) = (self.send_timer.as_mut(), self.timers.send) {
                if timer.as_mut().poll(cx).is_ready() {
                    // Like the idle timer: moved on only when it fires.
                    match self.stalled_since {
                        None => self.send_timer_armed = false,
                        Some(since) if since + d <= Instant::now() => {
                            return self.send_timed_out(cx);
                        }
                        Some(since) => {
                            timer.as_mut().reset(since + d);
                            *progress = true;
                        }
                    }
                }
            }
        }
        if self.heard_from_peer {
            // Once per pass, however many messages it read.
            self.heard_from_peer = false;
            self.last_heard = Instant::now();
        }
        if let (Some(idle), Some(d)) = (self.idle.as_mut(), self.timers.idle) {
            if idle.as_mut().poll(cx).is_ready() {
                // The timer is not moved on every message (that costs a timer
                // wheel update each): when it fires, it is moved to where the
                // last message put the deadline, if that is still ahead.
                let deadline = self.last_heard + d;
                if deadline <= Instant::now() {
                    // Our side counts the peer as lost; the peer, if it still
                    // reads, is told why (docs/protocol.md, "Keep-alive and
                    // idle timeout"): a close frame, without waiting for its
                    // reply.
                    self.shared
                        .with_driver(|inner| inner.session.handle_lost("idle timeout"));
                    self.send_close_now(cx, CloseCode::GoingAway, "idle timeout");
                    return Poll::Ready(());
                }
                idle.as_mut().reset(deadline);
                *progress = true;
            }
        }
        if let (Some(ka), Some(d)) = (self.keep_alive.as_mut(), self.timers.keep_alive) {
            if ka.as_mut().poll(cx).is_ready() {
                ka.as_mut().reset(Instant::now() + d);
                // Copy buffers kept since the last tick and unused now go.
                self.with_session(|inner| inner.session.release_idle_copies());
                if let Poll::Ready(Ok(())) = self.ws().poll_ready(cx) {
                    if let Err(err) = self.ws().start_send(Message::Ping(Bytes::new())) {
                        return self.lost(err);
                    }
                    self.needs_flush = true;
                    *progress = true;
                }
            }
        }
        Poll::Pending
    }

    /// The socket took nothing for the send timeout while data waited:
    /// close (the close frame goes out only if the socket takes it now) and
    /// end, which drops the socket and releases every queue.
    fn send_timed_out(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        tracing::debug!("send timeout: the peer took nothing; closing");
        let reason = "send timeout";
        self.with_session(|inner| inner.session.close(CloseCode::GoingAway, reason));
        self.send_close_now(cx, CloseCode::GoingAway, reason);
        Poll::Ready(())
    }

    /// Puts a close frame on the socket if it takes it now, and flushes
    /// once; the caller then ends the driver (no wait for the reply).
    fn send_close_now(&mut self, cx: &mut Context<'_>, code: CloseCode, reason: &str) {
        self.unsent.clear();
        if let Poll::Ready(Ok(())) = self.ws().poll_ready(cx) {
            if self
                .ws()
                .start_send(Message::Close(Some(close_frame(code, reason))))
                .is_ok()
            {
                let _ = self.ws().poll_flush(cx);
            }
        }
    }

    /// Once the session is closed: send our close frame if we closed, flush,
    /// and wait (bounded) for the peer's close so the handshake completes.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.session_closed {
            return Poll::Pending;
        }
        if let Phase::Open = self.phase {
            let (local, flush) = {
                let inner = self.shared.lock();
                (
                    inner.session.closed_locally(),
                    inner.session.flushes_on_close(),
                )
            };
            if !flush {
                // Taken before an abrupt close, not sent: the session
                // dropped its own queues too.
                self.unsent.clear();
            }
            self.phase = Phase::Closing(Closing {
                local,
                frame_sent: false,
                deadline: Box::pin(sleep(self.timers.close)),
            });
        }
        let Phase::Closing(closing) = &mut self.phase else {
            return Poll::Pending;
        };
        let local = closing.local;
        // A graceful close sends what was queued first: `poll_write` ran
        // earlier in this pass and emptied `unsent` only if the session had
        // nothing more (the close frame must follow the last DATA).
        if local && !closing.frame_sent && self.unsent.is_empty() {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Pending => {}
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    let frame = match self.shared.lock().session.close_reason() {
                        Some(reason) => close_frame(reason.code, &reason.reason),
                        None => close_frame(CloseCode::Normal, ""),
                    };
                    if Pin::new(&mut self.ws)
                        .start_send(Message::Close(Some(frame)))
                        .is_err()
                    {
                        return Poll::Ready(());
                    }
                    closing.frame_sent = true;
                    self.needs_flush = true;
                }
            }
        }
        let frame_pending = local && !closing.frame_sent;
        if self.needs_flush {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.needs_flush = false,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {}
            }
        }
        if !local && !self.needs_flush {
            // Peer close: tungstenite queued the reply; once flushed we are done.
            if let Poll::Ready(Ok(())) = Pin::new(&mut self.ws).poll_flush(cx) {
                return Poll::Ready(());
            }
        }
        if closing.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        // Keep reading to see the peer's close reply (poll_read returns
        // Ready once the stream ends).
        if !self.read_done {
            loop {
                match self.poll_message() {
                    Poll::Pending => break,
                    Poll::Ready(Some(Ok(_))) => continue,
                    Poll::Ready(_) => return Poll::Ready(()),
                }
            }
            Poll::Pending
        } else if self.needs_flush || frame_pending {
            // Reading failed (e.g. message too big) but our close frame is
            // still on its way out; the close deadline bounds the wait.
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

/// The close frame for `code` and `reason` (cut to the 123 bytes a close
/// frame may carry, on a character boundary).
fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code: WireCloseCode::from(close_code::to_wire(code)),
        reason: reason[..end].to_owned().into(),
    }
}

/// Hands one received message to the session.
fn on_message(inner: &mut Inner, msg: Message) {
    match msg {
        Message::Binary(bytes) => inner.session.handle_message(bytes),
        Message::Text(_) => inner.session.handle_text(),
        Message::Close(frame) => {
            let (code, reason) = frame
                .map(|f| (u16::from(f.code), f.reason.to_string()))
                .unwrap_or((1005, String::new()));
            inner.session.handle_peer_close(code, &reason);
        }
        // A strand server's go-away notice (docs/protocol.md, "Go-away"):
        // sent once, so it spends no flood budget.
        Message::Ping(payload) if payload.as_ref() == crate::goaway::GOAWAY_PING => {
            inner.go_away_received()
        }
        // Pongs are answered by tungstenite (it keeps one pending pong at
        // most); pings spend their flood budget. Any frame is liveness.
        Message::Ping(_) => inner.session.handle_ping(),
        Message::Pong(_) | Message::Frame(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::atomic::AtomicUsize;

    use strand_rpc_core::transport::PeerInfo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadBuf};
    use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

    use super::*;
    use crate::endpoint::start;
    use crate::mux::Role;
    use crate::WsConfig;

    /// One end of an in-memory pipe that counts the reads tried on it.
    struct CountingReads {
        inner: DuplexStream,
        reads: Arc<AtomicUsize>,
    }

    impl AsyncRead for CountingReads {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingReads {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn a_driver_woken_to_write_reads_the_socket_only_when_it_was_woken_to_read() {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let reads = Arc::new(AtomicUsize::new(0));
        let server_io = CountingReads {
            inner: server_io,
            reads: reads.clone(),
        };
        let config = WsConfig::default();
        let windows = (Some(config.stream_window), true);
        let client_ws = WebSocketStream::from_raw_socket(client_io, WsRole::Client, None).await;
        let server_ws = WebSocketStream::from_raw_socket(server_io, WsRole::Server, None).await;
        let client = start(
            client_ws,
            Role::Client,
            &config,
            windows,
            PeerInfo::new("ws"),
            None,
        );
        let server = start(
            server_ws,
            Role::Server,
            &config,
            windows,
            PeerInfo::new("ws"),
            None,
        );

        let (mut client_send, mut client_recv) = client.open_stream().await.unwrap().split();
        client_send.write_all(b"x").await.unwrap();
        let (mut server_send, mut server_recv) = server.accept_stream().await.unwrap().split();
        let mut byte = [0; 1];
        server_recv.read_exact(&mut byte).await.unwrap();

        // 100 writes from the server, each in the client's buffer before
        // the next: the server's driver is woken to send each. The client
        // does not read them, so nothing comes back (no credit returned).
        let before = reads.load(Ordering::Relaxed);
        for sent in 1..=100u64 {
            server_send.write_all(b"y").await.unwrap();
            let mut waited = 0;
            while client.stats().buffered < sent {
                waited += 1;
                assert!(waited < 1000, "byte {sent} did not arrive");
                tokio::task::yield_now().await;
            }
        }
        let during = reads.load(Ordering::Relaxed) - before;
        assert!(
            during < 10,
            "{during} reads of the server's socket while only it wrote"
        );
        let mut hundred = [0; 100];
        client_recv.read_exact(&mut hundred).await.unwrap();

        // And data that does arrive is read: the client's write wakes the
        // server's read side.
        client_send.write_all(b"z").await.unwrap();
        server_recv.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"z");
    }
}
