#!/usr/bin/env bash
# `ctr run --rm` of busybox `true` through containerd 1.6 and its stock runc shim
# (containerd-shim-runc-v2), with skiff, runc and crun as the shim's runtime binary
# (`--runc-binary`), side by side: what a container costs end to end through a real engine.
# A private containerd (own root, state, socket, and a private mount namespace) is started for
# the run and stopped at exit. Method and figures: docs/benchmarks.md. Run as root;
# `bench/ctr.sh --help` for options.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
argv=("$@")

# A container start through containerd takes ~0.1-0.2 s: fewer runs than the other benchmarks.
runs=30
warmup=3
usage() {
	cat <<'EOF'
usage: bench/ctr.sh [options]

The image is the tests' busybox image (tests/src/image.rs), written as a docker-archive by
target/release/mkimage and imported with `ctr images import`.

EOF
	bench_options_help
}

while (($# > 0)); do
	bench_option "$@"
	shift "${bench_shift}"
done
bench_start "containerd, namespaces, mounts and cgroups" skiff-bench-ctr "${argv[@]}"
for tool in containerd ctr containerd-shim-runc-v2; do
	command -v "${tool}" >/dev/null || die "${tool} not found (Debian package containerd; scripts/deps.sh installs it)"
done

# On a signal, hyperfine stops first, and the `ctr run` it had started gets time to end; then
# bench_containerd_cleanup removes exactly what this script made.
bench_traps bench_containerd_cleanup
bench_containerd_start "${PATH}"

# Pre-flight (bench_ctr_check): output, exit status, nothing left behind.
check_ctr() {
	[[ -x "$2" ]] || {
		echo "no executable at $2"
		return 1
	}
	bench_ctr_check "bench-$$-$1-check" --runc-binary "$2" --runc-root "$3" --fifo-dir "${tmp}/fifo"
}
bench_select_runtimes check_ctr
bench_containerd_versions
bench_open_results

# ---------------------------------------------------------------------------------------------
# Timings (bench_rounds: hyperfine -N, every command in each round, the order rotated): the
# whole `ctr run --rm`, i.e. image lookup, snapshot, spec, shim start, runtime create/start,
# wait, runtime delete, shim exit, snapshot removal. Each runtime has its own id and --runc-root.
names=()
commands=()
for name in "${usable[@]}"; do
	names+=("${name} ctr run --rm")
	commands+=("ctr --address $(q "${sock}") --namespace ${ns} run --rm --runc-binary $(q "${bin_of[${name}]}") --runc-root $(q "${root_of[${name}]}") --fifo-dir $(q "${tmp}/fifo") ${image} bench-$$-${name} true")
done
bench_rounds

# After the timings: containers, tasks and shims left behind (leftovers.tsv). A shim exits on
# its own shortly after its container is deleted; give the last one 10 s.
deadline=$((SECONDS + 10))
while [[ -n "$(bench_containerd_processes)" ]] && ((SECONDS < deadline)); do
	sleep 0.2
done
{
	printf 'containers\t%s\n' "$(ctr "${ctr_args[@]}" container ls -q | wc -l)"
	printf 'tasks\t%s\n' "$(ctr "${ctr_args[@]}" task ls -q | wc -l)"
	printf 'shims\t%s\n' "$(bench_containerd_processes | wc -w)"
} >"${results}/leftovers.tsv"
if awk -F '\t' '$2 != 0 { bad = 1 } END { exit !bad }' "${results}/leftovers.tsv"; then
	say "left behind after the timings: $(tr '\t\n' ': ' <"${results}/leftovers.tsv")"
fi
cp "${tmp}/config.toml" "${results}/containerd-config.toml"

bench_settings "image=${image}" "snapshotter=overlayfs"
python3 bench/summarize.py "${results}"
say "results in ${results} (summary.md is the fragment for docs/benchmarks.md)"
