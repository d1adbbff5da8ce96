//! The stream operations the application's handles call: open and accept,
//! write, finish and reset the sending half, read and stop the receiving
//! half, and release a stream once both handles are gone.

use bytes::{Buf, Bytes};
use strand_rpc_core::transport::codes;

use super::transmit::reserve_tx;
use super::{ConnState, Event, OpError, Session, Stream};
use crate::mux::credit::SendCredit;
use crate::mux::frame::{Frame, Shutdown};
use crate::mux::state::{RecvState, SendState};
use crate::mux::stream_id::StreamId;

impl Session {
    /// Opens a stream: queues `ACK(window)` as its first message.
    pub fn open(&mut self) -> Result<StreamId, OpError> {
        if let Some(err) = self.closed_error() {
            return Err(err);
        }
        if self.state == ConnState::Draining {
            return Err(OpError::Refused("connection is shutting down"));
        }
        if self.streams.len() >= self.config.max_streams {
            return Err(OpError::Blocked);
        }
        let id = self
            .next_local
            .ok_or(OpError::Refused("stream ids exhausted"))?;
        self.next_local = id.next();
        let credit = match self.config.peer_window {
            // Both advertised: the acceptor sends no opening ACK.
            Some(w) if self.config.window_advertised => SendCredit::granted(w),
            Some(w) => SendCredit::assumed(w),
            None => SendCredit::new(0),
        };
        self.streams
            .insert(id, Stream::new(self.config.initial_window, credit));
        self.push_control(Frame::Ack {
            id,
            credit: self.config.initial_window,
        });
        Ok(id)
    }

    /// Takes the next stream the peer opened.
    pub fn accept(&mut self) -> Result<StreamId, OpError> {
        if let Some(id) = self.accept_queue.pop_front() {
            return Ok(id);
        }
        if let Some(err) = self.closed_error() {
            return Err(err);
        }
        Err(OpError::Blocked)
    }

    /// Writes up to one DATA message worth of `data`: at most the credit,
    /// [`SessionConfig::max_data_payload`] bytes. `Blocked` at zero credit or
    /// while the stream's send queue is full.
    ///
    /// [`SessionConfig::max_data_payload`]: super::SessionConfig::max_data_payload
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, OpError> {
        let max_payload = self.config.max_data_payload.max(1);
        let send_buffer = self.config.stream_send_buffer;
        let closed = self.closed_error();
        let stream = self.streams.get_mut(&id).ok_or(OpError::ClosedLocally)?;
        match stream.send {
            SendState::Open => {}
            SendState::Stopped { code, .. } => return Err(OpError::Stopped(code)),
            _ => return Err(OpError::ClosedLocally),
        }
        if let Some(err) = closed {
            return Err(err);
        }
        if data.is_empty() {
            return Ok(0);
        }
        if stream.outgoing_bytes >= send_buffer {
            return Err(OpError::Blocked);
        }
        // The connection's budget, shared by every stream: never passed (a
        // write takes at most what is left of it). A blocked writer is woken
        // once the socket took some; the socket takes DATA round robin, so
        // every stream's queue drains in turn.
        let room = self.config.connection_send_buffer
            - self.queued_send.min(self.config.connection_send_buffer);
        if room == 0 {
            if !self.send_waiters.contains(&id) {
                self.send_waiters.push_back(id);
            }
            return Err(OpError::Blocked);
        }
        let n = stream.credit.take(data.len().min(max_payload).min(room));
        if n == 0 {
            return Err(OpError::Blocked);
        }
        // The whole message (header included) is built once, in a buffer
        // that is reused as soon as the messages cut from it were dropped
        // (the WebSocket layer copies each one when the driver hands it
        // over): no allocation per message in steady state, and the only
        // copy of the bytes before the WebSocket layer's own.
        reserve_tx(&mut self.tx_buf, Frame::data_header_len(id) + n);
        Frame::encode_data_into(id, &data[..n], &mut self.tx_buf);
        stream.outgoing.push_back(self.tx_buf.split().freeze());
        stream.outgoing_bytes += n;
        stream.answered = true;
        self.queued_send += n;
        self.mark_sendable(id);
        Ok(n)
    }

    /// Asks for a graceful finish (idempotent). See [`Session::poll_finished`].
    pub fn finish(&mut self, id: StreamId) -> Result<(), OpError> {
        let closed = self.closed_error();
        let stream = self.streams.get_mut(&id).ok_or(OpError::ClosedLocally)?;
        match stream.send {
            SendState::Open => {
                if let Some(err) = closed {
                    return Err(err);
                }
                stream.send = SendState::Finishing;
                self.mark_sendable(id);
                Ok(())
            }
            SendState::Finishing | SendState::Finished => Ok(()),
            SendState::Reset(_) => Err(OpError::ClosedLocally),
            s @ SendState::Stopped { code, .. } => {
                if s.is_benign_stop() {
                    Ok(())
                } else {
                    Err(OpError::Stopped(code))
                }
            }
        }
    }

    /// Whether the finish completed (`CLOSE(Read)` handed to the socket, or a
    /// benign stop), `Blocked` while it is under way.
    pub fn poll_finished(&mut self, id: StreamId) -> Result<(), OpError> {
        let closed = self.closed_error();
        let stream = self.streams.get(&id).ok_or(OpError::ClosedLocally)?;
        match stream.send {
            SendState::Finished => Ok(()),
            s @ SendState::Stopped { code, .. } => {
                if s.is_benign_stop() {
                    Ok(())
                } else {
                    Err(OpError::Stopped(code))
                }
            }
            SendState::Reset(_) => Err(OpError::ClosedLocally),
            SendState::Open | SendState::Finishing => Err(closed.unwrap_or(OpError::Blocked)),
        }
    }

    /// The peer's stop code, once it stopped reading (not for a benign stop).
    pub fn stopped_code(&self, id: StreamId) -> Option<u64> {
        match self.streams.get(&id)?.send {
            s @ SendState::Stopped { code, .. } if !s.is_benign_stop() => Some(code),
            _ => None,
        }
    }

    /// Aborts the sending half with `code` (idempotent, no-op once finished).
    pub fn reset(&mut self, id: StreamId, code: u64) {
        if self.close_reason().is_some() {
            return;
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.send.is_done() {
            return;
        }
        stream.send = SendState::Reset(code);
        let n = stream.discard_outgoing();
        self.discarded_outgoing(n);
        self.push_control(Frame::Error {
            id,
            shutdown: Shutdown::Read,
            code,
        });
        self.maybe_release(id);
    }

    /// Reads buffered bytes into `buf`. `Ok(0)` is the end of the stream (or
    /// an empty `buf`); `Blocked` while nothing is buffered. Returns credit to
    /// the peer as the window drains. Reading the end lets go of the recv
    /// handle (the stream may be released at once): the handle answers
    /// later reads itself.
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<usize, OpError> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_with(id, |stream| {
            let mut n = 0;
            while n < buf.len() {
                let Some(front) = stream.recv_buf.front_incoming() else {
                    break;
                };
                let take = front.len().min(buf.len() - n);
                buf[n..n + take].copy_from_slice(&front[..take]);
                front.advance(take);
                if front.is_empty() {
                    stream.recv_buf.pop_front_incoming();
                }
                n += take;
            }
            n
        })
    }

    /// Like [`Session::read`], but hands over up to `max` buffered bytes as
    /// they arrived (no copy); `Ok(None)` is the end of the stream.
    pub fn read_chunk(&mut self, id: StreamId, max: usize) -> Result<Option<Bytes>, OpError> {
        let mut chunk = Bytes::new();
        self.read_with(id, |stream| {
            if let Some(front) = stream.recv_buf.front_incoming() {
                chunk = front.split_to(front.len().min(max.max(1)));
                if front.is_empty() {
                    stream.recv_buf.pop_front_incoming();
                }
            }
            chunk.len()
        })?;
        Ok((!chunk.is_empty()).then_some(chunk))
    }

    /// The bookkeeping of a read: `take` moves buffered bytes out and says
    /// how many; then credit goes back to the peer, or the end is reported.
    fn read_with(
        &mut self,
        id: StreamId,
        take: impl FnOnce(&mut Stream) -> usize,
    ) -> Result<usize, OpError> {
        let closed = self.closed_error();
        let stream = self.streams.get_mut(&id).ok_or(OpError::ClosedLocally)?;
        match stream.recv {
            RecvState::Reset(code) => return Err(OpError::Reset(code)),
            RecvState::Stopped(_) => return Err(OpError::ClosedLocally),
            RecvState::EofRead => return Ok(0),
            RecvState::Open | RecvState::FinReceived => {}
        }
        let n = take(stream);
        if n > 0 {
            stream.window.on_consumed(n);
            if stream.recv == RecvState::Open && closed.is_none() {
                if let Some(credit) = stream.window.take_ack() {
                    self.send_ack(id, credit);
                }
            }
            return Ok(n);
        }
        if stream.recv == RecvState::FinReceived {
            self.end_was_read(id);
            return Ok(0);
        }
        Err(closed.unwrap_or(OpError::Blocked))
    }

    /// After a read that took bytes: if the end is all that is left (the
    /// peer finished and nothing is buffered), reads it too, as a read that
    /// gave `Ok(0)` would have, and says so. The reader that took the last
    /// bytes then needs no second trip for the end.
    pub fn read_end_if_next(&mut self, id: StreamId) -> bool {
        let Some(stream) = self.streams.get_mut(&id) else {
            return false;
        };
        if stream.recv != RecvState::FinReceived || stream.recv_buf.front_incoming().is_some() {
            return false;
        }
        self.end_was_read(id);
        true
    }

    /// The reader took the end of `id`: its handle is done with the
    /// session (see `Stream`), and the stream may go.
    fn end_was_read(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.recv = RecvState::EofRead;
            stream.recv_handle = false;
        }
        self.maybe_release(id);
    }

    /// Stops reading with `code`: the peer's writes fail. Idempotent; sends
    /// nothing once the peer finished.
    pub fn stop(&mut self, id: StreamId, code: u64) {
        let open = self.close_reason().is_none();
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        match stream.recv {
            RecvState::Open => {
                stream.recv = RecvState::Stopped(code);
                stream.discard_incoming();
                if open {
                    self.push_control(Frame::Error {
                        id,
                        shutdown: Shutdown::Write,
                        code,
                    });
                }
            }
            RecvState::FinReceived => {
                stream.recv = RecvState::Stopped(code);
                stream.discard_incoming();
            }
            _ => {}
        }
        self.maybe_release(id);
    }

    /// The application dropped the send handle: an unfinished stream is
    /// reset with [`codes::CANCELLED`]; a requested finish still completes.
    pub fn release_send(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.get(&id) {
            if stream.send == SendState::Open {
                self.reset(id, codes::CANCELLED);
            }
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.send_handle = false;
        }
        self.maybe_release(id);
    }

    /// The application dropped the recv handle: stops it with
    /// [`codes::CANCELLED`] unless the end was read.
    pub fn release_recv(&mut self, id: StreamId) {
        self.stop(id, codes::CANCELLED);
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.recv_handle = false;
        }
        self.maybe_release(id);
    }

    /// Whether the bytes written so far on `id` will reach the peer's reader
    /// apart from later ones (see `SendStream::poll_write_boundary`).
    ///
    /// Toward a JS peer that is once every byte was ACKed: a JS RPC server
    /// drops DATA that arrives while it is still parsing a call's first
    /// message, even in a DATA message of its own; its ACK shows the message
    /// was read. A strand peer loses nothing, so there is no wait. Also ready
    /// once the stream or the connection ended (later writes report it).
    pub fn write_boundary(&self, id: StreamId) -> Result<(), OpError> {
        if self.config.peer_window.is_some() || self.close_reason().is_some() {
            return Ok(());
        }
        let Some(stream) = self.streams.get(&id) else {
            return Ok(());
        };
        let delivered = stream.outgoing_bytes == 0 && stream.credit.in_flight() == 0;
        if delivered || stream.send.is_done() || self.stopped_code(id).is_some() {
            Ok(())
        } else {
            Err(OpError::Blocked)
        }
    }

    pub(super) fn maybe_release(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if stream.send_handle || stream.recv_handle {
            return;
        }
        // Once the connection closed, no frame can finish a half any more:
        // the handles going away is the end of the stream. After a graceful
        // close the stream stays until what it queued (DATA, and the CLOSE
        // of a finish) went to the socket.
        let closed = matches!(self.state, ConnState::Closed(_));
        let flushing = closed && self.flush_on_close && self.has_output(stream);
        if (closed && !flushing) || (stream.send.is_done() && stream.recv.is_done()) {
            self.forget_stream(id);
            self.events.push_back(Event::Released(id));
        }
    }
}
