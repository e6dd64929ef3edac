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

seconds=${FUZZ_SECONDS:-120}
case $seconds in
    ''|*[!0-9]*) die "FUZZ_SECONDS must be a number of seconds, not '$seconds'" ;;
esac
src=$TREE
bdir=$TREE/build
out=$repo/build/fuzz
seeds=$repo/fuzz/corpus/virtio-net-rsc
bin=$out/fuzz-virtio-net-rsc
log=$out/fuzz.log

command -v clang > /dev/null ||
    die "clang is missing; install it (apt-get install clang libclang-rt-14-dev)"
if [ ! -f "$bdir/libqemuutil.a" ] || [ ! -f "$bdir/config-host.h" ] ||
   [ ! -f "$bdir/trace/trace-hw_net.h" ]; then
    die "build/qemu/build is not built (libqemuutil.a, generated headers); run 'make' first"
fi
[ -d "$seeds" ] || die "the seed corpus $seeds is missing"
mkdir -p "$out"

sources=("$src/tests/unit/fuzz-virtio-net-rsc.c" "$src/hw/net/virtio-net-rsc.c"
         "$src/net/checksum.c")
for f in "${sources[@]}"; do
    [ -f "$f" ] || die "$f is missing; run 'make' to assemble the tree"
done

# The include paths and defines of QEMU's own build (compile_commands.json).
# shellcheck disable=SC2207
glib_cflags=($(pkg-config --cflags glib-2.0))
# shellcheck disable=SC2207
glib_libs=($(pkg-config --libs glib-2.0))
cflags=(-g -O1 -std=gnu11 -Wall -Werror -fno-sanitize-recover=undefined
        -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE
        -fno-strict-aliasing -fno-common -fwrapv -mcx16 -msse2
        -I"$bdir" -I"$bdir/qapi" -I"$bdir/trace"
        -iquote "$bdir" -iquote "$src" -iquote "$src/include"
        -iquote "$src/host/include/x86_64" -iquote "$src/host/include/generic"
        -iquote "$src/tcg/i386" -isystem "$src/linux-headers"
        -isystem "$bdir/linux-headers" "${glib_cflags[@]}")

# Rebuild when a source, a header of the engine or libqemuutil.a is newer.
stale=0
for f in "${sources[@]}" "$src/include/hw/virtio/virtio-net-rsc.h" \
         "$bdir/libqemuutil.a" "$0"; do
    [ "$bin" -nt "$f" ] || stale=1
done
if [ $stale = 1 ]; then
    echo "fuzz: building $bin"
    rm -f "$bin"
    # Coverage feedback comes from the engine and the checksum code; the
    # harness itself is only checked by the sanitizers.
    clang "${cflags[@]}" -fsanitize=address,undefined \
        -c "${sources[0]}" -o "$out/harness.o"
    clang "${cflags[@]}" -fsanitize=fuzzer-no-link,address,undefined \
        -c "${sources[1]}" -o "$out/virtio-net-rsc.o"
    clang "${cflags[@]}" -fsanitize=fuzzer-no-link,address,undefined \
        -c "${sources[2]}" -o "$out/checksum.o"
    if ! clang -fsanitize=fuzzer,address,undefined -o "$bin.tmp" \
            "$out/harness.o" "$out/virtio-net-rsc.o" "$out/checksum.o" \
            -Wl,--start-group "$bdir/libqemuutil.a" -lm -pthread \
            "${glib_libs[@]}" -Wl,--end-group; then
        die "linking the fuzzer failed; is clang's fuzzer runtime installed (libclang-rt-14-dev)?"
    fi
    mv "$bin.tmp" "$bin"
fi

# A scratch copy of the seeds: new corpus entries go there, not into the repo.
work=$out/corpus
rm -rf "$work"
mkdir -p "$work"
cp "$seeds"/* "$work/"
rm -f "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*

echo "fuzz: running for ${seconds}s on $(find "$work" -type f | wc -l) seeds (log: build/fuzz/fuzz.log)"
rc=0
"$bin" -max_total_time="$seconds" -max_len=70000 -rss_limit_mb=2048 \
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
