//! Entering the rootfs, and the steps that need the container's own view afterwards.

use std::io::Write;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::Spec;
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

use super::{RootfsError, path_err};
use std::os::fd::AsFd;

use crate::sys::{self, MountAttr, mount_api::*};

/// Make `rootfs` the root of the mount namespace.
///
/// With `no_pivot` (runc's `--no-pivot`, for ramdisk roots where pivot_root(2) fails with EINVAL)
/// the rootfs is moved over `/` and chrooted into, which leaves the old root reachable to a
/// process that can escape a chroot: only use it where pivot_root cannot work.
pub fn pivot_root(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    let err = |op| path_err(op, rootfs);
    nix::unistd::chdir(rootfs).map_err(|e| err("chdir to")(e.into()))?;
    if no_pivot {
        // The runtime's /proc and /sys stay mounted under the moved root, reachable to anyone
        // who escapes the chroot: detach them first (runc's msMoveRoot does the same), or cover
        // them with an empty read-only tmpfs where they cannot be detached.
        hide_host_proc_and_sys(rootfs)?;
        // mount --move the rootfs onto / and chroot into it (runc's msMoveRoot).
        nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(|e| err("move rootfs onto /")(e.into()))?;
        nix::unistd::chroot(".").map_err(|e| err("chroot into")(e.into()))?;
    } else {
        // 0. A handle on the old root, to stand in it after the pivot.
        let old_root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| err("open the old root for")(e.into()))?;
        // 1. pivot_root(".", "."): the old root is stacked on top of the new one at "/"
        //    (pivot_root(2), NOTES: "new_root and put_old may be the same directory").
        nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root to")(e.into()))?;
        // 2. Stand in the old root: the kernel does not say which of the two stacked mounts "."
        //    names after pivot_root, and if it named the new root, step 3 would turn every
        //    container mount into a slave, undoing an `rshared` mount option.
        nix::unistd::fchdir(&old_root).map_err(|e| err("enter the old root of")(e.into()))?;
        drop(old_root);
        // 3. Make the old root a slave so that unmounting it below cannot propagate to the host's
        //    mounts if any of them is still shared with us.
        nix::mount::mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err("make old root slave")(e.into()))?;
        // 4. Detach the old root.
        nix::mount::umount2(".", MntFlags::MNT_DETACH)
            .map_err(|e| err("detach old root")(e.into()))?;
    }
    nix::unistd::chdir("/").map_err(|e| path_err("chdir to", Path::new("/"))(e.into()))
}

/// Detach (or cover) every proc and sysfs mount outside `rootfs`, deepest first.
fn hide_host_proc_and_sys(rootfs: &Path) -> Result<(), RootfsError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(path_err("read", Path::new("/proc/self/mountinfo")))?;
    let mut targets: Vec<String> = info
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mount_point = pre.split(' ').nth(4)?;
            let fstype = post.split(' ').next()?;
            let inside = Path::new(mount_point).starts_with(rootfs);
            (matches!(fstype, "proc" | "sysfs") && !inside).then(|| mount_point.to_string())
        })
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        if nix::mount::umount2(target.as_str(), MntFlags::MNT_DETACH).is_ok() {
            continue;
        }
        nix::mount::mount(
            Some("tmpfs"),
            target.as_str(),
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=0"),
        )
        .map_err(|e| path_err("cover", Path::new(&target))(e.into()))?;
    }
    Ok(())
}

/// After pivot_root: propagation of the new root, sysctls, and the read-only root.
pub fn finish(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    // The propagation asked for in rootfsPropagation was held back as rslave during set-up
    // (see `prepare_root`); shared and unbindable are applied to the new root now.
    let flag = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some("shared") | Some("rshared") => Some(MsFlags::MS_SHARED),
        Some("unbindable") | Some("runbindable") => Some(MsFlags::MS_UNBINDABLE),
        _ => None,
    };
    if let Some(flag) = flag {
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            flag | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| path_err("set propagation of", Path::new("/"))(e.into()))?;
    }

    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        write_sysctls(sysctl)?;
    }

    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let root = std::fs::File::open("/").map_err(path_err("open", Path::new("/")))?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            ..Default::default()
        };
        sys::mount_setattr(root.as_fd(), false, &attr)
            .map_err(path_err("make read-only", Path::new("/")))?;
    }
    Ok(())
}

/// Write `linux.sysctl` through a verified procfs handle (pathrs checks it is a real procfs and
/// resolves without crossing mounts), so a mount over `/proc/sys` cannot redirect the writes
/// (CVE-2025-52881).
fn write_sysctls(sysctl: &std::collections::HashMap<String, String>) -> Result<(), RootfsError> {
    if sysctl.is_empty() {
        return Ok(());
    }
    let to_io = |e: pathrs::error::Error| std::io::Error::other(e.to_string());
    let procfs = ProcfsHandle::new().map_err(|e| RootfsError::Sysctl {
        key: String::new(),
        value: String::new(),
        source: to_io(e),
    })?;
    for (key, value) in sysctl {
        let err = |source| RootfsError::Sysctl {
            key: key.clone(),
            value: value.clone(),
            source,
        };
        let sub = format!("sys/{}", key.replace('.', "/"));
        let mut file = procfs
            .open(ProcfsBase::ProcRoot, &sub, OpenFlags::O_WRONLY)
            .map_err(|e| err(to_io(e)))?;
        file.write_all(value.as_bytes()).map_err(err)?;
    }
    Ok(())
}

/// `linux.maskedPaths` and `linux.readonlyPaths`, after pivot_root. Paths that do not exist in
/// the container are skipped (runc does the same: images differ).
///
/// A masked file gets a bind of `/dev/null` taken from a descriptor that was checked to be the
/// real char device 1:3 — never whatever the path `/dev/null` leads to in the container
/// (CVE-2025-31133). A masked directory gets an empty read-only tmpfs. A read-only path is bound
/// onto itself and made read-only, nosuid, nodev and noexec, recursively.
pub fn mask_paths(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    let masked = linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default();
    let readonly = linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default();
    if masked.is_empty() && readonly.is_empty() {
        return Ok(());
    }
    let root = std::fs::File::open("/").map_err(path_err("open", Path::new("/")))?;
    let open = |p: &str| match super::open_in_root(root.as_fd(), Path::new(p), false) {
        Ok(fd) => Ok(Some(fd)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(path_err("open", Path::new(p))(e.into())),
    };
    for p in readonly {
        let Some(target) = open(p)? else { continue };
        let err = |op| path_err(op, Path::new(p));
        let tree =
            sys::open_tree_clone_fd(target.as_fd()).map_err(err("clone mount of readonly path"))?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            ..Default::default()
        };
        sys::mount_setattr(tree.as_fd(), true, &attr).map_err(err("make path read-only"))?;
        sys::move_mount(tree.as_fd(), target.as_fd()).map_err(err("bind readonly path"))?;
    }
    let mut dev_null = None;
    for p in masked {
        let Some(target) = open(p)? else { continue };
        let err = |op| path_err(op, Path::new(p));
        let st = nix::sys::stat::fstat(&target).map_err(|e| err("stat masked path")(e.into()))?;
        let tree = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let fs = sys::fsopen(c"tmpfs").map_err(err("create tmpfs for masked path"))?;
            sys::fsconfig_set(fs.as_fd(), c"size", Some(c"0")).map_err(err("configure tmpfs"))?;
            sys::fsconfig_create(fs.as_fd()).map_err(err("create tmpfs"))?;
            sys::fsmount(
                fs.as_fd(),
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            )
            .map_err(err("mount tmpfs"))?
        } else {
            if dev_null.is_none() {
                dev_null = Some(verified_dev_null()?);
            }
            let null = dev_null.as_ref().expect("set just above");
            sys::open_tree_clone_fd(null.as_fd()).map_err(err("clone /dev/null mount"))?
        };
        sys::move_mount(tree.as_fd(), target.as_fd()).map_err(err("mask path"))?;
    }
    Ok(())
}

/// `/dev/null`, opened without following a symlink and checked to be char device 1:3.
fn verified_dev_null() -> Result<std::os::fd::OwnedFd, RootfsError> {
    use nix::fcntl::OFlag;
    let path = Path::new("/dev/null");
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| path_err("open", path)(e.into()))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| path_err("stat", path)(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || libc::major(st.st_rdev) != 1
        || libc::minor(st.st_rdev) != 3
    {
        return Err(RootfsError::FakeDevNull);
    }
    Ok(fd)
}
