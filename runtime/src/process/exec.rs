//! A process started in a running container (`skiff exec`).
//!
//! ```text
//!  runtime (skiff exec)                          child
//!  open /proc/<init>/ns/*; setns pid/time
//!  "for children"; fork ─────────────────────▶  not dumpable; pdeathsig
//!  add the child to the container's cgroup       setns user (then become root), ipc, uts,
//!                                                net, mount, cgroup (NAMESPACE_ORDER)
//!                                                LSM exec labels; terminal, rlimits, NNP,
//!                                                seccomp, user + caps, cwd; the executable
//!  pid file                   ◀── Ready ──────
//!                             ── Detach ─────▶  clear pdeathsig; execve
//! ```
//! The child is placed in the container's cgroup by the runtime before it is told to exec, so
//! no code of the user's runs outside the container's limits.

use std::io::Write;
use std::os::fd::OwnedFd;

use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};

use super::channel::{Channel, Message};
use super::init::{self, errno, expect, io, set_pdeathsig};
use super::{ProcessError, ReadyInit};
use crate::namespaces::Plan;

/// What the exec'd process needs from the caller.
#[derive(Debug)]
pub struct ExecConfig<'a> {
    /// The container's configuration, with the process to run in place of the init's and its
    /// namespaces pointing at the init's (`/proc/<pid>/ns/<type>`).
    pub spec: &'a Spec,
    pub preserve_fds: i32,
    pub seccomp: Option<&'a crate::seccomp::Compiled>,
    /// Connected console socket, when the process has a terminal.
    pub console: Option<OwnedFd>,
}

/// Fork the process into the container's namespaces and drive it until it is about to exec.
/// `placed` runs in the runtime once the child exists (it joins the cgroup); on any error the
/// child is killed and reaped. The returned handle's `detach` lets the child exec.
pub fn spawn_exec(
    cfg: ExecConfig<'_>,
    plan: &Plan,
    placed: impl FnOnce(Pid) -> Result<(), ProcessError>,
) -> Result<ReadyInit, ProcessError> {
    let (parent, child) = Channel::pair().map_err(|source| ProcessError::Sys {
        op: "create exec channel",
        source,
    })?;
    let Some(pid) = super::fork_into(cfg.spec, plan)? else {
        drop(parent);
        run(&cfg, plan, child);
    };
    drop(child);
    drop(cfg.console);
    let result = placed(pid).and_then(|()| {
        match parent.recv().map_err(|source| ProcessError::Sys {
            op: "receive from exec child",
            source,
        })? {
            Some(Message::Ready) => Ok(()),
            Some(Message::Failed(msg)) => Err(ProcessError::ExecFailed(msg)),
            Some(m) => Err(ProcessError::Protocol(format!(
                "unexpected {m:?} from exec child"
            ))),
            None => Err(ProcessError::InitDied(String::new())),
        }
    });
    match result {
        Ok(()) => Ok(ReadyInit {
            pid,
            channel: parent,
        }),
        Err(e) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let status = nix::sys::wait::waitpid(pid, None);
            Err(match (e, status) {
                (ProcessError::InitDied(_), Ok(s)) => ProcessError::InitDied(super::describe(s)),
                (e, _) => e,
            })
        }
    }
}

/// The child: never returns.
fn run(cfg: &ExecConfig<'_>, plan: &Plan, channel: Channel) -> ! {
    let err = match setup(cfg, plan, &channel) {
        Ok(target) => {
            // Past this point the runtime only waits for us: errors go to our stderr too.
            init::exec_process(target, late_filter(cfg))
        }
        Err(e) => e,
    };
    let msg = init::chain(&err);
    if channel.send(&Message::Failed(msg.clone())).is_err() {
        let _ = writeln!(std::io::stderr(), "skiff exec: {msg}");
    }
    std::process::exit(255)
}

fn late_filter<'a>(cfg: &ExecConfig<'a>) -> Option<&'a crate::seccomp::Compiled> {
    let nnp = process(cfg.spec)
        .ok()
        .and_then(Process::no_new_privileges)
        .unwrap_or(false);
    cfg.seccomp.filter(|_| nnp)
}

fn process(spec: &Spec) -> Result<&Process, ProcessError> {
    spec.process().as_ref().ok_or(ProcessError::NoProcess)
}

fn setup(
    cfg: &ExecConfig<'_>,
    plan: &Plan,
    channel: &Channel,
) -> Result<init::Target, ProcessError> {
    let process = process(cfg.spec)?;
    // Not dumpable until execve (the channel must not be reachable through /proc/<pid>/fd from
    // the container), and dead with the runtime until it lets us go.
    nix::sys::prctl::set_dumpable(false).map_err(errno("clear dumpable"))?;
    set_pdeathsig()?;

    // Join the container's namespaces, user first (NAMESPACE_ORDER); joining the mount
    // namespace also moves our root and cwd to the container's root (setns(2)).
    let in_userns = init::join_namespaces(&plan.join_in_init)?;

    crate::lsm::set_exec_labels(process)?;
    let target = init::prepare_process(
        process,
        cfg.console.as_ref(),
        false,
        cfg.seccomp,
        in_userns,
        cfg.preserve_fds,
    )?;

    channel
        .send(&Message::Ready)
        .map_err(io("send to runtime"))?;
    expect(channel, Message::Detach)?;
    nix::sys::prctl::set_pdeathsig(None).map_err(errno("clear parent-death signal"))?;
    channel.shutdown().map_err(io("close exec channel"))?;
    Ok(target)
}
