//! Transmit scheduling: what goes to the socket next (control frames first,
//! then DATA round robin across streams) and what the async layer must wake.

use bytes::{Bytes, BytesMut};

use super::{Event, Session};
use crate::mux::frame::{Frame, Shutdown};
use crate::mux::state::SendState;
use crate::mux::stream_id::StreamId;

/// Size of the chunks outgoing messages are encoded into, when smaller. A
/// chunk is reused in place once every message cut from it was dropped; a
/// buffer per message would cost two allocations each (the buffer and the
/// header that lets it be shared). 1 KiB: 2 and 4 KiB measured no faster
/// (unary, 64 callers) and an idle connection keeps its last chunk.
const TX_CHUNK: usize = 1024;

/// Makes room in `tx_buf` for a message of `len` bytes (see [`TX_CHUNK`]).
pub(super) fn reserve_tx(tx_buf: &mut BytesMut, len: usize) {
    if tx_buf.capacity() < len {
        tx_buf.reserve(len.max(TX_CHUNK));
    }
}

impl Session {
    /// The next message for the socket, encoded: control frames first, then
    /// DATA (and the CLOSE that follows a stream's last DATA) round robin by
    /// stream. DATA messages were built whole by [`Session::write`], so this
    /// copies nothing. After a close, nothing, unless the close was
    /// [`Session::close_after_flush`]: then what was queued, until empty.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.close_reason().is_some() && !self.flush_on_close {
            return None;
        }
        if let Some(frame) = self.control.pop_front() {
            return Some(self.encode_control(&frame));
        }
        self.poll_stream_message()
    }

    /// Whether the driver has something to do: a message to send, or the
    /// connection closed. Handles wake the driver only then.
    pub fn needs_driver(&self) -> bool {
        !self.control.is_empty() || !self.sendable.is_empty() || self.close_reason().is_some()
    }

    pub(super) fn push_control(&mut self, frame: Frame) {
        self.control.push_back(frame);
    }

    pub(super) fn mark_sendable(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.get_mut(&id) {
            if !stream.in_sendable {
                stream.in_sendable = true;
                self.sendable.push_back(id);
            }
        }
    }

    /// The next DATA message, or the CLOSE that follows a stream's last
    /// DATA, round robin by stream.
    fn poll_stream_message(&mut self) -> Option<Bytes> {
        let strand_peer = self.config.peer_window.is_some();
        while let Some(id) = self.sendable.pop_front() {
            let Some(stream) = self.streams.get_mut(&id) else {
                continue;
            };
            stream.in_sendable = false;
            if stream.send.is_done() {
                continue;
            }
            if let Some(msg) = stream.outgoing.pop_front() {
                let was_full = stream.outgoing_bytes >= self.config.stream_send_buffer;
                let payload = msg.len() - Frame::data_header_len(id);
                stream.outgoing_bytes -= payload;
                self.queued_send -= payload;
                let more = !stream.outgoing.is_empty() || stream.send == SendState::Finishing;
                if was_full && stream.outgoing_bytes < self.config.stream_send_buffer {
                    self.events.push_back(Event::Writable(id));
                }
                if more {
                    stream.in_sendable = true;
                    self.sendable.push_back(id);
                }
                if !self.send_waiters.is_empty() {
                    self.wake_send_waiters();
                }
                return Some(msg);
            }
            if stream.send == SendState::Finishing {
                // docs/protocol.md, on ending a stream: toward a JS peer,
                // CLOSE only once every byte was ACKed (a JS receiver drops
                // data otherwise). A strand receiver never loses queued
                // data, so no wait.
                if strand_peer || stream.credit.in_flight() == 0 {
                    stream.send = SendState::Finished;
                    self.events.push_back(Event::Finished(id));
                    self.maybe_release(id);
                    return Some(self.encode_control(&Frame::Close {
                        id,
                        shutdown: Shutdown::Read,
                    }));
                }
                // Re-queued by the ACK that brings in_flight to zero.
            }
        }
        None
    }

    fn encode_control(&mut self, frame: &Frame) -> Bytes {
        reserve_tx(&mut self.tx_buf, frame.encoded_len());
        frame.encode(&mut self.tx_buf);
        self.tx_buf.split().freeze()
    }

    /// The next event for the async layer.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
