//! The connection as a whole: protocol errors, a close from the peer, and
//! graceful shutdown.

use bytes::Bytes;
use strand_rpc_core::transport::{codes, CloseCode, CloseInitiator};

use super::*;

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
