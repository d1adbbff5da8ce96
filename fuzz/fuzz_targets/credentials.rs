//! `credentials`: see tests/fuzz-harness (`strand_fuzz_harness::credentials`) for what it
//! drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strand_fuzz_harness::credentials(data));
