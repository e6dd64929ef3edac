#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install the Debian 12 packages the build, the tests and the tooling need.
# Idempotent: does nothing (and needs no root) when everything is present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/../qemu-base.conf"

pkgs=(build-essential ninja-build pkgconf libglib2.0-dev libpixman-1-dev
      libslirp-dev libfdt-dev zlib1g-dev python3-venv python3-distlib
      flex bison ccache dpkg-dev git xz-utils seabios ipxe-qemu
      iproute2 clang llvm libclang-rt-14-dev
      python3-sphinx python3-sphinx-rtd-theme python3-matplotlib valgrind
      librte-gro23 libbsd-dev cpio)
backports=(meson python3-pycotap)

missing=()
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${pkgs[@]}" "${backports[@]}" \
            2>/dev/null | awk '/ ok installed$/ { print $1 }' || true)
for p in "${pkgs[@]}" "${backports[@]}"; do
    if ! printf '%s\n' "$installed" | grep -xF "$p" >/dev/null; then
        missing+=("$p")
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
if [ ${#missing[@]} = 0 ] && [ $meson_ok = 1 ] && [ $have_src = 1 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing: ${missing[*]:-} (meson>=1.5: $meson_ok, qemu deb-src: $have_src);" \
         "run 'sudo make deps'" >&2
    exit 1
fi
"$here/apt-sources.sh"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || {
    echo "deps: 'apt-get update' failed; check /etc/apt and the network, then rerun 'make deps'" >&2
    exit 1
}
apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null &&
apt-get install -y -q --no-install-recommends -t bookworm-backports \
    "${backports[@]}" >/dev/null || {
    echo "deps: 'apt-get install' failed (see above); fix that, then rerun 'make deps'" >&2
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
echo "deps: installed ${missing[*]:-apt sources}"
