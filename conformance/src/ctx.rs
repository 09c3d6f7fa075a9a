//! The per-case context: a private directory (bundles, the runtime's `--root`, captured
//! output), unique container ids, and the clean-up that runs whatever the case's result.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::bundle::{Bundle, RootfsSource};
use crate::host;
use crate::probe::{self, Report};
use crate::runtime::{Output, Runtime};

/// How long a container may take to reach an expected status.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

/// The prefix of every cgroup the suite asks for (`linux.cgroupsPath`).
pub const CGROUP_PARENT: &str = "oci-conformance";

/// Everything a case works with.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// The runtime, with this case's private `--root`.
    pub rt: Runtime,
    dir: PathBuf,
    source: &'a RootfsSource,
    id_prefix: String,
    ids: Vec<String>,
    cgroups: Vec<String>,
    bundles: usize,
}

impl<'a> Ctx<'a> {
    /// Sets up the case directory `dir` (which must not exist yet).
    pub fn new(
        runtime: &Path,
        wrapper: Option<&Path>,
        dir: &Path,
        source: &'a RootfsSource,
        id_prefix: String,
    ) -> anyhow::Result<Self> {
        let root = dir.join("state");
        let scratch = dir.join("out");
        for d in [dir, &root, &scratch] {
            fs::create_dir_all(d).with_context(|| format!("mkdir {}", d.display()))?;
        }
        Ok(Self {
            rt: Runtime::new(runtime, wrapper, &root, &scratch),
            dir: dir.to_path_buf(),
            source,
            id_prefix,
            ids: Vec::new(),
            cgroups: Vec::new(),
            bundles: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host-side console-socket receiver (see console.c).
    pub fn console_helper(&self) -> &Path {
        &self.source.console
    }

    /// A new bundle running `args`, in its own directory.
    pub fn bundle(&mut self, args: &[&str]) -> anyhow::Result<Bundle> {
        self.bundles += 1;
        let dir = self.dir.join(format!("bundle{}", self.bundles));
        Bundle::create(&dir, self.source, args)
    }

    /// A new container id, unique on the host, remembered for clean-up.
    pub fn new_id(&mut self) -> String {
        let id = format!("{}-{}", self.id_prefix, self.ids.len() + 1);
        self.ids.push(id.clone());
        id
    }

    /// Sets `linux.cgroupsPath` to a per-container path under [`CGROUP_PARENT`] and remembers
    /// it for clean-up.
    pub fn cgroup_path(&mut self, bundle: &mut Bundle, id: &str) -> String {
        let path = format!("/{CGROUP_PARENT}/{id}");
        bundle.config["linux"]["cgroupsPath"] = serde_json::json!(path);
        self.cgroups.push(path.clone());
        path
    }

    /// Where the container of `bundle` writes its stdout.
    pub fn stdout_path(bundle: &Bundle) -> PathBuf {
        bundle.dir().join("container.out")
    }

    /// The container's stdout so far.
    pub fn container_output(bundle: &Bundle) -> String {
        fs::read_to_string(Self::stdout_path(bundle)).unwrap_or_default()
    }

    /// Saves the config and runs `create`; the result may be a failure (error cases).
    pub fn try_create(&mut self, bundle: &Bundle, id: &str) -> anyhow::Result<Output> {
        bundle.save()?;
        self.rt
            .create(id, bundle.dir(), None, &Self::stdout_path(bundle))
    }

    /// Saves the config and creates the container, failing on error.
    pub fn create(&mut self, bundle: &Bundle, id: &str) -> anyhow::Result<()> {
        self.try_create(bundle, id)?.ok()?;
        Ok(())
    }

    /// `start ID`, failing on error.
    pub fn start(&self, id: &str) -> anyhow::Result<()> {
        self.rt.run(&["start", id])?.ok()?;
        Ok(())
    }

    /// Creates and starts a container of `bundle`.
    pub fn create_start(&mut self, bundle: &Bundle) -> anyhow::Result<String> {
        let id = self.new_id();
        self.create(bundle, &id)?;
        self.start(&id)?;
        Ok(id)
    }

    /// Creates and starts a container that is expected to keep running, and waits until its
    /// status is `running`. Returns its id and host pid.
    pub fn start_running(&mut self, bundle: &Bundle) -> anyhow::Result<(String, String)> {
        let id = self.create_start(bundle)?;
        self.rt.wait_status(&id, "running", STATUS_TIMEOUT)?;
        let pid = self.pid(&id)?;
        Ok((id, pid))
    }

    /// The host pid from `state ID`.
    pub fn pid(&self, id: &str) -> anyhow::Result<String> {
        let state = self.rt.state(id)?;
        let pid = state["pid"]
            .as_u64()
            .filter(|p| *p > 0)
            .with_context(|| format!("state of {id} has no positive pid: {state}"))?;
        Ok(pid.to_string())
    }

    /// Runs the container to completion (create, start, wait for `stopped`) and returns its
    /// stdout. The container is deleted afterwards.
    pub fn run_to_exit(&mut self, bundle: &Bundle) -> anyhow::Result<String> {
        let id = self.create_start(bundle)?;
        self.rt.wait_status(&id, "stopped", STATUS_TIMEOUT)?;
        self.rt.run(&["delete", &id])?.ok()?;
        Ok(Self::container_output(bundle))
    }

    /// Runs the probe as the container's process (with `paths` as its arguments) and parses
    /// its report.
    pub fn probe(&mut self, bundle: &mut Bundle, paths: &[&str]) -> anyhow::Result<Report> {
        let mut args = vec![crate::bundle::PROBE];
        args.extend_from_slice(paths);
        bundle.args(&args);
        let out = self.run_to_exit(bundle)?;
        probe::parse(&out)
    }

    /// Deletes every container the case created (`delete --force`) and the leftover cgroups,
    /// then removes the case directory unless `keep`. Errors are ignored: clean-up never hides
    /// the case's own result.
    pub fn cleanup(&self, keep: bool) {
        for id in &self.ids {
            let _ = self.rt.run(&["delete", "--force", id]);
        }
        for cg in &self.cgroups {
            host::remove_cgroup_everywhere(cg);
        }
        if keep {
            return;
        }
        // A broken runtime could leave a mount under the case directory in the host's mount
        // namespace; never let `remove_dir_all` descend into it.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = self.dir.to_string_lossy().into_owned();
        let leftover = mounts
            .lines()
            .filter_map(probe::MountInfo::parse)
            .find(|m| m.mount_point.starts_with(&prefix));
        match leftover {
            Some(m) => eprintln!(
                "oci-conformance: not removing {}: {} is still mounted",
                self.dir.display(),
                m.mount_point
            ),
            None => {
                let _ = fs::remove_dir_all(&self.dir);
            }
        }
    }
}
