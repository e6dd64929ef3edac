#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make demo: the patched QEMU with -device virtio-net-pci,guest_rsc_ext=on
# receives a real TCP stream from the Linux kernel (a tap in a private
# network namespace; the socket backend with built segments where no tap
# can be made).  The guest is bench/rsc-demo.c, with the driver of the RSC
# qtest (tests/qtest/virtio-net-rsc-utils.c), negotiating like the Windows
# netkvm driver: it answers the handshake, checks every byte and ACKs.
# Three runs: RSC off, rsc_interval=300000, rsc_interval=0.  The program is
# built here, against build/qemu, into build/bench/rsc-demo.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=demo
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

bdir=$TREE/build
bin=$repo/build/bench/rsc-demo
for f in qemu-system-x86_64 compile_commands.json libqemuutil.a \
         tests/qtest/libqos/libqos.a.p/virtio.c.o; do
    [ -e "$bdir/$f" ] || die "build/qemu/build is not built (no $f); run 'make' first"
done
build_qtest_prog "$bin" "$repo/bench/rsc-demo.c" \
    "$TREE/tests/qtest/virtio-net-rsc-utils.c" -- \
    "$TREE/tests/qtest/virtio-net-rsc-utils.h" \
    "$TREE/tests/include/virtio-net-rsc-frames.h" "$0"
cd "$bdir"
echo "demo: $(./qemu-system-x86_64 --version | head -n 1), built from build/qemu"
echo "demo: -device virtio-net-pci,netdev=n0,guest_rsc_ext=on,rsc_interval=N"
log=$(mktemp)
rc=0
RSC_DEMO=1 QTEST_QEMU_BINARY=./qemu-system-x86_64 "$bin" --tap 2>&1 |
    tee "$log" | sed -u -n 's/^# demo: /demo: /p' || rc=$?
if [ "$rc" != 0 ] || ! grep -q '^ok ' "$log"; then
    grep -E 'ERROR|^not ok|Bail out' "$log" >&2 || true
    die "the demo failed (log: $log)"
fi
rm -f "$log"
