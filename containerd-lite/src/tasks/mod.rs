//! Tasks through shims: containerd's shim v2 protocol, from the daemon's side.
//!
//! skiffd launches one shim per task exactly as containerd 1.6 does
//! (`reference/containerd-shim-and-store.md` §1.3–1.7, §3.8): it creates the `log` fifo in the
//! bundle (the Go shim opens it `O_WRONLY`, which blocks until a reader exists), runs
//! `<shim> -namespace NS -address ADDR -publish-binary SKIFFD -id ID start` with the bundle as
//! cwd and `TTRPC_ADDRESS` in the environment, reads the bare `unix://…` address the shim prints,
//! and talks `containerd.task.v2.Task` over ttrpc ([`Shim`]). Any shim that honours that contract
//! works: the stock `containerd-shim-runc-v2` with runc/crun/skiff as its `BinaryName`, and ours.
//!
//! Why v2 and not the generated client: `containerd-shim-protos` 0.12 generates its client for
//! `containerd.task.v3.Task`, which containerd 1.6/1.7 shims do not serve; the messages of v2 and
//! v3 are identical (only the proto package differs), so [`Shim`] sends the same messages under
//! the v2 service name, which every shim serves.
//!
//! Events come back on skiffd's own ttrpc socket ([`EventServer`], service
//! `containerd.services.events.ttrpc.v1.Events/Forward`), where the shim finds it through
//! `TTRPC_ADDRESS`. Exits are also observed through a blocking `Wait` per process, so an event
//! lost while the daemon was busy cannot lose an exit.
//!
//! Every call carries a deadline except `Wait` (it blocks until the process exits by design);
//! a shim that dies closes the ttrpc connection, which fails every call in flight.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message as _, MessageField};
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::ttrpc;

use crate::ErrorKind;

/// The task API service the stock shims of containerd 1.6+ serve.
const TASK_SERVICE: &str = "containerd.task.v2.Task";
/// The namespace skiffd's tasks live in (the shim's `-namespace`).
pub const NAMESPACE: &str = "skiff";
/// The deadline of an ordinary task call (containerd uses a few seconds for most).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `shim start` may take.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the `delete` action of a dead shim may take (containerd: 5 s).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The type URL of runc's options (containerd's typeurl registration name).
const RUNC_OPTIONS_URL: &str = "containerd.runc.v1.Options";
/// The type URL of an OCI process spec, JSON-encoded (containerd `typeurl`).
pub const PROCESS_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// The type URL of OCI Linux resources, JSON-encoded.
pub const RESOURCES_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";

/// Errors of the task layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The shim binary could not be run or did not print an address.
    #[error("start shim {shim}: {reason}")]
    Start {
        /// The shim binary.
        shim: PathBuf,
        /// What went wrong, with the shim's stderr.
        reason: String,
    },
    /// Connecting to the shim's socket failed.
    #[error("connect to shim at {address}")]
    Connect {
        /// The address.
        address: String,
        /// ttrpc's error.
        #[source]
        source: ttrpc::Error,
    },
    /// A task call failed.
    #[error("task {method}: {message}")]
    Call {
        /// The method.
        method: &'static str,
        /// The class of the failure.
        kind: ErrorKind,
        /// The shim's message (the runtime's error for create/start/exec).
        message: String,
    },
    /// A file step of the bundle failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The service-boundary class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Start { .. } | Error::Connect { .. } | Error::Io { .. } => ErrorKind::Internal,
            Error::Call { kind, .. } => *kind,
        }
    }
}

/// Maps a ttrpc status code to a kind (the one place for this boundary).
fn kind_of_code(code: i32) -> ErrorKind {
    use containerd_shim_protos::protobuf::Enum as _;
    use ttrpc::Code;
    match Code::from_i32(code) {
        Some(Code::NOT_FOUND) => ErrorKind::NotFound,
        Some(Code::ALREADY_EXISTS) => ErrorKind::AlreadyExists,
        Some(Code::INVALID_ARGUMENT) => ErrorKind::InvalidArgument,
        Some(Code::FAILED_PRECONDITION) => ErrorKind::FailedPrecondition,
        Some(Code::UNAVAILABLE) => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

fn call_err(method: &'static str, e: ttrpc::Error) -> Error {
    match e {
        ttrpc::Error::RpcStatus(s) => Error::Call {
            method,
            kind: kind_of_code(s.code.value()),
            message: s.message,
        },
        other => Error::Call {
            method,
            kind: ErrorKind::Unavailable,
            message: other.to_string(),
        },
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// How skiffd starts shims.
#[derive(Debug, Clone)]
pub struct ShimConfig {
    /// The shim binary (`containerd-shim-runc-v2`, `containerd-shim-skiff-v2`).
    pub binary: PathBuf,
    /// The shim's `-address` (skiffd's ttrpc socket; containerd passes its gRPC socket, which
    /// the shims use only to name their own socket).
    pub address: PathBuf,
    /// `TTRPC_ADDRESS`: where the shim publishes events ([`EventServer`]).
    pub ttrpc_address: PathBuf,
    /// `-publish-binary`: this skiffd.
    pub publish_binary: PathBuf,
    /// The OCI runtime's `--root` (passed in the runc options).
    pub runtime_root: PathBuf,
}

impl ShimConfig {
    fn base_args(&self, id: &str) -> Vec<String> {
        vec![
            "-namespace".into(),
            NAMESPACE.into(),
            "-address".into(),
            self.address.display().to_string(),
            "-publish-binary".into(),
            self.publish_binary.display().to_string(),
            "-id".into(),
            id.into(),
        ]
    }
}

/// Creates (or reopens) the `log` fifo in the bundle and keeps reading it into skiffd's log (debug), so the
/// shim's blocking open succeeds and its writes never fill the pipe.
pub fn serve_shim_log(bundle: &Path, id: &str) -> Result<(), Error> {
    let path = bundle.join("log");
    match nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(io_err("mkfifo", &path)(e.into())),
    }
    // O_RDWR: the open does not wait for a writer, and EOF never comes while we hold it. The
    // thread polls with a timeout and ends once the fifo is unlinked (task teardown removes it).
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err("open", &path))?;
    let id = id.to_owned();
    std::thread::Builder::new()
        .name("shim-log".into())
        .spawn(move || copy_shim_log(&file, &id))
        .map_err(|e| io_err("spawn shim log reader", bundle)(e))?;
    Ok(())
}

fn copy_shim_log(file: &fs::File, id: &str) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd as _;
    let mut buf = vec![0u8; 8192];
    let mut line = Vec::new();
    let mut reader = file;
    while file_exists(file) {
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(500u16)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                line.extend_from_slice(&buf[..n]);
                while let Some(i) = line.iter().position(|b| *b == b'\n') {
                    let l: Vec<u8> = line.drain(..=i).collect();
                    tracing::debug!(container = %id, "shim: {}", String::from_utf8_lossy(&l).trim_end());
                }
                if line.len() > 64 * 1024 {
                    line.clear();
                }
            }
        }
    }
}

/// Removes the bundle's `log` fifo, which ends its reader.
pub fn remove_shim_log(bundle: &Path) {
    let _ = fs::remove_file(bundle.join("log"));
}

fn file_exists(f: &fs::File) -> bool {
    f.metadata().map(|m| m.nlink() > 0).unwrap_or(false)
}

use std::os::unix::fs::MetadataExt as _;

/// Runs `<shim> … start` in `bundle` and connects to the address it prints.
pub fn start(config: &ShimConfig, id: &str, bundle: &Path) -> Result<Shim, Error> {
    serve_shim_log(bundle, id)?;
    let mut args = config.base_args(id);
    args.push("start".into());
    let child = Command::new(&config.binary)
        .args(&args)
        .current_dir(bundle)
        .env("TTRPC_ADDRESS", &config.ttrpc_address)
        .env("GRPC_ADDRESS", &config.address)
        .env("NAMESPACE", NAMESPACE)
        .env("MAX_SHIM_VERSION", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Start {
            shim: config.binary.clone(),
            reason: e.to_string(),
        })?;
    let out = wait_output(child, START_TIMEOUT).map_err(|reason| Error::Start {
        shim: config.binary.clone(),
        reason,
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || stdout.is_empty() {
        return Err(Error::Start {
            shim: config.binary.clone(),
            reason: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let address = parse_start_output(&stdout);
    fs::write(
        bundle.join("shim-binary-path"),
        config.binary.as_os_str().as_encoded_bytes(),
    )
    .map_err(io_err("write", &bundle.join("shim-binary-path")))?;
    // 1.6/1.7-era shims write `address` themselves; write it for those that do not, so a
    // restarted skiffd can find every shim the same way.
    let addr_file = bundle.join("address");
    if !addr_file.exists() {
        fs::write(&addr_file, &address).map_err(io_err("write", &addr_file))?;
    }
    Shim::connect(&address, id)
}

/// The address in a `start` answer: a bare address (1.6), or the JSON of 1.7+.
fn parse_start_output(s: &str) -> String {
    if s.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(s) {
            if let Some(a) = v.get("address").and_then(|a| a.as_str()) {
                return a.to_owned();
            }
        }
    }
    s.to_owned()
}

fn wait_output(
    mut child: std::process::Child,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    // Read the pipes on threads so that a chatty shim cannot block on a full pipe.
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut v);
        }
        v
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {timeout:?}"));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs the shim's `delete` action for a shim that died, so it cleans the runtime state and
/// the rootfs mount (containerd's `cleanupAfterDeadShim`). Best effort and bounded.
pub fn cleanup_dead(config: &ShimConfig, id: &str, bundle: &Path) {
    let mut args = config.base_args(id);
    args.extend([
        "-bundle".into(),
        bundle.display().to_string(),
        "delete".into(),
    ]);
    let child = Command::new(&config.binary)
        .args(&args)
        .current_dir(bundle)
        .env("TTRPC_ADDRESS", &config.ttrpc_address)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match child
        .map_err(|e| e.to_string())
        .and_then(|c| wait_output(c, CLEANUP_TIMEOUT))
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            tracing::warn!(container = %id, stderr = %String::from_utf8_lossy(&out.stderr).trim(), "shim delete failed")
        }
        Err(e) => tracing::warn!(container = %id, error = %e, "shim delete failed"),
    }
}

/// An exit: status and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The exit status (128+signal for a signalled process; 255 when the shim died).
    pub status: u32,
    /// Unix nanoseconds (0 when unknown).
    pub at_nanos: i64,
}

fn ts_nanos(
    t: &MessageField<containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp>,
) -> i64 {
    t.as_ref()
        .map(|t| t.seconds.saturating_mul(1_000_000_000) + i64::from(t.nanos))
        .unwrap_or(0)
}

/// The stdio of a process as the shim sees it: fifo paths ("" = none).
#[derive(Debug, Clone, Default)]
pub struct Stdio3 {
    /// stdin fifo.
    pub stdin: String,
    /// stdout fifo.
    pub stdout: String,
    /// stderr fifo (unused with a terminal).
    pub stderr: String,
    /// A pty instead of pipes.
    pub terminal: bool,
}

/// A connection to one shim, serving one task.
#[derive(Clone)]
pub struct Shim {
    client: ttrpc::Client,
    /// The shim's address.
    pub address: String,
    id: String,
}

impl std::fmt::Debug for Shim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shim")
            .field("address", &self.address)
            .field("id", &self.id)
            .finish()
    }
}

fn any_json(url: &str, v: &serde_json::Value) -> Any {
    let mut a = Any::new();
    a.type_url = url.to_owned();
    a.value = v.to_string().into_bytes();
    a
}

impl Shim {
    /// Connects to a running shim (bounded retries: the socket may not accept yet).
    pub fn connect(address: &str, id: &str) -> Result<Self, Error> {
        let mut last = None;
        for _ in 0..50 {
            match ttrpc::Client::connect(address) {
                Ok(client) => {
                    return Ok(Self {
                        client,
                        address: address.to_owned(),
                        id: id.to_owned(),
                    });
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Err(Error::Connect {
            address: address.to_owned(),
            source: last.unwrap_or_else(|| ttrpc::Error::Others("no attempt".into())),
        })
    }

    /// One unary call of the task service under the v2 name.
    fn call<Q, R>(
        &self,
        method: &'static str,
        req: &Q,
        timeout: Option<Duration>,
    ) -> Result<R, Error>
    where
        Q: containerd_shim_protos::protobuf::Message,
        R: containerd_shim_protos::protobuf::Message,
    {
        // What ttrpc's generated clients do (`client_request!`), with the v2 service name.
        let payload = req.write_to_bytes().map_err(|e| Error::Call {
            method,
            kind: ErrorKind::Internal,
            message: format!("encode request: {e}"),
        })?;
        let mut creq = ttrpc::Request::new();
        creq.set_service(TASK_SERVICE.to_owned());
        creq.set_method(method.to_owned());
        creq.set_timeout_nano(
            timeout.map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        );
        creq.set_payload(payload);
        let res = self.client.request(creq).map_err(|e| call_err(method, e))?;
        R::parse_from_bytes(&res.payload).map_err(|e| Error::Call {
            method,
            kind: ErrorKind::Internal,
            message: format!("decode response: {e}"),
        })
    }

    /// `Create`: the runtime's `create` for the init process; its pid.
    pub fn create(
        &self,
        bundle: &Path,
        stdio: &Stdio3,
        runtime_binary: &Path,
        runtime_root: &Path,
    ) -> Result<u32, Error> {
        let mut opts = RuncOptions::new();
        opts.binary_name = runtime_binary.display().to_string();
        opts.root = runtime_root.display().to_string();
        let mut any = Any::new();
        any.type_url = RUNC_OPTIONS_URL.to_owned();
        any.value = opts.write_to_bytes().map_err(|e| Error::Call {
            method: "Create",
            kind: ErrorKind::Internal,
            message: format!("encode runtime options: {e}"),
        })?;
        let mut req = api::CreateTaskRequest::new();
        req.id = self.id.clone();
        req.bundle = bundle.display().to_string();
        req.terminal = stdio.terminal;
        req.stdin = stdio.stdin.clone();
        req.stdout = stdio.stdout.clone();
        req.stderr = stdio.stderr.clone();
        req.options = MessageField::some(any);
        let r: api::CreateTaskResponse = self.call("Create", &req, Some(CALL_TIMEOUT))?;
        Ok(r.pid)
    }

    /// `Start` of the init (`exec_id` "") or an exec; the pid.
    pub fn start(&self, exec_id: &str) -> Result<u32, Error> {
        let mut req = api::StartRequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        let r: api::StartResponse = self.call("Start", &req, Some(CALL_TIMEOUT))?;
        Ok(r.pid)
    }

    /// `Wait`: blocks until the process exits.
    pub fn wait(&self, exec_id: &str) -> Result<Exit, Error> {
        let mut req = api::WaitRequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        let r: api::WaitResponse = self.call("Wait", &req, None)?;
        Ok(Exit {
            status: r.exit_status,
            at_nanos: ts_nanos(&r.exited_at),
        })
    }

    /// `Kill` with a signal number; `all` signals every process of the container.
    pub fn kill(&self, exec_id: &str, signal: u32, all: bool) -> Result<(), Error> {
        let mut req = api::KillRequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        req.signal = signal;
        req.all = all;
        let _: containerd_shim_protos::protobuf::well_known_types::empty::Empty =
            self.call("Kill", &req, Some(CALL_TIMEOUT))?;
        Ok(())
    }

    /// `Delete` of the init or an exec (the shim waits for its stdio copy to finish first).
    pub fn delete(&self, exec_id: &str) -> Result<Exit, Error> {
        let mut req = api::DeleteRequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        let r: api::DeleteResponse = self.call("Delete", &req, Some(CALL_TIMEOUT))?;
        Ok(Exit {
            status: r.exit_status,
            at_nanos: ts_nanos(&r.exited_at),
        })
    }

    /// `Exec`: registers a process (`process` is the OCI process JSON).
    pub fn exec(
        &self,
        exec_id: &str,
        stdio: &Stdio3,
        process: &serde_json::Value,
    ) -> Result<(), Error> {
        let mut req = api::ExecProcessRequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        req.terminal = stdio.terminal;
        req.stdin = stdio.stdin.clone();
        req.stdout = stdio.stdout.clone();
        req.stderr = stdio.stderr.clone();
        req.spec = MessageField::some(any_json(PROCESS_URL, process));
        let _: containerd_shim_protos::protobuf::well_known_types::empty::Empty =
            self.call("Exec", &req, Some(CALL_TIMEOUT))?;
        Ok(())
    }

    /// `ResizePty`.
    pub fn resize(&self, exec_id: &str, width: u32, height: u32) -> Result<(), Error> {
        let mut req = api::ResizePtyRequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        req.width = width;
        req.height = height;
        let _: containerd_shim_protos::protobuf::well_known_types::empty::Empty =
            self.call("ResizePty", &req, Some(CALL_TIMEOUT))?;
        Ok(())
    }

    /// `CloseIO`: closes the process's stdin.
    pub fn close_stdin(&self, exec_id: &str) -> Result<(), Error> {
        let mut req = api::CloseIORequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        req.stdin = true;
        let _: containerd_shim_protos::protobuf::well_known_types::empty::Empty =
            self.call("CloseIO", &req, Some(CALL_TIMEOUT))?;
        Ok(())
    }

    /// `Pids`: the container's processes.
    pub fn pids(&self) -> Result<Vec<u32>, Error> {
        let mut req = api::PidsRequest::new();
        req.id = self.id.clone();
        let r: api::PidsResponse = self.call("Pids", &req, Some(CALL_TIMEOUT))?;
        Ok(r.processes.iter().map(|p| p.pid).collect())
    }

    /// `Pause`.
    pub fn pause(&self) -> Result<(), Error> {
        let mut req = api::PauseRequest::new();
        req.id = self.id.clone();
        let _: containerd_shim_protos::protobuf::well_known_types::empty::Empty =
            self.call("Pause", &req, Some(CALL_TIMEOUT))?;
        Ok(())
    }

    /// `Resume`.
    pub fn resume(&self) -> Result<(), Error> {
        let mut req = api::ResumeRequest::new();
        req.id = self.id.clone();
        let _: containerd_shim_protos::protobuf::well_known_types::empty::Empty =
            self.call("Resume", &req, Some(CALL_TIMEOUT))?;
        Ok(())
    }

    /// `Update` with OCI `LinuxResources` JSON.
    pub fn update(&self, resources: &serde_json::Value) -> Result<(), Error> {
        let mut req = api::UpdateTaskRequest::new();
        req.id = self.id.clone();
        req.resources = MessageField::some(any_json(RESOURCES_URL, resources));
        let _: containerd_shim_protos::protobuf::well_known_types::empty::Empty =
            self.call("Update", &req, Some(CALL_TIMEOUT))?;
        Ok(())
    }

    /// `Stats`: the metrics `Any` (cgroups v1 or v2 metrics).
    pub fn stats(&self) -> Result<Any, Error> {
        let mut req = api::StatsRequest::new();
        req.id = self.id.clone();
        let r: api::StatsResponse = self.call("Stats", &req, Some(CALL_TIMEOUT))?;
        Ok(r.stats.into_option().unwrap_or_default())
    }

    /// `State` of the init or an exec: (status enum value, pid, exit status).
    pub fn state(&self, exec_id: &str) -> Result<(i32, u32, u32), Error> {
        let mut req = api::StateRequest::new();
        req.id = self.id.clone();
        req.exec_id = exec_id.to_owned();
        let r: api::StateResponse = self.call("State", &req, Some(CALL_TIMEOUT))?;
        Ok((r.status.value(), r.pid, r.exit_status))
    }

    /// `Connect`: (shim pid, task pid).
    pub fn connect_info(&self) -> Result<(u32, u32), Error> {
        let mut req = api::ConnectRequest::new();
        req.id = self.id.clone();
        let r: api::ConnectResponse = self.call("Connect", &req, Some(Duration::from_secs(5)))?;
        Ok((r.shim_pid, r.task_pid))
    }

    /// `Shutdown`: the shim exits if it serves nothing else. A closed connection is the
    /// expected answer.
    pub fn shutdown(&self) {
        let mut req = api::ShutdownRequest::new();
        req.id = self.id.clone();
        let r: Result<containerd_shim_protos::protobuf::well_known_types::empty::Empty, _> =
            self.call("Shutdown", &req, Some(Duration::from_secs(3)));
        if let Err(e) = r {
            tracing::debug!(container = %self.id, error = %e, "shim shutdown");
        }
    }
}

/// An event a shim forwarded.
#[derive(Debug, Clone)]
pub struct ShimEvent {
    /// `/tasks/exit`, `/tasks/oom`, ….
    pub topic: String,
    /// The container id the event is about (from the message, when known).
    pub container_id: String,
    /// For `/tasks/exit`: the process id (exec id or container id) and its exit.
    pub exit: Option<(String, Exit)>,
}

struct Forwarder {
    tx: tokio::sync::mpsc::UnboundedSender<ShimEvent>,
}

fn decode_event(topic: &str, any: &Any) -> ShimEvent {
    use containerd_shim_protos::events::task;
    let mut ev = ShimEvent {
        topic: topic.to_owned(),
        container_id: String::new(),
        exit: None,
    };
    match topic {
        "/tasks/exit" => {
            if let Ok(e) = task::TaskExit::parse_from_bytes(&any.value) {
                ev.container_id = e.container_id.clone();
                ev.exit = Some((
                    e.id.clone(),
                    Exit {
                        status: e.exit_status,
                        at_nanos: ts_nanos(&e.exited_at),
                    },
                ));
            }
        }
        "/tasks/oom" => {
            if let Ok(e) = task::TaskOOM::parse_from_bytes(&any.value) {
                ev.container_id = e.container_id;
            }
        }
        _ => {}
    }
    ev
}

impl containerd_shim_protos::shim::events_ttrpc::Events for Forwarder {
    fn forward(
        &self,
        _ctx: &ttrpc::TtrpcContext,
        req: containerd_shim_protos::shim::events::ForwardRequest,
    ) -> ttrpc::Result<containerd_shim_protos::protobuf::well_known_types::empty::Empty> {
        if let Some(env) = req.envelope.as_ref() {
            let ev = match env.event.as_ref() {
                Some(any) => decode_event(&env.topic, any),
                None => ShimEvent {
                    topic: env.topic.clone(),
                    container_id: String::new(),
                    exit: None,
                },
            };
            tracing::debug!(topic = %ev.topic, container = %ev.container_id, "shim event");
            let _ = self.tx.send(ev);
        }
        Ok(Default::default())
    }
}

/// skiffd's ttrpc server for `containerd.services.events.ttrpc.v1.Events/Forward`.
pub struct EventServer {
    server: Option<ttrpc::Server>,
    path: PathBuf,
}

impl std::fmt::Debug for EventServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventServer")
            .field("path", &self.path)
            .finish()
    }
}

impl EventServer {
    /// Listens on `path` (replacing a stale socket); events go to the returned receiver.
    pub fn start(
        path: &Path,
    ) -> Result<(Self, tokio::sync::mpsc::UnboundedReceiver<ShimEvent>), Error> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove stale socket", path)(e)),
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let service =
            containerd_shim_protos::shim::events_ttrpc::create_events(Arc::new(Forwarder { tx }));
        let addr = format!("unix://{}", path.display());
        let mut server = ttrpc::Server::new()
            .bind(&addr)
            .map_err(|e| io_err("listen on", path)(io::Error::other(e.to_string())))?
            .register_service(service);
        server
            .start()
            .map_err(|e| io_err("serve", path)(io::Error::other(e.to_string())))?;
        Ok((
            Self {
                server: Some(server),
                path: path.to_owned(),
            },
            rx,
        ))
    }
}

impl Drop for EventServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_answers() {
        assert_eq!(
            parse_start_output("unix:///run/containerd/s/abc"),
            "unix:///run/containerd/s/abc"
        );
        assert_eq!(
            parse_start_output(r#"{"version":2,"address":"unix:///x","protocol":"ttrpc"}"#),
            "unix:///x"
        );
    }

    #[test]
    fn maps_codes_once() {
        assert_eq!(kind_of_code(5), ErrorKind::NotFound);
        assert_eq!(kind_of_code(6), ErrorKind::AlreadyExists);
        assert_eq!(kind_of_code(9), ErrorKind::FailedPrecondition);
        assert_eq!(kind_of_code(3), ErrorKind::InvalidArgument);
        assert_eq!(kind_of_code(14), ErrorKind::Unavailable);
        assert_eq!(kind_of_code(2), ErrorKind::Internal);
    }

    #[test]
    fn decodes_exit_events() {
        let mut e = containerd_shim_protos::events::task::TaskExit::new();
        e.container_id = "c1".into();
        e.id = "c1".into();
        e.exit_status = 3;
        let mut any = Any::new();
        any.type_url = "containerd.events.TaskExit".into();
        any.value = e.write_to_bytes().unwrap();
        let ev = decode_event("/tasks/exit", &any);
        assert_eq!(ev.container_id, "c1");
        assert_eq!(ev.exit.unwrap().1.status, 3);
    }
}
