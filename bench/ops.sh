#!/usr/bin/env bash
# Latency of operations on a running container: `exec <id> /bin/true` (foreground: create the
# process and wait for it), `state <id>`, `ps --format json <id>` and a `pause`+`resume` pair,
# for skiff next to runc and crun, each runtime with its own running busybox container
# (`sleep 1000000`), plus the floor of `exec` (`nsenter` into the same namespaces).
# Method and figures: docs/benchmarks.md. Run as root; `bench/ops.sh --help` for options.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
argv=("$@")

all_ops="exec state ps pause+resume"
usage() {
	cat <<EOF
usage: bench/ops.sh [options]

  --ops "LIST"        which operations to time (default: "${all_ops}");
                      one that a runtime does not support (fails its pre-flight check) is left
                      out for that runtime only, and listed in summary.md with the error
  --spec-from NAME    runtime whose \`spec\` seeds the bundles' config.json (default: runc, so
                      every runtime runs the same config)
EOF
	bench_options_help
}

spec_from="runc"
ops="${all_ops}"
while (($# > 0)); do
	case "$1" in
	--ops) ops="${2:?--ops needs a list}" && shift 2 && continue ;;
	--spec-from) spec_from="${2:?--spec-from needs a runtime}" && shift 2 && continue ;;
	esac
	bench_option "$@"
	shift "${bench_shift}"
done
read -r -a ops <<<"${ops}"
for op in "${ops[@]}"; do
	[[ " ${all_ops} " == *" ${op} "* ]] || die "--ops: unknown operation ${op} (known: ${all_ops})"
done
bench_start "containers need namespaces, mounts and cgroups" skiff-bench-ops "${argv[@]}"

# One container per runtime, id bench-<pid>-<runtime>: the pid keeps concurrent runs (or tests)
# apart, the runtime name keeps the three containers' default cgroups (/<id>) apart. Cleanup
# deletes exactly these, then kills an init that is somehow still alive (its pid was recorded by
# the pre-flight check, and it is only killed if it is still our `sleep 1000000`).
id_prefix="bench-$$"
cleanup() {
	local name pid
	for name in "${!bin_of[@]}"; do
		timeout --kill-after=5 30 "${bin_of[${name}]}" --root "${root_of[${name}]}" \
			delete --force "${id_prefix}-${name}" >/dev/null 2>&1 || true
		pid="$(cat "${tmp}/pid-${name}" 2>/dev/null || true)"
		if [[ -n "${pid}" && "$(tr '\0' ' ' 2>/dev/null <"/proc/${pid}/cmdline")" == "sleep 1000000 " ]]; then
			say "${name} left its container's init (pid ${pid}) running after delete --force; killing it"
			kill -KILL "${pid}" 2>/dev/null || true
		fi
	done
	bench_clean_hidden_cgroup2 "${id_prefix}-*"
	rm -rf "${tmp}"
}
# On a signal, hyperfine stops first, and the operation it had started gets time to end.
bench_traps cleanup

# ---------------------------------------------------------------------------------------------
# The bundles: one per runtime (the same busybox rootfs and config.json from `<spec_from> spec`),
# process `sleep 1000000`, made by the same tool the integration tests use.
bench_build_tests_bin mkbundle
for name in "${runtimes[@]}"; do
	bench_mkbundle "${tmp}/bundle-${name}" "${spec_from}" sleep 1000000
	[[ -e "${tmp}/bundle-${name}/rootfs/bin/true" ]] || die "the bundle has no rootfs/bin/true"
done

# ---------------------------------------------------------------------------------------------
# Pre-flight, and the container the timings use: each runtime must create and start its
# container, and `state` must report it running with its init's pid. Then each operation must
# really work (a stub that exits 0 would otherwise "win"): `exec` runs in the container's pid
# namespace (pid 1 there is our sleep) and passes the exit status through; `ps --format json`
# lists the init's pid; `pause` makes `state` report "paused" and `resume` "running" again.
# An operation that fails is left out for this runtime (left-out.tsv says why); the operations
# that passed are listed in ${tmp}/ops-<runtime>.
check_ops() {
	local name="$1" bin="$2" root="$3" id="${id_prefix}-$1" err="${tmp}/check-$1.err" out
	local pid status op
	[[ -x "${bin}" ]] || {
		echo "no executable at ${bin}"
		return 1
	}
	rm -f "${tmp}/why-${name}-"*
	# Bounded: a runtime under development may hang, which is a failed check, not a stuck bench.
	rt() {
		timeout --kill-after=5 30 "${bin}" --root "${root}" "$@" </dev/null 2>"${err}"
	}
	# Prints WHAT, the exit status of the command that just failed and its last error lines.
	why() {
		local status=$?
		echo "$1 (exit status ${status}): $(tail -n 3 "${err}" | tr '\n' ' ')"
	}
	# The container cannot serve the timings: remove it.
	give_up() {
		rt delete --force "${id}" >/dev/null || true
		rm -f "${tmp}/pid-${name}"
		return 1
	}
	state_of() {
		rt state "${id}" | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["status"], s.get("pid", 0))'
	}
	# stdio to /dev/null: the init inherits it and would hold a pipe open.
	rt create --bundle "${tmp}/bundle-${name}" "${id}" >/dev/null || {
		why "\`create\` failed"
		give_up || return 1
	}
	rt start "${id}" >/dev/null || {
		why "\`start\` failed"
		give_up || return 1
	}
	read -r status pid < <(state_of || true) || true
	if [[ "${status:-}" != running || "${pid:-0}" -le 0 ]]; then
		echo "\`state\` after \`start\` did not report \"status\": \"running\" with a pid (got: ${status:-nothing} ${pid:-})"
		give_up || return 1
	fi
	echo "${pid}" >"${tmp}/pid-${name}"
	: >"${tmp}/ops-${name}"
	for op in "${ops[@]}"; do
		out="${tmp}/why-${name}-${op}"
		case "${op}" in
		state) true ;; # checked above
		exec) check_exec >"${out}" || continue ;;
		ps) check_ps >"${out}" || continue ;;
		pause+resume) check_pause >"${out}" || continue ;;
		esac
		rm -f "${out}"
		echo "${op}" >>"${tmp}/ops-${name}"
	done
	# Every operation must leave the container running, as the timings need it.
	read -r status _ < <(state_of || true) || true
	if [[ "${status:-}" != running ]]; then
		echo "after the operations' checks, \`state\` reports \"${status:-nothing}\", not \"running\""
		give_up || return 1
	fi
}
# The checks of check_ops: each prints why and returns 1 on failure.
check_exec() {
	local out status
	out="$(rt exec "${id}" /bin/cat /proc/1/cmdline | tr '\0' ' ')" || {
		why "\`exec ${id} /bin/cat /proc/1/cmdline\` failed"
		return 1
	}
	if [[ "${out}" != "sleep 1000000 " ]]; then
		echo "\`exec\`: pid 1 of the process's pid namespace is \"${out}\", not the container's sleep"
		return 1
	fi
	rt exec "${id}" /bin/sh -c 'exit 7' >/dev/null && status=0 || status=$?
	if ((status != 7)); then
		echo "\`exec ${id} sh -c 'exit 7'\` exited ${status}, not 7: $(tail -n 3 "${err}" | tr '\n' ' ')"
		return 1
	fi
}
check_ps() {
	local out
	out="$(rt ps --format json "${id}")" || {
		why "\`ps --format json ${id}\` failed"
		return 1
	}
	if ! python3 -c 'import json, sys; sys.exit(int(sys.argv[1]) not in json.loads(sys.argv[2]))' \
		"${pid}" "${out}" 2>/dev/null; then
		echo "\`ps --format json\` did not list the init's pid ${pid} (got: ${out:0:200})"
		return 1
	fi
}
check_pause() {
	local status
	rt pause "${id}" >/dev/null || {
		why "\`pause ${id}\` failed"
		return 1
	}
	read -r status _ < <(state_of || true) || true
	rt resume "${id}" >/dev/null || {
		why "\`resume ${id}\` after \`pause\` failed"
		return 1
	}
	if [[ "${status:-}" != paused ]]; then
		echo "\`state\` after \`pause\` reported \"${status:-nothing}\", not \"paused\""
		return 1
	fi
}

bench_select_runtimes check_ops
declare -A ops_of=()
for name in "${usable[@]}"; do
	ops_of[${name}]="$(tr '\n' ' ' <"${tmp}/ops-${name}")"
	for op in "${ops[@]}"; do
		if [[ -f "${tmp}/why-${name}-${op}" ]]; then
			why="$(tr '\n' ' ' <"${tmp}/why-${name}-${op}")"
			say "leaving out ${name} ${op}: ${why}"
			printf '%s\t%s\n' "${name} ${op}" "${why}" >>"${tmp}/left-out.tsv"
		fi
	done
done
bench_version nsenter "$(command -v nsenter)" "$(nsenter --version | head -n 1)"
bench_open_results

# ---------------------------------------------------------------------------------------------
# Timings (bench_rounds: hyperfine -N, every command in each round, the order rotated). The
# pause+resume pair needs `&&`, so it goes through one `sh -c` (dash); `sh -c true` is measured
# too, to show what that adds. The floor of `exec`: util-linux `nsenter -a` into all the first
# container's namespaces running /bin/true (setns, fork for the pid namespace, exec, wait — no
# cgroup, no capabilities or seccomp, no state file).
names=()
commands=()
shell=false
for op in "${ops[@]}"; do
	for name in "${usable[@]}"; do
		[[ " ${ops_of[${name}]} " == *" ${op} "* ]] || continue
		rt="$(q "${bin_of[${name}]}") --root $(q "${root_of[${name}]}")"
		id="${id_prefix}-${name}"
		names+=("${name} ${op}")
		case "${op}" in
		exec) commands+=("${rt} exec ${id} /bin/true") ;;
		state) commands+=("${rt} state ${id}") ;;
		ps) commands+=("${rt} ps --format json ${id}") ;;
		pause+resume)
			commands+=("sh -c $(q "${rt} pause ${id} && ${rt} resume ${id}")")
			shell=true
			;;
		esac
	done
	if [[ "${op}" == exec ]]; then
		names+=("floor: nsenter")
		commands+=("nsenter -t $(cat "${tmp}/pid-${usable[0]}") -a /bin/true")
	fi
done
if [[ "${shell}" == true ]]; then
	names+=("sh -c true")
	commands+=("sh -c true")
fi
((${#names[@]} > 0)) || die "nothing to time"
bench_rounds

# ---------------------------------------------------------------------------------------------
# After the timings: every container must still be running, and a runtime whose exec'd
# processes are left for the container's init to reap (our sleep reaps nothing) would show as
# zombies in its pid namespace. leftovers.tsv: runtime, state, processes in the container's pid
# namespace besides the init, zombies among them.
: >"${results}/leftovers.tsv"
for name in "${usable[@]}"; do
	pid="$(cat "${tmp}/pid-${name}")"
	pidns="$(readlink "/proc/${pid}/ns/pid" 2>/dev/null || echo gone)"
	others=0
	zombies=0
	for proc in /proc/[0-9]*; do
		if [[ "${proc#/proc/}" == "${pid}" || "$(readlink "${proc}/ns/pid" 2>/dev/null)" != "${pidns}" ]]; then
			continue
		fi
		others=$((others + 1))
		stat="$(cat "${proc}/stat" 2>/dev/null || true)"
		stat="${stat##*) }"
		if [[ "${stat:0:1}" == Z ]]; then
			zombies=$((zombies + 1))
		fi
	done
	status="$("${bin_of[${name}]}" --root "${root_of[${name}]}" state "${id_prefix}-${name}" 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])' 2>/dev/null || echo "no state")"
	printf '%s\t%s\t%s\t%s\n' "${name}" "${status}" "${others}" "${zombies}" >>"${results}/leftovers.tsv"
	if [[ "${status}" != running || "${others}" -gt 0 ]]; then
		say "after the timings, ${name}'s container: ${status}, ${others} other processes (${zombies} zombies)"
	fi
done

bench_settings "bundle_spec_from=${spec_from}" "ops=${ops[*]}"
python3 bench/summarize.py "${results}"
say "results in ${results} (summary.md is the fragment for docs/benchmarks.md)"
