# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the engine's libFuzzer target, tests/unit/fuzz-virtio-net-rsc.c, with
# clang; sourced by fuzz.sh and fuzz-coverage.sh after lib.sh.
#
#   fuzz_build BIN MODE
#
# MODE asan:     ASan + UBSan, coverage feedback from the engine and the
#                checksum code (the harness is only checked by the sanitizers)
# MODE coverage: clang source-based coverage (-fprofile-instr-generate
#                -fcoverage-mapping) of the engine, no sanitizers
#
# Rebuilds only when a source, the engine's header, libqemuutil.a or this
# file is newer than BIN.  Needs clang and its fuzzer runtime (Debian: clang,
# libclang-rt-14-dev) and a built tree (run 'make' first).

fuzz_build() {
    local bin=$1 mode=$2 src=$TREE bdir=$TREE/build f stale=0 out
    local -a sources cflags glib_cflags glib_libs harness engine link
    out=$(dirname "$bin")

    command -v clang > /dev/null ||
        die "clang is missing; install it (apt-get install clang libclang-rt-14-dev)"
    if [ ! -f "$bdir/libqemuutil.a" ] || [ ! -f "$bdir/config-host.h" ] ||
       [ ! -f "$bdir/trace/trace-hw_net.h" ]; then
        die "build/qemu/build is not built (libqemuutil.a, generated headers); run 'make' first"
    fi
    sources=("$src/tests/unit/fuzz-virtio-net-rsc.c" "$src/hw/net/virtio-net-rsc.c"
             "$src/net/checksum.c")
    for f in "${sources[@]}"; do
        [ -f "$f" ] || die "$f is missing; run 'make' to assemble the tree"
    done
    for f in "${sources[@]}" "$src/include/hw/virtio/virtio-net-rsc.h" \
             "$src/tests/unit/fuzz-virtio-net-rsc.h" \
             "$src/tests/include/virtio-net-rsc-frames.h" \
             "$bdir/libqemuutil.a" "${BASH_SOURCE[0]}"; do
        [ -f "$f" ] || continue
        [ "$bin" -nt "$f" ] || stale=1
    done
    [ $stale = 1 ] || return 0

    # The include paths and defines of QEMU's own build.
    # shellcheck disable=SC2207
    glib_cflags=($(pkg-config --cflags glib-2.0))
    # shellcheck disable=SC2207
    glib_libs=($(pkg-config --libs glib-2.0))
    cflags=(-g -std=gnu11 -Wall -Werror
            -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE
            -fno-strict-aliasing -fno-common -fwrapv -mcx16 -msse2
            -I"$bdir" -I"$bdir/qapi" -I"$bdir/trace"
            -iquote "$bdir" -iquote "$src" -iquote "$src/include"
            -iquote "$src/tests/include"
            -iquote "$src/host/include/x86_64" -iquote "$src/host/include/generic"
            -iquote "$src/tcg/i386" -isystem "$src/linux-headers"
            -isystem "$bdir/linux-headers" "${glib_cflags[@]}")
    case $mode in
    asan)
        cflags+=(-O1 -fno-sanitize-recover=undefined)
        harness=("-fsanitize=address,undefined")
        engine=("-fsanitize=fuzzer-no-link,address,undefined")
        link=("-fsanitize=fuzzer,address,undefined")
        ;;
    coverage)
        cflags+=(-O0)
        harness=()
        # fuzzer-no-link too: libFuzzer refuses a corpus without features
        engine=(-fsanitize=fuzzer-no-link -fprofile-instr-generate
                -fcoverage-mapping)
        link=(-fsanitize=fuzzer -fprofile-instr-generate)
        ;;
    *)
        die "fuzz_build: unknown mode '$mode'"
        ;;
    esac

    echo "${me:-fuzz}: building ${bin#"$repo"/} ($mode)"
    mkdir -p "$out"
    rm -f "$bin"
    clang "${cflags[@]}" "${harness[@]}" -c "${sources[0]}" -o "$out/harness.o"
    clang "${cflags[@]}" "${engine[@]}" -c "${sources[1]}" \
        -o "$out/virtio-net-rsc.o"
    clang "${cflags[@]}" "${engine[@]}" -c "${sources[2]}" -o "$out/checksum.o"
    if ! clang "${link[@]}" -o "$bin.tmp" \
            "$out/harness.o" "$out/virtio-net-rsc.o" "$out/checksum.o" \
            -Wl,--start-group "$bdir/libqemuutil.a" -lm -pthread \
            "${glib_libs[@]}" -Wl,--end-group; then
        die "linking the fuzzer failed; is clang's fuzzer runtime installed (libclang-rt-14-dev)?"
    fi
    mv "$bin.tmp" "$bin"
}
