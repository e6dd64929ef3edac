#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make install-check: a smoke test of what 'make install' installed into
# $DESTDIR$PREFIX.  Prints the installed build's displays, accelerators and
# virtio-net devices; checks that it uses its own data directory and has the
# features 'make install' promises; validates the libvirt domain XML (both
# the qemu:override form and the qemu:commandline form) with
# virt-xml-validate; then boots q35 with OVMF, VNC on a unix socket, seccomp,
# a swtpm TPM (when swtpm is installed) and virtio-net-pci,guest_rsc_ext=on,
# and checks it over QMP (scripts/install-check.py): the device, rsc-stats,
# and a screendump of the firmware screen that is not blank.
# Output: build/install-check/ (screen.ppm, screen.png, logs).
# Environment: PREFIX (default /usr/local), DESTDIR, CHECK_TIMEOUT (the
# firmware screen's deadline in seconds, default 180).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
me=install-check
trap 'rc=$?; echo "$me: unexpected failure (exit $rc) at line $LINENO: $BASH_COMMAND; fix the cause above and rerun" >&2' ERR
die() { echo "$me: FAIL: $*" >&2; exit 1; }
ok() { echo "$me: ok: $*"; }

prefix=$(realpath -m "${PREFIX:-/usr/local}")
dest=${DESTDIR:-}$prefix
bin=$dest/bin/qemu-system-x86_64
fw=$dest/share/qemu
out=$repo/build/install-check
interval=300000
max_flows=32
timeout=${CHECK_TIMEOUT:-180}

[ -x "$bin" ] || die "$bin is missing; run 'make install PREFIX=$prefix' first"
for t in python3 virt-xml-validate; do
    command -v "$t" >/dev/null ||
        die "$t is missing (Debian packages python3, libvirt-clients);" \
            "run 'sudo make deps-install'"
done
rm -rf "$out"
mkdir -p "$out"
tmp=$(mktemp -d)
qemu_pid="" tpm_pid=""
cleanup() {
    [ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
    [ -z "$tpm_pid" ] || kill "$tpm_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- What the installed build has. -----------------------------------------
"$bin" -display help > "$out/display.txt"
"$bin" -accel help > "$out/accel.txt"
"$bin" -device help > "$out/device.txt"
"$bin" -netdev help > "$out/netdev.txt"
"$bin" -tpmdev help > "$out/tpmdev.txt" 2>&1
"$bin" -device virtio-net-pci,help > "$out/virtio-net-pci.txt"
echo "$me: $bin -display help:"
sed 's/^/    /' "$out/display.txt"
echo "$me: -accel help:"
sed 's/^/    /' "$out/accel.txt"
echo "$me: -device help | grep virtio-net:"
grep virtio-net "$out/device.txt" | sed 's/^/    /'

"$bin" -L help | while read -r d; do realpath -m "$d"; done > "$out/datadirs.txt"
grep -qxF "$fw" "$out/datadirs.txt" && ! grep -qvF "$dest/" "$out/datadirs.txt" ||
    die "-L help lists $(tr '\n' ' ' < "$out/datadirs.txt")- not only directories" \
        "under $dest: the installed QEMU would use another QEMU's files"
ok "data directories: $(tr '\n' ' ' < "$out/datadirs.txt")"
grep -qxE 'sdl|gtk' "$out/display.txt" ||
    die "-display help has neither sdl nor gtk; 'make install' reports which package is missing"
ok "displays: $(grep -xE 'sdl|gtk|curses|egl-headless|dbus|spice-app' "$out/display.txt" | tr '\n' ' ')"
grep -qx tcg "$out/accel.txt" && grep -qx kvm "$out/accel.txt" ||
    die "-accel help does not list both kvm and tcg"
for d in virtio-net-pci usb-host virtio-9p-pci tpm-crb qemu-xhci; do
    grep -q "^name \"$d\"" "$out/device.txt" ||
        die "-device help has no $d; see the feature lines of 'make install'"
done
ok "devices: virtio-net-pci usb-host (libusb) virtio-9p-pci (virtfs) tpm-crb qemu-xhci"
for n in user tap vhost-user; do
    grep -qx "$n" "$out/netdev.txt" || die "-netdev help has no $n"
done
grep -qE '^ *emulator ' "$out/tpmdev.txt" || die "-tpmdev help has no emulator backend"
ok "netdevs: user (slirp) tap vhost-user; tpmdev: emulator"
for p in guest_rsc_ext rsc_interval rsc_max_flows; do
    grep -q "^ *$p=" "$out/virtio-net-pci.txt" ||
        die "virtio-net-pci has no property $p: the installed QEMU is not the RSC series"
done
ok "virtio-net-pci has guest_rsc_ext, rsc_interval, rsc_max_flows"

# Block AIO: 'Invalid aio' means the build lacks it; anything else is the
# kernel or the file system saying no, which is reported, not failed.
"$dest/bin/qemu-img" create -q -f raw "$out/disk.img" 1M
for aio in io_uring native; do
    if r=$("$dest/bin/qemu-io" -f raw -n --aio "$aio" -c 'write 0 4k' \
           "$out/disk.img" 2>&1); then
        ok "qemu-io --aio $aio: a write works"
    elif printf '%s' "$r" | grep -qi 'invalid aio'; then
        die "qemu-io --aio $aio: $r: the build has no $aio support"
    else
        echo "$me: note: qemu-io --aio $aio is built in but fails here: $r"
    fi
done

# --- libvirt. ---------------------------------------------------------------
xml=$dest/share/virtio-net-rsc/windows-rsc.xml
[ -f "$xml" ] || die "$xml is missing; rerun 'make install PREFIX=$prefix'"
grep -qF "<emulator>$prefix/bin/qemu-system-x86_64</emulator>" "$xml" ||
    die "$xml does not point <emulator> at $prefix/bin/qemu-system-x86_64"
virt-xml-validate "$xml" domain > "$out/virt-xml-validate.log" 2>&1 ||
    { cat "$out/virt-xml-validate.log" >&2; die "virt-xml-validate rejects $xml"; }
ok "libvirt: $xml validates (qemu:override form)"
# The same domain with the qemu:commandline form (libvirt older than 8.2).
python3 - "$xml" "$out/windows-rsc-commandline.xml" "$interval" <<'EOF'
import re, sys
src, dst, interval = sys.argv[1:4]
x = open(src).read()
cmd = ("  <qemu:commandline>\n"
       "    <qemu:arg value='-global'/>\n"
       "    <qemu:arg value='virtio-net-pci.guest_rsc_ext=on'/>\n"
       "    <qemu:arg value='-global'/>\n"
       "    <qemu:arg value='virtio-net-pci.rsc_interval=%s'/>\n"
       "  </qemu:commandline>\n" % interval)
y, n = re.subn(r"  <qemu:override>.*</qemu:override>\n", cmd, x, flags=re.S)
assert n == 1, "no qemu:override block in " + src
open(dst, "w").write(y)
EOF
virt-xml-validate "$out/windows-rsc-commandline.xml" domain \
    > "$out/virt-xml-validate.log" 2>&1 ||
    { cat "$out/virt-xml-validate.log" >&2; die "virt-xml-validate rejects the qemu:commandline form"; }
ok "libvirt: the qemu:commandline form validates too"
for p in guest_rsc_ext rsc_interval; do
    grep -q "name='$p'" "$xml" || die "$xml does not set $p"
done

# --- Boot: q35, OVMF, VNC, TPM, seccomp, virtio-net with RSC. ----------------
for f in OVMF_CODE_4M.fd OVMF_VARS_4M.fd efi-virtio.rom; do
    [ -e "$fw/$f" ] ||
        die "$fw/$f is missing (Debian packages ovmf, ipxe-qemu);" \
            "run 'sudo make deps-install', then 'make install'"
done
cp "$fw/OVMF_VARS_4M.fd" "$tmp/vars.fd"
# KVM only where the CPU's virtualization backs it: a /dev/kvm from
# kvm_pvm (hosts without VMX/SVM) emulates an ordinary guest instruction
# by instruction, far slower than TCG.
accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    if [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; then
        accel=kvm
    else
        echo "$me: note: /dev/kvm is not backed by kvm_intel or kvm_amd (kvm_pvm?): using TCG"
    fi
fi
tpm_args=()
want_tpm=0
if command -v swtpm >/dev/null; then
    mkdir "$tmp/tpm"
    swtpm socket --tpm2 --tpmstate dir="$tmp/tpm" --terminate \
        --ctrl type=unixio,path="$tmp/swtpm.sock" \
        --log file="$out/swtpm.log" --pid file="$tmp/swtpm.pid" --daemon ||
        die "swtpm did not start; see build/install-check/swtpm.log"
    tpm_pid=$(cat "$tmp/swtpm.pid")
    tpm_args=(-chardev "socket,id=chrtpm,path=$tmp/swtpm.sock"
              -tpmdev emulator,id=tpm0,chardev=chrtpm
              -device tpm-crb,tpmdev=tpm0)
    want_tpm=1
else
    echo "$me: note: swtpm is not installed (Debian package swtpm): no TPM in the boot"
fi
# -daemonize returns once the QMP and VNC sockets listen.
"$bin" -machine q35 -accel "$accel" -m 512 -nodefaults -vga std \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$fw/OVMF_CODE_4M.fd" \
    -drive "if=pflash,format=raw,unit=1,file=$tmp/vars.fd" \
    -display none -vnc "unix:$tmp/vnc.sock" -sandbox on \
    -qmp "unix:$tmp/qmp.sock,server=on,wait=off" \
    -netdev user,id=n0 \
    -device "virtio-net-pci,netdev=n0,id=net0,guest_rsc_ext=on,rsc_interval=$interval" \
    -global "virtio-net-pci.rsc_max_flows=$max_flows" \
    "${tpm_args[@]}" \
    -D "$out/qemu.log" -pidfile "$tmp/qemu.pid" -daemonize \
    2> "$out/qemu.err" ||
    { cat "$out/qemu.err" >&2; die "the installed QEMU did not start (above)"; }
qemu_pid=$(cat "$tmp/qemu.pid")
ok "started: q35, $accel, OVMF, -vnc unix:, -sandbox on, -netdev user," \
   "virtio-net-pci,guest_rsc_ext=on$([ $want_tpm = 1 ] && echo ', swtpm TPM')"
python3 "$repo/scripts/install-check.py" "$tmp/qmp.sock" "$out" "$want_tpm" \
    "$interval" "$timeout" "$max_flows"
timeout 30 tail --pid="$qemu_pid" -f /dev/null ||
    die "QEMU (pid $qemu_pid) did not exit within 30 s of 'quit'"
qemu_pid=""
ok "QEMU quit; all checks passed (output in build/install-check/)"
