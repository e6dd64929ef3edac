#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Turn the raw lines of scripts/bench.sh into bench/RESULTS.md and a plot.
# Usage: report.py RAW MACHINE LOG RESULTS.md PLOT.png INSTR.md [MICROBENCH.md]
# (INSTR.md: the table of scripts/bench-instr.sh)

import statistics
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

CASES = [
    ("v4-1448", "1 flow, MSS 1448"),
    ("ts-1448", "1 flow, timestamps, MSS 1448"),
    ("v6-1448", "IPv6, MSS 1448"),
    ("f64-1448", "64 flows, MSS 1448"),
    ("f4096-1448", "4096 flows, MSS 1448"),
    ("v4-8948", "1 flow, MSS 8948"),
    ("ts-8948", "1 flow, timestamps, MSS 8948"),
    ("v6-8948", "IPv6, MSS 8948"),
    ("f64-8948", "64 flows, MSS 8948"),
    ("f4096-8948", "4096 flows, MSS 8948"),
    ("nocsum-1448", "1 flow, no checksum flags, MSS 1448"),
    ("nopsh-1448", "1 flow, no checksum flags, no PSH, MSS 1448"),
]
SHORT = {
    "v4-1448": "1 flow", "ts-1448": "1 flow TS", "v6-1448": "IPv6",
    "f64-1448": "64 flows", "f4096-1448": "4096 flows",
    "v4-8948": "1 flow", "ts-8948": "1 flow TS", "v6-8948": "IPv6",
    "f64-8948": "64 flows", "f4096-8948": "4096 flows",
    "nocsum-1448": "1 flow\nno csum flags",
    "nopsh-1448": "1 flow\nno csum, no PSH",
}
CONFIGS = [
    ("base", "upstream RSC (base)"),
    ("base-off", "upstream, RSC off"),
    ("off", "ours, RSC off"),
    ("on", "ours, RSC on, 300 us"),
    ("on0", "ours, RSC on, interval 0"),
    ("on-mf64", "ours, RSC on, 300 us, 64-flow table"),
    ("gro", "ours, rsc_gro=on (GRO rules), 300 us"),
]
COLORS = {"base": "#d62728", "base-off": "#ff9896", "off": "#7f7f7f", "on": "#1f77b4",
          "on0": "#2ca02c", "on-mf64": "#9467bd",
          "gro": "#17becf"}


def load(path):
    runs = {}
    for line in open(path):
        kv = dict(f.split("=", 1) for f in line.split())
        n = {k: int(v) for k, v in kv.items()
             if k not in ("case", "config") and v.lstrip("-").isdigit()}
        segs = n["live_segs"]
        m = {
            "net": (n["live_cpu_ns"] - n["idle_cpu_ns"]) / segs,
            "dev": (n["live_cpu_ns"] - n["down_cpu_ns"]) / segs,
            "backend": (n["down_cpu_ns"] - n["idle_cpu_ns"]) / n["down_segs"],
            "harness": n["idle_cpu_ns"] / segs,
            "byte": (n["live_cpu_ns"] - n["idle_cpu_ns"]) / n["live_bytes"],
            "spp": segs / n["live_pkts"],
            "lost": n["lost_bytes"],
            "run": n["run"],
            "copy": n.get("copy_ns", 0) / segs,
        }
        runs.setdefault((kv["case"], kv["config"]), []).append(m)
    return runs


def counters(path):
    """Our engine's rsc-stats of the last run of each case and config."""
    last, where = {}, None
    for line in open(path):
        if line.startswith("== run "):
            f = line.split()
            where = (f[4], f[6].rstrip(":"))
        elif line.startswith("rsc-stats:") and where:
            last[where] = " ".join(line.split()[1:])
    return last


def stat(vals):
    return statistics.median(vals), min(vals), max(vals)


def fmt(vals, digits=0):
    if not vals:
        return "-"
    med, lo, hi = stat(vals)
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def column(runs, case, cfg, key):
    return [r[key] for r in runs.get((case, cfg), [])]


def paired(runs, case, a, b, key="net"):
    """Per-run ratios a/b of runs with the same index."""
    ra = {r["run"]: r[key] for r in runs.get((case, a), [])}
    rb = {r["run"]: r[key] for r in runs.get((case, b), [])}
    return [ra[i] / rb[i] for i in sorted(ra) if i in rb and rb[i] > 0]


def table(runs, cases, configs, key, digits):
    head = "| case | " + " | ".join(label for _, label in configs) + " |"
    rows = [head, "|" + "---|" * (len(configs) + 1)]
    for case, label in cases:
        cells = [fmt(column(runs, case, cfg, key), digits)
                 for cfg, _ in configs]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def verdict(vals, limit):
    if not vals:
        return "-"
    med = statistics.median(vals)
    return f"{med:.2f} {'yes' if med <= limit else '**no**'}"


# Cases where the device figure must stay near one copy (issue 15).
NEAR_COPY = ("v4-1448", "f64-1448", "v4-8948", "f64-8948")


def per_run(runs, case, cfg, a, b):
    """Per-run ratios of two measurements of one configuration."""
    return [r[a] / r[b] for r in runs.get((case, cfg), []) if r[b] > 0]


def targets(runs, cases):
    """The targets of issue 15, one row per case, median per-run ratios."""
    out = ["## Targets (issue 15)\n",
           "Median of the per-run ratios (configurations of a case run back "
           "to back).  \"net\": QEMU CPU per segment as above; \"device\": "
           "without reading the tap (live pass minus link-down pass); "
           "\"copy floor\": copying each payload once into cold memory of "
           "the guest buffers' size, measured by the harness in the same "
           "run.  on = RSC on at 300 us, on0 = at interval 0; upstream = "
           "the untouched base (RSC on: upstream RSC; off: what users run "
           "today).  \"-\": not a target for this case.\n",
           "| case | on / off <= 1.00 (net) | on0 / off <= 1.00 (net) "
           "| on device / copy floor <= 1.5 | off / upstream off <= 1.03 "
           "(net) | on / upstream on <= 1.00 (device) "
           "| gro / off <= 1.00 (net) |",
           "|---|---|---|---|---|---|---|"]
    for case, label in cases:
        floor = per_run(runs, case, "on", "dev", "copy")
        out.append(
            f"| {label} "
            f"| {verdict(paired(runs, case, 'on', 'off'), 1.0)} "
            f"| {verdict(paired(runs, case, 'on0', 'off'), 1.0)} "
            f"| {verdict(floor, 1.5) if case in NEAR_COPY else '-'} "
            f"| {verdict(paired(runs, case, 'off', 'base-off'), 1.03)} "
            f"| {verdict(paired(runs, case, 'on', 'base', 'dev'), 1.0)} "
            f"| {verdict(paired(runs, case, 'gro', 'off'), 1.0)} |")
    out.append("")
    out.append("Copy floor and device figure (ns per segment, median):\n")
    out.append("| case | copy floor | on, device | on0, device | off, device "
               "| gro, device |")
    out.append("|---|---|---|---|---|---|")
    for case, label in cases:
        out.append(f"| {label} | {fmt(column(runs, case, 'on', 'copy'))} "
                   f"| {fmt(column(runs, case, 'on', 'dev'))} "
                   f"| {fmt(column(runs, case, 'on0', 'dev'))} "
                   f"| {fmt(column(runs, case, 'off', 'dev'))} "
                   f"| {fmt(column(runs, case, 'gro', 'dev'))} |")
    return "\n".join(out) + "\n"


def engine_targets(text):
    """The engine targets of issue 15, from the microbenchmark's table."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and cells[0].isdigit():
            rows[(int(cells[0]), cells[1])] = cells
    if (1, "DATA_VALID") not in rows:
        return ""

    def yes(ok):
        return "yes" if ok else "**no**"

    out = ["### Engine targets (issue 15)\n",
           "Medians of the per-repetition ratios of the table above (\"copy "
           "/ floor\": engine + copy against copying each payload once, in "
           "the same turns; \"no copy / DPDK\": against DPDK's GRO on the "
           "same frames).\n",
           "| target | measured | met |", "|---|---|---|"]
    for (conns, csum), cells in sorted(rows.items()):
        ratio = float(cells[5])
        if csum != "DATA_VALID":
            limit, what = 1.5, "with checksum verification"
        elif conns == 1:
            limit, what = 1.2, ""
        else:
            limit, what = 1.3, "interleaved"
        out.append(f"| engine + copy <= {limit}x the one-copy floor, "
                   f"{conns} connection{'s' if conns > 1 else ''}"
                   f"{', ' + what if what else ''} | {ratio:.2f} "
                   f"| {yes(ratio <= limit)} |")
    for (conns, csum), cells in sorted(rows.items()):
        if len(cells) < 12 or cells[10] == "-":
            continue
        ratio = float(cells[10])
        out.append(f"| engine below DPDK GRO, same run, {conns} "
                   f"connection{'s' if conns > 1 else ''} | "
                   f"{cells[3].split(' ')[0]} vs {cells[9].split(' ')[0]} ns "
                   f"({ratio:.2f}x) | {yes(ratio < 1)} |")
    out.append("| no allocation per merged segment; under 256 bytes per "
               "connection | the engine allocates only in "
               "virtio_net_rsc_new(); `sizeof(RscFlow) < 256` is a "
               "build-time check | yes |")
    return "\n".join(out) + "\n"


def plot(runs, cases, configs, path):
    groups = [(f"MSS {mss}", [c for c, _ in cases if c.endswith(mss)])
              for mss in ("1448", "8948")]
    groups = [g for g in groups if g[1]]
    fig, axes = plt.subplots(2, len(groups), figsize=(7 * len(groups), 9),
                             squeeze=False)
    width = 0.8 / len(configs)
    for col, (gname, gcases) in enumerate(groups):
        for row, key, title, log in (
                (0, "net", "QEMU CPU ns per injected segment "
                           "(hatched: reading the tap)", False),
                (1, "spp", "segments per delivered packet", False)):
            ax = axes[row][col]
            for i, (cfg, label) in enumerate(configs):
                xs, meds, errs = [], [], [[], []]
                for x, case in enumerate(gcases):
                    vals = column(runs, case, cfg, key)
                    if not vals:
                        continue
                    med, lo, hi = stat(vals)
                    xs.append(x + (i - (len(configs) - 1) / 2) * width)
                    meds.append(med)
                    errs[0].append(med - lo)
                    errs[1].append(hi - med)
                ax.bar(xs, meds, width, yerr=errs, label=label,
                       color=COLORS[cfg], capsize=2)
                if key == "net":
                    tap = [statistics.median(column(runs, case, cfg,
                                                    "backend"))
                           for case in gcases
                           if column(runs, case, cfg, key)]
                    ax.bar(xs, tap, width, fill=False, hatch="///",
                           edgecolor="white", lw=0)
            ax.set_xticks(range(len(gcases)))
            ax.set_xticklabels([SHORT[c] for c in gcases], fontsize=8)
            ax.set_title(f"{title}, {gname}", fontsize=10)
            if log:
                ax.set_yscale("log")
            ax.grid(axis="y", which="both", alpha=0.3)
    handles, _ = axes[0][0].get_legend_handles_labels()
    handles.append(Patch(facecolor="#7f7f7f", edgecolor="white", hatch="///",
                         label="part: reading the tap (link-down pass)"))
    axes[0][0].legend(handles=handles, fontsize=8)
    fig.suptitle("virtio-net RSC, upstream vs ours: median of the runs, "
                 "bars min-max", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    raw, machine, log, out, png, instr = sys.argv[1:7]
    micro = sys.argv[7] if len(sys.argv) > 7 else None
    runs = load(raw)
    info = dict(line.rstrip("\n").split("=", 1) for line in open(machine))
    cases = [c for c in CASES if any((c[0], k) in runs for k, _ in CONFIGS)]
    configs = [c for c in CONFIGS if any((k, c[0]) in runs for k, _ in CASES)]
    nruns = max(len(v) for v in runs.values())
    lost = sum(r["lost"] != 0 for v in runs.values() for r in v)
    plot(runs, cases, configs, png)

    md = []
    w = md.append
    w("# RSC benchmark: upstream vs ours, side by side\n")
    w("Generated by `scripts/bench.sh` (`make bench`); do not edit by hand.\n")
    w(f"- Command: `{info['command']}`")
    w(f"- Machine: {info['nproc']} CPUs, {info['cpu']}, {info['kernel']}; "
      f"load average at the end {info['load']} (the machine was shared)")
    w(f"- Date: {info['date']}; upstream: tag `{info['base']}` of "
      f"build/qemu; ours: {info['ours']}")
    w(f"- {nruns} runs per cell, each a fresh QEMU; cells show the median "
      "and (min-max) over the runs; ratios are per run (same run index, "
      "run back to back) then median (min-max).")
    w(f"- Runs where bytes went missing: {lost}.\n")
    w("![results](results.png)\n")

    w("## QEMU CPU per injected segment (ns), net of the harness\n")
    w("CPU time of all QEMU threads in the live pass minus the idle pass "
      "(the same qtest commands without segments), per segment.  This "
      "includes reading the tap.\n")
    w(table(runs, cases, configs, "net", 0) + "\n")

    w("## Ratios (QEMU CPU per segment)\n")
    head = ("| case | on / off | on / upstream | on0 / off | on0 / upstream "
            "| off / upstream | off / upstream off | gro / off |")
    w(head)
    w("|---|---|---|---|---|---|---|---|")
    for case, label in cases:
        cells = [fmt(paired(runs, case, a, b), 2) for a, b in (
            ("on", "off"), ("on", "base"), ("on0", "off"), ("on0", "base"),
            ("off", "base"), ("off", "base-off"), ("gro", "off"))]
        w(f"| {label} | " + " | ".join(cells) + " |")
    w("")

    w(targets(runs, cases))
    w("Targets not met: where the time goes, and why they cannot be met "
      "on this machine, is in [ANALYSIS.md](ANALYSIS.md).\n")

    w("## Segments per delivered packet (used-ring entries)\n")
    w(table(runs, cases, configs, "spp", 1) + "\n")

    w("## QEMU CPU per delivered byte (ns), net of the harness\n")
    w("Delivered bytes: frame bytes in the guest's buffers, without the "
      "virtio header (payload plus one set of headers per packet).\n")
    w(table(runs, cases, configs, "byte", 3) + "\n")

    w("## Device-path instructions per segment (scripts/bench-instr.sh)\n")
    w(open(instr).read().rstrip() + "\n")

    w("## Where the time goes (ns per segment)\n")
    w("Device: live pass minus link-down pass (virtio-net and RSC, from the "
      "frame the tap hands over to the used ring).  Backend: link-down pass "
      "minus idle pass (reading the tap and dropping the frame).  Harness: "
      "idle pass (qtest commands), already subtracted above.\n")
    w("| case | config | device | backend | harness |")
    w("|---|---|---|---|---|")
    for case, label in cases:
        for cfg, clabel in configs:
            if (case, cfg) not in runs:
                continue
            w(f"| {label} | {clabel} | {fmt(column(runs, case, cfg, 'dev'))}"
              f" | {fmt(column(runs, case, cfg, 'backend'))}"
              f" | {fmt(column(runs, case, cfg, 'harness'))} |")
    w("")

    stats = counters(log)
    w("## Our engine's counters (rsc-stats of the last run)\n")
    w("Whole run: warm-up and live passes.\n")
    w("| case | config | counters |")
    w("|---|---|---|")
    for case, label in cases:
        for cfg, clabel in configs:
            if cfg != "off" and (case, cfg) in stats:
                w(f"| {label} | {clabel} | {stats[(case, cfg)]} |")
    w("")

    w(METHOD)
    if micro:
        text = open(micro).read()
        w("## Engine microbenchmark (scripts/microbench.sh)\n")
        w(text.rstrip() + "\n")
        w(engine_targets(text))
    open(out, "w").write("\n".join(md))


METHOD = """## Method

- Harness: `bench/rsc-bench.c`, a qtest-style program linked against the
  libqos of our build; the same binary drives every QEMU (set by
  `QTEST_QEMU_BINARY`).  Its guest driver negotiates like Windows netkvm
  (VERSION_1, GUEST_CSUM, CTRL_VQ, CTRL_GUEST_OFFLOADS, GUEST_TSO4/6 and
  RSC_EXT, then CTRL_GUEST_OFFLOADS_SET with bit 61; without RSC_EXT and
  without the command for "ours, RSC off"), posts 1024 receive buffers of
  64 KiB (no mergeable buffers) and recycles them.  Device:
  `-device virtio-net-pci,netdev=n0,disable-legacy=on,rx_queue_size=1024,
  mrg_rxbuf=off,...` on `-netdev tap,fd=N,vhost=off` (vnet headers), qtest
  accelerator.
- Builds and configurations: upstream = the untouched base tree (tag
  `base` of build/qemu, built with scripts/build.sh into build/base) with
  `guest_rsc_ext=on,rsc_interval=300000`; ours = build/qemu with
  `guest_rsc_ext=off`, and with `guest_rsc_ext=on` at `rsc_interval=300000`
  and at `rsc_interval=0`.  With more than 64 flows ours gets
  `rsc_max_flows=<flows>`; "64-flow table" is the default
  `rsc_max_flows=64` at 4096 flows.
- Traffic: TCP segments of one connection (no options; with the
  timestamp option; IPv6), of 64 and of 4096 connections interleaved round
  robin, at MSS 1448 and 8948, flags ACK|PSH, in sequence.  They are
  written into a NAPI tap on a bridge in a private network namespace; the
  bridge forwards them to QEMU's tap, and the kernel marks them
  DATA_VALID (GRO checked the checksum; PSH keeps GRO from merging), as
  frames from a NIC with receive checksum offload are.  "No checksum
  flags" writes them straight into QEMU's tap (AF_PACKET), so the device
  gets no flags and must check checksums itself (upstream never does).
- Pacing: batches of 512 segments.  QEMU is stopped (SIGSTOP) while a
  batch is written and resumed after, so it always finds the batch queued
  and reads it in bursts of 50 frames (net/tap.c) - the behaviour of a
  busy QEMU, independent of how fast the harness is.  Then the virtual
  clock advances by 300 us (RSC timers fire: as if 512 segments arrived
  per timer interval, 21 Gbit/s at MSS 1448), the guest takes the used
  buffers, reposts them and kicks.  At 4096 flows a connection gets
  a segment every 8 batches, so no RSC can merge anything there (the case
  measures the cost of many connections, not coalescing).
- Measurement: CPU time of all QEMU threads from /proc/PID/task/*/schedstat
  (ns).  Three passes with the same batches and the same qtest commands,
  advancing chunk by chunk (4 batches) in rotating order so that all three
  see the same machine load: idle (no segments: the harness's own
  overhead in QEMU - qtest protocol, clock steps, ring updates), link
  down (`set_link n0 off`: QEMU reads and drops the frames), live.  A
  warm-up chunk comes first and the guest memory of the buffers is
  written once before, so that no page faults land in a pass.  The
  harness checks that every injected payload byte was delivered (one set
  of headers per used entry); stray frames of the bridge (IGMP) are not
  counted.

## Caveats

- The machine is a shared 2-CPU VM; other jobs ran during the benchmark.
  CPU time (not wall time) is measured, but caches and frequency are
  shared, so single runs vary by tens of percent; compare medians and the
  per-run ratios (the configurations of one case run back to back).
- The idle subtraction removes the qtest protocol cost the harness causes
  (about the same in every configuration, since the command sequence is
  fixed); it leaves in the cost of reading the tap, which every
  configuration pays.  The "device" column removes that too.
- qtest accelerator: no vCPU runs and the guest driver's work is not
  QEMU's; interrupts are raised but nobody handles them.  A real guest
  adds vCPU exits for kicks and interrupts, fewer with RSC.
"""

if __name__ == "__main__":
    main()
