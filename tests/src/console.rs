//! The receiving end of `--console-socket`, and a way to talk to the pty master it delivers.
//!
//! With `process.terminal: true`, `create --console-socket S` connects to the unix socket `S`
//! and sends the pty master as one `SCM_RIGHTS` fd (go-runc `socket.go`, what containerd uses).
//!
//! This crate forbids `unsafe`, and turning a received `RawFd` into an `OwnedFd` or `File` needs
//! it. So the fd stays a [`ReceivedFd`] (closed on drop through `nix::unistd::close`, which takes
//! a `RawFd` safely), is inspected through `/proc/self/fd/N` (a `stat`, which does not reopen
//! it: reopening a pty master through `/proc` would allocate a new pty), and is read and written
//! by a host busybox `sh` that gets it as fd 3 through `posix_spawn` file actions.

use std::ffi::CString;
use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, posix_spawn};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::stat::{Mode, major, minor};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

/// Major and minor number of `/dev/ptmx` and every devpts `ptmx` node (devices.txt).
pub const PTMX_DEVICE: (u64, u64) = (5, 2);

/// A listening unix socket for `--console-socket`.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Binds a listening socket at `path` (which must not exist).
    pub fn bind(path: &Path) -> Self {
        let listener = UnixListener::bind(path)
            .unwrap_or_else(|e| panic!("binding console socket {}: {e}", path.display()));
        Self {
            path: path.to_path_buf(),
            listener,
        }
    }

    /// The socket path, for `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection and receives one fd from it, waiting at most `timeout` for the
    /// runtime to connect.
    pub fn recv_fd(&self, timeout: Duration) -> ReceivedFd {
        let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let ready = poll(&mut fds, PollTimeout::from(millis)).expect("poll on the console socket");
        assert!(
            ready > 0,
            "the runtime did not connect to the console socket within {timeout:?}"
        );
        let (stream, _) = self
            .listener
            .accept()
            .expect("accept on the console socket");
        stream
            .set_read_timeout(Some(timeout))
            .expect("setting a read timeout");

        let mut name = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .expect("recvmsg on the console socket");
        let mut received = Vec::new();
        for message in msg.cmsgs().expect("parsing control messages") {
            if let ControlMessageOwned::ScmRights(fds) = message {
                received.extend(fds);
            }
        }
        let mut fds = received.into_iter().map(ReceivedFd);
        let fd = fds
            .next()
            .expect("the console socket message carried no SCM_RIGHTS fd");
        assert!(
            fds.next().is_none(),
            "the console socket message carried more than one fd"
        );
        fd
    }
}

/// A file descriptor received over `SCM_RIGHTS`, closed on drop.
#[derive(Debug)]
pub struct ReceivedFd(RawFd);

impl ReceivedFd {
    /// The raw fd number in this process.
    pub fn raw(&self) -> RawFd {
        self.0
    }

    /// True if the fd is a pty master: a character device with `/dev/ptmx`'s numbers.
    ///
    /// `stat` follows the `/proc/self/fd/N` magic link to the open inode without opening it.
    pub fn is_pty_master(&self) -> bool {
        let Ok(meta) = fs::metadata(format!("/proc/self/fd/{}", self.0)) else {
            return false;
        };
        meta.file_type().is_char_device() && (major(meta.rdev()), minor(meta.rdev())) == PTMX_DEVICE
    }

    /// Writes `input` to the fd, then reads from it until EOF/EIO (a pty master reads EIO once
    /// every slave fd is closed) or `timeout`, and returns what was read.
    ///
    /// A host busybox `sh` does the I/O with the fd as its fd 3 (see the module docs). On
    /// timeout it is killed and whatever it read so far is returned.
    pub fn converse(&self, input: &str, scratch: &Path, timeout: Duration) -> String {
        let out_path = scratch.join(format!("pty-{}.out", self.0));
        let mut actions = PosixSpawnFileActions::init().expect("posix_spawn_file_actions_init");
        actions
            .add_open(0, "/dev/null", OFlag::O_RDONLY, Mode::empty())
            .expect("file action: stdin");
        actions
            .add_open(
                1,
                &out_path,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
                Mode::from_bits_truncate(0o600),
            )
            .expect("file action: stdout");
        actions
            .add_open(2, "/dev/null", OFlag::O_WRONLY, Mode::empty())
            .expect("file action: stderr");
        // dup2 clears FD_CLOEXEC on the new fd 3 (the received fd itself is close-on-exec).
        actions.add_dup2(self.0, 3).expect("file action: dup2");
        let attr = PosixSpawnAttr::init().expect("posix_spawnattr_init");
        let args = ["sh", "-c", "printf '%s' \"$0\" >&3 && exec cat <&3", input]
            .map(|a| CString::new(a).expect("no NUL in arguments"));
        let env = [CString::new("PATH=/usr/bin:/bin").expect("no NUL")];
        let pid = posix_spawn(
            Path::new(crate::bundle::HOST_BUSYBOX),
            &actions,
            &attr,
            &args,
            &env,
        )
        .expect("posix_spawn busybox sh");

        let deadline = Instant::now() + timeout;
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Ok(WaitStatus::StillAlive) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    break;
                }
                _ => break,
            }
        }
        let output = fs::read(&out_path).unwrap_or_default();
        String::from_utf8_lossy(&output).into_owned()
    }
}

impl Drop for ReceivedFd {
    fn drop(&mut self) {
        let _ = nix::unistd::close(self.0);
    }
}
