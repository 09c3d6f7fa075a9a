//! `exec`: run another process in a running container, with the container's namespaces, cgroup
//! and security settings unless the flags override them (runc's `exec`).

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType};
use oci_spec::runtime::{Capabilities, Capability, LinuxNamespace, Process, Spec};

use super::create::absolute;
use super::run::{FORWARDED, Relay, wait_forwarding};
use super::{Error, sys_err};
use crate::process::{ExecConfig, ProcessError, spawn_exec};
use crate::state::{self as st, StateDir, Status};
use crate::{namespaces, seccomp};

/// The flags of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub root: PathBuf,
    pub id: String,
    /// `--process`: a JSON runtime-spec `process` to run (the other process flags are then
    /// ignored, as in runc).
    pub process: Option<PathBuf>,
    /// The command and its arguments (without `--process`).
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<String>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: i32,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
    pub ignore_paused: bool,
    /// `--pidfd-socket`: receives a pidfd of the process once it exists.
    pub pidfd_socket: Option<PathBuf>,
}

/// Run the process; returns its exit code in the foreground, 0 with `detach`.
pub fn exec(opts: &ExecOptions) -> Result<i32, Error> {
    let dir = StateDir::open(&opts.root, &opts.id)?;
    let state = dir.load()?;
    match dir.status(&state) {
        Status::Stopped => return Err(Error::ExecStopped),
        Status::Paused if !opts.ignore_paused => return Err(Error::ExecPaused),
        Status::Creating | Status::Created | Status::Running | Status::Paused => {}
    }
    if opts.preserve_fds < 0 {
        return Err(Error::PreserveFds(opts.preserve_fds));
    }
    let process = match &opts.process {
        Some(path) => load_process(path)?,
        None => process_from_flags(&state.config, opts)?,
    };
    let terminal = process.terminal().unwrap_or(false);
    if !terminal && opts.console_socket.is_some() {
        return Err(Error::ConsoleWithoutTerminal);
    }
    if terminal && opts.detach && opts.console_socket.is_none() {
        return Err(Error::DetachedTerminal);
    }
    let spec = exec_spec(&state.config, process, state.pid)?;
    let plan = namespaces::plan(&spec)?;
    let compiled = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => Some(seccomp::compile(
            profile,
            seccomp::Arch::native().ok_or(Error::SeccompArch)?,
        )?),
        None => None,
    };

    // The console: the caller's socket, or in the foreground a socketpair the runtime relays.
    let (console, relay_end) = match (&opts.console_socket, terminal) {
        (Some(path), _) => (
            Some(OwnedFd::from(UnixStream::connect(path).map_err(
                |source| Error::ConsoleSocket {
                    path: path.clone(),
                    source,
                },
            )?)),
            None,
        ),
        (None, true) => {
            let (ours, theirs) = socket::socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(sys_err("create console socketpair"))?;
            (Some(theirs), Some(ours))
        }
        (None, false) => (None, None),
    };

    // In the foreground, signals are blocked before the child exists so none is lost; the child
    // unblocks them before it execs.
    let mut mask = SigSet::empty();
    if !opts.detach {
        for s in FORWARDED {
            mask.add(*s);
        }
        mask.add(Signal::SIGCHLD);
        mask.thread_block().map_err(sys_err("block signals"))?;
    }

    let cfg = ExecConfig {
        spec: &spec,
        preserve_fds: opts.preserve_fds,
        seccomp: compiled.as_ref(),
        console,
    };
    let ready = spawn_exec(cfg, &plan, |pid| join_cgroup(&state, pid))?;
    let pid = ready.pid;
    let relay = match relay_end {
        Some(sock) => Some(Relay::start(sock)?),
        None => None,
    };
    let written = match &opts.pid_file {
        Some(path) => st::write_atomic(&absolute(path), pid.to_string().as_bytes()),
        None => Ok(()),
    };
    if let Err(e) = written
        .map_err(Error::from)
        .and_then(|()| match &opts.pidfd_socket {
            Some(socket) => Ok(crate::pidfd::send(socket, pid)?),
            None => Ok(()),
        })
        .and_then(|()| Ok(ready.detach()?))
    {
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(e);
    }
    if opts.detach {
        return Ok(0);
    }
    let code = wait_forwarding(pid, &mask, relay.as_ref())?;
    if let Some(relay) = relay {
        relay.finish();
    }
    Ok(code)
}

/// The exec'd process joins the container's cgroup before it may run any code of the user's.
fn join_cgroup(state: &st::State, pid: nix::unistd::Pid) -> Result<(), ProcessError> {
    let Some(location) = &state.cgroup else {
        return Ok(());
    };
    let cgroup = crate::cgroups::Manager::open(location)?;
    Ok(cgroup.add_pid(pid.as_raw())?)
}

fn load_process(path: &Path) -> Result<Process, Error> {
    let text = std::fs::read(path).map_err(super::io_err("read process file", path))?;
    serde_json::from_slice(&text).map_err(|e| Error::ProcessFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The container's process with the flags applied, as runc's `exec` builds it: the given args,
/// cwd, env appended (a later value of a name wins), a terminal only with `--tty`, the user,
/// additional groups, no_new_privs, LSM labels, and `--cap` added to the bounding, effective and
/// permitted sets (and to inheritable and ambient when the container has an inheritable set).
fn process_from_flags(config: &Spec, opts: &ExecOptions) -> Result<Process, Error> {
    let mut p = config
        .process()
        .clone()
        .ok_or(Error::Process(ProcessError::NoProcess))?;
    if opts.args.is_empty() {
        return Err(Error::ExecNoArgs);
    }
    p.set_args(Some(opts.args.clone()));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for e in &opts.env {
        let name = e.split('=').next().unwrap_or_default();
        env.retain(|old| old.split('=').next() != Some(name));
        env.push(e.clone());
    }
    p.set_env(Some(env));
    p.set_terminal(Some(opts.tty));
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &opts.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &opts.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    let mut user = p.user().clone();
    if let Some(u) = &opts.user {
        let (uid, gid) = parse_user(u)?;
        user.set_uid(uid);
        if let Some(gid) = gid {
            user.set_gid(gid);
        }
    }
    if !opts.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&opts.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !opts.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let added: Capabilities = opts
            .caps
            .iter()
            .map(|c| parse_cap(c))
            .collect::<Result<_, _>>()?;
        let grow = |set: &Option<Capabilities>| {
            let mut s = set.clone().unwrap_or_default();
            s.extend(added.iter().copied());
            Some(s)
        };
        caps.set_bounding(grow(caps.bounding()));
        caps.set_effective(grow(caps.effective()));
        caps.set_permitted(grow(caps.permitted()));
        if caps.inheritable().is_some() {
            caps.set_inheritable(grow(caps.inheritable()));
            caps.set_ambient(grow(caps.ambient()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}

fn parse_user(u: &str) -> Result<(u32, Option<u32>), Error> {
    let bad = || Error::ExecUser(u.to_string());
    let (uid, gid) = match u.split_once(':') {
        Some((uid, gid)) => (uid, Some(gid)),
        None => (u, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

fn parse_cap(c: &str) -> Result<Capability, Error> {
    let name = c.to_ascii_uppercase();
    let name = if name.starts_with("CAP_") {
        name
    } else {
        format!("CAP_{name}")
    };
    serde_json::from_value(serde_json::Value::String(name.clone()))
        .map_err(|_| Error::ExecCap(c.to_string()))
}

/// The container's configuration with `process` in place of the init's and every namespace of
/// the container pointing at the init's (`/proc/<pid>/ns/<type>`).
fn exec_spec(config: &Spec, process: Process, init_pid: i32) -> Result<Spec, Error> {
    if process.args().as_ref().is_none_or(Vec::is_empty) {
        return Err(Error::ExecNoArgs);
    }
    let mut spec = config.clone();
    spec.set_process(Some(process));
    if let Some(linux) = spec.linux_mut() {
        let joined: Vec<LinuxNamespace> = linux
            .namespaces()
            .iter()
            .flatten()
            .map(|ns| {
                let mut ns = ns.clone();
                ns.set_path(Some(PathBuf::from(format!(
                    "/proc/{init_pid}/ns/{}",
                    namespaces::proc_name(ns.typ())
                ))));
                ns
            })
            .collect();
        linux.set_namespaces(Some(joined));
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Spec {
        serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {
                "args": ["sh"], "cwd": "/", "env": ["PATH=/bin", "A=1"],
                "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
            },
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/var/run/netns/x"}]}
        }))
        .expect("spec")
    }

    #[test]
    fn flags_override_the_container_process() {
        let opts = ExecOptions {
            args: vec!["id".into()],
            cwd: Some("/tmp".into()),
            env: vec!["A=2".into(), "B=3".into()],
            user: Some("1000:1001".into()),
            additional_gids: vec![5],
            caps: vec!["CAP_CHOWN".into(), "net_raw".into()],
            no_new_privs: true,
            ..Default::default()
        };
        let p = process_from_flags(&config(), &opts).expect("process");
        assert_eq!(p.args().as_deref(), Some(&["id".to_string()][..]));
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!(
            p.env().as_deref(),
            Some(&["PATH=/bin".into(), "A=2".into(), "B=3".into()][..])
        );
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1001));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5][..]));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.terminal(), Some(false));
        let caps = p.capabilities().as_ref().expect("caps");
        for set in [caps.bounding(), caps.effective(), caps.permitted()] {
            let set = set.as_ref().expect("set");
            assert!(set.contains(&Capability::Chown) && set.contains(&Capability::NetRaw));
            assert!(set.contains(&Capability::Kill));
        }
        // Without an inheritable set in the container, --cap does not touch ambient.
        assert!(caps.ambient().is_none() && caps.inheritable().is_none());
    }

    #[test]
    fn bad_flags_are_named() {
        let with = |f: &dyn Fn(&mut ExecOptions)| {
            let mut o = ExecOptions {
                args: vec!["true".into()],
                ..Default::default()
            };
            f(&mut o);
            process_from_flags(&config(), &o)
                .expect_err("must fail")
                .to_string()
        };
        assert!(with(&|o| o.user = Some("bob".into())).contains("\"bob\""));
        assert!(with(&|o| o.caps = vec!["CAP_NOPE".into()]).contains("CAP_NOPE"));
        assert!(with(&|o| o.args.clear()).contains("args"));
    }

    #[test]
    fn every_namespace_points_at_the_init() {
        let p = process_from_flags(
            &config(),
            &ExecOptions {
                args: vec!["true".into()],
                ..Default::default()
            },
        )
        .expect("process");
        let spec = exec_spec(&config(), p, 42).expect("spec");
        let paths: Vec<String> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .expect("namespaces")
            .iter()
            .map(|ns| ns.path().as_ref().expect("path").display().to_string())
            .collect();
        assert_eq!(
            paths,
            ["/proc/42/ns/pid", "/proc/42/ns/mnt", "/proc/42/ns/net"]
        );
    }
}
