//! The runtime under test, driven only through its runc-compatible CLI.
//!
//! A [`Runtime`] owns a private temp directory holding its `--root` state directory and the
//! stdio files of every command it runs. Commands never use pipes: a detached container
//! (`create`, `run -d`) inherits the runtime's stdout and stderr, so waiting for EOF on a pipe
//! would wait for the container to exit. Files don't have that problem, and they keep the
//! container's output readable after the runtime has exited ([`CmdOutput::reread_stdout`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;

/// How long one runtime command may take before the test fails. Generous: the machines are
/// shared and noisy, and a hang must fail the test rather than block the suite forever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

static ID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A container id unique across parallel tests and test binaries: `<prefix>-<pid>-<n>-<nanos>`.
pub fn unique_id(prefix: &str) -> String {
    let n = ID_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:09}", std::process::id())
}

/// Creates a temp directory that every user can traverse and read (mode 0755).
///
/// `tempfile` makes 0700 directories; a container whose user is not host root (a user namespace,
/// or `process.user.uid != 0` before the runtime drops privileges) could not reach a bundle or a
/// bind-mount source inside one.
pub(crate) fn open_tempdir(prefix: &str) -> anyhow::Result<TempDir> {
    use anyhow::Context as _;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .context("creating a temp dir")?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 0755 {}", dir.path().display()))?;
    Ok(dir)
}

/// The runtime binary plus a private state directory (`--root`).
#[derive(Debug)]
pub struct Runtime {
    bin: PathBuf,
    dir: TempDir,
    root: PathBuf,
    io_counter: AtomicU64,
}

impl Runtime {
    /// The runtime from [`crate::runtime_path`], with a fresh private `--root`.
    ///
    /// # Panics
    /// If not running as root (see [`crate::require_root`]) or no runtime binary exists.
    pub fn new() -> Self {
        crate::require_root();
        Self::with_binary(crate::runtime_path())
    }

    /// A specific runtime binary, with a fresh private `--root`.
    pub fn with_binary(bin: PathBuf) -> Self {
        let dir = open_tempdir("skiff-rt-").expect("creating the runtime's temp dir");
        let root = dir.path().join("state");
        fs::create_dir(&root).expect("creating the --root state dir");
        fs::create_dir(dir.path().join("io")).expect("creating the stdio dir");
        Self {
            bin,
            dir,
            root,
            io_counter: AtomicU64::new(0),
        }
    }

    /// The runtime binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The `--root` state directory passed to every command.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A scratch directory (mode 0755) that lives as long as this runtime handle: for sockets,
    /// hook markers, bind-mount sources, logs.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh, empty subdirectory of [`Runtime::scratch`] (mode 0755).
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let n = self.io_counter.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.path().join(format!("{name}-{n}"));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        dir
    }

    /// A command `<runtime> --root <root> <args...>`; add more with [`RuntimeCmd::arg`], then
    /// [`RuntimeCmd::run`] it.
    pub fn cmd<I, S>(&self, args: I) -> RuntimeCmd<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        RuntimeCmd {
            rt: self,
            global: Vec::new(),
            args: args
                .into_iter()
                .map(|a| a.as_ref().to_os_string())
                .collect(),
            wrapper: Vec::new(),
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `state <id>` parsed as JSON.
    ///
    /// # Panics
    /// If the command fails or prints something other than JSON.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.cmd(["state", id]).run();
        out.expect_success();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("`state {id}` printed invalid JSON ({e}):\n{out}"))
    }

    /// Entries of the state directory whose name mentions `id` (runc keeps `<root>/<id>/`).
    pub fn state_entries(&self, id: &str) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(id))
            .map(|e| e.path())
            .collect()
    }

    fn io_paths(&self) -> (PathBuf, PathBuf) {
        let n = self.io_counter.fetch_add(1, Ordering::Relaxed);
        let io = self.dir.path().join("io");
        (
            io.join(format!("{n}.stdout")),
            io.join(format!("{n}.stderr")),
        )
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

/// One runtime command being built; see [`Runtime::cmd`].
#[derive(Debug)]
pub struct RuntimeCmd<'a> {
    rt: &'a Runtime,
    global: Vec<OsString>,
    args: Vec<OsString>,
    wrapper: Vec<OsString>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl RuntimeCmd<'_> {
    /// Appends one argument after the subcommand's arguments so far.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Appends arguments after the subcommand's arguments so far.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Adds global flags (e.g. `--log F --log-format json`), placed before the subcommand.
    pub fn global<I, S>(mut self, flags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.global
            .extend(flags.into_iter().map(|f| f.as_ref().to_os_string()));
        self
    }

    /// Runs the runtime through a host wrapper: `wrapper... <runtime> <args...>`.
    ///
    /// Used to hand the runtime extra file descriptors without `unsafe` `pre_exec`, e.g.
    /// `["/bin/sh", "-c", "exec 3<\"$0\"; exec \"$@\"", "/path/file"]`.
    pub fn wrap<I, S>(mut self, wrapper: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.wrapper = wrapper
            .into_iter()
            .map(|w| w.as_ref().to_os_string())
            .collect();
        self
    }

    /// Working directory of the runtime (the bundle, as containerd does).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Overrides [`DEFAULT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn argv(&self) -> Vec<OsString> {
        let mut argv = self.wrapper.clone();
        argv.push(self.rt.bin.clone().into_os_string());
        argv.push("--root".into());
        argv.push(self.rt.root.clone().into_os_string());
        argv.extend(self.global.iter().cloned());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Starts the command with stdin from /dev/null and stdout/stderr into fresh files.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn spawn(self) -> RunningCmd {
        self.try_spawn().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`RuntimeCmd::spawn`], returning a description of what went wrong instead of
    /// panicking (for `Drop` implementations).
    pub fn try_spawn(self) -> Result<RunningCmd, String> {
        let argv = self.argv();
        let describe = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let (stdout_path, stderr_path) = self.rt.io_paths();
        let stdout = File::create(&stdout_path)
            .map_err(|e| format!("create {}: {e}", stdout_path.display()))?;
        let stderr = File::create(&stderr_path)
            .map_err(|e| format!("create {}: {e}", stderr_path.display()))?;
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("spawning `{describe}`: {e}"))?;
        Ok(RunningCmd {
            spawned: Some(Spawned {
                child,
                describe,
                timeout: self.timeout,
                stdout_path,
                stderr_path,
            }),
        })
    }

    /// Runs the command to completion (or panics after the timeout, killing it).
    #[track_caller]
    pub fn run(self) -> CmdOutput {
        self.spawn().wait()
    }

    /// Like [`RuntimeCmd::run`], returning a description of what went wrong (could not start,
    /// timed out) instead of panicking.
    pub fn try_run(self) -> Result<CmdOutput, String> {
        self.try_spawn()?.try_wait()
    }
}

/// A runtime command started with [`RuntimeCmd::spawn`].
///
/// Dropping it without waiting (a test that panicked meanwhile) kills the runtime process, so
/// a stuck runtime does not outlive the test.
#[derive(Debug)]
pub struct RunningCmd {
    spawned: Option<Spawned>,
}

#[derive(Debug)]
struct Spawned {
    child: Child,
    describe: String,
    timeout: Duration,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Drop for RunningCmd {
    fn drop(&mut self) {
        if let Some(mut spawned) = self.spawned.take() {
            let _ = spawned.child.kill();
            let _ = spawned.child.wait();
        }
    }
}

impl RunningCmd {
    /// The host pid of the started command (the runtime process itself).
    pub fn pid(&self) -> Option<u32> {
        self.spawned.as_ref().map(|s| s.child.id())
    }

    /// What the command has written to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        self.spawned
            .as_ref()
            .and_then(|s| fs::read_to_string(&s.stdout_path).ok())
            .unwrap_or_default()
    }

    /// Waits for the command, killing it and panicking when its timeout passes.
    #[track_caller]
    pub fn wait(self) -> CmdOutput {
        self.try_wait().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the command, killing it when its timeout passes and returning a description of
    /// what went wrong instead of panicking.
    pub fn try_wait(mut self) -> Result<CmdOutput, String> {
        let Spawned {
            mut child,
            describe,
            timeout,
            stdout_path,
            stderr_path,
        } = self
            .spawned
            .take()
            .ok_or_else(|| "the command was already waited for".to_string())?;
        let pid = nix::unistd::Pid::from_raw(
            i32::try_from(child.id()).expect("pids fit in i32 on Linux"),
        );
        let (tx, rx) = mpsc::channel();
        // A thread does the blocking wait so the deadline costs no polling latency. The child
        // stays unreaped until that wait returns, so killing `pid` below cannot hit a reused pid.
        let waiter = thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(timeout) {
            Ok(status) => status.map_err(|e| format!("waiting for `{describe}`: {e}"))?,
            Err(_) => {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = waiter.join();
                let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err(format!(
                    "`{describe}` did not finish within {timeout:?}; killed it. stderr:\n{stderr}"
                ));
            }
        };
        let _ = waiter.join();
        let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
        let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
        Ok(CmdOutput {
            describe,
            status,
            stdout,
            stderr,
            stdout_path,
            stderr_path,
        })
    }
}

/// The result of one runtime command.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub describe: String,
    /// Exit status of the runtime process.
    pub status: ExitStatus,
    /// Everything written to stdout until the runtime exited.
    pub stdout: String,
    /// Everything written to stderr until the runtime exited.
    pub stderr: String,
    /// The file that received stdout (a detached container keeps writing to it).
    pub stdout_path: PathBuf,
    /// The file that received stderr (a detached container keeps writing to it).
    pub stderr_path: PathBuf,
}

impl CmdOutput {
    /// True if the runtime exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` if a signal ended the runtime.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the full output unless the command succeeded.
    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// Panics with the full output unless the command failed (non-zero exit, not a signal).
    #[track_caller]
    pub fn expect_failure(&self) -> &Self {
        assert!(
            self.code().is_some_and(|c| c != 0),
            "command should have failed with an exit code:\n{self}"
        );
        self
    }

    /// Panics unless the command failed and its stderr contains `needle`.
    #[track_caller]
    pub fn expect_error_containing(&self, needle: &str) -> &Self {
        self.expect_failure();
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}:\n{self}"
        );
        self
    }

    /// Stdout read again from its file, including what a detached container wrote since.
    pub fn reread_stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Stderr read again from its file, including what a detached container wrote since.
    pub fn reread_stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "unknown status".to_string(),
        };
        write!(
            f,
            "$ {}\n[{status}]\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.describe, self.stdout, self.stderr
        )
    }
}
