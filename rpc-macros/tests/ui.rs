//! Compile tests: every signature rule gives a clear, spanned error
//! (`tests/ui/*.rs` with their expected `.stderr`). Regenerate the expected
//! output with `TRYBUILD=overwrite cargo test -p strand-macros --test ui` and
//! review it.
//!
//! The services that must compile without warnings (`tests/pass/*.rs`) are
//! test binaries of their own (`[[test]]` in Cargo.toml): with failures
//! only, trybuild type-checks its cases and does not build the code of
//! every dependency again in its own target folder (minutes on two cores).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
