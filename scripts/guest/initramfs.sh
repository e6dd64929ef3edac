#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the test guest's initramfs: busybox-static, the kernel's virtio
# modules (loaded by /init in dependency order), /init, /agent and gnet
# (scripts/guest/gnet.c, compiled static), as a gzipped newc cpio.
#
# Usage: initramfs.sh PATHS.env OUT.gz     (PATHS.env from fetch.sh)
set -euo pipefail
me=guest-initramfs
die() { echo "$me: $*" >&2; exit 1; }
[ $# = 2 ] || die "usage: initramfs.sh PATHS.env OUT.gz"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$1"
out=$2
command -v cpio >/dev/null || die "cpio is missing; run 'make deps'"
mods=(drivers/virtio/virtio_ring drivers/virtio/virtio
      drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci_legacy_dev
      drivers/virtio/virtio_pci net/core/failover drivers/net/net_failover
      drivers/net/virtio_net)
kdir=$(ls -d "$KERNEL_ROOT"/lib/modules/* | head -n 1)
stage=$(mktemp -d "${out%/*}/initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib/modules}
cp "$BUSYBOX_ROOT/bin/busybox" "$stage/bin/busybox"
for m in "${mods[@]}"; do
    [ -f "$kdir/kernel/$m.ko" ] ||
        die "$KERNEL_PKG has no $m.ko (compressed modules?); delete" \
            "${KERNEL_ROOT%/*} to fetch again"
    cp "$kdir/kernel/$m.ko" "$stage/lib/modules/"
done
gcc -static -O2 -Wall -Werror -o "$stage/bin/gnet" "$here/gnet.c" ||
    die "compiling gnet.c failed (gcc -static needs libc6-dev; run 'make deps')"
install -m 755 "$here/init" "$stage/init"
install -m 755 "$here/agent" "$stage/agent"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
     cpio -o -H newc -R 0:0 --quiet) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
