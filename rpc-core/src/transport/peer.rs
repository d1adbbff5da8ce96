//! What a connection knows about its peer: [`PeerInfo`], shared by every call
//! on the connection, with typed [`Extensions`] for what only one carrier has.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// What is known about the other end of a connection. Shared by every call on it.
///
/// The fields every carrier can fill are plain fields; anything else (the
/// WebSocket upgrade request, for one) travels in [`PeerInfo::extensions`],
/// keyed by its type: `peer.extensions.get::<UpgradeRequest>()`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PeerInfo {
    /// Name of the carrier (`"memory"`, `"ws"`, `"wss"`, `"quic"`, ...),
    /// for logs and diagnostics.
    pub transport: &'static str,
    /// The peer's socket address, when the carrier has one.
    pub remote_addr: Option<SocketAddr>,
    /// The peer's TLS certificate chain (DER, leaf first), when it presented one.
    pub certificates: Vec<Bytes>,
    /// Carrier-specific facts, filled by the transport.
    pub extensions: Extensions,
}

impl PeerInfo {
    /// Peer info with only the carrier name set.
    pub fn new(transport: &'static str) -> Self {
        PeerInfo {
            transport,
            ..Default::default()
        }
    }

    /// Sets the remote address.
    pub fn with_remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// Sets the peer's certificate chain (DER, leaf first).
    pub fn with_certificates(mut self, certificates: Vec<Bytes>) -> Self {
        self.certificates = certificates;
        self
    }

    /// Adds a carrier-specific fact (replacing one of the same type).
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }
}

/// A map from type to value: one value of each type at most.
///
/// Transports put what only they know here; handlers read it back by type.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn CloneAny>>,
}

impl Extensions {
    /// An empty map.
    pub fn new() -> Self {
        Extensions::default()
    }

    /// Inserts `value`, returning the previous value of that type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.into_any().downcast().ok().map(|b| *b))
    }

    /// The value of type `T`, if there is one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|v| (**v).as_any().downcast_ref())
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many values the map holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

impl Clone for Extensions {
    fn clone(&self) -> Self {
        Extensions {
            map: self
                .map
                .iter()
                .map(|(k, v)| (*k, (**v).clone_box()))
                .collect(),
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

/// `Any` that can also clone itself behind a box.
trait CloneAny: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn CloneAny>;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Clone + Send + Sync + 'static> CloneAny for T {
    fn clone_box(&self) -> Box<dyn CloneAny> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Token(&'static str);

    #[test]
    fn extensions_keep_one_value_per_type_and_survive_clone() {
        let mut ext = Extensions::new();
        assert!(ext.get::<Token>().is_none());
        assert_eq!(ext.insert(Token("a")), None);
        assert_eq!(ext.insert(Token("b")), Some(Token("a")));
        ext.insert(7u32);
        let copy = ext.clone();
        assert_eq!(copy.get::<Token>(), Some(&Token("b")));
        assert_eq!(copy.get::<u32>(), Some(&7));
        assert_eq!(copy.len(), 2);
    }
}
