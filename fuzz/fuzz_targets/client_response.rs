//! `client_response`: see tests/fuzz-harness (`strand_fuzz_harness::client_response`) for what it
//! drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strand_fuzz_harness::client_response(data));
