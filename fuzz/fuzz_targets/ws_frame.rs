//! The mux frame decoder on arbitrary bytes: it must never panic, and any
//! frame it accepts must re-encode to bytes that decode to the same frame.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strand_transport_ws::mux::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(Bytes::copy_from_slice(data)) {
        let again = Frame::decode(frame.to_bytes()).expect("re-encoded frame decodes");
        assert_eq!(again, frame);
    }
});
