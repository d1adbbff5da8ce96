//! The in-memory transport: connection pairs inside one process.
//!
//! It is the reference [`Connection`] for tests and docs. Each direction of a
//! stream is a pipe with a bounded buffer, so a writer that outpaces its reader
//! waits exactly as it would on a network carrier, and resets, stops and
//! connection closes behave as on QUIC.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use strand_rpc_core::memory;
//! use strand_rpc_core::transport::Connection;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let (a, b) = memory::pair();
//! let mut stream = a.open_stream().await.unwrap();
//! stream.send.write_all(b"hello").await.unwrap();
//! stream.send.shutdown().await.unwrap();
//! let mut accepted = b.accept_stream().await.unwrap();
//! let mut got = Vec::new();
//! accepted.recv.read_to_end(&mut got).await.unwrap();
//! assert_eq!(got, b"hello");
//! # }
//! ```

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{ready, Context, Poll, Waker};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, Notify};

use crate::transport::{
    codes, CloseCode, CloseReason, Connection, DynConnection, Listener, PeerInfo, RecvStream,
    SendStream, Stream, StreamError,
};

/// Limits of the memory transport.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Bytes a stream direction buffers before its writer waits. Default 64 KiB:
    /// the memory a stalled reader may cost per stream.
    pub stream_buffer: usize,
    /// Streams opened by the peer and not yet accepted before openers wait.
    /// Default 128.
    pub stream_backlog: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            stream_buffer: 64 * 1024,
            stream_backlog: 128,
        }
    }
}

/// A connected pair with default limits.
pub fn pair() -> (MemoryConnection, MemoryConnection) {
    pair_with(MemoryConfig::default())
}

/// A connected pair with the given limits.
pub fn pair_with(config: MemoryConfig) -> (MemoryConnection, MemoryConnection) {
    let link = Arc::new(Link {
        config,
        closed: Mutex::new(None),
        pipes: Mutex::new(Vec::new()),
        queues: [AcceptQueue::default(), AcceptQueue::default()],
        closed_notify: Notify::new(),
    });
    let peer = Arc::new(PeerInfo::new("memory"));
    (
        MemoryConnection {
            link: link.clone(),
            side: 0,
            peer: peer.clone(),
        },
        MemoryConnection {
            link,
            side: 1,
            peer,
        },
    )
}

/// A listener fed by a [`MemoryConnector`]: the memory analogue of a server socket.
pub fn listener() -> (MemoryListener, MemoryConnector) {
    let (tx, rx) = mpsc::channel(64);
    (
        MemoryListener {
            rx: tokio::sync::Mutex::new(rx),
        },
        MemoryConnector { tx },
    )
}

/// Accepts connections made through its [`MemoryConnector`].
pub struct MemoryListener {
    rx: tokio::sync::Mutex<mpsc::Receiver<MemoryConnection>>,
}

/// Makes connections to its [`MemoryListener`].
#[derive(Clone)]
pub struct MemoryConnector {
    tx: mpsc::Sender<MemoryConnection>,
}

impl MemoryConnector {
    /// Connects to the listener; fails once the listener is gone.
    pub async fn connect(&self) -> io::Result<MemoryConnection> {
        let (client, server) = pair();
        self.tx
            .send(server)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "listener closed"))?;
        Ok(client)
    }
}

#[async_trait]
impl Listener for MemoryListener {
    async fn accept(&self) -> io::Result<DynConnection> {
        match self.rx.lock().await.recv().await {
            Some(conn) => Ok(Arc::new(conn)),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "all connectors dropped",
            )),
        }
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        None
    }

    /// Connections already made stay for `accept`; new ones are refused.
    fn stop_accepting(&self) -> bool {
        match self.rx.try_lock() {
            Ok(mut rx) => {
                rx.close();
                true
            }
            Err(_) => false,
        }
    }
}

struct Link {
    config: MemoryConfig,
    closed: Mutex<Option<CloseReason>>,
    /// Every pipe on the link, to fail them all when it closes.
    pipes: Mutex<Vec<Weak<Pipe>>>,
    /// `queues[i]`: streams waiting for side `i` to accept them.
    queues: [AcceptQueue; 2],
    closed_notify: Notify,
}

#[derive(Default)]
struct AcceptQueue {
    streams: Mutex<VecDeque<Stream>>,
    /// Woken when a stream is queued or the link closes.
    ready: Notify,
    /// Woken when a stream is taken, for openers waiting on the backlog.
    space: Notify,
}

impl Link {
    fn close(&self, reason_for_side: impl Fn(usize) -> CloseReason) {
        {
            let mut closed = lock(&self.closed);
            if closed.is_some() {
                return;
            }
            *closed = Some(reason_for_side(0));
        }
        let pipes = std::mem::take(&mut *lock(&self.pipes));
        for pipe in pipes.iter().filter_map(Weak::upgrade) {
            let mut st = pipe.lock();
            // Each pipe end reports the close from its own side's view.
            st.closed = Some((reason_for_side(0), reason_for_side(1)));
            st.wake_all();
        }
        for q in &self.queues {
            q.ready.notify_waiters();
            q.space.notify_waiters();
        }
        self.closed_notify.notify_waiters();
    }

    fn closed_reason(&self, side: usize) -> Option<CloseReason> {
        let closed = lock(&self.closed);
        let reason = closed.as_ref()?;
        // Stored from side 0's view; flip the initiator for side 1.
        Some(if side == 0 {
            reason.clone()
        } else {
            flip(reason)
        })
    }
}

fn flip(reason: &CloseReason) -> CloseReason {
    use crate::transport::CloseInitiator::*;
    let initiator = match reason.initiator {
        Local => Peer,
        Peer => Local,
        Lost => Lost,
    };
    CloseReason {
        initiator,
        ..reason.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One end of an in-memory connection.
pub struct MemoryConnection {
    link: Arc<Link>,
    side: usize,
    peer: Arc<PeerInfo>,
}

impl MemoryConnection {
    fn new_pipe(&self, writer_side: usize) -> Arc<Pipe> {
        let pipe = Arc::new(Pipe {
            state: Mutex::new(PipeState {
                writer_side,
                ..PipeState::default()
            }),
            capacity: self.link.config.stream_buffer,
        });
        let mut pipes = lock(&self.link.pipes);
        pipes.retain(|p| p.strong_count() > 0);
        pipes.push(Arc::downgrade(&pipe));
        pipe
    }
}

#[async_trait]
impl Connection for MemoryConnection {
    async fn open_stream(&self) -> Result<Stream, StreamError> {
        let peer_side = 1 - self.side;
        let queue = &self.link.queues[peer_side];
        loop {
            let space = queue.space.notified();
            if let Some(reason) = self.link.closed_reason(self.side) {
                return Err(StreamError::ConnectionClosed(reason));
            }
            {
                let mut streams = lock(&queue.streams);
                if streams.len() < self.link.config.stream_backlog {
                    let outgoing = self.new_pipe(self.side);
                    let incoming = self.new_pipe(peer_side);
                    let ours = Stream::new(
                        MemorySendStream::new(outgoing.clone(), self.side),
                        MemoryRecvStream::new(incoming.clone(), self.side),
                    );
                    let theirs = Stream::new(
                        MemorySendStream::new(incoming, peer_side),
                        MemoryRecvStream::new(outgoing, peer_side),
                    );
                    streams.push_back(theirs);
                    drop(streams);
                    queue.ready.notify_one();
                    return Ok(ours);
                }
            }
            space.await;
        }
    }

    async fn accept_stream(&self) -> Result<Stream, StreamError> {
        let queue = &self.link.queues[self.side];
        loop {
            let ready = queue.ready.notified();
            if let Some(reason) = self.link.closed_reason(self.side) {
                return Err(StreamError::ConnectionClosed(reason));
            }
            if let Some(stream) = lock(&queue.streams).pop_front() {
                queue.space.notify_one();
                // Let another accepter see any further queued stream.
                queue.ready.notify_one();
                return Ok(stream);
            }
            ready.await;
        }
    }

    fn peer_info(&self) -> Arc<PeerInfo> {
        self.peer.clone()
    }

    fn close(&self, code: CloseCode, reason: &str) {
        let me = self.side;
        self.link.close(|side| {
            if side == me {
                CloseReason::local(code, reason)
            } else {
                CloseReason::peer(code, reason)
            }
        });
    }

    async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.link.closed_notify.notified();
            if let Some(reason) = self.link.closed_reason(self.side) {
                return reason;
            }
            notified.await;
        }
    }
}

impl Drop for MemoryConnection {
    fn drop(&mut self) {
        self.close(CloseCode::Normal, "connection dropped");
    }
}

/// One direction of a stream.
struct Pipe {
    state: Mutex<PipeState>,
    capacity: usize,
}

impl Pipe {
    fn lock(&self) -> MutexGuard<'_, PipeState> {
        lock(&self.state)
    }
}

#[derive(Default)]
struct PipeState {
    writer_side: usize,
    buf: BytesMut,
    finished: bool,
    reset: Option<u64>,
    stopped: Option<u64>,
    /// Set when the connection closes: (side 0's view, side 1's view).
    closed: Option<(CloseReason, CloseReason)>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    stopped_waker: Option<Waker>,
}

impl PipeState {
    fn wake_all(&mut self) {
        for w in [
            self.read_waker.take(),
            self.write_waker.take(),
            self.stopped_waker.take(),
        ]
        .into_iter()
        .flatten()
        {
            w.wake();
        }
    }

    fn closed_for(&self, side: usize) -> Option<StreamError> {
        let (a, b) = self.closed.as_ref()?;
        Some(StreamError::ConnectionClosed(if side == 0 {
            a.clone()
        } else {
            b.clone()
        }))
    }
}

/// The sending half of a memory stream.
pub struct MemorySendStream {
    pipe: Arc<Pipe>,
    side: usize,
    done: bool,
}

impl MemorySendStream {
    fn new(pipe: Arc<Pipe>, side: usize) -> Self {
        MemorySendStream {
            pipe,
            side,
            done: false,
        }
    }
}

impl AsyncWrite for MemorySendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.done {
            return Poll::Ready(Err(StreamError::ClosedLocally.into()));
        }
        let capacity = self.pipe.capacity;
        let mut st = self.pipe.lock();
        if let Some(code) = st.stopped {
            return Poll::Ready(Err(StreamError::Stopped(code).into()));
        }
        if let Some(err) = st.closed_for(self.side) {
            return Poll::Ready(Err(err.into()));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let space = capacity.saturating_sub(st.buf.len());
        if space == 0 {
            st.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = space.min(data.len());
        st.buf.extend_from_slice(&data[..n]);
        if let Some(w) = st.read_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        self.done = true;
        let mut st = self.pipe.lock();
        st.finished = true;
        if let Some(w) = st.read_waker.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl SendStream for MemorySendStream {
    fn reset(&mut self, code: u64) {
        if self.done {
            return;
        }
        self.done = true;
        let mut st = self.pipe.lock();
        st.reset = Some(code);
        st.buf.clear();
        if let Some(w) = st.read_waker.take() {
            w.wake();
        }
    }

    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        let mut st = self.pipe.lock();
        match st.stopped {
            Some(code) => Poll::Ready(code),
            None => {
                st.stopped_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for MemorySendStream {
    fn drop(&mut self) {
        self.reset(codes::CANCELLED);
    }
}

/// The receiving half of a memory stream.
pub struct MemoryRecvStream {
    pipe: Arc<Pipe>,
    side: usize,
    done: bool,
}

impl MemoryRecvStream {
    fn new(pipe: Arc<Pipe>, side: usize) -> Self {
        MemoryRecvStream {
            pipe,
            side,
            done: false,
        }
    }
}

impl MemoryRecvStream {
    /// Takes up to `max` buffered bytes (`Some(empty)` at the end of stream).
    fn poll_take(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<Bytes>> {
        let side = self.side;
        let mut st = self.pipe.lock();
        debug_assert_ne!(st.writer_side, side);
        if let Some(code) = st.reset {
            return Poll::Ready(Err(StreamError::Reset(code).into()));
        }
        if !st.buf.is_empty() {
            let n = st.buf.len().min(max);
            let taken = st.buf.split_to(n).freeze();
            if let Some(w) = st.write_waker.take() {
                w.wake();
            }
            return Poll::Ready(Ok(taken));
        }
        if st.finished {
            drop(st);
            self.done = true;
            return Poll::Ready(Ok(Bytes::new()));
        }
        if let Some(err) = st.closed_for(side) {
            return Poll::Ready(Err(err.into()));
        }
        if self.done {
            return Poll::Ready(Err(StreamError::ClosedLocally.into()));
        }
        st.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncRead for MemoryRecvStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let taken = ready!(self.poll_take(cx, out.remaining()))?;
        out.put_slice(&taken);
        Poll::Ready(Ok(()))
    }
}

impl RecvStream for MemoryRecvStream {
    /// Hands over the buffered bytes themselves (no copy).
    fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        let taken = ready!(self.poll_take(cx, max.max(1)))?;
        Poll::Ready(Ok((!taken.is_empty()).then_some(taken)))
    }

    fn stop(&mut self, code: u64) {
        if self.done {
            return;
        }
        self.done = true;
        let mut st = self.pipe.lock();
        if st.finished || st.reset.is_some() {
            return;
        }
        st.stopped = Some(code);
        st.buf.clear();
        for w in [st.write_waker.take(), st.stopped_waker.take()]
            .into_iter()
            .flatten()
        {
            w.wake();
        }
    }
}

impl Drop for MemoryRecvStream {
    fn drop(&mut self) {
        self.stop(codes::CANCELLED);
    }
}

#[cfg(test)]
mod tests;
