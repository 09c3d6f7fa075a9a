//! OCI hooks (config.md, "POSIX-platform Hooks"): each hook is run with the container's state
//! JSON on stdin, only its own `env`, and an optional timeout after which it is killed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;
use serde::Serialize;

use crate::state::Status;

/// The hook points, named as in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        })
    }
}

/// Why a hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook #{index} ({path:?}) could not be started")]
    Spawn {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} hook #{index} ({path:?}) failed: {status}{stderr}")]
    Failed {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("{kind} hook #{index} ({path:?}) timed out after {secs}s and was killed")]
    Timeout {
        kind: HookKind,
        index: usize,
        path: PathBuf,
        secs: i64,
    },
}

/// The state passed to hooks on stdin (runtime.md, "State").
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<&'a std::collections::HashMap<String, String>>,
}

impl<'a> HookState<'a> {
    /// The state of the container `id` created from `spec` in `bundle`.
    pub fn new(
        spec: &'a oci_spec::runtime::Spec,
        id: &'a str,
        bundle: &'a Path,
        status: Status,
        pid: Option<i32>,
    ) -> Self {
        HookState {
            oci_version: spec.version(),
            id,
            status,
            pid,
            bundle,
            annotations: spec.annotations().as_ref(),
        }
    }
}

/// Run `hooks` in order; the first failure stops the list.
pub fn run(kind: HookKind, hooks: &[Hook], state: &HookState<'_>) -> Result<(), HookError> {
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).unwrap_or_default();
    for (index, hook) in hooks.iter().enumerate() {
        run_one(kind, index, hook, &input)?;
    }
    Ok(())
}

fn run_one(kind: HookKind, index: usize, hook: &Hook, input: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    let mut cmd = Command::new(&path);
    // args[0] is the hook's argv[0] (the spec: "args ... same semantics as IEEE Std 1003.1-2008
    // execv's argv").
    if let Some(args) = hook.args().as_deref() {
        if let Some((arg0, rest)) = args.split_first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, arg0);
            cmd.args(rest);
        }
    }
    cmd.env_clear();
    for var in hook.env().as_deref().unwrap_or_default() {
        if let Some((k, v)) = var.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Its own process group, so that a timeout kills everything the hook started, not just
    // the hook's first process.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        kind,
        index,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin closes the pipe early: EPIPE is not a failure.
        let _ = stdin.write_all(input);
    }
    let deadline = hook
        .timeout()
        .map(|t| (t, Instant::now() + Duration::from_secs(t as u64)));
    let mut pause = Duration::from_micros(200);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                return Err(HookError::Spawn {
                    kind,
                    index,
                    path,
                    source,
                });
            }
        }
        if let Some((secs, at)) = deadline {
            if Instant::now() >= at {
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(HookError::Timeout {
                    kind,
                    index,
                    path,
                    secs,
                });
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
    }
    let stderr = match stderr.trim() {
        "" => String::new(),
        s => format!(": {s}"),
    };
    Err(HookError::Failed {
        kind,
        index,
        path,
        status: status.to_string(),
        stderr,
    })
}

/// Run every hook of `hooks`, logging failures as warnings: for poststart and poststop the spec
/// says a failure is logged and "the remaining hooks and lifecycle continue".
pub fn run_all_warn(kind: HookKind, hooks: &[Hook], state: &HookState<'_>) {
    if hooks.is_empty() {
        return;
    }
    let input = serde_json::to_vec(state).unwrap_or_default();
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_one(kind, index, hook, &input) {
            tracing::warn!(error = %e, "hook failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).expect("hook")
    }

    fn state() -> HookState<'static> {
        HookState {
            oci_version: "1.2.0",
            id: "hooked",
            status: Status::Creating,
            pid: Some(42),
            bundle: Path::new("/b"),
            annotations: None,
        }
    }

    #[test]
    fn stdin_env_and_args() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let script = format!("cat > {0}; echo \" $FOO $0 $1\" >> {0}", out.display());
        let h = hook(serde_json::json!({
            "path": "/bin/sh", "args": ["sh", "-c", script, "first"], "env": ["FOO=bar"]
        }));
        run(HookKind::CreateRuntime, &[h], &state()).expect("hook runs");
        let got = std::fs::read_to_string(&out).expect("output");
        assert!(
            got.contains("\"id\":\"hooked\"") && got.contains("\"pid\":42"),
            "{got}"
        );
        assert!(got.contains("\"status\":\"creating\""), "{got}");
        // `sh -c script first`: $0 is "first", $1 is empty.
        assert!(got.trim_end().ends_with(" bar first"), "{got}");
    }

    #[test]
    fn failure_reports_status_and_stderr() {
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}),
        );
        let err = run(HookKind::Poststop, &[h], &state())
            .expect_err("fails")
            .to_string();
        assert!(
            err.contains("poststop hook #0")
                && err.contains("exit status: 3")
                && err.ends_with(": nope"),
            "{err}"
        );
    }

    #[test]
    fn timeout_kills() {
        let h = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1}),
        );
        let started = Instant::now();
        let err = run(HookKind::Prestart, &[h], &state()).expect_err("times out");
        assert!(matches!(err, HookError::Timeout { secs: 1, .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // The hook's own children (the `sleep`) went with it.
        assert!(
            !sleep_30_running(),
            "a process the hook started survived the timeout"
        );
    }

    fn sleep_30_running() -> bool {
        let cwd = std::env::current_dir().ok();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\x0030\x00")
                    && std::fs::read_link(e.path().join("cwd")).ok() == cwd
            })
    }

    #[test]
    fn missing_binary() {
        let h = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        assert!(matches!(
            run(HookKind::Poststart, &[h], &state()),
            Err(HookError::Spawn { .. })
        ));
    }
}
