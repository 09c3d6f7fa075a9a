//! Facts about the host, read from outside any container: namespaces, cgroups, kernel support.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, bail};

use crate::case::skip;

/// Where cgroup file systems are mounted on Linux hosts.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Where a hybrid host mounts its cgroup2 hierarchy (systemd's layout).
pub const CGROUP2_HYBRID_MOUNT: &str = "/sys/fs/cgroup/unified";

/// Set by `--cgroup2-ns`: the runtime runs where `/sys/fs/cgroup` is the host's cgroup2
/// hierarchy (see [`crate::cgroup2_ns`]), while the suite itself still sees the host's layout.
static CGROUP2_NS: AtomicBool = AtomicBool::new(false);

/// Records whether runtime invocations go through the `--cgroup2-ns` wrapper.
pub fn set_cgroup2_ns(on: bool) {
    CGROUP2_NS.store(on, Ordering::Relaxed);
}

/// True when runtime invocations go through the `--cgroup2-ns` wrapper.
pub fn cgroup2_ns() -> bool {
    CGROUP2_NS.load(Ordering::Relaxed)
}

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
fn host_v2_unified() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// True when the runtime under test sees a pure cgroup v2 layout: a v2 host, or `--cgroup2-ns`.
pub fn cgroup_v2_unified() -> bool {
    cgroup2_ns() || host_v2_unified()
}

/// Where the cgroup2 hierarchy the runtime uses is mounted in the suite's own mount namespace.
pub fn cgroup_v2_root() -> PathBuf {
    if host_v2_unified() {
        PathBuf::from(CGROUP_ROOT)
    } else {
        PathBuf::from(CGROUP2_HYBRID_MOUNT)
    }
}

/// Skips unless the runtime can use `controller` (`memory`, `cpu`, `pids`, `hugetlb`, `io`):
/// in the v2 hierarchy's `cgroup.controllers` (a controller bound to a v1 hierarchy is not
/// there, cgroups(7)), or as a mounted v1 hierarchy.
pub fn require_controller(controller: &str) -> anyhow::Result<()> {
    if cgroup_v2_unified() {
        let path = cgroup_v2_root().join("cgroup.controllers");
        let text = fs::read_to_string(&path).unwrap_or_default();
        if !text.split_whitespace().any(|c| c == controller) {
            let why = if cgroup2_ns() {
                " (under --cgroup2-ns only the controllers of the host's cgroup2 hierarchy exist; \
                 this one is bound to a v1 hierarchy)"
            } else {
                ""
            };
            return Err(skip(format!(
                "no {controller} controller in the cgroup2 hierarchy ({} lists {:?}){why}",
                path.display(),
                text.trim()
            )));
        }
    } else if !Path::new(CGROUP_ROOT).join(controller).is_dir() {
        return Err(skip(format!(
            "no cgroup v1 {controller} hierarchy at {CGROUP_ROOT}/{controller}"
        )));
    }
    Ok(())
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
                return Ok(cgroup_v2_root().join(rel));
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

/// A mount the suite made in its own (the host's) mount namespace for one case, detached
/// (`umount2(MNT_DETACH)`) when dropped, so the case directory can be removed.
#[derive(Debug)]
pub struct HostMount(PathBuf);

impl HostMount {
    /// Bind-mounts `dir` onto itself and makes it a shared mount (a new peer group,
    /// mount_namespaces(7)): a source whose propagation a container's mounts can show.
    pub fn shared_bind(dir: &Path) -> anyhow::Result<Self> {
        use nix::mount::{MsFlags, mount};
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .with_context(|| format!("bind-mounting {} onto itself", dir.display()))?;
        let guard = Self(dir.to_path_buf());
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .with_context(|| format!("making {} a shared mount", dir.display()))?;
        Ok(guard)
    }

    /// Mounts a small tmpfs at `dir`.
    pub fn tmpfs(dir: &Path) -> anyhow::Result<Self> {
        use nix::mount::{MsFlags, mount};
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .with_context(|| format!("mounting a tmpfs at {}", dir.display()))?;
        Ok(Self(dir.to_path_buf()))
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// True if the kernel is at least `major.minor` (the release in /proc/sys/kernel/osrelease).
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return false;
    };
    (a, b) >= (major, minor)
}
