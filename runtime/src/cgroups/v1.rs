//! Writing `linux.resources` into cgroup v1 hierarchies (runc's `libcontainer/cgroups/fs`).

use std::path::Path;

use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemory, LinuxResources,
};

use super::CgroupError;
use super::fsutil::{self, write};
use super::path::Location;

/// When the resources are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Right after `mkdir`, before any process joins: devices are set up here only.
    Create,
    /// `runc update`: devices are left as they are (runc's update never changes device rules).
    Update,
}

fn dir<'a>(loc: &'a Location, controller: &str) -> Option<&'a Path> {
    loc.v1_dir(controller)
}

/// Writes every requested resource, in runc's subsystem order (cpuset, devices, memory, cpu,
/// pids, blkio, hugetlb, net_cls, net_prio, rdma). Availability was checked by `validate`.
pub(super) fn set(
    loc: &Location,
    r: &LinuxResources,
    phase: Phase,
    devices: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    if let (Some(c), Some(d)) = (r.cpu(), dir(loc, "cpuset")) {
        set_cpuset(d, c)?;
    }
    if phase == Phase::Create {
        if let Some(d) = dir(loc, "devices") {
            set_devices(d, devices)?;
        }
    }
    if let (Some(m), Some(d)) = (r.memory(), dir(loc, "memory")) {
        set_memory(d, m)?;
    }
    if let (Some(c), Some(d)) = (r.cpu(), dir(loc, "cpu")) {
        set_cpu(d, c)?;
    }
    if let (Some(p), Some(d)) = (r.pids(), dir(loc, "pids")) {
        if p.limit() != 0 {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".to_string()
            };
            write(d, "pids.max", &v, "linux.resources.pids.limit")?;
        }
    }
    if let Some(d) = dir(loc, "blkio") {
        set_blkio(d, r)?;
    }
    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        match dir(loc, "hugetlb") {
            Some(d) => {
                for l in h {
                    let v = l.limit().to_string();
                    let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
                    write(d, &file, &v, "linux.resources.hugepageLimits")?;
                    // Reservations too, where the kernel has them (5.7+), as runc does.
                    let rsvd = format!("hugetlb.{}.rsvd.limit_in_bytes", l.page_size());
                    if d.join(&rsvd).exists() {
                        write(d, &rsvd, &v, "linux.resources.hugepageLimits")?;
                    }
                }
            }
            // Hybrid host whose hugetlb controller is on the cgroup2 mount.
            None => {
                if let Some(u) = &loc.unified {
                    super::v2::set_hugetlb(&u.dir(), h)?;
                }
            }
        }
    }
    if let Some(n) = r.network() {
        if let (Some(id), Some(d)) = (n.class_id().filter(|c| *c != 0), dir(loc, "net_cls")) {
            write(
                d,
                "net_cls.classid",
                &id.to_string(),
                "linux.resources.network.classID",
            )?;
        }
        if let Some(d) = dir(loc, "net_prio") {
            for p in n.priorities().iter().flatten() {
                let v = format!("{} {}", p.name(), p.priority());
                write(
                    d,
                    "net_prio.ifpriomap",
                    &v,
                    "linux.resources.network.priorities",
                )?;
            }
        }
    }
    if let (Some(rdma), Some(d)) = (r.rdma(), dir(loc, "rdma")) {
        for (dev, l) in rdma {
            write(
                d,
                "rdma.max",
                &super::v2::rdma_line(dev, l),
                "linux.resources.rdma",
            )?;
        }
    }
    Ok(())
}

/// cpuset(7): a new cgroup starts with empty `cpuset.cpus`/`cpuset.mems` and refuses tasks
/// (ENOSPC) until both are set. Like runc's `cpusetEnsureParent`, every empty level from
/// `dir` up is filled from its parent (ancestors first), stopping at the hierarchy root (the
/// first directory whose parent has no cpuset files). `create` calls this right after `mkdir`.
pub(super) fn cpuset_ensure(dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if !fsutil::read(dir, file)?.trim().is_empty() {
            continue;
        }
        let Some(parent) = dir.parent().filter(|p| p.join(file).exists()) else {
            continue;
        };
        let mut from = fsutil::read(parent, file)?;
        if from.trim().is_empty() {
            cpuset_ensure(parent)?;
            from = fsutil::read(parent, file)?;
        }
        let v = from.trim();
        if !v.is_empty() {
            write(dir, file, v, "linux.resources.cpu")?;
        }
    }
    Ok(())
}

fn set_cpuset(d: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(d, "cpuset.cpus", cpus, "linux.resources.cpu.cpus")?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(d, "cpuset.mems", mems, "linux.resources.cpu.mems")?;
    }
    Ok(())
}

/// A device rule as the v1 `devices.allow`/`devices.deny` files take it
/// (Documentation/admin-guide/cgroup-v1/devices.rst): `type major:minor access`, `*` for any.
pub(super) fn device_rule_line(d: &LinuxDeviceCgroup) -> String {
    let typ = match d.typ().unwrap_or_default() {
        LinuxDeviceType::A => return "a".to_string(),
        LinuxDeviceType::B => 'b',
        // `u` (unbuffered char) is a char device to the kernel; `p` was rejected earlier.
        LinuxDeviceType::C | LinuxDeviceType::U | LinuxDeviceType::P => 'c',
    };
    let num = |v: Option<i64>| match v {
        Some(v) if v >= 0 => v.to_string(),
        _ => "*".to_string(),
    };
    let access = d.access().as_deref().unwrap_or("rwm");
    format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
}

/// Deny everything first, then write the rules in order (runc's v1 behaviour for a new
/// cgroup, which inherits its parent's allow-all list). Nothing runs in the cgroup yet, so
/// the moment with no access at all harms no one.
fn set_devices(d: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    write(d, "devices.deny", "a", "linux.resources.devices")?;
    for rule in rules {
        let file = if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(d, file, &device_rule_line(rule), "linux.resources.devices")?;
    }
    Ok(())
}

/// runc's `setMemoryAndSwap` and `MemoryGroup.Set`. The kernel requires
/// `memory.limit_in_bytes <= memory.memsw.limit_in_bytes` at every moment
/// (mm/memcontrol-v1.c `mem_cgroup_resize_max` returns EINVAL otherwise), so when the new swap
/// limit is above the current memory limit (or unlimited), swap is raised first.
fn set_memory(d: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    let memsw_exists = d.join("memory.memsw.limit_in_bytes").exists();
    // runc: unlimited memory with no explicit swap means unlimited swap too.
    if limit == -1 && swap == 0 && memsw_exists {
        swap = -1;
    }
    if m.check_before_update() == Some(true) {
        check_before_update(d, limit, swap)?;
    }
    let set_swap = |v: i64| -> Result<(), CgroupError> {
        if v == 0 {
            return Ok(());
        }
        write(
            d,
            "memory.memsw.limit_in_bytes",
            &v.to_string(),
            "linux.resources.memory.swap",
        )
    };
    let mut swap_first = false;
    if limit != 0 && swap != 0 {
        let current = fsutil::read_u64(d, "memory.limit_in_bytes")?;
        swap_first = swap == -1 || current < swap as u64;
    }
    if swap_first {
        set_swap(swap)?;
        set_limit(d, limit)?;
    } else {
        set_limit(d, limit)?;
        set_swap(swap)?;
    }
    if let Some(kernel) = m.kernel().filter(|v| *v != 0) {
        tracing::warn!(
            kernel,
            "linux.resources.memory.kernel is ignored (as runc does)"
        );
    }
    if let Some(tcp) = m.kernel_tcp().filter(|v| *v != 0) {
        tracing::warn!(
            tcp,
            "linux.resources.memory.kernelTCP is ignored (as runc does)"
        );
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        write(
            d,
            "memory.soft_limit_in_bytes",
            &r.to_string(),
            "linux.resources.memory.reservation",
        )?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(
            d,
            "memory.oom_control",
            "1",
            "linux.resources.memory.disableOOMKiller",
        )?;
    }
    if let Some(s) = m.swappiness().filter(|s| *s <= 100) {
        write(
            d,
            "memory.swappiness",
            &s.to_string(),
            "linux.resources.memory.swappiness",
        )?;
    }
    Ok(())
}

fn set_limit(d: &Path, limit: i64) -> Result<(), CgroupError> {
    if limit == 0 {
        return Ok(());
    }
    match fsutil::write_raw(d, "memory.limit_in_bytes", &limit.to_string()) {
        Ok(()) => Ok(()),
        // EBUSY: the kernel could not reclaim below the new limit (runc reports usage too).
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(CgroupError::MemoryBelowUsage {
            value: limit,
            usage: fsutil::read_u64(d, "memory.usage_in_bytes")?,
            peak: fsutil::read_u64(d, "memory.max_usage_in_bytes")?,
        }),
        Err(source) => Err(CgroupError::Write {
            field: "linux.resources.memory.limit".into(),
            value: limit.to_string(),
            path: d.join("memory.limit_in_bytes"),
            source,
        }),
    }
}

/// runc's `checkMemoryUsage` (applied to v1 too: the kernel would refuse with a less telling
/// EBUSY, or — for memsw — reclaim into swap).
fn check_before_update(d: &Path, limit: i64, swap: i64) -> Result<(), CgroupError> {
    if limit <= 0 && swap <= 0 {
        return Ok(());
    }
    let usage = fsutil::read_u64(d, "memory.usage_in_bytes")?;
    if limit > 0 && usage > limit as u64 {
        return Err(CgroupError::CheckBeforeUpdate {
            field: "linux.resources.memory.limit",
            value: limit,
            usage,
        });
    }
    if swap > 0 {
        if let Some(sw) = fsutil::read_u64_opt(d, "memory.memsw.usage_in_bytes")? {
            if sw > swap as u64 {
                return Err(CgroupError::CheckBeforeUpdate {
                    field: "linux.resources.memory.swap",
                    value: swap,
                    usage: sw,
                });
            }
        }
    }
    Ok(())
}

/// runc's `CpuGroup.Set`: shares (read back: the kernel clamps silently), period before quota
/// unless the kernel refuses the period first (EINVAL when old quota / new period exceeds the
/// parent's limit: retried after the quota), burst, idle, then real-time runtime/period.
fn set_cpu(d: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = c.shares().filter(|s| *s != 0) {
        write(
            d,
            "cpu.shares",
            &shares.to_string(),
            "linux.resources.cpu.shares",
        )?;
        let read = fsutil::read_u64(d, "cpu.shares")?;
        if read != shares {
            return Err(CgroupError::Invalid {
                field: "linux.resources.cpu.shares".into(),
                value: shares.to_string(),
                reason: format!("the kernel clamped it to {read}"),
            });
        }
    }
    let mut period_retry = None;
    if let Some(p) = c.period().filter(|p| *p != 0) {
        if let Err(e) = fsutil::write_raw(d, "cpu.cfs_period_us", &p.to_string()) {
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(CgroupError::Write {
                    field: "linux.resources.cpu.period".into(),
                    value: p.to_string(),
                    path: d.join("cpu.cfs_period_us"),
                    source: e,
                });
            }
            period_retry = Some(p);
        }
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        write(
            d,
            "cpu.cfs_quota_us",
            &q.to_string(),
            "linux.resources.cpu.quota",
        )?;
    }
    if let Some(p) = period_retry {
        write(
            d,
            "cpu.cfs_period_us",
            &p.to_string(),
            "linux.resources.cpu.period",
        )?;
    }
    if let Some(b) = c.burst() {
        write(
            d,
            "cpu.cfs_burst_us",
            &b.to_string(),
            "linux.resources.cpu.burst",
        )?;
    }
    if let Some(i) = c.idle() {
        write(d, "cpu.idle", &i.to_string(), "linux.resources.cpu.idle")?;
    }
    set_rt(d, c)
}

/// Real-time bandwidth: period first, so that a runtime valid for the new period is accepted
/// (runc's `SetRtSched` order).
fn set_rt(d: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        write(
            d,
            "cpu.rt_period_us",
            &p.to_string(),
            "linux.resources.cpu.realtimePeriod",
        )?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        write(
            d,
            "cpu.rt_runtime_us",
            &r.to_string(),
            "linux.resources.cpu.realtimeRuntime",
        )?;
    }
    Ok(())
}

/// runc's `BlkioGroup.Set`: CFQ's `blkio.weight` if the kernel has it, else BFQ's
/// `blkio.bfq.weight` (neither exists when no device uses CFQ/BFQ: then a weight request fails
/// with the write error, as runc's does).
fn set_blkio(d: &Path, r: &LinuxResources) -> Result<(), CgroupError> {
    let Some(b) = r.block_io() else {
        return Ok(());
    };
    let (weight_file, weight_dev_file) = if d.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write(
            d,
            weight_file,
            &w.to_string(),
            "linux.resources.blockIO.weight",
        )?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write(
            d,
            "blkio.leaf_weight",
            &w.to_string(),
            "linux.resources.blockIO.leafWeight",
        )?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight().filter(|w| *w != 0) {
            let v = format!("{}:{} {w}", wd.major(), wd.minor());
            write(
                d,
                weight_dev_file,
                &v,
                "linux.resources.blockIO.weightDevice",
            )?;
        }
        if let Some(w) = wd.leaf_weight().filter(|w| *w != 0) {
            let v = format!("{}:{} {w}", wd.major(), wd.minor());
            write(
                d,
                "blkio.leaf_weight_device",
                &v,
                "linux.resources.blockIO.weightDevice",
            )?;
        }
    }
    for (file, field, list) in [
        (
            "blkio.throttle.read_bps_device",
            "linux.resources.blockIO.throttleReadBpsDevice",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            "linux.resources.blockIO.throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            "linux.resources.blockIO.throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            "linux.resources.blockIO.throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
        ),
    ] {
        for td in list.iter().flatten() {
            let v = format!("{}:{} {}", td.major(), td.minor(), td.rate());
            write(d, file, &v, field)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lines() {
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}"#)
                .unwrap();
        assert_eq!(device_rule_line(&r), "c 1:3 rwm");
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"c","major":136,"access":"rw"}"#).unwrap();
        assert_eq!(device_rule_line(&r), "c 136:* rw");
        let r: LinuxDeviceCgroup = serde_json::from_str(r#"{"allow":false}"#).unwrap();
        assert_eq!(device_rule_line(&r), "a");
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"type":"b","major":-1,"minor":-1}"#).unwrap();
        assert_eq!(device_rule_line(&r), "b *:* rwm");
    }
}
