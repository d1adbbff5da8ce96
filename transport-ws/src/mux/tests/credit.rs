//! Flow control: credit granted and returned, the window never exceeded,
//! and when written bytes count as delivered.

use bytes::Bytes;

use super::*;

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
