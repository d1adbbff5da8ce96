//! Flood budgets shared by every carrier: a token bucket that a peer's
//! costly but dataless acts (stream resets, pings, tiny frames) spend, as
//! h2 bounds rapid resets and empty frames. The bucket reads no clock: the
//! caller passes the time, so a sans-IO core can keep one
//! (docs/protocol.md, "Flood budgets").

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

/// Thousandths of a token, so that slow refills lose nothing to rounding.
const MILLI: u64 = 1000;

/// One token bucket over a [`Budget`], starting full at time 0.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    budget: Budget,
    /// Tokens left, in thousandths.
    tokens: u64,
    /// When the bucket was last refilled, in milliseconds of the caller's time.
    refilled_ms: u64,
}

impl TokenBucket {
    /// A full bucket of `budget`.
    pub fn new(budget: Budget) -> Self {
        TokenBucket {
            budget,
            tokens: u64::from(budget.burst) * MILLI,
            refilled_ms: 0,
        }
    }

    /// Takes one token at `now_ms` (milliseconds since the bucket's start;
    /// time never goes back: an earlier `now_ms` refills nothing); false
    /// when there is none.
    pub fn take(&mut self, now_ms: u64) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut bucket = TokenBucket::new(Budget::new(3, 2));
        for _ in 0..3 {
            assert!(bucket.take(0));
        }
        assert!(!bucket.take(0), "burst spent");
        // Half a second refills one token at 2/s.
        assert!(bucket.take(500));
        assert!(!bucket.take(500));
        // A long pause refills no more than the burst.
        for _ in 0..3 {
            assert!(bucket.take(100_000));
        }
        assert!(!bucket.take(100_000));
        // Time never goes back.
        assert!(!bucket.take(1_000));
    }

    #[test]
    fn unlimited_never_runs_out() {
        let mut bucket = TokenBucket::new(Budget::UNLIMITED);
        for _ in 0..100_000 {
            assert!(bucket.take(0));
        }
    }
}
