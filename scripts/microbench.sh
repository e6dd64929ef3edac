#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the engine microbenchmark, bench/rsc-microbench.c, with gcc -O2 and
# the flags QEMU's own build uses for hw/net/virtio-net-rsc.c (taken from
# build/qemu/build/compile_commands.json), link it with the engine,
# net/checksum.c, libqemuutil.a and glib into build/bench/, and run it.
# Prints a markdown table: ns per segment through virtio_net_rsc_receive at
# 1 to 4096 interleaved connections, with and without the payload copy,
# beside the cost of copying each payload once (the one-copy floor) and
# the cost of DPDK's GRO library on the same frames (librte-gro23, with the
# headers of the matching libdpdk-dev unpacked into build/bench/dpdk: the
# whole libdpdk-dev package would pull in a few hundred others).
#
# Needs a built tree: run 'make' first.  Does not touch build/qemu/build.
# Run it on an idle machine; the numbers are only comparable within a run.
#
# Usage: scripts/microbench.sh [REPETITIONS [SEGMENTS]]
#        (default 7 repetitions of >= 300000 segments per configuration)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=microbench
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

src=$TREE
bdir=$TREE/build
out=$repo/build/bench
bin=$out/rsc-microbench
bench_src=$repo/bench/rsc-microbench.c
dpdk_src=$repo/bench/rsc-microbench-dpdk.c
dpdk=$out/dpdk

for arg in "$@"; do
    case $arg in
        ''|*[!0-9]*) die "arguments are REPETITIONS [SEGMENTS] (numbers), not '$arg'" ;;
    esac
done
if [ ! -f "$bdir/libqemuutil.a" ] || [ ! -f "$bdir/compile_commands.json" ]; then
    die "build/qemu/build is not built (libqemuutil.a, compile_commands.json); run 'make' first"
fi
for f in "$src/hw/net/virtio-net-rsc.c" "$src/net/checksum.c" "$bench_src"; do
    [ -f "$f" ] || die "$f is missing; run 'make' to assemble the tree"
done
mkdir -p "$out"

# DPDK's GRO: the library installed by 'make deps', headers of its version.
dpdk_ver=$(dpkg-query -W -f='${Version}' librte-gro23 2>/dev/null) &&
    [ -e /usr/lib/x86_64-linux-gnu/librte_gro.so.23 ] ||
    die "DPDK's GRO library (librte-gro23) is missing; run 'make deps'"
if [ "$(cat "$dpdk/version" 2>/dev/null)" != "$dpdk_ver" ]; then
    echo "microbench: unpacking the headers of libdpdk-dev $dpdk_ver into $dpdk" >&2
    rm -rf "$dpdk" && mkdir -p "$dpdk"
    (cd "$dpdk" && apt-get download -q "libdpdk-dev=$dpdk_ver" >/dev/null 2>&1) ||
        die "cannot download libdpdk-dev $dpdk_ver (apt-get download); check the network"
    dpkg-deb -x "$dpdk"/libdpdk-dev_*.deb "$dpdk/root" ||
        die "cannot unpack $(ls "$dpdk"/libdpdk-dev_*.deb)"
    echo "$dpdk_ver" > "$dpdk/version"
fi

# QEMU's compile flags for the engine, relative to the build directory.
# shellcheck disable=SC2207
flags=($(/usr/bin/python3 "$repo/scripts/compile-flags.py" \
    "$bdir/compile_commands.json" hw/net/virtio-net-rsc.c libsystem)) || die "cannot read the engine's compile flags from compile_commands.json; run 'make' first"
# shellcheck disable=SC2207
glib_libs=($(pkg-config --libs glib-2.0))

stale=0
for f in "$src/hw/net/virtio-net-rsc.c" "$src/include/hw/virtio/virtio-net-rsc.h" \
         "$src/net/checksum.c" "$bench_src" "$dpdk_src" "$dpdk/version" \
         "$bdir/libqemuutil.a" "$0"; do
    [ "$bin" -nt "$f" ] || stale=1
done
if [ $stale = 1 ]; then
    echo "microbench: building $bin" >&2
    rm -f "$bin"
    (
        cd "$bdir"
        gcc "${flags[@]}" -c "$src/hw/net/virtio-net-rsc.c" -o "$out/virtio-net-rsc.o"
        gcc "${flags[@]}" -c "$src/net/checksum.c" -o "$out/checksum.o"
        gcc "${flags[@]}" -c "$bench_src" -o "$out/rsc-microbench.o"
        gcc -O2 -Wall -Werror -fPIE -I"$dpdk/root/usr/include/dpdk" \
            -I"$dpdk/root/usr/include/x86_64-linux-gnu/dpdk" \
            -c "$dpdk_src" -o "$out/rsc-microbench-dpdk.o"
        gcc -pie -o "$bin.tmp" "$out/rsc-microbench.o" "$out/virtio-net-rsc.o" \
            "$out/checksum.o" "$out/rsc-microbench-dpdk.o" \
            -Wl,--start-group libqemuutil.a -lm -pthread \
            "${glib_libs[@]}" -Wl,--end-group -l:librte_gro.so.23
    )
    mv "$bin.tmp" "$bin"
fi

echo "microbench: running $bin $* (about a minute)" >&2
"$bin" "$@"

# Time on a shared machine moves with the neighbours; instructions do not.
# The engine's instructions per segment, counted by callgrind over the
# same traffic (the fake guest's trivial callbacks included).
if ! command -v valgrind > /dev/null; then
    echo "microbench: valgrind is missing (make deps): no instruction counts" >&2
    exit 0
fi
echo "microbench: counting instructions with callgrind" >&2
echo
echo "Instructions per segment in the engine (valgrind --tool=callgrind," \
     "virtio_net_rsc_receive and virtio_net_rsc_flush_all with what they call;" \
     "deterministic), same traffic, no copy:"
echo
echo "| connections | checksum | instructions per segment |"
echo "|---:|---|---:|"
cg=$out/callgrind.out
for row in "1 valid" "16 valid" "64 valid" "1024 valid" "4096 valid" "1 verified"; do
    # shellcheck disable=SC2086
    segs=$(valgrind --tool=callgrind --callgrind-out-file="$cg" \
               --toggle-collect=virtio_net_rsc_receive \
               --toggle-collect=virtio_net_rsc_flush_all \
               "$bin" --count $row 2> "$out/callgrind.log") ||
        die "callgrind failed (log: build/bench/callgrind.log)"
    ir=$(sed -n 's/^summary: *//p' "$cg")
    case $ir:$segs in
        *[!0-9:]*|:*|*:) die "no instruction count from callgrind (log: build/bench/callgrind.log)" ;;
    esac
    set -- $row
    echo "| $1 | $([ "$2" = valid ] && echo DATA_VALID || echo verified) |" \
         "$(awk -v i="$ir" -v s="$segs" 'BEGIN { printf "%.0f", i / s }') |"
done
