//! Session tests without sockets: two sessions over an in-memory link, and a
//! scripted peer that sends and expects exact frames.

use bytes::Bytes;
use strand_rpc_core::transport::{codes, CloseCode, CloseInitiator};

use super::*;

fn drain(s: &mut Session) -> Vec<Frame> {
    std::iter::from_fn(|| s.poll_transmit())
        .map(|msg| Frame::decode(msg).expect("the session sends valid frames"))
        .collect()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Moves every pending frame from `a` to `b` as encoded messages; returns how many.
fn deliver(a: &mut Session, b: &mut Session) -> usize {
    let frames = drain(a);
    let n = frames.len();
    for f in frames {
        b.handle_message(f.to_bytes());
    }
    n
}

/// Runs the link until both sides are quiet.
fn settle(c: &mut Session, s: &mut Session) {
    for _ in 0..1000 {
        if deliver(c, s) + deliver(s, c) == 0 {
            return;
        }
    }
    panic!("link did not settle");
}

fn config(role: Role, window: u32) -> SessionConfig {
    SessionConfig {
        window,
        ..SessionConfig::new(role)
    }
}

fn pair(window: u32) -> (Session, Session) {
    (
        Session::new(config(Role::Client, window)),
        Session::new(config(Role::Server, window)),
    )
}

fn read_all(s: &mut Session, id: StreamId) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        match s.read(id, &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(OpError::Blocked | OpError::ConnectionClosed(_)) => return out,
            Err(e) => panic!("read: {e:?}"),
        }
    }
}

fn sid(n: u64) -> StreamId {
    StreamId(n)
}

/// The WebSocket close code the session's close would carry.
fn closed_code(s: &mut Session) -> Option<u64> {
    events(s).into_iter().find_map(|e| match e {
        Event::Closed(r) => Some(u64::from(super::close_code::to_wire(r.code))),
        _ => None,
    })
}

#[test]
fn open_write_finish_echo_over_link() {
    let (mut c, mut s) = pair(1 << 20);
    let id = c.open().unwrap();
    assert_eq!(id, sid(0));
    assert_eq!(
        c.write(id, b"hello"),
        Err(OpError::Blocked),
        "no credit before the peer's ACK"
    );
    settle(&mut c, &mut s);
    assert!(events(&mut s).contains(&Event::Opened(id)));
    assert_eq!(s.accept(), Ok(id));
    assert_eq!(c.write(id, b"hello"), Ok(5));
    c.finish(id).unwrap();
    settle(&mut c, &mut s);
    assert_eq!(
        c.poll_finished(id),
        Err(OpError::Blocked),
        "5 bytes not yet ACKed"
    );
    assert_eq!(read_all(&mut s, id), b"hello");
    settle(&mut c, &mut s);
    // The CLOSE waited for the ACK of every byte, then went out.
    assert_eq!(c.poll_finished(id), Ok(()));
    assert_eq!(s.read(id, &mut [0; 4]), Ok(0), "end of stream");
    assert_eq!(s.write(id, b"olleh"), Ok(5));
    s.finish(id).unwrap();
    settle(&mut c, &mut s);
    assert_eq!(read_all(&mut c, id), b"olleh");
    settle(&mut c, &mut s);
    assert_eq!(c.read(id, &mut [0; 4]), Ok(0));
    for side in [&mut c, &mut s] {
        side.release_send(id);
        side.release_recv(id);
        assert_eq!(side.stream_count(), 0);
        assert!(drain(side).is_empty(), "nothing after both halves are done");
    }
    settle(&mut c, &mut s);
}

#[test]
fn scripted_open_sequence_matches_js() {
    // Server side, scripted JS client: ACK opens, we reply ACK(window) at once.
    let mut s = Session::new(config(Role::Server, 1 << 20));
    s.handle_message(Bytes::from_static(&[
        0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00,
    ]));
    assert_eq!(
        drain(&mut s),
        [Frame::Ack {
            id: sid(0),
            credit: 1 << 20
        }]
    );
    s.handle_message(Bytes::from_static(b"\x00\x00\x00hello-0"));
    assert_eq!(s.accept(), Ok(sid(0)));
    assert_eq!(read_all(&mut s, sid(0)), b"hello-0");
    assert_eq!(
        drain(&mut s),
        [Frame::Ack {
            id: sid(0),
            credit: 7
        }],
        "credit back once drained"
    );
}

#[test]
fn unseen_id_without_ack_is_dropped_and_burned() {
    let mut s = Session::new(config(Role::Server, 100));
    s.handle_frame(Frame::Data {
        id: sid(2),
        payload: Bytes::from_static(b"x"),
    });
    s.handle_frame(Frame::Ack {
        id: sid(2),
        credit: 100,
    });
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.accept(), Err(OpError::Blocked));
    // A lower unseen id is dead too (ids are never reused, opened in order).
    s.handle_frame(Frame::Ack {
        id: sid(0),
        credit: 100,
    });
    assert!(drain(&mut s).is_empty());
    // Ids of our own parity that we never opened are ignored.
    s.handle_frame(Frame::Ack {
        id: sid(1),
        credit: 100,
    });
    assert!(drain(&mut s).is_empty());
    s.handle_frame(Frame::Ack {
        id: sid(4),
        credit: 100,
    });
    assert_eq!(s.accept(), Ok(sid(4)));
}

#[test]
fn credit_stall_and_resume() {
    let (mut c, mut s) = pair(16);
    let id = c.open().unwrap();
    settle(&mut c, &mut s);
    s.accept().unwrap();
    let data = [7u8; 40];
    assert_eq!(c.write(id, &data), Ok(16), "split at the credit");
    assert_eq!(
        c.write(id, &data[16..]),
        Err(OpError::Blocked),
        "writer waits at zero"
    );
    settle(&mut c, &mut s);
    assert_eq!(s.stream_stats(id).unwrap().buffered, 16);
    assert_eq!(s.stream_stats(id).unwrap().peer_credit, 0);
    // Consuming less than half the window with data left returns nothing yet.
    assert_eq!(s.read(id, &mut [0; 7]), Ok(7));
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.read(id, &mut [0; 1]), Ok(1));
    assert_eq!(
        drain(&mut s),
        [Frame::Ack { id, credit: 8 }],
        "released at half window"
    );
    c.handle_frame(Frame::Ack { id, credit: 8 });
    assert!(events(&mut c).contains(&Event::Writable(id)));
    assert_eq!(c.write(id, &data[16..]), Ok(8));
    assert_eq!(c.stream_stats(id).unwrap().in_flight, 16);
}

#[test]
fn writes_wait_while_the_send_queue_is_full() {
    let mut cfg = config(Role::Client, 1 << 20);
    cfg.stream_send_buffer = 10;
    cfg.max_data_payload = 6;
    let mut c = Session::new(cfg);
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 1000 });
    assert_eq!(c.write(id, &[1; 20]), Ok(6), "one DATA message at most");
    assert_eq!(c.write(id, &[1; 20]), Ok(6));
    assert_eq!(c.write(id, &[1; 20]), Err(OpError::Blocked));
    assert_eq!(c.stream_stats(id).unwrap().queued_send, 12);
    let frames = drain(&mut c);
    assert_eq!(frames.len(), 3, "ack + two data");
    assert!(events(&mut c).contains(&Event::Writable(id)));
    assert_eq!(c.write(id, &[1; 20]), Ok(6));
}

#[test]
fn data_is_round_robin_across_streams() {
    let mut c = Session::new(config(Role::Client, 1 << 20));
    let a = c.open().unwrap();
    let b = c.open().unwrap();
    for id in [a, b] {
        c.handle_frame(Frame::Ack { id, credit: 1000 });
    }
    drain(&mut c);
    c.write(a, b"a1").unwrap();
    c.write(a, b"a2").unwrap();
    c.write(b, b"b1").unwrap();
    let order: Vec<StreamId> = drain(&mut c).iter().map(Frame::stream_id).collect();
    assert_eq!(order, [a, b, a]);
}

#[test]
fn finish_toward_js_waits_for_every_ack() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut c);
    c.write(id, b"abcde").unwrap();
    c.finish(id).unwrap();
    assert_eq!(
        drain(&mut c),
        [Frame::Data {
            id,
            payload: Bytes::from_static(b"abcde")
        }]
    );
    assert_eq!(c.poll_finished(id), Err(OpError::Blocked));
    c.handle_frame(Frame::Ack { id, credit: 3 });
    assert!(drain(&mut c).is_empty(), "2 bytes still unacknowledged");
    c.handle_frame(Frame::Ack { id, credit: 2 });
    assert_eq!(
        drain(&mut c),
        [Frame::Close {
            id,
            shutdown: Shutdown::Read
        }]
    );
    assert_eq!(c.poll_finished(id), Ok(()));
    // The peer's reply CLOSE(Write) is expected and silent.
    c.handle_frame(Frame::Close {
        id,
        shutdown: Shutdown::Write,
    });
    assert!(drain(&mut c).is_empty());
}

#[test]
fn finish_toward_strand_peer_does_not_wait_and_opens_with_credit() {
    let mut cfg = config(Role::Client, 100);
    cfg.peer_window = Some(50);
    let mut c = Session::new(cfg);
    let id = c.open().unwrap();
    assert_eq!(
        c.write(id, b"abcde"),
        Ok(5),
        "advertised window is the initial credit"
    );
    c.finish(id).unwrap();
    assert_eq!(
        drain(&mut c),
        [
            Frame::Ack { id, credit: 100 },
            Frame::Data {
                id,
                payload: Bytes::from_static(b"abcde")
            },
            Frame::Close {
                id,
                shutdown: Shutdown::Read
            },
        ],
        "ACK, DATA and CLOSE in one flush"
    );
    // The acceptor's opening ACK grants the advertised window: not counted twice.
    c.handle_frame(Frame::Ack { id, credit: 50 });
    assert_eq!(c.stream_stats(id).unwrap().send_credit, 45);
}

#[test]
fn peer_close_read_delivers_data_then_eof_and_no_more_acks() {
    let mut s = Session::new(config(Role::Server, 100));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut s);
    s.accept().unwrap();
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"one"),
    });
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"two"),
    });
    s.handle_frame(Frame::Close {
        id,
        shutdown: Shutdown::Read,
    });
    assert_eq!(
        drain(&mut s),
        [Frame::Close {
            id,
            shutdown: Shutdown::Write
        }]
    );
    assert_eq!(read_all(&mut s, id), b"onetwo");
    assert!(
        drain(&mut s).is_empty(),
        "no ACK after the peer finished (rule 5)"
    );
    assert_eq!(s.read(id, &mut [0; 4]), Ok(0));
}

#[test]
fn peer_error_read_resets_at_once_and_is_answered_once() {
    let mut s = Session::new(config(Role::Server, 100));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut s);
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"lost"),
    });
    s.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Read,
        code: 9,
    });
    assert!(events(&mut s).contains(&Event::Reset { id, code: 9 }));
    assert_eq!(
        s.read(id, &mut [0; 4]),
        Err(OpError::Reset(9)),
        "buffered data is discarded"
    );
    s.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Read,
        code: 9,
    });
    assert_eq!(
        drain(&mut s),
        [Frame::Error {
            id,
            shutdown: Shutdown::Write,
            code: 9
        }],
        "replied once"
    );
}

#[test]
fn peer_error_write_stops_writes() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut c);
    c.write(id, b"queued").unwrap();
    c.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Write,
        code: 4002,
    });
    assert!(events(&mut c).contains(&Event::Stopped { id, code: 4002 }));
    assert_eq!(c.stopped_code(id), Some(4002));
    assert_eq!(c.write(id, b"x"), Err(OpError::Stopped(4002)));
    assert_eq!(
        drain(&mut c),
        [Frame::Error {
            id,
            shutdown: Shutdown::Read,
            code: 4002
        }],
        "queued data discarded, reply sent"
    );
}

#[test]
fn benign_stop_after_finish() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    c.write(id, b"request").unwrap();
    c.finish(id).unwrap();
    drain(&mut c);
    // A JS RPC server cancels its readable after reading a unary request,
    // without ACKing: our finish is still a success.
    c.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Write,
        code: 0,
    });
    assert_eq!(c.poll_finished(id), Ok(()));
    assert_eq!(c.stopped_code(id), None);
    // A non-zero code is a real stop.
    let id2 = c.open().unwrap();
    c.handle_frame(Frame::Ack {
        id: id2,
        credit: 100,
    });
    c.write(id2, b"request").unwrap();
    c.finish(id2).unwrap();
    c.handle_frame(Frame::Error {
        id: id2,
        shutdown: Shutdown::Write,
        code: 5,
    });
    assert_eq!(c.poll_finished(id2), Err(OpError::Stopped(5)));
}

#[test]
fn unsolicited_close_write_is_a_stop_with_code_zero() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut c);
    c.handle_frame(Frame::Close {
        id,
        shutdown: Shutdown::Write,
    });
    assert_eq!(c.write(id, b"x"), Err(OpError::Stopped(0)));
    assert_eq!(
        drain(&mut c),
        [Frame::Error {
            id,
            shutdown: Shutdown::Read,
            code: 0
        }]
    );
}

#[test]
fn local_reset_and_stop() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut c);
    c.reset(id, 3);
    c.reset(id, 4);
    c.stop(id, 5);
    c.stop(id, 6);
    assert_eq!(
        drain(&mut c),
        [
            Frame::Error {
                id,
                shutdown: Shutdown::Read,
                code: 3
            },
            Frame::Error {
                id,
                shutdown: Shutdown::Write,
                code: 5
            },
        ],
        "idempotent"
    );
    assert_eq!(c.write(id, b"x"), Err(OpError::ClosedLocally));
    assert_eq!(c.read(id, &mut [0; 1]), Err(OpError::ClosedLocally));
    // The peer's replies arrive: nothing goes back (rule 3: once).
    c.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Write,
        code: 3,
    });
    c.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Read,
        code: 5,
    });
    assert!(drain(&mut c).is_empty());
}

#[test]
fn dropping_handles_cancels_unfinished_halves() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut c);
    c.release_send(id);
    c.release_recv(id);
    assert_eq!(
        drain(&mut c),
        [
            Frame::Error {
                id,
                shutdown: Shutdown::Read,
                code: codes::CANCELLED
            },
            Frame::Error {
                id,
                shutdown: Shutdown::Write,
                code: codes::CANCELLED
            },
        ]
    );
    assert_eq!(c.stream_count(), 0);
    assert!(events(&mut c).contains(&Event::Released(id)));
    // A late ACK for the gone stream is dropped: no phantom, no reply.
    c.handle_frame(Frame::Ack { id, credit: 10 });
    c.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Write,
        code: 0,
    });
    assert!(drain(&mut c).is_empty());
}

#[test]
fn drop_after_finish_lets_the_finish_complete() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    drain(&mut c);
    c.write(id, b"abc").unwrap();
    c.finish(id).unwrap();
    c.release_send(id);
    assert_eq!(
        drain(&mut c),
        [Frame::Data {
            id,
            payload: Bytes::from_static(b"abc")
        }]
    );
    c.handle_frame(Frame::Ack { id, credit: 3 });
    assert_eq!(
        drain(&mut c),
        [Frame::Close {
            id,
            shutdown: Shutdown::Read
        }]
    );
}

#[test]
fn protocol_errors_close_with_1002() {
    let cases: [&[u8]; 7] = [
        &[0x00, 0x00, 0x01, 0x00, 0x10], // truncated ACK
        &[0x00, 0x00, 0x03],             // truncated CLOSE
        &[0x00, 0x00, 0x02, 0x00],       // truncated ERROR
        &[0x00, 0x00, 0x07],             // bad type
        &[0x00, 0x00, 0x03, 0x02],       // bad shutdown (CLOSE)
        &[0x00, 0x00, 0x02, 0x05, 0x00], // bad shutdown (ERROR)
        &[0x40],                         // truncated stream id
    ];
    for msg in cases {
        let mut s = Session::new(config(Role::Server, 100));
        s.handle_message(Bytes::copy_from_slice(msg));
        assert_eq!(closed_code(&mut s), Some(1002), "{msg:02x?}");
        assert!(s.closed_locally());
        assert_eq!(s.poll_transmit(), None);
    }
    let mut s = Session::new(config(Role::Server, 100));
    s.handle_text();
    assert_eq!(closed_code(&mut s), Some(1002), "text message");
}

#[test]
fn data_over_the_window_is_a_protocol_error() {
    let mut s = Session::new(config(Role::Server, 8));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"12345"),
    });
    assert_eq!(closed_code(&mut s), None);
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"6789"),
    });
    assert_eq!(closed_code(&mut s), Some(1002));
}

#[test]
fn tiny_data_to_a_stalled_reader_is_coalesced() {
    let window = 64 * 1024;
    let mut s = Session::new(config(Role::Server, window));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    let accepted = s.accept().unwrap();
    assert_eq!(accepted, id);
    // A window's worth of one-byte DATA messages, then one large payload,
    // then more tiny ones: nothing is read meanwhile.
    for i in 0..30_000u32 {
        s.handle_frame(Frame::Data {
            id,
            payload: Bytes::from(vec![(i % 251) as u8]),
        });
    }
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from(vec![7u8; 4096]),
    });
    for i in 0..1000u32 {
        s.handle_frame(Frame::Data {
            id,
            payload: Bytes::from(vec![(i % 13) as u8]),
        });
    }
    assert_eq!(closed_code(&mut s), None);
    // Four chunks (the first tiny one, queued as received since nothing
    // was unread; the tiny ones behind it; the large one; the tiny ones
    // after it), not 31,001 queued payloads.
    assert_eq!(s.queued_chunks(id), 4);
    // The bytes come out in order.
    let mut out = vec![0u8; 35_096];
    let mut n = 0;
    while n < out.len() {
        let got = s.read(id, &mut out[n..]).unwrap();
        assert!(got > 0);
        n += got;
    }
    assert!(out[..30_000]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i as u32 % 251) as u8));
    assert!(out[30_000..34_096].iter().all(|&b| b == 7));
    assert!(out[34_096..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i as u32 % 13) as u8));
}

#[test]
fn refusal_past_the_stream_limit_and_the_backlog() {
    let mut cfg = config(Role::Server, 100);
    cfg.max_streams = 3;
    cfg.accept_backlog = 2;
    let mut s = Session::new(cfg);
    for n in [0, 2, 4] {
        s.handle_frame(Frame::Ack {
            id: sid(n),
            credit: 10,
        });
    }
    let refused = |id| {
        [
            Frame::Error {
                id,
                shutdown: Shutdown::Read,
                code: codes::REFUSED,
            },
            Frame::Error {
                id,
                shutdown: Shutdown::Write,
                code: codes::REFUSED,
            },
        ]
    };
    let frames = drain(&mut s);
    assert_eq!(frames[2..], refused(sid(4)), "backlog of 2 is full");
    assert_eq!(s.stats().accept_backlog, 2);
    assert_eq!(s.stats().refused, 1);
    s.accept().unwrap();
    s.accept().unwrap();
    s.handle_frame(Frame::Ack {
        id: sid(6),
        credit: 10,
    });
    s.handle_frame(Frame::Ack {
        id: sid(8),
        credit: 10,
    });
    let frames = drain(&mut s);
    assert_eq!(
        frames[0],
        Frame::Ack {
            id: sid(6),
            credit: 100
        }
    );
    assert_eq!(frames[1..], refused(sid(8)), "3 streams open");
    // Our own opens wait at the limit instead.
    assert_eq!(s.open(), Err(OpError::Blocked));
}

#[test]
fn connection_close_fails_every_stream_but_keeps_buffered_data() {
    let (mut c, mut s) = pair(100);
    let id = c.open().unwrap();
    settle(&mut c, &mut s);
    s.accept().unwrap();
    c.write(id, b"tail").unwrap();
    settle(&mut c, &mut s);
    s.handle_peer_close(1001, "going away");
    let Some(Event::Closed(reason)) = events(&mut s)
        .into_iter()
        .find(|e| matches!(e, Event::Closed(_)))
    else {
        panic!("no close event");
    };
    assert_eq!(
        (reason.initiator, reason.code, reason.reason.as_str()),
        (CloseInitiator::Peer, CloseCode::GoingAway, "going away")
    );
    assert_eq!(read_all(&mut s, id), b"tail");
    assert!(
        matches!(s.read(id, &mut [0; 4]), Err(OpError::ConnectionClosed(r)) if r.code == CloseCode::GoingAway)
    );
    assert!(matches!(
        s.write(id, b"x"),
        Err(OpError::ConnectionClosed(_))
    ));
    assert!(matches!(s.accept(), Err(OpError::ConnectionClosed(_))));
    assert!(matches!(s.open(), Err(OpError::ConnectionClosed(_))));
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn shutdown_refuses_new_streams_and_lets_open_ones_finish() {
    let (mut c, mut s) = pair(100);
    let id = c.open().unwrap();
    settle(&mut c, &mut s);
    s.accept().unwrap();
    s.start_shutdown();
    assert!(matches!(s.open(), Err(OpError::Refused(_))));
    let id2 = c.open().unwrap();
    settle(&mut c, &mut s);
    assert_eq!(c.write(id2, b"x"), Err(OpError::Stopped(codes::REFUSED)));
    assert_eq!(s.active_streams(), 1);
    c.write(id, b"last").unwrap();
    c.finish(id).unwrap();
    settle(&mut c, &mut s);
    assert_eq!(read_all(&mut s, id), b"last");
    s.finish(id).unwrap();
    settle(&mut c, &mut s);
    assert_eq!(s.read(id, &mut [0; 1]), Ok(0));
    assert_eq!(s.active_streams(), 0);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Write(usize),
        Read(usize),
        Deliver,
    }

    proptest! {
        /// Random writes, reads and deliveries over a small window: the
        /// receiver never buffers more than its window, no protocol error
        /// happens, and the bytes arrive in order.
        #[test]
        fn credit_is_never_exceeded(window in 1u32..64,
                                    ops in proptest::collection::vec(prop_oneof![
                                        (1usize..100).prop_map(Op::Write),
                                        (1usize..100).prop_map(Op::Read),
                                        Just(Op::Deliver)], 1..200)) {
            let (mut c, mut s) = pair(window);
            let id = c.open().unwrap();
            settle(&mut c, &mut s);
            s.accept().unwrap();
            let mut sent = Vec::new();
            let mut got = Vec::new();
            let mut counter = 0u8;
            for op in ops {
                match op {
                    Op::Write(n) => {
                        let data: Vec<u8> = (0..n).map(|_| { counter = counter.wrapping_add(1); counter }).collect();
                        if let Ok(k) = c.write(id, &data) {
                            sent.extend_from_slice(&data[..k]);
                        }
                    }
                    Op::Read(n) => {
                        let mut buf = vec![0; n];
                        if let Ok(k) = s.read(id, &mut buf) {
                            got.extend_from_slice(&buf[..k]);
                        }
                    }
                    Op::Deliver => { deliver(&mut c, &mut s); deliver(&mut s, &mut c); }
                }
                prop_assert!(s.stream_stats(id).unwrap().buffered <= u64::from(window));
                prop_assert!(s.close_reason().is_none());
            }
            prop_assert!(sent.starts_with(&got));
        }
    }
}

#[test]
fn write_boundary_waits_for_the_ack_toward_js_only() {
    let mut c = Session::new(config(Role::Client, 100));
    let id = c.open().unwrap();
    assert_eq!(c.write_boundary(id), Ok(()), "nothing written");
    c.handle_frame(Frame::Ack { id, credit: 100 });
    c.write(id, b"header").unwrap();
    assert_eq!(c.write_boundary(id), Err(OpError::Blocked));
    drain(&mut c);
    assert_eq!(
        c.write_boundary(id),
        Err(OpError::Blocked),
        "sent, not yet pulled"
    );
    c.handle_frame(Frame::Ack { id, credit: 6 });
    assert_eq!(c.write_boundary(id), Ok(()));

    let mut cfg = config(Role::Client, 100);
    cfg.peer_window = Some(100);
    let mut c = Session::new(cfg);
    let id = c.open().unwrap();
    c.write(id, b"header").unwrap();
    assert_eq!(c.write_boundary(id), Ok(()), "strand peers lose nothing");
}

fn strand_pair(window: u32) -> (Session, Session) {
    let mut c = config(Role::Client, window);
    c.peer_window = Some(window);
    c.window_advertised = true;
    let mut s = config(Role::Server, window);
    s.peer_window = Some(window);
    s.window_advertised = true;
    (Session::new(c), Session::new(s))
}

#[test]
fn toward_a_strand_peer_the_acceptor_sends_no_opening_ack_and_no_close_reply() {
    let (mut c, mut s) = strand_pair(1 << 20);
    let id = c.open().unwrap();
    assert_eq!(c.write(id, b"req"), Ok(3));
    c.finish(id).unwrap();
    assert_eq!(deliver(&mut c, &mut s), 3, "ACK + DATA + CLOSE(Read)");
    // The opener counted our window already and its half is done: neither
    // the opening ACK nor the CLOSE(Write) reply would tell it anything.
    assert!(!s.needs_driver());
    assert!(drain(&mut s).is_empty());
    assert_eq!(s.accept(), Ok(id));
    assert_eq!(read_all(&mut s, id), b"req");
    assert_eq!(s.read(id, &mut [0; 4]), Ok(0));
    assert!(!s.needs_driver(), "reading queued nothing");
    assert_eq!(s.write(id, b"resp"), Ok(4));
    assert!(s.needs_driver());
    s.finish(id).unwrap();
    assert_eq!(deliver(&mut s, &mut c), 2, "DATA + CLOSE(Read)");
    assert_eq!(read_all(&mut c, id), b"resp");
    assert_eq!(c.read(id, &mut [0; 4]), Ok(0));
    assert_eq!(c.poll_finished(id), Ok(()));
    assert!(drain(&mut c).is_empty(), "no CLOSE(Write) reply either");
    // Both ends forget the stream once the handles are gone.
    for end in [&mut c, &mut s] {
        end.release_send(id);
        end.release_recv(id);
        assert_eq!(end.stream_count(), 0);
    }
    assert!(drain(&mut c).is_empty() && drain(&mut s).is_empty());
}

#[test]
fn an_acceptor_that_did_not_advertise_its_window_still_sends_the_opening_ack() {
    // The peer is strand but never saw our window: it waits for the ACK.
    let mut cfg = config(Role::Server, 1 << 20);
    cfg.peer_window = Some(1 << 20);
    let mut s = Session::new(cfg);
    let id = sid(0);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 20,
    });
    assert_eq!(
        drain(&mut s),
        [Frame::Ack {
            id,
            credit: 1 << 20
        }]
    );
}

#[test]
fn a_strand_opener_still_accepts_an_opening_ack() {
    // An acceptor that sends the JS frames anyway (say, with the extension
    // turned off on its side only) changes nothing for the opener.
    let (mut c, _) = strand_pair(100);
    let id = c.open().unwrap();
    c.handle_frame(Frame::Ack { id, credit: 100 });
    assert_eq!(
        c.write(id, &[7; 150]),
        Ok(100),
        "the opening ACK adds no credit"
    );
    c.finish(id).unwrap();
    drain(&mut c);
    c.handle_frame(Frame::Close {
        id,
        shutdown: Shutdown::Write,
    });
    assert_eq!(c.stopped_code(id), None, "the reply to a finish is no stop");
}

#[test]
fn toward_a_js_peer_control_frames_go_at_once() {
    let mut c = Session::new(config(Role::Client, 1 << 20));
    let mut s = Session::new(config(Role::Server, 1 << 20));
    let id = c.open().unwrap();
    deliver(&mut c, &mut s);
    assert!(s.needs_driver());
    assert_eq!(
        drain(&mut s),
        [Frame::Ack {
            id,
            credit: 1 << 20
        }]
    );
    c.finish(id).unwrap();
    deliver(&mut c, &mut s);
    assert_eq!(
        drain(&mut s),
        [Frame::Close {
            id,
            shutdown: Shutdown::Write
        }]
    );
}

#[test]
fn a_strand_peer_opening_and_finishing_streams_queues_no_control_frames() {
    let mut cfg = config(Role::Server, 1 << 20);
    cfg.peer_window = Some(1 << 20);
    cfg.window_advertised = true;
    cfg.max_queued_control = 8;
    let mut s = Session::new(cfg);
    for n in 0..16 {
        let id = sid(2 * n);
        s.handle_frame(Frame::Ack {
            id,
            credit: 1 << 20,
        });
        s.handle_frame(Frame::Close {
            id,
            shutdown: Shutdown::Read,
        });
    }
    assert!(!s.needs_driver());
    assert!(s.wants_read(), "nothing queued that could pause reading");
    assert!(drain(&mut s).is_empty());
}

#[test]
fn payloads_queued_behind_unread_data_stop_sharing_the_socket_buffer() {
    // Room for three payloads.
    let mut s = Session::new(config(Role::Server, 3 * 4096));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    assert_eq!(s.accept(), Ok(id));
    let msg = |fill: u8| {
        apart(
            Frame::Data {
                id,
                payload: Bytes::from(vec![fill; 4096]),
            }
            .to_bytes(),
        )
    };
    // Nothing unread: the payload stays a slice of the message (zero copy).
    let first = msg(1);
    let first_payload = first.as_ptr().wrapping_add(3);
    s.handle_message(first);
    assert_eq!(s.queued_ptrs(id), [first_payload]);
    // Behind: the next one is copied, and so is the first one, which the
    // reader had not started on: no message's memory stays pinned.
    let second = msg(2);
    let second_payload = second.as_ptr().wrapping_add(3);
    s.handle_message(second);
    let ptrs = s.queued_ptrs(id);
    assert_eq!(ptrs.len(), 2);
    assert_ne!(ptrs[0], first_payload);
    assert_ne!(ptrs[1], second_payload);
    // The one that fills the window stays in its message (whose buffer the
    // socket is read into) until a message arrives in another buffer; any
    // message counts, not only DATA for this stream.
    let third = msg(3);
    let third_payload = third.as_ptr().wrapping_add(3);
    s.handle_message(third);
    assert_eq!(s.queued_ptrs(id)[2], third_payload);
    s.handle_message(apart(Frame::Ack { id, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(id)[2], third_payload);
    let mut out = vec![0u8; 3 * 4096];
    let mut n = 0;
    while n < out.len() {
        n += s.read(id, &mut out[n..]).unwrap();
    }
    for (i, chunk) in out.chunks(4096).enumerate() {
        assert!(chunk.iter().all(|&b| b == i as u8 + 1), "chunk {i}");
    }
    // Read to the end: the next payload is not behind anything.
    let fourth = msg(4);
    let fourth_payload = fourth.as_ptr().wrapping_add(3);
    s.handle_message(fourth);
    assert_eq!(s.queued_ptrs(id), [fourth_payload]);
}

/// A copy of `msg` in an allocation of its own with 64 bytes on either
/// side: a message from another read buffer, never taken for the next one
/// cut from the buffer of the message before.
fn apart(msg: Bytes) -> Bytes {
    let mut buf = vec![0u8; 64];
    buf.extend_from_slice(&msg);
    buf.extend_from_slice(&[0u8; 64]);
    Bytes::from(buf).slice(64..64 + msg.len())
}

/// `msgs` cut from one read buffer, a 2-byte frame header before each, as
/// the WebSocket layer hands them over; and where each one's DATA payload
/// starts.
fn one_buffer(msgs: &[Bytes]) -> (Vec<Bytes>, Vec<*const u8>) {
    let mut buf = Vec::new();
    let mut at = Vec::new();
    for m in msgs {
        buf.extend_from_slice(&[0x82, 0x7e]);
        at.push(buf.len()..buf.len() + m.len());
        buf.extend_from_slice(m);
    }
    let buf = Bytes::from(buf);
    let cut: Vec<Bytes> = at.iter().map(|r| buf.slice(r.clone())).collect();
    let payloads = cut.iter().map(|m| m.as_ptr().wrapping_add(3)).collect();
    (cut, payloads)
}

#[test]
fn a_pinned_payload_is_copied_only_once_messages_come_from_another_buffer() {
    let mut s = Session::new(config(Role::Server, 2 * 4096));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    assert_eq!(s.accept(), Ok(id));
    let data = |fill: u8| {
        Frame::Data {
            id,
            payload: Bytes::from(vec![fill; 4096]),
        }
        .to_bytes()
    };
    let (msgs, payloads) = one_buffer(&[data(1), data(2), Frame::Ack { id, credit: 1 }.to_bytes()]);
    s.handle_message(msgs[0].clone());
    s.handle_message(msgs[1].clone());
    assert_eq!(s.queued_ptrs(id)[1], payloads[1], "pinned");
    // The next message follows in the same buffer: copying would free
    // nothing, so the payload stays where it is.
    s.handle_message(msgs[2].clone());
    assert_eq!(s.queued_ptrs(id)[1], payloads[1]);
    // One from another buffer: copied out.
    s.handle_message(apart(Frame::Ack { id, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(id)[1], payloads[1]);
    let mut out = vec![0u8; 2 * 4096];
    let mut n = 0;
    while n < out.len() {
        n += s.read(id, &mut out[n..]).unwrap();
    }
    assert!(out[..4096].iter().all(|&x| x == 1) && out[4096..].iter().all(|&x| x == 2));
}

#[test]
fn payloads_pinned_in_one_buffer_are_copied_together_when_it_moves_on() {
    let mut s = Session::new(config(Role::Server, 3 * 2048));
    let (a, b) = (sid(0), sid(4));
    for id in [a, b] {
        s.handle_frame(Frame::Ack { id, credit: 100 });
        assert_eq!(s.accept(), Ok(id));
    }
    let data = |id: StreamId, fill: u8| {
        Frame::Data {
            id,
            payload: Bytes::from(vec![fill; 2048]),
        }
        .to_bytes()
    };
    // Both streams fall behind, then four DATA messages come from one read
    // buffer: A, A (filling A's window), B, B (filling B's).
    s.handle_message(apart(data(a, 0)));
    s.handle_message(apart(data(b, 0)));
    let (msgs, payloads) = one_buffer(&[data(a, 1), data(a, 2), data(b, 1), data(b, 2)]);
    for msg in &msgs {
        s.handle_message(msg.clone());
    }
    // Each stream's last payload still shares the buffer (they hold the
    // one buffer the socket is read into); the ones before were copied.
    assert_ne!(s.queued_ptrs(a)[1], payloads[0]);
    assert_eq!(s.queued_ptrs(a)[2], payloads[1], "A's last pinned");
    assert_ne!(s.queued_ptrs(b)[1], payloads[2]);
    assert_eq!(s.queued_ptrs(b)[2], payloads[3], "B's last pinned");
    // A message from another buffer: both copied out.
    s.handle_message(apart(Frame::Ack { id: a, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(a)[2], payloads[1]);
    assert_ne!(s.queued_ptrs(b)[2], payloads[3]);
    for id in [a, b] {
        let mut out = vec![0u8; 3 * 2048];
        let mut n = 0;
        while n < out.len() {
            n += s.read(id, &mut out[n..]).unwrap();
        }
        for (i, chunk) in out.chunks(2048).enumerate() {
            assert!(chunk.iter().all(|&x| x == i as u8), "{id:?} chunk {i}");
        }
    }
}

#[test]
fn a_small_payload_with_nothing_unread_is_handed_over_as_received() {
    let mut s = Session::new(config(Role::Server, 64 * 1024));
    let (a, b) = (sid(0), sid(4));
    for id in [a, b] {
        s.handle_frame(Frame::Ack { id, credit: 100 });
        assert_eq!(s.accept(), Ok(id));
    }
    let data = |id: StreamId, text: &'static [u8]| {
        Frame::Data {
            id,
            payload: Bytes::from_static(text),
        }
        .to_bytes()
    };
    let (msgs, payloads) = one_buffer(&[data(a, b"request a"), data(b, b"request b")]);
    for msg in &msgs {
        s.handle_message(msg.clone());
    }
    // A reader that keeps up gets the payload itself: no copy.
    let chunk = s.read_chunk(a, 64).unwrap().unwrap();
    assert_eq!(&chunk[..], b"request a");
    assert_eq!(chunk.as_ptr(), payloads[0]);
    // One not read before the read buffer moves on is copied out of it, so
    // a few bytes never hold a whole buffer.
    assert_eq!(s.queued_ptrs(b), [payloads[1]]);
    s.handle_message(apart(Frame::Ack { id: a, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(b), [payloads[1]]);
    assert_eq!(
        s.read_chunk(b, 64),
        Ok(Some(Bytes::from_static(b"request b")))
    );
}

#[test]
fn small_payloads_of_a_stalled_stream_take_no_more_than_the_window() {
    const WINDOW: u32 = 10_000;
    let mut s = Session::new(config(Role::Server, WINDOW));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    assert_eq!(s.accept(), Ok(id));
    // 700-byte payloads (copied together) until the window is full: plain
    // doubling would have grown the buffer to 11,200 bytes.
    let mut sent = 0;
    while sent + 700 <= WINDOW as usize {
        s.handle_message(
            Frame::Data {
                id,
                payload: Bytes::from(vec![9u8; 700]),
            }
            .to_bytes(),
        );
        sent += 700;
    }
    assert_eq!(s.stream_stats(id).unwrap().buffered, sent as u64);
    // The first payload is queued as received (nothing was unread); the
    // rest are copied together.
    let cap = s.tail_capacity(id);
    assert!(
        cap >= sent - 700 && cap <= WINDOW as usize,
        "capacity {cap}"
    );
    let mut out = vec![0u8; sent];
    assert_eq!(s.read(id, &mut out), Ok(sent));
    assert!(out.iter().all(|&b| b == 9));
}

#[test]
fn read_chunk_hands_over_payloads_and_returns_credit() {
    let (mut c, mut s) = pair(16);
    let id = c.open().unwrap();
    settle(&mut c, &mut s);
    s.accept().unwrap();
    assert_eq!(c.write(id, b"0123456789"), Ok(10));
    settle(&mut c, &mut s);
    assert_eq!(s.read_chunk(id, 4), Ok(Some(Bytes::from_static(b"0123"))));
    assert!(drain(&mut s).is_empty(), "under half the window consumed");
    assert_eq!(
        s.read_chunk(id, 64),
        Ok(Some(Bytes::from_static(b"456789")))
    );
    assert_eq!(drain(&mut s), [Frame::Ack { id, credit: 10 }]);
    c.handle_frame(Frame::Ack { id, credit: 10 });
    assert_eq!(s.read_chunk(id, 64), Err(OpError::Blocked));
    c.finish(id).unwrap();
    settle(&mut c, &mut s);
    assert_eq!(s.read_chunk(id, 64), Ok(None), "end of stream");
    assert_eq!(s.read_chunk(id, 64), Ok(None), "and it stays ended");
}

#[test]
fn copies_for_a_reader_behind_reuse_the_buffers_it_is_done_with() {
    let mut s = Session::new(config(Role::Server, 16 * 4096));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    assert_eq!(s.accept(), Ok(id));
    let data = |fill: u8| {
        apart(
            Frame::Data {
                id,
                payload: Bytes::from(vec![fill; 4096]),
            }
            .to_bytes(),
        )
    };
    // The first arrives with nothing unread (queued as received); the two
    // behind it are copied.
    for fill in 1..=3 {
        s.handle_message(data(fill));
    }
    assert_eq!(s.copy_buffers(), 2);
    let second_copy = s.queued_ptrs(id)[1];
    // The reader takes the first two and drops them; the third is unread.
    for fill in 1..=2u8 {
        let chunk = s.read_chunk(id, 4096).unwrap().unwrap();
        assert!(chunk.iter().all(|&b| b == fill));
    }
    // The fourth, behind the third, goes into the second's buffer: no new
    // one.
    s.handle_message(data(4));
    assert_eq!(s.queued_ptrs(id)[1], second_copy);
    assert_eq!(s.copy_buffers(), 2);
    for fill in 3..=4u8 {
        let chunk = s.read_chunk(id, 4096).unwrap().unwrap();
        assert!(chunk.iter().all(|&b| b == fill));
    }
    // The driver's timer lets the unused ones go.
    s.release_idle_copies();
    assert_eq!(s.copy_buffers(), 0);
}
