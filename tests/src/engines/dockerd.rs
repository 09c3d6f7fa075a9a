//! dockerd 20.10 (Debian's `docker.io`) in a [`Sandbox`] with the runtime under test registered
//! as `--add-runtime skiff=<path>`, driven with a docker CLI.
//!
//! dockerd manages its own containerd (state under `exec/containerd`, root under
//! `data/containerd`), which runs the runc shim with the runtime's `--root` at
//! `exec/runtime-skiff`. Networking is off (`--bridge none`, no iptables), so containers run
//! with `--network none` and nothing on the host's network changes. Containers' cgroups go
//! under `/<sandbox name>` (`--cgroup-parent`, cgroupfs driver): [`Dockerd::cgroup_path`].
//!
//! Two CLIs can talk to it: Debian's 20.10 `/usr/bin/docker` (the default, the daemon's own
//! version, [`Dockerd::docker`]) and the 28.x CLI every machine has at
//! `/usr/local/bin/docker` ([`Dockerd::docker_with`] + [`DOCKER_CLI_28`]), which negotiates API
//! 1.41 down from its own. `DOCKER_CONFIG` points into the sandbox so `~/.docker` is not used.
//!
//! The trust key that 20.10 otherwise writes to `/etc/docker/key.json` goes into the sandbox
//! through the daemon.json key `deprecated-key-path` (it has no command-line flag).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use super::{CLEANUP_TIMEOUT, ClientCmd, DAEMON_START_TIMEOUT, Daemon, Sandbox, require_binary};
use crate::image::Image;

/// dockerd's binary (Debian `docker.io`).
pub const DOCKERD_BIN: &str = "/usr/sbin/dockerd";
/// The docker CLI of Debian's `docker.io` (20.10), the daemon's own version.
pub const DOCKER_CLI_20: &str = "/usr/bin/docker";
/// The docker CLI 28.x that comes with every machine (TESTING.md).
pub const DOCKER_CLI_28: &str = "/usr/local/bin/docker";
/// The name of the runtime under test in dockerd (`docker run --runtime skiff`).
pub const RUNTIME_NAME: &str = "skiff";

/// A running dockerd with its own data root, exec root, socket and cgroup parent.
#[derive(Debug)]
pub struct Dockerd {
    // Field order is drop order: the daemon stops before the sandbox cleans up after it.
    daemon: Daemon,
    sandbox: Sandbox,
    cli: PathBuf,
    startup: Duration,
}

impl Dockerd {
    /// Starts dockerd and waits until `docker version` reaches it.
    ///
    /// # Panics
    /// If docker.io is not installed, dockerd does not start, or no runtime binary exists.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("starting dockerd: {e:#}"))
    }

    /// Like [`Dockerd::start`], returning the error.
    pub fn try_start() -> anyhow::Result<Self> {
        let dockerd = require_binary(DOCKERD_BIN, "docker.io");
        let cli = require_binary(DOCKER_CLI_20, "docker.io");
        // dockerd starts its managed containerd and shim from PATH.
        require_binary(super::containerd::CONTAINERD_BIN, "containerd");
        require_binary(super::containerd::SHIM_BIN, "containerd");
        let skiff = super::skiff_path();
        let sandbox = Sandbox::new("skiff-dkd");
        sandbox.subdir("cli");
        let daemon_json = json!({ "deprecated-key-path": sandbox.file("key.json") });
        std::fs::write(
            sandbox.path().join("daemon.json"),
            serde_json::to_vec_pretty(&daemon_json)?,
        )
        .context("writing daemon.json")?;
        let sock = sandbox.file("docker.sock");
        let args: Vec<OsString> = [
            format!("--host=unix://{sock}"),
            format!("--config-file={}", sandbox.file("daemon.json")),
            format!("--data-root={}", sandbox.file("data")),
            format!("--exec-root={}", sandbox.file("exec")),
            format!("--pidfile={}", sandbox.file("docker.pid")),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-masq=false".into(),
            "--userland-proxy=false".into(),
            "--exec-opt=native.cgroupdriver=cgroupfs".into(),
            format!("--cgroup-parent=/{}", sandbox.name()),
            format!("--add-runtime={RUNTIME_NAME}={}", skiff.display()),
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let started = Instant::now();
        let command = sandbox.namespaced_command(&dockerd, &args);
        let mut daemon = Daemon::spawn("dockerd", command, &sandbox.path().join("dockerd.log"))?;
        let probe_cli = cli.clone();
        let config_dir = sandbox.file("cli");
        let startup = daemon.wait_ready(
            DAEMON_START_TIMEOUT,
            || {
                Path::new(&sock).exists()
                    && std::process::Command::new(&probe_cli)
                        .args(["--host", &format!("unix://{sock}"), "version"])
                        .env("DOCKER_CONFIG", &config_dir)
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
            },
            started,
        )?;
        Ok(Self {
            daemon,
            sandbox,
            cli,
            startup,
        })
    }

    /// How long dockerd took from spawn to answering `docker version`.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The sandbox (temp dir, unique name).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// `unix://<sandbox>/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.sandbox.file("docker.sock"))
    }

    /// `docker --host <sock> <args…>` with Debian's 20.10 CLI.
    pub fn docker<I, S>(&self, args: I) -> ClientCmd<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.docker_with(&self.cli.clone(), args)
    }

    /// `<cli> --host <sock> <args…>` with another docker CLI binary.
    pub fn docker_with<I, S>(&self, cli: &Path, args: I) -> ClientCmd<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.sandbox
            .client(cli)
            .env("DOCKER_CONFIG", self.sandbox.file("cli"))
            .args(["--host", &self.host()])
            .args(args)
    }

    /// Flags for `docker run` that use the runtime under test and touch neither the network
    /// nor a registry: `--runtime skiff --network none --pull never`.
    pub fn run_flags(&self) -> Vec<String> {
        [
            "--runtime",
            RUNTIME_NAME,
            "--network",
            "none",
            "--pull",
            "never",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// The cgroup (path from the hierarchy root) of container `full_id`.
    pub fn cgroup_path(&self, full_id: &str) -> String {
        format!("/{}/{full_id}", self.sandbox.name())
    }

    /// The runtime's `--root` for containers of the skiff runtime.
    pub fn runtime_root(&self) -> PathBuf {
        self.sandbox
            .path()
            .join("exec")
            .join(format!("runtime-{RUNTIME_NAME}"))
    }

    /// Loads `image` with `docker load -i` from a docker-archive written into the sandbox.
    ///
    /// # Panics
    /// If writing or loading fails.
    #[track_caller]
    pub fn load(&self, image: &Image) {
        let path = self.sandbox.path().join("image.docker.tar");
        image
            .write_docker_archive(&path)
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.docker(["load", "-i"])
            .arg(&path)
            .run()
            .expect_success();
    }

    /// Removes every container through dockerd (bounded).
    fn remove_all(&self) {
        let ids: Vec<String> = self
            .docker(["ps", "-aq"])
            .timeout(CLEANUP_TIMEOUT)
            .try_run()
            .map(|o| o.stdout.lines().map(str::to_string).collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = self
                .docker(["rm", "-f"])
                .args(&ids)
                .timeout(CLEANUP_TIMEOUT)
                .try_run();
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.remove_all();
    }
}
