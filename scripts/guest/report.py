#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Turn the JSON lines of 'guest.sh bench' (scripts/guest/driver.py bench)
# into bench/GUEST-RESULTS.md and a plot.
# Usage: report.py RAW.jsonl OUT.md OUT.png KERNEL COMMIT RUNS MIB

import json
import platform
import statistics
import subprocess
import sys
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MIB = 1 << 20
CONFIGS = [
    ("tap-off", "tap, host offloads off, rsc_gro=off"),
    ("tap-on", "tap, host offloads off, rsc_gro=on"),
    ("tap-on0", "tap, host offloads off, rsc_gro=on, rsc_interval=0"),
    ("tap-hostgro", "tap, host offloads on (host GRO/TSO), rsc_gro=off"),
    ("user-off", "-netdev user, rsc_gro=off"),
    ("user-on", "-netdev user, rsc_gro=on"),
]
# Targets under TCG on the tap (issue 13).
ON_VS_OFF = 0.5
ON_VS_ANCHOR = 1.2


def metrics(r):
    mib = r["bytes"] / MIB
    m = {"mibs": mib / r["secs"], "cpu": 1000.0 * r["cpu"] / mib,
         "pkts": r["rx"] / mib}
    if r.get("host_segs") is not None:
        m["frames"] = r["host_segs"] / mib
    return m


def summary(vals):
    return statistics.median(vals), min(vals), max(vals)


def fmt(t, digits):
    med, lo, hi = t
    return "%.*f (%.*f-%.*f)" % (digits, med, digits, lo, digits, hi)


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ncpu = subprocess.run(["nproc"], stdout=subprocess.PIPE, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        ncpu = "?"
    return "%s, %s cores, %s" % (cpu, ncpu, platform.platform())


def main():
    raw, out_md, out_png, kernel, commit, runs, mib = sys.argv[1:8]
    rows = [json.loads(line) for line in open(raw) if line.strip()]
    accel = sorted({r["accel"] for r in rows})
    by = {}
    for r in rows:
        for k, v in metrics(r).items():
            by.setdefault(r["nic"], {}).setdefault(k, []).append(v)
    s = {n: {k: summary(v) for k, v in m.items()} for n, m in by.items()}

    md = ["# Real Linux guest: rsc_gro off against on",
          "",
          "`make bench-guest` (scripts/guest.sh bench) at commit %s, %s."
          % (commit, time.strftime("%Y-%m-%d")),
          "Guest: Debian `%s`, busybox initramfs, 1 vCPU, 512 MiB, "
          "accelerator **%s**." % (kernel, "/".join(accel)),
          "Machine: %s; load average (1 min) during the streams: median "
          "%.1f, %.1f-%.1f (other work on the machine makes the times "
          "noisy)." % ((machine(),) + summary([r.get("load", 0)
                                                  for r in rows])),
          "One guest, one NIC per configuration; %s runs of one %s MiB TCP "
          "stream from the host to each NIC, interleaved (the order rotates "
          "each run). Median (min-max) over the runs." % (runs, mib),
          "",
          "- MiB/s: host-side, from connect to the guest's close after EOF.",
          "- QEMU CPU: utime+stime of the whole QEMU process (all threads, "
          "the vCPU included, /proc/PID/stat) over the stream, per MiB.",
          "- rx_packets: the guest's /sys/class/net/ethX/statistics/"
          "rx_packets over the stream, per MiB (1 MiB is 724 segments at "
          "MSS 1448).",
          "",
          "| configuration | MiB/s | QEMU CPU ms/MiB | guest rx_packets/MiB |",
          "|---|---|---|---|"]
    for key, label in CONFIGS:
        if key not in s:
            continue
        m = s[key]
        md.append("| %s | %s | %s | %s |" % (label, fmt(m["mibs"], 1),
                                             fmt(m["cpu"], 2),
                                             fmt(m["pkts"], 1)))
    md.append("")
    md.append("## Targets (%s, tap)" % "/".join(accel))
    md.append("")
    if "tap-on" not in s:
        md.append("- not measured: rsc_gro is not in this build")
    if all(k in s for k in ("tap-off", "tap-on", "tap-hostgro")):
        on, off, anc = (s[k]["cpu"][0] for k in
                        ("tap-on", "tap-off", "tap-hostgro"))
        md.append("- QEMU CPU per MiB, rsc_gro=on against off: %.2fx "
                  "(target <= %.1fx): **%s**"
                  % (on / off, ON_VS_OFF,
                     "met" if on <= ON_VS_OFF * off else "not met"))
        md.append("- QEMU CPU per MiB, rsc_gro=on against the host-GRO "
                  "anchor: %.2fx (target <= %.1fx): **%s**"
                  % (on / anc, ON_VS_ANCHOR,
                     "met" if on <= ON_VS_ANCHOR * anc else "not met"))
        if "tap-on0" in s:
            on0 = s["tap-on0"]["cpu"][0]
            md.append("- the same with rsc_interval=0: %.2fx of off, %.2fx "
                      "of the anchor" % (on0 / off, on0 / anc))
    if all(k in s for k in ("tap-on", "tap-hostgro")):
        d_cpu = s["tap-on"]["cpu"][0] - s["tap-hostgro"]["cpu"][0]
        d_fr = s["tap-on"]["frames"][0] - s["tap-hostgro"]["frames"][0]
        md.append("- rsc_gro=on reads %.0f frames per MiB from the tap, the "
                  "anchor %.0f: the %.2f ms/MiB between them is %.1f us per "
                  "extra frame (tap read and merge)"
                  % (s["tap-on"]["frames"][0], s["tap-hostgro"]["frames"][0],
                     d_cpu, 1000.0 * d_cpu / d_fr if d_fr else 0))
    if "tap-on" in s and "tap-off" in s:
        md.append("- throughput, rsc_gro=on against off: %.2fx; guest "
                  "packets: %.1fx fewer"
                  % (s["tap-on"]["mibs"][0] / s["tap-off"]["mibs"][0],
                     s["tap-off"]["pkts"][0] / s["tap-on"]["pkts"][0]))
    if "user-on" in s and "user-off" in s:
        md.append("- -netdev user, rsc_gro=on against off: QEMU CPU per MiB "
                  "%.2fx, throughput %.2fx, guest packets %.1fx fewer"
                  % (s["user-on"]["cpu"][0] / s["user-off"]["cpu"][0],
                     s["user-on"]["mibs"][0] / s["user-off"]["mibs"][0],
                     s["user-off"]["pkts"][0] / s["user-on"]["pkts"][0]))
    md += ["", "![plot](guest-results.png)", ""]
    with open(out_md, "w") as f:
        f.write("\n".join(md))

    keys = [k for k, _ in CONFIGS if k in s]
    labels = [k.replace("-", "\n", 1) for k in keys]
    colors = {"tap-off": "#999999", "tap-on": "#1f77b4", "tap-on0": "#17becf",
              "tap-hostgro": "#2ca02c", "user-off": "#bbbbbb",
              "user-on": "#ff7f0e"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (metric, title) in zip(axes, (
            ("mibs", "throughput, MiB/s"),
            ("cpu", "QEMU CPU, ms per MiB"),
            ("pkts", "guest rx_packets per MiB"))):
        med = [s[k][metric][0] for k in keys]
        err = [[s[k][metric][0] - s[k][metric][1] for k in keys],
               [s[k][metric][2] - s[k][metric][0] for k in keys]]
        ax.bar(range(len(keys)), med, yerr=err, capsize=3,
               color=[colors[k] for k in keys])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(title, fontsize=10)
        if metric == "pkts":
            ax.set_yscale("log")
    fig.suptitle("Debian 6.1 guest, %s, %s x %s MiB; median, bars min-max"
                 % ("/".join(accel), runs, mib), fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


if __name__ == "__main__":
    main()
