//! A `create` that fails must fail with a clear message and leave nothing behind: no state
//! under `--root`, no process, no mount. (Failing hooks and rlimits are in the hooks and
//! process tests.)

use serde_json::json;
use skiff_tests::container::assert_no_trace;
use skiff_tests::host::processes_referencing;
use skiff_tests::{Bundle, CmdOutput, Container, Runtime, require_root, setup, unique_id};

/// Runs `create` expecting failure, checks the error mentions `needle` (case-insensitively),
/// and that nothing is left.
fn create_fails_cleanly(rt: &Runtime, bundle: &Bundle, prefix: &str, needle: &str) -> CmdOutput {
    let id = unique_id(prefix);
    let (_guard, out) = Container::create_with(rt, bundle, &id, &[]);
    out.expect_failure();
    assert!(
        out.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "the error should mention {needle:?}:\n{out}"
    );
    assert_no_trace(rt, bundle, &id);
    out
}

#[test]
fn missing_executable() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_args(&["/no-such-binary", "arg"]);
    create_fails_cleanly(&rt, &bundle, "missing-exe", "/no-such-binary");

    // A bare name is looked up in the container's PATH, and must fail the same way.
    bundle.set_args(&["no-such-command"]);
    create_fails_cleanly(&rt, &bundle, "missing-cmd", "no-such-command");
}

#[test]
fn bind_mount_with_missing_source() {
    require_root();
    let (rt, mut bundle) = setup();
    let source = rt.scratch().join("no-such-dir");
    let source = source.to_str().expect("UTF-8 temp path");
    bundle
        .add_mount("/data", "bind", source, &["rbind", "ro"])
        .set_args(&["true"]);
    create_fails_cleanly(&rt, &bundle, "bad-mount", source);
}

#[test]
fn hook_with_missing_executable() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle
        .add_hook(
            "createRuntime",
            "/no-such-hook",
            &["no-such-hook"],
            &[],
            None,
        )
        .set_args(&["true"]);
    create_fails_cleanly(&rt, &bundle, "bad-hook", "/no-such-hook");
}

#[test]
fn config_that_is_not_json() {
    require_root();
    let (rt, bundle) = setup();
    bundle.write_raw_config("{ this is not json");
    // runc 1.1 reports only the decoder's "invalid character 't' looking for beginning of
    // object key string", without naming the file: a wording difference.
    create_fails_cleanly(&rt, &bundle, "not-json", "config.json");
}

#[test]
fn empty_process_args() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| c["process"]["args"] = json!([]));
    // runc 1.1 says "args must not be empty", without the field's path: a wording difference.
    create_fails_cleanly(&rt, &bundle, "empty-args", "process.args");
}

#[test]
fn missing_root_path() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle
        .config_mut(|c| c["root"]["path"] = json!("no-such-rootfs"))
        .set_args(&["true"]);
    // runc 1.1 says "invalid rootfs: stat <path>: no such file or directory", without the
    // field's path: a wording difference.
    let out = create_fails_cleanly(&rt, &bundle, "missing-root", "root.path");
    assert!(out.stderr.contains("no-such-rootfs"), "{out}");
}

/// The fixture's own check: the leftover-process detection used by every test above must see a
/// live container, or "left nothing behind" would pass vacuously.
#[test]
fn leftover_detection_sees_a_live_container() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_args(&["sleep", "1000"]);
    let c = Container::create(&rt, &bundle, "leftover-probe");
    let pid = c.pid();
    let found = processes_referencing(bundle.path(), c.id());
    assert!(
        found.iter().any(|p| p.starts_with(&format!("pid {pid}:"))),
        "the created container's init {pid} was not detected: {found:?}"
    );
    c.start();
    let found = processes_referencing(bundle.path(), c.id());
    assert!(
        found
            .iter()
            .any(|p| p.starts_with(&format!("pid {pid}:")) && p.contains("rootfs")),
        "the running container's process {pid} was not detected by its root: {found:?}"
    );
}
