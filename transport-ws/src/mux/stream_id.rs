//! Stream ids and the role that decides their parity.
//!
//! Client-initiated streams have even ids (0, 2, 4, …), server-initiated ones
//! odd ids (1, 3, 5, …); each side counts up by two and never reuses an id on a
//! connection. The role is data, not duplicated code (like yamux's `Mode`).

use std::fmt;

use super::varint;

/// Which end of the WebSocket this session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that sent the HTTP upgrade request; opens even ids.
    Client,
    /// The side that accepted the upgrade; opens odd ids.
    Server,
}

impl Role {
    /// The other role.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }

    /// The first id this role opens.
    pub fn first_id(self) -> StreamId {
        match self {
            Role::Client => StreamId(0),
            Role::Server => StreamId(1),
        }
    }
}

/// A stream id on the mux: a varint, never reused on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u64);

impl StreamId {
    /// Which role opened this stream (from its parity).
    pub fn initiator(self) -> Role {
        if self.0 & 1 == 0 {
            Role::Client
        } else {
            Role::Server
        }
    }

    /// The next id the same role opens, or `None` once ids are exhausted.
    pub fn next(self) -> Option<StreamId> {
        self.0
            .checked_add(2)
            .filter(|id| *id <= varint::MAX)
            .map(StreamId)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_is_the_role() {
        assert_eq!(Role::Client.first_id(), StreamId(0));
        assert_eq!(Role::Server.first_id(), StreamId(1));
        assert_eq!(StreamId(4).initiator(), Role::Client);
        assert_eq!(StreamId(7).initiator(), Role::Server);
        assert_eq!(StreamId(5).next(), Some(StreamId(7)));
        assert_eq!(StreamId(varint::MAX).next(), None);
        assert_eq!(Role::Client.peer(), Role::Server);
    }
}
