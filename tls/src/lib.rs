//! TLS configuration shared by strand transports (in progress).
