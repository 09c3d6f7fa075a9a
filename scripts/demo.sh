#!/usr/bin/env bash
# The demo of README.md. Run as root on Debian.
#
# scripts/demo.sh: skiffd + the docker CLI. Builds skiffd, skiff, the shim and the init
# (release), starts skiffd on a socket under a temp dir, loads the tests' busybox image, runs
# `docker run --rm busybox …` and `docker run --rm --init busybox ps`, then stops skiffd (by pid)
# and removes everything.
#
# scripts/demo.sh --runtime-only: the runtime alone. Builds skiff, makes a busybox bundle, runs
# one container with `skiff run` and shows what it sees next to what the host sees: its own
# hostname (UTS namespace), pid 1 (PID namespace) and its own mount table (mount namespace +
# pivot_root).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${SKIFF_REPO}"

mode=docker
case "${1:-}" in
"") ;;
--runtime-only) mode=runtime ;;
-h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
*) die "unknown argument: $1 (try --help)" ;;
esac

require_root "containers need namespaces, mounts and cgroups"
scripts/deps.sh
find_cargo

# Globals, not locals: the EXIT trap runs after demo_docker has returned.
docker=""
tmp=""
skiffd_pid=""

demo_docker() {
	docker="$(command -v docker)" || die "the docker CLI is missing (scripts/deps.sh installs it)"
	say "building skiffd, skiff, containerd-shim-skiff-v2 and skiff-init (release)"
	cargo build --release --quiet -p skiffd -p skiff-runtime -p containerd-shim-skiff \
		-p skiff-init -p skiff-tests --bin skiffd --bin skiff --bin containerd-shim-skiff-v2 \
		--bin skiff-init --bin mkimage
	# --init needs a static init (containers may have no dynamic loader).
	scripts/build-static.sh >/dev/null
	# skiffd finds the shim and skiff next to itself: target/release/.
	tmp="$(mktemp -d /tmp/skiffd-demo.XXXXXX)"
	stop_skiffd() {
		[[ -n "${skiffd_pid}" ]] || return 0
		"${docker}" -H "unix://${tmp}/docker.sock" rm -f demo >/dev/null 2>&1 || true
		kill -TERM "${skiffd_pid}" 2>/dev/null || true
		for _ in $(seq 150); do
			kill -0 "${skiffd_pid}" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "${skiffd_pid}" 2>/dev/null || true
		wait "${skiffd_pid}" 2>/dev/null || true
		skiffd_pid=""
	}
	cleanup() {
		stop_skiffd
		# Mounts a killed skiffd may have left (container rootfs overlays) go before the files.
		awk -v dir="${tmp}/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
			while read -r m; do umount -l "${m}" || true; done
		rm -rf "${tmp}"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	say "starting skiffd on unix://${tmp}/docker.sock (data root ${tmp}/data)"
	target/release/skiffd --data-root "${tmp}/data" --exec-root "${tmp}/run" \
		--init-path target/static/skiff-init \
		-H "unix://${tmp}/docker.sock" --log-level warn 2>"${tmp}/skiffd.log" &
	skiffd_pid=$!
	export DOCKER_HOST="unix://${tmp}/docker.sock" DOCKER_CONFIG="${tmp}/docker-config"
	for _ in $(seq 300); do
		"${docker}" version >/dev/null 2>&1 && break
		kill -0 "${skiffd_pid}" 2>/dev/null || die "skiffd exited: $(tail -n 5 "${tmp}/skiffd.log")"
		sleep 0.1
	done
	"${docker}" version --format 'docker {{.Client.Version}} → {{.Server.Os}} server {{.Server.Version}} (API {{.Server.APIVersion}})'

	say "loading the busybox test image"
	target/release/mkimage --docker-archive "${tmp}/busybox.tar" >/dev/null
	"${docker}" load -i "${tmp}/busybox.tar"

	# shellcheck disable=SC2016 # expanded by the container's shell
	local script='echo "hello from $(hostname), pid $$ in its own pid namespace"; echo "processes: $(ls -d /proc/[0-9]* | wc -l)"; echo "root: $(df -h / | awk '"'"'NR == 2 { print $1 }'"'"')"; exit 3'
	echo
	echo "\$ docker run --rm busybox sh -c '…; exit 3'"
	local status=0
	"${docker}" run --rm busybox sh -c "${script}" || status=$?
	echo "(exit status ${status}: the container's)"
	echo
	echo "\$ docker run --rm --init busybox ps -o pid,ppid,comm"
	"${docker}" run --rm --init busybox ps -o pid,ppid,comm
	echo
	echo "\$ docker run -d --name demo busybox sh -c 'while :; do date; sleep 1; done'; docker logs demo"
	"${docker}" run -d --name demo busybox sh -c 'while :; do date; sleep 1; done' >/dev/null
	sleep 2.5
	"${docker}" ps --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}'
	"${docker}" logs demo
	"${docker}" rm -f demo >/dev/null
	echo
	stop_skiffd
	say "skiffd stopped; removing ${tmp}"
}

demo_runtime() {

say "building skiff and the bundle tool (cargo build --release)"
cargo build --release --quiet -p skiff-runtime -p skiff-tests
skiff="${SKIFF_REPO}/target/release/skiff"
mkbundle="${SKIFF_REPO}/target/release/mkbundle"

tmp="$(mktemp -d /tmp/skiff-demo.XXXXXX)"
id="demo-$$"
cleanup() {
	# Only matters if the run was interrupted: `run` deletes the container when it exits.
	"${skiff}" --root "${tmp}/state" delete --force "${id}" >/dev/null 2>&1 || true
	rm -rf "${tmp}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What the container runs: busybox sh is the container's pid 1. Key-value lines first, then the
# mount table. `echo pids [0-9]*` globs in the shell itself, so no helper process shows up.
# shellcheck disable=SC2016 # expanded by the container's shell, not this one
container_script='
echo "hostname $(hostname)"
echo "pid $$"
echo "mounts $(wc -l </proc/self/mountinfo)"
cd /proc && echo pids [0-9]*
echo "--- /proc/self/mountinfo"
cat /proc/self/mountinfo
'
bundle="${tmp}/bundle"
"${mkbundle}" --runtime "${skiff}" "${bundle}" -- /bin/busybox sh -c "${container_script}" >/dev/null

# Give the container a hostname of its own, so the UTS namespace is visible in the output.
python3 - "${bundle}/config.json" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    config = json.load(f)
config["hostname"] = "skiff-demo"
with open(path, "w") as f:
    json.dump(config, f, indent=2)
PY

say "running: skiff --root ${tmp}/state run --bundle ${bundle} ${id}"
out="${tmp}/container.out"
status=0
# A bounded wait: the container's shell exits at once, so a minute means skiff is stuck.
timeout --kill-after=5 60 "${skiff}" --root "${tmp}/state" run --bundle "${bundle}" "${id}" \
	</dev/null >"${out}" || status=$?
if ((status != 0)); then
	cat "${out}"
	((status == 124 || status == 137)) && die "skiff run did not finish within 60 s"
	die "skiff run exited with status ${status}"
fi

field() {
	sed -n "s/^$1 //p" "${out}"
}
# The mount whose mount point is "/": which directory of which device is the root.
describe_root() {
	awk '$5 == "/" { i = 7; while ($i != "-") i++; r = $4 " of " $(i + 2) } END { print r }'
}
host_pids=(/proc/[0-9]*)
container_pids="$(field pids)"
printf '\n%-22s %-24s %s\n' "" "host" "container (skiff run)"
printf '%-22s %-24s %s\n' "hostname" "$(uname -n)" "$(field hostname)"
printf '%-22s %-24s %s\n' "pid of the shell" "$$" "$(field pid)"
printf '%-22s %-24s %s\n' "root filesystem" "$(describe_root </proc/self/mountinfo)" \
	"$(sed -n '/^--- /,$p' "${out}" | describe_root)"
printf '%-22s %-24s %s\n' "mounts (mountinfo)" "$(wc -l </proc/self/mountinfo)" "$(field mounts)"
printf '%-22s %-24s %s\n' "processes in /proc" "${#host_pids[@]}" "$(wc -w <<<"${container_pids}") (pids: ${container_pids})"
printf '\nthe container'"'"'s mount table:\n'
sed -n '/^--- /,$p' "${out}" | tail -n +2
}

if [[ "${mode}" == docker ]]; then
	demo_docker
else
	demo_runtime
fi
