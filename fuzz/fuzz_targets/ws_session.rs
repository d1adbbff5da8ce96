//! The mux session fed arbitrary messages (split on a length prefix byte):
//! it must never panic, whatever a peer sends.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strand_transport_ws::mux::{Role, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let mut config = SessionConfig::new(Role::Server);
    config.window = 64;
    config.max_streams = 4;
    config.accept_backlog = 2;
    let mut session = Session::new(config);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (msg, tail) = tail.split_at(len);
        session.handle_message(Bytes::copy_from_slice(msg));
        while session.poll_transmit().is_some() {}
        while session.poll_event().is_some() {}
        if let Ok(id) = session.accept() {
            let mut buf = [0u8; 16];
            let _ = session.read(id, &mut buf);
            let _ = session.write(id, b"reply");
            if len % 3 == 0 {
                session.release_recv(id);
                session.release_send(id);
            }
        }
        rest = tail;
    }
});
