#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build QEMU's manual from build/qemu with Sphinx, warnings as errors, the
# way QEMU's docs/meson.build runs sphinx-build, and print how long it took.
#
# Default: the system manual only (docs/system, which holds
# devices/virtio-net-rsc.rst) through scripts/docs-conf/conf.py, which runs
# QEMU's own conf.py and extensions, leaves the other manuals out and still
# checks links into them against the source tree.  About 15 s on 2 cores.
# --full: the whole manual with QEMU's conf.py unchanged, as 'ninja html'
# builds it.  About 90 s on 2 cores, mostly the QAPI references.
#
# Usage: docs.sh [--full]
#   Output: build/docs/system-manual/ (or build/docs/manual/ with --full);
#   Sphinx's messages in build/docs/sphinx.log.
#   SPHINX_PYTHON=/path/to/python picks the Python that has Sphinx.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=docs
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

full=0
case "${1:-}" in
    --full) full=1 ;;
    "") ;;
    *) die "usage: docs.sh [--full]" ;;
esac
out=$repo/build/docs

if [ ! -f "$TREE/docs/conf.py" ] || [ ! -f "$TREE/VERSION" ]; then
    die "$TREE is not an assembled QEMU tree; run 'make' first"
fi

# The Python that has Sphinx and the Read the Docs theme.  Debian's
# python3-sphinx and python3-sphinx-rtd-theme are installed for
# /usr/bin/python3, which need not be the python3 first in PATH.
python=
for py in ${SPHINX_PYTHON:-} /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null &&
       "$py" -c 'import sphinx, sphinx_rtd_theme' 2>/dev/null; then
        python=$py
        break
    fi
done
[ -n "$python" ] ||
    die "no Python with Sphinx and sphinx_rtd_theme; run 'make deps'" \
        "(python3-sphinx, python3-sphinx-rtd-theme) or set SPHINX_PYTHON"

# As docs/meson.build with --enable-werror: -W -Dkerneldoc_werror=1, -j auto,
# version from VERSION, release = --with-pkgversion (empty by default).
# --keep-going reports every warning before failing; -E reads every file
# again, so a warning is never hidden by a cached environment.
args=(-q -W --keep-going -Dkerneldoc_werror=1 -j auto
      "-Dversion=$(cat "$TREE/VERSION")" -Drelease= -E -b html)
if [ $full = 1 ]; then
    what="the whole manual"
    html=$out/manual
    args+=(-d "$out/.doctrees-manual")
else
    what="the system manual"
    html=$out/system-manual
    args+=(-c "$repo/scripts/docs-conf" -d "$out/.doctrees-system")
fi
page=$html/system/devices/virtio-net-rsc.html
log=$out/sphinx.log
mkdir -p "$out"

start=$EPOCHREALTIME
if ! (cd "$TREE/docs" &&
      CONFDIR=${CONFDIR:-/usr/local/etc/qemu} QEMU_DOCDIR=$TREE/docs \
          "$python" -m sphinx "${args[@]}" "$TREE/docs" "$html") \
        > "$log" 2>&1; then
    cat "$log" >&2
    die "Sphinx found problems in $what (above, and in $log);" \
        "fix them in build/qemu/docs and run 'make refresh'"
fi
secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
[ -f "$page" ] ||
    die "built $what but not $page; is devices/virtio-net-rsc.rst listed" \
        "in build/qemu/docs/system/device-emulation.rst?"
echo "docs: $what built with -W in ${secs}s: ${page#"$repo"/}"
