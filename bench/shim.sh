#!/usr/bin/env bash
# Our containerd shim (containerd-shim-skiff-v2, shim/) against containerd's stock
# containerd-shim-runc-v2, through a private containerd 1.6, side by side:
#   1. RSS per shim with N (default 20) running containers, one shim each: ours (driving skiff)
#      and the runc shim (driving runc). VmRSS and Pss (smaps_rollup) of every shim process.
#   2. `ctr run --rm busybox true` latency: our shim + skiff, our shim + runc (BinaryName via
#      ctr's --runtime-config-path), runc shim + runc.
# containerd runs with its own root/state/socket in a temp dir and a private mount namespace
# (empty tmpfs over /run and /var/lib: shims put their sockets in /run/containerd/s), with a
# bin/ directory first on its PATH holding our shim and skiff. Run as root; `--help` for
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
usage() {
	cat <<'EOF'
usage: bench/shim.sh [options]

  --containers N      running containers per shim kind for the RSS figure (default 20)

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
runc_bin="$(command -v runc)"

sock="${tmp}/c.sock"
ns="skiff-bench-$$"
image="docker.io/library/busybox:latest"
containerd_pid=""
ctr_args=(--address "${sock}" --namespace "${ns}")

# The pids of the processes besides containerd whose command line names our socket: the shims.
our_processes() {
	local proc
	for proc in /proc/[0-9]*; do
		[[ "${proc#/proc/}" != "$$" && "${proc#/proc/}" != "${containerd_pid}" ]] || continue
		if [[ "$(tr '\0' ' ' 2>/dev/null <"${proc}/cmdline")" == *"${sock}"* ]]; then
			echo "${proc#/proc/}"
		fi
	done
}

# Exactly what this script made (see bench/ctr.sh): its namespace's tasks and containers, its
# containerd, the shims naming its socket, its cgroups, mounts under its temp dir, the temp dir.
cleanup() {
	local id pid deadline dir mounts
	if [[ -n "${containerd_pid}" ]] && kill -0 "${containerd_pid}" 2>/dev/null; then
		for id in $(timeout 30 ctr "${ctr_args[@]}" task ls -q 2>/dev/null); do
			timeout 30 ctr "${ctr_args[@]}" task kill -s SIGKILL "${id}" >/dev/null 2>&1 || true
			timeout 30 ctr "${ctr_args[@]}" task delete --force "${id}" >/dev/null 2>&1 || true
		done
		for id in $(timeout 30 ctr "${ctr_args[@]}" container ls -q 2>/dev/null); do
			timeout 30 ctr "${ctr_args[@]}" container delete "${id}" >/dev/null 2>&1 || true
		done
		kill -TERM "${containerd_pid}" 2>/dev/null || true
		deadline=$((SECONDS + 15))
		while kill -0 "${containerd_pid}" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if kill -0 "${containerd_pid}" 2>/dev/null; then
			say "containerd (pid ${containerd_pid}) did not stop on SIGTERM within 15 s; killing it"
			kill -KILL "${containerd_pid}" 2>/dev/null || true
		fi
		wait "${containerd_pid}" 2>/dev/null || true
	fi
	for pid in $(our_processes); do
		say "killing leftover ${pid}: $(tr '\0' ' ' 2>/dev/null <"/proc/${pid}/cmdline")"
		kill -KILL "${pid}" 2>/dev/null || true
	done
	bench_clean_hidden_cgroup2 "${ns}"
	for dir in /sys/fs/cgroup/*/"${ns}"; do
		[[ -d "${dir}" && "$(stat -f -c %T "${dir}")" == cgroup* ]] || continue
		while read -r pid; do
			say "killing pid ${pid}, left in cgroup ${dir}"
			kill -KILL "${pid}" 2>/dev/null || true
		done < <(find "${dir}" -name cgroup.procs -exec cat {} + 2>/dev/null)
		sleep 0.2
		find "${dir}" -depth -type d -exec rmdir {} + 2>/dev/null || say "could not remove cgroup ${dir}"
	done
	mounts="$(awk -v dir="${tmp}/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r)"
	for dir in ${mounts}; do
		umount -l "${dir}" || true
	done
	if awk -v dir="${tmp}/" 'index($5, dir) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		say "mounts are left under ${tmp}; not removing it"
	else
		rm -rf "${tmp}"
	fi
}
bench_traps cleanup

# ---------------------------------------------------------------------------------------------
# containerd, as in bench/ctr.sh, plus bin/ first on its PATH: containerd finds
# containerd-shim-skiff-v2 there for `--runtime io.containerd.skiff.v2`, and our shim finds
# skiff there. runc.toml is the runtime options file that makes our shim drive runc.
mkdir -p "${tmp}"/{root,state,opt,fifo,bin}
ln -s "${shim_bin}" "${tmp}/bin/containerd-shim-skiff-v2"
ln -s "${skiff_bin}" "${tmp}/bin/skiff"
printf 'BinaryName = "%s"\n' "${runc_bin}" >"${tmp}/runc.toml"
cat >"${tmp}/config.toml" <<EOF
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[plugins."io.containerd.internal.v1.opt"]
  path = "${tmp}/opt"
EOF
say "starting containerd in ${tmp}"
PATH="${tmp}/bin:${PATH}" unshare --mount --propagation private -- /bin/sh -c \
	'mount -t tmpfs -o mode=0755 skiff-bench-run /run && mount -t tmpfs -o mode=0755 skiff-bench-varlib /var/lib && exec "$@"' \
	sh containerd --config "${tmp}/config.toml" --root "${tmp}/root" --state "${tmp}/state" \
	--address "${sock}" </dev/null >"${tmp}/containerd.log" 2>&1 &
containerd_pid=$!
deadline=$((SECONDS + 60))
until [[ -S "${sock}" ]] && ctr --address "${sock}" --timeout 2s version >/dev/null 2>&1; do
	kill -0 "${containerd_pid}" 2>/dev/null ||
		die "containerd exited: $(tail -n 5 "${tmp}/containerd.log")"
	((SECONDS < deadline)) || die "containerd did not answer within 60 s: $(tail -n 5 "${tmp}/containerd.log")"
	sleep 0.1
done

bench_build_tests_bin mkimage
target/release/mkimage --name "${image}" --docker-archive "${tmp}/busybox.tar" >/dev/null
ctr "${ctr_args[@]}" images import "${tmp}/busybox.tar" >/dev/null 2>"${tmp}/import.err" ||
	die "ctr images import failed: $(tail -n 3 "${tmp}/import.err")"

# The three set-ups: name → ctr run flags.
declare -A flags_of=(
	["skiff-shim+skiff"]="--runtime io.containerd.skiff.v2 --fifo-dir ${tmp}/fifo"
	["skiff-shim+runc"]="--runtime io.containerd.skiff.v2 --runtime-config-path ${tmp}/runc.toml --fifo-dir ${tmp}/fifo"
	["runc-shim+runc"]="--runc-binary ${runc_bin} --fifo-dir ${tmp}/fifo"
)
setups=("skiff-shim+skiff" "skiff-shim+runc" "runc-shim+runc")

# Pre-flight per set-up: output, exit status 3, nothing left behind.
for setup in "${setups[@]}"; do
	read -r -a flags <<<"${flags_of[${setup}]}"
	id="bench-$$-check"
	out="$(timeout 60 ctr "${ctr_args[@]}" run --rm "${flags[@]}" "${image}" "${id}" echo skiff-bench-ok </dev/null 2>"${tmp}/check.err")" ||
		die "${setup}: ctr run --rm echo failed: $(tail -n 3 "${tmp}/check.err")"
	[[ "${out}" == skiff-bench-ok ]] || die "${setup}: ctr run --rm echo printed \"${out:0:200}\""
	timeout 60 ctr "${ctr_args[@]}" run --rm "${flags[@]}" "${image}" "${id}" sh -c 'exit 3' </dev/null >/dev/null 2>&1 && status=0 || status=$?
	((status == 3)) || die "${setup}: sh -c 'exit 3' exited ${status}"
	! ctr "${ctr_args[@]}" container ls -q | grep -qx "${id}" || die "${setup}: --rm left the container"
done

: >"${tmp}/versions.tsv"
bench_version containerd "$(command -v containerd)" "$(containerd --version)"
bench_version containerd-shim-runc-v2 "$(command -v containerd-shim-runc-v2)" \
	"$(containerd-shim-runc-v2 -v 2>/dev/null | sed -n 's/^ *Version: *//p' | head -n 1)"
bench_version containerd-shim-skiff-v2 "${shim_bin}" "$("${shim_bin}" -v | sed -n 's/^ *Version: *//p')"
bench_version skiff "${skiff_bin}" "$("${skiff_bin}" --version | head -n 1)"
bench_version runc "${runc_bin}" "$(runc --version | head -n 1)"
touch "${tmp}/left-out.tsv"
bench_open_results

# ---------------------------------------------------------------------------------------------
# 1. RSS: N detached `sleep` containers per shim kind (one shim each), then VmRSS and Pss of
# every shim process, then all of them removed.
shim_pids_named() {
	local pid
	for pid in $(our_processes); do
		[[ "$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" == *"$1"* ]] && echo "${pid}"
	done
	return 0
}
echo -e "setup\tpid\tvmrss_kib\tpss_kib\tthreads" >"${results}/rss.tsv"
for setup in "skiff-shim+skiff" "runc-shim+runc"; do
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
		printf '%s\t%s\t%s\t%s\t%s\n' "${setup}" "${pid}" "${rss}" "${pss}" "${threads}" >>"${results}/rss.tsv"
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
	while [[ -n "$(our_processes)" ]] && ((SECONDS < deadline)); do
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
bench_rounds
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
lines = ["| set-up | median (ms) | ÷ runc shim + runc |", "|---|---:|---:|"]
for name in ("skiff-shim+skiff", "skiff-shim+runc", ref):
    med = statistics.median(pooled[name])
    ratios = [a / b for a, b in zip(per_round[name], per_round[ref])]
    lines.append(f"| {name} | {med:.1f} | {med / statistics.median(pooled[ref]):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
rows = [l.split("\t") for l in (results / "rss.tsv").read_text().splitlines()[1:] if l]
lines += ["", "| shim | shims | VmRSS per shim, median (KiB) | Pss per shim, median (KiB) | threads |", "|---|---:|---:|---:|---:|"]
for setup in ("skiff-shim+skiff", "runc-shim+runc"):
    mine = [r for r in rows if r[0] == setup]
    if not mine:
        continue
    rss = statistics.median(int(r[2]) for r in mine)
    pss = statistics.median(int(r[3]) for r in mine)
    threads = statistics.median(int(r[4]) for r in mine)
    lines.append(f"| {setup} | {len(mine)} | {rss:.0f} | {pss:.0f} | {threads:.0f} |")
text = "\n".join(lines) + "\n"
(results / "summary.md").write_text(text)
print(text)
PY
say "results in ${results} (summary.md is the fragment for docs/benchmarks.md)"
