//! Handshakes in progress per source address: one address (a slowloris
//! behind one host) takes at most
//! [`WsServerConfig::max_pending_handshakes_per_ip`](crate::WsServerConfig::max_pending_handshakes_per_ip)
//! of the listener's handshake slots, so clients from other addresses still
//! find one (docs/reliability.md, "Hostile peers").
//!
//! IPv6 sources are counted per /64: one host is commonly given a whole /64,
//! so counting single addresses would bound nothing. An IPv4-mapped IPv6
//! address counts as its IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Counts handshakes in progress per source; cloned into each handshake
/// task through the [`SourceSlot`] it takes.
#[derive(Debug)]
pub(crate) struct SourceLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max_per_source: usize,
    /// Sources with at least one handshake in progress: at most the
    /// listener's pending-handshake bound of entries (an entry leaves at 0).
    counts: Mutex<HashMap<IpAddr, usize>>,
    in_progress: AtomicUsize,
    refused: AtomicU64,
}

impl SourceLimit {
    /// At most `max_per_source` (at least 1) handshakes per source at once.
    pub(crate) fn new(max_per_source: usize) -> Self {
        SourceLimit {
            inner: Arc::new(Inner {
                max_per_source: max_per_source.max(1),
                counts: Mutex::new(HashMap::new()),
                in_progress: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// A slot for one handshake from `ip`, or `None` (counted as refused)
    /// when that source already has its share in progress.
    pub(crate) fn try_take(&self, ip: IpAddr) -> Option<SourceSlot> {
        let source = source_of(ip);
        let mut counts = self.inner.counts.lock();
        let count = counts.entry(source).or_insert(0);
        if *count >= self.inner.max_per_source {
            drop(counts);
            self.inner.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *count += 1;
        drop(counts);
        self.inner.in_progress.fetch_add(1, Ordering::Relaxed);
        Some(SourceSlot {
            inner: self.inner.clone(),
            source,
        })
    }

    /// Handshakes in progress, all sources together.
    pub(crate) fn in_progress(&self) -> usize {
        self.inner.in_progress.load(Ordering::Relaxed)
    }

    /// Connections closed at once because their source had its share.
    pub(crate) fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

/// One handshake's share of its source's bound, given back when dropped
/// (the handshake finished, failed or timed out).
#[derive(Debug)]
pub(crate) struct SourceSlot {
    inner: Arc<Inner>,
    source: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self.inner.counts.lock();
        if let Some(count) = counts.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.source);
            }
        }
        drop(counts);
        self.inner.in_progress.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The key a source is counted under: the IPv4 address, or the /64 of an
/// IPv6 one.
fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_each_source_and_frees_slots_when_dropped() {
        let limit = SourceLimit::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.try_take(a).unwrap();
        let _second = limit.try_take(a).unwrap();
        assert!(limit.try_take(a).is_none());
        let _other = limit.try_take(b).expect("another source has its own share");
        assert_eq!((limit.in_progress(), limit.refused()), (3, 1));
        drop(first);
        assert!(limit.try_take(a).is_some());
        assert_eq!(limit.inner.counts.lock().len(), 2);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let limit = SourceLimit::new(1);
        let _one = limit.try_take("2001:db8::1".parse().unwrap()).unwrap();
        assert!(
            limit
                .try_take("2001:db8::ffff:2".parse().unwrap())
                .is_none(),
            "same /64"
        );
        assert!(limit.try_take("2001:db8:0:1::1".parse().unwrap()).is_some());
        let _v4 = limit.try_take("192.0.2.7".parse().unwrap()).unwrap();
        assert!(limit
            .try_take("::ffff:192.0.2.7".parse().unwrap())
            .is_none());
        assert_eq!(limit.refused(), 2);
    }

    #[test]
    fn sources_leave_the_table_at_zero() {
        let limit = SourceLimit::new(8);
        for i in 0..100u8 {
            drop(limit.try_take(IpAddr::from([10, 0, 0, i])).unwrap());
        }
        assert!(limit.inner.counts.lock().is_empty());
        assert_eq!(limit.in_progress(), 0);
    }
}
