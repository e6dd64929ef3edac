#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Configure (once) and build the assembled tree with ccache, then make the
# Debian firmware visible to the build's qemu-bundle.
# Usage: build.sh TREE [BUILD_SUBDIR [extra configure args...]]
set -euo pipefail
tree=${1:?usage: build.sh TREE [BUILD_SUBDIR [configure args]]}
bdir=${2:-build}
shift; [ $# -gt 0 ] && shift
extra=("$@")

cfg=(--target-list=x86_64-softmmu --without-default-features
     --enable-slirp --enable-kvm --enable-tcg --enable-fdt=system
     --disable-rust --disable-install-blobs --disable-download
     --disable-docs --enable-trace-backends=log
     --python=/usr/bin/python3 "${extra[@]}")
if command -v ccache >/dev/null; then
    cfg+=(--cc="ccache gcc" --cxx="ccache g++")
    [ "${extra[*]}" != "${extra[*]#*clang}" ] && cfg+=(--cc="ccache clang")
fi
want="${cfg[*]}"

cd "$tree"
# Let a fresh clone in another directory reuse the compiler cache: paths
# under the tree are hashed relative to it (CI builds in a new clone).
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
if [ ! -f "$bdir/build.ninja" ] || [ ! -f "$bdir/.rsc-configure" ] ||
   [ "$(cat "$bdir/.rsc-configure")" != "$want" ]; then
    rm -rf "$bdir"
    mkdir -p "$bdir"
    if ! (cd "$bdir" && ../configure "${cfg[@]}" > configure.log 2>&1); then
        tail -n 20 "$bdir/configure.log" >&2
        echo "build: configure failed (log: $tree/$bdir/configure.log);" \
             "run 'make deps' for missing packages" >&2
        rm -f "$bdir/build.ninja"
        exit 1
    fi
    printf '%s' "$want" > "$bdir/.rsc-configure"
fi

# Regenerate build.ninja first so that newly added tests are seen below.
flock "$bdir/.ninja.lock" ninja -C "$bdir" build.ninja > "$bdir/ninja.log" 2>&1 || {
    tail -n 20 "$bdir/ninja.log" >&2
    echo "build: meson regeneration failed (log: $tree/$bdir/ninja.log)" >&2
    exit 1
}
targets=(qemu-system-x86_64 tests/qtest/qos-test)
for t in tests/qtest/virtio-net-rsc-test tests/unit/test-virtio-net-rsc \
         tests/qtest/virtio-net-rsc-gro-test tests/unit/test-virtio-net-rsc-gro \
         tests/qtest/virtio-net-rsc-mq-test; do
    if grep -q "^build $t:" "$bdir/build.ninja"; then
        targets+=("$t")
    fi
done
# One ninja at a time per build dir (helpers and make may overlap).
flock "$bdir/.ninja.lock" ninja -C "$bdir" "${targets[@]}" \
    > "$bdir/ninja.log" 2>&1 || {
    grep -E 'error|FAILED' "$bdir/ninja.log" | head -n 30 >&2
    echo "build: ninja failed (log: $tree/$bdir/ninja.log)" >&2
    exit 1
}
# (qemu-version.h is regenerated on every run; it changes nothing)
steps=$(grep -E '^\[[0-9]+/[0-9]+\]' "$bdir/ninja.log" |
        grep -vc 'Generating qemu-version.h' || true)
if [ "$steps" = 0 ]; then
    echo "build: up to date"
else
    echo "build: ninja ran $steps step(s) (log: $tree/$bdir/ninja.log)"
fi

# Debian strips firmware blobs: link the packaged ones into the bundle.
fw=$bdir/qemu-bundle/usr/local/share/qemu
mkdir -p "$fw"
for f in /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom; do
    [ -e "$f" ] && ln -sf "$f" "$fw/$(basename "$f")"
done
exit 0
