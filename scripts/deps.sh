#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install the Debian 12 packages the build, the tests and the tooling need.
# Idempotent: does nothing (and needs no root) when everything is present.
# Usage: deps.sh [--install]   (--install: also the packages of 'make install',
# listed in scripts/install-packages.txt; without root, missing ones of those
# are named and skipped: 'make install' builds without their features)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-}
case $mode in
    ""|--install) ;;
    *) echo "deps: unknown argument '$mode'; usage: deps.sh [--install]" >&2; exit 1 ;;
esac
# shellcheck source=/dev/null
. "$here/../qemu-base.conf"

pkgs=(build-essential ninja-build pkgconf libglib2.0-dev libpixman-1-dev
      libslirp-dev libfdt-dev zlib1g-dev python3-venv python3-distlib
      flex bison ccache dpkg-dev git xz-utils seabios ipxe-qemu
      iproute2 clang llvm libclang-rt-14-dev
      python3-sphinx python3-sphinx-rtd-theme python3-matplotlib valgrind
      librte-gro23 libbsd-dev cpio)
backports=(meson python3-pycotap)
extra=()
if [ "$mode" = --install ]; then
    while IFS='|' read -r p _; do
        p=${p//[[:space:]]/}
        [ -n "$p" ] && extra+=("$p")
    done < <(grep -v '^#' "$here/install-packages.txt")
fi

missing=()
missing_extra=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" "${backports[@]}" \
            ${extra[@]+"${extra[@]}"} 2>/dev/null | awk '/ ok installed$/ { print $1 }' || true)
for p in "${pkgs[@]}" "${backports[@]}"; do
    if ! printf '%s\n' "$installed" | grep -xF "$p" >/dev/null; then
        missing+=("$p")
    fi
done
for p in ${extra[@]+"${extra[@]}"}; do
    if ! printf '%s\n' "$installed" | grep -xF "$p" >/dev/null &&
       ! printf '%s\n' "${missing[@]:-}" | grep -xF "$p" >/dev/null; then
        missing_extra+=("$p")
    fi
done
meson_ok=0
if command -v meson >/dev/null &&
   dpkg --compare-versions "$(meson --version)" ge 1.5; then
    meson_ok=1
fi
have_src=0
cached=1
for f in $QEMU_FILES; do
    [ -f "${RSC_CACHE:-$HOME/.cache/virtio-net-rsc}/src/$f" ] || cached=0
done
if [ -n "${QEMU_SRC:-}" ] || [ $cached = 1 ] ||
   apt-cache showsrc "$QEMU_PKG" 2>/dev/null | grep -xF "Version: $QEMU_VERSION" >/dev/null; then
    have_src=1
fi
if [ ${#missing[@]} = 0 ] && [ $meson_ok = 1 ] && [ $have_src = 1 ] &&
   [ ${#missing_extra[@]} = 0 ]; then
    exit 0
fi
target=deps
[ "$mode" = --install ] && target=deps-install
if [ "$(id -u)" != 0 ]; then
    if [ ${#missing[@]} = 0 ] && [ $meson_ok = 1 ] && [ $have_src = 1 ]; then
        echo "deps: not installed, 'make install' builds without them:" \
             "${missing_extra[*]}; run 'sudo make deps-install' to add them" >&2
        exit 0
    fi
    echo "deps: missing: ${missing[*]:-} (meson>=1.5: $meson_ok, qemu deb-src: $have_src);" \
         "run 'sudo make $target'" >&2
    exit 1
fi
"$here/apt-sources.sh"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || {
    echo "deps: 'apt-get update' failed; check /etc/apt and the network, then rerun 'make deps'" >&2
    exit 1
}
apt-get install -y -q --no-install-recommends "${pkgs[@]}" \
    ${extra[@]+"${extra[@]}"} >/dev/null &&
apt-get install -y -q --no-install-recommends -t bookworm-backports \
    "${backports[@]}" >/dev/null || {
    echo "deps: 'apt-get install' failed (see above); fix that, then rerun 'make $target'" >&2
    exit 1
}
if ! apt-cache showsrc "$QEMU_PKG" 2>/dev/null | grep -xF "Version: $QEMU_VERSION" >/dev/null &&
   [ -z "${QEMU_SRC:-}" ]; then
    echo "deps: no deb-src entry offers $QEMU_PKG $QEMU_VERSION; check" \
         "/etc/apt/sources.list.d/virtio-net-rsc.sources, then rerun 'make deps'" >&2
    exit 1
fi
if ! dpkg --compare-versions "$(meson --version)" ge 1.5; then
    echo "deps: meson $(meson --version) < 1.5 after install; bookworm-backports missing?" >&2
    exit 1
fi
done_pkgs=(${missing[@]+"${missing[@]}"} ${missing_extra[@]+"${missing_extra[@]}"})
echo "deps: installed ${done_pkgs[*]:-apt sources}"
