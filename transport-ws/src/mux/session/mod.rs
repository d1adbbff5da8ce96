//! The mux session: every stream of one WebSocket, as a pure state machine.
//!
//! Inputs arrive through `handle_*` methods (a received message, the peer's
//! close) and through the stream operations the handles call (`write`, `read`,
//! `finish`, `reset`, `stop`, …). Outputs leave through [`Session::poll_transmit`]
//! (frames to put on the socket, control frames first, then DATA round robin
//! across streams) and [`Session::poll_event`] (what the async layer must wake).
//! No I/O, no clock, no tokio: the driver owns those.
//!
//! This module holds the session's types, its constructor and the
//! connection state (open, draining, closed). The rest is split by concern,
//! one `impl Session` block each: the input handlers in `handle`, the stream
//! operations in `streams`, transmit scheduling in `transmit`, the figures
//! in `stats`; what happens to received bytes until they are read is the
//! receive-buffer policy in `mux::recv_buffer`.

use std::collections::VecDeque;

use bytes::BytesMut;
use strand_rpc_core::transport::{CloseCode, CloseInitiator, CloseReason};

use super::copies::CopyPool;
use super::credit::{CreditWindow, SendCredit};
use super::flood::{Flood, FloodGuard, FloodLimits};
use super::frame::Frame;
use super::queue::ChunkQueue;
use super::recv_buffer::{copy_pool_bytes, PinnedPayloads, RecvBuffer};
use super::state::{RecvState, SendState};
use super::stream_id::{Role, StreamId, StreamMap};
use late_frames::{LateFrames, OWED_PER_STREAM};

mod handle;
mod late_frames;
mod stats;
mod streams;
mod transmit;

pub use stats::{SessionStats, StreamStats};

/// Limits and parameters of one session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Client opens even ids, server odd ones.
    pub role: Role,
    /// Receive window a stream may grow to.
    pub window: u32,
    /// Receive window each stream starts with: what the opening ACK (and
    /// the window advertisement) grants. Streams whose reader keeps up grow
    /// towards `window`, from `receive_growth`. Taken as `window` when
    /// larger (the default).
    pub initial_window: u32,
    /// Bytes beyond `initial_window` all streams together may be granted:
    /// with `max_streams × initial_window`, what the peer can make us
    /// buffer on the connection, however many streams it fills.
    pub receive_growth: u64,
    /// Streams alive at once (opened by either side).
    pub max_streams: usize,
    /// Peer-opened streams not yet taken by the application.
    pub stream_backlog: usize,
    /// Largest DATA payload in one message.
    pub max_data_payload: usize,
    /// Bytes a stream may have queued for the socket before writes wait.
    pub stream_send_buffer: usize,
    /// Bytes all streams together may have queued for the socket before
    /// writes wait (DATA payloads; never passed).
    pub connection_send_buffer: usize,
    /// The peer's stream window, when it advertised one (strand extension):
    /// streams we open start with that much credit.
    pub peer_window: Option<u32>,
    /// We advertised our window to the peer (strand extension): a strand
    /// opener then counts it and needs no opening ACK from us.
    pub window_advertised: bool,
    /// Control frames queued for the socket above which the driver stops
    /// reading until the socket drains them.
    pub max_queued_control: usize,
    /// Budgets for frames that cost work but carry no data; past one the
    /// connection is closed with 1008.
    pub floods: FloodLimits,
}

impl SessionConfig {
    /// Defaults for `role`: see the driver's config for the reasoning.
    pub fn new(role: Role) -> Self {
        SessionConfig {
            role,
            window: 1 << 20,
            initial_window: u32::MAX,
            receive_growth: 0,
            max_streams: 256,
            stream_backlog: 256,
            max_data_payload: 1 << 20,
            stream_send_buffer: 256 << 10,
            connection_send_buffer: 4 << 20,
            peer_window: None,
            window_advertised: false,
            max_queued_control: 4096,
            floods: FloodLimits::default(),
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
    /// The recv handle counts as let go once it read the end: nothing it
    /// can do after that concerns the session (its drop takes no lock).
    send_handle: bool,
    recv_handle: bool,
    /// The peer aborted the stream before we were done with it, and it was
    /// counted against the reset budget (once per stream).
    abort_counted: bool,
    /// We wrote DATA on it: the peer has (or will have) an answer, and an
    /// abort after that is a caller done reading (a unary reply read before
    /// its CLOSE came, a stream cut after its first items), not a rapid
    /// reset.
    answered: bool,
    /// The peer counted our advertised window for this stream and got no
    /// opening ACK: it takes our first ACK above what it has in flight for
    /// a redundant opening one (docs/protocol.md, "Window advertisement",
    /// rule 2).
    first_ack_opens: bool,
    /// Frames that change nothing the peer may still send on this stream
    /// without it being churn (see `late_frames`).
    late_owed: u8,
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
            abort_counted: false,
            answered: false,
            first_ack_opens: false,
            late_owed: OWED_PER_STREAM,
        }
    }

    fn discard_incoming(&mut self) {
        let n = self.recv_buf.discard();
        self.window.on_discarded(n);
    }

    /// Drops the queued DATA; gives its payload bytes, for the
    /// connection's count.
    #[must_use]
    fn discard_outgoing(&mut self) -> usize {
        self.outgoing.clear();
        std::mem::take(&mut self.outgoing_bytes)
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
    /// Closed by [`Session::close_after_flush`]: what was queued for the
    /// socket still goes out before the close frame.
    flush_on_close: bool,
    /// Payload bytes queued for the socket across all streams (bounded by
    /// [`SessionConfig::connection_send_buffer`]).
    queued_send: usize,
    /// Streams whose writer waits for the connection's send buffer, in the
    /// order they blocked; all are woken when it has room again.
    send_waiters: VecDeque<StreamId>,
    /// Receive window granted beyond `initial_window`, all streams together
    /// (bounded by [`SessionConfig::receive_growth`]).
    grown: u64,
    /// The flood budgets and the session's time.
    flood: FloodGuard,
    /// Flood-relevant events counted so far (for stats).
    flood_counts: FloodCounts,
    /// What the peer's released streams may still send without it being
    /// churn.
    late_frames: LateFrames,
}

/// What the peer sent that the flood budgets count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct FloodCounts {
    pub(super) aborted_by_peer: u64,
    pub(super) idle_control: u64,
    pub(super) pings: u64,
    pub(super) empty_data: u64,
}

impl Session {
    /// A fresh session.
    pub fn new(mut config: SessionConfig) -> Self {
        config.initial_window = config.initial_window.min(config.window);
        let copies = CopyPool::new(copy_pool_bytes(config.window));
        Session {
            next_local: Some(config.role.first_id()),
            flood: FloodGuard::new(config.floods),
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
            copies,
            flush_on_close: false,
            queued_send: 0,
            send_waiters: VecDeque::new(),
            flood_counts: FloodCounts::default(),
            late_frames: LateFrames::default(),
            grown: 0,
        }
    }

    /// Returns `returned` bytes of credit on `id`, with growth of its window
    /// from the connection's receive budget when its reader keeps up with
    /// bulk data (it consumed half its window). Returned credit is never
    /// held back: every stream keeps at least its initial window, so none
    /// waits for another to be read.
    fn send_ack(&mut self, id: StreamId, returned: u32) {
        let free = self.config.receive_growth.saturating_sub(self.grown);
        let max = self.config.window;
        let initial = self.config.initial_window;
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        let window = stream.window.window();
        let bulk = returned >= (window / 2).max(1);
        let room = u64::from(max.saturating_sub(window)).min(free);
        let growth = if bulk {
            u32::try_from(room)
                .unwrap_or(u32::MAX)
                .min(u32::MAX - returned)
        } else {
            0
        };
        if growth > 0 {
            stream.window.grow(growth);
            self.grown += u64::from(growth);
        }
        if std::mem::take(&mut stream.first_ack_opens) && growth > 0 {
            // Taken for the opening ACK: the peer adds what it grants
            // beyond our advertised window. The returned credit follows,
            // as a return.
            self.push_control(Frame::Ack {
                id,
                credit: initial.saturating_add(growth),
            });
            self.push_control(Frame::Ack {
                id,
                credit: returned,
            });
        } else {
            self.push_control(Frame::Ack {
                id,
                credit: returned + growth,
            });
        }
    }

    /// A stream left: its window's growth goes back to the budget.
    fn forget_stream(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.remove(&id) {
            if id.initiator() != self.config.role {
                self.late_frames.released(id, stream.late_owed);
            }
            let growth = stream
                .window
                .window()
                .saturating_sub(self.config.initial_window);
            self.grown = self.grown.saturating_sub(u64::from(growth));
        }
    }

    /// The time since the connection started, as the driver's clock reads
    /// it: the flood budgets refill with it.
    pub fn set_time(&mut self, now: std::time::Duration) {
        self.flood.set_time(now);
    }

    /// Spends one token of `kind`'s flood budget; past the budget the
    /// connection is closed with 1008 and false returned.
    fn spend(&mut self, kind: Flood) -> bool {
        if self.flood.spend(kind) {
            return true;
        }
        self.close(CloseCode::Policy, kind.reason());
        false
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
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.set_closed(CloseReason::local(code, reason));
    }

    /// Closes the connection gracefully: nothing new is queued (stream
    /// operations fail as after [`Session::close`]), but what was queued for
    /// the socket (control frames, every stream's DATA and the CLOSE of a
    /// finished stream) still leaves through [`Session::poll_transmit`],
    /// also for a stream whose handles are dropped after the close. Toward
    /// a peer that did not advertise its window (JS), a CLOSE waits for
    /// every byte to be acknowledged and a closed session reads no ACK: a
    /// stream with bytes unacknowledged at the close sends its DATA only;
    /// the driver sends the close frame once it is all out (bounded by its
    /// close timeout). Memory stays bounded by what was queued already.
    pub fn close_after_flush(&mut self, code: CloseCode, reason: &str) {
        if matches!(self.state, ConnState::Closed(_)) {
            return;
        }
        let reason = CloseReason::local(code, reason);
        self.state = ConnState::Closed(reason.clone());
        self.flush_on_close = true;
        self.forget_unaccepted();
        self.events.push_back(Event::Closed(reason));
    }

    /// Whether the close keeps what was queued for the socket (see
    /// [`Session::close_after_flush`]).
    pub fn flushes_on_close(&self) -> bool {
        self.flush_on_close
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

    /// Takes `n` discarded payload bytes off the connection's count.
    fn discarded_outgoing(&mut self, n: usize) {
        self.queued_send -= n;
        self.wake_send_waiters();
    }

    /// Wakes the writers that wait for the connection's send buffer, once
    /// it has room.
    fn wake_send_waiters(&mut self) {
        if self.queued_send < self.config.connection_send_buffer {
            while let Some(id) = self.send_waiters.pop_front() {
                self.events.push_back(Event::Writable(id));
            }
        }
    }

    fn protocol_error(&mut self, what: &str) {
        self.set_closed(CloseReason::local(
            CloseCode::Protocol,
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
        self.forget_unaccepted();
        for stream in self.streams.values_mut() {
            let _ = stream.discard_outgoing();
        }
        self.queued_send = 0;
        self.send_waiters.clear();
        self.events.push_back(Event::Closed(reason));
    }

    /// Releases the streams the application was never given, once the
    /// connection closed: nobody else would, until the connection is
    /// dropped.
    fn forget_unaccepted(&mut self) {
        while let Some(id) = self.accept_queue.pop_front() {
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.send_handle = false;
                stream.recv_handle = false;
            }
            self.maybe_release(id);
        }
    }

    fn closed_error(&self) -> Option<OpError> {
        self.close_reason()
            .map(|r| OpError::ConnectionClosed(r.clone()))
    }

    /// Whether the peer is strand (it advertised its window): frames that
    /// only JS peers need are then not sent (docs/protocol.md, "Window advertisement").
    fn strand_peer(&self) -> bool {
        self.config.peer_window.is_some()
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
