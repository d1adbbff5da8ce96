//! The connection's receive budget: streams start with a small window that
//! grows from a shared pool while their reader keeps up, so that what a peer
//! can make us buffer is bounded however many streams it fills, and no
//! stream waits for another to be read.

use bytes::Bytes;

use super::*;

/// 4 streams at most, starting with 100 bytes each, growing up to 1000
/// from a shared 900.
fn budget_config(role: Role) -> SessionConfig {
    SessionConfig {
        window: 1000,
        initial_window: 100,
        receive_growth: 900,
        max_streams: 4,
        stream_backlog: 4,
        ..SessionConfig::new(role)
    }
}

fn budget_pair(advertised: bool) -> (Session, Session) {
    let mut c = budget_config(Role::Client);
    let mut s = budget_config(Role::Server);
    if advertised {
        c.peer_window = Some(100);
        c.window_advertised = true;
        s.peer_window = Some(100);
        s.window_advertised = true;
    }
    (Session::new(c), Session::new(s))
}

/// Writes and reads `len` bytes through stream `id` (client to server),
/// moving frames until both sides are quiet; returns what the server read.
fn pump(c: &mut Session, s: &mut Session, id: StreamId, len: usize) -> usize {
    let data = vec![7u8; len];
    let mut written = 0;
    let mut read = 0;
    for _ in 0..10_000 {
        if written < len {
            if let Ok(n) = c.write(id, &data[written..]) {
                written += n;
            }
        }
        deliver(c, s);
        let mut buf = [0u8; 64];
        while let Ok(n) = s.read(id, &mut buf) {
            if n == 0 {
                break;
            }
            read += n;
        }
        deliver(s, c);
        if read == len {
            break;
        }
    }
    assert_eq!(s.close_reason(), None, "no protocol error");
    assert_eq!(c.close_reason(), None, "no protocol error");
    read
}

#[test]
fn full_streams_hold_no_more_than_their_initial_windows() {
    let (_, mut s) = budget_pair(false);
    for n in 0..4 {
        let id = sid(2 * n);
        s.handle_frame(Frame::Ack {
            id,
            credit: 1 << 20,
        });
        s.handle_frame(Frame::Data {
            id,
            payload: Bytes::from(vec![1u8; 100]),
        });
    }
    assert_eq!(s.close_reason(), None);
    let stats = s.stats();
    assert_eq!(stats.buffered, 400);
    assert_eq!(stats.receive_windows, 400);
    // The opening ACK granted the initial window, no more.
    assert!(drain(&mut s).contains(&Frame::Ack {
        id: sid(0),
        credit: 100
    }));
    // One byte more on any of them is past its window.
    s.handle_frame(Frame::Data {
        id: sid(0),
        payload: Bytes::from_static(b"x"),
    });
    assert_eq!(closed_code(&mut s), Some(1002));
}

#[test]
fn a_reader_that_keeps_up_grows_its_window_from_the_pool_and_gives_it_back() {
    for advertised in [false, true] {
        let (mut c, mut s) = budget_pair(advertised);
        let id = c.open().unwrap();
        assert_eq!(
            pump(&mut c, &mut s, id, 5000),
            5000,
            "advertised {advertised}"
        );
        let window = s.stream_stats(id).unwrap().window;
        assert_eq!(window, 1000, "grown to the most (advertised {advertised})");
        // The sender's view matches: all of it may be in flight.
        let sc = c.stream_stats(id).unwrap();
        assert_eq!(
            sc.send_credit + sc.in_flight,
            1000,
            "advertised {advertised}"
        );
        // A second stream finds the pool spent: it keeps its 100 and
        // still makes progress.
        let id2 = c.open().unwrap();
        assert_eq!(pump(&mut c, &mut s, id2, 2000), 2000);
        assert_eq!(s.stream_stats(id2).unwrap().window, 100);
        assert_eq!(s.stats().receive_windows, 1100);
        // The first stream ends: its growth goes back to the pool.
        c.finish(id).unwrap();
        s.finish(id).unwrap();
        settle(&mut c, &mut s);
        assert_eq!(s.read(id, &mut [0; 8]), Ok(0));
        s.release_send(id);
        s.release_recv(id);
        c.release_send(id);
        c.release_recv(id);
        settle(&mut c, &mut s);
        assert!(s.stream_stats(id).is_none());
        assert_eq!(pump(&mut c, &mut s, id2, 5000), 5000);
        assert_eq!(s.stream_stats(id2).unwrap().window, 1000);
    }
}

#[test]
fn small_reads_do_not_grow_the_window() {
    let (mut c, mut s) = budget_pair(true);
    let id = c.open().unwrap();
    // 10 bytes at a time, each read at once: credit goes back as the
    // buffer drains, never half a window at once.
    for _ in 0..50 {
        assert_eq!(pump(&mut c, &mut s, id, 10), 10);
    }
    assert_eq!(s.stream_stats(id).unwrap().window, 100);
}
