//! Hooks (config.md#posix-platform-hooks, runtime.md#lifecycle): order, state on stdin, args
//! and env, where createContainer and startContainer hooks run, failure semantics of every
//! kind and timeout. Hooks in the runtime namespace run a shell script
//! outside the container that appends a line per call to a log in the case directory.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use super::{case, ensure_failed, wait_for_file};
use crate::case::Case;
use crate::ctx::{Ctx, STATUS_TIMEOUT};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "hooks.order_and_state",
            "config.md#posix-platform-hooks",
            "Hooks MUST be called in the listed order ... The state of the container MUST be passed to hooks over stdin; lifecycle: prestart, createRuntime (create), poststart (start), poststop (delete)",
            order_and_state
        ),
        case!(
            "hooks.args_and_env",
            "config.md#posix-platform-hooks",
            "args (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008 execv's argv. env (array of strings, OPTIONAL) with the same semantics as IEEE Std 1003.1-2008's environ.",
            args_and_env
        ),
        case!(
            "hooks.start_container",
            "config.md#startcontainer-hooks",
            "The startContainer hooks MUST be called before the user-specified process is executed as part of the start operation. ... The startContainer hooks' path MUST resolve in the container namespace.",
            start_container
        ),
        case!(
            "hooks.create_container",
            "config.md#createcontainer-hooks",
            "The createContainer hooks MUST be called as part of the create operation after the runtime environment has been created ... but before the pivot_root or any equivalent operation has been executed. The createContainer hooks MUST be called after the createRuntime hooks. The createContainer hooks' path MUST resolve in the runtime namespace. The createContainer hooks MUST be executed in the container namespace.",
            create_container
        ),
        case!(
            "hooks.create_container_failure_fails_create",
            "runtime.md#lifecycle",
            "step 5: If any createContainer hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12. (step 12: The container MUST be destroyed by undoing the steps performed during create phase)",
            create_container_failure_fails_create
        ),
        case!(
            "hooks.start_container_failure_stops_container",
            "runtime.md#lifecycle",
            "step 7: If any startContainer hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12. (step 8, running the user-specified program, does not happen)",
            start_container_failure_stops_container
        ),
        case!(
            "hooks.prestart_failure_fails_create",
            "runtime.md#lifecycle",
            "If any prestart hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            prestart_failure_fails_create
        ),
        case!(
            "hooks.create_runtime_failure_fails_create",
            "runtime.md#lifecycle",
            "If any createRuntime hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12.",
            create_runtime_failure_fails_create
        ),
        case!(
            "hooks.poststart_failure_stops_container",
            "runtime.md#lifecycle",
            "step 9: If any poststart hook fails, the runtime MUST generate an error, stop the container, and continue the lifecycle at step 12. (runtime-spec 1.0 said: log a warning and continue)",
            poststart_failure_stops_container
        ),
        case!(
            "hooks.poststop_failure_continues",
            "runtime.md#lifecycle",
            "If any poststop hook fails, the runtime MUST log a warning, but the remaining hooks and lifecycle continue as if the hook had succeeded.",
            poststop_failure_continues
        ),
        case!(
            "hooks.state_not_read",
            "config.md#posix-platform-hooks",
            "The state of the container MUST be passed to hooks over stdin so that they may do work appropriate to the current state of the container. (A hook that exits 0 without reading it has succeeded.)",
            state_not_read
        ),
        case!(
            "hooks.timeout",
            "config.md#posix-platform-hooks",
            "timeout (int, OPTIONAL) is the number of seconds before aborting the hook. If set, timeout MUST be greater than zero.",
            timeout
        ),
    ]
}

/// Writes the logging hook script into the case directory; returns (script, log).
fn hook_script(ctx: &Ctx) -> anyhow::Result<(String, PathBuf)> {
    let log = ctx.dir().join("hooks.log");
    let script = ctx.dir().join("hook.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nstate=$(cat | tr -d '\\n')\nprintf '%s|%s|%s|%s\\n' \"$1\" \"$2\" \"$OC_HOOK\" \"$state\" >> '{}'\n",
            log.display()
        ),
    )?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    Ok((script.to_str().context("utf-8")?.to_owned(), log))
}

/// The log as (kind, arg2, env, state) tuples.
fn read_log(log: &Path) -> Vec<(String, String, String, Value)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, '|');
            let kind = parts.next()?.to_owned();
            let arg = parts.next()?.to_owned();
            let env = parts.next()?.to_owned();
            let state = serde_json::from_str(parts.next()?).unwrap_or(Value::Null);
            Some((kind, arg, env, state))
        })
        .collect()
}

fn kinds(log: &Path) -> Vec<String> {
    read_log(log).into_iter().map(|l| l.0).collect()
}

/// A hook that reads its state (so the runtime's write cannot race its exit) and fails.
fn failing_hook() -> Value {
    json!({ "path": "/bin/sh", "args": ["sh", "-c", "cat > /dev/null; exit 1"] })
}

fn logging_hook(script: &str, kind: &str) -> Value {
    json!({ "path": script, "args": ["hook.sh", kind] })
}

fn order_and_state(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (script, log) = hook_script(ctx)?;
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        b.hook(kind, logging_hook(&script, kind));
    }
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    let after_create = kinds(&log);
    ensure!(
        after_create == ["prestart", "createRuntime"],
        "hooks run by create: {after_create:?}, want [prestart, createRuntime]"
    );
    ctx.start(&id)?;
    let after_start = kinds(&log);
    ensure!(
        after_start == ["prestart", "createRuntime", "poststart"],
        "hooks run by create+start: {after_start:?}"
    );
    ctx.rt.run(&["kill", &id, "9"])?.ok()?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    ctx.rt.run(&["delete", &id])?.ok()?;
    let all = read_log(&log);
    let names: Vec<&str> = all.iter().map(|l| l.0.as_str()).collect();
    ensure!(
        names == ["prestart", "createRuntime", "poststart", "poststop"],
        "hooks over the lifecycle: {names:?}"
    );
    for (kind, _, _, state) in &all {
        ensure!(
            state["id"] == json!(id),
            "{kind} hook got no state with id {id} on stdin: {state}"
        );
        ensure!(
            state["ociVersion"].is_string(),
            "{kind} hook state has no ociVersion: {state}"
        );
        ensure!(
            state["bundle"].is_string(),
            "{kind} hook state has no bundle: {state}"
        );
    }
    for (kind, _, _, state) in &all[..3] {
        ensure!(
            state["pid"].as_u64().is_some_and(|p| p > 0),
            "{kind} hook state has no pid: {state}"
        );
    }
    Ok(())
}

fn args_and_env(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (script, log) = hook_script(ctx)?;
    let mut b = ctx.bundle(&["true"])?;
    b.hook(
        "createRuntime",
        json!({ "path": script, "args": ["hook.sh", "createRuntime", "second-arg"],
                "env": ["OC_HOOK=from-config", "PATH=/usr/bin:/bin"] }),
    );
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    let all = read_log(&log);
    let (_, arg, env, _) = all.first().context("the hook did not run")?;
    ensure!(arg == "second-arg", "hook's $2 is {arg:?}");
    ensure!(env == "from-config", "hook's OC_HOOK is {env:?}");
    Ok(())
}

fn start_container(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("if test -f /start-hook; then touch /saw-hook; fi; touch /done");
    b.hook(
        "startContainer",
        json!({ "path": "/bin/sh", "args": ["sh", "-c", "touch /start-hook"] }),
    );
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    ensure!(
        !b.rootfs().join("start-hook").exists(),
        "the startContainer hook ran during create"
    );
    ctx.start(&id)?;
    wait_for_file(&b.rootfs().join("done"), STATUS_TIMEOUT)?;
    ensure!(
        b.rootfs().join("start-hook").exists(),
        "the startContainer hook did not run (in the container)"
    );
    ensure!(
        b.rootfs().join("saw-hook").exists(),
        "the process started before the startContainer hook"
    );
    Ok(())
}

/// Namespaces the createContainer hook must share with the container process.
const CONTAINER_NAMESPACES: [&str; 5] = ["mnt", "net", "uts", "ipc", "pid"];

fn create_container(ctx: &mut Ctx) -> anyhow::Result<()> {
    let (script, log) = hook_script(ctx)?;
    let seen = ctx.dir().join("create-container.seen");
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    b.mkdir_in_rootfs("/mnt/oc-cc")?;
    b.mount("/mnt/oc-cc", "tmpfs", "tmpfs", &["size=1m"]);
    let bundle_config = b.dir().join("config.json");
    // A host path: it must resolve in the runtime namespace, and it runs with the host's
    // /bin/sh and tools, which are still reachable before pivot_root.
    let cc = ctx.dir().join("create-container.sh");
    fs::write(
        &cc,
        format!(
            "#!/bin/sh\nPATH=/usr/sbin:/usr/bin:/sbin:/bin\ncat > /dev/null\n\
             echo createContainer >> '{log}'\n\
             {{\n\
             for ns in {nss}; do echo \"ns $ns $(readlink /proc/self/ns/$ns)\"; done\n\
             grep -F ' - tmpfs ' /proc/self/mountinfo | awk '{{print \"mount \" $5}}'\n\
             if test -e '{config}'; then echo 'bundle visible'; fi\n\
             }} > '{seen}'\n",
            log = log.display(),
            nss = CONTAINER_NAMESPACES.join(" "),
            config = bundle_config.display(),
            seen = seen.display(),
        ),
    )?;
    fs::set_permissions(&cc, fs::Permissions::from_mode(0o755))?;
    b.hook("createRuntime", logging_hook(&script, "createRuntime"));
    b.hook(
        "createContainer",
        json!({ "path": cc.to_str().context("utf-8")?, "args": ["create-container.sh"] }),
    );
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    let text = fs::read_to_string(&seen).with_context(|| {
        format!(
            "the createContainer hook left no {} (did not run during create, or not before \
             pivot_root, where the host path is still reachable)",
            seen.display()
        )
    })?;
    let order: Vec<String> = fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('|').next().unwrap_or_default().to_owned())
        .collect();
    ensure!(
        order == ["createRuntime", "createContainer"],
        "hooks ran in the order {order:?}, want [createRuntime, createContainer]"
    );
    let pid = ctx.pid(&id)?;
    for ns in CONTAINER_NAMESPACES {
        let want = crate::host::ns_link(&pid, ns)?;
        let got = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("ns {ns} ")))
            .unwrap_or_default();
        ensure!(
            got == want,
            "the createContainer hook ran in {ns} namespace {got:?}, the container's is {want}"
        );
    }
    ensure!(
        text.lines()
            .any(|l| l.starts_with("mount ") && l.ends_with("/mnt/oc-cc")),
        "the createContainer hook did not see the config's tmpfs mount (…/mnt/oc-cc) in its \
         mount namespace:\n{text}"
    );
    ensure!(
        text.lines().any(|l| l == "bundle visible"),
        "the createContainer hook could not see the bundle's config.json at its host path: it \
         ran after pivot_root"
    );
    Ok(())
}

fn create_container_failure_fails_create(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("touch /ran; sleep 1000");
    b.hook("createContainer", failing_hook());
    let id = ctx.new_id();
    let cgroup = ctx.cgroup_path(&mut b, &id);
    let out = ctx.try_create(&b, &id)?;
    ensure_failed(&out, "create with a failing createContainer hook")?;
    std::thread::sleep(Duration::from_millis(200));
    ensure!(
        !b.rootfs().join("ran").exists(),
        "the process ran despite the failing createContainer hook"
    );
    // "continue the lifecycle at step 12": destroyed, so nothing of it is left.
    let state = ctx.rt.run(&["state", &id])?;
    ensure!(
        !state.success(),
        "the container still exists after its createContainer hook failed: {}",
        state.stdout.trim()
    );
    let leftovers: Vec<String> = fs::read_dir(crate::host::CGROUP_ROOT)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join(cgroup.trim_start_matches('/')))
                // A real cgroup (statfs(2) f_type), not a plain directory on /sys/fs/cgroup's
                // tmpfs: crun makes those when run with the cgroup2 mount hidden
                // (docs/conformance.md, crun on this host).
                .filter(|p| is_cgroup_dir(p))
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    ensure!(
        leftovers.is_empty(),
        "the container's cgroups are still there: {leftovers:?}"
    );
    Ok(())
}

fn start_container_failure_stops_container(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("touch /ran; sleep 1000");
    // The path resolves in the container namespace: the rootfs's busybox sh.
    b.hook("startContainer", failing_hook());
    let id = ctx.new_id();
    ctx.create(&b, &id)?;
    let start = ctx.rt.run(&["start", &id])?;
    wait_stopped_or_gone(ctx, &id, "its startContainer hook failed")?;
    ensure!(
        !b.rootfs().join("ran").exists(),
        "the user-specified process ran despite the failing startContainer hook"
    );
    ensure_failed(
        &start,
        "start with a failing startContainer hook (the process did not run and the container \
         stopped, but no error was generated)",
    )
}

fn is_cgroup_dir(path: &Path) -> bool {
    use nix::sys::statfs::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, statfs};
    statfs(path).is_ok_and(|s| {
        let t = s.filesystem_type();
        t == CGROUP_SUPER_MAGIC || t == CGROUP2_SUPER_MAGIC
    })
}

/// Waits until `state ID` fails (the container is gone) or says `stopped`.
fn wait_stopped_or_gone(ctx: &Ctx, id: &str, after: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STATUS_TIMEOUT;
    loop {
        let state = ctx.rt.run(&["state", id])?;
        if !state.success() {
            return Ok(());
        }
        let status: Value = serde_json::from_str(&state.stdout).unwrap_or(Value::Null);
        if status["status"] == "stopped" {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the container is still {} after {after}",
            status["status"]
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn failing_hook_fails_create(ctx: &mut Ctx, kind: &str) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&[])?;
    b.sh("touch /ran");
    b.hook(kind, failing_hook());
    let id = ctx.new_id();
    let out = ctx.try_create(&b, &id)?;
    if out.success() {
        // Runtimes that ran the hook in start (spec 1.0.0's prestart) must fail start instead.
        let start = ctx.rt.run(&["start", &id])?;
        ensure_failed(&start, &format!("create+start with a failing {kind} hook"))?;
    }
    std::thread::sleep(Duration::from_millis(200));
    ensure!(
        !b.rootfs().join("ran").exists(),
        "the process ran despite the failing {kind} hook"
    );
    Ok(())
}

fn prestart_failure_fails_create(ctx: &mut Ctx) -> anyhow::Result<()> {
    failing_hook_fails_create(ctx, "prestart")
}

fn create_runtime_failure_fails_create(ctx: &mut Ctx) -> anyhow::Result<()> {
    failing_hook_fails_create(ctx, "createRuntime")
}

fn poststart_failure_stops_container(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    b.hook("poststart", failing_hook());
    let id = ctx.new_id();
    let create = ctx.try_create(&b, &id)?;
    // A runtime that runs poststart hooks during create (hooks.order_and_state catches that)
    // reports the failure there; otherwise start must.
    if create.success() {
        let start = ctx.rt.run(&["start", &id])?;
        ensure_failed(&start, "start with a failing poststart hook")?;
    }
    // "stop the container, and continue the lifecycle at step 12" (destroy): the container is
    // stopped or already gone, never left running.
    wait_stopped_or_gone(ctx, &id, "its poststart hook failed")
}

fn poststop_failure_continues(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["true"])?;
    b.hook("poststop", failing_hook());
    let id = ctx.create_start(&b)?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    let out = ctx.rt.run(&["delete", &id])?;
    ensure!(
        out.success(),
        "delete failed ({}) because of the poststop hook: {}",
        out.status,
        out.stderr.trim()
    );
    let state = ctx.rt.run(&["state", &id])?;
    ensure!(!state.success(), "the container still exists after delete");
    Ok(())
}

fn state_not_read(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["sleep", "1000"])?;
    // A state larger than a pipe's buffer (64 KiB), so the runtime's write to a hook that
    // exits without reading always meets a closed pipe (EPIPE/SIGPIPE), not just sometimes.
    b.config["annotations"] = json!({ "org.example.big": "x".repeat(128 * 1024) });
    for kind in ["createRuntime", "poststart", "poststop"] {
        b.hook(kind, json!({ "path": "/bin/true", "args": ["true"] }));
    }
    let id = ctx.new_id();
    let out = ctx.try_create(&b, &id)?;
    ensure!(
        out.success(),
        "create failed ({}) with a createRuntime hook that exits 0 without reading its state: {}",
        out.status,
        out.stderr.trim()
    );
    let out = ctx.rt.run(&["start", &id])?;
    ensure!(
        out.success(),
        "start failed ({}) with a poststart hook that exits 0 without reading its state: {}",
        out.status,
        out.stderr.trim()
    );
    ctx.rt.run(&["kill", &id, "9"])?.ok()?;
    ctx.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
    let out = ctx.rt.run(&["delete", &id])?;
    ensure!(
        out.success(),
        "delete failed ({}) with a poststop hook that exits 0 without reading its state: {}",
        out.status,
        out.stderr.trim()
    );
    Ok(())
}

fn timeout(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut b = ctx.bundle(&["true"])?;
    b.hook(
        "createRuntime",
        json!({ "path": "/bin/sleep", "args": ["sleep", "20"], "timeout": 1 }),
    );
    let id = ctx.new_id();
    let started = Instant::now();
    let out = ctx.try_create(&b, &id)?;
    let took = started.elapsed();
    ensure_failed(
        &out,
        "create with a createRuntime hook that outlives its timeout",
    )?;
    ensure!(
        took < Duration::from_secs(10),
        "create took {took:?}: the 1 s hook timeout was not applied"
    );
    Ok(())
}
