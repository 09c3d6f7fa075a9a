//! `kill`.

use std::path::Path;

use nix::sys::signal::Signal;

use super::{Error, sys_err};
use crate::state::{self as st, StateDir, Status};

/// Parse a signal as runc does: a number, or a name with or without `SIG`, any case.
pub fn parse_signal(s: &str) -> Result<Signal, Error> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::Signal(s.to_string()));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| Error::Signal(s.to_string()))
}

/// Send `signal` to the container's init.
///
/// `all` is accepted for compatibility (containerd passes `--all`); with a private pid namespace
/// killing the init kills every process in it. Signalling each process of a container that shares
/// a pid namespace needs its cgroup, which the cgroup support will add.
pub fn kill(root: &Path, id: &str, signal: Signal, all: bool) -> Result<(), Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Stopped => {
            return Err(Error::NotRunning);
        }
        Status::Creating | Status::Created | Status::Running | Status::Paused => {}
    }
    let _ = all;
    match nix::sys::signal::kill(st::pid(&state), signal) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ESRCH) => Err(Error::NotRunning),
        Err(e) => Err(sys_err("signal container init")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").expect("9"), Signal::SIGKILL);
        assert_eq!(parse_signal("KILL").expect("KILL"), Signal::SIGKILL);
        assert_eq!(parse_signal("sigterm").expect("sigterm"), Signal::SIGTERM);
        assert_eq!(parse_signal("SIGHUP").expect("SIGHUP"), Signal::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
