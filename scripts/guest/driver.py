#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Boot the test guest (a Debian 6.1 kernel, scripts/guest/initramfs.sh) in
# the built QEMU with several virtio-net NICs and send it TCP streams from
# the host; the guest checks what arrived (sha256) and reports its own
# counters.  Run by scripts/guest.sh, inside a private network namespace
# when there is one (the taps are made here, in that namespace).
#
#   driver.py check ...   the test: one line per case, ok / not ok / SKIP
#   driver.py bench ...   interleaved runs, one JSON line per stream (--raw)
#
# Every wait has a deadline; the only process started is QEMU, which dies
# with this one (PR_SET_PDEATHSIG) and is killed on any way out.

import argparse
import array
import ctypes
import fcntl
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time

MIB = 1 << 20
GUEST_PORT = 5001
# Coalescing a case must show (segments per guest packet), see check().
TAP_ON_MIN = 20.0      # rsc_gro=on, tap, host offloads off (issue 13; 35-43)
USER_ON_MIN = 10.0     # rsc_gro=on, -netdev user (measured 25-28)
PHASE_ON_MIN = 10.0    # the parts of a flip stream with rx-gro-hw on
OFF_MAX = 1.1          # nothing coalesced: rsc_gro=off, or rx-gro-hw off
# Kernel messages that fail a run wherever they appear on the console.
BAD_CONSOLE = re.compile(r"bad gso|WARNING|csum|checksum|Call Trace|BUG|"
                         r"Oops|skb_over|skb_under|refcount_t|init: ",
                         re.IGNORECASE)

# The NICs.  tap: host side gtN in this namespace, host .1, guest .2;
# user: its own net so that no two NICs share a subnet.
NICS = {
    "tap-off": dict(backend="tap", gro=False, hostoff=True, n=1),
    "tap-on": dict(backend="tap", gro=True, hostoff=True, n=2),
    "tap-hostgro": dict(backend="tap", gro=False, hostoff=False, n=3),
    "tap-on-hostgro": dict(backend="tap", gro=True, hostoff=False, n=4),
    "tap-on0": dict(backend="tap", gro=True, hostoff=True, n=7,
                    extra=",rsc_interval=0"),
    "user-off": dict(backend="user", gro=False, n=5),
    "user-on": dict(backend="user", gro=True, n=6),
}
for _name, _nic in NICS.items():
    _n = _nic["n"]
    _nic["mac"] = "52:54:00:72:00:%02x" % _n
    if _nic["backend"] == "tap":
        _nic["ifname"] = "gt%d" % _n
        _nic["host4"] = "10.77.%d.1" % _n
        _nic["guest4"] = "10.77.%d.2" % _n
        _nic["host6"] = "fd00:77:%d::1" % _n
        _nic["guest6"] = "fd00:77:%d::2" % _n
    else:
        _nic["guest4"] = "10.0.%d.15" % _n
        _nic["hostfwd"] = 15000 + _n


class Failure(Exception):
    """The run cannot go on (QEMU died, the guest stopped answering)."""


def log(msg):
    print("# " + msg, flush=True)


# --- host side: ethtool on the taps --------------------------------------

SIOCETHTOOL = 0x8946
ETHTOOL_GTSO, ETHTOOL_STSO = 0x1e, 0x1f
ETHTOOL_GGSO, ETHTOOL_SGSO = 0x23, 0x24
ETHTOOL_GGRO, ETHTOOL_SGRO = 0x2b, 0x2c


def ethtool_value(ifname, cmd, value=0):
    buf = array.array("I", [cmd, value])
    addr, _ = buf.buffer_info()
    ifr = struct.pack("16sP", ifname.encode(), addr)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)
    return buf[1]


def host_offloads(ifname):
    return {"tso": ethtool_value(ifname, ETHTOOL_GTSO),
            "gso": ethtool_value(ifname, ETHTOOL_GGSO),
            "gro": ethtool_value(ifname, ETHTOOL_GGRO)}


def host_offloads_off(ifname):
    for cmd in (ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO):
        ethtool_value(ifname, cmd, 0)
    state = host_offloads(ifname)
    if any(state.values()):
        raise Failure("could not turn offloads off on %s: %s"
                      % (ifname, state))


def tap_tx_packets(ifname):
    with open("/sys/class/net/%s/statistics/tx_packets" % ifname) as f:
        return int(f.read())


def make_taps(nics):
    for name in nics:
        nic = NICS[name]
        if nic["backend"] != "tap":
            continue
        dev = nic["ifname"]
        for cmd in (["ip", "tuntap", "add", "dev", dev, "mode", "tap"],
                    ["ip", "addr", "add", nic["host4"] + "/24", "dev", dev],
                    ["ip", "-6", "addr", "add", nic["host6"] + "/64",
                     "dev", dev, "nodad"],
                    ["ip", "link", "set", dev, "up"]):
            r = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               timeout=20)
            if r.returncode:
                raise Failure("'%s' failed: %s" % (" ".join(cmd),
                                                   r.stdout.strip()))


# --- QEMU and the guest ----------------------------------------------------

def set_pdeathsig():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Lines:
    """Line reader with deadlines over a connected stream socket."""

    def __init__(self, sock, what):
        self.sock, self.what, self.buf = sock, what, b""

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("%s: nothing for %ds" % (self.what, timeout))
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                data = self.sock.recv(65536)
                if not data:
                    raise Failure("%s: closed" % self.what)
                self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")


def kvm_usable():
    """
    Whether KVM runs an ordinary guest at speed: /dev/kvm is there and
    backed by the CPU's virtualization (kvm_intel or kvm_amd).  Some hosts
    without VMX/SVM offer /dev/kvm through kvm_pvm, which only runs
    PVM-aware guest kernels fast: Debian's kernel there is emulated
    instruction by instruction and does not boot in minutes, so TCG is
    used instead.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    if not any(os.path.isdir("/sys/module/" + m)
               for m in ("kvm_intel", "kvm_amd")):
        log("/dev/kvm is there, but not kvm_intel or kvm_amd (kvm_pvm?): "
            "using TCG, which boots Debian's kernel far faster here")
        return False
    return True


class Guest:
    def __init__(self, args, nics, workdir):
        self.args, self.nics, self.dir = args, nics, workdir
        self.proc = None
        self.console = os.path.join(workdir, "console.log")
        self.console_pos = 0
        self.accel = "?"

    def qemu_args(self):
        a = self.args
        ctl = os.path.join(self.dir, "ctl.sock")
        qmp = os.path.join(self.dir, "qmp.sock")
        accel = ["-accel", "tcg"]
        if kvm_usable():
            accel = ["-accel", "kvm", "-accel", "tcg"]
        argv = [a.qemu, "-M", "pc", *accel, "-m", "512", "-smp", "1",
                "-nodefaults", "-display", "none", "-vga", "none",
                "-no-reboot",
                "-L", a.qemu_data, "-L", "/usr/share/seabios",
                "-L", "/usr/lib/ipxe/qemu",
                "-kernel", a.kernel, "-initrd", a.initrd,
                "-append", "console=ttyS0 quiet loglevel=5 panic=-1",
                "-serial", "file:" + self.console,
                "-chardev", "socket,id=ctl,path=%s,server=on,wait=on" % ctl,
                "-serial", "chardev:ctl",
                "-qmp", "unix:%s,server=on,wait=off" % qmp]
        for name in self.nics:
            nic = NICS[name]
            nid = "n%d" % nic["n"]
            if nic["backend"] == "tap":
                argv += ["-netdev", "tap,id=%s,ifname=%s,script=no,"
                         "downscript=no,vhost=off" % (nid, nic["ifname"])]
            else:
                argv += ["-netdev", "user,id=%s,net=10.0.%d.0/24,"
                         "hostfwd=tcp:127.0.0.1:%d-%s:%d"
                         % (nid, nic["n"], nic["hostfwd"], nic["guest4"],
                            GUEST_PORT)]
            argv += ["-device", "virtio-net-pci,id=dev-%s,netdev=%s,mac=%s,"
                     "romfile=,rsc_gro=%s%s"
                     % (name, nid, nic["mac"], "on" if nic["gro"] else "off",
                        nic.get("extra", ""))]
        if not a.rsc_gro_prop:
            argv = [x.replace(",rsc_gro=off", "") for x in argv]
        return argv, ctl, qmp

    def start(self):
        argv, ctl, qmp = self.qemu_args()
        log("qemu: " + " ".join(argv))
        self.t_start = time.monotonic()
        self.qlog = open(os.path.join(self.dir, "qemu.log"), "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.qlog,
                                     stderr=subprocess.STDOUT,
                                     preexec_fn=set_pdeathsig)
        self.ctl = self.connect(ctl, 30)
        self.lines = Lines(self.ctl, "the guest's control channel")
        line = self.expect_ready(self.args.boot_timeout)
        self.boot_secs = time.monotonic() - self.t_start
        log("guest: %s after %.1fs" % (line, self.boot_secs))
        self.qmp = self.connect(qmp, 10)
        self.qmp_lines = Lines(self.qmp, "QMP")
        self.qmp_lines.readline(10)
        self.qmp_cmd("qmp_capabilities")
        kvm = self.qmp_cmd("query-kvm")
        self.accel = "KVM" if kvm.get("enabled") else "TCG"

    def connect(self, path, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Failure("QEMU exited with status %d: %s"
                              % (self.proc.returncode, self.qemu_log()))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise Failure("QEMU did not open %s in %ds"
                                  % (path, timeout))
                # QEMU is still starting; look again shortly.
                time.sleep(0.05)

    def expect_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.readline(max(left, 0.01))
            except Failure:
                raise Failure("the guest did not come up in %ds; console: %s"
                              % (timeout, self.console_tail()))
            if line == "ready":
                return line

    def qemu_log(self):
        with open(os.path.join(self.dir, "qemu.log")) as f:
            return f.read().strip()[-600:]

    def console_tail(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()[-800:]
        except OSError:
            return "(none)"

    def console_new(self):
        """Console text written since the last call."""
        with open(self.console, "rb") as f:
            f.seek(self.console_pos)
            data = f.read()
        self.console_pos += len(data)
        return data.decode(errors="replace")

    def qmp_cmd(self, cmd, **arguments):
        msg = {"execute": cmd}
        if arguments:
            msg["arguments"] = arguments
        self.qmp.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = json.loads(self.qmp_lines.readline(30))
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise Failure("QMP %s: %s" % (cmd, r["error"]))

    def send(self, line):
        self.ctl.sendall(line.encode() + b"\n")

    def reply(self, timeout=60, until=None):
        """Lines up to "ok" (returned without it); raises on "err"."""
        out = []
        while True:
            line = self.lines.readline(timeout)
            if line == "ok":
                return out
            if line.startswith("err"):
                raise Failure("guest: %s" % " | ".join(out + [line]))
            out.append(line)
            if until and line.startswith(until):
                return out

    def cmd(self, line, timeout=60):
        self.send(line)
        return self.reply(timeout)

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if not self.proc:
            return
        if self.proc.poll() is None:
            try:
                self.cmd("quit", timeout=10)
            except (Failure, OSError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log("QEMU did not exit after quit; killing it (pid %d)"
                    % self.proc.pid)
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.qlog.close()


# --- one stream ------------------------------------------------------------

def parse_kv(line):
    return {k: v for k, v in (w.split("=", 1) for w in line.split()[1:])}


def stream(g, name, data, digest, v6=False, off_at=0, on_at=0, timeout=180):
    """Send data to NIC name's guest address; return what both sides saw."""
    nic = NICS[name]
    if v6:
        bind, dest = nic["guest6"], (nic["guest6"], GUEST_PORT)
    elif nic["backend"] == "tap":
        bind, dest = nic["guest4"], (nic["guest4"], GUEST_PORT)
    else:
        bind, dest = nic["guest4"], ("127.0.0.1", nic["hostfwd"])
    g.send("recv %s %s %d %d %d" % (nic["mac"], bind, GUEST_PORT,
                                    off_at, on_at))
    g.reply(timeout=30, until="listening")
    if nic.get("hostoff"):
        # Again before every stream: QEMU's TUNSETOFFLOAD (when the guest
        # turns rx-gro-hw on) turns the tap's TSO back on.
        host_offloads_off(nic["ifname"])
    tx0 = tap_tx_packets(nic["ifname"]) if nic["backend"] == "tap" else None
    cpu0, t0 = g.cpu_seconds(), time.monotonic()
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(dest)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
    secs = time.monotonic() - t0
    cpu = g.cpu_seconds() - cpu0
    tx = tap_tx_packets(nic["ifname"]) - tx0 if tx0 is not None else None
    out = g.reply(timeout=120)
    res = {}
    for line in out:
        if line.startswith("result "):
            res = {k: (v if k == "grohw" else int(v))
                   for k, v in parse_kv(line).items()}
        elif line.startswith("sha256 "):
            res["sha256"] = line.split()[1]
    if "bytes" not in res or "sha256" not in res:
        raise Failure("guest reply without result/sha256: %s" % out)
    res.update(nic=name, v6=v6, secs=secs, cpu=cpu, host_segs=tx,
               sent=len(data), sha_ok=res["sha256"] == digest,
               rx=res["rx_end"] - res["rx0"])
    return res


# --- check -----------------------------------------------------------------

class Tap:
    def __init__(self):
        self.n = self.passed = self.failed = self.skipped = 0

    def ok(self, name, good, detail):
        self.n += 1
        if good:
            self.passed += 1
            print("ok %d - %s: %s" % (self.n, name, detail), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s: %s" % (self.n, name, detail), flush=True)

    def skip(self, name, reason):
        self.n += 1
        self.skipped += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, reason), flush=True)


def ratio(segs, rx):
    return segs / rx if rx else float("inf")


def phases(r):
    """(packets, segments) with rx-gro-hw on, and with it off, in a stream
    that turned it off at at_off bytes and on again at at_on (if set)."""
    mss = r["rcv_mss"]
    end_off = r["at_on"] or r["bytes"]
    rx_end_off = r["rx_on"] if r["at_on"] else r["rx_end"]
    p_on, s_on = r["rx_off"] - r["rx0"], r["at_off"] / mss
    if r["at_on"]:
        p_on += r["rx_end"] - r["rx_on"]
        s_on += (r["bytes"] - r["at_on"]) / mss
    p_off, s_off = rx_end_off - r["rx_off"], (end_off - r["at_off"]) / mss
    return (p_on, s_on), (p_off, s_off)


def judge(r, want):
    """Problems with stream result r, given what the case expects."""
    bad = []
    nic = NICS[r["nic"]]
    if r["bytes"] != r["sent"]:
        bad.append("received %d of %d bytes" % (r["bytes"], r["sent"]))
    if not r["sha_ok"]:
        bad.append("sha256 mismatch")
    mss = r["rcv_mss"]
    if not mss:
        bad.append("guest reports rcv_mss 0")
        return bad
    est = -(-r["bytes"] // mss)
    segs = r["host_segs"] if nic.get("hostoff") else est
    rx = r["rx"]
    if nic["backend"] == "tap" and nic["hostoff"] and segs < 0.95 * est:
        bad.append("only %d frames left the tap for %d MSS-sized segments:"
                   " host offloads are not off" % (segs, est))
    if want == "coalesced":
        need = TAP_ON_MIN if nic["backend"] == "tap" else USER_ON_MIN
        if ratio(segs, rx) < need:
            bad.append("%d packets for %d segments: %.1f segments a packet,"
                       " want >= %g" % (rx, segs, ratio(segs, rx), need))
    elif want == "single":
        if ratio(segs, rx) > OFF_MAX:
            bad.append("%d packets for %d segments: coalesced although off"
                       % (rx, segs))
    elif want == "flip":
        (p_on, s_on), (p_off, s_off) = phases(r)
        if ratio(s_on, p_on) < PHASE_ON_MIN:
            bad.append("rx-gro-hw on: %d packets for %d segments, want"
                       " >= %g segments a packet"
                       % (p_on, s_on, PHASE_ON_MIN))
        if ratio(s_off, p_off) > OFF_MAX:
            bad.append("rx-gro-hw off: %d packets for %d segments:"
                       " coalesced although turned off" % (p_off, s_off))
        want_end = "on" if r["at_on"] else "off"
        if r["grohw"] != want_end:
            bad.append("rx-gro-hw is %s at the end, not %s"
                       % (r["grohw"], want_end))
    return bad


def describe(r):
    segs, src = r["host_segs"], "tap tx_packets"
    if not NICS[r["nic"]].get("hostoff"):
        segs, src = -(-r["bytes"] // r["rcv_mss"]), "bytes/rcv_mss"
        if r["host_segs"] is not None:
            src += ", %d frames left the tap" % r["host_segs"]
    s = ("%d MiB%s in %.2fs, sha256 %s, rx_packets %d for %d segments (%s)"
         ", %.1f segments a packet, QEMU CPU %.3fs"
         % (r["bytes"] // MIB, " IPv6" if r["v6"] else "", r["secs"],
            "match" if r["sha_ok"] else "MISMATCH", r["rx"], segs, src,
            ratio(segs, r["rx"]), r["cpu"]))
    if r["at_off"]:
        (p_on, s_on), (p_off, s_off) = phases(r)
        s += (", rx-gro-hw %s: %d packets for %d segments (%.1f),"
              " off: %d for %d (%.2f)"
              % ("on (first third and last)" if r["at_on"] else
                 "on (first half)", p_on, s_on, ratio(s_on, p_on),
                 p_off, s_off, ratio(s_off, p_off)))
    return s


def grohw(g, name):
    out = g.cmd("grohw %s" % NICS[name]["mac"])
    return out[-1].split()[1:3]


def features(g, name):
    bits = g.cmd("features %s" % NICS[name]["mac"])[-1].split()[1]
    return {"GUEST_CSUM": bits[1] == "1",
            "CTRL_GUEST_OFFLOADS": bits[2] == "1",
            "GUEST_TSO4": bits[7] == "1", "GUEST_TSO6": bits[8] == "1",
            "RSC_EXT": len(bits) > 61 and bits[61] == "1"}


def check(args, g, nics, tap):
    size, fsize = args.mib * MIB, args.flip_mib * MIB
    data = os.urandom(max(size, fsize))
    plain, flip = data[:size], data[:fsize]
    dp = hashlib.sha256(plain).hexdigest()
    df = hashlib.sha256(flip).hexdigest()
    third = fsize // 3

    def console_ok(case):
        text = g.console_new()
        hits = [ln for ln in text.splitlines() if BAD_CONSOLE.search(ln)]
        if hits:
            tap.ok(case + " console", False,
                   "guest kernel said: " + " | ".join(hits[:6]))

    console_ok("boot")
    cases = [
        ("tap-off", "plain", "single"), ("tap-off", "flip", "single"),
        ("tap-on", "plain", "coalesced"), ("tap-on", "flip", "flip"),
        ("tap-on", "v6", "coalesced"),
        ("tap-hostgro", "plain", "any"), ("tap-on-hostgro", "plain", "any"),
        ("user-off", "plain", "single"),
        ("user-on", "plain", "coalesced"), ("user-on", "flip", "flip"),
    ]
    for name, kind, want in cases:
        nic = NICS[name]
        case = "%s (%s, rsc_gro=%s) %s" % (
            name, "tap, host offloads " + ("off" if nic.get("hostoff")
                                           else "on")
            if nic["backend"] == "tap" else "user",
            "on" if nic["gro"] else "off", kind)
        if name not in nics:
            how, why = args.skip_reason[name]
            if how == "fail":
                tap.ok(case, False, why)
            else:
                tap.skip(case, why)
            continue
        fst = grohw(g, name)
        if kind == "flip" and fst[1] != "changeable":
            tap.ok(case, False, "rx-gro-hw is %s %s: the guest cannot turn "
                   "it off (features %s)" % (fst[0], fst[1],
                                             features(g, name)))
            continue
        try:
            if kind == "flip" and nic["backend"] == "tap":
                # Off at the middle only: turning rx-gro-hw on again
                # would turn the tap's TSO on (see stream()).
                r = stream(g, name, flip, df, off_at=fsize // 2)
                g.cmd("grohw %s on" % nic["mac"])
            elif kind == "flip":
                r = stream(g, name, flip, df, off_at=third, on_at=2 * third)
            else:
                r = stream(g, name, plain, dp, v6=(kind == "v6"))
        except (Failure, OSError) as e:
            tap.ok(case, False, str(e))
            if g.proc.poll() is not None:
                raise Failure("QEMU exited (status %d): %s"
                              % (g.proc.returncode, g.qemu_log()))
            continue
        bad = judge(r, want)
        tap.ok(case, not bad, "; ".join(bad + [describe(r)]))
        console_ok(case)
    # What the guest kernel counted as broken over the whole run.
    out = g.cmd("stats")
    snmp = {}
    table = [ln for ln in out if ln.startswith(("Ip:", "Tcp:"))]
    for hdr, vals in zip(table[0::2], table[1::2]):
        if hdr.split()[0] != vals.split()[0]:
            break
        proto = hdr.split()[0]
        for k, v in zip(hdr.split()[1:], vals.split()[1:]):
            snmp[proto + k] = int(v)
    bad = ["%s=%d" % (k, snmp[k]) for k in
           ("Ip:InHdrErrors", "Ip:InCsumErrors", "Tcp:InCsumErrors",
            "Tcp:InErrs") if snmp.get(k)]
    for line in out:
        if line.startswith("ifstats "):
            kv = parse_kv(line.split(None, 1)[1])
            bad += ["%s %s=%s" % (line.split()[1], k, v) for k, v in kv.items()
                    if k != "rx_dropped" and v != "0"]
    tap.ok("guest error counters", not bad and "Tcp:InCsumErrors" in snmp,
           ", ".join(bad) if bad else
           "no IP/TCP checksum or header errors, no driver rx errors")


# --- bench -----------------------------------------------------------------

def bench(args, g, nics, raw):
    size = args.mib * MIB
    data = os.urandom(size)
    digest = hashlib.sha256(data).hexdigest()
    order = [n for n in ("tap-off", "tap-on", "tap-on0", "tap-hostgro",
                         "user-off", "user-on") if n in nics]
    with open(raw, "w") as f:
        for run in range(args.runs):
            for i in range(len(order)):
                name = order[(i + run) % len(order)]
                r = stream(g, name, data, digest)
                if not r["sha_ok"] or r["bytes"] != size:
                    raise Failure("%s: data corrupted: %s" % (name, r))
                r.update(run=run, accel=g.accel, load=os.getloadavg()[0])
                f.write(json.dumps(r) + "\n")
                f.flush()
                log("run %d %s: %s" % (run, name, describe(r)))
    hits = [ln for ln in g.console_new().splitlines()
            if BAD_CONSOLE.search(ln)]
    if hits:
        raise Failure("guest kernel said: " + " | ".join(hits[:6]))


# --- main ------------------------------------------------------------------

def has_rsc_gro(qemu):
    r = subprocess.run([qemu, "-device", "virtio-net-pci,help"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    return re.search(r"^\s*rsc_gro=", r.stdout, re.M) is not None


def sources_define_rsc_gro(repo):
    pat = re.compile(r'"rsc_gro"')
    for top in ("hw", "edits/hw", "include"):
        for d, _, files in os.walk(os.path.join(repo, top)):
            for fn in files:
                try:
                    with open(os.path.join(d, fn), errors="replace") as f:
                        if pat.search(f.read()):
                            return True
                except OSError:
                    pass
    return False


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("check", "bench"))
    p.add_argument("--qemu", required=True)
    p.add_argument("--kernel", required=True)
    p.add_argument("--initrd", required=True)
    p.add_argument("--qemu-data", required=True)
    p.add_argument("--repo", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--no-tap", metavar="REASON",
                   help="no tap cases (why: no network namespace...)")
    p.add_argument("--mib", type=int, default=32)
    p.add_argument("--flip-mib", type=int, default=36)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--raw", help="bench: JSON lines go here")
    p.add_argument("--boot-timeout", type=int, default=180)
    p.add_argument("--exec", action="append", default=[],
                   help="run this in the guest after setup, log the output")
    args = p.parse_args()

    args.rsc_gro_prop = has_rsc_gro(args.qemu)
    nics, args.skip_reason = [], {}
    tap = Tap()
    defined = sources_define_rsc_gro(args.repo)
    for name, nic in NICS.items():
        if name == ("tap-on-hostgro" if args.mode == "bench" else "tap-on0"):
            continue
        if nic["backend"] == "tap" and args.no_tap:
            args.skip_reason[name] = ("skip", args.no_tap)
        elif nic["gro"] and not args.rsc_gro_prop and defined:
            args.skip_reason[name] = (
                "fail", "the repository's sources define the property "
                "rsc_gro but %s has none; run 'make' and rerun" % args.qemu)
        elif nic["gro"] and not args.rsc_gro_prop:
            args.skip_reason[name] = ("skip", "rsc_gro not in this build")
        else:
            nics.append(name)
    log("rsc_gro property: %s; NICs: %s"
        % ("yes" if args.rsc_gro_prop else "no", ", ".join(nics)))
    if args.mode == "bench" and args.no_tap:
        print("bench needs taps: %s" % args.no_tap)
        return 1
    if args.mode == "bench" and not args.rsc_gro_prop:
        log("bench: rsc_gro not in this build; measuring rsc_gro=off only")
    if not args.no_tap:
        make_taps(nics)

    g = Guest(args, nics, args.workdir)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rc = 0
    t0 = time.monotonic()
    try:
        g.start()
        for name in nics:
            nic = NICS[name]
            mac = nic["mac"]
            g.cmd("ifup %s %s/24%s" % (mac, nic["guest4"],
                                       " %s/64" % nic["guest6"]
                                       if "guest6" in nic else ""))
            if nic["backend"] == "tap" and nic["hostoff"]:
                host_offloads_off(nic["ifname"])
            if nic["backend"] == "tap":
                log("%s: host side %s offloads %s, guest features %s, "
                    "rx-gro-hw %s" % (name, nic["ifname"],
                                      host_offloads(nic["ifname"]),
                                      features(g, name), grohw(g, name)))
            else:
                log("%s: guest features %s, rx-gro-hw %s"
                    % (name, features(g, name), grohw(g, name)))
        log("accelerator: %s, boot to user space %.1fs"
            % (g.accel, g.boot_secs))
        for c in args.exec:
            log("exec %s: %s" % (c, " | ".join(g.cmd("exec " + c))))
        if args.mode == "check":
            check(args, g, nics, tap)
        else:
            bench(args, g, nics, args.raw)
        for name in nics:
            if NICS[name]["gro"]:
                try:
                    st = g.qmp_cmd("qom-get", path="dev-" + name,
                                   property="rsc-stats")
                    log("%s rsc-stats: %s" % (name, st))
                except Failure as e:
                    log("%s rsc-stats: %s" % (name, e))
    except (Failure, OSError) as e:
        tap.ok("guest run", False, str(e))
        rc = 1
    finally:
        g.stop()
    log("guest: %s in %.0fs" % (g.accel, time.monotonic() - t0))
    if args.mode == "check":
        print("%d passed, %d failed, %d skipped"
              % (tap.passed, tap.failed, tap.skipped))
        return 1 if tap.failed or rc else 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
