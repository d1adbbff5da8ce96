//! The mux session: every stream of one WebSocket, as a pure state machine.
//!
//! Inputs arrive through `handle_*` methods (a received message, the peer's
//! close) and through the stream operations the handles call (`write`, `read`,
//! `finish`, `reset`, `stop`, …). Outputs leave through [`Session::poll_transmit`]
//! (frames to put on the socket, control frames first, then DATA round robin
//! across streams) and [`Session::poll_event`] (what the async layer must wake).
//! No I/O, no clock, no tokio: the driver owns those.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use strand_rpc_core::transport::{codes, CloseInitiator, CloseReason};

use super::copies::CopyPool;
use super::credit::{CreditWindow, SendCredit};
use super::frame::{Frame, Shutdown};
use super::queue::ChunkQueue;
use super::recv_buffer::{PinnedPayloads, RecvBuffer, COPY_POOL_BYTES};
use super::state::{RecvState, SendState};
use super::stream_id::{Role, StreamId, StreamMap};

mod handle;
mod stats;
mod transmit;

pub use stats::{SessionStats, StreamStats};

use transmit::reserve_tx;

/// WebSocket close code: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: going away (server shutting down).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code: protocol error.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// WebSocket close code: message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code: internal error.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Limits and parameters of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Client opens even ids, server odd ones.
    pub role: Role,
    /// Receive window granted per stream.
    pub window: u32,
    /// Streams alive at once (opened by either side).
    pub max_streams: usize,
    /// Peer-opened streams not yet taken by the application.
    pub accept_backlog: usize,
    /// Largest DATA payload in one message.
    pub max_data_payload: usize,
    /// Bytes a stream may have queued for the socket before writes wait.
    pub stream_send_buffer: usize,
    /// The peer's stream window, when it advertised one (strand extension):
    /// streams we open start with that much credit.
    pub peer_window: Option<u32>,
    /// We advertised our window to the peer (strand extension): a strand
    /// opener then counts it and needs no opening ACK from us.
    pub window_advertised: bool,
    /// Control frames queued for the socket above which the driver stops
    /// reading until the socket drains them.
    pub max_queued_control: usize,
}

impl SessionConfig {
    /// Defaults for `role`: see the driver's config for the reasoning.
    pub fn new(role: Role) -> Self {
        SessionConfig {
            role,
            window: 1 << 20,
            max_streams: 256,
            accept_backlog: 64,
            max_data_payload: 1 << 20,
            stream_send_buffer: 256 << 10,
            peer_window: None,
            window_advertised: false,
            max_queued_control: 4096,
        }
    }
}

/// What the async layer must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a stream; [`Session::accept`] returns it.
    Opened(StreamId),
    /// Data, the end, or a reset arrived on the stream: wake its reader.
    Readable(StreamId),
    /// Credit or buffer space arrived: wake its writer.
    Writable(StreamId),
    /// `CLOSE(Read)` went out: a pending finish completes.
    Finished(StreamId),
    /// The peer aborted its sending half (ERROR(Read, code)).
    Reset {
        /// The stream.
        id: StreamId,
        /// The peer's code.
        code: u64,
    },
    /// The peer stopped reading (ERROR(Write, code)).
    Stopped {
        /// The stream.
        id: StreamId,
        /// The peer's code.
        code: u64,
    },
    /// A stream left the session: a slot for opening is free.
    Released(StreamId),
    /// The connection closed (locally, by the peer, or by a protocol error
    /// with close code 1002). The driver sends a close frame when the
    /// initiator is local.
    Closed(CloseReason),
}

/// Why a stream operation could not proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// Not now: wait for the matching event and retry.
    Blocked,
    /// The peer aborted its sending half with this code.
    Reset(u64),
    /// The peer stopped reading with this code.
    Stopped(u64),
    /// This side already finished, reset or stopped the half.
    ClosedLocally,
    /// The connection is closed.
    ConnectionClosed(CloseReason),
    /// A limit refused the operation.
    Refused(&'static str),
}

#[derive(Debug)]
struct Stream {
    send: SendState,
    recv: RecvState,
    credit: SendCredit,
    /// Whole DATA messages (header included), ready for the socket.
    outgoing: ChunkQueue,
    /// Payload bytes in `outgoing` (headers not counted).
    outgoing_bytes: usize,
    in_sendable: bool,
    window: CreditWindow,
    /// Received bytes not yet read.
    recv_buf: RecvBuffer,
    /// The application holds (or will be given) the send / recv handle.
    send_handle: bool,
    recv_handle: bool,
}

impl Stream {
    fn new(window: u32, credit: SendCredit) -> Self {
        Stream {
            send: SendState::Open,
            recv: RecvState::Open,
            credit,
            outgoing: ChunkQueue::default(),
            outgoing_bytes: 0,
            in_sendable: false,
            window: CreditWindow::new(window),
            recv_buf: RecvBuffer::default(),
            send_handle: true,
            recv_handle: true,
        }
    }

    fn discard_incoming(&mut self) {
        let n = self.recv_buf.discard();
        self.window.on_discarded(n);
    }

    fn discard_outgoing(&mut self) {
        self.outgoing.clear();
        self.outgoing_bytes = 0;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnState {
    Open,
    /// Graceful shutdown: no new streams either way.
    Draining,
    Closed(CloseReason),
}

/// The mux state machine of one WebSocket connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    state: ConnState,
    streams: StreamMap<Stream>,
    next_local: Option<StreamId>,
    /// Highest peer-initiated id seen; every lower unknown id is dead.
    highest_peer: Option<StreamId>,
    /// Control frames for the socket, in order.
    control: VecDeque<Frame>,
    sendable: VecDeque<StreamId>,
    accept_queue: VecDeque<StreamId>,
    events: VecDeque<Event>,
    refused: u64,
    /// Outgoing messages are encoded into slices of this buffer, so that
    /// they do not each need an allocation.
    tx_buf: BytesMut,
    /// The read buffer the last message came in, and the payloads still
    /// pinned in it.
    pins: PinnedPayloads,
    /// Buffers payloads behind unread data are copied into (see
    /// [`Session::release_idle_copies`]).
    copies: CopyPool,
}

impl Session {
    /// A fresh session.
    pub fn new(config: SessionConfig) -> Self {
        Session {
            next_local: Some(config.role.first_id()),
            config,
            state: ConnState::Open,
            streams: StreamMap::default(),
            highest_peer: None,
            control: VecDeque::new(),
            sendable: VecDeque::new(),
            accept_queue: VecDeque::new(),
            events: VecDeque::new(),
            refused: 0,
            tx_buf: BytesMut::new(),
            pins: PinnedPayloads::default(),
            copies: CopyPool::new(COPY_POOL_BYTES),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            ConnState::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Whether the driver should read more from the socket: false while too
    /// many control frames (replies the peer provoked) wait for the socket.
    pub fn wants_read(&self) -> bool {
        self.control.len() < self.config.max_queued_control
    }

    /// Streams not yet done on the wire in both directions.
    pub fn active_streams(&self) -> usize {
        self.streams
            .values()
            .filter(|s| !(s.send.is_done() && s.recv.is_done()))
            .count()
    }

    /// Closes the connection at once; the driver sends a close frame.
    pub fn close(&mut self, code: u16, reason: &str) {
        self.set_closed(CloseReason::local(u64::from(code), reason));
    }

    /// Starts a graceful shutdown: no stream may be opened by either side;
    /// open ones continue. See [`Session::active_streams`].
    pub fn start_shutdown(&mut self) {
        if self.state == ConnState::Open {
            self.state = ConnState::Draining;
        }
    }

    /// Whether a graceful shutdown is under way (and the connection not yet closed).
    pub fn is_draining(&self) -> bool {
        self.state == ConnState::Draining
    }

    fn protocol_error(&mut self, what: &str) {
        self.set_closed(CloseReason::local(
            u64::from(CLOSE_PROTOCOL_ERROR),
            format!("protocol error: {what}"),
        ));
    }

    fn set_closed(&mut self, reason: CloseReason) {
        if matches!(self.state, ConnState::Closed(_)) {
            return;
        }
        self.state = ConnState::Closed(reason.clone());
        self.control.clear();
        self.sendable.clear();
        self.accept_queue.clear();
        for stream in self.streams.values_mut() {
            stream.discard_outgoing();
        }
        self.events.push_back(Event::Closed(reason));
    }

    fn closed_error(&self) -> Option<OpError> {
        self.close_reason()
            .map(|r| OpError::ConnectionClosed(r.clone()))
    }

    fn maybe_release(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if stream.send_handle || stream.recv_handle {
            return;
        }
        // Once the connection closed, no frame can finish a half any more:
        // the handles going away is the end of the stream.
        let closed = matches!(self.state, ConnState::Closed(_));
        if closed || (stream.send.is_done() && stream.recv.is_done()) {
            self.streams.remove(&id);
            self.events.push_back(Event::Released(id));
        }
    }

    /// Whether the peer is strand (it advertised its window): frames that
    /// only JS peers need are then not sent (PROTOCOL-EXTENSIONS.md).
    fn strand_peer(&self) -> bool {
        self.config.peer_window.is_some()
    }

    // ---- stream operations (called by the application's handles) ---------

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
            Some(w) => SendCredit::assumed(w),
            None => SendCredit::new(0),
        };
        self.streams
            .insert(id, Stream::new(self.config.window, credit));
        self.push_control(Frame::Ack {
            id,
            credit: self.config.window,
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
        let n = stream.credit.take(data.len().min(max_payload));
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
        stream.discard_outgoing();
        self.push_control(Frame::Error {
            id,
            shutdown: Shutdown::Read,
            code,
        });
        self.maybe_release(id);
    }

    /// Reads buffered bytes into `buf`. `Ok(0)` is the end of the stream (or
    /// an empty `buf`); `Blocked` while nothing is buffered. Returns credit to
    /// the peer as the window drains.
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
                    self.push_control(Frame::Ack { id, credit });
                }
            }
            return Ok(n);
        }
        if stream.recv == RecvState::FinReceived {
            stream.recv = RecvState::EofRead;
            self.maybe_release(id);
            return Ok(0);
        }
        Err(closed.unwrap_or(OpError::Blocked))
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

    /// Forgets every stream once the connection closed and the handles are
    /// gone (used by the driver after close).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Whether the close was started by this side (so a close frame must go out).
    pub fn closed_locally(&self) -> bool {
        self.close_reason()
            .is_some_and(|r| r.initiator == CloseInitiator::Local)
    }
}
