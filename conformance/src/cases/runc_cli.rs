//! The runc command line beyond the runtime-spec (group `runc-cli`): NOT runtime-spec
//! requirements. Engines drive runtimes through runc's CLI (containerd's go-runc, docker,
//! podman), so a drop-in runtime must behave as runc does here; each case says which runc
//! behaviour it checks.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::{case, ensure_failed, wait_for_file};
use crate::case::Case;
use crate::ctx::{Ctx, STATUS_TIMEOUT};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "runc-cli.kill_all",
            "runc CLI: kill --all (not spec)",
            "not in the runtime-spec: runc's kill --all sends the signal to every process of the container (through its cgroup), which matters when the container has no pid namespace of its own",
            kill_all
        ),
        case!(
            "runc-cli.exec_paused_fails",
            "runc CLI: exec (not spec)",
            "not in the runtime-spec: runc's exec refuses a paused container (\"cannot exec in a paused container\") unless --ignore-paused",
            exec_paused_fails
        ),
        case!(
            "runc-cli.preserve_fds",
            "runc CLI: create --preserve-fds (not spec)",
            "not in the runtime-spec: runc's --preserve-fds N passes the caller's file descriptors 3 .. 3+N-1 on to the container process",
            preserve_fds
        ),
    ]
}

/// True once `/proc/PID` is gone or a zombie (proc(5): state Z).
fn dead(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s == "Z" || s == "X"),
    }
}

fn kill_all(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    // In the runtime's pid namespace, $! is the child's host pid, and killing the container
    // process alone would leave the child running.
    b.remove_namespace("pid");
    b.sh("sleep 1000 & echo $! > /child; touch /ready; wait");
    let id = ctx.new_id();
    ctx.cgroup_path(&mut b, &id);
    ctx.create(&b, &id)?;
    ctx.start(&id)?;
    wait_for_file(&b.rootfs().join("ready"), STATUS_TIMEOUT)?;
    let child = fs::read_to_string(b.rootfs().join("child"))?
        .trim()
        .to_owned();
    let init = ctx.pid(&id)?;
    ensure!(
        !dead(&child),
        "the container's child {child} is not running"
    );
    ctx.rt.run(&["kill", "--all", &id, "KILL"])?.ok()?;
    let deadline = Instant::now() + STATUS_TIMEOUT;
    while !(dead(&child) && dead(&init)) {
        ensure!(
            Instant::now() < deadline,
            "after kill --all, the container process {init} is {} and its child {child} is {}",
            if dead(&init) { "dead" } else { "alive" },
            if dead(&child) { "dead" } else { "alive" },
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn exec_paused_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    let id = ctx.new_id();
    ctx.cgroup_path(&mut b, &id);
    b.config["linux"]["resources"] = json!({});
    ctx.create(&b, &id)?;
    ctx.start(&id)?;
    ctx.rt.wait_status(&id, "running", STATUS_TIMEOUT)?;
    ctx.rt.run(&["pause", &id])?.ok()?;
    let out = ctx.rt.run(&["exec", &id, "true"]);
    // Thaw before judging, so clean-up never meets a frozen container.
    let resumed = ctx.rt.run(&["resume", &id]);
    ensure_failed(&out?, "exec into a paused container")?;
    resumed?.ok()?;
    Ok(())
}

fn preserve_fds(ctx: &mut Ctx) -> anyhow::Result<()> {
    let passed = ctx.dir().join("passed");
    fs::write(&passed, "through descriptor 3")?;
    let mut b = ctx.bundle(&[])?;
    b.sh("cat <&3 > /got");
    b.save()?;
    let id = ctx.new_id();
    let bundle = b.dir().to_str().context("utf-8")?.to_owned();
    ctx.rt
        .run_with_fd3(
            &["create", "--preserve-fds", "1", "--bundle", &bundle, &id],
            &passed,
            Some(&Ctx::stdout_path(&b)),
        )?
        .ok()?;
    ctx.start(&id)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    let got = fs::read_to_string(b.rootfs().join("got")).unwrap_or_default();
    ensure!(
        got == "through descriptor 3",
        "the container read {got:?} from descriptor 3, want the passed file's contents"
    );
    Ok(())
}
