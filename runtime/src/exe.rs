//! Protection of the runtime's own binary (CVE-2019-5736).
//!
//! The container's init is a fork of the runtime, so until its `execve` — and during it, if the
//! process is a script whose interpreter is `/proc/self/exe` — `/proc/<init>/exe` is the runtime's
//! binary. A process in the container that gets hold of that link can reopen it for writing once
//! no one executes the binary any more and replace the host's runtime.
//!
//! So the commands that enter a container (`create`, `run`) first re-execute the runtime from a
//! read-only view of its own binary: a detached bind mount of `/proc/self/exe` made read-only
//! with `mount_setattr` (zero-copy, crun's approach). Reopening that file for writing fails with
//! EROFS, whoever asks. Where the mount API is not available (no CAP_SYS_ADMIN, old kernel), a
//! sealed memfd copy is executed instead. `state`, `kill`, `delete` and the other commands never
//! enter a container and pay nothing.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{FsFlags, fstatvfs};

use crate::sys::{self, MountAttr, mount_api::MOUNT_ATTR_RDONLY};

/// Why the binary could not be protected.
#[derive(Debug, thiserror::Error)]
pub enum ExeError {
    #[error("cannot {op} (protecting the runtime binary, CVE-2019-5736)")]
    Sys {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn err(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> ExeError {
    move |e| ExeError::Sys {
        op,
        source: e.into(),
    }
}

/// Is the running binary unwritable (on a read-only mount, or a sealed memfd)?
pub fn is_protected() -> Result<bool, ExeError> {
    let exe = nix::fcntl::open(
        "/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open /proc/self/exe"))?;
    if fstatvfs(&exe)
        .map_err(err("statvfs /proc/self/exe"))?
        .flags()
        .contains(FsFlags::ST_RDONLY)
    {
        return Ok(true);
    }
    Ok(fcntl(&exe, FcntlArg::F_GET_SEALS)
        .is_ok_and(|s| SealFlag::from_bits_truncate(s).contains(SealFlag::F_SEAL_WRITE)))
}

/// Re-execute the runtime (same argv and environment) from a protected copy of itself, unless
/// it already runs from one. Returns only when already protected or on error.
pub fn ensure_protected() -> Result<(), ExeError> {
    if is_protected()? {
        return Ok(());
    }
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.into_encoded_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let exe = match read_only_view() {
        Ok(fd) => fd,
        Err(e) => {
            tracing::debug!(error = %e, "read-only bind of the binary unavailable, using a sealed copy");
            sealed_copy()?
        }
    };
    // fexecve runs the file behind the descriptor (execveat with AT_EMPTY_PATH), so no path of
    // the writable original is involved.
    let e = match nix::unistd::fexecve(exe.as_fd(), &args, &env) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    Err(err("re-execute from the protected binary")(e))
}

/// A detached, read-only bind mount of the binary itself.
fn read_only_view() -> Result<OwnedFd, ExeError> {
    let exe = nix::fcntl::open(
        "/proc/self/exe",
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("open /proc/self/exe"))?;
    let tree = sys::open_tree_clone_fd(exe.as_fd()).map_err(|source| ExeError::Sys {
        op: "clone the binary's mount",
        source,
    })?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    sys::mount_setattr(tree.as_fd(), false, &attr).map_err(|source| ExeError::Sys {
        op: "make the binary's mount read-only",
        source,
    })?;
    Ok(tree)
}

/// A memfd holding a copy of the binary, sealed against any change.
fn sealed_copy() -> Result<OwnedFd, ExeError> {
    let mem = memfd_create(
        c"skiff",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(err("memfd_create"))?;
    let mut src = std::fs::File::open("/proc/self/exe").map_err(|source| ExeError::Sys {
        op: "open /proc/self/exe",
        source,
    })?;
    let mut dst = std::fs::File::from(mem);
    std::io::copy(&mut src, &mut dst).map_err(|source| ExeError::Sys {
        op: "copy the binary",
        source,
    })?;
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&dst, FcntlArg::F_ADD_SEALS(seals)).map_err(err("seal the copy"))?;
    Ok(OwnedFd::from(dst))
}
