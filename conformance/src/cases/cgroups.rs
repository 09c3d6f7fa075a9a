//! cgroups (config-linux.md#control-groups) checked from outside in the container's cgroup
//! directory (found through /proc/<pid>/cgroup), and the runc CLI operations that need them:
//! pause/resume, update, ps; plus `features` (features.md).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::{case, wait_for_file};
use crate::bundle::{Bundle, DEFAULT_CAPS};
use crate::case::{Case, skip};
use crate::ctx::{Ctx, STATUS_TIMEOUT};
use crate::host;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "cgroups.path",
            "config-linux.md#cgroups-path",
            "If the value is specified and absolute, the runtime MUST take the path to be relative to the cgroups mount point.",
            path
        ),
        case!(
            "cgroups.memory_limit",
            "config-linux.md#memory",
            "limit (int64, OPTIONAL) - sets limit of memory usage in bytes",
            memory_limit
        ),
        case!(
            "cgroups.pids_limit",
            "config-linux.md#pids",
            "limit (int64, REQUIRED) - specifies the maximum number of tasks in the cgroup",
            pids_limit
        ),
        case!(
            "cgroups.cpu_shares",
            "config-linux.md#cpu",
            "shares (uint64, OPTIONAL) - specifies a relative share of CPU time available to the tasks in a cgroup",
            cpu_shares
        ),
        case!(
            "cgroups.cpu_quota",
            "config-linux.md#cpu",
            "quota (int64, OPTIONAL) - specifies the total amount of time in microseconds for which all tasks in a cgroup can run during one period (as defined by period below)",
            cpu_quota
        ),
        case!(
            "cgroups.cpuset",
            "config-linux.md#cpu",
            "cpus (string, OPTIONAL) - list of CPUs the container will run on",
            cpuset
        ),
        case!(
            "cgroups.devices_deny",
            "config-linux.md#device-allowlist",
            "devices (array of objects, OPTIONAL) configures the device allowlist. The runtime MUST apply entries in the listed order. ... allow (boolean, REQUIRED) - whether the entry is allowed or denied. ... access (string, OPTIONAL) - cgroup permissions for device. A composition of r (read), w (write), and m (mknod).",
            devices_deny
        ),
        case!(
            "cgroups.memory_swap_reservation",
            "config-linux.md#memory",
            "reservation (int64, OPTIONAL) - sets soft limit of memory usage; swap (int64, OPTIONAL) - sets limit of memory+Swap usage",
            memory_swap_reservation
        ),
        case!(
            "cgroups.blkio_weight",
            "config-linux.md#block-io",
            "weight (uint16, OPTIONAL) - specifies per-cgroup weight. This is default weight of the group on all devices until and unless overridden by per-device rules.",
            blkio_weight
        ),
        case!(
            "cgroups.blkio_throttle",
            "config-linux.md#block-io",
            "throttleReadBpsDevice, throttleWriteBpsDevice (array of objects, OPTIONAL) - an array of per-device bandwidth rate limits. ... rate (uint64, REQUIRED) - bandwidth rate limit in bytes per second for the device",
            blkio_throttle
        ),
        case!(
            "cgroups.hugetlb_limit",
            "config-linux.md#huge-page-limits",
            "hugepageLimits (array of objects, OPTIONAL) represents the hugetlb controller which allows to limit the HugeTLB reservations (if supported) or usage (page fault). ... pageSize (string, REQUIRED) - hugepage size ... limit (uint64, REQUIRED) - limit in bytes of hugepagesize HugeTLB reservations (if supported) or usage.",
            hugetlb_limit
        ),
        case!(
            "pause.pause_resume",
            "runc CLI: pause, resume; runtime.md#state",
            "not in the runtime-spec's operations: runc's pause freezes every process of the container (status paused: 'Additional values MAY be defined by the runtime ... to represent new runtime states'), resume thaws them",
            pause_resume
        ),
        case!(
            "update.resources",
            "runc CLI: update --resources=-; config-linux.md#control-groups",
            "not in the runtime-spec's operations: runc's update applies a LinuxResources object (config-linux.md) to a running container",
            update_resources
        ),
        case!(
            "ps.json",
            "runc CLI: ps --format json",
            "not in the runtime-spec: runc's ps --format json prints the host pids of the container's processes as a JSON array",
            ps_json
        ),
        case!(
            "features.document",
            "features.md",
            "ociVersionMin (string, REQUIRED) The minimum recognized version of the Open Container Initiative Runtime Specification. ociVersionMax (string, REQUIRED) The maximum recognized version",
            features_document
        ),
    ]
}

/// A running `sleep` container with `resources` and its own cgroupsPath; returns (id, pid).
fn running_with(
    ctx: &mut Ctx,
    b: &mut Bundle,
    resources: Value,
) -> anyhow::Result<(String, String)> {
    let id = ctx.new_id();
    ctx.cgroup_path(b, &id);
    b.config["linux"]["resources"] = resources;
    ctx.create(b, &id)?;
    ctx.start(&id)?;
    ctx.rt.wait_status(&id, "running", STATUS_TIMEOUT)?;
    let pid = ctx.pid(&id)?;
    Ok((id, pid))
}

fn read_cg(pid: &str, controller: &str, file: &str) -> anyhow::Result<String> {
    let dir = host::cgroup_dir(pid, controller)?;
    let path = dir.join(file);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_owned())
}

fn path(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let id = ctx.new_id();
    let want = ctx.cgroup_path(&mut b, &id);
    ctx.create(&b, &id)?;
    let pid = ctx.pid(&id)?;
    for controller in ["memory", "pids"] {
        let dir = host::cgroup_dir(&pid, controller)?;
        ensure!(
            dir.ends_with(want.trim_start_matches('/')),
            "the {controller} cgroup is {}, want .../{}",
            dir.display(),
            want.trim_start_matches('/')
        );
    }
    Ok(())
}

fn memory_limit(ctx: &mut Ctx) -> anyhow::Result<()> {
    host::require_controller("memory")?;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let limit: u64 = 64 << 20;
    let (_, pid) = running_with(ctx, &mut b, json!({ "memory": { "limit": limit } }))?;
    let file = if host::cgroup_v2_unified() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let got = read_cg(&pid, "memory", file)?;
    ensure!(got == limit.to_string(), "{file} is {got}, want {limit}");
    Ok(())
}

fn pids_limit(ctx: &mut Ctx) -> anyhow::Result<()> {
    host::require_controller("pids")?;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(ctx, &mut b, json!({ "pids": { "limit": 32 } }))?;
    let got = read_cg(&pid, "pids", "pids.max")?;
    ensure!(got == "32", "pids.max is {got}, want 32");
    Ok(())
}

fn cpu_shares(ctx: &mut Ctx) -> anyhow::Result<()> {
    host::require_controller("cpu")?;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(ctx, &mut b, json!({ "cpu": { "shares": 512 } }))?;
    if host::cgroup_v2_unified() {
        // runc's and crun's conversion: weight = 1 + ((shares - 2) * 9999) / 262142.
        let got = read_cg(&pid, "cpu", "cpu.weight")?;
        ensure!(got == "20", "cpu.weight is {got}, want 20 (shares 512)");
    } else {
        let got = read_cg(&pid, "cpu", "cpu.shares")?;
        ensure!(got == "512", "cpu.shares is {got}, want 512");
    }
    Ok(())
}

fn cpu_quota(ctx: &mut Ctx) -> anyhow::Result<()> {
    host::require_controller("cpu")?;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(
        ctx,
        &mut b,
        json!({ "cpu": { "quota": 50000, "period": 100000 } }),
    )?;
    if host::cgroup_v2_unified() {
        let got = read_cg(&pid, "cpu", "cpu.max")?;
        ensure!(got == "50000 100000", "cpu.max is {got:?}");
    } else {
        let quota = read_cg(&pid, "cpu", "cpu.cfs_quota_us")?;
        let period = read_cg(&pid, "cpu", "cpu.cfs_period_us")?;
        ensure!(
            quota == "50000" && period == "100000",
            "cfs quota/period are {quota}/{period}"
        );
    }
    Ok(())
}

fn cpuset(ctx: &mut Ctx) -> anyhow::Result<()> {
    host::require_controller("cpuset")?;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(ctx, &mut b, json!({ "cpu": { "cpus": "0" } }))?;
    let got = read_cg(&pid, "cpuset", "cpuset.cpus")?;
    ensure!(got == "0", "cpuset.cpus is {got:?}, want 0");
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
        .unwrap_or_default();
    ensure!(
        allowed == "0",
        "the container process may run on CPUs {allowed:?}, want 0"
    );
    Ok(())
}

/// A block device this host has, as (major, minor): loop devices first (always openable,
/// even unbound), then anything in /sys/dev/block.
fn host_block_devices() -> Vec<(u32, u32)> {
    let mut devs: Vec<(u32, u32)> = fs::read_dir("/sys/dev/block")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let (a, b) = name.split_once(':')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    devs.sort_by_key(|&(major, minor)| (major != 7, major, minor));
    devs
}

fn devices_deny(ctx: &mut Ctx) -> anyhow::Result<()> {
    let loops: Vec<(u32, u32)> = host_block_devices()
        .into_iter()
        .filter(|d| d.0 == 7)
        .take(2)
        .collect();
    let [denied, allowed] = loops[..] else {
        return Err(skip("needs two loop block devices (7:N) on the host"));
    };
    let mut b = ctx.bundle(&[])?;
    let mut caps: Vec<&str> = DEFAULT_CAPS.to_vec();
    caps.push("CAP_MKNOD");
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = json!(caps);
    }
    b.sh(&format!(
        "mknod /dev/oc-denied b {} {} && mknod /dev/oc-allowed b {} {} && \
         exec /bin/probe /dev/oc-denied /dev/oc-allowed",
        denied.0, denied.1, allowed.0, allowed.1
    ));
    let id = ctx.new_id();
    ctx.cgroup_path(&mut b, &id);
    // Everything allowed, then read and write (not mknod) of one block device denied: the
    // node can be made, and opening it is what the device cgroup refuses.
    b.config["linux"]["resources"] = json!({ "devices": [
        { "allow": true, "access": "rwm" },
        { "allow": false, "type": "b", "major": denied.0, "minor": denied.1, "access": "rw" },
    ] });
    ctx.create(&b, &id)?;
    ctx.start(&id)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    let out = Ctx::container_output(&b);
    let r = crate::probe::parse(&out).with_context(|| {
        format!("the container (mknod of two block devices, then the probe) printed {out:?}")
    })?;
    let d = r.path("/dev/oc-denied")?;
    ensure!(
        d["type"] == "block" && d["open_errno"] == 1,
        "opening the denied block device {}:{} did not fail with EPERM: {d}",
        denied.0,
        denied.1
    );
    let a = r.path("/dev/oc-allowed")?;
    ensure!(
        a["type"] == "block" && a["open_errno"] == 0,
        "the allowed block device {}:{} could not be opened: {a}",
        allowed.0,
        allowed.1
    );
    Ok(())
}

/// Reads `file` of `controller`, or skips when the kernel does not have it (e.g. swap
/// accounting off).
fn read_cg_or_skip(pid: &str, controller: &str, file: &str) -> anyhow::Result<String> {
    let dir = host::cgroup_dir(pid, controller)?;
    if !dir.join(file).exists() {
        return Err(skip(format!("the kernel has no {file} here")));
    }
    read_cg(pid, controller, file)
}

fn memory_swap_reservation(ctx: &mut Ctx) -> anyhow::Result<()> {
    host::require_controller("memory")?;
    let v1_swap = Path::new(host::CGROUP_ROOT).join("memory/memory.memsw.limit_in_bytes");
    if !host::cgroup_v2_unified() && !v1_swap.exists() {
        return Err(skip("no swap accounting (memory.memsw.* missing)"));
    }
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (limit, swap, reservation): (u64, u64, u64) = (64 << 20, 128 << 20, 32 << 20);
    let (_, pid) = running_with(
        ctx,
        &mut b,
        json!({ "memory": { "limit": limit, "swap": swap, "reservation": reservation } }),
    )?;
    let checks = if host::cgroup_v2_unified() {
        // cgroup v2 counts swap apart from memory: swap.max = swap - limit (runc, crun).
        [
            ("memory.swap.max", swap - limit),
            ("memory.low", reservation),
        ]
    } else {
        [
            ("memory.memsw.limit_in_bytes", swap),
            ("memory.soft_limit_in_bytes", reservation),
        ]
    };
    for (file, want) in checks {
        let got = read_cg_or_skip(&pid, "memory", file)?;
        ensure!(got == want.to_string(), "{file} is {got}, want {want}");
    }
    Ok(())
}

fn blkio_weight(ctx: &mut Ctx) -> anyhow::Result<()> {
    let controller = if host::cgroup_v2_unified() {
        "io"
    } else {
        "blkio"
    };
    host::require_controller(controller)?;
    let root = if host::cgroup_v2_unified() {
        host::cgroup_v2_root()
    } else {
        Path::new(host::CGROUP_ROOT).join("blkio")
    };
    let files: &[&str] = if host::cgroup_v2_unified() {
        &["io.bfq.weight", "io.weight"]
    } else {
        &["blkio.weight", "blkio.bfq.weight"]
    };
    // Child cgroups have the weight files whenever the root's children do; on v1 the root has
    // them too, on v2 only children do, so look one level down there.
    let has = |f: &str| {
        root.join(f).exists()
            || fs::read_dir(&root)
                .is_ok_and(|entries| entries.flatten().any(|e| e.path().join(f).exists()))
    };
    let Some(file) = files.iter().copied().find(|f| has(f)) else {
        return Err(skip(format!(
            "the kernel has no {} (no CFQ/BFQ I/O scheduler weight)",
            files.join(" or ")
        )));
    };
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(ctx, &mut b, json!({ "blockIO": { "weight": 500 } }))?;
    let got = read_cg(&pid, controller, file)?;
    // v1 blkio.weight reads "500", the bfq files "default 500"; v2 io.weight gets runc's
    // conversion 1 + (weight - 10) * 9999 / 990 = 4950.
    let want = if file == "io.weight" { "4950" } else { "500" };
    ensure!(
        got.split_whitespace().any(|w| w == want),
        "{file} is {got:?}, want {want} (weight 500)"
    );
    Ok(())
}

fn blkio_throttle(ctx: &mut Ctx) -> anyhow::Result<()> {
    let v2 = host::cgroup_v2_unified();
    host::require_controller(if v2 { "io" } else { "blkio" })?;
    let Some((major, minor)) = host_block_devices()
        .into_iter()
        .find(|d| d.0 != 7 && d.0 != 253)
        .or_else(|| host_block_devices().into_iter().next())
    else {
        return Err(skip("no block device on the host"));
    };
    let rate: u64 = 1 << 20;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(
        ctx,
        &mut b,
        json!({ "blockIO": { "throttleReadBpsDevice": [
            { "major": major, "minor": minor, "rate": rate }
        ] } }),
    )?;
    let (file, want) = if v2 {
        ("io.max", format!("{major}:{minor} rbps={rate}"))
    } else {
        (
            "blkio.throttle.read_bps_device",
            format!("{major}:{minor} {rate}"),
        )
    };
    let got = read_cg(&pid, if v2 { "io" } else { "blkio" }, file)?;
    ensure!(
        got.lines().any(|l| l.starts_with(&want)),
        "{file} is {got:?}, want a line {want:?}"
    );
    Ok(())
}

fn hugetlb_limit(ctx: &mut Ctx) -> anyhow::Result<()> {
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        return Err(skip("the kernel has no 2 MB huge pages"));
    }
    host::require_controller("hugetlb")?;
    let limit: u64 = 4 * (2 << 20);
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(
        ctx,
        &mut b,
        json!({ "hugepageLimits": [ { "pageSize": "2MB", "limit": limit } ] }),
    )?;
    let file = if host::cgroup_v2_unified() {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    let got = read_cg(&pid, "hugetlb", file)?;
    ensure!(got == limit.to_string(), "{file} is {got}, want {limit}");
    Ok(())
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn pause_resume(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("while true; do echo x >> /ticks; sleep 0.05; done");
    let (id, pid) = running_with(ctx, &mut b, json!({}))?;
    let ticks = b.rootfs().join("ticks");
    wait_for_file(&ticks, STATUS_TIMEOUT)?;
    ctx.rt.run(&["pause", &id])?.ok()?;
    ensure!(
        ctx.rt.status(&id)? == "paused",
        "status after pause is {}",
        ctx.rt.status(&id)?
    );
    if host::cgroup_v2_unified() {
        let events = read_cg(&pid, "freezer", "cgroup.events")?;
        ensure!(events.contains("frozen 1"), "cgroup.events says {events:?}");
    } else {
        let state = read_cg(&pid, "freezer", "freezer.state")?;
        ensure!(state == "FROZEN", "freezer.state is {state}");
    }
    thread::sleep(Duration::from_millis(100));
    let before = size(&ticks);
    thread::sleep(Duration::from_millis(400));
    ensure!(
        size(&ticks) == before,
        "the container kept running while paused"
    );
    ctx.rt.run(&["resume", &id])?.ok()?;
    ensure!(
        ctx.rt.status(&id)? == "running",
        "status after resume is {}",
        ctx.rt.status(&id)?
    );
    let deadline = std::time::Instant::now() + STATUS_TIMEOUT;
    while size(&ticks) == before {
        ensure!(
            std::time::Instant::now() < deadline,
            "the container did not run again after resume"
        );
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn update_resources(ctx: &mut Ctx) -> anyhow::Result<()> {
    host::require_controller("pids")?;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (id, pid) = running_with(ctx, &mut b, json!({ "pids": { "limit": 32 } }))?;
    let resources = json!({ "pids": { "limit": 64 } }).to_string();
    ctx.rt
        .run_with(
            &["update", "--resources=-", &id],
            Some(resources.as_bytes()),
            None,
        )?
        .ok()?;
    let got = read_cg(&pid, "pids", "pids.max")?;
    ensure!(got == "64", "pids.max after update is {got}, want 64");
    Ok(())
}

fn ps_json(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("sleep 1000 & touch /forked; wait");
    let (id, pid) = running_with(ctx, &mut b, json!({}))?;
    wait_for_file(&b.rootfs().join("forked"), STATUS_TIMEOUT)?;
    let out = ctx.rt.run(&["ps", "--format", "json", &id])?.ok()?;
    let pids: Vec<u64> = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("ps --format json printed {:?}", out.stdout))?;
    let init: u64 = pid.parse()?;
    ensure!(
        pids.contains(&init),
        "ps lists {pids:?}, without the container process {init}"
    );
    ensure!(
        pids.len() >= 2,
        "ps lists {pids:?}, but the container has two processes"
    );
    Ok(())
}

fn features_document(ctx: &mut Ctx) -> anyhow::Result<()> {
    let out = ctx.rt.invoke(&["features"], None, None)?.ok()?;
    let doc: Value = serde_json::from_str(&out.stdout)
        .with_context(|| format!("features printed invalid JSON: {:?}", out.stdout))?;
    for key in ["ociVersionMin", "ociVersionMax"] {
        ensure!(doc[key].is_string(), "features has no string {key}: {doc}");
    }
    if let Some(hooks) = doc["hooks"].as_array() {
        ensure!(
            hooks.iter().any(|h| h == "prestart"),
            "features.hooks lacks prestart: {hooks:?}"
        );
    }
    if let Some(nss) = doc["linux"]["namespaces"].as_array() {
        ensure!(
            nss.iter().any(|n| n == "pid"),
            "features.linux.namespaces lacks pid: {nss:?}"
        );
    }
    Ok(())
}
