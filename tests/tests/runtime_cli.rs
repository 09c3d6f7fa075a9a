//! Command-line behaviour that callers rely on: `--version`'s layout and signal forwarding by
//! `run` in the foreground.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use skiff_tests::host::wait_until;
use skiff_tests::{Container, require_root, setup, unique_id};

/// go-runc parses `<name> version X`, then `commit:` and `spec:` lines.
#[test]
fn version_has_three_lines_in_runc_layout() {
    require_root();
    let (rt, _bundle) = setup();
    let out = rt.cmd(["--version"]).run();
    out.expect_success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].contains(" version "), "{}", out.stdout);
    assert!(lines[1].starts_with("commit: "), "{}", out.stdout);
    assert!(lines[2].starts_with("spec: 1."), "{}", out.stdout);
}

/// A signal sent to a foreground `run` reaches the container's process, and `run` exits with
/// the status the process chose.
#[test]
fn foreground_run_forwards_signals() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.sh("trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.05; done");
    let id = unique_id("sig");
    let _guard = Container::guard(&rt, &id);
    let running = rt.cmd(["run", "--bundle", bundle.path_str(), &id]).spawn();
    wait_until(
        Duration::from_secs(20),
        "the container to print ready",
        || running.stdout_so_far().contains("ready"),
    );
    let pid = running.pid().expect("spawned");
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).expect("signal the runtime");
    let out = running.wait();
    assert_eq!(out.code(), Some(42), "{out:?}");
    assert!(out.stdout.contains("got-term"), "{out:?}");
}

/// `features` (containerd runs it with no global flags) prints the runtime-spec features JSON.
#[test]
fn features_prints_the_spec_document() {
    require_root();
    let (rt, _bundle) = setup();
    let out = std::process::Command::new(rt.bin())
        .arg("features")
        .output()
        .expect("run features");
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("features is JSON");
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert!(
        v["mountOptions"]
            .as_array()
            .expect("mountOptions")
            .iter()
            .any(|o| o == "rro")
    );
    assert!(
        v["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .any(|n| n == "user")
    );
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
}
