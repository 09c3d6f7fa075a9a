//! [`Manager`]: the operations on one container's cgroup.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::fsutil::{self, io_err};
use super::oom::OomWatcher;
use super::path::{Location, Mode};
use super::stats::{self, Stats};
use super::v1::{self, Phase};
use super::validate::{self, Available};
use super::{CgroupError, v2};

/// runc's `specconv.AllowedDevices` (type, major, minor, access; -1 = any), appended after the
/// spec's `linux.resources.devices` rules exactly as runc does, so that the standard device
/// nodes work whatever the spec says: mknod of any char/block device, `/dev/null`, `random`,
/// `full`, `tty`, `zero`, `urandom`, the pty slaves (136:*) and `/dev/ptmx`. (runc 1.2 dropped
/// tun/tap from this list; so do we.)
pub const ALLOWED_DEVICES: [(char, i64, i64, &str); 10] = [
    ('c', -1, -1, "m"),
    ('b', -1, -1, "m"),
    ('c', 1, 3, "rwm"),
    ('c', 1, 8, "rwm"),
    ('c', 1, 7, "rwm"),
    ('c', 5, 0, "rwm"),
    ('c', 1, 5, "rwm"),
    ('c', 1, 9, "rwm"),
    ('c', 136, -1, "rwm"),
    ('c', 5, 2, "rwm"),
];

/// The device rules [`Manager::create`] applies: the spec's, then [`ALLOWED_DEVICES`].
pub fn effective_device_rules(spec: Option<&[LinuxDeviceCgroup]>) -> Vec<LinuxDeviceCgroup> {
    let mut out: Vec<LinuxDeviceCgroup> = spec.map(<[_]>::to_vec).unwrap_or_default();
    for (typ, major, minor, access) in ALLOWED_DEVICES {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(if typ == 'b' {
            LinuxDeviceType::B
        } else {
            LinuxDeviceType::C
        }));
        r.set_major((major >= 0).then_some(major));
        r.set_minor((minor >= 0).then_some(minor));
        r.set_access(Some(access.to_string()));
        out.push(r);
    }
    out
}

/// runc's `RemovePaths`: 5 attempts, sleeping 10, 20, 40, 80 ms in between (150 ms at most).
const REMOVE_ATTEMPTS: u32 = 5;
const REMOVE_FIRST_DELAY: Duration = Duration::from_millis(10);
/// runc's v1 freeze loop bound (`FreezerGroup.Set`).
const FREEZE_ATTEMPTS: u32 = 1000;
/// v2: how long to wait for `frozen 1` in `cgroup.events` (runc: 1000 × 10 ms).
const V2_FREEZE_POLLS: u32 = 1000;
const V2_FREEZE_POLL: Duration = Duration::from_millis(10);

/// Operations on one container's cgroup. Cheap to construct: it holds only the [`Location`].
#[derive(Debug, Clone)]
pub struct Manager {
    loc: Location,
}

/// Creates `dir` and any missing parents, recording each directory it made (parents first).
fn mkdir_p(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => {
            created.push(dir.to_path_buf());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = dir.parent().ok_or_else(|| CgroupError::Io {
                op: "create cgroup",
                path: dir.to_path_buf(),
                source: e,
            })?;
            mkdir_p(parent, created)?;
            fs::create_dir(dir).map_err(io_err("create cgroup", dir.to_path_buf()))?;
            created.push(dir.to_path_buf());
            Ok(())
        }
        Err(source) => Err(CgroupError::Io {
            op: "create cgroup",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Controllers listed in the `cgroup.controllers` of `dir` or, if it does not exist yet, of
/// its closest existing ancestor up to `mount`.
fn v2_controllers(mount: &Path, dir: &Path) -> Result<Vec<String>, CgroupError> {
    let mut d = dir;
    loop {
        if let Some(s) = fsutil::read_opt(d, "cgroup.controllers")? {
            return Ok(s.split_whitespace().map(str::to_string).collect());
        }
        if d == mount {
            return Ok(Vec::new());
        }
        match d.parent() {
            Some(p) if p.starts_with(mount) => d = p,
            _ => return Ok(Vec::new()),
        }
    }
}

/// The huge page sizes of this host, as cgroup file names spell them (`2MB`, `1GB`), from
/// `/sys/kernel/mm/hugepages/hugepages-<kB>kB` (runc's `HugePageSizes`).
fn hugepage_sizes() -> Vec<String> {
    let Ok(rd) = fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    rd.filter_map(|e| {
        let name = e.ok()?.file_name().into_string().ok()?;
        let kb: u64 = name
            .strip_prefix("hugepages-")?
            .strip_suffix("kB")?
            .parse()
            .ok()?;
        Some(page_size_name(kb))
    })
    .collect()
}

/// 2048 → `2MB`, 1048576 → `1GB`, 64 → `64KB` (the kernel's `hugetlb_cgroup` naming).
fn page_size_name(kb: u64) -> String {
    if kb >= 1 << 20 && kb % (1 << 20) == 0 {
        format!("{}GB", kb >> 20)
    } else if kb >= 1 << 10 && kb % (1 << 10) == 0 {
        format!("{}MB", kb >> 10)
    } else {
        format!("{kb}KB")
    }
}

impl Manager {
    /// A manager for an existing cgroup (state saved by `create`). Checks only that the
    /// container's main cgroup directory exists.
    pub fn open(loc: &Location) -> Result<Manager, CgroupError> {
        let dir = loc.procs_dir().ok_or(CgroupError::NoController {
            op: "open the cgroup",
            controller: "any",
        })?;
        if !dir.is_dir() {
            return Err(CgroupError::Io {
                op: "open cgroup",
                path: dir,
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        Ok(Manager { loc: loc.clone() })
    }

    pub fn location(&self) -> &Location {
        &self.loc
    }

    /// What the host offers for `r` (reads a file only on v2, or for hybrid hugetlb).
    fn available(&self, r: &LinuxResources) -> Result<(Vec<String>, bool), CgroupError> {
        match self.loc.mode {
            Mode::V1 => {
                let ctl: Vec<String> = self.loc.v1.keys().cloned().collect();
                let wants_huge = r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty());
                let hybrid_hugetlb = wants_huge
                    && !self.loc.v1.contains_key("hugetlb")
                    && match &self.loc.unified {
                        Some(u) => v2_controllers(&u.mount, &u.mount)?
                            .iter()
                            .any(|c| c == "hugetlb"),
                        None => false,
                    };
                Ok((ctl, hybrid_hugetlb))
            }
            Mode::V2 => {
                let u = self.unified()?;
                Ok((v2_controllers(&u.mount, &u.dir())?, false))
            }
        }
    }

    fn unified(&self) -> Result<&super::path::Unified, CgroupError> {
        self.loc.unified.as_ref().ok_or(CgroupError::NoController {
            op: "use cgroup v2",
            controller: "cgroup2",
        })
    }

    fn check(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let (controllers, hybrid_hugetlb) = self.available(r)?;
        let avail = Available {
            mode: self.loc.mode,
            controllers: &controllers,
            hybrid_hugetlb,
        };
        validate::check(r, &avail, hugepage_sizes)
    }

    /// Validates `resources`, creates the cgroup in every hierarchy and writes the limits,
    /// including the device rules ([`effective_device_rules`]: the spec's plus runc's
    /// defaults; v1 `devices.deny a` first, v2 the eBPF filter). On any error, every
    /// directory it made is removed again. An existing directory is reused (runc joins it).
    ///
    /// Missing controllers: see the module docs (skipped unless a resource needs them; the v1
    /// devices hierarchy is required).
    pub fn create(
        loc: &Location,
        resources: Option<&LinuxResources>,
    ) -> Result<Manager, CgroupError> {
        let m = Manager { loc: loc.clone() };
        let empty = LinuxResources::default();
        let r = resources.unwrap_or(&empty);
        if loc.mode == Mode::V1 && loc.v1_dir("devices").is_none() {
            return Err(CgroupError::NoDevicesController);
        }
        if loc.mode == Mode::V2
            && loc
                .unified
                .as_ref()
                .is_none_or(|u| u.path.as_os_str().is_empty())
        {
            return Err(CgroupError::InvalidPath {
                path: String::new(),
                reason: "it names the root of the cgroup2 hierarchy, which a container cannot own",
            });
        }
        m.check(r)?;
        let mut created = Vec::new();
        let result = m.make_dirs(r, &mut created).and_then(|()| {
            let rules = effective_device_rules(r.devices().as_deref());
            m.set(r, Phase::Create, &rules)
        });
        if let Err(e) = result {
            // Innermost first. A failure here must not hide the original error; the
            // directories are empty (nothing has joined), so rmdir cannot be busy.
            for d in created.iter().rev() {
                let _ = fs::remove_dir(d);
            }
            return Err(e);
        }
        tracing::debug!(dirs = ?loc.dirs(), "cgroup created");
        Ok(m)
    }

    fn make_dirs(&self, r: &LinuxResources, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
        match self.loc.mode {
            Mode::V1 => {
                let unified_dir = self.loc.unified.as_ref().map(super::path::Unified::dir);
                for d in self.loc.dirs() {
                    if Some(&d) == unified_dir.as_ref() {
                        continue;
                    }
                    mkdir_p(&d, created)?;
                    if self.loc.v1_dir("cpuset") == Some(d.as_path()) {
                        v1::cpuset_ensure(&d)?;
                    }
                }
                if let Some(u) = &self.loc.unified {
                    // Hybrid: joined without controllers, except hugetlb when the limits go
                    // there (see `v1::set`).
                    let wants_huge = r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty())
                        && !self.loc.v1.contains_key("hugetlb");
                    let enable = if wants_huge {
                        vec!["hugetlb".to_string()]
                    } else {
                        Vec::new()
                    };
                    v2::create_path(&u.mount, &u.path, &enable, created)?;
                }
                Ok(())
            }
            Mode::V2 => {
                let u = self.unified()?;
                // Enable everything the root offers, as runc does: limits set later (update)
                // and stats need the controllers too.
                let enable = v2_controllers(&u.mount, &u.mount)?;
                v2::create_path(&u.mount, &u.path, &enable, created)
            }
        }
    }

    fn set(
        &self,
        r: &LinuxResources,
        phase: Phase,
        rules: &[LinuxDeviceCgroup],
    ) -> Result<(), CgroupError> {
        match self.loc.mode {
            Mode::V1 => v1::set(&self.loc, r, phase, rules),
            Mode::V2 => v2::set(&self.unified()?.dir(), r, phase, rules),
        }
    }

    /// Moves `pid` (with its threads) into the cgroup: every v1 hierarchy and the hybrid
    /// cgroup2 directory, or the v2 directory.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let s = pid.to_string();
        for d in self.loc.dirs() {
            fsutil::write_raw(&d, "cgroup.procs", &s)
                .map_err(io_err("add process to cgroup", d.join("cgroup.procs")))?;
        }
        Ok(())
    }

    /// `runc update`: validates, then writes the given limits (memory and swap in the order
    /// the kernel accepts, `checkBeforeUpdate` honoured). Device rules are not changed (runc's
    /// update never touches them); `None` fields keep their current values.
    pub fn update(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        self.check(r)?;
        self.set(r, Phase::Update, &[])
    }

    fn freezer_dir(&self, op: &'static str) -> Result<PathBuf, CgroupError> {
        match self.loc.mode {
            Mode::V1 => {
                self.loc
                    .v1_dir("freezer")
                    .map(Path::to_path_buf)
                    .ok_or(CgroupError::NoController {
                        op,
                        controller: "freezer",
                    })
            }
            Mode::V2 => Ok(self.unified()?.dir()),
        }
    }

    /// Freezes every process of the cgroup and returns once the kernel reports it frozen.
    ///
    /// v1: runc's loop — write `FROZEN`, read back; `FREEZING` means "try again" (the v1
    /// freezer can get stuck while processes fork, freezer-subsystem.txt before kernel commit
    /// ef9fe980c6fc), with an occasional thaw-and-sleep; on failure the cgroup is thawed
    /// again. v2: `cgroup.freeze` = 1, then wait for `frozen 1` in `cgroup.events`.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        let dir = self.freezer_dir("freeze")?;
        match self.loc.mode {
            Mode::V1 => {
                let result = freeze_v1(&dir);
                if result.is_err() {
                    let _ = fsutil::write_raw(&dir, "freezer.state", "THAWED");
                }
                result
            }
            Mode::V2 => {
                fsutil::write(&dir, "cgroup.freeze", "1", "freeze")?;
                let mut last = String::new();
                for _ in 0..V2_FREEZE_POLLS {
                    let events = fsutil::read(&dir, "cgroup.events")?;
                    if fsutil::keyed(&events, "frozen") == Some(1) {
                        return Ok(());
                    }
                    last = events;
                    sleep(V2_FREEZE_POLL);
                }
                let _ = fsutil::write_raw(&dir, "cgroup.freeze", "0");
                Err(CgroupError::Freeze {
                    path: dir.join("cgroup.events"),
                    want: "frozen 1",
                    seen: last,
                })
            }
        }
    }

    /// Thaws the cgroup. v2 without `cgroup.freeze` (pre-5.2 kernels) has nothing to thaw.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        let dir = self.freezer_dir("thaw")?;
        match self.loc.mode {
            Mode::V1 => fsutil::write(&dir, "freezer.state", "THAWED", "thaw"),
            Mode::V2 => match fsutil::write_raw(&dir, "cgroup.freeze", "0") {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r.map_err(io_err("thaw", dir.join("cgroup.freeze"))),
            },
        }
    }

    /// Whether the container's cgroup itself is frozen (v1: `FROZEN` and `self_freezing`, so a
    /// frozen ancestor does not count, as in runc; `FREEZING` is waited out).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        let dir = self.freezer_dir("read the freezer state")?;
        match self.loc.mode {
            Mode::V1 => {
                for _ in 0..FREEZE_ATTEMPTS {
                    let state = fsutil::read(&dir, "freezer.state")?;
                    match state.trim() {
                        "THAWED" => return Ok(false),
                        "FROZEN" => {
                            return Ok(match fsutil::read_opt(&dir, "freezer.self_freezing")? {
                                Some(s) => s.trim() == "1",
                                None => true,
                            });
                        }
                        "FREEZING" => sleep(Duration::from_millis(1)),
                        _ => {
                            return Err(CgroupError::Parse {
                                path: dir.join("freezer.state"),
                                content: state,
                            });
                        }
                    }
                }
                Ok(false)
            }
            Mode::V2 => {
                Ok(fsutil::read_opt(&dir, "cgroup.freeze")?.is_some_and(|s| s.trim() == "1"))
            }
        }
    }

    /// Every process in the cgroup and its sub-cgroups, sorted.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self.loc.procs_dir().ok_or(CgroupError::NoController {
            op: "list processes",
            controller: "any",
        })?;
        let mut out = Vec::new();
        fsutil::procs_recursive(&dir, &mut out)?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Sends `sig` to every process (runc's `signalAllProcesses`): SIGKILL through
    /// `cgroup.kill` where there is a cgroup2 directory (v2, or hybrid — Linux 5.14+), which
    /// cannot miss a process forked meanwhile; otherwise freeze (best effort: a host without
    /// a freezer still gets the signals), signal each pid (ESRCH ignored), thaw.
    pub fn kill_all(&self, sig: Signal) -> Result<(), CgroupError> {
        if sig == Signal::SIGKILL {
            if let Some(u) = &self.loc.unified {
                let dir = u.dir();
                match fsutil::write_raw(&dir, "cgroup.kill", "1") {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("kill via", dir.join("cgroup.kill"))(e)),
                }
            }
        }
        let frozen = self.freeze().is_ok();
        let result = self.pids().and_then(|pids| {
            let mut first_err = None;
            for pid in pids {
                match kill(Pid::from_raw(pid), sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(source) => {
                        first_err.get_or_insert(CgroupError::Kill {
                            pid,
                            signal: sig,
                            source,
                        });
                    }
                }
            }
            first_err.map_or(Ok(()), Err)
        });
        if frozen {
            // The signal result matters more than a thaw failure; report the first.
            let thawed = self.thaw();
            result?;
            thawed
        } else {
            result
        }
    }

    /// Resource usage in runc's `events` shape.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        match self.loc.mode {
            Mode::V1 => {
                let l = &self.loc;
                if let Some(d) = l.v1_dir("cpuacct") {
                    stats::v1_cpuacct(d, &mut s)?;
                }
                if let Some(d) = l.v1_dir("cpu") {
                    stats::v1_cpu(d, &mut s)?;
                }
                if let Some(d) = l.v1_dir("cpuset") {
                    stats::v1_cpuset(d, &mut s)?;
                }
                if let Some(d) = l.v1_dir("memory") {
                    stats::v1_memory(d, &mut s)?;
                }
                if let Some(d) = l.v1_dir("pids") {
                    stats::pids(d, &mut s)?;
                }
                if let Some(d) = l.v1_dir("blkio") {
                    stats::v1_blkio(d, &mut s)?;
                }
                match (l.v1_dir("hugetlb"), &l.unified) {
                    (Some(d), _) => stats::v1_hugetlb(d, &mut s)?,
                    (None, Some(u)) => stats::v2_hugetlb(&u.dir(), &mut s)?,
                    (None, None) => {}
                }
            }
            Mode::V2 => {
                let d = self.unified()?.dir();
                stats::v2_cpu(&d, &mut s)?;
                stats::v2_cpuset(&d, &mut s)?;
                stats::v2_memory(&d, &mut s)?;
                stats::pids(&d, &mut s)?;
                stats::v2_io(&d, &mut s)?;
                stats::v2_hugetlb(&d, &mut s)?;
            }
        }
        Ok(s)
    }

    /// A pollable OOM notifier for the container's memory cgroup.
    pub fn oom_watcher(&self) -> Result<OomWatcher, CgroupError> {
        match self.loc.mode {
            Mode::V1 => {
                let d = self.loc.v1_dir("memory").ok_or(CgroupError::NoController {
                    op: "watch for OOM",
                    controller: "memory",
                })?;
                OomWatcher::v1(d)
            }
            Mode::V2 => OomWatcher::v2(&self.unified()?.dir()),
        }
    }

    /// How many processes the OOM killer has killed in the cgroup (v1 `memory.oom_control`
    /// `oom_kill`, Linux 4.13+; v2 `memory.events`): lets `delete`/`wait` tell an OOM exit.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        let (dir, file) = match self.loc.mode {
            Mode::V1 => (
                self.loc.v1_dir("memory").map(Path::to_path_buf).ok_or(
                    CgroupError::NoController {
                        op: "read the OOM kill count",
                        controller: "memory",
                    },
                )?,
                "memory.oom_control",
            ),
            Mode::V2 => (self.unified()?.dir(), "memory.events"),
        };
        Ok(fsutil::keyed(&fsutil::read(&dir, file)?, "oom_kill").unwrap_or(0))
    }

    /// Removes the cgroup in every hierarchy, sub-cgroups first. `rmdir` fails with EBUSY
    /// while a process is still in (or exiting from) the cgroup, so, like runc's
    /// `RemovePaths`, it retries 5 times with 10/20/40/80 ms pauses. A directory that is
    /// already gone counts as removed.
    pub fn destroy(self) -> Result<(), CgroupError> {
        let mut left = self.loc.dirs();
        let mut delay = REMOVE_FIRST_DELAY;
        let mut last_err = None;
        for attempt in 0..REMOVE_ATTEMPTS {
            if attempt > 0 {
                sleep(delay);
                delay *= 2;
            }
            left.retain(|d| match fsutil::remove_tree(d) {
                Ok(()) => false,
                Err(e) => {
                    last_err = Some((d.clone(), e));
                    d.exists()
                }
            });
            if left.is_empty() {
                return Ok(());
            }
        }
        let (path, source) = last_err.unwrap_or_else(|| {
            (
                left.first().cloned().unwrap_or_default(),
                io::Error::from(io::ErrorKind::ResourceBusy),
            )
        });
        Err(CgroupError::Remove {
            path,
            attempts: REMOVE_ATTEMPTS,
            source,
        })
    }
}

/// runc's `FreezerGroup.Set(Frozen)` loop.
fn freeze_v1(dir: &Path) -> Result<(), CgroupError> {
    let mut long_sleep = Duration::from_secs(1);
    let mut seen = String::new();
    for i in 0..FREEZE_ATTEMPTS {
        if i % 50 == 49 {
            // Occasional thaw and sleep improves the chances when new processes keep
            // appearing (runc's empirically chosen numbers).
            let _ = fsutil::write_raw(dir, "freezer.state", "THAWED");
            sleep(Duration::from_millis(10));
        }
        fsutil::write(dir, "freezer.state", "FROZEN", "freeze")?;
        if i % 25 == 24 {
            sleep(Duration::from_micros(10));
        }
        if i % 200 == 199 {
            sleep(long_sleep);
            long_sleep *= 2;
        }
        seen = fsutil::read(dir, "freezer.state")?;
        match seen.trim() {
            "FROZEN" => return Ok(()),
            "FREEZING" => continue,
            _ => {
                return Err(CgroupError::Parse {
                    path: dir.join("freezer.state"),
                    content: seen,
                });
            }
        }
    }
    Err(CgroupError::Freeze {
        path: dir.join("freezer.state"),
        want: "FROZEN",
        seen: seen.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_names() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
    }

    #[test]
    fn default_device_rules_follow_the_spec_rules() {
        let spec: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":false,"access":"rwm"}]"#).unwrap();
        let rules = effective_device_rules(Some(&spec));
        assert_eq!(rules.len(), 1 + ALLOWED_DEVICES.len());
        assert!(!rules[0].allow());
        let lines: Vec<String> = rules.iter().map(v1::device_rule_line).collect();
        assert_eq!(lines[0], "a");
        assert_eq!(lines[1], "c *:* m");
        assert_eq!(lines[3], "c 1:3 rwm");
        assert_eq!(lines[9], "c 136:* rwm");
    }
}
