//! Compile tests: every signature rule gives a clear, spanned error
//! (`tests/ui/*.rs` with their expected `.stderr`), and a full service
//! compiles (`tests/pass/*.rs`). Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p strand-macros --test ui` and review it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
