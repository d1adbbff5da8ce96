//! WebSocket mux transport (in progress).
