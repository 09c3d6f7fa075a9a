//! `create`: validate the bundle, start the init, and leave it waiting on `exec.fifo`.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{Error, io_err};
use crate::cgroups::{self, Manager};
use crate::hooks::{self, HookKind, HookState};
use crate::process::{self, InitConfig, InitHandles};
use crate::state::{self as st, State, StateDir, Status};
use crate::{namespaces, seccomp, spec};

/// The flags of `create` (and the create half of `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    /// Keep the caller's session keyring (by default the init joins a new one).
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
    /// `--systemd-cgroup`: refused with a clear error where systemd is not running.
    pub systemd_cgroup: bool,
    /// `--pidfd-socket`: receives a pidfd of the init once it exists.
    pub pidfd_socket: Option<PathBuf>,
}

/// Create the container; returns the init's pid. On failure nothing is left: no state
/// directory, no process (its mounts die with its mount namespace).
pub fn create(opts: &CreateOptions) -> Result<Pid, Error> {
    let prepared = prepare(opts)?;
    create_prepared(opts, &prepared, None)
}

/// What `create` knows before anything is made.
#[derive(Debug)]
pub(super) struct Prepared {
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

pub(super) fn prepare(opts: &CreateOptions) -> Result<Prepared, Error> {
    st::validate_id(&opts.id)?;
    let bundle = std::fs::canonicalize(&opts.bundle).map_err(|source| Error::Bundle {
        path: opts.bundle.clone(),
        source,
    })?;
    let spec = spec::load(&bundle)?;
    if let Some(process) = spec.process() {
        crate::lsm::check(process)?;
        refuse_host_net_sysctls(&spec)?;
        if opts.preserve_fds < 0 {
            return Err(Error::PreserveFds(opts.preserve_fds));
        }
    }
    let rootfs = spec::rootfs_path(&spec, &bundle)?;
    let rootfs = std::fs::canonicalize(&rootfs).map_err(io_err("resolve rootfs", rootfs))?;
    Ok(Prepared {
        bundle,
        rootfs,
        spec,
    })
}

/// `console` overrides `--console-socket` with an already connected socket (`run` in the
/// foreground with a terminal uses a socketpair of its own).
pub(super) fn create_prepared(
    opts: &CreateOptions,
    p: &Prepared,
    console: Option<OwnedFd>,
) -> Result<Pid, Error> {
    let spec = &p.spec;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|pr| pr.terminal())
        .unwrap_or(false);
    if !terminal && (opts.console_socket.is_some() || console.is_some()) {
        return Err(Error::ConsoleWithoutTerminal);
    }
    let plan = namespaces::plan(spec)?;
    let console = match (console, &opts.console_socket) {
        (Some(fd), _) => Some(fd),
        (None, Some(path)) => Some(OwnedFd::from(UnixStream::connect(path).map_err(
            |source| Error::ConsoleSocket {
                path: path.clone(),
                source,
            },
        )?)),
        (None, None) => None,
    };

    // From here on something exists on disk: every failure removes it.
    let dir = StateDir::create(&opts.root, &opts.id)?;
    match create_in(opts, p, &plan, &dir, console) {
        Ok(pid) => Ok(pid),
        Err(e) => {
            if let Err(cleanup) = dir.remove() {
                tracing::warn!(error = %cleanup, "cannot remove state directory after failed create");
            }
            Err(e)
        }
    }
}

fn create_in(
    opts: &CreateOptions,
    p: &Prepared,
    plan: &namespaces::Plan,
    dir: &StateDir,
    console: Option<OwnedFd>,
) -> Result<Pid, Error> {
    // The cgroup exists, with its limits, before the init does; the init is moved into it
    // before it is told to go on, so no code of the container's runs outside its limits.
    let linux = p.spec.linux().as_ref();
    let location = cgroups::resolve(
        linux
            .and_then(|l| l.cgroups_path().as_deref())
            .and_then(|path| path.to_str()),
        &opts.id,
        opts.systemd_cgroup,
    )?;
    let cgroup = Manager::create(&location, linux.and_then(|l| l.resources().as_ref()))?;
    let result = start_init(opts, p, plan, dir, console, &cgroup, &location);
    if result.is_err() {
        if let Err(cleanup) = cgroup.destroy() {
            tracing::warn!(error = %cleanup, "cannot remove the cgroup after a failed create");
        }
    }
    result
}

fn start_init(
    opts: &CreateOptions,
    p: &Prepared,
    plan: &namespaces::Plan,
    dir: &StateDir,
    console: Option<OwnedFd>,
    cgroup: &Manager,
    location: &cgroups::Location,
) -> Result<Pid, Error> {
    let spec = &p.spec;
    make_fifo(dir, spec)?;
    let fifo_path = dir.fifo_path();
    let fifo: OwnedFd =
        nix::fcntl::open(&fifo_path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| io_err("open", &fifo_path)(e.into()))?;

    let seccomp = compile_seccomp(spec)?;
    let spec = &p.spec;
    let cfg = InitConfig {
        id: &opts.id,
        spec,
        bundle: &p.bundle,
        rootfs: &p.rootfs,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        seccomp: seccomp.as_ref(),
    };
    let hooks = spec.hooks().as_ref();
    // Once the runtime's hooks have started, whatever they set up (networks, say) is undone only
    // by the poststop hooks: a create that fails after that point runs them (runtime.md,
    // "Lifecycle" steps 6 and 12).
    let hooks_started = std::cell::Cell::new(false);
    let run_hooks = |pid: Pid| {
        hooks_started.set(true);
        let state = HookState::new(
            spec,
            &opts.id,
            &p.bundle,
            Status::Creating,
            Some(pid.as_raw()),
        );
        if let Some(list) = hooks.and_then(|h| h.prestart().as_deref()) {
            hooks::run(HookKind::Prestart, list, &state)?;
        }
        if let Some(list) = hooks.and_then(|h| h.create_runtime().as_deref()) {
            hooks::run(HookKind::CreateRuntime, list, &state)?;
        }
        Ok(())
    };
    let place = |pid: Pid| Ok(cgroup.add_pid(pid.as_raw())?);
    let ready = match process::spawn(&cfg, plan, InitHandles { fifo, console }, place, run_hooks) {
        Ok(ready) => ready,
        Err(e) => {
            if hooks_started.get() || matches!(e, process::ProcessError::InitHook(_)) {
                run_poststop(spec, &opts.id, &p.bundle);
            }
            return Err(e.into());
        }
    };
    let pid = ready.pid;
    let saved = save(opts, p, pid, dir, location)
        .and_then(|()| match &opts.pidfd_socket {
            Some(socket) => Ok(crate::pidfd::send(socket, pid)?),
            None => Ok(()),
        })
        .and_then(|()| ready.detach().map_err(Error::from));
    if let Err(e) = saved {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        if hooks_started.get() {
            run_poststop(spec, &opts.id, &p.bundle);
        }
        return Err(e);
    }
    Ok(pid)
}

/// `net.*` sysctls in a joined network namespace that is the runtime's own would change the
/// host's settings (runc refuses this too).
fn refuse_host_net_sysctls(spec: &Spec) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let has_net_sysctl = spec
        .linux()
        .as_ref()
        .and_then(|l| l.sysctl().as_ref())
        .is_some_and(|s| s.keys().any(|k| k.starts_with("net.")));
    let Some(path) =
        spec::namespace(spec, LinuxNamespaceType::Network).and_then(|ns| ns.path().as_ref())
    else {
        return Ok(());
    };
    if !has_net_sysctl {
        return Ok(());
    }
    let same = match (
        std::fs::metadata(path),
        std::fs::metadata("/proc/self/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if same {
        return Err(Error::HostNetSysctl);
    }
    Ok(())
}

/// Compile `linux.seccomp` for the running architecture (pure work, done before the clone).
fn compile_seccomp(spec: &Spec) -> Result<Option<seccomp::Compiled>, Error> {
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let arch = seccomp::Arch::native().ok_or(Error::SeccompArch)?;
    Ok(Some(seccomp::compile(profile, arch)?))
}

fn save(
    opts: &CreateOptions,
    p: &Prepared,
    pid: Pid,
    dir: &StateDir,
    location: &cgroups::Location,
) -> Result<(), Error> {
    let (_, pid_start) = st::proc_stat(pid.as_raw()).ok_or(Error::Process(
        process::ProcessError::InitDied("gone before its state was saved".into()),
    ))?;
    let state = State {
        version: st::STATE_VERSION,
        id: opts.id.clone(),
        pid: pid.as_raw(),
        pid_start,
        bundle: p.bundle.clone(),
        rootfs: p.rootfs.clone(),
        created: crate::time::now(),
        owner: owner_name(),
        annotations: p.spec.annotations().clone().unwrap_or_default(),
        config: p.spec.clone(),
        cgroup: Some(location.clone()),
    };
    dir.save(&state)?;
    if let Some(pid_file) = &opts.pid_file {
        let pid_file = absolute(pid_file);
        st::write_atomic(&pid_file, pid.to_string().as_bytes())?;
    }
    Ok(())
}

/// The fifo the init blocks on. It belongs to the container's root user (the host id that the
/// container's uid 0 maps to) and is writable by it, since the init opens it after switching
/// to the process's user; the state directory (0711) is what keeps others away from it.
fn make_fifo(dir: &StateDir, spec: &Spec) -> Result<(), Error> {
    let path = dir.fifo_path();
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o622))
        .map_err(|e| io_err("create fifo", &path)(e.into()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622))
        .map_err(io_err("set mode of", &path))?;
    if spec::new_namespace(spec, LinuxNamespaceType::User) {
        let linux = spec.linux().as_ref();
        let host_of_root = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
            maps.into_iter()
                .flatten()
                .find(|m| m.container_id() == 0)
                .map(|m| m.host_id())
        };
        let uid = host_of_root(linux.and_then(|l| l.uid_mappings().as_ref()));
        let gid = host_of_root(linux.and_then(|l| l.gid_mappings().as_ref()));
        nix::unistd::chown(
            &path,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
        )
        .map_err(|e| io_err("chown", &path)(e.into()))?;
    }
    Ok(())
}

/// Poststop hooks: failures are logged, never fatal (runtime.md, "Lifecycle" step 12).
pub(super) fn run_poststop(spec: &Spec, id: &str, bundle: &Path) {
    if let Some(list) = spec.hooks().as_ref().and_then(|h| h.poststop().as_deref()) {
        let state = HookState::new(spec, id, bundle, Status::Stopped, None);
        hooks::run_all_warn(HookKind::Poststop, list, &state);
    }
}

pub(super) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
