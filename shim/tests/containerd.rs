//! Our shim under real containerd 1.6 (Debian), driven with `ctr` as a user would
//! (issue 6's acceptance): `ctr run --runtime io.containerd.skiff.v2` finds
//! `containerd-shim-skiff-v2` on containerd's PATH ([`Containerd::start_with_shim`]), and the
//! shim runs `skiff` (the default) or, through `--runtime-config-path` (ctr 1.6 sends it as
//! `runtimeoptions.v1.Options` with `BinaryName`), runc. Each scenario runs with both.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use skiff_tests::engines::Containerd;
use skiff_tests::host::{process_alive, wait_until};
use skiff_tests::image::BUSYBOX_IMAGE;
use skiff_tests::pty::PtySession;
use skiff_tests::{Image, unique_id};

const TTY_TIMEOUT: Duration = Duration::from_secs(60);
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);
const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-skiff-v2");

/// The runtime the shim drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `skiff` from PATH (no options).
    Skiff,
    /// `BinaryName = /usr/sbin/runc`.
    Runc,
}

struct Env {
    ctd: Containerd,
    flavor: Flavor,
}

impl Env {
    fn new(flavor: Flavor) -> Self {
        let ctd = Containerd::start_with_shim(&PathBuf::from(SHIM));
        ctd.import(&Image::busybox());
        Self { ctd, flavor }
    }

    /// `--runtime io.containerd.skiff.v2 --fifo-dir …` plus the runtime options.
    fn run_flags(&self) -> Vec<String> {
        let mut flags = self.ctd.shim_run_flags();
        if self.flavor == Flavor::Runc {
            flags.extend(
                self.ctd
                    .runtime_config_flags(&PathBuf::from("/usr/sbin/runc")),
            );
        }
        flags
    }

    #[track_caller]
    fn run_detached(&self, id: &str, extra: &[&str], args: &[&str]) {
        self.ctd
            .ctr(["run", "-d", "--null-io"])
            .args(self.run_flags())
            .args(extra)
            .args([BUSYBOX_IMAGE, id])
            .args(args)
            .run()
            .expect_success();
        wait_until(
            Duration::from_secs(30),
            &format!("task {id} RUNNING"),
            || self.ctd.task_status(id).as_deref() == Some("RUNNING"),
        );
    }

    fn task_pid(&self, id: &str) -> i32 {
        self.ctd
            .tasks()
            .into_iter()
            .find(|(task, _, _)| task == id)
            .and_then(|(_, pid, _)| pid.parse().ok())
            .unwrap_or_else(|| panic!("task {id} is not listed by `ctr task ls`"))
    }

    #[track_caller]
    fn kill_and_delete(&self, id: &str) {
        self.ctd
            .ctr(["task", "kill", "-s", "SIGKILL", id])
            .run()
            .expect_success();
        wait_until(
            Duration::from_secs(30),
            &format!("task {id} STOPPED"),
            || self.ctd.task_status(id).as_deref() == Some("STOPPED"),
        );
        self.ctd.ctr(["task", "delete", id]).run().expect_success();
        self.ctd
            .ctr(["container", "delete", id])
            .run()
            .expect_success();
    }

    /// `ctr task exec … echo <text>` in `id`: it must print `text`.
    #[track_caller]
    fn exec_echo(&self, id: &str, exec_id: &str, text: &str) {
        let out = self
            .ctd
            .ctr(["task", "exec", "--exec-id", exec_id])
            .args(self.ctd.fifo_flags())
            .args([id, "echo", text])
            .run();
        out.expect_success();
        assert_eq!(out.stdout, format!("{text}\n"), "{out}");
    }

    /// Pids of our serving shims in this sandbox.
    fn shim_pids(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim-skiff-v2")
                && cmdline.contains("-socket")
                && cmdline.contains(self.ctd.namespace())
            {
                pids.push(pid);
            }
        }
        pids
    }

    /// A path inside containerd's private mount namespace (where `/run` is the sandbox's).
    fn in_ns(&self, path: &str) -> PathBuf {
        let pid = self.ctd.pid().expect("containerd runs");
        PathBuf::from(format!("/proc/{pid}/root{path}"))
    }

    /// The runtime's state dir for `id`: proves which runtime the shim drove.
    fn runtime_state(&self, id: &str) -> PathBuf {
        let name = match self.flavor {
            Flavor::Skiff => "skiff",
            Flavor::Runc => "runc",
        };
        self.in_ns(&format!(
            "/run/containerd/{name}/{}/{id}",
            self.ctd.namespace()
        ))
    }

    /// `ctr events` in the background.
    fn events(&self) -> skiff_tests::engines::Background {
        let events = self
            .ctd
            .ctr(["events"])
            .timeout(Duration::from_secs(300))
            .spawn();
        // ctr subscribes asynchronously: give it a moment before producing events.
        std::thread::sleep(Duration::from_millis(500));
        events
    }
}

/// `(topic, event JSON)` lines of `ctr events` output about container `id`.
fn topics_for(output: &str, id: &str) -> Vec<(String, Value)> {
    output
        .lines()
        .filter_map(|line| {
            // `<date> <time> <zone> <zone> <namespace> <topic> <json>`: the topic starts with /.
            let topic_start = line.find(" /")? + 1;
            let rest = &line[topic_start..];
            let (topic, json) = rest.split_once(' ').unwrap_or((rest, "{}"));
            let value: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            (json.contains(id)).then(|| (topic.to_string(), value))
        })
        .collect()
}

/// Generates one test per flavor.
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn skiff() {
                super::$body(super::Flavor::Skiff);
            }
            #[test]
            fn runc() {
                super::$body(super::Flavor::Runc);
            }
        }
    };
}

fn run_prints_output_and_exit_code(flavor: Flavor) {
    let env = Env::new(flavor);
    let id = unique_id("echo");
    let out = env
        .ctd
        .ctr(["run", "--rm"])
        .args(env.run_flags())
        .args([BUSYBOX_IMAGE, &id, "echo", "hi from our shim"])
        .run();
    out.expect_success();
    assert_eq!(out.stdout, "hi from our shim\n", "{out}");
    let id = unique_id("exit");
    let out = env
        .ctd
        .ctr(["run", "--rm"])
        .args(env.run_flags())
        .args([
            BUSYBOX_IMAGE,
            &id,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .run();
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(out.stdout, "out\n", "{out}");
    assert!(out.stderr.contains("err"), "{out}");
    let containers = env.ctd.ctr(["container", "ls", "-q"]).run();
    assert!(
        !containers.stdout.contains(&id),
        "--rm left it: {containers}"
    );
    wait_until(Duration::from_secs(10), "every shim to exit", || {
        env.shim_pids().is_empty()
    });
}
both!(
    run_prints_output_and_exit_code_,
    run_prints_output_and_exit_code
);

fn run_tty_is_interactive(flavor: Flavor) {
    let env = Env::new(flavor);
    let id = unique_id("tty");
    let cmd = env
        .ctd
        .ctr(["run", "--rm", "-t"])
        .args(env.run_flags())
        .args([BUSYBOX_IMAGE, &id, "sh"]);
    let describe = cmd.describe();
    let mut session = PtySession::spawn(cmd.command(), &describe);
    session.wait_for("# ", TTY_TIMEOUT);
    // The quotes make the typed line differ from its output.
    session.send("tty; stty size; echo hel''lo-from-tty\r");
    session.wait_for("hello-from-tty", TTY_TIMEOUT);
    session.send("exit 5\r");
    let status = session.wait(TTY_TIMEOUT);
    let output = session.output();
    assert!(
        output.contains("/dev/pts/"),
        "`tty` is not a pty:\n{output}"
    );
    assert_eq!(
        status.code(),
        Some(5),
        "ctr -t ended with {}:\n{output}",
        PtySession::describe_status(status)
    );
}
both!(run_tty_is_interactive_, run_tty_is_interactive);

fn exec_runs_in_the_container(flavor: Flavor) {
    let env = Env::new(flavor);
    let id = unique_id("exec");
    env.run_detached(&id, &[], &["sleep", "1000"]);
    assert!(
        env.runtime_state(&id).exists(),
        "{flavor:?} did not create its state {}",
        env.runtime_state(&id).display()
    );
    let out = env
        .ctd
        .ctr(["task", "exec", "--exec-id", "e1"])
        .args(env.ctd.fifo_flags())
        .args([
            &id,
            "sh",
            "-c",
            "echo exec-out; echo pid1=$(cat /proc/1/comm); exit 7",
        ])
        .run();
    assert_eq!(out.code(), Some(7), "{out}");
    assert!(out.stdout.contains("exec-out"), "{out}");
    assert!(out.stdout.contains("pid1=sleep"), "{out}");
    // stdin reaches a non-tty exec and its EOF ends `cat`.
    let out = env
        .ctd
        .ctr(["task", "exec", "--exec-id", "e2"])
        .args(env.ctd.fifo_flags())
        .args([&id, "cat"])
        .stdin("piped through the shim\n")
        .run();
    out.expect_success();
    assert_eq!(out.stdout, "piped through the shim\n", "{out}");
    // The exec id is free again once the exec was deleted.
    let out = env
        .ctd
        .ctr(["task", "exec", "--exec-id", "e1"])
        .args(env.ctd.fifo_flags())
        .args([&id, "true"])
        .run();
    out.expect_success();
    let cmd = env
        .ctd
        .ctr(["task", "exec", "-t", "--exec-id", "tty1"])
        .args(env.ctd.fifo_flags())
        .args([&id, "sh"]);
    let describe = cmd.describe();
    let mut session = PtySession::spawn(cmd.command(), &describe);
    session.wait_for("# ", TTY_TIMEOUT);
    session.send("tty; echo ex''ec-tty\r");
    session.wait_for("exec-tty", TTY_TIMEOUT);
    session.send("exit 4\r");
    let status = session.wait(TTY_TIMEOUT);
    let output = session.output();
    assert!(
        output.contains("/dev/pts/"),
        "`tty` is not a pty:\n{output}"
    );
    assert_eq!(status.code(), Some(4), "{output}");
    env.kill_and_delete(&id);
}
both!(exec_runs_in_the_container_, exec_runs_in_the_container);

fn kill_pause_resume_metrics_delete(flavor: Flavor) {
    let env = Env::new(flavor);
    let id = unique_id("life");
    // pid 1 of a pid namespace ignores signals it has no handler for: trap TERM.
    env.run_detached(
        &id,
        &[],
        &["sh", "-c", "trap 'exit 9' TERM; sleep 1000 & wait"],
    );
    let pid = env.task_pid(&id);
    assert!(process_alive(pid));
    env.ctd.ctr(["task", "pause", &id]).run().expect_success();
    assert_eq!(env.ctd.task_status(&id).as_deref(), Some("PAUSED"));
    env.ctd.ctr(["task", "resume", &id]).run().expect_success();
    assert_eq!(env.ctd.task_status(&id).as_deref(), Some("RUNNING"));
    let out = env
        .ctd
        .ctr(["task", "metrics", "--format", "json", &id])
        .run();
    out.expect_success();
    let metrics: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("metrics are not JSON ({e}):\n{out}"));
    assert!(
        metrics["pids"]["current"].as_u64().is_some_and(|n| n >= 1),
        "{out}"
    );
    assert!(
        metrics["memory"]["usage"]["usage"]
            .as_u64()
            .is_some_and(|n| n > 0)
            || metrics["memory"]["usage"].as_u64().is_some_and(|n| n > 0),
        "no memory usage: {out}"
    );
    let ps = env.ctd.ctr(["task", "ps", &id]).run();
    ps.expect_success();
    assert!(ps.stdout.contains(&pid.to_string()), "{ps}");
    env.ctd
        .ctr(["task", "kill", "-s", "SIGTERM", &id])
        .run()
        .expect_success();
    wait_until(Duration::from_secs(30), "STOPPED after SIGTERM", || {
        env.ctd.task_status(&id).as_deref() == Some("STOPPED")
    });
    // Killing a stopped task is NotFound ("process already finished"), as with runc's shim.
    let again = env.ctd.ctr(["task", "kill", &id]).run();
    again.expect_failure();
    assert!(again.stderr.contains("not found"), "{again}");
    env.ctd.ctr(["task", "delete", &id]).run().expect_success();
    env.ctd
        .ctr(["container", "delete", &id])
        .run()
        .expect_success();
    assert!(!process_alive(pid), "the task's process is left");
    assert!(!env.runtime_state(&id).exists(), "runtime state is left");
    wait_until(Duration::from_secs(10), "the shim to exit", || {
        env.shim_pids().is_empty()
    });
}
both!(
    kill_pause_resume_metrics_delete_,
    kill_pause_resume_metrics_delete
);

fn events_arrive_in_order(flavor: Flavor) {
    let env = Env::new(flavor);
    let events = env.events();
    let id = unique_id("ev");
    env.run_detached(&id, &[], &["sleep", "1000"]);
    env.ctd
        .ctr(["task", "exec", "--exec-id", "x1"])
        .args(env.ctd.fifo_flags())
        .args([&id, "true"])
        .run()
        .expect_success();
    env.ctd.ctr(["task", "pause", &id]).run().expect_success();
    env.ctd.ctr(["task", "resume", &id]).run().expect_success();
    env.kill_and_delete(&id);
    let mut seen = Vec::new();
    wait_until(EVENT_TIMEOUT, "/tasks/delete in ctr events", || {
        seen = topics_for(&events.stdout_so_far(), &id);
        seen.iter().any(|(t, _)| t == "/tasks/delete")
    });
    let topics: Vec<&str> = seen
        .iter()
        .map(|(t, _)| t.as_str())
        .filter(|t| t.starts_with("/tasks/"))
        .collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/exit",
            "/tasks/delete",
        ],
        "events for {id}:\n{}",
        events.stdout_so_far()
    );
    let exec_exit = &seen
        .iter()
        .find(|(t, _)| t == "/tasks/exit")
        .expect("exit")
        .1;
    assert_eq!(exec_exit["id"], "x1", "{exec_exit}");
    let init_exit = &seen
        .iter()
        .filter(|(t, _)| t == "/tasks/exit")
        .nth(1)
        .expect("exit")
        .1;
    assert_eq!(init_exit["id"], Value::String(id.clone()), "{init_exit}");
    assert_eq!(init_exit["exit_status"], 137, "{init_exit}");
}
both!(events_arrive_in_order_, events_arrive_in_order);

fn oom_kill_produces_task_oom(flavor: Flavor) {
    let env = Env::new(flavor);
    let events = env.events();
    let id = unique_id("oom");
    // Doubling a shell string until the 16 MiB limit is hit.
    let out = env
        .ctd
        .ctr(["run", "--rm", "--memory-limit", "16777216"])
        .args(env.run_flags())
        .args([
            BUSYBOX_IMAGE,
            &id,
            "sh",
            "-c",
            "x=0123456789abcdef; while :; do x=$x$x; done",
        ])
        .run();
    assert_eq!(out.code(), Some(137), "not OOM-killed: {out}");
    wait_until(EVENT_TIMEOUT, "/tasks/oom in ctr events", || {
        topics_for(&events.stdout_so_far(), &id)
            .iter()
            .any(|(t, _)| t == "/tasks/oom")
    });
}
both!(oom_kill_produces_task_oom_, oom_kill_produces_task_oom);

fn containerd_restart_reconnects(flavor: Flavor) {
    let mut env = Env::new(flavor);
    let id = unique_id("restart");
    env.run_detached(&id, &[], &["sleep", "1000"]);
    let pid = env.task_pid(&id);
    let shims = env.shim_pids();
    env.ctd.restart();
    assert!(process_alive(pid), "the container died with containerd");
    assert_eq!(
        env.shim_pids(),
        shims,
        "the shim did not survive the restart"
    );
    assert_eq!(env.ctd.task_status(&id).as_deref(), Some("RUNNING"));
    assert_eq!(env.task_pid(&id), pid);
    // The reconnected shim still works.
    env.exec_echo(&id, "after", "still here");
    env.kill_and_delete(&id);
}
both!(
    containerd_restart_reconnects_,
    containerd_restart_reconnects
);

fn killed_shim_means_exited_task(flavor: Flavor) {
    let env = Env::new(flavor);
    let events = env.events();
    let id = unique_id("shimkill");
    env.run_detached(&id, &[], &["sleep", "1000"]);
    let pid = env.task_pid(&id);
    let shims = env.shim_pids();
    assert_eq!(shims.len(), 1, "one shim per container: {shims:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the shim");
    wait_until(EVENT_TIMEOUT, "TaskExit after the shim died", || {
        topics_for(&events.stdout_so_far(), &id)
            .iter()
            .any(|(t, _)| t == "/tasks/exit")
    });
    wait_until(EVENT_TIMEOUT, "the task to leave RUNNING", || {
        env.ctd.task_status(&id).as_deref() != Some("RUNNING")
    });
    // `shim delete` force-deleted the container: its process is gone too.
    wait_until(
        Duration::from_secs(10),
        "the container process to go",
        || !process_alive(pid),
    );
}
both!(
    killed_shim_means_exited_task_,
    killed_shim_means_exited_task
);

fn grouped_containers_share_one_shim(flavor: Flavor) {
    let env = Env::new(flavor);
    // `ctr run --annotation` puts it in the OCI spec, where `start` reads the group.
    let annotation = format!("io.containerd.runc.v2.group={}", unique_id("group"));
    let (a, b) = (unique_id("ga"), unique_id("gb"));
    env.run_detached(&a, &["--annotation", &annotation], &["sleep", "1000"]);
    env.run_detached(&b, &["--annotation", &annotation], &["sleep", "1000"]);
    let shims = env.shim_pids();
    assert_eq!(
        shims.len(),
        1,
        "two grouped containers, one shim: {shims:?}"
    );
    env.exec_echo(&b, "in-b", "from b");
    // Deleting one leaves the shim serving the other.
    env.kill_and_delete(&a);
    assert_eq!(env.ctd.task_status(&b).as_deref(), Some("RUNNING"));
    assert_eq!(
        env.shim_pids(),
        shims,
        "the shared shim exited with one task left"
    );
    env.exec_echo(&b, "after-a", "still b");
    env.kill_and_delete(&b);
    wait_until(Duration::from_secs(10), "the shim to exit", || {
        env.shim_pids().is_empty()
    });
}
both!(
    grouped_containers_share_one_shim_,
    grouped_containers_share_one_shim
);

fn bad_input_gets_typed_errors(flavor: Flavor) {
    let env = Env::new(flavor);
    let id = unique_id("bad");
    env.run_detached(&id, &[], &["sleep", "1000"]);
    let out = env
        .ctd
        .ctr(["task", "kill", "--exec-id", "no-such-exec", &id])
        .run();
    out.expect_failure();
    assert!(
        out.stderr.contains("not found") && out.stderr.contains("no-such-exec"),
        "{out}"
    );
    // A command that does not exist: the runtime's own error reaches ctr.
    let out = env
        .ctd
        .ctr(["task", "exec", "--exec-id", "nx"])
        .args(env.ctd.fifo_flags())
        .args([&id, "/no/such/binary"])
        .run();
    out.expect_failure();
    assert!(out.stderr.contains("/no/such/binary"), "{out}");
    env.kill_and_delete(&id);
}
both!(bad_input_gets_typed_errors_, bad_input_gets_typed_errors);

#[test]
fn a_failing_runtime_binary_is_reported_and_leaves_nothing() {
    let env = Env::new(Flavor::Skiff);
    let fake = env.ctd.sandbox().path().join("fake-runtime");
    // A runtime that fails every command the runc way: a JSON error line in --log.
    std::fs::write(
        &fake,
        "#!/bin/sh\nlog=\nwhile [ $# -gt 0 ]; do [ \"$1\" = --log ] && log=$2; shift; done\n\
         [ -n \"$log\" ] && echo '{\"level\":\"error\",\"msg\":\"fake runtime refuses\",\"time\":\"2026-01-01T00:00:00Z\"}' >> \"$log\"\n\
         exit 1\n",
    )
    .expect("write the fake runtime");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let id = unique_id("fail");
    let out = env
        .ctd
        .ctr(["run", "--rm"])
        .args(env.ctd.shim_run_flags())
        .args(env.ctd.runtime_config_flags(&fake))
        .args([BUSYBOX_IMAGE, &id, "true"])
        .run();
    out.expect_failure();
    assert!(out.stderr.contains("fake runtime refuses"), "{out}");
    wait_until(Duration::from_secs(10), "the shim to exit", || {
        env.shim_pids().is_empty()
    });
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!mounts.contains(&id), "a mount is left: {mounts}");
}
