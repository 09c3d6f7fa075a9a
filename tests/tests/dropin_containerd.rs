//! Drop-in proof with containerd 1.6: its stock runc shim runs the runtime under test as its
//! runc binary (`ctr run --runc-binary <skiff>`), issue 4.
//!
//! Each test starts its own containerd in a temp dir ([`Containerd::start`]), imports the
//! busybox test image, and drives it with `ctr` as a user would. What containerd relies on is
//! in `reference/oci-runtimes.md` §5: create/start/kill/delete with `--log <bundle>/log.json
//! --log-format json`, `exec --process`, `ps --format json`, `pause`/`resume`, `update`, and the
//! last `"level":"error"` message of the JSON log as the error shown to the user.

use std::time::Duration;

use serde_json::Value;
use skiff_tests::engines::{Containerd, assert_container_gone, read_cgroup_file};
use skiff_tests::host::{process_alive, wait_until};
use skiff_tests::image::BUSYBOX_IMAGE;
use skiff_tests::pty::PtySession;
use skiff_tests::{Image, unique_id};

const TTY_TIMEOUT: Duration = Duration::from_secs(60);

/// containerd with the busybox image imported from a docker-archive.
fn containerd() -> Containerd {
    let ctd = Containerd::start();
    eprintln!(
        "containerd answered after {:?} (namespace {})",
        ctd.startup_time(),
        ctd.namespace()
    );
    ctd.import(&Image::busybox());
    ctd
}

/// `ctr run -d --null-io <skiff flags> busybox <id> <args…>`, then waits for RUNNING.
#[track_caller]
fn run_detached(ctd: &Containerd, id: &str, extra: &[&str], args: &[&str]) {
    ctd.ctr(["run", "-d", "--null-io"])
        .args(ctd.run_flags())
        .args(extra)
        .args([BUSYBOX_IMAGE, id])
        .args(args)
        .run()
        .expect_success();
    wait_until(
        Duration::from_secs(30),
        &format!("task {id} RUNNING"),
        || ctd.task_status(id).as_deref() == Some("RUNNING"),
    );
}

/// The host pid of task `id` from `ctr task ls`.
fn task_pid(ctd: &Containerd, id: &str) -> i32 {
    ctd.tasks()
        .into_iter()
        .find(|(task, _, _)| task == id)
        .and_then(|(_, pid, _)| pid.parse().ok())
        .unwrap_or_else(|| panic!("task {id} is not listed by `ctr task ls`"))
}

/// Kills and deletes task and container `id`, checking each step.
#[track_caller]
fn kill_and_delete(ctd: &Containerd, id: &str) {
    ctd.ctr(["task", "kill", "-s", "SIGKILL", id])
        .run()
        .expect_success();
    wait_until(
        Duration::from_secs(30),
        &format!("task {id} STOPPED"),
        || ctd.task_status(id).as_deref() == Some("STOPPED"),
    );
    ctd.ctr(["task", "delete", id]).run().expect_success();
    ctd.ctr(["container", "delete", id]).run().expect_success();
}

#[test]
fn ctr_run_prints_the_output_and_rm_leaves_nothing() {
    let ctd = containerd();
    let id = unique_id("echo");
    let out = ctd
        .ctr(["run", "--rm"])
        .args(ctd.run_flags())
        .args([BUSYBOX_IMAGE, &id, "echo", "hi from skiff"])
        .run();
    out.expect_success();
    assert_eq!(out.stdout, "hi from skiff\n", "{out}");
    let containers = ctd.ctr(["container", "ls", "-q"]).run();
    assert!(
        !containers.stdout.contains(&id),
        "--rm left the container: {containers}"
    );
    let state = ctd.runtime_root().join(&id);
    assert!(
        !state.exists(),
        "the runtime's state {} is left after delete",
        state.display()
    );
}

#[test]
fn ctr_run_propagates_the_exit_code() {
    let ctd = containerd();
    let id = unique_id("exit");
    let out = ctd
        .ctr(["run", "--rm"])
        .args(ctd.run_flags())
        .args([BUSYBOX_IMAGE, &id, "sh", "-c", "echo before; exit 3"])
        .run();
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(out.stdout, "before\n", "{out}");
}

#[test]
fn ctr_runs_an_image_imported_from_an_oci_layout() {
    let ctd = Containerd::start();
    let image = Image::busybox_named("docker.io/skiff/oci-busybox:v1").expect("image");
    ctd.import_oci(&image);
    let id = unique_id("oci");
    let out = ctd
        .ctr(["run", "--rm"])
        .args(ctd.run_flags())
        .args([
            image.name(),
            &id,
            "sh",
            "-c",
            "cat /etc/passwd; pwd; echo $PATH",
        ])
        .run();
    out.expect_success();
    assert!(out.stdout.contains("nobody:x:65534"), "{out}");
    assert!(
        out.stdout.contains("\n/\n"),
        "WorkingDir / not applied: {out}"
    );
    assert!(
        out.stdout.contains("/usr/sbin:/usr/bin:/sbin:/bin"),
        "{out}"
    );
}

#[test]
fn ctr_run_tty_is_interactive() {
    let ctd = containerd();
    let id = unique_id("tty");
    let cmd = ctd
        .ctr(["run", "--rm", "-t"])
        .args(ctd.run_flags())
        .args([BUSYBOX_IMAGE, &id, "sh"]);
    PtySession::check_interactive_shell(cmd.command(), &cmd.describe(), 5, TTY_TIMEOUT);
}

#[test]
fn ctr_task_exec_runs_in_the_container_and_returns_its_code() {
    let ctd = containerd();
    let id = unique_id("exec");
    run_detached(&ctd, &id, &[], &["sleep", "1000"]);
    let out = ctd
        .ctr(["task", "exec", "--exec-id", "e1"])
        .args(ctd.fifo_flags())
        .args([
            &id,
            "sh",
            "-c",
            "echo exec-out; echo pid1=$(cat /proc/1/comm); exit 7",
        ])
        .run();
    assert_eq!(out.code(), Some(7), "{out}");
    assert!(out.stdout.contains("exec-out"), "{out}");
    assert!(
        out.stdout.contains("pid1=sleep"),
        "the exec does not see the container's pid 1:\n{out}"
    );
    kill_and_delete(&ctd, &id);
}

#[test]
fn ctr_task_exec_tty_is_interactive() {
    let ctd = containerd();
    let id = unique_id("exectty");
    run_detached(&ctd, &id, &[], &["sleep", "1000"]);
    let cmd = ctd
        .ctr(["task", "exec", "-t", "--exec-id", "tty1"])
        .args(ctd.fifo_flags())
        .args([&id, "sh"]);
    PtySession::check_interactive_shell(cmd.command(), &cmd.describe(), 4, TTY_TIMEOUT);
    kill_and_delete(&ctd, &id);
}

#[test]
fn ctr_task_kill_and_delete_leave_nothing() {
    let ctd = containerd();
    let id = unique_id("kill");
    run_detached(&ctd, &id, &[], &["sleep", "1000"]);
    let pid = task_pid(&ctd, &id);
    assert!(process_alive(pid), "task pid {pid} is not alive");
    kill_and_delete(&ctd, &id);
    wait_until(Duration::from_secs(10), "the task's process to go", || {
        !process_alive(pid)
    });
    assert_container_gone(&ctd.runtime_root().join(&id), &ctd.cgroup_path(&id));
}

#[test]
fn ctr_task_kill_all_signals_every_process() {
    let ctd = containerd();
    let id = unique_id("killall");
    run_detached(&ctd, &id, &[], &["sh", "-c", "sleep 1000 & sleep 1000"]);
    ctd.ctr(["task", "kill", "--all", "-s", "SIGKILL", &id])
        .run()
        .expect_success();
    wait_until(
        Duration::from_secs(30),
        "task STOPPED after kill --all",
        || ctd.task_status(&id).as_deref() == Some("STOPPED"),
    );
    ctd.ctr(["task", "delete", &id]).run().expect_success();
}

#[test]
fn ctr_task_pause_and_resume_freeze_the_cgroup() {
    let ctd = containerd();
    let id = unique_id("pause");
    run_detached(&ctd, &id, &[], &["sleep", "1000"]);
    let cgroup = ctd.cgroup_path(&id);
    ctd.ctr(["task", "pause", &id]).run().expect_success();
    assert_eq!(ctd.task_status(&id).as_deref(), Some("PAUSED"));
    let frozen = read_cgroup_file(&cgroup, "freezer", "freezer.state", "cgroup.freeze");
    assert!(
        matches!(frozen.as_deref(), Ok("FROZEN") | Ok("1")),
        "paused, but the cgroup {cgroup} is not frozen: {frozen:?}"
    );
    ctd.ctr(["task", "resume", &id]).run().expect_success();
    assert_eq!(ctd.task_status(&id).as_deref(), Some("RUNNING"));
    let thawed = read_cgroup_file(&cgroup, "freezer", "freezer.state", "cgroup.freeze");
    assert!(
        matches!(thawed.as_deref(), Ok("THAWED") | Ok("0")),
        "resumed, but the cgroup {cgroup} is not thawed: {thawed:?}"
    );
    kill_and_delete(&ctd, &id);
}

#[test]
fn ctr_task_metrics_reads_the_containers_cgroup() {
    let ctd = containerd();
    let id = unique_id("metrics");
    run_detached(&ctd, &id, &[], &["sleep", "1000"]);
    let out = ctd.ctr(["task", "metrics", "--format", "json", &id]).run();
    out.expect_success();
    let metrics: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("metrics are not JSON ({e}):\n{out}"));
    // ctr prints the decoded cgroup v1 or v2 `Metrics` message: pids.current counts `sleep`.
    let pids = metrics["pids"]["current"].as_u64();
    assert!(
        pids.is_some_and(|n| n >= 1),
        "metrics do not count the container's process:\n{out}"
    );
    kill_and_delete(&ctd, &id);
}

#[test]
fn ctr_run_memory_limit_reaches_the_cgroup() {
    let ctd = containerd();
    let id = unique_id("mem");
    run_detached(
        &ctd,
        &id,
        &["--memory-limit", "67108864"],
        &["sleep", "1000"],
    );
    let cgroup = ctd.cgroup_path(&id);
    let limit = read_cgroup_file(&cgroup, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(limit.as_deref(), Ok("67108864"), "memory limit of {cgroup}");
    kill_and_delete(&ctd, &id);
}

#[test]
fn skiff_errors_reach_ctr_with_skiffs_message() {
    let ctd = containerd();
    let id = unique_id("err");
    let out = ctd
        .ctr(["run", "--rm"])
        .args(ctd.run_flags())
        .args([BUSYBOX_IMAGE, &id, "no-such-binary-in-the-image"])
        .run();
    out.expect_failure();
    // containerd reads the last "level":"error" line of the runtime's JSON log and shows its
    // msg; without a usable log it says "unable to retrieve OCI runtime error".
    assert!(
        out.stderr.contains("executable file not found"),
        "ctr does not show the runtime's error:\n{out}"
    );
    assert!(
        !out.stderr.contains("unable to retrieve OCI runtime error"),
        "containerd could not read the runtime's log:\n{out}"
    );
}
