#!/usr/bin/env bash
# The cost of the default seccomp profile at container start: `run` of a busybox `/bin/true`
# bundle with Docker's 14 default capabilities, without and with the default profile
# (seccomp-profiles/, resolved to OCI for this machine), for skiff, runc and crun side by side in
# one hyperfine invocation. Run as root after bench/runtime.sh has prepared the host (crun needs
# hugetlb on cgroup v1 on a hybrid host, see docs/benchmarks.md).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "${SKIFF_REPO}"
require_root "containers need namespaces and mounts"
scripts/deps.sh
find_cargo

runs="${RUNS:-40}"
tmp="$(mktemp -d /tmp/skiff-bench-seccomp.XXXXXX)"
trap 'rm -rf "${tmp}"' EXIT

cargo build --release --quiet -p skiff-runtime -p skiff-tests
cargo run --release --quiet -p skiff-seccomp-profiles --example oci-seccomp -- --default-caps >"${tmp}/seccomp.json"
skiff="${SKIFF_REPO}/target/release/skiff"

for variant in plain seccomp; do
	target/release/mkbundle --runtime "$(command -v runc)" "${tmp}/${variant}" -- /bin/true >/dev/null
	python3 - "${tmp}/${variant}/config.json" "${variant}" "${tmp}/seccomp.json" <<'PY'
import json, sys
path, variant, profile = sys.argv[1:4]
caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
with open(path) as f:
    config = json.load(f)
config["process"]["capabilities"] = {s: caps for s in ("bounding", "effective", "permitted")}
if variant == "seccomp":
    with open(profile) as f:
        config["linux"]["seccomp"] = json.load(f)
with open(path, "w") as f:
    json.dump(config, f)
PY
done

cmds=()
names=()
for rt in skiff runc crun; do
	bin="${skiff}"
	[[ ${rt} != skiff ]] && bin="$(command -v "${rt}")"
	for variant in plain seccomp; do
		names+=(-n "${rt} ${variant}")
		cmds+=("${bin} --root ${tmp}/root-${rt} run -b ${tmp}/${variant} bench-$$-${rt}-${variant}")
	done
done
hyperfine -N --warmup 5 --runs "${runs}" --export-markdown "${tmp}/result.md" "${names[@]}" "${cmds[@]}" >&2
cat "${tmp}/result.md"
