//! Images: names pointing at manifests, their import, export, unpack and garbage collection.
//!
//! An image record (see [`crate::metadata`]) maps a full name to a target descriptor (a manifest
//! or an index) and caches the config digest of this platform's manifest, which is docker's
//! image id. Several names can share one id; an image that loses its last name while still
//! wanted (a tag moved away by a load or a tag) is kept as `dangling@<id>`, which is what
//! `docker images` shows as `<none>:<none>`.
//!
//! Garbage collection is mark and sweep from the image records (target → index → manifests →
//! config + layers; config → the snapshots of its chain ids) plus the in-memory leases of the
//! operations in progress. Leases are not persisted: they cannot outlive the process, and at
//! start-up a collection with no leases removes whatever a killed operation left.

mod export;
mod import;
pub mod oci;
mod pull;
mod push;
pub mod reference;
pub mod unpack;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::ErrorKind;
use crate::content::{self, ContentStore};
use crate::digest::{Digest, is_hex};
use crate::metadata::{self, Descriptor, ImageRecord, MetadataStore, SnapshotKind, Table};
use crate::registry;
use crate::snapshots::{self, Snapshotter};
use oci::{ImageConfig, Index, Manifest};
use reference::Reference;

pub use import::Loaded;
pub use pull::Pulled;
pub use push::Pushed;

/// The name prefix of untagged images.
pub const DANGLING_PREFIX: &str = "dangling@";
/// Snapshot label: bytes of the uncompressed layer applied to it.
pub const LABEL_SIZE: &str = "skiff.size";
/// Snapshot key prefix of layers being unpacked.
const EXTRACT_PREFIX: &str = "extract-";

/// Errors of the image service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image matches.
    #[error("No such image: {0}")]
    NotFound(String),
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] reference::ParseError),
    /// A short id matches several images.
    #[error("ambiguous image id prefix {0:?}")]
    Ambiguous(String),
    /// Deleting by id an image that several names share, without force.
    #[error(
        "conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories"
    )]
    MultipleNames {
        /// The short id.
        id: String,
    },
    /// A file a manifest names is missing from the archive.
    #[error("invalid archive: {0} is referenced but missing")]
    MissingFile(String),
    /// A JSON document of the archive or store does not parse.
    #[error("invalid JSON in {what}")]
    BadJson {
        /// Which document.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The archive has neither `manifest.json` nor `index.json`.
    #[error("invalid archive: neither manifest.json nor index.json found")]
    NotAnArchive,
    /// The tar stream itself is broken (truncated, corrupt).
    #[error("invalid archive: read tar stream")]
    Tar(#[source] io::Error),
    /// An index has no manifest for this platform.
    #[error("no manifest for platform linux/{arch} in {0}", arch = oci::platform_arch())]
    NoPlatform(Digest),
    /// A target of an unsupported media type.
    #[error("unsupported media type {0:?}")]
    MediaType(String),
    /// The config's `diff_ids` and the manifest's layers differ in number.
    #[error("image config has {diff_ids} diff ids but the manifest has {layers} layers")]
    LayerCount {
        /// Length of `rootfs.diff_ids`.
        diff_ids: usize,
        /// Number of layers.
        layers: usize,
    },
    /// A layer's uncompressed digest is not the config's diffID.
    #[error("wrong diff id for layer {layer}: calculated {actual}, expected {expected}")]
    DiffId {
        /// The layer blob.
        layer: Digest,
        /// What unpacking computed.
        actual: Digest,
        /// What the config says.
        expected: Digest,
    },
    /// Applying a layer failed.
    #[error("unpack layer {layer}")]
    Unpack {
        /// The layer blob.
        layer: Digest,
        /// The error.
        #[source]
        source: unpack::Error,
    },
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] content::Error),
    /// The snapshotter failed.
    #[error(transparent)]
    Snapshot(#[from] snapshots::Error),
    /// The metadata database failed.
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
    /// Writing an export failed.
    #[error("write image archive")]
    Write(#[source] io::Error),
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// The registry sent a manifest whose digest is not the one asked for.
    #[error("manifest digest mismatch: asked for {expected}, got {actual}")]
    ManifestDigest {
        /// The digest of the reference.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// Writing a downloaded blob into its ingest failed.
    #[error("write ingest of {digest}")]
    Ingest {
        /// The blob.
        digest: Digest,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The registry has no manifest under this reference.
    #[error("manifest for {reference} not found: {message}")]
    ManifestNotFound {
        /// The familiar reference.
        reference: String,
        /// The registry's message.
        message: String,
    },
    /// `docker pull -a` and other forms not supported.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl Error {
    /// The service-boundary class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) | Error::ManifestNotFound { .. } => ErrorKind::NotFound,
            Error::Reference(_)
            | Error::Ambiguous(_)
            | Error::MissingFile(_)
            | Error::BadJson { .. }
            | Error::NotAnArchive
            | Error::Tar(_)
            | Error::MediaType(_)
            | Error::LayerCount { .. }
            | Error::DiffId { .. }
            | Error::Unpack { .. } => ErrorKind::InvalidArgument,
            Error::NoPlatform(_) => ErrorKind::NotFound,
            Error::MultipleNames { .. } => ErrorKind::FailedPrecondition,
            Error::Content(e) => match e.kind() {
                // A blob of an archive that does not match its name is bad input.
                ErrorKind::FailedPrecondition => ErrorKind::InvalidArgument,
                k => k,
            },
            Error::Snapshot(e) => e.kind(),
            Error::Metadata(e) => e.kind(),
            Error::Write(_) | Error::Ingest { .. } => ErrorKind::Internal,
            Error::Registry(e) => e.kind(),
            Error::ManifestDigest { .. } => ErrorKind::Unavailable,
            Error::Unsupported(_) => ErrorKind::InvalidArgument,
        }
    }
}

fn bad_json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
    let what = what.into();
    move |source| Error::BadJson { what, source }
}

/// An image as docker sees it: one config (the id) and the names that point at it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The config digest.
    pub id: Digest,
    /// The records naming it (tags, or one dangling record).
    pub records: Vec<ImageRecord>,
    /// The manifest of this platform.
    pub manifest: Manifest,
    /// The interpreted config.
    pub config: ImageConfig,
    /// The whole config document.
    pub config_json: serde_json::Value,
    /// Uncompressed size of all layers.
    pub size: u64,
}

impl Image {
    /// Familiar `name:tag`s.
    pub fn repo_tags(&self) -> Vec<String> {
        self.named()
            .filter_map(|r| Reference::parse(&r.name).ok())
            .map(|r| r.familiar())
            .collect()
    }

    /// The records that are names (not the dangling placeholder).
    fn named(&self) -> impl Iterator<Item = &ImageRecord> {
        self.records
            .iter()
            .filter(|r| !r.name.starts_with(DANGLING_PREFIX))
    }

    /// Familiar `name@digest`s (one per repository).
    pub fn repo_digests(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for r in self.named() {
            if let Ok(mut reference) = Reference::parse(&r.name) {
                reference.tag = None;
                reference.digest = Some(r.target.digest.clone());
                out.insert(reference.familiar());
            }
        }
        out.into_iter().collect()
    }

    /// Whether no name points at it.
    pub fn dangling(&self) -> bool {
        self.records
            .iter()
            .all(|r| r.name.starts_with(DANGLING_PREFIX))
    }

    /// Unix seconds from the config's `created`, else the record's.
    pub fn created(&self) -> i64 {
        self.config
            .created
            .as_deref()
            .and_then(oci::parse_rfc3339)
            .or_else(|| self.records.iter().map(|r| r.created).min())
            .unwrap_or(0)
    }

    /// The newest tag time, docker's `Metadata.LastTagTime`.
    pub fn last_tag_time(&self) -> i64 {
        self.records.iter().map(|r| r.updated).max().unwrap_or(0)
    }

    /// The uncompressed size of each layer, base first (0 where unknown).
    pub fn layer_sizes(&self, svc: &ImageService) -> Vec<u64> {
        oci::chain_ids(&self.config.rootfs.diff_ids)
            .iter()
            .map(|c| svc.snapshot_size(c))
            .collect()
    }
}

/// One line of a delete's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// A name was removed (familiar form).
    Untagged(String),
    /// An image (its id) was removed.
    Deleted(Digest),
}

/// One progress message of a pull or push, in the terms of docker's JSON messages
/// (`{"id", "status", "progressDetail": {"current", "total"}, "aux"}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The line it updates (a short layer digest, a tag), if any.
    pub id: Option<String>,
    /// The text.
    pub status: String,
    /// Bytes done and total, for a progress bar.
    pub detail: Option<(u64, u64)>,
    /// A machine-readable result (`{"Tag","Digest","Size"}` after a push).
    pub aux: Option<serde_json::Value>,
}

impl Progress {
    /// A line without id.
    pub fn status(s: impl Into<String>) -> Self {
        Self {
            id: None,
            status: s.into(),
            detail: None,
            aux: None,
        }
    }

    /// A line for `id`.
    pub fn of(id: impl Into<String>, s: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            ..Self::status(s)
        }
    }

    /// A progress bar for `id`.
    pub fn bar(id: impl Into<String>, s: impl Into<String>, current: u64, total: u64) -> Self {
        Self {
            detail: Some((current, total)),
            ..Self::of(id, s)
        }
    }
}

/// What [`ImageService::unpack`] reports per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnpackStep {
    /// The layer is being applied.
    Extracting,
    /// The layer's snapshot is committed.
    Done,
}

/// An operation in progress: what it holds against garbage collection.
#[derive(Debug, Default)]
struct Lease {
    content: HashSet<Digest>,
    snapshots: HashSet<String>,
}

/// The image service over the three stores.
#[derive(Debug)]
pub struct ImageService {
    content: ContentStore,
    snapshots: Snapshotter,
    meta: Arc<MetadataStore>,
    /// Held by garbage collection for its whole run and by operations while they add to their
    /// lease, so a blob is never swept between its commit and its lease entry.
    leases: Mutex<HashMap<u64, Lease>>,
    next_lease: AtomicU64,
    /// Blob downloads in progress, so that concurrent pulls fetch each blob once.
    downloads: pull::InFlight,
}

/// A lease; dropping it releases what it holds.
struct LeaseGuard<'a> {
    svc: &'a ImageService,
    id: u64,
}

impl LeaseGuard<'_> {
    fn add_content(&self, d: &Digest) {
        self.svc.with_lease(self.id, |l| {
            l.content.insert(d.clone());
        });
    }
    fn add_snapshot(&self, key: &str) {
        self.svc.with_lease(self.id, |l| {
            l.snapshots.insert(key.to_owned());
        });
    }
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        self.svc
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl ImageService {
    /// Builds the service; call [`gc`](Self::gc) once at start-up to sweep what a killed
    /// process left.
    pub fn new(content: ContentStore, snapshots: Snapshotter, meta: Arc<MetadataStore>) -> Self {
        Self {
            content,
            snapshots,
            meta,
            leases: Mutex::default(),
            next_lease: AtomicU64::new(1),
            downloads: pull::InFlight::default(),
        }
    }

    /// The content store.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The snapshotter.
    pub fn snapshotter(&self) -> &Snapshotter {
        &self.snapshots
    }

    fn lease(&self) -> LeaseGuard<'_> {
        let id = self.next_lease.fetch_add(1, Ordering::Relaxed);
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Lease::default());
        LeaseGuard { svc: self, id }
    }

    fn with_lease(&self, id: u64, f: impl FnOnce(&mut Lease)) {
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = leases.get_mut(&id) {
            f(l);
        }
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, d: &Digest) -> Result<T, Error> {
        let bytes = self.content.read_all(d)?;
        serde_json::from_slice(&bytes).map_err(bad_json(d.to_string()))
    }

    /// The manifest of this platform for a target (resolving an index).
    pub fn platform_manifest(&self, target: &Descriptor) -> Result<(Descriptor, Manifest), Error> {
        let mut desc = target.clone();
        // Bounded: an index of indexes of … stops after a few hops.
        for _ in 0..4 {
            if oci::is_index(&desc.media_type) {
                let index: Index = self.read_json(&desc.digest)?;
                desc = oci::select_platform(&index)
                    .cloned()
                    .ok_or_else(|| Error::NoPlatform(desc.digest.clone()))?;
            } else if oci::is_manifest(&desc.media_type) {
                let m: Manifest = self.read_json(&desc.digest)?;
                return Ok((desc, m));
            } else {
                return Err(Error::MediaType(desc.media_type.clone()));
            }
        }
        Err(Error::MediaType(desc.media_type))
    }

    fn snapshot_size(&self, chain_id: &Digest) -> u64 {
        self.snapshots
            .stat(&chain_id.to_string())
            .ok()
            .and_then(|r| r.labels.get(LABEL_SIZE).and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    }

    fn load_image(&self, id: Digest, records: Vec<ImageRecord>) -> Result<Image, Error> {
        let (_, manifest) = self.platform_manifest(&records[0].target)?;
        let config_bytes = self.content.read_all(&id)?;
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(bad_json(id.to_string()))?;
        let config_json: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(bad_json(id.to_string()))?;
        let mut img = Image {
            id,
            records,
            manifest,
            config,
            config_json,
            size: 0,
        };
        let sizes = img.layer_sizes(self);
        img.size = if sizes.iter().all(|s| *s > 0) {
            sizes.iter().sum()
        } else {
            img.manifest.layers.iter().map(|l| l.size).sum()
        };
        Ok(img)
    }

    fn records(&self) -> Result<Vec<ImageRecord>, Error> {
        Ok(self
            .meta
            .list::<ImageRecord>(Table::Images)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Every image, grouped by id, newest first.
    pub fn list(&self) -> Result<Vec<Image>, Error> {
        let mut by_id: BTreeMap<Digest, Vec<ImageRecord>> = BTreeMap::new();
        for r in self.records()? {
            by_id.entry(r.config.clone()).or_default().push(r);
        }
        let mut out = Vec::new();
        for (id, records) in by_id {
            match self.load_image(id, records) {
                Ok(img) => out.push(img),
                // A record whose blobs are gone is reported by `verify`, not fatal for a list.
                Err(e) => tracing::warn!(error = %e, "skipping unreadable image"),
            }
        }
        out.sort_by_key(|i| std::cmp::Reverse(i.created()));
        Ok(out)
    }

    /// Finds an image by name (`busybox`, `busybox:1`, `busybox@sha256:…`), full id
    /// (`sha256:…`) or unique id prefix, as docker does.
    pub fn resolve(&self, s: &str) -> Result<Image, Error> {
        let records = self.records()?;
        let group = |id: &Digest| -> Vec<ImageRecord> {
            records
                .iter()
                .filter(|r| r.config == *id)
                .cloned()
                .collect()
        };
        // An id, full or short, with or without `sha256:`.
        let id_part = s.strip_prefix("sha256:").unwrap_or(s);
        let looks_like_id = !id_part.is_empty()
            && id_part.len() <= 64
            && id_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let by_name = match Reference::parse_tagged(s) {
            Ok(r) => self.match_reference(&records, &r),
            Err(e) if !looks_like_id => return Err(e.into()),
            Err(_) => None,
        };
        if let Some(id) = by_name {
            return self.load_image(id.clone(), group(&id));
        }
        if looks_like_id {
            let ids: BTreeSet<&Digest> = records
                .iter()
                .map(|r| &r.config)
                .filter(|d| d.hex().starts_with(id_part))
                .collect();
            match ids.len() {
                0 => {}
                1 => {
                    let id = ids.into_iter().next().cloned().expect("len is 1");
                    return self.load_image(id.clone(), group(&id));
                }
                _ if is_hex(id_part, 64) => {}
                _ => return Err(Error::Ambiguous(s.to_owned())),
            }
        }
        Err(Error::NotFound(s.to_owned()))
    }

    fn match_reference(&self, records: &[ImageRecord], r: &Reference) -> Option<Digest> {
        let records: Vec<&ImageRecord> = records
            .iter()
            .filter(|rec| !rec.name.starts_with(DANGLING_PREFIX))
            .collect();
        match &r.digest {
            Some(d) => records
                .iter()
                .find(|rec| {
                    rec.target.digest == *d
                        && Reference::parse(&rec.name)
                            .is_ok_and(|n| n.repository() == r.repository())
                })
                .map(|rec| rec.config.clone()),
            None => records
                .iter()
                .find(|rec| rec.name == r.to_string())
                .map(|rec| rec.config.clone()),
        }
    }

    /// Points `new_name` at the image `source` resolves to (`docker tag`).
    pub fn tag(&self, source: &str, new_name: &str) -> Result<Reference, Error> {
        let img = self.resolve(source)?;
        let r = Reference::parse_tagged(new_name)?;
        let rec = img.records[0].clone();
        self.set_names(&[(r.clone(), rec.target.clone(), img.id.clone())])?;
        Ok(r)
    }

    /// Writes image records for `(name, target, config)` in one transaction. A name that
    /// pointed at another image is moved; an image that loses its last name that way is kept
    /// as dangling; a dangling record of an image that gains a name is dropped.
    fn set_names(&self, names: &[(Reference, Descriptor, Digest)]) -> Result<(), Error> {
        let now = crate::unix_now();
        self.meta.write(|w| {
            for (name, target, config) in names {
                let key = name.to_string();
                let old: Option<ImageRecord> = w.get(Table::Images, &key)?;
                let created = old.as_ref().map_or(now, |o| o.created);
                let rec = ImageRecord {
                    name: key.clone(),
                    target: target.clone(),
                    config: config.clone(),
                    labels: BTreeMap::new(),
                    created,
                    updated: now,
                };
                w.put(Table::Images, &key, &rec)?;
                w.delete(Table::Images, &format!("{DANGLING_PREFIX}{config}"))?;
                if let Some(old) = old.filter(|o| o.config != *config) {
                    let all: Vec<(String, ImageRecord)> = w.list(Table::Images)?;
                    if !all.iter().any(|(_, r)| r.config == old.config) {
                        let key = format!("{DANGLING_PREFIX}{}", old.config);
                        w.put(
                            Table::Images,
                            &key,
                            &ImageRecord {
                                name: key.clone(),
                                ..old
                            },
                        )?;
                    }
                }
            }
            Ok::<_, Error>(())
        })
    }

    /// Adds a dangling record for an image loaded without a name, unless it has names.
    fn ensure_dangling(&self, target: &Descriptor, config: &Digest) -> Result<(), Error> {
        let now = crate::unix_now();
        self.meta.write(|w| {
            let all: Vec<(String, ImageRecord)> = w.list(Table::Images)?;
            if !all.iter().any(|(_, r)| r.config == *config) {
                let key = format!("{DANGLING_PREFIX}{config}");
                let rec = ImageRecord {
                    name: key.clone(),
                    target: target.clone(),
                    config: config.clone(),
                    labels: BTreeMap::new(),
                    created: now,
                    updated: now,
                };
                w.put(Table::Images, &key, &rec)?;
            }
            Ok::<_, Error>(())
        })
    }

    /// `docker rmi`: by name untags (and deletes the image with its last name); by id deletes
    /// the image, which needs `force` when several names share it. Blobs and snapshots no image
    /// needs any more are collected afterwards.
    pub fn delete(&self, s: &str, force: bool) -> Result<Vec<Deleted>, Error> {
        let img = self.resolve(s)?;
        let by_name = Reference::parse_tagged(s)
            .ok()
            .filter(|r| self.match_reference(&img.records, r).is_some());
        let named: Vec<&ImageRecord> = img
            .records
            .iter()
            .filter(|r| !r.name.starts_with(DANGLING_PREFIX))
            .collect();
        let to_remove: Vec<ImageRecord> = match &by_name {
            Some(r) if r.digest.is_none() => img
                .records
                .iter()
                .filter(|rec| rec.name == r.to_string())
                .cloned()
                .collect(),
            Some(r) => img
                .records
                .iter()
                .filter(|rec| {
                    Reference::parse(&rec.name).is_ok_and(|n| n.repository() == r.repository())
                })
                .cloned()
                .collect(),
            None => {
                if named.len() > 1 && !force {
                    return Err(Error::MultipleNames {
                        id: img.id.short().to_owned(),
                    });
                }
                img.records.clone()
            }
        };
        let remaining = img.records.len() - to_remove.len();
        self.meta.write(|w| {
            for r in &to_remove {
                w.delete(Table::Images, &r.name)?;
            }
            Ok::<_, Error>(())
        })?;
        let mut out: Vec<Deleted> = to_remove
            .iter()
            .filter(|r| !r.name.starts_with(DANGLING_PREFIX))
            .filter_map(|r| Reference::parse(&r.name).ok())
            .map(|r| Deleted::Untagged(r.familiar()))
            .collect();
        if remaining == 0 {
            out.extend(img.repo_digests().into_iter().map(Deleted::Untagged));
            out.push(Deleted::Deleted(img.id.clone()));
            self.gc()?;
        }
        Ok(out)
    }

    /// `docker image prune`: removes dangling images (all unused images with `all`; no
    /// container uses any yet). Returns what was deleted and the bytes reclaimed.
    pub fn prune(&self, all: bool) -> Result<(Vec<Deleted>, u64), Error> {
        let before: u64 = self.disk_usage()?;
        let mut out = Vec::new();
        for img in self.list()? {
            if !(all || img.dangling()) {
                continue;
            }
            self.meta.write(|w| {
                for r in &img.records {
                    w.delete(Table::Images, &r.name)?;
                }
                Ok::<_, Error>(())
            })?;
            out.extend(img.repo_tags().into_iter().map(Deleted::Untagged));
            out.push(Deleted::Deleted(img.id.clone()));
        }
        self.gc()?;
        let after = self.disk_usage()?;
        Ok((out, before.saturating_sub(after)))
    }

    /// Bytes used by blobs and snapshots.
    pub fn disk_usage(&self) -> Result<u64, Error> {
        let blobs: u64 = self.content.walk()?.iter().map(|(_, s)| s).sum();
        let mut snaps = 0;
        for (key, _) in self.snapshots.walk()? {
            snaps += self.snapshots.usage(&key).map(|u| u.size).unwrap_or(0);
        }
        Ok(blobs + snaps)
    }

    /// Mark and sweep: removes blobs and snapshots that no image and no lease holds, and
    /// ingests no writer holds when `startup` (nothing can be resuming them yet).
    pub fn gc(&self) -> Result<GcStats, Error> {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let mut marked: HashSet<Digest> = HashSet::new();
        let mut snaps: HashSet<String> = HashSet::new();
        for l in leases.values() {
            marked.extend(l.content.iter().cloned());
            snaps.extend(l.snapshots.iter().cloned());
        }
        let mut stack: Vec<Descriptor> = self.records()?.into_iter().map(|r| r.target).collect();
        // Each descriptor is visited once; the graph is a DAG of what exists.
        while let Some(d) = stack.pop() {
            if !marked.insert(d.digest.clone()) {
                continue;
            }
            if oci::is_index(&d.media_type) {
                if let Ok(index) = self.read_json::<Index>(&d.digest) {
                    stack.extend(index.manifests);
                }
            } else if oci::is_manifest(&d.media_type) {
                if let Ok(m) = self.read_json::<Manifest>(&d.digest) {
                    marked.insert(m.config.digest.clone());
                    if let Ok(cfg) = self.read_json::<ImageConfig>(&m.config.digest) {
                        snaps.extend(
                            oci::chain_ids(&cfg.rootfs.diff_ids)
                                .iter()
                                .map(|c| c.to_string()),
                        );
                    }
                    marked.extend(m.layers.into_iter().map(|l| l.digest));
                }
            }
        }
        let mut stats = GcStats::default();
        for (d, size) in self.content.walk()? {
            if !marked.contains(&d) && self.content.delete(&d)? {
                self.meta.delete(Table::Content, &d.to_string())?;
                stats.blobs += 1;
                stats.bytes += size;
            }
        }
        // Snapshots leaf first; bounded by the number of snapshots.
        let all = self.snapshots.walk()?;
        for _ in 0..=all.len() {
            let current = self.snapshots.walk()?;
            let parents: HashSet<&str> = current
                .iter()
                .filter_map(|(_, r)| r.parent.as_deref())
                .collect();
            let victims: Vec<&String> = current
                .iter()
                .filter(|(k, r)| {
                    let unpack_key =
                        k.starts_with(EXTRACT_PREFIX) || r.kind == SnapshotKind::Committed;
                    unpack_key && !snaps.contains(k.as_str()) && !parents.contains(k.as_str())
                })
                .map(|(k, _)| k)
                .collect();
            if victims.is_empty() {
                break;
            }
            for k in victims {
                self.snapshots.remove(k)?;
                stats.snapshots += 1;
            }
        }
        drop(leases);
        Ok(stats)
    }

    /// Start-up recovery: drops every ingest (no writer can be alive yet), removes snapshot
    /// directories without records, then collects garbage.
    pub fn recover(&self) -> Result<GcStats, Error> {
        for st in self.content.ingests()? {
            self.content.abort(&st.ref_)?;
        }
        self.snapshots.cleanup()?;
        self.gc()
    }

    /// Checks the store: every blob's bytes match its digest, and every image's closure
    /// (manifest, config, layers, snapshots) is present. Returns the problems found.
    pub fn verify(&self) -> Result<Vec<String>, Error> {
        let mut problems = Vec::new();
        for (d, _) in self.content.walk()? {
            if !self.content.verify(&d)? {
                problems.push(format!("blob {d} does not match its digest"));
            }
        }
        for r in self.records()? {
            let (_, m) = match self.platform_manifest(&r.target) {
                Ok(x) => x,
                Err(e) => {
                    problems.push(format!("image {}: {e}", r.name));
                    continue;
                }
            };
            for d in std::iter::once(&m.config).chain(&m.layers) {
                if !self.content.exists(&d.digest) {
                    problems.push(format!("image {}: blob {} missing", r.name, d.digest));
                }
            }
            if let Ok(cfg) = self.read_json::<ImageConfig>(&m.config.digest) {
                for c in oci::chain_ids(&cfg.rootfs.diff_ids) {
                    if self.snapshots.stat(&c.to_string()).is_err() {
                        problems.push(format!("image {}: snapshot {c} missing", r.name));
                    }
                }
            }
        }
        Ok(problems)
    }

    /// Unpacks the manifest's layers into committed snapshots named by chain id, verifying
    /// each layer's diffID against the config; layers already unpacked are skipped.
    fn unpack(
        &self,
        manifest: &Manifest,
        lease: &LeaseGuard<'_>,
        on_layer: &mut dyn FnMut(usize, UnpackStep),
    ) -> Result<(), Error> {
        let cfg: ImageConfig = self.read_json(&manifest.config.digest)?;
        let diff_ids = &cfg.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::LayerCount {
                diff_ids: diff_ids.len(),
                layers: manifest.layers.len(),
            });
        }
        let chain = oci::chain_ids(diff_ids);
        for (i, layer) in manifest.layers.iter().enumerate() {
            let name = chain[i].to_string();
            lease.add_snapshot(&name);
            if self.snapshots.stat(&name).is_ok() {
                continue;
            }
            let parent = i.checked_sub(1).map(|p| chain[p].to_string());
            on_layer(i, UnpackStep::Extracting);
            let key = format!("{EXTRACT_PREFIX}{}-{}", lease.id, chain[i].short());
            lease.add_snapshot(&key);
            self.snapshots
                .prepare(&key, parent.as_deref(), BTreeMap::new())?;
            let result = self
                .content
                .reader(&layer.digest)
                .map_err(Error::from)
                .and_then(|blob| {
                    let dir = self.snapshots.fs_dir(&key)?;
                    unpack::apply(io::BufReader::new(blob), &dir).map_err(|source| Error::Unpack {
                        layer: layer.digest.clone(),
                        source,
                    })
                })
                .and_then(|applied| {
                    if applied.diff_id == diff_ids[i] {
                        Ok(applied)
                    } else {
                        Err(Error::DiffId {
                            layer: layer.digest.clone(),
                            actual: applied.diff_id,
                            expected: diff_ids[i].clone(),
                        })
                    }
                });
            let applied = match result {
                Ok(a) => a,
                Err(e) => {
                    // The original error is what the caller needs; GC retries the removal.
                    let _ = self.snapshots.remove(&key);
                    return Err(e);
                }
            };
            let labels = BTreeMap::from([(LABEL_SIZE.to_owned(), applied.size.to_string())]);
            match self.snapshots.commit(&name, &key, labels) {
                Ok(()) => {}
                // Another import unpacked the same layer meanwhile.
                Err(snapshots::Error::AlreadyExists(_)) => {
                    let _ = self.snapshots.remove(&key);
                }
                Err(e) => return Err(e.into()),
            }
            on_layer(i, UnpackStep::Done);
        }
        Ok(())
    }

    /// The data root's path of a blob, for diagnostics.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.content.blob_path(d)
    }
}

/// What one garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blobs deleted.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Snapshots removed.
    pub snapshots: usize,
}
