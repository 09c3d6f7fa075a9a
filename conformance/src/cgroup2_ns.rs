//! `--cgroup2-ns`: every runtime invocation runs in a private mount namespace where
//! `/sys/fs/cgroup` is the host's cgroup2 hierarchy, so a runtime takes its cgroup v2 code
//! paths on a hybrid (v1 + cgroup2) host.
//!
//! The suite re-executes its own binary as `oci-conformance --exec-in-cgroup2-ns -- RUNTIME
//! ARGS...` (the same idea as `tests/src/bin/in-cgroup2.rs`): the wrapper enters the namespace
//! and then execs the runtime, so the pid the suite waits for (and kills on a timeout) is the
//! runtime's. The cgroup2 hierarchy is the host's one (a second mount of cgroup2 shows the same
//! tree), so the cgroups a runtime makes there are visible to the suite under
//! `/sys/fs/cgroup/unified`, and every invocation about one container (create, kill, delete,
//! ...) sees the same paths. Only the controllers of that hierarchy exist there (hugetlb on
//! these hosts), besides the core files (`cgroup.procs`, `cgroup.freeze`, `cgroup.kill`) and
//! eBPF device filters; cases that need another controller skip.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};

use anyhow::Context as _;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

/// The wrapper's flag: `oci-conformance --exec-in-cgroup2-ns -- PROGRAM ARGS...`.
pub const FLAG: &str = "--exec-in-cgroup2-ns";

/// If `args` (without argv[0]) is a wrapper invocation, enters the namespace and execs the
/// program; returns `None` for an ordinary suite invocation. Returns only on failure.
pub fn exec_if_wrapper(args: &[OsString]) -> Option<ExitCode> {
    let rest = args.strip_prefix(&[OsString::from(FLAG)][..])?;
    let rest = rest
        .strip_prefix(&[OsString::from("--")][..])
        .unwrap_or(rest);
    let Some((program, program_args)) = rest.split_first() else {
        eprintln!("usage: oci-conformance {FLAG} -- PROGRAM [ARGS...]");
        return Some(ExitCode::from(2));
    };
    if let Err(e) = enter() {
        eprintln!("oci-conformance {FLAG}: {e:#}");
        return Some(ExitCode::from(125));
    }
    let err = Command::new(program).args(program_args).exec();
    eprintln!(
        "oci-conformance {FLAG}: exec {}: {err}",
        program.to_string_lossy()
    );
    Some(ExitCode::from(127))
}

/// The namespace set-up, one step per system call.
fn enter() -> anyhow::Result<()> {
    // 1. A mount namespace of our own (unshare(2) CLONE_NEWNS): the mount below must not
    //    change the host's /sys/fs/cgroup for anything else on the machine.
    unshare(CloneFlags::CLONE_NEWNS).context("unshare a mount namespace")?;
    // 2. Make every mount a slave (mount_namespaces(7)): the host's shared mounts would
    //    otherwise carry the next mount back to the host's namespace; as a slave we still
    //    receive the host's mounts (the suite's bind mounts under its case directories).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("make / an rslave mount")?;
    // 3. The host's cgroup2 hierarchy over /sys/fs/cgroup, hiding the v1 tmpfs and its
    //    hierarchies: runtimes detect a pure v2 host by /sys/fs/cgroup being cgroup2
    //    (statfs CGROUP2_SUPER_MAGIC), as runc, crun and skiff do.
    mount(
        Some("cgroup2"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .context("mount cgroup2 on /sys/fs/cgroup")
}
