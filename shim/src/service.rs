//! The task service (`containerd.task.v2.Task`, also registered as `v3`): every RPC of
//! `reference/containerd-shim-and-store.md` §1.10 over the [`process`](crate::process) table.
//!
//! Concurrency: the sync ttrpc server runs each request on a worker thread, so requests are
//! concurrent and Wait blocks only its own thread (on a condition variable signalled at every
//! exit). The table lock is held across the runtime CLI for Start, Exec-start, Pause, Resume
//! and Kill, so an exit reaped meanwhile is applied only after the start event is queued;
//! Create runs the slow `create` CLI without it. Events are queued under the lock, which is
//! what keeps them in containerd's order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use containerd_shim_protos::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, ExecProcessRequest, KillRequest, PauseRequest, PidsRequest,
    PidsResponse, ProcessInfo, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, UpdateTaskRequest,
    WaitRequest, WaitResponse,
};
use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::oci::{Options as RuncOptions, ProcessDetails};
use containerd_shim_protos::{Task, ttrpc};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cgroups::Cgroup;
use crate::error::{Error, Result};
use crate::events::{Publisher, timestamp};
use crate::mounts::{self, Mount};
use crate::process::{Container, Exited, PendingExit, Process, State};
use crate::reaper::{Applied, Exit, Reaper, Sink};
use crate::runtime::{Runtime, RuntimeOptions, Waiter};
use crate::stdio::{Prepared, StdioPaths};

/// The shim's version string (Connect, `-v`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How long an exited init waits for the exec processes it SIGKILLed (a shared pid namespace)
/// before its TaskExit goes out anyway: a process can outlive SIGKILL (uninterruptible sleep,
/// a v1-frozen cgroup), and containerd must still see the task exit.
pub const EXEC_EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long Delete waits for a process's output copies to end (the Go shim: 2 s).
pub const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The task service.
#[derive(Debug)]
pub struct Service {
    namespace: String,
    table: Mutex<HashMap<String, Container>>,
    changed: Condvar,
    reaper: Arc<Reaper>,
    events: Publisher,
}

impl Service {
    /// A service with an empty table; Shutdown stops `reaper`'s loop.
    pub fn new(namespace: &str, reaper: Arc<Reaper>, events: Publisher) -> Arc<Self> {
        Arc::new(Self {
            namespace: namespace.to_string(),
            table: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            reaper,
            events,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Container>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the TaskExit of every init whose execs outlived [`EXEC_EXIT_GRACE`]; returns
    /// how long until the next such deadline.
    fn expire_pending(&self, table: &mut HashMap<String, Container>, now: Instant) -> Applied {
        let mut next: Option<Duration> = None;
        for c in table.values_mut() {
            let Some(pending) = c.pending_exit else {
                continue;
            };
            if now >= pending.deadline {
                let left: Vec<u32> = c.running_execs().map(|p| p.pid).collect();
                tracing::warn!(
                    id = %c.id,
                    "exec processes {left:?} outlived SIGKILL for {EXEC_EXIT_GRACE:?}; publishing the init's exit"
                );
                c.pending_exit = None;
                self.finish_init(c, pending.exited);
            } else {
                let left = pending.deadline - now;
                next = Some(next.map_or(left, |n| n.min(left)));
            }
        }
        next.map_or(Applied::Idle, Applied::Again)
    }

    fn apply_exit(&self, table: &mut HashMap<String, Container>, exit: Exit) {
        let pid = u32::try_from(exit.pid).unwrap_or(0);
        let exited = Exited {
            status: exit.status,
            at: exit.at,
        };
        for c in table.values_mut() {
            if c.init.pid == pid && c.init.state.exited().is_none() && c.pending_exit.is_none() {
                let running: Vec<u32> = c.running_execs().map(|p| p.pid).collect();
                if running.is_empty() {
                    self.finish_init(c, exited);
                } else {
                    // A shared pid namespace keeps execs alive after init: kill them and
                    // publish init's exit after theirs.
                    for p in running {
                        let _ = kill(
                            Pid::from_raw(i32::try_from(p).unwrap_or(i32::MAX)),
                            Signal::SIGKILL,
                        );
                    }
                    c.pending_exit = Some(PendingExit {
                        exited,
                        deadline: Instant::now() + EXEC_EXIT_GRACE,
                    });
                }
                return;
            }
            if let Some(p) = c
                .execs
                .values_mut()
                .find(|p| p.pid == pid && p.state.is_alive())
            {
                p.state = State::Stopped(exited);
                self.events.publish(&TaskExit {
                    container_id: c.id.clone(),
                    id: p.exec_id.clone(),
                    pid,
                    exit_status: exited.status,
                    exited_at: MessageField::some(timestamp(exited.at)),
                    ..Default::default()
                });
                if c.running_execs().next().is_none() {
                    if let Some(pending) = c.pending_exit.take() {
                        self.finish_init(c, pending.exited);
                    }
                }
                return;
            }
        }
        tracing::debug!(pid, status = exit.status, "reaped a process of no task");
    }

    fn finish_init(&self, c: &mut Container, exited: Exited) {
        c.init.state = State::Stopped(exited);
        self.events.publish(&TaskExit {
            container_id: c.id.clone(),
            id: c.id.clone(),
            pid: c.init.pid,
            exit_status: exited.status,
            exited_at: MessageField::some(timestamp(exited.at)),
            ..Default::default()
        });
    }

    fn container<'a>(table: &'a HashMap<String, Container>, id: &str) -> Result<&'a Container> {
        table.get(id).ok_or_else(|| Error::NotFound {
            what: format!("container {id:?}"),
        })
    }

    fn container_mut<'a>(
        table: &'a mut HashMap<String, Container>,
        id: &str,
    ) -> Result<&'a mut Container> {
        table.get_mut(id).ok_or_else(|| Error::NotFound {
            what: format!("container {id:?}"),
        })
    }

    fn do_create(&self, req: &CreateTaskRequest) -> Result<CreateTaskResponse> {
        if req.id.is_empty() {
            return Err(Error::InvalidArgument("container id is empty".into()));
        }
        if self.lock().contains_key(&req.id) {
            return Err(Error::AlreadyExists {
                what: format!("container {:?}", req.id),
            });
        }
        let bundle = PathBuf::from(&req.bundle);
        if !bundle.is_absolute() || !bundle.join("config.json").is_file() {
            return Err(Error::InvalidArgument(format!(
                "bundle {:?} has no config.json",
                req.bundle
            )));
        }
        if !req.checkpoint.is_empty() {
            return Err(Error::NotImplemented("restoring from a checkpoint"));
        }
        let options = runtime_options(req.options.as_ref())?;
        options.store(&bundle)?;
        let runtime = Runtime::new(
            &options,
            &self.namespace,
            &bundle,
            Waiter::Reaper(self.reaper.clone()),
        );
        let rootfs = bundle.join("rootfs");
        let mounts: Vec<Mount> = req
            .rootfs
            .iter()
            .map(|m| Mount {
                kind: m.type_.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        if !mounts.is_empty() {
            std::fs::create_dir_all(&rootfs)
                .map_err(|e| Error::io(format!("creating {}", rootfs.display()), e))?;
            mounts::mount_all(&mounts, &rootfs)?;
        }
        let cleanup = |runtime: &Runtime| {
            let _ = runtime.delete(&req.id, true);
            if !mounts.is_empty() {
                let _ = mounts::unmount_all(&rootfs);
            }
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let pid_file = bundle.join("init.pid");
        let created = Prepared::new(&stdio).and_then(|mut prepared| {
            let child = std::mem::replace(&mut prepared.child, crate::runtime::ChildStdio::null());
            let console = prepared.console.as_ref().map(|c| c.path().to_path_buf());
            runtime.create(&req.id, &pid_file, console.as_deref(), child)?;
            let io = prepared.finish()?;
            Ok((io, read_pid(&pid_file)?))
        });
        let (io, pid) = match created {
            Ok(v) => v,
            Err(e) => {
                cleanup(&runtime);
                return Err(e);
            }
        };
        let cgroup = Cgroup::of_pid(pid).ok();
        let mut init = Process::new("", pid, stdio.clone(), Vec::new());
        init.io = io;
        let mut table = self.lock();
        if table.contains_key(&req.id) {
            drop(table);
            cleanup(&runtime);
            return Err(Error::AlreadyExists {
                what: format!("container {:?}", req.id),
            });
        }
        table.insert(
            req.id.clone(),
            Container {
                id: req.id.clone(),
                bundle: bundle.clone(),
                runtime,
                init,
                execs: Default::default(),
                rootfs_mounted: !mounts.is_empty(),
                cgroup: cgroup.clone(),
                pending_exit: None,
            },
        );
        self.events.publish(&TaskCreate {
            container_id: req.id.clone(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: MessageField::some(TaskIO {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                terminal: stdio.terminal,
                ..Default::default()
            }),
            checkpoint: req.checkpoint.clone(),
            pid,
            ..Default::default()
        });
        drop(table);
        if let Some(cgroup) = cgroup {
            match cgroup.watch_oom() {
                Ok(Some(watch)) => self.reaper.watch_oom(&req.id, watch),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(id = %req.id, "no OOM events for this container: {}", chain(&e));
                }
            }
        }
        Ok(CreateTaskResponse {
            pid,
            ..Default::default()
        })
    }

    fn do_start(&self, req: &StartRequest) -> Result<StartResponse> {
        let mut table = self.lock();
        let c = Self::container_mut(&mut table, &req.id)?;
        if req.exec_id.is_empty() {
            let next = c.init.state.start()?;
            c.runtime.start(&c.id)?;
            c.init.state = next;
            self.events.publish(&TaskStart {
                container_id: c.id.clone(),
                pid: c.init.pid,
                ..Default::default()
            });
            return Ok(StartResponse {
                pid: c.init.pid,
                ..Default::default()
            });
        }
        if !c.init.state.is_alive() {
            return Err(Error::FailedPrecondition(format!(
                "container {:?} is not running",
                c.id
            )));
        }
        let p = c.process(&req.exec_id)?;
        let next = p.state.start()?;
        let (stdio, spec) = (p.stdio.clone(), p.spec.clone());
        let spec_file = std::env::temp_dir().join(format!(
            "skiff-shim-{}-{}-{}.json",
            std::process::id(),
            c.id,
            req.exec_id
        ));
        std::fs::write(&spec_file, &spec)
            .map_err(|e| Error::io(format!("writing {}", spec_file.display()), e))?;
        let pid_file = c.bundle.join(format!("{}.pid", req.exec_id));
        let started = Prepared::new(&stdio).and_then(|mut prepared| {
            let child = std::mem::replace(&mut prepared.child, crate::runtime::ChildStdio::null());
            let console = prepared.console.as_ref().map(|s| s.path().to_path_buf());
            c.runtime
                .exec(&c.id, &spec_file, &pid_file, console.as_deref(), child)?;
            let io = prepared.finish()?;
            Ok((io, read_pid(&pid_file)?))
        });
        let _ = std::fs::remove_file(&spec_file);
        let (io, pid) = started?;
        let p = c.process_mut(&req.exec_id)?;
        p.pid = pid;
        p.io = io;
        p.state = next;
        self.events.publish(&TaskExecStarted {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            pid,
            ..Default::default()
        });
        Ok(StartResponse {
            pid,
            ..Default::default()
        })
    }

    fn do_delete(&self, req: &DeleteRequest) -> Result<DeleteResponse> {
        // First, without the table lock: let the output copies finish (bounded), so the
        // client has all of the process's output once Delete answers.
        let io = {
            let mut table = self.lock();
            let c = Self::container_mut(&mut table, &req.id)?;
            let p = if req.exec_id.is_empty() {
                &c.init
            } else {
                c.process(&req.exec_id)?
            };
            p.state.check_delete()?;
            p.io.clone()
        };
        if !io.wait_output(OUTPUT_DRAIN_TIMEOUT) {
            tracing::warn!(id = %req.id, exec = %req.exec_id, "output still open {OUTPUT_DRAIN_TIMEOUT:?} after the exit (a child kept stdout); deleting anyway");
        }
        let mut table = self.lock();
        let c = Self::container_mut(&mut table, &req.id)?;
        if !req.exec_id.is_empty() {
            let p = c.process(&req.exec_id)?;
            p.state.check_delete()?;
            let p = c
                .execs
                .remove(&req.exec_id)
                .ok_or_else(|| Error::NotFound {
                    what: format!("exec {:?}", req.exec_id),
                })?;
            p.io.release();
            let _ = std::fs::remove_file(c.bundle.join(format!("{}.pid", req.exec_id)));
            return Ok(delete_response(&p));
        }
        c.init.state.check_delete()?;
        let never_started = c.init.state == State::Created;
        c.runtime.delete(&c.id, never_started)?;
        if c.rootfs_mounted {
            mounts::unmount_all(&c.bundle.join("rootfs"))?;
        }
        let Some(c) = table.remove(&req.id) else {
            return Err(Error::NotFound {
                what: format!("container {:?}", req.id),
            });
        };
        c.init.io.release();
        for p in c.execs.values() {
            p.io.release();
        }
        let response = delete_response(&c.init);
        self.events.publish(&TaskDelete {
            container_id: c.id.clone(),
            pid: response.pid,
            exit_status: response.exit_status,
            exited_at: response.exited_at.clone(),
            id: c.id.clone(),
            ..Default::default()
        });
        drop(table);
        self.changed.notify_all();
        Ok(response)
    }

    fn do_pids(&self, req: &PidsRequest) -> Result<PidsResponse> {
        let (runtime, execs) = {
            let table = self.lock();
            let c = Self::container(&table, &req.id)?;
            let execs: HashMap<u32, String> = c
                .execs
                .values()
                .filter(|p| p.pid != 0)
                .map(|p| (p.pid, p.exec_id.clone()))
                .collect();
            (c.runtime.clone(), execs)
        };
        let pids = runtime.ps(&req.id)?;
        let processes = pids
            .into_iter()
            .map(|pid| {
                let mut info = ProcessInfo {
                    pid,
                    ..Default::default()
                };
                if let Some(exec_id) = execs.get(&pid) {
                    let details = ProcessDetails {
                        exec_id: exec_id.clone(),
                        ..Default::default()
                    };
                    let mut any = Any::new();
                    any.type_url = "containerd.runc.v1.ProcessDetails".into();
                    any.value = details.write_to_bytes().unwrap_or_default();
                    info.info = MessageField::some(any);
                }
                info
            })
            .collect();
        Ok(PidsResponse {
            processes,
            ..Default::default()
        })
    }

    fn do_pause(&self, id: &str, pause: bool) -> Result<()> {
        let mut table = self.lock();
        let c = Self::container_mut(&mut table, id)?;
        if pause {
            let next = c.init.state.pause()?;
            c.runtime.pause(id)?;
            c.init.state = next;
            self.events.publish(&TaskPaused {
                container_id: id.to_string(),
                ..Default::default()
            });
        } else {
            let next = c.init.state.resume()?;
            c.runtime.resume(id)?;
            c.init.state = next;
            self.events.publish(&TaskResumed {
                container_id: id.to_string(),
                ..Default::default()
            });
        }
        Ok(())
    }

    fn do_kill(&self, req: &KillRequest) -> Result<()> {
        let table = self.lock();
        let c = Self::container(&table, &req.id)?;
        let p = c.process(&req.exec_id)?;
        if p.state.exited().is_some() || c.pending_exit.is_some() && req.exec_id.is_empty() {
            return Err(Error::NotFound {
                what: "process already finished: process".into(),
            });
        }
        if req.exec_id.is_empty() {
            return c
                .runtime
                .kill(&c.id, req.signal, req.all)
                .map_err(classify_kill);
        }
        if p.state == State::Created {
            return Err(Error::FailedPrecondition(format!(
                "exec {:?} was not started",
                req.exec_id
            )));
        }
        let signal = Signal::try_from(i32::try_from(req.signal).unwrap_or(-1))
            .map_err(|_| Error::InvalidArgument(format!("invalid signal {}", req.signal)))?;
        kill(
            Pid::from_raw(i32::try_from(p.pid).unwrap_or(i32::MAX)),
            signal,
        )
        .map_err(|e| match e {
            nix::Error::ESRCH => Error::NotFound {
                what: "process already finished: process".into(),
            },
            e => Error::io(format!("signalling exec {:?}", req.exec_id), e.into()),
        })
    }

    fn do_exec(&self, req: &ExecProcessRequest) -> Result<()> {
        if req.exec_id.is_empty() {
            return Err(Error::InvalidArgument("exec id is empty".into()));
        }
        let spec = req.spec.value.clone();
        if serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&spec).is_err() {
            return Err(Error::InvalidArgument(format!(
                "exec {:?}: the process spec is not an OCI Process JSON object",
                req.exec_id
            )));
        }
        let mut table = self.lock();
        let c = Self::container_mut(&mut table, &req.id)?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(Error::AlreadyExists {
                what: format!("exec {:?} of container {:?}", req.exec_id, req.id),
            });
        }
        if !c.init.state.is_alive() {
            return Err(Error::FailedPrecondition(format!(
                "container {:?} is not running",
                req.id
            )));
        }
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        c.execs.insert(
            req.exec_id.clone(),
            Process::new(&req.exec_id, 0, stdio, spec),
        );
        self.events.publish(&TaskExecAdded {
            container_id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        });
        Ok(())
    }

    fn do_wait(&self, req: &WaitRequest) -> Result<WaitResponse> {
        let mut table = self.lock();
        loop {
            let c = Self::container(&table, &req.id)?;
            if let Some(exited) = c.process(&req.exec_id)?.state.exited() {
                return Ok(WaitResponse {
                    exit_status: exited.status,
                    exited_at: MessageField::some(timestamp(exited.at)),
                    ..Default::default()
                });
            }
            table = self
                .changed
                .wait(table)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn do_state(&self, req: &StateRequest) -> Result<StateResponse> {
        let table = self.lock();
        let c = Self::container(&table, &req.id)?;
        let p = c.process(&req.exec_id)?;
        let exited = p.state.exited();
        Ok(StateResponse {
            id: c.id.clone(),
            bundle: c.bundle.display().to_string(),
            pid: p.pid,
            status: p.state.api().into(),
            stdin: p.stdio.stdin.clone(),
            stdout: p.stdio.stdout.clone(),
            stderr: p.stdio.stderr.clone(),
            terminal: p.stdio.terminal,
            exit_status: exited.map_or(0, |e| e.status),
            exited_at: exited.map_or(MessageField::none(), |e| {
                MessageField::some(timestamp(e.at))
            }),
            exec_id: req.exec_id.clone(),
            ..Default::default()
        })
    }
}

impl Sink for Service {
    fn try_apply(&self, exits: &mut Vec<Exit>) -> Applied {
        let mut table = match self.table.try_lock() {
            Ok(table) => table,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Applied::Busy,
        };
        for exit in exits.drain(..) {
            self.apply_exit(&mut table, exit);
        }
        let next = self.expire_pending(&mut table, Instant::now());
        drop(table);
        // Waiters re-check their process; a spurious wake-up costs them one look.
        self.changed.notify_all();
        next
    }

    fn oom(&self, id: &str) {
        self.events.publish(&TaskOOM {
            container_id: id.to_string(),
            ..Default::default()
        });
    }
}

/// `e` with its sources, for logs.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn delete_response(p: &Process) -> DeleteResponse {
    let exited = p.state.exited().unwrap_or(Exited {
        status: 0,
        at: SystemTime::now(),
    });
    DeleteResponse {
        pid: p.pid,
        exit_status: exited.status,
        exited_at: MessageField::some(timestamp(exited.at)),
        ..Default::default()
    }
}

/// Runtime kill errors by runc's strings (`[CD]/cmd/containerd-shim-runc-v2/process/utils.go`).
fn classify_kill(e: Error) -> Error {
    match &e {
        Error::Runtime { message, .. }
            if [
                "container not running",
                "process already finished",
                "no such process",
            ]
            .iter()
            .any(|s| message.contains(s)) =>
        {
            Error::NotFound {
                what: "process already finished: process".into(),
            }
        }
        Error::Runtime { message, .. } if message.contains("does not exist") => Error::NotFound {
            what: "no such container: container".into(),
        },
        _ => e,
    }
}

fn read_pid(path: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    text.trim().parse().map_err(|_| Error::Runtime {
        op: "reading the pid file".into(),
        message: format!("{} holds {text:?}, not a pid", path.display()),
    })
}

/// The runtime choice from Create's options: `containerd.runc.v1.Options` (BinaryName, Root),
/// or CRI/ctr's `runtimeoptions.v1.Options` pointing at a TOML file (or body) with the same
/// keys. No options means the defaults.
pub fn runtime_options(any: Option<&Any>) -> Result<RuntimeOptions> {
    let Some(any) = any else {
        return Ok(RuntimeOptions::default());
    };
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    match name {
        "" => Ok(RuntimeOptions::default()),
        "containerd.runc.v1.Options" => {
            let o = RuncOptions::parse_from_bytes(&any.value).map_err(|e| {
                Error::InvalidArgument(format!("decoding containerd.runc.v1.Options: {e}"))
            })?;
            Ok(RuntimeOptions {
                binary_name: o.binary_name,
                root: o.root,
            })
        }
        "runtimeoptions.v1.Options" => {
            let (config_path, config_body) = decode_runtimeoptions(&any.value)?;
            let body = if config_body.is_empty() && !config_path.is_empty() {
                std::fs::read_to_string(&config_path).map_err(|e| {
                    Error::InvalidArgument(format!("reading runtime config {config_path}: {e}"))
                })?
            } else {
                config_body
            };
            Ok(parse_toml_options(&body))
        }
        other => Err(Error::InvalidArgument(format!(
            "unsupported runtime options type {other:?}"
        ))),
    }
}

/// `runtimeoptions.v1.Options{string type_url = 1; string config_path = 2; string
/// config_body = 3}` (containerd's `pkg/runtimeoptions/v1/api.proto`; not in
/// containerd-shim-protos), decoded by hand.
fn decode_runtimeoptions(bytes: &[u8]) -> Result<(String, String)> {
    use containerd_shim_protos::protobuf::CodedInputStream;
    let bad = |e: containerd_shim_protos::protobuf::Error| {
        Error::InvalidArgument(format!("decoding runtimeoptions.v1.Options: {e}"))
    };
    let mut input = CodedInputStream::from_bytes(bytes);
    let (mut path, mut body) = (String::new(), String::new());
    while let Some(tag) = input.read_raw_tag_or_eof().map_err(bad)? {
        match (tag >> 3, tag & 7) {
            (2, 2) => path = input.read_string().map_err(bad)?,
            (3, 2) => body = input.read_string().map_err(bad)?,
            (_, wire) => {
                let wire = containerd_shim_protos::protobuf::rt::WireType::new(wire)
                    .ok_or_else(|| Error::InvalidArgument("bad wire type".into()))?;
                input.skip_field(wire).map_err(bad)?;
            }
        }
    }
    Ok((path, body))
}

/// `BinaryName = "runc"` / `Root = "/x"` lines of a runtime options TOML (flat keys only).
fn parse_toml_options(body: &str) -> RuntimeOptions {
    let mut o = RuntimeOptions::default();
    for line in body.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value
            .trim()
            .trim_matches(|c| c == '"' || c == '\'')
            .to_string();
        match key.trim() {
            "BinaryName" | "binary_name" => o.binary_name = value,
            "Root" | "root" => o.root = value,
            _ => {}
        }
    }
    o
}

impl Task for Service {
    fn state(&self, _: &ttrpc::TtrpcContext, req: StateRequest) -> ttrpc::Result<StateResponse> {
        Ok(self.do_state(&req)?)
    }

    fn create(
        &self,
        _: &ttrpc::TtrpcContext,
        req: CreateTaskRequest,
    ) -> ttrpc::Result<CreateTaskResponse> {
        let span = tracing::info_span!("create", id = %req.id);
        let _enter = span.enter();
        self.do_create(&req).map_err(|e| {
            tracing::error!("{e}");
            e.into()
        })
    }

    fn start(&self, _: &ttrpc::TtrpcContext, req: StartRequest) -> ttrpc::Result<StartResponse> {
        let span = tracing::info_span!("start", id = %req.id, exec = %req.exec_id);
        let _enter = span.enter();
        Ok(self.do_start(&req)?)
    }

    fn delete(&self, _: &ttrpc::TtrpcContext, req: DeleteRequest) -> ttrpc::Result<DeleteResponse> {
        let span = tracing::info_span!("delete", id = %req.id, exec = %req.exec_id);
        let _enter = span.enter();
        Ok(self.do_delete(&req)?)
    }

    fn pids(&self, _: &ttrpc::TtrpcContext, req: PidsRequest) -> ttrpc::Result<PidsResponse> {
        Ok(self.do_pids(&req)?)
    }

    fn pause(&self, _: &ttrpc::TtrpcContext, req: PauseRequest) -> ttrpc::Result<Empty> {
        self.do_pause(&req.id, true)?;
        Ok(Empty::new())
    }

    fn resume(&self, _: &ttrpc::TtrpcContext, req: ResumeRequest) -> ttrpc::Result<Empty> {
        self.do_pause(&req.id, false)?;
        Ok(Empty::new())
    }

    fn checkpoint(
        &self,
        _: &ttrpc::TtrpcContext,
        _: containerd_shim_protos::api::CheckpointTaskRequest,
    ) -> ttrpc::Result<Empty> {
        Err(Error::NotImplemented("checkpoint").into())
    }

    fn kill(&self, _: &ttrpc::TtrpcContext, req: KillRequest) -> ttrpc::Result<Empty> {
        self.do_kill(&req)?;
        Ok(Empty::new())
    }

    fn exec(&self, _: &ttrpc::TtrpcContext, req: ExecProcessRequest) -> ttrpc::Result<Empty> {
        self.do_exec(&req)?;
        Ok(Empty::new())
    }

    fn resize_pty(&self, _: &ttrpc::TtrpcContext, req: ResizePtyRequest) -> ttrpc::Result<Empty> {
        let table = self.lock();
        let c = Self::container(&table, &req.id)?;
        c.process(&req.exec_id)?.io.resize(req.width, req.height)?;
        Ok(Empty::new())
    }

    fn close_io(&self, _: &ttrpc::TtrpcContext, req: CloseIORequest) -> ttrpc::Result<Empty> {
        let table = self.lock();
        let c = Self::container(&table, &req.id)?;
        let p = c.process(&req.exec_id)?;
        if req.stdin {
            p.io.close_stdin();
        }
        Ok(Empty::new())
    }

    fn update(&self, _: &ttrpc::TtrpcContext, req: UpdateTaskRequest) -> ttrpc::Result<Empty> {
        let runtime = {
            let table = self.lock();
            Self::container(&table, &req.id)?.runtime.clone()
        };
        runtime.update(&req.id, &req.resources.value)?;
        Ok(Empty::new())
    }

    fn wait(&self, _: &ttrpc::TtrpcContext, req: WaitRequest) -> ttrpc::Result<WaitResponse> {
        Ok(self.do_wait(&req)?)
    }

    fn stats(&self, _: &ttrpc::TtrpcContext, req: StatsRequest) -> ttrpc::Result<StatsResponse> {
        let cgroup = {
            let table = self.lock();
            Self::container(&table, &req.id)?.cgroup.clone()
        };
        let cgroup = cgroup.ok_or_else(|| Error::NotFound {
            what: format!("cgroup of container {:?}", req.id),
        })?;
        Ok(StatsResponse {
            stats: MessageField::some(cgroup.stats()?),
            ..Default::default()
        })
    }

    fn connect(
        &self,
        _: &ttrpc::TtrpcContext,
        req: ConnectRequest,
    ) -> ttrpc::Result<ConnectResponse> {
        let table = self.lock();
        let task_pid = table.get(&req.id).map_or(0, |c| c.init.pid);
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            version: VERSION.to_string(),
            ..Default::default()
        })
    }

    fn shutdown(&self, _: &ttrpc::TtrpcContext, req: ShutdownRequest) -> ttrpc::Result<Empty> {
        // A grouped shim serves other containers: exit only when none is left.
        if req.now || self.lock().is_empty() {
            self.reaper.stop();
        }
        Ok(Empty::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Waiter;

    /// Above the kernel's PID_MAX_LIMIT (2^22): no process has these, so SIGKILL never lands,
    /// as with an exec stuck in uninterruptible sleep.
    const INIT_PID: u32 = 4_194_401;
    const EXEC_PID: u32 = 4_194_402;

    /// A service with container `c1`: a running init and a running exec `e1`.
    fn service_with_exec() -> (
        Arc<Service>,
        std::sync::mpsc::Receiver<crate::events::Queued>,
    ) {
        let (events, rx) = Publisher::capture();
        let service = Service::new("ns", Reaper::new().expect("reaper"), events);
        let bundle = std::env::temp_dir();
        let mut init = Process::new("", INIT_PID, StdioPaths::default(), Vec::new());
        init.state = State::Running;
        let mut exec = Process::new("e1", EXEC_PID, StdioPaths::default(), Vec::new());
        exec.state = State::Running;
        service.lock().insert(
            "c1".into(),
            Container {
                id: "c1".into(),
                bundle: bundle.clone(),
                runtime: Runtime::new(&RuntimeOptions::default(), "ns", &bundle, Waiter::Direct),
                init,
                execs: [("e1".to_string(), exec)].into_iter().collect(),
                rootfs_mounted: false,
                cgroup: None,
                pending_exit: None,
            },
        );
        (service, rx)
    }

    fn exit(pid: u32, status: u32) -> Exit {
        Exit {
            pid: i32::try_from(pid).expect("pid"),
            status,
            at: SystemTime::now(),
        }
    }

    /// The next event, as (topic, TaskExit's id and status).
    fn next_exit(rx: &std::sync::mpsc::Receiver<crate::events::Queued>) -> (String, u32) {
        let q = rx.try_recv().expect("an event is queued");
        assert_eq!(q.topic, "/tasks/exit");
        let e = TaskExit::parse_from_bytes(&q.event.value).expect("a TaskExit");
        (e.id, e.exit_status)
    }

    #[test]
    fn init_exit_waits_for_its_execs_then_follows_them() {
        let (service, rx) = service_with_exec();
        let applied = service.try_apply(&mut vec![exit(INIT_PID, 3)]);
        assert!(
            matches!(applied, Applied::Again(d) if d <= EXEC_EXIT_GRACE),
            "{applied:?}"
        );
        assert!(rx.try_recv().is_err(), "init's exit waits for e1's");
        assert_eq!(service.lock()["c1"].init.state, State::Running);
        assert_eq!(
            service.try_apply(&mut vec![exit(EXEC_PID, 137)]),
            Applied::Idle
        );
        assert_eq!(next_exit(&rx), ("e1".to_string(), 137));
        assert_eq!(next_exit(&rx), ("c1".to_string(), 3));
        assert!(service.lock()["c1"].init.state.exited().is_some());
    }

    #[test]
    fn init_exit_goes_out_when_an_exec_outlives_sigkill() {
        let (service, rx) = service_with_exec();
        let started = Instant::now();
        assert!(matches!(
            service.try_apply(&mut vec![exit(INIT_PID, 3)]),
            Applied::Again(_)
        ));
        // What the loop does: call again when told, until nothing is pending.
        let waiter = {
            let service = service.clone();
            std::thread::spawn(move || {
                service.do_wait(&WaitRequest {
                    id: "c1".into(),
                    ..Default::default()
                })
            })
        };
        loop {
            match service.try_apply(&mut Vec::new()) {
                Applied::Again(after) => std::thread::sleep(after),
                Applied::Idle => break,
                Applied::Busy => std::thread::sleep(crate::reaper::RETRY),
            }
        }
        let waited = started.elapsed();
        assert!(
            waited >= EXEC_EXIT_GRACE && waited < EXEC_EXIT_GRACE + Duration::from_secs(1),
            "{waited:?}"
        );
        assert_eq!(next_exit(&rx), ("c1".to_string(), 3));
        let response = waiter.join().expect("wait thread").expect("Wait answers");
        assert_eq!(response.exit_status, 3);
        // The exec is still running as far as the shim knows; its exit is published if it comes.
        assert!(service.lock()["c1"].execs["e1"].state.is_alive());
        assert_eq!(
            service.try_apply(&mut vec![exit(EXEC_PID, 137)]),
            Applied::Idle
        );
        assert_eq!(next_exit(&rx), ("e1".to_string(), 137));
    }

    #[test]
    fn runc_options_give_binary_and_root() {
        let o = RuncOptions {
            binary_name: "runc".into(),
            root: "/r".into(),
            ..Default::default()
        };
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = o.write_to_bytes().expect("encode");
        let r = runtime_options(Some(&any)).expect("decodes");
        assert_eq!(r.binary(), "runc");
        assert_eq!(r.root, "/r");
    }

    #[test]
    fn runtimeoptions_read_the_toml_body() {
        // type_url = 1, config_body = 3 (hand-encoded: tag, length, bytes).
        let body = "BinaryName = \"crun\"\nRoot = \"/x\"\n";
        let mut bytes = vec![
            0x0a,
            3,
            b'a',
            b'b',
            b'c',
            0x1a,
            u8::try_from(body.len()).expect("short"),
        ];
        bytes.extend_from_slice(body.as_bytes());
        let mut any = Any::new();
        any.type_url = "runtimeoptions.v1.Options".into();
        any.value = bytes;
        let r = runtime_options(Some(&any)).expect("decodes");
        assert_eq!(r.binary(), "crun");
        assert_eq!(r.root, "/x");
    }

    #[test]
    fn unknown_options_are_invalid() {
        let mut any = Any::new();
        any.type_url = "example.Other".into();
        assert!(matches!(
            runtime_options(Some(&any)),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(runtime_options(None).expect("none").binary(), "skiff");
    }

    #[test]
    fn kill_errors_are_classified_like_the_go_shim() {
        let rt = |m: &str| Error::Runtime {
            op: "skiff kill".into(),
            message: m.into(),
        };
        assert!(matches!(
            classify_kill(rt("container not running")),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            classify_kill(rt("container does not exist")),
            Error::NotFound { .. }
        ));
        assert!(matches!(classify_kill(rt("other")), Error::Runtime { .. }));
    }
}
