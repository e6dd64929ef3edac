#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Line and branch coverage of the RSC engine (hw/net/virtio-net-rsc.c) by
# the libFuzzer target's inputs: build the target with clang source-based
# coverage into build/fuzz-coverage/, replay the committed corpus
# fuzz/corpus/virtio-net-rsc/ alone, then together with what the last
# 'make fuzz' found (build/fuzz/corpus/, if any), and print llvm-cov's
# report for each and the engine's lines that no input reached.
#
# FUZZ_COVERAGE_MIN="LINES BRANCHES" (percent, default "95 85") is what the
# committed corpus alone must reach; below it the script exits 1.
#
# Needs clang, llvm (llvm-profdata, llvm-cov) and libclang-rt-14-dev, and a
# built tree: run 'make' first.
#
# Usage: [FUZZ_COVERAGE_MIN="95 85"] scripts/fuzz-coverage.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=fuzz-coverage
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"
# shellcheck source=scripts/fuzz-build.sh
. "$repo/scripts/fuzz-build.sh"

read -r min_lines min_branches <<< "${FUZZ_COVERAGE_MIN:-95 85}"
out=$repo/build/fuzz-coverage
bin=$out/fuzz-virtio-net-rsc
seeds=$repo/fuzz/corpus/virtio-net-rsc
found=$repo/build/fuzz/corpus
engine_src=$TREE/hw/net/virtio-net-rsc.c

for t in llvm-profdata llvm-cov; do
    command -v $t > /dev/null ||
        die "$t is missing; install it (apt-get install llvm)"
done
[ -d "$seeds" ] || die "the seed corpus $seeds is missing"
fuzz_build "$bin" coverage

# replay NAME DIR...: run every input of the DIRs once, merge the profile.
replay() {
    local name=$1 log
    shift
    log=$out/$name.log
    rm -f "$out/$name".*.profraw
    # -runs=0: execute the corpus, mutate nothing; no size cut
    if ! LLVM_PROFILE_FILE="$out/$name.%p.profraw" "$bin" -runs=0 \
            -max_len=1048576 -rss_limit_mb=0 -timeout=60 "$@" \
            > "$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "replaying $* failed (log: ${log#"$repo"/}); reproduce the input with 'make fuzz' or build/fuzz/fuzz-virtio-net-rsc FILE"
    fi
    llvm-profdata merge -sparse "$out/$name".*.profraw -o "$out/$name.profdata"
    rm -f "$out/$name".*.profraw
}

# summary NAME: "LINES BRANCHES" percent of the engine, from llvm-cov.
summary() {
    llvm-cov export -summary-only -instr-profile="$out/$1.profdata" "$bin" \
        "$engine_src" |
        python3 -c '
import json, sys
t = json.load(sys.stdin)["data"][0]["totals"]
print("%.1f %.1f %d %d %d %d" % (t["lines"]["percent"],
      t["branches"]["percent"], t["lines"]["covered"], t["lines"]["count"],
      t["branches"]["covered"], t["branches"]["count"]))'
}

# unreached NAME: the engine's lines that no input executed.
unreached() {
    llvm-cov show -instr-profile="$out/$1.profdata" "$bin" "$engine_src" \
        -show-line-counts -use-color=false |
        awk -F'|' '$2 ~ /^ *0$/ { l = $0; sub(/^[^|]*\|[^|]*\|/, "", l);
                   printf "  %5d: %s\n", $1, l }'
}

n_seeds=$(find "$seeds" -type f | wc -l)
echo "fuzz-coverage: committed corpus ($n_seeds inputs)"
replay committed "$seeds"
read -r c_lines c_branches c_lc c_ln c_bc c_bn <<< "$(summary committed)"
dirs=("$seeds")
if [ -d "$found" ] && [ -n "$(ls -A "$found")" ]; then
    dirs+=("$found")
    echo "fuzz-coverage: committed corpus + the last 'make fuzz' ($(find "$found" -type f | wc -l) inputs in build/fuzz/corpus)"
    replay all "${dirs[@]}"
else
    echo "fuzz-coverage: no build/fuzz/corpus ('make fuzz' not run): committed corpus only"
    cp "$out/committed.profdata" "$out/all.profdata"
fi
read -r a_lines a_branches a_lc a_ln a_bc a_bn <<< "$(summary all)"

llvm-cov report -instr-profile="$out/all.profdata" "$bin" "$engine_src" \
    -show-branch-summary -use-color=false | sed 's,^,  ,'
echo "fuzz-coverage: lines of hw/net/virtio-net-rsc.c never reached:"
unreached all | tee "$out/unreached.txt"
[ -s "$out/unreached.txt" ] || echo "  (none)"
echo "fuzz-coverage: committed corpus: lines $c_lines% ($c_lc/$c_ln), branches $c_branches% ($c_bc/$c_bn)"
echo "fuzz-coverage: with build/fuzz/corpus: lines $a_lines% ($a_lc/$a_ln), branches $a_branches% ($a_bc/$a_bn)"
echo "fuzz-coverage: html: llvm-cov show -format=html -instr-profile=${out#"$repo"/}/all.profdata ${bin#"$repo"/} $engine_src > cov.html"
if python3 -c "import sys; sys.exit(not ($c_lines < $min_lines or $c_branches < $min_branches))"; then
    die "the committed corpus reaches less than $min_lines% of lines or $min_branches% of branches; grow it (make fuzz, then merge build/fuzz/corpus into fuzz/corpus with -merge=1)"
fi
