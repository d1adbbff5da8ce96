//! Flood budgets: how many of the frames that cost us work but carry no
//! data a peer may send, as token buckets refilled over the time the driver
//! passes in (the session has no clock of its own). A peer that spends a
//! bucket past empty is closed with 1008 (policy), as h2 answers a rapid
//! reset or a flood of empty frames with `ENHANCE_YOUR_CALM`
//! (docs/protocol.md, "Flood budgets").

use std::time::Duration;

pub use strand_rpc_core::transport::Budget;
use strand_rpc_core::transport::TokenBucket;

/// The flood budgets of one connection (defaults in [`FloodLimits::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    /// Streams the peer aborted (`ERROR`) before we wrote any answer on
    /// them, and streams it opened that we refused (h2's rapid reset, its
    /// pending-accept and local-error resets). Default 500 at once, 100/s.
    pub resets: Budget,
    /// `ERROR` and `CLOSE` frames that change nothing (a stream that is
    /// gone, a half already done) on streams the peer opened: churn that
    /// costs a lookup each. Default 10,000 at once, 2,000/s.
    pub idle_control: Budget,
    /// WebSocket pings (each one a pong to queue). Default 50 at once, 10/s.
    pub pings: Budget,
    /// DATA messages with no payload (the empty-frame flood h2 guards
    /// against): a frame's whole cost for no data, and, taking no window,
    /// nothing flow control would stop. A message with even one byte is
    /// data: it spends the stream's window like any other (a raw stream
    /// may well send small ones). Default 10,000 at once, 2,000/s.
    pub empty_data: Budget,
}

impl Default for FloodLimits {
    fn default() -> Self {
        FloodLimits {
            resets: Budget::new(500, 100),
            idle_control: Budget::new(10_000, 2_000),
            pings: Budget::new(50, 10),
            empty_data: Budget::new(10_000, 2_000),
        }
    }
}

/// Which budget an event spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flood {
    Resets,
    IdleControl,
    Pings,
    EmptyData,
}

impl Flood {
    /// The close reason when this budget is exceeded.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Flood::Resets => "flood: stream resets and refusals",
            Flood::IdleControl => "flood: control frames with no effect",
            Flood::Pings => "flood: pings",
            Flood::EmptyData => "flood: empty DATA messages",
        }
    }
}

/// The buckets of one connection and the events counted so far.
#[derive(Debug, Clone)]
pub(crate) struct FloodGuard {
    resets: TokenBucket,
    idle_control: TokenBucket,
    pings: TokenBucket,
    empty_data: TokenBucket,
    now_ms: u64,
}

impl FloodGuard {
    pub(crate) fn new(limits: FloodLimits) -> Self {
        FloodGuard {
            resets: TokenBucket::new(limits.resets),
            idle_control: TokenBucket::new(limits.idle_control),
            pings: TokenBucket::new(limits.pings),
            empty_data: TokenBucket::new(limits.empty_data),
            now_ms: 0,
        }
    }

    /// The session's time moved on to `now` (since the connection started).
    pub(crate) fn set_time(&mut self, now: Duration) {
        let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        self.now_ms = self.now_ms.max(ms);
    }

    /// Spends one token of `kind`'s budget; false once it is exceeded.
    pub(crate) fn spend(&mut self, kind: Flood) -> bool {
        let now = self.now_ms;
        let bucket = match kind {
            Flood::Resets => &mut self.resets,
            Flood::IdleControl => &mut self.idle_control,
            Flood::Pings => &mut self.pings,
            Flood::EmptyData => &mut self.empty_data,
        };
        bucket.take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut guard = FloodGuard::new(FloodLimits {
            resets: Budget::new(3, 2),
            ..FloodLimits::default()
        });
        for _ in 0..3 {
            assert!(guard.spend(Flood::Resets));
        }
        assert!(!guard.spend(Flood::Resets), "burst spent");
        // Half a second refills one token at 2/s.
        guard.set_time(Duration::from_millis(500));
        assert!(guard.spend(Flood::Resets));
        assert!(!guard.spend(Flood::Resets));
        // A long pause refills no more than the burst.
        guard.set_time(Duration::from_secs(100));
        for _ in 0..3 {
            assert!(guard.spend(Flood::Resets));
        }
        assert!(!guard.spend(Flood::Resets));
        // Time never goes back.
        guard.set_time(Duration::from_secs(1));
        assert!(!guard.spend(Flood::Resets));
    }

    #[test]
    fn unlimited_never_runs_out() {
        let mut guard = FloodGuard::new(FloodLimits {
            pings: Budget::UNLIMITED,
            ..FloodLimits::default()
        });
        for _ in 0..100_000 {
            assert!(guard.spend(Flood::Pings));
        }
    }
}
