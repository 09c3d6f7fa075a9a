//! The container's terminal: a pty made inside the container's devpts, its master handed to
//! the caller over `--console-socket` (SCM_RIGHTS, the pty name as payload — go-runc's format).

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{OFlag, open};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::stat::{Mode, fstat};
use oci_spec::runtime::Process;
use pathrs::Root;
use pathrs::flags::OpenFlags;

use super::ProcessError;
use crate::sys;

/// Major number of the pty master multiplexer (`/dev/ptmx` and devpts' `ptmx`: 5:2).
const PTMX_MAJOR: u64 = 5;
const PTMX_MINOR: u64 = 2;
/// UNIX98 pty slaves use majors 136–143 (Documentation/admin-guide/devices.txt).
const PTY_SLAVE_MAJORS: std::ops::RangeInclusive<u64> = 136..=143;

fn tty_err(op: &'static str) -> impl FnOnce(std::io::Error) -> ProcessError {
    move |source| ProcessError::Sys { op, source }
}

/// Create the pty, bind its slave on `/dev/console`, send the master to the console socket and
/// make the slave our controlling terminal and stdio. Runs after pivot_root.
pub fn setup_console(
    socket: BorrowedFd<'_>,
    process: &Process,
    bind_dev_console: bool,
) -> Result<(), ProcessError> {
    // 1. Open the multiplexer and check it really is one: a fake /dev/pts/ptmx planted in the
    //    image must not hand us an attacker's file (CVE-2025-52565 class).
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| tty_err("open /dev/ptmx")(e.into()))?;
    let st = fstat(&master).map_err(|e| tty_err("stat /dev/ptmx")(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || libc::major(st.st_rdev) as u64 != PTMX_MAJOR
        || libc::minor(st.st_rdev) as u64 != PTMX_MINOR
    {
        return Err(ProcessError::FakeDevice(
            "/dev/ptmx is not the pty multiplexer".into(),
        ));
    }
    sys::unlock_pty(master.as_fd()).map_err(tty_err("unlock pty"))?;
    // 2. The slave comes from the master itself (TIOCGPTPEER), never from a path in /dev/pts.
    let slave = sys::pty_peer(master.as_fd()).map_err(tty_err("open pty slave"))?;
    let st = fstat(&slave).map_err(|e| tty_err("stat pty slave")(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || !PTY_SLAVE_MAJORS.contains(&(libc::major(st.st_rdev) as u64))
    {
        return Err(ProcessError::FakeDevice(
            "pty peer is not a pty slave".into(),
        ));
    }
    let name = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| format!("/dev/pts/{}", libc::minor(st.st_rdev)));

    // 3. /dev/console is the slave, bound by descriptor onto a file created without following
    //    symlinks (a /dev/console symlink to a /proc file must not receive the bind).
    //    Only for the init: an exec'd process gets a pty of its own but leaves the container's
    //    /dev/console alone (as runc; the bind is already there, on the init's pty).
    if bind_dev_console {
        bind_console(&slave)?;
    }

    if let Some(size) = process.console_size() {
        sys::set_window_size(master.as_fd(), size.height() as u16, size.width() as u16)
            .map_err(tty_err("set console size"))?;
    }

    // 4. Hand the master to whoever listens on the console socket.
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| tty_err("send pty master to console socket")(e.into()))?;
    drop(master);

    // 5. A new session whose controlling terminal is the slave, on stdin/stdout/stderr.
    nix::unistd::setsid().map_err(|e| tty_err("setsid")(e.into()))?;
    sys::set_controlling_tty(slave.as_fd()).map_err(tty_err("set controlling terminal"))?;
    nix::unistd::dup2_stdin(&slave).map_err(|e| tty_err("dup2 pty onto stdin")(e.into()))?;
    nix::unistd::dup2_stdout(&slave).map_err(|e| tty_err("dup2 pty onto stdout")(e.into()))?;
    nix::unistd::dup2_stderr(&slave).map_err(|e| tty_err("dup2 pty onto stderr")(e.into()))?;
    Ok(())
}

fn bind_console(slave: &OwnedFd) -> Result<(), ProcessError> {
    let resolve = |e: pathrs::error::Error| ProcessError::Sys {
        op: "create /dev/console",
        source: std::io::Error::other(e.to_string()),
    };
    let root = Root::open("/").map_err(resolve)?;
    let _ = root.remove_file("/dev/console");
    let target = root
        .create_file(
            "/dev/console",
            OpenFlags::O_CREAT | OpenFlags::O_EXCL | OpenFlags::O_NOFOLLOW | OpenFlags::O_RDONLY,
            &std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .map_err(resolve)?;
    let tree = sys::open_tree_clone_fd(slave.as_fd()).map_err(tty_err("clone pty mount"))?;
    sys::move_mount(tree.as_fd(), target.as_fd()).map_err(tty_err("bind pty on /dev/console"))
}
