//! Containers: records in the metadata DB, the bundle on disk, and their tasks through shims.
//!
//! # Records (`containers` table, JSON, see [`crate::metadata`])
//!
//! A [`ContainerRecord`] holds what docker keeps in `config.v2.json` + `hostconfig.json`: the
//! merged config, the host config as sent, name, labels (in the config), created time, the
//! image, the runtime, the snapshot key, and the [`StateRecord`] (status, pid, exit code,
//! times, restart count). Every lifecycle step writes the record before it reports success.
//!
//! # On disk: `<data-root>/containers/<id>/` is the bundle
//!
//! `config.json` (written at every start from the record, so a changed default applies),
//! `rootfs/` (the overlay of the container's active snapshot `container-<id>`, mounted at start
//! and unmounted when the task is gone), `hostname`, `hosts`, `resolv.conf` (bind-mounted),
//! `<id>-json.log` (the json-file log), the stdio fifos, and the shim's files (`log` fifo,
//! `address`, `shim-binary-path`, `init.pid`).
//!
//! # Tasks
//!
//! A start makes a new task: `shim start` → `Create` → `Start`, and a thread blocked in `Wait`
//! reports the exit; the exit handler then `Delete`s the task (which also waits for the
//! shim's stdio copy), drains the fifos, shuts the shim down, unmounts the rootfs, records the
//! exit and wakes the waiters — in that order, so an attached client has all output before
//! `wait` answers. Lifecycle operations of one container are serialised by its `op` lock; the
//! exit handler does not take it (a stop holds it while waiting for the exit).

pub mod archive;
pub mod changes;
pub mod commit;
pub mod config;
pub mod health;
pub mod io;
pub mod logs;
pub mod spec;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use self::config::{ContainerConfig, HostConfig, ImageDefaults};
use self::io::{Attachers, ProcessIo};
use crate::ErrorKind;
use crate::events::{Event, EventLog};
use crate::images::ImageService;
use crate::metadata::{MetadataStore, Table};
use crate::tasks::{self, Exit, Shim, ShimConfig};

/// How long a forced removal or a stop's SIGKILL waits for the exit.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// Errors of the container service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No container by that name or id.
    #[error("No such container: {0}")]
    NotFound(String),
    /// A path missing in the container (the message is docker's whole sentence).
    #[error("{0}")]
    PathNotFound(String),
    /// No exec instance by that id.
    #[error("No such exec instance: {0}")]
    ExecNotFound(String),
    /// A short id matching several containers.
    #[error("multiple containers match {0:?}")]
    Ambiguous(String),
    /// The name is taken.
    #[error(
        "Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name.
        name: String,
        /// The holder.
        id: String,
    },
    /// The name is malformed.
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    /// The operation needs a running container.
    #[error("Container {0} is not running")]
    NotRunning(String),
    /// Removal of a running container without force.
    #[error(
        "cannot remove container \"{0}\": container is running: stop the container before removing or force remove"
    )]
    Running(String),
    /// The container is paused.
    #[error("Container {0} is paused, unpause the container before stopping or killing")]
    Paused(String),
    /// Pause of a container that is paused already.
    #[error("Container {0} is already paused")]
    AlreadyPaused(String),
    /// Unpause of a container that is not paused.
    #[error("Container {0} is not paused")]
    NotPaused(String),
    /// Unknown `--runtime`.
    #[error("unknown or invalid runtime name: {0}")]
    UnknownRuntime(String),
    /// A request field is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the object's state (409), in docker's words.
    #[error("{0}")]
    Conflict(String),
    /// The spec cannot be built from the request.
    #[error(transparent)]
    Spec(#[from] spec::Error),
    /// The image failed.
    #[error(transparent)]
    Image(#[from] crate::images::Error),
    /// The snapshotter failed.
    #[error("container rootfs")]
    Snapshot(#[from] crate::snapshots::Error),
    /// The metadata DB failed.
    #[error("container metadata")]
    Metadata(#[from] crate::metadata::Error),
    /// The shim or runtime failed (the runtime's own message is in the chain).
    #[error(transparent)]
    Task(#[from] tasks::Error),
    /// A file step failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The service-boundary class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) | Error::ExecNotFound(_) | Error::PathNotFound(_) => {
                ErrorKind::NotFound
            }
            Error::NameInUse { .. } => ErrorKind::AlreadyExists,
            Error::Ambiguous(_)
            | Error::InvalidName(_)
            | Error::UnknownRuntime(_)
            | Error::Invalid(_)
            | Error::Spec(_) => ErrorKind::InvalidArgument,
            Error::NotRunning(_)
            | Error::Running(_)
            | Error::Paused(_)
            | Error::AlreadyPaused(_)
            | Error::NotPaused(_)
            | Error::Conflict(_) => ErrorKind::FailedPrecondition,
            Error::Image(e) => e.kind(),
            Error::Snapshot(e) => e.kind(),
            Error::Metadata(e) => e.kind(),
            // A runtime refusing the spec is the request's fault as far as the client can act.
            Error::Task(e) => match e.kind() {
                ErrorKind::Internal | ErrorKind::Unavailable => ErrorKind::Internal,
                k => k,
            },
            Error::Io { .. } => ErrorKind::Internal,
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// A container's status (docker's `State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started (or not since).
    Created,
    /// Its task runs.
    Running,
    /// Frozen.
    Paused,
    /// Being restarted by its policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Its task exited.
    Exited,
    /// Unusable (a failed removal).
    Dead,
}

impl Status {
    /// Every state.
    pub const ALL: [Status; 7] = [
        Status::Created,
        Status::Running,
        Status::Paused,
        Status::Restarting,
        Status::Removing,
        Status::Exited,
        Status::Dead,
    ];

    /// docker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a task exists.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

/// The state part of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Status.
    pub status: Status,
    /// The init's host pid while running.
    pub pid: u32,
    /// The last exit code.
    pub exit_code: i64,
    /// Unix nanoseconds of the last start (0 = never).
    pub started_at: i64,
    /// Unix nanoseconds of the last exit (0 = never).
    pub finished_at: i64,
    /// The last start error.
    #[serde(default)]
    pub error: String,
    /// Killed by the OOM killer.
    #[serde(default)]
    pub oom_killed: bool,
    /// The shim's address while a task exists.
    #[serde(default)]
    pub shim_address: String,
}

/// A container's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex.
    pub id: String,
    /// With its leading `/`.
    pub name: String,
    /// Unix nanoseconds.
    pub created: i64,
    /// The image as the user named it.
    pub image: String,
    /// The image id (`sha256:…`).
    pub image_id: String,
    /// The merged config.
    pub config: ContainerConfig,
    /// The host config as sent (normalised where docker normalises).
    pub host_config: Value,
    /// The OCI runtime's name.
    pub runtime: String,
    /// The snapshot key of the rootfs.
    pub snapshot: String,
    /// The process's path (argv[0]).
    pub path: String,
    /// The rest of argv.
    pub args: Vec<String>,
    /// The state.
    pub state: StateRecord,
    /// Restarts by policy.
    #[serde(default)]
    pub restart_count: u64,
    /// Stopped or killed by the user (docker's `HasBeenManuallyStopped`): restart policies
    /// other than `always`-after-a-daemon-restart leave it alone.
    #[serde(default)]
    pub manually_stopped: bool,
}

impl ContainerRecord {
    /// The typed host config.
    pub fn host(&self) -> HostConfig {
        serde_json::from_value(self.host_config.clone()).unwrap_or_default()
    }

    /// The name without its `/`.
    pub fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }
}

/// What waiters watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitState {
    /// Exits so far (this process's life).
    pub exits: u64,
    /// The last exit code.
    pub last_exit: i64,
    /// A task runs.
    pub running: bool,
    /// The container is gone.
    pub removed: bool,
}

/// `wait`'s conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once if not running, else at the exit.
    NotRunning,
    /// The next exit, even if not running now.
    NextExit,
    /// Removal.
    Removed,
}

struct Task {
    shim: Shim,
    io: Arc<ProcessIo>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("shim", &self.shim).finish()
    }
}

/// An exec instance.
#[derive(Debug)]
pub struct ExecInstance {
    /// Its id.
    pub id: String,
    /// The container's id.
    pub container_id: String,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env`.
    pub env: Vec<String>,
    /// `User`.
    pub user: String,
    /// `WorkingDir`.
    pub working_dir: String,
    /// `Tty`.
    pub tty: bool,
    /// `Privileged`.
    pub privileged: bool,
    /// `AttachStdin`.
    pub attach_stdin: bool,
    /// `AttachStdout`.
    pub attach_stdout: bool,
    /// `AttachStderr`.
    pub attach_stderr: bool,
    /// (running, pid, exit code).
    pub state: Mutex<(bool, u32, Option<i64>)>,
    /// The output's clients.
    pub attachers: Arc<Attachers>,
    io: Mutex<Option<Arc<ProcessIo>>>,
    done: watch::Sender<bool>,
}

impl ExecInstance {
    /// Writes to its stdin.
    pub async fn write_stdin(&self, data: &[u8]) -> bool {
        let io = self.io.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match io {
            Some(io) => io.write_stdin(data).await,
            None => false,
        }
    }

    /// A receiver that turns true when the exec exited and its output is drained.
    pub fn done(&self) -> watch::Receiver<bool> {
        self.done.subscribe()
    }
}

/// The daemon-side half of one container.
#[derive(Debug)]
pub struct Live {
    op: tokio::sync::Mutex<()>,
    task: Mutex<Option<Arc<Task>>>,
    /// The output's clients (attach before start works: the next task feeds them).
    pub attachers: Arc<Attachers>,
    waiters: watch::Sender<WaitState>,
    execs: Mutex<Vec<String>>,
    /// `State.Health` while a health check runs for the current task.
    health: Mutex<Option<health::Health>>,
}

impl Live {
    fn new() -> Self {
        Self {
            op: tokio::sync::Mutex::new(()),
            task: Mutex::new(None),
            attachers: Arc::new(Attachers::default()),
            waiters: watch::channel(WaitState::default()).0,
            execs: Mutex::new(Vec::new()),
            health: Mutex::new(None),
        }
    }

    /// The health state, if the container has a health check running.
    pub fn health(&self) -> Option<health::Health> {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn task(&self) -> Option<Arc<Task>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The state waiters see.
    pub fn watch(&self) -> watch::Receiver<WaitState> {
        self.waiters.subscribe()
    }

    /// Writes to the init's stdin once a task exists; false if it has none (or it closed).
    pub async fn write_stdin(&self, data: &[u8]) -> bool {
        let mut rx = self.watch();
        let start = *rx.borrow();
        if self.task().is_none() {
            // Attach happens before start: wait for the task (or an exit/removal).
            let _ = rx
                .wait_for(|w| w.running || w.exits > start.exits || w.removed)
                .await;
        }
        match self.task() {
            Some(t) => t.io.write_stdin(data).await,
            None => false,
        }
    }

    /// Closes the init's stdin (our end and the shim's `CloseIO`).
    pub async fn close_stdin(&self) {
        if let Some(t) = self.task() {
            t.io.close_stdin().await;
            let shim = t.shim.clone();
            let _ = tokio::task::spawn_blocking(move || shim.close_stdin("")).await;
        }
    }
}

/// An exit reported by a wait thread.
#[derive(Debug)]
struct ExitMsg {
    container: String,
    exec: Option<String>,
    exit: Exit,
}

/// Runtime binaries by name, the default, and the shim.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `skiff`, `runc`, `crun`, … → binary.
    pub runtimes: BTreeMap<String, PathBuf>,
    /// The default's name.
    pub default: String,
    /// How shims are started.
    pub shim: ShimConfig,
    /// The init `--init` bind-mounts as `/sbin/docker-init` (`skiff-init`); None: not found.
    pub init: Option<PathBuf>,
}

/// What `POST /commit` asks for besides the container.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// `repo:tag` of the new image; None: untagged.
    pub name: Option<String>,
    /// `--message`.
    pub comment: String,
    /// `--author`.
    pub author: String,
    /// Pause a running container for the copy.
    pub pause: bool,
    /// The request body's `Config`, laid over the container's.
    pub config: Option<Value>,
    /// `--change` instructions, in order.
    pub changes: Vec<String>,
}

/// The container service.
#[derive(Debug)]
pub struct ContainerService {
    meta: Arc<MetadataStore>,
    images: Arc<ImageService>,
    events: Arc<EventLog>,
    root: PathBuf,
    runtime: RuntimeConfig,
    host_info: spec::HostInfo,
    live: Mutex<HashMap<String, Arc<Live>>>,
    execs: Mutex<HashMap<String, Arc<ExecInstance>>>,
    /// Held for a read-modify-write of a record ([`Self::update_record`]).
    record_lock: Mutex<()>,
    exits: mpsc::UnboundedSender<ExitMsg>,
    exits_rx: Mutex<Option<mpsc::UnboundedReceiver<ExitMsg>>>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // /dev/urandom never blocks after boot and never fails short on small reads (random(4)).
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut buf);
    }
    hex::encode(buf)
}

/// docker's `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`: two characters at least.
fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nifty", "quiet", "sharp", "tender", "upbeat", "vivid",
];
const NOUNS: [&str; 16] = [
    "hopper", "lovelace", "turing", "curie", "noether", "ritchie", "thompson", "torvalds", "knuth",
    "dijkstra", "hamilton", "shannon", "babbage", "liskov", "kay", "wozniak",
];

/// Reads a small host file, "" when absent.
fn read_or_empty(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// A file of the container's rootfs as text (empty when missing), read with the rootfs as the
/// root: the container owns these files and may have made them symlinks or FIFOs.
fn read_in_rootfs(rootfs: &Path, path: &str) -> String {
    archive::read_in_root(rootfs, path, 16 << 20)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The host's facts the spec needs.
pub fn host_info() -> spec::HostInfo {
    let cgroup2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    spec::HostInfo {
        arch: std::env::consts::ARCH.to_owned(),
        kernel: skiff_seccomp_profiles::host_kernel_version().ok(),
        cgroup2,
        apparmor: read_or_empty(Path::new("/sys/module/apparmor/parameters/enabled"))
            .trim()
            .eq_ignore_ascii_case("y"),
        last_cap: read_or_empty(Path::new("/proc/sys/kernel/cap_last_cap"))
            .trim()
            .parse()
            .unwrap_or(40),
        bounding: read_or_empty(Path::new("/proc/self/status"))
            .lines()
            .find_map(|l| l.strip_prefix("CapBnd:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(u64::MAX),
    }
}

/// Creates `dir` inside `root` component by component, refusing symlinks (the rootfs is the
/// image's: a symlink could point outside it).
fn mkdir_in_root(root: &Path, dir: &str) -> Result<(), Error> {
    let mut cur = root.to_path_buf();
    for c in dir.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err(Error::Invalid(format!(
                "working directory {dir:?} leaves the rootfs"
            )));
        }
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(()), // a symlink or file: leave it to the runtime to judge
            Err(_) => fs::create_dir(&cur).map_err(io_err("create", &cur))?,
        }
    }
    Ok(())
}

fn is_mounted(path: &Path) -> bool {
    let want = path.display().to_string();
    read_or_empty(Path::new("/proc/self/mountinfo"))
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn unmount(path: &Path) {
    // Detach: a process still holding a file (a late `docker cp`) must not block cleanup.
    while is_mounted(path) {
        if nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

/// Whether an exited container restarts by its policy (`daemon_start`: the decision at a
/// daemon start, where `always` restarts even a manually stopped container).
pub fn should_restart(rec: &ContainerRecord, daemon_start: bool) -> bool {
    let p = rec.host().restart_policy;
    match p.name.as_str() {
        "always" => daemon_start || !rec.manually_stopped,
        "unless-stopped" => !rec.manually_stopped,
        "on-failure" => {
            !daemon_start
                && !rec.manually_stopped
                && rec.state.exit_code != 0
                && (p.maximum_retry_count <= 0
                    || i64::try_from(rec.restart_count).unwrap_or(i64::MAX) < p.maximum_retry_count)
        }
        _ => false,
    }
}

/// Parses a docker signal (`TERM`, `SIGTERM`, `15`) into its number.
pub fn parse_signal(s: &str) -> Result<i32, Error> {
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::Invalid(format!("invalid signal: {s}")));
    }
    let up = t.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::Invalid(format!("invalid signal: {s}")))
}

/// A duration as Go prints it in docker's messages (`30s`, `1.5s`, `500ms`).
fn go_duration_text(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Whether the kernel accounts swap per cgroup: v1 `memory.memsw.limit_in_bytes` in the memory
/// hierarchy's root; on v2 `memory.swap.max` in skiffd's own cgroup (the root cgroup has none).
fn swap_accounting() -> bool {
    if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        return true;
    }
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return false;
    }
    read_or_empty(Path::new("/proc/self/cgroup"))
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|own| *own != "/")
        .is_some_and(|own| {
            Path::new("/sys/fs/cgroup")
                .join(own.trim_start_matches('/'))
                .join("memory.swap.max")
                .exists()
        })
}

/// The CPUs the host has online (docker's `--cpus` and `--cpuset-cpus` checks use the host's
/// CPUs, not what skiffd's own affinity or quota allows): the members of
/// `/sys/devices/system/cpu/online`.
fn host_cpus() -> usize {
    let online = read_or_empty(Path::new("/sys/devices/system/cpu/online"));
    let count: usize = online
        .trim()
        .split(',')
        .filter_map(|r| {
            let (a, b) = r.split_once('-').unwrap_or((r, r));
            Some(b.parse::<usize>().ok()? + 1 - a.parse::<usize>().ok()?)
        })
        .sum();
    if count > 0 {
        count
    } else {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }
}

fn now_nanos() -> i64 {
    logs::now_nanos()
}

/// Runs blocking work (shim calls, mounts) off the async threads.
async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            op: "run blocking work",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
}

/// `a: b: c` from an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl ContainerService {
    /// Builds the service over the stores; call [`run`](Self::run) to handle exits.
    pub fn new(
        meta: Arc<MetadataStore>,
        images: Arc<ImageService>,
        events: Arc<EventLog>,
        data_root: &Path,
        runtime: RuntimeConfig,
    ) -> Result<Self, Error> {
        let root = data_root.join("containers");
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Self {
            meta,
            images,
            events,
            root,
            runtime,
            host_info: host_info(),
            live: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            record_lock: Mutex::new(()),
            exits: tx,
            exits_rx: Mutex::new(Some(rx)),
        })
    }

    /// The runtimes known.
    pub fn runtimes(&self) -> &RuntimeConfig {
        &self.runtime
    }

    /// Handles exits and shim events until both channels close. Also settles records left
    /// running by a previous skiffd (their tasks are not reconnected yet: they are marked
    /// exited and their shims told to clean up).
    pub async fn run(self: Arc<Self>, mut shim_events: mpsc::UnboundedReceiver<tasks::ShimEvent>) {
        let Some(mut exits) = self
            .exits_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        loop {
            tokio::select! {
                m = exits.recv() => match m {
                    Some(m) => {
                        let svc = self.clone();
                        tokio::spawn(async move { svc.on_exit(m).await });
                    }
                    None => break,
                },
                e = shim_events.recv() => match e {
                    Some(e) if e.topic == "/tasks/oom" => self.on_oom(&e.container_id),
                    Some(_) => {}
                    None => std::future::pending::<()>().await,
                },
            }
        }
    }

    /// After a restart: reconnects the tasks a previous skiffd left (containerd's
    /// `LoadExistingShims`, `reference/containerd-shim-and-store.md` §4): for each record with a
    /// task, dial the shim's address, `Connect`, `State`; then reopen the stdio fifos (the shim
    /// kept them; output written meanwhile waits in the pipe), restart the shim-log reader and
    /// re-arm `Wait` — an exit that happened while skiffd was down returns at once and goes
    /// through the ordinary exit path. A shim that does not answer is dead: its `delete` action
    /// cleans up and the container is recorded as exited with 255 (containerd's
    /// `cleanupAfterDeadShim`). Returns (reconnected, settled).
    pub async fn recover(self: &Arc<Self>) -> Result<(usize, usize), Error> {
        let (mut reconnected, mut settled) = (0, 0);
        for mut rec in self.list()? {
            if !(rec.state.status.is_live() || rec.state.status == Status::Removing) {
                continue;
            }
            let dir = self.dir(&rec.id);
            let addr = rec.state.shim_address.clone();
            let id = rec.id.clone();
            let d2 = dir.clone();
            let found = run_blocking(move || {
                let path = addr.strip_prefix("unix://").unwrap_or(&addr);
                if addr.is_empty() || !Path::new(path).exists() {
                    return Ok(None);
                }
                let Ok(shim) = Shim::connect(&addr, &id) else {
                    return Ok(None);
                };
                if shim.connect_info().is_err() {
                    return Ok(None);
                }
                let Ok(state) = shim.state("") else {
                    return Ok(None);
                };
                tasks::serve_shim_log(&d2, &id)?;
                Ok(Some((shim, state)))
            })
            .await?;
            let live = self.live(&rec.id);
            match found {
                Some((shim, (status, _pid, _))) if rec.state.status != Status::Removing => {
                    let io = self.init_io(&rec, &live)?;
                    self.spawn_wait(shim.clone(), &rec.id, None)?;
                    *live.task.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Arc::new(Task { shim, io }));
                    // task.proto: PAUSED = 4.
                    rec.state.status = if status == 4 {
                        Status::Paused
                    } else {
                        Status::Running
                    };
                    self.put(&rec)?;
                    live.waiters.send_modify(|w| w.running = true);
                    self.spawn_health(&rec, &live);
                    reconnected += 1;
                }
                other => {
                    if let Some((shim, _)) = other {
                        let _ = shim.kill("", 9, true);
                        let _ = shim.delete("");
                        shim.shutdown();
                    }
                    let cfg = self.runtime.shim.clone();
                    let id = rec.id.clone();
                    let d2 = dir.clone();
                    run_blocking(move || {
                        tasks::cleanup_dead(&cfg, &id, &d2);
                        tasks::remove_shim_log(&d2);
                        unmount(&d2.join("rootfs"));
                        Ok(())
                    })
                    .await?;
                    rec.state.status = Status::Exited;
                    rec.state.exit_code = 255;
                    rec.state.pid = 0;
                    rec.state.finished_at = now_nanos();
                    rec.state.shim_address.clear();
                    self.put(&rec)?;
                    self.event(&rec, "die", &[("exitCode", "255".to_owned())]);
                    settled += 1;
                }
            }
        }
        Ok((reconnected, settled))
    }

    /// Arms a thread blocked in `Wait` for the init (`exec` None) or an exec.
    fn spawn_wait(&self, shim: Shim, container: &str, exec: Option<String>) -> Result<(), Error> {
        let tx = self.exits.clone();
        let cid = container.to_owned();
        std::thread::Builder::new()
            .name("task-wait".into())
            .spawn(move || {
                let exit = shim.wait(exec.as_deref().unwrap_or("")).unwrap_or(Exit {
                    status: 255,
                    at_nanos: now_nanos(),
                });
                let _ = tx.send(ExitMsg {
                    container: cid,
                    exec,
                    exit,
                });
            })
            .map_err(io_err("spawn wait thread for", &self.dir(container)))?;
        Ok(())
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The init's stdio: the fifos in the container's directory, copied to its json-file log and
    /// to attached clients.
    fn init_io(&self, rec: &ContainerRecord, live: &Live) -> Result<Arc<ProcessIo>, Error> {
        let dir = self.dir(&rec.id);
        Ok(Arc::new(
            ProcessIo::open(
                &dir,
                "init",
                rec.config.open_stdin,
                rec.config.tty,
                Some(self.log_path(&rec.id)),
                live.attachers.clone(),
            )
            .map_err(io_err("open stdio fifos in", &dir))?,
        ))
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    fn live(&self, id: &str) -> Arc<Live> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_owned())
            .or_insert_with(|| Arc::new(Live::new()))
            .clone()
    }

    /// The daemon-side half of a container if it has one (no new one for a container removed
    /// meanwhile, unlike [`Self::live`]).
    fn existing_live(&self, id: &str) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// `State.Health` of a container with a health check (none is created for asking).
    pub fn health(&self, id: &str) -> Option<health::Health> {
        self.existing_live(id)?.health()
    }

    /// The live half of a container (created on first use).
    pub fn live_of(&self, id: &str) -> Arc<Live> {
        self.live(id)
    }

    /// Every record.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, Error> {
        let mut v: Vec<ContainerRecord> = self
            .meta
            .list::<ContainerRecord>(Table::Containers)?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.created));
        Ok(v)
    }

    /// Finds a container by full id, name (with or without `/`), or unique id prefix.
    pub fn get(&self, s: &str) -> Result<ContainerRecord, Error> {
        if let Some(r) = self.meta.get::<ContainerRecord>(Table::Containers, s)? {
            return Ok(r);
        }
        let all = self.list()?;
        let name = format!("/{}", s.trim_start_matches('/'));
        if let Some(r) = all.iter().find(|r| r.name == name) {
            return Ok(r.clone());
        }
        if s.is_empty() {
            return Err(Error::NotFound(s.to_owned()));
        }
        let matches: Vec<&ContainerRecord> = all.iter().filter(|r| r.id.starts_with(s)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NotFound(s.to_owned())),
            _ => Err(Error::Ambiguous(s.to_owned())),
        }
    }

    fn put(&self, rec: &ContainerRecord) -> Result<(), Error> {
        Ok(self.meta.put(Table::Containers, &rec.id, rec)?)
    }

    /// Publishes a container event (`/events`) with the container's labels, name and image.
    pub fn event(&self, rec: &ContainerRecord, action: &str, extra: &[(&str, String)]) {
        let mut attrs: BTreeMap<String, String> = rec.config.labels.clone();
        attrs.insert("name".into(), rec.short_name().to_owned());
        attrs.insert("image".into(), rec.image.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_owned(), v.clone());
        }
        self.events
            .publish(Event::container(action, &rec.id, attrs));
    }

    fn unique_name(&self, all: &[ContainerRecord]) -> String {
        for _ in 0..64 {
            let r = random_hex(2);
            let n = u16::from_str_radix(&r, 16).unwrap_or(0);
            let name = format!(
                "/{}_{}",
                ADJECTIVES[usize::from(n) % ADJECTIVES.len()],
                NOUNS[usize::from(n >> 8) % NOUNS.len()]
            );
            if !all.iter().any(|c| c.name == name) {
                return name;
            }
        }
        format!("/skiff_{}", random_hex(4))
    }

    /// `POST /containers/create`: validates, prepares the rootfs snapshot and the bundle
    /// directory, and stores the record. Returns the id and warnings. Blocking.
    pub fn create(&self, body: &Value, name: Option<&str>) -> Result<(String, Vec<String>), Error> {
        let user: ContainerConfig = serde_json::from_value(body.clone())
            .map_err(|e| Error::Invalid(format!("invalid container config: {e}")))?;
        let mut host_json = body
            .get("HostConfig")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        let mut host: HostConfig = serde_json::from_value(host_json.clone())
            .map_err(|e| Error::Invalid(format!("invalid host config: {e}")))?;
        host.verify_resources(host_cpus()).map_err(Error::Invalid)?;
        let mut warnings = Vec::new();
        match host.network_mode.as_str() {
            "" | "default" | "none" => host.network_mode = "none".into(),
            "host" => {}
            "bridge" => {
                warnings.push(
                    "bridge networking is not available yet; the container gets no network (--network none)"
                        .to_owned(),
                );
                host.network_mode = "none".into();
            }
            other => {
                return Err(Error::Invalid(format!(
                    "network {other} not found (only none and host exist for now)"
                )));
            }
        }
        host_json["NetworkMode"] = Value::String(host.network_mode.clone());
        // moby `adaptContainerSettings`: a memory limit without a swap limit allows as much swap
        // again (where the kernel accounts swap).
        if host.memory > 0 && host.memory_swap == 0 && swap_accounting() {
            host.memory_swap = host.memory.saturating_mul(2);
            host_json["MemorySwap"] = serde_json::json!(host.memory_swap);
        }
        match host.restart_policy.name.as_str() {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
            other => return Err(Error::Invalid(format!("invalid restart policy '{other}'"))),
        }
        if host.auto_remove && !matches!(host.restart_policy.name.as_str(), "" | "no") {
            return Err(Error::Invalid(
                "can't create 'AutoRemove' container with restart policy".into(),
            ));
        }
        let runtime = if host.runtime.is_empty() {
            self.runtime.default.clone()
        } else {
            host.runtime.clone()
        };
        if !self.runtime.runtimes.contains_key(&runtime) {
            return Err(Error::UnknownRuntime(runtime));
        }
        host_json["Runtime"] = Value::String(runtime.clone());
        // docker stores the masked and read-only paths the container gets.
        let sec = spec::security_opts(&host.security_opt)?;
        let confined = !host.privileged && !sec.systempaths_unconfined;
        for (key, defaults) in [
            ("MaskedPaths", &spec::MASKED_PATHS[..]),
            ("ReadonlyPaths", &spec::READONLY_PATHS[..]),
        ] {
            if host_json.get(key).is_none_or(Value::is_null) {
                host_json[key] = if confined {
                    serde_json::json!(defaults)
                } else {
                    serde_json::json!([])
                };
            }
        }
        // Defaults docker fills in (clients such as docker-py read them back from inspect).
        let defaults = serde_json::json!({
            "LogConfig": {"Type": "json-file", "Config": {}},
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "ShmSize": host.shm_bytes(),
            "PortBindings": {},
            "AutoRemove": false,
            "Privileged": false,
            "ReadonlyRootfs": false,
            "Dns": [], "DnsOptions": [], "DnsSearch": [],
            "IpcMode": "private", "PidMode": "", "UTSMode": "", "UsernsMode": "",
            "CgroupnsMode": if self.host_info.cgroup2 { "private" } else { "host" },
            "Isolation": "",
        });
        if let (Some(h), Some(d)) = (host_json.as_object_mut(), defaults.as_object()) {
            for (k, v) in d {
                let empty = h.get(k).is_none_or(|x| {
                    x.is_null()
                        || (k == "LogConfig" && x["Type"].as_str().unwrap_or("").is_empty())
                        || (k == "RestartPolicy" && x["Name"].as_str().unwrap_or("").is_empty())
                        || (k == "ShmSize" && x.as_i64() == Some(0))
                });
                if empty {
                    h.insert(k.clone(), v.clone());
                }
            }
        }
        let img = self.images.resolve(&user.image)?;
        let merged = config::merge(&user, &ImageDefaults::from_image_config(&img.config_json));
        health::validate(merged.healthcheck.as_ref()).map_err(Error::Invalid)?;
        let anonymous: Vec<&String> = merged
            .volumes
            .as_ref()
            .and_then(Value::as_object)
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        if !anonymous.is_empty() {
            warnings.push(format!(
                "anonymous volumes are not created yet: {} stay part of the container's writable layer",
                anonymous
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }

        let all = self.list()?;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let bare = n.trim_start_matches('/');
                if !valid_name(bare) {
                    return Err(Error::InvalidName(bare.to_owned()));
                }
                let full = format!("/{bare}");
                if let Some(c) = all.iter().find(|c| c.name == full) {
                    return Err(Error::NameInUse {
                        name: full,
                        id: c.id.clone(),
                    });
                }
                full
            }
            None => self.unique_name(&all),
        };
        let id = random_hex(32);
        let mut merged = merged;
        if merged.hostname.is_empty() {
            merged.hostname = if host.host_network() {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                id[..12].to_owned()
            };
        }
        merged.image.clone_from(&user.image);
        // Validate everything the spec needs from the request now, so `create` fails rather
        // than `start` (docker does the same for "no command" and bad security options).
        let probe = spec::SpecInput {
            id: &id,
            config: &merged,
            host: &host,
            user: spec::ResolvedUser::default(),
            hostname: merged.hostname.clone(),
            etc_files: Default::default(),
            devices: vec![],
            host_info: self.host_info.clone(),
            init: self.runtime.init.as_deref(),
        };
        spec::generate(&probe)?;
        let argv = config::argv(&merged);

        // The rootfs: an active snapshot on the image's top layer.
        let chain = crate::images::oci::chain_ids(&img.config.rootfs.diff_ids);
        let parent = chain.last().map(ToString::to_string);
        let snapshot = format!("container-{id}");
        self.images
            .snapshotter()
            .prepare(&snapshot, parent.as_deref(), BTreeMap::new())?;
        let dir = self.dir(&id);
        let setup = || -> Result<(), Error> {
            fs::create_dir_all(dir.join("rootfs")).map_err(io_err("create", &dir))?;
            self.write_etc_files(&dir, &merged, &host)?;
            let rec = ContainerRecord {
                id: id.clone(),
                name,
                created: now_nanos(),
                image: user.image.clone(),
                image_id: img.id.to_string(),
                config: merged.clone(),
                host_config: host_json.clone(),
                runtime,
                snapshot: snapshot.clone(),
                path: argv.first().cloned().unwrap_or_default(),
                args: argv.iter().skip(1).cloned().collect(),
                state: StateRecord {
                    status: Status::Created,
                    pid: 0,
                    exit_code: 0,
                    started_at: 0,
                    finished_at: 0,
                    error: String::new(),
                    oom_killed: false,
                    shim_address: String::new(),
                },
                restart_count: 0,
                manually_stopped: false,
            };
            self.put(&rec)?;
            self.event(&rec, "create", &[]);
            Ok(())
        };
        if let Err(e) = setup() {
            let _ = self.images.snapshotter().remove(&snapshot);
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok((id, warnings))
    }

    fn write_etc_files(
        &self,
        dir: &Path,
        c: &ContainerConfig,
        host: &HostConfig,
    ) -> Result<(), Error> {
        let write = |name: &str, data: String| {
            let p = dir.join(name);
            fs::write(&p, data).map_err(io_err("write", &p))
        };
        write("hostname", format!("{}\n", c.hostname))?;
        let hosts = if host.host_network() {
            read_or_empty(Path::new("/etc/hosts"))
        } else {
            let mut h = String::from(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
            );
            for e in &host.extra_hosts {
                if let Some((name, ip)) = e.split_once(':') {
                    h.push_str(&format!("{ip}\t{name}\n"));
                }
            }
            h
        };
        write("hosts", hosts)?;
        let resolv = read_or_empty(Path::new("/etc/resolv.conf"));
        let resolv = if host.host_network() {
            resolv
        } else {
            // A loopback resolver of the host is unreachable from another netns (docker
            // filters them the same way).
            resolv
                .lines()
                .filter(|l| {
                    !(l.starts_with("nameserver")
                        && l.split_whitespace()
                            .nth(1)
                            .is_some_and(|a| a.starts_with("127.") || a == "::1"))
                })
                .map(|l| format!("{l}\n"))
                .collect()
        };
        write("resolv.conf", resolv)
    }

    /// Mounts the rootfs, resolves the user, writes `config.json`. Blocking.
    fn prepare_bundle(&self, rec: &ContainerRecord) -> Result<PathBuf, Error> {
        let dir = self.dir(&rec.id);
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(io_err("create", &rootfs))?;
        if !is_mounted(&rootfs) {
            mount_snapshot(&self.images.snapshotter().mounts(&rec.snapshot)?, &rootfs)?;
        }
        let result = (|| {
            let host = rec.host();
            let user = spec::resolve_user(
                &rec.config.user,
                &read_in_rootfs(&rootfs, "/etc/passwd"),
                &read_in_rootfs(&rootfs, "/etc/group"),
                &host.group_add,
            )
            .map_err(Error::Invalid)?;
            if !rec.config.working_dir.is_empty() {
                mkdir_in_root(&rootfs, &rec.config.working_dir)?;
            }
            // Anonymous volumes (`-v /data`, an image's VOLUME) are directories of the
            // container's own layer until volumes exist: at least the path is there.
            if let Some(vols) = rec.config.volumes.as_ref().and_then(Value::as_object) {
                for v in vols.keys() {
                    mkdir_in_root(&rootfs, v)?;
                }
            }
            // `-v /host/dir:/ctr`: docker creates a missing host directory (`--mount` does not).
            for b in &host.binds {
                let src = b.split(':').next().unwrap_or("");
                if src.starts_with('/') && fs::symlink_metadata(src).is_err() {
                    fs::create_dir_all(src)
                        .map_err(io_err("create the bind source", Path::new(src)))?;
                }
            }
            // `--privileged` gets every device node of the host (moby `WithDevices`).
            let mut devices = if host.privileged {
                host_devices()
            } else {
                Vec::new()
            };
            for d in &host.devices {
                let d = resolve_device(d)?;
                devices.retain(|x| x.path != d.path);
                devices.push(d);
            }
            let input = spec::SpecInput {
                id: &rec.id,
                config: &rec.config,
                host: &host,
                user,
                hostname: rec.config.hostname.clone(),
                etc_files: [
                    ("/etc/hosts".into(), dir.join("hosts")),
                    ("/etc/resolv.conf".into(), dir.join("resolv.conf")),
                    ("/etc/hostname".into(), dir.join("hostname")),
                ],
                devices,
                host_info: self.host_info.clone(),
                init: self.runtime.init.as_deref(),
            };
            let spec = spec::generate(&input)?;
            let p = dir.join("config.json");
            fs::write(&p, serde_json::to_vec_pretty(&spec).unwrap_or_default())
                .map_err(io_err("write", &p))?;
            let runtime = self
                .runtime
                .runtimes
                .get(&rec.runtime)
                .cloned()
                .ok_or_else(|| Error::UnknownRuntime(rec.runtime.clone()))?;
            Ok(runtime)
        })();
        if result.is_err() {
            unmount(&rootfs);
        }
        result
    }

    /// `POST /containers/{id}/start`; `Ok(false)` when it already runs (304).
    pub async fn start(self: &Arc<Self>, s: &str) -> Result<bool, Error> {
        let rec = self.get(s)?;
        let live = self.live(&rec.id);
        let op = live.op.lock().await;
        let rec = self.get(&rec.id)?;
        match rec.state.status {
            Status::Running | Status::Paused => return Ok(false),
            Status::Restarting if live.task().is_some() => return Ok(false),
            Status::Removing | Status::Dead => {
                return Err(Error::Invalid(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.id
                )));
            }
            Status::Created | Status::Exited | Status::Restarting => {}
        }
        // Cleared now (not with the state at the end): a kill during the start must stick.
        let rec = self.update_record(&rec.id, |r| r.manually_stopped = false)?;
        let svc = self.clone();
        let r2 = rec.clone();
        let prepared = match run_blocking(move || svc.prepare_bundle(&r2)).await {
            Ok(bin) => self.init_io(&rec, &live).map(|io| (bin, io)),
            Err(e) => Err(e),
        };
        let (runtime_bin, io) = match prepared {
            Ok(x) => x,
            Err(e) => return self.start_failed(rec, op, None, e).await,
        };
        let dir = self.dir(&rec.id);
        let cfg = self.runtime.shim.clone();
        let id = rec.id.clone();
        let paths = io.paths.clone();
        let bundle = dir.clone();
        let started = run_blocking(move || {
            let shim = tasks::start(&cfg, &id, &bundle)?;
            let run = || -> Result<u32, tasks::Error> {
                shim.create(&bundle, &paths, &runtime_bin, &cfg.runtime_root)?;
                shim.start("")
            };
            match run() {
                Ok(pid) => Ok((shim, pid)),
                Err(e) => {
                    let _ = shim.delete("");
                    shim.shutdown();
                    tasks::remove_shim_log(&bundle);
                    Err(e.into())
                }
            }
        })
        .await;
        let (shim, pid) = match started {
            Ok(x) => x,
            Err(e) => return self.start_failed(rec, op, Some(io), e).await,
        };
        // The exit is reported by a thread blocked in Wait (it may block for days).
        self.spawn_wait(shim.clone(), &rec.id, None)?;
        let address = shim.address.clone();
        *live.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Task { shim, io }));
        let rec = self.update_record(&rec.id, |r| {
            r.state = StateRecord {
                status: Status::Running,
                pid,
                exit_code: 0,
                started_at: now_nanos(),
                finished_at: r.state.finished_at,
                error: String::new(),
                oom_killed: false,
                shim_address: address,
            };
        })?;
        self.event(&rec, "start", &[]);
        live.waiters.send_modify(|w| w.running = true);
        self.spawn_health(&rec, &live);
        Ok(true)
    }

    /// A start that failed at any step (bundle, stdio, shim, runtime): stdio and the rootfs
    /// mount go, the error and docker's exit code (127/126/128) are recorded, and a `--rm`
    /// container is removed (`docker run --rm` waits for that removal even after a failure).
    async fn start_failed(
        self: &Arc<Self>,
        mut rec: ContainerRecord,
        op: tokio::sync::MutexGuard<'_, ()>,
        io: Option<Arc<ProcessIo>>,
        e: Error,
    ) -> Result<bool, Error> {
        if let Some(io) = io {
            io.finish().await;
            io.remove_fifos();
        }
        let rootfs = self.dir(&rec.id).join("rootfs");
        let _ = tokio::task::spawn_blocking(move || unmount(&rootfs)).await;
        let error = error_chain(&e);
        // moby `translateContainerdStartErr`: what the CLI reports as 127/126.
        let lower = error.to_lowercase();
        let code = if lower.contains("no such file") || lower.contains("executable file not found")
        {
            127
        } else if lower.contains("permission denied") {
            126
        } else {
            128
        };
        if let Ok(r) = self.update_record(&rec.id, |r| {
            r.state.error = error;
            r.state.exit_code = code;
        }) {
            rec = r;
        }
        drop(op);
        if rec.host().auto_remove {
            if let Err(re) = self.remove(&rec.id, true).await {
                tracing::warn!(container = %rec.id, error = %re, "auto-remove after a failed start");
            }
        }
        Err(e)
    }

    /// Starts the health check of a container whose task just started (or was reconnected),
    /// if its config has one: a probe exec every interval for as long as that task lives.
    fn spawn_health(self: &Arc<Self>, rec: &ContainerRecord, live: &Arc<Live>) {
        let probe = health::Probe::from_config(
            rec.config.healthcheck.as_ref(),
            rec.config.shell.as_deref(),
        );
        let (Some(probe), Some(task)) = (probe, live.task()) else {
            *live.health.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return;
        };
        *live.health.lock().unwrap_or_else(|p| p.into_inner()) = Some(health::Health::default());
        let svc = self.clone();
        let live = live.clone();
        let id = rec.id.clone();
        // Only a weak hold on the task: a stopped container's task (its shim client, its
        // stdio) goes at once, not when this check next wakes.
        let task = Arc::downgrade(&task);
        let mut watch = live.watch();
        let exits = watch.borrow().exits;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let current = |live: &Live| {
                live.task()
                    .zip(task.upgrade())
                    .is_some_and(|(a, b)| Arc::ptr_eq(&a, &b))
            };
            let status = |live: &Live| live.health().map_or("", |h| h.status);
            loop {
                // docker: the start interval while the status is still "starting".
                let starting =
                    started.elapsed() < probe.start_period && status(&live) == "starting";
                let wait = if starting {
                    probe.start_interval
                } else {
                    probe.interval
                };
                // The exit of this task ends the check at once.
                let ended = tokio::select! {
                    () = tokio::time::sleep(wait) => false,
                    _ = watch.wait_for(|w| w.exits > exits || !w.running || w.removed) => true,
                };
                if ended || !current(&live) {
                    break;
                }
                let Ok(rec) = svc.get(&id) else { break };
                if rec.state.status == Status::Paused {
                    continue;
                }
                let in_start_period = started.elapsed() < probe.start_period;
                let result = svc.probe_once(&id, &probe).await;
                if !current(&live) {
                    break;
                }
                let changed = live
                    .health
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                    .and_then(|h| h.record(result, probe.retries, in_start_period));
                if let Some(status) = changed {
                    svc.event(&rec, &format!("health_status: {status}"), &[]);
                }
            }
            // docker: a check that stopped leaves the status "unhealthy" (until the next start).
            if live.task().is_none() {
                if let Some(h) = live
                    .health
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_mut()
                {
                    h.status = "unhealthy";
                }
            }
        });
    }

    /// Runs one health probe as an exec in the container: its exit code and output, or -1 when
    /// it could not start or outlived its timeout (then it is killed).
    async fn probe_once(self: &Arc<Self>, id: &str, probe: &health::Probe) -> health::ProbeResult {
        let start = now_nanos();
        let failed = |output: String| health::ProbeResult {
            start,
            end: now_nanos(),
            exit_code: -1,
            output,
        };
        let body =
            serde_json::json!({"Cmd": probe.argv, "AttachStdout": true, "AttachStderr": true});
        let exec = match self.exec_create(id, &body).and_then(|eid| self.exec(&eid)) {
            Ok(e) => e,
            Err(e) => return failed(error_chain(&e)),
        };
        let mut out = exec.attachers.attach();
        if let Err(e) = self.exec_start(&exec).await {
            self.forget_exec(&exec);
            return failed(error_chain(&e));
        }
        let mut done = exec.done();
        let mut output = Vec::new();
        let finished = tokio::time::timeout(probe.timeout, async {
            while let Some((_, data)) = out.recv().await {
                let room = health::MAX_OUTPUT.saturating_sub(output.len());
                output.extend_from_slice(&data[..data.len().min(room)]);
            }
            let _ = done.wait_for(|d| *d).await;
        })
        .await
        .is_ok();
        let result = if finished {
            let code = exec.state.lock().unwrap_or_else(|p| p.into_inner()).2;
            health::ProbeResult {
                start,
                end: now_nanos(),
                exit_code: code.unwrap_or(-1),
                output: String::from_utf8_lossy(&output).into_owned(),
            }
        } else {
            if let Some(task) = self.existing_live(id).and_then(|l| l.task()) {
                let shim = task.shim.clone();
                let eid = exec.id.clone();
                let _ = tokio::task::spawn_blocking(move || shim.kill(&eid, 9, false)).await;
            }
            failed(format!(
                "Health check exceeded timeout ({})",
                go_duration_text(probe.timeout)
            ))
        };
        // The instance goes once its exit is handled (the shim's exec deleted, fifos removed):
        // at once normally, later for a probe that was killed.
        if *exec.done().borrow() {
            self.forget_exec(&exec);
        } else {
            let svc = self.clone();
            tokio::spawn(async move {
                let mut done = exec.done();
                let _ = done.wait_for(|d| *d).await;
                svc.forget_exec(&exec);
            });
        }
        result
    }

    /// Drops a finished exec instance (health probes are not kept, as docker).
    fn forget_exec(&self, exec: &ExecInstance) {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&exec.id);
        if let Some(live) = self.existing_live(&exec.container_id) {
            live.execs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|e| *e != exec.id);
        }
    }

    async fn on_exit(self: Arc<Self>, m: ExitMsg) {
        match m.exec {
            Some(exec) => self.on_exec_exit(&exec, m.exit).await,
            None => self.on_init_exit(&m.container, m.exit).await,
        }
    }

    async fn on_init_exit(self: &Arc<Self>, id: &str, exit: Exit) {
        let live = self.live(id);
        let Some(task) = live.task() else { return };
        let shim = task.shim.clone();
        let cfg = self.runtime.shim.clone();
        let dir = self.dir(id);
        let id2 = id.to_owned();
        let dir2 = dir.clone();
        // Delete waits for the shim's own stdio copy: after it, the fifos hold everything.
        let deleted = tokio::task::spawn_blocking(move || {
            let r = shim.delete("");
            shim.shutdown();
            if r.is_err() {
                // The shim is gone: let its `delete` action clean the runtime state.
                tasks::cleanup_dead(&cfg, &id2, &dir2);
            }
            r
        })
        .await;
        task.io.finish().await;
        task.io.remove_fifos();
        let rootfs = dir.join("rootfs");
        let d3 = dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            tasks::remove_shim_log(&d3);
            unmount(&rootfs);
        })
        .await;
        *live.task.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let status = match deleted {
            Ok(Ok(d)) if d.status != 0 || exit.status == 255 => d.status.max(exit.status),
            _ => exit.status,
        };
        let code = i64::from(status);
        let finished_at = if exit.at_nanos > 0 {
            exit.at_nanos
        } else {
            now_nanos()
        };
        let rec = match self.update_record(id, |rec| {
            rec.state.status = Status::Exited;
            rec.state.exit_code = code;
            rec.state.pid = 0;
            rec.state.finished_at = finished_at;
            rec.state.shim_address.clear();
        }) {
            Ok(r) => r,
            Err(Error::NotFound(_)) => return,
            Err(e) => {
                tracing::error!(container = %id, error = %e, "recording the exit");
                match self.get(id) {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
        };
        self.event(&rec, "die", &[("exitCode", code.to_string())]);
        live.waiters.send_modify(|w| {
            w.exits += 1;
            w.last_exit = code;
            w.running = false;
        });
        if rec.host().auto_remove {
            if let Err(e) = self.remove(id, true).await {
                tracing::error!(container = %id, error = %e, "auto-remove");
            }
            return;
        }
        if should_restart(&rec, false) {
            self.schedule_restart(rec);
        }
    }

    /// Restarts a container by its policy after docker's back-off (100 ms doubling, capped),
    /// unless it was stopped, started or removed meanwhile.
    fn schedule_restart(self: &Arc<Self>, rec: ContainerRecord) {
        let delay = Duration::from_millis(100u64 << rec.restart_count.min(9));
        let Ok(rec) = self.update_record(&rec.id, |r| {
            r.state.status = Status::Restarting;
            r.restart_count += 1;
        }) else {
            return;
        };
        let svc = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match svc.get(&rec.id) {
                Ok(r) if r.state.status == Status::Restarting && !r.manually_stopped => {}
                _ => return,
            }
            if let Err(e) = svc.start(&rec.id).await {
                tracing::error!(container = %rec.id, error = %e, "restart by policy failed");
                let _ = svc.update_record(&rec.id, |r| r.state.status = Status::Exited);
            } else if let Ok(r) = svc.get(&rec.id) {
                svc.event(&r, "restart", &[]);
            }
        });
    }

    /// After a daemon restart: starts containers whose policy asks for it (`always`, and
    /// `unless-stopped` when not stopped by the user).
    pub async fn restart_by_policy(self: &Arc<Self>) -> Result<usize, Error> {
        let mut n = 0;
        for rec in self.list()? {
            if matches!(
                rec.state.status,
                Status::Exited | Status::Restarting | Status::Created
            ) && rec.state.started_at > 0
                && should_restart(&rec, true)
            {
                if let Err(e) = self.start(&rec.id).await {
                    tracing::error!(container = %rec.id, error = %e, "restart by policy failed");
                } else {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn on_oom(&self, id: &str) {
        if let Ok(rec) = self.update_record(id, |r| r.state.oom_killed = true) {
            self.event(&rec, "oom", &[]);
        }
    }

    /// Sends a signal to the init; `Error::NotRunning` when there is no task.
    pub async fn kill(&self, s: &str, signal: Option<&str>) -> Result<(), Error> {
        let rec = self.get(s)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => 9,
        };
        let live = self.live(&rec.id);
        if live.task().is_none() {
            return Err(Error::NotRunning(rec.id.clone()));
        }
        let before = live.watch().borrow().exits;
        // moby `killWithSignal`: a kill by the user counts as a manual stop — recorded before
        // the signal, so the exit it causes is not restarted by the policy.
        self.update_record(&rec.id, |r| r.manually_stopped = true)?;
        self.signal(&rec, sig).await?;
        // docker: a paused container is resumed after a SIGKILL or its stop signal, so that
        // the signal is taken (a frozen process does not die).
        let stop_signal = rec
            .config
            .stop_signal
            .as_deref()
            .and_then(|s| parse_signal(s).ok())
            .unwrap_or(15);
        if (sig == 9 || sig == stop_signal) && rec.state.status == Status::Paused {
            self.resume_task(&live).await;
            let _ = self.update_record(&rec.id, |r| {
                if r.state.status == Status::Paused {
                    r.state.status = Status::Running;
                }
            });
        }
        // As docker, a SIGKILL answers once the container is down (`docker kill; docker rm`).
        if sig == 9 {
            self.wait_exit_after(&live, before, KILL_WAIT).await;
        }
        Ok(())
    }

    /// Changes a stored record under the record lock, so that two writers (a user's kill or
    /// stop and the exit handler) do not lose each other's fields.
    fn update_record(
        &self,
        id: &str,
        f: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord, Error> {
        let _g = self.record_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut rec = self.get(id)?;
        f(&mut rec);
        self.put(&rec)?;
        Ok(rec)
    }

    async fn signal(&self, rec: &ContainerRecord, sig: i32) -> Result<(), Error> {
        let live = self.live(&rec.id);
        let Some(task) = live.task() else {
            return Err(Error::NotRunning(rec.id.clone()));
        };
        let shim = task.shim.clone();
        let signal = u32::try_from(sig).unwrap_or(9);
        run_blocking(move || Ok(shim.kill("", signal, false)?)).await?;
        self.event(rec, "kill", &[("signal", sig.to_string())]);
        Ok(())
    }

    async fn wait_exit_after(&self, live: &Live, before: u64, timeout: Duration) -> bool {
        let mut rx = live.watch();
        tokio::time::timeout(timeout, rx.wait_for(|w| w.exits > before || !w.running))
            .await
            .is_ok()
    }

    /// `POST /containers/{id}/stop`; `Ok(false)` when not running (304).
    pub async fn stop(
        &self,
        s: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<bool, Error> {
        let rec = self.get(s)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        let rec = self.get(&rec.id)?;
        if rec.state.status == Status::Restarting && live.task().is_none() {
            self.update_record(&rec.id, |r| {
                r.state.status = Status::Exited;
                r.manually_stopped = true;
            })?;
            return Ok(true);
        }
        if !rec.state.status.is_live() || live.task().is_none() {
            return Ok(false);
        }
        let rec = self.update_record(&rec.id, |r| r.manually_stopped = true)?;
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(rec.config.stop_signal.as_deref())
        {
            Some(s) => parse_signal(s)?,
            None => 15,
        };
        let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let before = live.watch().borrow().exits;
        if rec.state.status == Status::Paused {
            self.resume_task(&live).await;
        }
        let _ = self.signal(&rec, sig).await;
        let wait = if secs < 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        };
        if !self.wait_exit_after(&live, before, wait).await {
            let _ = self.signal(&rec, 9).await;
            self.wait_exit_after(&live, before, KILL_WAIT).await;
        }
        self.event(&rec, "stop", &[]);
        Ok(true)
    }

    async fn resume_task(&self, live: &Live) {
        if let Some(t) = live.task() {
            let shim = t.shim.clone();
            let _ = tokio::task::spawn_blocking(move || shim.resume()).await;
        }
    }

    /// `POST /containers/{id}/restart`.
    pub async fn restart(
        self: &Arc<Self>,
        s: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<(), Error> {
        let rec = self.get(s)?;
        self.stop(&rec.id, timeout, signal).await?;
        self.start(&rec.id).await?;
        let rec = self.get(&rec.id)?;
        self.event(&rec, "restart", &[]);
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn remove(&self, s: &str, force: bool) -> Result<(), Error> {
        let rec = self.get(s)?;
        let live = self.live(&rec.id);
        if live.task().is_some() {
            if !force {
                return Err(Error::Running(rec.id.clone()));
            }
            let before = live.watch().borrow().exits;
            let paused = rec.state.status == Status::Paused;
            let _ = self.signal(&rec, 9).await;
            if paused {
                self.resume_task(&live).await;
            }
            self.wait_exit_after(&live, before, KILL_WAIT).await;
        }
        let _op = live.op.lock().await;
        let rec = match self.update_record(&rec.id, |r| r.state.status = Status::Removing) {
            Ok(r) => r,
            Err(Error::NotFound(_)) => return Ok(()), // removed meanwhile (auto-remove)
            Err(e) => return Err(e),
        };
        let svc_snap = self.images.clone();
        let dir = self.dir(&rec.id);
        let snapshot = rec.snapshot.clone();
        run_blocking(move || {
            unmount(&dir.join("rootfs"));
            match svc_snap.snapshotter().remove(&snapshot) {
                Ok(()) | Err(crate::snapshots::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("remove", &dir)(e)),
            }
        })
        .await?;
        {
            // Under the record lock: a writer that read the record before cannot bring it back.
            let _g = self.record_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.meta.delete(Table::Containers, &rec.id)?;
        }
        let execs: Vec<String> =
            std::mem::take(&mut *live.execs.lock().unwrap_or_else(|p| p.into_inner()));
        {
            let mut map = self.execs.lock().unwrap_or_else(|p| p.into_inner());
            for e in execs {
                // Whoever waits for one of them (a health probe's clean-up) is let go.
                if let Some(x) = map.remove(&e) {
                    x.done.send_replace(true);
                }
            }
        }
        self.event(&rec, "destroy", &[]);
        live.waiters.send_modify(|w| w.removed = true);
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&rec.id);
        Ok(())
    }

    /// `POST /containers/{id}/pause` and `/unpause`.
    pub async fn set_paused(&self, s: &str, pause: bool) -> Result<(), Error> {
        let rec = self.get(s)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        let rec = self.get(&rec.id)?;
        let Some(task) = live.task() else {
            return Err(Error::NotRunning(rec.id.clone()));
        };
        match (pause, rec.state.status) {
            (true, Status::Paused) => return Err(Error::AlreadyPaused(rec.id.clone())),
            (false, Status::Running) => return Err(Error::NotPaused(rec.id.clone())),
            _ => {}
        }
        let shim = task.shim.clone();
        run_blocking(move || {
            if pause {
                shim.pause()?;
            } else {
                shim.resume()?;
            }
            Ok(())
        })
        .await?;
        let rec = self.update_record(&rec.id, |r| {
            // Only a live container changes here (it may have exited meanwhile).
            if r.state.status.is_live() {
                r.state.status = if pause {
                    Status::Paused
                } else {
                    Status::Running
                };
            }
        })?;
        self.event(&rec, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    /// `POST /containers/{id}/rename`.
    pub fn rename(&self, s: &str, new: &str) -> Result<(), Error> {
        let rec = self.get(s)?;
        let bare = new.trim_start_matches('/');
        if !valid_name(bare) {
            return Err(Error::InvalidName(bare.to_owned()));
        }
        let full = format!("/{bare}");
        if rec.name == full {
            return Err(Error::Invalid(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        if let Some(c) = self.list()?.into_iter().find(|c| c.name == full) {
            return Err(Error::NameInUse {
                name: full,
                id: c.id,
            });
        }
        let old = rec.name.clone();
        let rec = self.update_record(&rec.id, |r| r.name = full)?;
        self.event(&rec, "rename", &[("oldName", old)]);
        Ok(())
    }

    /// `POST /containers/{id}/resize`.
    pub async fn resize(&self, s: &str, h: u32, w: u32) -> Result<(), Error> {
        let rec = self.get(s)?;
        let Some(task) = self.live(&rec.id).task() else {
            return Err(Error::NotRunning(rec.id.clone()));
        };
        let shim = task.shim.clone();
        run_blocking(move || Ok(shim.resize("", w, h)?)).await
    }

    /// The pids of a running container.
    pub async fn pids(&self, s: &str) -> Result<Vec<u32>, Error> {
        let rec = self.get(s)?;
        let Some(task) = self.live(&rec.id).task() else {
            return Err(Error::NotRunning(rec.id.clone()));
        };
        let shim = task.shim.clone();
        run_blocking(move || Ok(shim.pids()?)).await
    }

    /// `POST /containers/{id}/update` (resources only).
    pub async fn update(&self, s: &str, body: &Value) -> Result<(), Error> {
        let mut rec = self.get(s)?;
        let patch: HostConfig = serde_json::from_value(body.clone())
            .map_err(|e| Error::Invalid(format!("invalid update: {e}")))?;
        let apply = |host_config: &mut Value| {
            for k in [
                "Memory",
                "MemorySwap",
                "NanoCpus",
                "CpuShares",
                "CpuPeriod",
                "CpuQuota",
                "CpusetCpus",
                "CpusetMems",
                "PidsLimit",
            ] {
                if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
                    host_config[k] = v.clone();
                }
            }
            if let Some(rp) = body.get("RestartPolicy").filter(|v| v.is_object()) {
                host_config["RestartPolicy"] = rp.clone();
            }
        };
        apply(&mut rec.host_config);
        // The limits as they will be, checked whole (a new memory limit against the old swap).
        let merged: HostConfig = serde_json::from_value(rec.host_config.clone())
            .map_err(|e| Error::Invalid(format!("invalid update: {e}")))?;
        merged
            .verify_resources(host_cpus())
            .map_err(Error::Invalid)?;
        if let Some(task) = self.live(&rec.id).task() {
            let res = spec::resources(&patch);
            let shim = task.shim.clone();
            run_blocking(move || Ok(shim.update(&res)?)).await?;
        }
        // Only the updated fields, on the record as it is now (an exit may have come meanwhile).
        let rec = self.update_record(&rec.id, |r| apply(&mut r.host_config))?;
        self.event(&rec, "update", &[]);
        Ok(())
    }

    /// A `wait` in two steps: this returns at once (so the handler can flush its headers);
    /// the returned future resolves with the exit code.
    pub fn wait(
        &self,
        s: &str,
        cond: WaitCondition,
    ) -> Result<impl std::future::Future<Output = i64> + Send + 'static, Error> {
        let rec = self.get(s)?;
        let live = self.live(&rec.id);
        let mut rx = live.watch();
        let now = *rx.borrow();
        let last_code = rec.state.exit_code;
        let running = live.task().is_some();
        Ok(async move {
            match cond {
                WaitCondition::NotRunning if !running => last_code,
                WaitCondition::NotRunning | WaitCondition::NextExit => {
                    match rx.wait_for(|w| w.exits > now.exits || w.removed).await {
                        Ok(w) => w.last_exit,
                        Err(_) => last_code,
                    }
                }
                WaitCondition::Removed => match rx.wait_for(|w| w.removed).await {
                    Ok(w) => w.last_exit,
                    Err(_) => last_code,
                },
            }
        })
    }

    /// `POST /containers/{id}/exec`: registers an exec instance.
    pub fn exec_create(&self, s: &str, body: &Value) -> Result<String, Error> {
        let rec = self.get(s)?;
        let live = self.live(&rec.id);
        if live.task().is_none() {
            return Err(Error::NotRunning(rec.id.clone()));
        }
        if rec.state.status == Status::Paused {
            return Err(Error::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                rec.id
            )));
        }
        let strings = |k: &str| -> Vec<String> {
            body.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let string = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let flag = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
        let cmd = strings("Cmd");
        if cmd.is_empty() {
            return Err(Error::Invalid("No exec command specified".into()));
        }
        let id = random_hex(32);
        let e = Arc::new(ExecInstance {
            id: id.clone(),
            container_id: rec.id.clone(),
            cmd,
            env: strings("Env"),
            user: string("User"),
            working_dir: string("WorkingDir"),
            tty: flag("Tty"),
            privileged: flag("Privileged"),
            attach_stdin: flag("AttachStdin"),
            attach_stdout: flag("AttachStdout"),
            attach_stderr: flag("AttachStderr"),
            state: Mutex::new((false, 0, None)),
            attachers: Arc::new(Attachers::default()),
            io: Mutex::new(None),
            done: watch::channel(false).0,
        });
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), e);
        live.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id.clone());
        self.event(
            &rec,
            &format!("exec_create: {}", config::argv_display(&strings("Cmd"))),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    /// An exec instance by id.
    pub fn exec(&self, id: &str) -> Result<Arc<ExecInstance>, Error> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::ExecNotFound(id.to_owned()))
    }

    /// Starts an exec: its process JSON from the container's spec, fifos, `Exec` + `Start`,
    /// and a wait thread. Output goes to `exec.attachers` (register before calling).
    pub async fn exec_start(&self, exec: &Arc<ExecInstance>) -> Result<(), Error> {
        {
            let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.2.is_some() {
                return Err(Error::Conflict(format!(
                    "Error: Exec command {} has already run",
                    exec.id
                )));
            }
            if st.0 {
                return Err(Error::Conflict(format!(
                    "Error: Exec command {} is already running",
                    exec.id
                )));
            }
            // Claimed under the same lock: a second start at the same time is the conflict.
            st.0 = true;
        }
        let r = self.exec_start_claimed(exec).await;
        if r.is_err() {
            // A failure before the process existed gives the claim back.
            let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            if *st == (true, 0, None) {
                *st = (false, 0, None);
            }
        }
        r
    }

    async fn exec_start_claimed(&self, exec: &Arc<ExecInstance>) -> Result<(), Error> {
        let rec = self.get(&exec.container_id)?;
        let live = self.live(&rec.id);
        let Some(task) = live.task() else {
            return Err(Error::NotRunning(rec.id.clone()));
        };
        let dir = self.dir(&rec.id);
        let short = &exec.id[..12];
        let io = Arc::new(
            ProcessIo::open(
                &dir,
                &format!("exec-{short}"),
                exec.attach_stdin,
                exec.tty,
                None,
                exec.attachers.clone(),
            )
            .map_err(io_err("open exec fifos in", &dir))?,
        );
        let process = self.exec_process(&rec, exec)?;
        let shim = task.shim.clone();
        let paths = io.paths.clone();
        let eid = exec.id.clone();
        let r = run_blocking(move || {
            shim.exec(&eid, &paths, &process)?;
            match shim.start(&eid) {
                Ok(pid) => Ok(pid),
                Err(e) => {
                    let _ = shim.delete(&eid);
                    Err(e.into())
                }
            }
        })
        .await;
        let pid = match r {
            Ok(p) => p,
            Err(e) => {
                io.finish().await;
                io.remove_fifos();
                *exec.state.lock().unwrap_or_else(|p| p.into_inner()) = (false, 0, Some(126));
                exec.done.send_replace(true);
                return Err(e);
            }
        };
        *exec.io.lock().unwrap_or_else(|p| p.into_inner()) = Some(io);
        *exec.state.lock().unwrap_or_else(|p| p.into_inner()) = (true, pid, None);
        self.spawn_wait(task.shim.clone(), &rec.id, Some(exec.id.clone()))?;
        self.event(
            &rec,
            &format!("exec_start: {}", config::argv_display(&exec.cmd)),
            &[("execID", exec.id.clone())],
        );
        Ok(())
    }

    fn exec_process(&self, rec: &ContainerRecord, exec: &ExecInstance) -> Result<Value, Error> {
        let dir = self.dir(&rec.id);
        let p = dir.join("config.json");
        let spec: Value = serde_json::from_slice(&fs::read(&p).map_err(io_err("read", &p))?)
            .map_err(|e| Error::Invalid(format!("container spec: {e}")))?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(exec.cmd);
        process["terminal"] = Value::Bool(exec.tty);
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if exec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        for e in &exec.env {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
            env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
            env.push(e.clone());
        }
        process["env"] = serde_json::json!(env);
        if !exec.working_dir.is_empty() {
            process["cwd"] = Value::String(exec.working_dir.clone());
        }
        if !exec.user.is_empty() {
            let rootfs = dir.join("rootfs");
            let u = spec::resolve_user(
                &exec.user,
                &read_in_rootfs(&rootfs, "/etc/passwd"),
                &read_in_rootfs(&rootfs, "/etc/group"),
                &[],
            )
            .map_err(Error::Invalid)?;
            process["user"] = serde_json::json!({"uid": u.uid, "gid": u.gid});
            if !u.additional_gids.is_empty() {
                process["user"]["additionalGids"] = serde_json::json!(u.additional_gids);
            }
        }
        if exec.privileged {
            let all = spec::capabilities(
                &HostConfig {
                    privileged: true,
                    ..HostConfig::default()
                },
                self.host_info.last_cap,
                self.host_info.bounding,
            )?;
            process["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        if let Some(o) = process.as_object_mut() {
            o.remove("consoleSize");
        }
        Ok(process)
    }

    async fn on_exec_exit(&self, exec_id: &str, exit: Exit) {
        let Ok(exec) = self.exec(exec_id) else { return };
        let rec = self.get(&exec.container_id).ok();
        let task = self.live(&exec.container_id).task();
        if let Some(task) = task {
            let shim = task.shim.clone();
            let eid = exec_id.to_owned();
            let _ = tokio::task::spawn_blocking(move || shim.delete(&eid)).await;
        }
        let io = exec.io.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(io) = io {
            io.finish().await;
            io.remove_fifos();
        }
        let code = i64::from(exit.status);
        {
            let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            st.0 = false;
            st.2 = Some(code);
        }
        exec.done.send_replace(true);
        if let Some(rec) = rec {
            self.event(
                &rec,
                "exec_die",
                &[
                    ("execID", exec_id.to_owned()),
                    ("exitCode", code.to_string()),
                ],
            );
        }
    }

    /// Closes an exec's stdin (our end, and the shim's `CloseIO`).
    pub async fn exec_close_stdin(&self, exec: &ExecInstance) {
        let io = exec.io.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(io) = io {
            io.close_stdin().await;
        }
        if let Some(task) = self.live(&exec.container_id).task() {
            let shim = task.shim.clone();
            let eid = exec.id.clone();
            let _ = tokio::task::spawn_blocking(move || shim.close_stdin(&eid)).await;
        }
    }

    /// `POST /exec/{id}/resize`.
    pub async fn exec_resize(&self, exec: &ExecInstance, h: u32, w: u32) -> Result<(), Error> {
        let Some(task) = self.live(&exec.container_id).task() else {
            return Err(Error::NotRunning(exec.container_id.clone()));
        };
        let shim = task.shim.clone();
        let eid = exec.id.clone();
        run_blocking(move || Ok(shim.resize(&eid, w, h)?)).await
    }

    /// Exec ids of a container.
    pub fn exec_ids(&self, id: &str) -> Vec<String> {
        self.live(id)
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One `docker stats` object: two samples of the cgroup `interval` apart (the CLI computes
    /// the CPU share from their difference).
    pub async fn stats(&self, s: &str, interval: Duration) -> Result<Value, Error> {
        let rec = self.get(s)?;
        let cgroup2 = self.host_info.cgroup2;
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
        let id = rec.id.clone();
        let take = move || {
            let sys = stats::system_cpu_nanos(&read_or_empty(Path::new("/proc/stat")));
            stats::sample(Path::new("/sys/fs/cgroup"), &id, cgroup2, sys, ncpu)
        };
        let t1 = take.clone();
        let pre = run_blocking(move || Ok(t1())).await?;
        tokio::time::sleep(interval).await;
        let mut cur = run_blocking(move || Ok(take())).await?;
        cur["precpu_stats"] = pre["cpu_stats"].clone();
        cur["preread"] = pre["read"].clone();
        cur["name"] = Value::String(rec.name.clone());
        cur["id"] = Value::String(rec.id.clone());
        Ok(cur)
    }

    /// `docker export`: the container's filesystem as a tar, written to `out` (mounted for the
    /// copy if stopped, see [`Self::with_rootfs`]), walked by descriptor inside the rootfs: a
    /// running container swapping a directory for a symlink cannot make it a host path.
    pub async fn export(
        &self,
        s: &str,
        out: impl std::io::Write + Send + 'static,
    ) -> Result<(), Error> {
        self.with_rootfs(s, move |rootfs| {
            archive::Root::open(rootfs)
                .and_then(|root| archive::write_rootfs(&root, out))
                .map_err(io_err("export", rootfs))
        })
        .await
    }

    /// `POST /commit`: the container's writable layer as a new image named `repo:tag` (or
    /// untagged); returns the image id. The image config is the container's, with `given` (the
    /// request's `Config`) laid over it and then `changes` (`--change` instructions) applied;
    /// they are checked before anything is paused or written. Pauses a running container for
    /// the copy (`pause`).
    pub async fn commit(&self, s: &str, req: CommitRequest) -> Result<String, Error> {
        let CommitRequest {
            name,
            comment,
            author,
            pause,
            config: given,
            changes: change_list,
        } = req;
        let rec = self.get(s)?;
        // moby's order: the given config (else the container's), the changes on it, then the
        // container's config for whatever is still empty.
        let container_config = serde_json::to_value(&rec.config).unwrap_or_default();
        let mut image_config = given.unwrap_or_else(|| container_config.clone());
        changes::apply(&mut image_config, &change_list).map_err(Error::Invalid)?;
        changes::merge_container_config(&mut image_config, &container_config);
        // A given Config with a field of the wrong type is refused, not stored.
        serde_json::from_value::<ContainerConfig>(image_config.clone())
            .map_err(|e| Error::Invalid(format!("invalid commit config: {e}")))?;
        let live = self.live(&rec.id);
        let paused_here = pause && rec.state.status == Status::Running && live.task().is_some();
        if paused_here {
            self.set_paused(&rec.id, true).await?;
        }
        let images = self.images.clone();
        let dir = self.dir(&rec.id);
        let r2 = rec.clone();
        let result = run_blocking(move || {
            let img = images.resolve(&r2.image_id)?;
            let tmp = dir.join("commit.tmp");
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
            let work = || -> Result<String, Error> {
                let upper = images.snapshotter().fs_dir(&r2.snapshot)?;
                let layer = tmp.join("new.tar");
                let f = fs::File::create(&layer).map_err(io_err("create", &layer))?;
                commit::upper_to_layer(&upper, std::io::BufWriter::new(f))
                    .map_err(io_err("write layer of", &upper))?;
                let diff_id = commit::file_digest(&layer).map_err(io_err("hash", &layer))?;
                let created = logs::format_nanos(now_nanos());
                let by = format!("{} {}", r2.path, r2.args.join(" "));
                let cfg = commit::new_config(
                    &img.config_json,
                    &image_config,
                    &diff_id,
                    &created,
                    by.trim(),
                    &comment,
                    &author,
                );
                // A docker-archive: the parent's blobs as stored, then the new layer.
                let archive = tmp.join("image.tar");
                let out = fs::File::create(&archive).map_err(io_err("create", &archive))?;
                let mut b = tar::Builder::new(std::io::BufWriter::new(out));
                let mut layers = Vec::new();
                let mut add = |b: &mut tar::Builder<_>, name: String, path: &Path| {
                    b.append_path_with_name(path, &name)
                        .map_err(io_err("write", path))?;
                    layers.push(name);
                    Ok::<(), Error>(())
                };
                for (i, l) in img.manifest.layers.iter().enumerate() {
                    add(
                        &mut b,
                        format!("{i}/layer.tar"),
                        &images.blob_path(&l.digest),
                    )?;
                }
                add(&mut b, "new/layer.tar".to_owned(), &layer)?;
                let cfg_bytes = serde_json::to_vec(&cfg).unwrap_or_default();
                let mut manifest = serde_json::json!([{"Config": "config.json", "Layers": layers}]);
                if let Some(n) = &name {
                    manifest[0]["RepoTags"] = serde_json::json!([n]);
                }
                let put = |b: &mut tar::Builder<_>, n: &str, data: &[u8]| {
                    let mut h = tar::Header::new_gnu();
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, n, data)
                        .map_err(io_err("write", &archive))
                };
                put(&mut b, "config.json", &cfg_bytes)?;
                put(
                    &mut b,
                    "manifest.json",
                    &serde_json::to_vec(&manifest).unwrap_or_default(),
                )?;
                b.into_inner()
                    .and_then(|mut w| std::io::Write::flush(&mut w))
                    .map_err(io_err("write", &archive))?;
                let f = fs::File::open(&archive).map_err(io_err("open", &archive))?;
                let loaded = images.import(std::io::BufReader::new(f), &mut |_| {})?;
                loaded
                    .first()
                    .map(|l| l.id.to_string())
                    .ok_or_else(|| Error::Invalid("commit produced no image".into()))
            };
            let r = work();
            let _ = fs::remove_dir_all(&tmp);
            r
        })
        .await;
        if paused_here {
            let _ = self.set_paused(&rec.id, false).await;
        }
        let id = result?;
        self.event(&rec, "commit", &[]);
        Ok(id)
    }

    /// Runs `f` on the container's rootfs (host path), mounting it for the call when the
    /// container is not running; under the op lock so a start cannot race the unmount.
    pub async fn with_rootfs<T: Send + 'static>(
        &self,
        s: &str,
        f: impl FnOnce(&Path) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let rec = self.get(s)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        let rootfs = self.dir(&rec.id).join("rootfs");
        let mounts = self.images.snapshotter().mounts(&rec.snapshot)?;
        run_blocking(move || {
            let temporary = !is_mounted(&rootfs);
            if temporary {
                fs::create_dir_all(&rootfs).map_err(io_err("create", &rootfs))?;
                mount_snapshot(&mounts, &rootfs)?;
            }
            let r = f(&rootfs);
            if temporary {
                unmount(&rootfs);
            }
            r
        })
        .await
    }

    /// `docker diff`: what the container's writable layer changed, `(path, kind)` with docker's
    /// kinds 0 = modified, 1 = added, 2 = deleted (an overlay whiteout: a 0/0 char device).
    pub fn changes(&self, s: &str) -> Result<Vec<(String, u8)>, Error> {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        let rec = self.get(s)?;
        let snap = self.images.snapshotter();
        let upper = snap.fs_dir(&rec.snapshot)?;
        let lowers: Vec<PathBuf> = snap
            .mounts(&rec.snapshot)?
            .first()
            .and_then(|m| m.options.iter().find_map(|o| o.strip_prefix("lowerdir=")))
            .map(|l| l.split(':').map(PathBuf::from).collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = upper.join(&rel);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let r = rel.join(e.file_name());
                let Ok(m) = e.metadata() else { continue };
                let path = format!("/{}", r.display());
                let kind = if m.file_type().is_char_device() && m.rdev() == 0 {
                    2
                } else if lowers
                    .iter()
                    .any(|l| fs::symlink_metadata(l.join(&r)).is_ok())
                {
                    0
                } else {
                    1
                };
                out.push((path, kind));
                if m.is_dir() {
                    stack.push(r);
                }
            }
        }
        // The files skiffd bind-mounts over are created by the runtime as mount targets;
        // docker keeps them in an init layer, so they are no change of the container's.
        const MOUNT_TARGETS: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
        out.retain(|(p, _)| !MOUNT_TARGETS.contains(&p.as_str()));
        if !out.iter().any(|(p, _)| p.starts_with("/etc/")) {
            out.retain(|(p, k)| !(p == "/etc" && *k == 0));
        }
        out.sort();
        Ok(out)
    }

    /// Paths docker reports in inspect.
    pub fn paths(&self, id: &str) -> (PathBuf, PathBuf, PathBuf) {
        let d = self.dir(id);
        (d.join("resolv.conf"), d.join("hostname"), d.join("hosts"))
    }

    /// `GraphDriver.Data` of inspect: the overlay's `LowerDir`, `UpperDir`, `WorkDir` and the
    /// `MergedDir` the rootfs is mounted on while the container runs.
    pub fn graph_driver_data(&self, rec: &ContainerRecord) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        let mounts = self
            .images
            .snapshotter()
            .mounts(&rec.snapshot)
            .unwrap_or_default();
        for m in &mounts {
            if m.fstype == "bind" {
                data.insert("UpperDir".into(), m.source.display().to_string());
            }
            for o in &m.options {
                let (k, v) = o.split_once('=').unwrap_or((o, ""));
                let key = match k {
                    "lowerdir" => "LowerDir",
                    "upperdir" => "UpperDir",
                    "workdir" => "WorkDir",
                    _ => continue,
                };
                data.insert(key.into(), v.to_owned());
            }
        }
        data.insert(
            "MergedDir".into(),
            self.dir(&rec.id).join("rootfs").display().to_string(),
        );
        data
    }
}

/// Mounts a snapshot's mounts at `target` (the overlay through the new mount API, see
/// [`crate::snapshots::mount_overlay`]).
fn mount_snapshot(mounts: &[crate::snapshots::Mount], target: &Path) -> Result<(), Error> {
    let Some(m) = mounts.first() else {
        return Err(Error::Invalid("snapshot has no mounts".into()));
    };
    match m.fstype.as_str() {
        "overlay" => {
            let opt = |k: &str| {
                m.options
                    .iter()
                    .find_map(|o| o.strip_prefix(k))
                    .map(str::to_owned)
            };
            let lower: Vec<PathBuf> = opt("lowerdir=")
                .unwrap_or_default()
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
            let upper = opt("upperdir=").map(PathBuf::from);
            let work = opt("workdir=").map(PathBuf::from);
            let uw = match (&upper, &work) {
                (Some(u), Some(w)) => Some((u.as_path(), w.as_path())),
                _ => None,
            };
            crate::snapshots::mount_overlay(target, &lower, uw)?;
        }
        _ => {
            let mut flags = nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC;
            nix::mount::mount(Some(&m.source), target, None::<&str>, flags, None::<&str>)
                .map_err(|e| io_err("bind mount", target)(e.into()))?;
            if m.options.iter().any(|o| o == "ro") {
                flags |= nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY;
                nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
                    .map_err(|e| io_err("remount ro", target)(e.into()))?;
            }
        }
    }
    Ok(())
}

/// Every device node under the host's `/dev`, for `--privileged` (as moby's `HostDevices`:
/// not in `pts`, `shm`, `fd`, `mqueue` or the `.lxc`/`.udev` trees). The nodes every container
/// gets anyway (`null`, `tty`, `ptmx`, `console`, …) are left to the runtime.
fn host_devices() -> Vec<spec::ResolvedDevice> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    const SKIP_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    const DEFAULTS: [&str; 8] = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/console",
    ];
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(m) = fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = m.file_type();
            if ft.is_dir() {
                if !SKIP_DIRS.iter().any(|s| e.file_name() == *s) {
                    stack.push(path);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else {
                continue;
            };
            let path = path.display().to_string();
            if DEFAULTS.contains(&path.as_str()) {
                continue;
            }
            let rdev = m.rdev();
            out.push(spec::ResolvedDevice {
                path,
                kind,
                major: i64::from(nix::sys::stat::major(rdev) as u32),
                minor: i64::from(nix::sys::stat::minor(rdev) as u32),
                file_mode: m.mode() & 0o7777,
                access: "rwm".into(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn resolve_device(d: &config::DeviceMapping) -> Result<spec::ResolvedDevice, Error> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let host = Path::new(&d.path_on_host);
    let m = fs::metadata(host).map_err(|e| {
        Error::Invalid(format!(
            "error gathering device information while adding custom device {:?}: {e}",
            d.path_on_host
        ))
    })?;
    let ft = m.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return Err(Error::Invalid(format!(
            "{:?} is not a device node",
            d.path_on_host
        )));
    };
    let rdev = m.rdev();
    let path = if d.path_in_container.is_empty() {
        d.path_on_host.clone()
    } else {
        d.path_in_container.clone()
    };
    Ok(spec::ResolvedDevice {
        path,
        kind,
        major: i64::from(nix::sys::stat::major(rdev) as u32),
        minor: i64::from(nix::sys::stat::minor(rdev) as u32),
        file_mode: m.mode() & 0o7777,
        access: if d.cgroup_permissions.is_empty() {
            "rwm".into()
        } else {
            d.cgroup_permissions.clone()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_names() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("usr1").unwrap(), 10);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(valid_name("web_1.a-b"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn error_kinds() {
        assert_eq!(Error::NotFound("x".into()).kind(), ErrorKind::NotFound);
        assert_eq!(
            Error::NameInUse {
                name: "/a".into(),
                id: "b".into()
            }
            .kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            Error::Running("x".into()).kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(
            Error::Spec(spec::Error::NoCommand).kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn mkdir_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        mkdir_in_root(d.path(), "/a/b/../c").unwrap_err();
        mkdir_in_root(d.path(), "/a/b").unwrap();
        assert!(d.path().join("a/b").is_dir());
        std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
        mkdir_in_root(d.path(), "/link/x").unwrap();
        assert!(!Path::new("/etc/x").exists());
    }
}
