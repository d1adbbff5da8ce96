#!/usr/bin/env bash
# Machine instructions per call of a timed case, for each system named:
# the case runs twice under callgrind (valgrind), measured for a short and
# a long time, and the difference in instructions is divided by the
# difference in calls, so that set-up, handshakes and warm-up cancel out.
#
# Unlike calls per second, the count barely moves from run to run (within
# 2 %, 0.1 % for js_client's server), on a quiet machine or a busy one: the
# way to compare two builds of strand on a host whose timings swing. It
# counts work, not time: waiting, wake-ups and cache misses do not show,
# callgrind runs the threads one at a time, so batching can differ from a
# real run, and it counts each byte a `rep movsb`/`rep stosb` moves (glibc's
# memcpy and memset from about 2 KiB) as an instruction.
#
#   bench/instructions.sh [--short MS] [--long MS] [--count KEY] <case> <system>...
#
# KEY is the case's counter in its JSON line (default `calls`: unary1,
# unary64, js_client). js_client counts the server alone (the client is a
# child process, not traced). Uses bench/target/release/strand-bench, or
# $STRAND_BENCH; needs valgrind.
set -euo pipefail

short=2000
long=10000
count=calls
while [[ $# -gt 0 ]]; do
    case "$1" in
        --short) short=$2; shift 2 ;;
        --long) long=$2; shift 2 ;;
        --count) count=$2; shift 2 ;;
        *) break ;;
    esac
done
if [[ $# -lt 2 ]]; then
    grep -m1 '^#   bench/instructions.sh' "$0" | sed 's/^# *//' >&2
    exit 2
fi
case_name=$1
shift

here=$(cd "$(dirname "$0")" && pwd)
bin=${STRAND_BENCH:-$here/target/release/strand-bench}
if ! command -v valgrind >/dev/null; then
    echo "valgrind is not installed (Debian: apt-get install valgrind)" >&2
    exit 2
fi
if [[ ! -x $bin ]]; then
    echo "no $bin: cargo build --release --manifest-path bench/Cargo.toml" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints "<calls> <instructions>" of one run.
run() {
    local system=$1 ms=$2
    valgrind --tool=callgrind --trace-children=no \
        --callgrind-out-file="$work/out" \
        "$bin" case "$case_name" "$system" --measure-ms "$ms" \
        >"$work/stdout" 2>"$work/stderr" || {
        echo "$system failed:" >&2
        cat "$work/stdout" "$work/stderr" >&2
        exit 1
    }
    local calls instr
    calls=$(grep -o "\"$count\":[0-9]*" "$work/stdout" | head -1 | cut -d: -f2)
    instr=$(grep -o 'Collected : [0-9]*' "$work/stderr" | awk '{print $3}')
    if [[ -z $calls || -z $instr ]]; then
        echo "$system: no \"$count\" or no instruction count:" >&2
        cat "$work/stdout" >&2
        exit 1
    fi
    echo "$calls $instr"
}

printf '%-14s %10s %10s %16s %16s %12s\n' system "$count" "$count" instructions instructions "per ${count%s}"
printf '%-14s %10s %10s %16s %16s %12s\n' "" "${short} ms" "${long} ms" "${short} ms" "${long} ms" ""
for system in "$@"; do
    short_run=$(run "$system" "$short")
    long_run=$(run "$system" "$long")
    read -r c1 i1 <<<"$short_run"
    read -r c2 i2 <<<"$long_run"
    if [[ $c2 -le $c1 ]]; then
        echo "$system: the long run made no more $count than the short one ($c1, $c2)" >&2
        exit 1
    fi
    per=$(( (i2 - i1) / (c2 - c1) ))
    printf '%-14s %10d %10d %16d %16d %12d\n' "$system" "$c1" "$c2" "$i1" "$i2" "$per"
done
