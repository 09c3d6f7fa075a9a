//! Device nodes and the standard `/dev` symlinks (config-linux.md, "Default Devices").

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::sys::stat::{Mode, SFlag, mknodat};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::LinuxDeviceType;
use pathrs::Root;

use super::{RootfsConfig, RootfsError};
use crate::sys;

/// A device node to create in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Device {
    path: PathBuf,
    kind: LinuxDeviceType,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The devices every container gets (runtime spec, "Default Devices").
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Symlinks every container gets (runc's set; `/dev/core` only where `/proc/kcore` exists).
const DEFAULT_SYMLINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// Create the default devices, `linux.devices`, the `/dev` symlinks and `/dev/ptmx`. Skipped when
/// `/dev` is bind-mounted from the host: then the host's nodes are what the user asked for.
pub fn setup_devices(cfg: &RootfsConfig<'_>, root: &Root) -> Result<(), RootfsError> {
    let mounts = cfg.spec.mounts().as_deref().unwrap_or_default();
    let dev_is_bind = mounts.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o == "bind" || o == "rbind"))
    });
    if dev_is_bind {
        return Ok(());
    }
    for (index, dev) in devices(cfg)?.iter().enumerate() {
        create_device(root, dev, cfg.userns).map_err(|reason| RootfsError::Device {
            index,
            path: dev.path.clone(),
            reason,
        })?;
    }
    let mut links: Vec<(&str, &str)> = DEFAULT_SYMLINKS.to_vec();
    if Path::new("/proc/kcore").exists() {
        links.push(("/dev/core", "/proc/kcore"));
    }
    // /dev/ptmx points into the container's own devpts instance (devpts(4), "newinstance").
    let devpts = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev/pts") && m.typ().as_deref() == Some("devpts"));
    if devpts {
        links.push(("/dev/ptmx", "pts/ptmx"));
    }
    for (link, target) in links {
        let link = Path::new(link);
        let err = |e: nix::errno::Errno| RootfsError::Path {
            op: "create symlink",
            path: link.to_path_buf(),
            source: e.into(),
        };
        let (Some(parent), Some(name)) = (link.parent(), link.file_name()) else {
            continue;
        };
        let dir = super::ensure_dir(root.as_fd(), parent).map_err(err)?;
        if name == "ptmx" {
            match nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => return Err(err(e)),
            }
        }
        match nix::unistd::symlinkat(target, &dir, name) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

/// Defaults merged with `linux.devices` (an entry for the same path replaces the default).
fn devices(cfg: &RootfsConfig<'_>) -> Result<Vec<Device>, RootfsError> {
    let mut out: Vec<Device> = DEFAULT_DEVICES
        .iter()
        .map(|&(path, major, minor)| Device {
            path: path.into(),
            kind: LinuxDeviceType::C,
            major,
            minor,
            mode: 0o666,
            uid: 0,
            gid: 0,
        })
        .collect();
    let spec_devices = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    for (index, d) in spec_devices.iter().enumerate() {
        let bad = |reason: &str| RootfsError::Device {
            index,
            path: d.path().clone(),
            reason: reason.into(),
        };
        if !d.path().is_absolute() {
            return Err(bad("path must be absolute"));
        }
        if d.major() < 0 || d.minor() < 0 {
            return Err(bad("major and minor must not be negative"));
        }
        if matches!(d.typ(), LinuxDeviceType::A) {
            return Err(bad("type \"a\" is only valid in cgroup device rules"));
        }
        let dev = Device {
            path: d.path().clone(),
            kind: d.typ(),
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        out.retain(|o| o.path != dev.path);
        out.push(dev);
    }
    Ok(out)
}

fn create_device(root: &Root, dev: &Device, userns: bool) -> Result<(), String> {
    let (Some(parent), Some(name)) = (dev.path.parent(), dev.path.file_name()) else {
        return Err("path has no file name".into());
    };
    // The parent, resolved in the rootfs; every later step is relative to it, so a symlink in
    // the image cannot move the node elsewhere (CVE-2026-41579: /dev as a symlink to a host path).
    let dir = super::ensure_dir(root.as_fd(), parent).map_err(|e| format!("open parent: {e}"))?;
    // Whatever the image has at this name goes: a symlink planted at /dev/null must never be
    // followed (CVE-2025-31133); unlinkat removes the link itself, never its target.
    match nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(format!("remove existing entry: {e}")),
    }
    if userns {
        // mknod is not allowed in a user namespace: bind the host's node onto an empty file.
        let host = std::ffi::CString::new(dev.path.as_os_str().as_encoded_bytes())
            .map_err(|e| e.to_string())?;
        let file = nix::fcntl::openat(
            &dir,
            name,
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_EXCL
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| format!("create bind target: {e}"))?;
        let tree = sys::open_tree_clone(&host, false)
            .map_err(|e| format!("clone host device {:?}: {e}", dev.path))?;
        return sys::move_mount(tree.as_fd(), file.as_fd())
            .map_err(|e| format!("bind host device: {e}"));
    }
    let kind = match dev.kind {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let rdev = libc::makedev(dev.major as u32, dev.minor as u32);
    mknodat(&dir, name, kind, Mode::from_bits_truncate(dev.mode), rdev)
        .map_err(|e| format!("mknod: {e}"))?;
    if dev.uid != 0 || dev.gid != 0 {
        nix::unistd::fchownat(
            &dir,
            name,
            Some(Uid::from_raw(dev.uid)),
            Some(Gid::from_raw(dev.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| format!("chown: {e}"))?;
    }
    Ok(())
}
