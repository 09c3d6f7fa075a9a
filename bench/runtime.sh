#!/usr/bin/env bash
# Start-up cost of skiff next to runc and crun, measured side by side on one busybox bundle that
# runs /bin/true, plus the floor (`unshare` of the same namespaces) and the peak RSS of one `run`.
# Method and figures: docs/benchmarks.md. Run as root; `bench/runtime.sh --help` for options.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

usage() {
	cat <<'EOF'
usage: bench/runtime.sh [options]

  --bundle DIR        benchmark this bundle (process.args ["/bin/true"], terminal false) instead
                      of making one with the tests' mkbundle
  --spec-from NAME    runtime whose `spec` seeds the bundle's config.json (default: runc, so every
                      runtime runs the same config, and skiff's own `spec` is not under test)
  --results DIR       where to write results (default: bench/results/<UTC time>)
  --runs N            hyperfine runs per command per round (default: 50)
  --warmup N          hyperfine warm-up runs per command per round (default: 5)
  --rounds N          hyperfine invocations, command order rotated each time (default: 5)
  --rss-runs N        runs of each `run` under GNU time for the peak RSS (default: 7)
  --skip-unavailable  leave out a runtime that is missing or fails the pre-flight check (say, a
                      skiff that is not built yet) instead of failing
  --no-hugetlb-mount  never move the hugetlb controller to cgroup v1 (crun is then left out on
                      a hybrid host whose cgroup2 holds hugetlb)

environment:
  RUNTIMES  which runtimes to compare, in this order (default: "skiff runc crun")
  SKIFF     the skiff binary (default: target/release/skiff)
EOF
}

bundle=""
spec_from="runc"
results=""
runs=50
warmup=5
rounds=5
rss_runs=7
skip_unavailable=false
hugetlb_mount=true
while (($# > 0)); do
	case "$1" in
	--bundle) bundle="$(realpath "$2")" && shift ;;
	--spec-from) spec_from="$2" && shift ;;
	--results) results="$2" && shift ;;
	--runs) runs="$2" && shift ;;
	--warmup) warmup="$2" && shift ;;
	--rounds) rounds="$2" && shift ;;
	--rss-runs) rss_runs="$2" && shift ;;
	--skip-unavailable) skip_unavailable=true ;;
	--no-hugetlb-mount) hugetlb_mount=false ;;
	-h | --help) usage && exit 0 ;;
	*) usage >&2 && die "unknown argument: $1" ;;
	esac
	shift
done
read -r -a runtimes <<<"${RUNTIMES:-skiff runc crun}"
((${#runtimes[@]} > 0)) || die "RUNTIMES is empty"

cd "${SKIFF_REPO}"
require_root "containers need namespaces, mounts and cgroups"
scripts/deps.sh
find_cargo

results="$(realpath -m "${results:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}")"
tmp="$(mktemp -d /tmp/skiff-bench.XXXXXX)"

# Container ids carry this script's pid, so concurrent runs (or tests) never share a cgroup path.
# `run` without --keep deletes the container when it exits, so one id serves every iteration;
# the pre-flight check proves that for each runtime.
id_prefix="bench-$$"
declare -A bin_of=() root_of=()
cleanup() {
	local name id
	for name in "${!bin_of[@]}"; do
		for id in check run cycle rss; do
			"${bin_of[${name}]}" --root "${root_of[${name}]}" delete --force "${id_prefix}-${id}" \
				>/dev/null 2>&1 || true
		done
	done
	rm -rf "${tmp}"
}
# On a signal, stop hyperfine first, and give the command it had started (one container
# lifecycle, well under a second) time to end so the deletes in cleanup see its container.
child=""
on_signal() {
	if [[ -n "${child}" ]]; then
		kill -TERM "${child}" 2>/dev/null || true
		wait "${child}" 2>/dev/null || true
		sleep 1
	fi
	exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# ---------------------------------------------------------------------------------------------
# The bundle: busybox rootfs, config.json from `<spec_from> spec`, process.args ["/bin/true"]
# (busybox's `true` applet), made by the same tool the integration tests use.
if [[ -z "${bundle}" ]]; then
	spec_bin="$(command -v "${spec_from}")" || die "--spec-from ${spec_from}: not on PATH"
	say "building mkbundle (tests/) and the bundle"
	cargo build --release --quiet -p skiff-tests --bin mkbundle ||
		die "could not build mkbundle from tests/; pass --bundle DIR to use a bundle made another way"
	bundle="${tmp}/bundle"
	target/release/mkbundle --runtime "${spec_bin}" "${bundle}" -- /bin/true >/dev/null
	# /bin/true is busybox's applet; add the link if the rootfs holds only /bin/busybox.
	if [[ ! -e "${bundle}/rootfs/bin/true" && -x "${bundle}/rootfs/bin/busybox" ]]; then
		ln -s busybox "${bundle}/rootfs/bin/true"
	fi
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
	local bin="$1" root="$2" id="${id_prefix}-check" err="${tmp}/check.err" state
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

# crun refuses a hybrid host whose cgroup2 holds a controller (here: hugetlb). Moving hugetlb to
# a v1 hierarchy, as TESTING.md says, lets it run. This stays mounted after the benchmark (it is
# harmless to runc and skiff, and undoing it while other users may rely on it is not ours to do).
# Only on a hybrid host: on a pure v2 host /sys/fs/cgroup is cgroup2 and mkdir there would
# create a cgroup.
hugetlb_note="none"
move_hugetlb_to_v1() {
	[[ "${hugetlb_mount}" == true ]] || return 1
	[[ "$(stat -f -c %T /sys/fs/cgroup)" == tmpfs ]] || return 1
	grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || return 1
	mountpoint -q /sys/fs/cgroup/hugetlb && return 1
	say "moving hugetlb to cgroup v1 for crun: mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb (left mounted)"
	mkdir -p /sys/fs/cgroup/hugetlb
	mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
	hugetlb_note="mounted by this run"
}
if mountpoint -q /sys/fs/cgroup/hugetlb; then
	hugetlb_note="already on v1"
fi

usable=()
versions="${tmp}/versions.tsv"
left_out="${tmp}/left-out.tsv"
: >"${left_out}"
for name in "${runtimes[@]}"; do
	if [[ "${name}" == skiff ]]; then
		bin="${SKIFF:-${SKIFF_REPO}/target/release/skiff}"
	else
		bin="$(command -v "${name}" || echo "/nonexistent/${name}")"
	fi
	bin_of[${name}]="${bin}"
	root_of[${name}]="${tmp}/root-${name}"
	if ! why="$(check_runtime "${bin}" "${root_of[${name}]}")"; then
		if [[ "${name}" == crun ]] && move_hugetlb_to_v1; then
			why="$(check_runtime "${bin}" "${root_of[${name}]}")" || true
		fi
		if [[ -n "${why}" ]]; then
			if [[ "${name}" == crun || "${skip_unavailable}" == true ]]; then
				say "leaving out ${name} (${bin}): ${why}"
				printf '%s\t%s\n' "${name}" "${why//$'\n'/ }" >>"${left_out}"
				continue
			fi
			die "${name} (${bin}) is not usable: ${why}
(pass --skip-unavailable, or set RUNTIMES, to benchmark the others)"
		fi
	fi
	usable+=("${name}")
	# --root first: a bare `crun --version` creates /run/crun.
	version="$("${bin}" --root "${root_of[${name}]}" --version 2>/dev/null ||
		"${bin}" --version 2>/dev/null || true)"
	printf '%s\t%s\t%s\n' "${name}" "${bin}" "${version%%$'\n'*}" >>"${versions}"
done
((${#usable[@]} > 0)) || die "no runtime left to benchmark"
mkdir -p "${results}"
printf '%s\t%s\t%s\n' unshare "$(command -v unshare)" "$(unshare --version | head -n 1)" \
	>>"${versions}"
printf '%s\t%s\t%s\n' hyperfine "$(command -v hyperfine)" "$(hyperfine --version)" \
	>>"${versions}"
mv "${versions}" "${left_out}" "${results}/"

# ---------------------------------------------------------------------------------------------
# Timings. One hyperfine invocation per round with every command, so all of them share the
# machine's state of the moment; the order rotates between rounds. -N: no shell in the loop, so
# `run` and the floor are measured exactly. The create/start/delete cycle needs `&&`, so it goes
# through one `sh -c` (dash); `sh -c true` is measured too, to show what that adds.
q() { printf '%q' "$1"; }
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

{
	echo "# commands timed by bench/runtime.sh (hyperfine -N)"
	for i in "${!names[@]}"; do
		printf '%s\t%s\n' "${names[i]}" "${commands[i]}"
	done
} >"${results}/commands.tsv"

count=${#names[@]}
for ((round = 1; round <= rounds; round++)); do
	say "round ${round}/${rounds}: ${count} commands, ${warmup} warm-up + ${runs} runs each"
	hyperfine_args=(-N --style basic --time-unit millisecond --warmup "${warmup}" --runs "${runs}"
		--export-json "${results}/round-${round}.json" --export-markdown "${results}/round-${round}.md")
	for ((k = 0; k < count; k++)); do
		i=$(((k + round - 1) % count))
		hyperfine_args+=(-n "${names[i]}" "${commands[i]}")
	done
	# In the background with `wait`, so a SIGTERM to this script is handled now, not when
	# hyperfine finishes (bash defers traps while a foreground command runs).
	hyperfine "${hyperfine_args[@]}" > >(tee "${results}/round-${round}.txt") &
	child=$!
	wait "${child}"
	child=""
done

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

cat >"${results}/settings.txt" <<EOF
runs=${runs}
warmup=${warmup}
rounds=${rounds}
rss_runs=${rss_runs}
bundle_spec_from=${spec_from}
hugetlb=${hugetlb_note}
date=$(date -u +%Y-%m-%d)
EOF

python3 bench/summarize.py "${results}"
say "results in ${results} (summary.md is the fragment for docs/benchmarks.md)"
