//! `state` and `list`.

use std::path::Path;

use super::Error;
use crate::state::{self as st, State, StateDir, Status};

/// The container's state and its derived status.
pub fn state(root: &Path, id: &str) -> Result<(State, Status), Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    let status = dir.status(&state);
    Ok((state, status))
}

/// Every container under `root`, skipping any whose state vanished while listing (a concurrent
/// delete).
pub fn list(root: &Path) -> Result<Vec<(State, Status)>, Error> {
    let mut out = Vec::new();
    for id in st::list_ids(root)? {
        match state(root, &id) {
            Ok(s) => out.push(s),
            Err(Error::State(st::StateError::NotExist)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
