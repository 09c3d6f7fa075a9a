//! `--pidfd-socket`: hand the caller a pidfd of the container's process (or of an exec'd
//! process) over a unix socket, as runc does for containerd 2.x. A pidfd names the process
//! itself, so the caller can signal and wait for it without racing pid reuse (pidfd_open(2)).

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::unistd::Pid;

/// Why the pidfd could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum PidfdError {
    #[error("--pidfd-socket {path:?}: cannot connect")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open a pidfd for process {pid}")]
    Open {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("--pidfd-socket {path:?}: cannot send the pidfd")]
    Send {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Open a pidfd for `pid` and send it over the unix socket at `socket` (one SCM_RIGHTS message
/// whose payload is the name `pidfd`, the shape of runc's console and pidfd sockets).
pub fn send(socket: &Path, pid: Pid) -> Result<(), PidfdError> {
    let stream = UnixStream::connect(socket).map_err(|source| PidfdError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    let raw = rustix::process::Pid::from_raw(pid.as_raw()).ok_or(PidfdError::Open {
        pid: pid.as_raw(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    })?;
    let pidfd =
        rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()).map_err(|e| {
            PidfdError::Open {
                pid: pid.as_raw(),
                source: e.into(),
            }
        })?;
    let fds = [pidfd.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(b"pidfd")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| PidfdError::Send {
        path: socket.to_path_buf(),
        source: e.into(),
    })?;
    Ok(())
}
