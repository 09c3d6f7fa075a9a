//! The OCI bundles the cases run: a busybox rootfs plus the probe, and a `config.json` that the
//! suite writes itself (never the runtime's `spec`, so every runtime gets the same input).
//!
//! ```text
//! BUNDLE/config.json
//! BUNDLE/rootfs/bin/busybox          copy of the host's static /bin/busybox
//! BUNDLE/rootfs/bin/<applet>         symlinks to busybox, one per `busybox --list` entry
//! BUNDLE/rootfs/bin/probe            the suite's static probe (see probe.c)
//! BUNDLE/rootfs/{proc,sys,dev,tmp,etc,root}
//! BUNDLE/rootfs/etc/{passwd,group}
//! ```

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

/// The static busybox of Debian's `busybox-static`.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// The probe's path inside the container.
pub const PROBE: &str = "/bin/probe";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nuser:x:1000:\nnobody:x:65534:\n";

/// The `busybox --list` applets, read once per run.
#[derive(Debug, Clone)]
pub struct RootfsSource {
    busybox: Vec<u8>,
    applets: Vec<String>,
    probe: Vec<u8>,
    /// The host-side console-socket receiver (not copied into bundles).
    pub console: PathBuf,
}

impl RootfsSource {
    /// Reads the host's busybox (which must be static) and the compiled probe.
    pub fn load(probe: &Path, console: &Path) -> anyhow::Result<Self> {
        let busybox = fs::read(HOST_BUSYBOX)
            .with_context(|| format!("reading {HOST_BUSYBOX}: install Debian's busybox-static"))?;
        let out = Command::new(HOST_BUSYBOX)
            .arg("--list")
            .output()
            .with_context(|| format!("running {HOST_BUSYBOX} --list"))?;
        ensure!(
            out.status.success(),
            "{HOST_BUSYBOX} --list failed: {}",
            out.status
        );
        let applets = String::from_utf8(out.stdout)
            .context("busybox --list is not UTF-8")?
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
            .map(str::to_owned)
            .collect();
        let probe = fs::read(probe).with_context(|| format!("reading {}", probe.display()))?;
        Ok(Self {
            busybox,
            applets,
            probe,
            console: console.to_path_buf(),
        })
    }

    /// Builds a rootfs at `rootfs` (see the module docs for the layout).
    fn build(&self, rootfs: &Path) -> anyhow::Result<()> {
        for dir in ["bin", "proc", "sys", "dev", "etc", "root", "tmp"] {
            let path = rootfs.join(dir);
            fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
        }
        set_mode(rootfs, 0o755)?;
        set_mode(&rootfs.join("root"), 0o700)?;
        set_mode(&rootfs.join("tmp"), 0o1777)?;
        let bin = rootfs.join("bin");
        write_exe(&bin.join("busybox"), &self.busybox)?;
        write_exe(&bin.join("probe"), &self.probe)?;
        for applet in &self.applets {
            let link = bin.join(applet);
            symlink("busybox", &link).with_context(|| format!("symlink {}", link.display()))?;
        }
        fs::write(rootfs.join("etc/passwd"), PASSWD).context("writing etc/passwd")?;
        fs::write(rootfs.join("etc/group"), GROUP).context("writing etc/group")?;
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

fn write_exe(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    set_mode(path, 0o755)
}

/// An OCI bundle owned by one case.
#[derive(Debug)]
pub struct Bundle {
    dir: PathBuf,
    /// The config; written to `config.json` by [`Bundle::save`].
    pub config: Value,
}

impl Bundle {
    /// Creates `dir` with a fresh rootfs and the default config running `args`.
    pub fn create(dir: &Path, source: &RootfsSource, args: &[&str]) -> anyhow::Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        set_mode(dir, 0o755)?;
        source.build(&dir.join("rootfs"))?;
        let bundle = Self {
            dir: dir.to_path_buf(),
            config: default_config(args),
        };
        bundle.save()?;
        Ok(bundle)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// Writes `config.json`.
    pub fn save(&self) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(&self.config).context("serializing config")?;
        let path = self.dir.join("config.json");
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Runs `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Removes the namespace of OCI type `typ`.
    pub fn remove_namespace(&mut self, typ: &str) -> &mut Self {
        if let Some(nss) = self.config["linux"]["namespaces"].as_array_mut() {
            nss.retain(|n| n["type"] != typ);
        }
        self
    }

    /// Adds (or replaces) the namespace of OCI type `typ`, joining `path` when given.
    pub fn namespace(&mut self, typ: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(typ);
        let mut ns = json!({ "type": typ });
        if let Some(path) = path {
            ns["path"] = json!(path);
        }
        array_at(&mut self.config["linux"]["namespaces"]).push(ns);
        self
    }

    /// Appends a mount.
    pub fn mount(
        &mut self,
        destination: &str,
        typ: &str,
        source: &str,
        options: &[&str],
    ) -> &mut Self {
        let mount = json!({
            "destination": destination,
            "type": typ,
            "source": source,
            "options": options,
        });
        array_at(&mut self.config["mounts"]).push(mount);
        self
    }

    /// Appends a hook of `kind`.
    pub fn hook(&mut self, kind: &str, hook: Value) -> &mut Self {
        array_at(&mut self.config["hooks"][kind]).push(hook);
        self
    }

    /// Creates a directory inside the rootfs (relative to its root).
    pub fn mkdir_in_rootfs(&self, path: &str) -> anyhow::Result<PathBuf> {
        let full = self.rootfs().join(path.trim_start_matches('/'));
        fs::create_dir_all(&full).with_context(|| format!("mkdir {}", full.display()))?;
        Ok(full)
    }

    /// Writes a file inside the rootfs (relative to its root).
    pub fn write_in_rootfs(&self, path: &str, contents: &str) -> anyhow::Result<PathBuf> {
        let full = self.rootfs().join(path.trim_start_matches('/'));
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).with_context(|| format!("mkdir {}", parent.display()))?;
        }
        fs::write(&full, contents).with_context(|| format!("writing {}", full.display()))?;
        Ok(full)
    }
}

/// The array at `slot`, replacing a missing or non-array value with `[]`.
pub fn array_at(slot: &mut Value) -> &mut Vec<Value> {
    if !slot.is_array() {
        *slot = json!([]);
    }
    match slot {
        Value::Array(items) => items,
        _ => unreachable!("the slot was just made an array"),
    }
}

/// The capabilities every case's process gets unless it says otherwise (runc's `spec` set).
pub const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The config every case starts from: runc's `spec` defaults (new pid, network, ipc, uts and
/// mount namespaces; proc, /dev tmpfs, devpts, shm, mqueue, sysfs), with a writable root, no
/// terminal and no cgroup mount or resources (cases that test cgroups add them).
pub fn default_config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS,
                "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "oci-conformance",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}
