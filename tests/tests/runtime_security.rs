//! Security settings the runtime core applies: capability sets, no_new_privs, masked and
//! read-only paths (with a verified /dev/null), and a planted /dev/null symlink.

use std::fs;

use serde_json::json;
use skiff_tests::host::parse_status_field;
use skiff_tests::{Container, require_root, setup};

/// CAP_KILL (5), CAP_NET_BIND_SERVICE (10) and CAP_AUDIT_WRITE (29): the default spec's sets.
const DEFAULT_CAPS: &str = "0000000020000420";

#[test]
fn capability_sets_and_no_new_privs_apply() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["process"]["noNewPrivileges"] = json!(true);
        c["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
        c["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
    });
    let status = Container::run_sh(&rt, &mut bundle, "cat /proc/self/status");
    let field =
        |f| parse_status_field(&status, f).unwrap_or_else(|| panic!("{f} missing: {status}"));
    assert_eq!(field("CapBnd"), DEFAULT_CAPS);
    assert_eq!(field("CapPrm"), DEFAULT_CAPS);
    assert_eq!(field("CapEff"), DEFAULT_CAPS);
    assert_eq!(field("CapInh"), "0000000000000020");
    assert_eq!(field("CapAmb"), "0000000000000020");
    assert_eq!(field("NoNewPrivs"), "1");
}

#[test]
fn non_root_user_without_capabilities_has_none() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]
            .as_object_mut()
            .expect("process")
            .remove("capabilities");
    });
    let status = Container::run_sh(&rt, &mut bundle, "cat /proc/self/status");
    for f in ["CapPrm", "CapEff", "CapInh", "CapAmb"] {
        assert_eq!(
            parse_status_field(&status, f).as_deref(),
            Some("0000000000000000"),
            "{f}: {status}"
        );
    }
}

#[test]
fn unknown_capability_is_refused_naming_it() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_BOGUS"])
    });
    let out = Container::run(&rt, &bundle, &[]);
    assert!(!out.status.success(), "{out:?}");
    assert!(out.stderr.contains("CAP_BOGUS"), "{}", out.stderr);
}

#[test]
fn masked_and_readonly_paths_apply() {
    require_root();
    let (rt, mut bundle) = setup();
    let rootfs = bundle.rootfs();
    fs::write(rootfs.join("etc/secret"), "top secret\n").expect("secret file");
    fs::create_dir_all(rootfs.join("etc/secretdir")).expect("secret dir");
    fs::write(rootfs.join("etc/secretdir/inside"), "hidden\n").expect("file in secret dir");
    fs::create_dir_all(rootfs.join("data-ro")).expect("readonly dir");
    bundle.set_readonly_root(false).config_mut(|c| {
        c["linux"]["maskedPaths"] = json!(["/etc/secret", "/etc/secretdir", "/does/not/exist"]);
        c["linux"]["readonlyPaths"] = json!(["/data-ro", "/also/missing"]);
    });
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "echo \"secret=[$(cat /etc/secret)]\"; echo \"dir=[$(ls /etc/secretdir)]\"; \
         touch /etc/secretdir/x 2>/dev/null && echo DIR-WRITABLE; \
         touch /data-ro/x 2>/dev/null && echo RO-WRITABLE; \
         echo probe > /etc/secret 2>/dev/null; touch /tmp/ok && echo ROOT-WRITABLE",
    );
    assert_eq!(out, "secret=[]\ndir=[]\nROOT-WRITABLE\n", "{out}");
    // Writing to the masked file went to /dev/null, not into the image.
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/secret")).expect("secret"),
        "top secret\n"
    );
    assert!(!rootfs.join("data-ro/x").exists());
}

/// CVE-2025-31133: an image whose /dev/null is a symlink to a sensitive file must not get that
/// file bound over its masked paths. The runtime replaces the link with a real node and masks
/// from a descriptor it verified to be char 1:3.
#[test]
fn planted_dev_null_symlink_is_not_used_for_masking() {
    require_root();
    let (rt, mut bundle) = setup();
    let rootfs = bundle.rootfs();
    let target = rootfs.join("etc/precious");
    fs::write(&target, "precious\n").expect("target file");
    fs::create_dir_all(rootfs.join("dev")).expect("dev dir");
    let _ = fs::remove_file(rootfs.join("dev/null"));
    std::os::unix::fs::symlink("/etc/precious", rootfs.join("dev/null")).expect("planted symlink");
    fs::write(rootfs.join("etc/secret"), "top secret\n").expect("secret file");
    bundle.set_readonly_root(false).config_mut(|c| {
        // No tmpfs on /dev: the planted link sits where the runtime creates its devices.
        c["mounts"].as_array_mut().expect("mounts").retain(|m| {
            m["destination"] != "/dev"
                && m["destination"] != "/dev/pts"
                && m["destination"] != "/dev/shm"
                && m["destination"] != "/dev/mqueue"
        });
        c["linux"]["maskedPaths"] = json!(["/etc/secret"]);
    });
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "echo overwritten > /etc/secret; cat /etc/secret; stat -c '%F %t:%T' /dev/null",
    );
    assert_eq!(out, "character special file 1:3\n", "{out}");
    assert_eq!(fs::read_to_string(&target).expect("target"), "precious\n");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/secret")).expect("secret"),
        "top secret\n"
    );
}

/// runc's `spec` lists ambient capabilities without an inheritable set; the kernel cannot raise
/// those, and runc only warns. Such a bundle must run, with an empty ambient set.
#[test]
fn ambient_without_inheritable_runs_without_ambient() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
        c["process"]["capabilities"]
            .as_object_mut()
            .expect("caps")
            .remove("inheritable");
    });
    let status = Container::run_sh(&rt, &mut bundle, "cat /proc/self/status");
    assert_eq!(
        parse_status_field(&status, "CapAmb").as_deref(),
        Some("0000000000000000"),
        "{status}"
    );
    assert_eq!(
        parse_status_field(&status, "CapEff").as_deref(),
        Some(DEFAULT_CAPS),
        "{status}"
    );
}

fn deny_mkdir_profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    })
}

#[test]
fn seccomp_filter_applies_with_and_without_no_new_privs() {
    require_root();
    for nnp in [true, false] {
        let (rt, mut bundle) = setup();
        bundle.set_readonly_root(false).config_mut(|c| {
            c["process"]["noNewPrivileges"] = json!(nnp);
            c["linux"]["seccomp"] = deny_mkdir_profile();
        });
        let out = Container::run_sh(
            &rt,
            &mut bundle,
            "mkdir /tmp/blocked 2>&1; touch /tmp/allowed && echo touched; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
        );
        assert!(out.contains("Permission denied"), "nnp={nnp}: {out}");
        assert!(out.contains("touched"), "nnp={nnp}: {out}");
        assert!(out.contains("Seccomp:\t2"), "nnp={nnp}: {out}");
        assert!(
            out.contains(&format!("NoNewPrivs:\t{}", u8::from(nnp))),
            "nnp={nnp}: {out}"
        );
    }
}

/// The filter flags reach the kernel: LOG and SPEC_ALLOW (and TSYNC) are accepted by
/// seccomp(2) here and the filter still applies.
#[test]
fn seccomp_filter_flags_are_passed() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_readonly_root(false).config_mut(|c| {
        let mut profile = deny_mkdir_profile();
        profile["flags"] = json!([
            "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC"
        ]);
        c["linux"]["seccomp"] = profile;
    });
    let out = Container::run_sh(&rt, &mut bundle, "mkdir /tmp/blocked 2>&1; echo done");
    assert!(
        out.contains("Permission denied") && out.ends_with("done\n"),
        "{out}"
    );
}

#[test]
fn seccomp_unknown_syscall_name_is_skipped_with_a_warning() {
    // runc's behaviour, which real profiles (podman's lists `syscall`) depend on.
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["no_such_syscall_anywhere", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    bundle.set_readonly_root(false);
    let out = Container::run_sh(&rt, &mut bundle, "mkdir /tmp/x 2>&1; echo done");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.contains("done"), "{out}");
}

#[test]
fn seccomp_notify_is_refused_not_ignored() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    let out = Container::run(&rt, &bundle, &[]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        out.stderr.to_lowercase().contains("not supported"),
        "{}",
        out.stderr
    );
}

/// The default profile (seccomp-profiles/) stops `unshare` and `mount` even for a process that
/// holds CAP_SYS_ADMIN, while busybox keeps working; without the filter the same process can
/// mount, so the denial is the filter's doing.
#[test]
fn default_seccomp_profile_blocks_namespace_and_mount_syscalls() {
    require_root();
    let caps: Vec<String> = skiff_seccomp_profiles::DOCKER_DEFAULT_CAPS
        .iter()
        .map(|c| c.to_string())
        .collect();
    let kernel = skiff_seccomp_profiles::host_kernel_version().ok();
    let resolved = skiff_seccomp_profiles::resolve(
        &skiff_seccomp_profiles::default_profile(),
        &caps,
        std::env::consts::ARCH,
        kernel,
    )
    .expect("the default profile resolves");
    let script = "mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo mount-denied; \
                  unshare -u true 2>/dev/null && echo unshared || echo unshare-denied; \
                  ls /bin >/dev/null && echo ls-ok; echo piped | cat; id -u";
    let with_admin = |c: &mut serde_json::Value| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
        }
    };

    let (rt, mut bundle) = setup();
    fs::create_dir_all(bundle.rootfs().join("mnt")).expect("mnt");
    bundle.config_mut(|c| {
        with_admin(c);
        c["linux"]["seccomp"] = serde_json::to_value(&resolved).expect("serialise");
    });
    let out = Container::run_sh(&rt, &mut bundle, script);
    assert_eq!(
        out, "mount-denied\nunshare-denied\nls-ok\npiped\n0\n",
        "{out}"
    );

    let (rt, mut bundle) = setup();
    fs::create_dir_all(bundle.rootfs().join("mnt")).expect("mnt");
    bundle.config_mut(with_admin);
    let out = Container::run_sh(&rt, &mut bundle, script);
    assert_eq!(
        out, "mounted\nunshared\nls-ok\npiped\n0\n",
        "control without the filter: {out}"
    );
}

/// An LSM label the host cannot honour is refused, never ignored (this VM has neither AppArmor
/// nor SELinux; on a host that has them the label is written to the init's exec attribute).
#[test]
fn lsm_labels_without_the_lsm_are_refused() {
    require_root();
    let apparmor =
        fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|v| v.first() == Some(&b'Y'));
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    if apparmor || selinux {
        eprintln!("this host has an LSM; the refusal path is not reachable here");
        return;
    }
    for (field, value, needle) in [
        (
            "apparmorProfile",
            "docker-default",
            "AppArmor is not enabled",
        ),
        (
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            "SELinux is disabled",
        ),
    ] {
        let (rt, mut bundle) = setup();
        bundle.config_mut(|c| c["process"][field] = json!(value));
        let out = Container::run(&rt, &bundle, &[]);
        assert!(!out.status.success(), "{field} accepted: {out:?}");
        assert!(
            out.stderr.contains(needle) && out.stderr.contains(value),
            "{}",
            out.stderr
        );
    }
}

/// Build the syscall probe (tests/probes/syscall_probe.c) statically into the rootfs.
fn install_probe(bundle: &skiff_tests::Bundle) {
    let src = skiff_tests::workspace_dir().join("tests/probes/syscall_probe.c");
    let out = bundle.rootfs().join("bin/syscall-probe");
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run gcc (scripts/deps.sh installs it)");
    assert!(status.success(), "building the probe failed");
}

/// Under the default profile (Docker's capabilities, this kernel) a container cannot make a
/// session keyring, clone or unshare into new namespaces, while fork and ordinary calls work.
/// ptrace is what the profile says it is: allowed from kernel 4.8 (the kernel's own ptrace
/// checks apply), denied before unless CAP_SYS_PTRACE.
#[test]
fn default_seccomp_profile_stops_keyctl_and_namespace_clones() {
    require_root();
    let caps: Vec<String> = skiff_seccomp_profiles::DOCKER_DEFAULT_CAPS
        .iter()
        .map(|c| c.to_string())
        .collect();
    let kernel = skiff_seccomp_profiles::host_kernel_version().expect("kernel version");
    let resolved = skiff_seccomp_profiles::resolve(
        &skiff_seccomp_profiles::default_profile(),
        &caps,
        std::env::consts::ARCH,
        Some(kernel),
    )
    .expect("the default profile resolves");
    let (rt, mut bundle) = setup();
    install_probe(&bundle);
    bundle.config_mut(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(caps);
        }
        c["linux"]["seccomp"] = serde_json::to_value(&resolved).expect("serialise");
    });
    bundle.set_args(&["/bin/syscall-probe"]);
    let out = Container::run(&rt, &bundle, &[]);
    out.expect_success();
    let ptrace = if kernel >= (4, 8) {
        "ptrace-attach ok"
    } else {
        "ptrace-attach EPERM"
    };
    assert_eq!(
        out.stdout,
        format!(
            "keyctl EPERM\nclone-newuts EPERM\nfork ok\n{ptrace}\nunshare-newns EPERM\ngetpid ok\n"
        ),
    );

    // Control: the same probe without the filter gets through (CAP_SYS_ADMIN for the namespace
    // calls), so the refusals above are the filter's.
    let (rt, mut bundle) = setup();
    install_probe(&bundle);
    bundle.config_mut(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        }
    });
    bundle.set_args(&["/bin/syscall-probe"]);
    let out = Container::run(&rt, &bundle, &[]);
    out.expect_success();
    assert_eq!(
        out.stdout,
        "keyctl ok\nclone-newuts ok\nfork ok\nptrace-attach ok\nunshare-newns ok\ngetpid ok\n"
    );
}

/// Bad security input is refused with a message naming it, and leaves nothing behind.
#[test]
fn malformed_security_sections_are_refused_cleanly() {
    require_root();
    let cases: [(&str, serde_json::Value, &str); 3] = [
        (
            "seccomp",
            json!({"defaultAction": "SCMP_ACT_BOGUS"}),
            "SCMP_ACT_BOGUS",
        ),
        (
            "maskedPaths",
            json!(["/../../etc/shadow"]),
            "linux.maskedPaths[0]",
        ),
        (
            "readonlyPaths",
            json!(["proc/sys"]),
            "linux.readonlyPaths[0]",
        ),
    ];
    for (field, value, needle) in cases {
        let (rt, mut bundle) = setup();
        bundle.config_mut(|c| c["linux"][field] = value.clone());
        let id = skiff_tests::unique_id("bad");
        let _guard = Container::guard(&rt, &id);
        let out = rt.cmd(["create", "--bundle", bundle.path_str(), &id]).run();
        out.expect_error_containing(needle);
        skiff_tests::container::assert_no_trace(&rt, &bundle, &id);
    }
}

/// `net.*` sysctls with the host's network namespace joined by path would change the host.
#[test]
fn net_sysctl_in_the_host_network_namespace_is_refused() {
    require_root();
    let (rt, mut bundle) = setup();
    let before = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host sysctl");
    let flipped = if before.trim() == "1" { "0" } else { "1" };
    let own_net = format!("/proc/{}/ns/net", std::process::id());
    bundle
        .set_namespace("network", Some(&own_net))
        .config_mut(|c| {
            c["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": flipped });
        });
    let id = skiff_tests::unique_id("hostnet");
    let _guard = Container::guard(&rt, &id);
    let out = rt.cmd(["create", "--bundle", bundle.path_str(), &id]).run();
    out.expect_error_containing("host's network namespace");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("host sysctl"),
        before
    );
    skiff_tests::container::assert_no_trace(&rt, &bundle, &id);
}

/// Each container gets a session keyring of its own unless --no-new-keyring.
#[test]
fn containers_get_their_own_session_keyring() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| c["linux"]["maskedPaths"] = json!([]));
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "grep -c ' keyring   _ses\\.run-' /proc/keys || true",
    );
    assert_ne!(out.trim(), "0", "no _ses.<id> keyring visible: {out}");
}
