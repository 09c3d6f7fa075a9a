//! `docker pull`: resolve a reference at its registry, fetch manifest, config and layers through
//! the verified content store, unpack, then name the image.
//!
//! The order keeps every failure invisible: blobs go through ingests and appear only once
//! their digest checked out; the image record is written last, in one transaction, after every
//! layer is unpacked and matched against the config's diffIDs. On any error the ingests of the
//! pull are aborted and a garbage collection (with this pull's lease gone) removes whatever it
//! had committed but no image references — so a registry that dies mid-pull leaves no image,
//! no ingest and no orphan snapshot.
//!
//! Layers download [`CONCURRENT_DOWNLOADS`] at a time (docker's `max-concurrent-downloads`
//! default). A blob that another pull in this daemon is already downloading is not fetched
//! twice: the first pull to want a digest registers it in [`InFlight`] and downloads it; later
//! ones show `Waiting` and, once it is committed, find it in the store. If the first fails the
//! next one in line tries itself.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::oci::{self, ImageConfig, Index, Manifest};
use super::reference::{DEFAULT_TAG, Reference};
use super::{Error, ImageService, LeaseGuard, Progress, UnpackStep, bad_json};
use crate::content;
use crate::digest::Digest;
use crate::metadata::{ContentRecord, Descriptor, ImageRecord, Table};
use crate::registry::{self, Client};

/// Layers fetched at once by one pull (docker's `max-concurrent-downloads` default).
pub const CONCURRENT_DOWNLOADS: usize = 3;
/// Least time between two progress bars of one layer.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Content label naming the repositories a blob is known to be in, per registry (containerd's
/// `containerd.io/distribution.source.<registry>`); push uses it for cross-repository mounts.
pub const LABEL_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";

/// What a pull produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The image id (config digest).
    pub id: Digest,
    /// The digest of the target (manifest or index) at the registry.
    pub digest: Digest,
    /// The name it was pulled as.
    pub reference: Reference,
    /// Whether the name pointed somewhere else (or nowhere) before.
    pub updated: bool,
}

/// Blob downloads in progress in this daemon, by digest.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    map: Mutex<HashMap<Digest, Arc<Flight>>>,
}

/// One download others can wait for.
#[derive(Debug, Default)]
struct Flight {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Flight {
    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = self.cv.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl InFlight {
    /// The flight for `d`, and whether the caller is its leader (must download and then
    /// [`finish`](Self::finish)).
    fn join(&self, d: &Digest) -> (Arc<Flight>, bool) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(d) {
            Some(f) => (f.clone(), false),
            None => {
                let f = Arc::new(Flight::default());
                map.insert(d.clone(), f.clone());
                (f, true)
            }
        }
    }

    fn finish(&self, d: &Digest, f: &Flight) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(d);
        *f.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        f.cv.notify_all();
    }
}

/// Releases a flight even when the leader's download panics or fails.
struct FlightGuard<'a> {
    inflight: &'a InFlight,
    digest: &'a Digest,
    flight: Arc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.inflight.finish(self.digest, &self.flight);
    }
}

type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);

impl ImageService {
    /// Pulls `r` (tag or digest; `latest` when neither) from its registry. Blocking: call it
    /// off the async threads; `rt` runs the HTTP requests.
    pub fn pull(
        &self,
        rt: &Handle,
        client: &Client,
        r: &Reference,
        progress: ProgressFn<'_>,
    ) -> Result<Pulled, Error> {
        let lease = self.lease();
        let result = self.pull_inner(rt, client, r, &lease, progress);
        if result.is_err() {
            drop(lease);
            if let Err(gc) = self.gc() {
                tracing::warn!(error = %gc, "garbage collection after a failed pull");
            }
        }
        result
    }

    fn pull_inner(
        &self,
        rt: &Handle,
        client: &Client,
        r: &Reference,
        lease: &LeaseGuard<'_>,
        progress: ProgressFn<'_>,
    ) -> Result<Pulled, Error> {
        let mut r = r.clone();
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        let repo = r.path.clone();
        let tag_or_digest = match (&r.digest, &r.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        };
        let (bytes, content_type) = match rt.block_on(client.manifest(&repo, &tag_or_digest)) {
            Err(registry::Error::Status {
                status: 404,
                message,
                ..
            }) => {
                return Err(Error::ManifestNotFound {
                    reference: r.familiar(),
                    message,
                });
            }
            other => other?,
        };
        let digest = Digest::of(&bytes);
        if let Some(want) = r.digest.as_ref().filter(|w| **w != digest) {
            return Err(Error::ManifestDigest {
                expected: want.clone(),
                actual: digest,
            });
        }
        let target = Descriptor {
            media_type: media_type_of(&bytes, content_type.as_deref(), &digest)?,
            digest: digest.clone(),
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        };
        self.write_leased(lease, &bytes, Some(&digest))?;
        let mut fetched = vec![target.digest.clone()];
        let manifest_desc = if oci::is_index(&target.media_type) {
            let index: Index =
                serde_json::from_slice(&bytes).map_err(bad_json(digest.to_string()))?;
            let d = oci::select_platform(&index)
                .cloned()
                .ok_or_else(|| Error::NoPlatform(digest.clone()))?;
            let (mbytes, _) = rt.block_on(client.manifest(&repo, &d.digest.to_string()))?;
            let actual = Digest::of(&mbytes);
            if actual != d.digest {
                return Err(Error::ManifestDigest {
                    expected: d.digest,
                    actual,
                });
            }
            self.write_leased(lease, &mbytes, Some(&d.digest))?;
            fetched.push(d.digest.clone());
            d
        } else if oci::is_manifest(&target.media_type) {
            target.clone()
        } else {
            return Err(Error::MediaType(target.media_type.clone()));
        };
        let manifest: Manifest = self.read_json(&manifest_desc.digest)?;
        progress(Progress::of(
            tag_or_digest.clone(),
            format!("Pulling from {repo}"),
        ));

        // The config first: it names the snapshots that tell which layers are already here.
        self.fetch_blob(rt, client, &repo, &manifest.config, lease, &|_| {})?;
        fetched.push(manifest.config.digest.clone());
        let cfg: ImageConfig = self.read_json(&manifest.config.digest)?;
        let chain = oci::chain_ids(&cfg.rootfs.diff_ids);
        let mut todo = Vec::new();
        for (i, l) in manifest.layers.iter().enumerate() {
            lease.add_content(&l.digest);
            fetched.push(l.digest.clone());
            let unpacked = chain
                .get(i)
                .is_some_and(|c| self.snapshots.stat(&c.to_string()).is_ok());
            if unpacked && self.content.exists(&l.digest) {
                progress(Progress::of(l.digest.short(), "Already exists"));
            } else {
                progress(Progress::of(l.digest.short(), "Pulling fs layer"));
                todo.push(l);
            }
        }
        self.fetch_all(rt, client, &repo, &todo, lease, progress)?;

        let layers = &manifest.layers;
        self.unpack(&manifest, lease, &mut |i, step| {
            let id = layers[i].digest.short().to_owned();
            match step {
                UnpackStep::Extracting => progress(Progress::of(id, "Extracting")),
                UnpackStep::Done => progress(Progress::of(id, "Pull complete")),
            }
        })?;

        let old: Option<ImageRecord> = self.meta.get(Table::Images, &r.to_string())?;
        let updated = old.is_none_or(|o| o.target.digest != target.digest);
        self.add_sources(&r, &fetched)?;
        let id = manifest.config.digest.clone();
        self.set_names(&[(r.clone(), target.clone(), id.clone())])?;
        progress(Progress::status(format!("Digest: {digest}")));
        progress(Progress::status(if updated {
            format!("Status: Downloaded newer image for {}", r.familiar())
        } else {
            format!("Status: Image is up to date for {}", r.familiar())
        }));
        Ok(Pulled {
            id,
            digest,
            reference: r,
            updated,
        })
    }

    /// Downloads `todo` with up to [`CONCURRENT_DOWNLOADS`] threads; the first error stops the
    /// others from starting new blobs and is returned.
    fn fetch_all(
        &self,
        rt: &Handle,
        client: &Client,
        repo: &str,
        todo: &[&Descriptor],
        lease: &LeaseGuard<'_>,
        progress: ProgressFn<'_>,
    ) -> Result<(), Error> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..CONCURRENT_DOWNLOADS.min(todo.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= todo.len() || failed.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Err(e) = self.fetch_blob(rt, client, repo, todo[i], lease, progress)
                        {
                            failed.store(true, Ordering::Relaxed);
                            first_error
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Makes `desc` present in the content store: already there, downloaded by another pull
    /// meanwhile, or downloaded here.
    fn fetch_blob(
        &self,
        rt: &Handle,
        client: &Client,
        repo: &str,
        desc: &Descriptor,
        lease: &LeaseGuard<'_>,
        progress: ProgressFn<'_>,
    ) -> Result<(), Error> {
        lease.add_content(&desc.digest);
        let id = desc.digest.short().to_owned();
        // Bounded: each round either finds the blob, downloads it, or waits for a leader that
        // finished (successfully or not).
        for _ in 0..4 {
            if self.content.exists(&desc.digest) {
                progress(Progress::of(id.clone(), "Download complete"));
                return Ok(());
            }
            let (flight, leader) = self.downloads.join(&desc.digest);
            if !leader {
                progress(Progress::of(id.clone(), "Waiting"));
                flight.wait();
                continue;
            }
            let _guard = FlightGuard {
                inflight: &self.downloads,
                digest: &desc.digest,
                flight,
            };
            return self.download(rt, client, repo, desc, progress);
        }
        Err(content::Error::Busy(format!("layer-{}", desc.digest)).into())
    }

    /// Streams one blob into its ingest and commits it (size and digest verified). On failure
    /// the ingest is removed: nothing of it stays on disk.
    fn download(
        &self,
        rt: &Handle,
        client: &Client,
        repo: &str,
        desc: &Descriptor,
        progress: ProgressFn<'_>,
    ) -> Result<(), Error> {
        let ref_ = format!("layer-{}", desc.digest);
        let mut w = match self.content.writer(&ref_, Some(&desc.digest)) {
            Err(content::Error::AlreadyExists(_)) => return Ok(()),
            other => other?,
        };
        let id = desc.digest.short().to_owned();
        let copied = (|| -> Result<(), Error> {
            let mut stream = rt.block_on(client.blob(repo, &desc.digest, w.offset()))?;
            if !stream.resumed {
                w.truncate()?;
            }
            let mut last = Instant::now();
            let ingest_err = |source| Error::Ingest {
                digest: desc.digest.clone(),
                source,
            };
            while let Some(chunk) = rt.block_on(stream.next_chunk())? {
                w.write_all(&chunk).map_err(ingest_err)?;
                if w.offset() > desc.size {
                    // More than the manifest promised: stop before filling the disk.
                    return Err(content::Error::SizeMismatch {
                        ref_: ref_.clone(),
                        actual: w.offset(),
                        expected: desc.size,
                    }
                    .into());
                }
                if last.elapsed() >= PROGRESS_INTERVAL {
                    last = Instant::now();
                    progress(Progress::bar(
                        id.clone(),
                        "Downloading",
                        w.offset(),
                        desc.size,
                    ));
                }
            }
            w.flush().map_err(ingest_err)?;
            Ok(())
        })();
        if let Err(e) = copied {
            drop(w);
            // The pull's error is what matters; a leftover ingest is dropped at start-up.
            let _ = self.content.abort(&ref_);
            return Err(e);
        }
        progress(Progress::bar(
            id.clone(),
            "Downloading",
            desc.size,
            desc.size,
        ));
        progress(Progress::of(id.clone(), "Verifying Checksum"));
        match w.commit(Some(desc.size), Some(&desc.digest)) {
            Ok(_) | Err(content::Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        progress(Progress::of(id, "Download complete"));
        Ok(())
    }

    /// Records that `blobs` are in `r`'s repository (content label per registry), for later
    /// cross-repository mounts.
    pub(super) fn add_sources(&self, r: &Reference, blobs: &[Digest]) -> Result<(), Error> {
        let key = format!("{LABEL_SOURCE_PREFIX}{}", r.domain);
        self.meta.write(|w| {
            for d in blobs {
                let mut rec: ContentRecord =
                    w.get(Table::Content, &d.to_string())?.unwrap_or_default();
                let repos = rec.labels.entry(key.clone()).or_default();
                if !repos.split(',').any(|x| x == r.path) {
                    if !repos.is_empty() {
                        repos.push(',');
                    }
                    repos.push_str(&r.path);
                }
                w.put(Table::Content, &d.to_string(), &rec)?;
            }
            Ok::<_, Error>(())
        })
    }

    /// The repositories of `domain` that `d` is known to be in.
    pub(super) fn sources(&self, d: &Digest, domain: &str) -> Vec<String> {
        self.meta
            .get::<ContentRecord>(Table::Content, &d.to_string())
            .ok()
            .flatten()
            .and_then(|rec| {
                rec.labels
                    .get(&format!("{LABEL_SOURCE_PREFIX}{domain}"))
                    .cloned()
            })
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The media type of a fetched manifest: its own `mediaType` field, else the `Content-Type`,
/// else the shape (`manifests` → index).
fn media_type_of(bytes: &[u8], content_type: Option<&str>, d: &Digest) -> Result<String, Error> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).map_err(bad_json(d.to_string()))?;
    let known = |m: &str| oci::is_index(m) || oci::is_manifest(m);
    if let Some(m) = p.media_type.filter(|m| known(m)) {
        return Ok(m);
    }
    if let Some(m) = content_type.filter(|m| known(m)) {
        return Ok(m.to_owned());
    }
    Ok(if p.manifests.is_some() {
        oci::MT_OCI_INDEX.to_owned()
    } else {
        oci::MT_OCI_MANIFEST.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_body_then_header() {
        let d = Digest::of(b"x");
        let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(media_type_of(m, None, &d).unwrap(), oci::MT_OCI_INDEX);
        let m = br#"{"schemaVersion":2,"config":{}}"#;
        assert_eq!(
            media_type_of(m, Some(oci::MT_DOCKER_MANIFEST), &d).unwrap(),
            oci::MT_DOCKER_MANIFEST
        );
        assert_eq!(media_type_of(m, None, &d).unwrap(), oci::MT_OCI_MANIFEST);
        assert!(media_type_of(b"nope", None, &d).is_err());
    }

    #[test]
    fn one_leader_per_digest() {
        let f = InFlight::default();
        let d = Digest::of(b"layer");
        let (flight, leader) = f.join(&d);
        assert!(leader);
        let (_, second) = f.join(&d);
        assert!(!second);
        let waiter = {
            let flight = flight.clone();
            std::thread::spawn(move || flight.wait())
        };
        f.finish(&d, &flight);
        waiter.join().unwrap();
        assert!(f.join(&d).1, "a finished flight is gone");
    }
}
