//! Which namespaces a container gets, and in what order they are entered.
//!
//! New namespaces are created by the single `clone` that starts the init (crun's shape: one
//! process, all flags at once). The kernel creates a new user namespace first when several
//! `CLONE_NEW*` flags are given together (user_namespaces(7)), so the other new namespaces are
//! owned by it without a second step. Two kinds are "for children only" and are therefore set up
//! by the runtime *before* the clone, so that the init is born inside them:
//! - pid (`setns` to a pid namespace only moves future children, pid_namespaces(7));
//! - time (`CLONE_NEWTIME` cannot be passed to `clone(2)` — its bit is in `CSIGNAL` — and the
//!   offsets must be written before any process enters the namespace, time_namespaces(7)).
//!
//! Existing namespaces named by `path` are joined by the init with `setns` in [`NAMESPACE_ORDER`].

use std::fs::File;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Order in which existing namespaces are joined. The user namespace comes first: once the init
/// is in the target user namespace it holds the capabilities needed to join the namespaces that
/// user namespace owns (runc joins in the same order). Mount comes after the others so that any
/// path the init still resolves is looked up in the runtime's view until the last moment.
pub const NAMESPACE_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
];

/// The name of a namespace type as config.json spells it (`network`, not the kernel's `net`).
pub fn type_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// The name of a namespace type under `/proc/<pid>/ns/`.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Why the namespaces of a configuration cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("linux.namespaces[{}].path {path:?} cannot be opened", type_name(*typ))]
    Open {
        typ: LinuxNamespaceType,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("linux.namespaces must include a mount namespace (the rootfs is set up in it)")]
    NoMountNamespace,
}

/// The `CLONE_NEW*` flag of a namespace type.
pub fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// An existing namespace to join, opened by the runtime before the clone so that a bad path is
/// reported before anything is created.
#[derive(Debug)]
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub file: File,
}

/// How the namespaces of one container are set up.
#[derive(Debug)]
pub struct Plan {
    /// Flags for the init's `clone` (new namespaces, time excluded).
    pub clone_flags: CloneFlags,
    /// `unshare(CLONE_NEWTIME)` in the runtime before the clone.
    pub new_time: bool,
    /// Joined by the runtime before the clone (they only affect children): pid and time.
    pub join_before_clone: Vec<Join>,
    /// Joined by the init after the clone, in [`NAMESPACE_ORDER`].
    pub join_in_init: Vec<Join>,
    /// The init is in a new user namespace and waits for its id mappings.
    pub new_user: bool,
    /// A new cgroup namespace, unshared by the init once the runtime has placed it in the
    /// container's cgroup (a namespace made by the clone would be rooted at the runtime's own
    /// cgroup, cgroup_namespaces(7)). Not part of `clone_flags`.
    pub new_cgroup: bool,
    /// The process is already in the joined user namespace (the intermediate joined it).
    pub joined_user: bool,
    /// The init binds its own cgroup directories (a `cgroup` mount without a cgroup namespace),
    /// so it must be in its cgroup before it mounts.
    pub binds_own_cgroup: bool,
}

impl Plan {
    /// The init waits for the runtime's `CgroupPlaced` before going on.
    pub fn waits_for_cgroup(&self) -> bool {
        self.new_cgroup || self.binds_own_cgroup
    }

    /// An existing user namespace is joined while other namespaces are new: they must be created
    /// from inside the joined user namespace (see `process::clone_via_intermediate`).
    pub fn needs_intermediate(&self) -> bool {
        let joins_user = self
            .join_in_init
            .first()
            .is_some_and(|j| j.typ == LinuxNamespaceType::User);
        joins_user && (!self.clone_flags.is_empty() || self.new_time || self.new_cgroup)
    }

    /// The same plan for a process that is already in the joined user namespace (descriptors
    /// are duplicated).
    pub fn without_user_join(&self) -> std::io::Result<Plan> {
        let dup = |joins: &[Join]| -> std::io::Result<Vec<Join>> {
            joins
                .iter()
                .filter(|j| j.typ != LinuxNamespaceType::User)
                .map(|j| {
                    Ok(Join {
                        typ: j.typ,
                        file: j.file.try_clone()?,
                    })
                })
                .collect()
        };
        Ok(Plan {
            clone_flags: self.clone_flags,
            new_time: self.new_time,
            join_before_clone: dup(&self.join_before_clone)?,
            join_in_init: dup(&self.join_in_init)?,
            new_user: false,
            new_cgroup: self.new_cgroup,
            joined_user: true,
            binds_own_cgroup: self.binds_own_cgroup,
        })
    }
}

/// Work out the plan for a validated spec.
pub fn plan(spec: &Spec) -> Result<Plan, NamespaceError> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !namespaces
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::Mount)
    {
        return Err(NamespaceError::NoMountNamespace);
    }
    let mut plan = Plan {
        clone_flags: CloneFlags::empty(),
        new_time: false,
        join_before_clone: Vec::new(),
        join_in_init: Vec::new(),
        new_user: false,
        new_cgroup: false,
        joined_user: false,
        binds_own_cgroup: spec
            .mounts()
            .iter()
            .flatten()
            .any(|m| m.typ().as_deref() == Some("cgroup"))
            && !namespaces
                .iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Cgroup),
    };
    for typ in NAMESPACE_ORDER {
        let Some(ns) = namespaces.iter().find(|ns| ns.typ() == typ) else {
            continue;
        };
        match ns.path() {
            None if typ == LinuxNamespaceType::Time => plan.new_time = true,
            None if typ == LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
            None => {
                plan.clone_flags |= clone_flag(typ);
                plan.new_user |= typ == LinuxNamespaceType::User;
            }
            Some(path) => {
                let file = File::open(path).map_err(|source| NamespaceError::Open {
                    typ,
                    path: path.clone(),
                    source,
                })?;
                let join = Join { typ, file };
                if matches!(typ, LinuxNamespaceType::Pid | LinuxNamespaceType::Time) {
                    plan.join_before_clone.push(join);
                } else {
                    plan.join_in_init.push(join);
                }
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(namespaces: serde_json::Value) -> Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": namespaces}
        }))
        .expect("spec")
    }

    #[test]
    fn new_namespaces_become_clone_flags() {
        let p = plan(&spec(json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "network"}, {"type": "user"}, {"type": "time"}
        ])))
        .expect("plan");
        assert_eq!(
            p.clone_flags,
            CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWNET
                | CloneFlags::CLONE_NEWUSER
        );
        assert!(p.new_time && p.new_user);
        assert!(p.join_before_clone.is_empty() && p.join_in_init.is_empty());
    }

    #[test]
    fn joined_namespaces_follow_the_order() {
        let p = plan(&spec(json!([
            {"type": "mount", "path": "/proc/self/ns/mnt"},
            {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "pid", "path": "/proc/self/ns/pid"},
            {"type": "user", "path": "/proc/self/ns/user"},
            {"type": "uts"}
        ])))
        .expect("plan");
        let order: Vec<_> = p.join_in_init.iter().map(|j| j.typ).collect();
        assert_eq!(
            order,
            [
                LinuxNamespaceType::User,
                LinuxNamespaceType::Network,
                LinuxNamespaceType::Mount
            ]
        );
        let before: Vec<_> = p.join_before_clone.iter().map(|j| j.typ).collect();
        assert_eq!(before, [LinuxNamespaceType::Pid]);
        assert_eq!(p.clone_flags, CloneFlags::CLONE_NEWUTS);
    }

    #[test]
    fn bad_path_is_named() {
        let err = plan(&spec(
            json!([{"type": "mount"}, {"type": "network", "path": "/nonexistent/ns"}]),
        ))
        .expect_err("must fail");
        assert!(
            err.to_string()
                .contains("linux.namespaces[network].path \"/nonexistent/ns\""),
            "{err}"
        );
    }

    #[test]
    fn mount_namespace_required() {
        assert!(matches!(
            plan(&spec(json!([{"type": "pid"}]))),
            Err(NamespaceError::NoMountNamespace)
        ));
    }
}
