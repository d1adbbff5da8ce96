//! Transmit scheduling: the send queue, DATA round robin across streams,
//! and control frames toward a JS peer.

use super::*;

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
