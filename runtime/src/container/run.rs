//! `run`: create + start, and in the foreground wait for the process, forwarding signals and
//! (with a terminal) the terminal's bytes, then delete and return the exit code.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use nix::sys::termios;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::create::{CreateOptions, create_prepared, prepare};
use super::{Error, delete, start, sys_err};

/// The flags of `run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub create: CreateOptions,
    pub detach: bool,
    /// Keep the container's state after it exits.
    pub keep: bool,
    /// Do not become a child subreaper.
    pub no_subreaper: bool,
}

/// Signals passed on to the container's process (all but those that cannot be caught, the
/// job-control stops that would stop the runtime, and SIGCHLD, which is ours).
pub(super) const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGCONT,
    Signal::SIGWINCH,
    Signal::SIGURG,
];

/// Run the container; returns the exit code to exit with (0 when detached).
pub fn run(opts: &RunOptions) -> Result<i32, Error> {
    let prepared = prepare(&opts.create)?;
    let terminal = prepared
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if opts.detach {
        if terminal && opts.create.console_socket.is_none() {
            return Err(Error::DetachedTerminal);
        }
        create_prepared(&opts.create, &prepared, None)?;
        start(&opts.create.root, &opts.create.id)?;
        return Ok(0);
    }
    if !opts.no_subreaper {
        nix::sys::prctl::set_child_subreaper(true).map_err(sys_err("become child subreaper"))?;
    }
    // With a terminal and no console socket of the caller's, the runtime is the console: the
    // init sends the pty master over a socketpair and the runtime relays bytes.
    let (ours, theirs) = if terminal && opts.create.console_socket.is_none() {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(sys_err("create console socketpair"))?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    // Signals are blocked before the init exists so none is lost; the init unblocks them before
    // it execs (sys::reset_signals).
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(*s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(sys_err("block signals"))?;

    let pid = create_prepared(&opts.create, &prepared, theirs)?;
    let relay = match ours {
        Some(sock) => Some(Relay::start(sock)?),
        None => None,
    };
    let result = start(&opts.create.root, &opts.create.id)
        .and_then(|()| wait_forwarding(pid, &mask, relay.as_ref()));
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let _ = delete(&opts.create.root, &opts.create.id, true);
            return Err(e);
        }
    };
    if let Some(relay) = relay {
        relay.finish();
    }
    if !opts.keep {
        delete(&opts.create.root, &opts.create.id, true)?;
    }
    Ok(code)
}

/// Wait for the init, passing on signals; reap every other orphan that reaches us as subreaper.
pub(super) fn wait_forwarding(
    pid: Pid,
    mask: &SigSet,
    relay: Option<&Relay>,
) -> Result<i32, Error> {
    loop {
        // Check before waiting: the init may have exited before the first SIGCHLD wait.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(nix::errno::Errno::ECHILD) => return Ok(0),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(sys_err("wait for container")(e)),
            }
        }
        let sig = mask.wait().map_err(sys_err("wait for signals"))?;
        match sig {
            Signal::SIGCHLD => continue,
            Signal::SIGWINCH => {
                if let Some(r) = relay {
                    r.resize();
                }
            }
            other => {
                let _ = nix::sys::signal::kill(pid, other);
            }
        }
    }
}

/// Copies between the runtime's stdio and the container's pty master.
pub(super) struct Relay {
    master: std::sync::Arc<OwnedFd>,
    output: std::thread::JoinHandle<()>,
    saved: Option<termios::Termios>,
}

impl Relay {
    pub(super) fn start(sock: OwnedFd) -> Result<Relay, Error> {
        let master = std::sync::Arc::new(receive_fd(&sock)?);
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            termios::cfmakeraw(&mut raw);
            let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &raw);
        }
        let relay = Relay {
            master: master.clone(),
            output: std::thread::spawn({
                let master = master.clone();
                move || {
                    let mut from = std::fs::File::from(
                        master
                            .as_fd()
                            .try_clone_to_owned()
                            .expect("dup of an open descriptor"),
                    );
                    let mut out = std::io::stdout();
                    let mut buf = [0u8; 8192];
                    // EIO once the last slave descriptor closes: the container is gone.
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let _ = out.flush();
                    }
                }
            }),
            saved,
        };
        relay.resize();
        // Input is copied by a detached thread: a read on our stdin cannot be interrupted, and
        // the process exits when the container does.
        let mut to =
            std::fs::File::from(
                master
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| Error::Sys {
                        op: "dup pty master",
                        source: e,
                    })?,
            );
        std::thread::spawn(move || {
            let mut input = std::io::stdin();
            let mut buf = [0u8; 8192];
            while let Ok(n) = input.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        Ok(relay)
    }

    fn resize(&self) {
        if let Ok((rows, cols)) = crate::sys::window_size(std::io::stdin().as_fd()) {
            let _ = crate::sys::set_window_size(self.master.as_fd(), rows, cols);
        }
    }

    pub(super) fn finish(self) {
        let _ = self.output.join();
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), termios::SetArg::TCSANOW, t);
        }
    }
}

/// Receive the one descriptor the init sends over the console socket.
fn receive_fd(sock: &OwnedFd) -> Result<OwnedFd, Error> {
    crate::sys::recv_fd(sock.as_fd()).map_err(|source| Error::Sys {
        op: "receive pty master",
        source,
    })
}
