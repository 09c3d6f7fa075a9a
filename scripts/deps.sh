#!/usr/bin/env bash
# Install the Debian packages Skiff's scripts, tests and benchmarks need, and check for a Rust
# toolchain. Idempotent: does nothing (and needs no network) when everything is already there.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# What each package is for:
#   busybox-static   rootfs of test and demo bundles (/bin/busybox is static)
#   runc, crun       peer runtimes: side-by-side benchmarks, validating the conformance suite
#   hyperfine        bench/runtime.sh timings
#   time             GNU time: peak RSS of one container run (bench/runtime.sh)
#   python3          JSON editing in demo.sh, summaries in bench/
#   gcc, libc6-dev   the linker (`cc`) rustc calls for every binary
#   containerd       containerd 1.6 + ctr + runc shim: drop-in tests (`ctr run --runc-binary skiff`)
#   docker.io        dockerd 20.10 (+ its CLI): drop-in tests (`docker run --runtime skiff`)
#   podman           podman 4.3 (+ conmon): drop-in tests (`podman --runtime skiff run`)
#   docker-registry  a real registry on 127.0.0.1 for pull/push tests of the test images
#   skopeo, umoci    independent producers/consumers of OCI layouts and docker-archives
PACKAGES=(busybox-static runc crun hyperfine time python3 gcc libc6-dev
	containerd docker.io podman docker-registry skopeo umoci)

# Rust version the workspace declares (Cargo.toml: rust-version); Debian 12's cargo is older.
RUST_MIN_MINOR=85

missing=()
for pkg in "${PACKAGES[@]}"; do
	if [[ "$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null)" != installed ]]; then
		missing+=("${pkg}")
	fi
done

if ((${#missing[@]} > 0)); then
	require_root "apt-get install ${missing[*]}"
	say "installing ${missing[*]}"
	log="$(mktemp)"
	trap 'rm -f "${log}"' EXIT
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get update -qq >"${log}" 2>&1 ||
		! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"${log}" 2>&1; then
		cat "${log}" >&2
		die "apt-get failed (output above)"
	fi
fi

# docker-py, a real Docker API client for skiffd's tests (PyPI).
if ! python3 -c 'import docker' >/dev/null 2>&1; then
	say "installing docker-py (pip)"
	python3 -m pip install --quiet 'docker>=7,<8' || die "pip install docker failed"
fi

find_cargo
rustup_hint="install a current Rust toolchain with rustup, with the rustfmt and clippy components (Debian's cargo is too old for edition 2024)"
if ! command -v cargo >/dev/null 2>&1; then
	die "cargo not found; ${rustup_hint}"
fi
minor="$(cargo --version | sed -n 's/^cargo 1\.\([0-9]*\)\..*/\1/p')"
if [[ -z "${minor}" ]] || ((minor < RUST_MIN_MINOR)); then
	die "$(cargo --version) is older than 1.${RUST_MIN_MINOR}; ${rustup_hint}"
fi
