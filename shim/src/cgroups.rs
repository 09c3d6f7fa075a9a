//! A container's cgroup, read straight from cgroupfs: Stats in containerd's metrics types, and
//! the OOM watch that produces TaskOOM.
//!
//! The cgroup is found from `/proc/<init pid>/cgroup` right after create (the runtime has
//! placed the init by then), so any `cgroupsPath` form works. Hierarchy mode:
//! `/sys/fs/cgroup/cgroup.controllers` exists only on a pure v2 host; otherwise (v1 or hybrid,
//! whose `unified` mount holds no resource controllers here) the v1 controllers are used.
//!
//! - Stats: v1 → `io.containerd.cgroups.v1.Metrics` (memory, cpuacct, cpu throttling, pids);
//!   v2 → `io.containerd.cgroups.v2.Metrics` (memory, cpu.stat, pids, memory.events).
//! - OOM: v1 registers an eventfd on `memory.oom_control` through `cgroup.event_control`
//!   (Documentation/admin-guide/cgroup-v1/memory.rst §10); the kernel also signals it when the
//!   cgroup is removed, which ends the watch. v2 watches `memory.events` with inotify and
//!   reports each increase of `oom_kill` (Documentation/admin-guide/cgroup-v2.rst).

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd};
use std::path::{Path, PathBuf};

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::error::{Error, Result};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroup {
    /// v1: controller → directory.
    V1(HashMap<String, PathBuf>),
    /// v2: the directory.
    V2(PathBuf),
}

/// Whether the host is pure cgroup v2.
pub fn is_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

impl Cgroup {
    /// The cgroup of `pid`.
    pub fn of_pid(pid: u32) -> Result<Self> {
        let path = format!("/proc/{pid}/cgroup");
        let text =
            fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {path}"), e))?;
        Ok(Self::parse(&text, is_v2(), Path::new(CGROUP_ROOT)))
    }

    fn parse(text: &str, v2: bool, root: &Path) -> Self {
        let mut v1 = HashMap::new();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let rel = path.trim_start_matches('/');
            if controllers.is_empty() {
                if v2 {
                    return Self::V2(root.join(rel));
                }
                continue;
            }
            for controller in controllers.split(',') {
                let dir = [controller.to_string(), controllers.to_string()]
                    .into_iter()
                    .map(|d| root.join(d))
                    .find(|d| d.is_dir())
                    .unwrap_or_else(|| root.join(controller));
                v1.insert(controller.to_string(), dir.join(rel));
            }
        }
        Self::V1(v1)
    }

    /// The cgroup's metrics as containerd's `Any`.
    pub fn stats(&self) -> Result<Any> {
        let mut any = Any::new();
        match self {
            Self::V1(dirs) => {
                any.type_url = "io.containerd.cgroups.v1.Metrics".into();
                any.value = write(&v1_metrics(dirs))?;
            }
            Self::V2(dir) => {
                any.type_url = "io.containerd.cgroups.v2.Metrics".into();
                any.value = write(&v2_metrics(dir))?;
            }
        }
        Ok(any)
    }

    /// The cgroup's OOM watch (none without a v1 memory controller).
    pub fn watch_oom(&self) -> Result<Option<OomWatch>> {
        match self {
            Self::V1(dirs) => dirs.get("memory").cloned().map(watch_v1).transpose(),
            Self::V2(dir) => watch_v2(dir).map(Some),
        }
    }
}

fn write(m: &impl Message) -> Result<Vec<u8>> {
    m.write_to_bytes().map_err(|e| {
        Error::io(
            "encoding metrics",
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })
}

fn read_u64(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat, memory.events).
fn read_kv(path: &Path) -> HashMap<String, u64> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// `pids.max` is `max` when unlimited: containerd reports 0 then.
fn read_limit(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn v1_metrics(dirs: &HashMap<String, PathBuf>) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(dir) = dirs.get("pids") {
        let mut pids = v1::PidsStat::new();
        pids.current = read_u64(&dir.join("pids.current"));
        pids.limit = read_limit(&dir.join("pids.max"));
        m.pids = MessageField::some(pids);
    }
    if let Some(dir) = dirs.get("cpuacct") {
        let mut usage = v1::CPUUsage::new();
        usage.total = read_u64(&dir.join("cpuacct.usage"));
        usage.per_cpu = fs::read_to_string(dir.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // cpuacct.stat is in USER_HZ (100/s on Linux) ticks: 10 ms each.
        let stat = read_kv(&dir.join("cpuacct.stat"));
        usage.user = stat.get("user").copied().unwrap_or(0) * 10_000_000;
        usage.kernel = stat.get("system").copied().unwrap_or(0) * 10_000_000;
        let mut cpu = v1::CPUStat::new();
        cpu.usage = MessageField::some(usage);
        if let Some(cpu_dir) = dirs.get("cpu") {
            let stat = read_kv(&cpu_dir.join("cpu.stat"));
            let mut throttle = v1::Throttle::new();
            throttle.periods = stat.get("nr_periods").copied().unwrap_or(0);
            throttle.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
            throttle.throttled_time = stat.get("throttled_time").copied().unwrap_or(0);
            cpu.throttling = MessageField::some(throttle);
        }
        m.cpu = MessageField::some(cpu);
    }
    if let Some(dir) = dirs.get("memory") {
        let s = read_kv(&dir.join("memory.stat"));
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        let mut mem = v1::MemoryStat::new();
        mem.cache = g("cache");
        mem.rss = g("rss");
        mem.rss_huge = g("rss_huge");
        mem.mapped_file = g("mapped_file");
        mem.dirty = g("dirty");
        mem.writeback = g("writeback");
        mem.pg_pg_in = g("pgpgin");
        mem.pg_pg_out = g("pgpgout");
        mem.pg_fault = g("pgfault");
        mem.pg_maj_fault = g("pgmajfault");
        mem.inactive_anon = g("inactive_anon");
        mem.active_anon = g("active_anon");
        mem.inactive_file = g("inactive_file");
        mem.active_file = g("active_file");
        mem.unevictable = g("unevictable");
        mem.hierarchical_memory_limit = g("hierarchical_memory_limit");
        mem.hierarchical_swap_limit = g("hierarchical_memsw_limit");
        mem.total_cache = g("total_cache");
        mem.total_rss = g("total_rss");
        mem.total_rss_huge = g("total_rss_huge");
        mem.total_mapped_file = g("total_mapped_file");
        mem.total_dirty = g("total_dirty");
        mem.total_writeback = g("total_writeback");
        mem.total_pg_pg_in = g("total_pgpgin");
        mem.total_pg_pg_out = g("total_pgpgout");
        mem.total_pg_fault = g("total_pgfault");
        mem.total_pg_maj_fault = g("total_pgmajfault");
        mem.total_inactive_anon = g("total_inactive_anon");
        mem.total_active_anon = g("total_active_anon");
        mem.total_inactive_file = g("total_inactive_file");
        mem.total_active_file = g("total_active_file");
        mem.total_unevictable = g("total_unevictable");
        let entry = |prefix: &str| {
            let mut e = v1::MemoryEntry::new();
            e.usage = read_u64(&dir.join(format!("{prefix}.usage_in_bytes")));
            e.limit = read_u64(&dir.join(format!("{prefix}.limit_in_bytes")));
            e.max = read_u64(&dir.join(format!("{prefix}.max_usage_in_bytes")));
            e.failcnt = read_u64(&dir.join(format!("{prefix}.failcnt")));
            MessageField::some(e)
        };
        mem.usage = entry("memory");
        mem.swap = entry("memory.memsw");
        mem.kernel = entry("memory.kmem");
        mem.kernel_tcp = entry("memory.kmem.tcp");
        m.memory = MessageField::some(mem);
        let oom = read_kv(&dir.join("memory.oom_control"));
        let mut control = v1::MemoryOomControl::new();
        control.oom_kill_disable = oom.get("oom_kill_disable").copied().unwrap_or(0);
        control.under_oom = oom.get("under_oom").copied().unwrap_or(0);
        control.oom_kill = oom.get("oom_kill").copied().unwrap_or(0);
        m.memory_oom_control = MessageField::some(control);
    }
    m
}

fn v2_metrics(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut pids = v2::PidsStat::new();
    pids.current = read_u64(&dir.join("pids.current"));
    pids.limit = read_limit(&dir.join("pids.max"));
    m.pids = MessageField::some(pids);

    let s = read_kv(&dir.join("cpu.stat"));
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    let mut cpu = v2::CPUStat::new();
    cpu.usage_usec = g("usage_usec");
    cpu.user_usec = g("user_usec");
    cpu.system_usec = g("system_usec");
    cpu.nr_periods = g("nr_periods");
    cpu.nr_throttled = g("nr_throttled");
    cpu.throttled_usec = g("throttled_usec");
    m.cpu = MessageField::some(cpu);

    let s = read_kv(&dir.join("memory.stat"));
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    let mut mem = v2::MemoryStat::new();
    mem.anon = g("anon");
    mem.file = g("file");
    mem.kernel_stack = g("kernel_stack");
    mem.slab = g("slab");
    mem.sock = g("sock");
    mem.shmem = g("shmem");
    mem.file_mapped = g("file_mapped");
    mem.file_dirty = g("file_dirty");
    mem.file_writeback = g("file_writeback");
    mem.anon_thp = g("anon_thp");
    mem.inactive_anon = g("inactive_anon");
    mem.active_anon = g("active_anon");
    mem.inactive_file = g("inactive_file");
    mem.active_file = g("active_file");
    mem.unevictable = g("unevictable");
    mem.slab_reclaimable = g("slab_reclaimable");
    mem.slab_unreclaimable = g("slab_unreclaimable");
    mem.pgfault = g("pgfault");
    mem.pgmajfault = g("pgmajfault");
    mem.usage = read_u64(&dir.join("memory.current"));
    mem.usage_limit = read_limit(&dir.join("memory.max"));
    mem.swap_usage = read_u64(&dir.join("memory.swap.current"));
    mem.swap_limit = read_limit(&dir.join("memory.swap.max"));
    mem.max_usage = read_u64(&dir.join("memory.peak"));
    m.memory = MessageField::some(mem);

    let e = read_kv(&dir.join("memory.events"));
    let g = |k: &str| e.get(k).copied().unwrap_or(0);
    let mut events = v2::MemoryEvents::new();
    events.low = g("low");
    events.high = g("high");
    events.max = g("max");
    events.oom = g("oom");
    events.oom_kill = g("oom_kill");
    events.oom_group_kill = g("oom_group_kill");
    m.memory_events = MessageField::some(events);
    m
}

/// What [`OomWatch::check`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomSeen {
    /// At least one OOM kill since the last check.
    pub oom: bool,
    /// The cgroup is gone: the watch is over.
    pub ended: bool,
}

/// A cgroup's OOM watch: a pollable fd and how to read it, polled by the serving shim's loop
/// ([`crate::reaper`]).
#[derive(Debug)]
pub enum OomWatch {
    /// v1: the eventfd registered on `memory.oom_control`.
    V1 {
        /// Signalled per OOM and once when the cgroup is removed.
        efd: EventFd,
        /// Must stay open for the registration to stay alive.
        control: fs::File,
        /// The memory cgroup directory.
        dir: PathBuf,
    },
    /// v2: inotify on `memory.events`.
    V2 {
        /// IN_MODIFY on memory.events; IN_IGNORED when it goes.
        inotify: Inotify,
        /// The `memory.events` file.
        events: PathBuf,
        /// `oom_kill` as last read.
        seen: u64,
    },
}

impl OomWatch {
    /// The fd to poll for reading.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::V1 { efd, .. } => efd.as_fd(),
            Self::V2 { inotify, .. } => inotify.as_fd(),
        }
    }

    /// Reads what made the fd readable (never blocks).
    pub fn check(&mut self) -> OomSeen {
        match self {
            Self::V1 { efd, dir, .. } => {
                // The counter adds up every signal since the last read; the kernel signals once
                // per OOM and once more when the cgroup is removed
                // (mem_cgroup_oom_unregister_event), which can coalesce with a last OOM.
                let Ok(count) = efd.read() else {
                    return OomSeen {
                        oom: false,
                        ended: false,
                    };
                };
                let gone = !dir.exists();
                OomSeen {
                    oom: count > u64::from(gone),
                    ended: gone,
                }
            }
            Self::V2 {
                inotify,
                events,
                seen,
            } => {
                let batch = inotify.read_events().unwrap_or_default();
                if batch
                    .iter()
                    .any(|e| e.mask.contains(AddWatchFlags::IN_IGNORED))
                {
                    return OomSeen {
                        oom: false,
                        ended: true,
                    };
                }
                let now = oom_kills(events);
                let oom = now > *seen;
                *seen = now.max(*seen);
                OomSeen { oom, ended: false }
            }
        }
    }
}

fn oom_kills(events: &Path) -> u64 {
    read_kv(events).get("oom_kill").copied().unwrap_or(0)
}

fn watch_v1(dir: PathBuf) -> Result<OomWatch> {
    let control_path = dir.join("memory.oom_control");
    let control = fs::File::open(&control_path)
        .map_err(|e| Error::io(format!("opening {}", control_path.display()), e))?;
    let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| Error::io("creating an eventfd", e.into()))?;
    let register = dir.join("cgroup.event_control");
    fs::OpenOptions::new()
        .write(true)
        .open(&register)
        .and_then(|mut f| {
            // One write(2): the kernel parses each write as a whole "<event fd> <file fd>"
            // line, and `write!` would split it into pieces.
            let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
            f.write_all(line.as_bytes())
        })
        .map_err(|e| Error::io(format!("registering with {}", register.display()), e))?;
    Ok(OomWatch::V1 { efd, control, dir })
}

fn watch_v2(dir: &Path) -> Result<OomWatch> {
    let events = dir.join("memory.events");
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| Error::io("creating an inotify instance", e.into()))?;
    inotify
        .add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(|e| Error::io(format!("watching {}", events.display()), e.into()))?;
    let seen = oom_kills(&events);
    Ok(OomWatch::V2 {
        inotify,
        events,
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "12:pids:/ns/c1\n4:memory:/ns/c1\n2:cpu,cpuacct:/ns/c1\n0::/\n";

    #[test]
    fn v1_paths_come_from_each_controller_line() {
        let root = std::env::temp_dir().join(format!("skiff-shim-cg-{}", std::process::id()));
        fs::create_dir_all(root.join("cpu,cpuacct")).expect("mkdir");
        let Cgroup::V1(dirs) = Cgroup::parse(HYBRID, false, &root) else {
            panic!("not v1");
        };
        assert_eq!(dirs["memory"], root.join("memory/ns/c1"));
        assert_eq!(dirs["pids"], root.join("pids/ns/c1"));
        assert_eq!(dirs["cpuacct"], root.join("cpu,cpuacct/ns/c1"));
        fs::remove_dir_all(&root).expect("cleanup");
    }

    #[test]
    fn v2_path_is_the_unified_line() {
        assert_eq!(
            Cgroup::parse("0::/ns/c1\n", true, Path::new("/sys/fs/cgroup")),
            Cgroup::V2(PathBuf::from("/sys/fs/cgroup/ns/c1"))
        );
    }

    #[test]
    fn v2_oom_watch_reports_each_new_oom_kill() {
        // inotify works on any file: a fake memory.events stands in for cgroupfs.
        let dir = std::env::temp_dir().join(format!("skiff-shim-oom2-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        let events = dir.join("memory.events");
        fs::write(&events, "oom 0\noom_kill 0\n").expect("w");
        let mut watch = watch_v2(&dir).expect("watch");
        let ooms = |watch: &mut OomWatch| {
            let mut fds = [nix::poll::PollFd::new(
                watch.fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ready = nix::poll::poll(&mut fds, 2000u16).expect("poll");
            (ready > 0).then(|| watch.check())
        };
        fs::write(&events, "oom 1\noom_kill 0\n").expect("w");
        assert_eq!(
            ooms(&mut watch),
            Some(OomSeen {
                oom: false,
                ended: false
            }),
            "no oom_kill yet"
        );
        fs::write(&events, "oom 1\noom_kill 1\n").expect("w");
        assert_eq!(
            ooms(&mut watch),
            Some(OomSeen {
                oom: true,
                ended: false
            }),
            "one oom_kill, one report"
        );
        fs::remove_dir_all(&dir).expect("cleanup");
        let mut seen = ooms(&mut watch).expect("readable once the file is gone");
        while !seen.ended {
            seen = ooms(&mut watch).expect("IN_IGNORED follows");
        }
        assert!(!seen.oom);
    }

    #[test]
    fn v2_metrics_read_the_files() {
        let dir = std::env::temp_dir().join(format!("skiff-shim-cg2-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("pids.current"), "3\n").expect("w");
        fs::write(dir.join("pids.max"), "max\n").expect("w");
        fs::write(dir.join("memory.current"), "4096\n").expect("w");
        fs::write(dir.join("memory.max"), "1048576\n").expect("w");
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
        )
        .expect("w");
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 10\nuser_usec 7\nsystem_usec 3\n",
        )
        .expect("w");
        let m = v2_metrics(&dir);
        assert_eq!(m.pids.current, 3);
        assert_eq!(m.pids.limit, 0);
        assert_eq!(m.memory.usage, 4096);
        assert_eq!(m.memory.usage_limit, 1_048_576);
        assert_eq!(m.memory_events.oom_kill, 1);
        assert_eq!(m.cpu.usage_usec, 10);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
