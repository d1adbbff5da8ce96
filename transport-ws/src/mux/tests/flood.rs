//! Flood budgets: rapid resets, refusals, idle control frames, pings and
//! empty DATA each close the connection with 1008 once past their budget,
//! and the budgets refill with the time the driver passes in.

use std::time::Duration;

use bytes::Bytes;

use super::*;

fn with_floods(floods: FloodLimits) -> Session {
    Session::new(SessionConfig {
        floods,
        ..config(Role::Server, 1 << 16)
    })
}

/// Opens peer stream `n` (ACK) and sends a request on it.
fn open_with_request(s: &mut Session, n: u64) -> StreamId {
    let id = sid(2 * n);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 16,
    });
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from_static(b"{\"jsonrpc\":\"2.0\",\"method\":\"m\"}"),
    });
    id
}

/// Opens peer stream `n` with a request, then aborts it.
fn open_and_reset(s: &mut Session, n: u64) {
    let id = open_with_request(s, n);
    s.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Read,
        code: 0,
    });
    s.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Write,
        code: 0,
    });
}

#[test]
fn rapid_resets_past_the_budget_close_1008_and_reset_streams_are_never_accepted() {
    let mut s = with_floods(FloodLimits {
        resets: Budget::new(10, 5),
        ..FloodLimits::default()
    });
    for n in 0..10 {
        open_and_reset(&mut s, n);
    }
    assert_eq!(s.stats().aborted_by_peer, 10);
    // Reset before anyone accepted them: none is handed out, none is left.
    assert_eq!(s.accept(), Err(OpError::Blocked));
    assert_eq!(s.stats().streams_open, 0);
    assert_eq!(closed_code(&mut s), None);
    // A second later, 5 more fit; the 6th does not.
    s.set_time(Duration::from_secs(1));
    for n in 10..15 {
        open_and_reset(&mut s, n);
    }
    assert_eq!(closed_code(&mut s), None);
    open_and_reset(&mut s, 15);
    assert_eq!(closed_code(&mut s), Some(1008));
    assert_eq!(
        s.close_reason().map(|r| r.reason.as_str()),
        Some("flood: stream resets and refusals")
    );
}

#[test]
fn an_accepted_stream_aborted_by_the_peer_counts_once() {
    let mut s = with_floods(FloodLimits {
        resets: Budget::new(1, 0),
        ..FloodLimits::default()
    });
    let id = sid(0);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 16,
    });
    assert_eq!(s.accept(), Ok(id));
    for shutdown in [Shutdown::Read, Shutdown::Write] {
        s.handle_frame(Frame::Error {
            id,
            shutdown,
            code: 0,
        });
    }
    assert_eq!(s.stats().aborted_by_peer, 1);
    assert_eq!(closed_code(&mut s), None, "both halves: one abort");
    assert_eq!(s.read(id, &mut [0; 4]), Err(OpError::Reset(0)));
}

#[test]
fn a_stream_answered_before_the_peer_aborts_costs_nothing() {
    let mut s = with_floods(FloodLimits {
        resets: Budget::new(0, 0),
        ..FloodLimits::default()
    });
    let id = sid(0);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 16,
    });
    assert_eq!(s.accept(), Ok(id));
    s.finish(id).unwrap();
    drain(&mut s);
    // A caller dropping its call after the answer is no flood.
    s.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Read,
        code: 0,
    });
    assert_eq!(s.stats().aborted_by_peer, 0);
    assert_eq!(closed_code(&mut s), None);
}

/// A unary caller reads its reply and drops the call before the server's
/// task got to `finish` (a busy machine does that often): the stop of a
/// stream that already has its answer is no rapid reset. Before, it spent
/// the budget and honest traffic at a high rate was closed 1008 (the bench's
/// unary64 over ws, under load).
#[test]
fn a_stream_with_its_answer_written_but_not_finished_costs_nothing_when_stopped() {
    let mut s = with_floods(FloodLimits {
        resets: Budget::new(0, 0),
        ..FloodLimits::default()
    });
    let id = sid(0);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 16,
    });
    assert_eq!(s.accept(), Ok(id));
    assert_eq!(s.write(id, b"{\"jsonrpc\":\"2.0\",\"result\":1}"), Ok(28));
    drain(&mut s);
    for shutdown in [Shutdown::Write, Shutdown::Read] {
        s.handle_frame(Frame::Error {
            id,
            shutdown,
            code: 0,
        });
    }
    assert_eq!(s.stats().aborted_by_peer, 0);
    assert_eq!(closed_code(&mut s), None);
}

#[test]
fn refusals_spend_the_reset_budget() {
    let mut s = Session::new(SessionConfig {
        max_streams: 2,
        stream_backlog: 2,
        floods: FloodLimits {
            resets: Budget::new(3, 0),
            ..FloodLimits::default()
        },
        ..config(Role::Server, 1 << 16)
    });
    for n in 0..5 {
        s.handle_frame(Frame::Ack {
            id: sid(2 * n),
            credit: 1,
        });
    }
    assert_eq!(s.stats().refused, 3);
    assert_eq!(closed_code(&mut s), None);
    s.handle_frame(Frame::Ack {
        id: sid(10),
        credit: 1,
    });
    assert_eq!(closed_code(&mut s), Some(1008));
    // The two never accepted go with the close.
    assert_eq!(s.stats().streams_open, 0);
}

#[test]
fn control_frames_that_change_nothing_spend_their_budget() {
    let mut s = with_floods(FloodLimits {
        idle_control: Budget::new(4, 0),
        ..FloodLimits::default()
    });
    // On ids that were never opened (lower than one seen: dead).
    s.handle_frame(Frame::Ack {
        id: sid(100),
        credit: 1,
    });
    for n in 0..4 {
        s.handle_frame(Frame::Close {
            id: sid(2 * n),
            shutdown: Shutdown::Read,
        });
    }
    assert_eq!(s.stats().idle_control, 4);
    assert_eq!(closed_code(&mut s), None);
    s.handle_frame(Frame::Error {
        id: sid(8),
        shutdown: Shutdown::Write,
        code: 3,
    });
    assert_eq!(closed_code(&mut s), Some(1008));
}

#[test]
fn late_stops_on_our_own_streams_are_not_churn() {
    // A JS server stops every unary call it has read, often after our
    // finish: that must never spend a budget.
    let mut s = Session::new(SessionConfig {
        floods: FloodLimits {
            idle_control: Budget::new(0, 0),
            resets: Budget::new(0, 0),
            ..FloodLimits::default()
        },
        ..config(Role::Client, 1 << 16)
    });
    for _ in 0..3 {
        let id = s.open().unwrap();
        s.finish(id).unwrap();
        for _ in 0..2 {
            s.handle_frame(Frame::Error {
                id,
                shutdown: Shutdown::Write,
                code: 0,
            });
        }
    }
    assert_eq!(closed_code(&mut s), None);
}

#[test]
fn pings_past_the_budget_close_1008() {
    let mut s = with_floods(FloodLimits {
        pings: Budget::new(3, 1),
        ..FloodLimits::default()
    });
    for _ in 0..3 {
        s.handle_ping();
    }
    s.set_time(Duration::from_secs(2));
    s.handle_ping();
    s.handle_ping();
    assert_eq!(closed_code(&mut s), None);
    s.handle_ping();
    assert_eq!(closed_code(&mut s), Some(1008));
    assert_eq!(s.stats().pings, 6);
}

#[test]
fn empty_data_past_the_budget_closes_1008_and_any_payload_costs_nothing() {
    let mut s = with_floods(FloodLimits {
        empty_data: Budget::new(5, 0),
        ..FloodLimits::default()
    });
    let id = sid(0);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 16,
    });
    // A raw stream's small messages are data: one byte spends window like
    // any other (they were counted, under 16 bytes, and 1-byte writes at a
    // few thousand a second were closed 1008).
    for len in [1, 2, 8, 15, 16] {
        for _ in 0..100 {
            s.handle_frame(Frame::Data {
                id,
                payload: Bytes::from(vec![b'x'; len]),
            });
        }
    }
    for _ in 0..5 {
        s.handle_frame(Frame::Data {
            id,
            payload: Bytes::new(),
        });
    }
    assert_eq!(s.stats().empty_data, 5);
    assert_eq!(closed_code(&mut s), None);
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::new(),
    });
    assert_eq!(closed_code(&mut s), Some(1008));
}

#[test]
fn replies_to_a_peer_that_does_not_read_stop_the_reading_at_max_queued_control() {
    // Each CLOSE(Read) from a JS peer is answered with CLOSE(Write); the
    // socket takes none of them (nothing is polled): past the limit the
    // driver stops reading.
    let mut s = Session::new(SessionConfig {
        max_queued_control: 64,
        ..config(Role::Server, 1 << 16)
    });
    let mut n = 0;
    while s.wants_read() {
        let id = sid(2 * n);
        s.handle_frame(Frame::Ack { id, credit: 1 });
        s.handle_frame(Frame::Close {
            id,
            shutdown: Shutdown::Read,
        });
        n += 1;
        assert!(n < 1000, "reading never paused");
    }
    // An opening ACK and a CLOSE(Write) per stream.
    assert_eq!(s.stats().queued_control, 64);
    assert_eq!(n, 32);
    // Once the socket takes them, reading resumes.
    drain(&mut s);
    assert!(s.wants_read());
}

#[test]
fn a_control_frame_on_an_unseen_id_still_burns_it() {
    let mut s = with_floods(FloodLimits::default());
    s.handle_frame(Frame::Close {
        id: sid(4),
        shutdown: Shutdown::Read,
    });
    assert_eq!(s.stats().idle_control, 1);
    // Ids open in order: 4 and every lower one are dead now.
    for n in [0, 2, 4] {
        s.handle_frame(Frame::Ack {
            id: sid(n),
            credit: 1,
        });
    }
    assert_eq!(s.accept(), Err(OpError::Blocked));
    s.handle_frame(Frame::Ack {
        id: sid(6),
        credit: 1,
    });
    assert_eq!(s.accept(), Ok(sid(6)));
}

#[test]
fn the_mirrored_answers_to_our_stop_and_reset_are_not_churn() {
    let mut s = with_floods(FloodLimits {
        idle_control: Budget::new(0, 0),
        ..FloodLimits::default()
    });
    let id = sid(0);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 16,
    });
    assert_eq!(s.accept(), Ok(id));
    s.stop(id, 5);
    s.reset(id, 6);
    s.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Read,
        code: 5,
    });
    s.handle_frame(Frame::Error {
        id,
        shutdown: Shutdown::Write,
        code: 6,
    });
    assert_eq!(s.stats().idle_control, 0);
    assert_eq!(closed_code(&mut s), None);
}

/// A JS-style caller's unary call on a server session with no churn budget:
/// it opens with ACK, sends its request and its CLOSE(Read), and we answer,
/// finish and let the handles go. Returns the released id.
fn served_js_call(s: &mut Session, n: u64) -> StreamId {
    let id = open_with_request(s, n);
    s.handle_frame(Frame::Close {
        id,
        shutdown: Shutdown::Read,
    });
    assert_eq!(s.accept(), Ok(id));
    read_all(s, id);
    let answer = b"{\"jsonrpc\":\"2.0\",\"result\":1}";
    s.write(id, answer).unwrap();
    s.finish(id).unwrap();
    drain(s);
    // A JS peer takes our CLOSE only once every byte was ACKed.
    s.handle_frame(Frame::Ack {
        id,
        credit: answer.len() as u32,
    });
    drain(s);
    s.release_send(id);
    s.release_recv(id);
    let events = events(s);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Closed(_))),
        "closed serving call {n}: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Released(r) if *r == id)),
        "both halves are done: the stream is released: {events:?} {:?}",
        s.stream_stats(id)
    );
    id
}

#[test]
fn a_js_callers_close_reply_after_the_release_is_not_churn() {
    // A JS caller answers our CLOSE(Read) with CLOSE(Write); that answer
    // usually lands after both halves are done and the stream is gone.
    // Counted as churn it capped JS callers near the budget's refill rate
    // (2,000 calls/s) and closed them 1008 after ~10,000 calls.
    let mut s = with_floods(FloodLimits {
        idle_control: Budget::new(0, 0),
        ..FloodLimits::default()
    });
    for n in 0..300 {
        let id = served_js_call(&mut s, n);
        s.handle_frame(Frame::Close {
            id,
            shutdown: Shutdown::Write,
        });
    }
    assert_eq!(s.stats().idle_control, 0);
    assert_eq!(closed_code(&mut s), None);
}

#[test]
fn a_stop_crossing_our_finish_is_not_churn_once_per_stream() {
    // A caller that read the whole answer stops the stream (ERROR(Write),
    // code 0) while our CLOSE is in flight: whether it lands before or
    // after the release, the first one is free; a second is churn.
    let mut s = with_floods(FloodLimits {
        idle_control: Budget::new(1, 0),
        ..FloodLimits::default()
    });
    let stop = |id| Frame::Error {
        id,
        shutdown: Shutdown::Write,
        code: 0,
    };
    // Landing after our finish, before the handles went.
    let id = sid(0);
    s.handle_frame(Frame::Ack {
        id,
        credit: 1 << 16,
    });
    s.handle_frame(Frame::Close {
        id,
        shutdown: Shutdown::Read,
    });
    assert_eq!(s.accept(), Ok(id));
    s.write(id, b"answer").unwrap();
    s.finish(id).unwrap();
    drain(&mut s);
    s.handle_frame(Frame::Ack { id, credit: 6 });
    drain(&mut s);
    s.handle_frame(stop(id));
    assert_eq!(s.stats().idle_control, 0);
    // Landing after the release, with the JS close reply.
    for n in 1..100 {
        let id = served_js_call(&mut s, n);
        s.handle_frame(stop(id));
        s.handle_frame(Frame::Close {
            id,
            shutdown: Shutdown::Write,
        });
    }
    assert_eq!(s.stats().idle_control, 0);
    // A third frame on a released stream changed nothing and was not owed.
    let id = sid(2 * 99);
    s.handle_frame(stop(id));
    assert_eq!(s.stats().idle_control, 1);
    assert_eq!(closed_code(&mut s), None);
    s.handle_frame(stop(id));
    assert_eq!(closed_code(&mut s), Some(1008));
}

#[test]
fn late_frames_are_owed_only_for_the_recently_released() {
    // What the session remembers of released streams is bounded: a frame
    // on a stream released long ago (more than 256 ids back) is churn.
    let mut s = with_floods(FloodLimits {
        idle_control: Budget::new(1, 0),
        ..FloodLimits::default()
    });
    for n in 0..600 {
        served_js_call(&mut s, n);
    }
    s.handle_frame(Frame::Close {
        id: sid(2 * 599),
        shutdown: Shutdown::Write,
    });
    assert_eq!(s.stats().idle_control, 0);
    s.handle_frame(Frame::Close {
        id: sid(0),
        shutdown: Shutdown::Write,
    });
    assert_eq!(s.stats().idle_control, 1);
}
