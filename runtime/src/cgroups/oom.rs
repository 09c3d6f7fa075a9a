//! OOM notification for one container cgroup, as a pollable file descriptor.
//!
//! - v1: an eventfd registered through `cgroup.event_control` for `memory.oom_control`
//!   (Documentation/admin-guide/cgroup-v1/memory.rst §10 "OOM Control"). The kernel also
//!   signals the eventfd when the cgroup is removed; runc tells the two apart by checking
//!   whether `cgroup.event_control` still exists, and so do we.
//! - v2: inotify on `memory.events` (the kernel calls `cgroup_file_notify` on every change,
//!   which inotify sees as IN_MODIFY); an event is reported when its `oom_kill` count grows
//!   (runc's `registerMemoryEventV2`). IN_IGNORED (file gone) means the cgroup was removed.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::CgroupError;
use super::fsutil::{self, io_err, keyed};

/// What the watcher saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// The cgroup hit its memory limit (v1: under OOM; v2: the OOM killer killed a process).
    Oom,
    /// The cgroup was removed; no more events will come.
    Gone,
}

#[derive(Debug)]
enum Source {
    V1 {
        efd: EventFd,
        /// Kept open: the registration lives as long as this descriptor (and the eventfd).
        _oom_control: File,
        event_control: PathBuf,
    },
    V2 {
        inotify: Inotify,
        dir: PathBuf,
        last_oom_kill: u64,
    },
}

/// A pollable OOM notifier ([`AsFd`]: readable when [`OomWatcher::read_event`] has something).
#[derive(Debug)]
pub struct OomWatcher {
    source: Source,
    gone: bool,
}

fn oom_err(op: &'static str) -> impl FnOnce(Errno) -> CgroupError {
    move |source| CgroupError::Oom { op, source }
}

impl OomWatcher {
    /// Registers on the v1 memory cgroup `dir`.
    pub(super) fn v1(dir: &Path) -> Result<OomWatcher, CgroupError> {
        let oom_path = dir.join("memory.oom_control");
        let oom_control = File::open(&oom_path).map_err(io_err("open", oom_path))?;
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(oom_err("eventfd"))?;
        let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
        fsutil::write(
            dir,
            "cgroup.event_control",
            &line,
            "memory OOM notification",
        )?;
        Ok(OomWatcher {
            source: Source::V1 {
                efd,
                _oom_control: oom_control,
                event_control: dir.join("cgroup.event_control"),
            },
            gone: false,
        })
    }

    /// Watches `dir/memory.events` of a v2 cgroup.
    pub(super) fn v2(dir: &Path) -> Result<OomWatcher, CgroupError> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(oom_err("inotify_init"))?;
        let events = dir.join("memory.events");
        inotify
            .add_watch(&events, AddWatchFlags::IN_MODIFY)
            .map_err(oom_err("inotify_add_watch memory.events"))?;
        // Read the count after the watch is in place, so no increase can be missed.
        let last_oom_kill = keyed(&fsutil::read(dir, "memory.events")?, "oom_kill").unwrap_or(0);
        Ok(OomWatcher {
            source: Source::V2 {
                inotify,
                dir: dir.to_path_buf(),
                last_oom_kill,
            },
            gone: false,
        })
    }

    /// Consumes what is pending without blocking: `Ok(None)` if nothing happened (spurious
    /// wake-up, or a v2 change that was not an OOM kill).
    pub fn read_event(&mut self) -> Result<Option<OomEvent>, CgroupError> {
        if self.gone {
            return Ok(Some(OomEvent::Gone));
        }
        match &mut self.source {
            Source::V1 {
                efd, event_control, ..
            } => match efd.read() {
                Ok(_) => {
                    if event_control.exists() {
                        Ok(Some(OomEvent::Oom))
                    } else {
                        self.gone = true;
                        Ok(Some(OomEvent::Gone))
                    }
                }
                Err(Errno::EAGAIN) => Ok(None),
                Err(e) => Err(oom_err("read eventfd")(e)),
            },
            Source::V2 {
                inotify,
                dir,
                last_oom_kill,
            } => {
                let events = match inotify.read_events() {
                    Ok(ev) => ev,
                    Err(Errno::EAGAIN) => return Ok(None),
                    Err(e) => return Err(oom_err("read inotify")(e)),
                };
                if events
                    .iter()
                    .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                {
                    self.gone = true;
                    return Ok(Some(OomEvent::Gone));
                }
                let Some(content) = fsutil::read_opt(dir, "memory.events")? else {
                    self.gone = true;
                    return Ok(Some(OomEvent::Gone));
                };
                let now = keyed(&content, "oom_kill").unwrap_or(0);
                if now > *last_oom_kill {
                    *last_oom_kill = now;
                    Ok(Some(OomEvent::Oom))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Waits up to `timeout` (`None`: forever) for an event; `Ok(None)` on timeout.
    pub fn wait_event(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<OomEvent>, CgroupError> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            if let Some(ev) = self.read_event()? {
                return Ok(Some(ev));
            }
            let left = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    // Round up so a sub-millisecond remainder still waits.
                    let ms = left.as_millis().saturating_add(1);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, left) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(oom_err("poll")(e)),
            }
        }
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::V1 { efd, .. } => efd.as_fd(),
            Source::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}
