//! Runs one input file through one target: `cargo test -p strand-fuzz-harness
//! --test one -- --nocapture` with `FUZZ_TARGET` and `FUZZ_INPUT` set (and
//! `STRAND_FUZZ_TRACE=1` for the session target's trace). Does nothing
//! without them.

#[test]
fn one_input() {
    let (Some(target), Some(input)) = (
        std::env::var_os("FUZZ_TARGET"),
        std::env::var_os("FUZZ_INPUT"),
    ) else {
        return;
    };
    let target = strand_fuzz_harness::TARGETS
        .iter()
        .find(|t| *t.name == *target)
        .expect("a known target");
    let data = std::fs::read(input).expect("the input file");
    (target.run)(&data);
}
