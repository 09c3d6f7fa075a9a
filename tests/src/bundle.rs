//! OCI bundles with a static busybox rootfs.
//!
//! Layout of a bundle made by [`Bundle::create_at`]:
//!
//! ```text
//! DIR/config.json          from `<runtime> spec`, then process.terminal = false
//! DIR/rootfs/bin/busybox   copy of the host's /bin/busybox (Debian's busybox-static)
//! DIR/rootfs/bin/<applet>  symlinks to busybox, one per `busybox --list` entry
//! DIR/rootfs/{proc,sys,dev,tmp,etc,root}
//! DIR/rootfs/etc/{passwd,group}   root (0) and nobody (65534)
//! ```
//!
//! The config is produced by the runtime under test itself, so each runtime is tested with its
//! own defaults (runc's default spec makes the root read-only, for instance). Every mutator
//! writes `config.json` back immediately, so a test cannot forget to save.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::runtime::{Runtime, open_tempdir};

/// Where the static busybox comes from (Debian's `busybox-static` package).
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Contents of the rootfs's `/etc/passwd`.
pub(crate) const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
/// Contents of the rootfs's `/etc/group`.
pub(crate) const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

/// An OCI bundle: a directory with `config.json` and a busybox `rootfs/`.
#[derive(Debug)]
pub struct Bundle {
    path: PathBuf,
    config: Value,
    /// Set for temporary bundles: removes the directory on drop.
    _temp: Option<TempDir>,
}

impl Bundle {
    /// A temporary bundle whose `config.json` comes from `rt`'s `spec` command. The directory is
    /// removed on drop (the runtime owns and removes any mounts, in its own mount namespace).
    ///
    /// # Panics
    /// If the bundle cannot be built (no static busybox, `spec` fails, ...).
    pub fn new(rt: &Runtime) -> Self {
        let temp = open_tempdir("skiff-bundle-").expect("creating the bundle's temp dir");
        let mut bundle = Self::create_at(temp.path(), rt.bin())
            .unwrap_or_else(|e| panic!("building a busybox bundle: {e:#}"));
        bundle._temp = Some(temp);
        bundle
    }

    /// Builds a persistent bundle in `dir`, which must be missing or empty, with `config.json`
    /// produced by `<runtime> spec --bundle DIR` and `process.terminal` set to false.
    pub fn create_at(dir: &Path, runtime: &Path) -> anyhow::Result<Self> {
        if dir.exists() {
            let mut entries =
                fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
            ensure!(
                entries.next().is_none(),
                "{} is not empty; remove it or pick another directory",
                dir.display()
            );
        } else {
            fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod 0755 {}", dir.display()))?;
        let path = fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        build_rootfs(&path.join("rootfs"))?;
        run_spec(runtime, &path)?;
        let config_path = path.join("config.json");
        let text = fs::read_to_string(&config_path)
            .with_context(|| format!("`{} spec` wrote no config.json", runtime.display()))?;
        let config: Value = serde_json::from_str(&text)
            .with_context(|| format!("`{} spec` wrote invalid JSON", runtime.display()))?;
        let mut bundle = Self {
            path,
            config,
            _temp: None,
        };
        bundle.try_update(|c| c["process"]["terminal"] = json!(false))?;
        Ok(bundle)
    }

    /// The bundle directory (absolute, canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bundle directory as UTF-8 (temp paths always are).
    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("bundle paths are UTF-8")
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.path.join("rootfs")
    }

    /// The current config.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// Applies `f` to the config and writes `config.json`.
    pub fn try_update(&mut self, f: impl FnOnce(&mut Value)) -> anyhow::Result<()> {
        f(&mut self.config);
        self.try_save()
    }

    /// Applies `f` to the config and writes `config.json`.
    ///
    /// # Panics
    /// If `config.json` cannot be written.
    pub fn config_mut(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.save();
        self
    }

    /// Writes `config.json` from the in-memory config.
    pub fn try_save(&self) -> anyhow::Result<()> {
        let path = self.path.join("config.json");
        let text = serde_json::to_string_pretty(&self.config).context("serializing config")?;
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// Writes `config.json` from the in-memory config.
    ///
    /// # Panics
    /// If it cannot be written.
    pub fn save(&self) {
        self.try_save()
            .unwrap_or_else(|e| panic!("saving config.json: {e:#}"));
    }

    /// Replaces `config.json` with arbitrary text (for malformed-config tests). Later mutators
    /// overwrite it again from the in-memory config.
    pub fn write_raw_config(&self, text: &str) {
        let path = self.path.join("config.json");
        fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Sets `process.args`.
    pub fn set_args(&mut self, args: &[&str]) -> &mut Self {
        self.config_mut(|c| c["process"]["args"] = json!(args))
    }

    /// Sets `process.args` to `["sh", "-c", script]`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.set_args(&["sh", "-c", script])
    }

    /// Sets (or replaces) `KEY=value` in `process.env`.
    pub fn set_env(&mut self, key: &str, value: &str) -> &mut Self {
        let entry = format!("{key}={value}");
        let prefix = format!("{key}=");
        self.config_mut(|c| {
            let env = array_at(&mut c["process"]["env"]);
            env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
            env.push(json!(entry));
        })
    }

    /// Sets `process.terminal`.
    pub fn set_terminal(&mut self, terminal: bool) -> &mut Self {
        self.config_mut(|c| c["process"]["terminal"] = json!(terminal))
    }

    /// Sets `root.readonly`.
    pub fn set_readonly_root(&mut self, readonly: bool) -> &mut Self {
        self.config_mut(|c| c["root"]["readonly"] = json!(readonly))
    }

    /// Sets `hostname`.
    pub fn set_hostname(&mut self, hostname: &str) -> &mut Self {
        self.config_mut(|c| c["hostname"] = json!(hostname))
    }

    /// Adds an annotation.
    pub fn add_annotation(&mut self, key: &str, value: &str) -> &mut Self {
        self.config_mut(|c| {
            if !c["annotations"].is_object() {
                c["annotations"] = json!({});
            }
            c["annotations"][key] = json!(value);
        })
    }

    /// Appends a mount to `mounts`.
    pub fn add_mount(
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
        self.config_mut(|c| array_at(&mut c["mounts"]).push(mount))
    }

    /// Bind-mounts host directory `source` at `destination` with `options` (plus `rbind`), and
    /// creates the mount point in the rootfs first so the test does not depend on the runtime
    /// creating it in a read-only root (that has its own test).
    pub fn bind_dir(&mut self, source: &Path, destination: &str, options: &[&str]) -> &mut Self {
        let mount_point = self.rootfs().join(destination.trim_start_matches('/'));
        fs::create_dir_all(&mount_point)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", mount_point.display()));
        let mut opts = vec!["rbind"];
        opts.extend_from_slice(options);
        let source = source.to_str().expect("bind sources are UTF-8");
        self.add_mount(destination, "bind", source, &opts)
    }

    /// Bind-mounts host directory `source` at `destination` (`rbind`) without creating the mount
    /// point first: the runtime resolves and creates it (security tests plant symlinks on the
    /// way).
    pub fn bind_dir_raw(&mut self, source: &Path, destination: &str) -> &mut Self {
        let source = source.to_str().expect("bind sources are UTF-8");
        self.add_mount(destination, "bind", source, &["rbind"])
    }

    /// Adds (or replaces) a namespace of OCI type `typ` (`pid`, `network`, `mount`, `ipc`,
    /// `uts`, `user`, `cgroup`, `time`), optionally joining the one at `path`.
    pub fn set_namespace(&mut self, typ: &str, path: Option<&str>) -> &mut Self {
        let mut ns = json!({ "type": typ });
        if let Some(path) = path {
            ns["path"] = json!(path);
        }
        self.config_mut(|c| {
            let namespaces = array_at(&mut c["linux"]["namespaces"]);
            namespaces.retain(|n| n["type"] != typ);
            namespaces.push(ns);
        })
    }

    /// Removes the namespace of OCI type `typ`, if configured.
    pub fn remove_namespace(&mut self, typ: &str) -> &mut Self {
        self.config_mut(|c| array_at(&mut c["linux"]["namespaces"]).retain(|n| n["type"] != typ))
    }

    /// True if a namespace of OCI type `typ` is configured.
    pub fn has_namespace(&self, typ: &str) -> bool {
        self.config["linux"]["namespaces"]
            .as_array()
            .is_some_and(|nss| nss.iter().any(|n| n["type"] == typ))
    }

    /// Appends a hook of `kind` (`prestart`, `createRuntime`, `createContainer`,
    /// `startContainer`, `poststart`, `poststop`).
    pub fn add_hook(
        &mut self,
        kind: &str,
        path: &str,
        args: &[&str],
        env: &[&str],
        timeout: Option<u64>,
    ) -> &mut Self {
        let mut hook = json!({ "path": path, "args": args });
        if !env.is_empty() {
            hook["env"] = json!(env);
        }
        if let Some(timeout) = timeout {
            hook["timeout"] = json!(timeout);
        }
        self.config_mut(|c| array_at(&mut c["hooks"][kind]).push(hook))
    }
}

/// The array at `slot`, replacing a missing or non-array value with `[]`.
fn array_at(slot: &mut Value) -> &mut Vec<Value> {
    if !slot.is_array() {
        *slot = json!([]);
    }
    match slot {
        Value::Array(items) => items,
        _ => unreachable!("the slot was just made an array"),
    }
}

/// Builds the busybox rootfs at `rootfs` (see the module docs for the layout).
fn build_rootfs(rootfs: &Path) -> anyhow::Result<()> {
    let busybox = Path::new(HOST_BUSYBOX);
    ensure!(
        busybox.is_file(),
        "{HOST_BUSYBOX} is missing: install Debian's busybox-static (`apt-get install busybox-static`)"
    );
    let image = fs::read(busybox).with_context(|| format!("reading {HOST_BUSYBOX}"))?;
    ensure!(
        !elf_has_interpreter(&image),
        "{HOST_BUSYBOX} is dynamically linked and cannot run in a bare rootfs: install \
         busybox-static instead of busybox"
    );

    for dir in ["bin", "proc", "sys", "dev", "etc", "root", "tmp"] {
        let path = rootfs.join(dir);
        fs::create_dir_all(&path).with_context(|| format!("mkdir {}", path.display()))?;
    }
    fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", rootfs.display()))?;
    fs::set_permissions(rootfs.join("root"), fs::Permissions::from_mode(0o700))
        .context("chmod rootfs/root")?;
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))
        .context("chmod rootfs/tmp")?;

    let target = rootfs.join("bin/busybox");
    fs::write(&target, &image).with_context(|| format!("writing {}", target.display()))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", target.display()))?;

    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .with_context(|| format!("running {HOST_BUSYBOX} --list"))?;
    if !list.status.success() {
        bail!("{HOST_BUSYBOX} --list failed: {}", list.status);
    }
    let applets = String::from_utf8(list.stdout).context("busybox --list is not UTF-8")?;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = rootfs.join("bin").join(applet);
        symlink("busybox", &link).with_context(|| format!("symlink {}", link.display()))?;
    }

    fs::write(rootfs.join("etc/passwd"), PASSWD).context("writing etc/passwd")?;
    fs::write(rootfs.join("etc/group"), GROUP).context("writing etc/group")?;
    Ok(())
}

/// True if the ELF image has a `PT_INTERP` program header (is dynamically linked).
pub(crate) fn elf_has_interpreter(image: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let read_u16 = |at: usize| {
        image
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let read_u32 = |at: usize| {
        image
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let read_u64 = |at: usize| {
        image.get(at..at + 8).map(|b| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(b);
            u64::from_le_bytes(bytes)
        })
    };
    // Only 64-bit little-endian ELF matters on these machines (EI_CLASS 2, EI_DATA 1).
    if image.get(0..4) != Some(b"\x7fELF") || image.get(4) != Some(&2) || image.get(5) != Some(&1) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (read_u64(0x20), read_u16(0x36), read_u16(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).any(|i| read_u32(phoff + i * usize::from(phentsize)) == Some(PT_INTERP))
}

/// Runs `<runtime> spec --bundle DIR` in DIR (runc writes `config.json` into the bundle, or
/// into the cwd without `--bundle`).
fn run_spec(runtime: &Path, dir: &Path) -> anyhow::Result<()> {
    let out = Command::new(runtime)
        .arg("spec")
        .arg("--bundle")
        .arg(dir)
        .current_dir(dir)
        .output()
        .with_context(|| format!("running `{} spec`", runtime.display()))?;
    ensure!(
        out.status.success(),
        "`{} spec --bundle {}` failed ({}): {}",
        runtime.display(),
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_busybox_is_static() {
        let image = fs::read(HOST_BUSYBOX).expect("busybox-static is installed");
        assert!(!elf_has_interpreter(&image));
    }

    #[test]
    fn dynamic_binaries_have_an_interpreter() {
        let image = fs::read("/bin/sh").expect("/bin/sh exists");
        assert!(elf_has_interpreter(&image));
    }

    #[test]
    fn array_at_replaces_non_arrays() {
        let mut v = json!({"a": 1});
        array_at(&mut v["a"]).push(json!(2));
        array_at(&mut v["b"]).push(json!(3));
        assert_eq!(v, json!({"a": [2], "b": [3]}));
    }
}
