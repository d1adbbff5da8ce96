//! Flood budgets: how many of the frames that cost us work but carry no
//! data a peer may send, as token buckets refilled over the time the driver
//! passes in (the session has no clock of its own). A peer that spends a
//! bucket past empty is closed with 1008 (policy), as h2 answers a rapid
//! reset or a flood of empty frames with `ENHANCE_YOUR_CALM`
//! (docs/protocol.md, "Flood budgets").

use std::time::Duration;

/// A token bucket's size: `burst` events at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Events allowed at once (the bucket's size).
    pub burst: u32,
    /// Events allowed per second on average (the refill rate).
    pub per_second: u32,
}

impl Budget {
    /// `burst` at once, `per_second` on average.
    pub const fn new(burst: u32, per_second: u32) -> Self {
        Budget { burst, per_second }
    }

    /// No limit at all.
    pub const UNLIMITED: Budget = Budget::new(u32::MAX, u32::MAX);
}

/// The flood budgets of one connection (defaults in [`FloodLimits::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    /// Streams the peer aborted (`ERROR`) before we finished answering
    /// them, and streams it opened that we refused (h2's rapid reset, its
    /// pending-accept and local-error resets). Default 500 at once, 100/s.
    pub resets: Budget,
    /// `ERROR` and `CLOSE` frames that change nothing (a stream that is
    /// gone, a half already done) on streams the peer opened: churn that
    /// costs a lookup each. Default 10,000 at once, 2,000/s.
    pub idle_control: Budget,
    /// WebSocket pings (each one a pong to queue). Default 50 at once, 10/s.
    pub pings: Budget,
    /// DATA messages with fewer than [`TINY_DATA`] payload bytes (h2's
    /// empty DATA frames): a frame's whole cost for almost no data.
    /// Default 10,000 at once, 2,000/s.
    pub tiny_data: Budget,
}

impl Default for FloodLimits {
    fn default() -> Self {
        FloodLimits {
            resets: Budget::new(500, 100),
            idle_control: Budget::new(10_000, 2_000),
            pings: Budget::new(50, 10),
            tiny_data: Budget::new(10_000, 2_000),
        }
    }
}

/// DATA payloads shorter than this count as tiny: no JSON-RPC message is
/// this short (`{"jsonrpc":"2.0"}` alone is 17 bytes).
pub const TINY_DATA: usize = 16;

/// Which budget an event spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flood {
    Resets,
    IdleControl,
    Pings,
    TinyData,
}

impl Flood {
    /// The close reason when this budget is exceeded.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Flood::Resets => "flood: stream resets and refusals",
            Flood::IdleControl => "flood: control frames with no effect",
            Flood::Pings => "flood: pings",
            Flood::TinyData => "flood: tiny DATA messages",
        }
    }
}

/// Thousandths of a token, so that slow refills lose nothing to rounding.
const MILLI: u64 = 1000;

/// One token bucket.
#[derive(Debug, Clone)]
struct Bucket {
    budget: Budget,
    /// Tokens left, in thousandths.
    tokens: u64,
    /// When the bucket was last refilled, in milliseconds of session time.
    refilled_ms: u64,
}

impl Bucket {
    fn new(budget: Budget) -> Self {
        Bucket {
            budget,
            tokens: u64::from(budget.burst) * MILLI,
            refilled_ms: 0,
        }
    }

    /// Takes one token at `now_ms`; false when there is none.
    fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.refilled_ms);
        self.refilled_ms = self.refilled_ms.max(now_ms);
        // A token per second per unit of rate is MILLI thousandths per
        // second, so one thousandth per millisecond per unit of rate.
        let refill = elapsed.saturating_mul(u64::from(self.budget.per_second));
        let full = u64::from(self.budget.burst) * MILLI;
        self.tokens = self.tokens.saturating_add(refill).min(full);
        if self.tokens < MILLI {
            return false;
        }
        self.tokens -= MILLI;
        true
    }
}

/// The buckets of one connection and the events counted so far.
#[derive(Debug, Clone)]
pub(crate) struct FloodGuard {
    resets: Bucket,
    idle_control: Bucket,
    pings: Bucket,
    tiny_data: Bucket,
    now_ms: u64,
}

impl FloodGuard {
    pub(crate) fn new(limits: FloodLimits) -> Self {
        FloodGuard {
            resets: Bucket::new(limits.resets),
            idle_control: Bucket::new(limits.idle_control),
            pings: Bucket::new(limits.pings),
            tiny_data: Bucket::new(limits.tiny_data),
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
            Flood::TinyData => &mut self.tiny_data,
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
