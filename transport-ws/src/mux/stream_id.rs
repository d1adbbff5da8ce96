//! Stream ids and the role that decides their parity.
//!
//! Client-initiated streams have even ids (0, 2, 4, …), server-initiated ones
//! odd ids (1, 3, 5, …); each side counts up by two and never reuses an id on a
//! connection. The role is data, not duplicated code (like yamux's `Mode`).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

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

/// A map keyed by stream id.
///
/// Every frame and every stream operation looks its stream up, so the map
/// hashes ids with a seeded mix (the splitmix64 finaliser: a few
/// instructions) instead of SipHash. The seed is random per map, so a peer,
/// which picks the ids of the streams it opens, cannot aim them at one bucket.
pub type StreamMap<V> = HashMap<StreamId, V, BuildStreamIdHasher>;

/// Builds the hashers of a [`StreamMap`], with a random seed per map.
#[derive(Debug, Clone)]
pub struct BuildStreamIdHasher {
    seed: u64,
}

impl Default for BuildStreamIdHasher {
    fn default() -> Self {
        // RandomState already carries fresh per-instance randomness.
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        BuildStreamIdHasher { seed }
    }
}

impl BuildHasher for BuildStreamIdHasher {
    type Hasher = StreamIdHasher;

    fn build_hasher(&self) -> StreamIdHasher {
        StreamIdHasher(self.seed)
    }
}

/// The hasher of a [`StreamMap`]; a [`StreamId`] hashes as one `u64`.
#[derive(Debug)]
pub struct StreamIdHasher(u64);

impl Hasher for StreamIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by StreamId (it writes one u64); kept correct for any key.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0 ^ n);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// splitmix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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

    #[test]
    fn stream_map_spreads_ids_a_peer_could_pick() {
        let build = BuildStreamIdHasher::default();
        for step in [2u64, 1 << 10, 1 << 32] {
            let buckets: std::collections::HashSet<u64> = (0..1024u64)
                .map(|i| build.hash_one(StreamId(i * step)) & 1023)
                .collect();
            // A uniform hash fills about 63 % of 1024 buckets with 1024 keys.
            assert!(
                buckets.len() > 550,
                "step {step}: {} buckets",
                buckets.len()
            );
        }
        let mut map = StreamMap::default();
        map.insert(StreamId(7), "seven");
        assert_eq!(map.get(&StreamId(7)), Some(&"seven"));
        assert_eq!(map.get(&StreamId(9)), None);
    }
}
