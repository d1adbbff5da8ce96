//! Conformance suite and JS interop matrix: see the `tests/` folder of this crate.
