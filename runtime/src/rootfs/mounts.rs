//! Propagation of `/`, the rootfs bind, and the spec's `mounts[]` in order.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::Mount;
use pathrs::Root;

use super::options::{self, MountOptions};
use super::{RootfsConfig, RootfsError, path_err, resolve_err};
use crate::sys::{self, MountAttr, mount_api::*};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn cstring(s: impl AsRef<[u8]>) -> std::io::Result<CString> {
    CString::new(s.as_ref()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// Steps before any spec mount: propagation of `/`, and the rootfs turned into a mount point of
/// its own (pivot_root(2) needs `new_root` to be a mount point). Returns the rootfs as a
/// `pathrs::Root` for in-root resolution.
pub fn prepare_root(cfg: &RootfsConfig<'_>) -> Result<Root, RootfsError> {
    // 1. Set the propagation of every mount we copied from the host. The default, rslave, lets
    //    host mounts reach the container but not the other way; it is also what keeps the
    //    pivot_root below from detaching the host's mounts (the old root is unmounted in our
    //    namespace only).
    let linux = cfg.spec.linux().as_ref();
    let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") | Some("slave") | Some("rslave") => MsFlags::MS_SLAVE,
        Some("private") | Some("rprivate") => MsFlags::MS_PRIVATE,
        Some("shared") | Some("rshared") => MsFlags::MS_SHARED,
        Some("unbindable") | Some("runbindable") => MsFlags::MS_UNBINDABLE,
        Some(other) => return Err(RootfsError::Propagation(other.to_string())),
    };
    // With "shared" the mounts stay in the host's peer groups, so the rootfs bind below would
    // propagate back to the host and pivot_root would refuse a shared parent; rslave is applied
    // first and "shared" is restored on the new root after pivot_root (see `finish`).
    let first = if propagation == MsFlags::MS_SHARED {
        MsFlags::MS_SLAVE
    } else {
        propagation
    };
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        first | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| path_err("set propagation of", Path::new("/"))(e.into()))?;

    // 2. Bind the rootfs onto itself (recursively, so mounts the caller prepared inside it, such
    //    as an overlay's submounts, come along).
    let rootfs_c =
        cstring(cfg.rootfs.as_os_str().as_bytes()).map_err(path_err("bind", cfg.rootfs))?;
    let tree = sys::open_tree_clone(&rootfs_c, true)
        .map_err(path_err("clone mount of rootfs", cfg.rootfs))?;
    let target = std::fs::File::open(cfg.rootfs).map_err(path_err("open rootfs", cfg.rootfs))?;
    sys::move_mount(tree.as_fd(), target.as_fd())
        .map_err(path_err("bind rootfs onto itself", cfg.rootfs))?;
    drop(target);

    // 3. Re-open the rootfs now that the bind covers it: resolution must start in the new mount.
    Root::open(cfg.rootfs).map_err(resolve_err("open", cfg.rootfs))
}

/// Mount every entry of `mounts[]` in order.
pub fn mount_all(cfg: &RootfsConfig<'_>, root: &Root) -> Result<(), RootfsError> {
    for (index, m) in cfg
        .spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        mount_one(cfg, root, index, m)?;
    }
    Ok(())
}

fn mount_one(
    cfg: &RootfsConfig<'_>,
    root: &Root,
    index: usize,
    m: &Mount,
) -> Result<(), RootfsError> {
    let dest = m.destination();
    let config_err = |reason: String| RootfsError::MountConfig {
        index,
        destination: dest.clone(),
        reason,
    };
    let opts = options::parse(m.options().as_deref().unwrap_or_default())
        .map_err(|e| config_err(e.to_string()))?;
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = opts.bind || typ == "bind";
    let source = m.source().as_ref().map(|s| s.as_path());
    let source_str = source.map(|s| s.display().to_string()).unwrap_or_default();
    let mount_err = |op: &'static str| {
        let typ = if bind {
            "bind".to_string()
        } else {
            typ.to_string()
        };
        let source_path = source_str.clone();
        move |source: std::io::Error| RootfsError::Mount {
            index,
            typ,
            source_path,
            destination: dest.clone(),
            op,
            source,
        }
    };

    if bind {
        let src = source.ok_or_else(|| config_err("a bind mount needs a source".into()))?;
        let src = if src.is_absolute() {
            src.to_path_buf()
        } else {
            cfg.bundle.join(src)
        };
        let meta = std::fs::metadata(&src)
            .map_err(|_| config_err(format!("source {src:?} does not exist")))?;
        let target =
            make_target(root, dest, meta.is_dir()).map_err(mount_err("create mount point"))?;
        check_proc_destination(cfg.rootfs, dest, &target, "bind", Some(&src))
            .map_err(config_err)?;
        let src_c = cstring(src.as_os_str().as_bytes()).map_err(mount_err("source path"))?;
        let tree = sys::open_tree_clone(&src_c, opts.recursive)
            .map_err(mount_err("clone source mount"))?;
        set_attrs(&tree, &opts).map_err(mount_err("set mount attributes"))?;
        sys::move_mount(tree.as_fd(), target.as_fd()).map_err(mount_err("attach mount"))?;
        return set_propagation(&tree, &opts).map_err(mount_err("set propagation"));
    }

    match typ {
        "" => {
            return Err(config_err(
                "type is required unless the mount is a bind mount".into(),
            ));
        }
        // proc and sysfs go on a real directory: created if missing, then opened without
        // following a symlink, and that very descriptor is the mount target (no check-then-use
        // window; CVE-2023-27561).
        "proc" | "sysfs" => {
            super::ensure_dir_nofollow(root.as_fd(), dest)
                .map_err(|e| mount_err("create mount point")(e.into()))?;
            let target = ordinary_dir(root, dest).map_err(config_err)?;
            check_proc_destination(cfg.rootfs, dest, &target, typ, None).map_err(config_err)?;
            return mount_fs(cfg, typ, &source_str, &opts, &target)
                .map_err(|(op, e)| mount_err(op)(e));
        }
        "cgroup" => {
            let target = make_target(root, dest, true).map_err(mount_err("create mount point"))?;
            check_proc_destination(cfg.rootfs, dest, &target, typ, None).map_err(config_err)?;
            // Without a cgroup namespace of its own the container must not see the host's
            // hierarchies from their roots: its own cgroup is bound instead (as runc does).
            let private_view =
                crate::spec::namespace(cfg.spec, oci_spec::runtime::LinuxNamespaceType::Cgroup)
                    .is_some();
            return mount_cgroup(root, dest, &opts, private_view)
                .map_err(mount_err("mount cgroup hierarchies"));
        }
        _ => {}
    }
    let target = make_target(root, dest, true).map_err(mount_err("create mount point"))?;
    check_proc_destination(cfg.rootfs, dest, &target, typ, None).map_err(config_err)?;
    mount_fs(cfg, typ, &source_str, &opts, &target).map_err(|(op, e)| mount_err(op)(e))
}

/// Create a filesystem of `typ` and attach it on `target`.
fn mount_fs(
    cfg: &RootfsConfig<'_>,
    typ: &str,
    source: &str,
    opts: &MountOptions,
    target: &OwnedFd,
) -> Result<(), (&'static str, std::io::Error)> {
    let mnt = match new_fs_mount(typ, source, opts) {
        Ok(mnt) => mnt,
        // sysfs belongs to the network namespace: a user namespace that does not own one may not
        // mount it, so bind the runtime's /sys instead (read-only attributes still apply).
        Err(e) if typ == "sysfs" && cfg.userns && e.raw_os_error() == Some(libc::EPERM) => {
            let tree = sys::open_tree_clone(c"/sys", true).map_err(|e| ("clone /sys", e))?;
            set_attrs(&tree, opts).map_err(|e| ("set mount attributes", e))?;
            tree
        }
        Err(e) => return Err(("create filesystem", e)),
    };
    sys::move_mount(mnt.as_fd(), target.as_fd()).map_err(|e| ("attach mount", e))?;
    set_propagation(&mnt, opts).map_err(|e| ("set propagation", e))
}

/// A new filesystem instance as a detached mount: fsopen, fsconfig per option, fsmount.
fn new_fs_mount(typ: &str, source: &str, opts: &MountOptions) -> std::io::Result<OwnedFd> {
    let fs = sys::fsopen(&cstring(typ)?)?;
    let source = if source.is_empty() { typ } else { source };
    sys::fsconfig_set(fs.as_fd(), c"source", Some(&cstring(source)?))?;
    for flag in &opts.sb_flags {
        sys::fsconfig_set(fs.as_fd(), &cstring(flag)?, None)?;
    }
    for (key, value) in &opts.data {
        let value = value.as_deref().map(cstring).transpose()?;
        sys::fsconfig_set(fs.as_fd(), &cstring(key)?, value.as_deref())?;
    }
    sys::fsconfig_create(fs.as_fd())?;
    let mnt = sys::fsmount(fs.as_fd(), opts.attr_set)?;
    if opts.rec_attr_set != 0 || opts.rec_attr_clr != 0 {
        let attr = MountAttr {
            attr_set: opts.rec_attr_set,
            attr_clr: opts.rec_attr_clr,
            ..Default::default()
        };
        sys::mount_setattr(mnt.as_fd(), true, &attr)?;
    }
    Ok(mnt)
}

/// Apply per-mount and recursive attributes to a detached bind mount.
fn set_attrs(mnt: &OwnedFd, opts: &MountOptions) -> std::io::Result<()> {
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        let attr = MountAttr {
            attr_set: opts.attr_set,
            attr_clr: opts.attr_clr,
            ..Default::default()
        };
        sys::mount_setattr(mnt.as_fd(), false, &attr)?;
    }
    if opts.rec_attr_set != 0 || opts.rec_attr_clr != 0 {
        let attr = MountAttr {
            attr_set: opts.rec_attr_set,
            attr_clr: opts.rec_attr_clr,
            ..Default::default()
        };
        sys::mount_setattr(mnt.as_fd(), true, &attr)?;
    }
    Ok(())
}

/// Propagation is a property of an attached mount, so it is set after `move_mount`.
fn set_propagation(mnt: &OwnedFd, opts: &MountOptions) -> std::io::Result<()> {
    for p in &opts.propagation {
        let attr = MountAttr {
            propagation: p.flag.bits(),
            ..Default::default()
        };
        sys::mount_setattr(mnt.as_fd(), p.recursive, &attr)?;
    }
    Ok(())
}

/// Create (if needed) and open the mount point inside the rootfs: a directory, or an empty file
/// when a file is bound.
fn make_target(root: &Root, dest: &Path, dir: bool) -> std::io::Result<OwnedFd> {
    let made = if dir {
        super::ensure_dir(root.as_fd(), dest)
    } else {
        super::ensure_file(root.as_fd(), dest)
    };
    made.map_err(std::io::Error::from)
}

/// Files under /proc that lxcfs-style tools may bind over (runc allows the same list).
const PROC_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
];
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Nothing but a real procfs may be mounted on /proc, and nothing may be mounted inside /proc
/// except the few files lxcfs replaces or binds of procfs itself. A fake /proc would receive the
/// runtime's LSM-label and sysctl writes (CVE-2019-16884, CVE-2025-52881); a mount over
/// `/proc/sys/kernel/core_pattern` and the like would defeat masking.
///
/// Both the destination as written and where it actually resolved inside the rootfs are checked,
/// so a symlink in the image (`/foo -> /proc`) cannot sneak a mount in.
fn check_proc_destination(
    rootfs: &Path,
    dest: &Path,
    target: &OwnedFd,
    typ: &str,
    bind_source: Option<&Path>,
) -> Result<(), String> {
    let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(target));
    let resolved = std::fs::read_link(fd_path).ok().and_then(|p| {
        p.strip_prefix(rootfs)
            .ok()
            .map(|rest| Path::new("/").join(rest))
    });
    let source_is_proc = bind_source.is_some_and(|s| {
        nix::sys::statfs::statfs(s).is_ok_and(|st| st.filesystem_type().0 == PROC_SUPER_MAGIC)
    });
    for path in std::iter::once(clean(dest)).chain(resolved) {
        if path == Path::new("/proc") {
            if typ == "proc" || source_is_proc {
                continue;
            }
            return Err(format!(
                "{} cannot be mounted because it is not of type proc",
                path.display()
            ));
        }
        let allowed = PROC_ALLOWED.iter().any(|a| path == Path::new(a));
        if path.starts_with("/proc") && !source_is_proc && !allowed {
            return Err(format!(
                "{} cannot be mounted because it is inside /proc",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Lexically normalise an absolute path: drop `.`, empty components and resolve `..`.
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Open the proc/sysfs mount point without following a symlink and check it is a directory
/// (CVE-2023-27561: a `/proc` symlink in the image redirected the mount and the masking).
fn ordinary_dir(root: &Root, dest: &Path) -> Result<OwnedFd, String> {
    let fd = super::open_in_root(root.as_fd(), dest, true)
        .map_err(|e| format!("{dest:?} must be mounted on ordinary directory ({e})"))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("cannot stat {dest:?}: {e}"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(format!("{dest:?} must be mounted on ordinary directory"));
    }
    Ok(fd)
}

/// A `cgroup` mount: on a cgroup v2 host, a cgroup2 instance; on a v1 or hybrid host, a tmpfs
/// with one instance per host hierarchy (named like the host's directories), as runc lays it out.
/// With a cgroup namespace (`private_view`) each new instance shows the namespace's root, which
/// is the container's cgroup. Without one, a new instance would show the host's whole hierarchy
/// from its root; the container's own cgroup directory in each hierarchy is bound there instead
/// (the runtime has placed the init in its cgroup before the init mounts anything).
fn mount_cgroup(
    root: &Root,
    dest: &Path,
    opts: &MountOptions,
    private_view: bool,
) -> std::io::Result<()> {
    let target = make_target(root, dest, true)?;
    let own = if private_view {
        None
    } else {
        Some(std::fs::read_to_string("/proc/self/cgroup")?)
    };
    let st = nix::sys::statfs::statfs("/sys/fs/cgroup").map_err(std::io::Error::from)?;
    if st.filesystem_type().0 as i64 == CGROUP2_SUPER_MAGIC {
        let mnt = match &own {
            None => new_fs_mount("cgroup2", "cgroup2", opts)?,
            Some(own) => bind_own_cgroup(Path::new("/sys/fs/cgroup"), own_path(own, None), opts)?,
        };
        sys::move_mount(mnt.as_fd(), target.as_fd())?;
        return set_propagation(&mnt, opts);
    }
    // The tmpfs is made read-only only after it is populated.
    let tmpfs_opts = MountOptions {
        attr_set: opts.attr_set & !MOUNT_ATTR_RDONLY,
        data: vec![("mode".into(), Some("755".into()))],
        ..Default::default()
    };
    let tmpfs = new_fs_mount("tmpfs", "tmpfs", &tmpfs_opts)?;
    sys::move_mount(tmpfs.as_fd(), target.as_fd())?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    for h in host_cgroup_hierarchies(&mountinfo) {
        let sub = dest.join(&h.name);
        let sub_target = make_target(root, &sub, true)?;
        let mut sub_opts = MountOptions {
            attr_set: opts.attr_set,
            ..Default::default()
        };
        sub_opts.data = h
            .options
            .iter()
            .map(|o| match o.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (o.clone(), None),
            })
            .collect();
        let mnt = match &own {
            None => new_fs_mount(&h.fstype, &h.fstype, &sub_opts)?,
            Some(own) => {
                let key = (h.fstype == "cgroup").then_some(h.options.as_slice());
                let host_dir = Path::new("/sys/fs/cgroup").join(&h.name);
                bind_own_cgroup(&host_dir, own_path(own, key), &sub_opts)?
            }
        };
        sys::move_mount(mnt.as_fd(), sub_target.as_fd())?;
    }
    if opts.attr_set & MOUNT_ATTR_RDONLY != 0 {
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        sys::mount_setattr(tmpfs.as_fd(), false, &attr)?;
    }
    set_propagation(&tmpfs, opts)
}

/// Our cgroup in one hierarchy, from `/proc/self/cgroup` text: the v1 hierarchy whose
/// controller list shares a controller (or `name=`) with `options`, or with `None` the cgroup2
/// line (`0::`).
fn own_path<'a>(proc_cgroup: &'a str, options: Option<&[String]>) -> &'a str {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let matches = match options {
            None => ctrls.is_empty(),
            Some(opts) => ctrls.split(',').any(|c| opts.iter().any(|o| o == c)),
        };
        if matches {
            return path;
        }
    }
    "/"
}

/// A detached bind of `hierarchy/<path>` with the mount's attributes (read-only and so on).
fn bind_own_cgroup(hierarchy: &Path, path: &str, opts: &MountOptions) -> std::io::Result<OwnedFd> {
    let dir = hierarchy.join(path.trim_start_matches('/'));
    let c = cstring(dir.as_os_str().as_bytes())?;
    let tree = sys::open_tree_clone(&c, false)?;
    set_attrs(&tree, opts)?;
    Ok(tree)
}

/// One cgroup hierarchy mounted on the host under `/sys/fs/cgroup`.
#[derive(Debug, PartialEq, Eq)]
struct Hierarchy {
    /// Directory name under `/sys/fs/cgroup` (`cpu`, `memory`, `unified`, `systemd`).
    name: PathBuf,
    /// `cgroup` or `cgroup2`.
    fstype: String,
    /// Super options other than rw/ro: the controllers, `name=…`, `xattr`…
    options: Vec<String>,
}

fn host_cgroup_hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = pre.split(' ').nth(4).unwrap_or_default();
        let mut post = post.split(' ');
        let fstype = post.next().unwrap_or_default();
        let super_opts = post.nth(1).unwrap_or_default();
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(name) = mount_point.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if name.is_empty() || name.contains('/') {
            continue;
        }
        let options = super_opts
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro" | "" | "nsdelegate" | "memory_recursiveprot"))
            .map(str::to_string)
            .collect();
        out.push(Hierarchy {
            name: PathBuf::from(name),
            fstype: fstype.to_string(),
            options,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean(Path::new("/proc/../proc//sys/./kernel")),
            PathBuf::from("/proc/sys/kernel")
        );
        assert_eq!(clean(Path::new("/../../proc")), PathBuf::from("/proc"));
    }

    #[test]
    fn hybrid_mountinfo() {
        let info = "\
35 25 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
38 35 0:33 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
39 25 0:34 / /sys/fs/cgroup/memory/nested rw - cgroup cgroup rw,memory
";
        let h = host_cgroup_hierarchies(info);
        assert_eq!(h.len(), 3);
        assert_eq!(
            h[0],
            Hierarchy {
                name: "unified".into(),
                fstype: "cgroup2".into(),
                options: vec![]
            }
        );
        assert_eq!(
            h[1].options,
            vec!["xattr".to_string(), "name=systemd".to_string()]
        );
        assert_eq!(h[2].name, PathBuf::from("cpu,cpuacct"));
        assert_eq!(h[2].options, vec!["cpu".to_string(), "cpuacct".to_string()]);
    }
}
