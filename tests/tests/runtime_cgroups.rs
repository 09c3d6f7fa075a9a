//! cgroups through the CLI: `linux.cgroupsPath`, `linux.resources` checked in cgroupfs, the
//! process placed before it runs, pause/resume, update, ps, events, kill --all, device rules,
//! OOM, removal on delete — on these machines' v1 hybrid layout, and on cgroup v2 through the
//! `in-cgroup2` wrapper (a private mount namespace where /sys/fs/cgroup is cgroup2).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use skiff_tests::container::assert_no_trace;
use skiff_tests::host::{cgroup_dir, cgroup_dirs_named, process_state, wait_until};
use skiff_tests::{Container, Runtime, require_root, setup, unique_id};

const TIMEOUT: Duration = Duration::from_secs(20);

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn cgroup_resources_are_applied_v1() {
    require_root();
    let (rt, mut bundle) = setup();
    let id = unique_id("cg-res");
    bundle.config_mut(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{id}/nested"));
        c["linux"]["resources"] = json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 10},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 32},
            "blockIO": {"weight": 300}
        });
    });
    bundle.set_args(&["sleep", "1000"]);
    let (c, out) = Container::create_with(&rt, &bundle, &id, &[]);
    out.expect_success();
    let pid = c.pid();
    let memory = cgroup_dir(pid, "memory").expect("memory cgroup");
    assert_eq!(
        memory,
        PathBuf::from(format!("/sys/fs/cgroup/memory/{id}/nested"))
    );
    assert_eq!(read(&memory, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(&memory, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(&memory, "memory.swappiness"), "10");
    let cpu = cgroup_dir(pid, "cpu").expect("cpu cgroup");
    assert_eq!(read(&cpu, "cpu.shares"), "512");
    assert_eq!(read(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cpu, "cpu.cfs_period_us"), "100000");
    let cpuset = cgroup_dir(pid, "cpuset").expect("cpuset cgroup");
    assert_eq!(read(&cpuset, "cpuset.cpus"), "0");
    let pids = cgroup_dir(pid, "pids").expect("pids cgroup");
    assert_eq!(read(&pids, "pids.max"), "32");
    let devices = cgroup_dir(pid, "devices").expect("devices cgroup");
    let list = read(&devices, "devices.list");
    assert!(!list.contains("a *:* rwm"), "deny-all not applied: {list}");
    assert!(list.contains("c 1:3 rwm"), "/dev/null not allowed: {list}");
    let blkio = cgroup_dir(pid, "blkio").expect("blkio cgroup");
    if blkio.join("blkio.weight").exists() {
        assert_eq!(read(&blkio, "blkio.weight"), "300");
    }
    // Every hierarchy holds the init, in the same cgroup.
    let procs = read(&memory, "cgroup.procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");

    rt.cmd(["delete", "--force", &id]).run().expect_success();
    assert!(!memory.exists(), "{} left after delete", memory.display());
    // The parent is the caller's (as with runc, delete removes only the container's own cgroup).
    remove_parent_cgroups(&id);
    assert_no_trace(&rt, &bundle, &id);
}

/// The process is in its cgroup before its first instruction, and with a cgroup namespace of
/// its own its cgroup is the namespace's root.
#[test]
fn cgroup_placed_before_the_process_runs() {
    require_root();
    for cgroupns in [false, true] {
        let (rt, mut bundle) = setup();
        if cgroupns {
            bundle.set_namespace("cgroup", None);
        } else {
            bundle.remove_namespace("cgroup");
        }
        let id = unique_id("cg-placed");
        bundle.config_mut(|c| {
            c["linux"]["cgroupsPath"] = json!(format!("skiff-test-{id}"));
        });
        bundle.sh("grep ':memory:' /proc/self/cgroup");
        let out = Container::run(&rt, &bundle, &[]);
        out.expect_success();
        let line = out.stdout.trim().to_string();
        let path = line.rsplit(':').next().unwrap_or_default();
        if cgroupns {
            assert_eq!(path, "/", "cgroupns={cgroupns}: {line}");
        } else {
            assert!(
                path.ends_with(&format!("/skiff-test-{id}")),
                "cgroupns={cgroupns}: {line}"
            );
        }
        assert!(cgroup_dirs_named(&id).is_empty(), "cgroup left after run");
    }
}

#[test]
fn cgroup_pause_resume_and_exec() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "cg-pause");
    let pid = c.pid();
    rt.cmd(["pause", c.id()]).run().expect_success();
    assert_eq!(c.status(), "paused");
    let freezer = cgroup_dir(pid, "freezer").expect("freezer cgroup");
    assert_eq!(read(&freezer, "freezer.state"), "FROZEN");
    rt.cmd(["pause", c.id()])
        .run()
        .expect_error_containing("paused");
    rt.cmd(["exec", c.id(), "true"])
        .run()
        .expect_error_containing("cannot exec in a paused container");
    rt.cmd(["resume", c.id()]).run().expect_success();
    assert_eq!(c.status(), "running");
    assert_eq!(read(&freezer, "freezer.state"), "THAWED");
    assert_ne!(process_state(pid), Some('D'));
    rt.cmd(["resume", c.id()])
        .run()
        .expect_error_containing("container not paused");
    // The exec'd process joins the container's cgroup.
    let out = rt
        .cmd([
            "exec",
            c.id(),
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup",
        ])
        .run();
    out.expect_success();
    let (mine, init) = out.stdout.split_once("---\n").expect("two halves");
    assert_eq!(mine, init, "{}", out.stdout);
    assert!(
        !mine.contains(".."),
        "exec'd process outside the cgroup: {mine}"
    );

    // delete --force of a paused container does not hang on the frozen init.
    rt.cmd(["pause", c.id()]).run().expect_success();
    rt.cmd(["delete", "--force", c.id()]).run().expect_success();
    assert_no_trace(&rt, &bundle, c.id());
}

#[test]
fn cgroup_ps_lists_every_process() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "cg-ps");
    let exec_pid = c.exec_detached(&["sleep", "1000"]);
    let out = rt.cmd(["ps", "--format", "json", c.id()]).run();
    out.expect_success();
    let pids: Vec<i32> = serde_json::from_str(out.stdout.trim()).expect("a JSON array of pids");
    assert!(
        pids.contains(&c.pid()) && pids.contains(&exec_pid),
        "{pids:?}"
    );
    let table = rt.cmd(["ps", c.id()]).run();
    table.expect_success();
    assert!(table.stdout.starts_with("     UID"), "{}", table.stdout);
    assert!(table.stdout.contains("sleep 1000"), "{}", table.stdout);
}

#[test]
fn cgroup_update_changes_limits_and_the_saved_config() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 134217728});
        c["linux"]["resources"]["pids"] = json!({"limit": 100});
    });
    let c = Container::running(&rt, &mut bundle, "cg-update");
    let pid = c.pid();
    rt.cmd(["update", "--memory", "64m", "--pids-limit", "20", c.id()])
        .run()
        .expect_success();
    let memory = cgroup_dir(pid, "memory").expect("memory cgroup");
    let pids = cgroup_dir(pid, "pids").expect("pids cgroup");
    assert_eq!(read(&memory, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(&pids, "pids.max"), "20");

    // containerd's form: a LinuxResources document on stdin.
    let file = rt.scratch().join("resources.json");
    fs::write(&file, json!({"cpu": {"shares": 256}}).to_string()).expect("write");
    rt.cmd(["update", "--resources=-", c.id()])
        .wrap([
            "/bin/sh",
            "-c",
            "exec \"$@\" <\"$0\"",
            file.to_str().expect("utf-8"),
        ])
        .run()
        .expect_success();
    let cpu = cgroup_dir(pid, "cpu").expect("cpu cgroup");
    assert_eq!(read(&cpu, "cpu.shares"), "256");
    // The other limits were kept.
    assert_eq!(read(&pids, "pids.max"), "20");

    // Bad input names the problem and changes nothing.
    fs::write(&file, "{\"memory\": {\"limit\": \"lots\"}}").expect("write");
    rt.cmd(["update", "-r"])
        .arg(&file)
        .arg(c.id())
        .run()
        .expect_error_containing("--resources");
    rt.cmd(["update", "--memory", "-5", c.id()])
        .run()
        .expect_error_containing("--memory");
    assert_eq!(read(&memory, "memory.limit_in_bytes"), "67108864");
}

#[test]
fn cgroup_events_stats() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
    });
    let c = Container::running(&rt, &mut bundle, "cg-events");
    let out = rt.cmd(["events", "--stats", c.id()]).run();
    out.expect_success();
    let ev: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON event");
    assert_eq!(ev["type"], "stats", "{ev}");
    assert_eq!(ev["id"], c.id(), "{ev}");
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    assert_eq!(ev["data"]["pids"]["current"], 1, "{ev}");
    assert_eq!(ev["data"]["pids"]["limit"], 50, "{ev}");
    assert!(
        ev["data"]["cpu"]["usage"]["total"].as_u64().is_some(),
        "{ev}"
    );
}

/// A container that exceeds its memory limit is OOM-killed, `events` reports it, and a
/// foreground `run` exits 137.
#[test]
fn cgroup_oom_is_visible() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_readonly_root(false).config_mut(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 16777216, "swap": 16777216});
    });
    bundle.sh("while [ ! -e /tmp/go ]; do sleep 0.05; done; x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived");
    let c = Container::create(&rt, &bundle, "cg-oom");
    c.start().expect_success();
    let events = rt
        .cmd(["events", "--interval", "1h", c.id()])
        .timeout(TIMEOUT)
        .spawn();
    // Let `events` arm its watcher before the container allocates.
    std::thread::sleep(Duration::from_millis(300));
    let root = bundle.rootfs();
    fs::write(root.join("tmp/go"), "").expect("go");
    c.wait_status("stopped", TIMEOUT);
    let out = events.wait();
    assert!(
        out.stdout.lines().any(|l| l.contains("\"type\":\"oom\"")),
        "no oom event: {out:?}"
    );
    assert!(!c.stdout().contains("survived"), "{}", c.stdout());
}

/// `kill --all` reaches every process of a container that shares the host's pid namespace.
#[test]
fn cgroup_kill_all_without_pid_namespace() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.remove_namespace("pid");
    bundle.sh("sleep 1000 & sleep 1000 & wait");
    let c = Container::create(&rt, &bundle, "cg-killall");
    c.start().expect_success();
    let mut pids = Vec::new();
    wait_until(TIMEOUT, "three processes in the container", || {
        let out = rt.cmd(["ps", "--format", "json", c.id()]).run();
        pids = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
        pids.len() == 3
    });
    rt.cmd(["kill", "--all", c.id(), "KILL"])
        .run()
        .expect_success();
    for pid in &pids {
        skiff_tests::host::wait_process_gone(*pid, TIMEOUT);
    }
    rt.cmd(["delete", c.id()]).run().expect_success();
    assert_no_trace(&rt, &bundle, c.id());
}

/// Device rules are enforced: with CAP_MKNOD outside a user namespace a container may create a
/// node for a host disk (the default rules allow mknod) but cannot open it.
#[test]
fn cgroup_device_rules_stop_host_devices() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_readonly_root(false).config_mut(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .expect("caps")
                .push(json!("CAP_MKNOD"));
        }
    });
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "mknod /tmp/disk b 8 0 && echo made; head -c1 /tmp/disk 2>&1; head -c1 /dev/zero | wc -c",
    );
    assert!(out.contains("made"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(
        out.trim_end().ends_with('1'),
        "/dev/zero must stay readable: {out}"
    );
}

#[test]
fn cgroup_bad_resources_are_named_and_leave_nothing() {
    require_root();
    for (resources, needle) in [
        (
            json!({"memory": {"swappiness": 500}}),
            "linux.resources.memory.swappiness",
        ),
        (
            json!({"unified": {"memory.max": "1G"}}),
            "linux.resources.unified",
        ),
        (json!({"cpu": {"cpus": "9999"}}), "linux.resources.cpu.cpus"),
    ] {
        let (rt, mut bundle) = setup();
        bundle.config_mut(|c| c["linux"]["resources"] = resources.clone());
        let id = unique_id("cg-bad");
        let (_c, out) = Container::create_with(&rt, &bundle, &id, &[]);
        out.expect_error_containing(needle);
        assert_no_trace(&rt, &bundle, &id);
    }
    let (rt, bundle) = setup();
    let id = unique_id("cg-systemd");
    let out = rt
        .cmd([
            "--systemd-cgroup",
            "create",
            "--bundle",
            bundle.path_str(),
            &id,
        ])
        .run();
    out.expect_error_containing("systemd");
    assert_no_trace(&rt, &bundle, &id);
}

/// The v2 code paths on a real cgroup2 hierarchy: placement, device filter (eBPF), freeze,
/// kill --all, removal.
#[test]
fn cgroup_v2_lifecycle() {
    require_root();
    let (rt, mut bundle) = setup();
    let wrapper = in_cgroup2();
    let id = unique_id("cg-v2");
    bundle.set_readonly_root(false).config_mut(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{id}/nested"));
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .expect("caps")
                .push(json!("CAP_MKNOD"));
        }
    });
    bundle.set_args(&["sleep", "1000"]);
    let _guard = V2Guard {
        rt: &rt,
        id: id.clone(),
        wrapper: wrapper.clone(),
    };
    let cmd = |args: &[&str]| rt.cmd(args.iter().copied()).wrap([wrapper.as_os_str()]);
    cmd(&["create", "--bundle", bundle.path_str(), &id])
        .cwd(bundle.path())
        .run()
        .expect_success();
    cmd(&["start", &id]).run().expect_success();
    let dir = PathBuf::from(format!("/sys/fs/cgroup/unified/{id}/nested"));
    let state: Value = serde_json::from_str(&cmd(&["state", &id]).run().stdout).expect("state");
    let pid = state["pid"].as_i64().expect("pid");
    let procs = read(&dir, "cgroup.procs");
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");

    let out = cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "mknod /tmp/disk b 8 0 && echo made; head -c1 /tmp/disk 2>&1; head -c1 /dev/zero | wc -c",
    ])
    .run();
    assert!(out.stdout.contains("made"), "{out:?}");
    assert!(out.stdout.contains("Operation not permitted"), "{out:?}");

    cmd(&["pause", &id]).run().expect_success();
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    let state: Value = serde_json::from_str(&cmd(&["state", &id]).run().stdout).expect("state");
    assert_eq!(state["status"], "paused");
    cmd(&["resume", &id]).run().expect_success();
    assert_eq!(read(&dir, "cgroup.freeze"), "0");

    cmd(&["kill", "--all", &id, "KILL"]).run().expect_success();
    skiff_tests::host::wait_process_gone(pid as i32, TIMEOUT);
    cmd(&["delete", &id]).run().expect_success();
    assert!(!dir.exists(), "{} left after delete", dir.display());
}

/// Remove the (empty) parent cgroup `/<id>` a test's `cgroupsPath` made in every hierarchy.
fn remove_parent_cgroups(id: &str) {
    for dir in cgroup_dirs_named(id) {
        let _ = fs::remove_dir(dir.join("nested"));
        let _ = fs::remove_dir(&dir);
    }
}

fn in_cgroup2() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/in-cgroup2
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("in-cgroup2"))
        .expect("target dir");
    assert!(bin.exists(), "{} not built", bin.display());
    bin
}

/// Force-deletes a container that lives in the cgroup2 view, and removes its parent cgroup.
struct V2Guard<'a> {
    rt: &'a Runtime,
    id: String,
    wrapper: PathBuf,
}

impl Drop for V2Guard<'_> {
    fn drop(&mut self) {
        let _ = self
            .rt
            .cmd(["delete", "--force", &self.id])
            .wrap([self.wrapper.as_os_str()])
            .run();
        remove_parent_cgroups(&self.id);
    }
}

/// `delete` of a stopped container whose cgroup is already gone (removed by hand, or by a
/// `delete` that failed half-way) still removes the container.
#[test]
fn cgroup_delete_copes_with_a_removed_cgroup() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "cg-gone");
    let pid = c.pid();
    let dirs: Vec<PathBuf> = ["memory", "pids", "cpu", "freezer", "devices", ""]
        .iter()
        .filter_map(|ctl| cgroup_dir(pid, ctl))
        .collect();
    c.kill("KILL").expect_success();
    c.wait_status("stopped", TIMEOUT);
    skiff_tests::host::wait_process_gone(pid, TIMEOUT);
    for d in cgroup_dirs_named(c.id()) {
        let _ = fs::remove_dir(&d);
    }
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
    rt.cmd(["delete", c.id()]).run().expect_success();
    assert_no_trace(&rt, &bundle, c.id());
}

/// Inside the container /sys/fs/cgroup shows the container's own cgroup, with or without a
/// cgroup namespace: without one, each hierarchy's container directory is bound there (as runc
/// does) rather than the host's hierarchy from its root.
#[test]
fn cgroup_mount_shows_the_container_cgroup() {
    require_root();
    for cgroupns in [true, false] {
        let (rt, mut bundle) = setup();
        if cgroupns {
            bundle.set_namespace("cgroup", None);
        } else {
            bundle.remove_namespace("cgroup");
        }
        bundle.config_mut(|c| {
            c["linux"]["resources"]["memory"] = json!({"limit": 50331648});
            c["linux"]["resources"]["pids"] = json!({"limit": 77});
        });
        let out = Container::run_sh(
            &rt,
            &mut bundle,
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; \
             grep -c . /sys/fs/cgroup/memory/cgroup.procs",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, ["50331648", "77", "1"], "cgroupns={cgroupns}: {out}");
    }
}

/// An update that the kernel refuses half-way leaves the previous limits in force (as runc).
#[test]
fn cgroup_failed_update_restores_the_previous_limits() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 134217728});
    });
    let c = Container::running(&rt, &mut bundle, "cg-undo");
    let memory = cgroup_dir(c.pid(), "memory").expect("memory cgroup");
    let file = rt.scratch().join("resources.json");
    // The memory limit is written first; the realtime runtime (the whole period, more than the
    // parent grants) is then refused by the kernel.
    fs::write(
        &file,
        json!({"memory": {"limit": 209715200},
               "cpu": {"realtimeRuntime": 1000000, "realtimePeriod": 1000000}})
        .to_string(),
    )
    .expect("write");
    rt.cmd(["update", "-r"])
        .arg(&file)
        .arg(c.id())
        .run()
        .expect_failure();
    assert_eq!(read(&memory, "memory.limit_in_bytes"), "134217728");
    let saved: Value = serde_json::from_str(
        &fs::read_to_string(rt.root().join(c.id()).join("state.json")).expect("state.json"),
    )
    .expect("json");
    assert_eq!(
        saved["config"]["linux"]["resources"]["memory"]["limit"], 134217728,
        "{}",
        saved["config"]["linux"]["resources"]
    );
}
