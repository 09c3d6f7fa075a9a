//! Real container engines — containerd 1.6, dockerd 20.10, podman 4.3 from Debian — started in
//! temp dirs with the runtime under test as their OCI runtime: the drop-in proof of issue 4.
//!
//! Every engine lives in a [`Sandbox`]: a fresh temp directory holding all its state, plus a
//! private mount namespace (`unshare --mount --propagation private`) in which `/run` and
//! `/var/lib` are empty tmpfs mounts. The namespace is needed because some paths are compiled
//! in and cannot be moved with flags: containerd 1.6's runc shim always puts its socket in
//! `/run/containerd/s/<hash>`, dockerd 20.10 has no flag for its runtime directories besides the
//! ones passed, and podman keeps a blob-info cache in `/var/lib/containers/cache` for root. In
//! the namespace those land on the tmpfs and vanish with it, so a test never touches the host's
//! `/run/containerd`, `/var/lib/docker`, `/var/lib/containers` or `/run/docker.sock`. Clients
//! (`ctr`, `docker`) run on the host and reach the daemon through a socket in the temp dir;
//! podman has no daemon, so its commands enter the namespace of a holder process with
//! `nsenter --mount`.
//!
//! Each test starts its own engine ([`Containerd::start`], [`Dockerd::start`],
//! [`Podman::start`]), so tests run in parallel. Dropping an engine removes its containers
//! through the engine, stops the daemon by pid (SIGTERM, SIGKILL after
//! [`DAEMON_STOP_TIMEOUT`]), kills whatever is left that refers to the sandbox (shims, conmon,
//! container processes and their descendants), detaches mounts under the temp dir deepest first,
//! removes the cgroups named after the sandbox in every hierarchy, and deletes the temp dir.
//!
//! A missing engine binary fails the test with the package to install (see `scripts/deps.sh`):
//! CI installs them, and a silently skipped drop-in test would prove nothing.

pub mod containerd;
pub mod dockerd;
pub mod podman;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

pub use containerd::Containerd;
pub use dockerd::Dockerd;
pub use podman::Podman;

use crate::host::{parse_mountinfo, process_alive};
use crate::runtime::{CmdOutput, open_tempdir, unique_id};

/// How long a daemon may take to answer its first request.
pub const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon gets to exit after SIGTERM before it is killed.
pub const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The default deadline of one client command (`ctr`, `docker`, `podman`).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long cleanup commands (removing containers through the engine) may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The shell script run by `unshare` before the engine: empty tmpfs over `/run` and `/var/lib`
/// in the new mount namespace, then exec the engine (so the pid stays the engine's).
const SANDBOX_SCRIPT: &str = "mount -t tmpfs -o mode=0755 skiff-test-run /run && \
     mount -t tmpfs -o mode=0755 skiff-test-varlib /var/lib && exec \"$@\"";

/// Returns `path` if it is an executable file, else fails the test naming the package.
///
/// # Panics
/// If `path` is missing: the drop-in tests must not pass by skipping.
#[track_caller]
pub fn require_binary(path: &str, package: &str) -> PathBuf {
    let p = Path::new(path);
    let ok = fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    assert!(
        ok,
        "{path} is missing: install Debian's `{package}` package (`apt-get install {package}`, \
         or run scripts/deps.sh); the drop-in tests need the real engine"
    );
    p.to_path_buf()
}

/// The runtime under test as an absolute path (engines store it and call it from other cwds).
pub fn skiff_path() -> PathBuf {
    let path = crate::runtime_path();
    fs::canonicalize(&path).unwrap_or_else(|e| panic!("resolving {}: {e}", path.display()))
}

/// A temp directory owned by one engine, the unique name of its cgroups and containerd
/// namespace, and the cleanup of everything that refers to either.
#[derive(Debug)]
pub struct Sandbox {
    name: String,
    dir: Option<TempDir>,
    path: PathBuf,
    io_counter: AtomicU64,
}

impl Sandbox {
    /// A fresh sandbox whose name starts with `prefix` (e.g. `skiff-ctd`).
    ///
    /// # Panics
    /// If the temp dir cannot be made.
    pub fn new(prefix: &str) -> Self {
        crate::require_root();
        let name = unique_id(prefix);
        let dir = open_tempdir(&format!("{prefix}-")).expect("creating the engine's temp dir");
        let path = fs::canonicalize(dir.path()).expect("resolving the engine's temp dir");
        fs::create_dir(path.join("io")).expect("creating the engine's io dir");
        Self {
            name,
            dir: Some(dir),
            path,
            io_counter: AtomicU64::new(0),
        }
    }

    /// The unique name: cgroup parent, containerd namespace, marker of owned processes.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The temp directory (absolute, canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name` as a string (temp paths are UTF-8).
    pub fn file(&self, name: &str) -> String {
        self.path
            .join(name)
            .to_str()
            .expect("temp paths are UTF-8")
            .to_string()
    }

    /// A fresh, empty subdirectory (mode 0755).
    pub fn subdir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        dir
    }

    /// A command run inside a new private mount namespace with empty `/run` and `/var/lib`
    /// (see the module docs); its pid is `program`'s.
    pub fn namespaced_command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(SANDBOX_SCRIPT)
            .arg("sh")
            .arg(program)
            .args(args)
            .current_dir(&self.path)
            .stdin(Stdio::null());
        command
    }

    fn io_paths(&self) -> (PathBuf, PathBuf, PathBuf) {
        let n = self.io_counter.fetch_add(1, Ordering::Relaxed);
        let io = self.path.join("io");
        (
            io.join(format!("{n}.stdin")),
            io.join(format!("{n}.stdout")),
            io.join(format!("{n}.stderr")),
        )
    }

    /// A client command whose stdio goes through files of this sandbox.
    pub fn client(&self, program: &Path) -> ClientCmd<'_> {
        ClientCmd {
            sandbox: self,
            prefix: Vec::new(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: CLIENT_TIMEOUT,
        }
    }

    /// Kills every process that refers to this sandbox and its descendants, detaches mounts
    /// under the temp dir, removes the sandbox's cgroups, and returns what it had to do.
    fn cleanup(&self) -> Vec<String> {
        let mut notes = Vec::new();
        for round in 0..3 {
            let pids = owned_processes(&self.path, &self.name);
            if pids.is_empty() {
                break;
            }
            for (pid, why) in &pids {
                if round == 0 {
                    notes.push(format!("killed leftover pid {pid} ({why})"));
                }
                let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while pids.keys().any(|p| process_alive(*p)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        notes.extend(unmount_under(&self.path));
        notes.extend(remove_cgroups(&self.name));
        notes
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for note in self.cleanup() {
            eprintln!("engine sandbox {}: {note}", self.name);
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = dir.close() {
                eprintln!(
                    "engine sandbox {}: removing {}: {e}",
                    self.name,
                    self.path.display()
                );
            }
        }
    }
}

/// One client command (`ctr …`, `docker …`, `podman …`) being built; see [`Sandbox::client`].
#[derive(Debug)]
pub struct ClientCmd<'a> {
    sandbox: &'a Sandbox,
    prefix: Vec<OsString>,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl ClientCmd<'_> {
    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// Runs the command through a wrapper: `prefix... program args...` (e.g. `nsenter`).
    pub fn wrap<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.prefix = prefix
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        self
    }

    /// Feeds `data` on stdin (default: `/dev/null`).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Overrides [`CLIENT_TIMEOUT`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line, for messages.
    pub fn describe(&self) -> String {
        self.prefix
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .chain(std::iter::once(self.program.display().to_string()))
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The command as a [`Command`] without stdio set up (for [`crate::pty::PtySession`]).
    pub fn command(&self) -> Command {
        let mut command = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        command.args(&self.args).current_dir(self.sandbox.path());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// Starts the command in the background with its stdio in files.
    ///
    /// # Panics
    /// If it cannot be started.
    pub fn spawn(self) -> Background {
        let describe = self.describe();
        let (stdin_path, stdout_path, stderr_path) = self.sandbox.io_paths();
        let stdin = match &self.stdin {
            Some(data) => {
                fs::write(&stdin_path, data)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", stdin_path.display()));
                Stdio::from(
                    File::open(&stdin_path)
                        .unwrap_or_else(|e| panic!("opening {}: {e}", stdin_path.display())),
                )
            }
            None => Stdio::null(),
        };
        let stdout = File::create(&stdout_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stdout_path.display()));
        let stderr = File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_path.display()));
        let mut command = self.command();
        command.stdin(stdin).stdout(stdout).stderr(stderr);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning `{describe}`: {e}"));
        Background {
            child: Some(child),
            describe,
            timeout: self.timeout,
            stdout_path,
            stderr_path,
        }
    }

    /// Runs the command to completion (killing it and panicking after the timeout).
    #[track_caller]
    pub fn run(self) -> CmdOutput {
        self.spawn().wait()
    }

    /// Like [`ClientCmd::run`], returning a description of what went wrong instead of
    /// panicking.
    pub fn try_run(self) -> Result<CmdOutput, String> {
        self.spawn().try_wait()
    }
}

/// A client command running in the background; killed on drop if still running.
#[derive(Debug)]
pub struct Background {
    child: Option<Child>,
    describe: String,
    timeout: Duration,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Background {
    /// The pid of the client.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the command has written to stdout so far.
    pub fn stdout_so_far(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Waits for the command (see [`Background::try_wait`]).
    #[track_caller]
    pub fn wait(self) -> CmdOutput {
        self.try_wait().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the command up to its timeout; on timeout kills it and returns its stderr in
    /// the error.
    pub fn try_wait(mut self) -> Result<CmdOutput, String> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| "the command was already waited for".to_string())?;
        let status = wait_child(&mut child, self.timeout).map_err(|e| {
            let stderr = fs::read_to_string(&self.stderr_path).unwrap_or_default();
            format!("`{}`: {e}. stderr:\n{stderr}", self.describe)
        })?;
        Ok(CmdOutput {
            describe: self.describe.clone(),
            status,
            stdout: fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr_path).unwrap_or_default(),
            stdout_path: self.stdout_path.clone(),
            stderr_path: self.stderr_path.clone(),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `child` up to `timeout`; on timeout SIGKILLs it (it is still unreaped, so its pid
/// cannot have been reused) and reaps it.
fn wait_child(child: &mut Child, timeout: Duration) -> Result<ExitStatus, String> {
    let (tx, rx) = mpsc::channel();
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pids fit in i32 on Linux"));
    // The wait happens on this thread; the helper only enforces the deadline.
    let timer = thread::spawn(move || {
        if rx.recv_timeout(timeout).is_err() {
            let _ = kill(pid, Signal::SIGKILL);
            return true;
        }
        false
    });
    let status = child.wait();
    let _ = tx.send(());
    let killed = timer.join().unwrap_or(false);
    if killed {
        return Err(format!("did not finish within {timeout:?}; killed it"));
    }
    status.map_err(|e| format!("waiting: {e}"))
}

/// A daemon process started by a fixture, stopped by pid on drop.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Daemon {
    /// Starts `command` with stdout and stderr appended to `log_path`.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let log =
            File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log2 = log.try_clone().context("dup of the log file")?;
        command.stdout(log).stderr(log2);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log_path: log_path.to_path_buf(),
        })
    }

    /// The daemon's pid.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of the log, for messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Polls `ready` until it returns true; returns how long that took.
    ///
    /// # Errors
    /// If the daemon exits first or `timeout` passes, with the end of its log.
    pub fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
        started: Instant,
    ) -> anyhow::Result<Duration> {
        let deadline = started + timeout;
        let mut delay = Duration::from_millis(5);
        loop {
            if ready() {
                return Ok(started.elapsed());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    anyhow::bail!(
                        "{} exited during start-up ({status}); log:\n{}",
                        self.name,
                        self.log_tail(40)
                    );
                }
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} did not answer within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after [`DAEMON_STOP_TIMEOUT`]. Returns a note
    /// when it had to be killed.
    pub fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let pid = Pid::from_raw(i32::try_from(child.id()).ok()?);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + DAEMON_STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return None,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Some(format!(
                        "{} ignored SIGTERM for {DAEMON_STOP_TIMEOUT:?}; killed it",
                        self.name
                    ));
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(note) = self.stop() {
            eprintln!("{note}");
        }
    }
}

/// Processes (other than this one and its ancestors) that refer to `dir` or `marker` — in their
/// command line, environment, cgroup, cwd, root or executable — plus all their descendants,
/// with the reason.
fn owned_processes(dir: &Path, marker: &str) -> BTreeMap<i32, String> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let dir_str = dir.to_string_lossy().into_owned();
    let mut parents: BTreeMap<i32, i32> = BTreeMap::new();
    let mut found: BTreeMap<i32, String> = BTreeMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if !process_alive(pid) {
            continue;
        }
        if let Some(ppid) = parent_of(pid) {
            parents.insert(pid, ppid);
        }
        let base = entry.path();
        let mut why = None;
        for file in ["cmdline", "environ", "cgroup"] {
            if let Ok(bytes) = fs::read(base.join(file)) {
                let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
                if text.contains(&dir_str) || text.contains(marker) {
                    why = Some(format!("{file}: {}", truncate(text.trim(), 160)));
                    break;
                }
            }
        }
        if why.is_none() {
            for link in ["cwd", "root", "exe"] {
                if let Ok(target) = fs::read_link(base.join(link)) {
                    if target.starts_with(dir) {
                        why = Some(format!("{link} -> {}", target.display()));
                        break;
                    }
                }
            }
        }
        if let Some(why) = why {
            found.insert(pid, why);
        }
    }
    // Descendants: the container processes of a shim or conmon refer to nothing of ours.
    let mut changed = true;
    while changed {
        changed = false;
        for (pid, ppid) in &parents {
            if !found.contains_key(pid) && found.contains_key(ppid) {
                found.insert(*pid, format!("child of {ppid}"));
                changed = true;
            }
        }
    }
    // Never this process or an ancestor of it.
    let mut ancestor = Some(me);
    let mut seen = BTreeSet::new();
    while let Some(pid) = ancestor {
        if !seen.insert(pid) || pid <= 1 {
            break;
        }
        found.remove(&pid);
        ancestor = parents.get(&pid).copied();
    }
    found.remove(&1);
    found
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The parent pid from `/proc/<pid>/stat`.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(1)?.parse().ok()
}

/// Detaches every mount of this mount namespace at or under `dir`, deepest first.
fn unmount_under(dir: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return vec!["cannot read /proc/self/mountinfo".into()];
    };
    let mut points: Vec<PathBuf> = parse_mountinfo(&text)
        .into_iter()
        .map(|m| PathBuf::from(m.mount_point))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    points
        .into_iter()
        .map(
            |p| match nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) => format!("detached leftover mount {}", p.display()),
                Err(e) => format!("cannot detach {}: {e}", p.display()),
            },
        )
        .collect()
}

/// The mount points of every cgroup hierarchy (v1 controllers, named v1, cgroup2).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&text)
        .into_iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| PathBuf::from(m.mount_point))
        .collect()
}

/// Removes `<hierarchy>/<name>` and everything below it in every cgroup hierarchy (rmdir,
/// deepest first, retried while processes are still leaving).
fn remove_cgroups(name: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let mounts = cgroup_mounts();
    // Plain directories under a v1 `/sys/fs/cgroup` tmpfs get litter too: podman's cgroupfs
    // manager makes `<controller>/<parent>/conmon/tasks` for every controller in /proc/cgroups,
    // including one (hugetlb, on cgroup2 on these hybrid hosts) whose directory exists on the
    // tmpfs without being a v1 mount. There it is ordinary files, removed as such.
    if cgroup_layout() == CgroupLayout::Legacy {
        if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
            for entry in entries.flatten() {
                let root = entry.path();
                let top = root.join(name);
                if mounts.contains(&root) || !top.is_dir() {
                    continue;
                }
                if let Err(e) = fs::remove_dir_all(&top) {
                    notes.push(format!("rm -r {}: {e}", top.display()));
                }
            }
        }
    }
    for mount in mounts {
        let top = mount.join(name);
        if !top.is_dir() {
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut dirs = Vec::new();
            collect_dirs(&top, &mut dirs);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            let mut failed = None;
            for d in &dirs {
                if let Err(e) = fs::remove_dir(d) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        failed = Some(format!("rmdir {}: {e}", d.display()));
                    }
                }
            }
            match failed {
                None => break,
                Some(e) if Instant::now() >= deadline => {
                    notes.push(e);
                    break;
                }
                Some(_) => thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    notes
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}

/// How the host's cgroups are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// `/sys/fs/cgroup` is a cgroup2 mount.
    Unified,
    /// v1 controllers under `/sys/fs/cgroup/<controller>` (possibly with a cgroup2 mount at
    /// `/sys/fs/cgroup/unified`).
    Legacy,
}

/// The host's cgroup layout.
pub fn cgroup_layout() -> CgroupLayout {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        CgroupLayout::Unified
    } else {
        CgroupLayout::Legacy
    }
}

/// Reads a cgroup file of the cgroup `path` (e.g. `/docker-parent/<id>`) as the host sees it:
/// Panics if a deleted container left its runtime state directory or its cgroup behind.
#[track_caller]
pub fn assert_container_gone(runtime_state: &Path, cgroup: &str) {
    assert!(
        !runtime_state.exists(),
        "the runtime's state {} is left",
        runtime_state.display()
    );
    let leftover = read_cgroup_file(cgroup, "pids", "cgroup.procs", "cgroup.procs");
    assert!(
        leftover.is_err(),
        "the container's cgroup {cgroup} is left after delete: {leftover:?}"
    );
}

/// `/sys/fs/cgroup/<v1_controller>/<path>/<v1_file>` on a v1 host,
/// `/sys/fs/cgroup/<path>/<v2_file>` on a v2 host. Returns the trimmed contents or an error
/// naming the file.
pub fn read_cgroup_file(
    path: &str,
    v1_controller: &str,
    v1_file: &str,
    v2_file: &str,
) -> Result<String, String> {
    let rel = path.trim_start_matches('/');
    let file = match cgroup_layout() {
        CgroupLayout::Legacy => Path::new("/sys/fs/cgroup")
            .join(v1_controller)
            .join(rel)
            .join(v1_file),
        CgroupLayout::Unified => Path::new("/sys/fs/cgroup").join(rel).join(v2_file),
    };
    fs::read_to_string(&file)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("reading {}: {e}", file.display()))
}
