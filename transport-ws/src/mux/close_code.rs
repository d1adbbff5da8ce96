//! WebSocket close codes (RFC 6455 section 7.4) and their mapping to and from
//! strand's carrier-neutral [`CloseCode`] (docs/protocol.md, "Connection
//! close codes").

use strand_rpc_core::transport::CloseCode;

/// Normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Going away (a server shutting down or draining).
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Protocol error.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Policy violation (a budget meant to stop abuse was exceeded).
pub const CLOSE_POLICY: u16 = 1008;
/// Message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Internal error.
pub const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// The close code a close frame carries for `code`. Application codes
/// outside the range a close frame may carry for them (3000-4999) are sent
/// as 1000; [`CloseCode::Abnormal`] (never sent by a peer) as 1011.
pub fn to_wire(code: CloseCode) -> u16 {
    match code {
        CloseCode::Normal => CLOSE_NORMAL,
        CloseCode::GoingAway => CLOSE_GOING_AWAY,
        CloseCode::Protocol => CLOSE_PROTOCOL_ERROR,
        CloseCode::Policy => CLOSE_POLICY,
        CloseCode::TooBig => CLOSE_TOO_BIG,
        CloseCode::Internal | CloseCode::Abnormal => CLOSE_INTERNAL_ERROR,
        CloseCode::Application(n) => match u16::try_from(n) {
            Ok(n @ 3000..=4999) => n,
            _ => CLOSE_NORMAL,
        },
        _ => CLOSE_INTERNAL_ERROR,
    }
}

/// What a received close code means. 1005 ("no status") is a normal close;
/// 1003 (unacceptable data) and 1007 (invalid payload) are protocol errors;
/// codes without a meaning of their own are the application's.
pub fn from_wire(code: u16) -> CloseCode {
    match code {
        CLOSE_NORMAL | 1005 => CloseCode::Normal,
        CLOSE_GOING_AWAY => CloseCode::GoingAway,
        CLOSE_PROTOCOL_ERROR | 1003 | 1007 => CloseCode::Protocol,
        CLOSE_POLICY => CloseCode::Policy,
        CLOSE_TOO_BIG => CloseCode::TooBig,
        CLOSE_INTERNAL_ERROR => CloseCode::Internal,
        1006 => CloseCode::Abnormal,
        n => CloseCode::Application(u32::from(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_codes_round_trip_and_unsendable_ones_fall_back() {
        for code in [
            CloseCode::Normal,
            CloseCode::GoingAway,
            CloseCode::Protocol,
            CloseCode::Policy,
            CloseCode::TooBig,
            CloseCode::Internal,
            CloseCode::Application(4000),
        ] {
            assert_eq!(from_wire(to_wire(code)), code);
        }
        assert_eq!(to_wire(CloseCode::Application(42)), CLOSE_NORMAL);
        assert_eq!(to_wire(CloseCode::Abnormal), CLOSE_INTERNAL_ERROR);
        assert_eq!(from_wire(1005), CloseCode::Normal);
    }
}
