//! Import of `docker save` archives and OCI image layout tars (`docker load`).
//!
//! The tar is streamed once: `blobs/sha256/<hex>` entries go straight through the content
//! store's verified ingest (a blob whose bytes do not match its name fails the import); other
//! large entries (the legacy `<id>/layer.tar`) are ingested under the digest of their bytes;
//! small JSON documents (`manifest.json`, `index.json`, legacy `<id>.json` configs) are kept in
//! memory. Only after the whole stream has been read and every image's layers have been
//! unpacked and checked against the config's diffIDs are the image records written, in one
//! transaction — so a bad archive leaves no image behind, and the garbage collection run on
//! failure removes its blobs and snapshots.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::path::{Component, Path};

use serde::Deserialize;

use super::oci::{self, Index, Manifest};
use super::reference::Reference;
use super::{Error, ImageService, LeaseGuard, bad_json};
use crate::content;
use crate::digest::Digest;
use crate::metadata::Descriptor;

/// Entries at most this large that are not blobs are kept in memory (configs, manifests).
const SMALL_FILE: u64 = 4 << 20;

/// One image an import made visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The image id (config digest).
    pub id: Digest,
    /// Its names, familiar form (empty for an untagged image).
    pub names: Vec<String>,
}

/// An entry of `manifest.json` (docker-archive).
#[derive(Debug, Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// What the tar stream left for the resolve phase.
#[derive(Default)]
struct Entries {
    /// Small files by normalised path.
    small: HashMap<String, Vec<u8>>,
    /// Files ingested into the content store, by normalised path.
    blobs: HashMap<String, (Digest, u64)>,
    /// Symlinks (legacy archives link shared `layer.tar`s), path → normalised target.
    links: HashMap<String, String>,
}

impl Entries {
    fn resolve_link<'a>(&'a self, mut path: &'a str) -> &'a str {
        for _ in 0..8 {
            match self.links.get(path) {
                Some(t) => path = t,
                None => break,
            }
        }
        path
    }
}

fn normalise(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?.to_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

fn blob_path_digest(path: &str) -> Option<Digest> {
    path.strip_prefix("blobs/sha256/")
        .and_then(|hex| Digest::from_hex(hex).ok())
}

impl ImageService {
    /// Imports a docker-archive or OCI layout tar. `progress` receives the lines docker prints
    /// (`Loaded image: busybox:latest`).
    pub fn import(
        &self,
        r: impl Read,
        progress: &mut dyn FnMut(String),
    ) -> Result<Vec<Loaded>, Error> {
        let lease = self.lease();
        let mut refs = Vec::new();
        let result = self.import_inner(r, &lease, &mut refs);
        match result {
            Ok(loaded) => {
                for l in &loaded {
                    if l.names.is_empty() {
                        progress(format!("Loaded image ID: {}\n", l.id));
                    }
                    for n in &l.names {
                        progress(format!("Loaded image: {n}\n"));
                    }
                }
                Ok(loaded)
            }
            Err(e) => {
                for r in &refs {
                    // Cleanup must not hide the import's own error.
                    let _ = self.content.abort(r);
                }
                drop(lease);
                if let Err(gc) = self.gc() {
                    tracing::warn!(error = %gc, "garbage collection after a failed import");
                }
                Err(e)
            }
        }
    }

    fn import_inner(
        &self,
        r: impl Read,
        lease: &LeaseGuard<'_>,
        refs: &mut Vec<String>,
    ) -> Result<Vec<Loaded>, Error> {
        let entries = self.read_archive(r, lease, refs)?;
        // (names, target descriptor) per image.
        let mut images: Vec<(Vec<Reference>, Descriptor)> = Vec::new();
        let index: Option<Index> = entries
            .small
            .get("index.json")
            .map(|b| serde_json::from_slice(b).map_err(bad_json("index.json")))
            .transpose()?;
        if let Some(bytes) = entries.small.get("manifest.json") {
            let list: Vec<ArchiveManifest> =
                serde_json::from_slice(bytes).map_err(bad_json("manifest.json"))?;
            for m in list {
                let target = self.archive_manifest(&entries, &m, index.as_ref(), lease)?;
                let names = m
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| Reference::parse_tagged(t))
                    .collect::<Result<Vec<_>, _>>()?;
                images.push((names, target));
            }
        } else if let Some(index) = &index {
            for d in &index.manifests {
                let name = d
                    .annotations
                    .get("io.containerd.image.name")
                    .or_else(|| d.annotations.get("org.opencontainers.image.ref.name"))
                    // A bare tag (`latest`) names no repository: the image loads untagged.
                    .filter(|n| n.contains(':') || n.contains('/'));
                let names = name.map(|n| Reference::parse_tagged(n)).transpose()?;
                let mut target = d.clone();
                target.annotations.clear();
                images.push((names.into_iter().collect(), target));
            }
        } else {
            return Err(Error::NotAnArchive);
        }

        let mut loaded = Vec::new();
        let mut records = Vec::new();
        for (names, target) in images {
            if !self.content.exists(&target.digest) {
                return Err(Error::MissingFile(format!(
                    "blobs/sha256/{}",
                    target.digest.hex()
                )));
            }
            lease.add_content(&target.digest);
            let (_, manifest) = self.platform_manifest(&target)?;
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if !self.content.exists(&d.digest) {
                    return Err(Error::MissingFile(format!(
                        "blobs/sha256/{}",
                        d.digest.hex()
                    )));
                }
            }
            self.unpack(&manifest, lease, &mut |_, _| {})?;
            let id = manifest.config.digest.clone();
            loaded.push(Loaded {
                id: id.clone(),
                names: names.iter().map(Reference::familiar).collect(),
            });
            if names.is_empty() {
                records.push((None, target, id));
            } else {
                for n in names {
                    records.push((Some(n), target.clone(), id.clone()));
                }
            }
        }
        let named: Vec<(Reference, Descriptor, Digest)> = records
            .iter()
            .filter_map(|(n, t, c)| n.clone().map(|n| (n, t.clone(), c.clone())))
            .collect();
        self.set_names(&named)?;
        for (n, t, c) in &records {
            if n.is_none() {
                self.ensure_dangling(t, c)?;
            }
        }
        Ok(loaded)
    }

    /// Streams the tar, ingesting blobs and keeping small documents.
    fn read_archive(
        &self,
        r: impl Read,
        lease: &LeaseGuard<'_>,
        refs: &mut Vec<String>,
    ) -> Result<Entries, Error> {
        let mut entries = Entries::default();
        let mut archive = tar::Archive::new(r);
        for entry in archive.entries().map_err(Error::Tar)? {
            let mut entry = entry.map_err(Error::Tar)?;
            let raw_path = entry.path().map_err(Error::Tar)?.into_owned();
            let Some(path) = normalise(&raw_path) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    if let Some(target) = entry.link_name().map_err(Error::Tar)? {
                        let base = Path::new(&path).parent().unwrap_or(Path::new(""));
                        let joined = if entry.header().entry_type() == tar::EntryType::Link {
                            target.into_owned()
                        } else {
                            base.join(target)
                        };
                        if let Some(t) = normalise(&joined) {
                            entries.links.insert(path, t);
                        }
                    }
                    continue;
                }
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {}
                _ => continue,
            }
            let size = entry.header().size().map_err(Error::Tar)?;
            let expected = blob_path_digest(&path);
            if expected.is_none() && size <= SMALL_FILE {
                let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                entry.read_to_end(&mut buf).map_err(Error::Tar)?;
                entries.small.insert(path, buf);
                continue;
            }
            let digest =
                self.ingest_entry(&mut entry, &path, size, expected.as_ref(), lease, refs)?;
            entries.blobs.insert(path, (digest, size));
        }
        Ok(entries)
    }

    fn ingest_entry(
        &self,
        entry: &mut impl Read,
        path: &str,
        size: u64,
        expected: Option<&Digest>,
        lease: &LeaseGuard<'_>,
        refs: &mut Vec<String>,
    ) -> Result<Digest, Error> {
        if let Some(d) = expected {
            lease.add_content(d);
            if self.content.exists(d) {
                io::copy(entry, &mut io::sink()).map_err(Error::Tar)?;
                return Ok(d.clone());
            }
        }
        let ref_ = format!("import-{}-{path}", lease.id);
        refs.push(ref_.clone());
        let mut w = self.content.writer(&ref_, expected)?;
        w.truncate()?;
        io::copy(entry, &mut w).map_err(Error::Tar)?;
        // Commit and lease entry under the lease lock: GC cannot run in between.
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let digest = match w.commit(Some(size), expected) {
            Ok(d) | Err(content::Error::AlreadyExists(d)) => d,
            Err(e) => return Err(e.into()),
        };
        if let Some(l) = leases.get_mut(&lease.id) {
            l.content.insert(digest.clone());
        }
        Ok(digest)
    }

    /// Writes a small blob, holding it in the lease before it exists.
    pub(super) fn write_leased(
        &self,
        lease: &LeaseGuard<'_>,
        bytes: &[u8],
        expected: Option<&Digest>,
    ) -> Result<Digest, Error> {
        lease.add_content(&Digest::of(bytes));
        Ok(self.content.write_blob(bytes, expected)?)
    }

    /// Builds (or finds in `index.json`) the manifest of one `manifest.json` entry.
    fn archive_manifest(
        &self,
        entries: &Entries,
        m: &ArchiveManifest,
        index: Option<&Index>,
        lease: &LeaseGuard<'_>,
    ) -> Result<Descriptor, Error> {
        let config_path = entries.resolve_link(&m.config);
        let config = match (
            entries.small.get(config_path),
            entries.blobs.get(config_path),
        ) {
            (Some(bytes), _) => {
                self.write_leased(lease, bytes, blob_path_digest(config_path).as_ref())?
            }
            (None, Some((d, _))) => d.clone(),
            (None, None) => return Err(Error::MissingFile(m.config.clone())),
        };
        // docker ≥ 25 writes an OCI layout too: keep its manifest (and so its digest).
        if let Some(index) = index {
            for d in &index.manifests {
                if let Ok((desc, man)) = self.platform_manifest(d) {
                    if man.config.digest == config {
                        lease.add_content(&desc.digest);
                        return Ok(d.clone()).map(|mut d: Descriptor| {
                            d.annotations.clear();
                            d
                        });
                    }
                }
            }
        }
        let config_size = self.content.size(&config)?;
        let mut layers = Vec::new();
        for l in &m.layers {
            let p = entries.resolve_link(l);
            let (digest, size) = match (entries.blobs.get(p), entries.small.get(p)) {
                (Some(b), _) => b.clone(),
                (None, Some(bytes)) => {
                    let d = self.write_leased(lease, bytes, blob_path_digest(p).as_ref())?;
                    (d, bytes.len() as u64)
                }
                (None, None) => return Err(Error::MissingFile(l.clone())),
            };
            let mut head = [0u8; 4];
            let n = self.content.reader(&digest)?.read(&mut head).unwrap_or(0);
            let media_type = match super::unpack::detect(&head[..n]) {
                super::unpack::Compression::Gzip => oci::MT_DOCKER_LAYER_GZIP,
                super::unpack::Compression::Zstd => oci::MT_OCI_LAYER_ZSTD,
                super::unpack::Compression::None => oci::MT_DOCKER_LAYER,
            };
            layers.push(Descriptor {
                media_type: media_type.into(),
                digest,
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MT_DOCKER_MANIFEST.into()),
            config: Descriptor {
                media_type: oci::MT_DOCKER_CONFIG.into(),
                digest: config,
                size: config_size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(bad_json("generated manifest"))?;
        let digest = self.write_leased(lease, &bytes, None)?;
        Ok(Descriptor {
            media_type: oci::MT_DOCKER_MANIFEST.into(),
            digest,
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_archive_paths() {
        assert_eq!(
            normalise(Path::new("./manifest.json")).unwrap(),
            "manifest.json"
        );
        assert_eq!(
            normalise(Path::new("a/../b/layer.tar")).unwrap(),
            "b/layer.tar"
        );
        assert!(normalise(Path::new("/etc/passwd")).is_none());
        assert!(normalise(Path::new("../x")).is_none());
    }
}
