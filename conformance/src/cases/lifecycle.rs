//! Lifecycle, state and operations (runtime.md): the state JSON, each operation, and the errors
//! the spec requires for illegal transitions.

use std::fs;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use serde_json::json;

use super::{case, ensure_failed, wait_for_file};
use crate::case::Case;
use crate::ctx::{Ctx, STATUS_TIMEOUT};

const SLEEP: &[&str] = &["sleep", "1000"];

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "lifecycle.state_fields",
            "runtime.md#state",
            "ociVersion, id, status, pid (REQUIRED when status is created or running on Linux), bundle (the absolute path to the container's bundle directory) are REQUIRED",
            state_fields
        ),
        case!(
            "lifecycle.create_does_not_run_process",
            "runtime.md#lifecycle",
            "step 2: the user-specified program (from process) MUST NOT be run at this time",
            create_does_not_run_process
        ),
        case!(
            "lifecycle.start_runs_process",
            "runtime.md#start",
            "This operation MUST run the user-specified program as specified by process.",
            start_runs_process
        ),
        case!(
            "lifecycle.exit_is_stopped",
            "runtime.md#state",
            "stopped: the container process has exited",
            exit_is_stopped
        ),
        case!(
            "lifecycle.state_unknown_id_fails",
            "runtime.md#query-state",
            "Attempting to query a container that does not exist MUST generate an error.",
            state_unknown_id_fails
        ),
        case!(
            "lifecycle.create_duplicate_id_fails",
            "runtime.md#create",
            "If the ID provided is not unique across all containers within the scope of the runtime, or is not valid in any other way, the implementation MUST generate an error and a new container MUST NOT be created.",
            create_duplicate_id_fails
        ),
        case!(
            "lifecycle.create_error_leaves_no_container",
            "runtime.md#create",
            "If the runtime cannot apply a property as specified in the configuration, it MUST generate an error and a new container MUST NOT be created.",
            create_error_leaves_no_container
        ),
        case!(
            "lifecycle.config_changes_after_create_ignored",
            "runtime.md#create",
            "Any changes made to the config.json file after this operation will not have an effect on the container.",
            config_changes_after_create_ignored
        ),
        case!(
            "lifecycle.start_running_fails",
            "runtime.md#start",
            "Attempting to start a container that is not created MUST have no effect on the container and MUST generate an error.",
            start_running_fails
        ),
        case!(
            "lifecycle.start_stopped_fails",
            "runtime.md#start",
            "Attempting to start a container that is not created MUST have no effect on the container and MUST generate an error.",
            start_stopped_fails
        ),
        case!(
            "lifecycle.start_unknown_id_fails",
            "runtime.md#start",
            "Attempting to start a container that does not exist MUST generate an error.",
            start_unknown_id_fails
        ),
        case!(
            "lifecycle.kill_created",
            "runtime.md#kill",
            "Attempting to send a signal to a container that is neither created nor running MUST have no effect on the container and MUST generate an error. This operation MUST send the specified signal to the container process.",
            kill_created
        ),
        case!(
            "lifecycle.kill_delivers_signal",
            "runtime.md#kill",
            "This operation MUST send the specified signal to the container process.",
            kill_delivers_signal
        ),
        case!(
            "lifecycle.kill_stopped_fails",
            "runtime.md#kill",
            "Attempting to send a signal to a container that is neither created nor running MUST have no effect on the container and MUST generate an error.",
            kill_stopped_fails
        ),
        case!(
            "lifecycle.delete_running_fails",
            "runtime.md#delete",
            "Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error.",
            delete_running_fails
        ),
        case!(
            "lifecycle.delete_created_fails",
            "runtime.md#delete",
            "Attempting to delete a container that is not stopped MUST have no effect on the container and MUST generate an error.",
            delete_created_fails
        ),
        case!(
            "lifecycle.delete_stopped",
            "runtime.md#delete",
            "Deleting a container MUST delete the resources that were created during the create step. ... Once a container is deleted its ID MAY be used by a subsequent container.",
            delete_stopped
        ),
        case!(
            "lifecycle.delete_unknown_id_fails",
            "runtime.md#delete",
            "Attempting to delete a container that does not exist MUST generate an error.",
            delete_unknown_id_fails
        ),
        case!(
            "lifecycle.annotations_in_state",
            "runtime.md#state",
            "annotations (map, OPTIONAL) contains the list of annotations associated with the container.",
            annotations_in_state
        ),
        case!(
            "lifecycle.pid_file",
            "runc CLI: create --pid-file",
            "not in the runtime-spec: runc's contract (reference/oci-runtimes.md §5.3) — the pid file holds the container process's host pid, the state's pid",
            pid_file
        ),
    ]
}

fn state_fields(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(SLEEP)?;
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    let st = ctx.rt.state(&id)?;
    ensure!(st["ociVersion"].is_string(), "no string ociVersion in {st}");
    ensure!(st["id"] == json!(id), "id is {} not {id}", st["id"]);
    ensure!(
        st["status"] == "created",
        "status after create is {}",
        st["status"]
    );
    let pid = ctx.pid(&id)?;
    ensure!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "state pid {pid} is not a live process"
    );
    let bundle = st["bundle"]
        .as_str()
        .with_context(|| format!("no string bundle in {st}"))?;
    ensure!(bundle.starts_with('/'), "bundle {bundle:?} is not absolute");
    let want = fs::canonicalize(b.dir())?;
    let got = fs::canonicalize(bundle).with_context(|| format!("resolving bundle {bundle}"))?;
    ensure!(got == want, "bundle is {bundle}, want {}", want.display());
    Ok(())
}

fn create_does_not_run_process(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("touch /ran; sleep 1000");
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    std::thread::sleep(Duration::from_millis(300));
    ensure!(
        !b.rootfs().join("ran").exists(),
        "the process ran before start"
    );
    ensure!(ctx.rt.status(&id)? == "created", "status is not created");
    Ok(())
}

fn start_runs_process(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("touch /ran; sleep 1000");
    let (id, _) = ctx.start_running(&b)?;
    wait_for_file(&b.rootfs().join("ran"), STATUS_TIMEOUT).context("the process did not run")?;
    ensure!(ctx.rt.status(&id)? == "running", "status is not running");
    Ok(())
}

fn exit_is_stopped(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(&["true"])?;
    let id = ctx.create_start(&b)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)
}

fn state_unknown_id_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let id = ctx.new_id();
    let out = ctx.rt.run(&["state", &id])?;
    ensure_failed(&out, "state of an unknown id")
}

fn create_duplicate_id_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b1 = ctx.bundle(SLEEP)?;
    let id = ctx.new_id();
    ctx.create(&b1, &id)?;
    let pid = ctx.pid(&id)?;
    let b2 = ctx.bundle(SLEEP)?;
    let out = ctx.try_create(&b2, &id)?;
    ensure_failed(&out, "a second create with the same id")?;
    let st = ctx.rt.state(&id)?;
    ensure!(
        st["status"] == "created",
        "the first container's status is now {}",
        st["status"]
    );
    ensure!(ctx.pid(&id)? == pid, "the first container's pid changed");
    let bundle = fs::canonicalize(st["bundle"].as_str().unwrap_or_default())?;
    ensure!(
        bundle == fs::canonicalize(b1.dir())?,
        "the state now points at the second bundle"
    );
    Ok(())
}

fn create_error_leaves_no_container(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(SLEEP)?;
    let missing = ctx.dir().join("no-such-source");
    let missing = missing.to_str().context("utf-8")?.to_owned();
    b.mount("/mnt", "bind", &missing, &["rbind"]);
    let id = ctx.new_id();
    let out = ctx.try_create(&b, &id)?;
    ensure_failed(&out, "create with a bind mount of a missing source")?;
    let state = ctx.rt.run(&["state", &id])?;
    ensure!(
        !state.success(),
        "a container exists after the failed create: {}",
        state.stdout.trim()
    );
    Ok(())
}

fn config_changes_after_create_ignored(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("touch /original; sleep 1000");
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    b.sh("touch /changed; sleep 1000");
    b.save()?;
    ctx.start(&id)?;
    wait_for_file(&b.rootfs().join("original"), STATUS_TIMEOUT)
        .context("the process of the config at create time did not run")?;
    ensure!(
        !b.rootfs().join("changed").exists(),
        "the process of the edited config.json ran"
    );
    Ok(())
}

fn start_running_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(SLEEP)?;
    let (id, pid) = ctx.start_running(&b)?;
    let out = ctx.rt.run(&["start", &id])?;
    ensure_failed(&out, "start of a running container")?;
    ensure!(ctx.rt.status(&id)? == "running", "status changed");
    ensure!(ctx.pid(&id)? == pid, "pid changed");
    Ok(())
}

fn start_stopped_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("echo x >> /runs");
    let id = ctx.create_start(&b)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    let out = ctx.rt.run(&["start", &id])?;
    ensure_failed(&out, "start of a stopped container")?;
    std::thread::sleep(Duration::from_millis(200));
    let runs = fs::read_to_string(b.rootfs().join("runs")).unwrap_or_default();
    ensure!(
        runs.lines().count() == 1,
        "the process ran {} times",
        runs.lines().count()
    );
    ensure!(ctx.rt.status(&id)? == "stopped", "status changed");
    Ok(())
}

fn start_unknown_id_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let id = ctx.new_id();
    let out = ctx.rt.run(&["start", &id])?;
    ensure_failed(&out, "start of an unknown id")
}

fn kill_created(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(SLEEP)?;
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    ctx.rt.run(&["kill", &id, "9"])?.ok()?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)
}

fn kill_delivers_signal(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("trap 'touch /got-usr1; exit 0' USR1; touch /ready; while true; do sleep 0.05; done");
    let (id, _) = ctx.start_running(&b)?;
    wait_for_file(&b.rootfs().join("ready"), STATUS_TIMEOUT)?;
    ctx.rt.run(&["kill", &id, "10"])?.ok()?; // SIGUSR1
    wait_for_file(&b.rootfs().join("got-usr1"), STATUS_TIMEOUT)
        .context("the container process did not get SIGUSR1")?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)
}

fn kill_stopped_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(&["true"])?;
    let id = ctx.create_start(&b)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    let out = ctx.rt.run(&["kill", &id, "15"])?;
    ensure_failed(&out, "kill of a stopped container")?;
    ensure!(ctx.rt.status(&id)? == "stopped", "status changed");
    Ok(())
}

fn delete_running_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(SLEEP)?;
    let (id, pid) = ctx.start_running(&b)?;
    let out = ctx.rt.run(&["delete", &id])?;
    ensure_failed(&out, "delete (without --force) of a running container")?;
    ensure!(ctx.rt.status(&id)? == "running", "status changed");
    ensure!(ctx.pid(&id)? == pid, "pid changed");
    Ok(())
}

fn delete_created_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(SLEEP)?;
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    let out = ctx.rt.run(&["delete", &id])?;
    ensure_failed(&out, "delete (without --force) of a created container")?;
    ensure!(ctx.rt.status(&id)? == "created", "status changed");
    Ok(())
}

fn delete_stopped(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(&["true"])?;
    let id = ctx.create_start(&b)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    ctx.rt.run(&["delete", &id])?.ok()?;
    let state = ctx.rt.run(&["state", &id])?;
    ensure!(!state.success(), "state still works after delete");
    // The id is free again.
    ctx.create(&b, &id)
        .context("re-creating with the deleted id")?;
    Ok(())
}

fn delete_unknown_id_fails(ctx: &mut Ctx) -> anyhow::Result<()> {
    let id = ctx.new_id();
    let out = ctx.rt.run(&["delete", &id])?;
    ensure_failed(&out, "delete of an unknown id")
}

fn annotations_in_state(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(SLEEP)?;
    b.config["annotations"] = json!({ "org.example.key": "value", "com.example.two": "2" });
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    let st = ctx.rt.state(&id)?;
    for (k, v) in [("org.example.key", "value"), ("com.example.two", "2")] {
        ensure!(
            st["annotations"][k] == v,
            "state annotations lack {k}={v}: {}",
            st["annotations"]
        );
    }
    Ok(())
}

fn pid_file(ctx: &mut Ctx) -> anyhow::Result<()> {
    let b = ctx.bundle(SLEEP)?;
    let id = ctx.new_id();
    let pid_path = b.dir().join("init.pid");
    b.save()?;
    ctx.rt
        .create(&id, b.dir(), Some(&pid_path), &Ctx::stdout_path(&b))?
        .ok()?;
    let text =
        fs::read_to_string(&pid_path).with_context(|| format!("reading {}", pid_path.display()))?;
    let pid = ctx.pid(&id)?;
    ensure!(
        text.trim() == pid,
        "pid file holds {text:?}, state pid is {pid}"
    );
    Ok(())
}
