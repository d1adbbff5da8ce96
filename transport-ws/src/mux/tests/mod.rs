//! Session tests without sockets: two sessions over an in-memory link, and a
//! scripted peer that sends and expects exact frames.
//!
//! This module holds the helpers the tests share; the tests themselves are
//! split by the concern they exercise, as the session is.

use super::*;

mod close;
mod connection;
mod credit;
mod flood;
mod open_accept;
mod receive_budget;
mod recv_buffer;
mod strand_peer;
mod transmit;

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
