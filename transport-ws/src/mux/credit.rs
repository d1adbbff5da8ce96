//! Flow-control accounting: the credit we may still send, and the receive
//! window we grant.
//!
//! Both are plain counters with no I/O, so their invariants are checked by
//! property tests. The receive side releases credit like h2's flow control: not
//! per read, but once half the window was consumed or the buffer drained.

/// Send side: credit the peer granted us with ACKs.
#[derive(Debug, Clone, Default)]
pub struct SendCredit {
    available: u64,
    in_flight: u64,
    acks: u64,
    assumed: u64,
    /// The peer's opening grant has been counted: every later ACK returns
    /// credit for bytes it consumed.
    opening_received: bool,
    /// Started by [`SendCredit::granted`] and no ACK seen yet.
    granted_without_opening: bool,
}

impl SendCredit {
    /// Starts with `initial` bytes of credit (0, or a strand peer's advertised window).
    pub fn new(initial: u64) -> Self {
        SendCredit {
            available: initial,
            in_flight: 0,
            acks: 0,
            assumed: 0,
            opening_received: false,
            granted_without_opening: false,
        }
    }

    /// Starts with the window a strand peer advertised at the upgrade, before
    /// its opening ACK arrives. That ACK grants the same window, so only what
    /// it grants beyond `window` is added (strand extension, see
    /// docs/protocol.md, "Window advertisement").
    pub fn assumed(window: u32) -> Self {
        SendCredit {
            available: u64::from(window),
            in_flight: 0,
            acks: 0,
            assumed: u64::from(window),
            opening_received: false,
            granted_without_opening: false,
        }
    }

    /// Starts with the window a strand peer advertised, when we advertised
    /// ours too: that peer sends no opening ACK, so every ACK it sends
    /// returns credit (docs/protocol.md, "Window advertisement", rule 2).
    pub fn granted(window: u32) -> Self {
        SendCredit {
            available: u64::from(window),
            in_flight: 0,
            acks: 0,
            assumed: 0,
            opening_received: false,
            granted_without_opening: false,
        }
        .opened()
    }

    /// Counts the opening grant as received.
    fn opened(mut self) -> Self {
        self.opening_received = true;
        self.granted_without_opening = true;
        self.assumed = self.available;
        self
    }

    /// Bytes we may send right now.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// Bytes sent that the peer has not given back as credit yet.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Number of ACKs received.
    pub fn acks(&self) -> u64 {
        self.acks
    }

    /// The peer sent `ACK(credit)`. The opening ACK is the initial grant
    /// (unless [`SendCredit::granted`] counted it); later ones return credit
    /// for bytes the peer consumed, so they also shrink the bytes in flight.
    pub fn on_ack(&mut self, credit: u32) {
        self.acks += 1;
        if self.granted_without_opening && u64::from(credit) > self.in_flight {
            // A peer that advertised its window and sent an opening ACK all
            // the same: more than we have in flight cannot be a return, so
            // it is that grant, counted already.
            self.granted_without_opening = false;
            let extra = u64::from(credit).saturating_sub(self.assumed);
            self.available = self.available.saturating_add(extra);
            return;
        }
        self.granted_without_opening = false;
        if !self.opening_received {
            self.opening_received = true;
            // The opening grant; what we assumed of it is counted already.
            let extra = u64::from(credit).saturating_sub(self.assumed);
            self.available = self.available.saturating_add(extra);
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(u64::from(credit));
        self.available = self.available.saturating_add(u64::from(credit));
    }

    /// Takes up to `want` bytes of credit for one DATA message; returns how
    /// many were taken (0 when there is no credit).
    pub fn take(&mut self, want: usize) -> usize {
        let n = (want as u64).min(self.available);
        self.available -= n;
        self.in_flight += n;
        n as usize
    }
}

/// Receive side: the window we granted the peer and the bytes it used.
///
/// Invariant: `peer_credit + buffered + unacked == window`, where `buffered`
/// is what sits in our read buffer and `unacked` what the application
/// consumed but we have not returned with an ACK yet.
#[derive(Debug, Clone)]
pub struct CreditWindow {
    window: u32,
    peer_credit: u64,
    buffered: u64,
    unacked: u64,
}

/// DATA arrived beyond the credit we granted: a protocol error (1002).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowExceeded;

impl CreditWindow {
    /// A window of `window` bytes, all granted by the opening ACK.
    pub fn new(window: u32) -> Self {
        CreditWindow {
            window,
            peer_credit: u64::from(window),
            buffered: 0,
            unacked: 0,
        }
    }

    /// The window granted so far: the initial one plus any growth.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Grants the peer `n` more bytes than the window had (from the
    /// connection's receive budget): the window grows by `n`, and the peer
    /// learns it with the next ACK.
    pub fn grow(&mut self, n: u32) {
        self.window = self.window.saturating_add(n);
        self.peer_credit += u64::from(n);
    }

    /// Bytes the peer may still send.
    pub fn peer_credit(&self) -> u64 {
        self.peer_credit
    }

    /// Bytes received and not yet consumed by the application.
    pub fn buffered(&self) -> u64 {
        self.buffered
    }

    /// Bytes consumed but not yet returned as credit.
    pub fn unacked(&self) -> u64 {
        self.unacked
    }

    /// `len` DATA bytes arrived. Fails if the peer exceeded its credit.
    pub fn on_data(&mut self, len: usize) -> Result<(), WindowExceeded> {
        let len = len as u64;
        if len > self.peer_credit {
            return Err(WindowExceeded);
        }
        self.peer_credit -= len;
        self.buffered += len;
        Ok(())
    }

    /// The application consumed `n` buffered bytes.
    pub fn on_consumed(&mut self, n: usize) {
        let n = (n as u64).min(self.buffered);
        self.buffered -= n;
        self.unacked += n;
    }

    /// Buffered bytes were thrown away (the stream was stopped or reset);
    /// they count as consumed so the invariant holds.
    pub fn on_discarded(&mut self, n: usize) {
        self.on_consumed(n);
    }

    /// The credit to return now, if any: once half the window was consumed,
    /// or once the buffer is empty (the reader caught up).
    pub fn take_ack(&mut self) -> Option<u32> {
        if self.unacked == 0 {
            return None;
        }
        if self.unacked >= u64::from(self.window / 2).max(1) || self.buffered == 0 {
            // `unacked <= window <= u32::MAX` by the invariant.
            let credit = u32::try_from(self.unacked).unwrap_or(u32::MAX);
            self.unacked -= u64::from(credit);
            self.peer_credit += u64::from(credit);
            return Some(credit);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ack_at_half_window_or_when_drained() {
        let mut w = CreditWindow::new(100);
        w.on_data(60).unwrap();
        w.on_consumed(30);
        assert_eq!(w.take_ack(), None, "30 < 50 and 30 still buffered");
        w.on_consumed(20);
        assert_eq!(w.take_ack(), Some(50));
        w.on_consumed(10);
        assert_eq!(w.take_ack(), Some(10), "buffer drained");
        assert_eq!(w.peer_credit(), 100);
        assert_eq!(w.on_data(101), Err(WindowExceeded));
    }

    #[test]
    fn send_credit_tracks_bytes_in_flight() {
        let mut c = SendCredit::new(0);
        assert_eq!(c.take(10), 0);
        c.on_ack(8);
        assert_eq!(c.take(10), 8);
        assert_eq!(c.in_flight(), 8);
        c.on_ack(5);
        assert_eq!(c.in_flight(), 3);
        assert_eq!(c.available(), 5);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Data(usize),
        Consume(usize),
        Discard(usize),
        Ack,
        Grow(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..5000).prop_map(Op::Data),
            (0usize..5000).prop_map(Op::Consume),
            (0usize..5000).prop_map(Op::Discard),
            Just(Op::Ack),
            (0u32..5000).prop_map(Op::Grow),
        ]
    }

    proptest! {
        /// Whatever happens, the peer can never have more than a window of
        /// bytes outstanding, and credit is conserved.
        #[test]
        fn window_invariant(window in 1u32..10_000, ops in proptest::collection::vec(op(), 0..200)) {
            let mut window = window;
            let mut w = CreditWindow::new(window);
            for op in ops {
                match op {
                    Op::Data(n) => {
                        let before = w.peer_credit();
                        match w.on_data(n) {
                            Ok(()) => prop_assert!(n as u64 <= before),
                            Err(WindowExceeded) => prop_assert!(n as u64 > before),
                        }
                    }
                    Op::Consume(n) => w.on_consumed(n),
                    Op::Discard(n) => w.on_discarded(n),
                    Op::Ack => {
                        if let Some(c) = w.take_ack() {
                            prop_assert!(c > 0);
                        }
                    }
                    Op::Grow(n) => {
                        w.grow(n);
                        window = window.saturating_add(n);
                    }
                }
                prop_assert_eq!(w.window(), window);
                prop_assert_eq!(w.peer_credit() + w.buffered() + w.unacked(), u64::from(window));
                prop_assert!(w.buffered() <= u64::from(window));
            }
        }

        /// A sender that only takes credit never sends more than was granted.
        #[test]
        fn send_never_exceeds_grants(grants in proptest::collection::vec(0u32..5000, 1..50),
                                     wants in proptest::collection::vec(0usize..8000, 1..50)) {
            let mut c = SendCredit::new(0);
            let mut granted = 0u64;
            let mut sent = 0u64;
            for (g, want) in grants.iter().zip(wants.iter()) {
                c.on_ack(*g);
                granted += u64::from(*g);
                let n = c.take(*want);
                prop_assert!(n <= *want);
                sent += n as u64;
                prop_assert!(sent <= granted);
                prop_assert_eq!(c.available(), granted - sent);
            }
        }
    }
}
