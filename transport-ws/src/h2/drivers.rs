//! The mux drivers of one HTTP/2 connection's WebSockets, run on the task
//! that drives the connection itself.
//!
//! Every byte of such a WebSocket passes through the HTTP/2 connection,
//! which the `h2` crate drives from one task. A driver on a task of its own
//! hands each message to that task and takes each one from it: a wake-up of
//! another task per message each way, on a multi-threaded runtime often of
//! another thread (one unary caller over `wss+h2` ran at 0.17x the calls of
//! a wss connection that way, and at 0.88x on a single-threaded runtime).
//! On the connection's task a driver's write wakes that same task.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;
use tokio::sync::mpsc;

use crate::endpoint::DriverFuture;

/// Hands drivers to the connection's task.
pub(crate) type DriverSender = mpsc::UnboundedSender<DriverFuture>;

/// The drivers a connection's task runs beside the connection.
pub(crate) struct Drivers {
    incoming: mpsc::UnboundedReceiver<DriverFuture>,
    running: FuturesUnordered<DriverFuture>,
}

impl Drivers {
    pub(crate) fn new() -> (DriverSender, Drivers) {
        let (tx, incoming) = mpsc::unbounded_channel();
        let drivers = Drivers {
            incoming,
            running: FuturesUnordered::new(),
        };
        (tx, drivers)
    }

    /// Takes the drivers handed over and runs them with those running.
    /// Never returns: the connection's task selects it beside the
    /// connection. Cancel-safe; dropping `Drivers` ends the connections of
    /// the drivers still running (they are lost, as their HTTP/2 streams).
    pub(crate) async fn run(&mut self) -> Infallible {
        loop {
            tokio::select! {
                Some(driver) = self.incoming.recv() => self.running.push(driver),
                Some(()) = self.running.next(), if !self.running.is_empty() => {}
                else => std::future::pending::<()>().await,
            }
        }
    }
}

/// Runs `task` (a connection's task: the connection and its drivers) so
/// that the wake-ups its parts send each other while it is being polled
/// poll it again at once, on this thread, instead of rescheduling the task:
/// tokio reschedules a task that woke itself as a yield, which on a
/// multi-threaded runtime also wakes an idle worker to steal it. A driver's
/// write wakes the HTTP/2 connection, and the connection's read wakes a
/// driver, once per message each way. Wake-ups from elsewhere wake the task
/// as usual. At most [`MAX_PASSES`] passes per poll, then it yields.
pub(crate) fn polled_in_place<F: Future<Output = ()>>(task: F) -> impl Future<Output = ()> {
    let signal = Arc::new(WakeSignal::default());
    let waker = Waker::from(signal.clone());
    let mut task = Box::pin(task);
    std::future::poll_fn(move |cx| {
        signal.task.register(cx.waker());
        let mut inner = Context::from_waker(&waker);
        for _ in 0..MAX_PASSES {
            signal.polling.store(true, Ordering::SeqCst);
            let done = task.as_mut().poll(&mut inner).is_ready();
            signal.polling.store(false, Ordering::SeqCst);
            if done {
                return Poll::Ready(());
            }
            if !signal.woken.swap(false, Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
}

/// Passes of [`polled_in_place`] per poll: bounds what one poll of the task
/// takes from the tasks sharing its worker.
const MAX_PASSES: usize = 16;

#[derive(Default)]
struct WakeSignal {
    /// The task is being polled: a wake-up only asks for one more pass.
    polling: AtomicBool,
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}
