//! Control frames a peer still owes us after one of its streams is done.
//!
//! Ending a stream crosses frames in flight: a JS caller answers our
//! `CLOSE(Read)` with `CLOSE(Write)`, and a caller that read the whole answer
//! may stop the stream while our `CLOSE` is on its way. Both usually land
//! after the stream was released. They change nothing, but they are not
//! churn either: counted against the idle-control budget they capped honest
//! JS callers at the budget's refill rate. Each stream of the peer's is owed
//! [`OWED_PER_STREAM`] such frames, whether they land before or after the
//! release; past that they are churn again.
//!
//! Released streams are remembered by index in a fixed ring of the most
//! recent [`REMEMBERED`] ids (peer ids are opened in order), so the memory
//! is bounded and allocated with the session.

use super::super::stream_id::StreamId;

/// How many of the peer's most recent stream ids the ring covers. A frame
/// on a stream released longer ago than that is churn.
pub(super) const REMEMBERED: usize = 256;

/// Frames a finished stream may still bring: the answer to our last `CLOSE`
/// or `ERROR`, and a stop that crossed our finish.
pub(super) const OWED_PER_STREAM: u8 = 2;

/// What released streams of the peer's are still owed.
#[derive(Debug)]
pub(super) struct LateFrames {
    /// Frames still owed, by stream index modulo [`REMEMBERED`].
    owed: [u8; REMEMBERED],
    /// The highest stream index covered; the ring covers the
    /// [`REMEMBERED`] indices up to it.
    newest: Option<u64>,
}

impl Default for LateFrames {
    fn default() -> Self {
        LateFrames {
            owed: [0; REMEMBERED],
            newest: None,
        }
    }
}

impl LateFrames {
    /// Stream `id` of the peer's was released with `owed` frames still owed.
    pub(super) fn released(&mut self, id: StreamId, owed: u8) {
        let index = index(id);
        match self.newest {
            Some(newest) if index <= newest => {
                if newest - index >= REMEMBERED as u64 {
                    return; // older than the ring
                }
            }
            newest => {
                // The ring moves up to `index`: the slots it takes over
                // belonged to ids a lap older, whose debts are forgotten.
                let first = newest.map_or(0, |n| n + 1);
                let fresh = (index - first + 1).min(REMEMBERED as u64);
                for i in index + 1 - fresh..=index {
                    self.owed[slot(i)] = 0;
                }
                self.newest = Some(index);
            }
        }
        self.owed[slot(index)] = owed;
    }

    /// A frame that changed nothing arrived on released stream `id`: true
    /// when it was owed (and is now paid).
    pub(super) fn take(&mut self, id: StreamId) -> bool {
        let index = index(id);
        let covered = self
            .newest
            .is_some_and(|newest| index <= newest && newest - index < REMEMBERED as u64);
        if !covered {
            return false;
        }
        let owed = &mut self.owed[slot(index)];
        if *owed == 0 {
            return false;
        }
        *owed -= 1;
        true
    }
}

/// Ids of one initiator share their low bit: the rest numbers them in order.
fn index(id: StreamId) -> u64 {
    id.0 >> 1
}

fn slot(index: u64) -> usize {
    (index % REMEMBERED as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u64) -> StreamId {
        StreamId(2 * n)
    }

    #[test]
    fn owed_frames_are_paid_once_each() {
        let mut late = LateFrames::default();
        late.released(peer(3), 2);
        assert!(late.take(peer(3)));
        assert!(late.take(peer(3)));
        assert!(!late.take(peer(3)));
        // Lower ids never released owe nothing.
        assert!(!late.take(peer(2)));
        assert!(!late.take(peer(4)));
    }

    #[test]
    fn out_of_order_releases_inside_the_ring_are_kept() {
        let mut late = LateFrames::default();
        late.released(peer(10), 1);
        late.released(peer(7), 1);
        assert!(late.take(peer(7)));
        assert!(late.take(peer(10)));
    }

    #[test]
    fn the_ring_forgets_what_falls_behind_it() {
        let mut late = LateFrames::default();
        late.released(peer(0), 2);
        late.released(peer(REMEMBERED as u64 - 1), 2);
        assert!(late.take(peer(0)), "still inside the ring");
        late.released(peer(REMEMBERED as u64), 2);
        assert!(!late.take(peer(0)), "a lap behind");
        // A slot taken over holds nothing of its old id.
        late.released(peer(1), 2);
        late.released(peer(10 * REMEMBERED as u64 + 1), 0);
        assert!(!late.take(peer(REMEMBERED as u64 + 1)));
        assert!(!late.take(peer(10 * REMEMBERED as u64 + 1)));
        // Releasing an id older than the ring records nothing.
        late.released(peer(5), 2);
        assert!(!late.take(peer(5)));
    }
}
