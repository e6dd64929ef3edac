#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# QEMU's own device fuzz targets for virtio-net with RSC on: build
# qemu-fuzz-x86_64 with clang, --enable-fuzzing, ASan and UBSan in its own
# build directory (build/qemu/build-fuzz, niced; the first build takes a
# while) and run each RSC target for FUZZ_SECONDS (default 120):
#
#   virtio-net-rsc-socket             qos: RSC_EXT negotiated, TCP segments
#                                     through a socket backend, driver events
#   virtio-net-rsc-socket-check-used  qos: the virtqueue fuzzer with RSC on,
#                                     seeded with TCP segments
#                                     (scripts/fuzz-device-seeds.py)
#   generic-fuzz-virtio-net-pci-rsc-socket   generic: RSC on, UDP socket
#                                     backend looped back to itself
#   generic-fuzz-virtio-net-pci-rsc-slirp    generic: RSC on, user backend
#
# FUZZ_DEVICE_TARGETS="name ..." runs only those.  Each target's corpus and
# findings go to build/fuzz-device/TARGET/ (the corpus is kept between
# runs).  Exits 1 on a finding and prints the command that reproduces it.
#
# Usage: [FUZZ_SECONDS=N] [FUZZ_DEVICE_TARGETS=...] scripts/fuzz-device.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=fuzz-device
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

seconds=${FUZZ_SECONDS:-120}
case $seconds in
    ''|*[!0-9]*) die "FUZZ_SECONDS must be a number of seconds, not '$seconds'" ;;
esac
read -r -a targets <<< "${FUZZ_DEVICE_TARGETS:-virtio-net-rsc-socket \
    virtio-net-rsc-socket-check-used generic-fuzz-virtio-net-pci-rsc-socket \
    generic-fuzz-virtio-net-pci-rsc-slirp}"
bdir=build-fuzz
bin=$TREE/$bdir/qemu-fuzz-x86_64
out=$repo/build/fuzz-device

[ -d "$TREE/.git" ] || die "build/qemu is missing; run 'make assemble' first"
for t in clang clang++; do
    command -v $t > /dev/null ||
        die "$t is missing; install it (apt-get install clang libclang-rt-14-dev)"
done

# The lean configuration of scripts/build.sh, with clang and the fuzzer.
cc=clang cxx=clang++
if command -v ccache > /dev/null; then
    cc="ccache clang" cxx="ccache clang++"
fi
cfg=(--target-list=x86_64-softmmu --without-default-features
     --enable-slirp --enable-kvm --enable-tcg --enable-fdt=system
     --disable-rust --disable-install-blobs --disable-download
     --disable-docs --python=/usr/bin/python3
     --enable-fuzzing --enable-asan --enable-ubsan
     --cc="$cc" --cxx="$cxx")
want="${cfg[*]}"
cd "$TREE"
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
if [ ! -f "$bdir/build.ninja" ] || [ ! -f "$bdir/.rsc-configure" ] ||
   [ "$(cat "$bdir/.rsc-configure")" != "$want" ]; then
    rm -rf "$bdir"
    mkdir -p "$bdir"
    echo "fuzz-device: configuring build/qemu/$bdir (clang, --enable-fuzzing, ASan, UBSan)"
    if ! (cd "$bdir" && ../configure "${cfg[@]}" > configure.log 2>&1); then
        tail -n 20 "$bdir/configure.log" >&2
        rm -f "$bdir/build.ninja"
        die "configure failed (log: build/qemu/$bdir/configure.log); run 'make deps' for missing packages"
    fi
    printf '%s' "$want" > "$bdir/.rsc-configure"
fi
echo "fuzz-device: building build/qemu/$bdir/qemu-fuzz-x86_64 (log: build/qemu/$bdir/ninja.log)"
if ! flock "$bdir/.ninja.lock" nice -n 10 ninja -C "$bdir" qemu-fuzz-x86_64 \
        > "$bdir/ninja.log" 2>&1; then
    grep -E 'error|FAILED' "$bdir/ninja.log" | head -n 30 >&2
    die "building qemu-fuzz-x86_64 failed (log: build/qemu/$bdir/ninja.log)"
fi

# Debian strips firmware blobs: the generic targets boot q35 with SeaBIOS.
fw=$bdir/qemu-bundle/usr/local/share/qemu
mkdir -p "$fw"
for f in /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom; do
    [ -e "$f" ] && ln -sf "$f" "$fw/$(basename "$f")"
done

export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
found=0
for t in "${targets[@]}"; do
    dir=$out/$t
    mkdir -p "$dir/corpus"
    if [ "$t" = virtio-net-rsc-socket-check-used ]; then
        # TCP segments that random bytes hardly ever form
        /usr/bin/python3 "$repo/scripts/fuzz-device-seeds.py" "$dir/corpus" ||
            die "cannot write the seeds of $t (scripts/fuzz-device-seeds.py)"
    fi
    rm -f "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*
    log=$dir/fuzz.log
    echo "fuzz-device: $t for ${seconds}s (log: ${log#"$repo"/})"
    rc=0
    nice -n 10 "$bin" --fuzz-target="$t" -max_total_time="$seconds" \
        -max_len=4096 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$dir/" "$dir/corpus" > "$log" 2>&1 || rc=$?
    grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -n 2 |
        sed 's,^,  ,' || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
        "$log" | sed 's,^,  ,' || true
    if [ $rc != 0 ]; then
        found=1
        pat='^==[0-9]+==ERROR|runtime error|deadly signal|ALARM|out-of-memory|Assertion|assertion'
        grep -E -m1 -A30 "$pat" "$log" >&2 || tail -n 30 "$log" >&2
        for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
            [ -e "$f" ] || continue
            echo "fuzz-device: $t: finding ${f#"$repo"/}; reproduce:" >&2
            echo "  build/qemu/$bdir/qemu-fuzz-x86_64 --fuzz-target=$t ${f#"$repo"/}" >&2
        done
        [ -n "$(ls "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-* 2> /dev/null)" ] ||
            echo "fuzz-device: $t exited $rc without an input saved; see ${log#"$repo"/}" >&2
    fi
done
[ $found = 0 ] || die "findings above; fix them, then rerun 'make fuzz-device'"
echo "fuzz-device: no finding in ${#targets[@]} target(s), ${seconds}s each"
