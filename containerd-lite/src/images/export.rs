//! Export to the archive `docker save` writes since docker 25: an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) plus docker's `manifest.json` whose paths
//! point into `blobs/`, so that both `docker load` (20.10 and later) and OCI tools read it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use serde_json::json;

use super::reference::Reference;
use super::{Error, ImageService, bad_json};
use crate::digest::Digest;
use crate::metadata::Descriptor;

impl ImageService {
    /// Writes the images `names` resolve to as one tar to `out`. A name is saved with that
    /// name as its tag; an id with all of the image's names.
    pub fn export(&self, names: &[String], out: impl Write) -> Result<(), Error> {
        let mut blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut index = Vec::new();
        let mut manifest_json = Vec::new();
        for n in names {
            let img = self.resolve(n)?;
            let tags: Vec<Reference> = match Reference::parse_tagged(n).ok().filter(|r| {
                r.digest.is_none() && img.records.iter().any(|rec| rec.name == r.to_string())
            }) {
                Some(r) => vec![r],
                None if n.contains('@') => Vec::new(),
                None => img
                    .records
                    .iter()
                    .filter_map(|r| Reference::parse(&r.name).ok())
                    .collect(),
            };
            let target = img.records[0].target.clone();
            // The whole closure of the target: index, this platform's manifest, config, layers.
            let (mdesc, manifest) = self.platform_manifest(&target)?;
            blobs.insert(target.digest.clone());
            blobs.insert(mdesc.digest.clone());
            blobs.insert(manifest.config.digest.clone());
            blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
            let mut entries = tags
                .iter()
                .map(|t| {
                    let mut d = target.clone();
                    d.annotations = BTreeMap::from([
                        ("io.containerd.image.name".to_owned(), t.to_string()),
                        (
                            "org.opencontainers.image.ref.name".to_owned(),
                            t.tag.clone().unwrap_or_default(),
                        ),
                    ]);
                    d
                })
                .collect::<Vec<Descriptor>>();
            if entries.is_empty() {
                entries.push(target.clone());
            }
            index.extend(entries);
            manifest_json.push(json!({
                "Config": format!("blobs/sha256/{}", manifest.config.digest.hex()),
                "RepoTags": tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
                "Layers": manifest.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
            }));
        }

        let mut tar = tar::Builder::new(out);
        let dir = |tar: &mut tar::Builder<_>, path: &str| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(0);
            tar.append_data(&mut h, path, std::io::empty())
                .map_err(Error::Write)
        };
        dir(&mut tar, "blobs/")?;
        dir(&mut tar, "blobs/sha256/")?;
        for d in &blobs {
            let mut f = self.content.reader(d)?;
            let size = f.metadata().map_err(Error::Write)?.len();
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o444);
            h.set_size(size);
            h.set_mtime(0);
            tar.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), &mut f)
                .map_err(Error::Write)?;
        }
        let file = |tar: &mut tar::Builder<_>, path: &str, v: serde_json::Value| {
            let bytes = serde_json::to_vec(&v).map_err(bad_json(path))?;
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(bytes.len() as u64);
            h.set_mtime(0);
            tar.append_data(&mut h, path, &bytes[..])
                .map_err(Error::Write)
        };
        file(
            &mut tar,
            "oci-layout",
            json!({"imageLayoutVersion": "1.0.0"}),
        )?;
        file(
            &mut tar,
            "index.json",
            json!({
                "schemaVersion": 2,
                "mediaType": super::oci::MT_OCI_INDEX,
                "manifests": index,
            }),
        )?;
        file(
            &mut tar,
            "manifest.json",
            serde_json::Value::Array(manifest_json),
        )?;
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(Error::Write)
    }
}
