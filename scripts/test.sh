#!/usr/bin/env bash
# The whole test suite, exactly what CI runs (.ci/run): formatting, lints, a release build of
# the runtime, then every test in the workspace against that binary. Needs root: the runtime
# and integration tests create namespaces, mounts and cgroups for real (TESTING.md).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${SKIFF_REPO}"

require_root "the tests create namespaces, mounts and cgroups"
scripts/deps.sh
find_cargo

step() {
	printf '\n==> %s\n' "$*" >&2
}

step "cargo fmt --check"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --version >/dev/null 2>&1 || die "clippy missing: rustup component add clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "release build of the runtime"
cargo build --release -p skiff-runtime

# Tests run in parallel (no --test-threads=1); they use unique container ids and cgroup paths.
# CARGO_TARGET_DIR is honoured, so a second checkout can run this without sharing target/.
target_dir="${CARGO_TARGET_DIR:-${SKIFF_REPO}/target}"
step "cargo test (SKIFF_RUNTIME=${target_dir}/release/skiff)"
SKIFF_RUNTIME="${target_dir}/release/skiff" cargo test --workspace

# The conformance suite against the runtime: any change from the checked-in expectations (a new
# failure, or a listed failure that now passes) fails the run.
# The second run puts every runtime call in a mount namespace where /sys/fs/cgroup is cgroup2,
# so the v2 code paths run for real on these v1-hybrid machines.
step "oci-conformance (--expect conformance/expected/skiff.txt)"
cargo run --quiet -p oci-conformance -- --runtime "${target_dir}/release/skiff" \
	--expect conformance/expected/skiff.txt
step "oci-conformance --cgroup2-ns (--expect conformance/expected/skiff-cgroup2-ns.txt)"
cargo run --quiet -p oci-conformance -- --runtime "${target_dir}/release/skiff" --cgroup2-ns \
	--expect conformance/expected/skiff-cgroup2-ns.txt

step "all passed"
