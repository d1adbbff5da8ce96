//! What the server measures, through the [`metrics`](https://docs.rs/metrics)
//! crate's facade, when the crate's `metrics` feature is on: the names below
//! (docs/deploy.md, "Metrics", has the table with their labels). Nothing is
//! exported here: the application installs a recorder (a Prometheus
//! exporter, for one) and every strand server in the process reports to it.
//! Without the feature every function here is empty and the hot path pays
//! nothing; with it and no recorder installed, each call costs a few
//! lookups of the no-op recorder.
//!
//! Labels are bounded: `transport` is the carrier's name, `method` a method
//! the router has (any other is [`UNKNOWN_METHOD`]), `outcome` and `reason`
//! are the few values listed with the functions that set them.

use std::sync::Arc;

/// Counter: connections a server started serving, by `transport`.
pub const CONNECTIONS_ACCEPTED: &str = "strand_connections_accepted_total";
/// Gauge: connections being served now, by `transport`.
pub const CONNECTIONS_OPEN: &str = "strand_connections_open";
/// Counter: connections refused by a listener before they were served, by
/// `transport` and `reason` (`"connection_limit"`, `"pending_handshake_limit"`,
/// and on ws `"source_handshake_limit"`: too many handshakes from one address).
pub const CONNECTIONS_REFUSED: &str = "strand_connections_refused_total";
/// Gauge: streams (calls, each on its own stream) being served now.
pub const STREAMS_OPEN: &str = "strand_streams_open";
/// Counter: calls whose first message named a method, by `method` and `kind`.
pub const CALLS_STARTED: &str = "strand_calls_started_total";
/// Counter: calls ended, by `method`, `kind` and `outcome`.
pub const CALLS_FINISHED: &str = "strand_calls_finished_total";
/// Histogram: a call's duration in seconds, from its first message read to
/// its last message written, by `method` and `outcome`.
pub const CALL_DURATION: &str = "strand_call_duration_seconds";
/// Counter: streams refused before a call started, by `reason`
/// (`"stopping"`, `"first_message_too_large"`, `"first_message_timeout"`,
/// `"bad_request"`).
pub const CALLS_REFUSED: &str = "strand_calls_refused_total";
/// Gauge: 1 once the server started to drain or shut down, else 0.
pub const DRAINING: &str = "strand_server_draining";
/// Counter: bytes received on served connections, by `transport` (ws: the
/// payload of each WebSocket message; QUIC: UDP datagram bytes).
pub const BYTES_RECEIVED: &str = "strand_bytes_received_total";
/// Counter: bytes sent on served connections, by `transport` (counted as
/// [`BYTES_RECEIVED`]).
pub const BYTES_SENT: &str = "strand_bytes_sent_total";

/// Whether the `metrics` feature is on: carriers skip the work that only
/// feeds the metrics (such as sampling byte counts) when it is off.
pub const ENABLED: bool = cfg!(feature = "metrics");

/// Counter: WebSockets a ws listener accepted, by `http`: `"1.1"` for an
/// HTTP/1.1 `Upgrade`, `"2"` for an HTTP/2 extended CONNECT stream (RFC 8441).
pub const WS_UPGRADES: &str = "strand_ws_upgrades_total";
/// Counter: HTTP/2 connections a wss listener accepted (ALPN `h2`); each
/// carries any number of WebSockets.
pub const H2_CONNECTIONS: &str = "strand_h2_connections_total";

/// The `method` label of a call to a method the router does not have.
pub const UNKNOWN_METHOD: &str = "unknown";

/// How a call ended: its `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Its response was written in full.
    Ok,
    /// It was answered with an error (other than the ones below).
    Error,
    /// It ran past its deadline (answered −32008, or reset while writing).
    Timeout,
    /// The caller went away (stopped reading): the handler was cancelled.
    Cancelled,
    /// The server was forced down (the drain's grace ran out).
    Aborted,
    /// Writing the response failed.
    Failed,
}

impl Outcome {
    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        }
    }
}

/// A connection a listener refused: `reason` is one of the documented
/// values of [`CONNECTIONS_REFUSED`]. For carriers; empty without the feature.
pub fn connection_refused(transport: &'static str, reason: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(CONNECTIONS_REFUSED, "transport" => transport, "reason" => reason)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (transport, reason);
}

/// The byte counters of one served connection: its two series are looked
/// up once, when the connection starts, so that adding to them costs an
/// atomic add each, not a lookup. For carriers; empty without the feature,
/// and [`ByteCounters::default`] counts nothing (a client's connections).
#[derive(Clone)]
pub struct ByteCounters {
    #[cfg(feature = "metrics")]
    received: ::metrics::Counter,
    #[cfg(feature = "metrics")]
    sent: ::metrics::Counter,
}

impl ByteCounters {
    /// The counters of a connection served over `transport`.
    pub fn new(transport: &'static str) -> Self {
        #[cfg(feature = "metrics")]
        {
            ByteCounters {
                received: ::metrics::counter!(BYTES_RECEIVED, "transport" => transport),
                sent: ::metrics::counter!(BYTES_SENT, "transport" => transport),
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = transport;
            ByteCounters {}
        }
    }

    /// `received` more bytes came in and `sent` more went out.
    pub fn add(&self, received: u64, sent: u64) {
        #[cfg(feature = "metrics")]
        {
            if received > 0 {
                self.received.increment(received);
            }
            if sent > 0 {
                self.sent.increment(sent);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (received, sent);
    }
}

impl Default for ByteCounters {
    /// Counters that count nothing.
    fn default() -> Self {
        ByteCounters {
            #[cfg(feature = "metrics")]
            received: ::metrics::Counter::noop(),
            #[cfg(feature = "metrics")]
            sent: ::metrics::Counter::noop(),
        }
    }
}

impl std::fmt::Debug for ByteCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByteCounters(..)")
    }
}

/// A WebSocket a ws listener accepted over HTTP `http` (`"1.1"` or `"2"`),
/// in [`WS_UPGRADES`]. For carriers; empty without the feature.
pub fn ws_upgrade(http: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(WS_UPGRADES, "http" => http).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = http;
}

/// An HTTP/2 connection a wss listener accepted, in [`H2_CONNECTIONS`]. For
/// carriers; empty without the feature.
pub fn h2_connection() {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(H2_CONNECTIONS).increment(1);
}

/// Counts a connection served while it lives: accepted and open.
pub(crate) struct ConnectionGuard {
    #[cfg(feature = "metrics")]
    transport: &'static str,
}

impl ConnectionGuard {
    pub(crate) fn new(transport: &'static str) -> Self {
        #[cfg(feature = "metrics")]
        {
            ::metrics::counter!(CONNECTIONS_ACCEPTED, "transport" => transport).increment(1);
            ::metrics::gauge!(CONNECTIONS_OPEN, "transport" => transport).increment(1);
            ConnectionGuard { transport }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = transport;
            ConnectionGuard {}
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        ::metrics::gauge!(CONNECTIONS_OPEN, "transport" => self.transport).decrement(1);
    }
}

/// A server's own series (no per-method label), looked up at first use and
/// kept: the hot path adds to a handle, it does not look a key up.
#[derive(Default)]
pub(crate) struct ServerSeries {
    #[cfg(feature = "metrics")]
    streams_open: std::sync::OnceLock<::metrics::Gauge>,
}

impl ServerSeries {
    #[cfg(feature = "metrics")]
    fn streams_open(&self) -> &::metrics::Gauge {
        self.streams_open
            .get_or_init(|| ::metrics::gauge!(STREAMS_OPEN))
    }
}

/// Counts a stream served while it lives (each call has one).
pub(crate) struct StreamGuard<'a> {
    #[cfg(feature = "metrics")]
    gauge: &'a ::metrics::Gauge,
    #[cfg(not(feature = "metrics"))]
    _series: std::marker::PhantomData<&'a ServerSeries>,
}

impl<'a> StreamGuard<'a> {
    pub(crate) fn new(series: &'a ServerSeries) -> Self {
        #[cfg(feature = "metrics")]
        {
            let gauge = series.streams_open();
            gauge.increment(1);
            StreamGuard { gauge }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = series;
            StreamGuard {
                _series: std::marker::PhantomData,
            }
        }
    }
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        self.gauge.decrement(1);
    }
}

/// A stream refused before its call started; `reason` as documented on
/// [`CALLS_REFUSED`].
pub(crate) fn call_refused(reason: &'static str) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(CALLS_REFUSED, "reason" => reason).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

/// The server started to drain or shut down.
pub(crate) fn draining() {
    #[cfg(feature = "metrics")]
    ::metrics::gauge!(DRAINING).set(1.0);
}

/// How many [`Outcome`]s there are: one series each per method.
#[cfg(feature = "metrics")]
const OUTCOMES: usize = 6;
#[cfg(feature = "metrics")]
const _: () = assert!(Outcome::Failed as usize + 1 == OUTCOMES);

/// One method's series (or the unknown methods' together), kept by the
/// router: each is looked up in the recorder at its first use (labels then
/// built once) and then only added to. The recorder must be installed
/// before the first call (docs/deploy.md, "Metrics"): series looked up
/// before stay with the recorder of that time.
#[derive(Default)]
pub(crate) struct MethodSeries {
    #[cfg(feature = "metrics")]
    started: std::sync::OnceLock<::metrics::Counter>,
    /// By outcome: calls finished and their durations (only the outcomes
    /// that happened get a series).
    #[cfg(feature = "metrics")]
    ended: [std::sync::OnceLock<(::metrics::Counter, ::metrics::Histogram)>; OUTCOMES],
}

/// One call being measured, from its start to [`CallMetrics::finish`].
pub(crate) struct CallMetrics<'a> {
    #[cfg(feature = "metrics")]
    method: Option<&'a Arc<str>>,
    #[cfg(feature = "metrics")]
    kind: &'static str,
    #[cfg(feature = "metrics")]
    series: &'a MethodSeries,
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
    #[cfg(not(feature = "metrics"))]
    _series: std::marker::PhantomData<&'a MethodSeries>,
}

impl<'a> CallMetrics<'a> {
    /// A call to `method` started; `routed` is the router's own name for
    /// it, its kind and its series (`None`: not a method it has, counted in
    /// `unknown`). The name is shared, not copied.
    pub(crate) fn start(
        routed: impl FnOnce() -> Option<(&'a Arc<str>, &'static str, &'a MethodSeries)>,
        unknown: &'a MethodSeries,
    ) -> Self {
        #[cfg(feature = "metrics")]
        {
            let (method, kind, series) = match routed() {
                Some((name, kind, series)) => (Some(name), kind, series),
                None => (None, UNKNOWN_METHOD, unknown),
            };
            let this = CallMetrics {
                method,
                kind,
                series,
                started: std::time::Instant::now(),
            };
            this.series
                .started
                .get_or_init(|| {
                    ::metrics::counter!(CALLS_STARTED, "method" => this.method_label(), "kind" => kind)
                })
                .increment(1);
            this
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = (routed, unknown);
            CallMetrics {
                _series: std::marker::PhantomData,
            }
        }
    }

    #[cfg(feature = "metrics")]
    fn method_label(&self) -> ::metrics::SharedString {
        match self.method {
            Some(name) => ::metrics::SharedString::from(name.clone()),
            None => ::metrics::SharedString::const_str(UNKNOWN_METHOD),
        }
    }

    /// The call ended with `outcome`.
    pub(crate) fn finish(self, outcome: Outcome) {
        #[cfg(feature = "metrics")]
        {
            let (finished, duration) = self.series.ended[outcome as usize].get_or_init(|| {
                let method = self.method_label();
                let outcome = outcome.as_str();
                (
                    ::metrics::counter!(CALLS_FINISHED, "method" => method.clone(), "kind" => self.kind, "outcome" => outcome),
                    ::metrics::histogram!(CALL_DURATION, "method" => method, "outcome" => outcome),
                )
            });
            finished.increment(1);
            duration.record(self.started.elapsed().as_secs_f64());
        }
        #[cfg(not(feature = "metrics"))]
        let _ = outcome;
    }
}
