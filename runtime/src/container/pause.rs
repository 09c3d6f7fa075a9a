//! `pause` and `resume`: freeze and thaw every process of the container through its cgroup
//! (the v1 freezer, or `cgroup.freeze` on v2).

use std::path::Path;

use super::{Error, manager};
use crate::state::{StateDir, Status};

/// Freeze a running container.
pub fn pause(root: &Path, id: &str) -> Result<(), Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(Error::AlreadyPaused),
        Status::Stopped | Status::Creating => return Err(Error::NotRunning),
    }
    manager(&state)?.freeze()?;
    Ok(())
}

/// Thaw a paused container.
pub fn resume(root: &Path, id: &str) -> Result<(), Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Paused => {}
        Status::Stopped => return Err(Error::NotRunning),
        Status::Running | Status::Created | Status::Creating => return Err(Error::NotPaused),
    }
    manager(&state)?.thaw()?;
    Ok(())
}
