//! Tests against the real cgroupfs (root) and against a fake v2 tree in a temp dir.
//!
//! Every cgroup is named `skiff-test-<pid>-<n>` so parallel tests (and parallel test runs)
//! never share one, and a [`Guard`] kills its processes and removes the cgroups even when an
//! assertion panics.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use oci_spec::runtime::LinuxResources;

use super::*;

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn unique() -> String {
    format!(
        "skiff-test-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (cgroupfs writes); run the suite as root"
    );
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("test resources parse")
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// Owns the test's cgroup location and child processes: kills and reaps the children (after
/// thawing, since frozen v1 tasks cannot die), then removes every directory.
struct Guard {
    loc: Location,
    children: Vec<Child>,
}

impl Guard {
    fn new(loc: Location) -> Guard {
        Guard {
            loc,
            children: Vec::new(),
        }
    }

    fn manager(&self) -> Manager {
        Manager::open(&self.loc).expect("open the test cgroup")
    }

    /// Spawns `sh -c script` with a piped stdin (the script can `read` to wait for the test)
    /// and moves it into the cgroup.
    fn spawn_in(&mut self, script: &str) -> (i32, usize) {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let pid = i32::try_from(child.id()).expect("pid fits i32");
        self.children.push(child);
        self.manager().add_pid(pid).expect("add_pid");
        (pid, self.children.len() - 1)
    }

    fn poke(&mut self, idx: usize) {
        let stdin = self.children[idx].stdin.as_mut().expect("piped stdin");
        stdin.write_all(b"go\n").expect("write to child");
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(m) = Manager::open(&self.loc) {
            let _ = m.thaw();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.loc.dirs() {
            for _ in 0..50 {
                if fsutil::remove_tree(&d).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn host_location(name: &str) -> Location {
    resolve(Some(&format!("/{name}")), name, false).expect("resolve on this host")
}

fn is_v1_host() -> bool {
    host_location("probe").mode == Mode::V1
}

fn nothing_left(loc: &Location) {
    for d in loc.dirs() {
        assert!(!d.exists(), "{} was left behind", d.display());
    }
}

fn proc_state(pid: i32) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

// ---- cgroup v1 / hybrid (these machines) ----

#[test]
fn v1_create_applies_resources_and_destroy_removes_everything() {
    require_root();
    if !is_v1_host() {
        return; // covered by the v2 tests on a v2 host
    }
    let name = unique();
    let g = Guard::new(host_location(&name));
    let r = res(r#"{
        "memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 10},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
        "devices": [{"allow": false, "access": "rwm"},
                    {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]
    }"#);
    let m = Manager::create(&g.loc, Some(&r)).expect("create");
    let l = &g.loc;
    let mem = l.v1_dir("memory").unwrap();
    assert_eq!(read(mem, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(mem, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(mem, "memory.swappiness"), "10");
    let cpu = l.v1_dir("cpu").unwrap();
    assert_eq!(read(cpu, "cpu.shares"), "512");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
    let cpuset = l.v1_dir("cpuset").unwrap();
    assert_eq!(read(cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(cpuset, "cpuset.mems"), "0");
    assert_eq!(read(l.v1_dir("pids").unwrap(), "pids.max"), "50");
    let devices = read(l.v1_dir("devices").unwrap(), "devices.list");
    let lines: Vec<&str> = devices.lines().collect();
    assert!(!lines.contains(&"a *:* rwm"), "{devices}");
    assert!(lines.contains(&"c 10:229 rw"), "{devices}");
    assert!(
        lines.contains(&"c 1:3 rwm"),
        "runc's default /dev/null rule: {devices}"
    );
    assert!(lines.contains(&"c 136:* rwm"), "{devices}");
    for d in l.dirs() {
        assert!(d.is_dir(), "{}", d.display());
    }
    m.destroy().expect("destroy");
    nothing_left(&g.loc);
}

#[test]
fn v1_nested_path_takes_cpuset_from_its_ancestors() {
    require_root();
    if !is_v1_host() {
        return;
    }
    let top = unique();
    let _outer = Guard::new(host_location(&top));
    let mut g = Guard::new(host_location(&format!("{top}/a/b")));
    let m = Manager::create(&g.loc, None).expect("create");
    let leaf = g.loc.v1_dir("cpuset").unwrap().to_path_buf();
    let root = leaf.ancestors().nth(3).unwrap();
    assert_eq!(read(&leaf, "cpuset.cpus"), read(root, "cpuset.cpus"));
    assert_eq!(read(&leaf, "cpuset.mems"), read(root, "cpuset.mems"));
    // Without cpus/mems the kernel would refuse the task with ENOSPC.
    let (pid, _) = g.spawn_in("exec sleep 1000");
    assert_eq!(m.pids().expect("pids"), vec![pid]);
}

#[test]
fn v1_memory_and_swap_ordering_on_update() {
    require_root();
    if !is_v1_host() {
        return;
    }
    let g = Guard::new(host_location(&unique()));
    let mem_dir = g.loc.v1_dir("memory").unwrap().to_path_buf();
    if !mem_dir
        .parent()
        .unwrap()
        .join("memory.memsw.limit_in_bytes")
        .exists()
    {
        // No swap accounting in this kernel: ordering cannot be observed.
        return;
    }
    let m = Manager::create(
        &g.loc,
        Some(&res(r#"{"memory":{"limit":33554432,"swap":67108864}}"#)),
    )
    .expect("create");
    assert_eq!(read(&mem_dir, "memory.memsw.limit_in_bytes"), "67108864");
    // Raising memory above the current memsw needs swap first.
    m.update(&res(r#"{"memory":{"limit":134217728,"swap":268435456}}"#))
        .expect("raise");
    assert_eq!(read(&mem_dir, "memory.limit_in_bytes"), "134217728");
    assert_eq!(read(&mem_dir, "memory.memsw.limit_in_bytes"), "268435456");
    // Lowering swap below the current memory limit needs memory first.
    m.update(&res(r#"{"memory":{"limit":16777216,"swap":33554432}}"#))
        .expect("lower");
    assert_eq!(read(&mem_dir, "memory.limit_in_bytes"), "16777216");
    assert_eq!(read(&mem_dir, "memory.memsw.limit_in_bytes"), "33554432");
    // -1 without swap: both unlimited.
    m.update(&res(r#"{"memory":{"limit":-1}}"#))
        .expect("unlimit");
    let max = read(&mem_dir, "memory.limit_in_bytes");
    assert_eq!(read(&mem_dir, "memory.memsw.limit_in_bytes"), max);
    // Invalid values are refused before anything is written.
    let e = m.update(&res(r#"{"memory":{"limit":-5}}"#)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("linux.resources.memory.limit: cannot set -5"),
        "{e}"
    );
    assert_eq!(read(&mem_dir, "memory.limit_in_bytes"), max);
    m.destroy().expect("destroy");
}

#[test]
fn v1_failures_leave_nothing_behind() {
    require_root();
    if !is_v1_host() {
        return;
    }
    // Rejected by validation (nothing created at all).
    for json in [
        r#"{"unified":{"memory.max":"100"}}"#,
        r#"{"memory":{"limit":-3}}"#,
        r#"{"network":{"classID":1048577}}"#,
    ] {
        let loc = host_location(&unique());
        let _g = Guard::new(loc.clone());
        let e = Manager::create(&loc, Some(&res(json))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("linux.resources."), "{msg}");
        nothing_left(&loc);
    }
    // Rejected by the kernel half-way (directories exist by then): rolled back. A nested
    // path checks that parents made by `create` go too.
    let top = unique();
    let loc = host_location(&format!("{top}/inner"));
    let _g = Guard::new(host_location(&top));
    let e = Manager::create(&loc, Some(&res(r#"{"cpu":{"cpus":"999"}}"#))).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("linux.resources.cpu.cpus: cannot set 999"),
        "{e}"
    );
    nothing_left(&host_location(&top));
}

#[test]
fn v1_blkio_weight_where_the_kernel_has_it() {
    require_root();
    if !is_v1_host() {
        return;
    }
    let loc = host_location(&unique());
    let g = Guard::new(loc.clone());
    let Some(blkio) = loc.v1_dir("blkio") else {
        return;
    };
    let r = res(r#"{"blockIO":{"weight":300}}"#);
    match Manager::create(&loc, Some(&r)) {
        Ok(m) => {
            // CFQ's file, or BFQ's (which exists only in non-root cgroups).
            let file = if blkio.join("blkio.weight").exists() {
                "blkio.weight"
            } else {
                "blkio.bfq.weight"
            };
            assert!(read(blkio, file).contains("300"), "{}", read(blkio, file));
            m.destroy().expect("destroy");
        }
        Err(e) => {
            // No CFQ/BFQ on this kernel: runc fails the same way, and nothing is left.
            assert!(
                e.to_string().starts_with("linux.resources.blockIO.weight"),
                "{e}"
            );
            nothing_left(&g.loc);
        }
    }
}

#[test]
fn v1_processes_pids_freeze_thaw_kill_all() {
    require_root();
    if !is_v1_host() {
        return;
    }
    let mut g = Guard::new(host_location(&unique()));
    let m = Manager::create(&g.loc, None).expect("create");
    let (p1, _) = g.spawn_in("exec sleep 1000");
    let (p2, _) = g.spawn_in("exec sleep 1000");
    let mut want = vec![p1, p2];
    want.sort_unstable();
    assert_eq!(m.pids().expect("pids"), want);
    // In every hierarchy, including the hybrid cgroup2 one.
    let own = fs::read_to_string(format!("/proc/{p1}/cgroup")).unwrap();
    let name = g
        .loc
        .v1_dir("memory")
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(own.contains(&format!("memory:/{name}\n")), "{own}");
    assert!(own.contains(&format!("0::/{name}\n")), "{own}");

    m.freeze().expect("freeze");
    assert!(m.is_frozen().expect("state"));
    assert_eq!(
        read(g.loc.v1_dir("freezer").unwrap(), "freezer.state"),
        "FROZEN"
    );
    m.thaw().expect("thaw");
    assert!(!m.is_frozen().expect("state"));
    // Thawed: the sleeper goes back to an ordinary sleep.
    let mut state = proc_state(p1);
    for _ in 0..100 {
        if state.starts_with('S') {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        state = proc_state(p1);
    }
    assert!(state.starts_with('S'), "{state}");

    // SIGTERM goes through freeze / signal each / thaw.
    m.kill_all(Signal::SIGTERM).expect("kill_all TERM");
    for c in &mut g.children {
        let st = c.wait().expect("wait");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(15));
    }
    g.children.clear();
    assert!(m.pids().expect("pids").is_empty());
    assert!(!m.is_frozen().expect("state"));

    // SIGKILL goes through cgroup.kill where there is a cgroup2 directory.
    let (_p3, _) = g.spawn_in("exec sleep 1000");
    m.kill_all(Signal::SIGKILL).expect("kill_all KILL");
    let st = g.children[0].wait().expect("wait");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    g.children.clear();
    m.destroy().expect("destroy");
    nothing_left(&g.loc);
}

#[test]
fn v1_stats_and_check_before_update() {
    require_root();
    if !is_v1_host() {
        return;
    }
    let mut g = Guard::new(host_location(&unique()));
    let m = Manager::create(&g.loc, Some(&res(r#"{"pids":{"limit":20}}"#))).expect("create");
    // The shell waits until it is in the cgroup, then holds ~4 MB in a variable.
    let (_pid, idx) = g.spawn_in(
        "read go; v=$(head -c 4000000 /dev/zero | tr '\\0' a); echo ready > /dev/null; read wait",
    );
    g.poke(idx);
    let mut s = m.stats().expect("stats");
    for _ in 0..200 {
        if s.memory.usage.usage > 4_000_000 && s.pids.current == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        s = m.stats().expect("stats");
    }
    assert!(s.memory.usage.usage > 4_000_000, "{:?}", s.memory.usage);
    assert!(!s.memory.raw.is_empty());
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 20);
    assert!(s.cpu.usage.total > 0);
    assert!(!s.cpuset.cpus.is_empty());
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(json["cpu"]["usage"]["total"].as_u64().unwrap() > 0);

    let e = m
        .update(&res(
            r#"{"memory":{"limit":1048576,"checkBeforeUpdate":true}}"#,
        ))
        .unwrap_err();
    assert!(matches!(e, CgroupError::CheckBeforeUpdate { .. }), "{e}");
    assert!(e.to_string().contains("current usage"), "{e}");
}

#[test]
fn v1_oom_watcher_reports_the_oom() {
    require_root();
    if !is_v1_host() {
        return;
    }
    let mut g = Guard::new(host_location(&unique()));
    let m =
        Manager::create(&g.loc, Some(&res(r#"{"memory":{"limit":16777216}}"#))).expect("create");
    let mut w = m.oom_watcher().expect("watcher");
    assert_eq!(
        w.wait_event(Some(Duration::from_millis(10))).expect("wait"),
        None
    );
    let (_pid, idx) = g.spawn_in("read go; x=a; while :; do x=$x$x; done");
    g.poke(idx);
    let ev = w.wait_event(Some(Duration::from_secs(20))).expect("wait");
    assert_eq!(ev, Some(OomEvent::Oom));
    let st = g.children[idx].wait().expect("wait");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    g.children.clear();
    assert!(m.oom_kill_count().expect("count") >= 1);
    let loc = g.loc.clone();
    m.destroy().expect("destroy");
    // Removing the cgroup wakes the eventfd; the watcher tells it apart from an OOM.
    let mut saw_gone = false;
    for _ in 0..10 {
        match w
            .wait_event(Some(Duration::from_millis(200)))
            .expect("wait")
        {
            Some(OomEvent::Gone) => {
                saw_gone = true;
                break;
            }
            Some(OomEvent::Oom) | None => {}
        }
    }
    assert!(saw_gone);
    nothing_left(&loc);
}

#[test]
fn hybrid_hugetlb_limits_go_to_the_cgroup2_mount() {
    require_root();
    let loc = host_location(&unique());
    let Some(u) = loc.unified.clone() else { return };
    if loc.mode != Mode::V1 || loc.v1.contains_key("hugetlb") {
        return;
    }
    let ctl = fs::read_to_string(u.mount.join("cgroup.controllers")).unwrap_or_default();
    if !ctl.split_whitespace().any(|c| c == "hugetlb")
        || !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
    {
        return;
    }
    let g = Guard::new(loc.clone());
    let m = Manager::create(
        &loc,
        Some(&res(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#,
        )),
    )
    .expect("create");
    assert_eq!(read(&u.dir(), "hugetlb.2MB.max"), "4194304");
    let s = m.stats().expect("stats");
    assert!(s.hugetlb.contains_key("2MB"), "{:?}", s.hugetlb);
    m.destroy().expect("destroy");
    nothing_left(&g.loc);
}

// ---- cgroup v2, on the real cgroup2 mount (the hybrid `unified` one here) ----

/// The cgroup2 mount of this host, if any.
fn cgroup2_mount() -> Option<PathBuf> {
    let mi = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        right.starts_with("cgroup2 ").then(|| PathBuf::from(point))
    })
}

#[test]
fn v2_lifecycle_on_the_real_cgroup2_mount() {
    require_root();
    let Some(mount) = cgroup2_mount() else { return };
    let name = unique();
    let loc = Location::v2(&mount, format!("{name}/ctr"));
    // Declared first, dropped last: the parent goes after the container's cgroup.
    let _outer = Guard::new(Location::v2(&mount, &name));
    let mut g = Guard::new(loc.clone());

    // Unknown keys and unavailable controllers are refused before anything is created.
    let ctl = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let e = Manager::create(&loc, Some(&res(r#"{"unified":{"foo.bar":"1"}}"#))).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("linux.resources.unified: \"foo.bar\" is not a cgroup v2 file"),
        "{e}"
    );
    if !ctl.contains("memory") {
        let e = Manager::create(&loc, Some(&res(r#"{"memory":{"limit":1000000}}"#))).unwrap_err();
        assert!(
            matches!(
                e,
                CgroupError::ControllerMissing {
                    controller: "memory",
                    ..
                }
            ),
            "{e}"
        );
    }
    assert!(!mount.join(&name).exists());

    let huge =
        ctl.contains("hugetlb") && Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    let json = if huge {
        r#"{"unified":{"cgroup.max.descendants":"3"},"hugepageLimits":[{"pageSize":"2MB","limit":2097152}]}"#
    } else {
        r#"{"unified":{"cgroup.max.descendants":"3"}}"#
    };
    let m = Manager::create(&loc, Some(&res(json))).expect("create");
    let dir = loc.unified.as_ref().unwrap().dir();
    assert_eq!(read(&dir, "cgroup.max.descendants"), "3");
    if huge {
        assert_eq!(read(&dir, "hugetlb.2MB.max"), "2097152");
    }
    // A key that names no file fails after creation, naming the key.
    let e = m
        .update(&res(r#"{"unified":{"cgroup.nosuchfile":"1"}}"#))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("\"cgroup.nosuchfile\" is not a cgroup v2 file"),
        "{e}"
    );

    let (p1, _) = g.spawn_in("exec sleep 1000");
    assert_eq!(m.pids().expect("pids"), vec![p1]);
    assert_eq!(
        fs::read_to_string(format!("/proc/{p1}/cgroup"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("0::"))
            .unwrap(),
        format!("0::/{name}/ctr")
    );

    m.freeze().expect("freeze");
    assert!(m.is_frozen().expect("state"));
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    m.thaw().expect("thaw");
    assert!(!m.is_frozen().expect("state"));
    assert!(read(&dir, "cgroup.events").contains("frozen 0"));

    let s = m.stats().expect("stats");
    if huge {
        assert!(s.hugetlb.contains_key("2MB"));
    }
    let _ = serde_json::to_string(&s).expect("serialise");

    m.kill_all(Signal::SIGKILL).expect("kill_all");
    let st = g.children[0].wait().expect("wait");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    g.children.clear();
    for _ in 0..100 {
        if m.pids().expect("pids").is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    m.destroy().expect("destroy");
    assert!(!dir.exists());
    // The parent made for the nested path is the caller's (runc leaves it too).
    assert!(mount.join(&name).exists());
}

// ---- cgroup v2 through a fake cgroupfs in a temp dir (controllers bound to v1 here) ----

fn fake_v2() -> (tempfile::TempDir, Location) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ctr");
    fs::create_dir(&dir).unwrap();
    let files: BTreeMap<&str, &str> = [
        ("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n"),
        ("cgroup.procs", ""),
        ("cgroup.freeze", "0\n"),
        ("memory.max", "max\n"),
        ("memory.low", "0\n"),
        ("memory.swap.max", "max\n"),
        ("memory.current", "5000000\n"),
        ("memory.swap.current", "0\n"),
        ("memory.high", "max\n"),
        ("memory.stat", "anon 4000000\nfile 1000\n"),
        ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 0\n"),
        ("cpu.weight", "100\n"),
        ("cpu.max", "max 100000\n"),
        ("cpu.idle", "0\n"),
        ("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\nnr_throttled 1\nthrottled_usec 2\n"),
        ("cpuset.cpus", ""),
        ("cpuset.mems", ""),
        ("pids.max", "max\n"),
        ("pids.current", "1\n"),
        ("io.weight", "default 100\n"),
        ("io.max", ""),
        ("io.stat", "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"),
        ("hugetlb.2MB.max", "max\n"),
        ("hugetlb.2MB.current", "0\n"),
        ("hugetlb.2MB.events", "max 0\n"),
    ]
    .into_iter()
    .collect();
    for (f, c) in files {
        fs::write(dir.join(f), c).unwrap();
    }
    let loc = Location::v2(tmp.path(), "ctr");
    (tmp, loc)
}

#[test]
fn v2_fake_update_writes_the_v2_files() {
    let (_tmp, loc) = fake_v2();
    let dir = loc.unified.as_ref().unwrap().dir();
    let m = Manager::open(&loc).expect("open");
    m.update(&res(r#"{
        "memory": {"limit": 104857600, "swap": 314572800, "reservation": 52428800, "swappiness": 5},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "idle": 1, "cpus": "0-1", "mems": "0"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 42},
        "unified": {"memory.high": "90000000"}
    }"#))
    .expect("update");
    let f = |n: &str| read(&dir, n);
    assert_eq!(f("memory.max"), "104857600");
    assert_eq!(f("memory.swap.max"), "209715200"); // memory+swap - memory
    assert_eq!(f("memory.low"), "52428800");
    assert_eq!(f("cpu.weight"), "39");
    assert_eq!(f("cpu.max"), "50000 100000");
    assert_eq!(f("cpu.idle"), "1");
    assert_eq!(f("cpuset.cpus"), "0-1");
    assert_eq!(f("pids.max"), "max");
    assert_eq!(f("io.weight"), blkio_weight_to_io_weight(500).to_string());
    assert_eq!(f("io.max"), "8:0 rbps=1048576");
    assert_eq!(f("hugetlb.2MB.max"), "4194304");
    assert_eq!(f("memory.high"), "90000000");

    // A period alone keeps the quota; memory == swap disables swap.
    m.update(&res(
        r#"{"cpu":{"period":200000},"memory":{"limit":1000000,"swap":1000000}}"#,
    ))
    .expect("update 2");
    assert_eq!(f("cpu.max"), "50000 200000");
    assert_eq!(f("memory.swap.max"), "0");

    // checkBeforeUpdate against memory.current (5000000).
    let e = m
        .update(&res(
            r#"{"memory":{"limit":4000000,"checkBeforeUpdate":true}}"#,
        ))
        .unwrap_err();
    assert!(e.to_string().contains("current usage is 5000000"), "{e}");

    // Unknown file: named; unavailable controller: refused before writing.
    let e = m
        .update(&res(r#"{"unified":{"memory.oom.group":"1"}}"#))
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("linux.resources.unified: \"memory.oom.group\" is not a cgroup v2 file"),
        "{e}"
    );
    let e = m
        .update(&res(r#"{"unified":{"misc.max":"1"}}"#))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("controller \"misc\" is not available"),
        "{e}"
    );
    let e = m
        .update(&res(r#"{"cpu":{"realtimeRuntime":100}}"#))
        .unwrap_err();
    assert!(matches!(e, CgroupError::Unsupported { .. }));
}

#[test]
fn v2_fake_stats_and_oom_watcher() {
    let (_tmp, loc) = fake_v2();
    let dir = loc.unified.as_ref().unwrap().dir();
    let m = Manager::open(&loc).expect("open");
    let s = m.stats().expect("stats");
    assert_eq!(s.cpu.usage.total, 10_000);
    assert_eq!(s.cpu.usage.user, 6_000);
    assert_eq!(s.cpu.throttling.throttled_time, 2_000);
    assert_eq!(s.memory.usage.usage, 5_000_000);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.failcnt, 2);
    assert_eq!(s.memory.cache, 1000);
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.blkio.io_service_bytes_recursive.len(), 3);
    assert_eq!(s.hugetlb["2MB"].failcnt, 0);

    let mut w = m.oom_watcher().expect("watcher");
    assert_eq!(w.wait_event(Some(Duration::from_millis(20))).unwrap(), None);
    // A change that is not an OOM kill wakes the watcher but reports nothing.
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 1\nmax 2\noom 1\noom_kill 0\n",
    )
    .unwrap();
    assert_eq!(w.wait_event(Some(Duration::from_millis(50))).unwrap(), None);
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 1\nmax 3\noom 2\noom_kill 1\n",
    )
    .unwrap();
    assert_eq!(
        w.wait_event(Some(Duration::from_secs(5))).unwrap(),
        Some(OomEvent::Oom)
    );
    assert_eq!(m.oom_kill_count().unwrap(), 1);
    fs::remove_file(dir.join("memory.events")).unwrap();
    assert_eq!(
        w.wait_event(Some(Duration::from_secs(5))).unwrap(),
        Some(OomEvent::Gone)
    );
}

#[test]
fn v2_fake_create_failure_rolls_back() {
    // A plain directory has no memory.max: the write fails after mkdir, and the directories
    // `create` made (two levels here) are removed again.
    let (tmp, _) = fake_v2();
    fs::write(tmp.path().join("cgroup.subtree_control"), "").unwrap();
    fs::write(tmp.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
    let loc = Location::v2(tmp.path(), "a/b");
    let e = Manager::create(&loc, Some(&res(r#"{"memory":{"limit":1000000}}"#))).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("linux.resources.memory.limit: cannot set 1000000"),
        "{e}"
    );
    assert!(!tmp.path().join("a").exists());
    // Controllers were enabled in the parent, as runc's CreateCgroupPath does.
    assert!(read(tmp.path(), "cgroup.subtree_control").contains('+'));
}
