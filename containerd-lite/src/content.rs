//! The content store: immutable blobs named by their digest.
//!
//! # Layout (version 1, containerd's `content` plugin layout)
//!
//! ```text
//! <data-root>/content/blobs/sha256/<hex>      committed blobs, read-only, never rewritten
//! <data-root>/content/ingest/<sha256(ref)>/   one partial write per client ref
//!     ref                                     the ref itself
//!     data                                    the bytes written so far
//! ```
//!
//! A blob becomes visible only through [`IngestWriter::commit`]: the data file is fsynced, its
//! size and digest are checked against what the caller expected, and only then is it renamed into
//! `blobs/` (rename(2) is atomic within one filesystem) and the directory fsynced. A blob whose
//! bytes do not match never appears under `blobs/`; its ingest is removed, since appending cannot
//! make it right.
//!
//! Ingest is resumable: opening a writer on a ref whose ingest exists re-hashes the bytes already
//! there (as containerd's `resumeStatus`) and continues at that offset. One writer per ref at a
//! time; a second gets [`Error::Busy`] ([`ErrorKind::Unavailable`]).
//!
//! Labels of blobs live in the metadata database, not here; garbage collection is driven from
//! [`crate::images`], which knows what references what.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::ErrorKind;
use crate::digest::Digest;

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No blob with this digest.
    #[error("content {0} not found")]
    NotFound(Digest),
    /// The blob exists already (returned when opening a writer for a known digest).
    #[error("content {0} already exists")]
    AlreadyExists(Digest),
    /// Another writer holds the ref.
    #[error("ingest ref {0:?} is locked by another writer")]
    Busy(String),
    /// The written size differs from the expected size.
    #[error("unexpected commit size for ref {ref_:?}: wrote {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The ingest ref.
        ref_: String,
        /// Bytes written.
        actual: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// The written bytes hash to another digest.
    #[error("unexpected commit digest for ref {ref_:?}: got {actual}, expected {expected}")]
    DigestMismatch {
        /// The ingest ref.
        ref_: String,
        /// The digest of the bytes written.
        actual: Digest,
        /// The digest expected.
        expected: Digest,
    },
    /// A filesystem operation failed.
    #[error("content store: {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The service-boundary class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::Busy(_) => ErrorKind::Unavailable,
            Error::SizeMismatch { .. } | Error::DigestMismatch { .. } => {
                ErrorKind::FailedPrecondition
            }
            Error::Io { .. } => ErrorKind::Internal,
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// The progress of one ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The client's ref.
    pub ref_: String,
    /// Bytes written so far.
    pub offset: u64,
}

/// The content store rooted at `<data-root>/content`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    active: Arc<Mutex<HashSet<String>>>,
}

impl ContentStore {
    /// Opens the store, creating its directories.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        for d in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        Ok(Self {
            root,
            active: Arc::default(),
        })
    }

    /// The path of a committed blob.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    fn ingest_dir(&self, ref_: &str) -> PathBuf {
        self.root
            .join("ingest")
            .join(hex::encode(Sha256::digest(ref_.as_bytes())))
    }

    /// The size of a committed blob.
    pub fn size(&self, d: &Digest) -> Result<u64, Error> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(d.clone())),
            Err(e) => Err(io_err("stat", &self.blob_path(d))(e)),
        }
    }

    /// Whether a blob is committed.
    pub fn exists(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Opens a committed blob for reading.
    pub fn reader(&self, d: &Digest) -> Result<File, Error> {
        let p = self.blob_path(d);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(d.clone())
            } else {
                io_err("open", &p)(e)
            }
        })
    }

    /// Reads a whole (small) blob: manifests, indexes, configs.
    pub fn read_all(&self, d: &Digest) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::new();
        self.reader(d)?
            .read_to_end(&mut buf)
            .map_err(io_err("read", &self.blob_path(d)))?;
        Ok(buf)
    }

    /// Opens a writer for `ref_`, resuming its ingest if one exists. With `expected` set, a
    /// blob that is already committed gives [`Error::AlreadyExists`].
    pub fn writer(&self, ref_: &str, expected: Option<&Digest>) -> Result<IngestWriter, Error> {
        if let Some(d) = expected.filter(|d| self.exists(d)) {
            return Err(Error::AlreadyExists(d.clone()));
        }
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if !active.insert(ref_.to_owned()) {
                return Err(Error::Busy(ref_.to_owned()));
            }
        }
        let guard = RefGuard {
            active: self.active.clone(),
            ref_: ref_.to_owned(),
        };
        let dir = self.ingest_dir(ref_);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let ref_file = dir.join("ref");
        fs::write(&ref_file, ref_).map_err(io_err("write", &ref_file))?;
        let data = dir.join("data");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&data)
            .map_err(io_err("open", &data))?;
        // Resume: re-hash what is there (containerd's resumeStatus does the same).
        let mut hasher = Sha256::new();
        let offset =
            io::copy(&mut file, &mut HashWriter(&mut hasher)).map_err(io_err("rehash", &data))?;
        file.seek(SeekFrom::End(0)).map_err(io_err("seek", &data))?;
        Ok(IngestWriter {
            root: self.root.clone(),
            dir,
            file: io::BufWriter::with_capacity(128 * 1024, file),
            hasher,
            offset,
            _guard: guard,
        })
    }

    /// Writes a whole blob in one go, verifying it against `expected` if given. An existing blob
    /// is not an error.
    pub fn write_blob(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest, Error> {
        let digest = Digest::of(data);
        if let Some(e) = expected.filter(|e| **e != digest) {
            return Err(Error::DigestMismatch {
                ref_: format!("blob-{e}"),
                actual: digest,
                expected: e.clone(),
            });
        }
        if self.exists(&digest) {
            return Ok(digest);
        }
        let ref_ = format!("blob-{digest}");
        let mut w = match self.writer(&ref_, Some(&digest)) {
            Err(Error::AlreadyExists(d)) => return Ok(d),
            other => other?,
        };
        w.truncate()?;
        w.write_all(data).map_err(io_err("write", &w.dir))?;
        match w.commit(Some(data.len() as u64), Some(&digest)) {
            Ok(d) | Err(Error::AlreadyExists(d)) => Ok(d),
            Err(e) => Err(e),
        }
    }

    /// Removes an ingest; not an error if there is none.
    pub fn abort(&self, ref_: &str) -> Result<(), Error> {
        let dir = self.ingest_dir(ref_);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &dir)(e)),
        }
    }

    /// The ingests in progress (or left by a dead process).
    pub fn ingests(&self) -> Result<Vec<Status>, Error> {
        let root = self.root.join("ingest");
        let mut out = Vec::new();
        for entry in fs::read_dir(&root).map_err(io_err("read dir", &root))? {
            let entry = entry.map_err(io_err("read dir", &root))?;
            let ref_ = fs::read_to_string(entry.path().join("ref")).unwrap_or_default();
            let offset = fs::metadata(entry.path().join("data"))
                .map(|m| m.len())
                .unwrap_or(0);
            out.push(Status { ref_, offset });
        }
        Ok(out)
    }

    /// Deletes a committed blob; whether it existed.
    pub fn delete(&self, d: &Digest) -> Result<bool, Error> {
        let p = self.blob_path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &p)(e)),
        }
    }

    /// Every committed blob with its size.
    pub fn walk(&self) -> Result<Vec<(Digest, u64)>, Error> {
        let root = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&root).map_err(io_err("read dir", &root))? {
            let entry = entry.map_err(io_err("read dir", &root))?;
            let name = entry.file_name();
            let Some(d) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((d, size));
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes a committed blob; whether its bytes still match its name.
    pub fn verify(&self, d: &Digest) -> Result<bool, Error> {
        let mut f = self.reader(d)?;
        let mut hasher = Sha256::new();
        io::copy(&mut f, &mut HashWriter(&mut hasher))
            .map_err(io_err("read", &self.blob_path(d)))?;
        Ok(Digest::from_hasher(hasher) == *d)
    }
}

/// Releases a ref's lock when its writer goes away.
#[derive(Debug)]
struct RefGuard {
    active: Arc<Mutex<HashSet<String>>>,
    ref_: String,
}

impl Drop for RefGuard {
    fn drop(&mut self) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.ref_);
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer for one ingest. Dropping it without [`commit`](Self::commit) leaves the ingest in
/// place so that it can be resumed; [`ContentStore::abort`] removes it.
#[derive(Debug)]
pub struct IngestWriter {
    root: PathBuf,
    dir: PathBuf,
    file: io::BufWriter<File>,
    hasher: Sha256,
    offset: u64,
    _guard: RefGuard,
}

impl IngestWriter {
    /// Bytes written so far (including those found on resume).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Restarts the ingest from zero.
    pub fn truncate(&mut self) -> Result<(), Error> {
        self.file.flush().map_err(io_err("flush", &self.dir))?;
        let f = self.file.get_mut();
        f.set_len(0).map_err(io_err("truncate", &self.dir))?;
        f.seek(SeekFrom::Start(0))
            .map_err(io_err("seek", &self.dir))?;
        self.hasher = Sha256::new();
        self.offset = 0;
        Ok(())
    }

    /// Verifies size and digest and moves the data into `blobs/`. On a mismatch the ingest is
    /// removed and nothing becomes visible. If the blob appeared meanwhile the ingest is dropped
    /// and [`Error::AlreadyExists`] returned.
    pub fn commit(mut self, size: Option<u64>, expected: Option<&Digest>) -> Result<Digest, Error> {
        let dir = self.dir.clone();
        let result = self.commit_inner(size, expected);
        if result.is_err() {
            // Nothing here can become a valid blob; the original error is what matters.
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn commit_inner(
        &mut self,
        size: Option<u64>,
        expected: Option<&Digest>,
    ) -> Result<Digest, Error> {
        let data = self.dir.join("data");
        self.file.flush().map_err(io_err("flush", &data))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(io_err("fsync", &data))?;
        let ref_ = fs::read_to_string(self.dir.join("ref")).unwrap_or_default();
        if let Some(expected) = size.filter(|s| *s != self.offset) {
            return Err(Error::SizeMismatch {
                ref_,
                actual: self.offset,
                expected,
            });
        }
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if let Some(expected) = expected.filter(|e| **e != actual) {
            return Err(Error::DigestMismatch {
                ref_,
                actual,
                expected: expected.clone(),
            });
        }
        let blobs = self.root.join("blobs/sha256");
        let target = blobs.join(actual.hex());
        if target.exists() {
            return Err(Error::AlreadyExists(actual));
        }
        let mut perms = self
            .file
            .get_ref()
            .metadata()
            .map_err(io_err("stat", &data))?
            .permissions();
        perms.set_readonly(true);
        fs::set_permissions(&data, perms).map_err(io_err("chmod", &data))?;
        fs::rename(&data, &target).map_err(io_err("rename", &target))?;
        File::open(&blobs)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", &blobs))?;
        fs::remove_dir_all(&self.dir).map_err(io_err("remove", &self.dir))?;
        Ok(actual)
    }
}

impl Write for IngestWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.offset += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ContentStore::open(dir.path().join("content")).unwrap();
        (dir, s)
    }

    #[test]
    fn commit_verifies_and_publishes() {
        let (_d, s) = store();
        let want = Digest::of(b"hello world");
        let mut w = s.writer("r1", Some(&want)).unwrap();
        w.write_all(b"hello world").unwrap();
        assert_eq!(w.commit(Some(11), Some(&want)).unwrap(), want);
        assert_eq!(s.read_all(&want).unwrap(), b"hello world");
        assert!(s.ingests().unwrap().is_empty());
        assert!(s.verify(&want).unwrap());
        assert!(matches!(
            s.writer("r2", Some(&want)),
            Err(Error::AlreadyExists(_))
        ));
    }

    #[test]
    fn wrong_bytes_never_become_visible() {
        let (_d, s) = store();
        let want = Digest::of(b"right");
        let mut w = s.writer("r", Some(&want)).unwrap();
        w.write_all(b"wrong").unwrap();
        let err = w.commit(Some(5), Some(&want)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        assert!(s.walk().unwrap().is_empty());
        assert!(s.ingests().unwrap().is_empty());

        let mut w = s.writer("r", None).unwrap();
        w.write_all(b"abc").unwrap();
        assert!(matches!(
            w.commit(Some(4), None),
            Err(Error::SizeMismatch { .. })
        ));
        assert!(s.walk().unwrap().is_empty());
    }

    #[test]
    fn ingest_resumes_at_offset() {
        let (_d, s) = store();
        let want = Digest::of(b"part one, part two");
        {
            let mut w = s.writer("resume", None).unwrap();
            w.write_all(b"part one, ").unwrap();
            w.flush().unwrap();
        } // dropped: the ingest stays
        assert_eq!(s.ingests().unwrap()[0].offset, 10);
        let mut w = s.writer("resume", None).unwrap();
        assert_eq!(w.offset(), 10);
        w.write_all(b"part two").unwrap();
        assert_eq!(w.commit(None, Some(&want)).unwrap(), want);
    }

    #[test]
    fn one_writer_per_ref() {
        let (_d, s) = store();
        let _w = s.writer("x", None).unwrap();
        let err = s.writer("x", None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        s.abort("y").unwrap();
    }

    #[test]
    fn delete_and_walk() {
        let (_d, s) = store();
        let a = s.write_blob(b"a", None).unwrap();
        let b = s.write_blob(b"b", None).unwrap();
        assert_eq!(s.walk().unwrap().len(), 2);
        assert!(s.delete(&a).unwrap());
        assert!(!s.delete(&a).unwrap());
        assert_eq!(s.walk().unwrap(), vec![(b, 1)]);
        assert!(matches!(s.size(&a), Err(Error::NotFound(_))));
    }
}
