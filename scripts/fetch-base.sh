#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Download the pinned Debian source package into the cache and verify it.
# Usage: fetch-base.sh CACHE_DIR   (prints nothing when the cache is good)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:?usage: fetch-base.sh CACHE_DIR}
# shellcheck source=/dev/null
. "$here/qemu-base.conf"

verify() {
    local f=$1 var want got
    var=SHA256_$(printf '%s' "$f" | tr -c 'A-Za-z0-9\n' _)
    want=${!var:?qemu-base.conf has no $var}
    got=$(sha256sum "$cache/$f" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "fetch-base: sha256 mismatch for $f (got $got, want $want);" \
             "removed it - rerun 'make' to download again" >&2
        rm -f "$cache/$f"
        return 1
    fi
}

if [ -n "${QEMU_SRC:-}" ]; then
    exit 0      # the base comes from QEMU_SRC: nothing to download
fi
mkdir -p "$cache"
all=1
for f in $QEMU_FILES; do
    [ -f "$cache/$f" ] || all=0
done
if [ $all = 0 ]; then
    tmp=$(mktemp -d "$cache/.dl.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    chmod 755 "$tmp"
    echo "fetch-base: downloading $QEMU_PKG $QEMU_VERSION into $cache"
    if ! (cd "$tmp" && apt-get source -q --download-only \
            "$QEMU_PKG=$QEMU_VERSION" >"$tmp/log" 2>&1); then
        tail -n 5 "$tmp/log" >&2
        echo "fetch-base: 'apt-get source $QEMU_PKG=$QEMU_VERSION' failed;" \
             "run 'make deps' (adds the deb-src entry) and check the network" >&2
        exit 1
    fi
    for f in $QEMU_FILES; do
        if [ ! -f "$tmp/$f" ]; then
            echo "fetch-base: apt-get source did not produce $f" >&2
            exit 1
        fi
        mv "$tmp/$f" "$cache/$f"
    done
fi
for f in $QEMU_FILES; do
    verify "$f"
done
