//! [`Container`]: a guard that owns one container id and force-deletes it on drop.
//!
//! Make the guard *before* the command that may create the container, so a half-finished
//! `create` is cleaned up too. Declare it after its [`crate::Bundle`] and [`crate::Runtime`], so
//! it drops (and deletes) first.

use std::time::Duration;

use serde_json::Value;

use crate::bundle::Bundle;
use crate::console::{ConsoleSocket, ReceivedFd};
use crate::host::{mounts_mentioning, processes_referencing, wait_until};
use crate::runtime::{CmdOutput, Runtime, unique_id};

/// How long the cleanup `delete --force` may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// One container id in one [`Runtime`], deleted with `delete --force` on drop.
#[derive(Debug)]
pub struct Container<'a> {
    rt: &'a Runtime,
    id: String,
    create_output: Option<CmdOutput>,
}

impl<'a> Container<'a> {
    /// A guard for `id` without running anything.
    pub fn guard(rt: &'a Runtime, id: &str) -> Self {
        Self {
            rt,
            id: id.to_string(),
            create_output: None,
        }
    }

    /// `create --bundle <bundle> [extra...] <id>`, run in the bundle directory, without checking
    /// the result. The container's stdio goes to the files in the returned output.
    pub fn create_with(
        rt: &'a Runtime,
        bundle: &Bundle,
        id: &str,
        extra: &[&str],
    ) -> (Self, CmdOutput) {
        let mut guard = Self::guard(rt, id);
        let out = rt
            .cmd(["create", "--bundle", bundle.path_str()])
            .args(extra)
            .arg(id)
            .cwd(bundle.path())
            .run();
        guard.create_output = Some(out.clone());
        (guard, out)
    }

    /// Creates a container with a fresh id from `prefix`, panicking if `create` fails.
    #[track_caller]
    pub fn create(rt: &'a Runtime, bundle: &Bundle, prefix: &str) -> Self {
        let id = unique_id(prefix);
        let (guard, out) = Self::create_with(rt, bundle, &id, &[]);
        out.expect_success();
        guard
    }

    /// A started container whose init sleeps (`sleep 1000`), for tests that act on a running
    /// container; `bundle`'s args are replaced.
    #[track_caller]
    pub fn running(rt: &'a Runtime, bundle: &mut Bundle, prefix: &str) -> Self {
        bundle.set_args(&["sleep", "1000"]);
        let c = Self::create(rt, bundle, prefix);
        c.start();
        c
    }

    /// `exec -d --pid-file <scratch file> <id> <args…>`, panicking on failure; returns the
    /// exec'd process's host pid from the pid file.
    #[track_caller]
    pub fn exec_detached(&self, args: &[&str]) -> i32 {
        let pid_file = self
            .rt
            .scratch()
            .join(format!("{}-exec.pid", unique_id("exec")));
        self.rt
            .cmd(["exec", "-d", "--pid-file"])
            .arg(&pid_file)
            .arg(&self.id)
            .args(args)
            .run()
            .expect_success();
        std::fs::read_to_string(&pid_file)
            .expect("exec wrote its pid file")
            .trim()
            .parse()
            .expect("a pid in the pid file")
    }

    /// `create --console-socket` of a bundle with `process.terminal: true`, under a cleanup guard:
    /// returns the container and the pty master the runtime sent over the socket.
    #[track_caller]
    pub fn create_with_console(
        rt: &'a Runtime,
        bundle: &Bundle,
        prefix: &str,
    ) -> (Self, ReceivedFd) {
        let socket = ConsoleSocket::bind(&rt.scratch().join(format!("{prefix}-console.sock")));
        let socket_path = socket.path().to_str().expect("UTF-8 temp path").to_string();
        let id = unique_id(prefix);
        let guard = Container::guard(rt, &id);
        let create = rt
            .cmd([
                "create",
                "--bundle",
                bundle.path_str(),
                "--console-socket",
                &socket_path,
                &id,
            ])
            .cwd(bundle.path())
            .spawn();
        let master = socket.recv_fd(std::time::Duration::from_secs(30));
        create.wait().expect_success();
        (guard, master)
    }

    /// `run --bundle <bundle> [extra...] <fresh id>` in the foreground (the runtime waits for
    /// the container and exits with its exit code), under a cleanup guard. The container's
    /// stdout and stderr are the returned output's.
    pub fn run(rt: &Runtime, bundle: &Bundle, extra: &[&str]) -> CmdOutput {
        let id = unique_id("run");
        let _guard = Container::guard(rt, &id);
        rt.cmd(["run", "--bundle", bundle.path_str()])
            .args(extra)
            .arg(&id)
            .cwd(bundle.path())
            .run()
    }

    /// Runs `sh -c script` in a container from `bundle` (see [`Container::run`]), panics unless
    /// it exits 0, and returns its stdout.
    #[track_caller]
    pub fn run_sh(rt: &Runtime, bundle: &mut Bundle, script: &str) -> String {
        bundle.sh(script);
        let out = Self::run(rt, bundle, &[]);
        out.expect_success();
        out.stdout
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The output of the `create` that made this container, if this guard ran it.
    pub fn create_output(&self) -> Option<&CmdOutput> {
        self.create_output.as_ref()
    }

    /// What the container wrote to stdout so far (after [`Container::create_with`]).
    pub fn stdout(&self) -> String {
        self.create_output
            .as_ref()
            .map(CmdOutput::reread_stdout)
            .unwrap_or_default()
    }

    /// What the container wrote to stderr so far (after [`Container::create_with`]), after the
    /// runtime's own messages from `create`.
    pub fn stderr(&self) -> String {
        self.create_output
            .as_ref()
            .map(CmdOutput::reread_stderr)
            .unwrap_or_default()
    }

    /// `state <id>` as JSON (panics if it fails).
    #[track_caller]
    pub fn state(&self) -> Value {
        self.rt.state(&self.id)
    }

    /// `state.status`.
    #[track_caller]
    pub fn status(&self) -> String {
        let state = self.state();
        state["status"]
            .as_str()
            .unwrap_or_else(|| panic!("state has no string status: {state}"))
            .to_string()
    }

    /// `state.pid` (panics if missing or not positive).
    #[track_caller]
    pub fn pid(&self) -> i32 {
        let state = self.state();
        state["pid"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or_else(|| panic!("state has no positive pid: {state}"))
    }

    /// `start <id>`, panicking on failure.
    #[track_caller]
    pub fn start(&self) -> CmdOutput {
        let out = self.rt.cmd(["start", &self.id]).run();
        out.expect_success();
        out
    }

    /// `kill <id> <signal>`, returning the output unchecked.
    pub fn kill(&self, signal: &str) -> CmdOutput {
        self.rt.cmd(["kill", &self.id, signal]).run()
    }

    /// Polls `state` until its status is `status`.
    #[track_caller]
    pub fn wait_status(&self, status: &str, timeout: Duration) {
        let mut last = String::new();
        wait_until(
            timeout,
            &format!("container {} to be {status}", self.id),
            || {
                last = self.status();
                last == status
            },
        );
    }
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        // Never panic in drop: it would abort a test that is already unwinding.
        match self
            .rt
            .cmd(["delete", "--force", &self.id])
            .timeout(CLEANUP_TIMEOUT)
            .try_run()
        {
            Ok(out) if out.success() || out.stderr.contains("does not exist") => {}
            Ok(out) => eprintln!("warning: cleaning up container {} failed:\n{out}", self.id),
            Err(e) => eprintln!("warning: cleaning up container {} failed: {e}", self.id),
        }
    }
}

/// Asserts that a container that failed to be created (or was deleted) left nothing behind: no
/// state under the runtime's root, `state` says it does not exist, no host mount mentions the
/// bundle, and no process refers to the bundle or the id (waiting a little for processes the
/// runtime killed to finish exiting).
#[track_caller]
pub fn assert_no_trace(rt: &Runtime, bundle: &Bundle, id: &str) {
    let entries = rt.state_entries(id);
    assert!(
        entries.is_empty(),
        "state left under --root for {id}: {entries:?}"
    );
    let mounts = mounts_mentioning(bundle.path());
    assert!(
        mounts.is_empty(),
        "host mounts still mention the bundle:\n{}",
        mounts.join("\n")
    );
    let mut leftovers = Vec::new();
    let gone = wait_until_ok(Duration::from_secs(5), || {
        leftovers = processes_referencing(bundle.path(), id);
        leftovers.is_empty()
    });
    assert!(
        gone,
        "processes still refer to container {id}:\n{}",
        leftovers.join("\n")
    );
    let cgroups = crate::host::cgroup_dirs_named(id);
    assert!(
        cgroups.is_empty(),
        "cgroups of container {id} left behind: {cgroups:?}"
    );
    // Last, so that a runtime with other wording (crun) still gets the checks above.
    rt.cmd(["state", id])
        .run()
        .expect_error_containing("container does not exist");
}

/// Polls `cond` until true or `timeout`; returns whether it became true.
fn wait_until_ok(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
