//! containerd 1.6 (Debian's `containerd`) in a [`Sandbox`], driven with `ctr`, running
//! containers through its stock `containerd-shim-runc-v2` with the runtime under test as the
//! shim's runc binary (`ctr run --runc-binary <skiff>`).
//!
//! Layout of the sandbox:
//!
//! ```text
//! config.toml        version 2; CRI, tracing, aufs/btrfs/devmapper/zfs disabled (the v1 linux
//!                    runtime must stay: 1.6's tasks service depends on it); grpc/ttrpc on c.sock / c.sock.ttrpc; opt plugin in opt/
//! root/ state/       --root / --state
//! c.sock             --address (ctr connects here)
//! runc-root/<ns>/    the runtime's --root (ctr run --runc-root runc-root; the shim appends the
//!                    namespace)
//! fifo/              ctr's IO fifos (--fifo-dir; the default is /run/containerd/fifo)
//! containerd.log     the daemon's log
//! ```
//!
//! With [`Containerd::start_with_shim`] the sandbox also has `bin/`, prepended to the PATH
//! containerd (and so every shim it starts) runs with, holding `containerd-shim-skiff-v2` and
//! `skiff`: `ctr run --runtime io.containerd.skiff.v2` then finds our shim the way containerd
//! finds any shim (`$PATH`), and the shim finds `skiff` on its PATH. [`Containerd::restart`]
//! stops the daemon and starts it again in the same mount namespace (the shims' sockets live
//! in its private `/run`), as a host restart of containerd would.
//!
//! The containerd namespace is the sandbox name, so the default cgroup of a container is
//! `/<namespace>/<id>` ([`Containerd::cgroup_path`]) and is removed with the sandbox.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{CLEANUP_TIMEOUT, ClientCmd, DAEMON_START_TIMEOUT, Daemon, Sandbox, require_binary};
use crate::image::Image;

/// containerd's binary (Debian `containerd`).
pub const CONTAINERD_BIN: &str = "/usr/bin/containerd";
/// ctr's binary (Debian `containerd`).
pub const CTR_BIN: &str = "/usr/bin/ctr";
/// The runc shim (Debian `containerd`).
pub const SHIM_BIN: &str = "/usr/bin/containerd-shim-runc-v2";

/// A running containerd with its own root, state, socket and namespace.
#[derive(Debug)]
pub struct Containerd {
    // Field order is drop order: the daemon stops before the sandbox cleans up after it.
    daemon: Daemon,
    sandbox: Sandbox,
    ctr: PathBuf,
    skiff: PathBuf,
    startup: Duration,
    /// The daemon's binary and arguments, for [`Containerd::restart`].
    containerd: PathBuf,
    args: Vec<OsString>,
    /// `PATH` for the daemon when a shim is installed in `bin/`.
    path_env: Option<OsString>,
    /// The daemon's mount namespace, held open so a restart can re-enter it.
    mnt_ns: Option<std::fs::File>,
}

/// The runtime name of our shim.
pub const SKIFF_SHIM_RUNTIME: &str = "io.containerd.skiff.v2";
/// The binary name containerd derives from [`SKIFF_SHIM_RUNTIME`].
pub const SKIFF_SHIM_BINARY: &str = "containerd-shim-skiff-v2";

impl Containerd {
    /// Starts containerd and waits until `ctr version` answers.
    ///
    /// # Panics
    /// If containerd is not installed, does not start, or no runtime binary exists.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("starting containerd: {e:#}"))
    }

    /// Like [`Containerd::start`], returning the error.
    pub fn try_start() -> anyhow::Result<Self> {
        Self::try_start_inner(None)
    }

    /// Like [`Containerd::start`], with `shim` (our `containerd-shim-skiff-v2`) and the runtime
    /// under test in the sandbox's `bin/`, first on containerd's PATH.
    ///
    /// # Panics
    /// If containerd does not start or a binary is missing.
    pub fn start_with_shim(shim: &Path) -> Self {
        Self::try_start_inner(Some(shim)).unwrap_or_else(|e| panic!("starting containerd: {e:#}"))
    }

    fn try_start_inner(shim: Option<&Path>) -> anyhow::Result<Self> {
        let containerd = require_binary(CONTAINERD_BIN, "containerd");
        let ctr = require_binary(CTR_BIN, "containerd");
        require_binary(SHIM_BIN, "containerd");
        let skiff = super::skiff_path();
        let sandbox = Sandbox::new("skiff-ctd");
        for dir in ["root", "state", "opt", "fifo", "runc-root"] {
            sandbox.subdir(dir);
        }
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = sandbox.file("root"),
            state = sandbox.file("state"),
            sock = sandbox.file("c.sock"),
            opt = sandbox.file("opt"),
        );
        let config_path = sandbox.path().join("config.toml");
        std::fs::write(&config_path, config).context("writing config.toml")?;
        let path_env = match shim {
            Some(shim) => {
                let bin = sandbox.subdir("bin");
                let shim = std::fs::canonicalize(shim)
                    .with_context(|| format!("resolving {}", shim.display()))?;
                std::os::unix::fs::symlink(&shim, bin.join(SKIFF_SHIM_BINARY))
                    .context("linking the shim into bin/")?;
                std::os::unix::fs::symlink(&skiff, bin.join("skiff"))
                    .context("linking skiff into bin/")?;
                let mut path = bin.into_os_string();
                path.push(":");
                path.push(
                    std::env::var_os("PATH")
                        .unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
                );
                Some(path)
            }
            None => None,
        };
        let args: Vec<OsString> = [
            "--config",
            &sandbox.file("config.toml"),
            "--root",
            &sandbox.file("root"),
            "--state",
            &sandbox.file("state"),
            "--address",
            &sandbox.file("c.sock"),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let started = Instant::now();
        let mut command = sandbox.namespaced_command(&containerd, &args);
        if let Some(path) = &path_env {
            command.env("PATH", path);
        }
        let mut daemon = Daemon::spawn(
            "containerd",
            command,
            &sandbox.path().join("containerd.log"),
        )?;
        let startup = Self::wait_answering(&mut daemon, &sandbox, &ctr, started)?;
        let mnt_ns = daemon
            .pid()
            .and_then(|pid| std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok());
        Ok(Self {
            daemon,
            sandbox,
            ctr,
            skiff,
            startup,
            containerd,
            args,
            path_env,
            mnt_ns,
        })
    }

    fn wait_answering(
        daemon: &mut Daemon,
        sandbox: &Sandbox,
        ctr: &Path,
        started: Instant,
    ) -> anyhow::Result<Duration> {
        let sock = sandbox.file("c.sock");
        daemon.wait_ready(
            DAEMON_START_TIMEOUT,
            || {
                Path::new(&sock).exists()
                    && std::process::Command::new(ctr)
                        .args(["--address", &sock, "--timeout", "2s", "version"])
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
            },
            started,
        )
    }

    /// Stops containerd (SIGTERM; shims and containers keep running) and starts it again with
    /// the same root, state and config, in the same mount namespace.
    ///
    /// # Panics
    /// If the daemon does not come back.
    pub fn restart(&mut self) {
        let ns = self
            .mnt_ns
            .as_ref()
            .map(|f| {
                use std::os::fd::AsRawFd as _;
                format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd())
            })
            .expect("containerd's mount namespace is held");
        if let Some(note) = self.daemon.stop() {
            eprintln!("{note}");
        }
        let _ = std::fs::remove_file(self.sandbox.path().join("c.sock"));
        let mut command = std::process::Command::new("nsenter");
        command
            .arg(format!("--mount={ns}"))
            .arg("--")
            .arg(&self.containerd)
            .args(&self.args)
            .current_dir(self.sandbox.path())
            .stdin(std::process::Stdio::null());
        if let Some(path) = &self.path_env {
            command.env("PATH", path);
        }
        let started = Instant::now();
        let log = self.sandbox.path().join("containerd-restarted.log");
        let mut daemon = Daemon::spawn("containerd", command, &log)
            .unwrap_or_else(|e| panic!("restarting containerd: {e:#}"));
        Self::wait_answering(&mut daemon, &self.sandbox, &self.ctr, started)
            .unwrap_or_else(|e| panic!("restarting containerd: {e:#}"));
        self.daemon = daemon;
    }

    /// containerd's pid.
    pub fn pid(&self) -> Option<i32> {
        self.daemon.pid()
    }

    /// Flags for `ctr run` with our shim (see [`Containerd::start_with_shim`]): `--runtime
    /// io.containerd.skiff.v2 --fifo-dir <dir>`.
    pub fn shim_run_flags(&self) -> Vec<String> {
        vec![
            "--runtime".into(),
            SKIFF_SHIM_RUNTIME.into(),
            "--fifo-dir".into(),
            self.sandbox.file("fifo"),
        ]
    }

    /// `--runtime-config-path <file>` whose TOML sets the shim's `BinaryName` to `binary`
    /// (ctr 1.6 sends it as `runtimeoptions.v1.Options`; `--runc-binary` is refused for
    /// runtimes other than io.containerd.runc.v2).
    pub fn runtime_config_flags(&self, binary: &Path) -> Vec<String> {
        let file = self.sandbox.path().join("runtime-options.toml");
        std::fs::write(&file, format!("BinaryName = \"{}\"\n", binary.display()))
            .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        vec![
            "--runtime-config-path".into(),
            file.to_str().expect("paths are UTF-8").into(),
        ]
    }

    /// How long containerd took from spawn to answering `ctr version`.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The sandbox (temp dir, unique name).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The containerd namespace every `ctr` command uses (the sandbox name).
    pub fn namespace(&self) -> &str {
        self.sandbox.name()
    }

    /// The grpc socket.
    pub fn address(&self) -> String {
        self.sandbox.file("c.sock")
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// `ctr --address <sock> --namespace <ns> <args…>`.
    pub fn ctr<I, S>(&self, args: I) -> ClientCmd<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.sandbox
            .client(&self.ctr)
            .args([
                "--address",
                &self.address(),
                "--namespace",
                self.namespace(),
            ])
            .args(args)
    }

    /// The flags that make `ctr run` use the runtime under test through the runc shim, keep its
    /// state and fifos in the sandbox: `--runc-binary <skiff> --runc-root <dir> --fifo-dir
    /// <dir>`.
    pub fn run_flags(&self) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            self.skiff.to_str().expect("paths are UTF-8").into(),
            "--runc-root".into(),
            self.sandbox.file("runc-root"),
            "--fifo-dir".into(),
            self.sandbox.file("fifo"),
        ]
    }

    /// `--fifo-dir <dir>` for `ctr task exec` and `ctr task start`.
    pub fn fifo_flags(&self) -> Vec<String> {
        vec!["--fifo-dir".into(), self.sandbox.file("fifo")]
    }

    /// The runtime's state directory for this namespace (`<runc-root>/<namespace>`).
    pub fn runtime_root(&self) -> PathBuf {
        self.sandbox.path().join("runc-root").join(self.namespace())
    }

    /// The cgroup (path from the hierarchy root) containerd gives container `id` by default.
    pub fn cgroup_path(&self, id: &str) -> String {
        format!("/{}/{id}", self.namespace())
    }

    /// Imports `image` from a docker-archive written into the sandbox.
    ///
    /// # Panics
    /// If writing or importing fails.
    #[track_caller]
    pub fn import(&self, image: &Image) {
        let path = self.sandbox.path().join("image.docker.tar");
        image
            .write_docker_archive(&path)
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.ctr(["images", "import"])
            .arg(&path)
            .run()
            .expect_success();
    }

    /// Imports `image` from an OCI layout tar written into the sandbox.
    ///
    /// # Panics
    /// If writing or importing fails.
    #[track_caller]
    pub fn import_oci(&self, image: &Image) {
        let path = self.sandbox.path().join("image.oci.tar");
        image
            .write_oci_layout_tar(&path)
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.ctr(["images", "import"])
            .arg(&path)
            .run()
            .expect_success();
    }

    /// `ctr task ls` as (id, pid, status) rows.
    pub fn tasks(&self) -> Vec<(String, String, String)> {
        let out = self.ctr(["task", "ls"]).run();
        out.expect_success();
        out.stdout
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut cols = line.split_whitespace();
                Some((
                    cols.next()?.to_string(),
                    cols.next()?.to_string(),
                    cols.next()?.to_string(),
                ))
            })
            .collect()
    }

    /// The status column of `ctr task ls` for `id` (`RUNNING`, `PAUSED`, `STOPPED`, …), if the
    /// task exists.
    pub fn task_status(&self, id: &str) -> Option<String> {
        self.tasks()
            .into_iter()
            .find(|(task, _, _)| task == id)
            .map(|(_, _, status)| status)
    }

    /// Removes every task and container of the namespace through containerd (bounded).
    fn remove_all(&self) {
        let quiet = |what: &str| -> Vec<String> {
            self.ctr([what, "ls", "-q"])
                .timeout(CLEANUP_TIMEOUT)
                .try_run()
                .map(|o| o.stdout.lines().map(str::to_string).collect())
                .unwrap_or_default()
        };
        for task in quiet("task") {
            let _ = self
                .ctr(["task", "kill", "-s", "SIGKILL", &task])
                .timeout(CLEANUP_TIMEOUT)
                .try_run();
            let _ = self
                .ctr(["task", "delete", "--force", &task])
                .timeout(CLEANUP_TIMEOUT)
                .try_run();
        }
        for container in quiet("container") {
            let _ = self
                .ctr(["container", "delete", &container])
                .timeout(CLEANUP_TIMEOUT)
                .try_run();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_all();
        // Then the fields drop: the daemon stops, the sandbox kills leftovers (shims, container
        // processes), detaches mounts, removes cgroups and the temp dir.
    }
}
