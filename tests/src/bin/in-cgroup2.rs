//! `in-cgroup2 COMMAND [ARGS...]`: run a command in a private mount namespace where
//! `/sys/fs/cgroup` is the host's cgroup2 hierarchy, as on a pure cgroup v2 host.
//!
//! The machines Skiff is tested on are cgroup v1 hybrids (TESTING.md); this is how the runtime's
//! v2 code paths run for real on them. The cgroup2 hierarchy is the host's one (a second mount of
//! cgroup2 shows the same tree), so cgroups made here are visible on the host under
//! `/sys/fs/cgroup/unified`; only the controllers that hierarchy holds (hugetlb on these
//! machines), the core files (`cgroup.procs`, `cgroup.freeze`, `cgroup.kill`) and eBPF device
//! filters are available. Every invocation that concerns one container must go through this
//! wrapper, since the paths saved in its state mean something else outside.

use std::os::unix::process::CommandExt;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("usage: in-cgroup2 COMMAND [ARGS...]");
        std::process::exit(2);
    };
    if let Err(e) = enter() {
        eprintln!("in-cgroup2: {e}");
        std::process::exit(125);
    }
    let err = std::process::Command::new(cmd).args(rest).exec();
    eprintln!("in-cgroup2: exec {cmd}: {err}");
    std::process::exit(127);
}

fn enter() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare a mount namespace: {e}"))?;
    // Nothing mounted here may reach the host's mount table.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("make / a slave mount: {e}"))?;
    mount(
        Some("cgroup2"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount cgroup2 on /sys/fs/cgroup: {e}"))
}
