//! The container's control groups: where they are, creating them, limits, freeze, stats, OOM.
//!
//! - [`resolve`] turns `linux.cgroupsPath` into a [`Location`] (runc's semantics), parsing
//!   `/proc/self/mountinfo` and `/proc/self/cgroup` once; the `Location` is saved in the
//!   container's `state.json`, so later commands never look at the mount table again.
//! - [`Manager`] acts on a `Location`: [`Manager::create`] (validate, mkdir, limits),
//!   [`Manager::add_pid`], [`Manager::update`], freeze/thaw, [`Manager::pids`],
//!   [`Manager::kill_all`], [`Manager::stats`] (runc's `events` JSON, [`Stats`]),
//!   [`Manager::oom_watcher`] ([`OomWatcher`]) and [`Manager::destroy`].
//!
//! Two layouts are supported, chosen by what is mounted:
//! - **v1**, including the *hybrid* layout of these machines: one directory per v1 hierarchy,
//!   plus — as runc does since 1.1 — a directory in the cgroup2 mount (`/sys/fs/cgroup/unified`)
//!   that processes join too, so `cgroup.kill` works there. One hybrid extension beyond runc:
//!   when the host has no v1 `hugetlb` hierarchy but its cgroup2 mount has the `hugetlb`
//!   controller (these machines), `hugepageLimits` are applied there instead of failing.
//! - **v2** (unified): one directory; controllers are enabled in every ancestor's
//!   `cgroup.subtree_control`, as runc's `CreateCgroupPath` does.
//!
//! # Controllers that are not there
//! runc's rule (`libcontainer/cgroups/fs/fs.go`: `Apply` skips a hierarchy that is not mounted,
//! except `devices`; `Set` then fails with "cannot set <controller> limit: container could not
//! join or create cgroup" when a resource for it is requested) is kept, with the difference that
//! the check happens in [`Manager::create`] *before* anything is created:
//! - no resource requested for a missing controller: skipped silently;
//! - a resource requested for it: [`CgroupError::ControllerMissing`];
//! - the v1 `devices` hierarchy missing: always an error ([`CgroupError::NoDevicesController`]),
//!   because running without device isolation would be a silent security downgrade;
//! - `network` (`net_cls`/`net_prio`) on v2: ignored, as runc's `fs2` manager ignores it (cgroup
//!   v2 has no such controllers; netfilter matches on the cgroup path instead);
//! - `unified` on v1: an error, as runc's `ErrV1NoUnified`.
//! - `memory.kernel`/`memory.kernelTCP`: ignored on both layouts, as runc has done since
//!   1.0.0-rc94 (kernel 6.x rejects or ignores `memory.kmem.limit_in_bytes`).
//!
//! # Why not the `cgroups-rs` crate
//! `cgroups-rs` 0.5.1 was evaluated and is not used: it pulls `zbus` 5 unconditionally (about
//! 90 crates with an async stack, for a systemd driver we cannot use), plus a second `nix`
//! (0.25) and `thiserror` 1; its v2 code hard-codes `/sys/fs/cgroup` (so it can neither use the
//! hybrid `unified` mount nor a test root); its `Hierarchy` re-parses mountinfo on every
//! `Cgroup::load`/`clone`; it writes `memory.limit_in_bytes` before `memsw` unconditionally (the
//! ordering runc fixes in `setMemoryAndSwap`); its freezer does not wait for `FROZEN`; and it has
//! `unwrap()`s on paths the runtime reaches (`Hierarchy::root`, `to_str()`). Every controller file
//! is therefore written directly with `std::fs`, each write naming the spec field it serves.
//!
//! # Persistent format
//! [`Location`] is serialised into the runtime's `state.json` (format version 1): `mode`, the
//! v1 directories by controller, and the cgroup2 mount and path. Absolute directories are stored
//! (as runc's `cgroup_paths`), so `open` needs no mount-table lookup. Unknown fields are
//! ignored on read; a future layout change must bump the state version.

pub mod devices_bpf;
mod fsutil;
mod manager;
mod oom;
mod path;
mod stats;
#[cfg(test)]
mod tests;
mod v1;
mod v2;
mod validate;

use std::path::PathBuf;

pub use manager::{ALLOWED_DEVICES, Manager, effective_device_rules};
pub use oom::{OomEvent, OomWatcher};
pub use path::{
    Hierarchies, Location, Mode, OwnCgroups, Unified, clean_path, resolve, resolve_in,
    systemd_running,
};
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Hugetlb, IntelRdt, Memory, MemoryEntry, Pids, Stats,
    Throttling,
};
pub use v2::{blkio_weight_to_io_weight, shares_to_weight};

/// Everything that can go wrong with a container's cgroups.
///
/// Messages that concern a resource start with the spec field (`linux.resources.memory.limit`),
/// so a user can find the line of `config.json` to fix.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A value rejected before anything was created or written.
    #[error("{field}: cannot set {value}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    /// The kernel refused a value (or the file is missing).
    #[error("{field}: cannot set {value}: writing {}", path.display())]
    Write {
        field: String,
        value: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// v1 `memory.limit_in_bytes` returned EBUSY: the limit is below what is in use.
    #[error(
        "linux.resources.memory.limit: cannot set {value}: below the current usage {usage} (peak {peak})"
    )]
    MemoryBelowUsage { value: i64, usage: u64, peak: u64 },
    /// `checkBeforeUpdate` found the new limit below the current usage.
    #[error("{field}: cannot set {value}: rejected by checkBeforeUpdate, current usage is {usage}")]
    CheckBeforeUpdate {
        field: &'static str,
        value: i64,
        usage: u64,
    },
    /// A resource was requested for a controller the host does not have.
    #[error(
        "{field}: the {controller} cgroup controller is not available on this host, so the limit cannot be set"
    )]
    ControllerMissing {
        field: &'static str,
        controller: &'static str,
    },
    /// A resource that the host's cgroup layout cannot express at all.
    #[error("{field}: {reason}")]
    Unsupported {
        field: &'static str,
        reason: &'static str,
    },
    /// A `linux.resources.unified` key that is not a settable cgroup v2 file.
    #[error("linux.resources.unified: {key:?} is not a cgroup v2 file{detail}")]
    UnifiedKey { key: String, detail: String },
    /// On v1 the devices hierarchy is required (runc: "considered fatal for security reasons").
    #[error(
        "the devices cgroup hierarchy is not mounted: refusing to create a container without device isolation"
    )]
    NoDevicesController,
    /// `linux.cgroupsPath` is malformed or names something a container must not use.
    #[error("linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// `--systemd-cgroup` on a host where systemd is not the init.
    #[error(
        "--systemd-cgroup: systemd is not running on this host (/run/systemd/system is missing), so the systemd cgroup driver is not available; run without --systemd-cgroup"
    )]
    SystemdUnavailable,
    /// `--systemd-cgroup` where systemd runs: skiff has no D-Bus client.
    #[error(
        "--systemd-cgroup: the systemd cgroup driver is not implemented by skiff; run without --systemd-cgroup"
    )]
    SystemdNotImplemented,
    /// No cgroup filesystem in the mount table.
    #[error("no cgroup filesystem is mounted (nothing of type cgroup or cgroup2 in {})", path.display())]
    NotMounted { path: PathBuf },
    /// A controller or hierarchy that an operation needs is not part of this container's cgroup.
    #[error("cannot {op}: the container has no {controller} cgroup")]
    NoController {
        op: &'static str,
        controller: &'static str,
    },
    /// A filesystem operation on cgroupfs (or `/proc`) failed.
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A cgroup file did not contain what the kernel documents.
    #[error("unexpected content in {}: {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
    /// The freezer did not reach the wanted state.
    #[error("{}: the cgroup did not reach state {want} (last seen {seen:?})", path.display())]
    Freeze {
        path: PathBuf,
        want: &'static str,
        seen: String,
    },
    /// `rmdir` kept failing (usually EBUSY: processes still in the cgroup).
    #[error("cannot remove cgroup {} after {attempts} attempts", path.display())]
    Remove {
        path: PathBuf,
        attempts: u32,
        #[source]
        source: std::io::Error,
    },
    /// Sending a signal to a process of the cgroup failed (other than ESRCH).
    #[error("kill {pid} with {signal}")]
    Kill {
        pid: i32,
        signal: nix::sys::signal::Signal,
        #[source]
        source: nix::Error,
    },
    /// The cgroup v2 device filter could not be built or attached.
    #[error("linux.resources.devices: cannot apply the device filter to {}", path.display())]
    Devices {
        path: PathBuf,
        #[source]
        source: devices_bpf::BpfError,
    },
    /// Setting up or reading the OOM notification failed.
    #[error("OOM notification: {op}")]
    Oom {
        op: &'static str,
        #[source]
        source: nix::Error,
    },
}
