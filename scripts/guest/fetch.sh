#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fetch what the test guest is made of with 'apt-get download' into
# $RSC_CACHE/guest/debs and extract each package once into
# $RSC_CACHE/guest/root/<package file>/: the newest Debian 12
# linux-image-6.1.0-*-amd64-unsigned, busybox-static, and qemu-system-data
# (linuxboot_dma.bin, which -kernel needs and the "+ds" source lacks).
# A package already in the cache is not downloaded again.
#
# Usage: fetch.sh OUT.env     writes KERNEL_ROOT, BUSYBOX_ROOT, QEMU_DATA_ROOT
set -euo pipefail
me=guest-fetch
die() { echo "$me: $*" >&2; exit 1; }
[ $# = 1 ] || die "usage: fetch.sh OUT.env"
out=$1
cache=${RSC_CACHE:-$HOME/.cache/virtio-net-rsc}/guest
mkdir -p "$cache/debs" "$cache/root"

# newest_cached PKG: the newest cached .deb of PKG, or nothing.
newest_cached() {
    # (ls fails when none is cached: not an error here)
    { (cd "$cache/debs" && ls -1 -- "$1"_*.deb 2>/dev/null) || true; } |
        sort -V | tail -n 1
}

# deb PKG: download PKG unless cached, print the .deb's file name.
deb() {
    local f
    f=$(newest_cached "$1")
    if [ -z "$f" ]; then
        echo "$me: apt-get download $1" >&2
        (cd "$cache/debs" && apt-get download -q "$1" >/dev/null 2>"$cache/debs/.err") || {
            sed 's/^/    /' "$cache/debs/.err" >&2
            die "'apt-get download $1' failed; check the network and apt" \
                "sources ('make deps' runs apt-get update), then rerun"
        }
        f=$(newest_cached "$1")
        [ -n "$f" ] || die "apt-get download $1 left no $1_*.deb in $cache/debs"
    fi
    echo "$f"
}

# root DEB: extract DEB once, print the directory.
root() {
    local dir=$cache/root/${1%.deb}
    if [ ! -f "$dir/.extracted" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$cache/debs/$1" "$dir" ||
            die "dpkg-deb -x $1 failed; delete $cache/debs/$1 and rerun"
        touch "$dir/.extracted"
    fi
    echo "$dir"
}

newest_kernel() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' \
        2>/dev/null | awk '{ print $1 }' | sort -V | tail -n 1
}
cached_kernel=$({ (cd "$cache/debs" &&
                    ls -1 linux-image-6.1.0-*-amd64-unsigned_*.deb 2>/dev/null) ||
                  true; } | sort -V | tail -n 1 | sed 's/_.*//')
kpkg=$(newest_kernel)
if [ -z "$kpkg" ] && [ -z "$cached_kernel" ] && [ "$(id -u)" = 0 ]; then
    # A fresh machine may have no package lists yet.
    apt-get update -q >/dev/null 2>&1 || true
    kpkg=$(newest_kernel)
fi
if [ -z "$kpkg" ]; then
    # Offline, or no apt lists: the newest kernel already cached will do.
    kpkg=$cached_kernel
    [ -n "$kpkg" ] ||
        die "apt-cache knows no linux-image-6.1.0-*-amd64-unsigned; run 'make deps'" \
            "(it runs apt-get update on Debian 12), then rerun"
fi
kroot=$(root "$(deb "$kpkg")")
broot=$(root "$(deb busybox-static)")
qroot=$(root "$(deb qemu-system-data)")
[ -f "$qroot/usr/share/qemu/linuxboot_dma.bin" ] ||
    die "qemu-system-data has no usr/share/qemu/linuxboot_dma.bin"
[ -x "$broot/bin/busybox" ] || die "busybox-static has no bin/busybox"
ls "$kroot"/boot/vmlinuz-* >/dev/null 2>&1 || die "$kpkg has no boot/vmlinuz-*"
cat > "$out" <<EOT
KERNEL_PKG=$kpkg
KERNEL_ROOT=$kroot
BUSYBOX_ROOT=$broot
QEMU_DATA_ROOT=$qroot
EOT
