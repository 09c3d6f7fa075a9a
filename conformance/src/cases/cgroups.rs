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
use crate::bundle::Bundle;
use crate::case::Case;
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
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let (_, pid) = running_with(ctx, &mut b, json!({ "pids": { "limit": 32 } }))?;
    let got = read_cg(&pid, "pids", "pids.max")?;
    ensure!(got == "32", "pids.max is {got}, want 32");
    Ok(())
}

fn cpu_shares(ctx: &mut Ctx) -> anyhow::Result<()> {
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
