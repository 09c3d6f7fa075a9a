#!/usr/bin/env bash
# `docker load` of a generated multi-layer image (~200 MB) into skiffd vs into dockerd 20.10 vs
# `ctr images import` into containerd 1.6, side by side under hyperfine; then the idle RSS of
# skiffd vs dockerd + its containerd. Every daemon runs on its own data root under a temp dir
# (dockerd and containerd in a private mount namespace) and is stopped at exit.
# Method and figures: docs/benchmarks.md ("skiffd: image load and idle RSS"). Run as root.
#
# usage: bench/skiffd.sh [--runs N] [--warmup N] [--layers N] [--layer-mb N] [--results DIR]
set -euo pipefail

runs=20
warmup=2
layers=4
layer_mb=50
results=""
while (($# > 0)); do
	case "$1" in
	--runs) runs="$2" && shift 2 ;;
	--warmup) warmup="$2" && shift 2 ;;
	--layers) layers="$2" && shift 2 ;;
	--layer-mb) layer_mb="$2" && shift 2 ;;
	--results) results="$2" && shift 2 ;;
	-h | --help) sed -n '2,9p' "$0" && exit 0 ;;
	*) echo "unknown argument: $1" >&2 && exit 2 ;;
	esac
done

die() { echo "bench/skiffd.sh: $*" >&2 && exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (dockerd and containerd need it)"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${repo}"
for tool in hyperfine dockerd containerd ctr python3; do
	command -v "${tool}" >/dev/null || die "${tool} not found (apt-get install hyperfine docker.io containerd)"
done
docker20=/usr/bin/docker
[[ -x ${docker20} ]] || die "${docker20} missing (Debian package docker.io)"
cargo build --release -p skiffd >&2
skiffd_bin="${repo}/target/release/skiffd"

tmp="$(mktemp -d /tmp/skiffd-bench.XXXXXX)"
results="${results:-${repo}/bench/results/skiffd-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "${results}"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "${pid}" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 100); do
			kill -0 "${pid}" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "${pid}" 2>/dev/null || true
	done
	rm -rf "${tmp}"
}
trap cleanup EXIT

# The image: busybox-free, `layers` layers of `layer_mb` MB of random (incompressible) bytes,
# as a docker-archive (uncompressed layer tars, as `docker save` writes them).
echo "generating a ${layers} x ${layer_mb} MB image" >&2
python3 - "${tmp}/image.tar" "${layers}" "${layer_mb}" <<'EOF'
import hashlib, io, json, os, sys, tarfile
out, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
layers, diff_ids = [], []
for i in range(n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for j in range(4):
            data = os.urandom(mb * 1024 * 1024 // 4)
            info = tarfile.TarInfo(f"data/layer{i}/part{j}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            t.addfile(info, io.BytesIO(data))
    b = buf.getvalue()
    layers.append(b)
    diff_ids.append("sha256:" + hashlib.sha256(b).hexdigest())
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2026-12-01T00:00:00Z",
    "config": {"Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created": "2026-12-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(n)],
}).encode()
cid = hashlib.sha256(config).hexdigest()
with tarfile.open(out, mode="w", format=tarfile.USTAR_FORMAT) as t:
    def add(name, data):
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        t.addfile(info, io.BytesIO(data))
    paths = []
    for b, d in zip(layers, diff_ids):
        p = d.split(":")[1] + "/layer.tar"
        add(p, b)
        paths.append(p)
    add(cid + ".json", config)
    add("manifest.json", json.dumps([{"Config": cid + ".json", "RepoTags": ["bench/load:latest"], "Layers": paths}]).encode())
EOF
size_mb=$(($(stat -c %s "${tmp}/image.tar") / 1000000))

wait_sock() { # wait_sock CMD...: until CMD succeeds (bounded)
	for _ in $(seq 300); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "daemon did not come up: $*"
}

# skiffd
mkdir -p "${tmp}/skiffd"
"${skiffd_bin}" --data-root "${tmp}/skiffd/data" --exec-root "${tmp}/skiffd/run" \
	-H "unix://${tmp}/skiffd/docker.sock" --log-level warn 2>"${tmp}/skiffd/log" &
skiffd_pid=$!
pids+=("${skiffd_pid}")
sk=(env DOCKER_CONFIG="${tmp}/cli" "${docker20}" -H "unix://${tmp}/skiffd/docker.sock")
wait_sock "${sk[@]}" version

# dockerd 20.10 (with the containerd it manages), no networking.
mkdir -p "${tmp}/dockerd"
echo "{\"deprecated-key-path\": \"${tmp}/dockerd/key.json\"}" >"${tmp}/dockerd/daemon.json"
unshare -m --propagation private dockerd --host="unix://${tmp}/dockerd/docker.sock" \
	--config-file="${tmp}/dockerd/daemon.json" --data-root="${tmp}/dockerd/data" \
	--exec-root="${tmp}/dockerd/exec" --pidfile="${tmp}/dockerd/docker.pid" --bridge=none \
	--iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
	>"${tmp}/dockerd/log" 2>&1 &
pids+=($!)
dk=(env DOCKER_CONFIG="${tmp}/cli" "${docker20}" -H "unix://${tmp}/dockerd/docker.sock")
wait_sock "${dk[@]}" version
dockerd_pid=$(cat "${tmp}/dockerd/docker.pid")

# containerd 1.6 on its own root.
mkdir -p "${tmp}/containerd"
cat >"${tmp}/containerd/config.toml" <<EOF
version = 2
root = "${tmp}/containerd/root"
state = "${tmp}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${tmp}/containerd/c.sock"
[ttrpc]
  address = "${tmp}/containerd/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${tmp}/containerd/opt"
EOF
unshare -m --propagation private containerd --config "${tmp}/containerd/config.toml" \
	>"${tmp}/containerd/log" 2>&1 &
pids+=($!)
c=(ctr --address "${tmp}/containerd/c.sock" -n bench)
wait_sock "${c[@]}" version

# Each run imports into an empty store: the prepare step removes the image and lets the
# daemon collect its blobs and snapshots.
echo "hyperfine: ${runs} runs each, ${size_mb} MB archive, ${layers} layers" >&2
hyperfine --style basic --runs "${runs}" --warmup "${warmup}" \
	--export-json "${results}/load.json" --export-markdown "${results}/load.md" \
	--prepare "${sk[*]} rmi -f bench/load:latest >/dev/null 2>&1 || true" \
	-n "skiffd: docker load" "${sk[*]} load -q -i ${tmp}/image.tar" \
	--prepare "${dk[*]} rmi -f bench/load:latest >/dev/null 2>&1 || true" \
	-n "dockerd 20.10: docker load" "${dk[*]} load -q -i ${tmp}/image.tar" \
	--prepare "${c[*]} images rm --sync docker.io/bench/load:latest >/dev/null 2>&1 || true" \
	-n "containerd 1.6: ctr images import" "${c[*]} images import ${tmp}/image.tar"

# Idle RSS: after the loads, the image in every store, 10 s of quiet.
sleep 10
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
managed_ctd=$(pgrep -P "${dockerd_pid}" -x containerd || true)
sk_rss=$(rss "${skiffd_pid}")
dk_rss=$(rss "${dockerd_pid}")
dk_ctd_rss=$([[ -n ${managed_ctd} ]] && rss "${managed_ctd}" || echo 0)
{
	echo "date: $(date -u +%FT%TZ)"
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024/1024)}' /proc/meminfo) GiB, kernel $(uname -r)"
	echo "archive: ${size_mb} MB, ${layers} layers"
	echo "idle RSS skiffd: $((sk_rss / 1024)) MB (${sk_rss} kB)"
	echo "idle RSS dockerd: $((dk_rss / 1024)) MB + its containerd: $((dk_ctd_rss / 1024)) MB"
} | tee "${results}/rss.txt"
cat "${results}/load.md"
echo "results in ${results}" >&2
