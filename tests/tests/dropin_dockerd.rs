//! Drop-in proof with dockerd 20.10: `dockerd --add-runtime skiff=<path>` runs containers
//! through its managed containerd and runc shim with the runtime under test
//! (`docker run --runtime skiff`), issue 4.
//!
//! Each test starts its own dockerd in a temp dir ([`Dockerd::start`]) and loads the busybox
//! test image with `docker load`. Resource flags are checked in the container's cgroup as the
//! host sees it (`/sys/fs/cgroup/<controller>/<parent>/<id>/…` on v1, the unified file on v2).

use std::path::Path;
use std::time::Duration;

use skiff_tests::engines::dockerd::DOCKER_CLI_28;
use skiff_tests::engines::{
    CgroupLayout, Dockerd, assert_container_gone, cgroup_layout, read_cgroup_file,
};
use skiff_tests::pty::PtySession;
use skiff_tests::{Image, unique_id};

const TTY_TIMEOUT: Duration = Duration::from_secs(60);

/// dockerd with the busybox image loaded.
fn dockerd() -> Dockerd {
    let dockerd = Dockerd::start();
    eprintln!(
        "dockerd answered after {:?} (cgroup parent /{})",
        dockerd.startup_time(),
        dockerd.sandbox().name()
    );
    dockerd.load(&Image::busybox());
    dockerd
}

/// `docker run -d <skiff flags> <extra…> --name <name> busybox <args…>`; returns the full id.
#[track_caller]
fn run_detached(dockerd: &Dockerd, name: &str, extra: &[&str], args: &[&str]) -> String {
    let out = dockerd
        .docker(["run", "-d", "--name", name])
        .args(dockerd.run_flags())
        .args(extra)
        .arg("busybox")
        .args(args)
        .run();
    out.expect_success();
    let id = out.stdout.trim().to_string();
    assert_eq!(
        id.len(),
        64,
        "docker run -d printed no container id:\n{out}"
    );
    id
}

#[test]
fn docker_run_prints_the_output() {
    let dockerd = dockerd();
    let out = dockerd
        .docker(["run", "--rm"])
        .args(dockerd.run_flags())
        .args(["busybox", "echo", "hi from skiff"])
        .run();
    out.expect_success();
    assert_eq!(out.stdout, "hi from skiff\n", "{out}");
    let ps = dockerd.docker(["ps", "-aq"]).run();
    assert_eq!(ps.stdout.trim(), "", "--rm left a container: {ps}");
}

#[test]
fn docker_run_propagates_the_exit_code() {
    let dockerd = dockerd();
    let out = dockerd
        .docker(["run", "--rm"])
        .args(dockerd.run_flags())
        .args(["busybox", "sh", "-c", "echo before; exit 3"])
        .run();
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(out.stdout, "before\n", "{out}");
}

#[test]
fn docker_run_uses_the_image_config() {
    let dockerd = dockerd();
    // Cmd ["sh"] with no args on stdin /dev/null: sh reads EOF and exits 0.
    let out = dockerd
        .docker(["run", "--rm"])
        .args(dockerd.run_flags())
        .arg("busybox")
        .run();
    out.expect_success();
    let out = dockerd
        .docker(["run", "--rm", "--workdir", "/tmp", "--env", "FOO=bar"])
        .args(dockerd.run_flags())
        .args(["busybox", "sh", "-c", "pwd; echo $FOO; echo $PATH; id -u"])
        .run();
    out.expect_success();
    assert_eq!(
        out.stdout, "/tmp\nbar\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n0\n",
        "{out}"
    );
}

#[test]
fn docker_run_it_is_interactive() {
    let dockerd = dockerd();
    let cmd = dockerd
        .docker(["run", "--rm", "-it"])
        .args(dockerd.run_flags())
        .args(["busybox", "sh"]);
    PtySession::check_interactive_shell(cmd.command(), &cmd.describe(), 5, TTY_TIMEOUT);
}

#[test]
fn docker_exec_runs_in_the_container() {
    let dockerd = dockerd();
    let name = unique_id("exec");
    run_detached(&dockerd, &name, &[], &["sleep", "1000"]);
    let out = dockerd
        .docker(["exec", &name, "sh", "-c"])
        .arg("echo exec-out; echo pid1=$(cat /proc/1/comm); exit 7")
        .run();
    assert_eq!(out.code(), Some(7), "{out}");
    assert!(out.stdout.contains("exec-out"), "{out}");
    assert!(
        out.stdout.contains("pid1=sleep"),
        "the exec does not see the container's pid 1:\n{out}"
    );
    let top = dockerd.docker(["top", &name]).run();
    top.expect_success();
    assert!(top.stdout.contains("sleep 1000"), "{top}");
    dockerd.docker(["rm", "-f", &name]).run().expect_success();
}

#[test]
fn docker_exec_it_is_interactive() {
    let dockerd = dockerd();
    let name = unique_id("exectty");
    run_detached(&dockerd, &name, &[], &["sleep", "1000"]);
    let cmd = dockerd.docker(["exec", "-it", &name, "sh"]);
    PtySession::check_interactive_shell(cmd.command(), &cmd.describe(), 4, TTY_TIMEOUT);
}

#[test]
fn docker_run_memory_limit_reaches_the_cgroup() {
    let dockerd = dockerd();
    let name = unique_id("mem");
    let id = run_detached(&dockerd, &name, &["--memory", "64m"], &["sleep", "1000"]);
    let cgroup = dockerd.cgroup_path(&id);
    let limit = read_cgroup_file(&cgroup, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(limit.as_deref(), Ok("67108864"), "memory limit of {cgroup}");
    let inspect = dockerd
        .docker(["inspect", "--format", "{{.HostConfig.Memory}}", &name])
        .run();
    assert_eq!(inspect.stdout.trim(), "67108864", "{inspect}");
}

#[test]
fn docker_run_pids_limit_reaches_the_cgroup() {
    let dockerd = dockerd();
    let name = unique_id("pids");
    let id = run_detached(&dockerd, &name, &["--pids-limit", "50"], &["sleep", "1000"]);
    let cgroup = dockerd.cgroup_path(&id);
    let limit = read_cgroup_file(&cgroup, "pids", "pids.max", "pids.max");
    assert_eq!(limit.as_deref(), Ok("50"), "pids limit of {cgroup}");
}

#[test]
fn docker_run_cpus_reaches_the_cgroup() {
    let dockerd = dockerd();
    let name = unique_id("cpus");
    let id = run_detached(&dockerd, &name, &["--cpus", "0.5"], &["sleep", "1000"]);
    let cgroup = dockerd.cgroup_path(&id);
    // --cpus 0.5 is a CFS quota of 50000 µs per 100000 µs period.
    match cgroup_layout() {
        CgroupLayout::Legacy => {
            let quota = read_cgroup_file(&cgroup, "cpu", "cpu.cfs_quota_us", "");
            let period = read_cgroup_file(&cgroup, "cpu", "cpu.cfs_period_us", "");
            assert_eq!(quota.as_deref(), Ok("50000"), "cpu quota of {cgroup}");
            assert_eq!(period.as_deref(), Ok("100000"), "cpu period of {cgroup}");
        }
        CgroupLayout::Unified => {
            let max = read_cgroup_file(&cgroup, "", "", "cpu.max");
            assert_eq!(max.as_deref(), Ok("50000 100000"), "cpu.max of {cgroup}");
        }
    }
}

#[test]
fn docker_stop_and_rm_leave_nothing() {
    let dockerd = dockerd();
    let name = unique_id("stop");
    let id = run_detached(&dockerd, &name, &[], &["sleep", "1000"]);
    dockerd
        .docker(["stop", "--time", "1", &name])
        .run()
        .expect_success();
    let state = dockerd
        .docker([
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
            &name,
        ])
        .run();
    // sleep as pid 1 ignores SIGTERM, so `stop` escalates to SIGKILL: 137.
    assert_eq!(state.stdout.trim(), "exited 137", "{state}");
    dockerd.docker(["rm", &name]).run().expect_success();
    assert_container_gone(
        &dockerd.runtime_root().join("moby").join(&id),
        &dockerd.cgroup_path(&id),
    );
}

#[test]
fn docker_pause_and_unpause() {
    let dockerd = dockerd();
    let name = unique_id("pause");
    run_detached(&dockerd, &name, &[], &["sleep", "1000"]);
    dockerd.docker(["pause", &name]).run().expect_success();
    let status = dockerd
        .docker(["inspect", "--format", "{{.State.Status}}", &name])
        .run();
    assert_eq!(status.stdout.trim(), "paused", "{status}");
    dockerd.docker(["unpause", &name]).run().expect_success();
    let status = dockerd
        .docker(["inspect", "--format", "{{.State.Status}}", &name])
        .run();
    assert_eq!(status.stdout.trim(), "running", "{status}");
}

#[test]
fn skiff_errors_reach_the_docker_cli() {
    let dockerd = dockerd();
    let out = dockerd
        .docker(["run", "--rm"])
        .args(dockerd.run_flags())
        .args(["busybox", "no-such-binary-in-the-image"])
        .run();
    out.expect_failure();
    assert!(
        out.stderr.contains("executable file not found"),
        "docker does not show the runtime's error:\n{out}"
    );
}

#[test]
fn docker_28_cli_drives_the_20_10_daemon() {
    let cli = Path::new(DOCKER_CLI_28);
    assert!(
        cli.is_file(),
        "{DOCKER_CLI_28} is missing: every machine comes with a docker CLI 28.x there (TESTING.md)"
    );
    let dockerd = dockerd();
    let out = dockerd
        .docker_with(cli, ["run", "--rm"])
        .args(dockerd.run_flags())
        .args(["busybox", "sh", "-c", "echo hi from the 28 cli; exit 6"])
        .run();
    assert_eq!(out.code(), Some(6), "{out}");
    assert_eq!(out.stdout, "hi from the 28 cli\n", "{out}");
}
