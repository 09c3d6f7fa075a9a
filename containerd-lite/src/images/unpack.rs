//! Applying a layer tar to a snapshot's upper directory.
//!
//! The layer is decompressed by its magic bytes (gzip `1f 8b 08`, zstd `28 b5 2f fd`, else
//! plain tar — containerd's `compression.DetectCompression`), hashed as it is read (the result
//! is the layer's diffID, which the caller checks against the config) and unpacked with
//! whiteouts converted to overlay's form (containerd `OverlayConvertWhiteout`):
//! `.wh.<name>` becomes a 0/0 character device `<name>`, `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory (Documentation/filesystems/overlayfs.rst,
//! "whiteouts and opaque directories"). Paths that would leave the directory are rejected.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::digest::{Digest, HashingReader};

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Detects the compression from a blob's first bytes.
pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Errors while applying a layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or decompressing the tar stream failed.
    #[error("read layer stream")]
    Read(#[source] io::Error),
    /// Unpacking one entry failed.
    #[error("unpack layer entry {path}")]
    Entry {
        /// The entry's path in the tar.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An entry's path escapes the layer root.
    #[error("layer entry {0} escapes the layer root")]
    UnsafePath(PathBuf),
    /// A whiteout could not be created.
    #[error("create whiteout {path}")]
    Whiteout {
        /// The whiteout's path.
        path: PathBuf,
        /// The errno.
        #[source]
        source: rustix::io::Errno,
    },
}

/// What applying a layer produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
}

/// Decompresses `blob` (detected by magic) into a reader of the plain tar.
pub fn decompress<'a, R: Read + 'a>(blob: R) -> Result<Box<dyn Read + 'a>, Error> {
    let mut buf = BufReader::with_capacity(128 * 1024, blob);
    let kind = detect(buf.fill_buf().map_err(Error::Read)?);
    Ok(match kind {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(buf)
                .map_err(|e| Error::Read(io::Error::new(io::ErrorKind::InvalidData, e)))?,
        ),
    })
}

/// Applies the (possibly compressed) layer `blob` to `root`.
pub fn apply(blob: impl Read, root: &Path) -> Result<Applied, Error> {
    let tar_stream = decompress(blob)?;
    let mut archive = tar::Archive::new(HashingReader::new(tar_stream));
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    for entry in archive.entries().map_err(Error::Read)? {
        let mut entry = entry.map_err(Error::Read)?;
        let path = entry.path().map_err(Error::Read)?.into_owned();
        let rel = clean(&path)?;
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let parent = root.join(rel.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&parent).map_err(|source| Error::Entry {
                path: path.clone(),
                source,
            })?;
            if hidden == ".wh..opq" {
                rustix::fs::setxattr(
                    &parent,
                    "trusted.overlay.opaque",
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(|source| Error::Whiteout {
                    path: parent,
                    source,
                })?;
            } else {
                let target = parent.join(hidden);
                // A whiteout replaces whatever this layer had at that name.
                let _ = fs::remove_dir_all(&target).or_else(|_| fs::remove_file(&target));
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(|source| Error::Whiteout {
                    path: target,
                    source,
                })?;
            }
            continue;
        }
        entry
            .unpack_in(root)
            .map_err(|source| Error::Entry { path, source })?;
    }
    // Hash the end-of-archive blocks and any padding too: the diffID covers the whole stream.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(Error::Read)?;
    let (diff_id, size) = rest.finish();
    Ok(Applied { diff_id, size })
}

/// The relative, `..`-free form of a tar path.
fn clean(path: &Path) -> Result<PathBuf, Error> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::UnsafePath(path.to_owned()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar with the given regular files (`path`, contents) and directories (`path/`).
    pub(crate) fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            if path.ends_with('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, io::empty()).unwrap();
            } else {
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn detects_compression() {
        assert_eq!(detect(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"etc/\0\0"), Compression::None);
    }

    #[test]
    fn diff_id_is_the_uncompressed_digest_for_every_compression() {
        let tar = tar_of(&[("etc/", b""), ("etc/hostname", b"skiff\n")]);
        let want = Digest::of(&tar);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            &tar[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for blob in [tar.clone(), gz, zst] {
            let dir = tempfile::tempdir().unwrap();
            let applied = apply(&blob[..], dir.path()).unwrap();
            assert_eq!(applied.diff_id, want);
            assert_eq!(applied.size, tar.len() as u64);
            assert_eq!(
                fs::read(dir.path().join("etc/hostname")).unwrap(),
                b"skiff\n"
            );
        }
    }

    #[test]
    fn truncated_layer_is_an_error() {
        let tar = tar_of(&[("big", &[7u8; 4096])]);
        let dir = tempfile::tempdir().unwrap();
        assert!(apply(&tar[..1000], dir.path()).is_err());
    }

    /// Root: whiteouts need mknod and trusted.* xattrs; checked through a real overlay mount.
    #[test]
    fn whiteouts_hide_lower_files_in_an_overlay() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (mknod, overlay)"
        );
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        apply(
            &tar_of(&[("a/b", b"1"), ("a/c", b"2"), ("d/x", b"3"), ("e", b"4")])[..],
            lower.path(),
        )
        .unwrap();
        apply(
            &tar_of(&[
                ("a/.wh.b", b""),
                ("d/.wh..wh..opq", b""),
                ("d/y", b"5"),
                (".wh.e", b""),
            ])[..],
            upper.path(),
        )
        .unwrap();
        // Mount both as read-only lowers: upper on top.
        let target = tempfile::tempdir().unwrap();
        crate::snapshots::mount_overlay(
            target.path(),
            &[upper.path().to_owned(), lower.path().to_owned()],
            None,
        )
        .unwrap();
        let seen = |p: &str| target.path().join(p).exists();
        let result = (
            seen("a/b"),
            seen("a/c"),
            seen("d/x"),
            seen("d/y"),
            seen("e"),
        );
        nix::mount::umount2(target.path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert_eq!(result, (false, true, false, true, false));
    }

    #[test]
    fn rejects_escaping_paths() {
        assert!(matches!(
            clean(Path::new("../x")),
            Err(Error::UnsafePath(_))
        ));
        assert_eq!(clean(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
    }
}
