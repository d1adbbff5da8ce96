//! The stream halves the application holds: [`WsSendStream`] and
//! [`WsRecvStream`], each a handle on one stream of the shared session.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use strand_rpc_core::transport::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::{poll_op, to_stream_error, Shared};
use crate::mux::{StreamId, StreamStats};

/// The sending half of a mux stream.
///
/// Each `poll_write` sends at most one DATA message (up to the credit and
/// [`crate::WsConfig::max_data_payload`]); at zero credit it waits for the
/// peer's ACK. `poll_shutdown` resolves once `CLOSE(Read)` went out.
pub struct WsSendStream {
    shared: Arc<Shared>,
    id: StreamId,
}

impl WsSendStream {
    pub(crate) fn new(shared: Arc<Shared>, id: StreamId) -> Self {
        WsSendStream { shared, id }
    }
}

impl WsSendStream {
    /// The stream id on the wire.
    pub fn id(&self) -> u64 {
        self.id.0
    }

    /// Figures for this stream (`None` once it left the session).
    pub fn stats(&self) -> Option<StreamStats> {
        self.shared.lock().session.stream_stats(self.id)
    }
}

impl AsyncWrite for WsSendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.id;
        self.shared.with(|inner| {
            let r = inner.session.write(id, buf);
            poll_op(r, &mut inner.write_wakers, id, cx)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are already queued for the driver, which flushes the
        // socket as soon as it can.
        Poll::Ready(Ok(()))
    }

    /// Queues the finish and returns: the session sends `CLOSE(Read)` after
    /// the queued DATA (toward a JS peer, once every byte was ACKed), also if
    /// this handle is dropped meanwhile, as QUIC's FIN follows its data. So a
    /// call that writes its last message and finishes needs no wait on the
    /// driver. Fails if the stream was already reset or stopped.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        let out = self.shared.with(|inner| inner.session.finish(id));
        Poll::Ready(out.map_err(|e| to_stream_error(e).into_io()))
    }
}

impl SendStream for WsSendStream {
    fn reset(&mut self, code: u64) {
        self.shared.with(|inner| inner.session.reset(self.id, code));
    }

    fn poll_stopped(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        let mut inner = self.shared.lock();
        if let Some(code) = inner.session.stopped_code(self.id) {
            return Poll::Ready(code);
        }
        inner.stopped_wakers.insert(self.id, cx.waker().clone());
        Poll::Pending
    }

    /// The write and the finish under one lock: the finish is queued as
    /// soon as all of `buf` was taken (a finish that fails is left to the
    /// caller's `poll_shutdown`, which reports it).
    fn poll_write_last(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<(usize, bool)>> {
        let id = self.id;
        self.shared.with(|inner| {
            let r = inner.session.write(id, buf);
            let written = poll_op(r, &mut inner.write_wakers, id, cx);
            written.map_ok(|n| (n, n == buf.len() && inner.session.finish(id).is_ok()))
        })
    }

    /// Toward a JS peer, waits until every byte written so far was ACKed
    /// (see `Session::write_boundary`); toward strand, ready at once.
    fn poll_write_boundary(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.shared.lock();
        let r = inner.session.write_boundary(self.id);
        // An ACK, a stop or the close wakes the stream's writer.
        poll_op(r, &mut inner.write_wakers, self.id, cx)
    }
}

impl Drop for WsSendStream {
    fn drop(&mut self) {
        let id = self.id;
        self.shared.with(|inner| {
            inner.write_wakers.remove(&id);
            inner.stopped_wakers.remove(&id);
            inner.session.release_send(id);
        });
    }
}

/// The receiving half of a mux stream. Reads `Ok(0)` after the peer's
/// `CLOSE(Read)`; fails with [`StreamError::Reset`](strand_rpc_core::transport::StreamError::Reset) after its `ERROR(Read)`.
pub struct WsRecvStream {
    shared: Arc<Shared>,
    id: StreamId,
    /// It read the end: the session let go of it (see `Session::read`), so
    /// later reads, a stop and the drop need no lock.
    ended: bool,
}

impl WsRecvStream {
    pub(crate) fn new(shared: Arc<Shared>, id: StreamId) -> Self {
        WsRecvStream {
            shared,
            id,
            ended: false,
        }
    }

    /// Runs a read on the session. On the end, or on bytes that the end
    /// follows with nothing between (read with them, see
    /// `Session::read_end_if_next`), notes it and drops any waker an
    /// earlier wait left (no event for this stream will take it).
    fn read_op<T>(
        &mut self,
        cx: &Context<'_>,
        read: impl FnOnce(&mut crate::mux::Session, StreamId) -> Result<T, crate::mux::OpError>,
        is_end: impl Fn(&T) -> bool,
    ) -> Poll<io::Result<T>> {
        let id = self.id;
        let (r, ended) = self.shared.with(|inner| {
            let r = poll_op(read(&mut inner.session, id), &mut inner.read_wakers, id, cx);
            let ended = match &r {
                Poll::Ready(Ok(v)) => is_end(v) || inner.session.read_end_if_next(id),
                _ => false,
            };
            if ended {
                inner.read_wakers.remove(&id);
            }
            (r, ended)
        });
        self.ended |= ended;
        r
    }
}

impl WsRecvStream {
    /// The stream id on the wire.
    pub fn id(&self) -> u64 {
        self.id.0
    }

    /// Figures for this stream (`None` once it left the session).
    pub fn stats(&self) -> Option<StreamStats> {
        self.shared.lock().session.stream_stats(self.id)
    }
}

impl AsyncRead for WsRecvStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 || self.ended {
            return Poll::Ready(Ok(()));
        }
        let unfilled = buf.initialize_unfilled();
        let n = self.read_op(cx, |session, id| session.read(id, unfilled), |&n| n == 0);
        n.map_ok(|n| buf.advance(n))
    }
}

impl RecvStream for WsRecvStream {
    fn stop(&mut self, code: u64) {
        if !self.ended {
            self.shared.with(|inner| inner.session.stop(self.id, code));
        }
    }

    /// Hands over the received DATA payloads themselves (no copy).
    fn poll_read_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
    ) -> Poll<io::Result<Option<Bytes>>> {
        if self.ended {
            return Poll::Ready(Ok(None));
        }
        self.read_op(
            cx,
            |session, id| session.read_chunk(id, max),
            Option::is_none,
        )
    }
}

impl Drop for WsRecvStream {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let id = self.id;
        self.shared.with(|inner| {
            inner.read_wakers.remove(&id);
            inner.session.release_recv(id);
        });
    }
}
