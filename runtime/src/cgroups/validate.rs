//! Checks on `linux.resources` made before any cgroup is created or written: values out of the
//! kernel's range, malformed keys, and resources for controllers the host does not have.

use oci_spec::runtime::{LinuxCpu, LinuxDeviceType, LinuxMemory, LinuxResources};

use super::CgroupError;
use super::path::Mode;

/// Largest and smallest `cpu.shares` the kernel keeps (kernel/sched: `MIN_SHARES`,
/// `MAX_SHARES`); runc reads the value back and fails outside this range, we fail before.
pub(super) const MIN_SHARES: u64 = 2;
pub(super) const MAX_SHARES: u64 = 262_144;
/// `cpu.cfs_period_us` range (kernel/sched/core.c: `min_cfs_quota_period` 1 ms,
/// `max_cfs_quota_period` 1 s).
const PERIOD_RANGE: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;
/// `blkio.weight`/`io.bfq.weight` range accepted by CFQ (10..=1000); the v2 `io.weight`
/// conversion (`1 + (w-10)*9999/990`) is only defined from 10 up.
const BLKIO_WEIGHT_RANGE: std::ops::RangeInclusive<u16> = 10..=1000;

/// What the host offers the container, for the "controller missing" checks.
#[derive(Debug)]
pub(super) struct Available<'a> {
    pub mode: Mode,
    /// v1: mounted controllers that are part of the location; v2: the enabled-able
    /// controllers (`cgroup.controllers` of the nearest existing ancestor).
    pub controllers: &'a [String],
    /// v1 hybrid: the cgroup2 mount offers `hugetlb` (these machines).
    pub hybrid_hugetlb: bool,
}

impl Available<'_> {
    fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }
}

fn invalid(field: &str, value: impl ToString, reason: &str) -> CgroupError {
    CgroupError::Invalid {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// `-1` (unlimited), `0` (not set) or a positive number.
fn check_limit(field: &str, v: Option<i64>) -> Result<(), CgroupError> {
    match v {
        Some(v) if v < -1 => Err(invalid(
            field,
            v,
            "invalid argument: must be a positive number, 0 (unset) or -1 (unlimited)",
        )),
        _ => Ok(()),
    }
}

pub(super) fn memory_requested(m: &LinuxMemory) -> bool {
    m.limit().is_some_and(|v| v != 0)
        || m.reservation().is_some_and(|v| v != 0)
        || m.swap().is_some_and(|v| v != 0)
        || m.swappiness().is_some_and(|v| v != u64::MAX)
        || m.disable_oom_killer() == Some(true)
}

pub(super) fn cpu_requested(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || rt_requested(c)
}

pub(super) fn rt_requested(c: &LinuxCpu) -> bool {
    c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0)
}

pub(super) fn cpuset_requested(c: &LinuxCpu) -> bool {
    c.cpus().as_deref().is_some_and(|s| !s.is_empty())
        || c.mems().as_deref().is_some_and(|s| !s.is_empty())
}

pub(super) fn blkio_requested(r: &LinuxResources) -> bool {
    let Some(b) = r.block_io() else { return false };
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_read_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_read_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || b.throttle_write_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
}

/// A cpuset list (`0-3,7`), as cpuset(7) "List format".
fn valid_list(s: &str) -> bool {
    s.trim().split(',').all(|part| {
        let mut it = part.splitn(2, '-');
        let a = it.next().unwrap_or("");
        let num = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
        match it.next() {
            None => num(a),
            Some(b) => num(a) && num(b),
        }
    })
}

fn check_major_minor(field: &str, major: i64, minor: i64) -> Result<(), CgroupError> {
    if major < 0 || minor < 0 {
        return Err(invalid(
            field,
            format!("{major}:{minor}"),
            "major and minor must not be negative",
        ));
    }
    Ok(())
}

/// Everything that can be checked without touching cgroupfs. `hugepage_sizes` is called only
/// when `hugepageLimits` is non-empty (it reads `/sys/kernel/mm/hugepages`).
pub(super) fn check(
    r: &LinuxResources,
    avail: &Available<'_>,
    hugepage_sizes: impl FnOnce() -> Vec<String>,
) -> Result<(), CgroupError> {
    let v2 = avail.mode == Mode::V2;
    let missing = |field: &'static str, controller: &'static str| CgroupError::ControllerMissing {
        field,
        controller,
    };

    if let Some(m) = r.memory() {
        check_limit("linux.resources.memory.limit", m.limit())?;
        check_limit("linux.resources.memory.reservation", m.reservation())?;
        check_limit("linux.resources.memory.swap", m.swap())?;
        if let (Some(limit), Some(swap)) = (m.limit(), m.swap()) {
            if limit > 0 && swap > 0 && swap < limit {
                return Err(invalid(
                    "linux.resources.memory.swap",
                    swap,
                    "memory+swap limit must be at least the memory limit",
                ));
            }
            if v2 && swap > 0 && limit == -1 {
                return Err(invalid(
                    "linux.resources.memory.swap",
                    swap,
                    "a swap limit needs a memory limit",
                ));
            }
        }
        if let Some(s) = m.swappiness() {
            // u64::MAX is -1 (Go's int64 cast): "unset", as runc treats it.
            if s > 100 && s != u64::MAX {
                return Err(invalid(
                    "linux.resources.memory.swappiness",
                    s,
                    "must be between 0 and 100",
                ));
            }
        }
        if memory_requested(m) && !avail.has("memory") {
            return Err(missing("linux.resources.memory", "memory"));
        }
    }

    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares() {
            if s != 0 && !(MIN_SHARES..=MAX_SHARES).contains(&s) {
                return Err(invalid(
                    "linux.resources.cpu.shares",
                    s,
                    "must be between 2 and 262144",
                ));
            }
        }
        check_limit("linux.resources.cpu.quota", c.quota())?;
        if let Some(p) = c.period() {
            if p != 0 && !PERIOD_RANGE.contains(&p) {
                return Err(invalid(
                    "linux.resources.cpu.period",
                    p,
                    "must be between 1000 and 1000000 microseconds",
                ));
            }
        }
        check_limit("linux.resources.cpu.realtimeRuntime", c.realtime_runtime())?;
        if let Some(i) = c.idle() {
            if i != 0 && i != 1 {
                return Err(invalid("linux.resources.cpu.idle", i, "must be 0 or 1"));
            }
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            if !valid_list(s) {
                return Err(invalid(
                    "linux.resources.cpu.cpus",
                    format!("{s:?}"),
                    "not a CPU list such as \"0-3,6\"",
                ));
            }
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            if !valid_list(s) {
                return Err(invalid(
                    "linux.resources.cpu.mems",
                    format!("{s:?}"),
                    "not a memory node list such as \"0-1\"",
                ));
            }
        }
        if v2 && rt_requested(c) {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.cpu.realtimeRuntime",
                reason: "real-time CPU bandwidth cannot be set on cgroup v2 (no cpu.rt_* files)",
            });
        }
        let cpu_ctl = cpu_requested(c);
        if cpu_ctl && !avail.has("cpu") {
            return Err(missing("linux.resources.cpu", "cpu"));
        }
        if cpuset_requested(c) && !avail.has("cpuset") {
            return Err(missing("linux.resources.cpu.cpus", "cpuset"));
        }
    }

    if let Some(p) = r.pids() {
        check_limit("linux.resources.pids.limit", Some(p.limit()))?;
        if p.limit() != 0 && !avail.has("pids") {
            return Err(missing("linux.resources.pids", "pids"));
        }
    }

    if let Some(b) = r.block_io() {
        for (field, w) in [
            ("linux.resources.blockIO.weight", b.weight()),
            ("linux.resources.blockIO.leafWeight", b.leaf_weight()),
        ] {
            if let Some(w) = w.filter(|w| *w != 0) {
                if !BLKIO_WEIGHT_RANGE.contains(&w) {
                    return Err(invalid(field, w, "must be between 10 and 1000"));
                }
            }
        }
        for wd in b.weight_device().iter().flatten() {
            check_major_minor(
                "linux.resources.blockIO.weightDevice",
                wd.major(),
                wd.minor(),
            )?;
            for w in [wd.weight(), wd.leaf_weight()].into_iter().flatten() {
                if w != 0 && !BLKIO_WEIGHT_RANGE.contains(&w) {
                    return Err(invalid(
                        "linux.resources.blockIO.weightDevice",
                        w,
                        "must be between 10 and 1000",
                    ));
                }
            }
        }
        for (field, list) in [
            (
                "linux.resources.blockIO.throttleReadBpsDevice",
                b.throttle_read_bps_device(),
            ),
            (
                "linux.resources.blockIO.throttleWriteBpsDevice",
                b.throttle_write_bps_device(),
            ),
            (
                "linux.resources.blockIO.throttleReadIOPSDevice",
                b.throttle_read_iops_device(),
            ),
            (
                "linux.resources.blockIO.throttleWriteIOPSDevice",
                b.throttle_write_iops_device(),
            ),
        ] {
            for td in list.iter().flatten() {
                check_major_minor(field, td.major(), td.minor())?;
            }
        }
        if blkio_requested(r) && !avail.has(if v2 { "io" } else { "blkio" }) {
            return Err(missing(
                "linux.resources.blockIO",
                if v2 { "io" } else { "blkio" },
            ));
        }
    }

    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        let sizes = hugepage_sizes();
        for l in h {
            if !sizes.iter().any(|s| s == l.page_size()) {
                return Err(invalid(
                    "linux.resources.hugepageLimits.pageSize",
                    format!("{:?}", l.page_size()),
                    &format!(
                        "not a huge page size of this host (it has {})",
                        sizes.join(", ")
                    ),
                ));
            }
            if l.limit() < 0 {
                return Err(invalid(
                    "linux.resources.hugepageLimits.limit",
                    l.limit(),
                    "must not be negative",
                ));
            }
        }
        if !avail.has("hugetlb") && !avail.hybrid_hugetlb {
            return Err(missing("linux.resources.hugepageLimits", "hugetlb"));
        }
    }

    if let Some(n) = r.network() {
        for p in n.priorities().iter().flatten() {
            if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                return Err(invalid(
                    "linux.resources.network.priorities.name",
                    format!("{:?}", p.name()),
                    "not an interface name",
                ));
            }
        }
        // cgroup v2 has no net_cls/net_prio: ignored there, as runc's fs2 manager does.
        if !v2 {
            if n.class_id().is_some_and(|c| c != 0) && !avail.has("net_cls") {
                return Err(missing("linux.resources.network.classID", "net_cls"));
            }
            if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) && !avail.has("net_prio") {
                return Err(missing("linux.resources.network.priorities", "net_prio"));
            }
        }
    }

    if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        for (dev, lim) in rdma {
            if dev.is_empty() || dev.contains(char::is_whitespace) {
                return Err(invalid(
                    "linux.resources.rdma",
                    format!("{dev:?}"),
                    "not an RDMA device name",
                ));
            }
            if lim.hca_handles().is_none() && lim.hca_objects().is_none() {
                return Err(invalid(
                    "linux.resources.rdma",
                    format!("{dev:?}"),
                    "neither hcaHandles nor hcaObjects is set",
                ));
            }
        }
        if !avail.has("rdma") {
            return Err(missing("linux.resources.rdma", "rdma"));
        }
    }

    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        if !v2 {
            return Err(CgroupError::Unsupported {
                field: "linux.resources.unified",
                reason: "cgroup v2 key/values cannot be used on a cgroup v1 host",
            });
        }
        for key in u.keys() {
            check_unified_key(key, avail)?;
        }
    }

    for d in r.devices().iter().flatten() {
        if d.typ() == Some(LinuxDeviceType::P) {
            return Err(invalid(
                "linux.resources.devices.type",
                "\"p\"",
                "the devices controller only knows a, b and c",
            ));
        }
        for (what, v) in [("major", d.major()), ("minor", d.minor())] {
            if let Some(v) = v.filter(|v| *v < -1) {
                return Err(invalid(
                    &format!("linux.resources.devices.{what}"),
                    v,
                    "must not be negative (omit it, or use -1, for any)",
                ));
            }
        }
        if let Some(a) = d.access() {
            if a.is_empty() || !a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
                return Err(invalid(
                    "linux.resources.devices.access",
                    format!("{a:?}"),
                    "must be a combination of r, w and m",
                ));
            }
        }
    }
    Ok(())
}

/// runc's `setUnified` rules: a file name (no `/`) of the form `controller.parameter`, whose
/// controller is available (or is the core `cgroup`).
fn check_unified_key(key: &str, avail: &Available<'_>) -> Result<(), CgroupError> {
    let bad = |detail: &str| CgroupError::UnifiedKey {
        key: key.to_string(),
        detail: detail.to_string(),
    };
    if key.contains('/') || key.starts_with('.') || key.is_empty() {
        return Err(bad(" (it must be a file name, without '/')"));
    }
    let Some((ctl, param)) = key.split_once('.') else {
        return Err(bad(" (it must have the form <controller>.<parameter>)"));
    };
    if ctl.is_empty() || param.is_empty() {
        return Err(bad(" (it must have the form <controller>.<parameter>)"));
    }
    if ctl != "cgroup" && !avail.has(ctl) {
        return Err(bad(&format!(
            " (controller {ctl:?} is not available; available: {})",
            avail.controllers.join(" ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn v1_all() -> Vec<String> {
        [
            "cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "freezer",
        ]
        .map(String::from)
        .to_vec()
    }

    fn check_v1(json: &str) -> Result<(), CgroupError> {
        let c = v1_all();
        let a = Available {
            mode: Mode::V1,
            controllers: &c,
            hybrid_hugetlb: false,
        };
        check(&res(json), &a, || vec!["2MB".into(), "1GB".into()])
    }

    fn check_v2(json: &str) -> Result<(), CgroupError> {
        let c = ["cpu", "memory", "pids", "io"].map(String::from).to_vec();
        let a = Available {
            mode: Mode::V2,
            controllers: &c,
            hybrid_hugetlb: false,
        };
        check(&res(json), &a, || vec!["2MB".into()])
    }

    #[test]
    fn negative_values_name_the_field() {
        let e = check_v1(r#"{"memory":{"limit":-5}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "linux.resources.memory.limit: cannot set -5: invalid argument: must be a positive number, 0 (unset) or -1 (unlimited)"
        );
        assert!(check_v1(r#"{"memory":{"limit":-1,"swap":-1}}"#).is_ok());
        let e = check_v1(r#"{"pids":{"limit":-2}}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.pids.limit: cannot set -2")
        );
        let e = check_v1(r#"{"cpu":{"quota":-7}}"#).unwrap_err();
        assert!(e.to_string().starts_with("linux.resources.cpu.quota"));
        let e = check_v1(r#"{"blockIO":{"weightDevice":[{"major":-1,"minor":0,"weight":100}]}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("weightDevice"), "{e}");
    }

    #[test]
    fn ranges_are_checked() {
        assert!(check_v1(r#"{"cpu":{"shares":1}}"#).is_err());
        assert!(check_v1(r#"{"cpu":{"shares":262145}}"#).is_err());
        assert!(check_v1(r#"{"cpu":{"shares":1024,"period":100000,"quota":50000}}"#).is_ok());
        assert!(check_v1(r#"{"cpu":{"period":999}}"#).is_err());
        assert!(check_v1(r#"{"cpu":{"idle":2}}"#).is_err());
        assert!(check_v1(r#"{"memory":{"swappiness":101}}"#).is_err());
        assert!(check_v1(r#"{"memory":{"swappiness":18446744073709551615}}"#).is_ok());
        assert!(check_v1(r#"{"memory":{"limit":2000000,"swap":1000000}}"#).is_err());
        assert!(check_v1(r#"{"blockIO":{"weight":5}}"#).is_err());
        assert!(check_v1(r#"{"blockIO":{"weight":500}}"#).is_ok());
        assert!(check_v1(r#"{"cpu":{"cpus":"0-1,3"}}"#).is_ok());
        let e = check_v1(r#"{"cpu":{"cpus":"0-x"}}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.cpu.cpus: cannot set \"0-x\"")
        );
        assert!(
            check_v1(
                r#"{"devices":[{"allow":true,"type":"c","major":1,"minor":3,"access":"rwx"}]}"#
            )
            .is_err()
        );
        assert!(check_v1(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).is_ok());
    }

    #[test]
    fn missing_controllers_are_errors_only_when_used() {
        // No hugetlb, net_cls, net_prio, rdma in the v1 set above.
        assert!(check_v1(r#"{"network":{}}"#).is_ok());
        let e = check_v1(r#"{"network":{"classID":1048577}}"#).unwrap_err();
        assert!(matches!(
            e,
            CgroupError::ControllerMissing {
                controller: "net_cls",
                ..
            }
        ));
        let e =
            check_v1(r#"{"network":{"priorities":[{"name":"eth0","priority":5}]}}"#).unwrap_err();
        assert!(matches!(
            e,
            CgroupError::ControllerMissing {
                controller: "net_prio",
                ..
            }
        ));
        let e = check_v1(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#).unwrap_err();
        assert!(matches!(
            e,
            CgroupError::ControllerMissing {
                controller: "hugetlb",
                ..
            }
        ));
        let e = check_v1(r#"{"rdma":{"mlx5_1":{"hcaHandles":3}}}"#).unwrap_err();
        assert!(matches!(
            e,
            CgroupError::ControllerMissing {
                controller: "rdma",
                ..
            }
        ));
        // Hybrid hosts can take hugetlb from the cgroup2 mount.
        let c = v1_all();
        let a = Available {
            mode: Mode::V1,
            controllers: &c,
            hybrid_hugetlb: true,
        };
        let r = res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#);
        assert!(check(&r, &a, || vec!["2MB".into()]).is_ok());
        let r = res(r#"{"hugepageLimits":[{"pageSize":"3MB","limit":4194304}]}"#);
        let e = check(&r, &a, || vec!["2MB".into()]).unwrap_err();
        assert!(e.to_string().contains("pageSize"), "{e}");
        // v2: network is ignored, cpuset missing is an error.
        assert!(check_v2(r#"{"network":{"classID":1}}"#).is_ok());
        let e = check_v2(r#"{"cpu":{"cpus":"0"}}"#).unwrap_err();
        assert!(matches!(
            e,
            CgroupError::ControllerMissing {
                controller: "cpuset",
                ..
            }
        ));
    }

    #[test]
    fn unified_rules() {
        let e = check_v1(r#"{"unified":{"memory.max":"1"}}"#).unwrap_err();
        assert!(matches!(
            e,
            CgroupError::Unsupported {
                field: "linux.resources.unified",
                ..
            }
        ));
        assert!(
            check_v2(r#"{"unified":{"memory.high":"1000000","cgroup.max.descendants":"3"}}"#)
                .is_ok()
        );
        let e = check_v2(r#"{"unified":{"foo.bar":"1"}}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.resources.unified: \"foo.bar\" is not a cgroup v2 file"),
            "{e}"
        );
        assert!(check_v2(r#"{"unified":{"../memory.max":"1"}}"#).is_err());
        assert!(check_v2(r#"{"unified":{"memorymax":"1"}}"#).is_err());
    }

    #[test]
    fn v2_specific_rules() {
        let e = check_v2(r#"{"cpu":{"realtimeRuntime":1000}}"#).unwrap_err();
        assert!(matches!(e, CgroupError::Unsupported { .. }));
        assert!(check_v2(r#"{"memory":{"limit":-1,"swap":100}}"#).is_err());
        assert!(check_v2(r#"{"memory":{"limit":-1}}"#).is_ok());
    }
}
