//! `ws_session`: a client and a server [`Session`] joined by a simulated
//! link, driven by operations the fuzzer picks.
//!
//! The link holds the messages each side's driver took from its session
//! ([`Session::poll_transmit`]) until an operation delivers them, so frames
//! can be in flight while the other side acts. Closing steps come one in
//! 32 or so, so that most inputs keep both sessions open. In a *hostile*
//! input (half of them) the fuzzer may also inject frames, raw bytes or a
//! text message toward either side; the streams an injected frame names are
//! *tainted* and drop out of the content checks, and only after an
//! injection may a session close with a protocol error.
//!
//! Checked after every step:
//! - no session closes with a protocol error unless something was injected
//!   (so a real session never sends DATA beyond the credit it was granted,
//!   nor a malformed frame);
//! - on the wire, the DATA a side sends on a stream never exceeds the window
//!   the receiver granted plus the credit it returned, counted from the
//!   frames delivered so far (an oracle independent of both sessions'
//!   accounting);
//! - every byte read is the byte written at that offset on that stream, and
//!   no more bytes are read than were written; a stream read to its end
//!   delivered every byte written before the finish;
//! - the limits hold: streams tracked, accept backlog, queued send bytes
//!   (per stream and for the connection), buffered bytes and the credit
//!   still granted within the window; after a graceful close
//!   ([`Session::close_after_flush`]) the bytes queued only go down.
//!
//! At the end the link settles (everything accepted, read and delivered),
//! then: every stream finished by its writer, neither reset nor stopped, on a
//! connection still open, has been read to its end with all its bytes (and
//! so has one its writer finished before closing gracefully, where the
//! reader is still open), and
//! on every stream still open both ways the writer has its whole credit back
//! (a stalled writer or a lost credit fails here); and once both ends release
//! every handle and the link settles again, no stream state is left.

use std::collections::{HashMap, HashSet, VecDeque};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{BufMut, Bytes, BytesMut};
use strand_rpc_core::transport::{CloseCode, CloseInitiator};
use strand_transport_ws::mux::{Event, Frame, Role, Session, SessionConfig, Shutdown, StreamId};

/// Steps in one input at most.
const MAX_STEPS: usize = 512;
/// Rounds the final settling may take before the link is declared stuck.
const SETTLE_ROUNDS: usize = 2000;

/// One side's configuration, as the fuzzer picks it.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct SideConfig {
    window: u16,
    big_window: bool,
    advertise: bool,
    max_streams: u8,
    stream_backlog: u8,
    max_data_payload: u16,
    stream_send_buffer: u16,
    max_queued_control: u8,
    connection_send_buffer: u16,
}

impl SideConfig {
    fn window(&self) -> u32 {
        if self.big_window {
            1 << 20
        } else {
            u32::from(self.window % 4097)
        }
    }

    /// A connection receive budget (the top bit of
    /// `connection_send_buffer`, which its modulo ignores): streams start
    /// with a quarter of the window and grow from a pool of one window.
    fn budget(&self) -> bool {
        self.connection_send_buffer & 0x8000 != 0
    }

    /// The window streams start with (what the opening ACK grants).
    fn initial_window(&self) -> u32 {
        if self.budget() {
            (self.window() / 4).max(1).min(self.window())
        } else {
            self.window()
        }
    }

    /// What the peer reads in our `x-strand-window` header: the initial
    /// window, greater than zero, when we send the header.
    fn advertised(&self) -> Option<u32> {
        Some(self.initial_window()).filter(|w| self.advertise && *w > 0)
    }

    fn session(&self, role: Role, peer: &SideConfig) -> SessionConfig {
        SessionConfig {
            window: self.window(),
            initial_window: self.initial_window(),
            receive_growth: if self.budget() {
                u64::from(self.window())
            } else {
                0
            },
            max_streams: 1 + usize::from(self.max_streams % 8),
            stream_backlog: usize::from(self.stream_backlog % 5),
            max_data_payload: 1 + usize::from(self.max_data_payload % 1500),
            stream_send_buffer: 1 + usize::from(self.stream_send_buffer % 4096),
            peer_window: peer.advertised(),
            // As the endpoint sets it: a window of 0 is not advertised.
            window_advertised: self.advertised().is_some(),
            max_queued_control: 1 + usize::from(self.max_queued_control % 64),
            connection_send_buffer: 1 + usize::from(self.connection_send_buffer % 16384),
            ..SessionConfig::new(role)
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// A frame to inject, on a small stream id so that it meets live streams.
#[derive(Arbitrary, Debug, Clone)]
struct FuzzFrame {
    kind: u8,
    id: u8,
    credit: u32,
    write: bool,
    code: u8,
    payload: u8,
}

impl FuzzFrame {
    fn frame(&self) -> Frame {
        let id = StreamId(u64::from(self.id % 24));
        let shutdown = if self.write {
            Shutdown::Write
        } else {
            Shutdown::Read
        };
        match self.kind % 4 {
            0 => Frame::Data {
                id,
                payload: Bytes::from(vec![0xa5; usize::from(self.payload)]),
            },
            1 => Frame::Ack {
                id,
                credit: self.credit,
            },
            2 => Frame::Error {
                id,
                shutdown,
                code: u64::from(self.code),
            },
            _ => Frame::Close { id, shutdown },
        }
    }
}

/// What the application and the drivers do: most steps.
#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Open(Side),
    Accept(Side),
    Write {
        side: Side,
        stream: u8,
        len: u16,
    },
    Read {
        side: Side,
        stream: u8,
        len: u8,
    },
    ReadChunk {
        side: Side,
        stream: u8,
        max: u16,
    },
    Finish {
        side: Side,
        stream: u8,
    },
    Reset {
        side: Side,
        stream: u8,
        code: u8,
    },
    Stop {
        side: Side,
        stream: u8,
        code: u8,
    },
    ReleaseSend {
        side: Side,
        stream: u8,
    },
    ReleaseRecv {
        side: Side,
        stream: u8,
    },
    Query {
        side: Side,
        stream: u8,
    },
    Transmit {
        side: Side,
        count: u8,
    },
    Deliver {
        from: Side,
        count: u8,
        batched: bool,
    },
    ReleaseIdleCopies(Side),
}

/// Steps that end a connection or come from a hostile peer: rarer, so
/// that most inputs keep both sessions open for long.
#[derive(Arbitrary, Debug, Clone)]
enum Rare {
    StartShutdown(Side),
    Close {
        side: Side,
        code: u8,
    },
    /// A graceful close: what was queued still leaves.
    CloseAfterFlush {
        side: Side,
        code: u8,
    },
    PeerClose {
        to: Side,
        code: u16,
    },
    Lost(Side),
    /// Only in hostile inputs, as the injections.
    InjectFrame {
        to: Side,
        frame: FuzzFrame,
    },
    InjectRaw {
        to: Side,
        len: u8,
        bytes: [u8; 12],
    },
    InjectText(Side),
}

#[derive(Debug, Clone)]
enum Step {
    Op(Op),
    Rare(Rare),
}

impl Step {
    /// One step in 32 is a rare one.
    fn read(u: &mut Unstructured<'_>) -> arbitrary::Result<Step> {
        Ok(if u.arbitrary::<u8>()? < 248 {
            Step::Op(u.arbitrary()?)
        } else {
            Step::Rare(u.arbitrary()?)
        })
    }
}

#[derive(Arbitrary, Debug)]
struct Configs {
    client: SideConfig,
    server: SideConfig,
    /// Whether injections are carried out (otherwise skipped): half the
    /// inputs are two real sessions only, where every invariant applies.
    hostile: bool,
}

/// A close code the application may use.
fn close_code(code: u8) -> CloseCode {
    match code % 3 {
        0 => CloseCode::Normal,
        1 => CloseCode::GoingAway,
        _ => CloseCode::Application(4000 + u32::from(code)),
    }
}

/// The byte written at `offset` of stream `id` (by either side).
fn pattern(id: StreamId, offset: u64) -> u8 {
    let x = (id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ offset).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (x >> 56) as u8
}

/// What the harness knows of one stream at one side (the application's view).
#[derive(Debug, Default, Clone)]
struct Known {
    send_released: bool,
    recv_released: bool,
    written: u64,
    received: u64,
    finish_requested: bool,
    reset_called: bool,
    stop_called: bool,
    eof_read: bool,
    finished_event: bool,
    stopped_by_peer: bool,
    reset_by_peer: bool,
}

/// The wire-level credit oracle for one direction of one stream: what the
/// receiver granted, counted from the ACKs delivered to the sender.
#[derive(Debug, Default, Clone, Copy)]
struct Credit {
    /// The receiver's window, once the sender can count on it.
    base: u64,
    /// Credit returned by later ACKs.
    returned: u64,
    /// An ACK from the receiver was delivered already.
    acked: bool,
    /// DATA bytes the sender handed to the wire.
    sent: u64,
}

struct Peer {
    session: Session,
    /// Streams the application holds, in the order it got them.
    order: Vec<StreamId>,
    known: HashMap<StreamId, Known>,
    /// Ids this side opened (the rest it accepted).
    opened: HashSet<StreamId>,
}

impl Peer {
    fn pick(&self, index: u8) -> Option<StreamId> {
        if self.order.is_empty() {
            return None;
        }
        Some(self.order[usize::from(index) % self.order.len()])
    }
}

struct Sim {
    peers: [Peer; 2],
    configs: [SessionConfig; 2],
    /// Messages taken from side i, on their way to the other side.
    wire: [VecDeque<Bytes>; 2],
    /// `credit[i]`: stream id → oracle for DATA that side i sends.
    credit: [HashMap<StreamId, Credit>; 2],
    tainted: HashSet<StreamId>,
    injected: bool,
    /// `flushed[i]`: when side i closed with `close_after_flush`, the
    /// streams it had finished (neither reset nor stopped) by then, each
    /// with whether its end must arrive too, and its queued bytes at that
    /// moment (they may only go down after).
    flushed: [Option<(HashMap<StreamId, bool>, u64)>; 2],
    /// Print every step and frame (`STRAND_FUZZ_TRACE` set): for reading
    /// a failing input.
    trace: bool,
}

/// Runs one input (see the module docs for what is checked).
pub fn ws_session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(configs) = Configs::arbitrary(&mut u) else {
        return;
    };
    let mut sim = Sim::new(&configs.client, &configs.server);
    if sim.trace {
        eprintln!("{configs:?}\n{:#?}", sim.configs);
    }
    let mut steps = 0;
    while !u.is_empty() && steps < MAX_STEPS {
        let Ok(step) = Step::read(&mut u) else {
            break;
        };
        if sim.trace {
            eprintln!("step {steps}: {step:?}");
        }
        match step {
            Step::Op(op) => sim.step(&op),
            Step::Rare(rare) => sim.rare(&rare, configs.hostile),
        }
        sim.poll_events();
        sim.check();
        steps += 1;
    }
    if sim.trace {
        eprintln!("settling");
    }
    sim.settle();
    sim.check();
    sim.check_delivered();
    sim.check_flushed();
    // Twice: the first settling may bring streams the application takes
    // only then.
    for _ in 0..2 {
        if sim.trace {
            eprintln!("releasing every handle");
        }
        sim.release_everything();
        sim.settle();
        sim.check();
    }
    sim.check_nothing_left();
}

impl Sim {
    fn new(client: &SideConfig, server: &SideConfig) -> Sim {
        let configs = [
            client.session(Role::Client, server),
            server.session(Role::Server, client),
        ];
        let peer = |config: &SessionConfig| Peer {
            session: Session::new(config.clone()),
            order: Vec::new(),
            known: HashMap::new(),
            opened: HashSet::new(),
        };
        Sim {
            peers: [peer(&configs[0]), peer(&configs[1])],
            configs,
            wire: [VecDeque::new(), VecDeque::new()],
            credit: [HashMap::new(), HashMap::new()],
            tainted: HashSet::new(),
            injected: false,
            flushed: [None, None],
            trace: std::env::var_os("STRAND_FUZZ_TRACE").is_some(),
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Open(side) => self.open(side.index()),
            Op::Accept(side) => {
                self.accept(side.index());
            }
            Op::Write { side, stream, len } => {
                if let Some(id) = self.peers[side.index()].pick(*stream) {
                    self.write(side.index(), id, usize::from(*len % 8192));
                }
            }
            Op::Read { side, stream, len } => {
                if let Some(id) = self.peers[side.index()].pick(*stream) {
                    self.read(side.index(), id, 1 + usize::from(*len), false);
                }
            }
            Op::ReadChunk { side, stream, max } => {
                if let Some(id) = self.peers[side.index()].pick(*stream) {
                    self.read(side.index(), id, usize::from(*max), true);
                }
            }
            Op::Finish { side, stream } => self.with_send(*side, *stream, |sim, s, id| {
                if sim.peers[s].session.finish(id).is_ok() {
                    sim.peers[s].known.get_mut(&id).unwrap().finish_requested = true;
                }
            }),
            Op::Reset { side, stream, code } => self.with_send(*side, *stream, |sim, s, id| {
                sim.peers[s].session.reset(id, u64::from(*code));
                sim.peers[s].known.get_mut(&id).unwrap().reset_called = true;
            }),
            Op::Stop { side, stream, code } => self.with_recv(*side, *stream, |sim, s, id| {
                sim.peers[s].session.stop(id, u64::from(*code));
                sim.peers[s].known.get_mut(&id).unwrap().stop_called = true;
            }),
            Op::ReleaseSend { side, stream } => self.with_send(*side, *stream, |sim, s, id| {
                sim.release_send(s, id);
            }),
            Op::ReleaseRecv { side, stream } => self.with_recv(*side, *stream, |sim, s, id| {
                sim.release_recv(s, id);
            }),
            Op::Query { side, stream } => {
                let s = side.index();
                if let Some(id) = self.peers[s].pick(*stream) {
                    let session = &mut self.peers[s].session;
                    let _ = session.poll_finished(id);
                    let _ = session.write_boundary(id);
                    let _ = session.stopped_code(id);
                    let _ = session.stream_stats(id);
                    let _ = (session.needs_driver(), session.active_streams());
                    let _ = (session.is_draining(), session.closed_locally());
                }
            }
            Op::Transmit { side, count } => {
                self.transmit(side.index(), usize::from(*count).max(1));
            }
            Op::Deliver {
                from,
                count,
                batched,
            } => {
                self.deliver(from.index(), usize::from(*count).max(1), *batched);
            }
            Op::ReleaseIdleCopies(side) => self.peers[side.index()].session.release_idle_copies(),
        }
    }

    fn rare(&mut self, rare: &Rare, hostile: bool) {
        let injection = matches!(
            rare,
            Rare::InjectFrame { .. } | Rare::InjectRaw { .. } | Rare::InjectText(_)
        );
        if injection && !hostile {
            return;
        }
        match rare {
            Rare::StartShutdown(side) => self.peers[side.index()].session.start_shutdown(),
            Rare::Close { side, code } => {
                self.peers[side.index()]
                    .session
                    .close(close_code(*code), "closed by the fuzzer");
            }
            Rare::CloseAfterFlush { side, code } => self.close_after_flush(side.index(), *code),
            Rare::InjectFrame { to, frame } => {
                let frame = frame.frame();
                self.injected = true;
                self.tainted.insert(frame.stream_id());
                self.peers[to.index()].session.handle_frame(frame);
            }
            Rare::InjectRaw { to, len, bytes } => {
                self.injected = true;
                let msg = Bytes::copy_from_slice(&bytes[..usize::from(*len) % 13]);
                if let Ok(frame) = Frame::decode(msg.clone()) {
                    self.tainted.insert(frame.stream_id());
                }
                self.peers[to.index()].session.handle_message(msg);
            }
            Rare::InjectText(to) => {
                self.injected = true;
                self.peers[to.index()].session.handle_text();
            }
            Rare::PeerClose { to, code } => {
                self.peers[to.index()]
                    .session
                    .handle_peer_close(*code, "closed by the fuzzer's peer");
            }
            Rare::Lost(side) => self.peers[side.index()].session.handle_lost("link lost"),
        }
    }

    /// Side `s` closes gracefully; what it had finished by then must still
    /// reach the peer (checked at the end, see [`Sim::check_flushed`]).
    fn close_after_flush(&mut self, s: usize, code: u8) {
        let was_open = self.peers[s].session.close_reason().is_none();
        self.peers[s]
            .session
            .close_after_flush(close_code(code), "closed gracefully by the fuzzer");
        if !was_open {
            return;
        }
        assert!(self.peers[s].session.flushes_on_close());
        // Toward a peer that did not advertise its window (JS), the CLOSE
        // of a finish waits until every byte was acknowledged, and a closed
        // session reads no ACK: a stream with bytes unacknowledged (or
        // still queued) delivers its bytes but not its end.
        let strand_peer = self.configs[s].peer_window.is_some();
        let session = &self.peers[s].session;
        let finished = self.peers[s]
            .known
            .iter()
            .filter(|(_, k)| k.finish_requested && !k.reset_called && !k.stopped_by_peer)
            .map(|(id, _)| {
                let acked = session
                    .stream_stats(*id)
                    .is_none_or(|st| st.in_flight == 0 && st.queued_send == 0);
                (*id, strand_peer || acked)
            })
            .collect();
        let queued = self.peers[s].session.stats().queued_send;
        self.flushed[s] = Some((finished, queued));
    }

    /// Runs `f` on a stream whose send half the application still holds.
    fn with_send(&mut self, side: Side, stream: u8, f: impl FnOnce(&mut Sim, usize, StreamId)) {
        let s = side.index();
        if let Some(id) = self.peers[s].pick(stream) {
            if !self.peers[s].known[&id].send_released {
                f(self, s, id);
            }
        }
    }

    /// Runs `f` on a stream whose recv half the application still holds.
    fn with_recv(&mut self, side: Side, stream: u8, f: impl FnOnce(&mut Sim, usize, StreamId)) {
        let s = side.index();
        if let Some(id) = self.peers[s].pick(stream) {
            if !self.peers[s].known[&id].recv_released {
                f(self, s, id);
            }
        }
    }

    fn open(&mut self, s: usize) {
        let peer = &mut self.peers[s];
        if let Ok(id) = peer.session.open() {
            assert_eq!(id.initiator(), peer.session.config().role, "opened {id}");
            assert!(
                peer.known.insert(id, Known::default()).is_none(),
                "stream id {id} opened twice"
            );
            peer.order.push(id);
            peer.opened.insert(id);
        }
    }

    fn accept(&mut self, s: usize) -> bool {
        let peer = &mut self.peers[s];
        match peer.session.accept() {
            Ok(id) => {
                assert_ne!(id.initiator(), peer.session.config().role, "accepted {id}");
                assert!(
                    peer.known.insert(id, Known::default()).is_none(),
                    "stream id {id} accepted twice, or one of ours"
                );
                peer.order.push(id);
                true
            }
            Err(_) => false,
        }
    }

    fn write(&mut self, s: usize, id: StreamId, len: usize) {
        let known = &self.peers[s].known[&id];
        if known.send_released {
            return;
        }
        let start = known.written;
        let data: Vec<u8> = (0..len as u64).map(|i| pattern(id, start + i)).collect();
        if let Ok(n) = self.peers[s].session.write(id, &data) {
            assert!(n <= len, "wrote {n} of {len} bytes");
            assert!(
                n <= self.configs[s].max_data_payload,
                "one write took {n} bytes, more than one DATA message may carry"
            );
            self.peers[s].known.get_mut(&id).unwrap().written += n as u64;
        }
    }

    /// Reads once; returns the bytes read, or `None` at the end or on an error.
    fn read(&mut self, s: usize, id: StreamId, len: usize, chunk: bool) -> Option<usize> {
        if self.peers[s].known[&id].recv_released {
            return None;
        }
        let session = &mut self.peers[s].session;
        let (got, eof) = if chunk {
            match session.read_chunk(id, len) {
                Ok(Some(bytes)) => {
                    assert!(bytes.len() <= len.max(1), "chunk over its limit");
                    (bytes.to_vec(), false)
                }
                Ok(None) => (Vec::new(), true),
                Err(_) => return None,
            }
        } else {
            let mut buf = vec![0u8; len.max(1)];
            match session.read(id, &mut buf) {
                Ok(0) => (Vec::new(), true),
                Ok(n) => {
                    buf.truncate(n);
                    (buf, false)
                }
                Err(_) => return None,
            }
        };
        let tainted = self.tainted.contains(&id);
        let written = self.peers[1 - s].known.get(&id).map_or(0, |k| k.written);
        let writer_finished = self.peers[1 - s]
            .known
            .get(&id)
            .is_some_and(|k| k.finish_requested);
        let known = self.peers[s].known.get_mut(&id).unwrap();
        if eof {
            known.eof_read = true;
            if !tainted {
                assert!(
                    writer_finished,
                    "stream {id}: end read, but its writer never finished"
                );
                assert_eq!(
                    known.received, written,
                    "stream {id}: end read after {} of {written} bytes written",
                    known.received
                );
            }
            return None;
        }
        if !tainted {
            for (i, b) in got.iter().enumerate() {
                let offset = known.received + i as u64;
                assert_eq!(
                    *b,
                    pattern(id, offset),
                    "stream {id}: wrong byte at offset {offset}"
                );
            }
            assert!(
                known.received + got.len() as u64 <= written,
                "stream {id}: read {} bytes, {written} written",
                known.received + got.len() as u64
            );
        }
        known.received += got.len() as u64;
        Some(got.len())
    }

    fn release_send(&mut self, s: usize, id: StreamId) {
        self.peers[s].session.release_send(id);
        self.peers[s].known.get_mut(&id).unwrap().send_released = true;
    }

    fn release_recv(&mut self, s: usize, id: StreamId) {
        self.peers[s].session.release_recv(id);
        self.peers[s].known.get_mut(&id).unwrap().recv_released = true;
    }

    /// The driver of side `s` takes up to `count` messages for the socket.
    fn transmit(&mut self, s: usize, count: usize) -> usize {
        let mut n = 0;
        while n < count {
            let Some(msg) = self.peers[s].session.poll_transmit() else {
                break;
            };
            let frame = Frame::decode(msg.clone())
                .unwrap_or_else(|e| panic!("side {s} sent an invalid frame ({e}): {msg:?}"));
            if let Frame::Data { id, payload } = &frame {
                let credit = self.credit[s].entry(*id).or_default();
                credit.sent += payload.len() as u64;
                if !self.tainted.contains(id) {
                    let granted = self.granted(s, *id);
                    assert!(
                        self.credit[s][id].sent <= granted,
                        "side {s} sent {} DATA bytes on stream {id}, {granted} granted",
                        self.credit[s][id].sent
                    );
                }
            }
            if self.trace {
                eprintln!("  side {s} sends {frame:?}");
            }
            self.wire[s].push_back(msg);
            n += 1;
        }
        n
    }

    /// Credit side `s` may have used on `id`, by the frames it received.
    fn granted(&self, s: usize, id: StreamId) -> u64 {
        let credit = self.credit[s].get(&id).copied().unwrap_or_default();
        // A stream we open toward a peer that advertised its window starts
        // with that window.
        let assumed = match self.configs[s].peer_window {
            Some(w) if id.initiator() == self.configs[s].role => u64::from(w),
            _ => 0,
        };
        credit.base.max(assumed) + credit.returned
    }

    /// Whether the first ACK side `r` sends on `id` is an opening grant
    /// rather than returned credit.
    fn opening_ack(&self, r: usize, id: StreamId) -> bool {
        let config = &self.configs[r];
        id.initiator() == config.role || !(config.peer_window.is_some() && config.window_advertised)
    }

    /// Delivers up to `count` messages in flight from side `from`.
    fn deliver(&mut self, from: usize, count: usize, batched: bool) -> usize {
        let to = 1 - from;
        if !self.peers[to].session.wants_read() {
            return 0;
        }
        let n = count.min(self.wire[from].len());
        let msgs: Vec<Bytes> = self.wire[from].drain(..n).collect();
        let msgs: Vec<Bytes> = if batched {
            // As the WebSocket layer cuts them from one read buffer, each
            // behind a (here two-byte) frame header.
            let mut buf = BytesMut::new();
            let mut spans = Vec::new();
            for m in &msgs {
                buf.put_u16(0x8200);
                spans.push((buf.len(), m.len()));
                buf.extend_from_slice(m);
            }
            let buf = buf.freeze();
            spans
                .into_iter()
                .map(|(at, len)| buf.slice(at..at + len))
                .collect()
        } else {
            msgs.iter().map(|m| Bytes::copy_from_slice(m)).collect()
        };
        for msg in msgs {
            if let Ok(Frame::Ack { id, credit }) = Frame::decode(msg.clone()) {
                let first = !self.credit[to].get(&id).is_some_and(|c| c.acked);
                let opening_ack = self.opening_ack(from, id);
                let c = self.credit[to].entry(id).or_default();
                // An acceptor that sent no opening ACK (both advertised) may
                // grow the window with its first ACK: above what the opener
                // has in flight, it is taken as the opening grant
                // (docs/protocol.md, "Window advertisement", rule 2).
                let in_flight = c.sent.saturating_sub(c.returned);
                let opening = first && (opening_ack || u64::from(credit) > in_flight);
                if opening {
                    c.base = c.base.max(u64::from(credit));
                } else {
                    c.returned += u64::from(credit);
                }
                c.acked = true;
            }
            self.peers[to].session.handle_message(msg);
            self.poll_events();
        }
        n
    }

    fn poll_events(&mut self) {
        for s in 0..2 {
            while let Some(event) = self.peers[s].session.poll_event() {
                let known = &mut self.peers[s].known;
                match event {
                    Event::Finished(id) => {
                        if let Some(k) = known.get_mut(&id) {
                            k.finished_event = true;
                        }
                    }
                    Event::Stopped { id, .. } => {
                        if let Some(k) = known.get_mut(&id) {
                            k.stopped_by_peer = true;
                        }
                    }
                    Event::Reset { id, .. } => {
                        if let Some(k) = known.get_mut(&id) {
                            k.reset_by_peer = true;
                        }
                    }
                    Event::Opened(id) => {
                        assert_ne!(id.initiator(), self.configs[s].role, "peer opened {id}");
                    }
                    Event::Readable(_)
                    | Event::Writable(_)
                    | Event::Released(_)
                    | Event::Closed(_) => {}
                }
            }
        }
    }

    /// Invariants that hold after every step.
    fn check(&self) {
        for (s, peer) in self.peers.iter().enumerate() {
            let session = &peer.session;
            if let Some(reason) = session.close_reason() {
                let protocol_error =
                    reason.initiator == CloseInitiator::Local && reason.code == CloseCode::Protocol;
                assert!(
                    !protocol_error || self.injected,
                    "side {s} closed with a protocol error between two real sessions: {}",
                    reason.reason
                );
            }
            let config = &self.configs[s];
            let stats = session.stats();
            assert!(
                stats.queued_send <= config.connection_send_buffer as u64,
                "side {s}: {} bytes queued to send, connection limit {}",
                stats.queued_send,
                config.connection_send_buffer
            );
            if let Some((_, queued)) = &self.flushed[s] {
                assert!(
                    stats.queued_send <= *queued,
                    "side {s}: {} bytes queued after a graceful close that had {queued}",
                    stats.queued_send
                );
            }
            assert!(
                stats.streams_open <= config.max_streams,
                "side {s}: {} streams, limit {}",
                stats.streams_open,
                config.max_streams
            );
            assert!(
                stats.stream_backlog <= config.stream_backlog,
                "side {s}: backlog {}, limit {}",
                stats.stream_backlog,
                config.stream_backlog
            );
            for id in &peer.order {
                let Some(st) = session.stream_stats(*id) else {
                    continue;
                };
                assert!(
                    st.peer_credit + st.buffered <= u64::from(st.window),
                    "side {s} stream {id}: {st:?}"
                );
                assert!(
                    st.queued_send < (config.stream_send_buffer + config.max_data_payload) as u64,
                    "side {s} stream {id}: {} bytes queued to send",
                    st.queued_send
                );
            }
        }
    }

    /// Until nothing moves: accept every stream, read every stream, move
    /// every message.
    fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS {
            let mut moved = 0;
            for s in 0..2 {
                while self.accept(s) {
                    moved += 1;
                }
                let ids = self.peers[s].order.clone();
                for id in ids {
                    while let Some(n) = self.read(s, id, 4096, false) {
                        moved += n;
                    }
                }
            }
            for s in 0..2 {
                moved += self.transmit(s, usize::MAX);
                moved += self.deliver(s, usize::MAX, moved % 2 == 0);
            }
            self.poll_events();
            if moved == 0 {
                return;
            }
        }
        panic!("the link did not settle in {SETTLE_ROUNDS} rounds");
    }

    /// After settling: every stream that was finished and neither reset nor
    /// stopped was read to its end, with every byte; on every stream still
    /// open both ways, all the credit came back to the writer.
    fn check_delivered(&self) {
        if self
            .peers
            .iter()
            .any(|p| p.session.close_reason().is_some())
        {
            return;
        }
        for w in 0..2 {
            let r = 1 - w;
            for (id, k) in &self.peers[w].known {
                let Some(rk) = self.peers[r].known.get(id) else {
                    // Refused, or never reached the peer.
                    continue;
                };
                if !k.finish_requested
                    && !k.reset_called
                    && !k.stopped_by_peer
                    && !k.send_released
                    && !rk.stop_called
                    && !rk.recv_released
                    && !self.tainted.contains(id)
                {
                    // Still open, and the reader took everything: all the
                    // credit came back.
                    let st = self.peers[w].session.stream_stats(*id);
                    let st = st.expect("a stream still open is tracked");
                    // The receiver's window as granted so far (it may have
                    // grown from its initial one).
                    let window = self.peers[r]
                        .session
                        .stream_stats(*id)
                        .map_or(self.configs[r].window, |rs| rs.window);
                    assert!(
                        st.in_flight == 0 && st.send_credit == u64::from(window),
                        "stream {id}: side {r} read everything side {w} wrote, yet side {w} \
                         has {} bytes of credit of {} and {} in flight",
                        st.send_credit,
                        window,
                        st.in_flight
                    );
                }
                if !k.finish_requested
                    || k.reset_called
                    || k.stopped_by_peer
                    || rk.stop_called
                    || rk.recv_released
                    || self.tainted.contains(id)
                {
                    continue;
                }
                assert!(
                    k.finished_event,
                    "stream {id}: side {w} finished it, but its CLOSE never went out \
                     (written {}, read {})",
                    k.written, rk.received
                );
                assert!(
                    rk.eof_read,
                    "stream {id}: side {w} finished it, side {r} never read its end \
                     (written {}, read {})",
                    k.written, rk.received
                );
            }
        }
    }

    /// After settling: a stream its writer had finished before closing
    /// gracefully was read to its end with every byte, where the reader
    /// is still open and still wanted it (toward a JS peer, only its bytes
    /// when some were unacknowledged at the close, see
    /// [`Sim::close_after_flush`]).
    fn check_flushed(&self) {
        for w in 0..2 {
            let r = 1 - w;
            let Some((finished, _)) = &self.flushed[w] else {
                continue;
            };
            if self.peers[r].session.close_reason().is_some() {
                continue;
            }
            for (id, end) in finished {
                let Some(rk) = self.peers[r].known.get(id) else {
                    // Refused, or never reached the peer.
                    continue;
                };
                if rk.stop_called || rk.recv_released || self.tainted.contains(id) {
                    continue;
                }
                let written = self.peers[w].known[id].written;
                assert!(
                    rk.eof_read == *end && rk.received == written,
                    "stream {id}: side {w} finished it and closed gracefully, side {r} read \
                     {} of {written} bytes (end read: {}, due: {end})",
                    rk.received,
                    rk.eof_read
                );
            }
        }
    }

    fn release_everything(&mut self) {
        for s in 0..2 {
            for id in self.peers[s].order.clone() {
                if !self.peers[s].known[&id].send_released {
                    self.release_send(s, id);
                }
                if !self.peers[s].known[&id].recv_released {
                    self.release_recv(s, id);
                }
            }
        }
        self.poll_events();
    }

    /// Once both ends dropped every handle and the link settled, no stream
    /// is left (unless an injected frame left one waiting for a peer that
    /// does not know it, or a connection closed).
    fn check_nothing_left(&self) {
        // A closed session is dropped whole by its driver, and so is the
        // other end's once the socket closes.
        if self.injected
            || self
                .peers
                .iter()
                .any(|p| p.session.close_reason().is_some())
        {
            return;
        }
        for (s, peer) in self.peers.iter().enumerate() {
            assert_eq!(
                peer.session.stream_count(),
                0,
                "side {s} keeps streams after every handle was released: {:?}",
                peer.order
                    .iter()
                    .filter_map(|id| peer.session.stream_stats(*id).map(|st| (id.0, st)))
                    .collect::<Vec<_>>()
            );
        }
    }
}
