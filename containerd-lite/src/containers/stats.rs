//! `docker stats`: one sample of a container's cgroup, in the Engine API's `StatsResponse`
//! shape, read straight from cgroupfs (v1 controllers under `<root>/<controller>/skiff/<id>`,
//! or the v2 group `<root>/skiff/<id>`), plus the host's total CPU time from `/proc/stat`
//! (what the CLI divides by to get a percentage).

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn kv(p: &Path) -> serde_json::Map<String, Value> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), json!(v.trim().parse::<u64>().ok()?)))
        })
        .collect()
}

/// The host's CPU time in nanoseconds (the first line of `/proc/stat`, in USER_HZ = 100).
pub fn system_cpu_nanos(proc_stat: &str) -> u64 {
    proc_stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                * 10_000_000
        })
        .unwrap_or(0)
}

/// One sample of the container `id`'s cgroup under `root` (`/sys/fs/cgroup`).
pub fn sample(root: &Path, id: &str, cgroup2: bool, system_cpu: u64, ncpu: usize) -> Value {
    let rel = format!("skiff/{id}");
    let (usage, limit, mem_stats, cpu_total, percpu, pids) = if cgroup2 {
        let g = root.join(&rel);
        let limit = fs::read_to_string(g.join("memory.max"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        let cpu = kv(&g.join("cpu.stat"))
            .get("usage_usec")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            * 1000;
        (
            read_u64(&g.join("memory.current")).unwrap_or(0),
            limit,
            kv(&g.join("memory.stat")),
            cpu,
            Vec::new(),
            read_u64(&g.join("pids.current")).unwrap_or(0),
        )
    } else {
        let c = |ctrl: &str| root.join(ctrl).join(&rel);
        let percpu: Vec<u64> = fs::read_to_string(c("cpuacct").join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        (
            read_u64(&c("memory").join("memory.usage_in_bytes")).unwrap_or(0),
            read_u64(&c("memory").join("memory.limit_in_bytes")).unwrap_or(u64::MAX),
            kv(&c("memory").join("memory.stat")),
            read_u64(&c("cpuacct").join("cpuacct.usage")).unwrap_or(0),
            percpu,
            read_u64(&c("pids").join("pids.current")).unwrap_or(0),
        )
    };
    // A limit at the top of the range means "none": the CLI shows the host's memory then.
    let host_mem = host_memory().unwrap_or(u64::MAX);
    json!({
        "read": crate::containers::logs::format_nanos(crate::containers::logs::now_nanos()),
        "cpu_stats": {
            "cpu_usage": {"total_usage": cpu_total, "percpu_usage": if percpu.is_empty() { Value::Null } else { json!(percpu) },
                "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": system_cpu,
            "online_cpus": ncpu,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": {"usage": usage, "limit": limit.min(host_mem), "stats": mem_stats},
        "pids_stats": {"current": pids},
        "blkio_stats": {"io_service_bytes_recursive": null},
        "num_procs": 0,
        "storage_stats": {},
    })
}

/// The host's memory in bytes (`MemTotal` of /proc/meminfo).
pub fn host_memory() -> Option<u64> {
    fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v1_and_v2_groups() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, s: &str| {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, s).unwrap();
        };
        w("memory/skiff/c/memory.usage_in_bytes", "1000\n");
        w("memory/skiff/c/memory.limit_in_bytes", "4096\n");
        w(
            "memory/skiff/c/memory.stat",
            "total_inactive_file 10\ncache 5\n",
        );
        w("cpuacct/skiff/c/cpuacct.usage", "777\n");
        w("cpuacct/skiff/c/cpuacct.usage_percpu", "700 77\n");
        w("pids/skiff/c/pids.current", "3\n");
        let v = sample(d.path(), "c", false, 5, 2);
        assert_eq!(v["memory_stats"]["usage"], 1000);
        assert_eq!(v["memory_stats"]["limit"], 4096);
        assert_eq!(v["memory_stats"]["stats"]["total_inactive_file"], 10);
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 777);
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["percpu_usage"],
            json!([700, 77])
        );
        assert_eq!(v["pids_stats"]["current"], 3);
        w("skiff/g/memory.current", "2000\n");
        w("skiff/g/memory.max", "max\n");
        w("skiff/g/cpu.stat", "usage_usec 5\nuser_usec 3\n");
        w("skiff/g/pids.current", "1\n");
        let v = sample(d.path(), "g", true, 5, 2);
        assert_eq!(v["memory_stats"]["usage"], 2000);
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 5000);
        assert_eq!(
            system_cpu_nanos("cpu  1 2 3 4 5 6 7 8 9\ncpu0 1"),
            28 * 10_000_000
        );
    }
}
