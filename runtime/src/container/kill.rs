//! `kill`.

use std::path::Path;

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxNamespaceType;

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

/// Send `signal` to the container's init, or with `all` to every process in its cgroup.
///
/// runc signals every process itself when the container has no private pid namespace (killing
/// the init of a private one takes the rest with it); `--all` also makes a stopped container a
/// success rather than "container not running", which containerd relies on when it cleans up.
pub fn kill(root: &Path, id: &str, signal: Signal, all: bool) -> Result<(), Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    let stopped = match dir.status(&state) {
        Status::Stopped => true,
        Status::Creating | Status::Created | Status::Running | Status::Paused => false,
    };
    let shared_pid_ns = !crate::spec::new_namespace(&state.config, LinuxNamespaceType::Pid);
    if all || shared_pid_ns {
        if let Some(cgroup) = super::existing_manager(&state)? {
            if !stopped || !cgroup.pids()?.is_empty() {
                cgroup.kill_all(signal)?;
                return Ok(());
            }
        }
    }
    if stopped {
        return if all { Ok(()) } else { Err(Error::NotRunning) };
    }
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
