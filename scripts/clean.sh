#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Remove what the tooling generated: build/ and out/.  With --dist, also the
# downloaded QEMU source cache.  Refuses while build/qemu holds edits that
# 'make refresh' has not written back (FORCE=1 discards them).
#
# Usage: clean.sh [--dist]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=clean
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

dist=0
case ${1:-} in
    --dist) dist=1 ;;
    "") ;;
    *) die "usage: clean.sh [--dist]" ;;
esac

if [ "${FORCE:-0}" != 1 ] && [ -d "$TREE/.git" ] &&
   git -C "$TREE" rev-parse -q --verify base >/dev/null; then
    if ! "$repo/scripts/refresh.sh" --check 2>"$repo/build/.clean.err"; then
        cat "$repo/build/.clean.err" >&2
        rm -f "$repo/build/.clean.err"
        die "build/qemu may hold edits that are not in the repository;" \
            "run 'make refresh' first, or 'make ${1:+dist}clean FORCE=1' to discard them"
    fi
fi
rm -rf "$repo/build" "$repo/out"
echo "clean: removed build/ and out/"
if [ $dist = 1 ]; then
    rm -rf "$CACHE_SRC"
    rmdir "$RSC_CACHE" 2>/dev/null || true
    echo "clean: removed the source cache $CACHE_SRC"
fi
