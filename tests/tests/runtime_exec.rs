//! `exec`: a second process in a running container joins every namespace of the init, gets the
//! container's security settings unless flags override them, and reports its exit code.

use std::time::Duration;

use serde_json::json;
use skiff_tests::host::{ns_link, parse_status_field, process_alive, wait_process_gone};
use skiff_tests::{Container, require_root, setup};

const TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn exec_joins_every_namespace_of_the_init() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_hostname("exec-host");
    let c = Container::running(&rt, &mut bundle, "exec-ns");
    let init = c.pid();
    let out = rt
        .cmd(["exec", c.id(), "sh", "-c"])
        .arg(
            "for n in mnt uts ipc net pid cgroup; do echo $n=$(readlink /proc/self/ns/$n); done; \
             hostname; echo pid=$$; echo ppid=$PPID",
        )
        .run();
    out.expect_success();
    let text = out.stdout.clone();
    for ns in ["mnt", "uts", "ipc", "net", "pid", "cgroup"] {
        let want = format!("{ns}={}", ns_link(init, ns));
        assert!(text.contains(&want), "{want} missing from {text}");
    }
    assert!(text.contains("exec-host"), "{text}");
    // In the container's pid namespace the process is not pid 1, and its parent (the runtime,
    // outside the namespace) shows as 0.
    assert!(text.contains("ppid=0"), "{text}");
    assert!(!text.contains("pid=1\n"), "{text}");
}

#[test]
fn exec_exit_code_is_propagated() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "exec-code");
    let out = rt.cmd(["exec", c.id(), "sh", "-c", "exit 42"]).run();
    assert_eq!(out.code(), Some(42), "{out:?}");
    let out = rt.cmd(["exec", c.id(), "sh", "-c", "kill -TERM $$"]).run();
    assert_eq!(out.code(), Some(128 + 15), "{out:?}");
}

#[test]
fn exec_flags_override_the_process() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "exec-flags");
    let out = rt
        .cmd([
            "exec",
            "--cwd",
            "/tmp",
            "-e",
            "GREETING=hello",
            "--user",
            "1000:1001",
            "--additional-gids",
            "2000",
            "--no-new-privs",
            c.id(),
            "sh",
            "-c",
            "pwd; echo $GREETING; id -u; id -g; grep -E '^(Groups|NoNewPrivs):' /proc/self/status",
        ])
        .run();
    out.expect_success();
    let text = out.stdout.clone();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..4], ["/tmp", "hello", "1000", "1001"], "{text}");
    assert_eq!(
        parse_status_field(&text, "Groups").as_deref(),
        Some("2000"),
        "{text}"
    );
    assert_eq!(
        parse_status_field(&text, "NoNewPrivs").as_deref(),
        Some("1"),
        "{text}"
    );
}

/// The container's capabilities and seccomp filter apply to exec'd processes too; `--cap` adds
/// to the bounding, effective and permitted sets.
#[test]
fn exec_gets_the_container_security_settings() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_readonly_root(false).config_mut(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        });
    });
    let c = Container::running(&rt, &mut bundle, "exec-sec");
    let init_caps = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).expect("status");
    let out = rt
        .cmd([
            "exec",
            c.id(),
            "sh",
            "-c",
            "mkdir /tmp/x 2>&1; grep -E '^(Seccomp|CapEff|CapBnd):' /proc/self/status",
        ])
        .run();
    out.expect_success();
    let text = out.stdout.clone();
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    for field in ["CapEff", "CapBnd"] {
        assert_eq!(
            parse_status_field(&text, field),
            parse_status_field(&init_caps, field),
            "{field}: {text}"
        );
    }

    let out = rt
        .cmd([
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            c.id(),
            "grep",
            "CapEff",
            "/proc/self/status",
        ])
        .run();
    out.expect_success();
    let eff = u64::from_str_radix(
        &parse_status_field(&out.stdout, "CapEff").expect("CapEff"),
        16,
    )
    .expect("hex");
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN not added: {eff:x}");
}

#[test]
fn exec_process_file() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "exec-procfile");
    let file = rt.scratch().join("process.json");
    std::fs::write(
        &file,
        json!({
            "args": ["sh", "-c", "echo from-file $A; pwd"],
            "cwd": "/etc",
            "env": ["PATH=/bin", "A=b"],
            "user": {"uid": 0, "gid": 0}
        })
        .to_string(),
    )
    .expect("write process.json");
    let out = rt.cmd(["exec", "--process"]).arg(&file).arg(c.id()).run();
    out.expect_success();
    assert_eq!(out.stdout, "from-file b\n/etc\n");

    std::fs::write(&file, "{\"args\": 5}").expect("write bad process.json");
    rt.cmd(["exec", "--process"])
        .arg(&file)
        .arg(c.id())
        .run()
        .expect_error_containing("--process");
}

#[test]
fn exec_detached_writes_pid_file() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "exec-detach");
    let pid = c.exec_detached(&["sleep", "1000"]);
    assert!(process_alive(pid), "detached exec process {pid} is gone");
    assert_eq!(ns_link(pid, "pid"), ns_link(c.pid(), "pid"));
    // Killing the container takes the exec'd process with it (its pid namespace dies).
    c.kill("KILL").expect_success();
    wait_process_gone(pid, TIMEOUT);
}

#[test]
fn exec_with_console_socket_gets_a_pty() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "exec-tty");
    let socket = skiff_tests::console::ConsoleSocket::bind(&rt.scratch().join("exec-console.sock"));
    let exec = rt
        .cmd(["exec", "-t", "-d", "--console-socket"])
        .arg(socket.path())
        .args([c.id(), "sh", "-c", "tty; echo tty-done"])
        .spawn();
    let master = socket.recv_fd(TIMEOUT);
    exec.wait().expect_success();
    assert!(master.is_pty_master());
    let seen = master.converse("", rt.scratch(), Duration::from_secs(10));
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    assert!(seen.contains("tty-done"), "{seen:?}");

    // A second tty exec gets a pty of its own; the container's /dev/console is left alone.
    let socket =
        skiff_tests::console::ConsoleSocket::bind(&rt.scratch().join("exec-console-2.sock"));
    let exec = rt
        .cmd(["exec", "-t", "-d", "--console-socket"])
        .arg(socket.path())
        .args([c.id(), "sh", "-c", "tty; echo second-done"])
        .spawn();
    let master = socket.recv_fd(TIMEOUT);
    exec.wait().expect_success();
    let seen = master.converse("", rt.scratch(), Duration::from_secs(10));
    assert!(seen.contains("second-done"), "{seen:?}");
}

#[test]
fn exec_errors_are_clear() {
    require_root();
    let (rt, mut bundle) = setup();
    let c = Container::running(&rt, &mut bundle, "exec-errors");
    // runc's words, which dockerd turns into exit status 127.
    rt.cmd(["exec", c.id(), "/no/such/binary"])
        .run()
        .expect_error_containing("stat /no/such/binary: no such file or directory");
    rt.cmd(["exec", "-t", "-d", c.id(), "true"])
        .run()
        .expect_error_containing("console socket");
    rt.cmd(["exec", "--user", "root", c.id(), "true"])
        .run()
        .expect_error_containing("uid[:gid]");
    rt.cmd(["exec", "no-such-container", "true"])
        .run()
        .expect_error_containing("container does not exist");

    c.kill("KILL").expect_success();
    c.wait_status("stopped", TIMEOUT);
    rt.cmd(["exec", c.id(), "true"])
        .run()
        .expect_error_containing("cannot exec in a stopped container");
}

#[test]
fn exec_enters_the_user_namespace() {
    require_root();
    let (rt, mut bundle) = setup();
    let mapping = json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]);
    bundle.set_namespace("user", None).config_mut(|c| {
        c["linux"]["uidMappings"] = mapping.clone();
        c["linux"]["gidMappings"] = mapping;
    });
    let c = Container::running(&rt, &mut bundle, "exec-userns");
    let out = rt
        .cmd([
            "exec",
            c.id(),
            "sh",
            "-c",
            "readlink /proc/self/ns/user; id -u; cat /proc/self/uid_map",
        ])
        .run();
    out.expect_success();
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            ns_link(c.pid(), "user"),
            "0".into(),
            "0 100000 65536".into()
        ],
        "{out:?}"
    );
}

/// `--pidfd-socket` (create and exec) hands over a pidfd of the process: its fdinfo names the
/// process's pid.
#[test]
fn pidfd_socket_receives_a_pidfd() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_args(&["sleep", "1000"]);
    let pidfd_pid = |fd: &skiff_tests::console::ReceivedFd| -> i32 {
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.raw())).expect("link");
        assert!(
            link.to_string_lossy().contains("pidfd"),
            "not a pidfd: {link:?}"
        );
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.raw())).expect("fdinfo");
        parse_status_field(&info, "Pid")
            .and_then(|p| p.parse().ok())
            .expect("Pid in fdinfo")
    };

    let socket = skiff_tests::console::ConsoleSocket::bind(&rt.scratch().join("create-pidfd.sock"));
    let id = skiff_tests::unique_id("pidfd");
    let c = Container::guard(&rt, &id);
    let create = rt
        .cmd(["create", "--bundle", bundle.path_str(), "--pidfd-socket"])
        .arg(socket.path())
        .arg(&id)
        .spawn();
    let fd = socket.recv_fd(TIMEOUT);
    create.wait().expect_success();
    assert_eq!(pidfd_pid(&fd), c.pid());

    c.start().expect_success();
    let socket = skiff_tests::console::ConsoleSocket::bind(&rt.scratch().join("exec-pidfd.sock"));
    let pid_file = rt.scratch().join("exec.pid");
    let exec = rt
        .cmd(["exec", "-d", "--pid-file"])
        .arg(&pid_file)
        .arg("--pidfd-socket")
        .arg(socket.path())
        .args([&id, "sleep", "1000"])
        .spawn();
    let fd = socket.recv_fd(TIMEOUT);
    exec.wait().expect_success();
    let exec_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(pidfd_pid(&fd), exec_pid);
}
