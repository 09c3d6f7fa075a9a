//! Docker's seccomp profile format: the JSON that `docker run --security-opt seccomp=FILE` reads
//! (moby/profiles `seccomp.Seccomp`), as plain serde types.
//!
//! The format is the OCI `linux.seccomp` object plus three things that make one file serve every
//! host and container: `archMap` (native architecture → the sub-architectures to filter with it),
//! per-rule `includes`/`excludes` conditions (capabilities, architecture, minimum kernel), and
//! the `name` and `comment` fields. [`crate::resolve`] evaluates the conditions for one
//! container and returns plain OCI.
//!
//! # Parsing like Docker
//!
//! Docker decodes profiles with Go's `encoding/json`, so these types accept what it accepts:
//! unknown fields are ignored, `null` stands for an empty list or an absent object, and every
//! field may be missing. Action, operator and architecture strings stay strings here (Go keeps
//! them as plain strings too); [`crate::resolve`] rejects unknown ones, naming the rule.
//! One Go quirk is not reproduced: Go matches field names case-insensitively
//! (`"DefaultAction"` works there), serde does not.

use serde::{Deserialize, Deserializer, Serialize};

use crate::ProfileError;
use crate::kernel::KernelVersion;

/// A seccomp profile in Docker's format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// The action for syscalls no rule matches, `SCMP_ACT_*`. Required by [`crate::resolve`].
    #[serde(default, deserialize_with = "null_as_default")]
    pub default_action: String,
    /// The errno returned by a `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE` default action
    /// (runc's default when absent: `EPERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// A fixed list of `SCMP_ARCH_*` architectures, the profile format before `archMap`. Only
    /// one of `architectures` and `archMap` may be given.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub architectures: Vec<String>,
    /// For each native architecture, the compat ABIs filtered along with it.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arch_map: Vec<ArchMapEntry>,
    /// `SECCOMP_FILTER_FLAG_*` names, passed through to the OCI profile.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub flags: Vec<String>,
    /// The seccomp agent socket for `SCMP_ACT_NOTIFY`, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// Opaque data for the seccomp agent, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    /// The rules, in order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub syscalls: Vec<Rule>,
}

impl Profile {
    /// Parses a profile from JSON text, as `docker run --security-opt seccomp=FILE` does.
    pub fn from_json(json: &str) -> Result<Profile, ProfileError> {
        serde_json::from_str(json).map_err(|source| ProfileError::Parse { source })
    }

    /// The profile as pretty-printed JSON in Docker's format.
    pub fn to_json(&self) -> String {
        // Serialising these types cannot fail: every map key is a string and no field has a
        // fallible `Serialize` impl.
        serde_json::to_string_pretty(self).expect("a Profile always serialises")
    }
}

/// One `archMap` entry: when the container's native architecture is `architecture`, the
/// filter also covers `subArchitectures` (the compat ABIs a process there can switch to).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMapEntry {
    /// `SCMP_ARCH_*`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub architecture: String,
    /// `SCMP_ARCH_*`; `null` in JSON means none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub_architectures: Vec<String>,
}

/// One entry of `syscalls`: what to do with some syscalls, and when the entry applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The syscalls this rule is for.
    #[serde(default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    /// A single syscall: the format before `names`. Only one of `name` and `names` may be given.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// `SCMP_ACT_*`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub action: String,
    /// The errno for `SCMP_ACT_ERRNO` (or the value for `SCMP_ACT_TRACE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument comparisons; all must hold for the rule to match a call.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<Arg>,
    /// Free text; not used by the filter.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    /// Conditions that must all hold for the rule to be part of a container's profile.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub includes: Filter,
    /// Conditions of which none may hold for the rule to be part of a container's profile.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Filter::is_empty"
    )]
    pub excludes: Filter,
}

impl Rule {
    /// Whether the rule depends on the container or the host (has `includes` or `excludes`).
    pub fn is_conditional(&self) -> bool {
        !self.includes.is_empty() || !self.excludes.is_empty()
    }
}

/// A comparison of one syscall argument (`SCMP_CMP_*`), as in OCI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Which argument, 0–5.
    #[serde(default)]
    pub index: u32,
    /// The operand (the mask for `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value: u64,
    /// The second operand: what the masked argument must equal for `SCMP_CMP_MASKED_EQ`.
    /// Go's `omitempty` makes absent and 0 the same thing.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value_two: u64,
    /// `SCMP_CMP_*`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub op: String,
}

/// The conditions of `includes` or `excludes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_*`), checked against the container's bounding set.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub caps: Vec<String>,
    /// Architectures in Docker's naming (`amd64`, `arm64`, `x86`, `s390x`, …), checked against
    /// the native architecture of the host.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub arches: Vec<String>,
    /// A kernel version `"<major>.<minor>"`, checked against the host's. An empty string means
    /// no condition.
    #[serde(
        default,
        deserialize_with = "crate::kernel::deserialize_min_kernel",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_kernel: Option<KernelVersion>,
}

impl Filter {
    /// Whether the filter has no condition at all.
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// Go's `encoding/json` leaves a field at its zero value when the JSON says `null`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile written the way people write them for Docker: old `name` form, `null`s,
    /// fields this crate does not know, missing optional fields.
    const HAND_WRITTEN: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}
        ],
        "someFutureField": {"nested": [1, 2, 3]},
        "syscalls": [
            {"name": "read", "action": "SCMP_ACT_ALLOW", "args": null, "comment": "old form"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW", "includes": null, "excludes": {}},
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE", "extra": true}],
                "includes": {"caps": ["CAP_NET_RAW"], "arches": ["amd64"], "minKernel": "5.4"},
                "excludes": {"minKernel": ""}
            },
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
        ]
    }"#;

    #[test]
    fn parses_docker_style_json() {
        let profile = Profile::from_json(HAND_WRITTEN).unwrap();
        assert_eq!(profile.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(profile.default_errno_ret, Some(1));
        assert_eq!(profile.arch_map.len(), 2);
        assert!(profile.arch_map[1].sub_architectures.is_empty());
        assert_eq!(profile.syscalls.len(), 4);

        let read = &profile.syscalls[0];
        assert_eq!(read.name, "read");
        assert!(read.names.is_empty() && read.args.is_empty());
        assert_eq!(read.comment, "old form");
        assert!(!read.is_conditional());

        let write = &profile.syscalls[1];
        assert!(write.includes.is_empty() && write.excludes.is_empty());

        let socket = &profile.syscalls[2];
        assert_eq!(
            socket.args,
            [Arg {
                index: 0,
                value: 40,
                value_two: 0,
                op: "SCMP_CMP_NE".into()
            }]
        );
        assert_eq!(socket.includes.caps, ["CAP_NET_RAW"]);
        assert_eq!(socket.includes.arches, ["amd64"]);
        assert_eq!(
            socket.includes.min_kernel,
            Some(KernelVersion { major: 5, minor: 4 })
        );
        assert_eq!(socket.excludes.min_kernel, None, "\"\" means no condition");
        assert!(socket.is_conditional());

        assert_eq!(profile.syscalls[3].errno_ret, Some(38));
    }

    #[test]
    fn json_round_trip_keeps_the_profile() {
        let profile = Profile::from_json(HAND_WRITTEN).unwrap();
        let again = Profile::from_json(&profile.to_json()).unwrap();
        assert_eq!(again, profile);
    }

    #[test]
    fn serialises_in_docker_field_names() {
        let profile = Profile::from_json(HAND_WRITTEN).unwrap();
        let value: serde_json::Value = serde_json::from_str(&profile.to_json()).unwrap();
        assert_eq!(value["defaultErrnoRet"], 1);
        assert_eq!(value["archMap"][0]["subArchitectures"][0], "SCMP_ARCH_X86");
        assert_eq!(value["syscalls"][2]["includes"]["minKernel"], "5.4");
        assert_eq!(value["syscalls"][3]["errnoRet"], 38);
        // Empty conditions and zero valueTwo are left out, as Go's omitempty does.
        assert!(value["syscalls"][1].get("includes").is_none());
        assert!(value["syscalls"][2]["args"][0].get("valueTwo").is_none());
    }

    #[test]
    fn rejects_malformed_json_with_the_reason() {
        let err = Profile::from_json(r#"{"defaultAction": 7}"#).unwrap_err();
        assert!(matches!(err, ProfileError::Parse { .. }), "{err}");
        let err = Profile::from_json(r#"{"syscalls": [{"args": [{"index": -1}]}]}"#).unwrap_err();
        assert!(matches!(err, ProfileError::Parse { .. }), "{err}");
    }
}
