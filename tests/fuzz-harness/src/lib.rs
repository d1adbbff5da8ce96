//! strand's fuzz harnesses: one function per fuzz target, from bytes to
//! nothing, that panics when it finds a bug.
//!
//! The libFuzzer targets in `fuzz/fuzz_targets/` are one line each: they
//! call the function of the same name here. The replay test of this crate
//! (`tests/replay.rs`) calls the same functions on every file of the
//! checked-in corpus (`fuzz/corpus/<target>/`) and on seeded pseudo-random
//! inputs, so `cargo test` replays what the fuzzer found, on stable Rust.
//! docs/reliability.md, "Fuzzing", lists the targets and their invariants.
//!
//! Structured targets read their input with [`arbitrary::Unstructured`], so
//! every byte string is a valid input and corpus files are plain bytes.

mod client;
mod credentials;
mod frame;
mod json;
mod message;
mod session;
mod upgrade;
mod util;

pub use client::client_response;
pub use credentials::credentials;
pub use frame::ws_frame;
pub use json::json_reader;
pub use message::rpc_message;
pub use session::ws_session;
pub use upgrade::ws_upgrade;

/// A fuzz target: its name (`fuzz/fuzz_targets/<name>.rs`, corpus in
/// `fuzz/corpus/<name>/`) and its harness.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input; panics on a bug.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "ws_frame",
        run: ws_frame,
    },
    Target {
        name: "ws_session",
        run: ws_session,
    },
    Target {
        name: "ws_upgrade",
        run: ws_upgrade,
    },
    Target {
        name: "json_reader",
        run: json_reader,
    },
    Target {
        name: "rpc_message",
        run: rpc_message,
    },
    Target {
        name: "credentials",
        run: credentials,
    },
    Target {
        name: "client_response",
        run: client_response,
    },
];
