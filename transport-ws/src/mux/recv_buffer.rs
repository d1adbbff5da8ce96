//! The receive-buffer memory policy: how a stream's received payloads wait
//! for its reader, and when they are copied out of the WebSocket layer's read
//! buffer (pinning, coalescing small ones, which buffer a message came in).

use bytes::{Bytes, BytesMut};

use super::copies::CopyPool;
use super::queue::ChunkQueue;
use super::stream_id::StreamId;

/// Received payloads shorter than this are copied into one buffer when
/// they arrive behind unread data, instead of being queued one by one. A
/// queued payload costs a queue slot and keeps its share of the socket read
/// buffer alive, so a peer sending tiny DATA messages to a stream nobody
/// reads could otherwise make us hold many times the window; copied, a
/// stalled stream holds at most its window plus the few large payloads it
/// queued whole. The buffer grows no larger than what the window still lets
/// the peer send into it, so it never holds more than the window either.
const COALESCE_BELOW: usize = 1024;

/// Bytes of reusable copy buffers a connection keeps at most, on top of
/// what its streams have queued, unless its stream window is larger (see
/// [`copy_pool_bytes`]): a default stream window (sixteen 64 KiB
/// messages), since a bulk reader is often most of a window behind. With a
/// quarter of that, one-stream throughput over ws lost a quarter to the
/// allocations beyond it (glibc trims and re-faults such blocks: 460k page
/// faults in a 3 s run, about 5k with this cap; docs/benchmarks.md).
const COPY_POOL_BYTES: usize = 1 << 20;

/// The copy pool's byte cap for a connection whose streams' windows grow to
/// `window`: one such window, and never less than [`COPY_POOL_BYTES`]. A
/// reader is at most a window behind, so a pool sized to the default
/// window with a larger one configured would send the copies beyond it back
/// to an allocation each.
pub(super) fn copy_pool_bytes(window: u32) -> usize {
    COPY_POOL_BYTES.max(window as usize)
}

/// Longest WebSocket frame header (a 64-bit length and a mask key): the gap
/// between two messages the WebSocket layer cut from one read buffer.
const MAX_WS_HEADER: usize = 14;

/// The bytes one stream received and its reader has not read yet.
#[derive(Debug, Default)]
pub(super) struct RecvBuffer {
    incoming: ChunkQueue,
    /// Small payloads received after everything in `incoming`, copied
    /// together (see [`COALESCE_BELOW`]).
    incoming_tail: BytesMut,
    /// The front of `incoming` is a payload queued as received, a slice of
    /// the WebSocket layer's read buffer (see [`RecvBuffer::push_incoming`]).
    front_shared: bool,
    /// The back of `incoming` is a payload queued as received that must not
    /// outlive the read buffer it came in: copied once a message arrives in
    /// another buffer (see [`Session::unpin`](super::Session::unpin)).
    back_pinned: bool,
}

impl RecvBuffer {
    /// Drops every unread byte; returns how many there were.
    pub(super) fn discard(&mut self) -> usize {
        let n: usize =
            self.incoming.iter().map(Bytes::len).sum::<usize>() + self.incoming_tail.len();
        self.incoming.clear();
        self.front_shared = false;
        self.back_pinned = false;
        self.incoming_tail = BytesMut::new();
        n
    }

    /// Queues a received payload for the reader. `behind`: bytes received
    /// earlier are still unread. `room`: what the peer may still send on top
    /// of this payload before the reader returns credit. Returns whether the
    /// payload was queued pinned (see below).
    ///
    /// A payload is a slice of the WebSocket layer's read buffer and keeps
    /// that whole allocation alive (the buffer grows to hold a message, plus
    /// what was read after it). For a reader that keeps up that is brief: a
    /// payload that arrives with nothing unread is queued as it is (an RPC
    /// call's message then reaches its reader without a copy or an
    /// allocation). A small one is pinned: if the read buffer moves on before
    /// the reader took it, it is copied out, so that a few bytes never hold a
    /// whole buffer.
    ///
    /// A reader that is behind may keep a window's worth of payloads for
    /// long, so those end up in allocations of their own size, and so does
    /// the one it had not started on when it fell behind: a stalled stream
    /// then costs its window, not the buffers its data came in. The copy of
    /// the payload that fills the window is pinned too: its buffer is the one
    /// the WebSocket layer reads into until then, and copying it at once
    /// would hold that message twice for as long as the stream stalls.
    /// Payloads that leave room in the window are copied at once, into the
    /// connection's reusable copy buffers ([`CopyPool`]), so that a busy
    /// connection's read buffer is not kept from being reused.
    pub(super) fn push_incoming(
        &mut self,
        payload: Bytes,
        behind: bool,
        room: u64,
        copies: &mut CopyPool,
    ) -> bool {
        if !behind {
            // Nothing queued: the reader will most likely take it soon.
            debug_assert!(self.incoming.is_empty() && self.incoming_tail.is_empty());
            let small = payload.len() < COALESCE_BELOW;
            self.incoming.push_back(payload);
            self.front_shared = true;
            self.back_pinned = small;
            return small;
        }
        if payload.len() < COALESCE_BELOW {
            self.extend_tail(&payload, room);
            return false;
        }
        // At most one pinned payload per stream, the last one; and the tail
        // goes behind it.
        self.unpin(copies);
        self.flush_tail();
        if std::mem::take(&mut self.front_shared) {
            if let Some(front) = self.incoming.front_mut() {
                *front = copies.copy(front);
            }
        }
        if room > 0 {
            self.incoming.push_back(copies.copy(&payload));
            return false;
        }
        // The window is full: nothing more can come for this stream until
        // its reader catches up.
        self.incoming.push_back(payload);
        self.back_pinned = true;
        true
    }

    /// Copies the pinned payload, if it is still queued, out of the read
    /// buffer it shares (into one of the connection's copy buffers: such
    /// copies come at the rate of the messages when readers lag a little).
    pub(super) fn unpin(&mut self, copies: &mut CopyPool) {
        if std::mem::take(&mut self.back_pinned) {
            if let Some(back) = self.incoming.back_mut() {
                *back = copies.copy(back);
            }
            if self.incoming.len() == 1 {
                // It was also the front.
                self.front_shared = false;
            }
        }
    }

    /// Appends a small payload to `incoming_tail`, growing it no further
    /// than `room` (what may still arrive) past its new length: doubling
    /// alone could leave it with nearly twice the window in capacity.
    fn extend_tail(&mut self, payload: &[u8], room: u64) {
        let tail = &mut self.incoming_tail;
        if tail.capacity() - tail.len() < payload.len() {
            let needed = tail.len() + payload.len();
            let most = u64::try_from(needed)
                .unwrap_or(u64::MAX)
                .saturating_add(room);
            let cap = usize::try_from(most)
                .unwrap_or(usize::MAX)
                .min(needed.saturating_mul(2));
            let mut grown = BytesMut::with_capacity(cap);
            grown.extend_from_slice(tail);
            *tail = grown;
        }
        tail.extend_from_slice(payload);
    }

    /// Moves `incoming_tail` into `incoming`.
    fn flush_tail(&mut self) {
        if self.incoming_tail.is_empty() {
            return;
        }
        let tail = if self.incoming_tail.len() == self.incoming_tail.capacity() {
            // Full: frozen as is, without the shared-buffer header a split
            // allocates.
            std::mem::take(&mut self.incoming_tail).freeze()
        } else {
            // The rest of the buffer takes the next small payloads.
            self.incoming_tail.split().freeze()
        };
        // Only the back can be pinned, and the tail goes behind it: the
        // caller copied it out first, or nothing is queued.
        debug_assert!(!self.back_pinned);
        self.incoming.push_back(tail);
    }

    /// Drops the front of `incoming` once it was read.
    pub(super) fn pop_front_incoming(&mut self) {
        self.incoming.pop_front();
        self.front_shared = false;
        if self.incoming.is_empty() {
            self.back_pinned = false;
        }
    }

    /// The oldest unread bytes, moving the small-payload tail into the queue
    /// once everything before it was read.
    pub(super) fn front_incoming(&mut self) -> Option<&mut Bytes> {
        if self.incoming.is_empty() {
            self.flush_tail();
        }
        self.incoming.front_mut()
    }

    /// How many separate chunks are queued for the reader.
    #[cfg(test)]
    pub(super) fn queued_chunks(&self) -> usize {
        self.incoming.len() + usize::from(!self.incoming_tail.is_empty())
    }

    /// Capacity of the buffer small payloads are copied into.
    #[cfg(test)]
    pub(super) fn tail_capacity(&self) -> usize {
        self.incoming_tail.capacity()
    }

    /// Where each chunk queued for the reader starts.
    #[cfg(test)]
    pub(super) fn queued_ptrs(&self) -> Vec<*const u8> {
        self.incoming.iter().map(|b| b.as_ptr()).collect()
    }
}

/// The read buffer the last message received was cut from, and the streams
/// whose last queued payload may still share it.
#[derive(Debug, Default)]
pub(super) struct PinnedPayloads {
    /// Streams whose last queued payload may still share the read buffer of
    /// the last message received ([`RecvBuffer::push_incoming`]): copied out
    /// once a message arrives in another buffer. They all share that one
    /// buffer, which the WebSocket layer holds anyway while it reads into it.
    pinned: Vec<StreamId>,
    /// Address just past the last message received: a message that starts
    /// at most [`MAX_WS_HEADER`] bytes later was cut from the same buffer.
    last_msg_end: usize,
}

impl PinnedPayloads {
    /// Notes where `msg` lies in memory; returns whether it was not cut from
    /// the buffer the last one was (the pinned payloads must then be copied
    /// out).
    pub(super) fn moved_on(&mut self, msg: &Bytes) -> bool {
        // Addresses only, compared: never turned back into pointers.
        let start = msg.as_ptr() as usize;
        let moved = start.wrapping_sub(self.last_msg_end) > MAX_WS_HEADER;
        self.last_msg_end = start.wrapping_add(msg.len());
        moved
    }

    /// `id`'s last queued payload was queued pinned.
    pub(super) fn push(&mut self, id: StreamId) {
        if self.pinned.last() != Some(&id) {
            self.pinned.push(id);
        }
    }

    /// Takes the streams with a pinned payload.
    pub(super) fn drain(&mut self) -> std::vec::Drain<'_, StreamId> {
        self.pinned.drain(..)
    }
}
