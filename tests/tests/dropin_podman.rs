//! Drop-in proof with podman 4.3: `podman --runtime <skiff>` runs containers through conmon with
//! the runtime under test, issue 4.
//!
//! Each test gets its own podman storage and mount namespace ([`Podman::start`]) and loads the
//! busybox test image with `podman load`.

use std::time::Duration;

use skiff_tests::engines::{Podman, read_cgroup_file};
use skiff_tests::image::BUSYBOX_IMAGE;
use skiff_tests::pty::PtySession;
use skiff_tests::{Image, unique_id};

const TTY_TIMEOUT: Duration = Duration::from_secs(60);

/// podman with the busybox image loaded.
fn podman() -> Podman {
    let podman = Podman::start();
    eprintln!(
        "podman's namespace ready after {:?} (cgroup parent /{})",
        podman.startup_time(),
        podman.sandbox().name()
    );
    podman.load(&Image::busybox());
    podman
}

#[test]
fn podman_run_prints_the_output() {
    let podman = podman();
    let out = podman
        .podman(["run", "--rm"])
        .args(podman.run_flags())
        .args([BUSYBOX_IMAGE, "echo", "hi from skiff"])
        .run();
    out.expect_success();
    assert_eq!(out.stdout, "hi from skiff\n", "{out}");
    let ps = podman.podman(["ps", "-aq"]).run();
    assert_eq!(ps.stdout.trim(), "", "--rm left a container: {ps}");
}

#[test]
fn podman_run_propagates_the_exit_code() {
    let podman = podman();
    let out = podman
        .podman(["run", "--rm"])
        .args(podman.run_flags())
        .args([BUSYBOX_IMAGE, "sh", "-c", "echo before; exit 3"])
        .run();
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(out.stdout, "before\n", "{out}");
}

#[test]
fn podman_runs_an_image_loaded_from_a_docker_archive() {
    let podman = Podman::start();
    podman.load_docker_archive(&Image::busybox());
    // podman 4.3 names a docker-archive's short RepoTags `localhost/<name>`.
    let out = podman
        .podman(["run", "--rm"])
        .args(podman.run_flags())
        .args(["localhost/busybox:latest", "cat", "/etc/group"])
        .run();
    out.expect_success();
    assert!(out.stdout.contains("nobody:x:65534:"), "{out}");
}

#[test]
fn podman_exec_runs_in_the_container() {
    let podman = podman();
    let name = unique_id("exec");
    let run = podman
        .podman(["run", "-d", "--name", &name])
        .args(podman.run_flags())
        .args([BUSYBOX_IMAGE, "sleep", "1000"])
        .run();
    run.expect_success();
    let id = run.stdout.trim().to_string();
    let out = podman
        .podman(["exec", &name, "sh", "-c"])
        .arg("echo exec-out; echo pid1=$(cat /proc/1/comm); exit 7")
        .run();
    assert_eq!(out.code(), Some(7), "{out}");
    assert!(out.stdout.contains("exec-out"), "{out}");
    assert!(
        out.stdout.contains("pid1=sleep"),
        "the exec does not see the container's pid 1:\n{out}"
    );
    let cgroup = podman.cgroup_path(&id);
    let procs = read_cgroup_file(&cgroup, "pids", "cgroup.procs", "cgroup.procs");
    assert!(
        procs.as_ref().is_ok_and(|p| !p.is_empty()),
        "the container's cgroup {cgroup} has no processes: {procs:?}"
    );
    podman
        .podman(["rm", "--force", "--time", "0", &name])
        .run()
        .expect_success();
}

#[test]
fn podman_exec_tty_is_interactive() {
    let podman = podman();
    let name = unique_id("exectty");
    podman
        .podman(["run", "-d", "--name", &name])
        .args(podman.run_flags())
        .args([BUSYBOX_IMAGE, "sleep", "1000"])
        .run()
        .expect_success();
    let cmd = podman.podman(["exec", "-it", &name, "sh"]);
    PtySession::check_interactive_shell(cmd.command(), &cmd.describe(), 4, TTY_TIMEOUT);
}

#[test]
fn skiff_errors_reach_podman() {
    let podman = podman();
    let out = podman
        .podman(["run", "--rm"])
        .args(podman.run_flags())
        .args([BUSYBOX_IMAGE, "no-such-binary-in-the-image"])
        .run();
    out.expect_failure();
    assert!(
        out.stderr.contains("executable file not found"),
        "podman does not show the runtime's error:\n{out}"
    );
}
