#!/usr/bin/env bash
# Release builds of skiff, containerd-shim-skiff-v2 and skiff-init linked statically against glibc
# (crt-static), the builds to install: a static binary maps no shared libraries, which is most of
# a small process's resident memory (docs/benchmarks.md: one shim 2.3 MB static against 3.3 MB
# dynamic; skiff's peak during `run` 4.0 MB against 5.0 MB). skiff-init must be static: `docker run
# --init` bind-mounts it into any rootfs (busybox has no glibc). Output: target/static/.
# Proc macros cannot be linked statically, hence the explicit --target (RUSTFLAGS then apply to
# the target's crates only).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${SKIFF_REPO}"
find_cargo

host="$(rustc -vV | sed -n 's/^host: //p')"
CARGO_TARGET_DIR="${SKIFF_REPO}/target/crt-static" RUSTFLAGS="-C target-feature=+crt-static" \
	cargo build --release --target "${host}" -p skiff-runtime -p containerd-shim-skiff \
	-p skiff-init
mkdir -p target/static
for bin in skiff containerd-shim-skiff-v2 skiff-init; do
	install -m 0755 "target/crt-static/${host}/release/${bin}" "target/static/${bin}"
done
say "static builds in target/static/: skiff, containerd-shim-skiff-v2, skiff-init"
