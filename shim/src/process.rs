//! The process table: containers, their init and exec processes, and the process state
//! machine.
//!
//! ```text
//!            start            pause             
//! Created ─────────▶ Running ◀──────▶ Paused      (pause/resume: init only)
//!    │                 │                 │
//!    │ exit (killed)   │ exit            │ exit (SIGKILL while frozen)
//!    ▼                 ▼                 ▼
//!                  Stopped(exit)  ── delete ──▶ removed from the table
//! ```
//!
//! An init that exits while exec processes still run is held as `pending_exit`: the execs are
//! SIGKILLed and the init's TaskExit is published only after the last exec's, as containerd
//! expects (`handleInitExit` in the Go shim), and only then does the init become `Stopped`
//! (so Wait, and with it the client's Delete, follow the events in order). An exec that
//! outlives SIGKILL (uninterruptible sleep, a v1-frozen cgroup) holds it back at most
//! [`EXEC_EXIT_GRACE`](crate::service::EXEC_EXIT_GRACE).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use containerd_shim_protos::api::Status as ApiStatus;

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::stdio::{ProcessIo, StdioPaths};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    /// Exit code, or 128 + signal.
    pub status: u32,
    /// When it was reaped.
    pub at: SystemTime,
}

/// An init's exit held back until its SIGKILLed exec processes are reaped, or the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingExit {
    /// The init's exit.
    pub exited: Exited,
    /// When it is published even if execs are left.
    pub deadline: std::time::Instant,
}

/// A process's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created by the runtime (init) or registered by Exec, not started.
    Created,
    /// Started and not yet reaped.
    Running,
    /// Frozen (init only; the whole container).
    Paused,
    /// Reaped.
    Stopped(Exited),
}

impl State {
    /// The task API's status enum.
    pub fn api(self) -> ApiStatus {
        match self {
            Self::Created => ApiStatus::CREATED,
            Self::Running => ApiStatus::RUNNING,
            Self::Paused => ApiStatus::PAUSED,
            Self::Stopped(_) => ApiStatus::STOPPED,
        }
    }

    /// Created → Running.
    pub fn start(self) -> Result<Self> {
        match self {
            Self::Created => Ok(Self::Running),
            Self::Running | Self::Paused => {
                Err(Error::FailedPrecondition("process already started".into()))
            }
            Self::Stopped(_) => Err(Error::FailedPrecondition(
                "cannot start a stopped process".into(),
            )),
        }
    }

    /// Running → Paused.
    pub fn pause(self) -> Result<Self> {
        match self {
            Self::Running => Ok(Self::Paused),
            Self::Paused => Err(Error::FailedPrecondition(
                "container is already paused".into(),
            )),
            Self::Created => Err(Error::FailedPrecondition(
                "cannot pause a container that was not started".into(),
            )),
            Self::Stopped(_) => Err(Error::FailedPrecondition(
                "cannot pause a stopped container".into(),
            )),
        }
    }

    /// Paused → Running.
    pub fn resume(self) -> Result<Self> {
        match self {
            Self::Paused => Ok(Self::Running),
            Self::Created | Self::Running => {
                Err(Error::FailedPrecondition("container is not paused".into()))
            }
            Self::Stopped(_) => Err(Error::FailedPrecondition(
                "cannot resume a stopped container".into(),
            )),
        }
    }

    /// Whether Delete may remove the process.
    pub fn check_delete(self) -> Result<()> {
        match self {
            Self::Created | Self::Stopped(_) => Ok(()),
            Self::Running | Self::Paused => Err(Error::FailedPrecondition(
                "cannot delete a running process".into(),
            )),
        }
    }

    /// The exit, if stopped.
    pub fn exited(self) -> Option<Exited> {
        match self {
            Self::Stopped(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the process is alive (started and not reaped).
    pub fn is_alive(self) -> bool {
        matches!(self, Self::Running | Self::Paused)
    }
}

/// An init or exec process.
#[derive(Debug)]
pub struct Process {
    /// The exec id; empty for init.
    pub exec_id: String,
    /// The host pid (0 until an exec is started).
    pub pid: u32,
    /// The state.
    pub state: State,
    /// The client's stdio.
    pub stdio: StdioPaths,
    /// The shim's side of the stdio.
    pub io: ProcessIo,
    /// The OCI `Process` JSON of an exec.
    pub spec: Vec<u8>,
}

impl Process {
    /// A process in state `Created`.
    pub fn new(exec_id: &str, pid: u32, stdio: StdioPaths, spec: Vec<u8>) -> Self {
        Self {
            exec_id: exec_id.to_string(),
            pid,
            state: State::Created,
            stdio,
            io: ProcessIo::default(),
            spec,
        }
    }
}

/// A container served by this shim.
#[derive(Debug)]
pub struct Container {
    /// The container id.
    pub id: String,
    /// The bundle.
    pub bundle: PathBuf,
    /// The runtime CLI for it.
    pub runtime: Runtime,
    /// The init process.
    pub init: Process,
    /// Exec processes by exec id.
    pub execs: BTreeMap<String, Process>,
    /// Whether the shim mounted `<bundle>/rootfs` (and so unmounts it).
    pub rootfs_mounted: bool,
    /// The container's cgroup, if found.
    pub cgroup: Option<Cgroup>,
    /// An init exit held until the running execs have exited.
    pub pending_exit: Option<PendingExit>,
}

impl Container {
    /// The process `exec_id` ("" = init).
    pub fn process(&self, exec_id: &str) -> Result<&Process> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| self.no_exec(exec_id))
    }

    /// The process `exec_id` ("" = init), mutably.
    pub fn process_mut(&mut self, exec_id: &str) -> Result<&mut Process> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        let err = self.no_exec(exec_id);
        self.execs.get_mut(exec_id).ok_or(err)
    }

    fn no_exec(&self, exec_id: &str) -> Error {
        Error::NotFound {
            what: format!("exec {exec_id:?} of container {:?}", self.id),
        }
    }

    /// Exec processes that have started and not exited.
    pub fn running_execs(&self) -> impl Iterator<Item = &Process> {
        self.execs.values().filter(|p| p.state.is_alive())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_moves_only_forward() {
        let exit = Exited {
            status: 0,
            at: SystemTime::UNIX_EPOCH,
        };
        let s = State::Created;
        assert!(s.check_delete().is_ok());
        assert!(s.pause().is_err());
        let s = s.start().expect("created → running");
        assert!(s.start().is_err());
        assert!(s.check_delete().is_err());
        let p = s.pause().expect("running → paused");
        assert_eq!(p.api(), ApiStatus::PAUSED);
        assert!(p.check_delete().is_err());
        assert_eq!(p.resume().expect("paused → running"), State::Running);
        let stopped = State::Stopped(exit);
        assert!(stopped.start().is_err());
        assert!(stopped.pause().is_err());
        assert!(stopped.resume().is_err());
        assert!(stopped.check_delete().is_ok());
        assert_eq!(stopped.exited(), Some(exit));
        assert_eq!(stopped.api(), ApiStatus::STOPPED);
    }
}
