//! The strand extensions toward a peer that advertised its window
//! (docs/protocol.md, "Window advertisement"): credit from the start, no opening ACK, no wait
//! before CLOSE, no CLOSE(Write) reply.

use bytes::Bytes;

use super::*;

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

/// Between two strand peers the acceptor sends no opening ACK, so the first
/// ACK the opener receives returns credit: it must not be taken for the
/// opening grant. With a window the reader empties in one go, mistaking it
/// stalled the writer for ever.
#[test]
fn between_strand_peers_the_first_ack_returns_credit() {
    let (mut c, mut s) = strand_pair(100);
    let id = c.open().unwrap();
    assert_eq!(c.write(id, &[7u8; 100]), Ok(100));
    assert_eq!(c.write(id, b"more"), Err(OpError::Blocked));
    settle(&mut c, &mut s);
    let sid = s.accept().unwrap();
    assert_eq!(read_all(&mut s, sid).len(), 100);
    settle(&mut c, &mut s);
    assert_eq!(c.stream_stats(id).unwrap().send_credit, 100);
    assert_eq!(c.write(id, b"more"), Ok(4));
}

#[test]
fn the_end_that_came_with_the_last_bytes_is_read_with_them() {
    let mut s = Session::new(config(Role::Server, 100));
    let id = StreamId(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"abc"),
    });
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"de"),
    });
    s.handle_frame(Frame::Close {
        id,
        shutdown: Shutdown::Read,
    });
    assert_eq!(s.accept(), Ok(id));
    let mut buf = [0u8; 3];
    assert_eq!(s.read(id, &mut buf), Ok(3));
    assert!(!s.read_end_if_next(id), "bytes before the end");
    assert_eq!(s.read_chunk(id, 64).unwrap().unwrap(), &b"de"[..]);
    assert!(s.read_end_if_next(id), "only the end left");
    assert_eq!(s.read(id, &mut buf), Ok(0));
}
