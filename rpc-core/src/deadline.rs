//! Running a future until a call's deadline: one helper for the client (which
//! reports [`crate::ClientError::TimedOut`]) and the server (which cancels the
//! handler and answers −32008).

use std::future::Future;

use tokio::time::Instant;

/// Runs `fut` until `deadline`, if there is one; past it, drops `fut` and
/// gives `expired()`.
pub(crate) async fn until<T, E>(
    deadline: Option<Instant>,
    fut: impl Future<Output = Result<T, E>>,
    expired: impl FnOnce() -> E,
) -> Result<T, E> {
    match deadline {
        None => fut.await,
        Some(at) => match tokio::time::timeout_at(at, fut).await {
            Ok(r) => r,
            Err(_) => Err(expired()),
        },
    }
}
