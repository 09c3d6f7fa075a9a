//! `delete`: stop what must be stopped, run the poststop hooks, remove the state.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::create::run_poststop;
use super::{Error, sys_err};
use crate::state::{self as st, State, StateDir, Status};

/// How long a SIGKILLed init may take to go away.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Delete the container. A created (never started) container is killed and deleted without
/// `force`, as runc does; a running or paused one needs `force`.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<(), Error> {
    let dir = match StateDir::open(root, id) {
        Ok(dir) => dir,
        Err(crate::state::StateError::NotExist) => {
            // A `create` killed before it saved the state leaves a directory without state.json
            // (and its init died with it): clear it so the id can be used again, as runc does.
            crate::state::remove_leftover(root, id)?;
            return Err(crate::state::StateError::NotExist.into());
        }
        Err(e) => return Err(e.into()),
    };
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&state)?,
        Status::Running | Status::Paused | Status::Creating => {
            if !force {
                return Err(Error::StillRunning { id: id.to_string() });
            }
            kill_and_wait(&state)?;
        }
    }
    remove_cgroup(&state)?;
    run_poststop(&state.config, &state.id, &state.bundle);
    dir.remove()?;
    Ok(())
}

/// Remove the container's cgroup. Processes left in it (a container without a private pid
/// namespace, or processes exec'd into it that outlived the init) are killed first, as runc
/// does, so none escapes its limits by outliving the container.
fn remove_cgroup(state: &State) -> Result<(), Error> {
    let Some(cgroup) = super::existing_manager(state)? else {
        return Ok(());
    };
    if !cgroup.pids()?.is_empty() {
        // A frozen cgroup would keep SIGKILL pending forever.
        cgroup.thaw()?;
        cgroup.kill_all(Signal::SIGKILL)?;
    }
    cgroup.destroy()?;
    Ok(())
}

/// SIGKILL the init and wait until it is gone or a zombie (its parent reaps it, not us).
pub(super) fn kill_and_wait(state: &State) -> Result<(), Error> {
    match nix::sys::signal::kill(st::pid(state), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => return Err(sys_err("kill container init")(e)),
    }
    // A frozen (paused) init keeps the SIGKILL pending until it is thawed.
    if let Some(cgroup) = super::existing_manager(state)? {
        if cgroup.is_frozen()? {
            cgroup.thaw()?;
        }
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    while state.init_alive() {
        // Our own child (the foreground `run`) would stay a zombie until we reap it.
        let _ = nix::sys::wait::waitpid(st::pid(state), Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if Instant::now() >= deadline {
            return Err(Error::KillTimeout {
                secs: KILL_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
    Ok(())
}
