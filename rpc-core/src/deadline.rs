//! Running a future until a call's deadline: one helper for the client (which
//! reports [`crate::ClientError::TimedOut`]) and the server (which cancels the
//! handler and answers −32008), and a bound on a wait that is usually over
//! before it starts.
//!
//! Both make their timer only if the future is not ready on its first poll:
//! most of a server's waits (a handler that answers at once, a request that
//! is already here, a finish) never wait, and a tokio timer costs a clock
//! read and a handle on the runtime's timer even when it is never polled.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Runs `fut` until `deadline`, if there is one; past it, drops `fut` and
/// gives `expired()`.
pub(crate) async fn until<T, E>(
    deadline: Option<Instant>,
    fut: impl Future<Output = Result<T, E>>,
    expired: impl FnOnce() -> E,
) -> Result<T, E> {
    match deadline {
        None => fut.await,
        Some(at) => match bounded(fut, move || at).await {
            Some(r) => r,
            None => Err(expired()),
        },
    }
}

/// Runs `fut` for at most `limit` from the moment it first has to wait:
/// `None` if that time passed first.
pub(crate) async fn within<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    bounded(fut, move || Instant::now() + limit).await
}

/// Polls `fut`; on its first `Pending` makes a timer for `deadline()` and
/// from then on gives `None` once it fires (`fut` first on every poll, as
/// tokio's `timeout` does).
async fn bounded<F: Future>(fut: F, deadline: impl FnOnce() -> Instant) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut timer = pin!(None::<Sleep>);
    let mut deadline = Some(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if let Some(deadline) = deadline.take() {
            timer.set(Some(tokio::time::sleep_until(deadline())));
        }
        match timer.as_mut().as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(None),
            _ => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_needs_no_timer_and_a_waiting_one_is_bounded() {
        // Ready at once: the result, whatever the limit.
        assert_eq!(within(Duration::ZERO, async { 7 }).await, Some(7));
        // Waits less than the limit (counted from its first wait).
        let quick = within(
            Duration::from_secs(2),
            tokio::time::sleep(Duration::from_secs(1)),
        );
        assert_eq!(quick.await, Some(()));
        // Waits longer: cut at the limit, not before.
        let start = Instant::now();
        let slow = within(Duration::from_secs(2), std::future::pending::<()>());
        assert_eq!(slow.await, None);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn until_gives_the_expiry_error_at_the_deadline() {
        let at = Instant::now() + Duration::from_millis(500);
        let r: Result<(), &str> = until(Some(at), std::future::pending(), || "expired").await;
        assert_eq!(r, Err("expired"));
        assert_eq!(Instant::now(), at);
        let r: Result<u8, &str> = until(Some(at), async { Ok(1) }, || "expired").await;
        assert_eq!(r, Ok(1));
        let r: Result<u8, &str> = until(None, async { Ok(2) }, || "expired").await;
        assert_eq!(r, Ok(2));
    }
}
