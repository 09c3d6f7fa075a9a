//! `docker cp`: stat, tar out and tar in for paths inside a container's rootfs, the stat header
//! the CLI expects (`X-Docker-Container-Path-Stat`: base64 of `{name,size,mode,mtime,linkTarget}`
//! with `mode` a Go `os.FileMode`, file type in the high bits).
//!
//! The container may be running while we work, and it owns its rootfs: any directory may be
//! swapped for a symlink (to `/`, say) at any moment (CVE-2018-15664). So nothing here ever
//! builds a host path from the rootfs path and uses it later. Every operation goes through file
//! descriptors:
//! - a path inside the container is resolved by the kernel with the rootfs as the root, in one
//!   step, at each use: `openat2(root_fd, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//!   (absolute symlinks and `..` stay inside the root; an in-userspace walk of `O_NOFOLLOW`
//!   opens does the same where the kernel has no `openat2`);
//! - reading walks directories by descriptor (`openat(dir, name, O_PATH | O_NOFOLLOW)`, readdir
//!   on the directory's own fd) and reads a regular file only through a reopen of the very inode
//!   it checked (`/proc/self/fd/N`), so a swapped-in device node or FIFO is never opened;
//! - writing creates everything relative to an in-root directory fd with calls that never
//!   follow a symlink at the last component (`mkdirat`, `openat(O_CREAT | O_EXCL |
//!   O_NOFOLLOW)`, `symlinkat`, `linkat`, `mknodat`), then sets owner, mode and times on the
//!   new file's descriptor.
//!
//! The tar's own content gets the same treatment: leading `/` is dropped, entries with `..` are
//! skipped (as tar(1) does), and symlinks an archive plants (or that exist in the container) are
//! followed only inside the rootfs, as moby's chrooted extraction would.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
};
use rustix::io::Errno;
use serde_json::json;

/// Symlinks followed in one resolution by the userspace fallback (Linux's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;
/// `openat2(RESOLVE_IN_ROOT)` answers `EAGAIN` when a rename raced a `..` step: try again.
const RACE_RETRIES: usize = 128;

/// The rootfs of a container, held open (`O_PATH`): the root of every resolution.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Resolve in userspace even where `openat2` exists (tests of the fallback).
    emulate: bool,
}

/// What a container path resolved to: an `O_PATH` descriptor of the object itself (a symlink
/// when the last component was not followed) and its metadata.
#[derive(Debug)]
pub struct Target {
    fd: OwnedFd,
    meta: Meta,
    link: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    size: u64,
    uid: u32,
    gid: u32,
    mtime: i64,
    rdev: u64,
    dev: u64,
    ino: u64,
}

impl Meta {
    fn of(fd: &OwnedFd) -> io::Result<Self> {
        let st = rfs::fstat(fd)?;
        Ok(Self {
            mode: st.st_mode,
            size: u64::try_from(st.st_size).unwrap_or(0),
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: st.st_mtime,
            rdev: st.st_rdev,
            dev: st.st_dev,
            ino: st.st_ino,
        })
    }

    fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }
}

impl Root {
    /// Opens the rootfs at `host` (the daemon's own path, never one from the container).
    pub fn open(host: &Path) -> io::Result<Self> {
        let fd = rfs::open(
            host,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { fd, emulate: false })
    }

    /// Resolves `path` (inside the container) to an `O_PATH` descriptor, the rootfs as `/`.
    fn resolve(&self, path: &[u8], follow_last: bool, dir: bool) -> io::Result<OwnedFd> {
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow_last {
            flags |= OFlags::NOFOLLOW;
        }
        if dir {
            flags |= OFlags::DIRECTORY;
        }
        if self.emulate {
            return resolve_emulated(&self.fd, path, follow_last, dir);
        }
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        for _ in 0..RACE_RETRIES {
            match rfs::openat2(&self.fd, path, flags, Mode::empty(), how) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => return resolve_emulated(&self.fd, path, follow_last, dir),
                r => return Ok(r?),
            }
        }
        Err(io::Error::other(
            "the path kept changing while it was resolved",
        ))
    }

    /// Looks up `path` (absolute inside the container; `.` components are ignored, as docker
    /// does). The last component is not followed when `follow_last` is false.
    pub fn lookup(&self, path: &str, follow_last: bool) -> io::Result<Target> {
        // A trailing `/` or `/.` always means the directory a symlink points to.
        let follow_last = follow_last || path.ends_with('/') || path.ends_with("/.");
        let fd = self.resolve(&clean_path(path), follow_last, false)?;
        let meta = Meta::of(&fd)?;
        let link = if meta.kind() == FileType::Symlink {
            rfs::readlinkat(&fd, c"", Vec::new())?.into_bytes()
        } else {
            Vec::new()
        };
        Ok(Target { fd, meta, link })
    }
}

/// `openat2(RESOLVE_IN_ROOT)` in userspace, for kernels without it: one `O_NOFOLLOW` open per
/// component relative to the previous descriptor, symlinks expanded by hand (absolute ones
/// restart at the root), `..` pops back to the descriptor of the previous directory (never above
/// the root). Each step is a single-name lookup in a directory we hold, so a concurrent swap
/// changes what we find but never where we are.
fn resolve_emulated(
    root: &OwnedFd,
    path: &[u8],
    follow_last: bool,
    dir: bool,
) -> io::Result<OwnedFd> {
    let mut todo: Vec<Vec<u8>> = components(path).rev().map(<[u8]>::to_vec).collect();
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                stack.pop();
                continue;
            }
            _ => {}
        }
        let last = todo.is_empty();
        let cur = stack.last().unwrap_or(root);
        let fd = rfs::openat(
            cur,
            c.as_slice(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        match Meta::of(&fd)?.kind() {
            FileType::Symlink if !last || follow_last => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP.into());
                }
                let target = rfs::readlinkat(&fd, c"", Vec::new())?;
                let target = target.as_bytes();
                if target.first() == Some(&b'/') {
                    stack.clear();
                }
                todo.extend(components(target).rev().map(<[u8]>::to_vec));
            }
            FileType::Directory => stack.push(fd),
            _ if last && !dir => return Ok(fd),
            _ => return Err(Errno::NOTDIR.into()),
        }
    }
    match stack.pop() {
        Some(fd) => Ok(fd),
        None => Ok(rfs::openat(
            root,
            c".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?),
    }
}

fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|b| *b == b'/').filter(|c| !c.is_empty())
}

/// `/` followed by the components of `path` without the empty and `.` ones.
fn clean_path(path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len() + 1);
    for c in components(path.as_bytes()).filter(|c| *c != b".") {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// `base` (a cleaned container path) joined with relative components.
fn join(base: &[u8], rel: &[OsString]) -> Vec<u8> {
    let mut out = base.to_vec();
    for c in rel {
        if out.last() != Some(&b'/') {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_bytes());
    }
    out
}

/// The components of an archive member's name, relative to the extraction point: leading `/`
/// and `.` dropped; `None` for a name with `..` (skipped, as tar(1) and the tar crate do).
fn relative_components(name: &Path) -> Option<Vec<OsString>> {
    let mut out = Vec::new();
    for c in name.components() {
        match c {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return None,
            Component::Normal(n) => out.push(n.to_owned()),
        }
    }
    Some(out)
}

/// Go's `os.FileMode` of a raw `st_mode` (what the CLI decodes).
pub fn go_file_mode(raw: u32) -> u32 {
    let mut mode = raw & 0o777;
    mode |= match FileType::from_raw_mode(raw) {
        FileType::Directory => 1 << 31,
        FileType::Symlink => 1 << 27,
        FileType::BlockDevice => 1 << 26,
        FileType::CharacterDevice => (1 << 26) | (1 << 21),
        FileType::Fifo => 1 << 25,
        FileType::Socket => 1 << 24,
        _ => 0,
    };
    if raw & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if raw & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if raw & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    mode
}

impl Target {
    pub fn is_dir(&self) -> bool {
        self.meta.kind() == FileType::Directory
    }

    /// The stat header's JSON, the entry named `name`.
    pub fn stat_json(&self, name: &str) -> serde_json::Value {
        json!({
            "name": name,
            "size": self.meta.size,
            "mode": go_file_mode(self.meta.mode),
            "mtime": crate::images::oci::format_rfc3339(self.meta.mtime),
            "linkTarget": String::from_utf8_lossy(&self.link),
        })
    }
}

/// The base name docker uses for a path (`/` → `/`).
pub fn base_name(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

/// Reopens the regular file behind an `O_PATH` descriptor for reading. Through the descriptor's
/// `/proc/self/fd` link the kernel opens exactly that inode: nothing is looked up by name, so a
/// swap in the container can't make us open something else (a device, a FIFO).
fn reopen_regular(fd: &OwnedFd, meta: &Meta) -> io::Result<File> {
    let f = rfs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    let now = Meta::of(&f)?;
    if now.kind() != FileType::RegularFile || (now.dev, now.ino) != (meta.dev, meta.ino) {
        return Err(io::Error::other("a file changed while it was copied"));
    }
    Ok(File::from(f))
}

/// Reads a regular file of a container (`/etc/passwd` for a user lookup) with the rootfs as
/// the root, at most `limit` bytes; None if it is missing or not a regular file. A symlink to a
/// host path, or a FIFO that would block the daemon, is never opened.
pub fn read_in_root(root: &Path, path: &str, limit: u64) -> Option<Vec<u8>> {
    let t = Root::open(root).ok()?.lookup(path, true).ok()?;
    if t.meta.kind() != FileType::RegularFile {
        return None;
    }
    let mut out = Vec::new();
    reopen_regular(&t.fd, &t.meta)
        .ok()?
        .take(limit)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Names in a directory (read through its descriptor), sorted, without `.` and `..`.
fn list_dir(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for e in Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n.to_vec()));
        }
    }
    names.sort();
    Ok(names)
}

/// Appends an entry named `name` with `data`. A name that starts with `./` (the entries of a
/// `docker cp ctr:/dir/. dest` copy, whose top is `.`) keeps that prefix: the CLI rebases the
/// entries whose first component is `.` onto the destination, and tar-rs would drop it, so
/// such names are written into the header as they are (with a GNU long-name entry first when
/// they do not fit its 100 bytes).
fn append_named<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &Path,
    data: impl Read,
) -> io::Result<()> {
    let bytes = name.as_os_str().as_bytes();
    if !bytes.starts_with(b"./") {
        return b.append_data(h, name, data);
    }
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    if bytes.len() < field.len() {
        field[..bytes.len()].copy_from_slice(bytes);
    } else {
        let mut long = tar::Header::new_gnu();
        long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        long.set_mode(0o644);
        long.set_mtime(0);
        long.set_entry_type(tar::EntryType::GNULongName);
        long.set_size(u64::try_from(bytes.len()).unwrap_or(u64::MAX) + 1);
        long.set_cksum();
        b.append(&long, bytes.chain(&[0u8][..]))?;
        let n = field.len() - 1;
        field[..n].copy_from_slice(&bytes[..n]);
    }
    h.set_cksum();
    b.append(h, data)
}

/// Appends the object behind `fd` (`O_PATH`, never followed) as `name`; for a directory returns
/// a readable descriptor of it, to walk.
fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    fd: &OwnedFd,
    meta: &Meta,
    name: &Path,
) -> io::Result<Option<OwnedFd>> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(meta.mode & 0o7777);
    h.set_uid(meta.uid.into());
    h.set_gid(meta.gid.into());
    h.set_mtime(u64::try_from(meta.mtime).unwrap_or(0));
    h.set_size(0);
    match meta.kind() {
        FileType::Directory => {
            h.set_entry_type(tar::EntryType::Directory);
            append_named(b, &mut h, name, io::empty())?;
            let dir = rfs::openat(
                fd,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            return Ok(Some(dir));
        }
        FileType::RegularFile => {
            let f = reopen_regular(fd, meta)?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.size);
            // Exactly `size` bytes whatever happens to the file meanwhile (the header is out).
            let data = f.take(meta.size).chain(io::repeat(0)).take(meta.size);
            append_named(b, &mut h, name, data)?;
        }
        FileType::Symlink => {
            let target = rfs::readlinkat(fd, c"", Vec::new())?;
            h.set_entry_type(tar::EntryType::Symlink);
            let target = OsStr::from_bytes(target.as_bytes());
            if name.as_os_str().as_bytes().starts_with(b"./") && h.set_link_name(target).is_ok() {
                append_named(b, &mut h, name, io::empty())?;
            } else {
                b.append_link(&mut h, name, target)?;
            }
        }
        kind @ (FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice) => {
            h.set_entry_type(match kind {
                FileType::Fifo => tar::EntryType::Fifo,
                FileType::CharacterDevice => tar::EntryType::Char,
                _ => tar::EntryType::Block,
            });
            h.set_device_major(rfs::major(meta.rdev))?;
            h.set_device_minor(rfs::minor(meta.rdev))?;
            append_named(b, &mut h, name, io::empty())?;
        }
        // Sockets (and anything unknown) can't be archived: left out, as docker does.
        _ => {}
    }
    Ok(None)
}

/// A directory being walked: its descriptor, its name in the archive, the names left.
struct Frame {
    dir: OwnedFd,
    name: PathBuf,
    names: std::vec::IntoIter<OsString>,
}

impl Frame {
    fn new(dir: OwnedFd, name: PathBuf) -> io::Result<Self> {
        let names = list_dir(&dir)?.into_iter();
        Ok(Self { dir, name, names })
    }
}

/// Writes a tar of `target` with its top entry named `name` (a directory recursively, a symlink
/// as a link, sockets left out).
pub fn write_tar(target: &Target, name: &str, out: impl Write) -> io::Result<()> {
    write_walk(target, Path::new(name), Path::new(name), out)
}

/// Writes a tar of a whole root filesystem (`docker export`): a `.` entry for the root, then
/// every path relative to it (`bin`, `etc/passwd`, …), walked by descriptor as [`write_tar`].
pub fn write_rootfs(root: &Root, out: impl Write) -> io::Result<()> {
    let target = root.lookup("/", true)?;
    write_walk(&target, Path::new("."), Path::new(""), out)
}

/// The walk behind [`write_tar`] and [`write_rootfs`]: the top entry named `top`, the entries
/// under it named from `base`.
fn write_walk(target: &Target, top: &Path, base: &Path, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    // The root goes out as `/`, `/bin`, …: the CLI swaps the leading `/` for its target name.
    b.preserve_absolute(top == Path::new("/"));
    let mut stack = Vec::new();
    if let Some(dir) = append_entry(&mut b, &target.fd, &target.meta, top)? {
        stack.push(Frame::new(dir, base.to_path_buf())?);
    }
    while let Some(frame) = stack.last_mut() {
        let Some(child) = frame.names.next() else {
            stack.pop();
            continue;
        };
        let fd = match rfs::openat(
            &frame.dir,
            child.as_os_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Removed while we walked.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let meta = Meta::of(&fd)?;
        let name = frame.name.join(&child);
        if let Some(dir) = append_entry(&mut b, &fd, &meta, &name)? {
            stack.push(Frame::new(dir, name)?);
        }
    }
    b.into_inner()?.flush()
}

/// How `extract_tar` treats owners and existing files.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// `copyUIDGID`: give files the archive's owners (else they belong to the daemon: root).
    pub keep_owner: bool,
    /// `noOverwriteDirNonDir`: refuse to replace a directory with a non-directory or the
    /// reverse (else the old one is removed first, as docker does).
    pub no_overwrite_dir_non_dir: bool,
}

/// A directory entry's metadata, applied once everything is extracted (children first), so
/// that a read-only directory or a later entry doesn't undo it.
struct DeferredDir {
    rel: Vec<OsString>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn owner(uid: u32, gid: u32) -> (Option<Uid>, Option<Gid>) {
    (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
}

fn is_errno(e: &io::Error, which: &[Errno]) -> bool {
    e.raw_os_error()
        .is_some_and(|raw| which.iter().any(|w| w.raw_os_error() == raw))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Extracts a tar into the directory `dest` (a path inside the container).
pub fn extract_tar(
    root: &Root,
    dest: &str,
    input: impl Read,
    opts: ExtractOptions,
) -> io::Result<()> {
    let base = clean_path(dest);
    let mut ar = tar::Archive::new(input);
    let mut dirs = Vec::new();
    // The parent of the previous entry (archives list siblings together).
    let mut cache: Option<(Vec<OsString>, OwnedFd)> = None;
    for entry in ar.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        let Some(rel) = relative_components(&entry.path()?) else {
            continue;
        };
        let Some((name, parents)) = rel.split_last() else {
            // The extraction point itself.
            continue;
        };
        let shown = || String::from_utf8_lossy(&join(&base, &rel)).into_owned();
        let parent = parent_dir(root, &base, parents, &mut cache)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", shown())))?;
        extract_entry(root, &base, parent, name, &rel, &mut entry, opts, &mut dirs)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", shown())))?;
    }
    dirs.sort_by(|a, b| b.rel.cmp(&a.rel));
    for d in dirs {
        let fd = match root.resolve(&join(&base, &d.rel), false, true) {
            Ok(fd) => fd,
            // Replaced meanwhile (by the container): nothing to apply.
            Err(e) if is_errno(&e, &[Errno::NOENT, Errno::NOTDIR, Errno::LOOP]) => continue,
            Err(e) => return Err(e),
        };
        let dir = rfs::openat(
            &fd,
            c".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if opts.keep_owner {
            let (u, g) = owner(d.uid, d.gid);
            rfs::fchown(&dir, u, g)?;
        }
        rfs::fchmod(&dir, Mode::from_raw_mode(d.mode))?;
        rfs::futimens(&dir, &times(d.mtime))?;
    }
    Ok(())
}

/// The directory `base/parents` as an in-root `O_PATH` descriptor, missing components created
/// (each with `mkdirat` in its resolved parent). `base` itself must exist.
fn parent_dir<'a>(
    root: &Root,
    base: &[u8],
    parents: &[OsString],
    cache: &'a mut Option<(Vec<OsString>, OwnedFd)>,
) -> io::Result<&'a OwnedFd> {
    if !matches!(cache, Some((c, _)) if c.as_slice() == parents) {
        *cache = None;
        let mut cur = root.resolve(base, true, true)?;
        for (i, c) in parents.iter().enumerate() {
            let path = join(base, &parents[..=i]);
            cur = match root.resolve(&path, true, true) {
                Err(e) if is_errno(&e, &[Errno::NOENT]) => {
                    match rfs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    root.resolve(&path, true, true)?
                }
                r => r?,
            };
        }
        *cache = Some((parents.to_vec(), cur));
    }
    match cache {
        Some((_, fd)) => Ok(fd),
        None => Err(io::Error::other("no parent directory")),
    }
}

/// Clears `name` in `parent` for a new non-directory: a non-directory is unlinked, a directory
/// refused (`noOverwriteDirNonDir`) or removed.
fn make_room(parent: &OwnedFd, name: &OsStr, opts: ExtractOptions) -> io::Result<()> {
    match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            if opts.no_overwrite_dir_non_dir {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "cannot overwrite a directory with a non-directory",
                ))
            } else {
                remove_all_at(parent, name)
            }
        }
        Ok(_) => match rfs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        },
    }
}

/// `rm -rf parent/name`, by descriptor.
fn remove_all_at(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let open = |dir: &OwnedFd, n: &OsStr| {
        rfs::openat(
            dir,
            n,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let mut stack: Vec<(OwnedFd, OsString)> = vec![(open(parent, name)?, name.to_owned())];
    while let Some((dir, _)) = stack.last() {
        let mut sub = None;
        for n in list_dir(dir)? {
            match rfs::unlinkat(dir, n.as_os_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::ISDIR) => {
                    sub = Some(n);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(n) = sub {
            let fd = open(dir, &n)?;
            stack.push((fd, n));
            continue;
        }
        if let Some((_, n)) = stack.pop() {
            let p = stack.last().map_or(parent, |(d, _)| d);
            match rfs::unlinkat(p, n.as_os_str(), AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Creates `parent/name` for writing, never through a symlink and never reusing a file.
fn create_file(parent: &OwnedFd, name: &OsStr, opts: ExtractOptions) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    make_room(parent, name, opts)?;
    let fd = match rfs::openat(parent, name, flags, Mode::from_raw_mode(0o600)) {
        // Recreated meanwhile: once more.
        Err(Errno::EXIST) => {
            make_room(parent, name, opts)?;
            rfs::openat(parent, name, flags, Mode::from_raw_mode(0o600))?
        }
        r => r?,
    };
    Ok(File::from(fd))
}

#[allow(clippy::too_many_arguments)]
fn extract_entry<R: Read>(
    root: &Root,
    base: &[u8],
    parent: &OwnedFd,
    name: &OsStr,
    rel: &[OsString],
    entry: &mut tar::Entry<'_, R>,
    opts: ExtractOptions,
    dirs: &mut Vec<DeferredDir>,
) -> io::Result<()> {
    let h = entry.header();
    let kind = h.entry_type();
    // Lenient like tar(1) about fields we don't need; owners are only read when kept.
    let mode = h.mode().unwrap_or(0o755) & 0o7777;
    let (uid, gid) = if opts.keep_owner {
        (
            u32::try_from(h.uid()?).map_err(|_| invalid("uid out of range"))?,
            u32::try_from(h.gid()?).map_err(|_| invalid("gid out of range"))?,
        )
    } else {
        (0, 0)
    };
    let mtime = h
        .mtime()
        .ok()
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or(0);
    // Old (pre-ustar) archives mark directories with a trailing slash only.
    let old_dir = h.as_ustar().is_none()
        && matches!(kind, tar::EntryType::Regular)
        && entry.path_bytes().ends_with(b"/");
    let (u, g) = owner(uid, gid);
    match kind {
        tar::EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| invalid("symlink without a target"))?
                .into_owned();
            make_room(parent, name, opts)?;
            rfs::symlinkat(target.as_slice(), parent, name)?;
            if opts.keep_owner {
                rfs::chownat(parent, name, u, g, AtFlags::SYMLINK_NOFOLLOW)?;
            }
            rfs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| invalid("hard link without a target"))?
                .into_owned();
            let trel = relative_components(Path::new(OsStr::from_bytes(&target)))
                .ok_or_else(|| invalid("hard link target outside the extraction point"))?;
            let (tname, tparents) = trel
                .split_last()
                .ok_or_else(|| invalid("hard link to the extraction point"))?;
            let tdir = root.resolve(&join(base, tparents), true, true)?;
            make_room(parent, name, opts)?;
            rfs::linkat(&tdir, tname.as_os_str(), parent, name, AtFlags::empty())?;
        }
        tar::EntryType::Directory => {
            make_dir(parent, name, rel, opts, dirs, mode, uid, gid, mtime)?
        }
        _ if old_dir => make_dir(parent, name, rel, opts, dirs, mode, uid, gid, mtime)?,
        tar::EntryType::Fifo | tar::EntryType::Char | tar::EntryType::Block => {
            let ft = match kind {
                tar::EntryType::Fifo => FileType::Fifo,
                tar::EntryType::Char => FileType::CharacterDevice,
                _ => FileType::BlockDevice,
            };
            let dev = rfs::makedev(
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            );
            make_room(parent, name, opts)?;
            rfs::mknodat(parent, name, ft, Mode::from_raw_mode(mode & 0o777), dev)?;
            let fd = rfs::openat(
                parent,
                name,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            if Meta::of(&fd)?.kind() != ft {
                return Err(io::Error::other("replaced while it was created"));
            }
            if opts.keep_owner {
                rfs::chownat(&fd, c"", u, g, AtFlags::EMPTY_PATH)?;
            }
            // No fchmod on an O_PATH descriptor, and fchmodat follows symlinks: chmod the
            // inode we hold through its /proc link.
            rfs::chmod(
                format!("/proc/self/fd/{}", fd.as_raw_fd()),
                Mode::from_raw_mode(mode),
            )?;
            rfs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        // Regular files, and (as tar(1) does) any type we don't know.
        _ => {
            let mut f = create_file(parent, name, opts)?;
            io::copy(entry, &mut f)?;
            if opts.keep_owner {
                rfs::fchown(&f, u, g)?;
            }
            rfs::fchmod(&f, Mode::from_raw_mode(mode))?;
            rfs::futimens(&f, &times(mtime))?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn make_dir(
    parent: &OwnedFd,
    name: &OsStr,
    rel: &[OsString],
    opts: ExtractOptions,
    dirs: &mut Vec<DeferredDir>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
) -> io::Result<()> {
    match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
        Ok(_) if opts.no_overwrite_dir_non_dir => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "cannot overwrite a non-directory with a directory",
            ));
        }
        Ok(_) | Err(Errno::NOENT) => {
            make_room(parent, name, opts)?;
            match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    dirs.push(DeferredDir {
        rel: rel.to_vec(),
        mode,
        uid,
        gid,
        mtime,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Both resolvers: the kernel's (`openat2`) and the userspace fallback.
    fn roots(r: &Path) -> [Root; 2] {
        let kernel = Root::open(r).unwrap();
        let mut emulated = Root::open(r).unwrap();
        emulated.emulate = true;
        [kernel, emulated]
    }

    fn same(t: &Target, p: &Path) -> bool {
        let m = fs::symlink_metadata(p).unwrap();
        (t.meta.dev, t.meta.ino) == (m.dev(), m.ino())
    }

    /// A tar entry written with raw header bytes (names the tar crate refuses to build).
    fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        name: &str,
        link: &str,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_mtime(1_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    /// A temp dir holding `root/` (the container) and `outside/` (the host) with a secret.
    fn sandbox() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::create_dir_all(outside.join("etc")).unwrap();
        fs::write(outside.join("etc/secret"), "host secret").unwrap();
        (d, root, outside)
    }

    fn outside_untouched(outside: &Path) {
        let mut found = Vec::new();
        let mut stack = vec![outside.to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in fs::read_dir(&p).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                }
                found.push(e.path().strip_prefix(outside).unwrap().to_path_buf());
            }
        }
        found.sort();
        assert_eq!(found, [PathBuf::from("etc"), PathBuf::from("etc/secret")]);
        assert_eq!(
            fs::read_to_string(outside.join("etc/secret")).unwrap(),
            "host secret"
        );
    }

    /// The entry names of a tar, sorted.
    fn sorted_names(tar_bytes: &[u8]) -> Vec<String> {
        let mut names: Vec<String> = tar::Archive::new(tar_bytes)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn symlinks_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        fs::create_dir_all(r.join("etc")).unwrap();
        fs::write(r.join("etc/passwd"), "in").unwrap();
        fs::write(r.join("x"), "x").unwrap();
        symlink("/etc", r.join("abs")).unwrap();
        symlink("../../..", r.join("a/b/up")).unwrap();
        symlink("b", r.join("a/rel")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        symlink("/proc/self/root", r.join("magic")).unwrap();
        for root in roots(r) {
            let l = |p: &str, follow| root.lookup(p, follow).unwrap();
            assert!(same(&l("/abs/passwd", true), &r.join("etc/passwd")));
            assert!(same(&l("/a/b/up/x", true), &r.join("x")));
            assert!(same(&l("/a/rel", true), &r.join("a/b")));
            assert!(same(&l("/a/rel/", false), &r.join("a/b")));
            assert!(same(&l("/a/rel/.", false), &r.join("a/b")));
            let link = l("/a/rel", false);
            assert!(same(&link, &r.join("a/rel")));
            assert_eq!(link.stat_json("rel")["linkTarget"], "b");
            assert!(same(&l("/../../x", true), &r.join("x")));
            assert!(same(&l("/", true), r));
            assert!(same(&l("/a/..", true), r));
            assert!(root.lookup("/loop", true).is_err());
            assert!(root.lookup("/x/y", true).is_err());
            assert!(root.lookup("/nope", true).is_err());
            // /proc/self/root is the host's /: never reached from inside.
            assert!(root.lookup("/magic/etc", true).is_err());
        }
    }

    #[test]
    fn go_modes_and_names() {
        let d = tempfile::tempdir().unwrap();
        fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            go_file_mode(fs::metadata(d.path()).unwrap().mode()),
            2_147_484_141
        );
        assert_eq!(go_file_mode(0o104_755), (1 << 23) | 0o755);
        assert_eq!(go_file_mode(0o120_777), (1 << 27) | 0o777);
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/"), "/");
        fs::write(d.path().join("f"), "x").unwrap();
        let root = Root::open(d.path()).unwrap();
        let t = root.lookup("/f", false).unwrap();
        let v = t.stat_json("f");
        assert_eq!(v["size"], 1);
        assert_eq!(v["name"], "f");
        let mut buf = Vec::new();
        write_tar(&t, "g", &mut buf).unwrap();
        fs::create_dir(d.path().join("out")).unwrap();
        extract_tar(&root, "/out", buf.as_slice(), ExtractOptions::default()).unwrap();
        assert_eq!(fs::read_to_string(d.path().join("out/g")).unwrap(), "x");
        // A whole root (export): `.` first, then paths relative to it; a symlink to the host's
        // root stays a link, never walked.
        std::os::unix::fs::symlink("/", d.path().join("up")).unwrap();
        let mut buf = Vec::new();
        write_rootfs(&root, &mut buf).unwrap();
        let names = sorted_names(&buf);
        assert_eq!(names, [".", "f", "out", "out/g", "up"]);
    }

    #[test]
    fn trees_round_trip_without_opening_special_files() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("t/sub")).unwrap();
        fs::write(src.join("t/f"), "data").unwrap();
        fs::set_permissions(src.join("t/f"), fs::Permissions::from_mode(0o4750)).unwrap();
        fs::write(src.join("t/sub/g"), "g").unwrap();
        fs::set_permissions(src.join("t/sub"), fs::Permissions::from_mode(0o500)).unwrap();
        symlink("/etc/passwd", src.join("t/abs")).unwrap();
        // A FIFO nobody writes: opening it for reading would hang.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("t/fifo").as_path(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        std::os::unix::net::UnixListener::bind(src.join("t/sock")).unwrap();
        let root = Root::open(&src).unwrap();
        let mut buf = Vec::new();
        write_tar(&root.lookup("/t", false).unwrap(), "t", &mut buf).unwrap();
        let names = sorted_names(&buf);
        assert_eq!(
            names,
            ["t", "t/abs", "t/f", "t/fifo", "t/sub", "t/sub/g"],
            "sockets are left out"
        );
        let dst = d.path().join("dst");
        fs::create_dir_all(dst.join("in")).unwrap();
        let opts = ExtractOptions {
            keep_owner: true,
            no_overwrite_dir_non_dir: true,
        };
        extract_tar(&Root::open(&dst).unwrap(), "/in", buf.as_slice(), opts).unwrap();
        let out = dst.join("in/t");
        assert_eq!(fs::read_to_string(out.join("f")).unwrap(), "data");
        assert_eq!(fs::metadata(out.join("f")).unwrap().mode() & 0o7777, 0o4750);
        assert_eq!(fs::read_to_string(out.join("sub/g")).unwrap(), "g");
        assert_eq!(
            fs::metadata(out.join("sub")).unwrap().mode() & 0o7777,
            0o500
        );
        assert_eq!(
            fs::read_link(out.join("abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &fs::symlink_metadata(out.join("fifo")).unwrap().file_type()
        ));
        // The root itself goes out as `/`, `/t`, … (what the CLI rebases).
        let mut buf = Vec::new();
        write_tar(&root.lookup("/", true).unwrap(), "/", &mut buf).unwrap();
        let first = tar::Archive::new(buf.as_slice())
            .entries()
            .unwrap()
            .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
            .take(2)
            .collect::<Vec<_>>();
        assert!(first[0].chars().all(|c| c == '/'), "{first:?}");
        assert!(first[1].trim_end_matches('/') == "/t", "{first:?}");
    }

    #[test]
    fn overwriting_dirs_and_non_dirs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("dst/dir/deep")).unwrap();
        fs::write(r.join("dst/dir/deep/x"), "x").unwrap();
        fs::write(r.join("dst/file"), "old").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, tar::EntryType::Regular, "dir", "", b"now a file");
        let file_over_dir = b.into_inner().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, tar::EntryType::Directory, "file", "", b"");
        let dir_over_file = b.into_inner().unwrap();
        let root = Root::open(r).unwrap();
        let strict = ExtractOptions {
            keep_owner: false,
            no_overwrite_dir_non_dir: true,
        };
        let e = extract_tar(&root, "/dst", file_over_dir.as_slice(), strict).unwrap_err();
        assert!(e.to_string().contains("/dst/dir: cannot overwrite"), "{e}");
        assert!(r.join("dst/dir/deep/x").exists());
        assert!(extract_tar(&root, "/dst", dir_over_file.as_slice(), strict).is_err());
        let lax = ExtractOptions::default();
        extract_tar(&root, "/dst", file_over_dir.as_slice(), lax).unwrap();
        assert_eq!(fs::read_to_string(r.join("dst/dir")).unwrap(), "now a file");
        extract_tar(&root, "/dst", dir_over_file.as_slice(), lax).unwrap();
        assert!(r.join("dst/file").is_dir());
    }

    #[test]
    fn hostile_archives_stay_inside_the_root() {
        let (_d, root_dir, outside) = sandbox();
        let out = outside.display().to_string();
        let cases: Vec<Vec<(tar::EntryType, String, String)>> = vec![
            // `..` and absolute names.
            vec![
                (
                    tar::EntryType::Regular,
                    "../../outside/etc/m1".into(),
                    String::new(),
                ),
                (
                    tar::EntryType::Regular,
                    format!("{out}/etc/m2"),
                    String::new(),
                ),
                (tar::EntryType::Regular, "a/../../m3".into(), String::new()),
            ],
            // A symlink to the host's outside dir, then a file through it.
            vec![
                (tar::EntryType::Symlink, "l".into(), out.clone()),
                (tar::EntryType::Regular, "l/etc/m4".into(), String::new()),
                (tar::EntryType::Directory, "l/etc/d5/".into(), String::new()),
            ],
            // A relative symlink climbing out, then a file through it.
            vec![
                (
                    tar::EntryType::Symlink,
                    "up".into(),
                    "../../../../../../..".into(),
                ),
                (
                    tar::EntryType::Regular,
                    format!("up{out}/etc/m6"),
                    String::new(),
                ),
                (tar::EntryType::Regular, "up/m7".into(), String::new()),
            ],
            // Hard links to the host's secret, by `..` and by absolute name.
            vec![(
                tar::EntryType::Link,
                "h1".into(),
                "../../outside/etc/secret".into(),
            )],
            vec![(
                tar::EntryType::Link,
                "h2".into(),
                format!("{out}/etc/secret"),
            )],
            // Through a symlink the container already has.
            vec![(tar::EntryType::Regular, "pre/etc/m8".into(), String::new())],
        ];
        symlink(&outside, root_dir.join("tmp/pre")).unwrap();
        for root in roots(&root_dir) {
            for entries in &cases {
                let mut b = tar::Builder::new(Vec::new());
                for (kind, name, link) in entries {
                    raw_entry(&mut b, *kind, name, link, b"pwned");
                }
                let tar = b.into_inner().unwrap();
                // Errors are fine (a link to a missing file); escapes are not.
                let _ = extract_tar(&root, "/tmp", tar.as_slice(), ExtractOptions::default());
                outside_untouched(&outside);
            }
        }
        // What could be written went inside the root, following the links in it.
        // Names with `..` are skipped.
        assert!(!root_dir.join("m3").exists() && !root_dir.join("tmp/m3").exists());
        let inside = root_dir.join(outside.strip_prefix("/").unwrap());
        assert_eq!(fs::read_to_string(inside.join("etc/m4")).unwrap(), "pwned");
        assert!(inside.join("etc/d5").is_dir());
        assert_eq!(fs::read_to_string(inside.join("etc/m6")).unwrap(), "pwned");
        assert_eq!(fs::read_to_string(inside.join("etc/m8")).unwrap(), "pwned");
        assert_eq!(fs::read_to_string(root_dir.join("m7")).unwrap(), "pwned");
        assert!(!root_dir.join("tmp/h1").exists() && !root_dir.join("tmp/h2").exists());
        // Reading through the same links never returns the host's file.
        for root in roots(&root_dir) {
            for p in [
                "/tmp/pre/etc/secret",
                "/tmp/l/etc/secret",
                "/tmp/up/outside/etc/secret",
            ] {
                assert!(root.lookup(p, true).is_err(), "{p}");
            }
        }
    }

    /// The CVE-2018-15664 race: the container flips `/x` between a directory and a symlink to
    /// the host (`renameat2(RENAME_EXCHANGE)`, as fast as it can) while we extract into and
    /// read from `/x/etc` again and again.
    #[test]
    fn racing_symlink_exchange_never_escapes() {
        let (_d, root_dir, outside) = sandbox();
        fs::create_dir_all(root_dir.join("x/etc")).unwrap();
        fs::write(root_dir.join("x/etc/secret"), "container file").unwrap();
        symlink(&outside, root_dir.join("xl")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicUsize::new(0));
        let swapper = {
            let (stop, swaps, r) = (stop.clone(), swaps.clone(), root_dir.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        r.join("x").as_path(),
                        rustix::fs::CWD,
                        r.join("xl").as_path(),
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                    // Let the victim's lookups take the directory lock now and then.
                    std::thread::yield_now();
                }
            })
        };
        let (mut wrote, mut read, mut leaked) = (0, 0, None);
        'attempts: for root in roots(&root_dir).iter().cycle().take(4000) {
            let mut b = tar::Builder::new(Vec::new());
            raw_entry(&mut b, tar::EntryType::Regular, "etc/marker", "", b"pwned");
            raw_entry(
                &mut b,
                tar::EntryType::Regular,
                "etc/secret",
                "",
                b"container file",
            );
            let tar = b.into_inner().unwrap();
            if extract_tar(root, "/x", tar.as_slice(), ExtractOptions::default()).is_ok() {
                wrote += 1;
            }
            for (path, follow) in [("/x/etc/secret", false), ("/x/etc", false), ("/x/", true)] {
                let Ok(t) = root.lookup(path, follow) else {
                    continue;
                };
                let mut buf = Vec::new();
                if write_tar(&t, "x", &mut buf).is_ok() {
                    read += 1;
                }
                if buf.windows(11).any(|w| w == b"host secret") {
                    leaked = Some(path);
                    break 'attempts;
                }
            }
        }
        // The swapper stops before any assertion (the temp dir must be removable).
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert_eq!(leaked, None, "read the host's file");
        assert!(
            swaps.load(Ordering::Relaxed) > 1000,
            "the swapper hardly ran"
        );
        assert!(
            wrote > 0 && read > 0,
            "nothing worked ({wrote} writes, {read} reads)"
        );
        outside_untouched(&outside);
    }
}
