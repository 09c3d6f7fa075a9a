#!/usr/bin/env python3
"""Summarise one results directory of bench/runtime.sh, bench/ops.sh or bench/ctr.sh.

Reads the hyperfine exports (round-*.json), the runtime versions (versions.tsv), the settings
(settings.txt; ``script`` names the benchmark, runtime.sh when missing), the commands
(commands.tsv), what was left out (left-out.tsv) and, from runtime.sh, the peak-RSS samples
(rss.tsv); prints a summary table and writes summary.md, a fragment to paste into
docs/benchmarks.md.

Commands are named ``<runtime> <kind>`` (``skiff run``, ``runc exec``, ``crun ctr run --rm``),
or are a floor or the shell (FLOORS, SHELL).

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
# Each floor and the kind of command it is compared with.
FLOORS = {FLOOR: "run", "floor: nsenter": "exec"}
# How the floors read in summary.md.
FLOOR_LABELS = {"floor: nsenter": "floor: `nsenter -a /bin/true`"}
SHELL = "sh -c true"
TOOLS = ("unshare", "nsenter", "hyperfine", "containerd", "ctr", "containerd-shim-runc-v2")


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
    if name in FLOORS or name == SHELL:
        return None, name
    runtime, _, kind = name.partition(" ")
    return runtime, kind


def ratio_text(name, per_round, medians):
    """Ratios of `name` to each reference runtime's command of the same kind."""
    runtime, kind = split_name(name)
    if runtime is None:
        kind = FLOORS.get(name, kind)  # a floor is compared with the command it is the floor of
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
    prefixes = ("runc version ", "crun version ", "skiff version ", "skiff ", "unshare from ",
                "nsenter from ", "ctr github.com/containerd/containerd ",
                "containerd github.com/containerd/containerd ")
    for prefix in prefixes:
        if line.startswith(prefix):
            return line[len(prefix):]
    return line or "?"


def kinds_in_order(results, runtimes, medians):
    """The kinds of command, in the order the benchmark listed them (commands.tsv)."""
    names = [row[0] for row in read_tsv(results / "commands.tsv")] if (results / "commands.tsv").exists() else []
    kinds = []
    for name in names or medians:
        runtime, kind = split_name(name)
        if runtime in runtimes and kind not in kinds:
            kinds.append(kind)
    return kinds


def main():
    results = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    per_round, pooled = read_rounds(results)
    medians = {name: statistics.median(times) for name, times in pooled.items()}
    settings = dict(line.split("=", 1) for line in (results / "settings.txt").read_text().splitlines())
    script = settings.get("script", "runtime")
    versions = {row[0]: row[2] for row in read_tsv(results / "versions.tsv")}
    rss = {}
    if (results / "rss.tsv").exists():
        for name, kib in read_tsv(results / "rss.tsv"):
            rss.setdefault(name, []).append(int(kib))
    host = host_facts()

    runtimes = [name for name in versions if name not in TOOLS]
    kinds = kinds_in_order(results, runtimes, medians)
    order = []
    for kind in kinds:
        order += [f"{r} {kind}" for r in runtimes]
        order += [floor for floor, of in FLOORS.items() if of == kind]
    order.append(SHELL)
    order = [name for name in order if name in medians]

    # ---- terminal summary
    print()
    what = {"runtime": "start-up", "ops": "operations", "ctr": "ctr run --rm"}.get(script, script)
    print(
        f"{what}, ms: medians of {settings['rounds']} rounds x {settings['runs']} runs "
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
    if rss:
        print()
        print(f"peak RSS of one run (GNU time %M), MiB: median of {settings['rss_runs']} (min-max)")
        for name, samples in rss.items():
            print(
                f"{name:<28} {statistics.median(samples) / 1024:>8.1f}  "
                f"({min(samples) / 1024:.1f}-{max(samples) / 1024:.1f})"
            )

    if script == "runtime":
        fragment = runtime_fragment(results, settings, versions, host, per_round, medians, rss, runtimes)
    else:
        fragment = kinds_fragment(results, settings, versions, host, per_round, medians, runtimes, kinds)
    (results / "summary.md").write_text(fragment)
    print()
    print(fragment, end="")


def method_lines(settings, versions, host, more_method):
    """The machine, the method (plus `more_method`) and how to read the ratios, then a blank line."""
    hyperfine = versions.get("hyperfine", "hyperfine ?").replace("hyperfine ", "")
    return [
        f"Measured {settings['date']} on a {host['cores']}-core VM ({host['cpu']}, {host['mem_gib']} GiB), "
        f"kernel {host['kernel']}, {settings.get('cgroups', host['cgroups'])}; "
        f"hugetlb moved to cgroup v1: {settings['hugetlb']}.",
        f"hyperfine {hyperfine} `-N`, {settings['warmup']} warm-up + {settings['runs']} runs per command "
        f"in each of {settings['rounds']} rounds (command order rotated); times are medians of all runs."
        + more_method,
        "÷ runc, ÷ crun: the median over that runtime's median for the same command (below 1 is faster); "
        "in brackets the lowest and highest ratio of the per-round medians.",
        "",
    ]


def runtime_fragment(results, settings, versions, host, per_round, medians, rss, runtimes):
    """The markdown of bench/runtime.sh: one row per runtime, `run` and the cycle side by side."""
    def cell(name):
        return f"{medians[name]:.1f}" if name in medians else "—"

    def rss_cell(name):
        return f"{statistics.median(rss[name]) / 1024:.1f}" if name in rss else "—"

    lines = method_lines(
        settings,
        versions,
        host,
        f" Peak RSS: median of {settings['rss_runs']} runs under GNU `time -f %M`. "
        f"Bundle: busybox rootfs, config.json from `{settings['bundle_spec_from']} spec`, process `/bin/true`.",
    )
    lines += [
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
    lines += closing_lines(
        results,
        medians,
        lambda name, why: f"| {name} | — | not measured: {why} | | | | | | |",
        "The cycle column includes one `sh -c` to chain the three commands",
    )
    return "\n".join(lines) + "\n"


def closing_lines(results, medians, left_out_row, shell_note):
    """A row per left-out runtime or command (`left_out_row(name, why)`), then the note on the
    cost of `sh -c` (`shell_note`, completed with the time of `sh -c true`) if it was timed."""
    lines = []
    left_out = results / "left-out.tsv"
    if left_out.exists():
        lines += [left_out_row(name, why.replace("|", "/")) for name, why in read_tsv(left_out)]
    if SHELL in medians:
        lines += ["", f"{shell_note}; `sh -c true` alone took {medians[SHELL]:.1f} ms."]
    return lines


def kinds_fragment(results, settings, versions, host, per_round, medians, runtimes, kinds):
    """The markdown of bench/ops.sh and bench/ctr.sh: one row per command, grouped by kind."""
    tools = ", ".join(
        f"{tool} {short_version(versions[tool])}" for tool in TOOLS if tool in versions and tool != "hyperfine"
    )
    lines = method_lines(settings, versions, host, f" Tools: {tools}." if tools else "")
    lines += [
        "| command | runtime | version | median (ms) | ÷ runc | ÷ crun |",
        "|---|---|---|---:|---:|---:|",
    ]
    for kind in kinds:
        names = [f"{r} {kind}" for r in runtimes] + [f for f, of in FLOORS.items() if of == kind]
        for name in names:
            if name not in medians:
                continue
            runtime, _ = split_name(name)
            ratios = ratio_text(name, per_round, medians)
            label = f"`{kind}`" if runtime else FLOOR_LABELS.get(name, name)
            version = short_version(versions[runtime]) if runtime else ""
            lines.append(
                f"| {label} | {runtime or '—'} | {version} | {medians[name]:.1f} "
                f"| {ratios['runc']} | {ratios['crun']} |"
            )
    def left_out_row(name, why):
        runtime, kind = split_name(name)
        return f"| {f'`{kind}`' if kind else 'all'} | {runtime} | — | not measured: {why} | | |"

    lines += closing_lines(
        results, medians, left_out_row, "Rows marked with `+` chain two commands through one `sh -c`"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
