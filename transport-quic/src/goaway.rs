//! The go-away notice on QUIC (docs/protocol.md, "Go-away"): a draining
//! strand server sends one DATAGRAM frame (RFC 9221) whose payload is
//! `strand-goaway` to a peer that advertised datagram support in its
//! transport parameters at set-up (strand peers do, with a receive buffer of
//! [`GOAWAY_DATAGRAM_BUFFER`] bytes). A peer that did not (the JS stack
//! leaves quiche's datagrams off) is sent nothing and sees only the close.
//!
//! Why a datagram rather than a control stream: it needs no stream id the
//! peers must agree on, takes no stream credit (a JS peer grants strand no
//! unidirectional streams, and a bidirectional one would look like a call),
//! and its negotiation is QUIC's own. It is unreliable: a lost notice costs
//! the client only the refusal of a call it sends meanwhile (−32001, not
//! started, which a reconnecting client sends again elsewhere) or the
//! close at the end.

use bytes::Bytes;

use crate::QuicConnection;

/// The payload of the go-away datagram.
pub const GOAWAY_DATAGRAM: &[u8] = b"strand-goaway";

/// The datagram receive buffer a strand endpoint advertises, in bytes:
/// what a peer's datagrams may hold in memory before quinn drops the
/// oldest. The notice is 13 bytes; nothing else is sent as a datagram.
pub const GOAWAY_DATAGRAM_BUFFER: usize = 1024;

impl QuicConnection {
    /// Sends the go-away notice if the peer advertised datagram support;
    /// returns whether it was sent.
    pub fn go_away(&self) -> bool {
        let conn = &self.shared.conn;
        conn.max_datagram_size()
            .is_some_and(|max| max >= GOAWAY_DATAGRAM.len())
            && conn
                .send_datagram(Bytes::from_static(GOAWAY_DATAGRAM))
                .is_ok()
    }

    /// Resolves once the peer's go-away notice arrived. Never resolves on
    /// a connection that closed without one.
    pub async fn going_away(&self) {
        loop {
            match self.shared.conn.read_datagram().await {
                Ok(datagram) if datagram.as_ref() == GOAWAY_DATAGRAM => return,
                Ok(_) => continue,
                Err(_) => std::future::pending::<()>().await,
            }
        }
    }
}
