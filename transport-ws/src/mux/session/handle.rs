//! The session's inputs from the driver: a received message decoded and
//! handled frame by frame (`handle_*`, `on_*`), the peer's close, a lost
//! connection, and the timer that lets idle copy buffers go.

use bytes::Bytes;
use strand_rpc_core::transport::{codes, CloseReason};

use super::{ConnState, Event, Session, Stream};
use crate::mux::close_code;
use crate::mux::credit::SendCredit;
use crate::mux::flood::Flood;
use crate::mux::frame::{Frame, Shutdown};
use crate::mux::state::{RecvState, SendState};
use crate::mux::stream_id::StreamId;

impl Session {
    /// A binary WebSocket message arrived.
    pub fn handle_message(&mut self, msg: Bytes) {
        if self.pins.moved_on(&msg) {
            self.unpin();
        }
        if self.close_reason().is_some() {
            return;
        }
        match Frame::decode(msg) {
            Ok(frame) => self.handle_frame(frame),
            Err(err) => self.protocol_error(&err.to_string()),
        }
    }

    /// A message came in that was not cut from the buffer the last one was
    /// (the WebSocket layer moved on to another read buffer): the pinned
    /// payloads still queued from the last one are all that keeps that
    /// buffer, so they are copied out (see [`RecvBuffer::push_incoming`]). While
    /// messages keep coming from the same buffer, copying would free nothing.
    ///
    /// [`RecvBuffer::push_incoming`]: crate::mux::recv_buffer::RecvBuffer::push_incoming
    fn unpin(&mut self) {
        for id in self.pins.drain() {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.recv_buf.unpin(&mut self.copies);
            }
        }
    }

    /// A text WebSocket message arrived: a protocol error (1002).
    pub fn handle_text(&mut self) {
        self.protocol_error("text message");
    }

    /// The peer closed the WebSocket with this code and reason.
    pub fn handle_peer_close(&mut self, code: u16, reason: &str) {
        self.set_closed(CloseReason::peer(close_code::from_wire(code), reason));
    }

    /// The connection broke (I/O error, timeout) without a close handshake.
    pub fn handle_lost(&mut self, reason: &str) {
        self.set_closed(CloseReason::lost(reason));
    }

    /// One decoded frame from the peer.
    pub fn handle_frame(&mut self, frame: Frame) {
        if self.close_reason().is_some() {
            return;
        }
        let id = frame.stream_id();
        if let Frame::Data { payload, .. } = &frame {
            if payload.is_empty() {
                self.flood_counts.empty_data += 1;
                if !self.spend(Flood::EmptyData) {
                    return;
                }
            }
        }
        if !self.streams.contains_key(&id) {
            self.handle_unknown(frame);
            return;
        }
        match frame {
            Frame::Data { payload, .. } => self.on_data(id, payload),
            Frame::Ack { credit, .. } => self.on_ack(id, credit),
            Frame::Close { shutdown, .. } => self.on_close(id, shutdown),
            Frame::Error { shutdown, code, .. } => self.on_error(id, shutdown, code),
        }
        self.maybe_release(id);
    }

    fn handle_unknown(&mut self, frame: Frame) {
        let id = frame.stream_id();
        // An ERROR or CLOSE on a stream that is not there ends nothing:
        // churn (counted on the peer's ids only).
        let churn = matches!(frame, Frame::Error { .. } | Frame::Close { .. });
        if id.initiator() == self.config.role {
            // One of ours that is gone (or was never opened): drop.
            return;
        }
        if self.highest_peer.is_some_and(|h| id <= h) {
            // Closed, refused or burned: ids are never reused.
            if churn {
                self.idle_control(id);
            }
            return;
        }
        self.highest_peer = Some(id);
        let Frame::Ack { credit, .. } = frame else {
            // An unseen id must open with ACK; the id is burned.
            if churn {
                self.idle_control(id);
            }
            return;
        };
        let refuse = if self.state != ConnState::Open {
            true
        } else {
            self.streams.len() >= self.config.max_streams
                || self.accept_queue.len() >= self.config.stream_backlog
        };
        if refuse {
            self.refused += 1;
            // A refusal costs two replies: an open flood past the limits
            // spends the reset budget (h2 counts its refusals as local
            // error resets).
            if !self.spend(Flood::Resets) {
                return;
            }
            for shutdown in [Shutdown::Read, Shutdown::Write] {
                self.push_control(Frame::Error {
                    id,
                    shutdown,
                    code: codes::REFUSED,
                });
            }
            return;
        }
        let mut send = SendCredit::new(0);
        send.on_ack(credit);
        let mut stream = Stream::new(self.config.initial_window, send);
        // A strand opener that saw our advertised window counted it
        // already: the opening ACK would tell it nothing
        // (docs/protocol.md, "Window advertisement", rule 2).
        if self.strand_peer() && self.config.window_advertised {
            stream.first_ack_opens = true;
        } else {
            self.push_control(Frame::Ack {
                id,
                credit: self.config.initial_window,
            });
        }
        self.streams.insert(id, stream);
        self.accept_queue.push_back(id);
        self.events.push_back(Event::Opened(id));
    }

    fn on_data(&mut self, id: StreamId, payload: Bytes) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.recv != RecvState::Open {
            // In flight when we stopped, or sent after the peer's own end:
            // dropped (JS peers may race a write with an abort).
            return;
        }
        let behind = stream.window.buffered() > 0;
        if stream.window.on_data(payload.len()).is_err() {
            self.protocol_error("data beyond the granted window");
            return;
        }
        if !payload.is_empty() {
            let room = stream.window.peer_credit();
            let pinned = stream
                .recv_buf
                .push_incoming(payload, behind, room, &mut self.copies);
            self.events.push_back(Event::Readable(id));
            if pinned {
                self.pins.push(id);
            }
        }
    }

    fn on_ack(&mut self, id: StreamId, credit: u32) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if stream.send.is_done() {
            return;
        }
        stream.credit.on_ack(credit);
        self.events.push_back(Event::Writable(id));
        if stream.send == SendState::Finishing {
            self.mark_sendable(id);
        }
    }

    fn on_close(&mut self, id: StreamId, shutdown: Shutdown) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        match shutdown {
            Shutdown::Read => {
                if stream.recv != RecvState::Open {
                    self.idle_control(id);
                    return;
                }
                stream.recv = RecvState::FinReceived;
                // A strand peer's half is done once its CLOSE(Read) went
                // out: it would ignore the reply (docs/protocol.md, "Window
                // advertisement", rule 4).
                if !self.strand_peer() {
                    self.push_control(Frame::Close {
                        id,
                        shutdown: Shutdown::Write,
                    });
                }
                self.events.push_back(Event::Readable(id));
            }
            Shutdown::Write => {
                // The expected reply to our CLOSE(Read) when finished;
                // unsolicited otherwise, which JS treats as a stop with code 0.
                if !stream.send.is_done() {
                    self.on_error(id, Shutdown::Write, 0);
                }
            }
        }
    }

    /// An ERROR or CLOSE that changed nothing arrived on `id`. Counted on
    /// the peer's streams only: on ours, late stops are part of the JS
    /// close handshake (a JS server stops every unary call it has read).
    /// On the peer's, the first few after its stream is done are owed (the
    /// reply to our CLOSE, a stop that crossed our finish: `late_frames`).
    fn idle_control(&mut self, id: StreamId) {
        if id.initiator() == self.config.role {
            return;
        }
        let owed = match self.streams.get_mut(&id) {
            Some(stream) if stream.late_owed > 0 => {
                stream.late_owed -= 1;
                true
            }
            Some(_) => false,
            None => self.late_frames.take(id),
        };
        if owed {
            return;
        }
        self.flood_counts.idle_control += 1;
        self.spend(Flood::IdleControl);
    }

    /// The peer aborts a half of `id`, a stream it opened, before we wrote
    /// any answer on it (a rapid reset when repeated): spends the reset
    /// budget, once per stream. False when the connection was closed for it.
    fn peer_abort(&mut self, id: StreamId, shutdown: Shutdown, code: u64) -> bool {
        if id.initiator() == self.config.role {
            return true;
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return true;
        };
        let benign_stop =
            shutdown == Shutdown::Write && code == 0 && stream.send == SendState::Finishing;
        if stream.abort_counted || stream.send.is_done() || benign_stop || stream.answered {
            return true;
        }
        stream.abort_counted = true;
        self.flood_counts.aborted_by_peer += 1;
        self.spend(Flood::Resets)
    }

    /// A WebSocket ping arrived (the WebSocket layer queues its pong).
    pub fn handle_ping(&mut self) {
        if self.close_reason().is_some() {
            return;
        }
        self.flood_counts.pings += 1;
        self.spend(Flood::Pings);
    }

    fn on_error(&mut self, id: StreamId, shutdown: Shutdown, code: u64) {
        // Whether the half is still open, and whether this is the mirrored
        // answer to our own stop or reset (rule 4), which is no churn.
        let (half_open, mirrored) = match self.streams.get(&id) {
            None => return,
            Some(stream) => match shutdown {
                Shutdown::Read => (
                    stream.recv == RecvState::Open,
                    matches!(stream.recv, RecvState::Stopped(_)),
                ),
                Shutdown::Write => (
                    !stream.send.is_done(),
                    matches!(stream.send, SendState::Reset(_)),
                ),
            },
        };
        if !half_open {
            if !mirrored {
                self.idle_control(id);
            }
            return;
        }
        if !self.peer_abort(id, shutdown, code) {
            return;
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        match shutdown {
            Shutdown::Read => {
                stream.recv = RecvState::Reset(code);
                stream.discard_incoming();
                self.events.push_back(Event::Reset { id, code });
                self.events.push_back(Event::Readable(id));
            }
            Shutdown::Write => {
                let after_finish = stream.send == SendState::Finishing;
                stream.send = SendState::Stopped { code, after_finish };
                let n = stream.discard_outgoing();
                self.discarded_outgoing(n);
                self.events.push_back(Event::Stopped { id, code });
                self.events.push_back(Event::Writable(id));
            }
        }
        self.push_control(Frame::Error {
            id,
            shutdown: shutdown.opposite(),
            code,
        });
        if shutdown == Shutdown::Read {
            self.drop_if_unaccepted(id);
        }
    }

    /// A stream the peer aborted before the application accepted it is
    /// never handed out (h2 drops a stream reset while pending accept the
    /// same way): it is released as if its handles were dropped, so that
    /// no handler starts for it.
    fn drop_if_unaccepted(&mut self, id: StreamId) {
        let Some(pos) = self.accept_queue.iter().position(|&q| q == id) else {
            return;
        };
        self.accept_queue.remove(pos);
        self.release_send(id);
        self.release_recv(id);
    }

    /// Lets go of the copy buffers no payload uses any more. The driver
    /// calls it on a timer: a connection keeps them between bursts (reusing
    /// them is what spares an allocation per message) but not for long once
    /// it went quiet.
    pub fn release_idle_copies(&mut self) {
        self.copies.release_idle();
    }
}
