//! `ws_session`: see tests/fuzz-harness (`strand_fuzz_harness::ws_session`) for what it
//! drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strand_fuzz_harness::ws_session(data));
