//! The container's init, from the `clone` to the `execve` of the user's process.
//!
//! This code runs in the cloned child, which is single-threaded and owns a copy of the runtime's
//! memory, so it can use the parsed spec directly. Errors go back to the runtime over the channel
//! as text; the runtime reports them and cleans up.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::sched::setns;
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, LinuxNamespaceType, PosixRlimitType, Process};

use super::channel::{Channel, Message};
use super::{InitConfig, ProcessError};
use crate::hooks::{self, HookKind, HookState};
use crate::namespaces::{Join, Plan};
use crate::rootfs::{self, RootfsConfig};
use crate::state::Status;
use crate::sys;

/// Everything the init owns after the clone.
#[derive(Debug)]
pub struct InitFds {
    pub channel: Channel,
    /// O_PATH handle of exec.fifo, reopened for writing to wait for `start`.
    pub fifo: OwnedFd,
    /// Connected console socket, when the process has a terminal.
    pub console: Option<OwnedFd>,
}

/// Entry point of the cloned child. Never returns.
pub fn run(cfg: &InitConfig<'_>, plan: &Plan, fds: InitFds) -> ! {
    let err = match setup(cfg, plan, &fds) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let msg = chain(&err);
    let report = if matches!(err, ProcessError::Hook(_)) {
        Message::HookFailed(msg.clone())
    } else {
        Message::Failed(msg.clone())
    };
    if fds.channel.send(&report).is_err() {
        // After `start` the runtime is gone: the process's stderr is all that is left.
        let _ = writeln!(std::io::stderr(), "skiff init: {msg}");
    }
    std::process::exit(1)
}

/// Join existing namespaces in the given order (NAMESPACE_ORDER); after the user namespace,
/// become root in it. Returns whether a user namespace was joined.
pub(super) fn join_namespaces(joins: &[Join]) -> Result<bool, ProcessError> {
    let mut joined_user = false;
    for join in joins {
        setns(join.file.as_fd(), crate::namespaces::clone_flag(join.typ)).map_err(|e| {
            ProcessError::Setns {
                typ: join.typ,
                source: e.into(),
            }
        })?;
        if join.typ == LinuxNamespaceType::User {
            become_root()?;
            set_pdeathsig()?;
            joined_user = true;
        }
    }
    Ok(joined_user)
}

/// The error and its sources as one line, for the channel.
pub(super) fn chain(err: &ProcessError) -> String {
    let mut msg = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn setup(cfg: &InitConfig<'_>, plan: &Plan, fds: &InitFds) -> Result<Infallible, ProcessError> {
    let (joins, new_user) = (plan.join_in_init.as_slice(), plan.new_user);
    // In a user namespace other than the runtime's: new, joined here, or joined by the
    // intermediate process before the clone.
    let in_userns =
        new_user || plan.joined_user || joins.iter().any(|j| j.typ == LinuxNamespaceType::User);
    let spec = cfg.spec;
    let process = spec.process().as_ref().ok_or(ProcessError::NoProcess)?;
    let channel = &fds.channel;

    // 1. Not dumpable: until execve this process holds runtime descriptors (the fifo, the
    //    channel), and a process sharing our pid namespace must not reach them through
    //    /proc/<pid>/fd (ptrace access checks refuse non-dumpable targets). execve restores the
    //    flag for the container's program.
    nix::sys::prctl::set_dumpable(false).map_err(errno("clear dumpable"))?;
    // Die with the runtime while it still owns us: a killed `create` must not leave a
    // half-made container behind. Credential changes clear the setting (prctl(2)), so it is set
    // again after each of them; it is cleared on purpose once the state is on disk (step 14).
    // The channel's EOF covers the moments in between.
    set_pdeathsig()?;
    // Device nodes and mount points get exactly the modes the spec gives.
    umask(Mode::empty());

    // 2. In a new user namespace, wait until the runtime has written our id maps, then become
    //    root in it (we are unmapped until then).
    if new_user {
        expect(channel, Message::MappingsWritten)?;
        become_root()?;
        set_pdeathsig()?;
    }

    // 2b. A new cgroup namespace is unshared only once the runtime has moved us into the
    //     container's cgroup, so that the namespace's root is that cgroup; a `cgroup` mount
    //     without one binds our own cgroup directories, which also needs us placed first.
    if plan.waits_for_cgroup() {
        expect(channel, Message::CgroupPlaced)?;
    }
    if plan.new_cgroup {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(errno("unshare cgroup namespace"))?;
    }

    // 3. Join existing namespaces, user first (NAMESPACE_ORDER).
    join_namespaces(joins)?;

    // A session keyring of the container's own, so it does not share (and read) the caller's
    // keys; kernels without keyrings (ENOSYS) are fine, as in runc.
    if !cfg.no_new_keyring {
        let name = CString::new(format!("_ses.{}", cfg.id))
            .map_err(|_| ProcessError::Nul(cfg.id.to_string()))?;
        match sys::join_session_keyring(&name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Err(source) => {
                return Err(ProcessError::Sys {
                    op: "join a new session keyring",
                    source,
                });
            }
        }
    }

    // 4. Names in the (private) UTS namespace.
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(hostname).map_err(errno("sethostname"))?;
    }
    if let Some(domain) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        sys::set_domainname(domain).map_err(|e| ProcessError::Sys {
            op: "setdomainname",
            source: e,
        })?;
    }

    // 5. The root filesystem, up to (not including) pivot_root.
    let rcfg = RootfsConfig {
        spec,
        rootfs: cfg.rootfs,
        bundle: cfg.bundle,
        userns: in_userns,
    };
    let root = rootfs::prepare_root(&rcfg)?;
    rootfs::mount_all(&rcfg, &root)?;
    rootfs::setup_devices(&rcfg, &root)?;
    drop(root);

    // 6. prestart and createRuntime hooks run in the runtime's namespaces, by the runtime.
    let hooks = spec.hooks().as_ref();
    let has = |l: Option<&Vec<oci_spec::runtime::Hook>>| l.is_some_and(|l| !l.is_empty());
    if hooks.is_some_and(|h| has(h.prestart().as_ref()) || has(h.create_runtime().as_ref())) {
        channel
            .send(&Message::RunHooks)
            .map_err(io("send to runtime"))?;
        expect(channel, Message::HooksDone)?;
    }
    // 7. createContainer hooks: in the container's namespaces, before pivot_root.
    let hook_state = |status| {
        HookState::new(
            spec,
            cfg.id,
            cfg.bundle,
            status,
            Some(std::process::id() as i32),
        )
    };
    if let Some(list) = hooks.and_then(|h| h.create_container().as_deref()) {
        hooks::run(
            HookKind::CreateContainer,
            list,
            &hook_state(Status::Creating),
        )?;
    }

    // 8. Enter the rootfs.
    rootfs::pivot_root(cfg.rootfs, cfg.no_pivot)?;
    rootfs::finish(spec)?;
    rootfs::mask_paths(spec)?;
    // A procfs handle for reopening the fifo at step 15, made while we are still privileged and
    // unfiltered (pathrs mounts a private procfs instance when it can).
    let procfs = pathrs::procfs::ProcfsHandle::new().map_err(|e| ProcessError::Sys {
        op: "open procfs",
        source: std::io::Error::other(e.to_string()),
    })?;
    // LSM labels take effect at execve; written while /proc is the container's own.
    crate::lsm::set_exec_labels(process)?;

    // 9–13. Terminal, limits, privileges, cwd, what to exec, descriptors.
    let nnp = process.no_new_privileges().unwrap_or(false);
    let target = prepare_process(
        process,
        fds.console.as_ref(),
        true,
        cfg.seccomp,
        in_userns,
        cfg.preserve_fds,
    )?;

    // 14. Tell the runtime we are ready; once it has saved the state it tells us to detach.
    channel
        .send(&Message::Ready)
        .map_err(io("send to runtime"))?;
    expect(channel, Message::Detach)?;
    nix::sys::prctl::set_pdeathsig(None).map_err(errno("clear parent-death signal"))?;
    channel.shutdown().map_err(io("close init channel"))?;

    // 15. Wait for `start`: opening the fifo for writing blocks until `start` opens it for
    //     reading. The fifo is reopened from its O_PATH descriptor through a procfs handle of
    //     pathrs' own (a fresh procfs instance if the container has none mounted), so the init
    //     never holds a handle on the host's state directory.
    let fifo = reopen_fifo(&procfs, &fds.fifo)?;
    nix::unistd::write(&fifo, b"0").map_err(errno("write exec fifo"))?;

    // 16. startContainer hooks: after start, before the user's program.
    let started = match hooks.and_then(|h| h.start_container().as_deref()) {
        Some(list) => hooks::run(HookKind::StartContainer, list, &hook_state(Status::Created))
            .map_err(ProcessError::from),
        None => Ok(()),
    };

    // 17. The user's program. On success the fifo closes at execve (close-on-exec); on failure
    //     the error goes into the fifo, so that `start`, reading it, fails with it.
    let err = match started {
        Ok(()) => exec_process(target, cfg.seccomp.filter(|_| nnp)),
        Err(e) => e,
    };
    let _ = nix::unistd::write(&fifo, chain(&err).as_bytes());
    Err(err)
}

/// What `execve` needs, resolved inside the container.
pub(super) struct Target {
    arg0: String,
    exe: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

/// The steps an init and an `exec`'d process share once they are inside the container's
/// namespaces and root: terminal, limits, no_new_privs, seccomp (before the capability drop
/// without no_new_privs), user and capabilities, cwd, umask, the executable, and close-on-exec
/// for every descriptor above the preserved ones.
pub(super) fn prepare_process(
    process: &Process,
    console: Option<&OwnedFd>,
    bind_dev_console: bool,
    seccomp: Option<&crate::seccomp::Compiled>,
    in_userns: bool,
    preserve_fds: i32,
) -> Result<Target, ProcessError> {
    // The terminal, created inside the container so that it belongs to its devpts.
    if process.terminal().unwrap_or(false) {
        let console = console.ok_or(ProcessError::NoConsoleSocket)?;
        super::tty::setup_console(console.as_fd(), process, bind_dev_console)?;
    }

    // Limits are inherited by the process.
    set_rlimits(process)?;

    // No new privileges, then user and capabilities.
    let nnp = process.no_new_privileges().unwrap_or(false);
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(errno("set no_new_privs"))?;
    }
    // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN (seccomp(2)): do it while
    // we still hold it, before the user switch drops capabilities. Every later system call
    // (setresuid, capset, the fifo, execve) then runs under the filter, as in runc.
    if let Some(filter) = seccomp.filter(|_| !nnp) {
        crate::seccomp::install(filter)?;
    }
    let cwd = process.cwd();
    switch_user(process, in_userns)?;
    set_pdeathsig()?;
    nix::unistd::chdir(cwd.as_path()).map_err(|e| ProcessError::Cwd {
        cwd: cwd.clone(),
        source: e.into(),
    })?;
    // A cwd outside the root (a leaked host directory fd, CVE-2024-21626) makes getcwd fail
    // with ENOENT or report a path that is not absolute.
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => {}
        _ => return Err(ProcessError::CwdOutsideRoot { cwd: cwd.clone() }),
    }
    umask(Mode::from_bits_truncate(
        process.user().umask().unwrap_or(0o022) as libc::mode_t,
    ));

    // What to exec, resolved now so that a missing binary fails `create` (or `exec`) before
    // the caller is told the process exists.
    let env = environment(process);
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args.first().cloned().unwrap_or_default();
    let exe = lookup(&arg0, &env)?;
    let argv: Vec<CString> = args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?;

    // Every descriptor above the preserved ones is closed at exec (CVE-2024-21626: no host fd
    // may reach the container's process).
    sys::cloexec_from(3 + preserve_fds).map_err(|e| ProcessError::Sys {
        op: "close_range",
        source: e,
    })?;
    Ok(Target {
        arg0,
        exe,
        argv,
        envp,
    })
}

/// Reset signal dispositions, install a no_new_privs seccomp filter as late as possible (only
/// execve runs under it here), and exec. Returns only on failure.
pub(super) fn exec_process(
    target: Target,
    late_filter: Option<&crate::seccomp::Compiled>,
) -> ProcessError {
    // Signal dispositions that survive execve must be the defaults.
    if let Err(e) = sys::reset_signals() {
        return ProcessError::Sys {
            op: "reset signals",
            source: e,
        };
    }
    if let Some(filter) = late_filter {
        if let Err(e) = crate::seccomp::install(filter) {
            return e.into();
        }
    }
    let err =
        nix::unistd::execve(&target.exe, &target.argv, &target.envp).map_err(std::io::Error::from);
    ProcessError::Exec {
        path: target.arg0,
        source: err
            .err()
            .unwrap_or_else(|| std::io::Error::other("execve returned")),
    }
}

/// Set when the init was cloned by an intermediate process that exits right away: its parent
/// is then not the runtime, and a parent-death signal would kill it as soon as the intermediate
/// is gone. The channel's EOF still tells it that the runtime died.
pub(super) static ORPHANED_INIT: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

pub(super) fn set_pdeathsig() -> Result<(), ProcessError> {
    if ORPHANED_INIT.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
        .map_err(errno("set parent-death signal"))
}

fn reopen_fifo(
    procfs: &pathrs::procfs::ProcfsHandle,
    fifo: &OwnedFd,
) -> Result<std::fs::File, ProcessError> {
    let to_io = |e: pathrs::error::Error| ProcessError::Sys {
        op: "open exec fifo",
        source: std::io::Error::other(e.to_string()),
    };
    let sub = format!("fd/{}", std::os::fd::AsRawFd::as_raw_fd(fifo));
    procfs
        .open_follow(
            pathrs::procfs::ProcfsBase::ProcThreadSelf,
            sub,
            pathrs::flags::OpenFlags::O_WRONLY | pathrs::flags::OpenFlags::O_CLOEXEC,
        )
        .map_err(to_io)
}

pub(super) fn expect(channel: &Channel, want: Message) -> Result<(), ProcessError> {
    match channel.recv().map_err(io("receive from runtime"))? {
        Some(m) if m == want => Ok(()),
        Some(m) => Err(ProcessError::Protocol(format!(
            "expected {want:?}, got {m:?}"
        ))),
        None => Err(ProcessError::Protocol("the runtime went away".into())),
    }
}

pub(super) fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> ProcessError {
    move |source| ProcessError::Sys { op, source }
}

pub(super) fn errno(op: &'static str) -> impl FnOnce(nix::errno::Errno) -> ProcessError {
    move |e| ProcessError::Sys {
        op,
        source: e.into(),
    }
}

fn cstring(s: &str) -> Result<CString, ProcessError> {
    CString::new(s).map_err(|_| ProcessError::Nul(s.to_string()))
}

/// setresuid/setresgid to 0 in a user namespace we just created or joined.
pub(super) fn become_root() -> Result<(), ProcessError> {
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .map_err(errno("setresgid(0) in the user namespace"))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .map_err(errno("setresuid(0) in the user namespace"))
}

fn set_rlimits(process: &Process) -> Result<(), ProcessError> {
    for rl in process.rlimits().as_deref().unwrap_or_default() {
        let resource = rlimit_resource(rl.typ());
        if let Err(e) = nix::sys::resource::setrlimit(resource, rl.soft(), rl.hard()) {
            let (_, host_hard) = nix::sys::resource::getrlimit(resource).unwrap_or((0, 0));
            return Err(ProcessError::Rlimit {
                typ: rl.typ().to_string(),
                soft: rl.soft(),
                hard: rl.hard(),
                host_hard,
                source: e.into(),
            });
        }
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> nix::sys::resource::Resource {
    use nix::sys::resource::Resource as R;
    match t {
        PosixRlimitType::RlimitCpu => R::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => R::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => R::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => R::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => R::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => R::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => R::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => R::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => R::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => R::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => R::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => R::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => R::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => R::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => R::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => R::RLIMIT_RTTIME,
    }
}

/// Switch to the process's user and apply its capability sets, in the order that keeps the
/// capabilities we need until they are set (capabilities(7), "Effect of user ID changes"):
/// bounding set first (dropping needs CAP_SETPCAP), then keep-caps across setresuid, then
/// effective/permitted/inheritable, ambient last (it must be a subset of permitted∩inheritable).
fn switch_user(process: &Process, in_userns: bool) -> Result<(), ProcessError> {
    let user = process.user();
    let caps = process.capabilities().as_ref();
    let supported = supported_caps();
    if let Some(c) = caps {
        let bounding = cap_set(c.bounding().as_ref(), &supported)?;
        for cap in supported.iter().copied() {
            if !bounding.contains(&cap) {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| ProcessError::Caps {
                    op: "drop from bounding set",
                    detail: e.to_string(),
                })?;
            }
        }
    }
    nix::sys::prctl::set_keepcaps(true).map_err(errno("set keep-caps"))?;
    let gids: Vec<Gid> = user
        .additional_gids()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|g| Gid::from_raw(*g))
        .collect();
    // In a user namespace whose setgroups is denied only an empty list is not an error to skip.
    if let Err(e) = nix::unistd::setgroups(&gids) {
        if !(in_userns && gids.is_empty()) {
            return Err(ProcessError::Sys {
                op: "setgroups",
                source: e.into(),
            });
        }
    }
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| ProcessError::User {
        what: "gid",
        id: user.gid(),
        source: e.into(),
    })?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| ProcessError::User {
        what: "uid",
        id: user.uid(),
        source: e.into(),
    })?;
    nix::sys::prctl::set_keepcaps(false).map_err(errno("clear keep-caps"))?;
    if let Some(c) = caps {
        apply_caps(c, &supported)?;
    } else if user.uid() != 0 {
        // Without a capabilities section an unprivileged user gets none (execve would clear
        // them anyway; keep-caps must not leave any in permitted).
        for set in [
            CapSet::Effective,
            CapSet::Permitted,
            CapSet::Inheritable,
            CapSet::Ambient,
        ] {
            caps::clear(None, set).map_err(|e| ProcessError::Caps {
                op: "clear",
                detail: e.to_string(),
            })?;
        }
    }
    Ok(())
}

fn apply_caps(c: &LinuxCapabilities, supported: &CapsHashSet) -> Result<(), ProcessError> {
    let set = |which: CapSet, caps: &CapsHashSet, op: &'static str| {
        caps::set(None, which, caps).map_err(|e| ProcessError::Caps {
            op,
            detail: e.to_string(),
        })
    };
    let effective = cap_set(c.effective().as_ref(), supported)?;
    let permitted = cap_set(c.permitted().as_ref(), supported)?;
    let inheritable = cap_set(c.inheritable().as_ref(), supported)?;
    let ambient = cap_set(c.ambient().as_ref(), supported)?;
    // Inheritable may only grow with CAP_SETPCAP in effective, and permitted may only shrink
    // to a superset of effective (capset(2)): so raise effective to the current permitted set,
    // write inheritable, narrow effective, then narrow permitted.
    if !effective.is_subset(&permitted) {
        return Err(ProcessError::Caps {
            op: "check",
            detail: "effective capabilities must be a subset of permitted".into(),
        });
    }
    let current = caps::read(None, CapSet::Permitted).map_err(|e| ProcessError::Caps {
        op: "read permitted set",
        detail: e.to_string(),
    })?;
    set(CapSet::Effective, &current, "raise effective set")?;
    set(CapSet::Inheritable, &inheritable, "set inheritable set")?;
    set(CapSet::Effective, &effective, "set effective set")?;
    set(CapSet::Permitted, &permitted, "set permitted set")?;
    // An ambient capability must also be permitted and inheritable (capabilities(7)). runc's own
    // `spec` lists ambient capabilities without an inheritable set, and runc only warns when it
    // cannot raise them; do the same so those bundles run here too.
    let (raisable, skipped): (CapsHashSet, CapsHashSet) = ambient
        .into_iter()
        .partition(|c| permitted.contains(c) && inheritable.contains(c));
    if !skipped.is_empty() {
        tracing::warn!(capabilities = ?skipped, "ambient capabilities not raised: not in both the permitted and inheritable sets");
    }
    if !raisable.is_empty() {
        set(CapSet::Ambient, &raisable, "set ambient set")?;
    }
    Ok(())
}

/// The capabilities the running kernel knows: every one up to `cap_last_cap` (one read, where
/// probing would cost a prctl per capability).
fn supported_caps() -> CapsHashSet {
    match std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
    {
        Some(last) => caps::all()
            .into_iter()
            .filter(|c| c.index() <= last)
            .collect(),
        None => caps::runtime::thread_all_supported(),
    }
}

/// Spec capabilities as the caps crate's type, leaving out those the running kernel does not know
/// (runc does the same, so a newer spec works on an older kernel).
fn cap_set(
    list: Option<&oci_spec::runtime::Capabilities>,
    supported: &CapsHashSet,
) -> Result<CapsHashSet, ProcessError> {
    let mut out = CapsHashSet::new();
    for cap in list.into_iter().flatten() {
        let name = format!("CAP_{cap}");
        let parsed: Capability = name.parse().map_err(|_| ProcessError::Caps {
            op: "parse",
            detail: format!("unknown capability {name:?}"),
        })?;
        if supported.contains(&parsed) {
            out.insert(parsed);
        } else {
            tracing::debug!(capability = %name, "not supported by the running kernel, ignored");
        }
    }
    Ok(out)
}

/// The process's environment, with HOME added from the container's /etc/passwd if missing
/// (runc does the same; many programs need HOME).
fn environment(process: &Process) -> Vec<String> {
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let uid = process.user().uid();
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| {
                p.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".to_string());
        env.push(format!("HOME={home}"));
    }
    env
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The errno's text the way Go prints it (lowercase, no "(os error N)").
fn errno_text(e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// Resolve `arg0` as execvp(3) would, with the container's PATH, in the container's root.
fn lookup(arg0: &str, env: &[String]) -> Result<CString, ProcessError> {
    let executable = |p: &Path| {
        nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
            && std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(ProcessError::NotExecutable {
                path: arg0.to_string(),
                reason: "is a directory".into(),
            }),
            Ok(_) if !executable(&p) => Err(ProcessError::NotExecutable {
                path: arg0.to_string(),
                reason: "permission denied".into(),
            }),
            Ok(_) => cstring(arg0),
            // runc's wording ("stat /x: no such file or directory"): dockerd maps the lowercase
            // "no such file or directory" to exit status 127, as a shell does.
            Err(e) => Err(ProcessError::NotExecutable {
                path: arg0.to_string(),
                reason: format!("stat {arg0}: {}", errno_text(&e)),
            }),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if executable(&candidate) {
            return CString::new(candidate.as_os_str().as_bytes())
                .map_err(|_| ProcessError::Nul(arg0.to_string()));
        }
    }
    Err(ProcessError::NotFound(arg0.to_string()))
}
