//! The one place that reaps children: SIGCHLD + `waitpid(-1, WNOHANG)`.
//!
//! The serving shim is a child subreaper (`PR_SET_CHILD_SUBREAPER`, prctl(2)), so container
//! init and exec processes — children of the runtime CLI, which exits — are reparented to it and
//! their exits arrive here. So do the exits of the runtime CLI invocations the shim spawns, and
//! a `waitpid(-1)` loop would steal those from `Child::wait`. So nothing else ever waits: a CLI
//! is spawned through [`Reaper::spawn`], which registers its pid under the same lock the reaper
//! takes before dispatching, and the CLI's status comes back on a channel; every other exit is
//! a container process (or an orphan) and goes to the exit channel, in reaping order.
//!
//! SIGCHLD is blocked in every thread ([`block_sigchld`] runs before the first thread is
//! spawned, and threads inherit the mask) and taken with `sigwait(3)` by the reaper thread, so
//! no signal handler (and no `unsafe`) is involved. Children start with an empty mask: std's
//! `Command` resets it before exec.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

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

/// The reaper's shared state; clone the `Arc` to spawn CLIs from any thread.
#[derive(Debug)]
pub struct Reaper {
    waiters: Mutex<HashMap<i32, Sender<Exit>>>,
    exits: Sender<Exit>,
}

/// Blocks SIGCHLD in the calling thread (and so in every thread it spawns afterwards).
pub fn block_sigchld() -> nix::Result<()> {
    SigSet::from(Signal::SIGCHLD).thread_block()
}

impl Reaper {
    /// Starts the reaper thread; container exits arrive on the returned receiver.
    pub fn start() -> std::io::Result<(Arc<Self>, Receiver<Exit>)> {
        let (exits, rx) = mpsc::channel();
        let reaper = Arc::new(Self {
            waiters: Mutex::new(HashMap::new()),
            exits,
        });
        let me = reaper.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || me.run())?;
        Ok((reaper, rx))
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

    fn run(&self) {
        let set = SigSet::from(Signal::SIGCHLD);
        loop {
            // Children that exited before the first wait are collected by the drain below.
            self.drain();
            if set.wait().is_err() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }

    /// Reaps every exited child (signals coalesce, so one SIGCHLD may stand for many).
    fn drain(&self) {
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
                None => {
                    let _ = self.exits.send(exit);
                }
            }
        }
    }
}
