//! A Docker-format [`Profile`] turned into the OCI `linux.seccomp` of one container.
//!
//! # Semantics (moby/profiles `seccomp_linux.go` `setupSeccomp`)
//!
//! - A rule is kept when **all** its `includes` conditions hold and **none** of its `excludes`
//!   conditions does:
//!   - `caps`: the capability is in the container's bounding set (`includes`: every listed
//!     capability; `excludes`: any of them). Names are compared after upper-casing and adding a
//!     missing `CAP_` prefix, so `sys_admin` and `CAP_SYS_ADMIN` are the same.
//!   - `arches`: the host's native architecture is listed (see [`crate::arch`] for names).
//!   - `minKernel`: the host kernel is at least that version. An unknown kernel (`None`) counts
//!     as older than every `minKernel`: `includes` fail and `excludes` hold not, so nothing that
//!     needs a new kernel is allowed on a guess. Docker fails instead when `uname` fails; use
//!     [`crate::host_kernel_version`] to get the real one.
//! - Kept rules become `syscalls` entries in profile order, one per rule (OCI treats separate
//!   entries as alternatives, and their `args` within one entry as all-must-hold).
//! - `architectures`: the profile's own list if it has one; otherwise the `archMap` entry of the
//!   native architecture, its `architecture` followed by its `subArchitectures`; nothing (the
//!   runtime then filters the native ABI only) if there is no such entry.
//! - `defaultAction`, `defaultErrnoRet`, `flags`, `listenerPath`, `listenerMetadata` are copied.
//!
//! # Stricter than Docker
//!
//! Docker copies strings through and lets the runtime reject them, for the rules that happen to
//! apply on that host. Here every rule is checked whatever its conditions, so a profile that
//! resolves on one machine resolves on all: actions, operators, `SCMP_ARCH_*` and condition
//! architecture names must be known, `errnoRet` only goes with `SCMP_ACT_ERRNO` or
//! `SCMP_ACT_TRACE` (runtime-spec: "the runtime MUST print an error and fail"), argument indexes
//! are below 6, and every rule names a syscall. A profile with no `defaultAction` is an error;
//! Docker treats an empty one with no rules as "seccomp disabled", which callers here say by not
//! setting `linux.seccomp` at all.

use oci_spec::runtime::{
    Arch as ScmpArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};

use crate::arch::{Machine, parse_scmp};
use crate::kernel::KernelVersion;
use crate::profile::{Filter, Profile, Rule};
use crate::{ArchField, Condition, Field, ProfileError};

/// The number of syscall arguments `seccomp_data.args` holds (include/uapi/linux/seccomp.h).
const SYSCALL_ARGS: u32 = 6;

/// Resolves `profile` for one container and host.
///
/// - `caps`: the container's capability bounding set (`CAP_SYS_ADMIN`, …), which is what Docker
///   checks conditions against.
/// - `arch`: the host's native architecture, as Go/Docker names it (`amd64`, `arm64`, …) or as
///   `uname -m` does (`x86_64`, `aarch64`, …).
/// - `kernel`: the host kernel's `(major, minor)`, `None` if unknown (see the module docs).
///
/// See the module docs for the rules; errors name the rule and field at fault.
pub fn resolve(
    profile: &Profile,
    caps: &[String],
    arch: &str,
    kernel: Option<(u32, u32)>,
) -> Result<LinuxSeccomp, ProfileError> {
    let target = Target::new(caps, arch, kernel)?;

    if profile.default_action.is_empty() {
        return Err(ProfileError::MissingDefaultAction);
    }
    let default_action = action(Field::Default, &profile.default_action)?;
    check_errno_ret(Field::Default, default_action, profile.default_errno_ret)?;

    let architectures = architectures(profile, target.machine)?;
    let flags = profile
        .flags
        .iter()
        .map(|flag| {
            flag.parse::<LinuxSeccompFilterFlag>()
                .map_err(|_| ProfileError::UnknownFlag { flag: flag.clone() })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut syscalls = Vec::new();
    for (i, rule) in profile.syscalls.iter().enumerate() {
        // Converted before the conditions are looked at: every rule is checked on every host.
        let syscall = convert(i, rule)?;
        if target.keeps(i, rule)? {
            syscalls.push(syscall);
        }
    }

    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(default_action)
        .set_default_errno_ret(profile.default_errno_ret)
        .set_architectures((!architectures.is_empty()).then_some(architectures))
        .set_flags((!flags.is_empty()).then_some(flags))
        .set_listener_path(profile.listener_path.as_ref().map(Into::into))
        .set_listener_metadata(profile.listener_metadata.clone())
        .set_syscalls((!syscalls.is_empty()).then_some(syscalls));
    Ok(seccomp)
}

/// The container and host a profile is resolved for.
#[derive(Debug)]
struct Target {
    caps: Vec<String>,
    machine: Machine,
    kernel: Option<KernelVersion>,
}

impl Target {
    fn new(caps: &[String], arch: &str, kernel: Option<(u32, u32)>) -> Result<Self, ProfileError> {
        let machine = Machine::from_name(arch)
            .ok_or_else(|| ProfileError::UnknownArch { arch: arch.into() })?;
        Ok(Target {
            caps: caps.iter().map(|cap| normalise_cap(cap)).collect(),
            machine,
            kernel: kernel.map(KernelVersion::from),
        })
    }

    /// Whether rule `i` belongs in this container's profile: every `includes` condition holds
    /// and no `excludes` condition does. Unknown architecture names are errors.
    fn keeps(&self, i: usize, rule: &Rule) -> Result<bool, ProfileError> {
        let includes = self.holds(i, Condition::Includes, &rule.includes)?;
        let excludes = self.holds(i, Condition::Excludes, &rule.excludes)?;
        Ok(includes.all && !excludes.any)
    }

    /// Evaluates the conditions of one filter: whether all of them hold, and whether any does.
    /// (For an empty filter `all` is true and `any` false: it neither requires nor excludes.)
    fn holds(
        &self,
        rule: usize,
        condition: Condition,
        filter: &Filter,
    ) -> Result<Verdict, ProfileError> {
        let mut results = Vec::new();
        for cap in &filter.caps {
            results.push(self.caps.contains(&normalise_cap(cap)));
        }
        if !filter.arches.is_empty() {
            let mut listed = false;
            for arch in &filter.arches {
                let machine =
                    Machine::from_name(arch).ok_or_else(|| ProfileError::UnknownConditionArch {
                        rule,
                        condition,
                        arch: arch.clone(),
                    })?;
                listed |= machine == self.machine;
            }
            results.push(listed);
        }
        if let Some(min) = filter.min_kernel {
            results.push(self.kernel.is_some_and(|kernel| kernel >= min));
        }
        Ok(Verdict {
            all: results.iter().all(|&r| r),
            any: results.iter().any(|&r| r),
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Verdict {
    all: bool,
    any: bool,
}

/// `sys_admin`, `SYS_ADMIN` and `CAP_SYS_ADMIN` all name `CAP_SYS_ADMIN` (the docker CLI
/// normalises `--cap-add` the same way).
fn normalise_cap(cap: &str) -> String {
    let cap = cap.to_ascii_uppercase();
    if cap.starts_with("CAP_") {
        cap
    } else {
        format!("CAP_{cap}")
    }
}

/// The OCI `architectures`: the profile's fixed list, or the native architecture's `archMap`
/// entry. Every `SCMP_ARCH_*` string of the profile is checked, used or not.
fn architectures(profile: &Profile, native: Machine) -> Result<Vec<ScmpArch>, ProfileError> {
    if !profile.architectures.is_empty() && !profile.arch_map.is_empty() {
        return Err(ProfileError::ArchitecturesAndArchMap);
    }
    let scmp = |field: ArchField, name: &str| {
        parse_scmp(name).ok_or_else(|| ProfileError::UnknownScmpArch {
            field,
            arch: name.into(),
        })
    };

    let mut out = Vec::new();
    for (i, name) in profile.architectures.iter().enumerate() {
        push_unique(&mut out, scmp(ArchField::Architectures(i), name)?);
    }
    for (i, entry) in profile.arch_map.iter().enumerate() {
        let arch = scmp(ArchField::ArchMap(i), &entry.architecture)?;
        let subs = entry
            .sub_architectures
            .iter()
            .enumerate()
            .map(|(j, name)| scmp(ArchField::SubArchitecture(i, j), name))
            .collect::<Result<Vec<_>, _>>()?;
        if arch == native.scmp {
            push_unique(&mut out, arch);
            for sub in subs {
                push_unique(&mut out, sub);
            }
        }
    }
    Ok(out)
}

fn push_unique(list: &mut Vec<ScmpArch>, arch: ScmpArch) {
    if !list.contains(&arch) {
        list.push(arch);
    }
}

/// Rule `i` as an OCI `syscalls` entry, with every string checked.
pub(crate) fn convert(i: usize, rule: &Rule) -> Result<LinuxSyscall, ProfileError> {
    let names = match (rule.name.is_empty(), rule.names.is_empty()) {
        (false, false) => return Err(ProfileError::NameAndNames { rule: i }),
        (false, true) => vec![rule.name.clone()],
        (true, false) => rule.names.clone(),
        (true, true) => return Err(ProfileError::NoNames { rule: i }),
    };
    let field = Field::Rule(i);
    let action = action(field, &rule.action)?;
    check_errno_ret(field, action, rule.errno_ret)?;

    let mut args = Vec::with_capacity(rule.args.len());
    for (a, arg) in rule.args.iter().enumerate() {
        if arg.index >= SYSCALL_ARGS {
            return Err(ProfileError::ArgIndexOutOfRange {
                rule: i,
                arg: a,
                index: arg.index,
            });
        }
        let op =
            arg.op
                .parse::<LinuxSeccompOperator>()
                .map_err(|_| ProfileError::UnknownOperator {
                    rule: i,
                    arg: a,
                    op: arg.op.clone(),
                })?;
        let mut builder = LinuxSeccompArgBuilder::default()
            .index(arg.index as usize)
            .value(arg.value)
            .op(op);
        // Docker's Go types cannot tell 0 from absent; leave it out like they do.
        if arg.value_two != 0 {
            builder = builder.value_two(arg.value_two);
        }
        // `LinuxSeccompArg` has no setters, only this builder, whose fields all have defaults.
        let out = builder
            .build()
            .expect("the builder has a default for every field");
        args.push(out);
    }

    let mut syscall = LinuxSyscall::default();
    syscall
        .set_names(names)
        .set_action(action)
        .set_errno_ret(rule.errno_ret)
        .set_args((!args.is_empty()).then_some(args));
    Ok(syscall)
}

fn action(field: Field, name: &str) -> Result<LinuxSeccompAction, ProfileError> {
    name.parse().map_err(|_| ProfileError::UnknownAction {
        field,
        action: name.into(),
    })
}

/// Only `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` carry a value (seccomp(2): the 16 data bits of
/// `SECCOMP_RET_ERRNO` / `SECCOMP_RET_TRACE`).
fn check_errno_ret(
    field: Field,
    action: LinuxSeccompAction,
    errno: Option<u32>,
) -> Result<(), ProfileError> {
    match (action, errno) {
        (_, None) | (LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace, _) => {
            Ok(())
        }
        (action, Some(errno)) => Err(ProfileError::ErrnoRetNotAllowed {
            field,
            action: action.to_string(),
            errno,
        }),
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxSeccompFilterFlag, LinuxSeccompOperator};

    use super::*;
    use crate::testutil::{Outcome, caps, evaluate};

    /// A profile with one rule per kind of condition, each naming a syscall of its own.
    const CONDITIONS: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
        ],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
            {"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["uselib"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8"}},
            {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_PTRACE"], "arches": ["arm64"], "minKernel": "5.0"},
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}}
        ]
    }"#;

    fn names(seccomp: &LinuxSeccomp) -> Vec<&str> {
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().iter().map(String::as_str))
            .collect()
    }

    fn resolved(caps_: &[&str], arch: &str, kernel: Option<(u32, u32)>) -> Vec<String> {
        let profile = Profile::from_json(CONDITIONS).unwrap();
        let seccomp = resolve(&profile, &caps(caps_), arch, kernel).unwrap();
        names(&seccomp).into_iter().map(String::from).collect()
    }

    #[test]
    fn includes_caps_need_all_of_them() {
        let has = |caps: &[&str]| resolved(caps, "amd64", None).contains(&"mount".into());
        assert!(!has(&[]));
        assert!(!has(&["CAP_SYS_ADMIN"]));
        assert!(!has(&["CAP_NET_ADMIN"]));
        assert!(has(&["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]));
    }

    #[test]
    fn excludes_caps_drop_the_rule_on_any_of_them() {
        let has = |caps: &[&str]| resolved(caps, "amd64", None).contains(&"unshare".into());
        assert!(has(&[]));
        assert!(has(&["CAP_CHOWN"]));
        assert!(!has(&["CAP_SYS_ADMIN"]));
        assert!(!has(&["CAP_NET_ADMIN"]));
    }

    #[test]
    fn capability_names_are_normalised() {
        for spelling in ["CAP_SYS_ADMIN", "SYS_ADMIN", "sys_admin", "cap_sys_admin"] {
            let got = resolved(&[spelling, "CAP_NET_ADMIN"], "amd64", None);
            assert!(got.contains(&"mount".into()), "{spelling}");
            assert!(!got.contains(&"unshare".into()), "{spelling}");
        }
        // And in the profile: a rule written with "SYS_PTRACE" matches CAP_SYS_PTRACE.
        let mut profile = Profile::from_json(CONDITIONS).unwrap();
        profile.syscalls[7].includes.caps = caps(&["sys_ptrace"]);
        let seccomp = resolve(&profile, &caps(&["CAP_SYS_PTRACE"]), "arm64", Some((5, 0))).unwrap();
        assert!(names(&seccomp).contains(&"kcmp"));
    }

    #[test]
    fn arch_conditions_use_the_native_architecture() {
        let amd64 = resolved(&[], "amd64", None);
        assert!(amd64.contains(&"arch_prctl".into()));
        assert!(!amd64.contains(&"set_tls".into()));
        let arm64 = resolved(&[], "arm64", None);
        assert!(!arm64.contains(&"arch_prctl".into()));
        assert!(arm64.contains(&"set_tls".into()));
        // x32 is listed by name, so an x32 "native" architecture matches too.
        assert!(resolved(&[], "x32", None).contains(&"arch_prctl".into()));
    }

    #[test]
    fn min_kernel_compares_major_then_minor() {
        for (kernel, ptrace) in [
            (Some((3, 10)), false),
            (Some((4, 7)), false),
            (Some((4, 8)), true),
            (Some((4, 20)), true),
            (Some((5, 0)), true),
            (Some((6, 1)), true),
        ] {
            let got = resolved(&[], "amd64", kernel);
            assert_eq!(got.contains(&"ptrace".into()), ptrace, "{kernel:?}");
            // excludes.minKernel is the mirror image.
            assert_eq!(got.contains(&"uselib".into()), !ptrace, "{kernel:?}");
        }
    }

    #[test]
    fn unknown_kernel_counts_as_older_than_every_min_kernel() {
        let got = resolved(&["CAP_SYS_PTRACE"], "arm64", None);
        assert!(!got.contains(&"ptrace".into()));
        assert!(got.contains(&"uselib".into()));
        assert!(!got.contains(&"kcmp".into()));
    }

    #[test]
    fn all_includes_and_no_excludes() {
        let has = |caps: &[&str], arch: &str, kernel: (u32, u32)| {
            resolved(caps, arch, Some(kernel)).contains(&"kcmp".into())
        };
        assert!(has(&["CAP_SYS_PTRACE"], "arm64", (5, 0)));
        assert!(!has(&[], "arm64", (5, 0)), "include cap missing");
        assert!(!has(&["CAP_SYS_PTRACE"], "amd64", (5, 0)), "include arch");
        assert!(
            !has(&["CAP_SYS_PTRACE"], "arm64", (4, 19)),
            "include kernel"
        );
        assert!(
            !has(&["CAP_SYS_PTRACE", "CAP_SYS_ADMIN"], "arm64", (5, 0)),
            "exclude cap present"
        );
    }

    #[test]
    fn architectures_come_from_the_native_arch_map_entry() {
        let profile = Profile::from_json(CONDITIONS).unwrap();
        let arches = |arch: &str| {
            resolve(&profile, &[], arch, None)
                .unwrap()
                .architectures()
                .clone()
        };
        assert_eq!(
            arches("amd64"),
            Some(vec![
                ScmpArch::ScmpArchX86_64,
                ScmpArch::ScmpArchX86,
                ScmpArch::ScmpArchX32
            ])
        );
        assert_eq!(
            arches("arm64"),
            Some(vec![ScmpArch::ScmpArchAarch64, ScmpArch::ScmpArchArm])
        );
        // No entry: no list, and the runtime filters the native ABI alone.
        assert_eq!(arches("s390x"), None);
    }

    #[test]
    fn uname_and_go_names_resolve_the_same() {
        let profile = crate::default_profile();
        let caps = caps(&["CAP_SYS_PTRACE"]);
        for (uname, go) in [("x86_64", "amd64"), ("aarch64", "arm64"), ("i686", "386")] {
            assert_eq!(
                resolve(&profile, &caps, uname, Some((6, 1))).unwrap(),
                resolve(&profile, &caps, go, Some((6, 1))).unwrap(),
                "{uname} vs {go}"
            );
        }
    }

    #[test]
    fn fixed_architectures_list_is_copied() {
        let profile = Profile::from_json(
            r#"{"defaultAction": "SCMP_ACT_KILL_PROCESS",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": []}"#,
        )
        .unwrap();
        let seccomp = resolve(&profile, &[], "arm64", None).unwrap();
        assert_eq!(
            seccomp.architectures(),
            &Some(vec![ScmpArch::ScmpArchX86_64, ScmpArch::ScmpArchX86])
        );
        assert_eq!(seccomp.syscalls(), &None);
        assert_eq!(
            seccomp.default_action(),
            LinuxSeccompAction::ScmpActKillProcess
        );
    }

    #[test]
    fn rules_become_oci_entries_in_order() {
        let profile = Profile::from_json(
            r#"{
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "listenerPath": "/run/agent.sock",
                "listenerMetadata": "hello",
                "syscalls": [
                    {"name": "socket", "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
                    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},
                              {"index": 2, "value": 255, "valueTwo": 17, "op": "SCMP_CMP_MASKED_EQ"}]},
                    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                    {"names": ["getpid", "gettid"], "action": "SCMP_ACT_LOG"}
                ]
            }"#,
        )
        .unwrap();
        let seccomp = resolve(&profile, &[], "amd64", None).unwrap();
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        assert_eq!(
            seccomp.flags(),
            &Some(vec![LinuxSeccompFilterFlag::SeccompFilterFlagLog])
        );
        assert_eq!(
            seccomp.listener_path().as_deref(),
            Some(std::path::Path::new("/run/agent.sock"))
        );
        assert_eq!(seccomp.listener_metadata().as_deref(), Some("hello"));

        let syscalls = seccomp.syscalls().as_ref().unwrap();
        assert_eq!(
            names(&seccomp),
            ["socket", "clone", "clone3", "getpid", "gettid"]
        );
        let socket = &syscalls[0];
        assert_eq!(socket.action(), LinuxSeccompAction::ScmpActAllow);
        let arg = socket.args().as_ref().unwrap()[0];
        assert_eq!(
            (arg.index(), arg.value(), arg.value_two(), arg.op()),
            (0, 40, None, LinuxSeccompOperator::ScmpCmpNe)
        );
        let clone_args = syscalls[1].args().as_ref().unwrap();
        assert_eq!(
            clone_args[0].value_two(),
            None,
            "0 is left out, as Docker does"
        );
        assert_eq!(clone_args[1].value_two(), Some(17));
        assert_eq!(clone_args[1].index(), 2);
        assert_eq!(syscalls[2].errno_ret(), Some(38));
        assert_eq!(syscalls[3].action(), LinuxSeccompAction::ScmpActLog);
        assert_eq!(syscalls[3].args(), &None);

        // The OCI JSON uses the spec's spelling.
        let json = serde_json::to_value(&seccomp).unwrap();
        assert_eq!(json["syscalls"][1]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(json["syscalls"][2]["errnoRet"], 38);
        assert_eq!(json["flags"][0], "SECCOMP_FILTER_FLAG_LOG");
    }

    #[test]
    fn masked_eq_and_ne_mean_what_docker_means() {
        let profile = Profile::from_json(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]}"#,
        )
        .unwrap();
        let seccomp = resolve(&profile, &[], "amd64", None).unwrap();
        let clone = |flags: u64| evaluate(&seccomp, "clone", [flags, 0, 0, 0, 0, 0]);
        assert_eq!(clone(0x11), Outcome::Allow);
        assert_eq!(clone(0x1000_0011), Outcome::Errno(1));
    }

    fn error(json: &str, arch: &str) -> ProfileError {
        let profile = Profile::from_json(json).unwrap();
        resolve(&profile, &[], arch, None).unwrap_err()
    }

    #[test]
    fn errors_name_the_problem() {
        let rule = |rule: &str| {
            format!(
                r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": ["read"], "action": "SCMP_ACT_ALLOW"}}, {rule}]}}"#
            )
        };
        let cases: Vec<(String, &str, &str)> = vec![
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}"#.into(),
                "sparc",
                r#"unknown architecture "sparc""#,
            ),
            (
                r#"{"syscalls": []}"#.into(),
                "amd64",
                "the profile has no defaultAction",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALOW"}"#.into(),
                "amd64",
                r#"defaultAction: unknown action "SCMP_ACT_ALOW""#,
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}"#.into(),
                "amd64",
                "defaultAction: errnoRet 1 given for SCMP_ACT_ALLOW, which takes none",
            ),
            (
                rule(r#"{"names": ["write"], "action": "allow"}"#),
                "amd64",
                r#"syscalls[1]: unknown action "allow""#,
            ),
            (
                rule(r#"{"names": ["write"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}"#),
                "amd64",
                "syscalls[1]: errnoRet 1 given for SCMP_ACT_ALLOW, which takes none",
            ),
            (
                rule(r#"{"name": "write", "names": ["write"], "action": "SCMP_ACT_ALLOW"}"#),
                "amd64",
                "syscalls[1]: both name and names are set, use one",
            ),
            (
                rule(r#"{"names": [], "action": "SCMP_ACT_ALLOW"}"#),
                "amd64",
                "syscalls[1]: no syscall named",
            ),
            (
                rule(
                    r#"{"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "=="}]}"#,
                ),
                "amd64",
                r#"syscalls[1].args[1]: unknown operator "==""#,
            ),
            (
                rule(
                    r#"{"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}"#,
                ),
                "amd64",
                "syscalls[1].args[0]: index 6 is out of range",
            ),
            (
                // Checked even though the rule does not apply on this host.
                rule(
                    r#"{"names": ["write"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["x86_46"]}}"#,
                ),
                "amd64",
                r#"syscalls[1].includes.arches: unknown architecture "x86_46""#,
            ),
            (
                rule(
                    r#"{"names": ["write"], "action": "SCMP_ACT_BOGUS", "includes": {"arches": ["s390x"]}}"#,
                ),
                "amd64",
                r#"syscalls[1]: unknown action "SCMP_ACT_BOGUS""#,
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                    "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#
                    .into(),
                "amd64",
                "both architectures and archMap are set, use one",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
                    {"architecture": "SCMP_ARCH_X86_64"},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM", "SCMP_ARCH_THUMB"]}]}"#
                    .into(),
                "amd64",
                r#"archMap[1].subArchitectures[1]: unknown seccomp architecture "SCMP_ARCH_THUMB""#,
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["x86_64"]}"#.into(),
                "amd64",
                r#"architectures[0]: unknown seccomp architecture "x86_64""#,
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#
                    .into(),
                "amd64",
                r#"flags: unknown seccomp filter flag "SECCOMP_FILTER_FLAG_FAST""#,
            ),
        ];
        for (json, arch, want) in cases {
            let got = error(&json, arch).to_string();
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn error_variants_carry_the_location() {
        let err = error(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["write"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["vax"]}}]}"#,
            "amd64",
        );
        assert!(matches!(
            err,
            ProfileError::UnknownConditionArch { rule: 1, condition: Condition::Excludes, ref arch } if arch == "vax"
        ));
    }
}
