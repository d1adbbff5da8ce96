//! The receive-buffer policy: payloads behind unread data copied or
//! coalesced, pinned ones copied once the read buffer moves on, and the
//! copy buffers reused.

use bytes::Bytes;

use super::*;

#[test]
fn tiny_data_to_a_stalled_reader_is_coalesced() {
    let window = 64 * 1024;
    let mut s = Session::new(SessionConfig {
        ..config(Role::Server, window)
    });
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    let accepted = s.accept().unwrap();
    assert_eq!(accepted, id);
    // A window's worth of one-byte DATA messages, then one large payload,
    // then more tiny ones: nothing is read meanwhile.
    for i in 0..30_000u32 {
        s.handle_frame(Frame::Data {
            id,
            payload: Bytes::from(vec![(i % 251) as u8]),
        });
    }
    s.handle_frame(Frame::Data {
        id,
        payload: Bytes::from(vec![7u8; 4096]),
    });
    for i in 0..1000u32 {
        s.handle_frame(Frame::Data {
            id,
            payload: Bytes::from(vec![(i % 13) as u8]),
        });
    }
    assert_eq!(closed_code(&mut s), None);
    // Four chunks (the first tiny one, queued as received since nothing
    // was unread; the tiny ones behind it; the large one; the tiny ones
    // after it), not 31,001 queued payloads.
    assert_eq!(s.queued_chunks(id), 4);
    // The bytes come out in order.
    let mut out = vec![0u8; 35_096];
    let mut n = 0;
    while n < out.len() {
        let got = s.read(id, &mut out[n..]).unwrap();
        assert!(got > 0);
        n += got;
    }
    assert!(out[..30_000]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i as u32 % 251) as u8));
    assert!(out[30_000..34_096].iter().all(|&b| b == 7));
    assert!(out[34_096..]
        .iter()
        .enumerate()
        .all(|(i, &b)| b == (i as u32 % 13) as u8));
}

#[test]
fn payloads_queued_behind_unread_data_stop_sharing_the_socket_buffer() {
    // Room for three payloads.
    let (mut s, id) = accepted_stream(3 * 4096);
    let msg = |fill: u8| apart(data_4k(id, fill));
    // Nothing unread: the payload stays a slice of the message (zero copy).
    let first = msg(1);
    let first_payload = first.as_ptr().wrapping_add(3);
    s.handle_message(first);
    assert_eq!(s.queued_ptrs(id), [first_payload]);
    // Behind: the next one is copied, and so is the first one, which the
    // reader had not started on: no message's memory stays pinned.
    let second = msg(2);
    let second_payload = second.as_ptr().wrapping_add(3);
    s.handle_message(second);
    let ptrs = s.queued_ptrs(id);
    assert_eq!(ptrs.len(), 2);
    assert_ne!(ptrs[0], first_payload);
    assert_ne!(ptrs[1], second_payload);
    // The one that fills the window stays in its message (whose buffer the
    // socket is read into) until a message arrives in another buffer; any
    // message counts, not only DATA for this stream.
    let third = msg(3);
    let third_payload = third.as_ptr().wrapping_add(3);
    s.handle_message(third);
    assert_eq!(s.queued_ptrs(id)[2], third_payload);
    s.handle_message(apart(Frame::Ack { id, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(id)[2], third_payload);
    let mut out = vec![0u8; 3 * 4096];
    let mut n = 0;
    while n < out.len() {
        n += s.read(id, &mut out[n..]).unwrap();
    }
    for (i, chunk) in out.chunks(4096).enumerate() {
        assert!(chunk.iter().all(|&b| b == i as u8 + 1), "chunk {i}");
    }
    // Read to the end: the next payload is not behind anything.
    let fourth = msg(4);
    let fourth_payload = fourth.as_ptr().wrapping_add(3);
    s.handle_message(fourth);
    assert_eq!(s.queued_ptrs(id), [fourth_payload]);
}

/// A server session with `window` per stream and the peer's first stream
/// accepted.
fn accepted_stream(window: u32) -> (Session, StreamId) {
    let mut s = Session::new(config(Role::Server, window));
    let id = sid(0);
    s.handle_frame(Frame::Ack { id, credit: 100 });
    assert_eq!(s.accept(), Ok(id));
    (s, id)
}

/// A DATA message on `id`: 4 KiB of `fill`.
fn data_4k(id: StreamId, fill: u8) -> Bytes {
    Frame::Data {
        id,
        payload: Bytes::from(vec![fill; 4096]),
    }
    .to_bytes()
}

/// A copy of `msg` in an allocation of its own with 64 bytes on either
/// side: a message from another read buffer, never taken for the next one
/// cut from the buffer of the message before.
fn apart(msg: Bytes) -> Bytes {
    let mut buf = vec![0u8; 64];
    buf.extend_from_slice(&msg);
    buf.extend_from_slice(&[0u8; 64]);
    Bytes::from(buf).slice(64..64 + msg.len())
}

/// `msgs` cut from one read buffer, a 2-byte frame header before each, as
/// the WebSocket layer hands them over; and where each one's DATA payload
/// starts.
fn one_buffer(msgs: &[Bytes]) -> (Vec<Bytes>, Vec<*const u8>) {
    let mut buf = Vec::new();
    let mut at = Vec::new();
    for m in msgs {
        buf.extend_from_slice(&[0x82, 0x7e]);
        at.push(buf.len()..buf.len() + m.len());
        buf.extend_from_slice(m);
    }
    let buf = Bytes::from(buf);
    let cut: Vec<Bytes> = at.iter().map(|r| buf.slice(r.clone())).collect();
    let payloads = cut.iter().map(|m| m.as_ptr().wrapping_add(3)).collect();
    (cut, payloads)
}

#[test]
fn a_pinned_payload_is_copied_only_once_messages_come_from_another_buffer() {
    let (mut s, id) = accepted_stream(2 * 4096);
    let data = |fill: u8| data_4k(id, fill);
    let (msgs, payloads) = one_buffer(&[data(1), data(2), Frame::Ack { id, credit: 1 }.to_bytes()]);
    s.handle_message(msgs[0].clone());
    s.handle_message(msgs[1].clone());
    assert_eq!(s.queued_ptrs(id)[1], payloads[1], "pinned");
    // The next message follows in the same buffer: copying would free
    // nothing, so the payload stays where it is.
    s.handle_message(msgs[2].clone());
    assert_eq!(s.queued_ptrs(id)[1], payloads[1]);
    // One from another buffer: copied out.
    s.handle_message(apart(Frame::Ack { id, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(id)[1], payloads[1]);
    let mut out = vec![0u8; 2 * 4096];
    let mut n = 0;
    while n < out.len() {
        n += s.read(id, &mut out[n..]).unwrap();
    }
    assert!(out[..4096].iter().all(|&x| x == 1) && out[4096..].iter().all(|&x| x == 2));
}

#[test]
fn payloads_pinned_in_one_buffer_are_copied_together_when_it_moves_on() {
    let mut s = Session::new(config(Role::Server, 3 * 2048));
    let (a, b) = (sid(0), sid(4));
    for id in [a, b] {
        s.handle_frame(Frame::Ack { id, credit: 100 });
        assert_eq!(s.accept(), Ok(id));
    }
    let data = |id: StreamId, fill: u8| {
        Frame::Data {
            id,
            payload: Bytes::from(vec![fill; 2048]),
        }
        .to_bytes()
    };
    // Both streams fall behind, then four DATA messages come from one read
    // buffer: A, A (filling A's window), B, B (filling B's).
    s.handle_message(apart(data(a, 0)));
    s.handle_message(apart(data(b, 0)));
    let (msgs, payloads) = one_buffer(&[data(a, 1), data(a, 2), data(b, 1), data(b, 2)]);
    for msg in &msgs {
        s.handle_message(msg.clone());
    }
    // Each stream's last payload still shares the buffer (they hold the
    // one buffer the socket is read into); the ones before were copied.
    assert_ne!(s.queued_ptrs(a)[1], payloads[0]);
    assert_eq!(s.queued_ptrs(a)[2], payloads[1], "A's last pinned");
    assert_ne!(s.queued_ptrs(b)[1], payloads[2]);
    assert_eq!(s.queued_ptrs(b)[2], payloads[3], "B's last pinned");
    // A message from another buffer: both copied out.
    s.handle_message(apart(Frame::Ack { id: a, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(a)[2], payloads[1]);
    assert_ne!(s.queued_ptrs(b)[2], payloads[3]);
    for id in [a, b] {
        let mut out = vec![0u8; 3 * 2048];
        let mut n = 0;
        while n < out.len() {
            n += s.read(id, &mut out[n..]).unwrap();
        }
        for (i, chunk) in out.chunks(2048).enumerate() {
            assert!(chunk.iter().all(|&x| x == i as u8), "{id:?} chunk {i}");
        }
    }
}

#[test]
fn a_small_payload_with_nothing_unread_is_handed_over_as_received() {
    let mut s = Session::new(config(Role::Server, 64 * 1024));
    let (a, b) = (sid(0), sid(4));
    for id in [a, b] {
        s.handle_frame(Frame::Ack { id, credit: 100 });
        assert_eq!(s.accept(), Ok(id));
    }
    let data = |id: StreamId, text: &'static [u8]| {
        Frame::Data {
            id,
            payload: Bytes::from_static(text),
        }
        .to_bytes()
    };
    let (msgs, payloads) = one_buffer(&[data(a, b"request a"), data(b, b"request b")]);
    for msg in &msgs {
        s.handle_message(msg.clone());
    }
    // A reader that keeps up gets the payload itself: no copy.
    let chunk = s.read_chunk(a, 64).unwrap().unwrap();
    assert_eq!(&chunk[..], b"request a");
    assert_eq!(chunk.as_ptr(), payloads[0]);
    // One not read before the read buffer moves on is copied out of it, so
    // a few bytes never hold a whole buffer.
    assert_eq!(s.queued_ptrs(b), [payloads[1]]);
    s.handle_message(apart(Frame::Ack { id: a, credit: 1 }.to_bytes()));
    assert_ne!(s.queued_ptrs(b), [payloads[1]]);
    assert_eq!(
        s.read_chunk(b, 64),
        Ok(Some(Bytes::from_static(b"request b")))
    );
}

#[test]
fn small_payloads_of_a_stalled_stream_take_no_more_than_the_window() {
    const WINDOW: u32 = 10_000;
    let (mut s, id) = accepted_stream(WINDOW);
    // 700-byte payloads (copied together) until the window is full: plain
    // doubling would have grown the buffer to 11,200 bytes.
    let mut sent = 0;
    while sent + 700 <= WINDOW as usize {
        s.handle_message(
            Frame::Data {
                id,
                payload: Bytes::from(vec![9u8; 700]),
            }
            .to_bytes(),
        );
        sent += 700;
    }
    assert_eq!(s.stream_stats(id).unwrap().buffered, sent as u64);
    // The first payload is queued as received (nothing was unread); the
    // rest are copied together.
    let cap = s.tail_capacity(id);
    assert!(
        cap >= sent - 700 && cap <= WINDOW as usize,
        "capacity {cap}"
    );
    let mut out = vec![0u8; sent];
    assert_eq!(s.read(id, &mut out), Ok(sent));
    assert!(out.iter().all(|&b| b == 9));
}

#[test]
fn copies_for_a_reader_behind_reuse_the_buffers_it_is_done_with() {
    let (mut s, id) = accepted_stream(16 * 4096);
    let data = |fill: u8| apart(data_4k(id, fill));
    // The first arrives with nothing unread (queued as received), and is
    // copied once the second arrives behind it; the two behind are copied.
    for fill in 1..=3 {
        s.handle_message(data(fill));
    }
    assert_eq!(s.copy_buffers(), 3);
    let copies = s.queued_ptrs(id);
    // The reader takes the first two and drops them; the third is unread.
    for fill in 1..=2u8 {
        let chunk = s.read_chunk(id, 4096).unwrap().unwrap();
        assert!(chunk.iter().all(|&b| b == fill));
    }
    // The fourth, behind the third, goes into one of the first two's
    // buffers: no new one.
    s.handle_message(data(4));
    assert!(copies[..2].contains(&s.queued_ptrs(id)[1]));
    assert_eq!(s.copy_buffers(), 3);
    for fill in 3..=4u8 {
        let chunk = s.read_chunk(id, 4096).unwrap().unwrap();
        assert!(chunk.iter().all(|&b| b == fill));
    }
    // The driver's timer lets the unused ones go.
    s.release_idle_copies();
    assert_eq!(s.copy_buffers(), 0);
}

#[test]
fn a_window_larger_than_the_default_gets_copy_buffers_for_all_of_it() {
    // 4 MiB: a reader behind by 3 MiB of 64 KiB messages has every copy in
    // a pooled buffer, not only the first 1 MiB of them.
    let (mut s, id) = accepted_stream(4 << 20);
    let messages = 48u8;
    for fill in 0..messages {
        s.handle_message(apart(
            Frame::Data {
                id,
                payload: Bytes::from(vec![fill; 64 << 10]),
            }
            .to_bytes(),
        ));
    }
    // The first was queued as received and copied once the second arrived
    // behind it.
    assert_eq!(s.copy_buffers(), usize::from(messages));
    for fill in 0..messages {
        let chunk = s.read_chunk(id, 64 << 10).unwrap().unwrap();
        assert!(chunk.len() == 64 << 10 && chunk.iter().all(|&b| b == fill));
    }
}

#[test]
fn payloads_copied_out_of_the_read_buffer_later_reuse_the_copy_buffers() {
    // Room for two payloads: the second fills the window and stays pinned.
    let (mut s, id) = accepted_stream(2 * 4096);
    let data = |fill: u8| data_4k(id, fill);
    let mut previous: Option<Vec<*const u8>> = None;
    for round in 0..3u8 {
        let (msgs, payloads) = one_buffer(&[data(2 * round), data(2 * round + 1)]);
        for msg in &msgs {
            s.handle_message(msg.clone());
        }
        // The first was copied out when the second arrived behind it; the
        // second, pinned, once a message comes from another buffer. Both
        // copies are in the connection's copy buffers.
        s.handle_message(apart(Frame::Ack { id, credit: 1 }.to_bytes()));
        let ptrs = s.queued_ptrs(id);
        assert!(ptrs.iter().all(|p| !payloads.contains(p)));
        assert_eq!(s.copy_buffers(), 2, "round {round}");
        // From the second round on, the same two buffers: nothing allocated.
        if let Some(previous) = &previous {
            assert!(ptrs.iter().all(|p| previous.contains(p)), "round {round}");
        }
        previous = Some(ptrs);
        for fill in [2 * round, 2 * round + 1] {
            let chunk = s.read_chunk(id, 4096).unwrap().unwrap();
            assert!(chunk.iter().all(|&b| b == fill));
        }
    }
}
