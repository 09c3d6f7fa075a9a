#!/usr/bin/env bash
# `docker run --rm --network none busybox true` through skiffd (release build; our shim, skiff
# and skiff-init, static, next to it) vs dockerd 20.10 (with its containerd, the Go shim and
# runc) vs podman 4.3 (its default runtime, conmon), timed in the same hyperfine rounds; then 50
# containers started concurrently (wall time, per engine), and the total RSS of each engine with
# those 50 containers running: skiffd + its shims vs dockerd + containerd + shims vs the conmons
# (podman has no daemon). Every engine runs on its own data root under a temp dir (dockerd and
# podman in private mount namespaces with tmpfs over /run and /var/lib) and is stopped, by pid,
# at exit. Method and figures: docs/benchmarks.md ("docker run through skiffd"). Run as root.
#
# usage: bench/docker-run.sh [--runs N] [--warmup N] [--rounds N] [--concurrent N] [--results DIR]
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# 4 rounds of 5 runs: 20 runs per engine, the order rotated between rounds (bench/lib.sh reads
# these).
# shellcheck disable=SC2034
runs=5
warmup=2
rounds=4
concurrent=50
usage() {
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	echo
	echo "options:"
	bench_options_help | sed -n '/--results/,/--rounds/p'
	echo "  --concurrent N      containers started at once (default: ${concurrent})"
}
while (($# > 0)); do
	case "$1" in
	--concurrent) concurrent="${2:?--concurrent needs a number}" && shift 2 ;;
	*) bench_option "$@" && shift "${bench_shift}" ;;
	esac
done

cd "${SKIFF_REPO}"
require_root "the engines create namespaces, mounts and cgroups"
find_cargo
for tool in hyperfine dockerd containerd podman conmon unshare nsenter; do
	command -v "${tool}" >/dev/null || die "${tool} not found (scripts/deps.sh installs it)"
done
docker20=/usr/bin/docker
[[ -x ${docker20} ]] || die "${docker20} missing (Debian package docker.io)"
bench_results_dir
tmp="$(mktemp -d /tmp/docker-run-bench.XXXXXX)"
chmod 0755 "${tmp}"

# Processes this script started, stopped at exit by pid (SIGTERM, SIGKILL after 15 s).
pids=()
skiffd_pid="" dockerd_pid="" holder_pid=""
cleanup() {
	set +e
	# Containers first, through their engines, so their tasks, mounts and cgroups go properly.
	# shellcheck disable=SC2046 # one id per word
	[[ -z "${skiffd_pid}" ]] || sk rm -f $(sk ps -aq) >/dev/null 2>&1
	# shellcheck disable=SC2046
	[[ -z "${dockerd_pid}" ]] || dk rm -f $(dk ps -aq) >/dev/null 2>&1
	[[ -z "${holder_pid}" ]] || pm rm -f -a >/dev/null 2>&1
	local pid deadline
	for pid in "${pids[@]}"; do
		kill -TERM "${pid}" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		deadline=$((SECONDS + 15))
		while kill -0 "${pid}" 2>/dev/null && ((SECONDS < deadline)); do
			sleep 0.1
		done
		kill -KILL "${pid}" 2>/dev/null
		wait "${pid}" 2>/dev/null
	done
	# Shims and conmons whose working directory or command line is under ${tmp}.
	for proc in /proc/[0-9]*; do
		pid="${proc#/proc/}"
		[[ "${pid}" != "$$" ]] || continue
		if [[ "$(readlink "${proc}/cwd" 2>/dev/null)" == "${tmp}"/* ]] ||
			[[ "$(tr '\0' ' ' 2>/dev/null <"${proc}/cmdline")" == *"${tmp}/"* ]]; then
			kill -KILL "${pid}" 2>/dev/null
		fi
	done
	local mounts dir
	mounts="$(awk -v dir="${tmp}/" 'index($5, dir) == 1 { print $5 }' /proc/self/mountinfo | sort -r)"
	for dir in ${mounts}; do
		umount -l "${dir}"
	done
	rm -rf "${tmp}"
}
bench_traps cleanup

say "building skiffd (release), the static skiff, shim and init, and mkimage"
cargo build --release --quiet -p skiffd
scripts/build-static.sh
bench_build_tests_bin mkimage
# skiffd finds skiff, containerd-shim-skiff-v2 and skiff-init next to itself.
mkdir -p "${tmp}/bin"
install -m 0755 target/release/skiffd target/static/skiff target/static/containerd-shim-skiff-v2 \
	target/static/skiff-init "${tmp}/bin/"
target/release/mkimage --docker-archive "${tmp}/busybox.tar" >/dev/null

wait_for() { # wait_for WHAT CMD...: until CMD succeeds (60 s)
	local what="$1" deadline=$((SECONDS + 60))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "${what} did not come up"
		sleep 0.1
	done
}
# The sandbox script of tests/src/engines: private /run and /var/lib, then exec.
ns_script='mount -t tmpfs -o mode=0755 bench-run /run && mount -t tmpfs -o mode=0755 bench-varlib /var/lib && exec "$@"'

# skiffd
mkdir -p "${tmp}/skiffd"
"${tmp}/bin/skiffd" --data-root "${tmp}/skiffd/data" --exec-root "${tmp}/skiffd/run" \
	-H "unix://${tmp}/skiffd/docker.sock" --log-level warn 2>"${tmp}/skiffd/log" &
skiffd_pid=$!
pids+=("${skiffd_pid}")
sk_cmd=("${docker20}" --config "${tmp}/cli" -H "unix://${tmp}/skiffd/docker.sock")
sk() { "${sk_cmd[@]}" "$@"; }
wait_for skiffd sk version
sk load -q -i "${tmp}/busybox.tar" >/dev/null

# dockerd 20.10 (starts its own containerd), flags of tests/src/engines/dockerd.rs.
mkdir -p "${tmp}/dockerd"
echo "{\"deprecated-key-path\": \"${tmp}/dockerd/key.json\"}" >"${tmp}/dockerd/daemon.json"
unshare --mount --propagation private -- /bin/sh -c "${ns_script}" sh dockerd \
	--host="unix://${tmp}/dockerd/docker.sock" --config-file="${tmp}/dockerd/daemon.json" \
	--data-root="${tmp}/dockerd/data" --exec-root="${tmp}/dockerd/exec" \
	--pidfile="${tmp}/dockerd/docker.pid" --bridge=none --iptables=false --ip6tables=false \
	--ip-masq=false --userland-proxy=false --exec-opt=native.cgroupdriver=cgroupfs \
	</dev/null >"${tmp}/dockerd/log" 2>&1 &
dockerd_pid=$!
pids+=("${dockerd_pid}")
dk_cmd=("${docker20}" --config "${tmp}/cli" -H "unix://${tmp}/dockerd/docker.sock")
dk() { "${dk_cmd[@]}" "$@"; }
wait_for dockerd dk version
dk load -q -i "${tmp}/busybox.tar" >/dev/null

# podman 4.3: no daemon; a holder process keeps a private mount namespace, every podman command
# enters it (tests/src/engines/podman.rs).
mkdir -p "${tmp}/podman"/{storage,run,tmp,net}
cat >"${tmp}/podman/containers.conf" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${tmp}/podman/tmp/events.log"
lock_type = "file"
tmp_dir = "${tmp}/podman/tmp"
static_dir = "${tmp}/podman/storage/libpod"
volume_path = "${tmp}/podman/storage/volumes"
network_config_dir = "${tmp}/podman/net"

[network]
network_config_dir = "${tmp}/podman/net"
EOF
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
	"${tmp}/podman/storage" "${tmp}/podman/run" >"${tmp}/podman/storage.conf"
: >"${tmp}/podman/registries.conf"
# podman's default runtime is crun, which refuses this hybrid host while its cgroup2 mount holds
# a controller in use (TESTING.md): podman's namespace hides /sys/fs/cgroup/unified, so crun
# sees plain cgroup v1 (as bench/runtime.sh does for crun).
pm_ns_script="umount /sys/fs/cgroup/unified 2>/dev/null; ${ns_script}"
unshare --mount --propagation private -- /bin/sh -c "${pm_ns_script}" sh sleep infinity \
	</dev/null >/dev/null 2>&1 &
holder_pid=$!
pids+=("${holder_pid}")
wait_for "podman's namespace" grep -qx sleep "/proc/${holder_pid}/comm"
pm_cmd=(nsenter "--mount=/proc/${holder_pid}/ns/mnt" -- env
	"CONTAINERS_CONF=${tmp}/podman/containers.conf"
	"CONTAINERS_STORAGE_CONF=${tmp}/podman/storage.conf"
	"CONTAINERS_REGISTRIES_CONF=${tmp}/podman/registries.conf"
	podman --root "${tmp}/podman/storage" --runroot "${tmp}/podman/run" --tmpdir "${tmp}/podman/tmp"
	--cgroup-manager cgroupfs --events-backend file --storage-driver overlay)
pm() { "${pm_cmd[@]}" "$@"; }
pm load -q -i "${tmp}/busybox.tar" >/dev/null
pm_image=localhost/busybox:latest

# Pre-flight: each engine runs the image, passes an exit status through and removes with --rm.
check() { # check NAME CLIENT... -- IMAGE
	local name="$1" out status
	shift
	out="$("$@" echo bench-ok 2>&1)" || die "${name}: run failed: ${out}"
	[[ "${out}" == bench-ok ]] || die "${name}: run printed ${out:0:200}"
	"$@" sh -c 'exit 3' >/dev/null 2>&1 && status=0 || status=$?
	((status == 3)) || die "${name}: exit status ${status}, not 3"
}
check skiffd sk run --rm --network none busybox
check dockerd dk run --rm --network none busybox
check podman pm run --rm --network none --pull never "${pm_image}"
[[ -z "$(sk ps -aq)" && -z "$(dk ps -aq)" && -z "$(pm ps -aq)" ]] || die "--rm left containers"

bench_version skiffd "${tmp}/bin/skiffd" "skiffd $(git rev-parse --short HEAD 2>/dev/null || echo '?') (shim containerd-shim-skiff-v2, runtime skiff, static)"
bench_version dockerd "$(command -v dockerd)" "$(dockerd --version)"
bench_version containerd "$(command -v containerd)" "$(containerd --version)"
bench_version runc "$(command -v runc)" "$(runc --version | head -n 1)"
bench_version podman "$(command -v podman)" "$(podman --version)"
bench_version podman-runtime "" "$(pm info --format '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Version}}' 2>/dev/null | head -n 1)"
bench_version docker-cli "${docker20}" "$(${docker20} --version)"
: >"${tmp}/left-out.tsv"
bench_open_results

# 1. docker run --rm, all engines in the same rounds.
names=("skiffd: docker run --rm" "dockerd 20.10: docker run --rm" "podman 4.3: podman run --rm")
commands=(
	"$(printf '%q ' "${sk_cmd[@]}") run --rm --network none busybox true"
	"$(printf '%q ' "${dk_cmd[@]}") run --rm --network none busybox true"
	"$(printf '%q ' "${pm_cmd[@]}") run --rm --network none --pull never ${pm_image} true"
)
bench_rounds

# 2. `concurrent` containers started at once (docker run -d), wall time; then RSS with them
# running; then removed.
rss_kb() { # total VmRSS of the given pids, in kB
	local pid total=0 kb
	for pid in "$@"; do
		kb="$(awk '/^VmRSS/ {print $2}' "/proc/${pid}/status" 2>/dev/null || true)"
		total=$((total + ${kb:-0}))
	done
	echo "${total}"
}
pids_named() { # pids_named REGEX: processes whose comm matches REGEX and that work under ${tmp}
	local proc
	for proc in /proc/[0-9]*; do
		grep -Eqx "$1" "${proc}/comm" 2>/dev/null || continue
		if [[ "$(tr '\0' ' ' 2>/dev/null <"${proc}/cmdline")" == *"${tmp}/"* ]] ||
			[[ "$(readlink "${proc}/cwd" 2>/dev/null)" == "${tmp}"/* ]]; then
			echo "${proc#/proc/}"
		fi
	done
}
start_many() { # start_many CLIENT-FUNCTION IMAGE EXTRA...: wall ms of `concurrent` parallel run -d
	local client="$1" img="$2" t0 t1 i
	shift 2
	t0=$(date +%s%N)
	for ((i = 0; i < concurrent; i++)); do
		"${client}" run -d --network none "$@" "${img}" sleep 600 >/dev/null 2>>"${tmp}/many.err" &
	done
	wait
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
summary="${results}/concurrent.txt"
{
	echo "date: $(date -u +%FT%TZ)"
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024/1024)}' /proc/meminfo) GiB, kernel $(uname -r)"
	echo "containers: ${concurrent} started concurrently (docker/podman run -d --network none ... sleep 600)"
} >"${summary}"
for engine in skiffd dockerd podman; do
	case "${engine}" in
	skiffd) ms=$(start_many sk busybox) && n=$(sk ps -q | wc -l) ;;
	dockerd) ms=$(start_many dk busybox) && n=$(dk ps -q | wc -l) ;;
	podman) ms=$(start_many pm "${pm_image}" --pull never) && n=$(pm ps -q | wc -l) ;;
	esac
	sleep 5
	case "${engine}" in
	skiffd)
		mapfile -t shims < <(pids_named 'containerd-shim')
		daemon_kb=$(rss_kb "${skiffd_pid}")
		what="skiffd + ${#shims[@]} shims"
		;;
	dockerd)
		mapfile -t shims < <(pids_named 'containerd-shim')
		real_dockerd=$(cat "${tmp}/dockerd/docker.pid")
		mapfile -t managed < <(pgrep -P "${real_dockerd}" -x containerd || true)
		daemon_kb=$(rss_kb "${real_dockerd}" "${managed[@]}")
		what="dockerd + containerd + ${#shims[@]} shims"
		;;
	podman)
		mapfile -t shims < <(pids_named 'conmon')
		daemon_kb=0
		what="${#shims[@]} conmons (no daemon)"
		;;
	esac
	shims_kb=$(rss_kb "${shims[@]}")
	total_kb=$((daemon_kb + shims_kb))
	printf '%s: %d running after %d ms wall; RSS %s: %.1f MB (daemon %.1f MB, per shim %.2f MB)\n' \
		"${engine}" "${n}" "${ms}" "${what}" "$(bc -l <<<"${total_kb}/1024")" \
		"$(bc -l <<<"${daemon_kb}/1024")" "$(bc -l <<<"${shims_kb}/1024/(${#shims[@]}+(${#shims[@]}==0))")" |
		tee -a "${summary}"
	# shellcheck disable=SC2046 # one id per word
	case "${engine}" in
	skiffd) sk rm -f $(sk ps -aq) >/dev/null ;;
	dockerd) dk rm -f $(dk ps -aq) >/dev/null ;;
	podman) pm rm -f -a >/dev/null ;;
	esac
done

bench_settings "concurrent=${concurrent}" "network=none" "client=docker 20.10 (${docker20})"
# Pooled medians over every round.
python3 - "${results}" <<'EOF' | tee "${results}/summary.md"
import glob, json, statistics, sys
times = {}
for f in sorted(glob.glob(sys.argv[1] + "/round-*.json")):
    for r in json.load(open(f))["results"]:
        times.setdefault(r["command"], []).extend(r["times"])
print("| command | runs | median ms | mean ± σ ms | vs dockerd |")
print("|---|---:|---:|---:|---:|")
ref = statistics.median(next(v for k, v in times.items() if k.startswith("dockerd")))
for k, v in times.items():
    m = statistics.median(v)
    print(f"| {k} | {len(v)} | {m*1000:.0f} | {statistics.mean(v)*1000:.0f} ± {statistics.stdev(v)*1000:.0f} | {m/ref:.2f}× |")
EOF
cat "${summary}"
say "results in ${results}"
