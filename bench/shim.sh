#!/usr/bin/env bash
# Our containerd shim (containerd-shim-skiff-v2, shim/) against containerd's stock
# containerd-shim-runc-v2, through a private containerd 1.6, side by side:
#   1. RSS per shim with N (default 20) running containers, one shim each: ours (driving skiff),
#      ours linked statically (crt-static, driving skiff) and the runc shim (driving runc).
#      VmRSS, RssAnon/RssFile, threads and Pss (smaps_rollup) of every shim process.
#   2. `ctr run --rm busybox true` latency: our shim + skiff, our shim + runc (BinaryName via
#      ctr's --runtime-config-path), runc shim + runc.
# containerd runs with its own root/state/socket in a temp dir and a private mount namespace
# (empty tmpfs over /run and /var/lib: shims put their sockets in /run/containerd/s), with a
# bin/ directory first on its PATH holding our shims and skiff. Run as root; `--help` for
# options. Method and figures: docs/benchmarks.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
argv=("$@")

runs=20
warmup=3
containers=20
latency=true
usage() {
	cat <<'EOF'
usage: bench/shim.sh [options]

  --containers N      running containers per shim kind for the RSS figure (default 20)
  --rss-only          only the RSS figure (no latency rounds)

The image is the tests' busybox image (tests/src/image.rs), written as a docker-archive by
target/release/mkimage and imported with `ctr images import`.

EOF
	bench_options_help
}

while (($# > 0)); do
	if [[ "$1" == --containers ]]; then
		containers="${2:?--containers needs a number}"
		shift 2
		continue
	fi
	if [[ "$1" == --rss-only ]]; then
		latency=false
		shift
		continue
	fi
	bench_option "$@"
	shift "${bench_shift}"
done
bench_start "containerd, namespaces, mounts and cgroups" skiff-bench-shim "${argv[@]}"
for tool in containerd ctr containerd-shim-runc-v2 runc hyperfine; do
	command -v "${tool}" >/dev/null || die "${tool} not found (scripts/deps.sh installs it)"
done

say "building containerd-shim-skiff-v2 and skiff (release)"
cargo build --release --quiet -p containerd-shim-skiff -p skiff-runtime ||
	die "cargo build --release -p containerd-shim-skiff -p skiff-runtime failed"
shim_bin="${SKIFF_REPO}/target/release/containerd-shim-skiff-v2"
skiff_bin="${SKIFF:-${SKIFF_REPO}/target/release/skiff}"
# The same shim linked statically (glibc's crt-static, scripts/build-static.sh: the build to
# install): a dynamic shim's RSS is mostly libc, ld.so and libgcc_s pages it maps
# (docs/benchmarks.md).
say "building the static builds (scripts/build-static.sh)"
scripts/build-static.sh >/dev/null || die "scripts/build-static.sh failed"
static_shim_bin="${SKIFF_REPO}/target/static/containerd-shim-skiff-v2"
runc_bin="$(command -v runc)"

# containerd (bench_containerd_start, as bench/ctr.sh) with bin/ first on its PATH: containerd
# finds containerd-shim-skiff-v2 there for `--runtime io.containerd.skiff.v2`, and our shim finds
# skiff there. runc.toml is the runtime options file that makes our shim drive runc.
# bench_containerd_cleanup removes exactly what this script made.
bench_traps bench_containerd_cleanup
mkdir -p "${tmp}/bin"
ln -s "${shim_bin}" "${tmp}/bin/containerd-shim-skiff-v2"
ln -s "${static_shim_bin}" "${tmp}/bin/containerd-shim-skiffstatic-v2"
ln -s "${skiff_bin}" "${tmp}/bin/skiff"
printf 'BinaryName = "%s"\n' "${runc_bin}" >"${tmp}/runc.toml"
bench_containerd_start "${tmp}/bin:${PATH}"

# The three set-ups: name → ctr run flags.
declare -A flags_of=(
	["skiff-shim+skiff"]="--runtime io.containerd.skiff.v2 --fifo-dir ${tmp}/fifo"
	["skiff-shim+runc"]="--runtime io.containerd.skiff.v2 --runtime-config-path ${tmp}/runc.toml --fifo-dir ${tmp}/fifo"
	["runc-shim+runc"]="--runc-binary ${runc_bin} --fifo-dir ${tmp}/fifo"
	["skiff-shim-static+skiff"]="--runtime io.containerd.skiffstatic.v2 --fifo-dir ${tmp}/fifo"
)
setups=("skiff-shim+skiff" "skiff-shim+runc" "runc-shim+runc")

# Pre-flight per set-up (bench_ctr_check): output, exit status 3, nothing left behind.
for setup in "${setups[@]}" skiff-shim-static+skiff; do
	read -r -a flags <<<"${flags_of[${setup}]}"
	why="$(bench_ctr_check "bench-$$-check" "${flags[@]}")" || die "${setup}: ${why}"
done

: >"${tmp}/versions.tsv"
bench_containerd_versions
bench_version containerd-shim-skiff-v2 "${shim_bin}" "$("${shim_bin}" -v | sed -n 's/^ *Version: *//p')"
bench_version containerd-shim-skiff-v2-crt-static "${static_shim_bin}" "$("${static_shim_bin}" -v | sed -n 's/^ *Version: *//p')"
bench_version skiff "${skiff_bin}" "$("${skiff_bin}" --version | head -n 1)"
bench_version runc "${runc_bin}" "$(runc --version | head -n 1)"
touch "${tmp}/left-out.tsv"
bench_open_results

# ---------------------------------------------------------------------------------------------
# 1. RSS: N detached `sleep` containers per shim kind (one shim each), then VmRSS and Pss of
# every shim process, then all of them removed.
shim_pids_named() {
	local pid
	for pid in $(bench_containerd_processes); do
		[[ "$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" == *"$1"* ]] && echo "${pid}"
	done
	return 0
}
echo -e "setup\tpid\tvmrss_kib\tpss_kib\tthreads\trss_anon_kib\trss_file_kib" >"${results}/rss.tsv"
for setup in "skiff-shim+skiff" "skiff-shim-static+skiff" "runc-shim+runc"; do
	read -r -a flags <<<"${flags_of[${setup}]}"
	say "RSS: ${containers} containers with ${setup}"
	for ((i = 0; i < containers; i++)); do
		ctr "${ctr_args[@]}" run -d --null-io "${flags[@]}" "${image}" "rss-$$-${i}" sleep 100000 \
			</dev/null >/dev/null 2>>"${tmp}/rss.err" || die "${setup}: ctr run -d failed: $(tail -n 3 "${tmp}/rss.err")"
	done
	sleep 3
	binary="containerd-shim-skiff-v2"
	[[ "${setup}" == runc-shim+runc ]] && binary="containerd-shim-runc-v2"
	count=0
	for pid in $(shim_pids_named "${binary}"); do
		rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/${pid}/status")"
		pss="$(awk '/^Pss:/ { print $2 }' "/proc/${pid}/smaps_rollup")"
		threads="$(awk '/^Threads:/ { print $2 }' "/proc/${pid}/status")"
		anon="$(awk '/^RssAnon:/ { print $2 }' "/proc/${pid}/status")"
		file="$(awk '/^RssFile:/ { print $2 }' "/proc/${pid}/status")"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${setup}" "${pid}" "${rss}" "${pss}" "${threads}" "${anon}" "${file}" >>"${results}/rss.tsv"
		count=$((count + 1))
	done
	((count == containers)) || say "${setup}: ${count} shim processes for ${containers} containers"
	for ((i = 0; i < containers; i++)); do
		ctr "${ctr_args[@]}" task kill -s SIGKILL "rss-$$-${i}" >/dev/null 2>&1 || true
	done
	for ((i = 0; i < containers; i++)); do
		deadline=$((SECONDS + 30))
		while [[ "$(ctr "${ctr_args[@]}" task ls 2>/dev/null | awk -v id="rss-$$-${i}" '$1 == id { print $3 }')" == RUNNING ]] &&
			((SECONDS < deadline)); do
			sleep 0.1
		done
		ctr "${ctr_args[@]}" task delete "rss-$$-${i}" >/dev/null 2>&1 || true
		ctr "${ctr_args[@]}" container delete "rss-$$-${i}" >/dev/null 2>&1 || true
	done
	deadline=$((SECONDS + 15))
	while [[ -n "$(bench_containerd_processes)" ]] && ((SECONDS < deadline)); do
		sleep 0.2
	done
done

# ---------------------------------------------------------------------------------------------
# 2. Latency: hyperfine -N, every set-up in each round, order rotated (bench_rounds).
names=()
commands=()
for setup in "${setups[@]}"; do
	names+=("${setup}")
	commands+=("ctr --address $(q "${sock}") --namespace ${ns} run --rm ${flags_of[${setup}]} ${image} bench-$$-${setup//+/-} true")
done
if [[ "${latency}" == true ]]; then
	bench_rounds
fi
bench_settings "image=${image}" "snapshotter=overlayfs" "containers=${containers}"

# ---------------------------------------------------------------------------------------------
# Summary: medians of all runs, ratios to runc-shim+runc (per-round range in brackets), and the
# RSS table; summary.md is the fragment for docs/benchmarks.md.
python3 - "${results}" <<'PY'
import json, statistics, sys
from pathlib import Path
results = Path(sys.argv[1])
per_round, pooled = {}, {}
for path in sorted(results.glob("round-*.json")):
    for r in json.loads(path.read_text())["results"]:
        times = [t * 1000 for t in r["times"]]
        per_round.setdefault(r["command"], []).append(statistics.median(times))
        pooled.setdefault(r["command"], []).extend(times)
ref = "runc-shim+runc"
lines = ["| set-up | median (ms) | ÷ runc shim + runc |", "|---|---:|---:|"] if pooled else []
for name in ("skiff-shim+skiff", "skiff-shim+runc", ref) if pooled else ():
    med = statistics.median(pooled[name])
    ratios = [a / b for a, b in zip(per_round[name], per_round[ref])]
    lines.append(f"| {name} | {med:.1f} | {med / statistics.median(pooled[ref]):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
rows = [l.split("\t") for l in (results / "rss.tsv").read_text().splitlines()[1:] if l]
lines += ["", "| shim | shims | VmRSS per shim, median (KiB) | Pss per shim, median (KiB) | threads | RssAnon / RssFile, median (KiB) |", "|---|---:|---:|---:|---:|---:|"]
for setup in ("skiff-shim+skiff", "skiff-shim-static+skiff", "runc-shim+runc"):
    mine = [r for r in rows if r[0] == setup]
    if not mine:
        continue
    rss = statistics.median(int(r[2]) for r in mine)
    pss = statistics.median(int(r[3]) for r in mine)
    threads = statistics.median(int(r[4]) for r in mine)
    anon = statistics.median(int(r[5]) for r in mine)
    file = statistics.median(int(r[6]) for r in mine)
    lines.append(f"| {setup} | {len(mine)} | {rss:.0f} | {pss:.0f} | {threads:.0f} | {anon:.0f} / {file:.0f} |")
text = "\n".join(lines) + "\n"
(results / "summary.md").write_text(text)
print(text)
PY
say "results in ${results} (summary.md is the fragment for docs/benchmarks.md)"
