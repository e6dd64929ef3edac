#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A real Linux guest (Debian 12's 6.1 kernel, busybox) on the built QEMU,
# receiving TCP streams from the host through virtio-net with rsc_gro off
# and on: a tap in a private network namespace (host offloads off, so
# QEMU reads MSS-sized frames; and on, the host-GRO anchor) and
# -netdev user with a port forward.  The guest checks the sha256 of what
# it received and reports its rx_packets; see scripts/guest/driver.py.
#
#   guest.sh check   the test ('make check' suite "guest"); exit 1 on failure
#   guest.sh check|bench ARGS...   ARGS go to driver.py (--exec CMD...)
#   guest.sh bench   make bench-guest: off against on, GUEST_RUNS runs
#                    (default 7), bench/GUEST-RESULTS.md and its plot
#
# Downloads (apt-get download, cached in $RSC_CACHE/guest): the newest
# linux-image-6.1.0-*-amd64-unsigned, busybox-static, qemu-system-data.
# Needs root for the namespace; without it the tap cases are skipped.
# Environment: GUEST_MIB (stream size, default 32, bench 64), GUEST_RUNS,
# GUEST_TIMEOUT (seconds for the whole run, default 600, bench 1800).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=guest
# shellcheck source=scripts/lib.sh
. "$repo/scripts/lib.sh"

mode=${1:-check}
case $mode in
check | bench) ;;
*) die "usage: guest.sh check|bench" ;;
esac
if [ "$mode" = bench ]; then
    mib=${GUEST_MIB:-64}
    limit=${GUEST_TIMEOUT:-1800}
else
    mib=${GUEST_MIB:-32}
fi
runs=${GUEST_RUNS:-7}
limit=${limit:-${GUEST_TIMEOUT:-600}}
for v in "$mib" "$runs" "$limit"; do
    case $v in '' | *[!0-9]* | 0) die "GUEST_MIB, GUEST_RUNS and GUEST_TIMEOUT must be positive numbers" ;; esac
done
py=/usr/bin/python3
qemu=$TREE/build/qemu-system-x86_64
work=$repo/build/guest
[ -x "$qemu" ] || die "build/qemu/build/qemu-system-x86_64 is missing; run 'make'"
[ -x "$py" ] || die "$py is missing; run 'make deps'"
if [ "$mode" = bench ]; then
    "$py" -c 'import matplotlib' 2>/dev/null ||
        die "python3-matplotlib is missing; run 'make deps'"
fi
mkdir -p "$work"

"$repo/scripts/guest/fetch.sh" "$work/paths.env"
"$repo/scripts/guest/initramfs.sh" "$work/paths.env" "$work/initramfs.gz"
# shellcheck source=/dev/null
. "$work/paths.env"
kernel=$(ls "$KERNEL_ROOT"/boot/vmlinuz-* | head -n 1)
echo "guest: $KERNEL_PKG, $(${qemu} --version | head -n 1)"

# The private namespace for the taps, removed on every way out.
ns=vnrsc-guest-$$
have_ns=0
notap=()
cleanup() {
    if [ $have_ns = 1 ]; then
        ip netns del "$ns" 2>/dev/null ||
            echo "guest: could not delete network namespace $ns; 'ip netns del $ns'" >&2
    fi
    rm -rf "$run"
}
run=$(mktemp -d "$work/run.XXXXXX")
trap cleanup EXIT
if [ "$(id -u)" = 0 ]; then
    # Namespaces of earlier runs that were killed before their cleanup.
    for old in $(ip netns list 2>/dev/null | awk '/^vnrsc-guest-[0-9]+( |$)/ { print $1 }'); do
        kill -0 "${old#vnrsc-guest-}" 2>/dev/null || ip netns del "$old" 2>/dev/null || true
    done
fi
if [ "$(id -u)" != 0 ]; then
    notap=(--no-tap "not root: no network namespace for the taps")
elif [ ! -c /dev/net/tun ]; then
    notap=(--no-tap "no /dev/net/tun: no taps")
elif ! err=$(ip netns add "$ns" 2>&1); then
    notap=(--no-tap "no network namespace ('ip netns add': $err)")
else
    have_ns=1
    ip -n "$ns" link set lo up
fi
[ ${#notap[@]} = 0 ] || echo "guest: ${notap[1]}; the tap cases are skipped"

drv=("$py" "$repo/scripts/guest/driver.py" "$mode" --qemu "$qemu"
     --kernel "$kernel" --initrd "$work/initramfs.gz"
     --qemu-data "$QEMU_DATA_ROOT/usr/share/qemu" --repo "$repo"
     --workdir "$run" --mib "$mib" --runs "$runs" --raw "$work/bench-raw.jsonl"
     "${notap[@]}" "${@:2}")
if [ $have_ns = 1 ]; then
    drv=(ip netns exec "$ns" "${drv[@]}")
fi
rc=0
timeout -k 15 "$limit" "${drv[@]}" || rc=$?
if [ $rc = 124 ] || [ $rc = 137 ]; then
    echo "guest: the run did not finish in ${limit}s (GUEST_TIMEOUT); console:"
    tail -n 20 "$run/console.log" 2>/dev/null | sed 's/^/    /'
fi
if [ $rc != 0 ]; then
    cp "$run/console.log" "$work/console.log" 2>/dev/null || true
    die "the guest run failed (exit $rc; guest console: build/guest/console.log)"
fi
if [ "$mode" = bench ]; then
    "$py" "$repo/scripts/guest/report.py" "$work/bench-raw.jsonl" \
        "$repo/bench/GUEST-RESULTS.md" "$repo/bench/guest-results.png" \
        "$KERNEL_PKG" "$(git -C "$repo" rev-parse --short HEAD)" "$runs" "$mib"
    echo "guest: wrote bench/GUEST-RESULTS.md and bench/guest-results.png"
fi
