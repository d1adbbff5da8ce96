//! Bytes in and out of one connection, as quinn counts them: the UDP
//! datagrams' payload (QUIC headers, handshake and retransmissions
//! included). Served connections report them to the `strand_bytes_*_total`
//! metrics from samples of quinn's statistics: one task per listener
//! samples all its connections every [`SAMPLE_PERIOD`] (no timer per
//! connection, nothing per call), and a connection's last bytes are added
//! when it is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use strand_rpc_core::metrics::ByteCounters;

use crate::connection::Shared;

/// How often a listener adds its connections' new bytes to the metrics:
/// well under any scrape interval.
pub(crate) const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// A listener's served connections, for its sampling task.
#[derive(Default)]
pub(crate) struct Served(Mutex<Vec<Weak<Shared>>>);

impl Served {
    /// Samples `shared` from now on, until it is dropped.
    pub(crate) fn register(&self, shared: &Arc<Shared>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::downgrade(shared));
    }

    /// Samples every connection alive and forgets the others.
    fn sample_all(&self) {
        let alive: Vec<Arc<Shared>> = {
            let mut list = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let mut alive = Vec::with_capacity(list.len());
            list.retain(|weak| match weak.upgrade() {
                Some(shared) => {
                    alive.push(shared);
                    true
                }
                None => false,
            });
            alive
        };
        // Outside the lock: a connection whose last handle goes here
        // samples itself in its drop.
        for shared in alive {
            shared.sample_bytes();
        }
    }
}

/// Samples `served` every [`SAMPLE_PERIOD`] until its listener is gone.
pub(crate) async fn sample(served: Weak<Served>) {
    let mut tick = tokio::time::interval(SAMPLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(served) = served.upgrade() else {
            return;
        };
        served.sample_all();
    }
}

/// Bytes received and sent by `conn` so far.
pub(crate) fn totals(conn: &quinn::Connection) -> (u64, u64) {
    let stats = conn.stats();
    (stats.udp_rx.bytes, stats.udp_tx.bytes)
}

/// What a served connection reported to the metrics so far.
#[derive(Debug)]
pub(crate) struct ByteReporter {
    metrics: ByteCounters,
    received: AtomicU64,
    sent: AtomicU64,
}

impl ByteReporter {
    pub(crate) fn new(metrics: ByteCounters) -> Self {
        ByteReporter {
            metrics,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        }
    }

    /// Adds to the metrics what `conn` counted since the last sample.
    /// Samples taken at once on several threads each add a disjoint part:
    /// `fetch_max` hands every byte to exactly one of them.
    pub(crate) fn sample(&self, conn: &quinn::Connection) {
        let (received, sent) = totals(conn);
        self.report(received, sent);
    }

    fn report(&self, received: u64, sent: u64) {
        let rx = received.saturating_sub(self.received.fetch_max(received, Ordering::AcqRel));
        let tx = sent.saturating_sub(self.sent.fetch_max(sent, Ordering::AcqRel));
        self.metrics.add(rx, tx);
    }

    #[cfg(test)]
    fn reported(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Acquire),
            self.sent.load(Ordering::Acquire),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_what_grew() {
        let reporter = ByteReporter::new(ByteCounters::default());
        reporter.report(100, 50);
        reporter.report(90, 60);
        assert_eq!(reporter.reported(), (100, 60));
    }
}
