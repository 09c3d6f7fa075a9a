# shellcheck shell=bash
# Helpers shared by the scripts in scripts/ and bench/. Source it; it does nothing on its own.

# The repository root (the directory holding the workspace Cargo.toml).
SKIFF_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SKIFF_REPO

# Print a message prefixed with the calling script's name, on stderr.
say() {
	printf '%s: %s\n' "$(basename "$0")" "$*" >&2
}

die() {
	say "error: $*"
	exit 1
}

# Most of what these scripts do (apt-get, namespaces, mounts, cgroups) needs real root.
require_root() {
	[[ ${EUID} -eq 0 ]] || die "must run as root ($1); try: sudo $0"
}

# rustup installs into ~/.cargo/bin, which a non-login shell (sudo, CI) may not have on PATH.
find_cargo() {
	if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME}/.cargo/bin/cargo" ]]; then
		PATH="${HOME}/.cargo/bin:${PATH}"
		export PATH
	fi
}
