//! How connections end: a carrier-neutral [`CloseCode`], and the
//! [`CloseReason`] every stream of a closed connection fails with.
//!
//! Each transport maps the codes to its own wire (a WebSocket close code, a
//! QUIC application error code); the table is in docs/protocol.md, "Closing
//! connections".

use std::fmt;

/// Why a connection was closed, in terms every carrier can express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// The connection is done; nothing went wrong.
    Normal,
    /// The closing side is going away (a server shutting down or draining).
    GoingAway,
    /// The peer broke the protocol (a malformed frame, credit exceeded).
    Protocol,
    /// The peer broke a policy: a budget or limit meant to stop abuse.
    Policy,
    /// The peer sent a message larger than the limit.
    TooBig,
    /// The closing side failed internally.
    Internal,
    /// The connection ended without a close handshake (a broken socket, a
    /// timeout). Only ever reported, never sent.
    Abnormal,
    /// An application-defined code, carried as is where the carrier allows
    /// it (WebSocket 3000-4999, any QUIC application code).
    Application(u32),
}

impl CloseCode {
    /// Whether this code reports an error rather than an orderly end.
    pub fn is_error(self) -> bool {
        !matches!(self, CloseCode::Normal | CloseCode::GoingAway)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseCode::Normal => f.write_str("normal"),
            CloseCode::GoingAway => f.write_str("going away"),
            CloseCode::Protocol => f.write_str("protocol error"),
            CloseCode::Policy => f.write_str("policy violation"),
            CloseCode::TooBig => f.write_str("message too big"),
            CloseCode::Internal => f.write_str("internal error"),
            CloseCode::Abnormal => f.write_str("abnormal"),
            CloseCode::Application(code) => write!(f, "application code {code}"),
        }
    }
}

/// Why a connection closed: who closed it, a code and a reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// Whether this side or the peer closed the connection.
    pub initiator: CloseInitiator,
    /// What the close means, mapped from the carrier's own code.
    pub code: CloseCode,
    /// The reason text, possibly empty.
    pub reason: String,
}

impl CloseReason {
    /// A close started by this side.
    pub fn local(code: CloseCode, reason: impl Into<String>) -> Self {
        CloseReason {
            initiator: CloseInitiator::Local,
            code,
            reason: reason.into(),
        }
    }

    /// A close started by the peer.
    pub fn peer(code: CloseCode, reason: impl Into<String>) -> Self {
        CloseReason {
            initiator: CloseInitiator::Peer,
            code,
            reason: reason.into(),
        }
    }

    /// A connection lost without a close handshake (I/O error, timeout).
    pub fn lost(reason: impl Into<String>) -> Self {
        CloseReason {
            initiator: CloseInitiator::Lost,
            code: CloseCode::Abnormal,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.initiator {
            CloseInitiator::Local => "closed locally",
            CloseInitiator::Peer => "closed by peer",
            CloseInitiator::Lost => "lost",
        };
        write!(f, "{who} ({})", self.code)?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// Who ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseInitiator {
    /// This side closed it.
    Local,
    /// The peer closed it.
    Peer,
    /// It broke: I/O error, idle timeout, or the peer vanished without a close.
    Lost,
}
