# shellcheck shell=bash
# The variables below are shared with the scripts that source this file, in both directions:
# shellcheck disable=SC2034,SC2154
# Helpers shared by the benchmarks in bench/ (runtime.sh, ops.sh, ctr.sh). Source it after
# scripts/lib.sh; it does nothing on its own. Method: docs/benchmarks.md.
#
# A benchmark script using it sets, before calling these functions:
#   runtimes  array: the runtimes to compare (bench_runtimes_from_env)
#   tmp       its private temporary directory
#   results   its results directory (bench_results_dir)
#   names, commands  arrays: what bench_rounds times
# and gets: bin_of, root_of (per runtime), usable (the runtimes that passed the pre-flight
# check), hugetlb_note, and the common options below.

# Options every benchmark takes, with their defaults (a script may change a default before it
# parses its arguments; bench_options_help prints the current ones).
results=""
runs=50
warmup=5
rounds=5
skip_unavailable=false
hugetlb_mount=true

declare -A bin_of=() root_of=()
usable=()
hugetlb_note="none"
# How the cgroups looked to the runtimes when that was not the host's layout (settings.txt).
cgroups_note=""
# The hyperfine running in the background, if any (see bench_traps).
bench_child=""

bench_options_help() {
	cat <<EOF
  -h, --help          this text
  --results DIR       where to write results (default: bench/results/<UTC time>)
  --runs N            hyperfine runs per command per round (default: ${runs})
  --warmup N          hyperfine warm-up runs per command per round (default: ${warmup})
  --rounds N          hyperfine invocations, command order rotated each time (default: ${rounds})
  --skip-unavailable  leave out a runtime that is missing or fails the pre-flight check (say, a
                      skiff that is not built yet) instead of failing
  --no-hugetlb-mount  neither move the hugetlb controller to cgroup v1 nor hide cgroup2 (crun
                      is then left out on a hybrid host whose cgroup2 holds hugetlb)

environment:
  RUNTIMES  which runtimes to compare, in this order (default: "skiff runc crun")
  SKIFF     the skiff binary (default: target/release/skiff)
EOF
}

# bench_option ARGS...: takes one of the common options off the front of ARGS and sets
# bench_shift to the number of words it used. --help prints the script's `usage` and exits; an
# unknown option is an error.
bench_shift=0
bench_option() {
	bench_shift=2
	case "$1" in
	-h | --help) usage && exit 0 ;;
	--results) results="${2:?--results needs a directory}" ;;
	--runs) runs="${2:?--runs needs a number}" ;;
	--warmup) warmup="${2:?--warmup needs a number}" ;;
	--rounds) rounds="${2:?--rounds needs a number}" ;;
	--skip-unavailable) skip_unavailable=true && bench_shift=1 ;;
	--no-hugetlb-mount) hugetlb_mount=false && bench_shift=1 ;;
	*) usage >&2 && die "unknown argument: $1" ;;
	esac
}

# bench_start WHY NAME ARGS...: after the options are parsed: the runtimes ($RUNTIMES), root
# (WHY: what needs it), the cgroups for crun (ARGS: the script's arguments, for re-executing it),
# packages and cargo, the results directory, and `tmp`, a new /tmp/NAME.XXXXXX (mode 0755).
# Leaves the working directory at the repository root.
bench_start() {
	local why="$1" name="$2"
	shift 2
	bench_runtimes_from_env
	cd "${SKIFF_REPO}" || exit
	require_root "${why}"
	bench_cgroups_for_crun "$@"
	scripts/deps.sh
	find_cargo
	bench_results_dir
	tmp="$(mktemp -d "/tmp/${name}.XXXXXX")"
	chmod 0755 "${tmp}"
}

# The script, for re-executing it (bench_cgroups_for_crun) from any directory.
bench_script="$(realpath "$0")"

# Fills `runtimes` from $RUNTIMES (default: skiff runc crun).
bench_runtimes_from_env() {
	read -r -a runtimes <<<"${RUNTIMES:-skiff runc crun}"
	((${#runtimes[@]} > 0)) || die "RUNTIMES is empty"
}

# Makes `results` absolute (default: bench/results/<UTC time>); call from the repository root.
bench_results_dir() {
	results="$(realpath -m "${results:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}")"
}

# The binary of runtime NAME: $SKIFF or target/release/skiff for skiff, else NAME on PATH (a
# path that does not exist when it is not installed, so the pre-flight check says so).
bench_runtime_bin() {
	if [[ "$1" == skiff ]]; then
		echo "${SKIFF:-${SKIFF_REPO}/target/release/skiff}"
	else
		command -v "$1" || echo "/nonexistent/$1"
	fi
}

# bench_traps CLEANUP: runs the function CLEANUP at exit; on SIGINT/SIGTERM, stops the hyperfine
# of bench_rounds first and gives the command it had started time to end, so that CLEANUP sees
# (and removes) whatever that command created.
bench_traps() {
	# shellcheck disable=SC2064 # expand the function name now
	trap "$1" EXIT
	trap 'bench_on_signal 130' INT
	trap 'bench_on_signal 143' TERM
}
bench_on_signal() {
	if [[ -n "${bench_child}" ]]; then
		kill -TERM "${bench_child}" 2>/dev/null || true
		wait "${bench_child}" 2>/dev/null || true
		sleep 1
	fi
	exit "$1"
}

# Builds a binary of the tests crate (tests/src/bin/NAME.rs) into target/release/.
bench_build_tests_bin() {
	say "building $1 (tests/)"
	cargo build --release --quiet -p skiff-tests --bin "$1" ||
		die "could not build $1 from tests/ (cargo build --release -p skiff-tests --bin $1)"
}

# bench_mkbundle DIR SPEC_FROM ARGS...: a busybox bundle at DIR made by the tests' mkbundle
# (bench_build_tests_bin mkbundle first), its config.json from `SPEC_FROM spec`, process.args
# ARGS, terminal false.
bench_mkbundle() {
	local dir="$1" spec_from="$2" spec_bin
	shift 2
	spec_bin="$(command -v "${spec_from}")" || die "--spec-from ${spec_from}: not on PATH"
	target/release/mkbundle --runtime "${spec_bin}" "${dir}" -- "$@" >/dev/null
	# The program is a busybox applet; add its link if the rootfs holds only /bin/busybox.
	if [[ "$1" == /bin/* && ! -e "${dir}/rootfs$1" && -x "${dir}/rootfs/bin/busybox" ]]; then
		ln -s busybox "${dir}/rootfs$1"
	fi
}

# crun 1.8 refuses a hybrid host whose cgroup2 mount holds a controller ("cgroups in hybrid mode
# not supported, drop all controllers from cgroupv2"); here that is hugetlb. Call this early,
# with the script's arguments, before anything is created. When crun is compared on such a host:
# - if hugetlb is the only such controller and is free to move, move it to a v1 hierarchy, as
#   TESTING.md says (`mount -t cgroup -o hugetlb`). This stays mounted after the benchmark (it
#   is harmless to runc and skiff, and undoing it while other users may rely on it is not ours to
#   do);
# - else (hugetlb is in use on cgroup2 — enabled in a cgroup.subtree_control, as skiff and runc
#   do for hugepage limits on a hybrid host — so the kernel refuses to move it, or cgroup2 holds
#   other controllers), re-execute the script in a private mount namespace in which
#   /sys/fs/cgroup/unified is unmounted: every runtime then sees the same v1-only host, and the
#   host's cgroups are not touched.
# --no-hugetlb-mount does neither (crun is then left out). Only on a hybrid host: on a pure v2
# host /sys/fs/cgroup is cgroup2 and mkdir there would create a cgroup.
bench_cgroups_for_crun() {
	local controllers made_dir=false
	if [[ "${BENCH_CGROUP2_HIDDEN:-}" == "$$" ]]; then
		umount -l /sys/fs/cgroup/unified || die "could not unmount /sys/fs/cgroup/unified in the private mount namespace"
		hugetlb_note="no (it is in use on cgroup2)"
		cgroups_note="cgroup v1, hybrid, run in a private mount namespace without the cgroup2 mount (/sys/fs/cgroup/unified), so every runtime saw v1 only"
		return 0
	fi
	if mountpoint -q /sys/fs/cgroup/hugetlb; then
		hugetlb_note="already on v1"
	fi
	[[ " ${runtimes[*]} " == *" crun "* && "${hugetlb_mount}" == true ]] || return 0
	[[ "$(stat -f -c %T /sys/fs/cgroup)" == tmpfs ]] || return 0
	controllers="$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null || true)"
	[[ -n "${controllers// /}" ]] || return 0
	if [[ "${controllers}" == hugetlb ]] && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
		say "trying to move hugetlb to cgroup v1 for crun: mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb"
		[[ -d /sys/fs/cgroup/hugetlb ]] || made_dir=true
		mkdir -p /sys/fs/cgroup/hugetlb
		if mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb 2>/dev/null; then
			say "hugetlb is on cgroup v1 now (left mounted)"
			hugetlb_note="mounted by this run"
			return 0
		fi
		[[ "${made_dir}" == false ]] || rmdir /sys/fs/cgroup/hugetlb
		say "the kernel refuses to move hugetlb (it is in use on cgroup2: /sys/fs/cgroup/unified/cgroup.subtree_control holds \"$(cat /sys/fs/cgroup/unified/cgroup.subtree_control)\")"
	fi
	say "re-running in a private mount namespace without /sys/fs/cgroup/unified (holding: ${controllers}), so crun runs and every runtime sees the same v1-only cgroups"
	BENCH_CGROUP2_HIDDEN=$$ exec unshare --mount --propagation private -- "${bench_script}" "$@"
}

# bench_clean_hidden_cgroup2 NAME...: with cgroup2 hidden (bench_cgroups_for_crun), crun 1.8
# still "joins" /sys/fs/cgroup/unified/<its cgroup path>: it creates that directory and a
# cgroup.procs file in the tmpfs under the unmounted cgroup2 (the host's /sys/fs/cgroup, where
# they stay hidden under the cgroup2 mount) and does not remove them on delete. Removes
# /sys/fs/cgroup/unified/NAME for each NAME (a glob; give only names this script's containers
# have), and only while that directory is the tmpfs, never a cgroup2 mount.
bench_clean_hidden_cgroup2() {
	local name
	[[ "${BENCH_CGROUP2_HIDDEN:-}" == "$$" ]] || return 0
	[[ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" == tmpfs ]] || return 0
	for name in "$@"; do
		# shellcheck disable=SC2086 # NAME is a glob
		rm -rf /sys/fs/cgroup/unified/${name}
	done
}

# bench_select_runtimes CHECK: resolves every runtime of `runtimes` (bin_of; root_of is
# ${tmp}/root-NAME) and keeps in `usable` those for which `CHECK NAME BIN ROOT` succeeds (CHECK
# prints why it failed, runs in a subshell, and must prove the runtime really works, so that a
# stub or half-built binary cannot "win"). crun failing is only left out (see
# bench_cgroups_for_crun); another runtime failing is fatal unless --skip-unavailable. Writes ${tmp}/versions.tsv (name, binary, version) and appends the left-out
# ones, with the reason, to ${tmp}/left-out.tsv.
bench_select_runtimes() {
	local check="$1" name bin why version
	touch "${tmp}/left-out.tsv"
	: >"${tmp}/versions.tsv"
	for name in "${runtimes[@]}"; do
		bin="$(bench_runtime_bin "${name}")"
		bin_of[${name}]="${bin}"
		root_of[${name}]="${tmp}/root-${name}"
		if ! why="$("${check}" "${name}" "${bin}" "${root_of[${name}]}")"; then
			if [[ "${name}" == crun || "${skip_unavailable}" == true ]]; then
				say "leaving out ${name} (${bin}): ${why}"
				printf '%s\t%s\n' "${name}" "${why//$'\n'/ }" >>"${tmp}/left-out.tsv"
				continue
			fi
			die "${name} (${bin}) is not usable: ${why}
(pass --skip-unavailable, or set RUNTIMES, to benchmark the others)"
		fi
		usable+=("${name}")
		# --root first: a bare `crun --version` creates /run/crun.
		version="$("${bin}" --root "${root_of[${name}]}" --version 2>/dev/null ||
			"${bin}" --version 2>/dev/null || true)"
		bench_version "${name}" "${bin}" "${version%%$'\n'*}"
	done
	((${#usable[@]} > 0)) || die "no runtime left to benchmark"
}

# bench_version NAME BINARY VERSION: one row of versions.tsv.
bench_version() {
	printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"${tmp}/versions.tsv"
}

# Creates the results directory and moves versions.tsv and left-out.tsv into it.
bench_open_results() {
	mkdir -p "${results}"
	bench_version hyperfine "$(command -v hyperfine)" "$(hyperfine --version)"
	mv "${tmp}/versions.tsv" "${tmp}/left-out.tsv" "${results}/"
}

# Times names[i] / commands[i] with hyperfine -N (no shell between hyperfine and the command):
# one hyperfine invocation per round with every command, so all of them share the machine's
# state of the moment, the order rotated between rounds. Writes commands.tsv and, per round,
# round-N.json, round-N.md and round-N.txt.
bench_rounds() {
	local count=${#names[@]} round k i
	local -a hyperfine_args
	{
		echo "# commands timed by $(basename "$0") (hyperfine -N)"
		for i in "${!names[@]}"; do
			printf '%s\t%s\n' "${names[i]}" "${commands[i]}"
		done
	} >"${results}/commands.tsv"
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
		bench_child=$!
		wait "${bench_child}"
		bench_child=""
	done
}

# bench_settings KEY=VALUE...: settings.txt, the common settings followed by the given ones.
bench_settings() {
	{
		printf '%s\n' "script=$(basename "$0" .sh)" "runs=${runs}" "warmup=${warmup}" \
			"rounds=${rounds}" "hugetlb=${hugetlb_note}" "date=$(date -u +%Y-%m-%d)"
		[[ -z "${cgroups_note}" ]] || echo "cgroups=${cgroups_note}"
		printf '%s\n' "$@"
	} >"${results}/settings.txt"
}

# Prints `printf %q` of its argument: a word safe in a hyperfine -N command line.
q() {
	printf '%q' "$1"
}

# ---------------------------------------------------------------------------------------------
# A private containerd 1.6 for the benchmarks that go through it (ctr.sh; shim.sh can use the
# same). Globals: sock (${tmp}/c.sock), ns (the containerd namespace skiff-bench-<pid>, also the
# parent of every container's cgroup, /<namespace>/<id>), image (the busybox image's name),
# ctr_args (--address, --namespace), containerd_pid.
sock=""
ns=""
image="docker.io/library/busybox:latest"
ctr_args=()
containerd_pid=""

# bench_containerd_start [PATH]: containerd with everything under ${tmp} (--root, --state,
# --address; the ttrpc socket is the address + ".ttrpc"; ${tmp}/fifo for ctr's fifos), PATH
# (default: ours) on its PATH, e.g. to find another shim. The config only disables CRI, which
# would otherwise start and serve on the same socket, and moves the opt plugin's directory off the
# host's /opt (the tests' fixture, tests/src/engines/containerd.rs, disables more, for quieter
# logs). containerd runs in a private mount namespace with empty tmpfs over /run and /var/lib,
# because the runc shim puts its socket in /run/containerd/s/ whatever the flags say; the mounts
# vanish with the namespace. Then imports the tests' busybox image (tests/src/image.rs, written
# as a docker-archive by the tests' mkimage) as ${image}.
bench_containerd_start() {
	local path="${1:-${PATH}}" deadline
	sock="${tmp}/c.sock"
	ns="skiff-bench-$$"
	ctr_args=(--address "${sock}" --namespace "${ns}")
	mkdir -p "${tmp}"/{root,state,opt,fifo}
	cat >"${tmp}/config.toml" <<TOML
version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[plugins."io.containerd.internal.v1.opt"]
  path = "${tmp}/opt"
TOML
	say "starting containerd in ${tmp}"
	# unshare and sh exec, so the pid is containerd's.
	PATH="${path}" unshare --mount --propagation private -- /bin/sh -c \
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
	ctr "${ctr_args[@]}" images ls -q | grep -qx "${image}" || die "ctr images import did not create ${image}"
}

# The versions.tsv rows of containerd, ctr and the runc shim.
bench_containerd_versions() {
	bench_version containerd "$(command -v containerd)" "$(containerd --version)"
	bench_version ctr "$(command -v ctr)" "$(ctr --version)"
	bench_version containerd-shim-runc-v2 "$(command -v containerd-shim-runc-v2)" \
		"$(containerd-shim-runc-v2 -v 2>/dev/null | sed -n 's/^ *Version: *//p' | head -n 1)"
}

# The pids of the processes besides containerd whose command line names our socket: the shims.
bench_containerd_processes() {
	local proc
	for proc in /proc/[0-9]*; do
		[[ "${proc#/proc/}" != "$$" && "${proc#/proc/}" != "${containerd_pid}" ]] || continue
		if [[ "$(tr '\0' ' ' 2>/dev/null <"${proc}/cmdline")" == *"${sock}"* ]]; then
			echo "${proc#/proc/}"
		fi
	done
}

# bench_ctr_check ID CTR_RUN_FLAGS...: through containerd, `ctr run --rm` with these flags must
# run the image with output (`echo`) and pass a non-zero exit status through (a stub that exits 0
# would otherwise "win"), and `--rm` must leave no container behind, so that one fixed id serves
# every timed run. Prints why and returns 1 when not.
bench_ctr_check() {
	local id="$1" err="${tmp}/check-$1.err" out status
	shift
	forget() {
		timeout 30 ctr "${ctr_args[@]}" task delete --force "${id}" >/dev/null 2>&1 || true
		timeout 30 ctr "${ctr_args[@]}" container delete "${id}" >/dev/null 2>&1 || true
	}
	out="$(timeout --kill-after=5 60 ctr "${ctr_args[@]}" run --rm "$@" \
		"${image}" "${id}" echo skiff-bench-ok </dev/null 2>"${err}")" || {
		status=$?
		echo "\`ctr run --rm ${image} echo\` failed (exit status ${status}): $(tail -n 3 "${err}" | tr '\n' ' ')"
		forget
		return 1
	}
	if [[ "${out}" != skiff-bench-ok ]]; then
		echo "\`ctr run --rm ${image} echo skiff-bench-ok\` printed \"${out:0:200}\""
		forget
		return 1
	fi
	timeout --kill-after=5 60 ctr "${ctr_args[@]}" run --rm "$@" \
		"${image}" "${id}" sh -c 'exit 3' </dev/null >/dev/null 2>"${err}" && status=0 || status=$?
	if ((status != 3)); then
		echo "\`ctr run --rm ${image} sh -c 'exit 3'\` exited ${status}, not 3: $(tail -n 3 "${err}" | tr '\n' ' ')"
		forget
		return 1
	fi
	if ctr "${ctr_args[@]}" container ls -q | grep -qx "${id}"; then
		echo "\`ctr run --rm\` left the container behind"
		forget
		return 1
	fi
}

# Removes exactly what bench_containerd_start and the containers made, found by pid, by the
# namespace or by the temp dir: the namespace's tasks and containers (through containerd), then
# containerd itself by pid (SIGTERM, SIGKILL after 15 s), the shims naming its socket, processes
# left in its cgroups, its cgroups (/<namespace> in each hierarchy), mounts under ${tmp}, and
# ${tmp} itself (kept, with a message, if a mount under it cannot be removed).
bench_containerd_cleanup() {
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
	if [[ -n "${sock}" ]]; then
		for pid in $(bench_containerd_processes); do
			say "killing leftover ${pid}: $(tr '\0' ' ' 2>/dev/null <"/proc/${pid}/cmdline")"
			kill -KILL "${pid}" 2>/dev/null || true
		done
	fi
	if [[ -n "${ns}" ]]; then
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
	fi
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
