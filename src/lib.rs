//! strand: an RPC framework with pluggable transports (facade crate, in progress).

pub use strand_rpc_core as core;
pub use strand_tls as tls;
pub use strand_transport_quic as quic;
pub use strand_transport_ws as ws;
