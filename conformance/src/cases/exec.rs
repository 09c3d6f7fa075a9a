//! exec (runc CLI; the runtime-spec defines the process object it takes, config.md#process):
//! the new process joins the container's namespaces, gets the given process settings, and the
//! runtime exits with its exit code.

use std::fs;

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::{case, ensure_failed};
use crate::bundle::PROBE;
use crate::case::Case;
use crate::ctx::{Ctx, STATUS_TIMEOUT};
use crate::host;
use crate::probe;

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "exec.joins_namespaces",
            "runc CLI: exec; config-linux.md#namespaces",
            "not in the runtime-spec's operations: runc's exec runs a process inside an existing container, i.e. in the namespaces the container process is in",
            joins_namespaces
        ),
        case!(
            "exec.exit_code",
            "runc CLI: exec",
            "not in the runtime-spec: runc's exec (without --detach) exits with the process's exit status",
            exit_code
        ),
        case!(
            "exec.process_json",
            "runc CLI: exec --process; config.md#process",
            "exec --process takes a runtime-spec process object: cwd, env and user (config.md#process) apply to the new process",
            process_json
        ),
        case!(
            "exec.stopped_fails",
            "runc CLI: exec; runtime.md#state",
            "not in the runtime-spec's operations: runc's exec runs a process inside an existing container; a stopped container (\"the container process has exited\") has no namespaces left to join, so exec must fail",
            stopped_fails
        ),
    ]
}

fn stopped_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(&["true"])?;
    let id = ctx.create_start(&b)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    let out = ctx.rt.run(&["exec", &id, "true"])?;
    ensure_failed(&out, "exec into a stopped container")?;
    ensure!(ctx.rt.status(&id)? == "stopped", "status changed");
    Ok(())
}

fn joins_namespaces(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(&["sleep", "1000"])?;
    let (id, pid) = ctx.start_running(&b)?;
    let out = ctx.rt.run(&["exec", &id, PROBE])?.ok()?;
    let r = probe::parse(&out.stdout)?;
    for name in ["pid", "net", "ipc", "uts", "mnt"] {
        let want = host::ns_link(&pid, name)?;
        let got = r.namespace(name).unwrap_or_default();
        ensure!(
            got == want,
            "exec'd process is in {got}, the container's {name} namespace is {want}"
        );
    }
    ensure!(r.u64("pid")? != 1, "the exec'd process is pid 1");
    Ok(())
}

fn exit_code(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(&["sleep", "1000"])?;
    let (id, _) = ctx.start_running(&b)?;
    let out = ctx.rt.run(&["exec", &id, "sh", "-c", "exit 7"])?;
    ensure!(
        out.status.code() == Some(7),
        "exec exited with {}, want 7",
        out.status
    );
    let ok = ctx.rt.run(&["exec", &id, "true"])?;
    ensure!(
        ok.status.code() == Some(0),
        "exec of true exited with {}",
        ok.status
    );
    Ok(())
}

fn process_json(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(&["sleep", "1000"])?;
    let (id, _) = ctx.start_running(&b)?;
    let process = json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000 },
        "args": [PROBE],
        "env": ["PATH=/bin", "OC_EXEC=yes"],
        "cwd": "/tmp",
        "capabilities": { "bounding": [], "effective": [], "permitted": [] },
        "noNewPrivileges": true
    });
    let path = ctx.dir().join("process.json");
    fs::write(&path, process.to_string())?;
    let path = path.to_str().context("utf-8")?.to_owned();
    let out = ctx.rt.run(&["exec", "--process", &path, &id])?.ok()?;
    let r = probe::parse(&out.stdout)?;
    ensure!(r.str("cwd")? == "/tmp", "cwd is {:?}", r.str("cwd")?);
    ensure!(
        r.env().contains(&"OC_EXEC=yes"),
        "env lacks OC_EXEC=yes: {:?}",
        r.env()
    );
    ensure!(
        r.u64("uid")? == 1000 && r.u64("gid")? == 1000,
        "uid/gid are {}/{}",
        r.u64("uid")?,
        r.u64("gid")?
    );
    Ok(())
}
