#!/usr/bin/env bash
# Start-up cost of skiff next to runc and crun, measured side by side on one busybox bundle that
# runs /bin/true, plus the floor (`unshare` of the same namespaces) and the peak RSS of one `run`.
# Method and figures: docs/benchmarks.md. Run as root; `bench/runtime.sh --help` for options.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
argv=("$@")

usage() {
	cat <<'EOF'
usage: bench/runtime.sh [options]

  --bundle DIR        benchmark this bundle (process.args ["/bin/true"], terminal false) instead
                      of making one with the tests' mkbundle
  --spec-from NAME    runtime whose `spec` seeds the bundle's config.json (default: runc, so every
                      runtime runs the same config, and skiff's own `spec` is not under test)
  --rss-runs N        runs of each `run` under GNU time for the peak RSS (default: 7)
EOF
	bench_options_help
}

bundle=""
spec_from="runc"
rss_runs=7
while (($# > 0)); do
	case "$1" in
	--bundle) bundle="$(realpath "$2")" && shift 2 && continue ;;
	--spec-from) spec_from="$2" && shift 2 && continue ;;
	--rss-runs) rss_runs="$2" && shift 2 && continue ;;
	esac
	bench_option "$@"
	shift "${bench_shift}"
done
bench_start "containers need namespaces, mounts and cgroups" skiff-bench "${argv[@]}"

# Container ids carry this script's pid, so concurrent runs (or tests) never share a cgroup path.
# `run` without --keep deletes the container when it exits, so one id serves every iteration;
# the pre-flight check proves that for each runtime.
id_prefix="bench-$$"
cleanup() {
	local name id
	for name in "${!bin_of[@]}"; do
		for id in check run cycle rss; do
			"${bin_of[${name}]}" --root "${root_of[${name}]}" delete --force "${id_prefix}-${id}" \
				>/dev/null 2>&1 || true
		done
	done
	bench_clean_hidden_cgroup2 "${id_prefix}-*"
	rm -rf "${tmp}"
}
# On a signal, hyperfine stops first, and the command it had started (one container lifecycle,
# well under a second) gets time to end so the deletes in cleanup see its container.
bench_traps cleanup

# ---------------------------------------------------------------------------------------------
# The bundle: busybox rootfs, config.json from `<spec_from> spec`, process.args ["/bin/true"]
# (busybox's `true` applet), made by the same tool the integration tests use.
if [[ -z "${bundle}" ]]; then
	bench_build_tests_bin mkbundle
	bundle="${tmp}/bundle"
	bench_mkbundle "${bundle}" "${spec_from}" /bin/true
fi
[[ -f "${bundle}/config.json" ]] || die "${bundle}: no config.json"
[[ -e "${bundle}/rootfs/bin/true" ]] || die "${bundle}: no rootfs/bin/true"
args="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["process"]["args"])' \
	"${bundle}/config.json")"
[[ "${args}" == "['/bin/true']" ]] || say "warning: the bundle runs ${args}, not ['/bin/true']"

# ---------------------------------------------------------------------------------------------
# Pre-flight: each runtime must really create, report state, start, delete and run the bundle
# (a stub binary that exits 0 would otherwise "win" every benchmark).
check_runtime() {
	local bin="$2" root="$3" id="${id_prefix}-check" err="${tmp}/check.err" state
	[[ -x "${bin}" ]] || {
		echo "no executable at ${bin}"
		return 1
	}
	# Bounded: a runtime under development may hang, which is a failed check, not a stuck bench.
	rt() {
		timeout --kill-after=5 30 "${bin}" --root "${root}" "$@"
	}
	# Report the failed step (124/137: timed out), then remove whatever it left.
	failed() {
		local status=$?
		echo "$1 failed (exit status ${status}): $(tail -n 3 "${err}")"
		rt delete --force "${id}" >/dev/null 2>&1 || true
		return 1
	}
	# stdio to /dev/null: the container's init inherits it and would hold a pipe open.
	rt create --bundle "${bundle}" "${id}" </dev/null >/dev/null 2>"${err}" || failed "\`create\`" || return 1
	state="$(rt state "${id}" 2>"${err}")" || true
	if ! grep -q '"status": *"created"' <<<"${state}"; then
		rt delete --force "${id}" >/dev/null 2>&1 || true
		echo "\`state\` after \`create\` did not report \"status\": \"created\" (got: ${state:-nothing})"
		return 1
	fi
	rt start "${id}" </dev/null >/dev/null 2>"${err}" || failed "\`start\`" || return 1
	rt delete --force "${id}" </dev/null >/dev/null 2>"${err}" || failed "\`delete --force\`" || return 1
	rt run --bundle "${bundle}" "${id}" </dev/null >/dev/null 2>"${err}" || failed "\`run\`" || return 1
	if rt state "${id}" >/dev/null 2>&1; then
		rt delete --force "${id}" >/dev/null 2>&1 || true
		echo "\`run\` left the container's state behind, so a fixed id cannot be reused"
		return 1
	fi
}

bench_select_runtimes check_runtime
bench_version unshare "$(command -v unshare)" "$(unshare --version | head -n 1)"
bench_open_results

# ---------------------------------------------------------------------------------------------
# Timings (bench_rounds: hyperfine -N, every command in each round, the order rotated). The
# create/start/delete cycle needs `&&`, so it goes through one `sh -c` (dash); `sh -c true` is
# measured too, to show what that adds.
names=()
commands=()
for name in "${usable[@]}"; do
	bin="$(q "${bin_of[${name}]}")"
	root="$(q "${root_of[${name}]}")"
	names+=("${name} run")
	commands+=("${bin} --root ${root} run --bundle $(q "${bundle}") ${id_prefix}-run")
	id="${id_prefix}-cycle"
	cycle="${bin} --root ${root} create --bundle $(q "${bundle}") ${id}"
	cycle+=" && ${bin} --root ${root} start ${id} && ${bin} --root ${root} delete --force ${id}"
	names+=("${name} create+start+delete")
	commands+=("sh -c $(q "${cycle}")")
done
names+=("floor: unshare" "sh -c true")
commands+=("unshare -m -p -u -i -n -f /bin/true" "sh -c true")
bench_rounds

# ---------------------------------------------------------------------------------------------
# Peak RSS: GNU time's %M is ru_maxrss from wait4(2): the largest resident set of the runtime
# process or of any descendant it waited for (its init, which becomes busybox true). A Python
# wrapper would not do: its own pages count, through fork or vfork, into the child's figure.
say "peak RSS: ${rss_runs} runs each under /usr/bin/time -f %M"
: >"${results}/rss.tsv"
for name in "${usable[@]}"; do
	for ((k = 0; k < rss_runs; k++)); do
		/usr/bin/time -f %M -o "${tmp}/rss" "${bin_of[${name}]}" --root "${root_of[${name}]}" \
			run --bundle "${bundle}" "${id_prefix}-rss" </dev/null >/dev/null
		printf '%s run\t%s\n' "${name}" "$(tail -n 1 "${tmp}/rss")" >>"${results}/rss.tsv"
	done
done
for ((k = 0; k < rss_runs; k++)); do
	/usr/bin/time -f %M -o "${tmp}/rss" unshare -m -p -u -i -n -f /bin/true
	printf 'floor: unshare\t%s\n' "$(tail -n 1 "${tmp}/rss")" >>"${results}/rss.tsv"
done

bench_settings "rss_runs=${rss_runs}" "bundle_spec_from=${spec_from}"

python3 bench/summarize.py "${results}"
say "results in ${results} (summary.md is the fragment for docs/benchmarks.md)"
