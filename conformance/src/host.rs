//! Facts about the host, read from outside any container: namespaces, cgroups, kernel support.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Where cgroup file systems are mounted on Linux hosts.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The namespace link (`net:[4026531840]`) of `/proc/<pid>/ns/<ns>`.
pub fn ns_link(pid: &str, ns: &str) -> anyhow::Result<String> {
    let link = format!("/proc/{pid}/ns/{ns}");
    let target = fs::read_link(&link).with_context(|| format!("readlink {link}"))?;
    Ok(target.to_string_lossy().into_owned())
}

/// True if the kernel has namespaces of this `/proc/self/ns` name.
pub fn has_ns(ns: &str) -> bool {
    Path::new("/proc/self/ns").join(ns).exists()
}

/// The `/proc/self/ns` name of an OCI namespace type.
pub fn proc_ns_name(oci_type: &str) -> &'static str {
    match oci_type {
        "pid" => "pid",
        "network" => "net",
        "mount" => "mnt",
        "ipc" => "ipc",
        "uts" => "uts",
        "user" => "user",
        "cgroup" => "cgroup",
        "time" => "time",
        _ => "unknown",
    }
}

/// True on a pure cgroup v2 host (`/sys/fs/cgroup` is the unified hierarchy).
pub fn cgroup_v2_unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// The directory of `pid`'s cgroup for `controller` (`memory`, `pids`, `cpu`, `freezer`): on
/// a v1 or hybrid host the v1 hierarchy that has it, on a v2 host the unified one. Read from
/// `/proc/<pid>/cgroup` (cgroups(7)).
pub fn cgroup_dir(pid: &str, controller: &str) -> anyhow::Result<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("reading /proc/{pid}/cgroup"))?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if cgroup_v2_unified() {
            if controllers.is_empty() {
                return Ok(Path::new(CGROUP_ROOT).join(rel));
            }
        } else if controllers.split(',').any(|c| c == controller) {
            // v1 hierarchies are mounted at /sys/fs/cgroup/<name>; co-mounted ones
            // (cpu,cpuacct) also have a symlink per controller.
            return Ok(Path::new(CGROUP_ROOT).join(controller).join(rel));
        }
    }
    bail!("/proc/{pid}/cgroup lists no {controller} cgroup:\n{text}")
}

/// Removes leftover cgroup directories `<hierarchy>/<rel>` in every hierarchy (best effort:
/// the runtime's `delete` should have removed them already).
pub fn remove_cgroup_everywhere(rel: &str) {
    let rel = rel.trim_start_matches('/');
    let Ok(entries) = fs::read_dir(CGROUP_ROOT) else {
        return;
    };
    let _ = fs::remove_dir(Path::new(CGROUP_ROOT).join(rel));
    for entry in entries.flatten() {
        let _ = fs::remove_dir(entry.path().join(rel));
    }
}
