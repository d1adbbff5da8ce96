//! Bytes in and out of one connection: the payload of each WebSocket
//! message the driver read or handed to the socket (frame headers, the
//! handshake and TLS records are not counted). The driver adds a pass's
//! bytes at once, so counting costs an atomic add per batch of messages,
//! not per message; a served connection also adds them to the
//! `strand_bytes_*_total` metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use strand_rpc_core::metrics::ByteCounters;

/// A connection's byte totals, shared by its driver (which adds) and its
/// handles (which read them for [`crate::ConnectionStats`]).
#[derive(Debug, Default)]
pub(crate) struct ByteCount {
    received: AtomicU64,
    sent: AtomicU64,
    metrics: ByteCounters,
}

impl ByteCount {
    /// Totals that also go to `metrics` (default: to no metric).
    pub(crate) fn new(metrics: ByteCounters) -> Self {
        ByteCount {
            metrics,
            ..ByteCount::default()
        }
    }

    /// `received` more payload bytes were read, `sent` more handed to the
    /// socket.
    pub(crate) fn add(&self, received: u64, sent: u64) {
        if received > 0 {
            self.received.fetch_add(received, Ordering::Relaxed);
        }
        if sent > 0 {
            self.sent.fetch_add(sent, Ordering::Relaxed);
        }
        self.metrics.add(received, sent);
    }

    /// Bytes received and sent so far.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_up_both_ways() {
        let count = ByteCount::default();
        count.add(10, 0);
        count.add(0, 7);
        count.add(5, 3);
        assert_eq!(count.totals(), (15, 10));
    }
}
