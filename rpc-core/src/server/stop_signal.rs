//! A one-way signal (the server is stopping; it is forced down) that every
//! call on every worker checks.
//!
//! `CancellationToken::is_cancelled` takes the token's mutex, so with one
//! token per server every call of every connection contended on it (about
//! 2.5 % of the server's CPU time in the `js_client` bench case). Here the
//! check is an atomic load; only a wait goes through the token.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    set: AtomicBool,
    token: CancellationToken,
}

impl StopSignal {
    /// Sets the signal and wakes every waiter. Idempotent.
    pub(crate) fn cancel(&self) {
        self.set.store(true, Ordering::Release);
        self.token.cancel();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Resolves once the signal is set; registers with the token only if
    /// it is not set when first polled.
    pub(crate) async fn cancelled(&self) {
        if !self.is_cancelled() {
            self.token.cancelled().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_the_signal_is_set() {
        let signal = std::sync::Arc::new(StopSignal::default());
        assert!(!signal.is_cancelled());
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        signal.cancel();
        waiter.await.unwrap();
        assert!(signal.is_cancelled());
        // Set already: resolves at once.
        signal.cancelled().await;
    }
}
