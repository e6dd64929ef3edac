#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The side-by-side benchmark (make bench): the same injection harness,
# bench/rsc-bench.c, against
#   base   the untouched base QEMU (upstream RSC), built in build/base
#   base-off  the same, RSC off: what users run today
#   off    ours, guest_rsc_ext=off
#   on     ours, RSC on, rsc_interval=300000
#   on0    ours, RSC on, rsc_interval=0
#   gro    ours, rsc_gro=on, a driver without RSC_EXT: the GRO rules
# over several traffic cases, several runs each, interleaved.  Writes
# bench/RESULTS.md and bench/results.png (bench/report.py), with the
# device path's instruction counts (scripts/bench-instr.sh) and the engine
# microbenchmark (scripts/microbench.sh) if there is one.
#
# Needs root (a private network namespace with taps) and a built tree
# (make).  Builds the base QEMU on first use (about 8 minutes, niced).
#
# Environment: BENCH_RUNS (default 7), BENCH_SEGS (segments per pass and
# run at MSS 1448, default 65536; a quarter of it at MSS 8948).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=bench
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

runs=${BENCH_RUNS:-7}
segs=${BENCH_SEGS:-65536}
bdir=$TREE/build
base=$repo/build/base
out=$repo/build/bench
bin=$out/rsc-bench
raw=$out/raw.txt
log=$out/bench.log
py=/usr/bin/python3

for v in "$runs" "$segs"; do
    case $v in ''|*[!0-9]*|0) die "BENCH_RUNS and BENCH_SEGS must be positive numbers" ;; esac
done
[ "$(id -u)" = 0 ] || die "needs root (network namespace, taps); run it as root"
for f in qemu-system-x86_64 compile_commands.json libqemuutil.a \
         tests/qtest/libqos/libqos.a.p/virtio.c.o; do
    [ -e "$bdir/$f" ] ||
        die "build/qemu/build is not built (no $f); run 'make' first"
done
"$py" -c 'import matplotlib' 2>/dev/null ||
    die "python3-matplotlib is missing; run 'make deps'"
mkdir -p "$out"

# The pristine base, built like ours, in its own clone of the tree.
want=$(git -C "$TREE" rev-parse 'base^{commit}')
if [ ! -d "$base/.git" ] || [ "$(git -C "$base" rev-parse HEAD)" != "$want" ]; then
    echo "bench: checking out tag 'base' of build/qemu into build/base"
    rm -rf "$base"
    git clone -q --no-checkout "$TREE" "$base"
    git -C "$base" checkout -q --detach "$want"
fi
echo "bench: building the base QEMU in build/base/build (niced; ~8 min the first time)"
nice -n 19 "$repo/scripts/build.sh" "$base" ||
    die "building the base QEMU failed (log: build/base/build/ninja.log)"

# The harness (the guest driver: the RSC qtests' fixture), with the flags
# and libqos objects of our build.
build_qtest_prog "$bin" "$repo/bench/rsc-bench.c" \
    "$TREE/tests/qtest/virtio-net-rsc-utils.c" -- \
    "$TREE/tests/qtest/virtio-net-rsc-utils.h" \
    "$repo/tests/include/virtio-net-rsc-frames.h" "$0"

# Snapshots of both QEMUs, so that a rebuild during the benchmark changes
# nothing; each finds its firmware through a qemu-bundle link beside it.
snapshot() {
    local from=$1 to=$2
    rm -rf "$to" && mkdir -p "$to" &&
    ln -s "$from/qemu-bundle" "$to/qemu-bundle" &&
    (cd "$from" && flock 9 && cp -p qemu-system-x86_64 "$to/") 9>> "$from/.ninja.lock"
}
snapshot "$bdir" "$out/ours" || die "cannot copy build/qemu/build/qemu-system-x86_64"
snapshot "$base/build" "$out/base" || die "cannot copy build/base/build/qemu-system-x86_64"

# Traffic cases: "id|flows|harness arguments".  At MSS 8948 a pass has a
# quarter of the segments (1.5 times the bytes of one at MSS 1448).
cases=()
for mss in 1448 8948; do
    a="--mss $mss --segs $((mss == 1448 ? segs : segs / 4))"
    cases+=("v4-$mss|1|$a"
            "ts-$mss|1|$a --timestamps"
            "v6-$mss|1|$a --ipv6"
            "f64-$mss|64|$a"
            "f4096-$mss|4096|$a")
done
cases+=("nocsum-1448|1|--mss 1448 --segs $segs --csum-none"
        "nopsh-1448|1|--mss 1448 --segs $segs --csum-none --no-psh")

# Configurations: "id|binary|harness arguments" (scripts/lib.sh), and
# above 64 connections ours with the default flow table too.
configs() {
    bench_configs "$1" "$out/ours/qemu-system-x86_64" \
        "$out/base/qemu-system-x86_64"
    if [ "$1" -gt 64 ]; then
        echo "on-mf64|$out/ours/qemu-system-x86_64|--device guest_rsc_ext=on,rsc_interval=300000"
    fi
}

: > "$raw"
: > "$log"
start=$(date +%s)
echo "bench: $runs runs x ${#cases[@]} cases x 6-7 configurations (log: build/bench/bench.log)"
for run in $(seq "$runs"); do
    for c in "${cases[@]}"; do
        IFS='|' read -r id flows args <<< "$c"
        while IFS='|' read -r cfg qemu dargs; do
            echo "== run $run case $id config $cfg: $bin --flows $flows $args $dargs" >> "$log"
            # One retry: a busy host can overflow the tap's queue once
            # (the harness then fails rather than measure a lossy run).
            # shellcheck disable=SC2086
            if ! res=$(QTEST_QEMU_BINARY=$qemu "$bin" --flows "$flows" $args $dargs \
                       2>> "$log") &&
               ! { echo "== retry run $run case $id config $cfg" >> "$log" &&
                   res=$(QTEST_QEMU_BINARY=$qemu "$bin" --flows "$flows" $args $dargs \
                         2>> "$log"); }; then
                tail -n 3 "$log" >&2
                die "run $run, case $id, config $cfg failed twice (log: build/bench/bench.log)"
            fi
            echo "$res" | grep '^#' >> "$log" || true
            echo "case=$id config=$cfg run=$run $(echo "$res" | grep '^result ' | cut -d' ' -f2-)" >> "$raw"
        done < <(configs "$flows")
    done
    echo "bench: run $run of $runs done ($(( $(date +%s) - start )) s)"
done

# Machine and command, for the report.
{
    echo "command=${BENCH_COMMAND:-scripts/bench.sh} (BENCH_RUNS=$runs BENCH_SEGS=$segs)"
    echo "nproc=$(nproc)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -srm)"
    echo "load=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "base=$(git -C "$TREE" describe --tags --always base)"
    echo "ours=build/qemu as built $(date -u -r "$out/ours/qemu-system-x86_64" '+%Y-%m-%d %H:%M UTC'), repository $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet || echo ' with uncommitted changes')"
} > "$out/machine.txt"

# Where the device does more work: instruction counts (deterministic).
instr=$out/instr.md
echo "bench: device-path instructions under callgrind (scripts/bench-instr.sh, ~2 min)"
"$repo/scripts/bench-instr.sh" "$bin" "$out/ours/qemu-system-x86_64" \
    "$out/base/qemu-system-x86_64" > "$instr" ||
    die "scripts/bench-instr.sh failed"

micro=
micro_failed=0
if [ -x "$repo/scripts/microbench.sh" ]; then
    echo "bench: engine microbenchmark (scripts/microbench.sh)"
    if "$repo/scripts/microbench.sh" > "$out/microbench.md" 2> "$out/microbench.log"; then
        micro=$out/microbench.md
    else
        micro_failed=1
    fi
fi

"$py" "$repo/bench/report.py" "$raw" "$out/machine.txt" "$log" "$repo/bench/RESULTS.md" \
    "$repo/bench/results.png" "$instr" ${micro:+"$micro"} ||
    die "bench/report.py could not write the report"
echo "bench: wrote bench/RESULTS.md and bench/results.png ($(( $(date +%s) - start )) s)"
if [ $micro_failed = 1 ]; then
    tail -n 5 "$out/microbench.log" >&2
    die "scripts/microbench.sh failed (log: build/bench/microbench.log); RESULTS.md has no engine table"
fi
