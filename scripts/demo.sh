#!/usr/bin/env bash
# Build skiff, make a busybox bundle, run one container with `skiff run` and show what it sees
# next to what the host sees: its own hostname (UTS namespace), pid 1 (PID namespace) and its
# own mount table (mount namespace + pivot_root). Run as root on Debian; see README.md.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${SKIFF_REPO}"

require_root "containers need namespaces, mounts and cgroups"
scripts/deps.sh
find_cargo

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
