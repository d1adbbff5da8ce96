//! Bounds that keep a broken test from hanging. They guard against hangs
//! only: no assertion depends on how fast this machine is.

use std::future::Future;
use std::time::Duration;

/// How long one test step may take before the test fails instead of hanging.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Fails the test instead of hanging when `fut` never finishes.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut)
        .await
        .expect("test step did not finish within its limit")
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after [`LIMIT`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..(LIMIT.as_millis() / 10) {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}
