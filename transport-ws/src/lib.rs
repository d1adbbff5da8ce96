//! WebSocket mux transport (in progress).

pub mod mux;
