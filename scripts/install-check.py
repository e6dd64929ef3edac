#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The QMP half of 'make install-check': talks to the QEMU that
# install-check.sh started (q35, OVMF, VNC on a unix socket, maybe a TPM,
# virtio-net-pci id=net0 with guest_rsc_ext=on) and checks, one line each:
# the device and its RSC properties, rsc-stats, VNC, SPICE support, the
# TPM, and that the firmware draws a screen that is not blank (decided from
# the pixels of a PPM screendump).  Exit 1 on the first failed check.
#
# Usage: install-check.py QMP_SOCKET OUT_DIR TPM(0|1) RSC_INTERVAL TIMEOUT_S
#                         MAX_FLOWS   (rsc_max_flows, set with -global)

import json
import os
import socket
import sys
import time


def fail(msg):
    print("install-check: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def ok(msg):
    print("install-check: ok: " + msg)


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        greeting = self._read()
        if "QMP" not in greeting:
            fail("no QMP greeting on %s: %r" % (path, greeting))
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                fail("QEMU closed the QMP socket (did it exit? see qemu.log)")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def call(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.file.write(json.dumps(req).encode() + b"\n")
        self.file.flush()
        return self._read()

    def cmd(self, name, **args):
        resp = self.call(name, **args)
        if "error" in resp:
            fail("%s %s: %s" % (name, json.dumps(args), resp["error"]["desc"]))
        return resp["return"]


def read_ppm(path):
    """(width, height, list of RGB triples) of a binary PPM (P6, maxval 255)."""
    with open(path, "rb") as f:
        data = f.read()
    fields = []
    pos = 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1                        # the single whitespace after maxval
    if fields[0] != b"P6" or fields[3] != b"255":
        fail("%s is not a P6 PPM with maxval 255: %r" % (path, fields))
    w, h = int(fields[1]), int(fields[2])
    pix = data[pos:pos + 3 * w * h]
    if len(pix) != 3 * w * h:
        fail("%s: %d bytes of pixels, want %d" % (path, len(pix), 3 * w * h))
    return w, h, pix


def screen_content(path):
    """(distinct colours, pixels that differ from the most common colour)."""
    w, h, pix = read_ppm(path)
    counts = {}
    for i in range(0, len(pix), 3):
        c = pix[i:i + 3]
        counts[c] = counts.get(c, 0) + 1
    return w, h, len(counts), w * h - max(counts.values())


def main():
    qmp_path, out, tpm, interval, timeout, max_flows = sys.argv[1:7]
    q = Qmp(qmp_path)

    st = q.cmd("query-status")
    if st["status"] != "running":
        fail("QEMU is %s, not running" % st["status"])
    ok("QEMU is running")

    dev = "/machine/peripheral/net0"
    typ = q.cmd("qom-get", path=dev, property="type")
    if typ != "virtio-net-pci":
        fail("net0 is a %s, not a virtio-net-pci" % typ)
    pci = [d for b in q.cmd("query-pci") for d in b["devices"]
           if d.get("qdev_id") == "net0"]
    if not pci or pci[0]["id"]["vendor"] != 0x1af4:
        fail("net0 is not on the PCI bus as a virtio (0x1af4) device: %r" % pci)
    ok("net0: virtio-net-pci at PCI %02x:%02x.%x, device id 0x%04x" % (
        pci[0]["bus"], pci[0]["slot"], pci[0]["function"],
        pci[0]["id"]["device"]))
    if q.cmd("qom-get", path=dev, property="guest_rsc_ext") is not True:
        fail("net0 guest_rsc_ext is not true")
    got = q.cmd("qom-get", path=dev, property="rsc_interval")
    if got != int(interval):
        fail("net0 rsc_interval is %r, want %s" % (got, interval))
    ok("net0: guest_rsc_ext=true rsc_interval=%d" % got)
    # What libvirt's qemu:commandline form relies on: -global reaches the
    # properties virtio-net-pci takes over from virtio-net-device.
    got = q.cmd("qom-get", path=dev, property="rsc_max_flows")
    if got != int(max_flows):
        fail("net0 rsc_max_flows is %r, want %s (from -global)" % (got, max_flows))
    ok("net0: rsc_max_flows=%d from -global virtio-net-pci.rsc_max_flows" % got)
    stats = q.cmd("qom-get", path=dev, property="rsc-stats")
    if not isinstance(stats, dict) or "segments-received" not in stats:
        fail("net0 rsc-stats has no segments-received: %r" % stats)
    bad = {k: v for k, v in stats.items() if not isinstance(v, int) or v < 0}
    if bad:
        fail("net0 rsc-stats has values that are not counters: %r" % bad)
    ok("net0: rsc-stats has %d counters (segments-received %d)" % (
        len(stats), stats["segments-received"]))

    vnc = q.cmd("query-vnc")
    if not vnc.get("enabled") or vnc.get("family") != "unix":
        fail("VNC is not enabled on a unix socket: %r" % vnc)
    ok("VNC: listening on %s" % vnc.get("service", vnc.get("host")))
    q.cmd("query-spice")
    ok("SPICE: built in (query-spice answers)")
    if tpm == "1":
        tpms = q.cmd("query-tpm")
        if not tpms or tpms[0]["model"] != "tpm-crb" or \
           tpms[0]["options"]["type"] != "emulator":
            fail("no tpm-crb with the emulator backend: %r" % tpms)
        ok("TPM: tpm-crb on swtpm (emulator backend)")

    # The firmware draws asynchronously: take screendumps until one has
    # content, or give up at the deadline.
    ppm = os.path.join(out, "screen.ppm")
    deadline = time.monotonic() + float(timeout)
    while True:
        q.cmd("screendump", filename=ppm)
        w, h, colours, differ = screen_content(ppm)
        # Not blank: more than one colour, and at least 0.2% of the pixels
        # (a line of text, a logo) differ from the background.  QEMU's own
        # "Guest has not initialized the display (yet)." (640x480, two
        # colours) is not the firmware's screen.
        placeholder = (w, h) == (640, 480) and colours == 2
        if colours >= 2 and differ * 500 >= w * h and not placeholder:
            break
        if time.monotonic() > deadline:
            fail("the screen is still blank after %ss (%dx%d, %d colours, "
                 "%d pixels off the background); see %s" %
                 (timeout, w, h, colours, differ, ppm))
        time.sleep(0.5)
    ok("screendump: %dx%d, %d colours, %d pixels (%.1f%%) off the "
       "background: %s" % (w, h, colours, differ, 100.0 * differ / (w * h),
                           ppm))
    png = os.path.join(out, "screen.png")
    q.cmd("screendump", filename=png, format="png")
    with open(png, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            fail("%s is not a PNG" % png)
    ok("screendump in PNG: %s" % png)
    # QEMU may close the socket before it answers 'quit': read until it
    # does (the end of the stream is QEMU going away).
    q.file.write(b'{"execute": "quit"}\n')
    q.file.flush()
    try:
        while q.file.readline():
            pass
    except OSError:
        pass


if __name__ == "__main__":
    main()
