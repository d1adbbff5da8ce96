//! One HTTP/2 stream (an extended CONNECT's request and response bodies) as
//! a byte pipe, so the WebSocket and the mux driver run over it unchanged.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The two halves of an HTTP/2 stream as `AsyncRead + AsyncWrite`.
///
/// Reading hands back HTTP/2 flow-control credit as the bytes are copied
/// out, so the peer sends no faster than the WebSocket reads. Writing waits
/// for HTTP/2 send capacity (the peer's window and our send buffer bound), so
/// a peer that stops reading pushes back on the mux's writers.
pub(crate) struct H2Io {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// The rest of the DATA frame being read.
    pending: Bytes,
    /// Staging for writes; frozen chunks go to the HTTP/2 library and the
    /// allocation is reused once it has written them.
    out: BytesMut,
    read_done: bool,
    write_done: bool,
}

/// Largest write handed to the HTTP/2 library at once.
const MAX_WRITE: usize = 64 << 10;

impl H2Io {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Io {
            send,
            recv,
            pending: Bytes::new(),
            out: BytesMut::new(),
            read_done: false,
            write_done: false,
        }
    }
}

fn to_io(err: h2::Error) -> io::Error {
    if err.is_io() {
        if let Some(e) = err.into_io() {
            return e;
        }
        return io::Error::from(io::ErrorKind::ConnectionReset);
    }
    let kind = if err.is_reset() || err.is_go_away() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::InvalidData
    };
    io::Error::new(kind, err)
}

impl AsyncRead for H2Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.pending.is_empty() {
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.pending = data,
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
                None => this.read_done = true,
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        // Credit goes back for what the WebSocket took, no sooner.
        let _ = this.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write_done {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let want = buf.len().min(MAX_WRITE);
        loop {
            let capacity = this.send.capacity();
            if capacity > 0 {
                let n = capacity.min(want);
                if this.out.capacity() < n {
                    // One block, carved into DATA chunks; reclaimed once
                    // the library has written (and dropped) them all.
                    this.out.reserve(MAX_WRITE.max(n));
                }
                this.out.extend_from_slice(&buf[..n]);
                let chunk = this.out.split().freeze();
                this.send.send_data(chunk, false).map_err(to_io)?;
                return Poll::Ready(Ok(n));
            }
            this.send.reserve_capacity(want);
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The HTTP/2 connection task writes what was sent; the send buffer
        // bound (capacity) is the backpressure.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_done {
            this.write_done = true;
            // END_STREAM: the stream's half-close, as TCP's FIN.
            let _ = this.send.send_data(Bytes::new(), true);
        }
        Poll::Ready(Ok(()))
    }
}
