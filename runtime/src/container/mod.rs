//! The lifecycle verbs of the runc command line, one module each.
//!
//! Every verb takes the runtime root (`--root`) and a container id; the on-disk state is in
//! [`crate::state`]. Error messages that callers match on are runc's, word for word
//! (`container does not exist`, `container not running`, …): containerd classifies them by
//! substring.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod pause;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::path::PathBuf;

pub use create::{CreateOptions, create};
pub use delete::delete;
pub use events::{Event, events, parse_interval};
pub use exec::{ExecOptions, exec};
pub use features::features;
pub use kill::{kill, parse_signal};
pub use pause::{pause, resume};
pub use ps::{ProcessRow, pids};
pub use run::{RunOptions, run};
pub use spec::default_spec;
pub use start::start;
pub use state::{list, state};
pub use update::{UpdateFlags, UpdateOptions, parse_bytes, update};

use crate::hooks::HookError;
use crate::namespaces::NamespaceError;
use crate::process::ProcessError;
use crate::spec::SpecError;
use crate::state::StateError;

/// Why a lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("linux.seccomp: this architecture has no seccomp syscall table")]
    SeccompArch,
    #[error("container not running")]
    NotRunning,
    #[error("container not paused")]
    NotPaused,
    #[error("container already paused")]
    AlreadyPaused,
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Pidfd(#[from] crate::pidfd::PidfdError),
    #[error("container {id} has no cgroup in its state (created by an older skiff)")]
    NoCgroup { id: String },
    #[error("--resources {path:?}: {reason}")]
    Resources { path: PathBuf, reason: String },
    #[error("cannot start a container that has stopped")]
    StartStopped,
    #[error("container process failed to start: {0}")]
    StartFailed(String),
    #[error("cannot start an already running container")]
    StartRunning,
    #[error("cannot delete container {id} that is not stopped: container still running")]
    StillRunning { id: String },
    #[error("bundle {path:?} does not exist")]
    Bundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to console socket {path:?}")]
    ConsoleSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot allocate tty if skiff will detach without setting console socket")]
    DetachedTerminal,
    #[error("console socket given but process.terminal is false")]
    ConsoleWithoutTerminal,
    #[error("linux.sysctl: net.* sysctls are not allowed in the host's network namespace")]
    HostNetSysctl,
    #[error("--preserve-fds {0} must not be negative")]
    PreserveFds(i32),
    #[error("cannot exec in a stopped container")]
    ExecStopped,
    #[error("cannot exec in a paused container (use --ignore-paused to override)")]
    ExecPaused,
    #[error("process args must not be empty")]
    ExecNoArgs,
    #[error("--user {0:?}: expected uid[:gid] as numbers")]
    ExecUser(String),
    #[error("--cap {0:?}: unknown capability")]
    ExecCap(String),
    #[error("--process {path:?}: {reason}")]
    ProcessFile { path: PathBuf, reason: String },
    #[error("unknown signal {0:?}")]
    Signal(String),
    #[error("cannot {op} {path:?}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {op}")]
    Sys {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("container init did not exit within {secs}s after SIGKILL")]
    KillTimeout { secs: u64 },
}

/// The manager of the container's cgroup, from its saved location.
fn manager(state: &crate::state::State) -> Result<crate::cgroups::Manager, Error> {
    let location = state.cgroup.as_ref().ok_or_else(|| Error::NoCgroup {
        id: state.id.clone(),
    })?;
    Ok(crate::cgroups::Manager::open(location)?)
}

/// The manager of the container's cgroup if it still exists (`None` for a state without one, or
/// a cgroup already removed — a `delete` that failed half-way must be able to run again).
fn existing_manager(state: &crate::state::State) -> Result<Option<crate::cgroups::Manager>, Error> {
    let Some(location) = &state.cgroup else {
        return Ok(None);
    };
    if !location.procs_dir().is_some_and(|d| d.is_dir()) {
        return Ok(None);
    }
    Ok(Some(crate::cgroups::Manager::open(location)?))
}

fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

fn sys_err(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> Error {
    move |e| Error::Sys {
        op,
        source: e.into(),
    }
}
