//! Entering the rootfs, and the steps that need the container's own view afterwards.

use std::io::Write;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::Spec;
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

use super::{RootfsError, path_err};
use crate::sys::{self, MountAttr, mount_api::MOUNT_ATTR_RDONLY};

/// Make `rootfs` the root of the mount namespace.
///
/// With `no_pivot` (runc's `--no-pivot`, for ramdisk roots where pivot_root(2) fails with EINVAL)
/// the rootfs is moved over `/` and chrooted into, which leaves the old root reachable to a
/// process that can escape a chroot: only use it where pivot_root cannot work.
pub fn pivot_root(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    let err = |op| path_err(op, rootfs);
    nix::unistd::chdir(rootfs).map_err(|e| err("chdir to")(e.into()))?;
    if no_pivot {
        // mount --move the rootfs onto / and chroot into it (runc's msMoveRoot).
        nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(|e| err("move rootfs onto /")(e.into()))?;
        nix::unistd::chroot(".").map_err(|e| err("chroot into")(e.into()))?;
    } else {
        // 1. pivot_root(".", "."): the old root is stacked on top of the new one at "/"
        //    (pivot_root(2), NOTES: "new_root and put_old may be the same directory").
        nix::unistd::pivot_root(".", ".").map_err(|e| err("pivot_root to")(e.into()))?;
        // 2. Make the old root a slave so that unmounting it below cannot propagate to the host's
        //    mounts if any of them is still shared with us.
        nix::mount::mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| err("make old root slave")(e.into()))?;
        // 3. Detach the old root; "." is it, as it is stacked on top.
        nix::mount::umount2(".", MntFlags::MNT_DETACH)
            .map_err(|e| err("detach old root")(e.into()))?;
    }
    nix::unistd::chdir("/").map_err(|e| path_err("chdir to", Path::new("/"))(e.into()))
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
        sys::mount_setattr(std::os::fd::AsFd::as_fd(&root), false, &attr)
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
