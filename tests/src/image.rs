//! Test images built at test time: a busybox rootfs layer and an image config, written as a
//! docker-archive (`docker save` layout) and as an OCI image layout (a directory or a tar).
//!
//! Nothing here needs the internet or a registry: the only input is the host's static
//! `/bin/busybox` (Debian's `busybox-static`). The output is deterministic for a given busybox
//! binary: fixed mtimes and owners, entries sorted by path, JSON with sorted keys, so digests are
//! stable between runs and machines with the same busybox.
//!
//! Key types:
//! - [`Layer`] / [`LayerBuilder`]: one uncompressed layer tar (`application/vnd.oci.image.layer.v1.tar`)
//!   with its digest. Whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`) are plain
//!   entries, so multi-layer images with deletions are built the same way.
//! - [`Image`] / [`ImageBuilder`]: layers plus the image config (Env, Cmd, Entrypoint,
//!   WorkingDir, ExposedPorts, Labels, rootfs `diff_ids`, history) and a reference name such as
//!   `docker.io/library/busybox:latest`.
//!
//! Layouts written:
//!
//! ```text
//! docker-archive (docker save of docker ≤ 24, read by docker load, ctr import, podman load, skopeo):
//!   manifest.json              [{"Config":"<cfg>.json","RepoTags":["busybox:latest"],"Layers":["<diff>/layer.tar"]}]
//!   repositories               {"busybox":{"latest":"<top layer dir>"}}
//!   <cfg>.json                 the image config (file name = hex of its sha256)
//!   <diff>/VERSION             "1.0"
//!   <diff>/layer.tar           the uncompressed layer (dir name = hex of its diff_id)
//!
//! OCI image layout (image-spec image-layout.md; read by ctr import, skopeo, umoci, podman load):
//!   oci-layout                 {"imageLayoutVersion":"1.0.0"}
//!   index.json                 one manifest descriptor annotated with
//!                              org.opencontainers.image.ref.name = the full name and
//!                              io.containerd.image.name = the full name
//!   blobs/sha256/<hex>         config, manifest and layers
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::bundle::{GROUP, HOST_BUSYBOX, PASSWD, elf_has_interpreter};

/// The modification time of every tar entry and the `created` time of the config:
/// 2024-01-01T00:00:00Z.
pub const FIXED_MTIME: u64 = 1_704_067_200;
/// [`FIXED_MTIME`] in RFC 3339.
pub const FIXED_CREATED: &str = "2024-01-01T00:00:00Z";
/// The default `PATH` of images made here (the one Docker's busybox image has).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The reference name of [`Image::busybox`].
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";

/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image config.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of an uncompressed OCI layer.
pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// The OCI annotation naming an image in an index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation naming an image in an index (preferred by `ctr import`).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Busybox applets that every image made by [`LayerBuilder::busybox_rootfs`] must link; tests
/// rely on them. All other applets of the host busybox are linked too.
pub const REQUIRED_APPLETS: &[&str] = &[
    "sh", "echo", "cat", "true", "false", "sleep", "ls", "id", "ps", "top", "head", "hostname",
    "env",
];

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut hex = String::with_capacity(64);
    for byte in hash {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The hex part of a `sha256:<hex>` digest.
///
/// # Panics
/// If `digest` is not a sha256 digest (every digest made here is).
fn hex_of(digest: &str) -> &str {
    digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"))
}

/// One entry of a layer before it is packed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// Builds one layer tar; entries are keyed (and written sorted) by their path.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
    comment: String,
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The busybox rootfs: `bin/busybox` (the host's static binary), a symlink `bin/<applet>`
    /// → `busybox` for every applet it lists, `etc/passwd` and `etc/group` with root and nobody,
    /// `tmp` (1777), `root` (0700), and empty `proc`, `sys`, `dev`, `etc` directories.
    pub fn busybox_rootfs() -> anyhow::Result<Self> {
        let busybox = Path::new(HOST_BUSYBOX);
        ensure!(
            busybox.is_file(),
            "{HOST_BUSYBOX} is missing: install Debian's busybox-static (`apt-get install busybox-static`)"
        );
        let binary = fs::read(busybox).with_context(|| format!("reading {HOST_BUSYBOX}"))?;
        ensure!(
            !elf_has_interpreter(&binary),
            "{HOST_BUSYBOX} is dynamically linked and cannot run in a bare rootfs: install \
             busybox-static instead of busybox"
        );
        let list = Command::new(busybox)
            .arg("--list")
            .output()
            .with_context(|| format!("running {HOST_BUSYBOX} --list"))?;
        ensure!(
            list.status.success(),
            "{HOST_BUSYBOX} --list failed: {}",
            list.status
        );
        let applets = String::from_utf8(list.stdout).context("busybox --list is not UTF-8")?;
        let applets: Vec<&str> = applets
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && *a != "busybox" && !a.contains('/'))
            .collect();
        for required in REQUIRED_APPLETS {
            ensure!(
                applets.contains(required),
                "{HOST_BUSYBOX} has no `{required}` applet, which the test images need"
            );
        }

        let mut layer = Self::new().comment("skiff-tests image fixture: busybox rootfs");
        for dir in ["bin", "dev", "etc", "proc", "sys"] {
            layer = layer.dir(dir, 0o755);
        }
        layer = layer
            .dir("root", 0o700)
            .dir("tmp", 0o1777)
            .file("bin/busybox", 0o755, binary)
            .file("etc/passwd", 0o644, PASSWD)
            .file("etc/group", 0o644, GROUP);
        for applet in applets {
            layer = layer.symlink(&format!("bin/{applet}"), "busybox");
        }
        Ok(layer)
    }

    /// The `created_by` text of this layer's history entry.
    pub fn comment(mut self, comment: &str) -> Self {
        self.comment = comment.to_string();
        self
    }

    /// Adds a directory (and its missing parents, mode 0755).
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let path = clean(path);
        self.add_parents(&path);
        self.entries.insert(path, Entry::Dir { mode });
        self
    }

    /// Adds a regular file (and its missing parent directories).
    pub fn file(mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        let path = clean(path);
        self.add_parents(&path);
        self.entries.insert(
            path,
            Entry::File {
                mode,
                data: data.into(),
            },
        );
        self
    }

    /// Adds a symlink `path` → `target` (and its missing parent directories).
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let path = clean(path);
        self.add_parents(&path);
        self.entries.insert(
            path,
            Entry::Symlink {
                target: target.to_string(),
            },
        );
        self
    }

    /// Adds a whiteout deleting `path` of a lower layer (`dir/.wh.name`, image-spec layer.md).
    pub fn whiteout(self, path: &str) -> Self {
        let path = clean(path);
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (format!("{parent}/"), name.to_string()),
            None => (String::new(), path.clone()),
        };
        self.file(&format!("{parent}.wh.{name}"), 0o644, Vec::new())
    }

    /// Marks directory `path` opaque: the lower layers' contents of it are hidden
    /// (`path/.wh..wh..opq`).
    pub fn opaque(self, path: &str) -> Self {
        let path = clean(path);
        self.file(&format!("{path}/.wh..wh..opq"), 0o644, Vec::new())
    }

    fn add_parents(&mut self, path: &str) {
        let mut parent = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for component in &components[..components.len().saturating_sub(1)] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(component);
            self.entries
                .entry(parent.clone())
                .or_insert(Entry::Dir { mode: 0o755 });
        }
    }

    /// Packs the layer: a ustar archive, entries sorted by path, owner root:root (0:0), mtime
    /// [`FIXED_MTIME`], directories with a trailing `/`.
    pub fn build(&self) -> anyhow::Result<Layer> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_ustar();
            header.set_uid(0);
            header.set_gid(0);
            header.set_username("root")?;
            header.set_groupname("root")?;
            header.set_mtime(FIXED_MTIME);
            match entry {
                Entry::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, format!("{path}/"), std::io::empty())
                        .with_context(|| format!("packing directory {path}"))?;
                }
                Entry::File { mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_slice())
                        .with_context(|| format!("packing file {path}"))?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .with_context(|| format!("packing symlink {path}"))?;
                }
            }
        }
        let tar = builder.into_inner().context("finishing the layer tar")?;
        Ok(Layer {
            digest: sha256_digest(&tar),
            tar,
            created_by: if self.comment.is_empty() {
                "skiff-tests image fixture".to_string()
            } else {
                self.comment.clone()
            },
        })
    }
}

/// Strips leading `/` and `./` and trailing `/` from a layer path.
fn clean(path: &str) -> String {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    path.trim_end_matches('/').to_string()
}

/// One uncompressed layer: its tar bytes and digest (which is also its `diff_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    tar: Vec<u8>,
    digest: String,
    created_by: String,
}

impl Layer {
    /// The tar archive.
    pub fn tar(&self) -> &[u8] {
        &self.tar
    }

    /// `sha256:<hex>` of the tar; the layer is uncompressed, so this is its `diff_id` too.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The size of the tar in bytes.
    pub fn size(&self) -> u64 {
        self.tar.len() as u64
    }

    /// The paths in the tar, in archive order (directories with a trailing `/`).
    pub fn paths(&self) -> anyhow::Result<Vec<String>> {
        let mut archive = tar::Archive::new(self.tar.as_slice());
        let mut paths = Vec::new();
        for entry in archive.entries().context("reading the layer tar")? {
            let entry = entry.context("reading a layer tar entry")?;
            let path = entry.path_bytes();
            paths.push(String::from_utf8_lossy(&path).into_owned());
        }
        Ok(paths)
    }
}

/// Builds an [`Image`]: a name, layers bottom first, and the runtime config.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    name: String,
    layers: Vec<Layer>,
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    working_dir: String,
    user: Option<String>,
    exposed_ports: Vec<String>,
    labels: BTreeMap<String, String>,
}

impl ImageBuilder {
    /// An image named `name` (a full reference such as `docker.io/library/busybox:latest`;
    /// a missing tag means `latest`) with no layers, `Env` [`DEFAULT_PATH_ENV`] and
    /// `WorkingDir` `/`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            layers: Vec::new(),
            env: vec![DEFAULT_PATH_ENV.to_string()],
            cmd: None,
            entrypoint: None,
            working_dir: "/".to_string(),
            user: None,
            exposed_ports: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Adds a layer on top of the ones so far.
    pub fn layer(mut self, layer: Layer) -> Self {
        self.layers.push(layer);
        self
    }

    /// Sets (or replaces) `KEY=value` in `Env`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        let prefix = format!("{key}=");
        self.env.retain(|e| !e.starts_with(&prefix));
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Sets `Cmd`.
    pub fn cmd(mut self, cmd: &[&str]) -> Self {
        self.cmd = Some(cmd.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets `Entrypoint`.
    pub fn entrypoint(mut self, entrypoint: &[&str]) -> Self {
        self.entrypoint = Some(entrypoint.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets `WorkingDir`.
    pub fn working_dir(mut self, dir: &str) -> Self {
        self.working_dir = dir.to_string();
        self
    }

    /// Sets `User`.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Adds an `ExposedPorts` entry such as `80/tcp`.
    pub fn expose(mut self, port: &str) -> Self {
        self.exposed_ports.push(port.to_string());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    /// Serializes the config and the OCI manifest.
    pub fn build(self) -> anyhow::Result<Image> {
        ensure!(!self.layers.is_empty(), "an image needs at least one layer");
        let name = normalize_name(&self.name)?;
        let mut runtime = serde_json::Map::new();
        runtime.insert("Env".into(), json!(self.env));
        if let Some(cmd) = &self.cmd {
            runtime.insert("Cmd".into(), json!(cmd));
        }
        if let Some(entrypoint) = &self.entrypoint {
            runtime.insert("Entrypoint".into(), json!(entrypoint));
        }
        runtime.insert("WorkingDir".into(), json!(self.working_dir));
        if let Some(user) = &self.user {
            runtime.insert("User".into(), json!(user));
        }
        if !self.exposed_ports.is_empty() {
            let ports: serde_json::Map<String, Value> = self
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            runtime.insert("ExposedPorts".into(), Value::Object(ports));
        }
        if !self.labels.is_empty() {
            runtime.insert("Labels".into(), json!(self.labels));
        }
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": FIXED_CREATED,
            "config": Value::Object(runtime),
            "rootfs": {
                "type": "layers",
                "diff_ids": self.layers.iter().map(Layer::digest).collect::<Vec<_>>(),
            },
            "history": self.layers.iter().map(|l| json!({
                "created": FIXED_CREATED,
                "created_by": l.created_by,
            })).collect::<Vec<_>>(),
        });
        // serde_json's map is a BTreeMap (no `preserve_order`), so keys come out sorted and the
        // bytes are deterministic.
        let config_bytes = serde_json::to_vec(&config).context("serializing the image config")?;
        let config_digest = sha256_digest(&config_bytes);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": {
                "mediaType": MEDIA_TYPE_CONFIG,
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": self.layers.iter().map(|l| json!({
                "mediaType": MEDIA_TYPE_LAYER,
                "digest": l.digest(),
                "size": l.size(),
            })).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec(&manifest).context("serializing the manifest")?;
        Ok(Image {
            name,
            layers: self.layers,
            config,
            config_digest,
            config_bytes,
            manifest_digest: sha256_digest(&manifest_bytes),
            manifest_bytes,
        })
    }
}

/// `name` with a `:latest` tag when it has neither tag nor digest.
fn normalize_name(name: &str) -> anyhow::Result<String> {
    ensure!(!name.is_empty(), "an image name must not be empty");
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        Ok(name.to_string())
    } else {
        Ok(format!("{name}:latest"))
    }
}

/// Docker's short form of a full reference: `docker.io/library/busybox:latest` →
/// `busybox:latest`, `docker.io/foo/bar:1` → `foo/bar:1`; other registries are kept.
pub fn familiar_name(name: &str) -> &str {
    let rest = name.strip_prefix("docker.io/").unwrap_or(name);
    rest.strip_prefix("library/").unwrap_or(rest)
}

/// An image: layers, config and OCI manifest, serialized once.
#[derive(Debug, Clone)]
pub struct Image {
    name: String,
    layers: Vec<Layer>,
    config: Value,
    config_bytes: Vec<u8>,
    config_digest: String,
    manifest_bytes: Vec<u8>,
    manifest_digest: String,
}

impl Image {
    /// `docker.io/library/busybox:latest`: one [`LayerBuilder::busybox_rootfs`] layer,
    /// `Cmd ["sh"]`.
    ///
    /// # Panics
    /// If the image cannot be built (no static `/bin/busybox`).
    pub fn busybox() -> Self {
        Self::try_busybox().unwrap_or_else(|e| panic!("building the busybox test image: {e:#}"))
    }

    /// Like [`Image::busybox`], returning the error.
    pub fn try_busybox() -> anyhow::Result<Self> {
        Self::busybox_named(BUSYBOX_IMAGE)
    }

    /// The busybox image under another name.
    pub fn busybox_named(name: &str) -> anyhow::Result<Self> {
        ImageBuilder::new(name)
            .layer(LayerBuilder::busybox_rootfs()?.build()?)
            .cmd(&["sh"])
            .build()
    }

    /// A builder starting from this image: same layers and config, new name; add layers and
    /// settings on top.
    pub fn derive(&self, name: &str) -> ImageBuilder {
        let runtime = &self.config["config"];
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
        };
        let mut builder = ImageBuilder::new(name);
        builder.layers = self.layers.clone();
        builder.env = strings(&runtime["Env"]).unwrap_or_default();
        builder.cmd = strings(&runtime["Cmd"]);
        builder.entrypoint = strings(&runtime["Entrypoint"]);
        builder.working_dir = runtime["WorkingDir"].as_str().unwrap_or("/").to_string();
        builder.user = runtime["User"].as_str().map(str::to_string);
        if let Some(ports) = runtime["ExposedPorts"].as_object() {
            builder.exposed_ports = ports.keys().cloned().collect();
        }
        if let Some(labels) = runtime["Labels"].as_object() {
            builder.labels = labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect();
        }
        builder
    }

    /// The full reference name, e.g. `docker.io/library/busybox:latest`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as `docker save` writes it in `RepoTags` and `docker images` shows it, e.g.
    /// `busybox:latest`.
    pub fn repo_tag(&self) -> &str {
        familiar_name(&self.name)
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The image config as JSON.
    pub fn config(&self) -> &Value {
        &self.config
    }

    /// The serialized image config (the bytes that [`Image::config_digest`] hashes).
    pub fn config_bytes(&self) -> &[u8] {
        &self.config_bytes
    }

    /// `sha256:<hex>` of the config; Docker shows its hex as the image id.
    pub fn config_digest(&self) -> &str {
        &self.config_digest
    }

    /// Docker's image id: the config digest.
    pub fn id(&self) -> &str {
        &self.config_digest
    }

    /// The serialized OCI manifest.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// `sha256:<hex>` of the OCI manifest (the image's digest in an OCI layout or registry).
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    /// The OCI `index.json` naming this image.
    pub fn oci_index(&self) -> Value {
        json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [{
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": self.manifest_digest,
                "size": self.manifest_bytes.len(),
                "annotations": {
                    ANNOTATION_REF_NAME: self.name,
                    ANNOTATION_CONTAINERD_NAME: self.name,
                },
                "platform": { "architecture": "amd64", "os": "linux" },
            }],
        })
    }

    /// The files of the docker-archive (path, contents), in the order they are written.
    pub fn docker_archive_entries(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let config_name = format!("{}.json", hex_of(&self.config_digest));
        let layer_dirs: Vec<&str> = self.layers.iter().map(|l| hex_of(l.digest())).collect();
        let (repo, tag) = match self.repo_tag().rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => bail!("{} has no tag; docker-archive needs one", self.name),
        };
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": [self.repo_tag()],
            "Layers": layer_dirs.iter().map(|d| format!("{d}/layer.tar")).collect::<Vec<_>>(),
        }]);
        let top = layer_dirs
            .last()
            .context("an image has at least one layer")?;
        let repositories = json!({ repo: { tag: top } });
        let mut files = vec![(config_name, self.config_bytes.clone())];
        for (dir, layer) in layer_dirs.iter().zip(&self.layers) {
            files.push((format!("{dir}/VERSION"), b"1.0".to_vec()));
            files.push((format!("{dir}/layer.tar"), layer.tar.clone()));
        }
        files.push(("manifest.json".into(), serde_json::to_vec(&manifest)?));
        files.push(("repositories".into(), serde_json::to_vec(&repositories)?));
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// The files of the OCI image layout (path, contents), in the order they are written.
    pub fn oci_layout_entries(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        blobs.insert(
            hex_of(&self.config_digest).to_string(),
            self.config_bytes.clone(),
        );
        blobs.insert(
            hex_of(&self.manifest_digest).to_string(),
            self.manifest_bytes.clone(),
        );
        for layer in &self.layers {
            blobs.insert(hex_of(layer.digest()).to_string(), layer.tar.clone());
        }
        let mut files: Vec<(String, Vec<u8>)> = blobs
            .into_iter()
            .map(|(hex, data)| (format!("blobs/sha256/{hex}"), data))
            .collect();
        files.push((
            "index.json".into(),
            serde_json::to_vec(&self.oci_index()).context("serializing index.json")?,
        ));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Writes the image as a docker-archive tar at `path` (what `docker save` writes and
    /// `docker load -i`, `ctr images import`, `podman load -i` and `skopeo
    /// docker-archive:PATH` read).
    pub fn write_docker_archive(&self, path: &Path) -> anyhow::Result<()> {
        write_tar(path, &self.docker_archive_entries()?)
            .with_context(|| format!("writing docker-archive {}", path.display()))
    }

    /// Writes the image as a tar of an OCI image layout at `path` (what `ctr images import`,
    /// `podman load -i` and `skopeo oci-archive:PATH` read).
    pub fn write_oci_layout_tar(&self, path: &Path) -> anyhow::Result<()> {
        write_tar(path, &self.oci_layout_entries()?)
            .with_context(|| format!("writing OCI layout tar {}", path.display()))
    }

    /// Writes the image as an OCI image layout directory at `dir` (created if missing; for
    /// `skopeo oci:DIR`, `umoci --layout DIR`).
    pub fn write_oci_layout_dir(&self, dir: &Path) -> anyhow::Result<()> {
        for (name, data) in self.oci_layout_entries()? {
            let path = dir.join(&name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("mkdir {}", parent.display()))?;
            }
            fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Unpacks the layers, bottom first, into `dir` (created if missing) with the host `tar`
    /// semantics of the `tar` crate, applying whiteouts: a plain rootfs for `--rootfs` style
    /// tests. Ownership is preserved when running as root.
    pub fn unpack_rootfs(&self, dir: &Path) -> anyhow::Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        for layer in &self.layers {
            let mut archive = tar::Archive::new(layer.tar.as_slice());
            archive.set_preserve_permissions(true);
            archive.set_preserve_mtime(true);
            archive.set_overwrite(true);
            for entry in archive.entries().context("reading a layer")? {
                let mut entry = entry.context("reading a layer entry")?;
                let path = entry.path().context("a layer entry path")?.into_owned();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let parent = dir.join(path.parent().unwrap_or(Path::new("")));
                if name == ".wh..wh..opq" {
                    if let Ok(children) = fs::read_dir(&parent) {
                        for child in children.flatten() {
                            remove_any(&child.path())?;
                        }
                    }
                } else if let Some(deleted) = name.strip_prefix(".wh.") {
                    remove_any(&parent.join(deleted))?;
                } else {
                    entry
                        .unpack_in(dir)
                        .with_context(|| format!("unpacking {}", path.display()))?;
                }
            }
        }
        Ok(())
    }
}

fn remove_any(path: &Path) -> anyhow::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            fs::remove_dir_all(path).with_context(|| format!("rm -r {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).with_context(|| format!("rm {}", path.display())),
        Err(_) => Ok(()),
    }
}

/// Writes a tar of plain files at `path` with the same fixed metadata as the layers; the
/// parent directories of nested files get directory entries first.
fn write_tar(path: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs_written: Vec<String> = Vec::new();
    for (name, data) in files {
        let mut prefix = String::new();
        let components: Vec<&str> = name.split('/').collect();
        for component in &components[..components.len() - 1] {
            prefix.push_str(component);
            prefix.push('/');
            if !dirs_written.contains(&prefix) {
                let mut header = tar::Header::new_ustar();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_mtime(FIXED_MTIME);
                header.set_size(0);
                builder.append_data(&mut header, &prefix, std::io::empty())?;
                dirs_written.push(prefix.clone());
            }
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(FIXED_MTIME);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, data.as_slice())?;
    }
    let bytes = builder.into_inner()?;
    let mut file = fs::File::create(path)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn read_tar(path: &Path) -> BTreeMap<String, (tar::EntryType, Vec<u8>)> {
        let file = fs::File::open(path).expect("open the archive");
        let mut archive = tar::Archive::new(file);
        let mut out = BTreeMap::new();
        for entry in archive.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = entry.header().entry_type();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read entry");
            out.insert(name, (kind, data));
        }
        out
    }

    fn file<'a>(files: &'a BTreeMap<String, (tar::EntryType, Vec<u8>)>, name: &str) -> &'a [u8] {
        let (kind, data) = files
            .get(name)
            .unwrap_or_else(|| panic!("archive has no {name}; it has {:?}", files.keys()));
        assert_eq!(*kind, tar::EntryType::Regular, "{name} is not a file");
        data
    }

    fn json_of(data: &[u8]) -> Value {
        serde_json::from_slice(data).expect("valid JSON")
    }

    #[test]
    fn busybox_layer_has_the_rootfs() {
        let image = Image::busybox();
        assert_eq!(image.layers().len(), 1);
        let paths = image.layers()[0].paths().expect("layer paths");
        for want in [
            "bin/",
            "bin/busybox",
            "etc/passwd",
            "etc/group",
            "tmp/",
            "proc/",
            "sys/",
            "dev/",
            "root/",
        ] {
            assert!(paths.iter().any(|p| p == want), "layer lacks {want}");
        }
        for applet in REQUIRED_APPLETS {
            let want = format!("bin/{applet}");
            assert!(paths.contains(&want), "layer lacks {want}");
        }
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted, "layer entries are not sorted");
        assert!(
            paths
                .iter()
                .all(|p| !p.starts_with('/') && !p.starts_with("./"))
        );
    }

    #[test]
    fn layer_entries_have_fixed_metadata() {
        let layer = LayerBuilder::busybox_rootfs()
            .and_then(|l| l.build())
            .expect("busybox layer");
        let mut archive = tar::Archive::new(layer.tar());
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let h = entry.header();
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            assert_eq!(h.mtime().expect("mtime"), FIXED_MTIME, "{path}");
            assert_eq!(h.uid().expect("uid"), 0, "{path}");
            assert_eq!(h.gid().expect("gid"), 0, "{path}");
            if path == "tmp/" {
                assert_eq!(h.mode().expect("mode") & 0o7777, 0o1777);
            }
            if path.starts_with("bin/") && path != "bin/" && path != "bin/busybox" {
                assert_eq!(h.entry_type(), tar::EntryType::Symlink, "{path}");
                assert_eq!(
                    entry.link_name_bytes().as_deref(),
                    Some(&b"busybox"[..]),
                    "{path}"
                );
            }
        }
    }

    #[test]
    fn image_is_deterministic() {
        let a = Image::busybox();
        let b = Image::busybox();
        assert_eq!(a.manifest_digest(), b.manifest_digest());
        assert_eq!(a.config_bytes(), b.config_bytes());
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, image) in [&a, &b].iter().enumerate() {
            image
                .write_docker_archive(&dir.path().join(format!("{i}.docker.tar")))
                .expect("docker archive");
            image
                .write_oci_layout_tar(&dir.path().join(format!("{i}.oci.tar")))
                .expect("oci tar");
        }
        for kind in ["docker", "oci"] {
            let first = fs::read(dir.path().join(format!("0.{kind}.tar"))).expect("read");
            let second = fs::read(dir.path().join(format!("1.{kind}.tar"))).expect("read");
            assert!(
                first == second,
                "two {kind} archives of the same image differ"
            );
        }
    }

    #[test]
    fn config_has_the_runtime_settings_and_diff_ids() {
        let image = Image::busybox();
        let config = image.config();
        assert_eq!(config["architecture"], "amd64");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["config"]["Cmd"], json!(["sh"]));
        assert_eq!(config["config"]["WorkingDir"], "/");
        assert_eq!(config["config"]["Env"], json!([DEFAULT_PATH_ENV]));
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(
            config["rootfs"]["diff_ids"],
            json!([sha256_digest(image.layers()[0].tar())])
        );
        assert_eq!(config["history"].as_array().map(Vec::len), Some(1));
        assert_eq!(image.config_digest(), sha256_digest(image.config_bytes()));
        assert_eq!(image.name(), "docker.io/library/busybox:latest");
        assert_eq!(image.repo_tag(), "busybox:latest");
    }

    #[test]
    fn docker_archive_refers_to_existing_entries_with_matching_digests() {
        let image = Image::busybox();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("busybox.tar");
        image.write_docker_archive(&path).expect("write");
        let files = read_tar(&path);
        let manifest = json_of(file(&files, "manifest.json"));
        let entry = &manifest[0];
        assert_eq!(entry["RepoTags"], json!(["busybox:latest"]));
        let config_name = entry["Config"].as_str().expect("Config");
        let config = file(&files, config_name);
        assert_eq!(
            format!("{}.json", sha256_hex(config)),
            config_name,
            "config file name is not its digest"
        );
        let config = json_of(config);
        let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
        let layers = entry["Layers"].as_array().expect("Layers");
        assert_eq!(layers.len(), diff_ids.len());
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let data = file(&files, layer.as_str().expect("layer path"));
            assert_eq!(&json!(sha256_digest(data)), diff_id);
        }
        let repositories = json_of(file(&files, "repositories"));
        let top = layers
            .last()
            .and_then(Value::as_str)
            .and_then(|l| l.strip_suffix("/layer.tar"))
            .expect("top layer dir");
        assert_eq!(repositories["busybox"]["latest"], top);
    }

    #[test]
    fn oci_layout_refers_to_existing_blobs_with_matching_digests() {
        let image = Image::busybox();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("busybox-oci.tar");
        image.write_oci_layout_tar(&path).expect("write");
        let files = read_tar(&path);
        assert_eq!(
            json_of(file(&files, "oci-layout")),
            json!({"imageLayoutVersion": "1.0.0"})
        );
        let blob = |digest: &Value| -> Vec<u8> {
            let digest = digest.as_str().expect("digest string");
            let data = file(&files, &format!("blobs/sha256/{}", hex_of(digest))).to_vec();
            assert_eq!(sha256_digest(&data), digest, "blob content does not match");
            data
        };
        let index = json_of(file(&files, "index.json"));
        assert_eq!(index["schemaVersion"], 2);
        let desc = &index["manifests"][0];
        assert_eq!(
            desc["annotations"][ANNOTATION_REF_NAME],
            "docker.io/library/busybox:latest"
        );
        let manifest_bytes = blob(&desc["digest"]);
        assert_eq!(desc["size"], json!(manifest_bytes.len()));
        let manifest = json_of(&manifest_bytes);
        assert_eq!(manifest["mediaType"], MEDIA_TYPE_MANIFEST);
        let config_bytes = blob(&manifest["config"]["digest"]);
        assert_eq!(manifest["config"]["size"], json!(config_bytes.len()));
        let config = json_of(&config_bytes);
        for (i, layer) in manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .enumerate()
        {
            let data = blob(&layer["digest"]);
            assert_eq!(layer["size"], json!(data.len()));
            // Uncompressed layers: the digest is the diff_id.
            assert_eq!(layer["digest"], config["rootfs"]["diff_ids"][i]);
        }
        // Every blob is referenced (no stray files).
        let blobs = files
            .keys()
            .filter(|k| k.starts_with("blobs/sha256/") && !k.ends_with('/'));
        assert_eq!(blobs.count(), 2 + image.layers().len());
    }

    #[test]
    fn layers_with_whiteouts_unpack_in_order() {
        let base = Image::busybox();
        let top = LayerBuilder::new()
            .file("etc/motd", 0o644, "hello\n")
            .whiteout("etc/group")
            .opaque("tmp")
            .build()
            .expect("top layer");
        let paths = top.paths().expect("paths");
        assert!(paths.contains(&"etc/.wh.group".to_string()), "{paths:?}");
        assert!(paths.contains(&"tmp/.wh..wh..opq".to_string()), "{paths:?}");
        let image = base
            .derive("example.test/derived")
            .layer(top)
            .expose("80/tcp")
            .build()
            .expect("derived image");
        assert_eq!(image.name(), "example.test/derived:latest");
        assert_eq!(image.repo_tag(), "example.test/derived:latest");
        assert_eq!(image.layers().len(), 2);
        assert_eq!(
            image.config()["config"]["ExposedPorts"],
            json!({"80/tcp": {}})
        );
        assert_eq!(image.config()["history"].as_array().map(Vec::len), Some(2));

        let dir = tempfile::tempdir().expect("tempdir");
        image.unpack_rootfs(dir.path()).expect("unpack");
        assert!(dir.path().join("bin/busybox").is_file());
        assert!(dir.path().join("etc/passwd").is_file());
        assert!(!dir.path().join("etc/group").exists());
        assert_eq!(
            fs::read_to_string(dir.path().join("etc/motd")).expect("motd"),
            "hello\n"
        );
    }

    #[test]
    fn familiar_names() {
        assert_eq!(
            familiar_name("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar_name("docker.io/foo/bar:1"), "foo/bar:1");
        assert_eq!(familiar_name("127.0.0.1:5000/x:y"), "127.0.0.1:5000/x:y");
        assert_eq!(
            normalize_name("127.0.0.1:5000/x").expect("name"),
            "127.0.0.1:5000/x:latest"
        );
    }
}
