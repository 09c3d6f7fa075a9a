//! Writing `linux.resources` into a cgroup v2 directory (runc's `libcontainer/cgroups/fs2`).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxRdma, LinuxResources,
};

use super::fsutil::{self, write};
use super::v1::Phase;
use super::{CgroupError, devices_bpf};

/// runc's `ConvertCPUSharesToCgroupV2Value`: maps v1 shares [2, 262144] linearly onto v2
/// weights [1, 10000]; 0 stays 0 ("not set").
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// runc's `ConvertBlkIOToIOWeightValue`: blkio weight [10, 1000] onto `io.weight` [1, 10000].
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10) * 9999) / 990
}

/// runc's `numToStr`: 0 is "not set", -1 is `max`.
fn num(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

/// Creates `mount/rel` level by level, recording the directories it made in `created`
/// (outermost first), and enables `enable` in the `cgroup.subtree_control` of every level
/// above the leaf (runc's `CreateCgroupPath`: the no-internal-process rule forbids enabling
/// controllers in the leaf, which will hold the container's processes). A controller the
/// kernel refuses (EBUSY in a populated ancestor, or not delegated) is skipped; asking for it
/// then fails at the write of its limit, naming the field.
pub(super) fn create_path(
    mount: &Path,
    rel: &Path,
    enable: &[String],
    created: &mut Vec<PathBuf>,
) -> Result<(), CgroupError> {
    let all = enable
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut current = mount.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for part in &parts {
        if !enable.is_empty() {
            // Enable in `current`, the parent of the level about to be made.
            if fsutil::write_raw(&current, "cgroup.subtree_control", &all).is_err() {
                for c in enable {
                    let _ = fsutil::write_raw(&current, "cgroup.subtree_control", &format!("+{c}"));
                }
            }
        }
        current.push(part);
        match fs::create_dir(&current) {
            Ok(()) => created.push(current.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Io {
                    op: "create cgroup",
                    path: current,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Writes the resources in runc's `fs2` order: pids, memory, io, cpu, devices, cpuset,
/// hugetlb, rdma, unified. `network` is not there: cgroup v2 has no net_cls/net_prio.
pub(super) fn set(
    dir: &Path,
    r: &LinuxResources,
    phase: Phase,
    devices: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(dir, "pids.max", &v, "linux.resources.pids.limit")?;
        }
    }
    if let Some(m) = r.memory() {
        set_memory(dir, m)?;
    }
    set_io(dir, r)?;
    if let Some(c) = r.cpu() {
        set_cpu(dir, c)?;
    }
    if phase == Phase::Create {
        apply_devices(dir, devices)?;
    }
    if let Some(c) = r.cpu() {
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", cpus, "linux.resources.cpu.cpus")?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", mems, "linux.resources.cpu.mems")?;
        }
    }
    if let Some(h) = r.hugepage_limits() {
        set_hugetlb(dir, h)?;
    }
    if let Some(rdma) = r.rdma() {
        for (dev, l) in rdma {
            write(dir, "rdma.max", &rdma_line(dev, l), "linux.resources.rdma")?;
        }
    }
    if let Some(u) = r.unified() {
        set_unified(dir, u)?;
    }
    Ok(())
}

/// linux.resources.devices on cgroup v2: the eBPF device filter (`devices_bpf`), which also
/// replaces a filter attached earlier.
pub(super) fn apply_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    devices_bpf::apply(dir, rules).map_err(|source| CgroupError::Devices {
        path: dir.to_path_buf(),
        source,
    })
}

/// `hca_handle=N hca_object=M` for `rdma.max` (v1 and v2 share the format); an unset one is
/// `max`.
pub(super) fn rdma_line(dev: &str, l: &LinuxRdma) -> String {
    let n = |v: Option<u32>| v.map_or_else(|| "max".to_string(), |v| v.to_string());
    format!(
        "{dev} hca_handle={} hca_object={}",
        n(l.hca_handles()),
        n(l.hca_objects())
    )
}

/// `hugetlb.<size>.max`, and the reservation limit `hugetlb.<size>.rsvd.max` where the kernel
/// has it (runc sets both to the same value).
pub(super) fn set_hugetlb(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for l in limits {
        let v = l.limit().to_string();
        write(
            dir,
            &format!("hugetlb.{}.max", l.page_size()),
            &v,
            "linux.resources.hugepageLimits",
        )?;
        let rsvd = format!("hugetlb.{}.rsvd.max", l.page_size());
        if dir.join(&rsvd).exists() {
            write(dir, &rsvd, &v, "linux.resources.hugepageLimits")?;
        }
    }
    Ok(())
}

/// runc's `ConvertMemorySwapToCgroupV2Value`: the spec's swap is memory+swap (v1 meaning);
/// v2's `memory.swap.max` is swap alone.
fn swap_v2(swap: i64, limit: i64) -> i64 {
    if limit == -1 && swap == 0 {
        return -1;
    }
    if swap == -1 || swap == 0 || limit <= 0 {
        // validate rejected swap > 0 without a positive memory limit at create; on update
        // with no limit given, the swap value is taken as memory+swap of unknown memory:
        // leave it alone.
        return if swap > 0 { 0 } else { swap };
    }
    swap - limit
}

/// runc's fs2 `setMemory`: `memory.swap.max` first, then `memory.max`, then `memory.low`.
/// `swappiness` and `disableOOMKiller` have no v2 file and are ignored, as runc does.
fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().unwrap_or(0);
    let swap_in = m.swap().unwrap_or(0);
    if m.check_before_update() == Some(true) && (limit > 0 || swap_in > 0) {
        let usage = fsutil::read_u64(dir, "memory.current")?;
        if limit > 0 && usage > limit as u64 {
            return Err(CgroupError::CheckBeforeUpdate {
                field: "linux.resources.memory.limit",
                value: limit,
                usage,
            });
        }
        if swap_in > 0 {
            let swap_usage = fsutil::read_u64_opt(dir, "memory.swap.current")?.unwrap_or(0);
            if usage + swap_usage > swap_in as u64 {
                return Err(CgroupError::CheckBeforeUpdate {
                    field: "linux.resources.memory.swap",
                    value: swap_in,
                    usage: usage + swap_usage,
                });
            }
        }
    }
    let swap = swap_v2(swap_in, limit);
    let mut swap_str = num(swap);
    if swap_str.is_none() && swap == 0 && swap_in > 0 && limit > 0 {
        // memory == memory+swap: no swap at all.
        swap_str = Some("0".into());
    }
    if let Some(s) = swap_str {
        match fsutil::write_raw(dir, "memory.swap.max", &s) {
            Ok(()) => {}
            // No swap accounting: "unlimited" or "none" are what the host does anyway.
            Err(e) if e.kind() == io::ErrorKind::NotFound && (s == "max" || s == "0") => {}
            Err(source) => {
                return Err(CgroupError::Write {
                    field: "linux.resources.memory.swap".into(),
                    value: swap_in.to_string(),
                    path: dir.join("memory.swap.max"),
                    source,
                });
            }
        }
    }
    if let Some(v) = num(limit) {
        write(dir, "memory.max", &v, "linux.resources.memory.limit")?;
    }
    if let Some(v) = m.reservation().and_then(num) {
        write(dir, "memory.low", &v, "linux.resources.memory.reservation")?;
    }
    if m.swappiness().is_some_and(|s| s <= 100) {
        tracing::warn!("linux.resources.memory.swappiness is ignored on cgroup v2 (as runc does)");
    }
    if m.kernel().is_some_and(|v| v != 0) || m.kernel_tcp().is_some_and(|v| v != 0) {
        tracing::warn!("linux.resources.memory.kernel/kernelTCP are ignored (as runc does)");
    }
    Ok(())
}

/// runc's fs2 `setCpu`: `cpu.weight` from shares, `cpu.max` ("quota period", `max` for no
/// quota), `cpu.max.burst`, `cpu.idle`. Unlike runc, a period given without a quota keeps the
/// current quota instead of resetting it to `max`.
fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        let w = shares_to_weight(s);
        write(
            dir,
            "cpu.weight",
            &w.to_string(),
            "linux.resources.cpu.shares",
        )?;
    }
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    if quota != 0 || period != 0 {
        let q = if quota > 0 {
            quota.to_string()
        } else if quota == 0 {
            // Only the period changes: keep the quota that is there.
            let cur = fsutil::read(dir, "cpu.max")?;
            cur.split_whitespace().next().unwrap_or("max").to_string()
        } else {
            "max".to_string()
        };
        let v = if period != 0 {
            format!("{q} {period}")
        } else {
            q
        };
        let field = if quota != 0 {
            "linux.resources.cpu.quota"
        } else {
            "linux.resources.cpu.period"
        };
        write(dir, "cpu.max", &v, field)?;
    }
    if let Some(b) = c.burst() {
        write(
            dir,
            "cpu.max.burst",
            &b.to_string(),
            "linux.resources.cpu.burst",
        )?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    Ok(())
}

/// runc's fs2 `setIo`: BFQ's `io.bfq.weight` when present (it also takes per-device
/// weights), else `io.weight` with the blkio→io conversion; throttles into `io.max`.
fn set_io(dir: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    let Some(b) = r.block_io() else {
        return Ok(());
    };
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            write(
                dir,
                "io.bfq.weight",
                &w.to_string(),
                "linux.resources.blockIO.weight",
            )?;
        } else {
            let v = blkio_weight_to_io_weight(w);
            write(
                dir,
                "io.weight",
                &v.to_string(),
                "linux.resources.blockIO.weight",
            )?;
        }
    }
    if bfq {
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight().filter(|w| *w != 0) {
                let v = format!("{}:{} {w}", wd.major(), wd.minor());
                write(
                    dir,
                    "io.bfq.weight",
                    &v,
                    "linux.resources.blockIO.weightDevice",
                )?;
            }
        }
    }
    for (key, field, list) in [
        (
            "rbps",
            "linux.resources.blockIO.throttleReadBpsDevice",
            b.throttle_read_bps_device(),
        ),
        (
            "wbps",
            "linux.resources.blockIO.throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
        ),
        (
            "riops",
            "linux.resources.blockIO.throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
        ),
        (
            "wiops",
            "linux.resources.blockIO.throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
        ),
    ] {
        for td in list.iter().flatten() {
            let v = format!("{}:{} {key}={}", td.major(), td.minor(), td.rate());
            write(dir, "io.max", &v, field)?;
        }
    }
    Ok(())
}

/// `linux.resources.unified`: each key is a file of the cgroup; a missing file means the key
/// is not a cgroup v2 file (or its controller is not enabled here).
fn set_unified(dir: &Path, u: &HashMap<String, String>) -> Result<(), CgroupError> {
    // Sorted, so a failure is reproducible whatever the map's order.
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in keys {
        let v = &u[k];
        match fsutil::write_raw(dir, k, v) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CgroupError::UnifiedKey {
                    key: k.clone(),
                    detail: format!(" (no such file in {})", dir.display()),
                });
            }
            Err(source) => {
                return Err(CgroupError::Write {
                    field: format!("linux.resources.unified.{k:?}"),
                    value: v.clone(),
                    path: dir.join(k),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(512), 20);
    }

    #[test]
    fn blkio_weight_conversion_matches_runc() {
        assert_eq!(blkio_weight_to_io_weight(0), 0);
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    }

    #[test]
    fn swap_conversion_matches_runc() {
        assert_eq!(swap_v2(0, -1), -1);
        assert_eq!(swap_v2(-1, 100), -1);
        assert_eq!(swap_v2(0, 100), 0);
        assert_eq!(swap_v2(300, 100), 200);
        assert_eq!(swap_v2(100, 100), 0);
    }

    #[test]
    fn rdma_lines() {
        let l: LinuxRdma = serde_json::from_str(r#"{"hcaHandles":3}"#).unwrap();
        assert_eq!(
            rdma_line("mlx5_1", &l),
            "mlx5_1 hca_handle=3 hca_object=max"
        );
    }
}
