//! `start`: release the init blocked on `exec.fifo`, then run the poststart hooks (a failing
//! one stops the container).

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::Mode;

use super::{Error, io_err};
use crate::hooks::{self, HookKind, HookState};
use crate::state::{State, StateDir, Status};

/// How often the init's liveness is re-checked while waiting on the fifo.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

pub fn start(root: &Path, id: &str) -> Result<(), Error> {
    let dir = StateDir::open(root, id)?;
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Created => {}
        Status::Stopped => return Err(Error::StartStopped),
        Status::Running | Status::Paused | Status::Creating => return Err(Error::StartRunning),
    }
    if let Err(e) = release(&dir, &state) {
        // A failed startContainer hook or exec (runtime.md, "Lifecycle" step 7): the container
        // is stopped; `delete` runs the poststop hooks.
        if matches!(e, Error::StartFailed(_)) {
            super::delete::kill_and_wait(&state)?;
        }
        return Err(e);
    }
    let spec = &state.config;
    if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststart().as_deref()) {
        let hs = HookState::new(
            spec,
            &state.id,
            &state.bundle,
            Status::Running,
            Some(state.pid),
        );
        // runtime-spec 1.1+ (runtime.md, "Lifecycle" step 10), and runc: a failing poststart
        // hook is an error, and the container is stopped; `delete` then runs the poststop hooks.
        if let Err(e) = hooks::run(HookKind::Poststart, list, &hs) {
            super::delete::kill_and_wait(&state)?;
            return Err(e.into());
        }
    }
    Ok(())
}

/// Open the fifo for reading: that completes the init's blocked open. Read its one byte, remove
/// the fifo (the status is "running" from now on), and wait until the init closes its end, which
/// happens at execve (the descriptor is close-on-exec) — or when it dies. Anything the init writes
/// after its byte is the error that kept it from executing the process.
fn release(dir: &StateDir, state: &State) -> Result<(), Error> {
    let path = dir.fifo_path();
    // Non-blocking, so that a dead init cannot hang us in open().
    let fifo = nix::fcntl::open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("open", &path)(e.into()))?;
    let mut got_byte = false;
    let mut failure = Vec::new();
    let done = |got_byte: bool, failure: &[u8]| {
        if !failure.is_empty() {
            Err(Error::StartFailed(
                String::from_utf8_lossy(failure).into_owned(),
            ))
        } else if got_byte {
            Ok(())
        } else {
            Err(Error::StartStopped)
        }
    };
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        let timeout =
            PollTimeout::try_from(LIVENESS_INTERVAL.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) => {
                if !state.init_alive() {
                    let _ = std::fs::remove_file(&path);
                    return done(got_byte, &failure);
                }
                continue;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(io_err("poll", &path)(e.into())),
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&fifo, &mut buf) {
            Ok(0) if got_byte => return done(got_byte, &failure),
            // EOF without our byte: the init opened and closed the fifo for another reader — a
            // concurrent `start` took the byte and the init has exec'd (or died). It never
            // opens the fifo again, so waiting longer would spin forever.
            Ok(0) => {
                return Err(if state.init_alive() {
                    Error::StartRunning
                } else {
                    Error::StartStopped
                });
            }
            Ok(n) => {
                let mut data = &buf[..n];
                if !got_byte {
                    got_byte = true;
                    data = &data[1..];
                    std::fs::remove_file(&path).map_err(io_err("remove", &path))?;
                }
                failure.extend_from_slice(data);
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io_err("read", &path)(e.into())),
        }
    }
}
