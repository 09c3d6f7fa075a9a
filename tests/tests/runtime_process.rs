//! The container process: args, env, cwd, user and groups, umask, rlimits, oom_score_adj,
//! `--preserve-fds`, and a terminal delivered over `--console-socket`.

use std::fs;
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit};
use serde_json::json;
use skiff_tests::container::assert_no_trace;
use skiff_tests::host::{parse_status_field, status_field};
use skiff_tests::{Container, require_root, setup, unique_id};

/// The host wrapper that opens `$0` as fd 3 and then execs the runtime (`"$@"`): how a test
/// hands the runtime an extra fd without `unsafe` `pre_exec`.
const FD3_WRAPPER: &str = "exec 3<\"$0\"; exec \"$@\"";

/// True if this process holds `CAP_SYS_RESOURCE` (capability 24) in its effective set.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    status_field(
        std::process::id().try_into().expect("pid fits i32"),
        "CapEff",
    )
    .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
    .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

#[test]
fn args_are_passed_verbatim() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_args(&[
        "sh",
        "-c",
        "printf '[%s]' \"$@\"",
        "sh",
        "a b",
        "c",
        "",
        "*",
    ]);
    let out = Container::run(&rt, &bundle, &[]);
    out.expect_success();
    assert_eq!(out.stdout, "[a b][c][][*]");
}

#[test]
fn env_is_exactly_the_configured_one() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle
        .set_env("FOO", "bar baz")
        .set_env("EMPTY", "")
        .config_mut(|c| {
            if let Some(env) = c["process"]["env"].as_array_mut() {
                env.retain(|v| !v.as_str().is_some_and(|s| s.starts_with("TERM=")));
            }
        })
        .set_args(&["env"]);
    let out = Container::run(&rt, &bundle, &[]);
    out.expect_success();
    let vars: Vec<&str> = out.stdout.lines().collect();
    assert!(vars.contains(&"FOO=bar baz"), "{out}");
    assert!(vars.contains(&"EMPTY="), "{out}");
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{out}");
    // Nothing of the runtime's own environment leaks in (HOME may be added, as runc does).
    for var in &vars {
        let name = var.split('=').next().unwrap_or_default();
        assert!(
            ["FOO", "EMPTY", "PATH", "HOME", "PWD", "SHLVL"].contains(&name),
            "unexpected variable {var}\n{out}"
        );
    }
}

#[test]
fn cwd_is_set() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| c["process"]["cwd"] = json!("/tmp"));
    let out = Container::run_sh(&rt, &mut bundle, "pwd");
    assert_eq!(out.trim(), "/tmp");
}

#[test]
fn user_uid_gid_and_additional_gids() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["process"]["user"] = json!({ "uid": 1000, "gid": 1001, "additionalGids": [10, 20] });
    });
    let out = Container::run_sh(&rt, &mut bundle, "id -u; id -g; cat /proc/self/status");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1000"), "{out}");
    assert_eq!(lines.next(), Some("1001"), "{out}");
    let status = lines.collect::<Vec<_>>().join("\n");
    let field = |name| parse_status_field(&status, name).unwrap_or_default();
    assert!(
        field("Uid").split_whitespace().all(|id| id == "1000"),
        "real, effective, saved and fs uid: {}",
        field("Uid")
    );
    assert!(
        field("Gid").split_whitespace().all(|id| id == "1001"),
        "real, effective, saved and fs gid: {}",
        field("Gid")
    );
    let mut groups: Vec<String> = field("Groups")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    groups.sort();
    assert_eq!(groups, ["10", "20"], "supplementary groups");
}

#[test]
fn umask_is_applied() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| c["process"]["user"]["umask"] = json!(0o027));
    let out = Container::run_sh(&rt, &mut bundle, "umask");
    assert_eq!(out.trim(), "0027");
}

#[test]
fn rlimit_nofile_is_applied() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| {
        c["process"]["rlimits"] = json!([{ "type": "RLIMIT_NOFILE", "soft": 1234, "hard": 2345 }]);
    });
    let out = Container::run_sh(
        &rt,
        &mut bundle,
        "ulimit -n; ulimit -Hn; grep 'Max open files' /proc/self/limits",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some("1234"), "{out}");
    assert_eq!(lines.get(1).copied(), Some("2345"), "{out}");
    let limits: Vec<&str> = lines
        .get(2)
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(limits.get(3..5), Some(&["1234", "2345"][..]), "{out}");
}

#[test]
fn rlimit_above_the_host_hard_limit_fails_create_cleanly() {
    require_root();
    let (rt, mut bundle) = setup();
    let (_, host_hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    // Raising a hard limit needs CAP_SYS_RESOURCE; these machines' runtimes lack it.
    let requested = host_hard.saturating_add(1000);
    bundle.config_mut(|c| {
        c["process"]["rlimits"] =
            json!([{ "type": "RLIMIT_NOFILE", "soft": requested, "hard": requested }]);
    });
    bundle.set_args(&["true"]);
    let id = unique_id("rlimit-high");
    let (_c, out) = Container::create_with(&rt, &bundle, &id, &[]);
    if has_cap_sys_resource() {
        // With the capability the kernel allows it, and so must the runtime.
        out.expect_success();
        return;
    }
    out.expect_failure();
    let stderr = out.stderr.to_lowercase();
    assert!(
        stderr.contains("rlimit") || stderr.contains("nofile"),
        "the error should name the rlimit:\n{out}"
    );
    assert_no_trace(&rt, &bundle, &id);
}

#[test]
fn oom_score_adj_is_applied() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.config_mut(|c| c["process"]["oomScoreAdj"] = json!(500));
    let out = Container::run_sh(&rt, &mut bundle, "cat /proc/self/oom_score_adj");
    assert_eq!(out.trim(), "500");
}

#[test]
fn preserve_fds_passes_extra_fds() {
    require_root();
    let (rt, mut bundle) = setup();
    let file = rt.scratch().join("preserved.txt");
    fs::write(&file, "preserved-data\n").expect("writing the fd 3 file");
    let file = file.to_str().expect("UTF-8 temp path");
    bundle.sh("cat <&3");

    let id = unique_id("preserve-fds");
    let _guard = Container::guard(&rt, &id);
    let out = rt
        .cmd([
            "run",
            "--preserve-fds",
            "1",
            "--bundle",
            bundle.path_str(),
            &id,
        ])
        .wrap(["/bin/sh", "-c", FD3_WRAPPER, file])
        .cwd(bundle.path())
        .run();
    out.expect_success();
    assert_eq!(out.stdout, "preserved-data\n");
}

#[test]
fn extra_fds_are_closed_without_preserve_fds() {
    require_root();
    let (rt, mut bundle) = setup();
    let file = rt.scratch().join("leak.txt");
    fs::write(&file, "leaked-data\n").expect("writing the fd 3 file");
    let file = file.to_str().expect("UTF-8 temp path");
    bundle.sh("if cat <&3 2>/dev/null; then echo LEAKED; else echo closed; fi");

    let id = unique_id("no-preserve-fds");
    let _guard = Container::guard(&rt, &id);
    let out = rt
        .cmd(["run", "--bundle", bundle.path_str(), &id])
        .wrap(["/bin/sh", "-c", FD3_WRAPPER, file])
        .cwd(bundle.path())
        .run();
    out.expect_success();
    assert_eq!(out.stdout.trim(), "closed", "{out}");
}

#[test]
fn terminal_is_delivered_over_the_console_socket() {
    require_root();
    let (rt, mut bundle) = setup();
    bundle.set_terminal(true).set_args(&["sh"]);
    let (c, master) = Container::create_with_console(&rt, &bundle, "terminal");
    assert!(
        master.is_pty_master(),
        "the fd received on the console socket is not a pty master"
    );

    c.start();
    let output = master.converse("echo hello; exit\n", rt.scratch(), Duration::from_secs(20));
    assert!(
        output
            .lines()
            .any(|l| l.trim_end_matches('\r').trim() == "hello"),
        "no `hello` line from the shell on the pty: {output:?}"
    );
    c.wait_status("stopped", Duration::from_secs(10));
}
