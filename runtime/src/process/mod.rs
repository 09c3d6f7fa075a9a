//! Starting a container's init: the clone, the runtime ⇄ init protocol, and the init itself.
//!
//! ```text
//!  runtime (skiff create)                        init (cloned child, new namespaces)
//!  open namespace paths, console socket, fifo
//!  setns pid/time "for children"; unshare time
//!  create the cgroup, apply linux.resources
//!  clone(CLONE_NEW* …) ───────────────────────▶  pdeathsig; umask 0
//!  restore pid/time "for children"
//!  move the init into the cgroup
//!  write oom_score_adj
//!  write uid_map/gid_map ── MappingsWritten ──▶  setresuid(0) in the new user namespace
//!                        ── CgroupPlaced ────▶  unshare(CLONE_NEWCGROUP), if asked for
//!                                                setns(joined namespaces, NAMESPACE_ORDER)
//!                                                hostname; rootfs mounts, devices
//!  prestart + createRuntime hooks ◀── RunHooks
//!                              ── HooksDone ──▶  createContainer hooks; pivot_root
//!                                                console, rlimits, user, caps, cwd
//!                                                exe lookup; close_range(CLOEXEC)
//!  state.json, pid file        ◀── Ready ──────
//!                              ── Detach ─────▶  clear pdeathsig; block opening exec.fifo
//!  exit(0)                                       … `start` opens the fifo: startContainer
//!                                                hooks; execve(process.args)
//! ```
//! One clone, no re-exec of the runtime: the child is a copy-on-write copy of the runtime and
//! runs straight Rust code until `execve`. The runtime is single-threaded up to the clone.

mod channel;
mod exec;
mod init;
mod tty;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

pub use channel::{Channel, Message};
pub use exec::{ExecConfig, spawn_exec};

use crate::hooks::HookError;
use crate::namespaces::Plan;
use crate::rootfs::RootfsError;

/// Why the init could not be started or set up.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("process is required")]
    NoProcess,
    #[error("{op}")]
    Sys {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot join the {} namespace", crate::namespaces::type_name(*typ))]
    Setns {
        typ: LinuxNamespaceType,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {file} for pid {pid}")]
    IdMap {
        file: &'static str,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("linux.timeOffsets: cannot write the time namespace offsets")]
    TimeOffsets(#[source] std::io::Error),
    #[error("process.oomScoreAdj: cannot set {value}")]
    OomScoreAdj {
        value: i32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "process.rlimits[{typ}]: cannot set soft {soft}, hard {hard} (the runtime's hard limit is {host_hard})"
    )]
    Rlimit {
        typ: String,
        soft: u64,
        hard: u64,
        host_hard: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("process.user: cannot switch to {what} {id}")]
    User {
        what: &'static str,
        id: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("process.capabilities: {op}: {detail}")]
    Caps { op: &'static str, detail: String },
    #[error("process.cwd {cwd:?}: cannot chdir")]
    Cwd {
        cwd: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("process.cwd {cwd:?} is outside the container's root")]
    CwdOutsideRoot { cwd: PathBuf },
    #[error("exec: {0:?}: executable file not found in $PATH")]
    NotFound(String),
    #[error("exec: {path:?}: {reason}")]
    NotExecutable { path: String, reason: String },
    #[error("exec {path:?}")]
    Exec {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    #[error("process.terminal is true but no --console-socket was given")]
    NoConsoleSocket,
    #[error("refusing a fake device: {0}")]
    FakeDevice(String),
    #[error("init protocol: {0}")]
    Protocol(String),
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Lsm(#[from] crate::lsm::LsmError),
    #[error("container init failed: {0}")]
    Init(String),
    #[error("container init failed: {0}")]
    InitHook(String),
    #[error("exec failed: {0}")]
    ExecFailed(String),
    #[error("container init exited before it was ready ({0})")]
    InitDied(String),
}

/// What the init needs from the caller.
#[derive(Debug)]
pub struct InitConfig<'a> {
    pub id: &'a str,
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of joining a new one (runc's --no-new-keyring).
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// The compiled `linux.seccomp` filter, if any (compiled before the clone: the init only
    /// installs it).
    pub seccomp: Option<&'a crate::seccomp::Compiled>,
}

/// Descriptors handed to the init.
#[derive(Debug)]
pub struct InitHandles {
    /// O_PATH handle of the container's exec.fifo.
    pub fifo: OwnedFd,
    /// Connected console socket, when the process has a terminal.
    pub console: Option<OwnedFd>,
}

/// An init that reported `Ready`: set up and waiting for the caller to save the state.
#[derive(Debug)]
pub struct ReadyInit {
    pub pid: Pid,
    channel: Channel,
}

impl ReadyInit {
    /// Let the init detach from the runtime (clear its parent-death signal) and wait on the fifo.
    pub fn detach(self) -> Result<(), ProcessError> {
        self.channel
            .send(&Message::Detach)
            .map_err(|source| ProcessError::Sys {
                op: "send to init",
                source,
            })?;
        // The init closes its end (drops the channel) only after clearing the signal, so the
        // runtime may exit as soon as it sees EOF.
        match self.channel.recv() {
            Ok(None) => Ok(()),
            Ok(Some(Message::Failed(msg))) => Err(ProcessError::Init(msg)),
            Ok(Some(m)) => Err(ProcessError::Protocol(format!(
                "unexpected {m:?} after Detach"
            ))),
            Err(source) => Err(ProcessError::Sys {
                op: "receive from init",
                source,
            }),
        }
    }
}

/// Clone the init, drive it through its set-up, and return once it is ready.
///
/// `place` is called with the init's pid right after the clone, before the init is told anything
/// (it moves the init into the container's cgroup). `run_hooks` is called when the init asks for
/// the prestart and createRuntime hooks. On any error the init is killed and reaped before
/// returning.
pub fn spawn(
    cfg: &InitConfig<'_>,
    plan: &Plan,
    handles: InitHandles,
    place: impl FnOnce(Pid) -> Result<(), ProcessError>,
    mut run_hooks: impl FnMut(Pid) -> Result<(), HookError>,
) -> Result<ReadyInit, ProcessError> {
    let (parent, child) = Channel::pair().map_err(|source| ProcessError::Sys {
        op: "create init channel",
        source,
    })?;
    let (pid, parent) = clone_init(cfg, plan, parent, child, handles)?;
    let result = place(pid).and_then(|()| drive(cfg, plan, &parent, pid, &mut run_hooks));
    match result {
        Ok(()) => Ok(ReadyInit {
            pid,
            channel: parent,
        }),
        Err(e) => {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let status = waitpid(pid, None);
            // An init that died on its own explains itself better than "the channel closed".
            Err(match (e, status) {
                (ProcessError::InitDied(_), Ok(s)) => ProcessError::InitDied(describe(s)),
                (e, _) => e,
            })
        }
    }
}

fn describe(s: WaitStatus) -> String {
    match s {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

/// Clone the init; in the child this never returns.
fn clone_init(
    cfg: &InitConfig<'_>,
    plan: &Plan,
    parent: Channel,
    child: Channel,
    handles: InitHandles,
) -> Result<(Pid, Channel), ProcessError> {
    if plan.needs_intermediate() {
        return clone_via_intermediate(cfg, plan, parent, child, handles);
    }
    let Some(pid) = fork_into(cfg.spec, plan)? else {
        // The runtime's end must not stay open in the init, or the init would never see EOF
        // when the runtime dies.
        drop(parent);
        let fds = init::InitFds {
            channel: child,
            fifo: handles.fifo,
            console: handles.console,
        };
        init::run(cfg, plan, fds);
    };
    drop(child);
    Ok((pid, parent))
}

/// An existing user namespace joined together with new namespaces: the new ones must be created
/// by a process that is already in the joined user namespace, or they would belong to the
/// runtime's (user_namespaces(7): a namespace is owned by its creator's user namespace) and the
/// init would hold no capabilities over them. A new pid namespace also only applies to
/// children. So an intermediate process joins the user namespace, becomes root in it, and clones
/// the init with the new namespaces; it reports the init's pid and exits (runc's nsexec does the
/// same). The init is then not the runtime's child: it skips the parent-death signal, and a
/// foreground `run` sees it as subreaper.
fn clone_via_intermediate(
    cfg: &InitConfig<'_>,
    plan: &Plan,
    parent: Channel,
    child: Channel,
    handles: InitHandles,
) -> Result<(Pid, Channel), ProcessError> {
    let forked = crate::sys::clone_fork(0).map_err(|source| ProcessError::Sys {
        op: "fork intermediate process",
        source,
    })?;
    let Some(intermediate) = forked else {
        drop(parent);
        run_intermediate(cfg, plan, child, handles);
    };
    drop(child);
    let first = parent.recv();
    let _ = waitpid(intermediate, None);
    match first {
        Ok(Some(Message::InitPid(pid))) => Ok((Pid::from_raw(pid), parent)),
        Ok(Some(Message::Failed(msg))) => Err(ProcessError::Init(msg)),
        Ok(Some(m)) => Err(ProcessError::Protocol(format!(
            "unexpected {m:?} from the intermediate process"
        ))),
        Ok(None) => Err(ProcessError::InitDied(
            "the intermediate process died".into(),
        )),
        Err(source) => Err(ProcessError::Sys {
            op: "receive from intermediate process",
            source,
        }),
    }
}

/// The intermediate process: join the user namespace, clone the init, report its pid, exit.
fn run_intermediate(cfg: &InitConfig<'_>, plan: &Plan, child: Channel, handles: InitHandles) -> ! {
    let report = match child.try_clone() {
        Ok(c) => c,
        Err(_) => std::process::exit(1),
    };
    let result = (|| -> Result<Pid, ProcessError> {
        // Die with the runtime until the init exists.
        init::set_pdeathsig()?;
        let init_plan = plan
            .without_user_join()
            .map_err(|source| ProcessError::Sys {
                op: "duplicate namespace descriptors",
                source,
            })?;
        if let Some(user) = plan.join_in_init.first() {
            nix::sched::setns(user.file.as_fd(), CloneFlags::CLONE_NEWUSER).map_err(|e| {
                ProcessError::Setns {
                    typ: LinuxNamespaceType::User,
                    source: e.into(),
                }
            })?;
            init::become_root()?;
        }
        init::ORPHANED_INIT.store(true, std::sync::atomic::Ordering::Relaxed);
        match fork_into(cfg.spec, &init_plan)? {
            Some(pid) => Ok(pid),
            None => {
                let fds = init::InitFds {
                    channel: child,
                    fifo: handles.fifo,
                    console: handles.console,
                };
                init::run(cfg, &init_plan, fds)
            }
        }
    })();
    match result {
        Ok(pid) => {
            let _ = report.send(&Message::InitPid(pid.as_raw()));
            std::process::exit(0)
        }
        Err(e) => {
            let _ = report.send(&Message::Failed(init::chain(&e)));
            std::process::exit(1)
        }
    }
}

/// Fork with `plan`'s new namespaces, born inside the "for children" namespaces (pid, time),
/// which are entered around the clone and then left. Returns `None` in the child.
fn fork_into(spec: &Spec, plan: &Plan) -> Result<Option<Pid>, ProcessError> {
    let sys_err = |op| {
        move |e: nix::errno::Errno| ProcessError::Sys {
            op,
            source: e.into(),
        }
    };
    // Our own "for children" namespaces, to come back to after the clone: hooks the runtime runs
    // later belong to the runtime's namespaces, not the container's.
    let restore_pid = if plan
        .join_before_clone
        .iter()
        .any(|j| j.typ == LinuxNamespaceType::Pid)
    {
        Some(
            std::fs::File::open("/proc/self/ns/pid_for_children").map_err(|source| {
                ProcessError::Sys {
                    op: "open own pid namespace",
                    source,
                }
            })?,
        )
    } else {
        None
    };
    let changes_time = plan.new_time
        || plan
            .join_before_clone
            .iter()
            .any(|j| j.typ == LinuxNamespaceType::Time);
    let restore_time = if changes_time {
        Some(
            std::fs::File::open("/proc/self/ns/time_for_children").map_err(|source| {
                ProcessError::Sys {
                    op: "open own time namespace",
                    source,
                }
            })?,
        )
    } else {
        None
    };
    for join in &plan.join_before_clone {
        nix::sched::setns(join.file.as_fd(), crate::namespaces::clone_flag(join.typ)).map_err(
            |e| ProcessError::Setns {
                typ: join.typ,
                source: e.into(),
            },
        )?;
    }
    if plan.new_time {
        nix::sched::unshare(crate::namespaces::clone_flag(LinuxNamespaceType::Time))
            .map_err(sys_err("unshare time namespace"))?;
        write_time_offsets(spec)?;
    }

    let forked =
        crate::sys::clone_fork(plan.clone_flags.bits()).map_err(|source| ProcessError::Sys {
            op: "clone container process",
            source,
        })?;
    let Some(pid) = forked else {
        return Ok(None);
    };
    if let Some(ns) = restore_pid {
        nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(sys_err("return to own pid namespace"))?;
    }
    if let Some(ns) = restore_time {
        nix::sched::setns(
            ns.as_fd(),
            crate::namespaces::clone_flag(LinuxNamespaceType::Time),
        )
        .map_err(sys_err("return to own time namespace"))?;
    }
    Ok(Some(pid))
}

fn drive(
    cfg: &InitConfig<'_>,
    plan: &Plan,
    channel: &Channel,
    pid: Pid,
    run_hooks: &mut impl FnMut(Pid) -> Result<(), HookError>,
) -> Result<(), ProcessError> {
    if let Some(score) = cfg.spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), score.to_string()).map_err(
            |source| ProcessError::OomScoreAdj {
                value: score,
                source,
            },
        )?;
    }
    if plan.new_user {
        let linux = cfg.spec.linux().as_ref();
        let uid = linux
            .and_then(|l| l.uid_mappings().as_deref())
            .unwrap_or_default();
        let gid = linux
            .and_then(|l| l.gid_mappings().as_deref())
            .unwrap_or_default();
        write_id_map(pid, "uid_map", uid)?;
        write_id_map(pid, "gid_map", gid)?;
        channel
            .send(&Message::MappingsWritten)
            .map_err(|source| ProcessError::Sys {
                op: "send to init",
                source,
            })?;
    }
    if plan.waits_for_cgroup() {
        channel
            .send(&Message::CgroupPlaced)
            .map_err(|source| ProcessError::Sys {
                op: "send to init",
                source,
            })?;
    }
    loop {
        match channel.recv().map_err(|source| ProcessError::Sys {
            op: "receive from init",
            source,
        })? {
            Some(Message::RunHooks) => {
                run_hooks(pid)?;
                channel
                    .send(&Message::HooksDone)
                    .map_err(|source| ProcessError::Sys {
                        op: "send to init",
                        source,
                    })?;
            }
            Some(Message::Ready) => return Ok(()),
            Some(Message::Failed(msg)) => return Err(ProcessError::Init(msg)),
            Some(Message::HookFailed(msg)) => return Err(ProcessError::InitHook(msg)),
            Some(m) => {
                return Err(ProcessError::Protocol(format!(
                    "unexpected {m:?} from init"
                )));
            }
            None => return Err(ProcessError::InitDied(String::new())),
        }
    }
}

/// Write all mappings in one `write(2)`, as the kernel requires (user_namespaces(7)).
fn write_id_map(pid: Pid, file: &'static str, maps: &[LinuxIdMapping]) -> Result<(), ProcessError> {
    let mut content = String::new();
    for m in maps {
        content.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/{file}"))
        .map_err(|source| ProcessError::IdMap {
            file,
            pid: pid.as_raw(),
            source,
        })?;
    f.write_all(content.as_bytes())
        .map_err(|source| ProcessError::IdMap {
            file,
            pid: pid.as_raw(),
            source,
        })
}

/// `/proc/self/timens_offsets` of the time namespace just unshared (time_namespaces(7)); the
/// clock ids are CLOCK_MONOTONIC (1) and CLOCK_BOOTTIME (7).
fn write_time_offsets(spec: &Spec) -> Result<(), ProcessError> {
    let Some(offsets) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().as_ref())
    else {
        return Ok(());
    };
    let mut content = String::new();
    for (clock, off) in offsets {
        let id = if clock == "boottime" {
            libc::CLOCK_BOOTTIME
        } else {
            libc::CLOCK_MONOTONIC
        };
        content.push_str(&format!(
            "{id} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    std::fs::write("/proc/self/timens_offsets", content).map_err(ProcessError::TimeOffsets)
}

/// Wait for our child `pid` and turn its status into a shell-style exit code.
pub fn wait_exit_code(pid: Pid) -> Result<i32, ProcessError> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(ProcessError::Sys {
                    op: "wait for container init",
                    source: e.into(),
                });
            }
        }
    }
}
