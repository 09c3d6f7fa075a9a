//! The overlay snapshotter.
//!
//! # Layout (version 1, containerd's overlayfs snapshotter layout)
//!
//! ```text
//! <data-root>/snapshots/overlay/<n>/fs     the snapshot's files (upperdir while active)
//! <data-root>/snapshots/overlay/<n>/work   overlay's workdir (active snapshots only)
//! ```
//!
//! `<n>` is a number from the metadata sequence `snapshot_seq`; the snapshot's key, kind, parent
//! and labels are a [`SnapshotRecord`] in the `snapshots` table. Keys and committed names share
//! one key space, as in containerd.
//!
//! # Semantics (containerd's `Snapshotter` contract)
//!
//! - [`prepare`](Snapshotter::prepare) makes a writable *active* snapshot on top of a committed
//!   parent (or empty); [`view`](Snapshotter::view) a read-only one;
//! - [`commit`](Snapshotter::commit) turns an active snapshot into a committed one under a new
//!   name and removes the active key; only committed snapshots can be parents;
//! - [`remove`](Snapshotter::remove) refuses a snapshot that has children
//!   ([`ErrorKind::FailedPrecondition`]); an unknown key is [`ErrorKind::NotFound`]; an existing
//!   key for prepare/view/commit is [`ErrorKind::AlreadyExists`].
//!
//! # Mounts and the length of `lowerdir`
//!
//! [`mounts`](Snapshotter::mounts) returns what containerd returns: a bind of `fs` for a
//! snapshot without parents (or a read-only view of one parent), otherwise an `overlay` with
//! `lowerdir=` the parents' `fs` dirs, nearest first. mount(2) copies its data argument into one
//! page, so the classic option string stops working at roughly 100 layers with paths of this
//! length (containerd chdirs to a common prefix to shorten them, which a multi-threaded daemon
//! cannot do safely). [`mount_overlay`] therefore uses the new mount API instead: `fsopen` +
//! one `fsconfig(FSCONFIG_SET_STRING, "lowerdir+", dir)` per layer (Linux 6.8,
//! Documentation/filesystems/overlayfs.rst "lowerdir+"), which has no total length limit.
//! Directory names stay short numbers so the classic string also works for ordinary images.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ErrorKind;
use crate::metadata::{self, MetadataStore, SnapshotKind, SnapshotRecord, Table};

/// Errors of the snapshotter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No snapshot with this key.
    #[error("snapshot {0:?} not found")]
    NotFound(String),
    /// The key is taken.
    #[error("snapshot {0:?} already exists")]
    AlreadyExists(String),
    /// The parent exists but is not committed.
    #[error("parent snapshot {0:?} is not committed")]
    ParentNotCommitted(String),
    /// Commit of a snapshot that is not active.
    #[error("snapshot {0:?} is not active")]
    NotActive(String),
    /// Remove of a snapshot others build on.
    #[error("cannot remove snapshot {0:?}: it has children")]
    HasChildren(String),
    /// The metadata database failed.
    #[error("snapshot metadata")]
    Metadata(#[from] metadata::Error),
    /// A filesystem operation failed.
    #[error("snapshotter: {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A mount syscall failed.
    #[error("mount overlay at {target}: {op}")]
    Mount {
        /// Which step of the mount sequence.
        op: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The errno.
        #[source]
        source: rustix::io::Errno,
    },
}

impl Error {
    /// The service-boundary class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::ParentNotCommitted(_) | Error::NotActive(_) | Error::HasChildren(_) => {
                ErrorKind::FailedPrecondition
            }
            Error::Metadata(e) => e.kind(),
            Error::Io { .. } | Error::Mount { .. } => ErrorKind::Internal,
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { op, path, source }
}

/// One mount, in containerd's shape (`type`, `source`, `options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `bind` or `overlay`.
    pub fstype: String,
    /// The bind source, or `overlay`.
    pub source: PathBuf,
    /// Mount options (`ro`, `rbind`, `lowerdir=…`, `upperdir=…`, `workdir=…`).
    pub options: Vec<String>,
}

/// Disk usage of a snapshot's own directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated (st_blocks × 512), hard links counted once.
    pub size: u64,
    /// Inodes.
    pub inodes: u64,
}

/// The overlay snapshotter rooted at `<data-root>/snapshots/overlay`.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
    meta: Arc<MetadataStore>,
}

const SEQUENCE: &str = "snapshot_seq";

impl Snapshotter {
    /// Opens the snapshotter, creating its directory.
    pub fn open(root: impl Into<PathBuf>, meta: Arc<MetadataStore>) -> Result<Self, Error> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        Ok(Self { root, meta })
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// A snapshot's record.
    pub fn stat(&self, key: &str) -> Result<SnapshotRecord, Error> {
        self.meta
            .get(Table::Snapshots, key)?
            .ok_or_else(|| Error::NotFound(key.to_owned()))
    }

    /// Every snapshot, by key.
    pub fn walk(&self) -> Result<Vec<(String, SnapshotRecord)>, Error> {
        Ok(self.meta.list(Table::Snapshots)?)
    }

    /// Creates a writable snapshot on `parent`.
    pub fn prepare(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, Error> {
        self.create(key, parent, labels, SnapshotKind::Active)?;
        self.mounts(key)
    }

    /// Creates a read-only snapshot of `parent`.
    pub fn view(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<Vec<Mount>, Error> {
        self.create(key, parent, labels, SnapshotKind::View)?;
        self.mounts(key)
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        labels: BTreeMap<String, String>,
        kind: SnapshotKind,
    ) -> Result<(), Error> {
        self.meta.write(|w| {
            if w.get::<SnapshotRecord>(Table::Snapshots, key)?.is_some() {
                return Err(Error::AlreadyExists(key.to_owned()));
            }
            if let Some(p) = parent {
                let rec: SnapshotRecord = w
                    .get(Table::Snapshots, p)?
                    .ok_or_else(|| Error::NotFound(p.to_owned()))?;
                if rec.kind != SnapshotKind::Committed {
                    return Err(Error::ParentNotCommitted(p.to_owned()));
                }
            }
            let id = w.next_sequence(SEQUENCE)?;
            let dir = self.dir(id);
            // A stale dir can only be left by a crash between mkdir and commit; reuse is safe
            // because the id is fresh.
            let _ = fs::remove_dir_all(&dir);
            let fs_dir = dir.join("fs");
            fs::create_dir_all(&fs_dir).map_err(io_err("create", &fs_dir))?;
            if kind == SnapshotKind::Active {
                let work = dir.join("work");
                fs::create_dir_all(&work).map_err(io_err("create", &work))?;
            }
            let rec = SnapshotRecord {
                id,
                kind,
                parent: parent.map(str::to_owned),
                labels,
                created: crate::unix_now(),
            };
            w.put(Table::Snapshots, key, &rec)?;
            Ok(())
        })
    }

    /// The directory holding a snapshot's own files (the upperdir of an active snapshot).
    pub fn fs_dir(&self, key: &str) -> Result<PathBuf, Error> {
        Ok(self.dir(self.stat(key)?.id).join("fs"))
    }

    /// Commits the active snapshot `key` as `name`, adding `labels`.
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let id = self.meta.write(|w| {
            let mut rec: SnapshotRecord = w
                .get(Table::Snapshots, key)?
                .ok_or_else(|| Error::NotFound(key.to_owned()))?;
            if rec.kind != SnapshotKind::Active {
                return Err(Error::NotActive(key.to_owned()));
            }
            if w.get::<SnapshotRecord>(Table::Snapshots, name)?.is_some() {
                return Err(Error::AlreadyExists(name.to_owned()));
            }
            rec.kind = SnapshotKind::Committed;
            rec.labels.extend(labels);
            w.delete(Table::Snapshots, key)?;
            w.put(Table::Snapshots, name, &rec)?;
            Ok(rec.id)
        })?;
        // The workdir is only needed while the snapshot is an upperdir.
        let _ = fs::remove_dir_all(self.dir(id).join("work"));
        Ok(())
    }

    /// Removes a snapshot that has no children.
    pub fn remove(&self, key: &str) -> Result<(), Error> {
        let id = self.meta.write(|w| {
            let rec: SnapshotRecord = w
                .get(Table::Snapshots, key)?
                .ok_or_else(|| Error::NotFound(key.to_owned()))?;
            let all: Vec<(String, SnapshotRecord)> = w.list(Table::Snapshots)?;
            if all.iter().any(|(_, r)| r.parent.as_deref() == Some(key)) {
                return Err(Error::HasChildren(key.to_owned()));
            }
            w.delete(Table::Snapshots, key)?;
            Ok(rec.id)
        })?;
        let dir = self.dir(id);
        fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))
    }

    /// Removes numbered directories that no record names (left by a crash between the
    /// directory's creation and the record's commit, or between a record's removal and its
    /// directory's). Returns how many were removed.
    pub fn cleanup(&self) -> Result<usize, Error> {
        let known: HashSet<u64> = self.walk()?.into_iter().map(|(_, r)| r.id).collect();
        let mut removed = 0;
        for entry in fs::read_dir(&self.root).map_err(io_err("read dir", &self.root))? {
            let entry = entry.map_err(io_err("read dir", &self.root))?;
            let id = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok());
            if id.is_some_and(|id| !known.contains(&id)) {
                fs::remove_dir_all(entry.path()).map_err(io_err("remove", &entry.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The `fs` dirs of `key`'s ancestors, nearest first.
    fn parent_dirs(&self, rec: &SnapshotRecord) -> Result<Vec<PathBuf>, Error> {
        let mut dirs = Vec::new();
        let mut next = rec.parent.clone();
        while let Some(p) = next {
            let prec = self.stat(&p)?;
            dirs.push(self.dir(prec.id).join("fs"));
            next = prec.parent;
        }
        Ok(dirs)
    }

    /// The mounts that assemble `key`'s filesystem.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, Error> {
        let rec = self.stat(key)?;
        let own = self.dir(rec.id);
        let parents = self.parent_dirs(&rec)?;
        let bind = |source: PathBuf, ro: bool| Mount {
            fstype: "bind".into(),
            source,
            options: vec![if ro { "ro" } else { "rw" }.into(), "rbind".into()],
        };
        let lowerdir = |dirs: &[PathBuf]| {
            let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!("lowerdir={}", joined.join(":"))
        };
        let m = match (rec.kind, parents.len()) {
            (SnapshotKind::Active, 0) => bind(own.join("fs"), false),
            (SnapshotKind::Committed | SnapshotKind::View, 0) => bind(own.join("fs"), true),
            (SnapshotKind::Committed | SnapshotKind::View, 1) => bind(parents[0].clone(), true),
            (SnapshotKind::Committed | SnapshotKind::View, _) => Mount {
                fstype: "overlay".into(),
                source: "overlay".into(),
                options: vec![lowerdir(&parents)],
            },
            (SnapshotKind::Active, _) => Mount {
                fstype: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("workdir={}", own.join("work").display()),
                    format!("upperdir={}", own.join("fs").display()),
                    lowerdir(&parents),
                ],
            },
        };
        Ok(vec![m])
    }

    /// Disk usage of the snapshot's own files.
    pub fn usage(&self, key: &str) -> Result<Usage, Error> {
        let dir = self.dir(self.stat(key)?.id).join("fs");
        let mut usage = Usage::default();
        let mut seen = HashSet::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).map_err(io_err("read dir", &d))? {
                let entry = entry.map_err(io_err("read dir", &d))?;
                let m = entry.metadata().map_err(io_err("stat", &entry.path()))?;
                if !seen.insert((m.dev(), m.ino())) {
                    continue;
                }
                usage.inodes += 1;
                usage.size += m.blocks() * 512;
                if m.is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        Ok(usage)
    }
}

/// Mounts an overlay with the new mount API, one `lowerdir+` per layer, so that the number of
/// layers is not limited by the page-sized option string of mount(2). `lower` is nearest
/// first; `upper_work` is `(upperdir, workdir)` for a writable mount. Needs CAP_SYS_ADMIN and
/// Linux ≥ 6.8.
pub fn mount_overlay(
    target: &Path,
    lower: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
) -> Result<(), Error> {
    use rustix::mount::{
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create,
        fsconfig_set_string, fsmount, fsopen, move_mount,
    };
    let err = |op| {
        move |source| Error::Mount {
            op,
            target: target.to_owned(),
            source,
        }
    };
    // fsopen(2): a filesystem context for overlay.
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err("fsopen"))?;
    // The mount's source as mount(8) and docker name it ("none" otherwise, in `df` and
    // mountinfo inside the container).
    fsconfig_set_string(&fs, "source", "overlay").map_err(err("fsconfig source"))?;
    // overlayfs.rst: "lowerdir+" appends one lower layer per call, top-most first.
    for dir in lower {
        fsconfig_set_string(&fs, "lowerdir+", dir).map_err(err("fsconfig lowerdir+"))?;
    }
    if let Some((upper, work)) = upper_work {
        fsconfig_set_string(&fs, "upperdir", upper).map_err(err("fsconfig upperdir"))?;
        fsconfig_set_string(&fs, "workdir", work).map_err(err("fsconfig workdir"))?;
    }
    // fsconfig(FSCONFIG_CMD_CREATE) builds the superblock; fsmount(2) a detached mount of it.
    fsconfig_create(&fs).map_err(err("fsconfig create"))?;
    let attrs = if upper_work.is_some() {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(err("fsmount"))?;
    // move_mount(2) attaches the detached mount at the target.
    move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(err("move_mount"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshotter() -> (tempfile::TempDir, Snapshotter) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(MetadataStore::open(&dir.path().join("meta.redb")).unwrap());
        let s = Snapshotter::open(dir.path().join("snapshots/overlay"), meta).unwrap();
        (dir, s)
    }

    #[test]
    fn prepare_commit_chain_and_mounts() {
        let (_d, s) = snapshotter();
        let m = s.prepare("a-active", None, BTreeMap::new()).unwrap();
        assert_eq!(m[0].fstype, "bind");
        fs::write(s.fs_dir("a-active").unwrap().join("f"), b"x").unwrap();
        s.commit("a", "a-active", BTreeMap::new()).unwrap();
        assert!(matches!(s.stat("a-active"), Err(Error::NotFound(_))));
        assert_eq!(s.stat("a").unwrap().kind, SnapshotKind::Committed);

        s.prepare("b-active", Some("a"), BTreeMap::new()).unwrap();
        s.commit("b", "b-active", BTreeMap::new()).unwrap();
        let m = s.prepare("c", Some("b"), BTreeMap::new()).unwrap();
        assert_eq!(m[0].fstype, "overlay");
        let lower = m[0]
            .options
            .iter()
            .find(|o| o.starts_with("lowerdir="))
            .unwrap();
        let b_dir = s.fs_dir("b").unwrap().display().to_string();
        let a_dir = s.fs_dir("a").unwrap().display().to_string();
        assert_eq!(lower, &format!("lowerdir={b_dir}:{a_dir}"));

        let v = s.view("v", Some("a"), BTreeMap::new()).unwrap();
        assert_eq!(v[0].fstype, "bind");
        assert!(v[0].options.contains(&"ro".to_string()));
        assert!(s.usage("a").unwrap().inodes == 1);
        assert_eq!(s.walk().unwrap().len(), 4);
    }

    #[test]
    fn contract_errors() {
        let (_d, s) = snapshotter();
        s.prepare("x", None, BTreeMap::new()).unwrap();
        assert_eq!(
            s.prepare("x", None, BTreeMap::new()).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            s.prepare("y", Some("x"), BTreeMap::new())
                .unwrap_err()
                .kind(),
            ErrorKind::FailedPrecondition
        );
        assert_eq!(
            s.prepare("y", Some("nope"), BTreeMap::new())
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
        s.commit("x1", "x", BTreeMap::new()).unwrap();
        s.prepare("child", Some("x1"), BTreeMap::new()).unwrap();
        assert_eq!(
            s.remove("x1").unwrap_err().kind(),
            ErrorKind::FailedPrecondition
        );
        s.remove("child").unwrap();
        s.remove("x1").unwrap();
        assert!(s.walk().unwrap().is_empty());
        assert_eq!(fs::read_dir(&s.root).unwrap().count(), 0);
    }

    #[test]
    fn cleanup_removes_orphan_dirs() {
        let (_d, s) = snapshotter();
        s.prepare("keep", None, BTreeMap::new()).unwrap();
        fs::create_dir_all(s.root.join("999/fs")).unwrap();
        assert_eq!(s.cleanup().unwrap(), 1);
        assert!(s.fs_dir("keep").unwrap().is_dir());
    }

    /// Root: 200 layers, far past what a page-sized `lowerdir=` string can hold.
    #[test]
    fn mounts_many_layers_with_lowerdir_plus() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (overlay mount)"
        );
        let (_d, s) = snapshotter();
        let mut parent: Option<String> = None;
        for i in 0..200 {
            let key = format!("layer-{i}-active");
            s.prepare(&key, parent.as_deref(), BTreeMap::new()).unwrap();
            fs::write(s.fs_dir(&key).unwrap().join(format!("f{i}")), i.to_string()).unwrap();
            let name = format!("layer-{i}");
            s.commit(&name, &key, BTreeMap::new()).unwrap();
            parent = Some(name);
        }
        let m = s
            .prepare("top", parent.as_deref(), BTreeMap::new())
            .unwrap();
        let lower = m[0]
            .options
            .iter()
            .find(|o| o.starts_with("lowerdir="))
            .unwrap();
        assert!(
            lower.len() > 4096,
            "the classic option would not fit a page"
        );
        let lowers: Vec<PathBuf> = lower["lowerdir=".len()..]
            .split(':')
            .map(PathBuf::from)
            .collect();
        let rec = s.stat("top").unwrap();
        let target = tempfile::tempdir().unwrap();
        let upper = s.dir(rec.id).join("fs");
        let work = s.dir(rec.id).join("work");
        mount_overlay(target.path(), &lowers, Some((&upper, &work))).unwrap();
        let f0 = fs::read_to_string(target.path().join("f0"));
        let f199 = fs::read_to_string(target.path().join("f199"));
        nix::mount::umount2(target.path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert_eq!(f0.unwrap(), "0");
        assert_eq!(f199.unwrap(), "199");
    }
}
