//! The container's root filesystem: propagation, the spec's mounts, devices, `pivot_root`.
//!
//! Runs in the init, inside the new mount namespace, before and after `pivot_root`. Every path
//! inside the rootfs is resolved with `pathrs` (openat2 `RESOLVE_IN_ROOT`, or its emulation), and
//! every mount is attached by file descriptor with `move_mount(2)`, so a symlink swapped into the
//! rootfs cannot redirect a mount to the host (CVE-2021-30465).

mod devices;
mod mounts;
pub mod options;
mod pivot;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

pub use devices::setup_devices;
pub use mounts::{mount_all, prepare_root};
pub use pivot::{finish, mask_paths, pivot_root};

/// Why the root filesystem could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{op} {path:?}")]
    Path {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {path:?} inside the rootfs")]
    Resolve {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: pathrs::error::Error,
    },
    #[error("mounts[{index}] ({typ} {source_path:?} on {destination:?}): {op}")]
    Mount {
        index: usize,
        typ: String,
        source_path: String,
        destination: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("mounts[{index}] ({destination:?}): {reason}")]
    MountConfig {
        index: usize,
        destination: PathBuf,
        reason: String,
    },
    #[error("linux.rootfsPropagation {0:?} is not one of shared, slave, private, unbindable")]
    Propagation(String),
    #[error("linux.devices[{index}] ({path:?}): {reason}")]
    Device {
        index: usize,
        path: PathBuf,
        reason: String,
    },
    #[error("/dev/null in the container is not the null device (1:3): refusing to mask with it")]
    FakeDevNull,
    #[error("linux.sysctl[{key:?}]: cannot write {value:?}")]
    Sysctl {
        key: String,
        value: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the rootfs set-up needs to know.
#[derive(Debug, Clone, Copy)]
pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    /// Absolute path of the rootfs in the runtime's view.
    pub rootfs: &'a Path,
    /// The bundle, against which relative bind sources are resolved.
    pub bundle: &'a Path,
    /// The init is in a new user namespace: device nodes cannot be created, only bound.
    pub userns: bool,
}

fn path_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RootfsError + use<> {
    let path = path.to_path_buf();
    move |source| RootfsError::Path { op, path, source }
}

fn resolve_err(
    op: &'static str,
    path: &Path,
) -> impl FnOnce(pathrs::error::Error) -> RootfsError + use<> {
    let path = path.to_path_buf();
    move |source| RootfsError::Resolve { op, path, source }
}

/// Open `path` inside the rootfs as an `O_PATH` descriptor with `openat2(RESOLVE_IN_ROOT)`: the
/// kernel resolves `..` and symlinks as if the rootfs were `/`, so the result is always inside it,
/// and magic links (`/proc/self/fd/…`) are refused. One system call for the common case of a
/// path that already exists; pathrs does the creating when it does not.
fn open_in_root(
    root: std::os::fd::BorrowedFd<'_>,
    path: &Path,
    nofollow: bool,
) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    nix::fcntl::openat2(root, path, how)
}

/// Open one component `name` below the directory `dir`, refusing any symlink (a component
/// swapped for a symlink after we created it must not be followed).
fn open_beneath(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::OsStr,
) -> nix::Result<std::os::fd::OwnedFd> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    nix::fcntl::openat2(dir, Path::new(name), how)
}

/// `mkdir -p` inside the rootfs: existing components are resolved in the root, missing ones are
/// created with `mkdirat` under their parent's descriptor and opened without following symlinks.
fn ensure_dir(root: std::os::fd::BorrowedFd<'_>, path: &Path) -> nix::Result<std::os::fd::OwnedFd> {
    match open_in_root(root, path, false) {
        Err(nix::errno::Errno::ENOENT) => {}
        other => return other,
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(nix::errno::Errno::EINVAL);
    };
    let parent = ensure_dir(root, parent)?;
    match nix::sys::stat::mkdirat(
        &parent,
        name,
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_beneath(std::os::fd::AsFd::as_fd(&parent), name)
}

/// Like [`ensure_dir`], except that an existing last component is left alone whatever it is
/// (the caller opens it without following symlinks and checks it).
fn ensure_dir_nofollow(root: std::os::fd::BorrowedFd<'_>, path: &Path) -> nix::Result<()> {
    match open_in_root(root, path, true) {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::ENOENT) => ensure_dir(root, path).map(drop),
        // O_PATH|O_NOFOLLOW opens a symlink itself; other errors are the caller's to report.
        Err(e) => Err(e),
    }
}

/// Create (if missing) an empty regular file inside the rootfs, without following a symlink at
/// its name, and return an `O_PATH` descriptor of it.
fn ensure_file(
    root: std::os::fd::BorrowedFd<'_>,
    path: &Path,
) -> nix::Result<std::os::fd::OwnedFd> {
    match open_in_root(root, path, false) {
        Err(nix::errno::Errno::ENOENT) => {}
        other => return other,
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(nix::errno::Errno::EINVAL);
    };
    let parent = ensure_dir(root, parent)?;
    use nix::fcntl::OFlag;
    match nix::fcntl::openat(
        &parent,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_beneath(std::os::fd::AsFd::as_fd(&parent), name)
}
