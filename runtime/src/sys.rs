//! The only module of the runtime that may use `unsafe`.
//!
//! Each function wraps one system call that neither `nix` nor `pathrs` exposes safely (or, for
//! `clone`, exposes only in a shape that does not fit: nix's `clone` wants a separate stack and a
//! callback, while the runtime wants fork semantics with namespace flags). Every `unsafe` block
//! holds exactly one call and says which invariant makes it sound.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;

/// Kernel ABI constants of the new mount API (include/uapi/linux/mount.h); spelled out here
/// because not every libc release exports them for every target.
pub mod mount_api {
    pub const OPEN_TREE_CLONE: u32 = 1;
    pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
    pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    pub const FSOPEN_CLOEXEC: u32 = 1;
    pub const FSMOUNT_CLOEXEC: u32 = 1;
    pub const FSCONFIG_SET_FLAG: u32 = 0;
    pub const FSCONFIG_SET_STRING: u32 = 1;
    pub const FSCONFIG_CMD_CREATE: u32 = 6;
    pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
    pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
    pub const MOUNT_ATTR_NODEV: u64 = 0x04;
    pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
    pub const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
    pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
    pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
    pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
    pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
    pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
}
use mount_api::*;

/// `clone(2)` with fork semantics: no new stack, no `CLONE_VM`, `SIGCHLD` as exit signal.
///
/// Returns `Ok(None)` in the child and `Ok(Some(pid))` in the parent.
///
/// The caller must be single-threaded: the child gets a copy of the address space with only the
/// calling thread in it, so a lock held by another thread (malloc's, say) would stay locked
/// forever in the child. The runtime CLI never starts a thread before it clones.
pub fn clone_fork(flags: libc::c_int) -> io::Result<Option<Pid>> {
    let flags = (flags as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: without CLONE_VM the child runs on a copy-on-write copy of the parent's stack, so a
    // null stack pointer means "keep using the current stack" (see clone(2), "raw system call
    // interface"); parent_tid, child_tid and tls are unused because CLONE_PARENT_SETTID,
    // CLONE_CHILD_SETTID/CLEARTID and CLONE_SETTLS are never in `flags`.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as libc::pid_t))),
    }
}

/// Attribute changes for [`mount_setattr`], laid out as the kernel's `struct mount_attr`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `mount_setattr(2)` on the mount that `dirfd` refers to (with `AT_EMPTY_PATH`), recursively
/// when `recursive` is set. Needs Linux 5.12.
pub fn mount_setattr(dirfd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a static NUL-terminated empty string, `attr` points to a live
    // `struct mount_attr` whose size is passed alongside it, and `dirfd` is an open descriptor
    // borrowed for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC)`: marks every descriptor from `first` up
/// close-on-exec without closing it (Linux 5.11).
pub fn cloexec_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(master, TIOCGPTPEER, O_RDWR|O_NOCTTY|O_CLOEXEC)`: opens the slave side of a pty from
/// its master without a path lookup in `/dev/pts` (the CVE-2025-52565 lesson: a path can be
/// swapped for a symlink, the master's peer cannot).
pub fn pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes an int argument by value and returns a new descriptor.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ioctl(fd, TIOCSPTLCK, &0)`: unlock the slave of a freshly opened pty master.
pub fn unlock_pty(master: BorrowedFd<'_>) -> io::Result<()> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points to a live local.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(fd, TIOCSCTTY, 0)`: make the terminal the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal from another session).
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(fd, TIOCSWINSZ, &size)`: set the window size of a terminal.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a `struct winsize` through the pointer, which points to a local.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(fd, TIOCGWINSZ)`: the window size of a terminal, as (rows, cols).
pub fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a `struct winsize` through the pointer, which points to a local.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((size.ws_row, size.ws_col))
}

/// `setdomainname(2)`, which nix does not wrap.
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe the bytes of `name`, which outlives the call; the
    // kernel copies them and does not need a terminating NUL.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reset every catchable signal to `SIG_DFL` and empty the signal mask.
///
/// Dispositions set to `SIG_IGN` survive `execve` (signal(7)); Rust's runtime ignores `SIGPIPE`,
/// and the container's process must not inherit that.
pub fn reset_signals() -> io::Result<()> {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL involves no handler code, so no async-signal-safety
        // requirement applies; signals the kernel refuses (the glibc-reserved 32 and 33) just
        // return EINVAL, which is ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let empty = nix::sys::signal::SigSet::empty();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&empty),
        None,
    )
    .map_err(io::Error::from)
}

/// `open_tree(2)` with `OPEN_TREE_CLONE`: a detached copy of the mount at `path` (of the whole
/// subtree with `recursive`), as a file descriptor that [`move_mount`] can attach elsewhere.
pub fn open_tree_clone(path: &std::ffi::CStr, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `path` is NUL-terminated and outlives the call; AT_FDCWD is a valid dirfd.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    owned_fd(fd)
}

/// `open_tree(2)` with `OPEN_TREE_CLONE` on an already open descriptor (`AT_EMPTY_PATH`): a
/// detached bind mount of exactly that file or directory.
pub fn open_tree_clone_fd(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: the path is a static empty C string and `fd` is open for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    owned_fd(ret)
}

/// `move_mount(2)` of the detached mount `from` onto the file or directory `to` (both by fd).
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: both paths are static empty C strings; both descriptors are open for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fsopen(2)`: a filesystem context for `fstype`.
pub fn fsopen(fstype: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: `fstype` is NUL-terminated and outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    owned_fd(fd)
}

/// `fsconfig(2)` with `FSCONFIG_SET_STRING` (`value` given) or `FSCONFIG_SET_FLAG` (no value).
pub fn fsconfig_set(
    fs: BorrowedFd<'_>,
    key: &std::ffi::CStr,
    value: Option<&std::ffi::CStr>,
) -> io::Result<()> {
    let (cmd, value_ptr) = match value {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: `key` and `value` (when given) are NUL-terminated and outlive the call; a flag takes
    // a null value and aux 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ptr(),
            value_ptr,
            0,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fsconfig(2)` with `FSCONFIG_CMD_CREATE`: create the superblock.
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the command takes no key, value or aux.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fsmount(2)`: a detached mount of the created superblock with the `MOUNT_ATTR_*` flags.
pub fn fsmount(fs: BorrowedFd<'_>, attr_flags: u64) -> io::Result<OwnedFd> {
    // SAFETY: fsmount takes the context fd and two integer flag words.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attr_flags as libc::c_uint,
        )
    };
    owned_fd(fd)
}

fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative return of an fd-creating system call is a new descriptor nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Receive one message carrying one descriptor (SCM_RIGHTS) on a unix socket.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut payload = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut payload)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: SCM_RIGHTS installed `fd` in our table for this message; nothing else
                // owns it, so wrapping it (and closing any extra ones) is sound.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if received.is_none() {
                    received = Some(owned);
                }
            }
        }
    }
    received
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor in the message"))
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)` (seccomp(2)). Unlike seccompiler's
/// installer it leaves `no_new_privs` alone, so `process.noNewPrivileges: false` is honoured (the
/// caller then needs CAP_SYS_ADMIN), and it passes every filter flag.
pub fn seccomp_set_mode_filter(
    flags: libc::c_ulong,
    filter: &[seccompiler::sock_filter],
) -> io::Result<()> {
    let len =
        u16::try_from(filter.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        filter: filter.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `prog` points to a live `sock_fprog` whose pointer and length describe `filter`,
    // which outlives the call; seccompiler's `sock_filter` is `#[repr(C)]` {u16, u8, u8, u32},
    // the layout of the kernel's (and libc's) `struct sock_filter`. The kernel copies the program
    // and keeps no pointer to it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    match ret {
        0 => Ok(()),
        -1 => Err(io::Error::last_os_error()),
        // With TSYNC, a positive value is the id of a thread that could not be synchronised.
        tid => Err(io::Error::other(format!(
            "thread {tid} could not be synchronised (TSYNC)"
        ))),
    }
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: give the calling process a new session keyring
/// of that name (keyrings(7)), so containers do not share the caller's.
pub fn join_session_keyring(name: &std::ffi::CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: `name` is NUL-terminated and outlives the call; the kernel copies it.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Kernel ABI of `bpf(2)` (include/uapi/linux/bpf.h, bpf_common.h), spelled out here because
/// libc exports neither the command numbers nor `union bpf_attr`.
pub mod bpf_api {
    // enum bpf_cmd
    pub const BPF_PROG_LOAD: libc::c_int = 5;
    pub const BPF_PROG_ATTACH: libc::c_int = 8;
    pub const BPF_PROG_DETACH: libc::c_int = 9;
    pub const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
    pub const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
    pub const BPF_PROG_QUERY: libc::c_int = 16;
    // enum bpf_prog_type
    pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    // enum bpf_attach_type
    pub const BPF_CGROUP_DEVICE: u32 = 6;
    // BPF_PROG_ATTACH flags
    pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
    /// Length of `prog_name` and `bpf_prog_info.name`, NUL included.
    pub const BPF_OBJ_NAME_LEN: usize = 16;
}
use bpf_api::*;

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`: opcode, then the
/// destination register in the low nibble and the source register in the high nibble of one
/// byte (the bitfield order of little-endian targets, the only ones skiff builds for), a signed
/// 16-bit offset and a signed 32-bit immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}
const _: () = assert!(std::mem::size_of::<BpfInsn>() == 8);

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `expected_attach_type`. The kernel
/// zero-fills the fields it knows beyond the size passed, and every byte here is a named field
/// (no implicit padding), so nothing uninitialised reaches it.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}
const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 72);

/// The `BPF_PROG_ATTACH` / `BPF_PROG_DETACH` member of `union bpf_attr`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` member of `union bpf_attr`, up to `prog_cnt` (plus its padding, named).
#[repr(C)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
}
const _: () = assert!(std::mem::size_of::<ProgQueryAttr>() == 32);

/// The `BPF_*_GET_FD_BY_ID` member of `union bpf_attr`.
#[repr(C)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The `BPF_OBJ_GET_INFO_BY_FD` member of `union bpf_attr`.
#[repr(C)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of the kernel's `struct bpf_prog_info`, up to `name`; the kernel copies out only
/// `info_len` bytes, so the rest of the (growing) struct is never written here.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct BpfProgInfo {
    pub prog_type: u32,
    pub id: u32,
    pub tag: [u8; 8],
    pub jited_prog_len: u32,
    pub xlated_prog_len: u32,
    pub jited_prog_insns: u64,
    pub xlated_prog_insns: u64,
    pub load_time: u64,
    pub created_by_uid: u32,
    pub nr_map_ids: u32,
    pub map_ids: u64,
    pub name: [u8; BPF_OBJ_NAME_LEN],
}
const _: () = assert!(std::mem::size_of::<BpfProgInfo>() == 80);

/// `bpf(BPF_PROG_LOAD)`: load `insns` as a program of `prog_type` named `name` (at most 15
/// bytes of `[A-Za-z0-9_.]`, which the kernel checks). With `log` non-empty the verifier writes
/// its level-1 log there (NUL-terminated); note that a log buffer too small for the log makes
/// the load fail with `ENOSPC`, so callers pass one only to explain a failure.
pub fn bpf_prog_load(
    prog_type: u32,
    insns: &[BpfInsn],
    license: &std::ffi::CStr,
    name: &str,
    log: &mut [u8],
) -> io::Result<OwnedFd> {
    let einval = || io::Error::from_raw_os_error(libc::EINVAL);
    let mut prog_name = [0u8; BPF_OBJ_NAME_LEN];
    if name.len() >= BPF_OBJ_NAME_LEN {
        return Err(einval());
    }
    prog_name[..name.len()].copy_from_slice(name.as_bytes());
    let attr = ProgLoadAttr {
        prog_type,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| einval())?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: u32::try_from(log.len()).map_err(|_| einval())?,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: 0,
    };
    // SAFETY: `attr` is a live `ProgLoadAttr` whose size is passed with it; its `insns` pointer
    // and count describe `insns`, `license` is NUL-terminated, and `log_buf`/`log_size` describe
    // the writable `log` (or are 0); all three borrows outlive the call, and the kernel copies
    // the program and keeps no pointer into any of them after it returns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    owned_fd(fd)
}

/// `bpf(BPF_PROG_ATTACH)`: attach `prog` to `target` (a cgroup directory) at `attach_type`.
pub fn bpf_prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> io::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a live `ProgAttachAttr` whose size is passed with it; it holds no
    // pointers, and both descriptors are borrowed (open) for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `bpf(BPF_PROG_DETACH)`: detach `prog` from `target` at `attach_type`.
pub fn bpf_prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<()> {
    let attr = ProgAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a live `ProgAttachAttr` whose size is passed with it; it holds no
    // pointers, and both descriptors are borrowed (open) for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_DETACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `bpf(BPF_PROG_QUERY)`: the ids of the programs attached directly to `target` at
/// `attach_type` are written to the front of `ids`, and their total number is returned. When
/// the total exceeds `ids.len()` only `ids.len()` ids were written (the kernel's `ENOSPC`,
/// turned into that count here); an empty `ids` asks for the count alone.
pub fn bpf_prog_query(
    target: BorrowedFd<'_>,
    attach_type: u32,
    ids: &mut [u32],
) -> io::Result<usize> {
    let mut attr = ProgQueryAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_type,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: if ids.is_empty() {
            0
        } else {
            ids.as_mut_ptr() as u64
        },
        prog_cnt: u32::try_from(ids.len())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        pad: 0,
    };
    // SAFETY: `attr` is a live, writable `ProgQueryAttr` whose size is passed with it (the
    // kernel writes `attach_flags` and `prog_cnt` back into it); `prog_ids`/`prog_cnt` describe
    // the writable `ids` (or are 0), which outlives the call, and the kernel writes at most
    // `prog_cnt` ids.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &mut attr as *mut ProgQueryAttr,
            std::mem::size_of::<ProgQueryAttr>(),
        )
    };
    if ret == -1 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSPC) {
            return Err(err);
        }
    }
    Ok(attr.prog_cnt as usize)
}

/// `bpf(BPF_PROG_GET_FD_BY_ID)`: a new descriptor for the loaded program with that id.
pub fn bpf_prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let attr = GetFdByIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: `attr` is a live `GetFdByIdAttr` whose size is passed with it; it holds no
    // pointers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            &attr as *const GetFdByIdAttr,
            std::mem::size_of::<GetFdByIdAttr>(),
        )
    };
    owned_fd(fd)
}

/// `bpf(BPF_OBJ_GET_INFO_BY_FD)` on a program: the head of its `struct bpf_prog_info` (type,
/// id, name, …).
pub fn bpf_prog_info(prog: BorrowedFd<'_>) -> io::Result<BpfProgInfo> {
    let mut info = BpfProgInfo::default();
    let attr = InfoByFdAttr {
        bpf_fd: prog.as_raw_fd() as u32,
        info_len: std::mem::size_of::<BpfProgInfo>() as u32,
        info: &mut info as *mut BpfProgInfo as u64,
    };
    // SAFETY: `attr` is a live `InfoByFdAttr` whose size is passed with it; its `info` pointer
    // and `info_len` describe the writable local `info`, a plain-integer struct laid out as the
    // kernel's `struct bpf_prog_info` head (any bytes are valid), and the kernel writes at most
    // `info_len` bytes there. The zero-initialised pointer fields (`jited_prog_insns`, `map_ids`,
    // …) with zero lengths ask for no arrays.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &attr as *const InfoByFdAttr,
            std::mem::size_of::<InfoByFdAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}
