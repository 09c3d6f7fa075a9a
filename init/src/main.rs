//! `skiff-init`: the init of `docker run --init` (docker's `docker-init`, which is tini).
//!
//! skiffd bind-mounts it read-only at `/sbin/docker-init` and prefixes the command with
//! `/sbin/docker-init --`, so it is the container's pid 1 and the command its only child. It
//! must run in any rootfs (busybox has no libc to speak of), so it is built statically
//! (`scripts/build-static.sh`, glibc `crt-static`).
//!
//! What it does, and nothing else:
//! - runs the command (`skiff-init [--] CMD [ARG…]`) as its child;
//! - forwards every signal it receives to the child (the kernel delivers no signal a pid 1 has
//!   no handler for, so without an init `docker stop`'s SIGTERM is lost on most programs);
//!   synchronous fault signals and the tty job-control ones are not forwarded (tini's list);
//! - puts the command in a process group of its own and, when stdin is a terminal, makes that
//!   group the terminal's foreground one, so a Ctrl-C reaches the command once (from the
//!   kernel) and not a second time through the forwarding;
//! - reaps every child, including orphans the kernel reparents to it (zombies);
//! - exits with the child's status once it exits: its code, or 128 + the signal that killed it.
//!
//! How, with no `unsafe`: every forwardable signal is blocked and read from a `signalfd`, so
//! there are no handlers. The child is started with `posix_spawnp` (nix's safe wrapper), which
//! says exactly what the command starts with: an empty signal mask (a blocked mask passed on
//! would make it ignore `docker stop`), every signal at its default disposition and its own
//! process group, all set before its exec. When not
//! pid 1 (a test, or a runtime that put something above it) it makes itself the child
//! subreaper, so orphans still come to it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::process::ExitCode;

use nix::errno::Errno;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Signals that are not forwarded and stay unblocked: faults of the init itself (blocking
/// them would hang it on a fault) and the tty job-control stops (tini's list).
const NOT_FORWARDED: [Signal; 9] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

fn usage() -> ExitCode {
    eprintln!("usage: skiff-init [--] COMMAND [ARG...]");
    ExitCode::from(2)
}

/// The exit status of a child as a shell reports it: its code, or 128 + the signal.
fn status_code(status: WaitStatus) -> Option<u8> {
    match status {
        WaitStatus::Exited(_, code) => Some(u8::try_from(code & 0xff).unwrap_or(255)),
        WaitStatus::Signaled(_, sig, _) => Some(128u8.wrapping_add(sig as u8)),
        _ => None,
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("skiff-init {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => return usage(),
        Some("--") => {
            args.remove(0);
        }
        _ => {}
    }
    if args.is_empty() {
        return usage();
    }
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("skiff-init: {}: {e}", args[0]);
            // The exit status of a command that could not run (a shell's 127 / 126).
            ExitCode::from(match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            })
        }
    }
}

fn cstring(b: &[u8]) -> std::io::Result<CString> {
    CString::new(b).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

/// Starts the command (searched on PATH) with a clean signal state; its pid.
fn spawn(args: &[String]) -> std::io::Result<Pid> {
    let argv = args
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<std::io::Result<Vec<_>>>()?;
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstring(&kv)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF
            | PosixSpawnFlags::POSIX_SPAWN_SETPGROUP,
    )?;
    // A process group of its own (pgroup 0: the child's pid), as tini does.
    attr.set_pgroup(Pid::from_raw(0))?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_sigdefault(&SigSet::all())?;
    let actions = PosixSpawnFileActions::init()?;
    Ok(posix_spawnp(&argv[0], &actions, &attr, &argv, &env)?)
}

fn run(args: &[String]) -> std::io::Result<u8> {
    let mut forwarded = SigSet::all();
    for s in NOT_FORWARDED {
        forwarded.remove(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None)?;
    let signals = SignalFd::with_flags(&forwarded, SfdFlags::SFD_CLOEXEC)?;
    if nix::unistd::getpid() != Pid::from_raw(1) {
        // Not fatal: without it orphans go to the real init, which reaps them too.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }

    let child = spawn(args)?;
    give_terminal(child);

    loop {
        let Some(info) = signals.read_signal()? else {
            continue;
        };
        let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
        let Ok(sig) = Signal::try_from(signo) else {
            continue;
        };
        if sig != Signal::SIGCHLD {
            // The child may be gone already (ESRCH): its exit is in the next SIGCHLD.
            let _ = kill(child, sig);
            continue;
        }
        // One SIGCHLD may stand for many exits: reap until nothing is left to reap.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(status) if status.pid() == Some(child) => {
                    if let Some(code) = status_code(status) {
                        reap_rest();
                        return Ok(code);
                    }
                }
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Makes the child's process group the foreground group of our terminal, if stdin is one, so
/// that the keys of the tty (Ctrl-C, Ctrl-Z, the quit key) and SIGWINCH reach the command once,
/// from the kernel, instead of reaching both of us and then the command a second time through
/// the forwarding.
///
/// The child may already have read from the terminal while its group was still in the
/// background: it was then stopped by SIGTTIN. A SIGCONT to its group after the switch resumes
/// it, and the read starts again, now in the foreground (the kernel restarts a read interrupted
/// by a stop); a SIGCONT also discards a stop that was pending but not yet taken.
fn give_terminal(child: Pid) {
    let stdin = std::io::stdin();
    if !nix::unistd::isatty(&stdin).unwrap_or(false) {
        return;
    }
    // Asking from a background group would stop us with SIGTTOU unless it is blocked.
    let ttou = SigSet::from(Signal::SIGTTOU);
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&ttou), None).is_err() {
        return;
    }
    // ENOTTY: a terminal that is not our controlling one (nothing to hand over).
    let given = nix::unistd::tcsetpgrp(&stdin, child).is_ok();
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&ttou), None);
    if given {
        let _ = nix::sys::signal::killpg(child, Signal::SIGCONT);
    }
}

/// Reaps whatever else has exited already (the kernel kills the rest of the pid namespace
/// when pid 1 exits).
fn reap_rest() {
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_as_a_shell_reports_them() {
        let p = Pid::from_raw(7);
        assert_eq!(status_code(WaitStatus::Exited(p, 3)), Some(3));
        assert_eq!(
            status_code(WaitStatus::Signaled(p, Signal::SIGTERM, false)),
            Some(143)
        );
        assert_eq!(
            status_code(WaitStatus::Signaled(p, Signal::SIGKILL, true)),
            Some(137)
        );
        assert_eq!(status_code(WaitStatus::StillAlive), None);
    }
}
