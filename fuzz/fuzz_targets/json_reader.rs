//! `json_reader`: see tests/fuzz-harness (`strand_fuzz_harness::json_reader`) for what it
//! drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strand_fuzz_harness::json_reader(data));
