//! Mounts and the root filesystem: the standard mounts, bind mounts and their options, a
//! read-only root, root propagation, `/dev` contents, `linux.devices`, `--no-pivot`, sysctls.

use std::fs;

use serde_json::json;
use skiff_tests::host::{MountInfo, parse_mountinfo};
use skiff_tests::{Bundle, Container, Runtime, require_root, setup};

/// Runs `cat /proc/self/mountinfo` in a container from `bundle` and parses it.
fn container_mountinfo(rt: &Runtime, bundle: &mut Bundle) -> Vec<MountInfo> {
    parse_mountinfo(&Container::run_sh(rt, bundle, "cat /proc/self/mountinfo"))
}

/// The last (topmost) mount at `mount_point`.
fn mount_at<'m>(mounts: &'m [MountInfo], mount_point: &str) -> &'m MountInfo {
    mounts
        .iter()
        .rev()
        .find(|m| m.mount_point == mount_point)
        .unwrap_or_else(|| panic!("nothing mounted at {mount_point}: {mounts:#?}"))
}

#[test]
fn standard_mounts_are_present() {
    require_root();
    let (rt, mut bundle) = setup();
    let mounts = container_mountinfo(&rt, &mut bundle);
    for (mount_point, fs_type) in [
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        let mount = mount_at(&mounts, mount_point);
        assert_eq!(mount.fs_type, fs_type, "{mount:?}");
    }
    // The container sees its rootfs as "/", not the host's root.
    let root = mount_at(&mounts, "/");
    assert_ne!(root.fs_type, "rootfs", "{root:?}");
}

#[test]
fn read_only_bind_mount_is_read_only() {
    require_root();
    let (rt, mut bundle) = setup();
    let data = rt.scratch_dir("data");
    fs::write(data.join("hello.txt"), "from-host\n").expect("writing the bind source");
    bundle.bind_dir(&data, "/data", &["ro"]);
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "cat /data/hello.txt; \
         if touch /data/new 2>/dev/null; then echo WRITABLE; else echo READONLY; fi; \
         cat /proc/self/mountinfo",
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("from-host"), "{out}");
    assert_eq!(lines.next(), Some("READONLY"), "{out}");
    let mounts = parse_mountinfo(&lines.collect::<Vec<_>>().join("\n"));
    assert!(mount_at(&mounts, "/data").has_option("ro"));
    assert!(
        !data.join("new").exists(),
        "the container wrote to a ro bind mount"
    );
}

#[test]
fn read_write_bind_mount_is_writable_and_shared_with_the_host() {
    require_root();
    let (rt, mut bundle) = setup();
    let data = rt.scratch_dir("data");
    bundle.bind_dir(&data, "/data", &["rw"]);
    Container::run_sh(&rt, &mut bundle, "echo from-container > /data/out.txt");
    assert_eq!(
        fs::read_to_string(data.join("out.txt")).expect("the container's file is on the host"),
        "from-container\n"
    );
}

#[test]
fn nosuid_nodev_noexec_show_in_mountinfo() {
    require_root();
    let (rt, mut bundle) = setup();
    // /scratch does not exist in the rootfs, and the root is read-only in the default spec:
    // the runtime must create the mount point before it makes the root read-only.
    bundle.add_mount(
        "/scratch",
        "tmpfs",
        "tmpfs",
        &["nosuid", "nodev", "noexec", "mode=755", "size=1m"],
    );
    let mounts = container_mountinfo(&rt, &mut bundle);
    let scratch = mount_at(&mounts, "/scratch");
    assert_eq!(scratch.fs_type, "tmpfs");
    for opt in ["nosuid", "nodev", "noexec"] {
        assert!(scratch.has_option(opt), "{opt} missing: {scratch:?}");
    }
}

#[test]
fn readonly_root_makes_root_read_only() {
    require_root();
    let (rt, mut bundle) = setup();
    let probe = "if touch /probe 2>/dev/null; then echo WRITABLE; else echo READONLY; fi";

    bundle.set_readonly_root(true);
    let out = Container::run_sh(&rt, &mut bundle, probe);
    assert_eq!(out.trim(), "READONLY");
    assert!(!bundle.rootfs().join("probe").exists());

    bundle.set_readonly_root(false);
    let out = Container::run_sh(&rt, &mut bundle, probe);
    assert_eq!(out.trim(), "WRITABLE");
    assert!(bundle.rootfs().join("probe").exists());
}

#[test]
fn rootfs_propagation_is_applied() {
    require_root();
    let (rt, mut bundle) = setup();

    bundle.config_mut(|c| c["linux"]["rootfsPropagation"] = json!("shared"));
    let mounts = container_mountinfo(&rt, &mut bundle);
    let root = mount_at(&mounts, "/");
    assert!(
        root.optional.iter().any(|o| o.starts_with("shared:")),
        "rootfsPropagation=shared, but / is not shared: {root:?}"
    );

    bundle.config_mut(|c| c["linux"]["rootfsPropagation"] = json!("private"));
    let mounts = container_mountinfo(&rt, &mut bundle);
    let root = mount_at(&mounts, "/");
    assert!(
        root.optional.is_empty(),
        "rootfsPropagation=private, but / has propagation: {root:?}"
    );
}

#[test]
fn default_devices_and_symlinks_exist() {
    require_root();
    let (rt, mut bundle) = setup();
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "stat -c '%n|%F|%t|%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; \
         for l in /dev/ptmx /dev/fd /dev/stdin /dev/stdout /dev/stderr; do \
           echo \"$l|$(readlink $l)\"; done",
    );
    let mut found = std::collections::BTreeMap::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        found.insert(fields[0].to_string(), fields[1..].join("|"));
    }
    // stat prints the major and minor numbers in hex.
    for (dev, major, minor) in [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ] {
        let expected = format!("character special file|{major:x}|{minor:x}");
        assert_eq!(found.get(dev), Some(&expected), "{dev}\n{out}");
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        assert_eq!(found.get(link).map(String::as_str), Some(target), "{out}");
    }
    let ptmx = found
        .get("/dev/ptmx")
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        ptmx == "pts/ptmx" || ptmx == "/dev/pts/ptmx",
        "/dev/ptmx should link to the container's devpts: {out}"
    );
}

#[test]
fn linux_devices_entry_is_created() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["linux"]["devices"] = json!([{
            "path": "/dev/skiff-null",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o640,
            "uid": 0,
            "gid": 0,
        }]);
    });
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "stat -c '%F|%t|%T|%a|%u|%g' /dev/skiff-null",
    );
    assert_eq!(out.trim(), "character special file|1|3|640|0|0");
}

#[test]
fn no_pivot_runs_inside_the_rootfs() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.sh("grep -c '^nobody:x:65534:' /etc/passwd; \
         if [ -e /usr ]; then echo host-usr-visible; else echo no-usr; fi; \
         cat /proc/self/mountinfo > /dev/null && echo proc-ok");
    let out = Container::run(&rt, &bundle, &["--no-pivot"]);
    out.expect_success();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["1", "no-usr", "proc-ok"],
        "{out}"
    );
}

#[test]
fn sysctl_is_set_in_the_new_network_namespace() {
    require_root();
    let (rt, mut bundle) = setup();
    let host_before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host sysctl");
    bundle
        .set_namespace("network", None)
        .config_mut(|c| c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" }));
    let out = Container::run_sh(&rt, &mut bundle, "cat /proc/sys/net/ipv4/ip_forward");
    assert_eq!(out.trim(), "1");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host sysctl"),
        host_before,
        "the sysctl leaked to the host's network namespace"
    );
}
