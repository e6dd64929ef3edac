#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the libFuzzer target of the RSC engine, tests/unit/fuzz-virtio-net-rsc.c,
# with clang into build/fuzz/ and run it for FUZZ_SECONDS (default 120) on a
# scratch copy of the seed corpus fuzz/corpus/virtio-net-rsc/.  The
# repository's corpus is never written to.
#
# Prints libFuzzer's final statistics.  Exits 1 when the target finds a crash,
# an invariant violation, a sanitizer report, a leak or a timeout; the input is
# then saved as build/fuzz/crash-* (or leak-*, timeout-*) and its report is in
# build/fuzz/fuzz.log.  Reproduce with: build/fuzz/fuzz-virtio-net-rsc FILE
#
# Needs clang and its fuzzer runtime (Debian: clang, libclang-rt-14-dev), and a
# built tree (libqemuutil.a and the generated headers): run 'make' first.
# Does not touch build/qemu/build.
#
# Usage: [FUZZ_SECONDS=N] scripts/fuzz.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=fuzz
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
# shellcheck source=scripts/fuzz-build.sh
. "$repo/scripts/fuzz-build.sh"

seconds=${FUZZ_SECONDS:-120}
case $seconds in
    ''|*[!0-9]*) die "FUZZ_SECONDS must be a number of seconds, not '$seconds'" ;;
esac
out=$repo/build/fuzz
seeds=$repo/fuzz/corpus/virtio-net-rsc
bin=$out/fuzz-virtio-net-rsc
log=$out/fuzz.log

[ -d "$seeds" ] || die "the seed corpus $seeds is missing"
mkdir -p "$out"
fuzz_build "$bin" asan

# A scratch copy of the seeds: new corpus entries go there, not into the repo.
work=$out/corpus
rm -rf "$work"
mkdir -p "$work"
cp "$seeds"/* "$work/"
rm -f "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*

echo "fuzz: running for ${seconds}s on $(find "$work" -type f | wc -l) seeds (log: build/fuzz/fuzz.log)"
rc=0
"$bin" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=512 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$out/" \
    "$work" > "$log" 2>&1 || rc=$?

grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -n 2 || true
grep -E '^stat::' "$log" || true
if [ $rc != 0 ]; then
    echo "fuzz: the target failed (exit $rc); its report:" >&2
    pat='invariant violated|^==[0-9]+==ERROR|runtime error|deadly signal|ALARM|out-of-memory'
    if grep -qE "$pat" "$log"; then
        grep -E -A40 "$pat" "$log" | head -n 60 >&2 || true
    else
        tail -n 40 "$log" >&2
    fi
    for f in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*; do
        if [ -e "$f" ]; then
            echo "fuzz: input saved as ${f#"$repo"/}; reproduce: build/fuzz/fuzz-virtio-net-rsc ${f#"$repo"/}" >&2
        fi
    done
    exit 1
fi
echo "fuzz: no crash in ${seconds}s"
