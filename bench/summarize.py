#!/usr/bin/env python3
"""Summarise one bench/runtime.sh results directory.

Reads the hyperfine exports (round-*.json), the peak-RSS samples (rss.tsv), the runtime
versions (versions.tsv) and the settings (settings.txt) that bench/runtime.sh wrote; prints a
summary table and writes summary.md, a fragment to paste into docs/benchmarks.md.

Figures are medians. Times: every run of every round pooled. Ratios: a command's median over the
reference runtime's median for the same kind of command (``run`` to ``run``, cycle to cycle), so
below 1 means faster than the reference; the range in brackets is the lowest and highest ratio of
the per-round medians, which shows how much the machine moved during the benchmark.
"""

import json
import os
import platform
import statistics
import sys
from pathlib import Path

REFERENCES = ("runc", "crun")
FLOOR = "floor: unshare"
SHELL = "sh -c true"


def read_rounds(results):
    """{command name: [median of each round, ...]}, {command name: [every run, ...]} in ms."""
    per_round, pooled = {}, {}
    paths = sorted(results.glob("round-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    if not paths:
        sys.exit(f"summarize.py: no round-*.json in {results}")
    for path in paths:
        for result in json.loads(path.read_text())["results"]:
            times = [t * 1000.0 for t in result["times"]]
            per_round.setdefault(result["command"], []).append(statistics.median(times))
            pooled.setdefault(result["command"], []).extend(times)
    return per_round, pooled


def read_tsv(path):
    rows = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def host_facts():
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    fstypes = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstypes[fields[4]] = fields[fields.index("-") + 1]
    root = fstypes.get("/sys/fs/cgroup")
    if root == "cgroup2":
        cgroups = "cgroup v2 (unified)"
    elif fstypes.get("/sys/fs/cgroup/unified") == "cgroup2":
        cgroups = "cgroup v1, hybrid (cgroup2 at /sys/fs/cgroup/unified)"
    else:
        cgroups = "cgroup v1 (legacy)"
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "mem_gib": round(mem_kib / 1024 / 1024),
        "kernel": platform.release(),
        "cgroups": cgroups,
    }


def split_name(name):
    """'runc run' -> ('runc', 'run'); floor and shell rows have no runtime."""
    if name in (FLOOR, SHELL):
        return None, name
    runtime, _, kind = name.partition(" ")
    return runtime, kind


def ratio_text(name, per_round, medians):
    """Ratios of `name` to each reference runtime's command of the same kind."""
    runtime, kind = split_name(name)
    if runtime is None:
        kind = "run"  # the floor is compared with a full `run`
    out = {}
    for ref in REFERENCES:
        ref_name = f"{ref} {kind}"
        if ref_name not in medians or name not in medians:
            out[ref] = "—"
            continue
        if ref_name == name:
            out[ref] = "1"
            continue
        ratio = medians[name] / medians[ref_name]
        rounds = [a / b for a, b in zip(per_round[name], per_round[ref_name])]
        if len(rounds) > 1:
            out[ref] = f"{ratio:.2f} ({min(rounds):.2f}-{max(rounds):.2f})"
        else:
            out[ref] = f"{ratio:.2f}"
    return out


def short_version(line):
    for prefix in ("runc version ", "crun version ", "skiff version ", "skiff ", "unshare from "):
        if line.startswith(prefix):
            return line[len(prefix):]
    return line or "?"


def main():
    results = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    per_round, pooled = read_rounds(results)
    medians = {name: statistics.median(times) for name, times in pooled.items()}
    settings = dict(line.split("=", 1) for line in (results / "settings.txt").read_text().splitlines())
    versions = {row[0]: row[2] for row in read_tsv(results / "versions.tsv")}
    rss = {}
    for name, kib in read_tsv(results / "rss.tsv"):
        rss.setdefault(name, []).append(int(kib))
    host = host_facts()

    runtimes = [name for name in versions if name not in ("unshare", "hyperfine")]
    order = [f"{r} run" for r in runtimes] + [f"{r} create+start+delete" for r in runtimes]
    order += [FLOOR, SHELL]
    order = [name for name in order if name in medians]

    # ---- terminal summary
    print()
    print(
        f"start-up, ms: medians of {settings['rounds']} rounds x {settings['runs']} runs "
        f"(hyperfine -N, {settings['warmup']} warm-up), ratios = time / reference time"
    )
    head = f"{'command':<28} {'median':>8} {'min':>8}  {'round medians':<34} {'vs runc':<18} {'vs crun':<18}"
    print(head)
    print("-" * len(head))
    for name in order:
        ratios = ratio_text(name, per_round, medians)
        rounds = " / ".join(f"{m:.1f}" for m in per_round[name])
        print(
            f"{name:<28} {medians[name]:>8.2f} {min(pooled[name]):>8.2f}  {rounds:<34} "
            f"{ratios['runc']:<18} {ratios['crun']:<18}"
        )
    print()
    print(f"peak RSS of one run (GNU time %M), MiB: median of {settings['rss_runs']} (min-max)")
    for name, samples in rss.items():
        print(
            f"{name:<28} {statistics.median(samples) / 1024:>8.1f}  "
            f"({min(samples) / 1024:.1f}-{max(samples) / 1024:.1f})"
        )

    # ---- markdown fragment for docs/benchmarks.md
    def cell(name):
        return f"{medians[name]:.1f}" if name in medians else "—"

    def rss_cell(name):
        return f"{statistics.median(rss[name]) / 1024:.1f}" if name in rss else "—"

    hyperfine = versions.get("hyperfine", "hyperfine ?").replace("hyperfine ", "")
    lines = [
        f"Measured {settings['date']} on a {host['cores']}-core VM ({host['cpu']}, {host['mem_gib']} GiB), "
        f"kernel {host['kernel']}, {host['cgroups']}; hugetlb moved to cgroup v1: {settings['hugetlb']}.",
        f"hyperfine {hyperfine} `-N`, {settings['warmup']} warm-up + {settings['runs']} runs per command "
        f"in each of {settings['rounds']} rounds (command order rotated); times are medians of all runs. "
        f"Peak RSS: median of {settings['rss_runs']} runs under GNU `time -f %M`. "
        f"Bundle: busybox rootfs, config.json from `{settings['bundle_spec_from']} spec`, process `/bin/true`.",
        "÷ runc, ÷ crun: the median over that runtime's median for the same command (below 1 is faster); "
        "in brackets the lowest and highest ratio of the per-round medians.",
        "",
        "| runtime | version | `run` (ms) | ÷ runc | ÷ crun "
        "| `create`+`start`+`delete -f` (ms) | ÷ runc | ÷ crun | peak RSS of `run` (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for runtime in runtimes:
        run, cycle = f"{runtime} run", f"{runtime} create+start+delete"
        run_ratios = ratio_text(run, per_round, medians)
        cycle_ratios = ratio_text(cycle, per_round, medians)
        lines.append(
            f"| {runtime} | {short_version(versions[runtime])} "
            f"| {cell(run)} | {run_ratios['runc']} | {run_ratios['crun']} "
            f"| {cell(cycle)} | {cycle_ratios['runc']} | {cycle_ratios['crun']} | {rss_cell(run)} |"
        )
    if FLOOR in medians:
        ratios = ratio_text(FLOOR, per_round, medians)
        unshare = short_version(versions.get("unshare", "?")).replace("util-linux ", "")
        lines.append(
            f"| floor: `unshare -m -p -u -i -n -f /bin/true` | util-linux {unshare} "
            f"| {cell(FLOOR)} | {ratios['runc']} | {ratios['crun']} | — | — | — | {rss_cell(FLOOR)} |"
        )
    left_out = results / "left-out.tsv"
    if left_out.exists():
        for name, why in read_tsv(left_out):
            lines.append(f"| {name} | — | not measured: {why.replace('|', '/')} | | | | | | |")
    if SHELL in medians:
        lines += [
            "",
            f"The cycle column includes one `sh -c` to chain the three commands; "
            f"`sh -c true` alone took {medians[SHELL]:.1f} ms.",
        ]
    fragment = "\n".join(lines) + "\n"
    (results / "summary.md").write_text(fragment)
    print()
    print(fragment, end="")


if __name__ == "__main__":
    main()
