#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Instructions per segment in the device path, counted by callgrind: the
# bench harness (build/bench/rsc-bench) drives each QEMU under valgrind,
# and everything under virtio_net_receive() (the frame from the net layer
# to the used ring) plus the deferred flushes (our RSC timer and bottom
# half, upstream's purge timer) is divided by the frames that reached
# virtio_net_receive().  Unlike CPU time on a shared machine, the count
# does not move between runs: it says where the device does more work,
# not what a cache miss costs.  Prints a markdown table on stdout.
#
# Called by scripts/bench.sh with the snapshots it made; needs root (taps).
# Usage: scripts/bench-instr.sh HARNESS OURS_QEMU BASE_QEMU [SEGMENTS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=bench-instr
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

[ $# -ge 3 ] || die "usage: $0 HARNESS OURS_QEMU BASE_QEMU [SEGMENTS]"
bin=$1 ours=$2 base=$3 segs=${4:-32768}
out=$repo/build/bench/instr
command -v valgrind > /dev/null || die "valgrind is missing; run 'make deps'"
for f in "$bin" "$ours" "$base"; do
    [ -x "$f" ] || die "$f is missing"
done
mkdir -p "$out"

# The functions whose calls make up the device path (see above).
fns="virtio_net_receive virtio_net_rsc_timer virtio_net_rsc_bh virtio_net_rsc_purge"
toggles=()
for f in $fns; do
    toggles+=("--toggle-collect=$f")
done

cases=("1 flow, MSS 1448|1|--mss 1448"
       "64 flows, MSS 1448|64|--mss 1448"
       "4096 flows, MSS 1448|4096|--mss 1448"
       "1 flow, no checksum flags, MSS 1448|1|--mss 1448 --csum-none")
# Instructions collected, and calls of virtio_net_receive(), from a
# callgrind output file: "INSTRUCTIONS FRAMES".
count() {
    /usr/bin/python3 - "$1" <<'EOF'
import re, sys

ir = calls = 0
fn = {}
cur = None
want = None
for line in open(sys.argv[1]):
    m = re.match(r"summary: (\d+)", line)
    if m:
        ir = int(m.group(1))
    # compressed names: "(id) name" the first time, "(id)" after
    m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            fn[m.group(1)] = m.group(2).strip()
        want = fn.get(m.group(1)) == "virtio_net_receive"
        continue
    m = re.match(r"fn=\((\d+)\)(?: (.*))?", line)
    if m and m.group(2):
        fn[m.group(1)] = m.group(2).strip()
    m = re.match(r"calls=(\d+)", line)
    if m and want:
        calls += int(m.group(1))
        want = False
print(ir, calls)
EOF
}

echo "Instructions per segment in the device path (valgrind --tool=callgrind" \
     "over the bench harness, $segs segments per pass; virtio_net_receive()" \
     "with all it calls, plus the RSC timer and bottom half: deterministic)." \
     "on = RSC on at 300 us, on0 = at interval 0; upstream = the base" \
     "QEMU."
echo
echo "| case | upstream on | upstream off | off | on | on0 | gro | on / off | on0 / off | on / upstream on |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for c in "${cases[@]}"; do
    IFS='|' read -r label flows args <<< "$c"
    declare -A per=()
    while IFS='|' read -r cfg qemu dargs; do
        cg=$out/$flows-${args//[^a-z0-9]/}-$cfg.out
        rm -f "$cg"
        # shellcheck disable=SC2086
        QTEST_QEMU_BINARY="valgrind --tool=callgrind --callgrind-out-file=$cg ${toggles[*]} $qemu" \
            "$bin" --flows "$flows" --segs "$segs" $args $dargs \
            > "$out/last.log" 2>&1 ||
            die "$label, $cfg: the harness failed under callgrind (log: build/bench/instr/last.log)"
        read -r ir frames < <(count "$cg")
        [ "${frames:-0}" -gt 0 ] ||
            die "$label, $cfg: no call of virtio_net_receive in $cg"
        per[$cfg]=$(awk -v i="$ir" -v f="$frames" 'BEGIN { printf "%.0f", i / f }')
    done < <(bench_configs "$flows" "$ours" "$base")
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
    echo "| $label | ${per[base]} | ${per[base-off]} | ${per[off]} | ${per[on]}" \
         "| ${per[on0]} | ${per[gro]} | $(ratio "${per[on]}" "${per[off]}")" \
         "| $(ratio "${per[on0]}" "${per[off]}")" \
         "| $(ratio "${per[on]}" "${per[base]}") |"
    unset per
done
