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
pub use pivot::{finish, pivot_root};

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

/// The errno behind a pathrs error, if it came from a system call.
fn errno(e: &pathrs::error::Error) -> Option<i32> {
    match e.kind() {
        pathrs::error::ErrorKind::OsError(n) => n,
        _ => None,
    }
}
