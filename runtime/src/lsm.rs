//! Linux security module labels for the container's process: `process.apparmorProfile` and
//! `process.selinuxLabel`.
//!
//! Both are "on exec" labels: the init writes them to its procfs attributes and the kernel
//! applies them at `execve`, so the runtime's own code never runs confined. A label asked for on
//! a host without that LSM is refused before anything is created, rather than silently ignored:
//! the caller believes the container is confined.
//!
//! The writes go through a verified procfs handle (pathrs), so a mount over `/proc` in the
//! container cannot redirect them (CVE-2019-16884, CVE-2025-52881).

use std::io::Write;

use oci_spec::runtime::Process;
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

/// Why a label could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("process.apparmorProfile {0:?} is set, but AppArmor is not enabled on this host")]
    AppArmorDisabled(String),
    #[error(
        "process.selinuxLabel {0:?} is set, but SELinux is disabled or not supported on this host"
    )]
    SelinuxDisabled(String),
    #[error("cannot write {attr} for the container's process")]
    Write {
        attr: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Is AppArmor enabled (the module parameter the kernel exports)?
pub fn apparmor_enabled() -> bool {
    std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.first() == Some(&b'Y'))
}

/// Is SELinux enabled (selinuxfs is mounted where the kernel puts it)?
pub fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Refuse labels the host cannot honour. Runs before anything is created.
pub fn check(process: &Process) -> Result<(), LsmError> {
    if let Some(p) = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        if !apparmor_enabled() {
            return Err(LsmError::AppArmorDisabled(p.to_string()));
        }
    }
    if let Some(l) = process.selinux_label().as_deref().filter(|l| !l.is_empty()) {
        if !selinux_enabled() {
            return Err(LsmError::SelinuxDisabled(l.to_string()));
        }
    }
    Ok(())
}

/// Set the exec-time labels of the calling thread (the init, before it execs).
pub fn set_exec_labels(process: &Process) -> Result<(), LsmError> {
    let profile = process
        .apparmor_profile()
        .as_deref()
        .filter(|p| !p.is_empty());
    let label = process.selinux_label().as_deref().filter(|l| !l.is_empty());
    if profile.is_none() && label.is_none() {
        return Ok(());
    }
    let to_io = |e: pathrs::error::Error| std::io::Error::other(e.to_string());
    let procfs = ProcfsHandle::new().map_err(|e| LsmError::Write {
        attr: "attr",
        source: to_io(e),
    })?;
    let write = |sub: &'static str, value: String| {
        let err = |source| LsmError::Write { attr: sub, source };
        let mut f = procfs
            .open(ProcfsBase::ProcThreadSelf, sub, OpenFlags::O_WRONLY)
            .map_err(|e| err(to_io(e)))?;
        f.write_all(value.as_bytes()).map_err(err)
    };
    if let Some(profile) = profile {
        // The AppArmor interface: "exec <profile>" to the module's own attribute directory
        // (Linux 5.8+), as libapparmor's aa_change_onexec does.
        write("attr/apparmor/exec", format!("exec {profile}"))?;
    }
    if let Some(label) = label {
        write("attr/exec", label.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(v: serde_json::Value) -> Process {
        serde_json::from_value(v).expect("process")
    }

    #[test]
    fn no_labels_is_fine() {
        check(&process(
            serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}}),
        ))
        .expect("no labels");
    }

    #[test]
    fn labels_without_the_lsm_are_refused() {
        let p = process(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0}, "apparmorProfile": "docker-default"
        }));
        match check(&p) {
            Ok(()) => assert!(apparmor_enabled(), "accepted without AppArmor"),
            Err(e) => {
                assert!(!apparmor_enabled());
                assert!(e.to_string().contains("docker-default"), "{e}");
            }
        }
        let p = process(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0}, "selinuxLabel": "system_u:system_r:container_t:s0"
        }));
        match check(&p) {
            Ok(()) => assert!(selinux_enabled(), "accepted without SELinux"),
            Err(e) => {
                assert!(!selinux_enabled());
                assert!(e.to_string().contains("container_t"), "{e}");
            }
        }
    }
}
