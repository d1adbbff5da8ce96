//! Per-stream state: one enum per half, with the transitions that the session
//! drives.
//!
//! ```text
//! send half (what we write)                  recv half (what the peer writes)
//!
//!        Open ──reset()──────────► Reset            Open ──stop()──────────► Stopped
//!         │  ╲                      ▲                │  ╲                      ▲
//!  finish()   ╲ ERROR(Write) / unsolicited           │   ╲ ERROR(Read) in      │ stop() (no wire
//!         │    ╲ CLOSE(Write) in   │ reset()         │    ╲─────────────► Reset │  message: the peer
//!         ▼     ╲─────────► Stopped│              CLOSE(Read) in                │  already finished)
//!     Finishing ──ERROR(Write)──►  ▲ (benign if      ▼                          │
//!         │  (queue drained, all     code 0)    FinReceived ─────────────────────┘
//!         │   bytes ACKed toward JS)               │ (buffer drained, EOF read)
//!         ▼                                        ▼
//!      Finished: CLOSE(Read) sent               EofRead
//! ```
//!
//! A half is *done on the wire* once it can neither send nor expect another
//! message for it: send `Finished`/`Reset`/`Stopped`, recv anything but `Open`
//! (after the peer finished, no ACK may go out: docs/protocol.md, on ending
//! a stream). A stream leaves the session once both halves are done on the
//! wire and the application dropped both handles.

/// The sending half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Writes are accepted (subject to credit).
    Open,
    /// `finish` was called: queued DATA drains, then (toward a JS peer) we
    /// wait until every byte was ACKed, then `CLOSE(Read)` goes out.
    Finishing,
    /// `CLOSE(Read)` was handed to the socket.
    Finished,
    /// We aborted with `ERROR(Read, code)`.
    Reset(u64),
    /// The peer stopped reading (`ERROR(Write, code)`); we replied `ERROR(Read, code)`.
    Stopped {
        /// The peer's code.
        code: u64,
        /// We had already asked to finish; with code 0 this is benign
        /// (docs/protocol.md, on ending a stream).
        after_finish: bool,
    },
}

impl SendState {
    /// No message will be sent or expected for this half any more.
    pub fn is_done(self) -> bool {
        !matches!(self, SendState::Open | SendState::Finishing)
    }

    /// A peer stop that does not count as an error: code 0 after we finished.
    pub fn is_benign_stop(self) -> bool {
        matches!(
            self,
            SendState::Stopped {
                code: 0,
                after_finish: true
            }
        )
    }
}

/// The receiving half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvState {
    /// Data may arrive; we return credit as it is consumed.
    Open,
    /// The peer finished (`CLOSE(Read)`); buffered data is still readable.
    FinReceived,
    /// The application read the end.
    EofRead,
    /// The peer aborted (`ERROR(Read, code)`); buffered data was discarded.
    Reset(u64),
    /// We stopped reading with this code.
    Stopped(u64),
}

impl RecvState {
    /// No message will be sent for this half any more.
    pub fn is_done(self) -> bool {
        !matches!(self, RecvState::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_states() {
        assert!(!SendState::Open.is_done());
        assert!(!SendState::Finishing.is_done());
        assert!(SendState::Finished.is_done());
        assert!(SendState::Reset(1).is_done());
        assert!(SendState::Stopped {
            code: 0,
            after_finish: true
        }
        .is_benign_stop());
        assert!(!SendState::Stopped {
            code: 1,
            after_finish: true
        }
        .is_benign_stop());
        assert!(!SendState::Stopped {
            code: 0,
            after_finish: false
        }
        .is_benign_stop());
        assert!(!RecvState::Open.is_done());
        assert!(RecvState::FinReceived.is_done());
    }
}
