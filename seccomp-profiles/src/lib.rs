//! Seccomp profiles in Docker's format, Skiff's built-in default profile, and their resolution
//! into the OCI `linux.seccomp` object of one container.
//!
//! # Place in Skiff
//!
//! Docker users choose a profile with `docker run --security-opt seccomp=FILE` (or get the
//! built-in one), and that file is not OCI: its rules carry conditions on the container's
//! capabilities, the host's architecture and kernel. The daemon evaluates them when it writes the
//! container's `config.json`. In Skiff that is `skiffd`'s job: for each container it takes the
//! user's [`Profile`] (or [`default_profile`]), the capability bounding set it is about to put
//! in the spec, and the host's architecture and kernel, and calls [`resolve`]; the resulting
//! [`oci_spec::runtime::LinuxSeccomp`] goes into `linux.seccomp`, and the `skiff` runtime (or
//! runc, crun) compiles and installs it. Nothing here depends on the runtime, so the same
//! resolution serves anyone who wants OCI seccomp JSON from a Docker-format profile: the
//! `oci-seccomp` example prints it
//! (`cargo run -p skiff-seccomp-profiles --example oci-seccomp -- --arch arm64 --cap CAP_SYS_ADMIN`).
//!
//! # Key items
//!
//! - [`Profile`], [`Rule`], [`Filter`], [`Arg`], [`ArchMapEntry`], [`KernelVersion`]: the Docker
//!   format, parsed as leniently as Docker parses it ([`Profile::from_json`]).
//! - [`default_profile`]: the profile Docker applies when none is given (moby/profiles 0.1.0,
//!   shipped with Docker 28.5), kept as a table grouped by purpose, with the
//!   reason for every conditional rule.
//! - [`resolve`]: conditions evaluated the way Docker's `setupSeccomp` does, architectures
//!   expanded through `archMap`, strings checked and turned into OCI types.
//! - [`host_kernel_version`]: the running kernel's version for [`resolve`]'s `kernel` argument.
//!
//! # Example
//!
//! ```
//! use skiff_seccomp_profiles::{default_profile, resolve};
//!
//! let caps = ["CAP_CHOWN", "CAP_KILL"].map(String::from);
//! let seccomp = resolve(&default_profile(), &caps, "x86_64", Some((6, 1)))?;
//! let allowed = |name: &str| {
//!     seccomp.syscalls().iter().flatten().any(|s| s.names().iter().any(|n| n == name))
//! };
//! assert!(allowed("openat"));
//! assert!(!allowed("unshare")); // needs CAP_SYS_ADMIN in the bounding set
//! # Ok::<(), skiff_seccomp_profiles::ProfileError>(())
//! ```
#![forbid(unsafe_code)]

use std::fmt;

mod arch;
mod builtin;
mod kernel;
mod profile;
mod resolve;
#[cfg(test)]
mod testutil;

pub use builtin::default_profile;

/// Docker's default capability set (the fourteen every `docker run` container gets), against
/// which the default profile is normally resolved.
pub const DOCKER_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];
pub use kernel::{KernelVersion, host_kernel_version};
pub use profile::{ArchMapEntry, Arg, Filter, Profile, Rule};
pub use resolve::resolve;

/// Why a profile cannot be parsed or resolved.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot parse the seccomp profile")]
    Parse {
        #[source]
        source: serde_json::Error,
    },
    #[error("the profile has no defaultAction")]
    MissingDefaultAction,
    #[error("{field}: unknown action {action:?}")]
    UnknownAction { field: Field, action: String },
    #[error("{field}: errnoRet {errno} given for {action}, which takes none")]
    ErrnoRetNotAllowed {
        field: Field,
        action: String,
        errno: u32,
    },
    #[error("syscalls[{rule}]: both name and names are set, use one")]
    NameAndNames { rule: usize },
    #[error("syscalls[{rule}]: no syscall named (names and name are empty)")]
    NoNames { rule: usize },
    #[error("syscalls[{rule}].args[{arg}]: unknown operator {op:?}")]
    UnknownOperator { rule: usize, arg: usize, op: String },
    #[error(
        "syscalls[{rule}].args[{arg}]: index {index} is out of range (a syscall has 6 arguments)"
    )]
    ArgIndexOutOfRange { rule: usize, arg: usize, index: u32 },
    #[error("syscalls[{rule}].{condition}.arches: unknown architecture {arch:?}")]
    UnknownConditionArch {
        rule: usize,
        condition: Condition,
        arch: String,
    },
    #[error("both architectures and archMap are set, use one")]
    ArchitecturesAndArchMap,
    #[error("{field}: unknown seccomp architecture {arch:?}")]
    UnknownScmpArch { field: ArchField, arch: String },
    #[error("flags: unknown seccomp filter flag {flag:?}")]
    UnknownFlag { flag: String },
    #[error(
        "unknown architecture {arch:?} (expected a Go/Docker name such as amd64 or arm64, or a \
         `uname -m` name such as x86_64 or aarch64)"
    )]
    UnknownArch { arch: String },
    #[error("cannot read the kernel release from {path}")]
    ReadKernelRelease {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find a version in kernel release {release:?}")]
    KernelRelease { release: String },
}

/// Which action of a profile an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `defaultAction` / `defaultErrnoRet`.
    Default,
    /// `syscalls[i]`.
    Rule(usize),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Default => f.write_str("defaultAction"),
            Field::Rule(i) => write!(f, "syscalls[{i}]"),
        }
    }
}

/// Which list of a rule's conditions an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Includes,
    Excludes,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Condition::Includes => "includes",
            Condition::Excludes => "excludes",
        })
    }
}

/// Which `SCMP_ARCH_*` list of a profile an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchField {
    /// `architectures[i]`.
    Architectures(usize),
    /// `archMap[i].architecture`.
    ArchMap(usize),
    /// `archMap[i].subArchitectures[j]`.
    SubArchitecture(usize, usize),
}

impl fmt::Display for ArchField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchField::Architectures(i) => write!(f, "architectures[{i}]"),
            ArchField::ArchMap(i) => write!(f, "archMap[{i}].architecture"),
            ArchField::SubArchitecture(i, j) => write!(f, "archMap[{i}].subArchitectures[{j}]"),
        }
    }
}
