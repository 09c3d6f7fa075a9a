//! OCI hooks: every kind runs, in the lifecycle's order, with the state on stdin and in the
//! right mount namespace; a failing or timed-out hook fails `create` and leaves nothing.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use skiff_tests::container::assert_no_trace;
use skiff_tests::host::wait_process_gone;
use skiff_tests::{Container, require_root, setup, unique_id};

/// Hooks get no environment unless the config gives them one.
const HOOK_ENV: &[&str] = &["PATH=/usr/sbin:/usr/bin:/sbin:/bin"];

/// A hook body for `sh -c`: `$0` is the hook's name, `$1` the container id, the rest are
/// candidate directories. It checks that the state on stdin carries the id, then appends
/// `<name> <ok|bad-state> <dir>` to `markers` in the first candidate directory that exists.
///
/// Hooks that run in the container's mount namespace cannot all see the same path: before
/// pivot_root the host path of the marker directory resolves, after it only the bind-mounted
/// `/hooks` does. Recording which one was used shows where the hook ran.
const MARKER_SCRIPT: &str = r#"state=$(cat)
case "$state" in *"\"$1\""*) ok=ok ;; *) ok=bad-state ;; esac
name=$0
shift 1
for d in "$@"; do
  if [ -d "$d" ]; then echo "$name $ok $d" >> "$d/markers"; exit 0; fi
done
exit 1"#;

/// The lifecycle order of the hooks (runtime-spec `runtime.md`, "Lifecycle").
const EXPECTED_ORDER: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

#[test]
fn all_hooks_run_in_order_with_the_state() {
    require_root();
    let (rt, mut bundle) = setup();
    let markers_dir = rt.scratch_dir("hooks");
    let host_dir = markers_dir.to_str().expect("UTF-8 temp path");
    let id = unique_id("hooks");
    bundle.bind_dir(&markers_dir, "/hooks", &["rw"]);
    for (kind, dirs) in [
        ("prestart", vec![host_dir]),
        ("createRuntime", vec![host_dir]),
        ("createContainer", vec![host_dir, "/hooks"]),
        ("startContainer", vec![host_dir, "/hooks"]),
        ("poststart", vec![host_dir]),
        ("poststop", vec![host_dir]),
    ] {
        let mut args = vec!["sh", "-c", MARKER_SCRIPT, kind, &id];
        args.extend(dirs);
        bundle.add_hook(kind, "/bin/sh", &args, HOOK_ENV, None);
    }
    bundle.sh("echo 'process ok /hooks' >> /hooks/markers");

    let (c, out) = Container::create_with(&rt, &bundle, &id, &[]);
    out.expect_success();
    c.start();
    c.wait_status("stopped", Duration::from_secs(10));
    rt.cmd(["delete", &id]).run().expect_success();

    let markers = fs::read_to_string(markers_dir.join("markers")).unwrap_or_default();
    let entries: Vec<Vec<&str>> = markers
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = entries.iter().map(|e| e[0]).collect();
    // The user process marks too, but only "after startContainer" is ordered for it: poststart
    // runs once the process is executed, racing with what the process then does.
    let position = |name: &str| names.iter().position(|n| *n == name);
    assert!(
        position("startContainer") < position("process") && position("process").is_some(),
        "startContainer must run before the user process:\n{markers}"
    );
    let hooks: Vec<&str> = names.iter().copied().filter(|n| *n != "process").collect();
    // runc 1.1.5 runs the poststart hooks during `create` (libcontainer runs them as soon as
    // the init process is spawned), so against it poststart comes before startContainer: a
    // runc deviation from the spec's lifecycle (poststart after the user process is executed).
    assert_eq!(hooks, EXPECTED_ORDER, "markers:\n{markers}");
    for entry in &entries {
        assert_eq!(
            entry.get(1),
            Some(&"ok"),
            "{} got no state with the id",
            entry[0]
        );
    }
    let dir_of = |name: &str| entries.iter().find(|e| e[0] == name).map(|e| e[2]);
    // startContainer runs after pivot_root: only the container's view of the directory exists.
    assert_eq!(
        dir_of("startContainer"),
        Some("/hooks"),
        "markers:\n{markers}"
    );
    // The runtime-namespace hooks see the host path.
    for name in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(dir_of(name), Some(host_dir), "markers:\n{markers}");
    }
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle
        .add_hook(
            "createRuntime",
            "/bin/sh",
            &[
                "sh",
                "-c",
                "cat > /dev/null; echo hook-failed-on-purpose >&2; exit 7",
            ],
            HOOK_ENV,
            None,
        )
        .set_args(&["sleep", "1000"]);
    let id = unique_id("hook-fails");
    let (_c, out) = Container::create_with(&rt, &bundle, &id, &[]);
    out.expect_failure();
    assert_no_trace(&rt, &bundle, &id);
}

#[test]
fn hook_timeout_kills_the_hook_and_fails_create() {
    require_root();
    let (rt, mut bundle) = setup();
    let pid_file = rt.scratch().join("hook.pid");
    let pid_path = pid_file.to_str().expect("UTF-8 temp path");
    bundle
        .add_hook(
            "createRuntime",
            "/bin/sh",
            &["sh", "-c", "echo $$ > \"$0\"; exec sleep 30", pid_path],
            HOOK_ENV,
            Some(1),
        )
        .set_args(&["sleep", "1000"]);
    let id = unique_id("hook-timeout");
    let started = Instant::now();
    let (_c, out) = Container::create_with(&rt, &bundle, &id, &[]);
    let elapsed = started.elapsed();
    out.expect_failure();
    assert!(
        elapsed < Duration::from_secs(20),
        "create took {elapsed:?}: the 1 s hook timeout was not enforced"
    );
    let stderr = out.stderr.to_lowercase();
    assert!(
        stderr.contains("timeout") || stderr.contains("timed out"),
        "the error should say the hook timed out:\n{out}"
    );
    let hook_pid: i32 = read_pid(&pid_file);
    wait_process_gone(hook_pid, Duration::from_secs(5));
    assert_no_trace(&rt, &bundle, &id);
}

fn read_pid(path: &Path) -> i32 {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the hook did not write {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{} holds {text:?}: {e}", path.display()))
}

/// runtime-spec 1.1+ and runc: a failing poststart hook makes `start` fail and stops the
/// container; `delete` still runs the poststop hooks.
#[test]
fn failing_poststart_hook_fails_start_and_stops_the_container() {
    require_root();
    let (rt, mut bundle) = setup();
    let marker = rt.scratch().join("poststop-ran");
    let marker_path = marker.to_str().expect("UTF-8 temp path");
    bundle
        .add_hook(
            "poststart",
            "/bin/sh",
            &[
                "sh",
                "-c",
                "cat > /dev/null; echo poststart-failed >&2; exit 3",
            ],
            HOOK_ENV,
            None,
        )
        .add_hook(
            "poststop",
            "/bin/sh",
            &["sh", "-c", "cat > /dev/null; touch \"$0\"", marker_path],
            HOOK_ENV,
            None,
        )
        .set_args(&["sleep", "1000"]);
    let c = Container::create(&rt, &bundle, "poststart-fails");
    let pid = c.pid();
    rt.cmd(["start", c.id()])
        .run()
        .expect_error_containing("poststart");
    wait_process_gone(pid, Duration::from_secs(10));
    assert_eq!(c.status(), "stopped");
    rt.cmd(["delete", c.id()]).run().expect_success();
    assert!(marker.exists(), "poststop hooks did not run");
    assert_no_trace(&rt, &bundle, c.id());
}

/// runtime.md, "Lifecycle" step 7: a failing startContainer hook makes `start` fail with the
/// hook's error, and the container stops without running its process.
#[test]
fn failing_start_container_hook_fails_start() {
    require_root();
    let (rt, mut bundle) = setup();
    let ran = rt.scratch().join("process-ran");
    bundle
        .bind_dir(rt.scratch(), "/scratch", &["rw"])
        .add_hook(
            "startContainer",
            "/bin/sh",
            &[
                "sh",
                "-c",
                "cat > /dev/null; echo start-hook-failed >&2; exit 9",
            ],
            HOOK_ENV,
            None,
        )
        .sh("touch /scratch/process-ran");
    let c = Container::create(&rt, &bundle, "startcontainer-fails");
    let pid = c.pid();
    let out = rt.cmd(["start", c.id()]).run();
    out.expect_error_containing("startContainer");
    out.expect_error_containing("start-hook-failed");
    wait_process_gone(pid, Duration::from_secs(10));
    assert_eq!(c.status(), "stopped");
    assert!(
        !ran.exists(),
        "the process ran although its startContainer hook failed"
    );
}
