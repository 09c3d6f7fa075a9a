//! `docker commit`: the container's writable layer (the overlay upperdir) as a new image layer
//! on top of its image.
//!
//! The upperdir is overlayfs's own format; the layer must be the OCI one
//! (image-spec `layer.md`): a whiteout (a 0/0 character device) becomes an empty
//! `.wh.<name>`, an opaque directory (xattr `trusted.overlay.opaque=y`) gets a
//! `.wh..wh..opq` entry. The files skiffd bind-mounts over (`/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf`) are left out, as docker keeps them in an init layer. The new image is
//! then written as a docker-archive (the parent's layer blobs as they are, plus the new
//! uncompressed layer) and imported through the ordinary import path, which stores the blobs,
//! unpacks the new layer into its snapshot and names the image.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Paths never committed (bind-mount targets).
const SKIP: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

fn opaque(p: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut buf[..]),
        Ok(1) if buf[0] == b'y'
    )
}

fn empty_header(path: &str, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(0);
    h.set_mtime(0);
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

/// Writes the OCI layer tar of an overlay upperdir to `out`.
pub fn upper_to_layer(upper: &Path, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let dir = upper.join(&rel);
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(&dir)?.flatten().collect();
        entries.sort_by_key(fs::DirEntry::file_name);
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if SKIP.contains(&r.as_str()) {
                continue;
            }
            let m = e.metadata()?;
            if m.file_type().is_char_device() && m.rdev() == 0 {
                let wh = match r.rsplit_once('/') {
                    Some((parent, n)) => format!("{parent}/.wh.{n}"),
                    None => format!(".wh.{r}"),
                };
                let h = empty_header(&wh, 0o644, tar::EntryType::Regular);
                b.append(&h, io::empty())?;
                continue;
            }
            b.append_path_with_name(e.path(), &r)?;
            if m.is_dir() {
                if opaque(&e.path()) {
                    let h =
                        empty_header(&format!("{r}/.wh..wh..opq"), 0o644, tar::EntryType::Regular);
                    b.append(&h, io::empty())?;
                }
                stack.push(r);
            }
        }
    }
    b.into_inner()?.flush()
}

/// The new image config: the parent's, with the new layer's diffID and history entry, and the
/// container's config (docker's `commit` keeps the container's Cmd, Env, …).
pub fn new_config(
    parent: &Value,
    container_config: &Value,
    diff_id: &str,
    created: &str,
    created_by: &str,
    comment: &str,
    author: &str,
) -> Value {
    let mut c = parent.clone();
    c["created"] = json!(created);
    if !author.is_empty() {
        c["author"] = json!(author);
    }
    // `docker image inspect`'s Comment (the history entry has it too).
    c["comment"] = json!(comment);
    let mut cfg = container_config.clone();
    if let Some(o) = cfg.as_object_mut() {
        for k in [
            "Hostname",
            "Image",
            "AttachStdin",
            "AttachStdout",
            "AttachStderr",
            "Tty",
            "OpenStdin",
            "StdinOnce",
        ] {
            o.remove(k);
        }
    }
    c["config"] = cfg;
    match c["rootfs"]["diff_ids"].as_array_mut() {
        Some(a) => a.push(json!(diff_id)),
        None => c["rootfs"] = json!({"type": "layers", "diff_ids": [diff_id]}),
    }
    let entry = json!({"created": created, "created_by": created_by, "comment": comment});
    match c["history"].as_array_mut() {
        Some(h) => h.push(entry),
        None => c["history"] = json!([entry]),
    }
    c
}

/// `sha256:<hex>` of a file.
pub fn file_digest(p: &Path) -> io::Result<String> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_and_skips_become_oci() {
        let d = tempfile::tempdir().unwrap();
        let u = d.path();
        fs::create_dir_all(u.join("etc")).unwrap();
        fs::write(u.join("etc/hosts"), "x").unwrap();
        fs::write(u.join("new"), "n").unwrap();
        nix::sys::stat::mknod(
            &u.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .unwrap();
        let mut buf = Vec::new();
        upper_to_layer(u, &mut buf).unwrap();
        let mut a = tar::Archive::new(buf.as_slice());
        let mut names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec![".wh.gone", "etc", "new"]);
        let c = new_config(
            &json!({"rootfs": {"type": "layers", "diff_ids": ["sha256:a"]}, "history": []}),
            &json!({"Cmd": ["sh"], "Hostname": "x"}),
            "sha256:b",
            "2024-01-01T00:00:00Z",
            "sh",
            "msg",
            "",
        );
        assert_eq!(c["rootfs"]["diff_ids"], json!(["sha256:a", "sha256:b"]));
        assert_eq!(c["config"], json!({"Cmd": ["sh"]}));
        assert_eq!(c["history"][0]["comment"], "msg");
        assert_eq!(c["comment"], "msg");
    }
}
