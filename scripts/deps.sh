#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install the Debian 12 packages the build, the tests and the tooling need.
# Idempotent: does nothing (and needs no root) when everything is present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

pkgs=(build-essential ninja-build pkgconf libglib2.0-dev libpixman-1-dev
      libslirp-dev libfdt-dev zlib1g-dev python3-venv python3-distlib
      flex bison ccache dpkg-dev git xz-utils seabios ipxe-qemu
      iproute2 clang llvm libclang-rt-14-dev
      python3-sphinx python3-sphinx-rtd-theme)
backports=(meson python3-pycotap)

missing=()
for p in "${pkgs[@]}" "${backports[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$p")
    fi
done
meson_ok=0
if command -v meson >/dev/null &&
   dpkg --compare-versions "$(meson --version)" ge 1.5; then
    meson_ok=1
fi
have_src=0
if apt-cache showsrc qemu 2>/dev/null | grep -q '^Version: 1:10.2.2+ds-1$'; then
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
apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null
apt-get install -y -q --no-install-recommends -t bookworm-backports \
    "${backports[@]}" >/dev/null
if ! dpkg --compare-versions "$(meson --version)" ge 1.5; then
    echo "deps: meson $(meson --version) < 1.5 after install; bookworm-backports missing?" >&2
    exit 1
fi
echo "deps: installed ${missing[*]:-apt sources}"
