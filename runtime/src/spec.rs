//! Loading and validating a bundle's `config.json` (OCI runtime spec, `config.md` and
//! `config-linux.md`).
//!
//! Parsing is done by `oci-spec`; this module adds the checks the spec words as MUST and the ones
//! runc makes before it touches the kernel, so that bad input is refused with a message naming the
//! field before anything is created.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::namespaces::type_name;

/// Why a bundle's configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid configuration: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{field} {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Read `<bundle>/config.json` and validate it.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    let spec: Spec =
        serde_json::from_slice(&bytes).map_err(|source| SpecError::Parse { path, source })?;
    validate(&spec)?;
    let root = rootfs_path(&spec, bundle)?;
    match std::fs::metadata(&root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(invalid(
                "root.path",
                format!("{:?} is not a directory", root),
            ));
        }
        Err(_) => return Err(invalid("root.path", format!("{:?} does not exist", root))),
    }
    Ok(spec)
}

/// The absolute path of the container's root filesystem (`root.path` is absolute or relative to
/// the bundle).
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "is required"))?;
    Ok(if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    })
}

/// Does the spec ask for a new namespace of this type (present without a `path`)?
pub fn new_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespace(spec, typ).is_some_and(|ns| ns.path().is_none())
}

/// The spec's entry for a namespace type, if any.
pub fn namespace(
    spec: &Spec,
    typ: LinuxNamespaceType,
) -> Option<&oci_spec::runtime::LinuxNamespace> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|ns| ns.typ() == typ)
}

/// Checks that need no filesystem access.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            "ociVersion",
            format!("{:?} is not a supported version (1.x)", spec.version()),
        ));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "is required"))?;
    if root.path().as_os_str().is_empty() {
        return Err(invalid("root.path", "must not be empty"));
    }
    validate_process(spec)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "is required on Linux"))?;

    // Fields this runtime does not implement yet are refused, not ignored: a caller that sets
    // them expects their effect.
    let unsupported = [
        ("linux.personality", linux.personality().is_some()),
        ("linux.intelRdt", linux.intel_rdt().is_some()),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
        ),
        ("linux.memoryPolicy", linux.memory_policy().is_some()),
        (
            "linux.mountLabel",
            linux
                .mount_label()
                .as_deref()
                .is_some_and(|l| !l.is_empty()),
        ),
    ];
    for (field, set) in unsupported {
        if set {
            return Err(invalid(field, "is not supported by this runtime yet"));
        }
    }

    let mut seen = HashSet::new();
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                "linux.namespaces",
                format!("has {} more than once", ns.typ()),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(invalid(
                    format!("linux.namespaces[{}].path", type_name(ns.typ())),
                    format!("{path:?} must be an absolute path"),
                ));
            }
        }
    }
    let has_ns = |t| seen.contains(&t);

    let private_uts =
        new_namespace(spec, LinuxNamespaceType::Uts) || has_ns(LinuxNamespaceType::Uts);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !private_uts {
        return Err(invalid(
            "hostname",
            "cannot be set without a private UTS namespace",
        ));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !private_uts {
        return Err(invalid(
            "domainname",
            "cannot be set without a private UTS namespace",
        ));
    }

    let uid_maps = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid_maps = linux.gid_mappings().as_deref().unwrap_or_default();
    if new_namespace(spec, LinuxNamespaceType::User) {
        if uid_maps.is_empty() {
            return Err(invalid(
                "linux.uidMappings",
                "are required with a new user namespace",
            ));
        }
        if gid_maps.is_empty() {
            return Err(invalid(
                "linux.gidMappings",
                "are required with a new user namespace",
            ));
        }
    } else if !uid_maps.is_empty() || !gid_maps.is_empty() {
        return Err(invalid(
            "linux.uidMappings",
            "are only allowed with a new user namespace (no user namespace without a path)",
        ));
    }
    for (field, maps) in [
        ("linux.uidMappings", uid_maps),
        ("linux.gidMappings", gid_maps),
    ] {
        if let Some(m) = maps.iter().find(|m| m.size() == 0) {
            return Err(invalid(
                field,
                format!("entry for container id {} has size 0", m.container_id()),
            ));
        }
    }

    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() && !new_namespace(spec, LinuxNamespaceType::Time) {
            return Err(invalid("linux.timeOffsets", "require a new time namespace"));
        }
        for clock in offsets.keys() {
            if clock != "monotonic" && clock != "boottime" {
                return Err(invalid(
                    "linux.timeOffsets",
                    format!("clock {clock:?} is not one of \"monotonic\", \"boottime\""),
                ));
            }
        }
    }

    for key in linux
        .sysctl()
        .as_ref()
        .map(|s| s.keys().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let ns = sysctl_namespace(key).ok_or_else(|| {
            invalid(
                format!("linux.sysctl[{key:?}]"),
                "is not namespaced and cannot be set for a container",
            )
        })?;
        if !has_ns(ns) {
            return Err(invalid(
                format!("linux.sysctl[{key:?}]"),
                format!(
                    "needs a private {} namespace, which the configuration does not have",
                    type_name(ns)
                ),
            ));
        }
    }

    let paths = [
        (
            "linux.maskedPaths",
            linux.masked_paths().as_deref().unwrap_or_default(),
        ),
        (
            "linux.readonlyPaths",
            linux.readonly_paths().as_deref().unwrap_or_default(),
        ),
    ];
    for (field, list) in paths {
        for (i, p) in list.iter().enumerate() {
            if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    format!("{p:?} must be an absolute path inside the container, without \"..\""),
                ));
            }
        }
    }

    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(invalid(
                format!("mounts[{i}].uidMappings"),
                "(idmapped mounts) are not supported by this runtime yet",
            ));
        }
        if !m.destination().is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!("{:?} must be an absolute path", m.destination()),
            ));
        }
    }

    if let Some(hooks) = spec.hooks() {
        let lists = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in lists {
            for (i, hook) in list.as_deref().unwrap_or_default().iter().enumerate() {
                if !hook.path().is_absolute() {
                    return Err(invalid(
                        format!("hooks.{kind}[{i}].path"),
                        format!("{:?} must be an absolute path", hook.path()),
                    ));
                }
                if hook.timeout().is_some_and(|t| t <= 0) {
                    return Err(invalid(
                        format!("hooks.{kind}[{i}].timeout"),
                        "must be positive",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn validate_process(spec: &Spec) -> Result<(), SpecError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "is required"))?;
    let unsupported = [
        ("process.ioPriority", process.io_priority().is_some()),
        ("process.scheduler", process.scheduler().is_some()),
        (
            "process.execCPUAffinity",
            process.exec_cpu_affinity().is_some(),
        ),
    ];
    for (field, set) in unsupported {
        if set {
            return Err(invalid(field, "is not supported by this runtime yet"));
        }
    }
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args", "must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{:?} must be an absolute path", process.cwd()),
        ));
    }
    for (i, var) in process
        .env()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if !var.contains('=') {
            return Err(invalid(
                format!("process.env[{i}]"),
                format!("{var:?} is not of the form KEY=value"),
            ));
        }
    }
    let mut seen = Vec::new();
    for rl in process.rlimits().as_deref().unwrap_or_default() {
        if seen.contains(&rl.typ()) {
            return Err(invalid(
                "process.rlimits",
                format!("has {:?} more than once", rl.typ()),
            ));
        }
        if rl.soft() > rl.hard() {
            return Err(invalid(
                format!("process.rlimits[{:?}]", rl.typ()),
                format!("soft limit {} is above hard limit {}", rl.soft(), rl.hard()),
            ));
        }
        seen.push(rl.typ());
    }
    Ok(())
}

/// Which namespace isolates a sysctl, or `None` if it is global (the list is the kernel's:
/// ipc_namespaces(7), the per-netns `net.*` tree, and the UTS names).
pub fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "hostname": "box",
            "linux": {"namespaces": [{"type": "pid"}, {"type": "uts"}, {"type": "mount"}]}
        })
    }

    fn check(v: serde_json::Value) -> Result<(), String> {
        let spec: Spec = serde_json::from_value(v).map_err(|e| e.to_string())?;
        validate(&spec).map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_minimal_config() {
        check(base()).expect("valid");
    }

    #[test]
    fn empty_args_named() {
        let mut v = base();
        v["process"]["args"] = json!([]);
        assert_eq!(check(v).unwrap_err(), "process.args must not be empty");
        let mut v = base();
        v["process"].as_object_mut().expect("object").remove("args");
        assert_eq!(check(v).unwrap_err(), "process.args must not be empty");
    }

    #[test]
    fn relative_cwd_refused() {
        let mut v = base();
        v["process"]["cwd"] = json!("tmp");
        assert!(
            check(v)
                .unwrap_err()
                .starts_with("process.cwd \"tmp\" must be an absolute path")
        );
    }

    #[test]
    fn unknown_namespace_type_refused() {
        let mut v = base();
        v["linux"]["namespaces"] = json!([{"type": "bogus"}]);
        let err = check(v).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn duplicate_namespace_refused() {
        let mut v = base();
        v["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "pid"}]);
        assert!(check(v).unwrap_err().contains("more than once"));
    }

    #[test]
    fn hostname_needs_uts() {
        let mut v = base();
        v["linux"]["namespaces"] = json!([{"type": "pid"}]);
        assert_eq!(
            check(v).unwrap_err(),
            "hostname cannot be set without a private UTS namespace"
        );
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let mut v = base();
        v["linux"]["namespaces"] = json!([{"type": "user"}, {"type": "uts"}]);
        assert!(
            check(v.clone())
                .unwrap_err()
                .starts_with("linux.uidMappings")
        );
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        assert!(
            check(v.clone())
                .unwrap_err()
                .starts_with("linux.gidMappings")
        );
        v["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        check(v).expect("valid with both mappings");
    }

    #[test]
    fn mappings_without_user_namespace_refused() {
        let mut v = base();
        v["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
        assert!(
            check(v)
                .unwrap_err()
                .contains("only allowed with a new user namespace")
        );
    }

    #[test]
    fn time_offsets_need_time_namespace() {
        let mut v = base();
        v["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 10}});
        assert_eq!(
            check(v.clone()).unwrap_err(),
            "linux.timeOffsets require a new time namespace"
        );
        v["linux"]["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "time"}));
        check(v.clone()).expect("valid");
        v["linux"]["timeOffsets"] = json!({"realtime": {"secs": 10}});
        assert!(check(v).unwrap_err().contains("\"realtime\""));
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let mut v = base();
        v["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        assert!(
            check(v.clone())
                .unwrap_err()
                .contains("private network namespace")
        );
        v["linux"]["namespaces"]
            .as_array_mut()
            .expect("array")
            .push(json!({"type": "network"}));
        check(v.clone()).expect("valid");
        v["linux"]["sysctl"] = json!({"vm.swappiness": "1"});
        assert!(check(v).unwrap_err().contains("is not namespaced"));
    }

    #[test]
    fn relative_mount_destination_refused() {
        let mut v = base();
        v["mounts"] = json!([{"destination": "proc", "type": "proc", "source": "proc"}]);
        assert!(
            check(v)
                .unwrap_err()
                .starts_with("mounts[0].destination \"proc\"")
        );
    }

    #[test]
    fn rlimit_soft_above_hard_refused() {
        let mut v = base();
        v["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]);
        assert!(
            check(v)
                .unwrap_err()
                .contains("soft limit 10 is above hard limit 5")
        );
    }

    #[test]
    fn masked_paths_must_stay_inside() {
        for bad in ["proc/kcore", "/../../etc/shadow", "/proc/../../etc"] {
            let mut v = base();
            v["linux"]["maskedPaths"] = json!([bad]);
            assert!(
                check(v).unwrap_err().starts_with("linux.maskedPaths[0]"),
                "{bad}"
            );
        }
        let mut v = base();
        v["linux"]["readonlyPaths"] = json!(["/proc/sys", "sys"]);
        assert!(check(v).unwrap_err().starts_with("linux.readonlyPaths[1]"));
    }

    #[test]
    fn unimplemented_fields_are_refused_not_ignored() {
        let cases = [
            (
                "linux",
                "personality",
                json!({"domain": "LINUX32"}),
                "linux.personality",
            ),
            (
                "linux",
                "intelRdt",
                json!({"closID": "x"}),
                "linux.intelRdt",
            ),
            (
                "process",
                "ioPriority",
                json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}),
                "process.ioPriority",
            ),
            (
                "process",
                "scheduler",
                json!({"policy": "SCHED_BATCH"}),
                "process.scheduler",
            ),
        ];
        for (section, field, value, name) in cases {
            let mut v = base();
            v[section][field] = value;
            let err = check(v).unwrap_err();
            assert!(
                err.starts_with(name) && err.contains("not supported"),
                "{err}"
            );
        }
    }

    #[test]
    fn relative_hook_path_refused() {
        let mut v = base();
        v["hooks"] = json!({"poststop": [{"path": "bin/true"}]});
        assert!(check(v).unwrap_err().starts_with("hooks.poststop[0].path"));
    }

    #[test]
    fn sysctl_namespaces() {
        assert_eq!(
            sysctl_namespace("kernel.shmmax"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            sysctl_namespace("fs.mqueue.queues_max"),
            Some(LinuxNamespaceType::Ipc)
        );
        assert_eq!(
            sysctl_namespace("net.core.somaxconn"),
            Some(LinuxNamespaceType::Network)
        );
        assert_eq!(
            sysctl_namespace("kernel.hostname"),
            Some(LinuxNamespaceType::Uts)
        );
        assert_eq!(sysctl_namespace("kernel.pid_max"), None);
    }
}
