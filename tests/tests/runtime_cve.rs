//! CVE regressions: each test performs the attack that broke a runtime before and shows that it
//! fails against this one (`../shared/reference/oci-runtimes.md` §3). Every failed `create` must
//! also leave nothing behind.

use std::fs;
use std::os::unix::fs::symlink;

use serde_json::json;
use skiff_tests::container::assert_no_trace;
use skiff_tests::{Bundle, Container, Runtime, require_root, setup, unique_id};

/// `create` must fail with `needle` in its error and leave no trace.
#[track_caller]
fn create_fails(rt: &Runtime, bundle: &Bundle, needle: &str) {
    let id = unique_id("cve");
    let _guard = Container::guard(rt, &id);
    let out = rt
        .cmd(["create", "--bundle", bundle.path_str(), &id])
        .cwd(bundle.path())
        .run();
    out.expect_error_containing(needle);
    assert_no_trace(rt, bundle, &id);
}

/// Drop the spec's /dev mounts, so whatever the image has at /dev is where the runtime works.
fn without_dev_mounts(bundle: &mut Bundle) {
    bundle.config_mut(|c| {
        c["mounts"].as_array_mut().expect("mounts").retain(|m| {
            !m["destination"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/dev")
        });
    });
}

/// CVE-2024-21626: a descriptor the runtime holds while setting up (a host directory) used as
/// the process's cwd through /proc/self/fd. Every candidate descriptor must be refused.
#[test]
fn cve_2024_21626_cwd_through_a_leaked_fd_is_refused() {
    require_root();
    for fd in 3..=12 {
        let (rt, mut bundle) = setup();
        bundle.config_mut(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}")));
        bundle.sh("pwd; ls .. | head -3");
        let id = unique_id("cwd");
        let _guard = Container::guard(&rt, &id);
        let out = rt.cmd(["create", "--bundle", bundle.path_str(), &id]).run();
        assert!(
            !out.success(),
            "cwd /proc/self/fd/{fd} was accepted:\n{out}"
        );
        assert!(
            out.stderr.contains("process.cwd"),
            "fd {fd}: the error should name process.cwd:\n{out}"
        );
        assert_no_trace(&rt, &bundle, &id);
    }
}

/// CVE-2023-27561 (and CVE-2019-19921): a rootfs whose /proc is a symlink must not get procfs
/// mounted wherever the link points.
#[test]
fn cve_2023_27561_proc_symlink_is_refused() {
    require_root();
    let (rt, bundle) = setup();
    let proc_dir = bundle.rootfs().join("proc");
    fs::remove_dir(&proc_dir).expect("remove rootfs/proc");
    fs::create_dir_all(bundle.rootfs().join("elsewhere")).expect("mkdir");
    symlink("elsewhere", &proc_dir).expect("proc symlink");
    create_fails(&rt, &bundle, "must be mounted on ordinary directory");
}

/// CVE-2019-16884: something that is not procfs mounted on /proc would receive the runtime's
/// /proc writes (LSM labels, sysctls).
#[test]
fn cve_2019_16884_non_proc_mount_on_proc_is_refused() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.add_mount("/proc", "tmpfs", "tmpfs", &[]);
    create_fails(
        &rt,
        &bundle,
        "/proc cannot be mounted because it is not of type proc",
    );

    // The same through a symlink in the image that leads to /proc.
    let (rt, mut bundle) = setup();
    symlink("/proc", bundle.rootfs().join("innocent")).expect("symlink");
    bundle.add_mount("/innocent", "tmpfs", "tmpfs", &[]);
    create_fails(
        &rt,
        &bundle,
        "/proc cannot be mounted because it is not of type proc",
    );
}

/// CVE-2025-52881 / CVE-2019-16884: mounts inside /proc (over a sysctl file, over the LSM
/// attribute files) are refused; lxcfs-style binds over /proc/meminfo stay allowed.
#[test]
fn cve_2025_52881_mounts_inside_proc_are_refused() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.add_mount("/proc/sys/kernel/core_pattern", "tmpfs", "tmpfs", &[]);
    create_fails(&rt, &bundle, "cannot be mounted because it is inside /proc");

    let (rt, mut bundle) = setup();
    let fake = rt.scratch().join("fake-attr");
    fs::write(&fake, "unconfined\n").expect("fake attr");
    bundle.add_mount(
        "/proc/self/attr/exec",
        "bind",
        fake.to_str().expect("utf-8"),
        &["bind"],
    );
    create_fails(&rt, &bundle, "inside /proc");

    let (rt, mut bundle) = setup();
    let meminfo = rt.scratch().join("meminfo");
    fs::write(&meminfo, "MemTotal: 1 kB\n").expect("meminfo");
    bundle.add_mount(
        "/proc/meminfo",
        "bind",
        meminfo.to_str().expect("utf-8"),
        &["bind", "ro"],
    );
    let out = Container::run_sh(&rt, &mut bundle, "cat /proc/meminfo");
    assert_eq!(out, "MemTotal: 1 kB\n");
}

/// CVE-2021-30465: a mount destination that leads out of the rootfs through a symlink (here
/// `../../..` chains to the host's /) must land inside the rootfs.
#[test]
fn cve_2021_30465_mount_destination_symlink_stays_in_rootfs() {
    require_root();
    let (rt, mut bundle) = setup();
    let escape = format!("skiff-escape-{}", unique_id("x"));
    symlink("../../../../../../../../../..", bundle.rootfs().join("up")).expect("symlink");
    let data = rt.scratch_dir("data");
    fs::write(data.join("marker"), "from-host\n").expect("marker");
    bundle.bind_dir_raw(&data, &format!("/up/tmp/{escape}"));
    bundle.set_readonly_root(false);
    let out = Container::run_sh(&rt, &mut bundle, &format!("cat /tmp/{escape}/marker"));
    assert_eq!(out, "from-host\n");
    assert!(
        !std::path::Path::new("/tmp").join(&escape).exists(),
        "the mount point was created on the host"
    );
    assert!(
        bundle.rootfs().join("tmp").join(&escape).is_dir(),
        "the mount point should be inside the rootfs"
    );
}

/// CVE-2024-45310: a mount point that is a symlink to a host file must not make the runtime
/// create (or truncate) that host file.
#[test]
fn cve_2024_45310_file_mount_point_symlink_does_not_touch_the_host() {
    require_root();
    let (rt, mut bundle) = setup();
    let victim = rt.scratch().join("victim");
    fs::write(&victim, "keep me\n").expect("victim");
    let victim_str = victim.to_str().expect("utf-8");
    symlink(victim_str, bundle.rootfs().join("etc/planted")).expect("symlink");
    let src = rt.scratch().join("src-file");
    fs::write(&src, "bound\n").expect("source");
    bundle.add_mount(
        "/etc/planted",
        "bind",
        src.to_str().expect("utf-8"),
        &["bind"],
    );
    bundle.set_readonly_root(false);
    // Either the runtime refuses, or it binds inside the rootfs: the host file is untouched.
    let out = Container::run(&rt, &bundle, &[]);
    let _ = out;
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "keep me\n");
}

/// CVE-2026-41579: an image whose /dev is a symlink to a host path must not get its device
/// nodes and links created on the host.
#[test]
fn cve_2026_41579_dev_symlink_is_resolved_in_the_rootfs() {
    require_root();
    let (rt, mut bundle) = setup();
    let host_dir = rt.scratch_dir("host-dev");
    let rootfs_dev = bundle.rootfs().join("dev");
    let _ = fs::remove_dir_all(&rootfs_dev);
    symlink(host_dir.to_str().expect("utf-8"), &rootfs_dev).expect("dev symlink");
    without_dev_mounts(&mut bundle);
    bundle.set_readonly_root(false);
    let out = Container::run(&rt, &bundle, &[]);
    let _ = out;
    let left: Vec<_> = fs::read_dir(&host_dir).expect("host dir").collect();
    assert!(
        left.is_empty(),
        "the runtime wrote into the host directory: {left:?}"
    );
}

/// CVE-2019-5736: a process in a container that shares a pid namespace with another
/// container's init (still the runtime's binary until it execs) holds that binary open, waits
/// for the init to exec, then reopens it for writing through /proc/self/fd. The runtime under
/// test is a copy of the binary, so a failure destroys only the copy.
#[test]
fn cve_2019_5736_runtime_binary_cannot_be_overwritten_from_a_container() {
    require_root();
    let scratch = tempfile::tempdir().expect("tempdir");
    let copy = scratch.path().join("skiff-under-attack");
    fs::copy(skiff_tests::runtime_path(), &copy).expect("copy the runtime");
    let before = fs::read(&copy).expect("read the copy");
    let rt = Runtime::with_binary(copy.clone());

    // A: created, its init is the runtime's binary waiting on the fifo.
    let mut a = Bundle::new(&rt);
    a.set_args(&["sleep", "3"]);
    let victim = Container::create(&rt, &a, "victim");

    // B: joins A's pid namespace and attacks A's init (pid 1 there).
    let mut b = Bundle::new(&rt);
    let ns = format!("/proc/{}/ns/pid", victim.pid());
    // CAP_SYS_PTRACE: the init is not dumpable, which already keeps an ordinary container
    // away from /proc/<init>/exe; a privileged one gets past that, and the binary itself must
    // still hold.
    b.config_mut(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] =
                json!(["CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_KILL"]);
        }
    });
    b.set_namespace("pid", Some(&ns))
        .set_readonly_root(false)
        .sh(
            "cat /proc/1/exe >/dev/null 2>&1 || { echo NO-OPEN; exit 0; }; \
         exec 3</proc/1/exe; echo opened; i=0; \
         while [ $i -lt 60 ]; do \
           if (echo pwned >/proc/self/fd/3) 2>/dev/null; then echo WROTE; break; fi; \
           i=$((i+1)); sleep 0.05; done; echo done",
        );
    let attacker = Container::create(&rt, &b, "attacker");
    attacker.start();
    skiff_tests::host::wait_until(
        std::time::Duration::from_secs(20),
        "the attacker to open the binary",
        || attacker.stdout().contains("opened") || attacker.stdout().contains("NO-OPEN"),
    );
    // The victim's init now execs `sleep`: nothing runs the runtime's binary any more.
    victim.start();
    attacker.wait_status("stopped", std::time::Duration::from_secs(30));
    let out = attacker.stdout();
    assert!(
        out.contains("opened"),
        "the attack did not get going: {out}"
    );
    assert!(
        !out.contains("WROTE"),
        "the container wrote to the runtime binary: {out}"
    );
    assert!(
        fs::read(&copy).expect("read the copy") == before,
        "the runtime binary changed"
    );
}

/// CVE-2025-52565: an image whose /dev/console is a symlink to a sensitive file must not get the
/// pty bound over that file; inside, /dev/console is the container's pty.
#[test]
fn cve_2025_52565_dev_console_symlink_is_not_followed() {
    require_root();
    let (rt, mut bundle) = setup();
    let rootfs = bundle.rootfs();
    fs::write(rootfs.join("etc/precious"), "precious\n").expect("target");
    fs::create_dir_all(rootfs.join("dev")).expect("dev");
    symlink("/etc/precious", rootfs.join("dev/console")).expect("planted symlink");
    // Keep devpts (the pty must come from somewhere) but no tmpfs over /dev, so the planted
    // link is where the runtime makes /dev/console.
    bundle.config_mut(|c| {
        c["mounts"]
            .as_array_mut()
            .expect("mounts")
            .retain(|m| m["destination"] != "/dev");
    });
    bundle
        .set_terminal(true)
        .set_readonly_root(false)
        .set_args(&["sh"]);
    let (c, master) = Container::create_with_console(&rt, &bundle, "console");
    c.start();
    let out = master.converse(
        "stat -c '%F %t' /dev/console; cat /etc/precious; exit\n",
        rt.scratch(),
        std::time::Duration::from_secs(20),
    );
    assert!(
        out.contains("character special file 88"),
        "/dev/console is not a pty: {out:?}"
    );
    assert!(out.contains("precious"), "{out:?}");
    c.wait_status("stopped", std::time::Duration::from_secs(10));
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/precious")).expect("target"),
        "precious\n"
    );
    assert!(
        fs::symlink_metadata(rootfs.join("dev/console")).is_ok_and(|m| !m.file_type().is_symlink())
            || !rootfs.join("dev/console").exists(),
        "the planted link is still in place"
    );
}

/// Without CAP_SYS_PTRACE a process sharing the pid namespace cannot even open the init's
/// descriptors or executable: the init is not dumpable until it execs.
#[test]
fn init_is_not_reachable_through_proc_before_exec() {
    require_root();
    let (rt, mut a) = setup();
    a.set_args(&["true"]);
    let victim = Container::create(&rt, &a, "victim");
    let mut b = Bundle::new(&rt);
    let ns = format!("/proc/{}/ns/pid", victim.pid());
    b.set_namespace("pid", Some(&ns)).sh(
        "for f in /proc/1/fd/*; do readlink \"$f\" >/dev/null 2>&1 && echo FD-READABLE; done; \
         cat /proc/1/exe >/dev/null 2>&1 && echo EXE-READABLE; echo checked",
    );
    let out = Container::run(&rt, &b, &[]);
    out.expect_success();
    assert_eq!(out.stdout, "checked\n");
}
