#!/usr/bin/env bash
# A short libFuzzer run of every fuzz target (FUZZ_SECONDS each, default 30),
# for CI or by hand: `bash fuzz/smoke.sh` (FUZZ_TARGETS="ws_frame ws_session"
# runs only those).
#
# - Needs cargo-fuzz. If it is missing it is installed from crates.io
#   (`cargo install cargo-fuzz --locked`, about 2-3 minutes on 2 cores);
#   FUZZ_INSTALL=0 skips instead.
# - Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it take the -Z
#   flags cargo-fuzz passes, and `-s none` turns off AddressSanitizer (which
#   needs nightly; the project forbids unsafe code anyway).
# - The checked-in corpus (fuzz/corpus/<target>/) seeds each run and is not
#   modified: what the run finds goes to a temporary folder.
#
# Exit status:
# - 0 after every target ran without a crash, or "skipped: <reason>" when this
#   machine cannot fuzz (no cargo, no C++ compiler for libFuzzer, cargo-fuzz
#   missing and not installable);
# - 1 on a crash, a hang or an out-of-memory input (the input is printed in
#   base64 and kept in fuzz/artifacts/; copied into fuzz/corpus/<target>/,
#   `cargo test -p strand-fuzz-harness` replays it), or when the fuzz targets
#   do not build (a broken target is a failure, not a skip).
set -uo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-30}
skip() {
  echo "fuzz smoke skipped: $*"
  exit 0
}
fail() {
  echo "fuzz smoke FAILED: $*"
  exit 1
}
now() { date +%s; }
begun=$(now)

command -v cargo >/dev/null 2>&1 || skip "no cargo on PATH"
# libfuzzer-sys compiles libFuzzer (C++) in its build script.
if ! command -v "${CXX:-c++}" >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 &&
  ! command -v clang++ >/dev/null 2>&1; then
  skip "no C++ compiler to build libFuzzer with (c++, g++ or clang++)"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  [ "${FUZZ_INSTALL:-1}" = 1 ] || skip "cargo-fuzz is not installed (FUZZ_INSTALL=0)"
  echo "cargo-fuzz is not installed: installing it (cargo install cargo-fuzz --locked)"
  started=$(now)
  if ! timeout 900 cargo install cargo-fuzz --locked; then
    skip "cargo-fuzz is not installed and could not be installed"
  fi
  echo "installed cargo-fuzz in $(($(now) - started)) s"
fi
cargo fuzz --version

export RUSTC_BOOTSTRAP=1
target_dir=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi

started=$(now)
if ! cargo fuzz build -s none "${target_dir[@]}"; then
  fail "the fuzz targets do not build (see above)"
fi
echo "built the fuzz targets in $(($(now) - started)) s"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p artifacts
status=0
for target in $targets; do
  mkdir -p "$work/$target" "corpus/$target"
  log="$work/$target.log"
  echo "=== $target (${seconds} s)"
  # -timeout: one input running 25 s is a hang; the outer timeout is a
  # last resort should libFuzzer itself stall.
  timeout $((seconds + 300)) cargo fuzz run -s none "${target_dir[@]}" "$target" \
    "$work/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$target-" -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1
  grep -E '^stat::number_of_executed_units' "$log"
  if [ $rc -ne 0 ]; then
    status=1
    echo "$target: FAILED (exit $rc); the end of its log:"
    tail -60 "$log"
    grep -E '^Base64: ' "$log" | head -1
  fi
done
echo "fuzz smoke took $(($(now) - begun)) s"
if [ $status -ne 0 ]; then
  fail "a target crashed, hung or did not run (see above)"
fi
echo "fuzz smoke: every target ran ${seconds} s without a crash"
