//! podman 4.3 (Debian's `podman`) with private storage in a [`Sandbox`], running containers
//! with the runtime under test (`podman --runtime <skiff>`).
//!
//! podman has no daemon; its state is in files and mounts that must outlive one command
//! (overlay mounts of running containers, conmon). So the fixture starts a *holder* process
//! (`sleep`) in the sandbox's private mount namespace, and every podman command enters that
//! namespace with `nsenter --mount=/proc/<holder>/ns/mnt`. conmon and the containers are
//! children of podman commands and stay in the namespace; when the holder and they are gone,
//! the namespace and all its mounts go with them.
//!
//! Layout of the sandbox:
//!
//! ```text
//! containers.conf   CONTAINERS_CONF: cgroupfs, file events and locks, no network, ulimits
//!                   within this machine's hard limits, every path below
//! storage.conf      CONTAINERS_STORAGE_CONF: overlay driver, graphroot storage/, runroot run/
//! registries.conf   CONTAINERS_REGISTRIES_CONF: empty, so a short name never resolves to a pull
//! storage/ run/ tmp/ net/
//! ```
//!
//! The runtime's own state stays at its default `/run/skiff`, which is the tmpfs of the
//! namespace: podman's `--runtime-flag` is not passed on to the `container cleanup` that conmon
//! runs when a container exits, so a custom `--root` would split the state in two.
//!
//! Containers get `--cgroup-parent /<sandbox name>` ([`Podman::run_flags`]); conmon's cgroup is
//! `/<sandbox name>/conmon`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{CLEANUP_TIMEOUT, ClientCmd, DAEMON_START_TIMEOUT, Daemon, Sandbox, require_binary};
use crate::image::Image;

/// podman's binary (Debian `podman`).
pub const PODMAN_BIN: &str = "/usr/bin/podman";
/// conmon's binary (Debian `conmon`, a dependency of `podman`).
pub const CONMON_BIN: &str = "/usr/bin/conmon";

/// podman with private storage and a mount namespace of its own.
#[derive(Debug)]
pub struct Podman {
    // Field order is drop order: the holder goes before the sandbox cleans up.
    holder: Daemon,
    sandbox: Sandbox,
    podman: PathBuf,
    skiff: PathBuf,
    startup: Duration,
}

impl Podman {
    /// Prepares the configuration and the namespace holder.
    ///
    /// # Panics
    /// If podman is not installed or the holder does not start.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("preparing podman: {e:#}"))
    }

    /// Like [`Podman::start`], returning the error.
    pub fn try_start() -> anyhow::Result<Self> {
        let podman = require_binary(PODMAN_BIN, "podman");
        require_binary(CONMON_BIN, "podman");
        let skiff = super::skiff_path();
        let sandbox = Sandbox::new("skiff-pod");
        for dir in ["storage", "run", "tmp", "net"] {
            sandbox.subdir(dir);
        }
        // RLIMIT_NOFILE/NPROC: podman asks for 1048576/4194304 by default for root, above this
        // machine's hard limits (20000 / ~96000, TESTING.md), which a runtime must refuse.
        let containers_conf = format!(
            r#"[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
lock_type = "file"
tmp_dir = "{tmp}"
static_dir = "{static_dir}"
volume_path = "{volumes}"
network_config_dir = "{net}"

[network]
network_config_dir = "{net}"
"#,
            events = sandbox.file("tmp/events.log"),
            tmp = sandbox.file("tmp"),
            static_dir = sandbox.file("storage/libpod"),
            volumes = sandbox.file("storage/volumes"),
            net = sandbox.file("net"),
        );
        std::fs::write(sandbox.path().join("containers.conf"), containers_conf)
            .context("writing containers.conf")?;
        let storage_conf = format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            sandbox.file("storage"),
            sandbox.file("run"),
        );
        std::fs::write(sandbox.path().join("storage.conf"), storage_conf)
            .context("writing storage.conf")?;
        std::fs::write(sandbox.path().join("registries.conf"), "")
            .context("writing registries.conf")?;

        let started = Instant::now();
        let sleep = PathBuf::from("/bin/sleep");
        let command = sandbox.namespaced_command(&sleep, &["infinity".into()]);
        let mut holder = Daemon::spawn(
            "podman's namespace holder",
            command,
            &sandbox.path().join("holder.log"),
        )?;
        let pid = holder.pid().context("the holder has no pid")?;
        // The holder execs `sleep` only after both tmpfs mounts succeeded.
        let startup = holder.wait_ready(
            DAEMON_START_TIMEOUT,
            || {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            },
            started,
        )?;
        Ok(Self {
            holder,
            sandbox,
            podman,
            skiff,
            startup,
        })
    }

    /// How long the namespace holder took to be ready.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The sandbox (temp dir, unique name).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// `podman --root … --runroot … --tmpdir … --cgroup-manager cgroupfs --events-backend file
    /// --storage-driver overlay --runtime <skiff> <args…>`, inside the sandbox's namespace.
    pub fn podman<I, S>(&self, args: I) -> ClientCmd<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let pid = self.holder.pid().unwrap_or(0);
        self.sandbox
            .client(&self.podman)
            .wrap([
                "nsenter".to_string(),
                format!("--mount=/proc/{pid}/ns/mnt"),
                "--".to_string(),
            ])
            .env("CONTAINERS_CONF", self.sandbox.file("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.sandbox.file("storage.conf"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.sandbox.file("registries.conf"),
            )
            .args([
                "--root",
                &self.sandbox.file("storage"),
                "--runroot",
                &self.sandbox.file("run"),
                "--tmpdir",
                &self.sandbox.file("tmp"),
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "overlay",
                "--runtime",
                self.skiff.to_str().expect("paths are UTF-8"),
            ])
            .args(args)
    }

    /// Flags for `podman run` that touch neither the network nor a registry and put the
    /// container's cgroup under the sandbox: `--pull never --network none --cgroup-parent /<name>`.
    pub fn run_flags(&self) -> Vec<String> {
        vec![
            "--pull".into(),
            "never".into(),
            "--network".into(),
            "none".into(),
            "--cgroup-parent".into(),
            format!("/{}", self.sandbox.name()),
        ]
    }

    /// The cgroup (path from the hierarchy root) of container `full_id` under cgroupfs
    /// (`<parent>/libpod-<id>`).
    pub fn cgroup_path(&self, full_id: &str) -> String {
        format!("/{}/libpod-{full_id}", self.sandbox.name())
    }

    /// Loads `image` with `podman load -i` from an OCI layout tar written into the sandbox, so
    /// its name is the full `org.opencontainers.image.ref.name` (a docker-archive's short
    /// `RepoTags` would become `localhost/busybox`).
    ///
    /// # Panics
    /// If writing or loading fails.
    #[track_caller]
    pub fn load(&self, image: &Image) {
        let path = self.sandbox.path().join("image.oci.tar");
        image
            .write_oci_layout_tar(&path)
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.podman(["load", "-i"])
            .arg(&path)
            .run()
            .expect_success();
    }

    /// Loads `image` from a docker-archive (it is named `localhost/<RepoTags>` by podman 4.3).
    ///
    /// # Panics
    /// If writing or loading fails.
    #[track_caller]
    pub fn load_docker_archive(&self, image: &Image) {
        let path = self.sandbox.path().join("image.docker.tar");
        image
            .write_docker_archive(&path)
            .unwrap_or_else(|e| panic!("{e:#}"));
        self.podman(["load", "-i"])
            .arg(&path)
            .run()
            .expect_success();
    }

    /// Removes every container through podman (bounded).
    fn remove_all(&self) {
        let _ = self
            .podman(["rm", "--all", "--force", "--time", "0"])
            .timeout(CLEANUP_TIMEOUT)
            .try_run();
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        self.remove_all();
    }
}
