//! `docker push`: the blobs of an image's manifest, then the manifest, to the image's registry.
//!
//! Per blob, as docker does: `HEAD` (the repository has it → `Layer already exists`); else a
//! cross-repository mount from a repository of the same registry the blob is known to be in
//! (the `containerd.io/distribution.source.<registry>` label written by pulls and pushes →
//! `Mounted from <repo>`); else an upload — one monolithic `PUT` for blobs up to
//! [`CHUNK_SIZE`], `PATCH` chunks then a closing `PUT` above. The manifest goes last, under the
//! tag, byte for byte as stored, so its digest is the one `docker images --digests` shows. For
//! an image whose target is an index only this platform's manifest is pushed (docker's classic
//! store does the same).

use std::io::Read as _;

use bytes::Bytes;
use tokio::runtime::Handle;

use super::reference::Reference;
use super::{Error, ImageService, Progress};
use crate::digest::Digest;
use crate::metadata::Descriptor;
use crate::registry::{Client, MountResult};

/// Upload chunk size; blobs up to this size go in one `PUT`.
pub const CHUNK_SIZE: usize = 8 << 20;

/// One tag pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The tag.
    pub tag: String,
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest size.
    pub size: u64,
}

impl ImageService {
    /// Pushes `r`'s tag, or every tag of its repository when it has none. Blocking: call it off
    /// the async threads; `rt` runs the HTTP requests.
    pub fn push(
        &self,
        rt: &Handle,
        client: &Client,
        r: &Reference,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Vec<Pushed>, Error> {
        let mut records: Vec<(String, Descriptor)> = self
            .records()?
            .into_iter()
            .filter_map(|rec| {
                let n = Reference::parse(&rec.name).ok()?;
                let tag = n.tag.clone()?;
                let wanted = n.repository() == r.repository()
                    && n.digest.is_none()
                    && r.tag.as_ref().is_none_or(|t| *t == tag);
                wanted.then_some((tag, rec.target))
            })
            .collect();
        if records.is_empty() {
            return Err(Error::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                r.familiar_name()
            )));
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        progress(Progress::status(format!(
            "The push refers to repository [{}]",
            r.repository()
        )));
        let mut out = Vec::new();
        for (tag, target) in records {
            out.push(self.push_tag(rt, client, r, &tag, &target, progress)?);
        }
        Ok(out)
    }

    fn push_tag(
        &self,
        rt: &Handle,
        client: &Client,
        r: &Reference,
        tag: &str,
        target: &Descriptor,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Pushed, Error> {
        let repo = &r.path;
        let (mdesc, manifest) = self.platform_manifest(target)?;
        // docker lists the top layer first.
        for l in manifest.layers.iter().rev() {
            progress(Progress::of(l.digest.short(), "Preparing"));
        }
        for l in manifest.layers.iter().rev() {
            self.push_blob(rt, client, r, l, progress, true)?;
        }
        self.push_blob(rt, client, r, &manifest.config, &|_| {}, false)?;
        let bytes = self.content.read_all(&mdesc.digest)?;
        let size = bytes.len() as u64;
        rt.block_on(client.put_manifest(repo, tag, &mdesc.media_type, Bytes::from(bytes)))?;
        let mut blobs: Vec<Digest> = manifest.layers.iter().map(|l| l.digest.clone()).collect();
        blobs.push(manifest.config.digest.clone());
        blobs.push(mdesc.digest.clone());
        self.add_sources(r, &blobs)?;
        progress(Progress::status(format!(
            "{tag}: digest: {} size: {size}",
            mdesc.digest
        )));
        progress(Progress {
            aux: Some(serde_json::json!({
                "Tag": tag,
                "Digest": mdesc.digest.to_string(),
                "Size": size,
            })),
            ..Progress::status("")
        });
        Ok(Pushed {
            tag: tag.to_owned(),
            digest: mdesc.digest,
            size,
        })
    }

    fn push_blob(
        &self,
        rt: &Handle,
        client: &Client,
        r: &Reference,
        desc: &Descriptor,
        progress: &(dyn Fn(Progress) + Sync),
        show: bool,
    ) -> Result<(), Error> {
        let repo = &r.path;
        let id = desc.digest.short().to_owned();
        if rt.block_on(client.blob_exists(repo, &desc.digest))? {
            if show {
                progress(Progress::of(id, "Layer already exists"));
            }
            return Ok(());
        }
        // One mount attempt (docker tries the first known source): a `202` is an upload
        // the registry opened for us instead.
        let mut location = None;
        if let Some(from) = self
            .sources(&desc.digest, &r.domain)
            .into_iter()
            .find(|f| f != repo)
        {
            match rt.block_on(client.mount(repo, &desc.digest, &from))? {
                MountResult::Mounted => {
                    if show {
                        progress(Progress::of(id, format!("Mounted from {from}")));
                    }
                    return Ok(());
                }
                MountResult::Upload(loc) => location = Some(loc),
            }
        }
        let mut location = match location {
            Some(l) => l,
            None => rt.block_on(client.start_upload(repo))?,
        };
        let mut file = self.content.reader(&desc.digest)?;
        let read_err = |source| Error::Ingest {
            digest: desc.digest.clone(),
            source,
        };
        let mut offset = 0u64;
        loop {
            let mut buf = Vec::with_capacity(CHUNK_SIZE);
            (&mut file)
                .take(CHUNK_SIZE as u64)
                .read_to_end(&mut buf)
                .map_err(read_err)?;
            let n = buf.len() as u64;
            let last = offset + n >= desc.size || n == 0;
            if last {
                // Monolithic for a small blob; the closing PUT after chunks otherwise.
                rt.block_on(client.finish_upload(repo, &location, &desc.digest, Bytes::from(buf)))?;
                offset += n;
                if show {
                    progress(Progress::bar(id.clone(), "Pushing", offset, desc.size));
                }
                break;
            }
            location =
                rt.block_on(client.upload_chunk(repo, &location, offset, Bytes::from(buf)))?;
            offset += n;
            if show {
                progress(Progress::bar(id.clone(), "Pushing", offset, desc.size));
            }
        }
        if show {
            progress(Progress::of(id, "Pushed"));
        }
        Ok(())
    }
}
