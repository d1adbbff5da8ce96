//! Ending a stream's halves: finish, reset and stop from either side, and
//! what dropping the handles does.

use bytes::Bytes;
use strand_rpc_core::transport::codes;

use super::*;

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
    assert_eq!(s.accept(), Ok(id));
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
