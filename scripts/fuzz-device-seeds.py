#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Seeds for the device fuzz target virtio-net-rsc-socket-check-used (the
# virtqueue fuzzer of tests/qtest/fuzz/virtio_net_fuzz.c with RSC on): a
# random input hardly ever forms a TCP frame, so without seeds the target
# never reaches the coalescing engine.  Each seed posts receive buffers and
# writes consecutive TCP segments of one connection, with valid checksums,
# to the socket backend (4-byte length, then the frame).
#
# Input format (virtio_net_fuzz_multi): actions of 5 bytes - queue, length,
# write, next, rx - each followed by `length` bytes: with rx set they are
# written to the backend's socket, else they fill a buffer added (twice)
# to the queue.
#
# Usage: fuzz-device-seeds.py DIR
import os
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def segment(seq, payload, flags=0x10, v6=False):
    src, dst = (b"\xfd" + b"\0" * 14 + b"\x01", b"\xfd" + b"\0" * 14 + b"\x02") \
        if v6 else (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    tcp = struct.pack("!HHIIBBHHH", 1000, 80, seq, 1, 5 << 4, flags, 1000,
                      0, 0) + payload
    pseudo = src + dst + (struct.pack("!IxxxB", len(tcp), 6) if v6 else
                          struct.pack("!xBH", 6, len(tcp)))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + src + dst
        eth_type = 0x86dd
    else:
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64,
                         6, 0) + src + dst
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        eth_type = 0x0800
    eth = bytes.fromhex("525400123456525400aabbcc") + struct.pack("!H",
                                                                  eth_type)
    return eth + ip + tcp


def action(queue, data, write=0, rx=0):
    assert len(data) <= 255
    return struct.pack("BBBBB", queue, len(data), write, 0, rx) + data


def seed(segs, buffers=2):
    out = b""
    for _ in range(buffers):
        out += action(0, bytes(255), write=1)     # two rx buffers each
    # one write: QEMU reads the segments in one burst (rsc_interval=0)
    return out + action(3, b"".join(struct.pack("!I", len(f)) + f
                                    for f in segs), rx=1)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pay = bytes(range(20))
    seeds = {
        "seed-v4-merge": seed([segment(100 + 20 * i, pay) for i in range(3)]),
        "seed-v6-merge": seed([segment(100 + 20 * i, pay[:8], v6=True)
                               for i in range(2)]),
        "seed-v4-push": seed([segment(100, pay),
                              segment(120, pay, flags=0x18),
                              segment(140, pay)]),
        "seed-v4-gap": seed([segment(100, pay), segment(140, pay),
                             segment(120, pay)], buffers=3),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
