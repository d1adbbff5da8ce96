//! Buffers a connection's received payloads are copied into while their
//! readers are behind, reused once a reader dropped what was cut from them.
//!
//! A payload that arrives behind unread data is copied out of the socket's
//! read buffer, so that a stalled stream costs its window and not the
//! buffers its data came in (see `RecvBuffer::push_incoming`); so, later, is
//! one that was queued as it arrived and is still unread when that buffer
//! must be let go (see `RecvBuffer::unpin`). A bulk reader is
//! usually a few messages behind, so every large message was copied into an
//! allocation of its own, made on the driver's thread and freed on the
//! reader's: with glibc that trims and re-faults memory at every turn (about
//! 100k page faults a second at 64 KiB messages). Reusing buffers keeps the
//! copy and drops the allocation.
//!
//! The pool holds at most [`CopyPool::new`]'s byte cap in buffers, and at
//! most [`MAX_BUFFERS`] of them, or as many as the cap holds 64 KiB
//! messages if that is more; beyond that a payload gets an allocation of
//! its own, as before. Buffers in use hold queued data, counted in their
//! streams' windows; the idle ones are let go by [`CopyPool::release_idle`],
//! which the driver calls on a timer.

use bytes::{Bytes, BytesMut};

/// The most buffers a pool keeps, whatever their size: each copy looks
/// through them for a free one, so the look stays short. A pool whose byte
/// cap holds more [`FULL_MESSAGE`]s than this keeps that many instead, so
/// that a window of full messages fits (see [`CopyPool::new`]).
const MAX_BUFFERS: usize = 64;

/// The payload of a full DATA message at strand's default
/// `WsConfig::max_data_payload`: what a bulk stream's messages carry.
const FULL_MESSAGE: usize = 64 << 10;

/// Reusable copy buffers of one connection.
#[derive(Debug)]
pub(crate) struct CopyPool {
    /// Each buffer, with the size it was made with.
    buffers: Vec<(BytesMut, usize)>,
    /// Sum of those sizes.
    bytes: usize,
    cap: usize,
    max_buffers: usize,
}

impl CopyPool {
    /// A pool that holds at most `cap` bytes of buffers, and at most
    /// [`MAX_BUFFERS`] of them or as many full messages as `cap` holds.
    /// Measured with an 8 MiB stream window (128 full messages): with 64
    /// buffers half the copies of a bulk reader a window behind were
    /// allocations, with 128 a third as many page faults (docs/benchmarks.md).
    pub(crate) fn new(cap: usize) -> Self {
        CopyPool {
            buffers: Vec::new(),
            bytes: 0,
            cap,
            max_buffers: MAX_BUFFERS.max(cap / FULL_MESSAGE),
        }
    }

    /// `data` in a buffer of its own size: one no payload uses any more if
    /// its size fits (within 1/32, so reuse adds no more than that to what a
    /// payload holds), else a new one while the caps allow, else a free one
    /// of another size replaced by one of this size, else an allocation of
    /// its own.
    ///
    /// A free buffer of another size is replaced only when nothing else
    /// fits: a bulk stream's copies are mostly full messages with a few of
    /// other sizes among them (a window's last bytes, a message the reader
    /// had begun), and taking the first free buffer whatever its size
    /// swapped buffers back and forth between the two sizes, an allocation
    /// each time.
    pub(crate) fn copy(&mut self, data: &[u8]) -> Bytes {
        let len = data.len();
        let mut other_size = None;
        let mut fitting = None;
        for (at, (buffer, size)) in self.buffers.iter_mut().enumerate() {
            if reclaim(buffer, *size) {
                if fits(*size, len) {
                    fitting = Some(at);
                    break;
                }
                other_size.get_or_insert(at);
            }
        }
        let at = fitting
            .or_else(|| self.add(len))
            .or_else(|| other_size.and_then(|at| self.replace(at, len)));
        let Some(at) = at else {
            return Bytes::copy_from_slice(data);
        };
        let buffer = &mut self.buffers[at].0;
        buffer.extend_from_slice(data);
        buffer.split().freeze()
    }

    /// A new buffer of `len` bytes, if the caps allow.
    fn add(&mut self, len: usize) -> Option<usize> {
        if self.bytes + len > self.cap || self.buffers.len() >= self.max_buffers {
            return None;
        }
        self.bytes += len;
        self.buffers.push((BytesMut::with_capacity(len), len));
        Some(self.buffers.len() - 1)
    }

    /// Replaces the free buffer at `at` by a new one of `len` bytes, if the
    /// byte cap allows that once the old one is gone; otherwise keeps it (a
    /// payload larger than the whole pool would evict it for nothing).
    fn replace(&mut self, at: usize, len: usize) -> Option<usize> {
        let size = self.buffers[at].1;
        if self.bytes - size + len > self.cap {
            return None;
        }
        self.buffers.swap_remove(at);
        self.bytes -= size;
        self.add(len)
    }

    /// Drops the buffers no payload uses any more.
    pub(crate) fn release_idle(&mut self) {
        let bytes = &mut self.bytes;
        self.buffers.retain_mut(|(b, size)| {
            let idle = reclaim(b, *size);
            if idle {
                *bytes -= *size;
            }
            !idle
        });
    }

    #[cfg(test)]
    pub(crate) fn buffers(&self) -> usize {
        self.buffers.len()
    }
}

/// Takes back the whole of `buffer` (made with `size` bytes) if no payload
/// points into it. Asking for one byte more than its spare capacity makes
/// `try_reclaim` check that, rather than settle for the spare bytes left
/// after the last copy. A buffer taken back earlier and not used since has
/// all of it already.
fn reclaim(buffer: &mut BytesMut, size: usize) -> bool {
    buffer.capacity() >= size || buffer.try_reclaim(buffer.capacity() + 1)
}

fn fits(size: usize, len: usize) -> bool {
    size >= len && size - len <= size / 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_reused_once_its_payload_is_dropped() {
        let mut pool = CopyPool::new(1 << 20);
        let first = pool.copy(&[1; 65_536]);
        let first_at = first.as_ptr();
        // In use: a second buffer.
        let second = pool.copy(&[2; 65_536]);
        assert_eq!(pool.buffers(), 2);
        assert!(first.iter().all(|&b| b == 1) && second.iter().all(|&b| b == 2));
        drop(first);
        // The first one is free again: reused, nothing added.
        let third = pool.copy(&[3; 65_536]);
        assert_eq!(third.as_ptr(), first_at);
        assert_eq!(pool.buffers(), 2);
        assert!(third.iter().all(|&b| b == 3) && second.iter().all(|&b| b == 2));
    }

    #[test]
    fn a_buffer_with_spare_bytes_is_reused_only_once_free() {
        let mut pool = CopyPool::new(1 << 20);
        drop(pool.copy(&[1; 65_536]));
        // Fits with 1,000 bytes to spare.
        let second = pool.copy(&[2; 64_536]);
        let at = second.as_ptr();
        // Still in use: its spare bytes are not taken for the next one.
        let third = pool.copy(&[3; 64_536]);
        assert_ne!(third.as_ptr(), at);
        assert_eq!(pool.buffers(), 2);
        drop(second);
        assert_eq!(pool.copy(&[4; 65_000]).as_ptr(), at);
        assert!(third.iter().all(|&b| b == 3));
    }

    #[test]
    fn a_free_buffer_of_another_size_is_replaced_when_the_cap_is_reached() {
        let mut pool = CopyPool::new(66_000);
        drop(pool.copy(&[1; 65_536]));
        let small = pool.copy(&[2; 2_000]);
        assert_eq!((pool.buffers(), pool.bytes), (1, 2_000));
        drop(small);
        let larger = pool.copy(&[3; 65_000]);
        assert!(larger.len() == 65_000 && larger.iter().all(|&b| b == 3));
        assert_eq!((pool.buffers(), pool.bytes), (1, 65_000));
    }

    #[test]
    fn a_payload_larger_than_the_cap_leaves_the_free_buffers_alone() {
        let mut pool = CopyPool::new(66_000);
        let first = pool.copy(&[1; 65_536]);
        let at = first.as_ptr();
        drop(first);
        // Could not be pooled even in an empty pool: copied on its own.
        let big = pool.copy(&[2; 70_000]);
        assert!(big.len() == 70_000 && big.iter().all(|&b| b == 2));
        assert_eq!((pool.buffers(), pool.bytes), (1, 65_536));
        // The free buffer is still there for the next payload it fits.
        assert_eq!(pool.copy(&[3; 65_536]).as_ptr(), at);
    }

    #[test]
    fn a_free_buffer_that_fits_is_taken_before_one_of_another_size() {
        let mut pool = CopyPool::new(1 << 20);
        let odd = pool.copy(&[1; 10_000]);
        let full = pool.copy(&[2; 65_536]);
        let (odd_at, full_at) = (odd.as_ptr(), full.as_ptr());
        drop((odd, full));
        // Both free: each size takes its own buffer back, none is made.
        let full = pool.copy(&[3; 65_536]);
        let odd = pool.copy(&[4; 10_000]);
        assert_eq!((full.as_ptr(), odd.as_ptr()), (full_at, odd_at));
        // Another size while the cap allows: a buffer of its own, the free
        // ones are kept for the sizes they fit.
        drop(odd);
        let other = pool.copy(&[5; 30_000]);
        assert_eq!((pool.buffers(), pool.bytes), (3, 105_536));
        assert!(other.iter().all(|&b| b == 5) && full.iter().all(|&b| b == 3));
        assert_eq!(pool.copy(&[6; 10_000]).as_ptr(), odd_at);
    }

    #[test]
    fn the_cap_bounds_the_buffers_and_release_lets_idle_ones_go() {
        let mut pool = CopyPool::new(3 * 10_000);
        let held: Vec<Bytes> = (0..5).map(|i| pool.copy(&[i; 10_000])).collect();
        // Three pooled, two copied on their own.
        assert_eq!((pool.buffers(), pool.bytes), (3, 30_000));
        for (i, b) in held.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8));
        }
        let first = held.into_iter().next();
        pool.release_idle();
        assert_eq!(pool.buffers(), 1, "the one still held stays");
        drop(first);
        pool.release_idle();
        assert_eq!((pool.buffers(), pool.bytes), (0, 0));
    }

    #[test]
    fn the_number_of_buffers_is_bounded_too() {
        let mut pool = CopyPool::new(1 << 20);
        let held: Vec<Bytes> = (0..MAX_BUFFERS + 3)
            .map(|i| pool.copy(&[i as u8; 2_000]))
            .collect();
        // Far below the byte cap, but no more buffers than MAX_BUFFERS:
        // the rest were copied on their own.
        assert_eq!(pool.buffers(), MAX_BUFFERS);
        assert_eq!(pool.bytes, MAX_BUFFERS * 2_000);
        for (i, b) in held.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8));
        }
    }

    #[test]
    fn a_larger_cap_keeps_a_window_of_full_messages() {
        let full_messages = 2 * MAX_BUFFERS;
        let mut pool = CopyPool::new(full_messages * FULL_MESSAGE);
        let held: Vec<Bytes> = (0..full_messages + 1)
            .map(|i| pool.copy(&vec![i as u8; FULL_MESSAGE]))
            .collect();
        // Every full message of the cap pooled, the one beyond copied on
        // its own.
        assert_eq!(pool.buffers(), full_messages);
        assert_eq!(pool.bytes, full_messages * FULL_MESSAGE);
        for (i, b) in held.iter().enumerate() {
            assert!(b.iter().all(|&x| x == i as u8));
        }
    }

    #[test]
    fn fit_allows_a_thirty_second_of_slack() {
        assert!(fits(65_536, 65_536));
        assert!(fits(65_536, 63_488));
        assert!(!fits(65_536, 63_487));
        assert!(!fits(65_536, 65_537));
    }
}
