//! Driving the runtime under test through its runc-compatible command line, and nothing else.
//!
//! Every invocation is `<runtime> --root <private dir> <subcommand> ...`, runs with a deadline
//! (a runtime that hangs fails the case instead of hanging the suite) and has its stdout and
//! stderr redirected to files: a container started by `create` inherits the caller's stdio, so
//! reading a pipe to EOF would wait for the container to exit.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// How long one runtime command may take before the case fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a deadline-bounded wait polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What one runtime command did.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub argv: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Fails with the command's stderr unless it exited 0.
    pub fn ok(self) -> anyhow::Result<Self> {
        if !self.success() {
            bail!(
                "`{}` failed ({}): {}",
                self.argv,
                self.status,
                self.stderr.trim()
            );
        }
        Ok(self)
    }
}

/// The runtime binary plus the private state directory (`--root`) of one case.
#[derive(Debug, Clone)]
pub struct Runtime {
    bin: PathBuf,
    /// With `--cgroup2-ns`: the suite's own binary, which re-executes itself as
    /// `--exec-in-cgroup2-ns -- RUNTIME ARGS` around every runtime invocation.
    wrapper: Option<PathBuf>,
    root: PathBuf,
    /// Where command outputs are captured (one pair of files per invocation).
    scratch: PathBuf,
}

static INVOCATION: AtomicU64 = AtomicU64::new(0);

impl Runtime {
    pub fn new(bin: &Path, wrapper: Option<&Path>, root: &Path, scratch: &Path) -> Self {
        Self {
            bin: bin.to_path_buf(),
            wrapper: wrapper.map(Path::to_path_buf),
            root: root.to_path_buf(),
            scratch: scratch.to_path_buf(),
        }
    }

    /// Runs `<runtime> --root ROOT ARGS`, stdout of the runtime (and of any container it
    /// starts with inherited stdio) going to `stdout_to` when given.
    pub fn run_with(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        stdout_to: Option<&Path>,
    ) -> anyhow::Result<Output> {
        let mut full: Vec<&str> = vec!["--root"];
        let root = self.root.to_str().context("the state dir is not UTF-8")?;
        full.push(root);
        full.extend_from_slice(args);
        self.invoke(&full, stdin, stdout_to)
    }

    /// Runs the runtime with exactly `args` (no `--root`; `features` takes no global flags).
    pub fn invoke(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        stdout_to: Option<&Path>,
    ) -> anyhow::Result<Output> {
        self.invoke_full(args, stdin, stdout_to, None)
    }

    /// `run_with`, with `fd3_from` opened read-only as the runtime's file descriptor 3 (what
    /// `--preserve-fds 1` passes on). A `sh` opens it and execs the runtime: std's `Command`
    /// can place a descriptor at a given number only through `unsafe` `pre_exec`.
    pub fn run_with_fd3(
        &self,
        args: &[&str],
        fd3_from: &Path,
        stdout_to: Option<&Path>,
    ) -> anyhow::Result<Output> {
        let mut full: Vec<&str> = vec!["--root"];
        let root = self.root.to_str().context("the state dir is not UTF-8")?;
        full.push(root);
        full.extend_from_slice(args);
        self.invoke_full(&full, None, stdout_to, Some(fd3_from))
    }

    fn invoke_full(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        stdout_to: Option<&Path>,
        fd3_from: Option<&Path>,
    ) -> anyhow::Result<Output> {
        let n = INVOCATION.fetch_add(1, Ordering::Relaxed);
        let out_path = match stdout_to {
            Some(p) => p.to_path_buf(),
            None => self.scratch.join(format!("cmd{n}.out")),
        };
        let err_path = self.scratch.join(format!("cmd{n}.err"));
        let argv = format!("{} {}", self.bin.display(), args.join(" "));
        let stdout =
            File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
        let stderr =
            File::create(&err_path).with_context(|| format!("creating {}", err_path.display()))?;
        // The program and the arguments before the runtime's own: `sh -c` for a descriptor 3,
        // then the `--cgroup2-ns` wrapper, then the runtime.
        let mut program: Vec<std::ffi::OsString> = Vec::new();
        if let Some(fd3) = fd3_from {
            program.extend(["/bin/sh".into(), "-c".into()]);
            program.push("exec 3<\"$0\" && exec \"$@\"".into());
            program.push(fd3.as_os_str().to_owned());
        }
        if let Some(wrapper) = &self.wrapper {
            program.push(wrapper.as_os_str().to_owned());
            program.extend([crate::cgroup2_ns::FLAG.into(), "--".into()]);
        }
        program.push(self.bin.as_os_str().to_owned());
        let mut cmd = Command::new(&program[0]);
        cmd.args(&program[1..])
            .args(args)
            .stdout(stdout)
            .stderr(stderr)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd.spawn().with_context(|| format!("spawning `{argv}`"))?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().context("stdin was piped")?;
            pipe.write_all(input)
                .with_context(|| format!("writing stdin of `{argv}`"))?;
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().context("waiting for the runtime")? {
                break status;
            }
            if Instant::now() > deadline {
                // Kill only the child we spawned, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                bail!("`{argv}` did not finish within {COMMAND_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let stdout = if stdout_to.is_some() {
            String::new()
        } else {
            fs::read_to_string(&out_path).unwrap_or_default()
        };
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        Ok(Output {
            argv,
            status,
            stdout,
            stderr,
        })
    }

    /// Runs `ARGS` with no stdin and captured stdout.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.run_with(args, None, None)
    }

    /// `create --bundle B [--pid-file P] ID`, the container's stdout going to `stdout_to`.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: Option<&Path>,
        stdout_to: &Path,
    ) -> anyhow::Result<Output> {
        let bundle = bundle.to_str().context("bundle path is not UTF-8")?;
        let mut args = vec!["create", "--bundle", bundle];
        let pid_file_str;
        if let Some(p) = pid_file {
            pid_file_str = p.to_str().context("pid file path is not UTF-8")?.to_owned();
            args.push("--pid-file");
            args.push(&pid_file_str);
        }
        args.push(id);
        self.run_with(&args, None, Some(stdout_to))
    }

    /// `state ID`, parsed.
    pub fn state(&self, id: &str) -> anyhow::Result<Value> {
        let out = self.run(&["state", id])?.ok()?;
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("`state {id}` printed invalid JSON: {}", out.stdout))
    }

    /// The `status` field of `state ID`.
    pub fn status(&self, id: &str) -> anyhow::Result<String> {
        let state = self.state(id)?;
        state["status"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("state of {id} has no string `status`: {state}"))
    }

    /// Polls `state ID` until its status is `want`, for at most `timeout`.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            last = self.status(id)?;
            if last == want {
                return Ok(());
            }
            thread::sleep(POLL_INTERVAL);
        }
        bail!("container {id} did not reach status {want:?} within {timeout:?} (last: {last:?})")
    }

    pub fn bin(&self) -> &Path {
        &self.bin
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}
