//! Architecture names: the ones profiles and callers use, and the libseccomp architecture
//! (`SCMP_ARCH_*`) each stands for.
//!
//! Three vocabularies meet here:
//! - rule conditions (`includes.arches`) use Docker's names, which are libseccomp's short names
//!   (`amd64`, `arm64`, `x86`, `x32`, `s390x`, `mipsel64`, …); Docker compares them with its
//!   `goToNative[runtime.GOARCH]` (moby/profiles `seccomp_linux.go`);
//! - callers know either Go's `GOARCH` (`amd64`, `386`, `mips64le`, `loong64`) or the kernel's
//!   `uname -m` (`x86_64`, `aarch64`, `armv7l`, `i686`, `loongarch64`);
//! - `archMap` and the OCI output use `SCMP_ARCH_*`.
//!
//! Every name is mapped to one [`Machine`]; two names match when they map to the same machine.
//! For Docker's names that is Docker's comparison, and it also lets `x86_64` and `amd64`, or
//! `386` and `x86`, mean the same thing. (Docker's own two tables disagree on `loong64` and
//! `mipsle`, so it finds no `archMap` entry on those hosts; that is not copied.)

use oci_spec::runtime::Arch as ScmpArch;

/// A CPU architecture / syscall ABI that seccomp filters distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Machine {
    /// Docker's name, used in messages.
    pub(crate) docker: &'static str,
    /// What the kernel reports in `seccomp_data.arch` for it.
    pub(crate) scmp: ScmpArch,
}

/// Docker's name, the libseccomp architecture, and the other names that mean the same.
/// Aliases come from Go (`GOARCH`), `uname -m` and Debian; the `mips3l64n32` spelling is
/// Docker's own typo for `mipsel64n32`, accepted because Docker-era profiles may contain it.
const MACHINES: &[(&str, ScmpArch, &[&str])] = &[
    ("amd64", ScmpArch::ScmpArchX86_64, &["x86_64", "x86-64"]),
    (
        "x86",
        ScmpArch::ScmpArchX86,
        &["386", "i386", "i486", "i586", "i686"],
    ),
    ("x32", ScmpArch::ScmpArchX32, &[]),
    ("arm64", ScmpArch::ScmpArchAarch64, &["aarch64"]),
    (
        "arm",
        ScmpArch::ScmpArchArm,
        &["armv6l", "armv7l", "armv8l", "armhf", "armel"],
    ),
    ("loongarch64", ScmpArch::ScmpArchLoongarch64, &["loong64"]),
    ("mips", ScmpArch::ScmpArchMips, &[]),
    ("mipsel", ScmpArch::ScmpArchMipsel, &["mipsle"]),
    ("mips64", ScmpArch::ScmpArchMips64, &[]),
    ("mips64n32", ScmpArch::ScmpArchMips64n32, &["mips64p32"]),
    (
        "mipsel64",
        ScmpArch::ScmpArchMipsel64,
        &["mips64le", "mips64el"],
    ),
    (
        "mipsel64n32",
        ScmpArch::ScmpArchMipsel64n32,
        &["mips3l64n32", "mips64p32le"],
    ),
    ("ppc", ScmpArch::ScmpArchPpc, &["powerpc"]),
    ("ppc64", ScmpArch::ScmpArchPpc64, &[]),
    ("ppc64le", ScmpArch::ScmpArchPpc64le, &[]),
    ("riscv64", ScmpArch::ScmpArchRiscv64, &[]),
    ("s390", ScmpArch::ScmpArchS390, &[]),
    ("s390x", ScmpArch::ScmpArchS390x, &[]),
];

impl Machine {
    /// The machine a Docker, Go or `uname -m` name stands for (ASCII case ignored).
    pub(crate) fn from_name(name: &str) -> Option<Machine> {
        let name = name.to_ascii_lowercase();
        MACHINES
            .iter()
            .find(|(docker, _, aliases)| *docker == name || aliases.contains(&name.as_str()))
            .map(|&(docker, scmp, _)| Machine { docker, scmp })
    }
}

/// Parses an `SCMP_ARCH_*` name as found in `architectures` and `archMap`.
pub(crate) fn parse_scmp(name: &str) -> Option<ScmpArch> {
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_docker_and_uname_names_agree() {
        for (a, b) in [
            ("amd64", "x86_64"),
            ("arm64", "aarch64"),
            ("x86", "386"),
            ("x86", "i686"),
            ("arm", "armv7l"),
            ("loongarch64", "loong64"),
            ("mipsel64", "mips64le"),
            ("mipsel64n32", "mips3l64n32"),
            ("AMD64", "amd64"),
        ] {
            let (a, b) = (
                Machine::from_name(a).unwrap(),
                Machine::from_name(b).unwrap(),
            );
            assert_eq!(a, b);
        }
        assert_eq!(
            Machine::from_name("x86_64").unwrap().scmp,
            ScmpArch::ScmpArchX86_64
        );
        assert_eq!(
            Machine::from_name("aarch64").unwrap().scmp,
            ScmpArch::ScmpArchAarch64
        );
        for unknown in ["", "sparc64", "x86_32", "arm64be"] {
            assert_eq!(Machine::from_name(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn every_machine_has_a_distinct_scmp_arch_and_unique_names() {
        let mut names = Vec::new();
        for (i, (docker, scmp, aliases)) in MACHINES.iter().enumerate() {
            assert!(
                MACHINES[..i].iter().all(|(_, other, _)| other != scmp),
                "{docker}"
            );
            names.push(*docker);
            names.extend(aliases.iter());
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a name is listed twice");
    }

    #[test]
    fn scmp_names_parse() {
        assert_eq!(
            parse_scmp("SCMP_ARCH_X86_64"),
            Some(ScmpArch::ScmpArchX86_64)
        );
        assert_eq!(
            parse_scmp("SCMP_ARCH_MIPSEL64N32"),
            Some(ScmpArch::ScmpArchMipsel64n32)
        );
        assert_eq!(
            parse_scmp("SCMP_ARCH_PPC64LE"),
            Some(ScmpArch::ScmpArchPpc64le)
        );
        assert_eq!(parse_scmp("SCMP_ARCH_VAX"), None);
        assert_eq!(parse_scmp("x86_64"), None);
    }
}
