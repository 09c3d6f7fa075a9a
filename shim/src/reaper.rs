//! The serving shim's one event loop, on its main thread: reaping (SIGCHLD through a
//! signalfd + `waitpid(-1, WNOHANG)`), the OOM watches of every container, and shutdown.
//!
//! The serving shim is a child subreaper (`PR_SET_CHILD_SUBREAPER`, prctl(2)), so container
//! init and exec processes — children of the runtime CLI, which exits — are reparented to it and
//! their exits arrive here. So do the exits of the runtime CLI invocations the shim spawns, and
//! a `waitpid(-1)` loop would steal those from `Child::wait`. So nothing else ever waits: a CLI
//! is spawned through [`Reaper::spawn`], which registers its pid under the same lock the loop
//! takes before dispatching, and the CLI's status comes back on a channel; every other exit is
//! a container process (or an orphan) and goes to the [`Sink`] (the task service), in reaping
//! order.
//!
//! SIGCHLD is blocked in every thread ([`block_sigchld`] runs before the first thread is
//! spawned, and threads inherit the mask) and read from a signalfd(2), so no signal handler (and
//! no `unsafe`) is involved. Children start with an empty mask: std's `Command` resets it before
//! exec.
//!
//! One thread for all of it (poll(2) over the signalfd, a wake eventfd and each container's OOM
//! fd) instead of a reaper, an exit applier and one OOM thread per container: every thread costs
//! a shim stack pages and glibc state (docs/benchmarks.md, the shim section). The loop never
//! blocks on the process table: a handler holds the table across runtime CLI calls whose exits
//! this loop must dispatch, so container exits are applied with `try_lock` and, while the table
//! is busy, kept in order and retried every [`RETRY`].

use std::collections::HashMap;
use std::os::fd::AsFd as _;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use crate::cgroups::OomWatch;

/// How soon the loop retries exits while the process table is busy.
pub const RETRY: Duration = Duration::from_millis(10);

/// A reaped process: pid, exit status (128 + signal for a signalled process) and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The host pid.
    pub pid: i32,
    /// The exit code, or 128 + the signal number.
    pub status: u32,
    /// When the shim reaped it.
    pub at: SystemTime,
}

/// What [`Sink::try_apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The table was busy: nothing applied, try again shortly.
    Busy,
    /// Everything applied; nothing waits for a deadline.
    Idle,
    /// Everything applied; call again after this long (a deadline runs).
    Again(Duration),
}

/// Where the loop delivers what it sees: the task service.
pub trait Sink {
    /// If the process table is free right now: applies `exits` in order (draining them) and
    /// whatever deadline has passed. Must not block.
    fn try_apply(&self, exits: &mut Vec<Exit>) -> Applied;
    /// An OOM kill in the cgroup of container `id`.
    fn oom(&self, id: &str);
}

/// The loop's shared side; clone the `Arc` to spawn CLIs, add OOM watches or stop the loop from
/// any thread.
#[derive(Debug)]
pub struct Reaper {
    waiters: Mutex<HashMap<i32, Sender<Exit>>>,
    added: Mutex<Vec<(String, OomWatch)>>,
    wake: EventFd,
    stop: AtomicBool,
}

/// Blocks SIGCHLD in the calling thread (and so in every thread it spawns afterwards).
pub fn block_sigchld() -> nix::Result<()> {
    SigSet::from(Signal::SIGCHLD).thread_block()
}

impl Reaper {
    /// The shared side; [`Reaper::run`] runs the loop.
    pub fn new() -> std::io::Result<Arc<Self>> {
        let wake =
            EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Arc::new(Self {
            waiters: Mutex::new(HashMap::new()),
            added: Mutex::new(Vec::new()),
            wake,
            stop: AtomicBool::new(false),
        }))
    }

    /// Spawns `command` and returns it with the channel its exit will arrive on. Never call
    /// `wait` on the returned child.
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<(Child, Receiver<Exit>)> {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let child = command.spawn()?;
        let (tx, rx) = mpsc::channel();
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        waiters.insert(pid, tx);
        Ok((child, rx))
    }

    /// Adds the OOM watch of container `id` to the loop; it ends when the cgroup goes.
    pub fn watch_oom(&self, id: &str, watch: OomWatch) {
        self.added
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id.to_string(), watch));
        self.wake();
    }

    /// Makes [`Reaper::run`] return.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        let _ = self.wake.write(1);
    }

    /// Runs the loop on the calling thread until [`Reaper::stop`]. SIGCHLD must be blocked in
    /// every thread ([`block_sigchld`]).
    pub fn run(&self, sink: &dyn Sink) -> std::io::Result<()> {
        let signals = SignalFd::with_flags(
            &SigSet::from(Signal::SIGCHLD),
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )?;
        let mut watches: Vec<(String, OomWatch)> = Vec::new();
        let mut exits = Vec::new();
        loop {
            // Drain the signalfd (signals coalesce), then reap every exited child; the first
            // round also collects children that exited before the signalfd existed.
            while let Ok(Some(_)) = signals.read_signal() {}
            self.drain(&mut exits);
            let timeout = match sink.try_apply(&mut exits) {
                Applied::Busy => Some(RETRY),
                Applied::Idle => None,
                Applied::Again(after) => Some(after),
            };
            watches.extend(
                self.added
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .drain(..),
            );
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            let timeout = timeout.map_or(PollTimeout::NONE, |t| {
                PollTimeout::try_from(t.max(Duration::from_millis(1))).unwrap_or(PollTimeout::MAX)
            });
            let mut fds = vec![
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            ];
            fds.extend(
                watches
                    .iter()
                    .map(|(_, w)| PollFd::new(w.fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[1] {
                let _ = self.wake.read();
            }
            // OOM before the exits reaped in the same round: containerd expects TaskOOM first.
            let mut index = 2;
            watches.retain_mut(|(id, watch)| {
                let was_ready = ready[index];
                index += 1;
                if !was_ready {
                    return true;
                }
                let seen = watch.check();
                if seen.oom {
                    sink.oom(id);
                }
                !seen.ended
            });
        }
    }

    /// Reaps every exited child: a CLI's exit goes to its waiter, any other to `exits`.
    fn drain(&self, exits: &mut Vec<Exit>) {
        loop {
            let exit = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => Exit {
                    pid: pid.as_raw(),
                    status: u32::try_from(code).unwrap_or(255),
                    at: SystemTime::now(),
                },
                Ok(WaitStatus::Signaled(pid, signal, _)) => Exit {
                    pid: pid.as_raw(),
                    status: 128 + signal as u32,
                    at: SystemTime::now(),
                },
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => return,
            };
            let waiter = self
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&exit.pid);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(exit);
                }
                None => exits.push(exit),
            }
        }
    }
}
