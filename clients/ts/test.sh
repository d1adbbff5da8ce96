#!/usr/bin/env bash
# The TypeScript client's whole check, as CI runs it (from anywhere):
#
#   clients/ts/test.sh
#
# 1. npm ci (pinned by package-lock.json);
# 2. build: tsc + the minified bundle, whose gzipped size is printed; fails
#    over 12 KiB, or if cli/demo/strand-client.min.js (embedded by `strand
#    serve` for /demo, committed) no longer matches the sources;
# 3. the Node tier (wire, mux, RPC against `strand serve` and against a
#    @matrixai/ws + @matrixai/rpc server; OpenRPC: the documents against the
#    vendored meta-schema, `strand codegen ts` output fresh, compiled with
#    `tsc --strict` and called);
# 4. the browser tier in headless Chromium (/usr/bin/chromium, or $CHROMIUM),
#    the generated client's round trip included.
#
# The `strand` binary: $STRAND_BIN if set, otherwise built here with
# `cargo build -p strand-cli` (its target dir: $CARGO_TARGET_DIR, default
# <repo>/target). Without Chromium the browser tier is skipped with a message,
# unless CI=true: then Chromium is installed (apt-get update, apt-get install
# -y chromium; Debian's package, nothing else is downloaded by the tests).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"
start=$SECONDS
step() { printf '\n== %s (%ds)\n' "$1" $((SECONDS - start)); }

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error --prefer-offline

step "build"
npm run --silent build
if ! git -C "$repo" diff --quiet -- cli/demo/strand-client.min.js; then
  echo "cli/demo/strand-client.min.js differs from a fresh build: commit the rebuilt file" >&2
  exit 1
fi

if [ -z "${STRAND_BIN:-}" ]; then
  step "cargo build -p strand-cli"
  (cd "$repo" && cargo build -p strand-cli ${CARGO_BUILD_JOBS:+-j "$CARGO_BUILD_JOBS"})
  STRAND_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/strand"
fi
case "$STRAND_BIN" in /*) ;; *) STRAND_BIN="$PWD/$STRAND_BIN" ;; esac
export STRAND_BIN
echo "strand: $STRAND_BIN"

step "node tier"
node --test --test-concurrency=1 test/node/

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ] && [ "${CI:-}" = "true" ]; then
  step "apt-get install -y chromium"
  sudo_=""
  [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq --no-install-recommends chromium
fi
if [ -x "$CHROMIUM" ]; then
  step "browser tier ($CHROMIUM)"
  CHROMIUM="$CHROMIUM" node --test --test-concurrency=1 test/browser/
else
  echo "SKIP browser tier: $CHROMIUM not found (set CHROMIUM, or CI=true to install it)"
fi

step "done"
