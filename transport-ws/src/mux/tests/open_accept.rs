//! Opening and accepting streams: the opening ACK, ids that are never
//! reused, and refusal past the limits.

use bytes::Bytes;
use strand_rpc_core::transport::codes;

use super::*;

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
fn refusal_past_the_stream_limit_and_the_backlog() {
    let mut cfg = config(Role::Server, 100);
    cfg.max_streams = 3;
    cfg.stream_backlog = 2;
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
    assert_eq!(s.stats().stream_backlog, 2);
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
fn a_read_that_takes_the_last_bytes_can_take_the_end_with_them() {
    let (mut c, mut s) = pair(1 << 20);
    let id = c.open().unwrap();
    settle(&mut c, &mut s);
    assert_eq!(s.accept(), Ok(id));
    assert_eq!(c.write(id, b"one"), Ok(3));
    settle(&mut c, &mut s);
    // Bytes, no end yet: nothing to take with them.
    assert_eq!(s.read_chunk(id, 64).unwrap().unwrap(), &b"one"[..]);
    assert!(!s.read_end_if_next(id));
    assert_eq!(c.write(id, b"two"), Ok(3));
    c.finish(id).unwrap();
    settle(&mut c, &mut s);
    assert_eq!(s.read_chunk(id, 64).unwrap().unwrap(), &b"two"[..]);
    // Toward this (JS-like) peer the end follows the ACK of every byte.
    assert!(!s.read_end_if_next(id));
    settle(&mut c, &mut s);
    // Now only the end is left: taken, once.
    assert!(s.read_end_if_next(id));
    assert!(!s.read_end_if_next(id));
    assert_eq!(s.read(id, &mut [0; 4]), Ok(0));
    // The reader counts as gone: the stream goes once its send half is done.
    s.finish(id).unwrap();
    s.release_send(id);
    settle(&mut c, &mut s);
    assert_eq!(s.stream_count(), 0);
}
