//! Resource usage, in the JSON shape of runc's `events` "data" (`runc/types/events.go`
//! `Stats`), which containerd's runc shim decodes for `ctr task metrics`.
//!
//! Go's `encoding/json` rules are mirrored: `omitempty` numbers are left out when zero and
//! `omitempty` slices/maps when empty, but `omitempty` has no effect on structs (they are
//! always written), and a nil slice without `omitempty` is `null`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::CgroupError;
use super::fsutil::{self, keyed, keyed_all};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// `types.Stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// Filled by the caller if it wants (runc reads them from the container's netns);
    /// `null` otherwise, as runc writes it.
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    #[serde(
        default,
        rename = "ioQueueRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// All times in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// Intel RDT is not managed by skiff: always `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntelRdt {}

/// cpuset(7) list format → numbers (`0-2,5` → 0,1,2,5).
fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// `major:minor op value` lines of the v1 blkio files; the `Total` lines are skipped (runc).
fn parse_blkio_v1(content: &str) -> Vec<BlkioEntry> {
    content
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, op, value) = match f.as_slice() {
                [dev, op, value] => (*dev, op.to_string(), *value),
                [dev, value] if dev.contains(':') => (*dev, String::new(), *value),
                _ => return None,
            };
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// v2 `io.stat`: `maj:min rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…`, turned into
/// runc's entries (bytes → ioServiceBytesRecursive, ios → ioServicedRecursive).
fn parse_io_stat(content: &str, b: &mut Blkio) {
    for l in content.lines() {
        let mut f = l.split_whitespace();
        let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (ma.parse::<u64>(), mi.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut b.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                "dios" => (&mut b.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
}

/// Page sizes with a hugetlb file in `dir` (`hugetlb.2MB.<suffix>` → `2MB`).
fn hugetlb_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_string())
        })
        .collect();
    v.sort();
    v
}

/// Reads a `MemoryEntry` from v1 `<prefix>.{usage_in_bytes,max_usage_in_bytes,failcnt,
/// limit_in_bytes}`; a missing usage file (no swap/kmem accounting) gives an empty entry.
fn v1_memory_entry(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let Some(usage) = fsutil::read_u64_opt(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(MemoryEntry::default());
    };
    Ok(MemoryEntry {
        usage,
        max: fsutil::read_u64_opt(dir, &format!("{prefix}.max_usage_in_bytes"))?.unwrap_or(0),
        failcnt: fsutil::read_u64_opt(dir, &format!("{prefix}.failcnt"))?.unwrap_or(0),
        limit: fsutil::read_u64_opt(dir, &format!("{prefix}.limit_in_bytes"))?.unwrap_or(0),
    })
}

/// USER_HZ: the unit of `cpuacct.stat` (always 100 on Linux for the user ABI, see time(7)).
const USER_HZ: u64 = 100;

pub(super) fn v1_cpuacct(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let u = &mut s.cpu.usage;
    u.total = fsutil::read_u64_opt(dir, "cpuacct.usage")?.unwrap_or(0);
    if let Some(p) = fsutil::read_opt(dir, "cpuacct.usage_percpu")? {
        u.percpu = p
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
    }
    // `cpuacct.usage_all`: "cpu user system" per line, in ns.
    if let Some(all) = fsutil::read_opt(dir, "cpuacct.usage_all")? {
        for l in all.lines().skip(1) {
            let f: Vec<u64> = l
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if let [_, user, sys] = f.as_slice() {
                u.percpu_user.push(*user);
                u.percpu_kernel.push(*sys);
            }
        }
    }
    if let Some(st) = fsutil::read_opt(dir, "cpuacct.stat")? {
        u.user = keyed(&st, "user").unwrap_or(0) * (1_000_000_000 / USER_HZ);
        u.kernel = keyed(&st, "system").unwrap_or(0) * (1_000_000_000 / USER_HZ);
    }
    Ok(())
}

pub(super) fn v1_cpu(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    if let Some(st) = fsutil::read_opt(dir, "cpu.stat")? {
        s.cpu.throttling = Throttling {
            periods: keyed(&st, "nr_periods").unwrap_or(0),
            throttled_periods: keyed(&st, "nr_throttled").unwrap_or(0),
            throttled_time: keyed(&st, "throttled_time").unwrap_or(0),
        };
    }
    Ok(())
}

pub(super) fn v1_cpuset(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let c = &mut s.cpuset;
    c.cpus = parse_list(&fsutil::read(dir, "cpuset.cpus")?);
    c.mems = parse_list(&fsutil::read(dir, "cpuset.mems")?);
    let n =
        |f: &str| -> Result<u64, CgroupError> { Ok(fsutil::read_u64_opt(dir, f)?.unwrap_or(0)) };
    c.cpu_exclusive = n("cpuset.cpu_exclusive")?;
    c.mem_exclusive = n("cpuset.mem_exclusive")?;
    c.mem_hardwall = n("cpuset.mem_hardwall")?;
    c.memory_migrate = n("cpuset.memory_migrate")?;
    c.memory_pressure = n("cpuset.memory_pressure")?;
    c.memory_spread_page = n("cpuset.memory_spread_page")?;
    c.memory_spread_slab = n("cpuset.memory_spread_slab")?;
    c.sched_load_balance = n("cpuset.sched_load_balance")?;
    c.sched_relax_domain_level = fsutil::read_opt(dir, "cpuset.sched_relax_domain_level")?
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(())
}

pub(super) fn v1_memory(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let stat = fsutil::read(dir, "memory.stat")?;
    s.memory.raw = keyed_all(&stat).map(|(k, v)| (k.to_string(), v)).collect();
    s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
    s.memory.usage = v1_memory_entry(dir, "memory")?;
    s.memory.swap = v1_memory_entry(dir, "memory.memsw")?;
    s.memory.kernel = v1_memory_entry(dir, "memory.kmem")?;
    s.memory.kernel_tcp = v1_memory_entry(dir, "memory.kmem.tcp")?;
    Ok(())
}

pub(super) fn pids(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    s.pids.current = fsutil::read_u64_opt(dir, "pids.current")?.unwrap_or(0);
    s.pids.limit = fsutil::read_u64_opt(dir, "pids.max")?.unwrap_or(0);
    Ok(())
}

/// runc reads CFQ's `blkio.io_*_recursive` files when they have data, else BFQ's, else the
/// throttle ones (which every kernel has).
pub(super) fn v1_blkio(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
        let bytes = fsutil::read_opt(dir, &format!("{prefix}io_service_bytes_recursive"))?;
        let Some(bytes) = bytes else { continue };
        let bytes = parse_blkio_v1(&bytes);
        if bytes.is_empty() && prefix != "blkio.throttle." {
            continue;
        }
        s.blkio.io_service_bytes_recursive = bytes;
        if let Some(c) = fsutil::read_opt(dir, &format!("{prefix}io_serviced_recursive"))? {
            s.blkio.io_serviced_recursive = parse_blkio_v1(&c);
        }
        if prefix == "blkio." {
            for (file, list) in [
                (
                    "blkio.io_queued_recursive",
                    &mut s.blkio.io_queued_recursive,
                ),
                (
                    "blkio.io_service_time_recursive",
                    &mut s.blkio.io_service_time_recursive,
                ),
                (
                    "blkio.io_wait_time_recursive",
                    &mut s.blkio.io_wait_time_recursive,
                ),
                (
                    "blkio.io_merged_recursive",
                    &mut s.blkio.io_merged_recursive,
                ),
                ("blkio.time_recursive", &mut s.blkio.io_time_recursive),
                ("blkio.sectors_recursive", &mut s.blkio.sectors_recursive),
            ] {
                if let Some(c) = fsutil::read_opt(dir, file)? {
                    *list = parse_blkio_v1(&c);
                }
            }
        }
        break;
    }
    Ok(())
}

pub(super) fn v1_hugetlb(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    for size in hugetlb_sizes(dir, ".usage_in_bytes") {
        let f = |suffix: &str| format!("hugetlb.{size}.{suffix}");
        let h = Hugetlb {
            usage: fsutil::read_u64(dir, &f("usage_in_bytes"))?,
            max: fsutil::read_u64_opt(dir, &f("max_usage_in_bytes"))?.unwrap_or(0),
            failcnt: fsutil::read_u64_opt(dir, &f("failcnt"))?.unwrap_or(0),
        };
        s.hugetlb.insert(size, h);
    }
    Ok(())
}

/// v2 `hugetlb.<size>.current` and the `max` count of `hugetlb.<size>.events` (runc).
pub(super) fn v2_hugetlb(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    for size in hugetlb_sizes(dir, ".current") {
        let usage = fsutil::read_u64(dir, &format!("hugetlb.{size}.current"))?;
        let failcnt = fsutil::read_opt(dir, &format!("hugetlb.{size}.events"))?
            .and_then(|e| keyed(&e, "max"))
            .unwrap_or(0);
        s.hugetlb.insert(
            size,
            Hugetlb {
                usage,
                max: 0,
                failcnt,
            },
        );
    }
    Ok(())
}

pub(super) fn v2_cpu(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let Some(st) = fsutil::read_opt(dir, "cpu.stat")? else {
        return Ok(());
    };
    let k = |key: &str| keyed(&st, key).unwrap_or(0);
    s.cpu.usage.total = k("usage_usec") * 1000;
    s.cpu.usage.user = k("user_usec") * 1000;
    s.cpu.usage.kernel = k("system_usec") * 1000;
    s.cpu.throttling = Throttling {
        periods: k("nr_periods"),
        throttled_periods: k("nr_throttled"),
        throttled_time: k("throttled_usec") * 1000,
    };
    Ok(())
}

pub(super) fn v2_cpuset(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    if let Some(c) = fsutil::read_opt(dir, "cpuset.cpus.effective")? {
        s.cpuset.cpus = parse_list(&c);
    }
    if let Some(m) = fsutil::read_opt(dir, "cpuset.mems.effective")? {
        s.cpuset.mems = parse_list(&m);
    }
    Ok(())
}

/// runc's fs2 `statMemory`: raw from `memory.stat`, cache = `file`, usage from
/// `memory.current`/`memory.max`, failcnt = the `max` count of `memory.events`, and "swap" as
/// memory+swap (the v1 meaning containerd expects).
pub(super) fn v2_memory(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    let Some(stat) = fsutil::read_opt(dir, "memory.stat")? else {
        return Ok(());
    };
    s.memory.raw = keyed_all(&stat).map(|(k, v)| (k.to_string(), v)).collect();
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    let usage = fsutil::read_u64(dir, "memory.current")?;
    let limit = fsutil::read_u64(dir, "memory.max")?;
    let failcnt = fsutil::read_opt(dir, "memory.events")?
        .and_then(|e| keyed(&e, "max"))
        .unwrap_or(0);
    let peak = fsutil::read_u64_opt(dir, "memory.peak")?.unwrap_or(0);
    s.memory.usage = MemoryEntry {
        limit,
        usage,
        max: peak,
        failcnt,
    };
    if let Some(swap) = fsutil::read_u64_opt(dir, "memory.swap.current")? {
        let swap_limit = fsutil::read_u64(dir, "memory.swap.max")?;
        s.memory.swap = MemoryEntry {
            limit: limit.saturating_add(swap_limit),
            usage: usage + swap,
            max: fsutil::read_u64_opt(dir, "memory.swap.peak")?
                .map_or(0, |p| p.saturating_add(peak)),
            failcnt: 0,
        };
    }
    Ok(())
}

pub(super) fn v2_io(dir: &Path, s: &mut Stats) -> Result<(), CgroupError> {
    if let Some(c) = fsutil::read_opt(dir, "io.stat")? {
        parse_io_stat(&c, &mut s.blkio);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_stats_serialise_like_runc() {
        let s = Stats::default();
        let v: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
                "cpuset": {
                    "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                    "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                    "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0
                },
                "memory": {
                    "usage": {"limit": 0, "failcnt": 0},
                    "swap": {"limit": 0, "failcnt": 0},
                    "kernel": {"limit": 0, "failcnt": 0},
                    "kernelTCP": {"limit": 0, "failcnt": 0}
                },
                "pids": {},
                "blkio": {},
                "hugetlb": {},
                "intel_rdt": {},
                "network_interfaces": null
            })
        );
    }

    #[test]
    fn field_names_match_runc_types() {
        let mut s = Stats::default();
        s.cpu.usage.total = 5;
        s.cpu.usage.percpu = vec![1, 4];
        s.cpu.throttling.throttled_periods = 2;
        s.memory.cache = 7;
        s.memory.raw.insert("rss".into(), 3);
        s.blkio.io_queued_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 1,
        });
        s.hugetlb.insert(
            "2MB".into(),
            Hugetlb {
                usage: 0,
                max: 0,
                failcnt: 1,
            },
        );
        let j = serde_json::to_string(&s).unwrap();
        for key in [
            "\"total\":5",
            "\"percpu\":[1,4]",
            "\"throttledPeriods\":2",
            "\"cache\":7",
            "\"raw\":{\"rss\":3}",
            "\"ioQueueRecursive\":[{\"major\":8,\"op\":\"Read\",\"value\":1}]",
            "\"2MB\":{\"failcnt\":1}",
        ] {
            assert!(j.contains(key), "{key} not in {j}");
        }
        let back: Stats = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_list("\n"), Vec::<u16>::new());
        let e = parse_blkio_v1("8:0 Read 10\n8:0 Write 20\nTotal 30\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].op, "Write");
        assert_eq!(e[1].value, 20);
        let mut b = Blkio::default();
        parse_io_stat(
            "8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
            &mut b,
        );
        assert_eq!(b.io_service_bytes_recursive.len(), 3);
        assert_eq!(b.io_serviced_recursive[1].value, 4);
    }
}
