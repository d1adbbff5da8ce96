//! The go-away extension (docs/protocol.md, "Go-away"): a draining strand
//! server tells a strand client to move its new calls to another
//! connection, before it closes this one.
//!
//! Negotiation: a strand client sends `x-strand-goaway: 1` in its upgrade
//! request; a strand server that sees it answers the same header in its
//! `101`, and only then may it send the notice. The notice is a WebSocket
//! ping whose payload is `strand-goaway`: a peer that does not know it
//! answers it with a pong like any ping, so a mistaken notice costs nothing.
//! Toward a peer that did not offer the header (every JS peer) nothing is
//! sent; it sees only the close at the end.

use http::HeaderMap;
use std::task::Waker;

/// The upgrade header that offers (request) and accepts (response) go-away.
pub const GOAWAY_HEADER: &str = "x-strand-goaway";

/// The payload of the ping that carries the notice.
pub const GOAWAY_PING: &[u8] = b"strand-goaway";

/// Whether `headers` offer or accept the extension (`1`).
pub(crate) fn offered(headers: &HeaderMap) -> bool {
    headers
        .get(GOAWAY_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1")
}

/// The go-away state of one connection, under the connection's lock.
#[derive(Default)]
pub(crate) struct GoAway {
    /// The driver should send the notice.
    to_send: bool,
    /// The peer's notice arrived.
    received: bool,
    /// The task waiting in `WsConnection::going_away`.
    waiter: Option<Waker>,
}

impl GoAway {
    /// Asks the driver to send the notice.
    pub(crate) fn request_send(&mut self) {
        self.to_send = true;
    }

    /// Whether the notice should go out now (once).
    pub(crate) fn take_send(&mut self) -> bool {
        std::mem::take(&mut self.to_send)
    }

    /// The peer's notice arrived: the waiter to wake.
    pub(crate) fn receive(&mut self) -> Option<Waker> {
        self.received = true;
        self.waiter.take()
    }

    /// Whether the notice arrived; registers `waker` if not.
    pub(crate) fn poll_received(&mut self, waker: &Waker) -> bool {
        if !self.received && !self.waiter.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.waiter = Some(waker.clone());
        }
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_value_1_offers_go_away() {
        let mut headers = HeaderMap::new();
        assert!(!offered(&headers));
        headers.insert(GOAWAY_HEADER, " 1 ".parse().unwrap());
        assert!(offered(&headers));
        headers.insert(GOAWAY_HEADER, "yes".parse().unwrap());
        assert!(!offered(&headers));
    }
}
