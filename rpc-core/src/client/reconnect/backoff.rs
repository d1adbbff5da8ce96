//! Exponential backoff with jitter between reconnect attempts, as gRPC's
//! connection backoff does it: the first wait is `initial_backoff`, each
//! next one `multiplier` times the last, capped at `max_backoff`, and every
//! wait is moved by up to ±`jitter` of itself at random, so that many
//! clients of one restarted server do not come back in step.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use super::ReconnectConfig;

/// The waits between failed attempts, one per [`Backoff::next_delay`].
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The wait before jitter; grows by the multiplier each time.
    current: Duration,
    multiplier: f64,
    max: Duration,
    jitter: f64,
    rng: SplitMix64,
}

impl Backoff {
    /// A backoff seeded from the process's random hasher keys.
    pub fn new(config: &ReconnectConfig) -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        Self::with_seed(config, hasher.finish())
    }

    /// A backoff whose jitter follows `seed`: the same seed gives the same
    /// waits (for tests).
    pub fn with_seed(config: &ReconnectConfig, seed: u64) -> Self {
        Backoff {
            current: config.initial_backoff,
            multiplier: config.multiplier.max(1.0),
            max: config.max_backoff.max(config.initial_backoff),
            jitter: config.jitter.clamp(0.0, 1.0),
            rng: SplitMix64(seed),
        }
    }

    /// The next wait: the current one moved by the jitter, then the
    /// current one grown for the time after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current.min(self.max);
        // A uniform factor in [1 - jitter, 1 + jitter].
        let factor = 1.0 + self.jitter * (2.0 * self.rng.next_unit() - 1.0);
        let delay = base.mul_f64(factor);
        self.current = base.mul_f64(self.multiplier).min(self.max);
        delay
    }
}

/// A small deterministic generator (splitmix64): the jitter needs spread,
/// not secrecy, and no dependency.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_grows_by_the_multiplier_up_to_the_max_within_the_jitter() {
        let config = ReconnectConfig::default();
        let mut backoff = Backoff::with_seed(&config, 7);
        // gRPC's defaults: 1 s, ×1.6, capped at 120 s, ±20 %.
        let mut base = 1.0_f64;
        let mut seen_below = false;
        let mut seen_above = false;
        for _ in 0..40 {
            let delay = backoff.next_delay().as_secs_f64();
            assert!(
                delay >= base * 0.8 - 1e-9 && delay <= base * 1.2 + 1e-9,
                "{delay} outside {base} ± 20 %"
            );
            seen_below |= delay < base;
            seen_above |= delay > base;
            base = (base * 1.6).min(120.0);
        }
        assert_eq!(base, 120.0, "the cap was reached");
        assert!(seen_below && seen_above, "the jitter moves both ways");
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let config = ReconnectConfig::default();
        let a: Vec<_> = {
            let mut b = Backoff::with_seed(&config, 42);
            (0..10).map(|_| b.next_delay()).collect()
        };
        let mut b = Backoff::with_seed(&config, 42);
        let again: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert_eq!(a, again);
        let mut c = Backoff::with_seed(&config, 43);
        let other: Vec<_> = (0..10).map(|_| c.next_delay()).collect();
        assert_ne!(a, other);
    }

    #[test]
    fn without_jitter_the_sequence_is_exact() {
        let config = ReconnectConfig {
            jitter: 0.0,
            ..ReconnectConfig::default()
        };
        let mut b = Backoff::with_seed(&config, 1);
        let ms: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [1000, 1600, 2560, 4096]);
    }
}
