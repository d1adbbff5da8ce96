//! `rpc_message`: see tests/fuzz-harness (`strand_fuzz_harness::rpc_message`) for what it
//! drives and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strand_fuzz_harness::rpc_message(data));
