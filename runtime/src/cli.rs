//! The command line, flag for flag as runc's (the subset Skiff implements so far).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    about = "An OCI container runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for the containers' state.
    #[arg(long, global = true, default_value = "/run/skiff")]
    pub root: PathBuf,
    /// Append log lines to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the log lines.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log at debug level.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (refused with a clear error where systemd is not running).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility with callers that pass it (auto, true, false).
    #[arg(long, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to this file (atomically).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Move the rootfs onto / and chroot instead of pivot_root (for ramdisk roots).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of joining a new one.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N extra descriptors (3 … 3+N-1) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Unix socket that receives a pidfd of the container's process.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// A JSON runtime-spec process to run (the other process flags are then ignored).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket that receives the pty master.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Return once the process has started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's pid to this file (atomically).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (NAME=VALUE); repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional group ids; repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability; repeatable.
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privileges for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass N extra descriptors (3 … 3+N-1) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Exec even if the container is paused (the process starts frozen).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Unix socket that receives a pidfd of the process.
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// A JSON runtime-spec linux.resources file, or "-" for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1: unlimited).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (e.g. 0-1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container: set it up and leave its process waiting for `start`.
    Create {
        #[command(flatten)]
        args: CreateArgs,
        /// Accepted and ignored (some callers pass it to create).
        #[arg(short = 'd', long, hide = true)]
        detach: bool,
        id: String,
    },
    /// Start a created container's process.
    Start { id: String },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init.
    Kill {
        /// Signal every process of the container (obsolete in runc; accepted).
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and its state.
    Delete {
        /// Kill the container first if it is running.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create and start a container; without --detach, wait for it and exit with its status.
    Run {
        #[command(flatten)]
        args: CreateArgs,
        /// Return once the container has started.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        /// Do not become a child subreaper.
        #[arg(long = "no-subreaper")]
        no_subreaper: bool,
        id: String,
    },
    /// Run a new process in a running container.
    Exec {
        #[command(flatten)]
        args: ExecArgs,
        id: String,
        /// The command and its arguments (unless --process is given).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List the processes of a container.
    Ps {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
        /// Options for the host's ps, accepted for runc compatibility only with the table format.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a container's resource limits.
    Update {
        #[command(flatten)]
        args: UpdateArgs,
        id: String,
    },
    /// Print a container's resource statistics and OOM events as JSON lines.
    Events {
        /// Print the statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// How often to print statistics.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// List containers.
    #[command(alias = "ps-all")]
    List {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Print what this runtime supports (runtime-spec features JSON).
    Features,
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A configuration for an unprivileged caller.
        #[arg(long)]
        rootless: bool,
    },
}
