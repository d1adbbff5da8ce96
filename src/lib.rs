//! strand facade.
